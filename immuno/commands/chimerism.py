"""``immuno chimerism ...``: the chimerism steps.

    immuno chimerism estimate --recipient R --donor D [--donor D2 ...] --sample S --out OUT
        one biopsy from its exports (STR, NGS, digital PCR by content; --method qpcr|fish
        with their options); prints the one-line reading, then each locus or marker set
    immuno chimerism process BATCH --out DIR [--panels DIR]    every biopsy of a batch

Exit status of ``estimate``: 0 with an estimate (detected or not), 3 when the donor
fraction could not be estimated (the reason is printed and in the JSON), 2 for a user
error (a missing file, column or option). Handlers only parse arguments, call the
library and print; a UserError reaches the ``immuno`` command, which prints it and exits
with status 2.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

VISITS = ["D0", "D10", "M1"]
#: exit status of ``estimate`` when the donor fraction could not be estimated
EXIT_NOT_ESTIMABLE = 3


def json_safe(value: Any) -> Any:
    """``value`` with every NaN or infinite float as None (JSON has no NaN), recursively."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()  # numpy scalars
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def result_json(result: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    """The machine-readable form of a result (percentages; NaN as null)."""
    rows = result.measurement_rows()
    out: dict[str, Any] = {
        "method": result.method,
        "summary": result.summary(),
        "flag": result.flag,
        "estimable": not result.failed,
        "p_value": result.p_value,
        "informative": result.n_informative,
        "interval_method": result.interval_method,
        "flags": [vars(f) for f in result.all_flags()],
        "details": result.details,
        "inputs": inputs,
    }
    if result.components:
        out["donors"] = [
            {
                "donor_id": c.donor_id,
                "donor_fraction_pct": 100 * c.fraction,
                "lower_pct": 100 * c.lower,
                "upper_pct": 100 * c.upper,
                "lod_pct": 100 * c.lod,
                "flag": c.flag,
                "p_value": c.p_value,
                "details": c.details,
            }
            for c in result.components
        ]
    else:
        out.update(
            {
                "donor_fraction_pct": rows[0]["value"],
                "lower_pct": rows[0]["lower"],
                "upper_pct": rows[0]["upper"],
                "lod_pct": rows[1]["value"],
            }
        )
    out["measurements"] = rows
    return json_safe(out)


def locus_lines(result: Any) -> list[str]:
    """The per-locus (STR) or per-marker-group (NGS) lines printed under the reading."""
    m = result.markers
    if not len(m) or "status" not in m:
        return []
    if result.method == "str":
        lines = []
        for _, r in m.iterrows():
            value = ""
            if r["status"] == "used" and r.get("censored", False):
                value = f"[{100 * r['lower_bound']:.2f}, {100 * r['upper_bound']:.2f}] %"
            elif r["status"] == "used" and math.isfinite(r["donor_fraction"]):
                value = f"{100 * r['donor_fraction']:.2f} %"
            status = str(r["status"]).replace("_", " ")
            lines.append(f"  {r['marker']:<10} {status:<15} {value:<18} {r['reason']}")
        return lines
    counts = m.groupby(["status", "reason"]).size().reset_index(name="n")
    return [
        f"  {r['n']:>4} markers {str(r['status']).replace('_', ' ')}: {r['reason']}"
        for _, r in counts.iterrows()
    ]


def _cmd_estimate(args: argparse.Namespace) -> int:
    import pandas as pd  # kept off start-up

    from immuno.chimerism.pipeline.single import (  # scipy: kept off start-up
        Exports,
        estimate_exports,
    )
    from immuno.io import write_json, write_text  # pandas: kept off start-up

    donors = list(args.donor or [])
    files = Exports(
        sample=Path(args.sample),
        recipient=Path(args.recipient) if args.recipient else None,
        donor=Path(donors[0]) if donors else None,
        donors=[Path(d) for d in donors[1:]],
        donor_ids=list(args.donor_id or []),
        donor_names=list(args.donor_name or []),
        names={role: getattr(args, f"{role}_name") for role in ("recipient", "sample")},
    )
    options = {k: getattr(args, k) for k in _METHOD_OPTIONS}
    panel = None
    if args.panel:
        # pandas, jsonschema: kept off start-up
        from immuno.contract.panels import find_panel, load_panel

        panel = (
            load_panel(args.panel)
            if Path(args.panel).is_file()
            else find_panel(args.panel, args.panels)
        )
    result = estimate_exports(files, args.method, options, panel=panel)
    out = Path(args.out)
    inputs = {"recipient": args.recipient, "donor": donors, "sample": str(args.sample)}
    write_json(result_json(result, inputs), out / "chimerism_result.json")
    if len(result.markers):
        table = result.markers.copy()
        for col in table.columns:
            if table[col].dtype == object:
                table[col] = table[col].map(lambda v: "/".join(v) if isinstance(v, tuple) else v)
        write_text(
            pd.DataFrame(table).to_csv(sep="\t", index=False, lineterminator="\n"),
            out / ("loci.tsv" if result.method == "str" else "markers.tsv"),
        )
    print(result.summary())
    for line in locus_lines(result):
        print(line)
    return EXIT_NOT_ESTIMABLE if result.failed else 0


#: method settings of ``estimate`` (their option names with dashes)
_METHOD_OPTIONS = (
    "dna_input_ng",
    "target_assay",
    "reference_assay",
    "target_copies",
    "reference_copies",
    "marker_target",
    "reference_target",
    "efficiency",
    "lod",
    "background",
    "analytical_threshold",
    "without_references",
    "ngs_model",
)


def _cmd_process(args: argparse.Namespace) -> int:
    from immuno.chimerism.pipeline.outputs import (
        process_batch,  # scipy, matplotlib: kept off start-up
    )
    from immuno.contract.validate import validate_batch  # pandas, jsonschema: kept off start-up

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
    p = subparsers.add_parser(
        "chimerism", help="donor fraction of skin biopsies (STR, NGS, ddPCR, qPCR, FISH)"
    )
    sub = p.add_subparsers(dest="chimerism_command", required=True, metavar="STEP")

    e = sub.add_parser(
        "estimate",
        help="one biopsy from its exports and its references, no batch needed",
        epilog="Exit status: 0 with an estimate (detected or not); 3 when the donor fraction could not "
        "be estimated (the reason is printed and in chimerism_result.json); 2 for a user error.",
    )
    e.add_argument("--sample", required=True, help="the biopsy's export")
    e.add_argument(
        "--recipient",
        default=None,
        help="recipient reference export (str, ngs; ddpcr: recipient-only wells as the limit of blank)",
    )
    e.add_argument(
        "--donor",
        action="append",
        default=None,
        help="MSC donor reference export (str, ngs; qpcr: the 100 %% calibrator); repeat it for several "
        "donors (a double graft): one fraction per donor",
    )
    e.add_argument(
        "--donor-id",
        action="append",
        default=None,
        help="the donor's code, once per --donor (default D1, D2 ... with several donors)",
    )
    e.add_argument(
        "--method",
        choices=["str", "ngs", "ddpcr", "qpcr", "fish"],
        default=None,
        help="str (GeneMapper peaks), ngs (marker counts / VCF), ddpcr (digital PCR export), qpcr (Ct "
        "table) or fish (nucleus counts); default: recognised from the biopsy file (str, ngs, ddpcr)",
    )
    for role in ("recipient", "sample"):
        e.add_argument(
            f"--{role}-name",
            default=None,
            help=f"the {role}'s name inside a multi-sample export (Sample Name or VCF column)",
        )
    e.add_argument(
        "--donor-name",
        action="append",
        default=None,
        help="the donor's name inside a multi-sample export, once per --donor",
    )
    e.add_argument(
        "--panel",
        default=None,
        help="a chimerism panel (name or YAML file) whose thresholds and artefact filters apply (str)",
    )
    e.add_argument(
        "--panels",
        default=None,
        help="panels folder for --panel names (default: the project's panels/)",
    )
    e.add_argument(
        "--analytical-threshold",
        type=float,
        default=None,
        help="str: peaks below this height (RFU) are noise (default 50, or the panel's)",
    )
    e.add_argument(
        "--without-references",
        action="store_true",
        help="ngs: no recipient or donor export; the recipient is read from the sample (the major "
        "contributor) and the donor's alleles are unknown (a warning says so)",
    )
    e.add_argument(
        "--ngs-model",
        choices=["beta_binomial", "net"],
        default=None,
        help="ngs, one donor: beta_binomial (default) or net, the fit net of each marker's own "
        "background calibrated on mixtures of real reads (docs/chimerism.md)",
    )
    e.add_argument(
        "--dna-input-ng",
        type=float,
        default=None,
        help="DNA per reaction (ng; str, ngs): the LoD is then at least 3 donor genomes",
    )
    e.add_argument(
        "--target-assay", default=None, help="ddpcr: the donor-specific assay (e.g. SRY)"
    )
    e.add_argument(
        "--reference-assay", default=None, help="ddpcr: the reference assay (e.g. RPP30)"
    )
    e.add_argument(
        "--target-copies",
        type=float,
        default=None,
        help="ddpcr: donor-marker copies per donor genome (1)",
    )
    e.add_argument(
        "--reference-copies",
        type=float,
        default=None,
        help="ddpcr: reference copies per genome (2)",
    )
    e.add_argument(
        "--marker-target", default=None, help="qpcr: the donor-specific marker's target name"
    )
    e.add_argument(
        "--reference-target", default=None, help="qpcr: the reference gene's target name"
    )
    e.add_argument(
        "--efficiency", type=float, default=None, help="qpcr: amplification efficiency E (1.0)"
    )
    e.add_argument(
        "--lod",
        type=float,
        default=None,
        help="qpcr: the assay's validated LoD as a fraction (0.001)",
    )
    e.add_argument(
        "--background",
        type=float,
        default=None,
        help="fish: donor-pattern nuclei rate in recipient tissue",
    )
    e.add_argument(
        "--out",
        required=True,
        help="folder for chimerism_result.json and the per-locus/marker table",
    )
    e.set_defaults(func=_cmd_estimate)

    b = sub.add_parser("process", help="every biopsy of a batch folder (a workflow step)")
    b.add_argument("batch", help="batch folder holding samplesheet.csv")
    b.add_argument("--out", required=True, help="results/<batch>/chimerism folder")
    b.add_argument("--panels", default=None, help="panels folder (default: the project's panels/)")
    b.add_argument(
        "--visits", nargs="+", default=VISITS, help="allowed visits (default: D0 D10 M1)"
    )
    b.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    b.set_defaults(func=_cmd_process)
