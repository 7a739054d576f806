"""Linear algebra functions of the main namespace: ``matmul``, ``tensordot``, ``vecdot``.

All three are bilinear: the tangent is the function applied with one operand replaced by
its tangent, plus the same with the other. The care is in the batch axis of the tangent:
these functions read meaning into the number of dimensions (1-D operands of ``matmul``,
integer ``axes`` of ``tensordot``, nonnegative ``axis`` of ``vecdot``), so every tangent is
given explicit axes or lifted to the rank the primal result has. The ``linalg`` extension
reuses these rules and the helpers ``lift``, ``left`` and ``right``.
"""

from __future__ import annotations

import math
from typing import Any

import array_api_compat

from ..core.batch import align
from ._forms import Rule, custom


def lift(xp: Any, t: Any, rank: int) -> Any:
    """Insert unit axes after the batch axis of ``t`` until it has ``rank`` dimensions."""
    k = rank - t.ndim
    if k <= 0:
        return t
    return xp.reshape(t, (t.shape[0],) + (1,) * k + tuple(t.shape[1:]))


def right(xp: Any, t: Any, m: Any) -> Any:
    """``t @ m`` for a batched tangent ``t`` of matrices and a primal (stack of) matrices ``m``.

    A 2-D ``m`` is one large product: the batch and stack axes of ``t`` fold into its rows.
    """
    if m.ndim == 2 and array_api_compat.is_dask_namespace(xp):
        return xp.matmul(t, m)  # Dask: a blockwise product keeps the batch axis its own chunk
    if m.ndim == 2:
        s = t.shape
        r = xp.matmul(xp.reshape(t, (math.prod(s[:-1]), s[-1])), m)  # not -1: sizes may be 0
        return xp.reshape(r, (*s[:-1], m.shape[-1]))
    return xp.matmul(lift(xp, t, m.ndim + 1), m)


def left(xp: Any, m: Any, t: Any) -> Any:
    """``m @ t`` for a primal (stack of) matrices ``m`` and a batched tangent ``t`` of matrices."""
    return xp.matmul(m, lift(xp, t, m.ndim + 1))


# ------------------------------------------------------------------- matmul
def _t_matmul_x(xp: Any, t: Any, a_ndim: int, b: Any, out_nd: int) -> Any:
    """The tangent of ``a @ b`` in ``a``: ``ta @ b`` with ``ta`` of shape (B, *a.shape)."""
    if b.ndim == 1:
        if a_ndim == 1:  # vector . vector: (B, k) @ (k,) -> (B,)
            return xp.matmul(t, b)
        return xp.matmul(lift(xp, t, out_nd + 2), b)  # (B, ..., n, k) @ (k,)
    if b.ndim == 2 and a_ndim >= 1:
        return right(xp, t, b)
    if a_ndim == 1:  # (k,) @ (..., k, m): treat ta's rows as (1, k) matrices, drop that axis
        t = xp.reshape(t, (t.shape[0],) + (1,) * (b.ndim - 2) + (1, t.shape[-1]))
        r = xp.matmul(t, b)
        return xp.reshape(r, (*r.shape[:-2], r.shape[-1]))
    return xp.matmul(lift(xp, t, out_nd + 1), b)


def _x_matmul_t(xp: Any, a: Any, t: Any, b_ndim: int, out_nd: int) -> Any:
    """The tangent of ``a @ b`` in ``b``: ``a @ tb`` with ``tb`` of shape (B, *b.shape)."""
    if a.ndim == 1:
        if b_ndim == 1:  # vector . vector is symmetric: (B, k) @ (k,)
            return xp.matmul(t, a)
        return xp.matmul(a, lift(xp, t, out_nd + 2))  # (k,) @ (B, ..., k, m)
    if b_ndim == 1:
        if a.ndim == 2:  # A @ v for B vectors at once: (B, k) @ A^T, one product
            return xp.matmul(t, xp.matrix_transpose(a))
        t = xp.reshape(t, (t.shape[0],) + (1,) * (a.ndim - 2) + (t.shape[-1], 1))
        r = xp.matmul(a, t)
        return xp.reshape(r, r.shape[:-1])
    return xp.matmul(a, lift(xp, t, out_nd + 1))


def matmul_jvp(xp: Any, primals: list, tangents: list) -> tuple:
    a, b = primals
    ta, tb = tangents
    y = xp.matmul(a, b)
    nd = y.ndim
    t = None if ta is None else _t_matmul_x(xp, ta, a.ndim, b, nd)
    if tb is not None:
        t2 = _x_matmul_t(xp, a, tb, b.ndim, nd)
        t = t2 if t is None else xp.add(t, t2)
    return y, t


# ---------------------------------------------------------------- tensordot
def _td_axes(axes: Any, n1: int) -> tuple[list[int], list[int]]:
    """``axes`` of ``tensordot`` as two lists of nonnegative axes (x1's, x2's)."""
    if isinstance(axes, int):
        return list(range(n1 - axes, n1)), list(range(axes))
    a1, a2 = axes
    return [a % n1 for a in a1], list(a2)


def tensordot_jvp(xp: Any, primals: list, tangents: list, axes: Any = 2) -> tuple:
    a, b = primals
    ta, tb = tangents
    y = xp.tensordot(a, b, axes=axes)  # validates the axes with the backend's own message
    ax1, ax2 = _td_axes(axes, a.ndim)
    ax2 = [x % b.ndim for x in ax2]
    t = None
    if ta is not None:  # the batch axis is a free axis of ta and comes out first
        t = xp.tensordot(ta, b, axes=([x + 1 for x in ax1], ax2))
    if tb is not None:  # here it comes out after a's free axes: move it to the front
        t2 = xp.tensordot(a, tb, axes=(ax1, [x + 1 for x in ax2]))
        p = a.ndim - len(ax1)
        t2 = xp.permute_dims(t2, (p, *range(p), *range(p + 1, t2.ndim)))
        t = t2 if t is None else xp.add(t, t2)
    return y, t


# ------------------------------------------------------------------- vecdot
def negative_axis(axis: int, n1: int, n2: int, name: str) -> int:
    """``axis`` counted from the end, as the tangent (one axis more in front) needs it."""
    if axis < 0:
        return axis
    if n1 != n2:  # backends disagree on whether it counts before or after broadcasting
        raise ValueError(
            f"{name}: a nonnegative axis with operands of different ranks ({n1} and {n2}) "
            "is ambiguous; pass a negative axis (the standard requires one)"
        )
    return axis - n1


def vecdot_jvp(xp: Any, primals: list, tangents: list, axis: int = -1) -> tuple:
    a, b = primals
    ta, tb = tangents
    y = xp.vecdot(a, b, axis=axis)
    ax = negative_axis(axis, a.ndim, b.ndim, "vecdot")
    nd = max(a.ndim, b.ndim)
    t = None if ta is None else xp.vecdot(align(xp, ta, nd), b, axis=ax)  # conj is R-linear
    if tb is not None:
        t2 = xp.vecdot(a, align(xp, tb, nd), axis=ax)
        t = t2 if t is None else xp.add(t, t2)
    return y, t


RULES: tuple[Rule, ...] = (
    custom("matmul", matmul_jvp, args=("x1", "x2"), domain="matmul"),
    custom("tensordot", tensordot_jvp, args=("x1", "x2"), params=("axes",)),
    custom("vecdot", vecdot_jvp, args=("x1", "x2"), params=("axis",)),
)
