"""NumPy's functions with NumPy's signatures, written with the fwdtensor namespace.

Each function takes NumPy's argument names and defaults (``axis=None``, ``ddof``, ``out``)
and calls ``ft.*``, so its derivative follows from the rules it is composed of; nothing
here writes a derivative by hand. ``_numpy_protocols`` maps NumPy's functions, ufuncs and
array methods to these. Functions that need a form the standard lacks (``einsum``,
``kron``, ``pad``, ``gradient``, ``interp``) are compositions of standard functions.
"""

from __future__ import annotations

import math
import string
from typing import Any

import numpy as np

from ..core import dual as _core
from ..core import errors as _errors
from ..core.backend import PY_SCALARS
from ..core.dual import DualTensor, innermost

ft: Any = _core.FT  # the namespace (set before this module is imported)
NV: Any = np._NoValue  # NumPy's "argument not given" marker, passed on as it is (numpy_protocols too)


# ------------------------------------------------------------------ helpers
def arr(x: Any) -> Any:
    """``x`` as an array of the namespace: duals and backend arrays stay, the rest is NumPy."""
    if type(x) is DualTensor or hasattr(x, "__array_namespace__"):
        return x
    return np.asarray(x)


def operand(x: Any) -> Any:
    """An elementwise operand: Python scalars stay weak (NumPy 2 promotion), the rest as ``arr``."""
    return x if type(x) in PY_SCALARS else arr(x)


def carries(x: Any) -> bool:
    """True when ``x`` is a dual that may carry a tangent (its own, or a lower level's)."""
    return type(x) is DualTensor and (x._t is not None or type(x.primal) is DualTensor)


def unsupported(name: str, what: str) -> _errors.NotDifferentiableError:
    return _errors.NotDifferentiableError(
        f"numpy.{name}: {what} is not supported on DualTensors; use the fwdtensor function "
        f"(ft.* / ft.linalg.* / ft.fft.*) or compute this step on .primal"
    )


def put(res: Any, out: Any, name: str = "") -> Any:
    """NumPy's ``out=``: a dual ``out`` is written into; a plain one only without a tangent."""
    if out is None:
        return res
    if isinstance(out, tuple):
        if len(out) != 1:
            raise unsupported(name, "more than one out= array")
        out = out[0]
    if type(out) is DualTensor:
        out[...] = res
        return out
    if carries(res):
        raise _errors.derivative_lost(f"numpy.{name}(..., out=<{type(out).__name__}>)")
    out[...] = innermost(res)
    return out


def fresh(x: Any) -> Any:
    """A new dual for ``x`` (never the caller's own object), where NumPy would return it as is."""
    return ft.reshape(x, tuple(x.shape)) if type(x) is DualTensor else x


def _given(v: Any) -> bool:
    return v is not NV and v is not None


def _no_where(where: Any, name: str) -> None:
    if where is not NV and where is not True:
        raise unsupported(name, "where=")


def axis_arg(axis: Any) -> Any:
    """NumPy's ``axis`` argument for the Array API: a list of axes becomes a tuple."""
    return tuple(axis) if isinstance(axis, list) else axis


def _ax(axis: int, ndim: int) -> int:
    return axis + ndim if axis < 0 else axis


def _cast(a: Any, dtype: Any) -> Any:
    return a if dtype is None else ft.astype(a, np.dtype(dtype))


def _f(a: Any) -> Any:
    """Integer and boolean inputs become float64 (NumPy's mean, std and friends)."""
    a = arr(a)
    return a if np.dtype(innermost(a).dtype).kind in "fc" else ft.astype(a, np.float64)


# -------------------------------------------------------------- reductions
def sum(a, axis=None, dtype=None, out=None, keepdims=False, initial=NV, where=NV):
    _no_where(where, "sum")
    r = ft.sum(arr(a), axis=axis_arg(axis), dtype=dtype, keepdims=bool(keepdims))
    return put(r if not _given(initial) else ft.add(r, initial), out, "sum")


def prod(a, axis=None, dtype=None, out=None, keepdims=False, initial=NV, where=NV):
    _no_where(where, "prod")
    r = ft.prod(arr(a), axis=axis_arg(axis), dtype=dtype, keepdims=bool(keepdims))
    return put(r if not _given(initial) else ft.multiply(r, initial), out, "prod")


def max(a, axis=None, out=None, keepdims=False, initial=NV, where=NV):
    _no_where(where, "max")
    r = ft.max(arr(a), axis=axis_arg(axis), keepdims=bool(keepdims))
    return put(r if not _given(initial) else ft.maximum(r, initial), out, "max")


def min(a, axis=None, out=None, keepdims=False, initial=NV, where=NV):
    _no_where(where, "min")
    r = ft.min(arr(a), axis=axis_arg(axis), keepdims=bool(keepdims))
    return put(r if not _given(initial) else ft.minimum(r, initial), out, "min")


def ptp(a, axis=None, out=None, keepdims=False):
    a = arr(a)
    r = ft.subtract(
        ft.max(a, axis=axis_arg(axis), keepdims=keepdims), ft.min(a, axis=axis_arg(axis), keepdims=keepdims)
    )
    return put(r, out, "ptp")


def mean(a, axis=None, dtype=None, out=None, keepdims=False, *, where=NV):
    _no_where(where, "mean")
    r = ft.mean(_cast(_f(a), dtype), axis=axis_arg(axis), keepdims=bool(keepdims))
    return put(r, out, "mean")


def std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=NV, mean=NV, correction=NV):
    _no_where(where, "std")
    c = correction if _given(correction) else ddof
    r = ft.std(_cast(_f(a), dtype), axis=axis_arg(axis), correction=c, keepdims=bool(keepdims))
    return put(r, out, "std")


def var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=NV, mean=NV, correction=NV):
    _no_where(where, "var")
    c = correction if _given(correction) else ddof
    r = ft.var(_cast(_f(a), dtype), axis=axis_arg(axis), correction=c, keepdims=bool(keepdims))
    return put(r, out, "var")


def average(a, axis=None, weights=None, returned=False, *, keepdims=False):
    a = _f(a)
    if weights is None:
        r = ft.mean(a, axis=axis_arg(axis), keepdims=keepdims)
        w = None
    else:
        w = arr(weights)
        if w.ndim != a.ndim:  # NumPy's 1-D weights along one axis
            if axis is None or w.ndim != 1:
                raise unsupported("average", "weights of another shape than a without one axis")
            shape = [1] * a.ndim
            shape[_ax(axis, a.ndim)] = w.shape[0]
            w = ft.reshape(w, tuple(shape))
        wsum = ft.sum(
            ft.broadcast_to(w, a.shape) if w.shape != a.shape else w, axis=axis_arg(axis), keepdims=keepdims
        )
        r = ft.divide(ft.sum(ft.multiply(a, w), axis=axis_arg(axis), keepdims=keepdims), wsum)
        w = wsum
    if returned:
        return r, (
            w if w is not None else ft.astype(ft.full_like(innermost(r), a.size / innermost(r).size), r.dtype)
        )
    return r


def _cumulative(fn: Any, a: Any, axis: Any, dtype: Any, out: Any, name: str) -> Any:
    a = arr(a)
    if axis is None:
        a, axis = ft.reshape(a, (-1,)), 0
    return put(fn(a, axis=axis, dtype=dtype), out, name)


def cumsum(a, axis=None, dtype=None, out=None):
    return _cumulative(ft.cumulative_sum, a, axis, dtype, out, "cumsum")


def cumprod(a, axis=None, dtype=None, out=None):
    return _cumulative(ft.cumulative_prod, a, axis, dtype, out, "cumprod")


def cumulative_sum(x, /, *, axis=None, dtype=None, out=None, include_initial=False):
    return put(ft.cumulative_sum(arr(x), axis=axis, dtype=dtype, include_initial=include_initial), out)


def cumulative_prod(x, /, *, axis=None, dtype=None, out=None, include_initial=False):
    return put(ft.cumulative_prod(arr(x), axis=axis, dtype=dtype, include_initial=include_initial), out)


def median(a, axis=None, out=None, overwrite_input=False, keepdims=False):
    return put(quantile(a, 0.5, axis=axis, keepdims=keepdims), out, "median")


def quantile(
    a, q, axis=None, out=None, overwrite_input=False, method="linear", keepdims=False, *, weights=None
):
    """NumPy's default (linear) quantile: an interpolation between two order statistics."""
    if method != "linear" or weights is not None:
        raise unsupported("quantile", f"method={method!r} or weights=")
    a = _f(a)
    if axis is None:
        nd, a, axis = a.ndim, ft.reshape(a, (-1,)), 0
    else:
        nd = a.ndim
    axis = _ax(axis, a.ndim)
    s = ft.sort(a, axis=axis)
    n = s.shape[axis]
    qs = np.asarray(innermost(q) if type(q) is DualTensor else q, dtype=np.float64)
    pos = qs.reshape(-1) * (n - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    frac = (pos - lo).astype(innermost(a).dtype)
    shape = [1] * s.ndim
    shape[axis] = -1
    frac = frac.reshape(shape)
    slo, shi = ft.take(s, np.asarray(lo), axis=axis), ft.take(s, np.asarray(hi), axis=axis)
    r = ft.add(slo, ft.multiply(ft.subtract(shi, slo), frac))
    r = ft.moveaxis(r, axis, 0)  # NumPy puts q's axis first
    if keepdims:
        r = ft.expand_dims(r, axis=axis + 1) if nd == s.ndim else ft.reshape(r, (r.shape[0],) + (1,) * nd)
    return put(r if qs.ndim else r[0, ...], out, "quantile")


def percentile(
    a, q, axis=None, out=None, overwrite_input=False, method="linear", keepdims=False, *, weights=None
):
    qq = np.asarray(q, dtype=np.float64) / 100.0
    return quantile(a, qq, axis, out, overwrite_input, method, keepdims, weights=weights)


def nansum(a, axis=None, dtype=None, out=None, keepdims=False, initial=NV, where=NV):
    a = arr(a)
    return sum(ft.where(ft.isnan(a), 0.0, a), axis, dtype, out, keepdims, initial, where)


def nanmean(a, axis=None, dtype=None, out=None, keepdims=False, *, where=NV):
    a = _f(a)
    ok = ft.logical_not(ft.isnan(a))
    s = ft.sum(ft.where(ok, a, 0.0), axis=axis_arg(axis), keepdims=keepdims)
    n = ft.sum(ft.astype(innermost(ok), innermost(a).dtype), axis=axis_arg(axis), keepdims=keepdims)
    return put(ft.divide(s, n), out, "nanmean")


def nanquantile(
    a, q, axis=None, out=None, overwrite_input=False, method="linear", keepdims=False, *, weights=None
):
    """NumPy's linear ``nanquantile``: NaNs sort last (as +inf), each slice interpolates between
    the order statistics of its own non-NaN count; an all-NaN slice gives NaN (constant)."""
    if method != "linear" or weights is not None:
        raise unsupported("nanquantile", f"method={method!r} or weights=")
    a = _f(a)
    nd = a.ndim
    if axis is None:
        a, axis = ft.reshape(a, (-1,)), 0
    axis = _ax(axis, a.ndim)
    nan = np.isnan(innermost(a))
    s = ft.sort(ft.where(nan, math.inf, a), axis=axis)
    last = np.maximum(np.sum(~nan, axis=axis, keepdims=True) - 1, 0)
    empty = np.all(nan, axis=axis, keepdims=True)
    qs = np.asarray(innermost(q) if type(q) is DualTensor else q, dtype=np.float64)
    rs = []
    with np.errstate(invalid="ignore"):  # inf - inf in all-NaN slices, replaced by NaN below
        for qq in qs.reshape(-1):
            pos = last * qq
            lo = np.floor(pos).astype(np.int64)
            hi = np.minimum(lo + 1, last)
            slo, shi = ft.take_along_axis(s, lo, axis=axis), ft.take_along_axis(s, hi, axis=axis)
            r = ft.add(slo, ft.multiply(ft.subtract(shi, slo), (pos - lo).astype(innermost(a).dtype)))
            rs.append(ft.where(empty, math.nan, r))
    r = ft.stack(rs, axis=0)  # NumPy puts q's axis first
    if not keepdims:
        r = ft.squeeze(r, axis=axis + 1)
    elif nd != a.ndim:
        r = ft.reshape(r, (r.shape[0],) + (1,) * nd)
    return put(r if qs.ndim else r[0, ...], out, "nanquantile")


def nanmedian(a, axis=None, out=None, overwrite_input=False, keepdims=False):
    return nanquantile(a, 0.5, axis, out, keepdims=keepdims)


def nanpercentile(
    a, q, axis=None, out=None, overwrite_input=False, method="linear", keepdims=False, *, weights=None
):
    qq = np.asarray(innermost(q) if type(q) is DualTensor else q, dtype=np.float64) / 100.0
    return nanquantile(a, qq, axis, out, overwrite_input, method, keepdims, weights=weights)


def fill_diagonal(a, val, wrap=False):
    """NumPy's in-place ``fill_diagonal``: the same flat positions, values repeated cyclically; a
    dual ``a`` takes ``val``'s tangent there, a plain ``a`` only a ``val`` without one."""
    shape = tuple(a.shape)
    if len(shape) < 2:
        raise ValueError("array must be at least 2-d")
    size = math.prod(shape)
    if len(shape) == 2:
        step = shape[1] + 1
        end = size if wrap or shape[1] >= shape[0] else shape[1] * shape[1]  # (min is NumPy's here)
    else:
        if len(set(shape)) != 1:
            raise ValueError("All dimensions of input must be of equal length")
        step, end = 1 + int(np.cumprod(shape[:-1]).sum()), size
    flat = np.arange(0, end, step)
    key = np.unravel_index(flat, shape)
    if type(a) is not DualTensor:
        if carries(val):
            raise _errors.derivative_lost("numpy.fill_diagonal(<ndarray>, <dual>)")
        np.fill_diagonal(a, innermost(val) if type(val) is DualTensor else val, wrap=wrap)
        return None
    v = arr(val)
    if v.ndim > 0:
        v = ft.reshape(v, (-1,))
        v = ft.take(v, np.arange(flat.size) % v.shape[0]) if v.shape[0] != flat.size else v
    a[key] = v
    return None


# ------------------------------------------------------------ linear algebra
def dot(a, b, out=None):
    """NumPy's ``dot``: a product for scalars, else the sum over a's last and b's second-to-last axis."""
    a, b = operand(a), operand(b)
    if type(a) in PY_SCALARS or type(b) in PY_SCALARS or a.ndim == 0 or b.ndim == 0:
        return put(ft.multiply(a, b), out, "dot")
    if a.ndim <= 2 and b.ndim <= 2:
        return put(ft.matmul(a, b), out, "dot")
    return put(ft.tensordot(a, b, axes=([a.ndim - 1], [b.ndim - 2 if b.ndim > 1 else 0])), out, "dot")


def vdot(a, b):
    a, b = arr(a), arr(b)
    return ft.sum(ft.multiply(ft.conj(ft.reshape(a, (-1,))), ft.reshape(b, (-1,))))


def inner(a, b):
    a, b = operand(a), operand(b)
    if type(a) in PY_SCALARS or type(b) in PY_SCALARS or a.ndim == 0 or b.ndim == 0:
        return ft.multiply(a, b)
    return ft.tensordot(a, b, axes=([a.ndim - 1], [b.ndim - 1]))


def outer(a, b, out=None):
    a, b = ft.reshape(arr(a), (-1, 1)), ft.reshape(arr(b), (1, -1))
    return put(ft.multiply(a, b), out, "outer")


def tensordot(a, b, axes=2):
    if not isinstance(axes, int):
        axes = tuple(tuple(x) if isinstance(x, (list, tuple)) else (x,) for x in axes)
    return ft.tensordot(arr(a), arr(b), axes=axes)


def matmul(x1, x2, /, out=None, **kwargs):
    if kwargs:
        raise unsupported("matmul", ", ".join(kwargs) + "=")
    return put(ft.matmul(arr(x1), arr(x2)), out, "matmul")


def vecdot(x1, x2, /, out=None, *, axis=-1, **kwargs):
    if kwargs:
        raise unsupported("vecdot", ", ".join(kwargs) + "=")
    return put(ft.vecdot(arr(x1), arr(x2), axis=axis), out, "vecdot")


def matvec(x1, x2, /, out=None, **kwargs):
    return put(ft.matmul(arr(x1), ft.expand_dims(arr(x2), axis=-1))[..., 0], out, "matvec")


def vecmat(x1, x2, /, out=None, **kwargs):
    return put(ft.matmul(ft.expand_dims(ft.conj(arr(x1)), axis=-2), arr(x2))[..., 0, :], out, "vecmat")


def _einsum_parse(subscripts: str, ops: list) -> tuple[list[str], str]:
    """Operand and output labels with ``...`` spelled out as upper-case letters."""
    subscripts = subscripts.replace(" ", "")
    lhs, arrow, rhs = subscripts.partition("->")
    ins = lhs.split(",")
    if len(ins) != len(ops):
        raise ValueError(f"einsum: {len(ins)} operand labels for {len(ops)} operands")
    pool = string.ascii_uppercase
    nell = 0
    full = []
    for s, x in zip(ins, ops):
        if "..." in s:
            k = x.ndim - (len(s) - 3)
            nell = k if k > nell else nell
            s = s.replace("...", pool[26 - k :] if k else "")
        full.append(s)
    ell = pool[26 - nell :] if nell else ""
    if arrow:
        out = rhs.replace("...", ell)
    else:
        letters = "".join(full)
        out = ell + "".join(sorted(c for c in set(letters) if letters.count(c) == 1 and c not in ell))
    return full, out


def einsum(subscripts, *operands, out=None, optimize=False, **kwargs):
    """``einsum`` as broadcast products summed over the contracted labels (any number of operands).

    Repeated labels within an operand take its diagonal first. Each pair of operands is
    multiplied in the order given, summing a label as soon as no later operand needs it.
    """
    if not isinstance(subscripts, str):
        raise unsupported("einsum", "the interleaved (operand, sublist) form")
    if kwargs.get("dtype") is not None:
        operands = tuple(_cast(arr(o), kwargs["dtype"]) for o in operands)
    ops = [arr(o) for o in operands]
    labels, outl = _einsum_parse(subscripts, ops)
    cur = None
    cl = ""
    for i, (x, lab) in enumerate(zip(ops, labels)):
        # repeated labels: take the diagonal (moved to the end, then linalg.diagonal)
        while len(set(lab)) < len(lab):
            c = next(c for c in lab if lab.count(c) > 1)
            i1 = lab.index(c)
            i2 = lab.index(c, i1 + 1)
            x = ft.moveaxis(x, (i1, i2), (-2, -1))
            rest = [ch for j, ch in enumerate(lab) if j not in (i1, i2)]
            x = ft.linalg.diagonal(x)
            lab = "".join(rest) + c
        later = set(outl).union(*labels[i + 1 :])
        # sum labels no one else needs before multiplying
        own = [j for j, ch in enumerate(lab) if ch not in later and (cur is None or ch not in cl)]
        if own:
            x = ft.sum(x, axis=tuple(own))
            lab = "".join(ch for j, ch in enumerate(lab) if j not in own)
        if cur is None:
            cur, cl = x, lab
        else:
            allc = cl + "".join(c for c in lab if c not in cl)
            a = _align(cur, cl, allc)
            b = _align(x, lab, allc)
            cur = ft.multiply(a, b)
            keep = [j for j, c in enumerate(allc) if c in later]
            drop = tuple(j for j in range(len(allc)) if j not in keep)
            cur = ft.sum(cur, axis=drop) if drop else cur
            cl = "".join(allc[j] for j in keep)
    drop = tuple(j for j, c in enumerate(cl) if c not in outl)
    if drop:
        cur = ft.sum(cur, axis=drop)
        cl = "".join(c for c in cl if c in outl)
    if cl != outl:
        cur = ft.permute_dims(cur, tuple(cl.index(c) for c in outl))
    return put(cur, out, "einsum")


def _align(x: Any, lab: str, allc: str) -> Any:
    """``x`` with labels ``lab`` permuted to the order of ``allc`` with unit axes for the rest."""
    order = sorted(range(len(lab)), key=lambda j: allc.index(lab[j]))
    if order != list(range(len(lab))):
        x = ft.permute_dims(x, tuple(order))
    present = {lab[j] for j in order}
    shape = []
    it = iter(x.shape)
    for c in allc:
        shape.append(next(it) if c in present else 1)
    return ft.reshape(x, tuple(shape)) if len(shape) != x.ndim else x


def kron(a, b):
    a, b = arr(a), arr(b)
    nd = a.ndim if a.ndim > b.ndim else b.ndim
    a = ft.reshape(a, (1,) * (nd - a.ndim) + tuple(a.shape))
    b = ft.reshape(b, (1,) * (nd - b.ndim) + tuple(b.shape))
    ai = ft.reshape(a, tuple(s for n in a.shape for s in (n, 1)))
    bi = ft.reshape(b, tuple(s for n in b.shape for s in (1, n)))
    return ft.reshape(ft.multiply(ai, bi), tuple(m * n for m, n in zip(a.shape, b.shape)))


def cross(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    """The cross product of 3-vectors (or the z-component for 2-vectors), NumPy's broadcasting."""
    if axis is not None:
        axisa = axisb = axisc = axis
    a, b = ft.moveaxis(arr(a), axisa, -1), ft.moveaxis(arr(b), axisb, -1)
    if a.shape[-1] not in (2, 3) or b.shape[-1] not in (2, 3):
        raise ValueError("incompatible dimensions for cross product (dimension must be 2 or 3)")
    a0, a1, b0, b1 = a[..., 0], a[..., 1], b[..., 0], b[..., 1]
    a2 = a[..., 2] if a.shape[-1] == 3 else 0.0
    b2 = b[..., 2] if b.shape[-1] == 3 else 0.0
    z = ft.subtract(ft.multiply(a0, b1), ft.multiply(a1, b0))
    if a.shape[-1] == 2 and b.shape[-1] == 2:
        return z
    x = ft.subtract(ft.multiply(a1, b2), ft.multiply(a2, b1))
    y = ft.subtract(ft.multiply(a2, b0), ft.multiply(a0, b2))
    x, y, z = ft.broadcast_arrays(*[ft.asarray(v) if type(v) in PY_SCALARS else v for v in (x, y, z)])
    return ft.moveaxis(ft.stack([x, y, z], axis=-1), -1, axisc)


def trace(a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    x = ft.moveaxis(arr(a), (axis1, axis2), (-2, -1))
    return put(_cast(ft.linalg.trace(x, offset=offset), dtype), out, "trace")


def diagonal(a, offset=0, axis1=0, axis2=1):
    return ft.linalg.diagonal(ft.moveaxis(arr(a), (axis1, axis2), (-2, -1)), offset=offset)


def diag(v, k=0):
    v = arr(v)
    if v.ndim == 2:
        return ft.linalg.diagonal(v, offset=k)
    if v.ndim != 1:
        raise ValueError("Input must be 1- or 2-d.")
    m = v.shape[0]
    n = m + abs(k)
    i, j = np.indices((n, n))
    mask = j - i == k
    idx = np.clip(i if k >= 0 else j, 0, m - 1).reshape(-1)
    full = ft.reshape(ft.take(v, idx, axis=0), (n, n))
    return ft.where(mask, full, 0.0)


def triu(m, k=0):
    return ft.triu(arr(m), k=k)


def tril(m, k=0):
    return ft.tril(arr(m), k=k)


def polyval(p, x):
    p, x = arr(p), operand(x)
    y = p[0, ...] if p.ndim else p
    for i in range(1, p.shape[0] if p.ndim else 1):
        y = ft.add(ft.multiply(y, x), p[i, ...])
    return y


# -------------------------------------------------------------- manipulation
def _fortran(fn: Any, a: Any, shape: tuple) -> Any:
    """``fn`` (a reshape) in Fortran order: reverse the axes around a C-order reshape."""
    a = ft.permute_dims(a, tuple(range(a.ndim))[::-1])
    r = fn(a, tuple(shape)[::-1])
    return ft.permute_dims(r, tuple(range(r.ndim))[::-1])


def _shape(shape: Any) -> tuple:
    return (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)


def reshape(a, /, shape=None, order="C", *, newshape=None, copy=None):
    shape = _shape(shape if shape is not None else newshape)
    a = arr(a)
    if order == "F":
        return _fortran(lambda x, s: ft.reshape(x, s, copy=copy), a, shape)
    if order not in ("C", "A"):
        raise unsupported("reshape", f"order={order!r}")
    return ft.reshape(a, shape, copy=copy)


def ravel(a, order="C"):
    return reshape(a, (-1,), order="F" if order == "F" else "C")


def transpose(a, axes=None):
    a = arr(a)
    return ft.permute_dims(a, tuple(range(a.ndim))[::-1] if axes is None else tuple(axes))


def swapaxes(a, axis1, axis2):
    a = arr(a)
    axes = list(range(a.ndim))
    i, j = _ax(axis1, a.ndim), _ax(axis2, a.ndim)
    axes[i], axes[j] = axes[j], axes[i]
    return ft.permute_dims(a, tuple(axes))


def moveaxis(a, source, destination):
    src = tuple(source) if isinstance(source, (list, tuple)) else source
    dst = tuple(destination) if isinstance(destination, (list, tuple)) else destination
    return ft.moveaxis(arr(a), src, dst)


def squeeze(a, axis=None):
    a = arr(a)
    if axis is None:
        axis = tuple(i for i, n in enumerate(a.shape) if n == 1)
        if not axis:
            return ft.reshape(a, tuple(a.shape))
    return ft.squeeze(a, axis=axis_arg(axis))


def expand_dims(a, axis):
    a = arr(a)
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    nd = a.ndim + len(axes)
    shape = list(a.shape)
    for ax in sorted(_ax(x, nd) for x in axes):
        shape.insert(ax, 1)
    return ft.reshape(a, tuple(shape))


def _arrays(seq: Any) -> list:
    return [arr(x) for x in seq]


def concatenate(arrays, axis=0, out=None, *, dtype=None, casting="same_kind"):
    xs = _arrays(arrays)
    if axis is None:
        xs, axis = [ft.reshape(x, (-1,)) for x in xs], 0
    return put(_cast(ft.concat(xs, axis=axis), dtype), out, "concatenate")


def stack(arrays, axis=0, out=None, *, dtype=None, casting="same_kind"):
    return put(_cast(ft.stack(_arrays(arrays), axis=axis), dtype), out, "stack")


def atleast_1d(*arys):
    r = [ft.reshape(x, (1,)) if x.ndim == 0 else fresh(x) for x in _arrays(arys)]
    return r[0] if len(r) == 1 else tuple(r)


def atleast_2d(*arys):
    r = [
        ft.reshape(x, (1,) * (2 - x.ndim) + tuple(x.shape)) if x.ndim < 2 else fresh(x) for x in _arrays(arys)
    ]
    return r[0] if len(r) == 1 else tuple(r)


def atleast_3d(*arys):
    def up(x: Any) -> Any:
        if x.ndim == 0:
            return ft.reshape(x, (1, 1, 1))
        if x.ndim == 1:
            return ft.reshape(x, (1, x.shape[0], 1))
        return ft.reshape(x, (*x.shape, 1)) if x.ndim == 2 else fresh(x)

    r = [up(x) for x in _arrays(arys)]
    return r[0] if len(r) == 1 else tuple(r)


def _tuple(r: Any) -> list:
    return list(r) if isinstance(r, tuple) else [r]


def hstack(tup, *, dtype=None, casting="same_kind"):
    xs = [atleast_1d(x) for x in tup]
    return _cast(ft.concat(xs, axis=0 if xs[0].ndim == 1 else 1), dtype)


def vstack(tup, *, dtype=None, casting="same_kind"):
    return _cast(ft.concat([atleast_2d(x) for x in tup], axis=0), dtype)


def dstack(tup):
    return ft.concat([atleast_3d(x) for x in tup], axis=2)


def column_stack(tup):
    xs = [arr(x) for x in tup]
    return ft.concat([ft.reshape(x, (-1, 1)) if x.ndim < 2 else x for x in xs], axis=1)


def array_split(ary, indices_or_sections, axis=0):
    a = arr(ary)
    n = a.shape[axis]
    if isinstance(indices_or_sections, (int, np.integer)):
        k = int(indices_or_sections)
        q, r = divmod(n, k)
        sizes = [q + 1] * r + [q] * (k - r)
        bounds = np.cumsum([0, *sizes]).tolist()
    else:
        bounds = [0, *[int(i) for i in indices_or_sections], n]
    lead = (slice(None),) * _ax(axis, a.ndim)
    return [a[(*lead, slice(lo, hi), ...)] for lo, hi in zip(bounds[:-1], bounds[1:])]


def split(ary, indices_or_sections, axis=0):
    if isinstance(indices_or_sections, (int, np.integer)) and arr(ary).shape[axis] % indices_or_sections:
        raise ValueError("array split does not result in an equal division")
    return array_split(ary, indices_or_sections, axis)


def hsplit(ary, indices_or_sections):
    return split(ary, indices_or_sections, axis=1 if arr(ary).ndim > 1 else 0)


def vsplit(ary, indices_or_sections):
    return split(ary, indices_or_sections, axis=0)


def dsplit(ary, indices_or_sections):
    return split(ary, indices_or_sections, axis=2)


def roll(a, shift, axis=None):
    a = arr(a)
    if axis is None:  # the standard flattens and restores the shape, as NumPy does
        return ft.roll(a, shift, axis=0) if a.ndim == 1 else ft.roll(a, shift)
    return ft.roll(a, shift, axis=axis_arg(axis))


def flip(m, axis=None):
    return ft.flip(arr(m), axis=axis_arg(axis))


def fliplr(m):
    return ft.flip(arr(m), axis=1)


def flipud(m):
    return ft.flip(arr(m), axis=0)


def rot90(m, k=1, axes=(0, 1)):
    m = arr(m)
    k %= 4
    a0, a1 = axes
    if k == 0:
        return ft.reshape(m, tuple(m.shape))
    if k == 2:
        return ft.flip(m, axis=(a0, a1))
    if k == 1:
        return swapaxes(ft.flip(m, axis=a1), a0, a1)
    return ft.flip(swapaxes(m, a0, a1), axis=a1)


def tile(A, reps):
    reps = (int(reps),) if isinstance(reps, (int, np.integer)) else tuple(reps)
    return ft.tile(arr(A), reps)


def repeat(a, repeats, axis=None):
    a = arr(a)
    if axis is None:
        a, axis = ft.reshape(a, (-1,)), 0
    return ft.repeat(a, repeats if isinstance(repeats, int) else np.asarray(repeats), axis=axis)


def broadcast_to(array, shape, subok=False):
    return ft.broadcast_to(arr(array), _shape(shape))


def broadcast_arrays(*args, subok=False):
    return tuple(ft.broadcast_arrays(*_arrays(args)))


def append(arr_, values, axis=None):
    a, v = arr(arr_), arr(values)
    if axis is None:
        return ft.concat([ft.reshape(a, (-1,)), ft.reshape(v, (-1,))], axis=0)
    return ft.concat([a, v], axis=axis)


def _width(pad_width: Any, ndim: int) -> list[tuple[int, int]]:
    w = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (ndim, 2))
    return [(int(b), int(a)) for b, a in w]


def pad(array, pad_width, mode="constant", **kwargs):
    """``pad`` in the modes constant, edge, wrap, reflect and symmetric (widths up to the axis length)."""
    x = arr(array)
    cv = kwargs.get("constant_values", 0)
    for ax, (b, a) in enumerate(_width(pad_width, x.ndim)):
        if b == 0 and a == 0:
            continue
        n = x.shape[ax]
        lead = (slice(None),) * ax

        def sl(lo: Any, hi: Any, x: Any = x, lead: tuple = lead) -> Any:
            return x[(*lead, slice(lo, hi), ...)]

        if mode == "constant":
            c = np.broadcast_to(np.asarray(cv, dtype=np.float64), (x.ndim, 2))[ax]
            dt = innermost(x).dtype

            def block(k: int, val: float, x: Any = x, ax: int = ax, dt: Any = dt) -> Any:
                shape = list(x.shape)
                shape[ax] = k
                return np.full(tuple(shape), val, dtype=dt)

            before, after = block(b, c[0]), block(a, c[1])
        elif mode == "edge":
            before = ft.repeat(sl(0, 1), b, axis=ax)
            after = ft.repeat(sl(n - 1, n), a, axis=ax)
        elif mode == "wrap" and b <= n and a <= n:
            before, after = sl(n - b, n), sl(0, a)
        elif mode == "reflect" and b < n and a < n:
            before, after = ft.flip(sl(1, b + 1), axis=ax), ft.flip(sl(n - 1 - a, n - 1), axis=ax)
        elif mode == "symmetric" and b <= n and a <= n:
            before, after = ft.flip(sl(0, b), axis=ax), ft.flip(sl(n - a, n), axis=ax)
        else:
            raise unsupported("pad", f"mode={mode!r} with these widths")
        x = ft.concat([before, x, after], axis=ax)
    return x


def diff(a, n=1, axis=-1, prepend=NV, append=NV):
    a = arr(a)

    def edge(v: Any) -> Any:
        if not _given(v):
            return None
        v = operand(v)
        if type(v) in PY_SCALARS or v.ndim == 0:
            shape = list(a.shape)
            shape[axis] = 1
            return ft.broadcast_to(
                v if type(v) is DualTensor else np.asarray(v, innermost(a).dtype), tuple(shape)
            )
        return v

    return ft.diff(a, axis=axis, n=n, prepend=edge(prepend), append=edge(append))


def gradient(f, *varargs, axis=None, edge_order=1):
    """Second-order central differences inside, first-order ones at the edges (``edge_order=1``)."""
    if edge_order != 1:
        raise unsupported("gradient", "edge_order=2")
    f = _f(f)
    axes = list(range(f.ndim)) if axis is None else ([axis] if isinstance(axis, int) else list(axis))
    sp = list(varargs) if len(varargs) > 1 else list(varargs) * len(axes) if varargs else [1.0] * len(axes)
    out = []
    for ax, h in zip(axes, sp):
        ax = _ax(ax, f.ndim)
        lead = (slice(None),) * ax

        def s(lo: Any, hi: Any, lead: tuple = lead) -> Any:
            return f[(*lead, slice(lo, hi), ...)]

        shape = [1] * f.ndim
        shape[ax] = -1
        if np.ndim(innermost(h)) == 0:
            mid = ft.divide(ft.subtract(s(2, None), s(None, -2)), 2.0 * h)
            lo = ft.divide(ft.subtract(s(1, 2), s(0, 1)), h)
            hi = ft.divide(ft.subtract(s(-1, None), s(-2, -1)), h)
        else:
            dx = ft.reshape(ft.diff(arr(h)), tuple(shape))
            d1, d2 = dx[(*lead, slice(None, -1), ...)], dx[(*lead, slice(1, None), ...)]
            den = ft.multiply(ft.add(d1, d2), 1.0)
            ca = ft.negative(ft.divide(d2, ft.multiply(d1, den)))
            cb = ft.divide(ft.subtract(d2, d1), ft.multiply(d1, d2))
            cc = ft.divide(d1, ft.multiply(d2, den))
            mid = ft.add(
                ft.add(ft.multiply(ca, s(None, -2)), ft.multiply(cb, s(1, -1))), ft.multiply(cc, s(2, None))
            )
            lo = ft.divide(ft.subtract(s(1, 2), s(0, 1)), dx[(*lead, slice(0, 1), ...)])
            hi = ft.divide(ft.subtract(s(-1, None), s(-2, -1)), dx[(*lead, slice(-1, None), ...)])
        out.append(ft.concat([lo, mid, hi], axis=ax))
    return out[0] if len(out) == 1 else tuple(out)


def trapezoid(y, x=None, dx=1.0, axis=-1):
    y = _f(y)
    y = ft.moveaxis(y, axis, -1)
    avg = ft.multiply(ft.add(y[..., 1:], y[..., :-1]), 0.5)
    if x is None:
        return ft.multiply(ft.sum(avg, axis=-1), dx)
    x = arr(x)
    d = ft.diff(x) if x.ndim == 1 else ft.diff(ft.moveaxis(x, axis, -1), axis=-1)
    return ft.sum(ft.multiply(avg, d), axis=-1)


def interp(x, xp, fp, left=None, right=None, period=None):
    """Piecewise-linear interpolation; differentiable in ``x``, ``xp`` and ``fp`` (slope of the segment)."""
    if period is not None:
        raise unsupported("interp", "period=")
    x, xp, fp = operand(x), arr(xp), arr(fp)
    xs = innermost(x) if type(x) is DualTensor else np.asarray(x)
    n = xp.shape[0]
    i = np.clip(np.searchsorted(np.asarray(innermost(xp)), xs, side="right") - 1, 0, n - 2)
    idx = np.asarray(i).reshape(-1)
    x0, x1 = ft.take(xp, idx, axis=0), ft.take(xp, idx + 1, axis=0)
    y0, y1 = ft.take(fp, idx, axis=0), ft.take(fp, idx + 1, axis=0)
    shape = tuple(np.shape(xs))
    x0, x1, y0, y1 = (ft.reshape(v, shape) for v in (x0, x1, y0, y1))
    t = ft.divide(ft.subtract(x, x0), ft.subtract(x1, x0))
    y = ft.add(y0, ft.multiply(t, ft.subtract(y1, y0)))
    lo = fp[0] if left is None else left
    hi = fp[-1] if right is None else right
    y = ft.where(xs < innermost(xp)[0], lo, y)
    return ft.where(xs > innermost(xp)[-1], hi, y)


def where(condition, x=NV, y=NV):
    if x is NV and y is NV:
        return np.nonzero(innermost(condition))
    cond = innermost(condition) if type(condition) is DualTensor else np.asarray(condition)
    return ft.where(cond, operand(x), operand(y))


def select(condlist, choicelist, default=0):
    r = operand(default)
    for c, v in zip(condlist[::-1], choicelist[::-1]):
        r = ft.where(np.asarray(innermost(c)), operand(v), r)
    return r


def clip(a, a_min=NV, a_max=NV, out=None, *, min=NV, max=NV, **kwargs):
    lo = a_min if a_min is not NV else min
    hi = a_max if a_max is not NV else max
    lo, hi = (None if v is NV else v for v in (lo, hi))
    return put(ft.clip(arr(a), min=lo, max=hi), out, "clip")


def take(a, indices, axis=None, out=None, mode="raise"):
    a = arr(a)
    if axis is None:
        a, axis = ft.reshape(a, (-1,)), 0
    ind = np.asarray(innermost(indices))
    r = ft.take(a, ind.reshape(-1), axis=axis)
    if ind.ndim != 1:
        ax = _ax(axis, a.ndim)
        r = ft.reshape(r, (*a.shape[:ax], *ind.shape, *a.shape[ax + 1 :]))
    return put(r, out, "take")


def take_along_axis(arr_, indices, axis=-1):
    a = arr(arr_)
    if axis is None:
        a, axis = ft.reshape(a, (-1,)), 0
    return ft.take_along_axis(a, np.asarray(innermost(indices)), axis=axis)


def sort(a, axis=-1, kind=None, order=None, *, stable=None):
    a = arr(a)
    if axis is None:
        a, axis = ft.reshape(a, (-1,)), 0
    return ft.sort(a, axis=axis, stable=bool(stable) or kind == "stable")


def partition(a, kth, axis=-1, kind="introselect", order=None):
    """A sorted array is one valid partition, and sort has a derivative rule."""
    return sort(a, axis=axis)


def copy(a, order="K", subok=False):
    a = arr(a)
    return ft.astype(a, innermost(a).dtype, copy=True)


def astype(x, dtype, /, *, copy=True, device=None):
    return ft.astype(arr(x), np.dtype(dtype), copy=copy)


def meshgrid(*xi, copy=True, sparse=False, indexing="xy"):
    if sparse:
        raise unsupported("meshgrid", "sparse=True")
    return tuple(ft.meshgrid(*_arrays(xi), indexing=indexing))


def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0, *, device=None):
    if axis != 0:
        raise unsupported("linspace", "axis=")
    start, stop = operand(start), operand(stop)
    div = (num - 1) if endpoint else num
    steps = np.arange(num, dtype=np.float64) / (div if div > 0 else 1)
    shape = (num,) + (1,) * (0 if type(start) in PY_SCALARS else start.ndim)
    steps = steps.reshape(shape)
    delta = ft.subtract(stop, start)
    r = _cast(ft.add(start, ft.multiply(delta, steps)), dtype)
    return (r, ft.divide(delta, div)) if retstep else r


# ----------------------------------------------------------- elementwise extras
def real(val):
    return ft.real(arr(val))


def imag(val):
    return ft.imag(arr(val))


def conj(x, /, out=None, **kwargs):
    return put(ft.conj(arr(x)), out, "conj")


def angle(z, deg=False):
    z = arr(z)
    if np.dtype(innermost(z).dtype).kind == "c":
        r = ft.atan2(ft.imag(z), ft.real(z))
    else:  # 0 or pi: a step function, zero derivative
        r = np.where(np.asarray(innermost(z)) < 0, np.pi, 0.0).astype(innermost(z).dtype)
    return ft.multiply(r, 180.0 / math.pi) if deg else r


def around(a, decimals=0, out=None):
    a = arr(a)
    if decimals == 0:
        return put(ft.round(a), out, "round")
    s = 10.0**decimals
    return put(ft.divide(ft.round(ft.multiply(a, s)), s), out, "round")


def sinc(x):
    x = arr(x)
    zero = np.asarray(innermost(x)) == 0
    px = ft.multiply(ft.where(zero, 1.0, x), math.pi)
    return ft.where(zero, 1.0, ft.divide(ft.sin(px), px))


def nan_to_num(x, copy=True, nan=0.0, posinf=None, neginf=None):
    x = arr(x)
    p = np.asarray(innermost(x))
    info = np.finfo(p.real.dtype) if p.dtype.kind in "fc" else None
    if info is None:
        return fresh(x)
    hi = info.max if posinf is None else posinf
    lo = info.min if neginf is None else neginf
    x = ft.where(np.isnan(p), nan, x)
    x = ft.where(np.isposinf(p), hi, x)
    return ft.where(np.isneginf(p), lo, x)


def real_if_close(a, tol=100):
    a = arr(a)
    p = np.asarray(innermost(a))
    if p.dtype.kind != "c":
        return fresh(a)
    t = tol * np.finfo(p.dtype).eps if tol > 1 else tol
    return ft.real(a) if np.all(np.abs(p.imag) < t) else fresh(a)


def exp2(x, /, **kw):
    return ft.exp(ft.multiply(operand(x), math.log(2.0)))


def logaddexp2(x1, x2, /, **kw):
    ln2 = math.log(2.0)
    return ft.divide(ft.logaddexp(ft.multiply(operand(x1), ln2), ft.multiply(operand(x2), ln2)), ln2)


def deg2rad(x, /, **kw):
    return ft.multiply(operand(x), math.pi / 180.0)


def rad2deg(x, /, **kw):
    return ft.multiply(operand(x), 180.0 / math.pi)


def _nan(x: Any) -> Any:
    return np.isnan(innermost(x)) if type(x) is DualTensor else np.isnan(x)


def fmax(x1, x2, /, **kw):
    """``maximum`` that ignores NaN (the other operand wins, with its tangent)."""
    a, b = operand(x1), operand(x2)
    return ft.where(_nan(b), a, ft.where(_nan(a), b, ft.maximum(a, b)))


def fmin(x1, x2, /, **kw):
    a, b = operand(x1), operand(x2)
    return ft.where(_nan(b), a, ft.where(_nan(a), b, ft.minimum(a, b)))


def cbrt(x, /, **kw):
    x = operand(x)
    return ft.multiply(ft.sign(x), ft.pow(ft.abs(x), 1.0 / 3.0))


def float_power(x1, x2, /, **kw):
    def up(v: Any) -> Any:
        v = operand(v)
        if type(v) in PY_SCALARS:
            return v
        kind = np.dtype(innermost(v).dtype).kind
        return ft.astype(v, np.complex128 if kind == "c" else np.float64)

    return ft.pow(up(x1), up(x2))


def fmod(x1, x2, /, **kw):
    """C's remainder (sign of the dividend): ``x1 - trunc(x1 / x2) * x2``."""
    a, b = operand(x1), operand(x2)
    return ft.subtract(a, ft.multiply(ft.trunc(ft.divide(a, b)), b))


def heaviside(x1, x2, /, **kw):
    x = np.asarray(innermost(x1)) if type(x1) is DualTensor else np.asarray(x1)
    h = operand(x2)
    return ft.where(x > 0, 1.0, ft.where(x == 0, h, 0.0))


def ldexp(x1, x2, /, **kw):
    n = np.asarray(innermost(x2))
    return ft.multiply(operand(x1), np.ldexp(np.ones((), dtype=np.asarray(innermost(x1)).dtype), n))


def square(x, /, **kw):
    return ft.square(operand(x))


def divmod_(x1, x2, /, **kw):
    return ft.floor_divide(operand(x1), operand(x2)), ft.remainder(operand(x1), operand(x2))


def modf(x, /, **kw):
    x = operand(x)
    i = ft.trunc(x)
    return ft.subtract(x, i), i


# ------------------------------------------------------- statistics and signals
def cov(m, y=None, rowvar=True, bias=False, ddof=None, fweights=None, aweights=None, *, dtype=None):
    """Covariance of the rows (variables) of ``m``: centred products over the observations."""
    if fweights is not None or aweights is not None:
        raise unsupported("cov", "fweights= or aweights=")
    x = atleast_2d(_f(m))
    if not rowvar and x.shape[0] != 1:
        x = ft.matrix_transpose(x)
    if y is not None:
        yy = atleast_2d(_f(y))
        if not rowvar and yy.shape[0] != 1:
            yy = ft.matrix_transpose(yy)
        x = ft.concat([x, yy], axis=0)
    n = x.shape[1]
    dd = (0 if bias else 1) if ddof is None else ddof
    xc = ft.subtract(x, ft.mean(x, axis=1, keepdims=True))
    c = ft.divide(ft.matmul(xc, ft.conj(ft.matrix_transpose(xc))), n - dd)
    c = _cast(c, dtype)
    return ft.reshape(c, ()) if c.shape == (1, 1) else c


def corrcoef(x, y=None, rowvar=True, *, dtype=None):
    c = cov(x, y, rowvar, dtype=dtype)
    if c.ndim == 0:
        return ft.divide(c, c)
    d = ft.sqrt(ft.real(ft.linalg.diagonal(c)))
    return ft.divide(ft.divide(c, ft.reshape(d, (-1, 1))), ft.reshape(d, (1, -1)))


def convolve(a, v, mode="full"):
    """Discrete linear convolution as a sum of shifted, scaled copies (one per kernel entry)."""
    a, v = ft.reshape(arr(a), (-1,)), ft.reshape(arr(v), (-1,))
    if v.shape[0] > a.shape[0]:
        a, v = v, a
    n, m = a.shape[0], v.shape[0]
    full = None
    for k in range(m):
        term = ft.multiply(pad(a, (k, m - 1 - k)), v[k])
        full = term if full is None else ft.add(full, term)
    if mode == "full":
        return full
    if mode == "same":
        start = (m - 1) // 2
        return full[start : start + n]
    if mode == "valid":
        return full[m - 1 : n]
    raise ValueError(f"mode must be one of 'full', 'same' or 'valid', got {mode!r}")


def correlate(a, v, mode="valid"):
    return convolve(a, ft.conj(ft.flip(ft.reshape(arr(v), (-1,)), axis=0)), mode)


def logsumexp_reduce(a, axis=0, keepdims=False, base2=False):
    """``np.logaddexp.reduce``: a shifted log-sum-exp (the shift's derivative cancels)."""
    a = _f(a)
    if base2:
        a = ft.multiply(a, math.log(2.0))
    m = ft.max(innermost(a), axis=axis_arg(axis), keepdims=True)  # a constant shift
    m = np.where(np.isfinite(m), m, 0.0)
    r = ft.add(ft.log(ft.sum(ft.exp(ft.subtract(a, m)), axis=axis_arg(axis), keepdims=True)), m)
    if not keepdims:
        r = ft.squeeze(r, axis=axis_arg(axis) if axis is not None else tuple(range(r.ndim)))
    return ft.divide(r, math.log(2.0)) if base2 else r


def _cumulative_extreme(fn: Any, a: Any, axis: int) -> Any:
    """A running maximum or minimum along ``axis`` (one ``fn`` per element of the axis)."""
    a = ft.moveaxis(arr(a), axis, 0)
    parts = [a[0, ...]]
    for i in range(1, a.shape[0]):
        parts.append(fn(parts[-1], a[i, ...]))
    return ft.moveaxis(ft.stack(parts, axis=0), 0, axis)


def cummax(a, axis=0):
    return _cumulative_extreme(ft.maximum, a, axis)


def cummin(a, axis=0):
    return _cumulative_extreme(ft.minimum, a, axis)


def _nan_filled(a: Any, value: float) -> Any:
    a = arr(a)
    return ft.where(np.isnan(np.asarray(innermost(a))), value, a)


def nanmax(a, axis=None, out=None, keepdims=False, initial=NV, where=NV):
    return max(_nan_filled(a, -math.inf), axis, out, keepdims, initial, where)


def nanmin(a, axis=None, out=None, keepdims=False, initial=NV, where=NV):
    return min(_nan_filled(a, math.inf), axis, out, keepdims, initial, where)


def nanprod(a, axis=None, dtype=None, out=None, keepdims=False, initial=NV, where=NV):
    return prod(_nan_filled(a, 1.0), axis, dtype, out, keepdims, initial, where)


def nancumsum(a, axis=None, dtype=None, out=None):
    return cumsum(_nan_filled(a, 0.0), axis, dtype, out)


def nanvar(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=NV, mean=NV, correction=NV):
    a = _f(a)
    ok = np.logical_not(np.isnan(np.asarray(innermost(a))))
    n = np.sum(ok, axis=axis_arg(axis), keepdims=True)
    c = correction if _given(correction) else ddof
    mu = ft.divide(ft.sum(ft.where(ok, a, 0.0), axis=axis_arg(axis), keepdims=True), n)
    dev = ft.where(ok, ft.abs(ft.subtract(a, mu)), 0.0)
    r = ft.divide(ft.sum(ft.square(dev), axis=axis_arg(axis), keepdims=True), n - c)
    if not keepdims:
        r = ft.squeeze(r, axis=axis_arg(axis) if axis is not None else tuple(range(r.ndim)))
    return put(_cast(r, dtype), out, "nanvar")


def nanstd(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=NV, mean=NV, correction=NV):
    r = nanvar(a, axis, dtype, None, ddof, keepdims, correction=correction)
    return put(ft.sqrt(r), out, "nanstd")


def logspace(start, stop, num=50, endpoint=True, base=10.0, dtype=None, axis=0):
    return _cast(ft.pow(base, linspace(start, stop, num, endpoint, axis=axis)), dtype)


def fix(x, out=None):
    return put(ft.trunc(arr(x)), out, "fix")


def ediff1d(ary, to_end=None, to_begin=None):
    d = ft.diff(ft.reshape(arr(ary), (-1,)))
    parts = [ft.reshape(arr(v), (-1,)) for v in (to_begin,) if v is not None]
    parts += [d] + [ft.reshape(arr(v), (-1,)) for v in (to_end,) if v is not None]
    return ft.concat(parts, axis=0) if len(parts) > 1 else d


def vander(x, N=None, increasing=False):
    x = ft.reshape(arr(x), (-1, 1))
    n = x.shape[0] if N is None else N
    powers = np.arange(n) if increasing else np.arange(n)[::-1].copy()
    return ft.pow(x, powers.astype(innermost(x).dtype))


def cond(x, p=None):
    """The 2-norm condition number (``p=None`` or 2): largest over smallest singular value."""
    if p not in (None, 2, -2):
        raise unsupported("linalg.cond", f"p={p!r}")
    s = ft.linalg.svdvals(arr(x))
    big, small = ft.max(s, axis=-1), ft.min(s, axis=-1)
    return ft.divide(small, big) if p == -2 else ft.divide(big, small)


def lstsq(a, b, rcond=None):
    """Least squares through the pseudo-inverse; returns NumPy's (x, residuals, rank, s)."""
    a, b = arr(a), arr(b)
    x = ft.matmul(ft.linalg.pinv(a), b)
    s = ft.linalg.svdvals(a)
    rank = int(np.linalg.matrix_rank(np.asarray(innermost(a))))
    m, n = a.shape
    if rank == n and m > n:
        r = ft.subtract(ft.matmul(a, x), b)
        res = ft.sum(ft.square(ft.abs(r)), axis=0)
        res = ft.reshape(res, (1,)) if res.ndim == 0 else res
    else:
        res = np.empty((0,), dtype=innermost(a).dtype)
    return x, res, rank, s
