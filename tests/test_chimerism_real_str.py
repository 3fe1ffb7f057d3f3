"""Real GeneMapper / GeneMapper ID-X / GeneMarker exports in ../shared/data/real/chimerism/str.

Known answers (SOURCES.md): the euroformix tutorial stain is a two-person ESX17 mixture
of P1 (0.765) and P2 (0.235); the GlobalFiler evidence holds K48/K49/K50/K29 at
0.07/0.27/0.31/0.35; strvalidator's set3 holds single-source dilution series of A2, F2 and
bc, whose profiles are in ref3 (homozygotes entered twice for A2 and bc, once for F2).
The .RData files (set5, ref51, ref52) are R's binary serialisation and are not read: set5
has no documented mixture ratio to check against, and no lab exports that format.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from immuno.chimerism import estimate_str, read_genemapper
from immuno.chimerism.str.genotypes import call_str_genotype
from immuno.chimerism.str.peaks import StrSettings, classify_peaks

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def str_dir(real_data: Path) -> Path:
    return real_data / "chimerism" / "str"


@pytest.fixture(scope="module")
def set3(str_dir: Path) -> tuple:
    return read_genemapper(str_dir / "strvalidator_set3_GeneMapper_ESX17.txt"), read_genemapper(
        str_dir / "strvalidator_ref3.txt"
    )


def _one(table, name: str):
    return table[table["sample_name"] == name]


def test_two_person_mixture_minor_within_three_points(str_dir: Path) -> None:
    stain = read_genemapper(str_dir / "euroformix_tutorial_stain.txt")
    refs = read_genemapper(str_dir / "euroformix_tutorial_refs.csv")
    assert stain["area"].isna().all() and stain["height"].notna().all()  # heights only
    result = estimate_str(stain, _one(refs, "P1"), _one(refs, "P2"))
    # P2 is the minor contributor: 0.235 by the euroformix gamma-model MLE
    assert abs(result.fraction - 0.235) <= 0.03, result.summary()
    assert result.lower <= 0.235 <= result.upper and result.detected
    loci = result.markers.set_index("marker")
    # every locus has a status and a reason; 'VWA' in the profile is 'vWA' in the stain
    assert len(loci) == 17 and loci["reason"].str.len().gt(0).all()
    assert loci.loc["AMEL", "status"] == "set_aside" and "sex marker" in loci.loc["AMEL", "reason"]
    assert loci.loc["D3S1358", "status"] == "not_informative"
    # the donor allele that dropped out (below the export's 155 RFU) is censored, not 0 %
    flags = {f.flag for f in result.flags}
    assert {"heights_used", "export_threshold"} <= flags
    assert loci["censored"].any()


def test_four_person_mixture_as_three_donors(str_dir: Path) -> None:
    evid = read_genemapper(str_dir / "euroformix_GF_evid.csv")
    refs = read_genemapper(str_dir / "euroformix_GF_refs.csv")
    donors = {k: _one(refs, k) for k in ("K48", "K49", "K50")}
    result = estimate_str(evid, _one(refs, "K29"), donors=donors)
    got = {c.donor_id: c.fraction for c in result.components}
    # euroformix: K48 0.07, K49 0.27, K50 0.31 (K29, the recipient here, 0.35)
    for donor, known in (("K48", 0.07), ("K49", 0.27), ("K50", 0.31)):
        assert abs(got[donor] - known) <= 0.02, got
    assert abs(1 - sum(got.values()) - 0.35) <= 0.02
    assert all(c.lower <= c.fraction <= c.upper and c.detected for c in result.components)
    rows = result.measurement_rows()
    assert {r["feature"] for r in rows} == {
        f"donor_fraction{s}_{d}" for d in donors for s in ("", "_lod")
    }


def test_reference_lists_homozygotes_once_or_twice(set3: tuple) -> None:
    _, ref = set3
    a2 = call_str_genotype(_one(ref, "A2")).set_index("marker")
    f2 = call_str_genotype(_one(ref, "F2")).set_index("marker")
    assert a2.loc["TH01", "alleles"] == ("8",)  # entered twice
    assert f2.loc["D10S1248", "alleles"] == ("14",)  # entered once
    assert (a2["call"] == "ok").all() and (f2["call"] == "ok").all()


def test_off_ladder_and_pull_up_peaks_set_aside_not_the_locus(set3: tuple) -> None:
    s3, ref = set3
    overloaded = _one(s3, "03-A2.1")
    assert (overloaded["allele"] == "OL").sum() >= 30  # an overloaded, artefact-rich run
    calls = call_str_genotype(overloaded).set_index("marker")
    truth = call_str_genotype(_one(ref, "A2")).set_index("marker")
    for locus in truth.index:
        assert calls.loc[locus, "call"] == "ok", (locus, calls.loc[locus, "note"])
        assert set(calls.loc[locus, "alleles"]) == set(truth.loc[locus, "alleles"]), locus
    # the D16S539 '15' at 312.3 bp is blue D18S51 15 (14287 RFU at 311.8 bp) pulling up
    peaks = classify_peaks(overloaded, StrSettings())
    pulled = peaks[(peaks["marker"] == "D16S539") & (peaks["allele"] == "15")].iloc[0]
    assert pulled["kind"] == "pull_up" and "D18S51 15" in pulled["note"]
    # F2 carries an allele the ladder lacks at D1S1656: called by its size, the locus kept
    f2 = call_str_genotype(_one(s3, "28-F2.1")).set_index("marker")
    assert f2.loc["D1S1656", "call"] == "ok"
    assert any(a.startswith("OL@159.") for a in f2.loc["D1S1656", "alleles"])


def _person(name: str) -> str:
    return "A2" if "A2" in name else "F2" if "F2" in name else "bc"


def test_set3_single_source_samples_against_their_profiles(set3: tuple) -> None:
    s3, ref = set3
    profiles = {p: _one(ref, p) for p in ("A2", "F2", "bc")}
    samples = [
        n for n in sorted(s3["sample_name"].unique()) if re.search(r"A2|F2|bc", n, re.IGNORECASE)
    ]
    # 32 in the export; 11-BC10 has not a single peak and is named as such
    assert len(samples) == 31 and s3.attrs["samples_without_peaks"] == ["02-Neg.ktr.__", "11-BC10"]
    right = {0.0: 0, 1.0: 0}
    weak = 0
    for name in samples:
        who = _person(name)
        other = "F2" if who != "F2" else "A2"
        bx = _one(s3, name)
        # the person's own profile as the recipient: 0 % donor, never detected
        as_recipient = estimate_str(bx, profiles[who], profiles[other])
        assert not as_recipient.detected, (name, as_recipient.summary())
        right[0.0] += 1
        # as the donor: 100 % donor, or too weak to say (the last dilutions)
        as_donor = estimate_str(bx, profiles[other], profiles[who])
        if as_donor.failed:
            assert "too_little_signal" in {f.flag for f in as_donor.flags}, (
                name,
                as_donor.summary(),
            )
            weak += 1
            continue
        assert as_donor.detected and as_donor.upper >= 0.999, (name, as_donor.summary())
        assert as_donor.fraction >= 0.9, (name, as_donor.summary())
        assert "swapped_references" in {f.flag for f in as_donor.flags}
        right[1.0] += 1
    assert right[1.0] >= 29 and weak <= 3, (right, weak)


def test_the_ninety_seven_percent_case_keeps_its_loci(set3: tuple) -> None:
    # the case: a donor-dominated GeneMapper ID-X sample whose references come
    # from the same run, with OL peaks and pull-up; 13 of 16 loci used to be dropped
    s3, _ = set3
    result = estimate_str(_one(s3, "04-A2.2"), _one(s3, "03-BC2"), _one(s3, "03-A2.1"))
    loci = result.markers.set_index("marker")
    # every locus read: none set aside for its references; each with a status and reason
    assert not loci["reason"].str.contains("reference").any(), loci[["status", "reason"]]
    assert loci["donor_fraction"].notna().sum() >= 14 and loci["reason"].str.len().gt(0).all()
    # the issue's own check: with the OL rows removed by hand it read 99.5 %
    assert result.detected and abs(result.fraction - 0.995) <= 0.01, result.summary()
    assert not np.isnan(result.lod)


def test_polysat_genemapper4_quality_values(str_dir: Path) -> None:
    peaks = read_genemapper(str_dir / "polysat_GeneMapperCBA15.txt")
    assert peaks["sample_name"].nunique() == 20 and set(peaks["marker"]) == {"RhCBA15"}
    fcr1 = _one(peaks, "FCR1")
    assert fcr1["area"].tolist() == [36717.0] and fcr1["height"].tolist() == [
        3281.0
    ]  # 'Peak Area 1'
    # the one genotype GeneMapper did not have edited carries its process quality values
    fcr7 = _one(peaks, "FCR7")["quality"].unique().tolist()
    assert fcr7 == ["single peak artefact; GQ 0.45"]
    assert (peaks.loc[peaks["sample_name"] != "FCR7", "quality"] == "").all()
