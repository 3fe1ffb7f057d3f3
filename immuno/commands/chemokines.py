"""``immuno chemokines ...``: the chemokine steps.

    immuno chemokines quantify FILE [--layout L] [--panel P] --out OUT   one plate export on its own
    immuno chemokines process BATCH --out DIR [--panels DIR]             every plate of a batch
    immuno chemokines formats                                            the supported exports

Handlers only parse arguments, call the library and print; a UserError reaches the
``immuno`` command, which prints it and exits with status 2.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

VISITS = ["D0", "D10", "M1"]


def _panel(name_or_path: str | None, panels_dir: str | None) -> Any:
    if not name_or_path:
        return None
    from immuno.panels import find_panel, load_panel

    path = Path(name_or_path)
    return load_panel(path) if path.suffix in (".yaml", ".yml") and path.exists() else find_panel(name_or_path, panels_dir)


def _cmd_quantify(args: argparse.Namespace) -> int:
    import pandas as pd

    from immuno.chemokines.process import quantify_file
    from immuno.chemokines.quantify import PlateResult
    from immuno.io import write_parquet
    from immuno.qc import flags_table, metrics_table

    panel = _panel(args.panel, args.panels)
    plate, result, metrics, flags = quantify_file(args.file, panel, args.layout)
    out = Path(args.out)
    write_parquet(plate.wells, out / "wells.parquet")
    tag = {"batch_id": "", "assay": "chemokine", "panel": getattr(panel, "name", "")}
    write_parquet(metrics_table([{**m, **tag} for m in metrics]), out / "qc_metrics.parquet")
    write_parquet(flags_table([{**f, **tag} for f in flags]), out / "qc_flags.parquet")
    print(f"{args.file}: {plate.format} export, plate {plate.plate_id}, {plate.wells['well'].nunique()} wells, "
          f"{len(plate.analytes)} {'analytes' if plate.kind == 'multiplex' else 'targets'}")
    if not isinstance(result, PlateResult):
        write_parquet(result, out / "relative_expression.parquet")
        for target, t in result.groupby("target", sort=True):
            print(f"  {target:<16} {len(t)} samples, relative expression {t['value'].min():.3g}-{t['value'].max():.3g} "
                  f"({t['method'].iloc[0]})")
        return 0
    write_parquet(result.curves, out / "curves.parquet")
    write_parquet(result.samples, out / "samples.parquet")
    if not args.no_plots:
        from immuno.chemokines.process import write_curve_plots

        write_curve_plots(result, plate, out / "plots")
    samples = result.samples[result.samples["role"] == "unknown"] if len(result.samples) else pd.DataFrame()
    print(f"  {'analyte':<22} {'fit':<22} {'range (in well)':<24} in range / <LLOQ / >ULOQ")
    for c in result.curves.itertuples():
        s = samples[samples["analyte"] == c.analyte] if len(samples) else samples
        counts = [int((s["flag"] == f).sum()) if len(s) else 0 for f in ("", "<LLOQ", ">ULOQ")]
        fit = f"{c.model} R2={c.r2:.4f}" if c.status == "ok" else "FAILED"
        rng = f"{c.lloq:.4g}-{c.uloq:.4g}" if math.isfinite(c.lloq) else "-"
        print(f"  {c.feature[:22]:<22} {fit:<22} {rng:<24} {counts[0]} / {counts[1]} / {counts[2]}")
    for c in result.curves[result.curves["status"] != "ok"].itertuples():
        print(f"  {c.feature}: curve failed - {c.reason}")
    print(f"results written to {out}")
    return 0


def _cmd_process(args: argparse.Namespace) -> int:
    from immuno.batch import load_batch
    from immuno.chemokines.process import process_batch

    batch = load_batch(args.batch, visits=args.visits, panels_dir=args.panels)
    table = process_batch(batch, args.out, history=args.history, plots=not args.no_plots)
    n_samples = table["sample_id"].nunique() if len(table) else 0
    censored = int(table["flag"].isin(["<LLOQ", ">ULOQ"]).sum()) if len(table) else 0
    print(f"batch {batch.batch_id}: {len(table)} chemokine measurement rows for {n_samples} samples "
          f"({censored} censored); results in {args.out}")
    return 0


def _cmd_formats(args: argparse.Namespace) -> int:
    from immuno.chemokines.readers import SUPPORTED

    del args
    for name in SUPPORTED:
        print(name)
    return 0


def register(subparsers: Any) -> None:
    """Add ``immuno chemokines`` and its subcommands."""
    p = subparsers.add_parser("chemokines", help="multiplex bead assays and qPCR: curves, concentrations, QC")
    sub = p.add_subparsers(dest="chemokines_command", required=True, metavar="STEP")

    q = sub.add_parser("quantify", help="quantify one plate export on its own (no batch)")
    q.add_argument("file", help="plate export (xPONENT, Bio-Plex, MSD, CFX, QuantStudio, RDML)")
    q.add_argument("--layout", default=None, help="plate layout file naming the sample in each well")
    q.add_argument("--panel", default=None, help="panel name (in --panels) or YAML file mapping analytes")
    q.add_argument("--panels", default=None, help="panels folder (default: the project's panels/)")
    q.add_argument("--out", required=True, help="folder for the result tables and plots")
    q.add_argument("--no-plots", action="store_true", help="skip the curve plots")
    q.set_defaults(func=_cmd_quantify)

    b = sub.add_parser("process", help="(workflow step) quantify every chemokine plate of a batch")
    b.add_argument("batch", help="batch folder holding samplesheet.csv")
    b.add_argument("--out", required=True, help="room folder, e.g. results/<batch>/chemokines")
    b.add_argument("--panels", default=None, help="panels folder (default: the project's panels/)")
    b.add_argument("--visits", nargs="+", default=VISITS, help="allowed visits (default: D0 D10 M1)")
    b.add_argument("--history", default=None, help="Parquet of earlier plates (plate_id, check, target, value) "
                                                    "for Levey-Jennings limits")
    b.add_argument("--no-plots", action="store_true", help="skip the curve plots")
    b.set_defaults(func=_cmd_process)

    f = sub.add_parser("formats", help="list the supported plate export formats")
    f.set_defaults(func=_cmd_formats)
