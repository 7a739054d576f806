"""Sorting, and the set functions of the standard (``unique_*``, ``isin``).

``sort`` is a permutation of its input, so its tangent is the tangent permuted the same
way (``take_along_axis`` with ``argsort``, stable or not, ascending or descending).
``unique_*`` return a ``values`` dual whose tangent is the input's tangent at the first
occurrence of each value; indices, inverse indices and counts are integer constants, in
the backend's own result types.
"""

from __future__ import annotations

import math
from typing import Any

from ..core.backend import namespace_of
from ..core.batch import shift_axis
from ._forms import Rule, custom, nondiff


def _sort_jvp(
    xp: Any, primals: list, tangents: list, *, axis: int = -1, descending: bool = False, stable: bool = True
) -> tuple:
    x, t = primals[0], tangents[0]
    idx = xp.argsort(x, axis=axis, descending=descending, stable=stable)
    y = xp.take_along_axis(x, idx, axis=axis)  # the sorted values, without sorting twice
    return y, xp.take_along_axis(t, idx[None, ...], axis=shift_axis(axis, x.ndim))


def first_occurrences(inverse: Any) -> Any:
    """For each unique value, the flat index of its first occurrence, from the inverse indices."""
    ixp = namespace_of(inverse)
    inv = ixp.reshape(inverse, (-1,))
    order = ixp.argsort(inv, stable=True)  # grouped by value, in input order within a group
    s = ixp.take(inv, order)
    starts = ixp.not_equal(s, ixp.concat([s[:1] - 1, s[:-1]]))
    return order[starts]


def _values_tangent(xp: Any, t: Any, first: Any) -> Any:
    flat = xp.reshape(t, (t.shape[0], math.prod(t.shape[1:])))
    return xp.take(flat, first, axis=1)


def _unique_values_jvp(xp: Any, primals: list, tangents: list) -> tuple:
    res = xp.unique_inverse(primals[0])
    return res.values, _values_tangent(xp, tangents[0], first_occurrences(res.inverse_indices))


def _unique_fields_jvp(name: str) -> Any:
    """The JVP of ``unique_all``/``unique_counts``/``unique_inverse``: only ``values`` has a tangent."""

    def jvp(xp: Any, primals: list, tangents: list) -> tuple:
        x = primals[0]
        res = getattr(xp, name)(x)
        if name == "unique_all":  # the standard's indices are the first occurrences
            first = res.indices
        else:
            inv = res.inverse_indices if name == "unique_inverse" else xp.unique_inverse(x).inverse_indices
            first = first_occurrences(inv)
        tv = _values_tangent(xp, tangents[0], first)
        return res, (tv,) + (None,) * (len(res) - 1)

    return jvp


_UNIQUE_NOTE = "values' tangent: the input's tangent at each value's first occurrence"

RULES: tuple[Rule, ...] = (
    nondiff("argsort", "general", params=("axis", "descending", "stable"), dtypes="real"),
    custom(
        "sort",
        _sort_jvp,
        params=("axis", "descending", "stable"),
        dtypes="real",
        note="the tangent follows the sorting permutation (take_along_axis of argsort)",
    ),
    nondiff("isin", "general", args=("x1", "x2"), params=("invert",), dtypes="any"),
    custom("unique_all", _unique_fields_jvp("unique_all"), dtypes="real", note=_UNIQUE_NOTE),
    custom("unique_counts", _unique_fields_jvp("unique_counts"), dtypes="real", note=_UNIQUE_NOTE),
    custom("unique_inverse", _unique_fields_jvp("unique_inverse"), dtypes="real", note=_UNIQUE_NOTE),
    custom("unique_values", _unique_values_jvp, dtypes="real", note=_UNIQUE_NOTE),
)
