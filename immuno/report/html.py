"""What the batch report and the study dashboard share: figures as embedded PNG, the
page style, table rendering and the template environment. Every image is embedded as
a data URI, so each page is one self-contained file that works offline."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape

#: figure resolution: labels stay readable at the size the page shows and prints them
DPI = 110


def figure_png(fig: Any) -> str:
    """A matplotlib figure as base64 PNG (the figure is closed if pyplot knows it)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    try:
        import matplotlib.pyplot as plt  # pyplot, slow to import: only to close a figure it made

        plt.close(fig)
    except Exception:  # noqa: BLE001 - a Figure not made by pyplot needs no closing
        pass
    return base64.b64encode(buf.getvalue()).decode()


def file_png(path: Path) -> str:
    """An image file as base64."""
    return base64.b64encode(Path(path).read_bytes()).decode()


def table_html(df: pd.DataFrame, index: bool = False, escape: bool = True, classes: str = "data") -> str:
    """A DataFrame as an HTML table in the page style (missing values blank)."""
    return df.to_html(index=index, classes=classes, border=0, na_rep="", escape=escape)


def environment() -> Environment:
    """The Jinja environment of the package's templates (autoescaped)."""
    env = Environment(loader=PackageLoader("immuno.report", "templates"), autoescape=select_autoescape(["html", "j2"]))
    env.filters["num"] = fmt_number
    return env


def fmt_number(value: Any, digits: int = 4) -> str:
    """A number with ``digits`` significant digits; blank when missing."""
    try:
        if value is None or pd.isna(value):
            return ""
    except (TypeError, ValueError):
        return str(value)
    if isinstance(value, int | float):
        return f"{value:.{digits}g}"
    return str(value)
