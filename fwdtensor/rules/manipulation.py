"""Manipulation functions: all linear, so the tangent goes through the same function.

The tangent carries a leading batch axis, so axis arguments shift by one (negative axes
stay). Functions of several arrays (``concat``, ``stack``) give constants zero blocks;
``broadcast_arrays`` and ``unstack`` return one tangent per output.
"""

from __future__ import annotations

import math
from typing import Any

import array_api_compat

from ..core import dual as _core
from ..core.backend import namespace_of
from ..core.batch import align, shift_axes, shift_axis
from ._forms import Rule, custom, linear


# ------------------------------------------------------------------ helpers
def common_batch(tangents: list) -> int:
    """The number of directions shared by ``tangents`` (None entries are ignored)."""
    return max((t.shape[0] for t in tangents if t is not None), default=1)


def blocks(xp: Any, primals: list, tangents: list) -> list:
    """One tangent per primal with a common batch size: zeros where a primal is constant."""
    B = common_batch(tangents)
    out = []
    for p, t in zip(primals, tangents):
        if t is None:
            t = _core.zeros_tangent(p, B)
        elif t.shape[0] != B:
            t = xp.broadcast_to(t, (B, *t.shape[1:]))
        out.append(t)
    return out


def zero_block(ref: Any, B: int, shape: tuple, dtype: Any) -> Any:
    """Zeros of shape ``(B, *shape)`` on ``ref``'s backend and device (``ref`` may be a dual)."""
    ref = _core.innermost(ref)
    return namespace_of(ref).zeros((B, *shape), dtype=dtype, device=array_api_compat.device(ref))


def _new_axis(axis: int) -> int:
    """The tangent's axis for an axis of a result that gains one dimension (stack)."""
    return axis + 1 if axis >= 0 else axis


# -------------------------------------------------------------- rule bodies
def _roll(xp: Any, x: Any, shift: Any, *, axis: Any = None) -> Any:
    """``roll`` along one axis as two slices joined by ``concat``.

    Same result as ``xp.roll``; NumPy's roll costs about 5 us of Python per call on small
    arrays against about 1 us for this, which matters in loops over small states. A
    namespace that reads elements by index (``ft.fuse``'s tracer) gets its own ``roll``.
    """
    ok = type(axis) is int and type(shift) is int and -x.ndim <= axis < x.ndim
    ok = ok and not getattr(xp, "indexed_roll", False)
    n = x.shape[axis] if ok else 0  # otherwise the backend's roll (and its errors)
    if not n:
        return xp.roll(x, shift, axis=axis)
    s = shift % n
    if s == 0:
        return xp.roll(x, shift, axis=axis)
    lead = (slice(None),) * (axis % x.ndim)
    return xp.concat([x[(*lead, slice(n - s, None), ...)], x[(*lead, slice(0, n - s), ...)]], axis=axis)


def _roll_t(xp: Any, t: Any, shift: Any, *, axis: Any = None) -> Any:
    if axis is None and t.ndim == 2:  # a 1-D primal: flattening changes nothing
        return _roll(xp, t, shift, axis=1)
    if axis is None:  # roll the flattened array, as the primal does
        flat = xp.reshape(t, (t.shape[0], math.prod(t.shape[1:])))
        return xp.reshape(_roll(xp, flat, shift, axis=1), t.shape)
    return _roll(xp, t, shift, axis=shift_axes(axis, t.ndim - 1))


def _roll_primal(xp: Any, x: Any, shift: Any, *, axis: Any = None) -> Any:
    if axis is None and x.ndim == 1:
        return _roll(xp, x, shift, axis=0)
    if axis is None:
        return xp.reshape(_roll(xp, xp.reshape(x, (-1,)), shift, axis=0), x.shape)
    return _roll(xp, x, shift, axis=axis)


def _reshape_t(xp: Any, t: Any, shape: tuple, *, copy: Any = None) -> Any:
    return xp.reshape(t, (t.shape[0], *shape))


def _permute_t(xp: Any, t: Any, axes: tuple) -> Any:
    nd = t.ndim - 1
    return xp.permute_dims(t, (0, *(a % nd + 1 for a in axes)))


def _broadcast_to_t(xp: Any, t: Any, shape: tuple) -> Any:
    return xp.broadcast_to(align(xp, t, len(shape)), (t.shape[0], *shape))


def _expand_dims_t(xp: Any, t: Any, *, axis: Any = 0) -> Any:
    # axes refer to the result; negative ones count from its end, which the tangent shares
    if isinstance(axis, tuple):
        return xp.expand_dims(t, axis=tuple(_new_axis(a) for a in axis))
    return xp.expand_dims(t, axis=_new_axis(axis))


def _flip_t(xp: Any, t: Any, *, axis: Any = None) -> Any:
    if t.ndim == 1:  # a 0-d primal: nothing to flip
        return t
    return xp.flip(t, axis=shift_axes(axis, t.ndim - 1))


def _moveaxis_t(xp: Any, t: Any, source: Any, destination: Any) -> Any:
    nd = t.ndim - 1
    return xp.moveaxis(t, shift_axes(source, nd), shift_axes(destination, nd))


def _repeat_t(xp: Any, t: Any, repeats: Any, *, axis: Any = None) -> Any:
    if axis is None:  # the primal repeats the flattened array
        t = xp.reshape(t, (t.shape[0], math.prod(t.shape[1:])))
        return xp.repeat(t, repeats, axis=1)
    return xp.repeat(t, repeats, axis=shift_axis(axis, t.ndim - 1))


def _tile_t(xp: Any, t: Any, repetitions: tuple) -> Any:
    # tile pads the shorter of shape and repetitions with leading ones; the batch axis gets 1
    d = max(len(repetitions), t.ndim - 1)
    reps = (1,) * (d - len(repetitions)) + tuple(repetitions)
    return xp.tile(align(xp, t, d), (1, *reps))


def _unstack_t(xp: Any, t: Any, *, axis: int = 0) -> tuple:
    return tuple(xp.unstack(t, axis=shift_axis(axis, t.ndim - 1)))


def _concat_jvp(xp: Any, primals: list, tangents: list, *, axis: Any = 0) -> tuple:
    y = xp.concat(primals, axis=axis)
    ts = blocks(xp, primals, tangents)
    if axis is None:  # the primal concatenates the flattened arrays
        ts = [xp.reshape(t, (t.shape[0], math.prod(t.shape[1:]))) for t in ts]
        return y, xp.concat(ts, axis=1)
    return y, xp.concat(ts, axis=shift_axis(axis, y.ndim))


def _stack_jvp(xp: Any, primals: list, tangents: list, *, axis: int = 0) -> tuple:
    y = xp.stack(primals, axis=axis)
    return y, xp.stack(blocks(xp, primals, tangents), axis=_new_axis(axis))


def _broadcast_arrays_jvp(xp: Any, primals: list, tangents: list) -> tuple:
    ys = xp.broadcast_arrays(*primals)
    shape = tuple(ys[0].shape) if len(ys) else ()
    touts = tuple(
        None if t is None else xp.broadcast_to(align(xp, t, len(shape)), (t.shape[0], *shape))
        for t in tangents
    )
    return ys, touts


# Primals: the core spreads a sequence argument into positional arrays; the standard takes
# a list (concat, stack) and positional-only array-like parameters (moveaxis, repeat, tile).
def _concat(xp: Any, *arrays: Any, axis: Any = 0) -> Any:
    return xp.concat(list(arrays), axis=axis)


def _stack(xp: Any, *arrays: Any, axis: int = 0) -> Any:
    return xp.stack(list(arrays), axis=axis)


def _moveaxis(xp: Any, x: Any, source: Any, destination: Any) -> Any:
    return xp.moveaxis(x, source, destination)


def _repeat(xp: Any, x: Any, repeats: Any, axis: Any = None) -> Any:
    return xp.repeat(x, repeats, axis=axis)


def _tile(xp: Any, x: Any, repetitions: tuple) -> Any:
    return xp.tile(x, repetitions)


RULES: tuple[Rule, ...] = (
    custom("broadcast_arrays", _broadcast_arrays_jvp, args=("*arrays",)),
    linear("broadcast_to", _broadcast_to_t, params=("shape",)),
    custom(
        "concat",
        _concat_jvp,
        f=_concat,
        seq=True,
        args=("arrays",),
        params=("axis",),
        note="constants: zero blocks",
    ),
    linear("expand_dims", _expand_dims_t, params=("axis",)),
    linear("flip", _flip_t, params=("axis",)),
    linear("matrix_transpose", lambda xp, t: xp.matrix_transpose(t), domain="matrix"),
    linear("moveaxis", _moveaxis_t, f=_moveaxis, params=("source", "destination")),
    linear("permute_dims", _permute_t, params=("axes",)),
    linear("repeat", _repeat_t, f=_repeat, params=("repeats", "axis")),
    linear("reshape", _reshape_t, params=("shape", "copy")),
    linear("roll", _roll_t, f=_roll_primal, params=("shift", "axis")),
    linear("squeeze", lambda xp, t, axis: xp.squeeze(t, axis=shift_axes(axis, t.ndim - 1)), params=("axis",)),
    custom(
        "stack",
        _stack_jvp,
        f=_stack,
        seq=True,
        args=("arrays",),
        params=("axis",),
        note="constants: zero blocks",
    ),
    linear("tile", _tile_t, f=_tile, params=("repetitions",)),
    linear("tril", lambda xp, t, *, k=0: xp.tril(t, k=k), params=("k",), domain="matrix"),
    linear("triu", lambda xp, t, *, k=0: xp.triu(t, k=k), params=("k",), domain="matrix"),
    linear("unstack", _unstack_t, params=("axis",)),
)
