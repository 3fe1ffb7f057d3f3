"""The contracts between the rooms: what comes in, and the tables every room writes.

:mod:`~immuno.contract.batch` is the batch folder and its sample sheet (columns,
vocabularies, paths that cannot leave the folder, every problem with its row and column);
:mod:`~immuno.contract.validate` checks a whole batch before anything runs, handing each
assay room's files to the room's own checks; :mod:`~immuno.contract.panels` loads the panel
YAML files against their schemas with line-numbered errors. :mod:`~immuno.contract.measurements`
is the measurement table every assay writes and the study reads (columns, the flag
vocabulary, ``qc_pass`` from the flags, one unit per feature, conversion of older
schemas), and :mod:`~immuno.contract.qc` the QC metrics and flags tables (and the
Westgard rules the control charts share). Nothing here imports the run or the command
line; the assay rooms' checks are imported by name, by the whole-batch check only, when
the batch holds the room's assay.
"""
