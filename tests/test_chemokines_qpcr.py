"""RT-qPCR relative quantification: efficiency, 2^-ddCq, Pfaffl, reference genes, NTC."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from immuno.chemokines import efficiency_from_standards, genorm_m, read_plate, relative_expression
from immuno.chemokines.io.plate import QPCR_COLUMNS


def _wells(rows: list[tuple[str, str, str, float, float]]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["sample_name", "role", "target", "cq", "quantity"])
    df["plate_id"], df["well"], df["reporter"], df["omitted"] = (
        "RUN",
        [f"W{i}" for i in range(len(df))],
        "",
        False,
    )
    df["problem"] = ""
    return df.reindex(columns=QPCR_COLUMNS)


def _run(effs: dict[str, float] | None = None) -> pd.DataFrame:
    """Two samples, triplicates; CXCL10 rises 8-fold (3 cycles) against two reference genes."""
    rows = []
    for s, shift in (("P01-D0", 0.0), ("P01-D10", -3.0)):
        for rep in (-0.05, 0.0, 0.05):
            rows += [
                (s, "unknown", "CXCL10", 28.0 + shift + rep, math.nan),
                (s, "unknown", "GAPDH", 18.0 + rep, math.nan),
                (s, "unknown", "ACTB", 19.0 - rep, math.nan),
            ]
    rows += [("NTC", "ntc", "CXCL10", math.nan, math.nan), ("NTC", "ntc", "GAPDH", 37.5, math.nan)]
    return _wells(rows)


def test_livak_ddcq() -> None:
    table, metrics, flags = relative_expression(_run(), ["GAPDH", "ACTB"], calibrator="P01-D0")
    t = table.set_index("sample_name")
    assert t.loc["P01-D0", "value"] == pytest.approx(1.0)
    assert t.loc["P01-D10", "value"] == pytest.approx(8.0)
    assert t.loc["P01-D10", "ddcq"] == pytest.approx(-3.0)
    assert t.loc["P01-D10", "method"] == "2^-ddCq"
    # dCq spread: sqrt(s_target^2 + (sqrt(s_gapdh^2 + s_actb^2) / 2)^2), s = 0.05 for each
    assert t.loc["P01-D10", "dcq_sd"] == pytest.approx(
        math.sqrt(0.05**2 + (math.sqrt(2) * 0.05 / 2) ** 2)
    )
    ntc = {m["target"]: m["passed"] for m in metrics if m["check"] == "qpcr_ntc"}
    assert ntc == {"CXCL10": True, "GAPDH": True}
    assert not flags


def test_pfaffl_with_efficiencies() -> None:
    eff = {"CXCL10": 1.9, "GAPDH": 2.0, "ACTB": 2.0}
    table, _, _ = relative_expression(
        _run(), ["GAPDH", "ACTB"], calibrator="P01-D0", efficiencies=eff
    )
    t = table.set_index("sample_name")
    assert t.loc["P01-D10", "value"] == pytest.approx(1.9**3)
    assert t.loc["P01-D10", "method"] == "Pfaffl"


def test_replicate_spread_ntc_and_missing_reference() -> None:
    w = _run()
    w.loc[(w["sample_name"] == "P01-D0") & (w["target"] == "CXCL10"), "cq"] = [27.6, 28.0, 28.4]
    w.loc[(w["role"] == "ntc") & (w["target"] == "GAPDH"), "cq"] = 31.0
    _, metrics, flags = relative_expression(w, ["GAPDH", "ACTB", "B2M"], calibrator="P01-D0")
    kinds = {f["flag"] for f in flags}
    assert {"replicate_spread", "ntc_amplified", "reference_gene_missing"} <= kinds
    assert [
        m["passed"] for m in metrics if m["check"] == "qpcr_ntc" and m["target"] == "GAPDH"
    ] == [False]
    with pytest.raises(ValueError, match="none of the reference genes"):
        relative_expression(w, ["B2M"])


def test_genorm_m() -> None:
    rng = np.random.default_rng(0)
    stable = 2.0 ** rng.normal(0, 0.05, 20)
    expr = pd.DataFrame({"A": stable * 2, "B": stable * 3, "C": 2.0 ** rng.normal(0, 1.0, 20)})
    m = genorm_m(expr, ["A", "B", "C"])
    assert m["C"] > m["A"] and m["C"] > 0.5
    assert genorm_m(expr[["A", "B"]], ["A", "B"])["A"] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.real
def test_efficiency_matches_vendor(real_data: Path) -> None:
    qpcr = real_data / "chemokines" / "qpcr"
    eff = efficiency_from_standards(read_plate(qpcr / "quantstudio_example04.txt").wells).iloc[0]
    # QuantStudio's own Results: slope -3.383, R^2 0.997, efficiency 97.505 %
    assert eff["slope"] == pytest.approx(-3.383, abs=5e-4)
    assert eff["r2"] == pytest.approx(0.997, abs=5e-4)
    assert eff["efficiency"] == pytest.approx(97.505, abs=0.01)
    rd = efficiency_from_standards(read_plate(qpcr / "stepone_std.rdml").wells).iloc[0]
    assert rd["efficiency"] == pytest.approx(
        93.91181, abs=0.01
    )  # <amplificationEfficiency> in the file


@pytest.mark.real
def test_cfx_relative_to_a_reference_dye(real_data: Path) -> None:
    plate = read_plate(real_data / "chemokines" / "qpcr" / "cfx_maestro_example01.csv")
    table, _, _ = relative_expression(plate.wells, ["VIC"])
    row = table.set_index("sample_name").loc["M3905 R Ctx"]
    # A01/A02: FAM 21.1877528, 21.1025534; VIC 21.1590717, 21.0520704
    dcq = (21.1877528266099 + 21.1025534163483) / 2 - (21.1590717001335 + 21.0520703748196) / 2
    assert row["value"] == pytest.approx(2.0**-dcq, rel=1e-9)


@pytest.mark.real
def test_quantstudio_without_a_panel_uses_the_files_own_normalisation(
    real_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from immuno.cli import main

    path = real_data / "chemokines" / "qpcr" / "allotropy_quantstudio_example10_QS12K.xlsx"
    rc = main(["chemokines", "quantify", str(path), "--out", str(tmp_path / "q")])
    out = capsys.readouterr().out
    assert (
        rc == 0
        and "8 wells, 2 targets" in out
        and "normalised on RefGene, calibrator Sample_1" in out
    )
    cq = pd.read_parquet(tmp_path / "q" / "cq.parquet")
    assert len(cq) == 8 and set(cq["well"]) == {
        "A1",
        "A2",
        "A3",
        "A4",
        "B1",
        "B2",
        "B3",
        "B4",
    }  # footers are not wells
    expr = pd.read_parquet(tmp_path / "q" / "relative_expression.parquet").set_index("sample_name")
    # 2^-ddCq from the Cts: GeneA (25.5, 25.8 | 26.2, 26.5), RefGene (20.0, 20.2 | 19.8, 20.0)
    assert expr.loc["Sample_1", "value"] == pytest.approx(1.0)
    assert expr.loc["Sample_2", "value"] == pytest.approx(2.0 ** -((26.35 - 19.9) - (25.65 - 20.1)))


@pytest.mark.real
def test_cq_table_always_written_and_options_for_normalisation(
    real_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from immuno.cli import main

    path = real_data / "chemokines" / "qpcr" / "cfx_maestro_example01.csv"
    rc = main(["chemokines", "quantify", str(path), "--out", str(tmp_path / "none")])
    assert rc == 3 and "no reference gene: give --reference-gene" in capsys.readouterr().err
    assert len(pd.read_parquet(tmp_path / "none" / "cq.parquet")) == 48
    assert not (tmp_path / "none" / "relative_expression.parquet").exists()
    rc = main(
        [
            "chemokines",
            "quantify",
            str(path),
            "--reference-gene",
            "VIC",
            "--calibrator",
            "M3905 R Ctx",
            "--out",
            str(tmp_path / "opt"),
        ]
    )
    assert rc == 0
    expr = pd.read_parquet(tmp_path / "opt" / "relative_expression.parquet").set_index(
        "sample_name"
    )
    assert expr.loc["M3905 R Ctx", "value"] == pytest.approx(1.0)
    assert set(expr["method"]) == {"2^-ddCq"}
    flags = pd.read_parquet(tmp_path / "opt" / "qc_flags.parquet")
    assert flags["reason"].str.contains("reference genes given as an option: VIC").any()


def test_a_qpcr_batch_may_rely_on_the_files_endogenous_control(tmp_path: Path) -> None:
    from immuno.chemokines import process_batch
    from immuno.chemokines.checks import check_inputs
    from immuno.contract.batch import load_batch

    folder = tmp_path / "qbatch"
    (folder / "qpcr").mkdir(parents=True)
    head = [
        "* Experiment Type = Comparative Ct",
        "",
        "[Results]",
        "Well\tWell Position\tOmit\tSample Name\tTarget Name\tTask\tReporter\tCT",
    ]
    rows, n = [], 0
    for sample, cts in (
        ("P01-D0-BLOOD", {"CXCL10": 28.0, "GAPDH": 18.0}),
        ("P01-D10-BLOOD", {"CXCL10": 26.0, "GAPDH": 18.0}),
    ):
        for target, ct in cts.items():
            for rep in (0.01, -0.01):
                n += 1
                rows.append(f"{n}\tA{n}\tfalse\t{sample}\t{target}\tUNKNOWN\tFAM\t{ct + rep:.3f}")
    footer = ["", "Endogenous Control\tGAPDH", "Reference Sample\tP01-D0-BLOOD"]
    (folder / "qpcr" / "run.txt").write_text("\n".join(head + rows + footer) + "\n")
    pd.DataFrame(
        [
            {
                "sample_id": s,
                "patient_id": "P01",
                "visit": s.split("-")[1],
                "assay": "chemokine",
                "file": "qpcr/run.txt",
                "panel": "chemokine_qpcr_nogenes",
                "sample_name": s,
            }
            for s in ("P01-D0-BLOOD", "P01-D10-BLOOD")
        ]
    ).to_csv(folder / "samplesheet.csv", index=False)
    panels = tmp_path / "panels"
    panels.mkdir()
    (panels / "chemokine_qpcr_nogenes.yaml").write_text(
        "name: chemokine_qpcr_nogenes\nassay: chemokine\nversion: 1\nunit: relative expression\n"
        "analytes:\n  - {feature: CXCL10, class: Th1}\n"
    )
    batch = load_batch(folder, panels_dir=panels)
    assert check_inputs(batch.rows("chemokine"), batch.root, batch.panels) == []
    table = process_batch(batch, tmp_path / "out", plots=False).set_index(["sample_id", "feature"])
    assert table.loc[("P01-D10-BLOOD", "CXCL10"), "value"] == pytest.approx(
        4.0
    )  # 2 cycles earlier, same GAPDH
    assert table.loc[("P01-D0-BLOOD", "CXCL10"), "value"] == pytest.approx(1.0)
    assert len(pd.read_parquet(tmp_path / "out" / "cq.parquet")) == 8
