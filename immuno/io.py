"""Atomic writes of result files.

Every output is written to a temporary file in the destination folder and renamed into
place, so that a crash or a failed sample never leaves a half-written result behind and
readers never see a partial file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    On an exception the temporary file is removed and ``path`` is left untouched.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600 files; results are shared, so apply the usual umask instead
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, dest)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_parquet(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``df`` to Parquet atomically (no index, deterministic row order kept)."""
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)
    return Path(path)


def write_text(text: str, path: str | os.PathLike[str]) -> Path:
    """Write ``text`` (UTF-8) atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(obj: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``obj`` as indented, key-sorted JSON atomically."""
    return write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n", path)


def write_h5ad(adata: Any, path: str | os.PathLike[str]) -> Path:
    """Write an AnnData object to ``.h5ad`` atomically."""
    with atomic_path(path) as tmp:
        adata.write_h5ad(tmp)
    return Path(path)


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The SHA-256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_tree(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a folder as a tree of its files: one ``<relative POSIX path>\\0<file
    SHA-256>\\n`` line per file, in path order, hashed. Hidden files and folders (a desktop's
    ``.DS_Store``, a sync tool's bookkeeping) are left out; renaming, adding, removing or
    editing any other file changes the digest."""
    root = Path(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = file.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        digest.update(f"{rel.as_posix()}\0{sha256_file(file)}\n".encode())
    return digest.hexdigest()


def sha256_path(path: str | os.PathLike[str]) -> str:
    """:func:`sha256_file` of a file, :func:`sha256_tree` of a folder (a LEGENDplex plate)."""
    return sha256_tree(path) if Path(path).is_dir() else sha256_file(path)


def size_of(path: str | os.PathLike[str]) -> int:
    """Bytes of a file, or of every file under a folder."""
    p = Path(path)
    if p.is_dir():
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return p.stat().st_size
