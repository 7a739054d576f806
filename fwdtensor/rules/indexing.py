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
from types import ModuleType
from typing import Any

import array_api_compat

from ..core import backend as _backend
from ..core import dual as _core
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
    """``x[key]``: the tangent is indexed the same way behind its batch axis."""
    key = _as_tuple(key)
    y = x.primal[key]
    t = x._t
    if t is None:
        return _core.make_dual(y, None, x.level, x._B, x._bxp)
    t = _index_tangent(x._bxp, t, key, tuple(x.shape), tuple(y.shape))
    return _core._make(y, t, x.level, x._B, x._bxp)


# ------------------------------------------------------------------ setitem
def _copy(t: Any) -> Any:
    """A private, writable copy of a tangent (a dual's primal is copied, its tangent shared)."""
    if type(t) is DualTensor:
        return _core._make(_copy(t.primal), t._t, t.level, t._B, t._bxp)
    return namespace_of(t).asarray(t, copy=True)


def _own_tangent(x: DualTensor, Bv: int) -> Any:
    """``x``'s tangent, private to ``x`` (copy-on-write) and with at least ``Bv`` directions."""
    t = x._t
    if t is None:
        t = _core.zeros_tangent(x, max(Bv, 1))
    elif not x._owned or Bv > t.shape[0]:
        B = max(t.shape[0], Bv)
        if B != t.shape[0]:
            t = _tangent_ns(t, x._bxp).broadcast_to(t, (B, *t.shape[1:]))
        t = _copy(t)
    x._t = t
    x._owned = True
    return t


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
    """Write ``tv`` (or zeros for a constant value) into ``x``'s own tangent at ``key``."""
    bxp = x._bxp
    t = _own_tangent(x, 0 if tv is None else tv.shape[0])
    if _level(tv) > _level(t):  # nested: the tangent must hold the value's own tangent too
        t = x._t = _core._make(t, None, tv.level, 0, bxp)
    xp = _tangent_ns(t, bxp)
    v = 0 if tv is None else align(xp, tv, len(sel_shape))
    if not any(_is_advanced(k) for k in key) or (_allows_prefixed_arrays(bxp) and _adjacent(key)):
        t[batch_key(key)] = v
    elif _allows_prefixed_arrays(bxp):  # a view on plain arrays; a functional update on duals
        tl = xp.moveaxis(t, 0, -1)
        tl[_batch_last_key(key)] = v if tv is None else xp.moveaxis(v, 0, -1)
        x._t = xp.moveaxis(tl, -1, 0)
    elif _sole_mask(key):
        x._t = _write_masked(xp, t, key[0], tuple(x.shape), tv, sel_shape)
    else:  # pragma: no cover - the primal assignment refuses such keys first
        raise IndexError(f"cannot assign to the tangent with the key {key!r} on this backend")


def _level(a: Any) -> int:
    return a.level if type(a) is DualTensor else -1


def setitem(x: DualTensor, key: Any, value: Any) -> None:
    """``x[key] = value``: writes the value's primal and tangent into ``x``'s own copies."""
    if type(value) is DualTensor and value.level > x.level:
        raise TypeError(
            "cannot write a dual of an inner differentiation into an array of an outer one "
            "(its tangent would be lost); build the array inside the transform, e.g. with "
            "ft.stack or ft.where"
        )
    key = _as_tuple(key)
    same = type(value) is DualTensor and value.level == x.level
    pv, tv = (value.primal, value._t) if same else (value, None)
    if _level(pv) > _level(x.primal):
        # a lower-level dual written into a plain (or lower) primal: the primal becomes such a dual
        x.primal = _core._make(x.primal, None, pv.level, 0, x._bxp)
        x.xp = _core.FT
    x.primal[key] = pv  # the backend checks the key, shapes and dtypes first
    if tv is None and x._t is None:
        return
    if same:
        x._B = max(x._B, value._B)
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
