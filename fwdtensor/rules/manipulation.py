"""Manipulation functions: all linear, so the tangent goes through the same function."""

from __future__ import annotations

import math
from typing import Any

from .._tangent import shift_axis
from ._forms import Rule, linear


def _roll_t(xp: Any, t: Any, shift: Any, *, axis: Any = None) -> Any:
    if axis is None:  # roll the flattened array, as the primal does
        flat = xp.reshape(t, (t.shape[0], math.prod(t.shape[1:])))
        return xp.reshape(xp.roll(flat, shift, axis=1), t.shape)
    nd = t.ndim - 1
    ax = tuple(shift_axis(a, nd) for a in axis) if isinstance(axis, tuple) else shift_axis(axis, nd)
    return xp.roll(t, shift, axis=ax)


def _reshape_t(xp: Any, t: Any, shape: tuple, *, copy: Any = None) -> Any:
    return xp.reshape(t, (t.shape[0], *shape))


def _permute_t(xp: Any, t: Any, axes: tuple) -> Any:
    nd = t.ndim - 1
    return xp.permute_dims(t, (0, *(a % nd + 1 for a in axes)))


def _broadcast_to_t(xp: Any, t: Any, shape: tuple) -> Any:
    k = len(shape) + 1 - t.ndim
    if k > 0:
        t = xp.reshape(t, (t.shape[0],) + (1,) * k + tuple(t.shape[1:]))
    return xp.broadcast_to(t, (t.shape[0], *shape))


def _expand_dims_t(xp: Any, t: Any, *, axis: Any = 0) -> Any:
    nd = t.ndim  # the primal's ndim + 1 is the result's ndim; negative axes count from the end
    if isinstance(axis, tuple):
        return xp.expand_dims(t, axis=tuple(a + 1 if a >= 0 else a for a in axis))
    if not -nd <= axis < nd:
        raise IndexError(f"axis {axis} is out of bounds for the result of dimension {nd}")
    return xp.expand_dims(t, axis=axis + 1 if axis >= 0 else axis)


RULES: tuple[Rule, ...] = (
    linear("roll", _roll_t, params=("shift", "axis")),
    linear("reshape", _reshape_t, params=("shape", "copy")),
    linear("permute_dims", _permute_t, params=("axes",)),
    linear("matrix_transpose", lambda xp, t: xp.matrix_transpose(t), domain="matrix"),
    linear("broadcast_to", _broadcast_to_t, params=("shape",)),
    linear("expand_dims", _expand_dims_t, params=("axis",)),
)
