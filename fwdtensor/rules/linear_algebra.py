"""Linear algebra functions of the main namespace (``matmul``, ...)."""

from __future__ import annotations

from typing import Any

from ._forms import Rule, custom


def _lift(xp: Any, t: Any, rank: int) -> Any:
    """Insert unit axes after the batch axis of ``t`` until it has ``rank`` dimensions."""
    k = rank - t.ndim
    if k <= 0:
        return t
    return xp.reshape(t, (t.shape[0],) + (1,) * k + tuple(t.shape[1:]))


def _t_matmul_x(xp: Any, t: Any, a_ndim: int, b: Any, out_nd: int) -> Any:
    """The tangent of ``a @ b`` in ``a``: ``ta @ b`` with ``ta`` of shape (B, *a.shape)."""
    if b.ndim == 1:
        if a_ndim == 1:  # vector . vector: (B, k) @ (k,) -> (B,)
            return xp.matmul(t, b)
        return xp.matmul(_lift(xp, t, out_nd + 2), b)  # (B, ..., n, k) @ (k,)
    if b.ndim == 2 and a_ndim >= 1:
        # One large product: fold the batch (and stack) axes into the rows of a 2-D matmul.
        s = t.shape
        r = xp.matmul(xp.reshape(t, (-1, s[-1])), b)
        return xp.reshape(r, (*s[:-1], b.shape[-1]))
    if a_ndim == 1:  # (k,) @ (..., k, m): treat ta's rows as (1, k) matrices, drop that axis
        t = xp.reshape(t, (t.shape[0],) + (1,) * (b.ndim - 2) + (1, t.shape[-1]))
        return xp.squeeze(xp.matmul(t, b), axis=-2)
    return xp.matmul(_lift(xp, t, out_nd + 1), b)


def _x_matmul_t(xp: Any, a: Any, t: Any, b_ndim: int, out_nd: int) -> Any:
    """The tangent of ``a @ b`` in ``b``: ``a @ tb`` with ``tb`` of shape (B, *b.shape)."""
    if a.ndim == 1:
        if b_ndim == 1:  # vector . vector is symmetric: (B, k) @ (k,)
            return xp.matmul(t, a)
        return xp.matmul(a, _lift(xp, t, out_nd + 2))  # (k,) @ (B, ..., k, m)
    if b_ndim == 1:
        if a.ndim == 2:  # A @ v for B vectors at once: (B, k) @ A^T, one product
            return xp.matmul(t, xp.matrix_transpose(a))
        t = xp.reshape(t, (t.shape[0],) + (1,) * (a.ndim - 2) + (t.shape[-1], 1))
        return xp.squeeze(xp.matmul(a, t), axis=-1)
    return xp.matmul(a, _lift(xp, t, out_nd + 1))


def _matmul_jvp(xp: Any, primals: list, tangents: list) -> tuple:
    a, b = primals
    ta, tb = tangents
    y = xp.matmul(a, b)
    nd = y.ndim
    t = None if ta is None else _t_matmul_x(xp, ta, a.ndim, b, nd)
    if tb is not None:
        t2 = _x_matmul_t(xp, a, tb, b.ndim, nd)
        t = t2 if t is None else xp.add(t, t2)
    return y, t


RULES: tuple[Rule, ...] = (
    custom("matmul", _matmul_jvp, args=("x1", "x2"), domain="matmul"),
)
