"""Boolean populations defined from gates, e.g. ``CD4 & IFNg & !IL4``.

A panel names its populations as boolean expressions over gate ids (and over
populations defined earlier in the panel). The expressions are parsed by a small
recursive-descent grammar, never by ``eval``, so a panel file cannot run code::

    expression := or
    or         := and ( "|" and )*
    and        := not ( "&" not )*
    not        := "!" not | atom
    atom       := NAME | "(" expression ")"

``&`` binds tighter than ``|``; ``!`` binds tightest. Names are gate ids or population
names: letters, digits and ``_ . + -`` (so ``IL-17A`` and ``CD4+`` are single names).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from immuno.cytometry.engine.gates import BooleanGate
from immuno.errors import Problem, UserError

_TOKEN = re.compile(r"\s*(?:(?P<op>[&|!()])|(?P<name>[A-Za-z0-9_][A-Za-z0-9_.+\-]*))")


@dataclass(frozen=True)
class Name:
    """A reference to a gate or population."""

    name: str


@dataclass(frozen=True)
class Not:
    """Complement of an expression (over all events)."""

    operand: Expr


@dataclass(frozen=True)
class And:
    """Intersection of two or more expressions."""

    operands: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    """Union of two or more expressions."""

    operands: tuple[Expr, ...]


Expr = Name | Not | And | Or


def _tokenise(text: str, where: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            bad = text[pos:].lstrip()[:1]
            raise UserError.single(where, f"unexpected character {bad!r} at position {pos + 1} in "
                                   f"population expression {text!r} (allowed: names, & | ! and parentheses)")
        tokens.append(m.group("op") or m.group("name"))
        pos = m.end()
    return tokens


class _Parser:
    def __init__(self, text: str, where: str) -> None:
        self.text = text
        self.where = where
        self.tokens = _tokenise(text, where)
        self.pos = 0

    def fail(self, what: str) -> UserError:
        return UserError.single(self.where, f"{what} in population expression {self.text!r}")

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def parse(self) -> Expr:
        if not self.tokens:
            raise self.fail("empty expression")
        expr = self.or_()
        if self.peek() is not None:
            raise self.fail(f"unexpected {self.peek()!r} after a complete expression")
        return expr

    def or_(self) -> Expr:
        parts = [self.and_()]
        while self.peek() == "|":
            self.take()
            parts.append(self.and_())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def and_(self) -> Expr:
        parts = [self.not_()]
        while self.peek() == "&":
            self.take()
            parts.append(self.not_())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def not_(self) -> Expr:
        if self.peek() == "!":
            self.take()
            return Not(self.not_())
        return self.atom()

    def atom(self) -> Expr:
        tok = self.peek()
        if tok is None:
            raise self.fail("expression ends early (a name or '(' was expected)")
        if tok == "(":
            self.take()
            inner = self.or_()
            if self.peek() != ")":
                raise self.fail("missing ')'")
            self.take()
            return inner
        if tok in "&|!)":
            raise self.fail(f"unexpected {tok!r} where a name or '(' was expected")
        return Name(self.take())


def parse_population(text: str, where: str = "population") -> Expr:
    """Parse a population expression.

    Parameters
    ----------
    text
        The expression, e.g. ``"CD4 & IFNg & !IL4"``.
    where
        Location for error messages (panel file, line and key).

    Returns
    -------
    Expr
        The syntax tree (:class:`Name`, :class:`Not`, :class:`And`, :class:`Or`).

    Raises
    ------
    UserError
        On a syntax error, naming ``where`` and the expression.
    """
    if not isinstance(text, str):
        raise UserError.single(where, f"a population expression must be text, got {text!r}")
    return _Parser(text, where).parse()


def names_in(expr: Expr) -> list[str]:
    """The gate/population names an expression refers to, in order of first use."""
    out: list[str] = []

    def walk(e: Expr) -> None:
        if isinstance(e, Name):
            if e.name not in out:
                out.append(e.name)
        elif isinstance(e, Not):
            walk(e.operand)
        else:
            for op in e.operands:
                walk(op)

    walk(expr)
    return out


def evaluate_population(expr: Expr, masks: Mapping[str, np.ndarray]) -> np.ndarray:
    """Evaluate an expression over boolean event masks.

    Parameters
    ----------
    expr
        A parsed expression.
    masks
        Name -> boolean array over all events (absolute membership, as the gate engine
        returns it).

    Returns
    -------
    numpy.ndarray
        Boolean membership of each event.
    """
    if isinstance(expr, Name):
        return masks[expr.name]
    if isinstance(expr, Not):
        return ~evaluate_population(expr.operand, masks)
    parts = [evaluate_population(op, masks) for op in expr.operands]
    out = parts[0].copy()
    for p in parts[1:]:
        if isinstance(expr, And):
            out &= p
        else:
            out |= p
    return out


@dataclass(frozen=True)
class Population:
    """A named population of a panel.

    Attributes
    ----------
    name
        How statistics and headline features refer to it.
    expression
        The source text.
    expr
        The parsed expression.
    parent
        The population or gate it is reported as a percentage of.
    """

    name: str
    expression: str
    expr: Expr
    parent: str | None


def population_specs(spec: Mapping[str, Any] | None, known: list[str], where: str = "populations",
                     lines: Mapping[str, int] | None = None) -> list[Population]:
    """Parse and check a panel's ``populations:`` section.

    Parameters
    ----------
    spec
        Mapping name -> ``{expr: "...", parent: name}`` or name -> expression text.
    known
        Gate ids (and quadrant ids) the expressions may use.
    where
        The panel file, prefixed to every problem.
    lines
        Optional population name -> line number in the panel file.

    Returns
    -------
    list of Population
        In panel order; each may refer to gates and to populations above it.

    Raises
    ------
    UserError
        Listing every syntax error and unknown name, with its line.
    """
    problems: list[Problem] = []
    out: list[Population] = []
    available = list(known)
    for name, body in (spec or {}).items():
        line = (lines or {}).get(str(name))
        loc = f"{where}: line {line}: populations.{name}" if line else f"{where}: populations.{name}"
        text, parent = (body.get("expr"), body.get("parent")) if isinstance(body, Mapping) else (body, None)
        try:
            expr = parse_population(text, loc)
        except UserError as err:
            problems.extend(err.problems)
            available.append(str(name))
            continue
        unknown = [n for n in names_in(expr) if n not in available]
        if unknown:
            problems.append(Problem(loc, f"unknown name(s) {', '.join(map(repr, unknown))} in "
                                         f"{text!r}; expected a gate id or a population defined above "
                                         f"({', '.join(available)})"))
        if parent is not None and parent not in available:
            problems.append(Problem(loc, f"parent {parent!r} is not a gate id or a population defined above"))
        out.append(Population(str(name), text, expr, None if parent is None else str(parent)))
        available.append(str(name))
    if problems:
        raise UserError(problems, hint="Fix the populations section of the panel.")
    return out


def population_gates(populations: list[Population], parent: str | None = None) -> list[Any]:
    """The populations as GatingML-style boolean gates (for export).

    Each population becomes a :class:`~immuno.cytometry.engine.gates.BooleanGate` named after it
    (nested parts of an expression become gates ``<name>_part<k>``). The gates hang
    below ``parent`` (the events acquisition QC kept), which is also where every
    population mask lives (see :func:`immuno.cytometry.analysis.statistics.population_masks`), so
    ``!X`` means "kept events outside X" in both.

    A bare name (an alias of a gate) is written as OR of the gate with itself: GatingML
    booleans need two operands for ``and``/``or``.
    """
    gates: list[Any] = []

    def operand(e: Expr, owner: str) -> tuple[str, bool]:
        if isinstance(e, Name):
            return e.name, False
        if isinstance(e, Not) and isinstance(e.operand, Name):
            return e.operand.name, True
        gid = f"{owner}_part{sum(g.gate_id.startswith(owner + '_part') for g in gates) + 1}"
        gate(e, gid, owner)
        return gid, False

    def gate(e: Expr, gid: str, owner: str) -> None:
        if isinstance(e, Name):
            gates.append(BooleanGate(gid, parent, "or", ((e.name, False), (e.name, False))))
        elif isinstance(e, Not):
            ref, comp = operand(e.operand, owner)
            op: Any = "not" if not comp else "or"
            gates.append(BooleanGate(gid, parent, op, ((ref, False),) if op == "not" else ((ref, False), (ref, False))))
        else:
            ops = tuple(operand(o, owner) for o in e.operands)
            gates.append(BooleanGate(gid, parent, "and" if isinstance(e, And) else "or", ops))

    for pop in populations:
        gate(pop.expr, pop.name, pop.name)
    return gates
