"""Old import paths of modules that moved, kept working for one release with a warning.

When a room is reorganised, code outside the project (notebooks, lab scripts) still
imports the old paths. Rather than leaving a stub file at each old path, a package
registers its moves here: ``register_moves("immuno.chemokines", {"curves": "fit.curves"})``
makes ``import immuno.chemokines.curves`` return the module ``immuno.chemokines.fit.curves``
itself (the same object, so attributes, private names and monkeypatching all behave as
before) and emit one :class:`DeprecationWarning` naming the new path.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from types import ModuleType

#: the release after which the old paths stop working
REMOVED_IN = "0.3"


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds a moved module under its old name and loads the module at its new name."""

    def __init__(self) -> None:
        self.moves: dict[str, str] = {}

    def find_spec(
        self, fullname: str, path: object = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.moves:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        new = self.moves[spec.name]
        warnings.warn(
            f"{spec.name} has moved to {new}; the old path will be removed in immuno "
            f"{REMOVED_IN}",
            DeprecationWarning,
            stacklevel=2,
        )
        return importlib.import_module(new)

    def exec_module(self, module: ModuleType) -> None:
        # the module was executed under its new name already
        return None


_FINDER = _MovedModules()


def register_moves(package: str, moves: dict[str, str]) -> None:
    """Make old submodule paths of ``package`` resolve to their new places.

    Parameters
    ----------
    package
        The package the paths are relative to, e.g. ``"immuno.chemokines"``; pass
        ``"immuno"`` for top-level modules.
    moves
        Old dotted path -> new dotted path, both relative to ``package``
        (``{"curves": "fit.curves"}``).
    """
    for old, new in moves.items():
        _FINDER.moves[f"{package}.{old}"] = f"{package}.{new}"
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


def moved_paths() -> dict[str, str]:
    """Every registered move, old absolute path -> new absolute path (for tests and docs)."""
    return dict(_FINDER.moves)
