"""The installed package carries the workflow: a wheel, a fresh environment, any folder."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import yaml

from .conftest import PROJECT, SMALL_DEMO

#: what a wheel is built from (the source tree, without tests, caches or results)
SOURCES = ("immuno", "workflows", "config", "panels", "setup.py", "pyproject.toml", "README.md")


def build_wheel(dest: Path) -> Path:
    """A wheel of the project, built from a copy of its sources (the checkout stays clean)."""
    src = dest / "src"
    src.mkdir(parents=True)
    for name in SOURCES:
        path = PROJECT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(path, src / name)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(dest / "dist"), str(src)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = (dest / "dist").glob("immuno-*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


def test_the_wheel_ships_the_workflow_its_configuration_and_the_panels(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for smk in [*PROJECT.glob("workflows/*.smk"), PROJECT / "workflows" / "Snakefile",
                *PROJECT.glob("workflows/schemas/*"), *PROJECT.glob("workflows/profiles/*/*")]:
        assert f"immuno/{smk.relative_to(PROJECT)}" in names, smk
    assert "immuno/config/config.yaml" in names
    assert {f"immuno/data/panels/{p.name}" for p in PROJECT.glob("panels/*.yaml")} <= names
    assert {f"immuno/report/templates/{t.name}" for t in PROJECT.glob("immuno/report/templates/*")} <= names


@pytest.mark.slow
def test_immuno_run_from_a_wheel_in_a_fresh_environment(wheel: Path, tmp_path: Path) -> None:
    env = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True, timeout=300)
    python = env / "bin" / "python"
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                           "--no-index", str(wheel)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    # the dependencies come from the test environment; immuno itself only from the wheel
    site = Path(subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True).strip())
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    anywhere = tmp_path / "somewhere else"
    anywhere.mkdir()
    where = subprocess.check_output([str(python), "-c", "import immuno; print(immuno.__file__)"], cwd=anywhere,
                                    text=True).strip()
    assert Path(where).is_relative_to(site)
    # the demo, generated in this folder by the installed command (a small one)
    (anywhere / "lab.yaml").write_text(yaml.safe_dump({"demo": {"make": True, "folder": "demo", **SMALL_DEMO}}))
    done = subprocess.run([str(env / "bin" / "immuno"), "run", "--configfile", "lab.yaml", "--cores", "2"],
                          cwd=anywhere, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    assert f"Snakefile: {site / 'immuno' / 'workflows' / 'Snakefile'}" in done.stdout + done.stderr
    assert (anywhere / "demo" / "samplesheet.csv").is_file() and not list(anywhere.glob(".demo.*"))
    assert (anywhere / "results" / "demo" / "report.html").is_file()
    verify = subprocess.run([str(env / "bin" / "immuno"), "verify", "results", "--inputs", "demo"],
                            cwd=anywhere, capture_output=True, text=True, timeout=600)
    assert verify.returncode == 0, verify.stdout + verify.stderr
