"""Creation functions: new arrays carry no tangent, except where a dual supplies the values.

Differentiable: ``asarray`` of duals (nested sequences holding duals are stacked), ``full``
and ``full_like`` with a 0-d dual ``fill_value``, ``linspace`` in ``start`` and ``stop``
(tangent ``(1 - s) dstart + s dstop`` with ``s = i / (num - 1)``, or ``i / num`` without
the endpoint), ``meshgrid`` (linear). With no dual among its arguments a function returns
a constant of the namespace (a dual with tangent None) holding the backend's own result;
the backend is that of its array arguments, else the library of ``device=`` (a torch
device, an array-api-strict ``Device``, a CuPy device), else NumPy.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import array_api_compat

from ..core import dual as _core
from ..core.backend import PY_SCALARS, is_array
from ..core.dtypes import backend_for, to_backend
from ..core.dual import DualTensor
from ..core.errors import derivative_lost
from ._forms import Rule, custom
from .data_types import cast_tangent, written


def _given(**kw: Any) -> dict:
    """Only the keyword arguments that were given (backends differ on what None means)."""
    return {k: v for k, v in kw.items() if v is not None}


# -------------------------------------------------------------------- asarray
def asarray(obj: Any, /, *, dtype: Any = None, device: Any = None, copy: bool | None = None) -> Any:
    """``asarray`` that keeps duals: sequences holding duals become one stacked dual.

    Anything without a dual is the backend's own ``asarray`` (the library of the arrays
    inside ``obj``, else of ``device``, else NumPy), returned as a constant dual.

    >>> import fwdtensor as ft
    >>> x = ft.DualTensor(2.0, 1.0)
    >>> ft.asarray([x, 3.0 * x]).tangent.tolist()
    [1.0, 3.0]
    """
    if type(obj) is DualTensor:
        return _dual_asarray(obj, dtype, device, copy)
    leaves = list(_leaves(obj)) if isinstance(obj, (list, tuple)) else [obj]
    dual = next((a for a in leaves if type(a) is DualTensor), None)
    if dual is not None:
        if copy is False:
            raise ValueError("asarray(copy=False) cannot stack a sequence of duals without copying")
        return _stack(obj, dual, dtype, device)
    xp = backend_for(leaves, device)
    return _core.constant(xp.asarray(obj, **_given(dtype=to_backend(dtype, xp), device=device, copy=copy)))


def _leaves(obj: Any) -> Iterator[Any]:
    if isinstance(obj, (list, tuple)):
        for o in obj:
            yield from _leaves(o)
    else:
        yield obj


def _dual_asarray(x: DualTensor, dtype: Any, device: Any, copy: bool | None) -> Any:
    if device is not None and device != x.device:
        if copy is False:
            raise ValueError(f"asarray(copy=False) cannot move a dual from {x.device} to {device}")
        x, copy = x.to_device(device), None
    if dtype is not None and to_backend(dtype, x._bxp) != x.dtype:
        if copy is False:
            raise ValueError(f"asarray(copy=False) cannot cast a dual of dtype {x.dtype} to {dtype}")
        return _core.FT.astype(x, dtype)
    if not copy:
        return x
    t = None if x._t is None else x.xp.asarray(x._t, copy=True)
    return _core._make(x.xp.asarray(x.primal, copy=True), t, x.level, x._B, x._bxp)


def _stack(obj: Any, dual: DualTensor, dtype: Any, device: Any) -> Any:
    """Stack a nested sequence holding duals; Python scalars take the dual's dtype (weak)."""
    xp, ft = dual._bxp, _core.FT
    leaf_dtype = dual.dtype if dtype is None else to_backend(dtype, xp)
    where = dual.device if device is None else device

    def build(o: Any) -> Any:
        if isinstance(o, (list, tuple)):
            return ft.stack([build(i) for i in o])
        if type(o) is DualTensor or is_array(o):
            return o
        return xp.asarray(o, dtype=leaf_dtype, device=where)

    out = build(obj)
    if dtype is not None and to_backend(dtype, xp) != out.dtype:
        out = ft.astype(out, dtype)
    return out


# ------------------------------------------------------------ full, full_like
def _fill(xp: Any, p: Any, shape: Any, dtype: Any, device: Any) -> Any:
    """An array of ``shape`` filled with the 0-d array ``p`` (the standard's full takes scalars)."""
    if p.ndim != 0:
        raise ValueError(f"fill_value must be a Python scalar or a 0-d array, got shape {tuple(p.shape)}")
    if device is not None:
        p = array_api_compat.to_device(p, device)
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return xp.astype(xp.broadcast_to(p, shape), p.dtype if dtype is None else dtype, copy=True)


def _spread(xp: Any, t: Any, src: Any, y: Any, device: Any) -> Any:
    """The tangent ``(B,)`` of a 0-d fill value spread over ``y`` (a broadcast view)."""
    if device is not None:
        t = array_api_compat.to_device(t, device)
    B = t.shape[0]
    t = xp.broadcast_to(xp.reshape(t, (B,) + (1,) * y.ndim), (B, *y.shape))
    return cast_tangent(xp, t, src, y.dtype)


def _full(xp: Any, fill_value: Any, *, shape: Any, dtype: Any = None, device: Any = None) -> Any:
    if type(fill_value) in PY_SCALARS:
        return xp.full(shape, fill_value, **_given(dtype=dtype, device=device))
    return _fill(xp, fill_value, shape, dtype, device)


def _full_jvp(xp: Any, primals: list, tangents: list, **params: Any) -> tuple:
    y = _full(xp, primals[0], **params)
    return y, _spread(xp, tangents[0], primals[0].dtype, y, params.get("device"))


def _full_like(xp: Any, x: Any, fill_value: Any, *, dtype: Any = None, device: Any = None) -> Any:
    if type(fill_value) in PY_SCALARS:
        return xp.full_like(x, fill_value, **_given(dtype=dtype, device=device))
    return _fill(xp, fill_value, x.shape, x.dtype if dtype is None else dtype, device)


def _full_like_jvp(xp: Any, primals: list, tangents: list, **params: Any) -> tuple:
    y = _full_like(xp, *primals, **params)
    if tangents[1] is None:  # x gives only shape and dtype: the result is a constant
        return y, None
    return y, _spread(xp, tangents[1], primals[1].dtype, y, params.get("device"))


# ------------------------------------------------------------------- linspace
def _linspace(
    xp: Any, start: Any, stop: Any, num: int, *, dtype: Any = None, device: Any = None, endpoint: bool = True
) -> Any:
    if type(start) in PY_SCALARS and type(stop) in PY_SCALARS:
        return xp.linspace(start, stop, num, endpoint=endpoint, **_given(dtype=dtype, device=device))
    return _to(_linspace_arrays(xp, start, stop, num, dtype, endpoint)[0], device)


def _to(x: Any, device: Any) -> Any:
    """``x`` on ``device`` (where it is, for None)."""
    return x if device is None else array_api_compat.to_device(x, device)


def _linspace_arrays(xp: Any, start: Any, stop: Any, num: int, dtype: Any, endpoint: bool) -> tuple:
    """``(1 - s) * start + s * stop`` for 0-d arrays (exact at both ends), and the weights ``s``.

    Computed on the device of ``start`` and ``stop``; callers move the result to ``device=``.
    """
    ref = stop if type(start) in PY_SCALARS else start
    for v in (start, stop):
        if type(v) not in PY_SCALARS and v.ndim != 0:
            raise ValueError(f"linspace needs scalar or 0-d start and stop, got shape {tuple(v.shape)}")
    if dtype is None:
        dtype = xp.result_type(start, stop)
        if not xp.isdtype(dtype, ("real floating", "complex floating")):
            dtype = xp.float64  # integer 0-d arrays: the default floating dtype, as for Python ints
    s = xp.astype(xp.arange(num, device=array_api_compat.device(ref)), dtype)
    s = s / ((num - 1 if endpoint else num) or 1)
    y = xp.add(xp.multiply(1 - s, start), xp.multiply(s, stop))
    return (y if y.dtype == dtype else xp.astype(y, dtype)), s


def _linspace_jvp(xp: Any, primals: list, tangents: list, num: int, **params: Any) -> tuple:
    start, stop = primals
    y, s = _linspace_arrays(xp, start, stop, num, params.get("dtype"), params.get("endpoint", True))
    t = None
    for tv, w in ((tangents[0], 1 - s), (tangents[1], s)):
        if tv is not None:
            part = xp.multiply(xp.reshape(tv, (tv.shape[0], 1)), w[None, ...])
            t = part if t is None else xp.add(t, part)
    device = params.get("device")
    return _to(y, device), _to(cast_tangent(xp, t, t.dtype, y.dtype), device)


# ------------------------------------------------------------------- meshgrid
def _meshgrid_jvp(xp: Any, primals: list, tangents: list, *, indexing: str = "xy") -> tuple:
    ys = xp.meshgrid(*primals, indexing=indexing)
    if any(p.ndim != 1 for p in primals):
        raise ValueError(
            "meshgrid takes 1-D arrays, got shapes " + ", ".join(str(tuple(p.shape)) for p in primals)
        )
    n, shape = len(primals), tuple(ys[0].shape)
    B = max(t.shape[0] for t in tangents if t is not None)
    touts = []
    for k, t in enumerate(tangents):
        # 'xy' puts the first array along axis 1 and the second along axis 0
        axis = 1 - k if indexing == "xy" and n >= 2 and k < 2 else k
        if t is not None:
            view = (t.shape[0],) + tuple(shape[i] if i == axis else 1 for i in range(len(shape)))
            t = xp.broadcast_to(xp.reshape(t, view), (B, *shape))
        touts.append(t)
    return ys, touts


# ---------------------------------------------------------------- from_dlpack
def from_dlpack(x: Any, /, *, device: Any = None, copy: bool | None = None) -> Any:
    """The backend's ``from_dlpack``: the library of ``device``, else of ``x``, else NumPy."""
    if type(x) is DualTensor:
        if _core.carries_tangent(x):
            raise derivative_lost("from_dlpack")
        x = _core.innermost(x)  # a constant exports its array
    xp = backend_for((x,), device)
    return _core.constant(xp.from_dlpack(x, **_given(device=device, copy=copy)))


# ----------------------------------------------------------------- the table
def _calling(name: str, positional: tuple[str, ...]) -> Any:
    """The backend's ``name`` with the parameters ``positional`` passed by position."""

    def f(xp: Any, *arrays: Any, **params: Any) -> Any:
        first = [params.pop(k) for k in positional if k in params]
        return getattr(xp, name)(*arrays, *first, **params)

    return f


def _plain(name: str, positional: tuple[str, ...], params: tuple[str, ...], like: bool = False) -> Rule:
    """A creation function without a tangent (its result does not depend on array values)."""
    meta = {"creation": True, "like": ("x",)} if like else {"creation": True}
    args = ("x",) if like else ()
    # zeros_like(dual) is a constant dual of the same level (zero tangent), so that writing
    # duals into it (out[i] = ...) keeps their tangents; NumPy would drop them silently.
    return Rule(
        name,
        "general",
        "zero" if like else "nondiff",
        _calling(name, positional),
        args=args,
        params=params,
        dtypes="any",
        meta=meta,
    )


_SHAPED = (("shape",), ("shape", "dtype", "device"))
_LIKE = ((), ("dtype", "device"))

RULES: tuple[Rule, ...] = (
    written(asarray, "diff", note="duals pass through; nested sequences holding duals are stacked"),
    _plain("arange", ("start",), ("start", "stop", "step", "dtype", "device")),
    _plain("empty", *_SHAPED),
    _plain("empty_like", *_LIKE, like=True),
    _plain("eye", ("n_rows", "n_cols"), ("n_rows", "n_cols", "k", "dtype", "device")),
    custom(
        "full",
        _full_jvp,
        f=_full,
        args=("fill_value",),
        params=("shape", "dtype", "device"),
        meta={"creation": True},
        note="differentiable in a 0-d dual fill_value",
    ),
    custom(
        "full_like",
        _full_like_jvp,
        f=_full_like,
        args=("x", "fill_value"),
        params=("dtype", "device"),
        meta={"creation": True, "like": ("x",)},
        note="differentiable in a 0-d dual fill_value; x gives only shape, dtype and device",
    ),
    custom(
        "linspace",
        _linspace_jvp,
        f=_linspace,
        args=("start", "stop"),
        params=("num", "dtype", "device", "endpoint"),
        meta={"creation": True},
        note="tangent (1 - s) dstart + s dstop, s = i/(num-1) (i/num without the endpoint)",
    ),
    custom("meshgrid", _meshgrid_jvp, args=("*arrays",), params=("indexing",), note="linear"),
    _plain("ones", *_SHAPED),
    _plain("ones_like", *_LIKE, like=True),
    _plain("zeros", *_SHAPED),
    _plain("zeros_like", *_LIKE, like=True),
    written(from_dlpack, note="arrays and constants; a dual with a tangent raises DerivativeLostError"),
)
