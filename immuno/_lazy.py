"""A package's public names imported on first use (PEP 562), shared by the assay rooms.

An assay room's ``__init__`` lists its public names and the module defining each; the
module is imported only when the name is first asked for, so ``import immuno.cytometry``
(or chemokines, chimerism) costs nothing until a function is called: a command that
only validates a sheet does not pay for numpy, pandas or scipy.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of a package whose names are imported on first use.

    Parameters
    ----------
    package
        The package's ``__name__``; it must be importing (in :data:`sys.modules`) already,
        as it is while its ``__init__`` runs.
    exports
        Public name -> the absolute name of the module that defines it.

    Returns
    -------
    tuple
        ``(__getattr__, __dir__)``, to be bound at the package's top level:
        ``__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)``.
    """
    namespace = sys.modules[package].__dict__

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value  # later look-ups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted([*namespace, *exports])

    return __getattr__, __dir__
