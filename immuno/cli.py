"""immuno: validated results of the LYSYME immunology lab from raw instrument files.

    immuno demo OUT              write the synthetic demo batch (with truth.csv)
    immuno validate BATCH        check a batch; every problem listed, exit status 2
    immuno run [BATCH ...]       run the workflow (default: the demo batch)
    immuno verify RESULTS        re-hash results (and inputs) against their provenance
    immuno report RESULTS/BATCH  the batch's HTML QC report
    immuno study [RESULTS]       rebuild the study tables and dashboard from every batch
    immuno study stats [RESULTS] paired change from D0 per feature (Wilcoxon, HL CI, BH)
    immuno cytometry|chemokines|chimerism ...   one assay's steps, usable without a batch

Problems a user can cause end with a list of what is wrong, what to do next, and exit
status 2, never a traceback. A run that cannot go on for a reason outside the inputs
(results folder in use, disk full, read-only or forbidden folder, an input changed during
the run) ends with one line saying so, and exit status 1.

Every subcommand imports what it runs in its own function ("kept off start-up"): each
``immuno`` call builds the whole parser, and every workflow step is one, so none of them
pays for numpy, pandas or the assay rooms unless it uses them.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from immuno.errors import EXIT_RUN_ERROR, EXIT_USER_ERROR, RunError, UserError, describe_os_error

#: modules that add one assay's subcommands (each has ``register(subparsers)``)
ASSAY_COMMANDS = (
    "immuno.commands.cytometry",
    "immuno.commands.chemokines",
    "immuno.commands.chimerism",
)


def _cmd_demo(args: argparse.Namespace) -> int:
    from immuno.demo import make_demo_batch  # numpy, pandas: kept off start-up

    out = make_demo_batch(
        args.out,
        seed=args.seed,
        patients=args.patients,
        events=args.events,
        overwrite=args.overwrite,
    )
    print(f"demo batch written to {out} (samplesheet.csv, truth.csv)")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from immuno.contract.batch import write_sheet  # pandas: kept off start-up
    from immuno.contract.validate import validate_batch  # pandas, jsonschema: kept off start-up

    batch = validate_batch(
        args.batch,
        visits=args.visits,
        panels_dir=args.panels,
        patient_id_pattern=args.patient_id_pattern,
    )
    counts = batch.sheet["assay"].value_counts().sort_index()
    summary = ", ".join(f"{n} {a}" for a, n in counts.items())
    print(f"batch {batch.batch_id}: {len(batch.sheet)} rows ({summary}); no problems found")
    if args.write:
        write_sheet(batch.sheet.drop(columns="row").to_dict("records"), args.write)
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from immuno.run.workflow import run_workflow  # pandas, yaml: kept off start-up

    return run_workflow(
        args.batches,
        results=args.results,
        cores=args.cores,
        panels=args.panels,
        profile=args.profile,
        dry_run=args.dry_run,
        extra=args.rest,
        configfile=args.configfile,
    )


def _cmd_verify(args: argparse.Namespace) -> int:
    from immuno.run.verify import verify_results  # pandas: kept off start-up

    checked, differences = verify_results(args.results, args.inputs)
    for difference in differences:
        print(difference)
    if differences:
        print(
            f"{len(differences)} difference(s) from provenance in {args.results}", file=sys.stderr
        )
        return EXIT_RUN_ERROR
    print(f"{checked} files match their provenance in {args.results}")
    return 0


def _cmd_step(args: argparse.Namespace) -> int:
    from immuno.run.steps import run_step  # pandas: kept off start-up

    if not args.rest:
        raise RunError("immuno step: give the step's immuno command after --")
    return run_step(
        args.rest,
        main,
        expect=args.expect,
        gather_from=args.gather,
        into=args.into,
        patient_id_pattern=args.patient_id_pattern,
        folders=args.folder,
        outputs=args.outputs,
    )


def _cmd_collect(args: argparse.Namespace) -> int:
    from immuno.run.collect import collect_step  # pandas: kept off start-up

    m = collect_step(
        args.batch,
        args.batch_dir,
        panels_dir=args.panels,
        visits=args.visits,
        parameters=args.parameters,
        expect=args.expect,
    )
    print(f"{len(m)} measurement rows written to {args.batch_dir}/measurements.parquet")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from immuno.report import build_report  # matplotlib, jinja2: kept off start-up

    print(f"report written to {build_report(args.batch_dir, args.out)}")
    return 0


def _cmd_study(args: argparse.Namespace) -> int:
    from immuno.study import Study  # pandas, scipy: kept off start-up

    words = list(args.words)
    stats = bool(words) and words[0] == "stats"
    if stats:
        words = words[1:]
    if len(words) > 1:
        raise UserError.single(
            "immuno study",
            f"expected at most one results folder, got {' '.join(words)}",
            hint="Usage: immuno study [RESULTS] | immuno study stats [RESULTS] [--feature F ...]",
        )
    study = Study(words[0] if words else "results")
    if not stats:
        folder = study.rebuild()
        print(f"study tables and dashboard of {len(study.batches)} batch(es) written to {folder}")
        dup = study.duplicates()
        if len(dup):
            print(
                f"warning: {len(dup)} measurement(s) held by more than one batch; the statistics refuse "
                f"them (see {folder / 'duplicates.parquet'})",
                file=sys.stderr,
            )
        return 0
    table = study.compare_visits(
        feature=args.feature,
        assay=args.assay,
        panel=args.panel,
        baseline=args.baseline,
        censored=args.censored,
    )
    if args.out:
        from immuno.io import write_text  # pandas: kept off start-up

        write_text(table.to_csv(index=False, lineterminator="\n"), args.out)
        print(f"{len(table)} rows written to {args.out}")
    else:
        import pandas as pd  # kept off start-up

        with pd.option_context(
            "display.width", 200, "display.max_columns", 30, "display.max_rows", 500
        ):
            print(
                table.drop(columns=["note"]).to_string(
                    index=False, float_format=lambda v: f"{v:.4g}"
                )
            )
    return 0


def _patient_pattern(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--patient-id-pattern",
        default=None,
        metavar="REGEX",
        help="pattern of patient codes (default: letters then digits, e.g. P01, LYS-014)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``immuno`` command."""
    parser = argparse.ArgumentParser(prog="immuno", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="write the synthetic demo batch with its truth.csv")
    p.add_argument("out", help="batch folder to create")
    p.add_argument("--seed", type=int, default=20261126, help="random seed (default %(default)s)")
    p.add_argument(
        "--patients", type=int, default=4, help="number of patients (default %(default)s)"
    )
    p.add_argument(
        "--events", type=int, default=20_000, help="events per cytometry tube (default %(default)s)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.set_defaults(func=_cmd_demo)

    visits = ["D0", "D10", "M1"]
    p = sub.add_parser("validate", help="check a batch folder and list every problem")
    p.add_argument("batch", help="batch folder holding samplesheet.csv")
    p.add_argument("--panels", default=None, help="panels folder (default: the project's panels/)")
    p.add_argument(
        "--visits", nargs="+", default=visits, help="allowed visits (default: D0 D10 M1)"
    )
    p.add_argument("--write", default=None, help="write the validated sheet to this CSV")
    _patient_pattern(p)
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser(
        "run",
        help="run the workflow on batch folders (default: the demo batch)",
        epilog="Arguments after -- go to Snakemake unchanged, e.g. immuno run B -- --forceall",
    )
    p.add_argument(
        "batches", nargs="*", help="batch folders; none runs the default configuration (demo)"
    )
    p.add_argument("--results", default="results", help="results folder (default %(default)s)")
    p.add_argument("--cores", type=int, default=None, help="cores to use (default: all)")
    p.add_argument("--panels", default=None, help="panels folder (default: the project's panels/)")
    p.add_argument("--profile", default=None, help="Snakemake profile: local or slurm")
    p.add_argument("-n", "--dry-run", action="store_true", help="plan only")
    p.add_argument(
        "--configfile",
        default=None,
        help="a lab's configuration (keys of config/config.yaml: visits, patient_id_pattern ...)",
    )
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser(
        "verify",
        help="re-hash a results folder (and its inputs) against provenance.json",
        description="Re-hash every output file of each batch under RESULTS (or of the "
        "batch folder RESULTS) and, with --inputs, the batch's input files; list every "
        "difference from provenance.json; exit status 1 when there is one.",
    )
    p.add_argument("results", help="results folder, or one batch's results folder")
    p.add_argument(
        "--inputs",
        nargs="+",
        default=[],
        metavar="BATCH",
        help="batch folders whose input files to check too (matched by folder name)",
    )
    p.set_defaults(func=_cmd_verify)

    p = sub.add_parser(
        "step",
        help="(workflow step) run an immuno command on inputs checked against the run's hashes",
        epilog="immuno step [--expect SHA256=PATH ...] -- COMMAND ...",
    )
    p.add_argument(
        "--expect",
        nargs="*",
        default=[],
        metavar="SHA256=PATH",
        help="a file the step reads and its SHA-256 when the run started",
    )
    p.add_argument(
        "--gather", nargs="*", default=[], metavar="DIR", help="per-job folders to link into --into"
    )
    p.add_argument("--into", default=None, help="folder receiving the gathered files")
    p.add_argument("--folder", nargs="*", default=[], help="folders to leave behind even if empty")
    p.add_argument(
        "--outputs",
        nargs="*",
        default=[],
        help="the rule's outputs, marked as being written while the step runs",
    )
    _patient_pattern(p)
    p.set_defaults(func=_cmd_step)

    p = sub.add_parser("collect", help="(workflow step) merge assay tables of one batch")
    p.add_argument("batch", help="batch folder")
    p.add_argument("batch_dir", help="results/<batch_id> folder")
    p.add_argument("--panels", default=None)
    p.add_argument("--visits", nargs="+", default=visits)
    p.add_argument("--parameters", default=None, help="workflow parameters to record (JSON)")
    p.add_argument(
        "--expect",
        nargs="*",
        default=[],
        metavar="SHA256=PATH",
        help="input files and their SHA-256 when the run started (recorded in provenance)",
    )
    p.set_defaults(func=_cmd_collect)

    p = sub.add_parser(
        "report", help="write the self-contained HTML QC report of a batch's results"
    )
    p.add_argument("batch_dir", help="results/<batch_id> folder")
    p.add_argument("--out", default=None, help="output file (default: BATCH_DIR/report.html)")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser(
        "study",
        help="rebuild results/study/ (tables, dashboard.html); `study stats`: D0 change",
        description="immuno study [RESULTS]: rebuild results/study/ (tables and dashboard.html) "
        "from every batch. immuno study stats [RESULTS]: paired change from the "
        "baseline visit per feature (Wilcoxon, Hodges-Lehmann CI, BH).",
    )
    p.add_argument(
        "words",
        nargs="*",
        metavar="[stats] [RESULTS]",
        help="optional 'stats', then the results folder (default results)",
    )
    p.add_argument(
        "--feature",
        nargs="+",
        default=None,
        help="stats: features (default: every headline feature)",
    )
    p.add_argument("--assay", default=None, help="stats: one assay")
    p.add_argument("--panel", nargs="+", default=None, help="stats: panels")
    p.add_argument("--baseline", default="D0", help="stats: baseline visit (default %(default)s)")
    p.add_argument(
        "--censored",
        choices=("substitute", "exclude"),
        default="substitute",
        help="stats: censored values at LLOQ/2 and ULOQ, or pairs with one left out",
    )
    p.add_argument(
        "--out", default=None, help="stats: write the table to this CSV instead of printing it"
    )
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
    # everything after "--" belongs to Snakemake (immuno run) or is the step's command
    # (immuno step), so options may follow batches
    rest: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, rest = argv[:cut], argv[cut + 1 :]
    args = parser.parse_args(argv)
    if rest and args.command not in ("run", "step"):
        parser.error("arguments after -- are only for `immuno run` and `immuno step`")
    args.rest = rest
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        # the reader of our output went away (e.g. `immuno ... | head`): not an error of
        # ours; point stdout at devnull so the interpreter's final flush stays quiet
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except UserError as exc:
        print(exc.report(), file=sys.stderr)
        return EXIT_USER_ERROR
    except RunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_RUN_ERROR
    except OSError as exc:
        message = describe_os_error(exc)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return EXIT_RUN_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
