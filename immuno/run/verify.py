"""``immuno verify``: does a results folder still hold what its provenance records?

Every output file of a batch is re-hashed and compared with ``provenance.json``; with
``--inputs BATCH`` the batch folder's input files are re-hashed too. Hashes, not
modification times, are compared, so a file edited with its time kept is found.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from immuno.errors import UserError
from immuno.io import sha256_file
from immuno.run.provenance import output_files


@dataclass(frozen=True)
class Difference:
    """One file that is not what provenance records."""

    path: Path
    what: str

    def __str__(self) -> str:
        return f"{self.path}: {self.what}"


def batch_results(results: str | Path) -> list[Path]:
    """The batch folders of ``results`` (or ``results`` itself when it is one batch)."""
    root = Path(results)
    if (root / "provenance.json").is_file():
        return [root]
    found = sorted(p.parent for p in root.glob("*/provenance.json"))
    if not found:
        raise UserError.single(
            str(root),
            "no provenance.json here nor in its sub-folders: not a results folder "
            "of a finished batch",
        )
    return found


def _compare(root: Path, recorded: dict[str, dict], kind: str) -> list[Difference]:
    differences = []
    for rel, entry in sorted(recorded.items()):
        path = root / rel
        if not path.is_file():
            differences.append(Difference(path, f"{kind} file missing"))
        elif sha256_file(path) != entry.get("sha256"):
            differences.append(
                Difference(path, f"{kind} file changed (SHA-256 differs from provenance)")
            )
    return differences


def verify_batch(
    batch_dir: str | Path, inputs: str | Path | None = None
) -> tuple[int, list[Difference]]:
    """Re-hash one batch's outputs (and inputs) against its provenance.

    Parameters
    ----------
    batch_dir
        ``results/<batch_id>``.
    inputs
        The batch folder, to check its input files too.

    Returns
    -------
    tuple
        The number of files checked and the differences found.
    """
    root = Path(batch_dir)
    try:
        prov = json.loads((root / "provenance.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError.single(
            str(root / "provenance.json"), f"cannot read provenance ({exc})"
        ) from None
    if "outputs" not in prov:
        return 0, [
            Difference(
                root / "provenance.json",
                "records no output hashes (written by an older immuno); "
                "run the batch again to verify it",
            )
        ]
    outputs = prov["outputs"]
    differences = _compare(root, outputs, "output")
    for rel in sorted(set(output_files(root)) - set(outputs)):
        differences.append(
            Difference(root / rel, "not recorded in provenance (written after the batch finished)")
        )
    checked = len(outputs)
    if inputs is not None:
        differences += _compare(Path(inputs), prov.get("inputs", {}), "input")
        checked += len(prov.get("inputs", {}))
    return checked, differences


def verify_results(
    results: str | Path, inputs: Sequence[str | Path] = ()
) -> tuple[int, list[Difference]]:
    """Verify every batch of a results folder; ``inputs`` are batch folders matched by name.

    Returns
    -------
    tuple
        Files checked and differences, over every batch.

    Raises
    ------
    UserError
        When ``results`` holds no finished batch, or an ``inputs`` folder has no results.
    """
    batches = {b.name: b for b in batch_results(results)}
    folders = {Path(f).resolve().name: Path(f) for f in inputs}
    unknown = sorted(set(folders) - set(batches))
    if unknown:
        raise UserError.single(
            str(folders[unknown[0]]), f"no results of batch {unknown[0]!r} in {results}"
        )
    checked, differences = 0, []
    for name, batch_dir in sorted(batches.items()):
        n, diffs = verify_batch(batch_dir, folders.get(name))
        checked += n
        differences += diffs
    return checked, differences
