"""Indexing: ``x[key]`` and ``x[key] = value`` on duals, and the indexing functions."""

from __future__ import annotations

from typing import Any

from .. import _core
from .._core import DualTensor
from .._tangent import align, batch_key
from ._forms import Rule

RULES: tuple[Rule, ...] = ()


def getitem(x: DualTensor, key: Any) -> Any:
    """``x[key]``: the tangent is indexed the same way behind its batch axis."""
    if type(key) is DualTensor:
        key = key.primal
    y = x.primal[key]
    t = x._t
    if t is None:
        return _core.make_dual(y, None, x.level, x._B, x._bxp)
    return _core._make(y, t[batch_key(key)], x.level, x._B, x._bxp)


def setitem(x: DualTensor, key: Any, value: Any) -> None:
    """``x[key] = value``: writes the value's primal and tangent into ``x``'s own copies."""
    if type(value) is DualTensor and value.level > x.level:
        raise TypeError(
            "cannot write a dual of an inner differentiation into an array of an outer one "
            "(its tangent would be lost); build the array inside the transform, e.g. with "
            "ft.stack or ft.where"
        )
    if type(value) is DualTensor and value.level == x.level:
        pv, tv = value.primal, value._t
        x._B = max(x._B, value._B)
    else:
        pv, tv = value, None
    if type(pv) is DualTensor and type(x.primal) is not DualTensor:
        # a lower-level dual written into a plain primal: the primal becomes such a dual
        x.primal = _core._make(x.primal, None, pv.level, 0, x._bxp)
        x.xp = _core.FT
    x.primal[key] = pv
    if tv is None and x._t is None:
        return
    xp = x.xp
    if x._t is None:
        x._t = _core.zeros_tangent(x, tv.shape[0])
    elif not x._owned or (tv is not None and tv.shape[0] > x._t.shape[0]):
        B = x._t.shape[0] if tv is None else max(x._t.shape[0], tv.shape[0])
        x._t = xp.asarray(xp.broadcast_to(x._t, (B, *x._t.shape[1:])), copy=True)
    x._owned = True
    bkey = batch_key(key)
    if tv is None:
        x._t[bkey] = 0
    else:
        x._t[bkey] = align(xp, tv, x.primal[key].ndim)
