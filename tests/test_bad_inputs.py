"""A corpus of broken inputs, as a hostile but realistic user would bring them.

Each variant breaks one thing of a small batch (sample sheet, FCS file, plate export or
genotyping export). For each, exactly one of two outcomes is accepted:

- validation refuses the batch: a problem names the file (and, in the sheet, its row and
  column), exit status 2, no traceback; or
- validation lets it through, the room's processing does not raise, the broken samples
  are failed with a reason, and every other sample's numbers are exactly those of the
  unbroken batch (no number changes silently).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from immuno.cli import main
from immuno.contract.batch import load_batch
from immuno.contract.validate import validate_batch
from immuno.errors import UserError

SHEET = "samplesheet.csv"
PLATE = "chemokine/CHEMO_PLATE_01.csv"
SURF = "cytometry/P01-D0-SURF.fcs"
STR = "chimerism/P01_STR_GeneMapper.txt"
NGS = "chimerism/P01-M1-BX-NGS.tsv"
ROOM_DIRS = {"cytometry": "cytometry", "chemokine": "chemokines", "chimerism": "chimerism"}


# --- ways of breaking a batch -----------------------------------------------------------

def sheet_edit(fn: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        df = pd.read_csv(folder / SHEET, dtype=str, keep_default_na=False)
        fn(df).to_csv(folder / SHEET, index=False)
    return apply


def cell(sample: str, column: str, value: str) -> Callable[[Path], None]:
    """Set one cell of the sheet."""
    def fn(df: pd.DataFrame) -> pd.DataFrame:
        df.loc[df["sample_id"] == sample, column] = value
        return df
    return sheet_edit(fn)


def raw_sheet(fn: Callable[[str], str]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        (folder / SHEET).write_text(fn((folder / SHEET).read_text()))
    return apply


def text_edit(rel: str, fn: Callable[[str], str]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        path = folder / rel
        path.write_text(fn(path.read_text(encoding="utf-8", errors="surrogateescape")),
                        encoding="utf-8", errors="surrogateescape")
    return apply


def bytes_edit(rel: str, fn: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        path = folder / rel
        path.write_bytes(fn(path.read_bytes()))
    return apply


def same_length(old: bytes, new: bytes) -> Callable[[bytes], bytes]:
    """Replace a keyword value in an FCS TEXT segment without moving any offset."""
    assert len(old) == len(new)

    def fn(data: bytes) -> bytes:
        assert old in data, old
        return data.replace(old, new, 1)
    return fn


def replace_once(pattern: str, new: str) -> Callable[[str], str]:
    def fn(text: str) -> str:
        out, n = re.subn(pattern, new, text, count=1, flags=re.M)
        assert n == 1, pattern
        return out
    return fn


def drop_rows(pattern: str) -> Callable[[str], str]:
    def fn(text: str) -> str:
        kept = [ln for ln in text.splitlines(keepends=True) if not re.search(pattern, ln)]
        assert len(kept) < len(text.splitlines()), pattern
        return "".join(kept)
    return fn


def both_blocks(fn: Callable[[str], str]) -> Callable[[str], str]:
    """Apply ``fn`` in the Median and the Net MFI blocks (the reader derives one from the other)."""
    return lambda text: in_block("Net MFI", fn)(in_block("Median", fn)(text))


@dataclass(frozen=True)
class Variant:
    """One broken input: what it breaks, how, and where the message must point."""

    name: str
    assay: str                      # the room whose samples it may fail
    breaks: Callable[[Path], None]
    where: str                      # the file named by the refusal (relative), or by the flag
    samples: tuple[str, ...] = ()   # samples that may fail (processing outcome)


def sheet_row(column: str) -> str:
    return rf"{SHEET}: row \d+, column {column}"


def file_of_row(rel: str) -> str:
    """How a room names a data file it refuses: the sheet row, then the file."""
    return rf"{SHEET}: row \d+, file {re.escape(rel)}"


def in_block(block: str, fn: Callable[[str], str]) -> Callable[[str], str]:
    """Apply ``fn`` to the text of an xPONENT export from its ``DataType:,<block>`` line on."""
    def apply(text: str) -> str:
        i = text.index(f'"DataType:","{block}"')
        return text[:i] + fn(text[i:])
    return apply


VARIANTS = [
    # the sample sheet
    Variant("sheet: missing required column", "sheet",
            sheet_edit(lambda df: df.drop(columns="visit")), rf"{SHEET}: header"),
    Variant("sheet: misspelt column", "sheet", sheet_edit(lambda df: df.rename(columns={"panel": "pannel"})),
            rf"{SHEET}: header"),
    Variant("sheet: duplicated sample_id", "sheet", cell("P02-D0-SURF", "sample_id", "P01-D0-SURF"),
            sheet_row("sample_id")),
    Variant("sheet: sample_id with a space", "sheet", cell("P01-D0-SURF", "sample_id", "P01 D0 SURF"),
            sheet_row("sample_id")),
    Variant("sheet: unknown visit", "sheet", cell("P01-D0-SURF", "visit", "D7"), sheet_row("visit")),
    Variant("sheet: lower-case visit", "sheet", cell("P01-D0-SURF", "visit", "d0"), sheet_row("visit")),
    Variant("sheet: empty patient_id", "sheet", cell("P01-D0-PLASMA", "patient_id", ""), sheet_row("patient_id")),
    Variant("sheet: surname as patient_id", "sheet", cell("P01-D0-PLASMA", "patient_id", "DUPONT"),
            sheet_row("patient_id")),
    Variant("sheet: first name and surname", "sheet", cell("P01-D0-PLASMA", "patient_id", "Jean.DUPONT"),
            sheet_row("patient_id")),
    Variant("sheet: misspelt assay", "sheet", cell("P01-D0-SURF", "assay", "cytometri"), sheet_row("assay")),
    Variant("sheet: data file missing", "sheet", cell("P01-D0-SURF", "file", "cytometry/P01-D0-SURF-v2.fcs"),
            sheet_row("file")),
    Variant("sheet: absolute path", "sheet", cell("P01-D0-SURF", "file", "/etc/passwd"), sheet_row("file")),
    Variant("sheet: path leaving the batch", "sheet", cell("P01-D0-SURF", "file", "../other/P01-D0-SURF.fcs"),
            sheet_row("file")),
    Variant("sheet: unknown panel", "sheet", cell("P01-D0-SURF", "panel", "cytometry_surface_dmo"), sheet_row("panel")),
    Variant("sheet: panel of another assay", "sheet", cell("P01-D0-SURF", "panel", "chemokine_demo"),
            sheet_row("panel")),
    Variant("sheet: unknown tube type", "sheet", cell("P01-D0-SURF", "tube", "stim"), sheet_row("tube")),
    Variant("sheet: control_of an unknown sample", "sheet", cell("P01-D0-SURF", "control_of", "P01-D0-XX"),
            sheet_row("control_of")),
    Variant("sheet: unknown chimerism role", "sheet", cell("P01-M1-BX-NGS", "role", "biopsie"), sheet_row("role")),
    Variant("sheet: biopsy without donor", "sheet", cell("P01-M1-BX-NGS", "donor_id", ""), sheet_row("donor_id")),
    Variant("sheet: DNA input not a number", "sheet", cell("P01-M1-BX-NGS", "dna_input_ng", "ten"),
            sheet_row("dna_input_ng")),
    Variant("sheet: a row with more fields than the header", "sheet",
            raw_sheet(lambda t: re.sub(r"^(P01-D0-SURF,.*)$", r"\1,extra", t, flags=re.M)),
            rf"{SHEET}: row \d+"),
    Variant("sheet: empty file", "sheet", raw_sheet(lambda t: ""), SHEET),
    Variant("sheet: not UTF-8", "sheet", bytes_edit(SHEET, lambda b: b.replace(b"P01-D0-PLASMA", b"P01-D0-PLASM\xe9", 1)),
            rf"{SHEET}: line \d+"),
    Variant("sheet: a plate sample named twice", "sheet", cell("P02-D0-PLASMA", "sample_name", "P01-D0-PLASMA"),
            rf"{SHEET}: row \d+"),
    # FCS files
    Variant("fcs: empty file", "cytometry", bytes_edit(SURF, lambda b: b""), file_of_row(SURF)),
    Variant("fcs: not an FCS file", "cytometry", bytes_edit(SURF, lambda b: b"Sample,CD4\n1,2\n" * 20),
            file_of_row(SURF)),
    Variant("fcs: truncated copy", "cytometry", bytes_edit(SURF, lambda b: b[: len(b) * 6 // 10]),
            file_of_row(SURF)),
    Variant("fcs: channel renamed", "cytometry", bytes_edit(SURF, same_length(b"/BV421-A/", b"/BV421-X/")),
            file_of_row(SURF)),
    Variant("fcs: event count larger than the data", "cytometry",
            bytes_edit(SURF, same_length(b"/$TOT/4000/", b"/$TOT/9000/")), file_of_row(SURF), ("P01-D0-SURF",)),
    Variant("fcs: unsupported data type", "cytometry",
            bytes_edit(SURF, same_length(b"/$DATATYPE/F/", b"/$DATATYPE/A/")), file_of_row(SURF), ("P01-D0-SURF",)),
    Variant("fcs: bits per value disagree with the data type", "cytometry",
            bytes_edit(SURF, same_length(b"/$P1B/32/", b"/$P1B/16/")), file_of_row(SURF), ("P01-D0-SURF",)),
    Variant("fcs: byte order reversed", "cytometry",
            bytes_edit(SURF, same_length(b"/$BYTEORD/1,2,3,4/", b"/$BYTEORD/4,3,2,1/")), file_of_row(SURF),
            ("P01-D0-SURF",)),
    Variant("fcs: a single stain without its channel", "cytometry",
            bytes_edit("cytometry/SS-FITC.fcs", same_length(b"/FITC-A/", b"/FITC-Z/")),
            file_of_row("cytometry/SS-FITC.fcs")),
    # plate exports
    Variant("plate: empty file", "chemokine", bytes_edit(PLATE, lambda b: b""), re.escape(PLATE)),
    Variant("plate: not a plate export", "chemokine", text_edit(PLATE, lambda t: "hello\nworld\n"),
            re.escape(PLATE)),
    Variant("plate: truncated copy", "chemokine", text_edit(PLATE, lambda t: t[: len(t) // 2]), PLATE,
            ("P01-D0-PLASMA", "P01-D10-PLASMA", "P01-M1-PLASMA", "P02-D0-PLASMA", "P02-D10-PLASMA", "P02-M1-PLASMA")),
    Variant("plate: a sample missing from the export", "chemokine", cell("P02-D0-PLASMA", "sample_name", "P02-D0-PLASMX"),
            sheet_row("sample_name")),
    Variant("plate: text in a well's numbers", "chemokine",
            text_edit(PLATE, both_blocks(replace_once(r'^("\d+\(1,G3\)","P01-D0-PLASMA",).*$',
                                                      r'\1' + ",".join(['"abc"'] * 9)))),
            PLATE, ("P01-D0-PLASMA",)),
    Variant("plate: decimal comma in a comma-separated export", "chemokine",
            text_edit(PLATE, both_blocks(replace_once(r'^("\d+\(1,G3\)","P01-D0-PLASMA","[^"]*",)"(\d+)\.(\d+)"',
                                                      r'\1"\2,\3"'))),
            PLATE, ("P01-D0-PLASMA",)),
    Variant("plate: standards removed", "chemokine", text_edit(PLATE, drop_rows(r'"Standard\d+"')), PLATE,
            ("P01-D0-PLASMA", "P01-D10-PLASMA", "P01-M1-PLASMA", "P02-D0-PLASMA", "P02-D10-PLASMA", "P02-M1-PLASMA")),
    # genotyping exports
    Variant("genotyping: empty NGS file", "chimerism", bytes_edit(NGS, lambda b: b""), NGS, ("P01-M1-BX-NGS",)),
    Variant("genotyping: NGS header missing", "chimerism", text_edit(NGS, lambda t: t.split("\n", 1)[1]), NGS,
            ("P01-M1-BX-NGS",)),
    Variant("genotyping: NGS count not a number", "chimerism",
            text_edit(NGS, replace_once(r"^(LYS02\t\d+\t)\d+", r"\g<1>56x4")), NGS, ("P01-M1-BX-NGS",)),
    Variant("genotyping: negative NGS count", "chimerism",
            text_edit(NGS, replace_once(r"^(LYS02\t\d+\t)\d+", r"\g<1>-5")), NGS, ("P01-M1-BX-NGS",)),
    Variant("genotyping: GeneMapper column renamed", "chimerism",
            text_edit(STR, replace_once(r"\tAllele\t", "\tAlele\t")), STR,
            ("P01-M1-BX-STR",)),
    Variant("genotyping: biopsy absent from the GeneMapper export", "chimerism",
            text_edit(STR, drop_rows(r"^P01-M1-BX-STR\t")), STR, ("P01-M1-BX-STR",)),
    Variant("genotyping: peak height not a number", "chimerism",
            text_edit(STR, replace_once(r"^(P01-M1-BX-STR\t[^\t]*\t[^\t]*\t[^\t]*\t[^\t]*\t[^\t]*\t)\d+", r"\1abc")),
            STR, ("P01-M1-BX-STR",)),
]


# --- the unbroken batch and its numbers -------------------------------------------------

def process(batch_folder: Path, assay: str, out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The room's measurements and QC flags for one batch (as its workflow job makes them)."""
    batch = load_batch(batch_folder)
    if assay == "cytometry":
        from immuno.cytometry import process_batch

        process_batch(batch, out, plots=False, gatingml=False, events=False)
    elif assay == "chemokine":
        from immuno.chemokines.pipeline.batch import process_batch

        process_batch(batch, out, plots=False)
    else:
        from immuno.chimerism.pipeline.outputs import process_batch

        process_batch(batch, out, plots=False)
    d = ROOM_DIRS[assay]
    return pd.read_parquet(out / f"{d}_measurements.parquet"), pd.read_parquet(out / "qc_flags.parquet")


@pytest.fixture(scope="module")
def baseline(lean_batch: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    out = tmp_path_factory.mktemp("baseline")
    return {assay: process(lean_batch, assay, out / assay)[0] for assay in ROOM_DIRS}


NUMBERS = ["value", "lower", "upper", "flag", "unit"]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
def test_bad_input(variant: Variant, lean_batch: Path, baseline: dict[str, pd.DataFrame], tmp_path: Path,
                   capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "lean"
    shutil.copytree(lean_batch, folder)
    variant.breaks(folder)
    status = main(["validate", str(folder)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if status != 0:
        # refused before anything runs, the file (and row, column) named
        assert status == 2, err
        problems = [ln[2:] for ln in err.splitlines() if ln.startswith("- ")]
        assert any(re.search(variant.where, p) for p in problems), problems
        with pytest.raises(UserError):
            validate_batch(folder)
        return
    # let through: the room must fail the broken samples with a reason, and only them
    assert variant.samples, f"accepted by validation, but the variant names no sample to fail:\n{err}"
    measurements, flags = process(folder, variant.assay, tmp_path / "out")
    failing = flags[(flags["severity"] == "fail") & (flags["reason"].fillna("").str.len() > 0)]
    for sample in variant.samples:
        # failed with a reason: its own, or its plate's (a flag with no sample names a whole plate)
        assert sample in set(failing["sample_id"]) or "" in set(failing["sample_id"].fillna("")), \
            flags[["sample_id", "severity", "reason"]]
    broken = measurements[measurements["sample_id"].isin(variant.samples)]
    # no number reported for them, or every one failed
    assert not broken["qc_pass"].fillna(False).astype(bool).any(), broken
    keys = ["sample_id", "panel", "feature"]
    others = measurements[~measurements["sample_id"].isin(variant.samples)].set_index(keys).sort_index()
    before = baseline[variant.assay]
    before = before[~before["sample_id"].isin(variant.samples)].set_index(keys).sort_index()
    pd.testing.assert_frame_equal(others[NUMBERS], before[NUMBERS])


def test_the_corpus_is_large_and_covers_every_kind_of_file() -> None:
    kinds = {v.name.split(":")[0] for v in VARIANTS}
    assert len(VARIANTS) >= 35 and kinds == {"sheet", "fcs", "plate", "genotyping"}
