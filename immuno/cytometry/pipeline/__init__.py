"""Panels and sample sheets turned into results.

The tubes of a batch and their units of work (a stimulated tube with its control), a
panel's own consistency checks, ingest (read, acquisition QC, compensate and transform in
one pass), the per-sample run (place gates, populations, statistics, measurement and QC
rows), the files each sample writes (per-event ``.h5ad``, tables, GatingML, gating
figures), and the batch run that gathers them. This is the only part of the room that
reads panels and batches; it stands on the three packages below it.
"""
