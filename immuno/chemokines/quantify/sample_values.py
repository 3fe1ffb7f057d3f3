"""Sample values of one analyte on one plate: replicate means, back-calculation,
dilution, censoring against LLOQ / ULOQ, replicate CV (kit controls are judged against
their lot range in :mod:`immuno.chemokines.qc.plate_checks`).

Between an asymptote and the quantifiable range a value is ``<LLOQ`` / ``>ULOQ`` and the
extrapolated number is kept in its own column; beyond an asymptote there is no number.
Replicate wells left out (too few beads, an unreadable or duplicated well) are not in the
mean; a value resting on fewer wells than the sample has for an input problem fails QC,
with a note naming the wells.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from immuno.chemokines.fit.curves import CurveParams, back_calculate
from immuno.chemokines.fit.standards import StandardCurve


def quantify_samples(
    sw: pd.DataFrame,
    p: CurveParams | None,
    curve: StandardCurve,
    crow: dict[str, Any],
    q: dict[str, float],
    flags: list[dict[str, Any]],
) -> pd.DataFrame:
    """Quantify every sample of one analyte at once (replicate wells averaged on net MFI).

    Vectorised with bincount over sample codes: a 30-analyte plate has ~1200
    sample-analyte pairs, and a per-pair DataFrame loop would dominate the run time.
    """
    codes, names = pd.factorize(sw["sample_name"], sort=False)
    n = len(names)
    used = sw["used"].to_numpy()
    net = sw["net_mfi"].to_numpy(dtype=float)
    conc = sw["conc_well"].to_numpy(dtype=float)
    dil = sw["dilution"].to_numpy(dtype=float)
    roles = sw["role"].to_numpy()
    n_wells = np.bincount(codes, minlength=n)
    n_used = np.bincount(codes, weights=used.astype(float), minlength=n)
    y = np.bincount(codes, weights=np.where(used, net, 0.0), minlength=n) / np.maximum(n_used, 1)
    y = np.where(n_used > 0, y, np.nan)
    # the dilution of a sample: its first used well (all replicates share it)
    first = np.full(n, -1)
    for i in np.flatnonzero(used)[::-1]:
        first[codes[i]] = i
    first_any = np.zeros(n, dtype=int)
    first_any[codes[::-1]] = np.arange(len(codes))[::-1]
    df = dil[np.where(first >= 0, first, first_any)]
    role = roles[first_any]
    vr = sw["vendor_result"].to_numpy(dtype=float)
    has_vr = np.isfinite(vr)
    vcount = np.bincount(codes, weights=has_vr.astype(float), minlength=n)
    vendor = np.where(
        vcount > 0,
        np.bincount(codes, weights=np.where(has_vr, vr, 0.0), minlength=n) / np.maximum(vcount, 1),
        np.nan,
    )
    # wells left out for an input problem (unreadable, duplicated, outside the plate): the
    # value rests on the others, and says so
    problems = sw["problem"].to_numpy(dtype=object)
    wells_arr = sw["well"].to_numpy(dtype=object)
    note = np.full(n, "", dtype=object)
    bad_input = np.zeros(n, dtype=bool)
    for i in np.flatnonzero(problems != ""):
        c = codes[i]
        bad_input[c] = True
        note[c] = (
            note[c] + "; " if note[c] else ""
        ) + f"well {wells_arr[i]} left out ({problems[i]})"
    out = pd.DataFrame(
        {
            "sample_name": names.astype(str),
            "role": role,
            "analyte": crow["analyte"],
            "feature": crow["feature"],
            "class": crow["class"],
            "unit": crow["unit"],
            "n_wells": n_wells,
            "n_used": n_used.astype(int),
            "dilution": df,
            "mean_net_mfi": y,
            "conc_in_well": np.nan,
            "value": np.nan,
            "extrapolated": np.nan,
            "lloq": curve.lloq * df,
            "uloq": curve.uloq * df,
            "replicate_cv": np.nan,
            "flag": "",
            "qc_pass": False,
            "vendor_result": vendor,
            "in_panel": crow["in_panel"],
            "note": note,
        }
    )
    feat = crow["feature"]
    if p is None:
        out["flag"] = "curve_failed"
        return out
    x = back_calculate(p, y)
    flag = np.full(n, "", dtype=object)
    none = n_used == 0
    flag[none] = "no_wells"
    for i in np.flatnonzero(none):
        flags.append(
            {
                "sample_id": names[i],
                "target": feat,
                "flag": "no_usable_wells",
                "severity": "fail",
                "reason": "every replicate well was left out ("
                + (note[i] or "bead count or missing MFI")
                + ")",
            }
        )
    finite = np.isfinite(x)
    lo_asym = min(p.a, p.d)
    beyond = ~none & ~finite
    flag[beyond & (y <= lo_asym)] = "<LLOQ"
    flag[beyond & (y > lo_asym)] = ">ULOQ"
    below = ~none & finite & (x < curve.lloq)
    above = ~none & finite & (x > curve.uloq)
    inside = ~none & finite & ~below & ~above
    flag[below] = "<LLOQ"
    flag[above] = ">ULOQ"
    out["conc_in_well"] = x
    out["extrapolated"] = np.where(below | above, x * df, np.nan)
    out["value"] = np.where(inside, x * df, np.nan)
    for i in np.flatnonzero(above | (beyond & (y > lo_asym))):
        flags.append(
            {
                "sample_id": names[i],
                "target": feat,
                "flag": "above_uloq",
                "severity": "info",
                "reason": f"above the highest passing standard; re-run diluted (current 1:{df[i]:g})",
            }
        )
    # replicate CV on back-calculated well concentrations (on net MFI where those are missing)
    ok_c = used & np.isfinite(conc)
    kc = np.bincount(codes, weights=ok_c.astype(float), minlength=n)
    use_conc = kc >= 2
    val = np.where(use_conc[codes], conc, net)
    ok = np.where(use_conc[codes], ok_c, used & np.isfinite(net))
    k = np.bincount(codes, weights=ok.astype(float), minlength=n)
    s1 = np.bincount(codes, weights=np.where(ok, val, 0.0), minlength=n)
    s2 = np.bincount(codes, weights=np.where(ok, val * val, 0.0), minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / k
        var = np.maximum(s2 - k * mean * mean, 0.0) / (k - 1)
        cv = np.where((k >= 2) & (mean != 0), 100.0 * np.sqrt(var) / np.abs(mean), np.nan)
    out["replicate_cv"] = cv
    near = finite & (x < 2 * curve.lloq)
    limit = np.where(near, q["replicate_cv_max_lloq"], q["replicate_cv_max"])
    bad = np.isfinite(cv) & (cv > limit)
    out["qc_pass"] = ~none & ~bad & ~bad_input
    out["flag"] = flag
    wells = sw["well"].to_numpy()
    for i in np.flatnonzero(bad):
        flags.append(
            {
                "sample_id": names[i],
                "target": feat,
                "flag": "replicate_cv",
                "severity": "warning",
                "reason": f"replicate CV {cv[i]:.1f} % > {limit[i]:g} %; discordant duplicate, check the wells "
                f"{', '.join(wells[(codes == i) & used])}",
            }
        )
    return out
