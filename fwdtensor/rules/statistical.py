"""Reductions and statistics (and the utility reductions ``all``, ``any``, ``diff``).

Products are differentiated without dividing by ``x``: ``prod`` multiplies the exclusive
products from the left and from the right, and ``cumulative_prod`` runs a log-depth scan
of the recurrence ``dy[k] = x[k] dy[k-1] + y[k-1] t[k]``, so zeros in the input (one or
several) give exact tangents, and nested derivatives stay exact too.
"""

from __future__ import annotations

import math
from typing import Any

from ..core.backend import namespace_of
from ..core.batch import shift_axes, shift_axis
from ._forms import Rule, custom, linear, nondiff
from .manipulation import common_batch, zero_block


# ------------------------------------------------------------------ helpers
def reduced_axes(axis: Any, ndim: int) -> tuple[int, ...]:
    """The reduced axes as sorted non-negative ints (``None`` means every axis)."""
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, tuple) else (axis,)
    return tuple(sorted(a % ndim for a in axes)) if ndim else ()


def _kept_shape(shape: tuple, axes: tuple) -> tuple:
    """``shape`` with the reduced ``axes`` set to 1 (the ``keepdims=True`` shape)."""
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def _cast(xp: Any, x: Any, t: Any, dtype: Any) -> tuple:
    """Primal and tangent in the accumulation ``dtype`` a reduction was asked for."""
    if dtype is None or dtype == x.dtype:
        return x, t
    return xp.astype(x, dtype), xp.astype(t, dtype)


def _exclusive_cumprod(xp: Any, x: Any) -> Any:
    """Products of the elements strictly before each one along the last axis."""
    c = xp.cumulative_prod(x, axis=-1, include_initial=True)
    return c[..., :-1]


def _others_product(xp: Any, x: Any, axes: tuple) -> Any:
    """For each element, the product of the other elements of its group over ``axes``."""
    nd = x.ndim
    kept = tuple(i for i in range(nd) if i not in axes)
    perm = kept + axes
    xm = xp.permute_dims(x, perm) if perm != tuple(range(nd)) else x
    n = math.prod(x.shape[a] for a in axes)
    xr = xp.reshape(xm, (*(x.shape[i] for i in kept), n))
    left = _exclusive_cumprod(xp, xr)
    right = xp.flip(_exclusive_cumprod(xp, xp.flip(xr, axis=-1)), axis=-1)
    o = xp.reshape(xp.multiply(left, right), tuple(xm.shape))
    if perm == tuple(range(nd)):
        return o
    inv = tuple(perm.index(i) for i in range(nd))
    return xp.permute_dims(o, inv)


# -------------------------------------------------------------- rule bodies
def _sum_t(xp: Any, t: Any, *, axis: Any = None, dtype: Any = None, keepdims: bool = False) -> Any:
    return xp.sum(t, axis=shift_axes(axis, t.ndim - 1), dtype=dtype, keepdims=keepdims)


def _mean_t(xp: Any, t: Any, *, axis: Any = None, keepdims: bool = False) -> Any:
    return xp.mean(t, axis=shift_axes(axis, t.ndim - 1), keepdims=keepdims)


def _prod_jvp(
    xp: Any, primals: list, tangents: list, *, axis: Any = None, dtype: Any = None, keepdims: bool = False
) -> tuple:
    x, t = primals[0], tangents[0]
    y = xp.prod(x, axis=axis, dtype=dtype, keepdims=keepdims)
    x, t = _cast(xp, x, t, dtype)
    axes = reduced_axes(axis, x.ndim)
    if not axes:  # nothing is reduced: prod is the identity (up to the dtype)
        return y, t
    w = _others_product(xp, x, axes)
    return y, xp.sum(xp.multiply(t, w[None, ...]), axis=tuple(a + 1 for a in axes), keepdims=keepdims)


def _scan_affine(xp: Any, a: Any, b: Any) -> Any:
    """``d[k] = a[k] d[k-1] + b[k]`` with ``d[-1] = 0`` along the last axis, in log2(n) steps.

    ``a`` has the primal's shape, ``b`` a leading batch axis more (Hillis-Steele scan).
    """
    n = a.shape[-1]
    s = 1
    while s < n:
        head, tail = b[..., :s], b[..., s:]
        b = xp.concat([head, xp.add(tail, xp.multiply(b[..., :-s], a[..., s:][None, ...]))], axis=-1)
        if 2 * s < n:
            a = xp.concat([a[..., :s], xp.multiply(a[..., s:], a[..., :-s])], axis=-1)
        s *= 2
    return b


def _cumulative_prod_jvp(
    xp: Any,
    primals: list,
    tangents: list,
    *,
    axis: Any = None,
    dtype: Any = None,
    include_initial: bool = False,
) -> tuple:
    x, t = primals[0], tangents[0]
    y = xp.cumulative_prod(x, axis=axis, dtype=dtype, include_initial=include_initial)
    x, t = _cast(xp, x, t, dtype)
    ax = 0 if axis is None else axis % x.ndim
    xm, tm = xp.moveaxis(x, ax, -1), xp.moveaxis(t, ax + 1, -1)
    before = _exclusive_cumprod(xp, xm)  # y[k-1], with y[-1] = 1
    d = _scan_affine(xp, xm, xp.multiply(tm, before[None, ...]))
    if include_initial:  # the leading 1 is a constant
        d = xp.concat([zero_block(x, d.shape[0], (*d.shape[1:-1], 1), d.dtype), d], axis=-1)
    return y, xp.moveaxis(d, -1, ax + 1)


def _cumulative_sum_t(
    xp: Any, t: Any, *, axis: Any = None, dtype: Any = None, include_initial: bool = False
) -> Any:
    ax = 1 if axis is None else shift_axis(axis, t.ndim - 1)  # axis=None: a 1-D primal
    return xp.cumulative_sum(t, axis=ax, dtype=dtype, include_initial=include_initial)


def _var_parts(xp: Any, x: Any, t: Any, axis: Any, correction: float, keepdims: bool) -> tuple:
    """``sum((x - mean) * t)`` over the reduced axes and the divisor ``N - correction``."""
    xc = xp.subtract(x, xp.mean(x, axis=axis, keepdims=True))
    if xp.isdtype(x.dtype, "complex floating"):  # var = mean |x - mean|^2 is real: Re(conj(xc) t)
        s = xp.sum(
            xp.real(xp.multiply(t, xp.conj(xc)[None, ...])), axis=shift_axes(axis, x.ndim), keepdims=keepdims
        )
    else:
        s = xp.sum(xp.multiply(t, xc[None, ...]), axis=shift_axes(axis, x.ndim), keepdims=keepdims)
    n = math.prod(x.shape[a] for a in reduced_axes(axis, x.ndim))
    return s, n - correction


def _spread_jvp(std: bool) -> Any:
    """The JVP rule of ``var`` (``std=False``) or ``std``: both from ``_var_parts``."""

    def jvp(
        xp: Any,
        primals: list,
        tangents: list,
        *,
        axis: Any = None,
        correction: float = 0.0,
        keepdims: bool = False,
    ) -> tuple:
        x, t = primals[0], tangents[0]
        y = (xp.std if std else xp.var)(x, axis=axis, correction=correction, keepdims=keepdims)
        s, dof = _var_parts(xp, x, t, axis, correction, keepdims)
        if not std:
            # the sum of x - mean is zero, so t need not be centred; no degrees of freedom: nan
            return y, s * (2.0 / dof if dof != 0 else math.nan)
        # std is a norm of x - mean: at a constant input (std == 0) the slope is taken as 0,
        # like abs at 0; there s == 0 exactly, so dividing by 1 instead of 0 gives it.
        safe = xp.where(xp.equal(y, 0), 1.0, y)
        return y, xp.divide(s, safe[None, ...]) * (1.0 / dof if dof != 0 else math.nan)

    return jvp


_var_jvp = _spread_jvp(std=False)
_std_jvp = _spread_jvp(std=True)


def _extreme_jvp(name: str) -> Any:
    """The JVP of ``max`` or ``min``: tied extremes share the tangent evenly (JAX)."""

    def jvp(xp: Any, primals: list, tangents: list, *, axis: Any = None, keepdims: bool = False) -> tuple:
        x, t = primals[0], tangents[0]
        y = getattr(xp, name)(x, axis=axis, keepdims=keepdims)
        axes = reduced_axes(axis, x.ndim)
        hit = xp.equal(x, xp.reshape(y, _kept_shape(tuple(x.shape), axes)))  # plain booleans
        bxp = namespace_of(hit)
        w = bxp.astype(hit, x.dtype)
        w = bxp.divide(w, bxp.sum(w, axis=axes, keepdims=True))
        return y, xp.sum(xp.multiply(t, w[None, ...]), axis=tuple(a + 1 for a in axes), keepdims=keepdims)

    return jvp


def _diff(xp: Any, x: Any, prepend: Any = None, append: Any = None, **params: Any) -> Any:
    if prepend is not None:
        params["prepend"] = prepend
    if append is not None:
        params["append"] = append
    return xp.diff(x, **params)


def _diff_jvp(xp: Any, primals: list, tangents: list, *, axis: int = -1, n: int = 1) -> tuple:
    x, prepend, append = primals
    y = _diff(xp, x, prepend, append, axis=axis, n=n)
    if n == 0:  # diff returns x itself, without prepend or append
        return y, tangents[0]
    ax = axis % x.ndim
    edge = tuple(1 if i == ax else k for i, k in enumerate(x.shape))  # a scalar edge's shape
    B = common_batch(tangents)
    parts = []
    for p, t in ((prepend, tangents[1]), (x, tangents[0]), (append, tangents[2])):
        if p is None:
            continue
        shape = tuple(p.shape) if p is x or getattr(p, "ndim", 0) == x.ndim else edge
        if t is None:  # in the result's dtype, so the blocks promote as the primals did
            t = zero_block(x, B, shape, y.dtype)
        elif tuple(t.shape[1:]) != shape:  # a 0-d edge spans every other axis
            t = xp.reshape(t, (t.shape[0],) + (1,) * x.ndim)
        parts.append(xp.broadcast_to(t, (B, *shape)) if tuple(t.shape) != (B, *shape) else t)
    return y, xp.diff(xp.concat(parts, axis=ax + 1), axis=ax + 1, n=n)


RULES: tuple[Rule, ...] = (
    nondiff("all", "general", params=("axis", "keepdims"), dtypes="any"),
    nondiff("any", "general", params=("axis", "keepdims"), dtypes="any"),
    custom(
        "cumulative_prod",
        _cumulative_prod_jvp,
        params=("axis", "dtype", "include_initial"),
        note="exact at zeros: a scan of dy[k] = x[k] dy[k-1] + y[k-1] t[k], no division",
    ),
    linear("cumulative_sum", _cumulative_sum_t, params=("axis", "dtype", "include_initial")),
    custom("diff", _diff_jvp, f=_diff, args=("x", "prepend", "append"), params=("axis", "n")),
    custom(
        "max",
        _extreme_jvp("max"),
        params=("axis", "keepdims"),
        dtypes="real",
        note="ties share the tangent evenly (JAX)",
    ),
    linear("mean", _mean_t, params=("axis", "keepdims")),
    custom(
        "min",
        _extreme_jvp("min"),
        params=("axis", "keepdims"),
        dtypes="real",
        note="ties share the tangent evenly (JAX)",
    ),
    custom(
        "prod",
        _prod_jvp,
        params=("axis", "dtype", "keepdims"),
        note="exact at zeros: products of the other elements, no division",
    ),
    custom(
        "std",
        _std_jvp,
        params=("axis", "correction", "keepdims"),
        dtypes="real",
        note="slope 0 at a constant input (std == 0), like abs at 0; complex input: real tangent",
    ),
    linear("sum", _sum_t, params=("axis", "dtype", "keepdims")),
    custom(
        "var",
        _var_jvp,
        params=("axis", "correction", "keepdims"),
        dtypes="real",
        note="complex input: the real tangent 2 Re(conj(x - mean) t) / (N - correction)",
    ),
)
