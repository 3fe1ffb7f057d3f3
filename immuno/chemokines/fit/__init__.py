"""Standard curves: from a plate's standard wells to a curve and its quantifiable range.

The 5PL / 4PL model, its weighted least-squares fit (both 5PL families, several starts,
iteratively reweighted) and its inverse (:mod:`~immuno.chemokines.fit.curves`), and the
standards of a plate (:mod:`~immuno.chemokines.fit.standards`): levels and their
numbering, anchor points outside the dynamic range, acceptance by recovery and replicate
CV with at most two dropped levels, the vendor's own curve judged by the same rules, and
the limits of quantification (LLOQ / ULOQ from the passing levels, the precision profile
that confirms them). It needs nothing of :mod:`immuno.chemokines.io` (curves take arrays, standards a
table of standard wells) and comes after it as the data does; ``curves`` is the
mathematics and knows nothing of standards, ``standards`` builds on it.
"""
