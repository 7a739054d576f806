"""Reductions and statistics."""

from __future__ import annotations

from typing import Any

from .._tangent import shift_axes
from ._forms import Rule, linear


def _sum_t(xp: Any, t: Any, *, axis: Any = None, dtype: Any = None, keepdims: bool = False) -> Any:
    return xp.sum(t, axis=shift_axes(axis, t.ndim - 1), dtype=dtype, keepdims=keepdims)


RULES: tuple[Rule, ...] = (
    linear("sum", _sum_t, params=("axis", "dtype", "keepdims")),
)
