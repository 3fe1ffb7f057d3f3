"""Plate quality checks that stand apart from quantifying samples.

Plate integrity (wells listed twice or outside the plate, unreadable cells, standards
missing or without expected concentrations: problems for ``immuno validate``, flags for
quantification; :mod:`~immuno.chemokines.qc.integrity`), the checks of wells and kit
controls a quantification records (wells left out, low bead counts, controls against their
lot range; :mod:`~immuno.chemokines.qc.plate_checks`), the value-by-value agreement of
the vendor software's curve and results with ours, within the precision the export
prints (:mod:`~immuno.chemokines.qc.vendor`), and Levey-Jennings tracking of plate values
across plates with Westgard rules (:mod:`~immuno.chemokines.qc.westgard`). It stands on
:mod:`immuno.chemokines.io` and :mod:`immuno.chemokines.fit` (the vendor's curve is judged
by the acceptance rules of our own fits).
"""
