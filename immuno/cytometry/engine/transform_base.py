"""The interface every per-channel transform implements (see :mod:`immuno.cytometry.engine.transforms`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

__all__ = ["Transform"]


class Transform(ABC):
    """A per-channel transform from data values to the display scale.

    Subclasses are small immutable value objects; :attr:`params` gives their parameters
    in the names used by GatingML 2.0 and the panel files.
    """

    #: the panel/GatingML name of the transform family
    kind: str = ""

    @abstractmethod
    def apply(self, x: np.ndarray) -> np.ndarray:
        """Transform data values (any float dtype) to the display scale, as float64."""

    @abstractmethod
    def inverse(self, y: np.ndarray) -> np.ndarray:
        """Map display-scale values back to data values, as float64."""

    @property
    @abstractmethod
    def params(self) -> dict[str, float]:
        """The transform parameters by their GatingML names (``t``, ``w``, ``m``, ``a``...)."""

    def spec(self) -> dict[str, Any]:
        """The transform as a panel-file dictionary (``{type: ..., **params}``)."""
        return {"type": self.kind, **self.params}

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.params == other.params  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((self.kind, tuple(sorted(self.params.items()))))

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({inner})"


def _as_float64(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)
