"""``immuno chimerism ...``: the chimerism steps.

    immuno chimerism estimate --recipient R --donor D --sample S --out OUT   one biopsy from its exports
        (--method ddpcr|qpcr|fish with their assay options: digital PCR, qPCR, XY-FISH)
    immuno chimerism process BATCH --out DIR [--panels DIR]                  every biopsy of a batch

Handlers only parse arguments, call the library and print; a UserError reaches the
``immuno`` command, which prints it and exits with status 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

VISITS = ["D0", "D10", "M1"]


def _cmd_estimate(args: argparse.Namespace) -> int:
    import pandas as pd

    from immuno.chimerism.single import Exports, estimate_exports
    from immuno.io import write_json, write_text

    files = Exports(sample=Path(args.sample), recipient=Path(args.recipient) if args.recipient else None,
                    donor=Path(args.donor) if args.donor else None,
                    names={role: getattr(args, f"{role}_name") for role in ("recipient", "donor", "sample")})
    options = {k: getattr(args, k) for k in _METHOD_OPTIONS}
    result = estimate_exports(files, args.method, options)
    out = Path(args.out)
    rows = result.measurement_rows()
    write_json({"method": result.method, "summary": result.summary(), "donor_fraction_pct": rows[0]["value"],
                "lower_pct": rows[0]["lower"], "upper_pct": rows[0]["upper"], "flag": rows[0]["flag"],
                "lod_pct": rows[1]["value"], "p_value": result.p_value, "informative": result.n_informative,
                "flags": [vars(f) for f in result.flags], "details": result.details,
                "inputs": {"recipient": args.recipient, "donor": args.donor, "sample": str(args.sample)}},
               out / "chimerism_result.json")
    if len(result.markers):
        table = result.markers.copy()
        for col in table.columns:
            if table[col].dtype == object:
                table[col] = table[col].map(lambda v: "/".join(v) if isinstance(v, tuple) else v)
        write_text(pd.DataFrame(table).to_csv(sep="\t", index=False, lineterminator="\n"),
                   out / ("loci.tsv" if result.method == "str" else "markers.tsv"))
    print(result.summary())
    return 0


#: method settings of ``estimate`` (their option names with dashes)
_METHOD_OPTIONS = ("dna_input_ng", "target_assay", "reference_assay", "target_copies", "reference_copies",
                   "marker_target", "reference_target", "efficiency", "lod", "background")


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

    e = sub.add_parser("estimate", help="one biopsy from its exports and its references, no batch needed")
    e.add_argument("--sample", required=True, help="the biopsy's export")
    e.add_argument("--recipient", default=None,
                   help="recipient reference export (str, ngs; ddpcr: recipient-only wells as the limit of blank)")
    e.add_argument("--donor", default=None, help="MSC donor reference export (str, ngs; qpcr: the 100 %% calibrator)")
    e.add_argument("--method", choices=["str", "ngs", "ddpcr", "qpcr", "fish"], default=None,
                   help="str (GeneMapper peaks), ngs (marker counts / VCF), ddpcr (droplet counts), qpcr (Ct "
                        "table) or fish (nucleus counts); default: str or ngs from the biopsy file")
    for role in ("recipient", "donor", "sample"):
        e.add_argument(f"--{role}-name", default=None,
                       help=f"the {role}'s name inside a multi-sample export (Sample Name or VCF column)")
    e.add_argument("--dna-input-ng", type=float, default=None,
                   help="DNA per reaction (ng; str, ngs): the LoD is then at least 3 donor genomes")
    e.add_argument("--target-assay", default=None, help="ddpcr: the donor-specific assay (e.g. SRY)")
    e.add_argument("--reference-assay", default=None, help="ddpcr: the reference assay (e.g. RPP30)")
    e.add_argument("--target-copies", type=float, default=None, help="ddpcr: donor-marker copies per donor genome (1)")
    e.add_argument("--reference-copies", type=float, default=None, help="ddpcr: reference copies per genome (2)")
    e.add_argument("--marker-target", default=None, help="qpcr: the donor-specific marker's target name")
    e.add_argument("--reference-target", default=None, help="qpcr: the reference gene's target name")
    e.add_argument("--efficiency", type=float, default=None, help="qpcr: amplification efficiency E (1.0)")
    e.add_argument("--lod", type=float, default=None, help="qpcr: the assay's validated LoD as a fraction (0.001)")
    e.add_argument("--background", type=float, default=None, help="fish: donor-pattern nuclei rate in recipient tissue")
    e.add_argument("--out", required=True, help="folder for chimerism_result.json and the per-marker table")
    e.set_defaults(func=_cmd_estimate)

    b = sub.add_parser("process", help="every biopsy of a batch folder (a workflow step)")
    b.add_argument("batch", help="batch folder holding samplesheet.csv")
    b.add_argument("--out", required=True, help="results/<batch>/chimerism folder")
    b.add_argument("--panels", default=None, help="panels folder (default: the project's panels/)")
    b.add_argument("--visits", nargs="+", default=VISITS, help="allowed visits (default: D0 D10 M1)")
    b.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    b.set_defaults(func=_cmd_process)
