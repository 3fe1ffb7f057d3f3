"""The demo ICS gate hierarchy as placed on a demo sample, in static coordinates.

Benchmarks and engine tests gate demo tubes with the same fixed hierarchy (lymphocytes,
singlets, live, CD3, a CD4/CD8 quadrant gate, cytokine ranges, Th1/Th2 booleans and a CD8
ellipse), so that FlowKit and immuno are compared on gates a lab would draw.
"""

from __future__ import annotations

from immuno.cytometry.engine.gates import (
    BooleanGate,
    EllipseGate,
    PolygonGate,
    QuadrantGate,
    RectangleGate,
)


def placed_ics_gates(cells_gate: bool = False) -> list:
    """The demo ICS hierarchy in transformed coordinates (scatter linear, fluorescence logicle).

    Parameters
    ----------
    cells_gate
        Put a scatter rectangle ``cells`` above the lymphocyte gate (11 gates, 15
        populations); without it, 10 gates.

    Returns
    -------
    list
        Gate objects of :mod:`immuno.cytometry.engine.gates`, parents before children.
    """
    gates: list = [RectangleGate("cells", None, ("FSC-A", "SSC-A"), (0.05, 0.005), (0.95, 0.6))] if cells_gate else []
    return [
        *gates,
        PolygonGate("lymphocytes", "cells" if cells_gate else None, ("FSC-A", "SSC-A"),
                    ((0.12, 0.01), (0.40, 0.01), (0.42, 0.14), (0.12, 0.14))),
        PolygonGate("singlets", "lymphocytes", ("FSC-A", "FSC-H"),
                    ((0.0, 0.0), (0.6, 0.45), (0.6, 0.7), (0.0, 0.05))),
        RectangleGate("live", "singlets", ("BV510-A",), (None,), (0.45,)),
        RectangleGate("CD3", "live", ("BUV395-A",), (0.42,), (None,)),
        QuadrantGate("CD4_CD8", "CD3", ("BV605-A", "APC-R700-A"),
                     {"BV605-A": (0.42,), "APC-R700-A": (0.45,)},
                     {"CD4": {"BV605-A": 1, "APC-R700-A": 0}, "CD8": {"BV605-A": 0, "APC-R700-A": 1},
                      "DN": {"BV605-A": 0, "APC-R700-A": 0}, "DP": {"BV605-A": 1, "APC-R700-A": 1}}),
        RectangleGate("IFNg", "CD4", ("FITC-A",), (0.42,), (None,)),
        RectangleGate("IL4", "CD4", ("PE-A",), (0.40,), (None,)),
        RectangleGate("IL17A", "CD4", ("APC-A",), (0.40,), (None,)),
        BooleanGate("Th1", "CD4", "and", (("IFNg", False), ("IL4", True))),
        BooleanGate("Th2", "CD4", "and", (("IL4", False), ("IFNg", True))),
        EllipseGate("CD8_bright", "CD8", ("APC-R700-A", "BUV395-A"), (0.7, 0.6),
                    ((0.004, 0.001), (0.001, 0.003)), 4.0),
    ]
