"""The former top-level module paths still import, as the moved module itself, with a
DeprecationWarning, until immuno 0.3; ``import immuno`` stays cheap."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import immuno
from immuno._moved import moved_paths

#: each former top-level module and where it went
FORMER = {
    "runner": "run.workflow",
    "steps": "run.steps",
    "runlock": "run.lock",
    "collect": "run.collect",
    "provenance": "run.provenance",
    "verify": "run.verify",
    "batch": "contract.batch",
    "validate": "contract.validate",
    "panels": "contract.panels",
    "measurements": "contract.measurements",
    "qc": "contract.qc",
    "store": "study",
}


def test_every_former_top_level_module_is_registered_and_gone() -> None:
    top = {old: new for old, new in moved_paths().items() if old.count(".") == 1}
    assert top == {f"immuno.{old}": f"immuno.{new}" for old, new in FORMER.items()}
    package = Path(immuno.__file__).parent
    assert not [
        old for old in FORMER if (package / f"{old}.py").exists() or (package / old).is_dir()
    ]


@pytest.mark.parametrize("old", sorted(FORMER))
def test_an_old_path_imports_the_new_module_with_a_warning(
    old: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    new = importlib.import_module(f"immuno.{FORMER[old]}")
    # an earlier import bound the old name on the package and in sys.modules: start afresh
    monkeypatch.delattr(immuno, old, raising=False)
    monkeypatch.delitem(sys.modules, f"immuno.{old}", raising=False)
    with pytest.warns(DeprecationWarning, match=rf"immuno\.{old} has moved to {new.__name__};"):
        moved = importlib.import_module(f"immuno.{old}")
    assert moved is new
    assert sys.modules[f"immuno.{old}"] is new
    # the module keeps its own identity: its spec names the new path and its file
    assert new.__spec__.name == new.__name__
    assert new.__spec__.origin == new.__file__


def test_names_imported_from_an_old_path_are_the_new_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    import immuno.contract.measurements as measurements
    import immuno.run.lock as lock
    import immuno.study as study
    import immuno.study.load as load

    monkeypatch.delitem(sys.modules, "immuno.store", raising=False)
    monkeypatch.delitem(sys.modules, "immuno.runlock", raising=False)
    monkeypatch.delattr(immuno, "store", raising=False)
    monkeypatch.delattr(immuno, "runlock", raising=False)
    with pytest.warns(DeprecationWarning, match="immuno.store has moved to immuno.study"):
        from immuno.store import COLUMNS, READABLE_SCHEMAS, Study, batch_dirs
    assert Study is study.Study and batch_dirs is study.batch_dirs
    # what the store module exported is exported by the study package
    assert COLUMNS is measurements.COLUMNS is study.COLUMNS
    assert READABLE_SCHEMAS is load.READABLE_SCHEMAS is study.READABLE_SCHEMAS
    assert {"Study", "batch_dirs", "COLUMNS", "READABLE_SCHEMAS"} <= set(study.__all__)
    with pytest.warns(DeprecationWarning, match="immuno.runlock has moved to immuno.run.lock"):
        from immuno import runlock
    assert runlock is lock


def test_import_immuno_loads_only_the_moves() -> None:
    code = (
        "import sys; before = set(sys.modules); import immuno; "
        "print(' '.join(sorted(set(sys.modules) - before)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert set(out.stdout.split()) - {"importlib.machinery", "warnings", "types"} == {
        "immuno",
        "immuno._moved",
    }
