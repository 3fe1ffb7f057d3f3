"""A cytometry panel's own consistency, checked without any data.

What the JSON schema cannot see: names that must refer to each other (gate parents and
dimensions, populations, headline features, channel transforms, marker spellings) and
numbers that must be in order (a search window's low end below its high end, the
fallback default inside the window it falls back from). Every problem names the panel
file and the line of the entry at fault; ``immuno validate`` and the processing of a
sample both run :func:`panel_problems`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from immuno.contract.panels import Panel
from immuno.cytometry.analysis.gating import ROOT, gate_names, resolve_dim
from immuno.cytometry.analysis.populations import Population, population_specs
from immuno.cytometry.io.markers import marker_problems, spellings
from immuno.cytometry.io.templates import panel_template, template_channels, template_gate_specs
from immuno.errors import Problem, UserError

__all__ = ["RESERVED_PREFIX", "ROOT", "channel_problems", "check_gate_specs", "check_headline", "gate_names",
           "gate_specs_of", "panel_lines", "panel_populations", "panel_problems", "placement_problems",
           "resolve_dim"]

def panel_lines(path: str | Path) -> dict[str, int]:
    """Line numbers of a panel file's entries, for messages.

    Returns
    -------
    dict
        ``"channels[i]"``, ``"gates[i]"``, ``"gates[i].thresholds[j]"``,
        ``"gates[i].dividers[j]"``, ``"populations.<name>"``, ``"headline.<feature>"`` and
        every top-level key -> 1-based line.
    """
    try:
        root = yaml.compose(Path(path).read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, yaml.YAMLError):
        return {}
    lines: dict[str, int] = {}
    if not isinstance(root, yaml.MappingNode):
        return lines
    for key, value in root.value:
        lines[str(key.value)] = key.start_mark.line + 1
        if key.value in ("gates", "channels") and isinstance(value, yaml.SequenceNode):
            for i, item in enumerate(value.value):
                lines[f"{key.value}[{i}]"] = item.start_mark.line + 1
                if not isinstance(item, yaml.MappingNode):
                    continue
                for sub_key, sub in item.value:
                    if sub_key.value in ("thresholds", "dividers") and isinstance(sub, yaml.SequenceNode):
                        for j, t in enumerate(sub.value):
                            lines[f"{key.value}[{i}].{sub_key.value}[{j}]"] = t.start_mark.line + 1
        elif key.value in ("populations", "headline") and isinstance(value, yaml.MappingNode):
            for name, _ in value.value:
                lines[f"{key.value}.{name.value}"] = name.start_mark.line + 1
    return lines


def check_headline(headline: Mapping[str, Mapping[str, Any]], names: Sequence[str], where: str,
                   lines: Mapping[str, int] | None = None) -> list[Problem]:
    """Problems in a panel's headline section: populations, denominators or ratio terms
    that are not gates, populations or (for ratios) other headline features."""
    problems: list[Problem] = []
    fractions = [f for f, h in headline.items() if "ratio" not in h]
    for feature, h in headline.items():
        line = (lines or {}).get(f"headline.{feature}")
        loc = f"{where}: line {line}: headline.{feature}" if line else f"{where}: headline.{feature}"
        if "ratio" in h:
            bad = [t for t in h["ratio"] if t not in fractions]
            expected = f"headline features computed as fractions ({', '.join(fractions)})"
        else:
            bad = [t for t in (h["population"], h["of"]) if t not in names]
            expected = f"gate ids or populations ({', '.join(names)})"
        if bad:
            problems.append(Problem(loc, f"unknown name(s) {', '.join(map(repr, bad))}; expected {expected}"))
    return problems


def check_gate_specs(gate_specs: Sequence[Mapping[str, Any]], panel_channels: Sequence[Mapping[str, Any]],
                     where: str, lines: Mapping[str, int] | None = None) -> list[Problem]:
    """Problems in a panel's gate hierarchy: unknown parents or dims, duplicate ids.

    Each problem names ``where`` (the panel file), the gate's line when ``lines`` has it
    (see :func:`panel_lines`), and the gate id.
    """
    problems: list[Problem] = []
    seen: set[str] = set()
    for i, g in enumerate(gate_specs):
        line = (lines or {}).get(f"gates[{i}]")
        loc = f"{where}: line {line}: gates[{i}] ({g.get('id')})" if line else f"{where}: gates[{i}] ({g.get('id')})"
        parent = g.get("parent")
        if parent is not None and parent not in seen:
            problems.append(Problem(loc, f"parent {parent!r} is not a gate defined above it"))
        dims = list(g.get("dims", [])) + [t.get("dim") for t in g.get("thresholds", [])]
        for d in dims:
            try:
                resolve_dim(str(d), panel_channels)
            except KeyError:
                known = [*(s for c in panel_channels for s in spellings(c.get("marker"))),
                         *(str(c["channel"]) for c in panel_channels)]
                problems.append(Problem(loc, f"dimension {d!r} is neither a marker (or one of its spellings) "
                                        f"nor a channel of the panel (known: {', '.join(known)})"))
        new = gate_names([g])
        for n in new:
            if n in seen or n == ROOT:
                problems.append(Problem(loc, f"gate id {n!r} is used twice"))
        seen.update(new)
    return problems


#: ids of the acquisition QC gates in exported GatingML files start with this
RESERVED_PREFIX = "acq_"


def panel_problems(panel: Panel) -> list[Problem]:
    """Every mistake in a panel's gating logic, each naming the panel file and line.

    Channels (transforms that do not exist, marker spellings that are empty or shared),
    gates (unknown parents or dimensions, ids used twice, reversed windows and ranges,
    defaults outside their window), populations (syntax, unknown names) and headline
    features (unknown populations, denominators, ratio terms).
    ``immuno validate`` reports these before any sample is processed.
    """
    lines = panel_lines(panel.path)
    channels = panel.get("channels") or []
    problems = channel_problems(panel, lines)
    gates, template_problems = _gates_of(panel, lines)
    problems += template_problems
    problems += check_gate_specs(gates, channels, str(panel.path), lines)
    problems += placement_problems(gates, str(panel.path), lines)
    pop_lines = {k.split(".", 1)[1]: v for k, v in lines.items() if k.startswith("populations.")}
    try:
        population_specs(panel.get("populations"), gate_names(gates), where=str(panel.path), lines=pop_lines)
    except UserError as exc:
        problems += exc.problems
    # headline names are judged against every population the panel declares, parsed or not
    declared = [str(name) for name in (panel.get("populations") or {})]
    reserved = [n for n in [*gate_names(gates), *declared] if n.startswith(RESERVED_PREFIX)]
    if reserved:
        problems.append(Problem(str(panel.path), f"name(s) {', '.join(map(repr, reserved))} start with "
                                f"{RESERVED_PREFIX!r}, which is kept for the acquisition QC gates of exports"))
    problems += check_headline(panel.get("headline") or {}, [*gate_names(gates), *declared],
                               str(panel.path), lines)
    return problems


def _loc(where: str, lines: Mapping[str, int] | None, key: str, label: str) -> str:
    line = (lines or {}).get(key)
    return f"{where}: line {line}: {label}" if line else f"{where}: {label}"


def channel_problems(panel: Panel, lines: Mapping[str, int] | None = None) -> list[Problem]:
    """Problems in the ``channels:`` section: transforms that ``transforms:`` does not
    define, and marker spellings that are empty or name two markers."""
    where = str(panel.path)
    known = set(panel.get("transforms") or {})
    channels = panel.get("channels") or []
    out = []
    for i, entry in enumerate(channels):
        name = entry.get("transform")
        if name is not None and name not in known:
            out.append(Problem(_loc(where, lines, f"channels[{i}]", f"channels[{i}] ({entry.get('channel')})"),
                               f"uses transform {name!r}, which `transforms:` does not define "
                               f"(defined: {', '.join(sorted(known)) or 'none'})"))
    index_lines = {i: (lines or {}).get(f"channels[{i}]", 0) for i in range(len(channels))}
    return out + marker_problems(channels, where, {i: n for i, n in index_lines.items() if n})


def _threshold_problems(t: Mapping[str, Any], loc: str) -> list[Problem]:
    out = []
    window = t.get("window")
    if t.get("method") == "density_valley" and isinstance(window, Sequence) and len(window) == 2:
        lo, hi = (float(v) for v in window)
        dim = t.get("dim", "the divider")
        if lo >= hi:
            out.append(Problem(loc, f"window [{lo:g}, {hi:g}] on {dim} is reversed or empty: the valley is "
                                    "searched between the low and the high end (write [low, high])"))
        elif "default" in t and not lo <= float(t["default"]) <= hi:
            out.append(Problem(loc, f"default {float(t['default']):g} on {dim} lies outside its window "
                                    f"[{lo:g}, {hi:g}]: when no valley is found the cut would fall where the "
                                    "search never looks; put the default inside the window"))
    return out


def placement_problems(gate_specs: Sequence[Mapping[str, Any]], where: str,
                       lines: Mapping[str, int] | None = None) -> list[Problem]:
    """Numbers out of order in the gates: reversed search windows, defaults outside their
    window, rectangles whose min is above their max, singlet defaults [high, low].

    Coordinates are on the transformed scale, as the gates are placed.
    """
    out: list[Problem] = []
    for i, g in enumerate(gate_specs):
        label = f"gates[{i}] ({g.get('id')})"
        for part in ("thresholds", "dividers"):
            for j, t in enumerate(g.get(part) or []):
                if isinstance(t, Mapping):
                    out += _threshold_problems(t, _loc(where, lines, f"gates[{i}].{part}[{j}]", f"{label}.{part}[{j}]"))
        loc = _loc(where, lines, f"gates[{i}]", label)
        shapes = [g, g.get("default")] if isinstance(g.get("default"), Mapping) else [g]
        for shape in shapes:
            if shape.get("type") != "rectangle":
                continue
            for k, (lo, hi) in enumerate(zip(shape.get("min") or [], shape.get("max") or [], strict=False)):
                if lo is not None and hi is not None and float(lo) >= float(hi):
                    out.append(Problem(loc, f"rectangle on dimension {k + 1}: min {lo} is not below max {hi}"))
        default = g.get("default")
        if g.get("type") == "singlet" and isinstance(default, Sequence) and len(default) == 2:
            if float(default[0]) >= float(default[1]):
                out.append(Problem(loc, f"singlet default [{default[0]}, {default[1]}] is reversed: "
                                        "expected [low ratio, high ratio]"))
    return out


def gate_specs_of(panel: Panel) -> list[dict[str, Any]]:
    """The panel's gates: its ``gates:`` list, or its template's gates as specs."""
    template = panel_template(panel) if panel.get("template") else None
    return template_gate_specs(template) if template is not None else list(panel.get("gates") or [])


def _gates_of(panel: Panel, lines: Mapping[str, int]) -> tuple[list[dict[str, Any]], list[Problem]]:
    """The gate specs populations and headline features may use, and the template's problems."""
    if not panel.get("template"):
        return list(panel.get("gates") or []), []
    loc = _loc(str(panel.path), lines, "template", "template")
    if panel.get("gates"):
        return [], [Problem(loc, "the panel has both `template:` and `gates:`; its gates come from one of them "
                                 "(delete `gates:` to use the template, or `template:` to place the panel's gates)")]
    try:
        template = panel_template(panel)
    except UserError as err:
        return [], [Problem(loc, str(p)) for p in err.problems]
    assert template is not None
    known = {str(c["channel"]) for c in panel.get("channels") or []}
    needed = list(template_channels(template))
    for matrix in template.matrices.values():
        needed += [d for d in matrix.detectors if d not in needed]
    missing = [c for c in needed if c not in known]
    problems = []
    if missing:
        problems.append(Problem(loc, f"the template's gates read channel(s) {', '.join(missing)}, which the panel's "
                                     "`channels:` do not list (add them, with transform: null)"))
    return template_gate_specs(template), problems


def panel_populations(panel: Panel) -> list[Population]:
    """The panel's populations, checked against its gates (problems name the panel file).

    Raises
    ------
    UserError
        Listing every problem :func:`panel_problems` finds.
    """
    key = (str(panel.path), str(panel.sha256))
    if key not in _POPULATIONS:  # checked once per panel file and process, not once per tube
        problems = panel_problems(panel)
        if problems:
            raise UserError(problems, hint=f"Fix the gates, populations or headline section of {panel.path}.")
        pop_lines = {k.split(".", 1)[1]: v for k, v in panel_lines(panel.path).items()
                     if k.startswith("populations.")}
        _POPULATIONS[key] = population_specs(panel.get("populations"), gate_names(gate_specs_of(panel)),
                                             where=str(panel.path), lines=pop_lines)
    return list(_POPULATIONS[key])


_POPULATIONS: dict[tuple[str, str], list[Population]] = {}
