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
import importlib.machinery
import sys
import warnings
from types import ModuleType

#: the release after which the old paths stop working
REMOVED_IN = "0.3"


class _MovedModules:
    """Finds a moved module under its old name and loads the module at its new name.

    A meta path finder and loader by protocol (``find_spec``, ``create_module``,
    ``exec_module``) rather than by subclassing :mod:`importlib.abc`: that module imports
    :mod:`importlib.resources` and more, and ``import immuno`` registers this finder, so
    every ``immuno`` command would pay for them at start-up.
    """

    def __init__(self) -> None:
        self.moves: dict[str, str] = {}
        #: the moved module's own spec, by old path, while the old path is being imported
        self._specs: dict[str, importlib.machinery.ModuleSpec] = {}

    def find_spec(
        self, fullname: str, path: object = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.moves:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        new = self.moves[spec.name]
        warnings.warn(
            f"{spec.name} has moved to {new}; the old path will be removed in immuno {REMOVED_IN}",
            DeprecationWarning,
            stacklevel=2,
        )
        module = importlib.import_module(new)
        self._specs[spec.name] = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        # the module was executed under its new name already; the import system has just
        # set the old path's spec on it, so give it back its own (reload, tools reading
        # ``__spec__.name`` and the module's files must see the new path)
        module.__spec__ = self._specs.pop(module.__spec__.name, module.__spec__)


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
