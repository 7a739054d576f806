"""Searching functions: ``where`` carries tangents from both branches; the rest return indices
or counts (integer constants of the namespace, no tangent)."""

from __future__ import annotations

from typing import Any

from ..core.backend import namespace_of
from ..core.batch import align
from ._forms import Rule, custom, nondiff


def _branch(xp: Any, t: Any, nd: int) -> Any:
    """A branch's tangent with the result's rank, or the scalar 0 for a constant branch."""
    return 0.0 if t is None else align(xp, t, nd)


def _where_jvp(xp: Any, primals: list, tangents: list) -> tuple:
    condition, x1, x2 = primals
    y = xp.where(condition, x1, x2)
    nd = y.ndim
    c = align(namespace_of(condition), condition[None, ...], nd)  # the condition is plain
    t = xp.where(c, _branch(xp, tangents[1], nd), _branch(xp, tangents[2], nd))
    if t.dtype != y.dtype:  # a constant branch of a wider dtype promoted the primal
        t = xp.astype(t, y.dtype)
    if tuple(t.shape[1:]) != tuple(y.shape):
        t = xp.broadcast_to(t, (t.shape[0], *y.shape))
    return y, t


RULES: tuple[Rule, ...] = (
    nondiff("argmax", "general", params=("axis", "keepdims"), dtypes="real"),
    nondiff("argmin", "general", params=("axis", "keepdims"), dtypes="real"),
    nondiff("count_nonzero", "general", params=("axis", "keepdims"), dtypes="any"),
    nondiff("nonzero", "general", dtypes="any"),
    nondiff("searchsorted", "general", args=("x1", "x2"), params=("side", "sorter"), dtypes="real"),
    custom(
        "where",
        _where_jvp,
        args=("condition", "x1", "x2"),
        note="each branch's tangent where it is chosen; the condition is constant",
    ),
)
