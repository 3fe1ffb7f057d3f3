"""Donor fraction from the qPCR Ct values of a donor-specific marker, and their reader.

``%D = 100 (1 + E)^-(dCt_sample - dCt_calibrator)``, ``dCt = Ct(donor marker) -
Ct(reference gene)``, the MSC product DNA being the 100 % calibrator. The Ct table has
one row per replicate (``Sample``, ``Target``, ``Ct`` or ``Cq``); ``Undetermined`` is no
amplification, kept as NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from immuno.chimerism.common.result import ChimerismResult, Flag, not_estimable
from immuno.chimerism.common.tables import delimited, numbers, pick

QPCR_LOD = 0.001
MAX_CT = 40.0


def _mean_var(values: Sequence[float]) -> tuple[float, float, int]:
    v = np.asarray([x for x in values if np.isfinite(x)], float)
    return (
        float(v.mean()) if len(v) else math.nan,
        float(v.var(ddof=1)) if len(v) > 1 else math.nan,
        len(v),
    )


def estimate_qpcr(
    sample_marker_ct: Sequence[float],
    sample_reference_ct: Sequence[float],
    calibrator_marker_ct: Sequence[float],
    calibrator_reference_ct: Sequence[float],
    efficiency: float = 1.0,
    lod: float = QPCR_LOD,
    max_ct: float = MAX_CT,
) -> ChimerismResult:
    """Donor fraction by delta-delta-Ct against a 100 % donor calibrator.

    Parameters
    ----------
    sample_marker_ct, sample_reference_ct
        Replicate Ct values of the donor-specific marker and the reference gene in the
        biopsy (NaN = no amplification).
    calibrator_marker_ct, calibrator_reference_ct
        The same in the MSC product DNA (100 % donor).
    efficiency
        Amplification efficiency E (1.0 = doubling per cycle).
    lod
        The assay's validated limit of detection (fraction; KMR-type assays ~0.1 %).
    max_ct
        Ct values above this count as no amplification.

    Returns
    -------
    ChimerismResult
        Interval from the replicate spread of the four Ct means (t quantile); a
        biopsy whose marker never amplifies is not detected and has no point estimate.
    """
    clean = [
        [c if np.isfinite(c) and c <= max_ct else math.nan for c in cts]
        for cts in (
            sample_marker_ct,
            sample_reference_ct,
            calibrator_marker_ct,
            calibrator_reference_ct,
        )
    ]
    stats4 = [_mean_var(c) for c in clean]
    if stats4[1][2] == 0 or stats4[2][2] == 0 or stats4[3][2] == 0:
        return not_estimable(
            "qpcr",
            [
                Flag(
                    "qpcr_missing_ct",
                    "fail",
                    "the reference gene or the calibrator did not amplify",
                )
            ],
            lod=lod,
        )
    if stats4[0][2] == 0:
        return ChimerismResult(
            method="qpcr",
            fraction=math.nan,
            lower=0.0,
            upper=lod,
            detected=False,
            lod=lod,
            flags=[
                Flag("no_amplification", "info", "the donor marker did not amplify in the biopsy")
            ],
        )
    base = 1.0 + efficiency
    ddct = (stats4[0][0] - stats4[1][0]) - (stats4[2][0] - stats4[3][0])
    fraction = base**-ddct
    variances = [v / n for _, v, n in stats4 if n > 1]
    flags: list[Flag] = []
    if len(variances) == 4:
        se = math.sqrt(sum(variances))
        df = min(n for _, _, n in stats4) - 1
        half = float(stats.t.ppf(0.975, df)) * se
        lower, upper = base ** -(ddct + half), base ** -(ddct - half)
    else:
        lower = upper = math.nan
        flags.append(Flag("no_replicates", "warning", "single Ct values: no interval"))
    return ChimerismResult(
        method="qpcr",
        fraction=fraction,
        lower=lower,
        upper=upper,
        detected=fraction >= lod,
        lod=lod,
        flags=flags,
        n_informative=1,
        details={"ddct": ddct},
    )


QPCR_COLUMNS = ["sample_name", "target", "ct"]


def read_qpcr_ct(path: str | Path) -> pd.DataFrame:
    """Read a qPCR Ct table (``Sample``, ``Target``, ``Ct``/``Cq``; one row per replicate).

    ``Undetermined`` (no amplification) is kept as NaN: for a donor-specific marker it means
    nothing was seen, which the estimator turns into an upper bound, not into 0 %.
    """
    path = Path(path)
    t = pick(
        delimited(path),
        path,
        {
            "sample_name": ("Sample Name", "Sample"),
            "target": ("Target Name", "Target", "Assay"),
            "ct": ("Ct", "CT", "Cq", "Cт"),
        },
    )
    t["ct"] = numbers(t["ct"], path, "Ct", allow_missing=True)
    return t[QPCR_COLUMNS].reset_index(drop=True)
