"""Griffe extension for the API reference: Sphinx roles in docstrings shown as code.

The library's docstrings name other objects with Sphinx roles (``:mod:`~immuno.io```,
``:class:`UserError```, ``:func:`read_fcs```), which Markdown would print as they are
written. This extension rewrites each role into a code span before mkdocstrings renders
the docstring, the way Sphinx shows it: the title when one is given
(``:func:`the reader <read_fcs>```), the last dotted part after ``~``, else the name.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:mod|class|func|meth|attr|data|exc|obj|const):`([^`]+)`")
TITLED = re.compile(r"^(?P<title>.+?)\s*<(?P<target>[^>]+)>$")


def show_role(match: re.Match[str]) -> str:
    """The code span Sphinx would show for one role."""
    text = match.group(1).strip()
    titled = TITLED.match(text)
    if titled:
        shown = titled.group("title")
    elif text.startswith("~"):
        shown = text[1:].rsplit(".", 1)[-1]
    else:
        shown = text.lstrip("!")
    return f"`{shown}`"


def rewrite_roles(text: str) -> str:
    """Every Sphinx role of ``text`` as a Markdown code span."""
    return ROLE.sub(show_role, text)


class SphinxRoles(griffe.Extension):
    """Rewrite the Sphinx roles of every docstring once the object tree is built."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rewrite_roles(obj.docstring.value)
