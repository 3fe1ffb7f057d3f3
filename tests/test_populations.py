"""Population grammar: parsing, precedence, evaluation and error messages."""

from __future__ import annotations

import numpy as np
import pytest

from immuno.cytometry.analysis.populations import (
    And,
    Name,
    Not,
    Or,
    evaluate_population,
    names_in,
    parse_population,
    population_specs,
)
from immuno.errors import UserError


def test_precedence_not_binds_tightest_and_before_or() -> None:
    expr = parse_population("A | B & !C")
    assert expr == Or((Name("A"), And((Name("B"), Not(Name("C"))))))
    assert parse_population("(A | B) & C") == And((Or((Name("A"), Name("B"))), Name("C")))
    assert parse_population("!!A") == Not(Not(Name("A")))
    assert names_in(parse_population("CD4 & IFNg & !IL4 & IFNg")) == ["CD4", "IFNg", "IL4"]


def test_names_with_dashes_and_plus_are_single_tokens() -> None:
    assert parse_population("IL-17A&CD4+") == And((Name("IL-17A"), Name("CD4+")))


def test_evaluation_matches_numpy_truth_table() -> None:
    rng = np.random.default_rng(0)
    a, b, c = (rng.random(1000) < p for p in (0.5, 0.3, 0.7))
    masks = {"A": a, "B": b, "C": c}
    got = evaluate_population(parse_population("A & (B | !C)"), masks)
    np.testing.assert_array_equal(got, a & (b | ~c))
    got = evaluate_population(parse_population("A | B & C"), masks)
    np.testing.assert_array_equal(got, a | (b & c))
    # evaluation never modifies the input masks
    before = a.copy()
    evaluate_population(parse_population("A & B"), masks)
    np.testing.assert_array_equal(a, before)


@pytest.mark.parametrize("text, fragment", [
    ("CD4 &", "ends early"),
    ("CD4 & (IFNg", "missing ')'"),
    ("CD4 IFNg", "unexpected 'IFNg'"),
    ("__import__('os')", "unexpected"),
    ("CD4 ; rm", "unexpected character ';'"),
    ("", "empty expression"),
])
def test_syntax_errors_are_user_errors(text: str, fragment: str) -> None:
    with pytest.raises(UserError) as err:
        parse_population(text, where="panel.yaml: line 7: populations.Th1")
    msg = str(err.value)
    assert fragment in msg
    assert "panel.yaml: line 7" in msg


def test_population_specs_report_unknown_names_with_line() -> None:
    spec = {"Th1": {"expr": "CD4 & IFNg & !IL4", "parent": "CD4"},
            "Th2": "CD4 & IL4 & !IFNgamma",
            "Th_any": {"expr": "Th1 | Th2", "parent": "CD4"}}
    with pytest.raises(UserError) as err:
        population_specs(spec, ["CD4", "IFNg", "IL4"], where="ics.yaml", lines={"Th2": 12})
    problems = err.value.problems
    assert len(problems) == 1
    assert problems[0].where == "ics.yaml: line 12: populations.Th2"
    assert "'IFNgamma'" in problems[0].what


def test_population_specs_allow_earlier_populations() -> None:
    spec = {"Th1": {"expr": "CD4 & IFNg & !IL4", "parent": "CD4"},
            "Th_any": {"expr": "Th1 | IL4", "parent": "CD4"}}
    pops = population_specs(spec, ["CD4", "IFNg", "IL4"])
    assert [p.name for p in pops] == ["Th1", "Th_any"]
    assert pops[1].parent == "CD4"
    with pytest.raises(UserError, match="parent 'CD8'"):
        population_specs({"X": {"expr": "CD4", "parent": "CD8"}}, ["CD4"])
