"""Indexing: ``x[key]`` and ``x[key] = value`` on duals, ``take`` and ``take_along_axis``.

The tangent is indexed like the primal behind its batch axis. Basic keys (integers,
slices, ``None``, ``...``) take the prefixed key ``t[:, *key, ...]`` on every backend.
Keys with arrays take the same direct path where the backend allows arrays after a slice
(NumPy, PyTorch, CuPy); when the array indices are not adjacent those backends move the
indexed axes to the front, so the batch axis is moved last around the indexing.
array-api-strict allows integer arrays only among integers and a boolean mask only as
the sole index, so there the tangent is folded and gathered with ``take`` instead.
"""

from __future__ import annotations

import math
import weakref
from types import ModuleType
from typing import Any

import array_api_compat

from ..core import backend as _backend
from ..core import dual as _core
from ..core import memory as _memory
from ..core.backend import namespace_of
from ..core.batch import align, batch_key, shift_axis
from ..core.dual import DualTensor
from ._forms import Rule, linear

# ---------------------------------------------------------------- key shapes
_PREFIXED_ARRAYS_OK: dict[ModuleType, bool] = {}


def _allows_prefixed_arrays(bxp: ModuleType) -> bool:
    """Whether ``bxp`` indexes with arrays after a slice, ``t[:, idx, ...]`` (probed once)."""
    ok = _PREFIXED_ARRAYS_OK.get(bxp)
    if ok is None:
        probe = bxp.zeros((1, 2))
        try:
            probe[(slice(None), bxp.asarray([True, False]), Ellipsis)]
            probe[(slice(None), bxp.asarray([0]), Ellipsis)]
            ok = True
        except (IndexError, TypeError):  # array-api-strict refuses both
            ok = False
        _PREFIXED_ARRAYS_OK[bxp] = ok
    return ok


_plain = _core.innermost  # a dual used as an index is its primal


def _as_tuple(key: Any) -> tuple:
    """The key as a tuple whose entries are plain (a dual used as an index is its primal)."""
    key = key if type(key) is tuple else (key,)
    if any(type(k) is DualTensor for k in key):
        return tuple(_plain(k) for k in key)
    return key


_BASIC = (int, slice, type(None), type(Ellipsis))


def _is_advanced(k: Any) -> bool:
    # Python booleans and lists index like arrays in NumPy and PyTorch
    tk = type(k)
    return tk not in _BASIC and (tk is bool or tk is list or _backend.is_array(k))


def _adjacent(key: tuple) -> bool:
    """True when the array indices (and integers among them) form one run of the key.

    Then NumPy and PyTorch put the indexed axes where the run is, also behind the batch
    axis; otherwise they put them first, in front of the batch axis.
    """
    pos = [i for i, k in enumerate(key) if _is_advanced(k) or type(k) is int]
    return pos[-1] - pos[0] + 1 == len(pos)


def _batch_last_key(key: tuple) -> tuple:
    """The key for a tangent whose batch axis was moved to the end."""
    return (*key, slice(None)) if any(k is Ellipsis for k in key) else (*key, Ellipsis, slice(None))


def _tangent_ns(t: Any, bxp: ModuleType) -> Any:
    return _core.FT if type(t) is DualTensor else bxp


def _index_tangent(bxp: ModuleType, t: Any, key: tuple, shape: tuple, out_shape: tuple) -> Any:
    """``t[:, *key]`` for a tangent of a primal of ``shape`` whose ``primal[key]`` has ``out_shape``."""
    if not any(_is_advanced(k) for k in key):
        return t[batch_key(key)]
    xp = _tangent_ns(t, bxp)
    if _allows_prefixed_arrays(bxp):
        if _adjacent(key):
            return t[batch_key(key)]
        return xp.moveaxis(xp.moveaxis(t, 0, -1)[_batch_last_key(key)], -1, 0)
    if _sole_mask(key):
        return _take_masked(xp, t, key[0], shape)
    if _integer_key(key, shape):
        lin = _linear_index(key, shape)
        flat = xp.reshape(t, (t.shape[0], math.prod(shape)))
        taken = xp.take(flat, namespace_of(lin).reshape(lin, (-1,)), axis=1)
        return xp.reshape(taken, (t.shape[0], *out_shape))
    return xp.moveaxis(xp.moveaxis(t, 0, -1)[_batch_last_key(key)], -1, 0)  # the backend's error


def _sole_mask(key: tuple) -> bool:
    return len(key) == 1 and _backend.is_array(key[0]) and namespace_of(key[0]).isdtype(key[0].dtype, "bool")


def _integer_key(key: tuple, shape: tuple) -> bool:
    return len(key) == len(shape) and all(type(k) is int or _backend.is_array(k) for k in key)


def _fold_mask(xp: Any, t: Any, mask: Any, shape: tuple) -> tuple:
    """``t`` with the masked leading axes folded into one, and that axis's length."""
    k = mask.ndim
    n = math.prod(shape[:k])
    return xp.reshape(t, (t.shape[0], n, *shape[k:])), n


def _take_masked(xp: Any, t: Any, mask: Any, shape: tuple) -> Any:
    """``t[:, mask]`` as a ``take`` of the flattened true positions (any backend)."""
    folded, n = _fold_mask(xp, t, mask, shape)
    mxp = namespace_of(mask)
    idx = mxp.nonzero(mxp.reshape(mask, (n,)))[0]
    return xp.take(folded, idx, axis=1)


def _linear_index(key: tuple, shape: tuple) -> Any:
    """The flat (C-order) position of each element an all-integer key selects."""
    lin = None
    for d, (k, n) in enumerate(zip(key, shape)):
        stride = math.prod(shape[d + 1 :])
        if type(k) is int:
            k = k % n
        else:
            kxp = namespace_of(k)
            k = kxp.where(k < 0, k + n, k)
        term = k * stride
        lin = term if lin is None else term + lin
    return lin


# ------------------------------------------------------------------ getitem
def getitem(x: DualTensor, key: Any) -> Any:
    """``x[key]``: the tangent is indexed the same way behind its batch axis.

    A basic key makes a view (NumPy semantics): the result remembers ``x`` and the key, so
    a write into it reaches ``x``'s value and tangent together (see ``setitem``).
    """
    key = _as_tuple(key)
    basic = all(type(k) in _BASIC for k in key)
    if basic and Ellipsis not in key:
        key = (*key, Ellipsis)  # a full integer key then gives a 0-d view, never a NumPy scalar
    y = x.primal[key]
    t = x._t
    if t is None:
        y = _core.make_dual(y, None, x.level, x._B, x._bxp)
        if type(y) is not DualTensor:
            return y
    else:
        t = t[batch_key(key)] if basic else _index_tangent(x._bxp, t, key, tuple(x.shape), tuple(y.shape))
        y = _core._make(y, t, x.level, x._B, x._bxp)
    if basic:
        _link(y, x, key)
    return y


def _link(view: DualTensor, base: DualTensor, key: tuple) -> None:
    """Record that ``view`` is ``base[key]`` (basic key), so writes and rebinding reach both."""
    view._link = (base, key)
    view._owned = True  # it shares its base's buffers: writes go through the base
    try:
        views = base._views
    except AttributeError:
        base._views = [weakref.ref(view)]
        return
    n = len(views)
    if n >= 16 and n & (n - 1) == 0:  # prune dead views now and then (amortised)
        views[:] = [r for r in views if r() is not None]
    views.append(weakref.ref(view))


def _derive(view: DualTensor) -> None:
    """Point a view at its base's current buffers again (after the base copied or grew them)."""
    base, key = view._link
    view.primal = base.primal[key]
    t = base._t
    view._t = None if t is None else t[batch_key(key)]
    view.level, view._B, view.xp, view._bxp = base.level, base._B, base.xp, base._bxp
    view._owned = True
    _refresh(view)


def _refresh(base: DualTensor) -> None:
    """Re-derive every live view of ``base`` (its buffers were replaced)."""
    views = getattr(base, "_views", None)
    if not views:
        return
    alive = []
    for r in views:
        v = r()
        if v is not None and getattr(v, "_link", (None,))[0] is base:
            alive.append(r)
            _derive(v)
    base._views = alive


# ------------------------------------------------------------------ setitem
def _copy(t: Any) -> Any:
    """A private copy of a buffer; a lower-level dual becomes a new dual that copies on its own write."""
    if type(t) is DualTensor:
        return _core._make(t.primal, t._t, t.level, t._B, t._bxp)
    return namespace_of(t).asarray(t, copy=True)


def _prepare(x: DualTensor, level: int, B: int, tv: Any, plevel: int) -> None:
    """Make ``x`` writable in place for a value of ``level``, ``B`` directions and tangent ``tv``.

    A view prepares its base and points at the base's buffers again (value and tangent reach
    the base together); anything else copies its primal and tangent on the first write (they
    may be the caller's or another dual's), takes the value's level (a constant buffer simply
    becomes a dual of that level; one with a lower-level tangent nests it as its primal), and
    allocates or widens its tangent when the value brings one.
    """
    link = getattr(x, "_link", None)
    if link is not None and _memory.has_views(x._bxp):
        _prepare(link[0], level, B, tv, plevel)  # a change re-derives the base's views, x among them
        return
    changed = False
    if level > x.level:
        if x._t is not None:  # keep the lower-level tangent inside the primal
            x.primal = _core._make(x.primal, x._t, x.level, x._B, x._bxp)
            x._t, x._B, x.xp = None, 0, _core.FT
        x.level = level
        changed = True
    if not x._owned:
        x.primal = _copy(x.primal)
        x._t = None if x._t is None else _copy(x._t)
        x._owned = changed = True
    if plevel > _level(x.primal):  # a lower-level dual written into a plain primal
        x.primal = _core._make(x.primal, None, plevel, 0, x._bxp)
        x.xp = _core.FT
        changed = True
    t = x._t
    if tv is not None:
        Bv = tv.shape[0]
        if t is None:
            t = _core.zeros_tangent(x, Bv)
            changed = True
        elif Bv > t.shape[0]:
            t = _copy(_tangent_ns(t, x._bxp).broadcast_to(t, (Bv, *t.shape[1:])))
            changed = True
        if _level(tv) > _level(t):  # the tangent must hold the value's own tangent too
            t = _core._make(t, None, tv.level, 0, x._bxp)
            changed = True
        x._t = t
        if B > x._B:
            x._B, changed = B, True
    if changed:
        _refresh(x)


def _write_masked(xp: Any, t: Any, mask: Any, shape: tuple, tv: Any, sel_shape: tuple) -> Any:
    """``t[:, mask] = tv`` without a prefixed mask (array-api-strict refuses one).

    The folded tangent and the values are joined, and each position gathers either
    itself or its value: the j-th true position takes value j.
    """
    folded, n = _fold_mask(xp, t, mask, shape)
    mxp = namespace_of(mask)
    m = mxp.reshape(mask, (n,))
    if tv is None:
        keep = mxp.reshape(m, (1, n) + (1,) * (t.ndim - 1 - mask.ndim))
        return xp.reshape(xp.where(keep, 0.0, folded), t.shape)
    pos = mxp.arange(n, device=array_api_compat.device(mask))
    rank = mxp.cumulative_sum(mxp.astype(m, pos.dtype))  # 1 + j at the j-th true position
    gather = mxp.where(m, rank + (n - 1), pos)
    vals = xp.broadcast_to(align(xp, tv, len(sel_shape)), (t.shape[0], *sel_shape))
    return xp.reshape(xp.take(xp.concat([folded, vals], axis=1), gather, axis=1), t.shape)


def _write_tangent(x: DualTensor, key: tuple, tv: Any, sel_shape: tuple) -> None:
    """Write ``tv`` (or zeros for a constant value) into ``x``'s tangent buffer at ``key``, in place."""
    bxp = x._bxp
    t = x._t
    xp = _tangent_ns(t, bxp)
    v = 0 if tv is None else align(xp, tv, len(sel_shape))
    if not any(_is_advanced(k) for k in key) or (_allows_prefixed_arrays(bxp) and _adjacent(key)):
        t[batch_key(key)] = v
        return
    if _allows_prefixed_arrays(bxp):
        tl = xp.moveaxis(t, 0, -1)
        tl[_batch_last_key(key)] = v if tv is None else xp.moveaxis(v, 0, -1)
        if type(t) is DualTensor:  # a dual's moveaxis is a new dual: write the result back
            t[(Ellipsis,)] = xp.moveaxis(tl, -1, 0)
    elif _sole_mask(key):
        t[(Ellipsis,)] = _write_masked(xp, t, key[0], tuple(x.shape), tv, sel_shape)
    else:  # pragma: no cover - the primal assignment refuses such keys first
        raise IndexError(f"cannot assign to the tangent with the key {key!r} on this backend")


def _level(a: Any) -> int:
    return a.level if type(a) is DualTensor else -1


def setitem(x: DualTensor, key: Any, value: Any) -> None:
    """``x[key] = value`` with NumPy semantics for the arrays of the program itself.

    The value's primal and tangent are written together. ``x`` copies its buffers on its
    first write (so the caller's arrays, and buffers other duals share, are never written);
    a view made by basic indexing writes into its base, and the base's views see the write.
    A value of a higher level (a dual of a transform inside the one that made ``x``) makes
    ``x`` a dual of that level from then on, its former tangent kept as the primal's.
    """
    key = _as_tuple(key)
    higher = type(value) is DualTensor and value.level >= x.level
    pv, tv = (value.primal, value._t) if higher else (value, None)
    link = getattr(x, "_link", None)
    if link is not None and not _memory.has_views(x._bxp):
        # no writable views (Dask, unknown backends): write into x's own copy, then the
        # whole of x into its base, which points x at the result again
        del x._link
        x._owned = False
        try:
            setitem(x, key, value)
        finally:
            x._link = link
        setitem(link[0], link[1], x)
        return
    level, B = (value.level, value._B) if higher else (x.level, 0)
    _prepare(x, level, B, tv, _level(pv))
    if _memory.refuses_overlap(x._bxp) and _memory.may_share(x, value):  # x[1:] = x[:-1] on torch
        pv = _memory.copy_array(pv) if _backend.is_array(pv) else pv
        tv = _memory.copy_array(tv) if _backend.is_array(tv) else tv
    x.primal[key] = pv  # the backend checks the key, shapes and dtypes first
    if x._t is not None:
        _write_tangent(x, key, tv, tuple(x.primal[key].shape))


# ------------------------------------------------------------------- rules
def _take(xp: Any, x: Any, indices: Any, axis: Any = None) -> Any:
    return xp.take(x, indices, axis=axis) if axis is not None else xp.take(x, indices)


def _take_t(xp: Any, t: Any, indices: Any, *, axis: Any = None) -> Any:
    if axis is None:  # the primal takes from the flattened array
        return xp.take(xp.reshape(t, (t.shape[0], math.prod(t.shape[1:]))), indices, axis=1)
    return xp.take(t, indices, axis=shift_axis(axis, t.ndim - 1))


def _take_along_axis(xp: Any, x: Any, indices: Any, axis: int = -1) -> Any:
    return xp.take_along_axis(x, indices, axis=axis)


def _take_along_axis_t(xp: Any, t: Any, indices: Any, *, axis: int = -1) -> Any:
    return xp.take_along_axis(t, indices[None, ...], axis=shift_axis(axis, t.ndim - 1))


RULES: tuple[Rule, ...] = (
    linear("take", _take_t, f=_take, params=("indices", "axis")),
    linear("take_along_axis", _take_along_axis_t, f=_take_along_axis, params=("indices", "axis")),
)
