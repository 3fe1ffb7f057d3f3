"""A batch's chemokine rows turned into the room's result files.

The per-file run (read, quantify a multiplex plate or a qPCR run), the batch run that
turns every plate of the sample sheet into measurement rows, QC metric and flag rows,
scores and the Levey-Jennings history (:mod:`~immuno.chemokines.pipeline.batch`), the
files it writes (tables, the concentrations AnnData; :mod:`~immuno.chemokines.pipeline.outputs`)
and the standard-curve figures (:mod:`~immuno.chemokines.pipeline.plots`). It is the only
stage that works on a whole batch and writes files; it stands on the four stages before
it.
"""
