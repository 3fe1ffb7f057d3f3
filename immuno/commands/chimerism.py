"""``immuno chimerism ...``: the chimerism steps.

    immuno chimerism estimate --recipient R --donor D --sample S --out OUT   one biopsy from its exports
    immuno chimerism process BATCH --out DIR [--panels DIR]                  every biopsy of a batch

Handlers only parse arguments, call the library and print; a UserError reaches the
``immuno`` command, which prints it and exits with status 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

VISITS = ["D0", "D10", "M1"]


def _one_sample(path: Path, method: str, name: str | None) -> Any:
    """One sample's peaks or counts from an export (a multi-sample file needs its name)."""
    from immuno.chimerism.readers import read_genemapper, read_marker_counts
    from immuno.errors import UserError

    table = read_genemapper(path) if method == "str" else read_marker_counts(path)
    names = sorted(table["sample_name"].unique())
    if name is None:
        if len(names) == 1:
            return table
        raise UserError.single(str(path), f"holds {len(names)} samples ({', '.join(names[:8])}); "
                               "say which with the matching --*-name option")
    part = table[(table["sample_name"] == name) | (table.get("sample_file", table["sample_name"]) == name)]
    if part.empty:
        raise UserError.single(str(path), f"no sample named {name!r}; the file holds: {', '.join(names[:8])}")
    return part.reset_index(drop=True)


def _guess_method(path: Path) -> str:
    """``ngs`` for VCF and count tables, ``str`` for GeneMapper exports."""
    if path.suffix.lower() == ".vcf":
        return "ngs"
    try:
        head = path.read_text(encoding="utf-8-sig", errors="replace").lstrip()[:2000].lower()
    except OSError:
        return "str"  # the reader reports the unreadable file
    return "ngs" if "ref_hits" in head or head.startswith("##fileformat=vcf") else "str"


def _cmd_estimate(args: argparse.Namespace) -> int:
    import pandas as pd

    from immuno.chimerism import estimate_counts, estimate_str
    from immuno.io import write_json, write_text

    method = args.method or _guess_method(Path(args.sample))
    tables = {role: _one_sample(Path(getattr(args, role)), method, getattr(args, f"{role}_name"))
              for role in ("recipient", "donor", "sample")}
    if method == "str":
        result = estimate_str(tables["sample"], tables["recipient"], tables["donor"])
    else:
        result = estimate_counts(tables["sample"], tables["recipient"], tables["donor"])
    out = Path(args.out)
    rows = result.measurement_rows()
    write_json({"method": result.method, "summary": result.summary(), "donor_fraction_pct": rows[0]["value"],
                "lower_pct": rows[0]["lower"], "upper_pct": rows[0]["upper"], "flag": rows[0]["flag"],
                "lod_pct": rows[1]["value"], "p_value": result.p_value, "informative": result.n_informative,
                "flags": [vars(f) for f in result.flags], "details": result.details,
                "inputs": {"recipient": str(args.recipient), "donor": str(args.donor), "sample": str(args.sample)}},
               out / "chimerism_result.json")
    table = result.markers.copy()
    for col in table.columns:
        if table[col].dtype == object:
            table[col] = table[col].map(lambda v: "/".join(v) if isinstance(v, tuple) else v)
    write_text(pd.DataFrame(table).to_csv(sep="\t", index=False, lineterminator="\n"),
               out / ("loci.tsv" if method == "str" else "markers.tsv"))
    print(result.summary())
    return 0


def _cmd_process(args: argparse.Namespace) -> int:
    from immuno.chimerism.outputs import process_batch
    from immuno.validate import validate_batch

    batch = validate_batch(args.batch, visits=args.visits, panels_dir=args.panels)
    written = process_batch(batch, args.out, plots=not args.no_plots)
    summary = Path(written["summary"]).read_text(encoding="utf-8").splitlines()[1:]
    print(f"batch {batch.batch_id}: {len(summary)} biopsies; results in {args.out}")
    for line in summary:
        sample, _, text = line.split("\t", 2)
        print(f"  {sample:<20} {text}")
    return 0


def register(subparsers: Any) -> None:
    """Add ``immuno chimerism`` and its subcommands."""
    p = subparsers.add_parser("chimerism", help="donor fraction of skin biopsies (STR, NGS, ddPCR, qPCR, FISH)")
    sub = p.add_subparsers(dest="chimerism_command", required=True, metavar="STEP")

    e = sub.add_parser("estimate", help="one biopsy from its exports and its two references, no batch needed")
    e.add_argument("--recipient", required=True, help="recipient reference export (GeneMapper, count table or VCF)")
    e.add_argument("--donor", required=True, help="MSC donor reference export")
    e.add_argument("--sample", required=True, help="the biopsy's export")
    e.add_argument("--method", choices=["str", "ngs"], default=None,
                   help="str (GeneMapper peaks) or ngs (marker counts / VCF); default: from the biopsy file")
    for role in ("recipient", "donor", "sample"):
        e.add_argument(f"--{role}-name", default=None,
                       help=f"the {role}'s name inside a multi-sample export (Sample Name or VCF column)")
    e.add_argument("--out", required=True, help="folder for chimerism_result.json and the per-marker table")
    e.set_defaults(func=_cmd_estimate)

    b = sub.add_parser("process", help="every biopsy of a batch folder (a workflow step)")
    b.add_argument("batch", help="batch folder holding samplesheet.csv")
    b.add_argument("--out", required=True, help="results/<batch>/chimerism folder")
    b.add_argument("--panels", default=None, help="panels folder (default: the project's panels/)")
    b.add_argument("--visits", nargs="+", default=VISITS, help="allowed visits (default: D0 D10 M1)")
    b.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    b.set_defaults(func=_cmd_process)
