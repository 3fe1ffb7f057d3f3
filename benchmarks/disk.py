"""Bytes on disk of a set of files, as the benchmarks report them."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def unique_bytes(paths: Iterable[Path]) -> int:
    """Total size of the regular files among ``paths``, each file counted once.

    A run's job folders are linked into the room folders (hard links: one file, two
    names), so summing every name's size would count those files twice.
    """
    seen: set[tuple[int, int]] = set()
    total = 0
    for path in paths:
        if not path.is_file():
            continue
        st = path.stat()
        if (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total
