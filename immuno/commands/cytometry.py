"""``immuno cytometry ...``: the cytometry steps, one command each.

    immuno cytometry compensation BATCH --out FILE         spillover from single stains
    immuno cytometry process BATCH SAMPLE... --out DIR     tubes (each with its control tube)
    immuno cytometry controls BATCH --out DIR              ingest single stains, unstained tube
    immuno cytometry aggregate BATCH --out DIR             gather per-sample files
    immuno cytometry batch BATCH --out DIR                 all of the above in one go
    immuno cytometry ingest FCS --panel NAME --out H5AD    one file to per-event AnnData
    immuno cytometry warm                                  compile the kernels once per environment
    immuno cytometry inspect FCS... [--yaml]               channels, $PnS, data sets of files
    immuno cytometry apply-template TEMPLATE [FCS...]      a FlowJo/GatingML template's gates and counts
    immuno cytometry cluster H5AD... --out H5AD            pooled CD4+ events, Leiden, UMAP

Handlers only parse arguments, call the library and print; a UserError reaches the
``immuno`` command, which prints it and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from immuno.errors import UserError

VISITS = ["D0", "D10", "M1"]


def _batch(args: argparse.Namespace) -> Any:
    from immuno.contract.batch import load_batch  # pandas, jsonschema: kept off start-up

    return load_batch(args.batch, visits=args.visits, panels_dir=args.panels)


def _cmd_compensation(args: argparse.Namespace) -> int:
    # numpy, pandas: kept off start-up
    from immuno.cytometry.io.spillover import write_spillover_file

    # numpy, pandas: kept off start-up
    from immuno.cytometry.pipeline.tubes import batch_spillover, needs_single_stains

    batch = _batch(args)
    if not needs_single_stains(batch) and not args.force:
        # the workflow asks for the file only when a panel needs it; say so rather than guess
        print(
            f"no panel of batch {batch.batch_id} computes compensation from single stains; nothing written"
        )
        return 0
    spill = batch_spillover(batch)
    write_spillover_file(spill, args.out)
    print(f"spillover of {len(spill.channels)} channels from single stains written to {args.out}")
    return 0


def _cmd_process(args: argparse.Namespace) -> int:
    # numpy, pandas: kept off start-up
    from immuno.cytometry.io.spillover import read_spillover_file
    from immuno.cytometry.pipeline.batch import run_unit  # numba, anndata: kept off start-up
    from immuno.cytometry.pipeline.tubes import batch_samples  # numpy, pandas: kept off start-up

    batch = _batch(args)
    infos = batch_samples(batch, list(dict.fromkeys(args.samples)), units=True)
    spill = None
    failure: UserError | None = None
    single = sorted(
        {
            str(i.panel.path)
            for i in infos
            if (i.panel.get("compensation") or {}).get("source") == "single_stains"
        }
    )
    if single:
        if args.compensation is None:
            failure = UserError.single(
                ", ".join(single),
                "the panel computes compensation from single stains: pass --compensation FILE",
            )
        else:
            try:
                spill = read_spillover_file(args.compensation)
            except UserError as exc:
                failure = exc
    # one process for several units: the imports and compiled kernels are loaded once
    for info in infos:
        uses = (info.panel.get("compensation") or {}).get("source") == "single_stains"
        # a stimulated tube comes with its unstimulated control: both are written
        outcomes = run_unit(
            info,
            args.out,
            spill,
            failure=failure if uses else None,
            plots=not args.no_plots,
            gatingml=not args.no_gatingml,
            events=not args.no_events,
        )
        for outcome in outcomes:
            sid = outcome.info.sample_id
            if outcome.ok:
                print(
                    f"{sid}: {len(outcome.measurements)} measurement rows, {len(outcome.flags)} QC flag(s)",
                    flush=True,
                )
            else:
                # the sample's failure is a result (a fail flag), not an error of this command
                print(f"{sid}: FAILED - {outcome.flags[0]['reason']}", flush=True)
    return 0


def _cmd_controls(args: argparse.Namespace) -> int:
    # numpy, pandas: kept off start-up
    from immuno.cytometry.io.spillover import read_spillover_file

    # numba, anndata: kept off start-up
    from immuno.cytometry.pipeline.batch import write_compensation_tubes
    from immuno.io import write_json  # pandas: kept off start-up

    batch = _batch(args)
    spill = read_spillover_file(args.compensation) if args.compensation else None
    tubes = write_compensation_tubes(batch, args.out, spill)
    # the workflow's record that this step ran (the tubes' own files are under samples/)
    write_json(
        {"batch_id": batch.batch_id, "compensation_controls": [t.sample_id for t in tubes]},
        Path(args.out) / "compensation_controls.json",
    )
    print(f"{len(tubes)} compensation control tube(s) ingested into {args.out}")
    return 0


def _cmd_aggregate(args: argparse.Namespace) -> int:
    # numba, anndata: kept off start-up
    from immuno.cytometry.pipeline.outputs import aggregate_batch

    # pandas: kept off start-up
    from immuno.cytometry.pipeline.tubes import batch_samples, compensation_tubes, sample_table

    batch = _batch(args)
    m = aggregate_batch(args.out, sample_table(batch_samples(batch) + compensation_tubes(batch)))
    print(
        f"{len(m)} cytometry measurement rows written to {Path(args.out) / 'cytometry_measurements.parquet'}"
    )
    return 0


def _cmd_batch(args: argparse.Namespace) -> int:
    from immuno.cytometry.pipeline.batch import process_batch  # numba, anndata: kept off start-up

    batch = _batch(args)
    m = process_batch(
        batch,
        args.out,
        plots=not args.no_plots,
        gatingml=not args.no_gatingml,
        events=not args.no_events,
        progress=True,
    )
    print(f"{len(m)} cytometry measurement rows written to {args.out}")
    return 0


def _cmd_warm(args: argparse.Namespace) -> int:
    from immuno.cytometry.pipeline.warm import warm  # numpy: kept off start-up

    seconds = warm()
    print(f"cytometry kernels compiled and cached ({seconds:.1f} s)")
    return 0


def _no_traceback(where: str, exc: Exception) -> UserError:
    """An unexpected failure on a user's file, as one line (the file is named, no traceback)."""
    return UserError.single(
        where,
        f"could not be processed (unexpected {type(exc).__name__}: {exc})",
        hint="This is a bug in immuno, not in your file: please report it with the file.",
    )


def _cmd_ingest(args: argparse.Namespace) -> int:
    from immuno.contract.panels import find_panel  # pandas, jsonschema: kept off start-up

    # numpy, pandas: kept off start-up
    from immuno.cytometry.io.spillover import read_spillover_file

    # numba, scipy: kept off start-up
    from immuno.cytometry.pipeline.ingest import keep_layers, read_tube

    panel = find_panel(args.panel, args.panels)
    spill = read_spillover_file(args.compensation) if args.compensation else None
    try:
        # X and the QC flags, plus the copies the panel keeps (`keep_layers:`), compressed
        tube = read_tube(
            args.fcs,
            panel,
            spill=spill,
            sample_id=Path(args.fcs).stem,
            dataset=args.dataset,
            layers=keep_layers(panel),
        )
        tube.write(args.out)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - a user's file must never end in a traceback
        raise _no_traceback(args.fcs, exc) from None
    print(f"{tube.n_events} events x {len(tube.channels)} channels written to {args.out}")
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    # numpy: kept off start-up
    from immuno.cytometry.io.inspect_fcs import describe_fcs, format_description, starter_channels

    failed = 0
    for n, path in enumerate(args.fcs):
        try:
            descriptions = describe_fcs(path, dataset=args.dataset)
            if args.yaml and len(descriptions) > 1:
                raise UserError.single(
                    path,
                    f"holds {len(descriptions)} data sets; choose the one the panel "
                    "describes with --dataset N (see `immuno cytometry inspect` without --yaml)",
                )
            text = "\n\n".join(
                starter_channels(d.header) if args.yaml else format_description(d)
                for d in descriptions
            )
        except UserError as exc:
            failed += 1
            print("\n".join(str(p) for p in exc.problems), file=sys.stderr)
            continue
        except Exception as exc:  # noqa: BLE001 - one line per unreadable file, never a traceback
            failed += 1
            print(_no_traceback(path, exc).problems[0], file=sys.stderr)
            continue
        if args.yaml:
            print(
                f"# starter panel channels from {Path(path).name}: check every marker and transform"
            )
        print(("\n" if n else "") + text)
    return 2 if failed else 0


def _template_listing(template: Any, stored: list[Any]) -> str:
    lines = [f"{template.source}: {len(template.gates)} gate(s)"]
    for g in template.gates:
        dims = ", ".join(
            str(template.dimensions[d].channel or d) if d in template.dimensions else str(d)
            for d in getattr(g, "dims", ())
        )
        lines.append(
            f"  {g.gate_id}  (parent {getattr(g, 'parent_id', None) or 'root'}; "
            f"{type(g).__name__.replace('Gate', '').lower()} on {dims or '-'})"
        )
    for s in stored:
        counts = "; ".join(f"{'/'.join(k)} {v}" for k, v in s.counts.items())
        lines.append(
            f"  FlowJo's stored counts for {s.name} ({s.events} events): {counts or 'none'}"
        )
    if stored:
        lines.append(
            "  (the FCS files are needed to recompute these counts: "
            "immuno cytometry apply-template TEMPLATE FCS...)"
        )
    return "\n".join(lines)


def _cmd_apply_template(args: argparse.Namespace) -> int:
    from immuno.cytometry.io.fcs import read_fcs  # numpy: kept off start-up

    # the FlowJo reader: kept off start-up
    from immuno.cytometry.io.template_files import sniff_template, stored_counts

    # numba, flowkit: kept off start-up
    from immuno.cytometry.io.templates import read_template, template_counts
    from immuno.io import write_text  # pandas: kept off start-up

    template = read_template(args.template, sample_id=args.sample, group=args.group)
    stored = stored_counts(args.template) if sniff_template(args.template) == "flowjo" else []
    if not args.fcs:
        print(_template_listing(template, stored))
        return 0
    tables = []
    for path in args.fcs:
        try:
            fcs = read_fcs(path, dataset=args.dataset)
            mine = next((s.counts for s in stored if s.name == Path(path).name), None)
            table = template_counts(template, fcs, mine)
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001 - a user's file must never end in a traceback
            raise _no_traceback(path, exc) from None
        print(f"{path}: {fcs.n_events} events, template {template.source}")
        for _, r in table.iterrows():
            check = (
                ""
                if r["flowjo_count"] < 0
                else f"  FlowJo {r['flowjo_count']}: {'equal' if r['equal'] else 'DIFFERS'}"
            )
            print(
                f"  {r['gate']}: {r['count']} events ({r['pct_of_parent']:.2f} % of {r['parent']}){check}"
            )
        tables.append(table.assign(file=Path(path).name))
    if args.out:
        import pandas as pd  # kept off start-up

        write_text(pd.concat(tables).to_csv(index=False, lineterminator="\n"), args.out)
        print(f"counts written to {args.out}")
    return 0


def _cmd_cluster(args: argparse.Namespace) -> int:
    # anndata, scanpy: kept off start-up
    from immuno.cytometry.analysis.cluster import cluster_events, pool_events
    from immuno.io import write_h5ad, write_parquet  # pandas: kept off start-up

    samples = {Path(p).stem: p for p in args.events}
    pooled = pool_events(
        samples, population=args.population, n_per_sample=args.per_sample, seed=args.seed
    )
    result = cluster_events(
        pooled, markers=args.markers, resolution=args.resolution, seed=args.seed
    )
    write_h5ad(result.adata, args.out)
    stem = Path(args.out).with_suffix("")
    write_parquet(result.annotation.reset_index(), f"{stem}_clusters.parquet")
    write_parquet(result.crosstab.reset_index(), f"{stem}_cluster_gates.parquet")
    print(
        f"{result.adata.n_obs} events in {result.annotation.shape[0]} clusters written to {args.out}"
    )
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--panels", default=None, help="panels folder (default: the project's panels/)")
    p.add_argument(
        "--visits", nargs="+", default=VISITS, help="allowed visits (default: D0 D10 M1)"
    )


def _outputs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-plots", action="store_true", help="skip the gating figures")
    p.add_argument("--no-gatingml", action="store_true", help="skip the GatingML files")
    p.add_argument("--no-events", action="store_true", help="skip the per-event AnnData files")


def register(subparsers: Any) -> None:
    """Add ``immuno cytometry`` and its subcommands."""
    top = subparsers.add_parser(
        "cytometry", help="flow cytometry steps (compensation, gating, statistics)"
    )
    sub = top.add_subparsers(dest="cytometry_command", required=True, metavar="STEP")

    p = sub.add_parser(
        "compensation", help="spillover matrix from the batch's single-stain controls"
    )
    p.add_argument("batch", help="batch folder")
    p.add_argument("--out", required=True, help="CSV to write")
    p.add_argument("--force", action="store_true", help="compute even if no panel asks for it")
    _common(p)
    p.set_defaults(func=_cmd_compensation)

    p = sub.add_parser("process", help="gate tubes (each with its control) and write their files")
    p.add_argument("batch", help="batch folder")
    p.add_argument(
        "samples",
        nargs="+",
        metavar="sample",
        help="sample_id of a tube (several: processed one after the other in one process)",
    )
    p.add_argument("--out", required=True, help="the batch's cytometry results folder")
    p.add_argument(
        "--compensation", default=None, help="spillover CSV from `immuno cytometry compensation`"
    )
    _common(p)
    _outputs(p)
    p.set_defaults(func=_cmd_process)

    p = sub.add_parser(
        "controls", help="ingest the single stains and unstained tube (events, acquisition QC)"
    )
    p.add_argument("batch", help="batch folder")
    p.add_argument("--out", required=True, help="the batch's cytometry results folder")
    p.add_argument("--compensation", default=None, help="spillover CSV (for single-stain panels)")
    _common(p)
    p.set_defaults(func=_cmd_controls)

    p = sub.add_parser("aggregate", help="gather every tube's files into the batch tables")
    p.add_argument("batch", help="batch folder")
    p.add_argument("--out", required=True, help="the batch's cytometry results folder")
    _common(p)
    p.set_defaults(func=_cmd_aggregate)

    p = sub.add_parser("batch", help="process every tube of a batch in one go")
    p.add_argument("batch", help="batch folder")
    p.add_argument("--out", required=True, help="cytometry results folder to write")
    _common(p)
    _outputs(p)
    p.set_defaults(func=_cmd_batch)

    p = sub.add_parser(
        "warm", help="compile the cytometry kernels once (numba caches them for every later job)"
    )
    p.set_defaults(func=_cmd_warm)

    p = sub.add_parser(
        "ingest", help="one FCS file to per-event AnnData (compensated, transformed, QC flags)"
    )
    p.add_argument("fcs", help="FCS file")
    p.add_argument("--panel", required=True, help="panel name")
    p.add_argument("--out", required=True, help=".h5ad to write")
    p.add_argument("--compensation", default=None, help="spillover CSV (for single-stain panels)")
    p.add_argument("--panels", default=None, help="panels folder (default: the project's panels/)")
    p.add_argument(
        "--dataset",
        type=int,
        default=None,
        help="data set to read from a file that holds several (default: the panel's `dataset`)",
    )
    p.set_defaults(func=_cmd_ingest)

    p = sub.add_parser(
        "inspect",
        help="describe FCS files: data sets, channels ($PnN, $PnS, range, bits), "
        "compensation keywords",
    )
    p.add_argument("fcs", nargs="+", help="FCS files")
    p.add_argument(
        "--dataset", type=int, default=None, help="only this data set of a multi-data-set file"
    )
    p.add_argument(
        "--yaml", action="store_true", help="print a starter panel `channels:` block instead"
    )
    p.set_defaults(func=_cmd_inspect)

    p = sub.add_parser(
        "apply-template",
        help="apply a FlowJo 10 workspace or GatingML 2.0 template to FCS "
        "files: events per gate (and FlowJo's stored counts)",
    )
    p.add_argument("template", help="FlowJo 10 workspace (.wsp) or GatingML 2.0 file")
    p.add_argument(
        "fcs", nargs="*", help="FCS files (none: list the template's gates and stored counts)"
    )
    p.add_argument(
        "--sample", default=None, help="workspace sample whose gates to use (default: the first)"
    )
    p.add_argument("--group", default=None, help="FlowJo group whose gates to use")
    p.add_argument(
        "--dataset", type=int, default=None, help="data set of a multi-data-set FCS file"
    )
    p.add_argument("--out", default=None, help="also write the counts to this CSV")
    p.set_defaults(func=_cmd_apply_template)

    p = sub.add_parser(
        "cluster", help="pool a population of several samples; Leiden clusters and UMAP"
    )
    p.add_argument(
        "events", nargs="+", help="per-event .h5ad files (results/<batch>/cytometry/events/)"
    )
    p.add_argument("--out", required=True, help=".h5ad to write (tables beside it)")
    p.add_argument(
        "--population", default="CD4", help="gate or population to pool (default %(default)s)"
    )
    p.add_argument(
        "--per-sample", type=int, default=2000, help="events per sample (default %(default)s)"
    )
    p.add_argument(
        "--markers", nargs="+", default=None, help="markers to cluster on (default: all shared)"
    )
    p.add_argument(
        "--resolution", type=float, default=0.5, help="Leiden resolution (default %(default)s)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default %(default)s)")
    p.set_defaults(func=_cmd_cluster)
