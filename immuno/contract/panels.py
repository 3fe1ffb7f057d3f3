"""Assay definitions (panels/*.yaml): loading and validation.

A panel is data, not code: markers and channels, transforms and gates for a cytometry
tube; analytes and their classes for a chemokine plate; loci or markers for chimerism
genotyping. Every panel file has a common header::

    name: ics_demo          # how the sample sheet's `panel` column refers to it
    assay: cytometry        # cytometry | chemokine | chimerism
    version: 1
    description: free text for the lab

and an assay-specific body, checked against the JSON schema
every ``immuno/data/panel_schemas/<assay>*.schema.json`` (one file per concern, e.g.
the cytometry channels and the cytometry gates); a top-level key that no schema declares
is a mistake too (usually a typo). Every mistake is reported with the file and the line
it sits on, all at once.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from immuno.errors import Problem, UserError
from immuno.io import sha256_file

ASSAYS = ("cytometry", "chemokine", "chimerism")


@dataclass(frozen=True)
class Panel:
    """A validated assay definition.

    Attributes
    ----------
    name, assay, version
        From the panel's header.
    path
        The YAML file it was read from.
    sha256
        Digest of the file, recorded in provenance.
    spec
        The whole parsed YAML mapping (assay rooms read their own keys from it).
    """

    name: str
    assay: str
    version: int
    path: Path
    sha256: str
    spec: dict[str, Any] = field(repr=False)

    def __getitem__(self, key: str) -> Any:
        return self.spec[key]

    def get(self, key: str, default: Any = None) -> Any:
        """A key of the panel body, or ``default``."""
        return self.spec.get(key, default)


HEADER_KEYS = ("name", "assay", "version", "description")


@cache
def _schemas(assay: str) -> tuple[dict[str, Any], ...]:
    folder = resources.files("immuno.data.panel_schemas")
    names = sorted(
        f.name
        for f in folder.iterdir()
        if f.name.startswith(assay) and f.name.endswith(".schema.json")
    )
    return tuple(json.loads(folder.joinpath(n).read_text()) for n in names)


def _node_line(root: yaml.Node, path: list[Any]) -> int | None:
    """1-based line of the YAML node at ``path`` (keys / indices), or of its closest parent."""
    node = root
    line = node.start_mark.line + 1
    for step in path:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if k.value == step), None)
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(step, int) and step < len(node.value)
        ):
            nxt = node.value[step]
        else:
            nxt = None
        if nxt is None:
            break
        node = nxt
        line = node.start_mark.line + 1
    return line


def yaml_error(path: Path, exc: yaml.YAMLError) -> UserError:
    """A YAML syntax error as one line: file, line and column, what the parser expected."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"{path}: line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    what = f"not valid YAML: {problem}" + (f" ({context})" if context else "")
    return UserError.single(
        where,
        what,
        hint="Fix the YAML syntax (indentation, ':' after keys, closing "
        "brackets and quotes) at that line and run again.",
    )


def read_panel_yaml(path: Path) -> tuple[dict[str, Any], yaml.Node]:
    """Parse a panel file safely, returning the mapping and its node tree (for line numbers)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError.single(str(path), f"cannot read panel file ({exc.strerror})") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise yaml_error(path, exc) from None
    if not isinstance(data, dict) or node is None:
        raise UserError.single(
            str(path), "a panel must be a YAML mapping with name, assay and version"
        )
    return data, node


def validate_panel_data(data: dict[str, Any], node: yaml.Node, path: Path) -> list[Problem]:
    """Every schema problem of a parsed panel, each located by file and line."""
    problems: list[Problem] = []
    assay = data.get("assay")
    if assay not in ASSAYS:
        line = _node_line(node, ["assay"])
        return [
            Problem(
                f"{path}: line {line}: assay", f"got {assay!r}, expected one of {', '.join(ASSAYS)}"
            )
        ]
    for key in ("name", "version"):
        if key not in data:
            problems.append(Problem(f"{path}: line 1", f"missing required key {key!r}"))
    declared = set(HEADER_KEYS)
    errors = []
    for schema in _schemas(assay):
        declared |= set(schema.get("properties", {}))
        errors.extend(jsonschema.Draft202012Validator(schema).iter_errors(data))
    for key in sorted(set(data) - declared):
        problems.append(
            Problem(
                f"{path}: line {_node_line(node, [key])}: {key}",
                f"unknown key for a {assay} panel (expected one of {', '.join(sorted(declared))})",
            )
        )
    for err in sorted(
        errors, key=lambda e: (_node_line(node, list(e.absolute_path)) or 0, e.message)
    ):
        loc = list(err.absolute_path)
        key = ".".join(str(p) for p in loc) or "(top level)"
        problems.append(Problem(f"{path}: line {_node_line(node, loc)}: {key}", err.message))
    return problems


def load_panel(path: str | Path) -> Panel:
    """Load and validate one panel file.

    Parameters
    ----------
    path
        The YAML file.

    Returns
    -------
    Panel

    Raises
    ------
    UserError
        Listing every problem in the file, each with its line.
    """
    path = Path(path)
    data, node = read_panel_yaml(path)
    problems = validate_panel_data(data, node, path)
    if problems:
        raise UserError(problems, hint=f"Fix the panel file {path} and run again.")
    return Panel(
        name=str(data["name"]),
        assay=str(data["assay"]),
        version=int(data["version"]),
        path=path,
        sha256=sha256_file(path),
        spec=data,
    )


def default_panels_dir() -> Path:
    """The project's ``panels/`` folder: shipped as ``immuno/data/panels`` in an installed
    package, beside the package in a source checkout."""
    package = Path(__file__).resolve().parents[1]
    shipped = package / "data" / "panels"
    return shipped if shipped.is_dir() else package.parent / "panels"


_NAME_LINE = re.compile(r"^name:\s*['\"]?([^'\"#\s]+)", re.MULTILINE)


def panel_index(panels_dir: str | Path | None = None) -> dict[str, Path]:
    """Map panel name -> file for every ``*.yaml`` in ``panels_dir`` (names read from the files).

    A file that is not valid YAML is still indexed, under the name its ``name:`` line
    gives (or its file name), so that asking for that panel reports the syntax error
    with its line and column rather than "no panel named ...".
    """
    folder = Path(panels_dir) if panels_dir else default_panels_dir()
    index: dict[str, Path] = {}
    for file in sorted(folder.glob("*.yaml")):
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            index.setdefault(file.stem, file)  # reported when the panel is loaded
            continue
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError:
            found = _NAME_LINE.search(text)
            index.setdefault(found.group(1) if found else file.stem, file)
            continue
        if isinstance(data, dict) and "name" in data:
            index[str(data["name"])] = file
    return index


def find_panel(name: str, panels_dir: str | Path | None = None) -> Panel:
    """Load the panel called ``name`` from ``panels_dir`` (default: the project's panels/)."""
    index = panel_index(panels_dir)
    if name not in index:
        known = ", ".join(sorted(index)) or "none"
        raise UserError.single(
            f"panel {name!r}",
            f"no panel with this name in {panels_dir or default_panels_dir()} (known: {known})",
        )
    return load_panel(index[name])
