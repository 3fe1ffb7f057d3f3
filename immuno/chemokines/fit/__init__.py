"""Standard curves: from a plate's standard wells to a curve and its quantifiable range.

The 5PL / 4PL model, its weighted least-squares fit (both 5PL families, several starts,
iteratively reweighted) and its inverse (:mod:`~immuno.chemokines.fit.curves`); the
levels of a plate's standards, their numbering and the anchor points outside the dynamic
range (:mod:`~immuno.chemokines.fit.levels`); and the standards' curve
(:mod:`~immuno.chemokines.fit.standards`): acceptance by recovery and replicate CV with
at most two dropped levels, the vendor's own curve judged by the same rules, and the
limits of quantification (LLOQ / ULOQ from the passing levels, confirmed by the
precision profile of :func:`~immuno.chemokines.fit.curves.precision_profile`). It needs
nothing of :mod:`immuno.chemokines.io` (curves take arrays, standards a table of standard
wells) and comes after it as the data does. ``curves`` and ``levels`` know nothing of
each other or of standards; ``standards`` builds on both.
"""
