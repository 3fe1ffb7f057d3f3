"""The event engine: the numbers every later stage stands on.

It owns the static gate model (rectangles, polygons, ellipses, quadrants, booleans, with
GatingML 2.0's boundary rules), spillover matrices and compensation (including the
matrix from single-stain controls), the per-channel transforms (linear, log, logicle,
hyperlog, arcsinh), the evaluation of a gate hierarchy on parent events only
(:class:`~immuno.cytometry.engine.gate_tree.GateTree`), and the chunked passes that take
raw events to compensated, transformed columns and memberships
(:mod:`~immuno.cytometry.engine.event_pass`). It imports nothing else of the room, so
the file formats, the analyses and the pipeline above it all share one arithmetic.
"""
