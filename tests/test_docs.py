"""The documentation site: a strict build, its navigation, and the README's links to it."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import PROJECT

CONFIG = PROJECT / "mkdocs.yml"
DOCS = PROJECT / "docs"

#: modules the API reference leaves out: private ones, the ``python -m immuno`` entry, and
#: the panel schema data package (JSON files, no Python API)
NOT_IN_API = ("immuno.__main__", "immuno.data", "immuno.data.panel_schemas")


def nav_files(entries: Any) -> Iterator[str]:
    """Every page file named in a mkdocs ``nav`` (nested sections included)."""
    if isinstance(entries, str):
        yield entries
    elif isinstance(entries, list):
        for entry in entries:
            yield from nav_files(entry)
    elif isinstance(entries, dict):
        for value in entries.values():
            yield from nav_files(value)


def load_config() -> dict[str, Any]:
    return yaml.safe_load(CONFIG.read_text())


def test_every_page_is_in_the_nav_and_every_nav_entry_exists() -> None:
    named = list(nav_files(load_config()["nav"]))
    pages = sorted(
        p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md") if "hooks" not in p.parts
    )
    assert sorted(set(named)) == sorted(named), "a page is named twice in the nav"
    assert [p for p in pages if p not in named] == [], "pages missing from the nav of mkdocs.yml"
    assert [n for n in named if not (DOCS / n).is_file()] == [], "nav entries without a page"


def test_every_public_module_has_its_place_in_the_api_reference() -> None:
    documented = {
        m
        for page in (DOCS / "api").glob("*.md")
        for m in re.findall(r"^::: ([\w.]+)", page.read_text(), re.M)
    }
    modules = set()
    for path in (PROJECT / "immuno").rglob("*.py"):
        parts = path.relative_to(PROJECT).with_suffix("").parts
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        if not any(part.startswith("_") for part in parts):
            modules.add(".".join(parts))
    assert sorted(modules - documented - set(NOT_IN_API)) == [], "modules missing from docs/api/"
    assert sorted(documented - modules) == [], "docs/api/ names modules that do not exist"


def test_the_readme_links_to_existing_pages() -> None:
    readme = (PROJECT / "README.md").read_text()
    links = re.findall(r"\]\((docs/[^)#\s]+)(?:#[^)]*)?\)", readme)
    assert {"docs/getting-started.md", "docs/running-a-batch.md", "docs/troubleshooting.md"} <= set(
        links
    )
    assert [link for link in links if not (PROJECT / link).is_file()] == []


def test_the_data_flow_picture_is_svg_with_text_and_is_shown_in_the_architecture() -> None:
    root = ET.parse(DOCS / "data-flow.svg").getroot()
    ns = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{ns}svg"
    words = " ".join(t.text or "" for t in root.iter(f"{ns}text"))
    for step in (
        "batch folder",
        "immuno validate",
        "cytometry",
        "chemokines",
        "chimerism",
        "collect",
        "report",
        "study",
    ):
        assert step in words
    assert "](data-flow.svg)" in (DOCS / "architecture.md").read_text()


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    for module, what in (
        ("mkdocs", "mkdocs"),
        ("material", "the material theme (mkdocs-material)"),
        ("mkdocstrings", "mkdocstrings"),
        ("mkdocstrings_handlers.python", "mkdocstrings-python"),
    ):
        pytest.importorskip(module, reason=f"{what} is not installed (pip install -e '.[docs]')")
    config = load_config()
    config["docs_dir"] = str(DOCS)
    config["site_dir"] = str(tmp_path / "site")
    # the copy of the configuration lives in tmp_path: its relative paths made absolute
    for plugin in config["plugins"]:
        if isinstance(plugin, dict) and "mkdocstrings" in plugin:
            python = plugin["mkdocstrings"]["handlers"]["python"]
            python["paths"] = [str(PROJECT / p) for p in python["paths"]]
            options = python["options"]
            options["extensions"] = [str(PROJECT / e) for e in options.get("extensions", [])]
    path = tmp_path / "mkdocs.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(path)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-6000:]
    assert "WARNING" not in done.stderr, done.stderr[-6000:]
    site = tmp_path / "site"
    for page in ("index.html", "troubleshooting/index.html", "api/cytometry/index.html"):
        assert (site / page).is_file(), page
    api = (site / "api" / "chemokines" / "index.html").read_text()
    assert "quantify_plate" in api and "fit_curve" in api  # docstrings rendered, not only titles


def test_sphinx_roles_are_shown_as_sphinx_shows_them() -> None:
    pytest.importorskip("griffe", reason="griffe (with mkdocstrings-python) is not installed")
    spec = importlib.util.spec_from_file_location(
        "sphinx_roles", DOCS / "hooks" / "sphinx_roles.py"
    )
    assert spec is not None and spec.loader is not None
    roles = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(roles)
    text = (
        "See :mod:`~immuno.chemokines.io`, :class:`immuno.errors.UserError`, "
        ":func:`the reader <immuno.cytometry.io.fcs.read_fcs>` and :py:data:`WELL_COLUMNS`; "
        "``literal`` stays."
    )
    assert roles.rewrite_roles(text) == (
        "See `io`, `immuno.errors.UserError`, `the reader` and `WELL_COLUMNS`; ``literal`` stays."
    )
