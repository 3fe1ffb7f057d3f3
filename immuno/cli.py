"""immuno: validated results of the LYSYME immunology lab from raw instrument files.

    immuno demo OUT              write the synthetic demo batch (with truth.csv)
    immuno validate BATCH        check a batch; every problem listed, exit status 2
    immuno run [BATCH ...]       run the workflow (default: the demo batch)
    immuno report RESULTS/BATCH  the batch's HTML QC report
    immuno study [RESULTS]       rebuild the study tables and dashboard from every batch
    immuno study stats [RESULTS] paired change from D0 per feature (Wilcoxon, HL CI, BH)
    immuno cytometry|chemokines|chimerism ...   one assay's steps, usable without a batch

Problems a user can cause end with a list of what is wrong, what to do next, and exit
status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from immuno.errors import EXIT_USER_ERROR, UserError

#: modules that add one assay's subcommands (each has ``register(subparsers)``)
ASSAY_COMMANDS = ("immuno.commands.cytometry", "immuno.commands.chemokines",
                  "immuno.commands.chimerism")


def _cmd_demo(args: argparse.Namespace) -> int:
    from immuno.demo import make_demo_batch

    out = make_demo_batch(args.out, seed=args.seed, patients=args.patients, events=args.events,
                          overwrite=args.overwrite)
    print(f"demo batch written to {out} (samplesheet.csv, truth.csv)")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from immuno.batch import write_sheet
    from immuno.validate import validate_batch

    batch = validate_batch(args.batch, visits=args.visits, panels_dir=args.panels)
    counts = batch.sheet["assay"].value_counts().sort_index()
    summary = ", ".join(f"{n} {a}" for a, n in counts.items())
    print(f"batch {batch.batch_id}: {len(batch.sheet)} rows ({summary}); no problems found")
    if args.write:
        write_sheet(batch.sheet.drop(columns="row").to_dict("records"), args.write)
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from immuno.runner import run_workflow

    return run_workflow(args.batches, results=args.results, cores=args.cores, panels=args.panels,
                        profile=args.profile, dry_run=args.dry_run, extra=args.snakemake_args)


def _cmd_collect(args: argparse.Namespace) -> int:
    import json
    from datetime import UTC, datetime
    from pathlib import Path

    from immuno.collect import collect_batch

    sheet = Path(args.batch_dir) / "validation" / "samplesheet.csv"
    started = (datetime.fromtimestamp(sheet.stat().st_mtime, UTC).isoformat(timespec="seconds")
               if sheet.is_file() else None)
    m = collect_batch(args.batch, args.batch_dir, panels_dir=args.panels, visits=args.visits,
                      parameters=json.loads(args.parameters) if args.parameters else None,
                      started=started)
    print(f"{len(m)} measurement rows written to {args.batch_dir}/measurements.parquet")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from immuno.report import build_report

    print(f"report written to {build_report(args.batch_dir, args.out)}")
    return 0


def _cmd_study(args: argparse.Namespace) -> int:
    from immuno.store import Study

    words = list(args.words)
    stats = bool(words) and words[0] == "stats"
    if stats:
        words = words[1:]
    if len(words) > 1:
        raise UserError.single("immuno study", f"expected at most one results folder, got {' '.join(words)}",
                               hint="Usage: immuno study [RESULTS] | immuno study stats [RESULTS] [--feature F ...]")
    study = Study(words[0] if words else "results")
    if not stats:
        folder = study.rebuild()
        print(f"study tables and dashboard of {len(study.batches)} batch(es) written to {folder}")
        dup = study.duplicates()
        if len(dup):
            print(f"warning: {len(dup)} measurement(s) held by more than one batch; the statistics refuse "
                  f"them (see {folder / 'duplicates.parquet'})", file=sys.stderr)
        return 0
    table = study.compare_visits(feature=args.feature, assay=args.assay, panel=args.panel,
                                 baseline=args.baseline, censored=args.censored)
    if args.out:
        from immuno.io import write_text

        write_text(table.to_csv(index=False, lineterminator="\n"), args.out)
        print(f"{len(table)} rows written to {args.out}")
    else:
        import pandas as pd

        with pd.option_context("display.width", 200, "display.max_columns", 30, "display.max_rows", 500):
            print(table.drop(columns=["note"]).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``immuno`` command."""
    parser = argparse.ArgumentParser(prog="immuno", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="write the synthetic demo batch with its truth.csv")
    p.add_argument("out", help="batch folder to create")
    p.add_argument("--seed", type=int, default=20261126, help="random seed (default %(default)s)")
    p.add_argument("--patients", type=int, default=4, help="number of patients (default %(default)s)")
    p.add_argument("--events", type=int, default=20_000, help="events per cytometry tube (default %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.set_defaults(func=_cmd_demo)

    visits = ["D0", "D10", "M1"]
    p = sub.add_parser("validate", help="check a batch folder and list every problem")
    p.add_argument("batch", help="batch folder holding samplesheet.csv")
    p.add_argument("--panels", default=None, help="panels folder (default: the project's panels/)")
    p.add_argument("--visits", nargs="+", default=visits, help="allowed visits (default: D0 D10 M1)")
    p.add_argument("--write", default=None, help="write the validated sheet to this CSV")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("run", help="run the workflow on batch folders (default: the demo batch)",
                       epilog="Arguments after -- go to Snakemake unchanged, e.g. immuno run B -- --forceall")
    p.add_argument("batches", nargs="*", help="batch folders; none runs the default configuration (demo)")
    p.add_argument("--results", default="results", help="results folder (default %(default)s)")
    p.add_argument("--cores", type=int, default=None, help="cores to use (default: all)")
    p.add_argument("--panels", default=None, help="panels folder (default: the project's panels/)")
    p.add_argument("--profile", default=None, help="Snakemake profile: local or slurm")
    p.add_argument("-n", "--dry-run", action="store_true", help="plan only")
    p.set_defaults(func=_cmd_run, snakemake_args=[])

    p = sub.add_parser("collect", help="(workflow step) merge assay tables of one batch")
    p.add_argument("batch", help="batch folder")
    p.add_argument("batch_dir", help="results/<batch_id> folder")
    p.add_argument("--panels", default=None)
    p.add_argument("--visits", nargs="+", default=visits)
    p.add_argument("--parameters", default=None, help="workflow parameters to record (JSON)")
    p.set_defaults(func=_cmd_collect)

    p = sub.add_parser("report", help="write the self-contained HTML QC report of a batch's results")
    p.add_argument("batch_dir", help="results/<batch_id> folder")
    p.add_argument("--out", default=None, help="output file (default: BATCH_DIR/report.html)")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("study", help="rebuild results/study/ (tables, dashboard.html); `study stats`: D0 change",
                       description="immuno study [RESULTS]: rebuild results/study/ (tables and dashboard.html) "
                                   "from every batch. immuno study stats [RESULTS]: paired change from the "
                                   "baseline visit per feature (Wilcoxon, Hodges-Lehmann CI, BH).")
    p.add_argument("words", nargs="*", metavar="[stats] [RESULTS]",
                   help="optional 'stats', then the results folder (default results)")
    p.add_argument("--feature", nargs="+", default=None, help="stats: features (default: every headline feature)")
    p.add_argument("--assay", default=None, help="stats: one assay")
    p.add_argument("--panel", nargs="+", default=None, help="stats: panels")
    p.add_argument("--baseline", default="D0", help="stats: baseline visit (default %(default)s)")
    p.add_argument("--censored", choices=("substitute", "exclude"), default="substitute",
                   help="stats: censored values at LLOQ/2 and ULOQ, or pairs with one left out")
    p.add_argument("--out", default=None, help="stats: write the table to this CSV instead of printing it")
    p.set_defaults(func=_cmd_study)

    for name in ASSAY_COMMANDS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``immuno`` command; returns the exit status."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # everything after "--" belongs to Snakemake (immuno run only), so options may follow batches
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    args = parser.parse_args(argv)
    if extra:
        if args.command != "run":
            parser.error("arguments after -- are only for `immuno run`")
        args.snakemake_args = extra
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(exc.report(), file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
