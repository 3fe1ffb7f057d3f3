"""``immuno chemokines ...``: the chemokine steps.

    immuno chemokines quantify FILE [--layout L] [--panel P] [--reference-gene G ...]
                                    [--calibrator S] --out OUT     one plate export on its own
    immuno chemokines process BATCH --out DIR [--panels DIR]       every plate of a batch
    immuno chemokines formats                                      the supported exports

Handlers only parse arguments, call the library and print; a UserError reaches the
``immuno`` command, which prints it and exits with status 2. ``quantify`` exits with
status 3 when the file was read but no analyte could be quantified (every curve failed,
no standards, no reference gene, no Cq), after writing what it could.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

VISITS = ["D0", "D10", "M1"]
#: exit status of ``quantify`` when the file was read but nothing could be quantified
EXIT_NOT_QUANTIFIED = 3


def _panel(name_or_path: str | None, panels_dir: str | None) -> Any:
    if not name_or_path:
        return None
    # pandas, jsonschema: kept off start-up
    from immuno.contract.panels import find_panel, load_panel

    path = Path(name_or_path)
    return (
        load_panel(path)
        if path.suffix in (".yaml", ".yml") and path.exists()
        else find_panel(name_or_path, panels_dir)
    )


def _fmt(x: float, spec: str = ".3g") -> str:
    return format(x, spec) if isinstance(x, (int, float)) and math.isfinite(x) else "-"


def _print_multiplex(result: Any) -> None:
    import pandas as pd  # kept off start-up

    samples = (
        result.samples[result.samples["role"] == "unknown"]
        if len(result.samples)
        else pd.DataFrame()
    )
    print(
        f"  {'analyte':<22} {'fit':<22} {'range (in well)':<22} {'in/<LLOQ/>ULOQ':<15} vendor: reproduced, "
        "refit vs vendor (median/max, n)"
    )
    for c in result.curves.itertuples():
        if c.status == "negative_control":
            print(f"  {c.feature[:22]:<22} negative-control bead: background only, not fitted")
            continue
        s = samples[samples["analyte"] == c.analyte] if len(samples) else samples
        counts = "/".join(
            str(int((s["flag"] == f).sum())) if len(s) else "0" for f in ("", "<LLOQ", ">ULOQ")
        )
        fit = f"{c.model} R2={c.r2:.4f}" if c.status == "ok" else "FAILED"
        rng = f"{c.lloq:.4g}-{c.uloq:.4g}" if math.isfinite(c.lloq) else "-"
        vendor = ""
        n_checked = getattr(c, "vendor_checked_n", math.nan)
        if isinstance(n_checked, (int, float)) and math.isfinite(n_checked):
            vendor = f"{int(c.vendor_reproduced_n)}/{int(n_checked)}"
        n_agree = getattr(c, "vendor_agreement_n", math.nan)
        if isinstance(n_agree, (int, float)) and math.isfinite(n_agree) and n_agree > 0:
            status = getattr(c, "vendor_curve_status", "")
            judged = (
                ""
                if status == "ok"
                else " (vendor curve fails recovery: not judged)"
                if status == "failed"
                else " (no vendor curve: not judged)"
            )
            vendor += (", " if vendor else "") + (
                f"{_fmt(100 * c.vendor_agreement_median_rel_diff, '.2f')} %/"
                f"{_fmt(100 * c.vendor_agreement_max_rel_diff, '.1f')} %, "
                f"n={int(n_agree)}{judged}"
            )
        print(f"  {c.feature[:22]:<22} {fit:<22} {rng:<22} {counts:<15} {vendor or '-'}")
    for c in result.curves[result.curves["status"] == "failed"].itertuples():
        print(f"  {c.feature}: curve failed - {c.reason}")


def _print_qpcr(result: Any) -> None:
    if result.quantified:
        for target, t in result.expression.groupby("target", sort=True):
            print(
                f"  {target:<16} {len(t)} samples, relative expression {t['value'].min():.3g}-{t['value'].max():.3g} "
                f"({t['method'].iloc[0]})"
            )
        print(
            f"  normalised on {', '.join(result.reference_genes)}"
            + (
                f", calibrator {result.calibrator}"
                if result.calibrator
                else " (no calibrator: 2^-dCq)"
            )
        )
    for m in result.metrics:
        if m["check"].startswith("vendor_"):
            print(f"  vendor check {m['check'][7:]}: {m['detail']}")


def _cmd_quantify(args: argparse.Namespace) -> int:
    # scipy, matplotlib: kept off start-up
    from immuno.chemokines.pipeline.batch import issue_flags, quantify_file
    from immuno.chemokines.quantify.multiplex import PlateResult  # scipy: kept off start-up
    from immuno.contract.qc import flags_table, metrics_table  # pandas: kept off start-up
    from immuno.io import write_parquet  # pandas: kept off start-up

    panel = _panel(args.panel, args.panels)
    plate, result = quantify_file(
        args.file, panel, args.layout, args.reference_gene, args.calibrator
    )
    out = Path(args.out)
    tag = {"batch_id": "", "assay": "chemokine", "panel": getattr(panel, "name", "")}
    write_parquet(metrics_table([{**m, **tag} for m in result.metrics]), out / "qc_metrics.parquet")
    write_parquet(
        flags_table([{**f, **tag} for f in [*result.flags, *issue_flags(result, plate.plate_id)]]),
        out / "qc_flags.parquet",
    )
    kind = "analytes" if plate.kind == "multiplex" else "targets"
    print(
        f"{args.file}: {plate.format} export, plate {plate.plate_id}, {plate.wells['well'].nunique()} wells, "
        f"{len(plate.analytes)} {kind}"
    )
    for issue in result.issues:
        print(f"  {'problem' if issue.blocking else 'note'}: {issue}")
    if isinstance(result, PlateResult):
        for name in ("curves", "samples", "standards", "vendor", "wells"):
            write_parquet(getattr(result, name), out / f"{name}.parquet")
        if not args.no_plots:
            # matplotlib: only when asked for plots
            from immuno.chemokines.pipeline.outputs import write_curve_plots

            write_curve_plots(result, plate, out / "plots")
        _print_multiplex(result)
        why = "no analyte has an accepted standard curve"
    else:
        write_parquet(result.cq, out / "cq.parquet")
        if result.quantified:
            write_parquet(result.expression, out / "relative_expression.parquet")
        if len(result.vendor):
            write_parquet(result.vendor, out / "vendor.parquet")
        _print_qpcr(result)
        why = result.reason
    print(f"results written to {out}")
    if not result.quantified:
        print(f"{args.file}: read, but nothing could be quantified: {why}", file=sys.stderr)
        return EXIT_NOT_QUANTIFIED
    return 0


def _cmd_process(args: argparse.Namespace) -> int:
    # scipy, matplotlib: kept off start-up
    from immuno.chemokines.pipeline.batch import process_batch
    from immuno.contract.batch import load_batch  # pandas, jsonschema: kept off start-up

    batch = load_batch(args.batch, visits=args.visits, panels_dir=args.panels)
    table = process_batch(batch, args.out, history=args.history, plots=not args.no_plots)
    n_samples = table["sample_id"].nunique() if len(table) else 0
    censored = int(table["flag"].isin(["<LLOQ", ">ULOQ"]).sum()) if len(table) else 0
    print(
        f"batch {batch.batch_id}: {len(table)} chemokine measurement rows for {n_samples} samples "
        f"({censored} censored); results in {args.out}"
    )
    return 0


def _cmd_formats(args: argparse.Namespace) -> int:
    from immuno.chemokines.io.readers import SUPPORTED  # pandas: kept off start-up

    del args
    for name in SUPPORTED:
        print(name)
    return 0


def register(subparsers: Any) -> None:
    """Add ``immuno chemokines`` and its subcommands."""
    p = subparsers.add_parser(
        "chemokines", help="multiplex bead assays and qPCR: curves, concentrations, QC"
    )
    sub = p.add_subparsers(dest="chemokines_command", required=True, metavar="STEP")

    q = sub.add_parser(
        "quantify",
        help="quantify one plate export on its own (no batch)",
        epilog="Exit status: 0 quantified, 2 the file cannot be read (every problem listed), "
        "3 read but nothing could be quantified (the reason is printed).",
    )
    q.add_argument(
        "file", help="plate export (xPONENT, Intelliflex, Bio-Plex, MSD, CFX, QuantStudio, RDML)"
    )
    q.add_argument(
        "--layout", default=None, help="plate layout file naming the sample in each well"
    )
    q.add_argument(
        "--panel", default=None, help="panel name (in --panels) or YAML file mapping analytes"
    )
    q.add_argument("--panels", default=None, help="panels folder (default: the project's panels/)")
    q.add_argument(
        "--reference-gene",
        action="append",
        default=None,
        metavar="GENE",
        help="qPCR: normalise on this target (repeat for several; default: the panel's, or the "
        "Endogenous Control the export states)",
    )
    q.add_argument(
        "--calibrator",
        default=None,
        metavar="SAMPLE",
        help="qPCR: sample the expression is relative to (default: the panel's, or the export's "
        "Reference Sample; none gives 2^-dCq)",
    )
    q.add_argument("--out", required=True, help="folder for the result tables and plots")
    q.add_argument("--no-plots", action="store_true", help="skip the curve plots")
    q.set_defaults(func=_cmd_quantify)

    b = sub.add_parser("process", help="(workflow step) quantify every chemokine plate of a batch")
    b.add_argument("batch", help="batch folder holding samplesheet.csv")
    b.add_argument("--out", required=True, help="room folder, e.g. results/<batch>/chemokines")
    b.add_argument("--panels", default=None, help="panels folder (default: the project's panels/)")
    b.add_argument(
        "--visits", nargs="+", default=VISITS, help="allowed visits (default: D0 D10 M1)"
    )
    b.add_argument(
        "--history",
        default=None,
        help="Parquet of earlier plates (plate_id, check, target, value) for Levey-Jennings limits",
    )
    b.add_argument("--no-plots", action="store_true", help="skip the curve plots")
    b.set_defaults(func=_cmd_process)

    f = sub.add_parser("formats", help="list the supported plate export formats")
    f.set_defaults(func=_cmd_formats)
