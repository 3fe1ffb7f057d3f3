"""Old import paths of modules that moved, kept working for one release with a warning.

When a room is reorganised, code outside the project (notebooks, lab scripts) still
imports the old paths. Rather than leaving a stub file at each old path, a package
registers its moves here: ``register_moves("immuno.chemokines", {"curves": "fit.curves"})``
makes ``import immuno.chemokines.curves`` return the module ``immuno.chemokines.fit.curves``
itself (the same object, so attributes, private names and monkeypatching all behave as
before) and emit one :class:`DeprecationWarning` naming the new path.

A module whose content went to several new modules cannot be one of them: it registers a
split instead. ``register_splits("immuno.chemokines", {"qpcr_readers": ["io.rdml",
"io.cfx"]})`` makes the old path import as a module of its own whose attributes are looked
up in each new module in turn (the first that has the name wins), again with one warning
naming them all.
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
        self.splits: dict[str, tuple[str, ...]] = {}
        #: the moved module's own spec, by old path, while the old path is being imported
        self._specs: dict[str, importlib.machinery.ModuleSpec] = {}

    def find_spec(
        self, fullname: str, path: object = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.moves and fullname not in self.splits:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        if spec.name in self.splits:
            parts = self.splits[spec.name]
            warnings.warn(
                f"{spec.name} has been split into {', '.join(parts)}; the old path will be "
                f"removed in immuno {REMOVED_IN}",
                DeprecationWarning,
                stacklevel=2,
            )
            return _SplitModule(spec.name, [importlib.import_module(p) for p in parts])
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


class _SplitModule(ModuleType):
    """An old module path whose names now live in several modules, looked up in order."""

    def __init__(self, name: str, parts: list[ModuleType]) -> None:
        super().__init__(
            name, f"Former module, now split into {', '.join(p.__name__ for p in parts)}."
        )
        self._parts = tuple(parts)
        public = [getattr(p, "__all__", None) or _public(p) for p in parts]
        self.__all__ = sorted({n for names in public for n in names})

    def __getattr__(self, name: str) -> object:
        # the import system asks for __spec__, __loader__...: those are this module's own
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        for part in self._parts:
            if hasattr(part, name):
                return getattr(part, name)
        raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")

    def __dir__(self) -> list[str]:
        return sorted({*self.__dict__, *(n for p in self._parts for n in dir(p))})


def _public(module: ModuleType) -> list[str]:
    """Names a module defines itself, without a leading underscore."""
    return [
        n
        for n, v in vars(module).items()
        if not n.startswith("_")
        and getattr(v, "__module__", module.__name__) == module.__name__
        and not isinstance(v, ModuleType)
    ]


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


def register_splits(package: str, splits: dict[str, list[str]]) -> None:
    """Make old submodule paths of ``package`` whose names went to several modules resolve.

    Parameters
    ----------
    package
        The package the paths are relative to, e.g. ``"immuno.chimerism"``.
    splits
        Old dotted path -> the new dotted paths holding its names, relative to ``package``
        (``{"pcr": ["dpcr.droplets", "qpcr.ct", "fish.nuclei"]}``). A name is looked up
        in the new modules in this order.
    """
    for old, new in splits.items():
        _FINDER.splits[f"{package}.{old}"] = tuple(f"{package}.{n}" for n in new)
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


def split_paths() -> dict[str, tuple[str, ...]]:
    """Every registered split, old absolute path -> new absolute paths (for tests and docs)."""
    return dict(_FINDER.splits)


def moved_paths() -> dict[str, str]:
    """Every registered move, old absolute path -> new absolute path (for tests and docs)."""
    return dict(_FINDER.moves)
