"""The compensation keywords instruments write into FCS files, read as spillover matrices.

Three generations of keywords exist, and real files carry all of them:

- ``$SPILLOVER`` (FCS 3.1), ``$SPILL``/``SPILL`` (BD FACSDiva, Stratedigm) and
  ``SPILLOVER``: ``n, channel_1..channel_n, s_11..s_nn``. Accuri C6 and Gallios name the
  channels by parameter number (``8,3,4,5,...``) instead of ``$PnN``; such numbers are
  mapped to the parameter's ``$PnN``.
- ``$COMP`` (FCS 3.0): ``n, m_11..m_nn`` over the first n parameters, no names. Beckman
  Coulter writes it over every parameter with Time's row all zero: parameters whose row
  and column are entirely zero are not compensated and are left out.
- ``$DFCiTOj`` (FCS 2.0): the percentage of fluorescence detector i subtracted from
  detector j, i.e. spillover ``s_ij = DFCiTOj / 100``. The numbers name detectors
  (FL1, FL2 ...), not parameters; each must be read by exactly one parameter of the file
  (``FL1 Log``, ``FL1-A`` ...), otherwise the matrix cannot be placed and is refused.

The first keyword present, in that order, is the file's matrix.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from immuno.cytometry.io.fcs import FCSData, parse_spillover
from immuno.errors import UserError

__all__ = ["MATRIX_KEYWORDS", "KeywordMatrix", "SPILL_KEYWORDS", "keyword_matrices", "keyword_matrix"]

#: keywords that hold an acquisition-time spillover matrix, in order of preference
SPILL_KEYWORDS = ("$SPILLOVER", "$SPILL", "SPILL", "SPILLOVER")
_DFC = re.compile(r"^\$DFC(\d+)TO(\d+)$")


@dataclass(frozen=True)
class KeywordMatrix:
    """A spillover matrix found in a file's keywords.

    Attributes
    ----------
    keyword
        ``$SPILLOVER``, ``SPILL``, ``$COMP`` or ``$DFCiTOj``.
    channels
        The parameters ($PnN) it covers.
    matrix
        ``(n, n)`` spillover (row: fluorochrome's detector, column: detector).
    """

    keyword: str
    channels: tuple[str, ...]
    matrix: np.ndarray


def _empty(text: str | None) -> bool:
    return text is None or not text.strip() or text.strip() in ("0", "0,")


def _named(channels: Sequence[str], fcs: FCSData, where: str) -> list[str]:
    """``$PnN`` for each matrix channel; parameter numbers are mapped to their ``$PnN``."""
    out = []
    for c in channels:
        if c not in fcs.channels and c.isdigit() and 1 <= int(c) <= fcs.n_channels:
            out.append(fcs.channels[int(c) - 1])
        else:
            out.append(c)
    unknown = [c for c in out if c not in fcs.channels]
    if unknown:
        raise UserError.single(where, f"names channel(s) {', '.join(unknown)} that the file does not have "
                               f"(channels: {', '.join(fcs.channels)})")
    return out


def _comp(text: str, fcs: FCSData, where: str) -> KeywordMatrix:
    parts = [p.strip() for p in text.strip().strip(",").split(",")]
    try:
        n = int(float(parts[0]))
        values = np.array([float(v) for v in parts[1:]], dtype=np.float64)
    except (ValueError, IndexError):
        raise UserError.single(where, f"$COMP should be 'n, n x n numbers', got {text[:40]!r}") from None
    if n < 1 or values.size != n * n or n > fcs.n_channels:
        raise UserError.single(where, f"$COMP declares {n} parameters, so it needs {n * n} numbers; it has {values.size}")
    matrix = values.reshape(n, n)
    keep = [i for i in range(n) if matrix[i].any() or matrix[:, i].any()]
    return KeywordMatrix("$COMP", tuple(fcs.channels[i] for i in keep), matrix[np.ix_(keep, keep)])


def _detector_parameter(detector: int, fcs: FCSData, where: str) -> str | None:
    pattern = re.compile(rf"^FL{detector}(?!\d)", re.IGNORECASE)
    found = [c for c in fcs.channels if pattern.match(c)]
    if len(found) > 1:
        raise UserError.single(where, f"$DFC keywords name detector FL{detector}, which parameters "
                               f"{', '.join(found)} all read; the matrix cannot be placed",
                               hint="Give the matrix as a file (`compensation: {source: file, file: ...}`).")
    return found[0] if found else None


def _dfc(fcs: FCSData, where: str) -> KeywordMatrix | None:
    pairs = {}
    for key, value in fcs.keywords.items():
        m = _DFC.match(key)
        if m and value.strip():
            try:
                pairs[int(m.group(1)), int(m.group(2))] = float(value) / 100.0
            except ValueError:
                raise UserError.single(f"{where} {key}", f"should be a percentage, got {value!r}") from None
    if not pairs:
        return None
    detectors = sorted({d for pair in pairs for d in pair})
    params = {d: _detector_parameter(d, fcs, where) for d in detectors}
    present = [d for d in detectors if params[d] is not None]
    matrix = np.eye(len(present))
    for (i, j), v in pairs.items():
        if i in present and j in present and i != j:
            matrix[present.index(i), present.index(j)] = v
    return KeywordMatrix("$DFCiTOj", tuple(str(params[d]) for d in present), matrix) if present else None


def _read(fcs: FCSData, key: str) -> KeywordMatrix | None:
    """One compensation keyword of the file as a matrix (None when absent or empty)."""
    if key == "$DFCiTOj":
        return _dfc(fcs, f"{fcs.path}: $DFCiTOj")
    text = fcs.keywords.get(key)
    if _empty(text):
        return None
    where = f"{fcs.path}: {key}"
    if key == "$COMP":
        return _comp(str(text), fcs, where)
    channels, matrix = parse_spillover(str(text), where=where)
    return KeywordMatrix(key, tuple(_named(channels, fcs, where)), matrix)


#: every keyword read, in order of preference
MATRIX_KEYWORDS = (*SPILL_KEYWORDS, "$COMP", "$DFCiTOj")


def keyword_matrices(fcs: FCSData) -> list[tuple[str, KeywordMatrix | UserError]]:
    """Every compensation keyword of the file, as a matrix or the reason it cannot be one
    (for ``immuno cytometry inspect``), in order of preference."""
    out: list[tuple[str, KeywordMatrix | UserError]] = []
    for key in MATRIX_KEYWORDS:
        try:
            found = _read(fcs, key)
        except UserError as err:
            out.append((key, err))
            continue
        if found is not None:
            out.append((key, found))
    return out


def keyword_matrix(fcs: FCSData) -> KeywordMatrix | None:
    """The file's acquisition-time matrix: the first keyword present, in the order of
    :data:`MATRIX_KEYWORDS`; None when the file has none.

    Raises
    ------
    UserError
        When that keyword is malformed or names channels the file does not have (a wrong
        matrix is never replaced by a lesser one silently).
    """
    for key in MATRIX_KEYWORDS:
        found = _read(fcs, key)
        if found is not None:
            return found
    return None
