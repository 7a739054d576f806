"""Sparsity detection.

* ``sparsity_pattern``: exact structural detection. ``f`` runs on duals whose tangents
  are dependency carriers (``_Deps``) instead of numbers; every rule runs unchanged, with a
  namespace (``_TraceNamespace``) that computes primals with the real backend and follows
  each tangent operation as an operation on index sets: elementwise operations take unions,
  data movement (reshape, indexing, roll, concat...) moves sets, reductions and products
  take unions along the reduced axes. Memory is O(nnz of the Jacobian + size of the
  intermediates), so a banded problem never costs n x n.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import ModuleType
from typing import Any

import array_api_compat
import numpy as np

from ...core import backend as _backend
from ...core import dual as _core
from ...core import errors as _errors
from ...core import tree as _tree
from ...core.dual import DualTensor
from ...core.levels import new_level
from ..common import check_differentiable_input, leaf_array, position, split_aux
from .pattern import SparsityPattern

__all__ = ["sparsity_pattern", "is_tracer", "custom_dependency"]

_NPX = array_api_compat.numpy  # index bookkeeping always happens on the host, in NumPy


# ------------------------------------------------------------- detection
def sparsity_pattern(
    f: Callable, *args: Any, argnums: int = 0, has_aux: bool = False, **kwargs: Any
) -> SparsityPattern:
    """The exact structural sparsity pattern of ``f``'s Jacobian with respect to one argument.

    ``f`` runs once on a dual whose tangent records, for every element, the set of input
    elements it depends on; every derivative rule runs unchanged, with index sets in place
    of numbers. Entries are structural: a dependency is kept even where the derivative
    happens to be zero at this point (``x * 0``, ``tanh`` saturated), so the pattern holds
    for every input that takes the same branches of Python control flow. Products with
    arrays (``matmul``, ``tensordot``) count every element of the contracted axes.

    >>> import numpy as np, fwdtensor as ft
    >>> p = ft.sparsity_pattern(lambda x: x[1:] - x[:-1], np.zeros(4))
    >>> p.toarray().astype(int).tolist()
    [[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]]
    """
    i = position(argnums, len(args))
    x = _core.innermost(leaf_array(args[i], f"argument {argnums}"))
    check_differentiable_input(x, False)
    n = math.prod(x.shape)
    bxp = _backend.namespace_of(x)
    level = new_level()
    tr = _tracer(bxp)
    seed = tr.deps(np.arange(2 * n, dtype=np.int64).reshape((2, *x.shape)), _Sets.identity(n), n, x.dtype)
    call = list(args)
    call[i] = _core._make(x, seed, level, _BatchDim(n), tr)
    try:
        out = f(*call, **kwargs)
    except Exception as exc:  # say where it happened; the original error stays the same type
        if hasattr(exc, "add_note"):
            exc.add_note(
                "(raised while sparsity_pattern ran the function on dependency tangents; if the "
                "function itself is fine, pass the sparsity pattern to sparse_jacfwd yourself)"
            )
        raise
    if has_aux:
        out = split_aux(out)[0]
    if type(out) is not DualTensor and not _backend.is_array(out):
        raise _errors.StructureError(
            f"sparsity_pattern needs a function with a single array output, got {type(out).__name__}"
        )
    m = math.prod(out.shape)
    if type(out) is not DualTensor or out.level != level or out._t is None:
        return SparsityPattern((m, n), np.zeros(m + 1, dtype=np.int64), np.zeros(0, dtype=np.int64))
    d = out._t
    if not isinstance(d, _Deps):
        raise _errors.FwdTensorError("sparsity_pattern lost track of the dependencies of the output")
    ax, q = d.batch_axis()
    if (ax, q) != (0, 1):
        raise _errors.FwdTensorError("sparsity_pattern: the output tangent lost its leading batch axis")
    e = (d.vid[0, ...] % max(d.sets.M, 1)).reshape(-1)
    rows, cols = d.sets.gather(e, np.arange(m, dtype=np.int64))
    s = _Sets.build(rows, cols, m, n)
    return SparsityPattern((m, n), s.indptr, s.indices)


class _BatchDim(int):
    """The number of directions of a dependency tangent (n), marked so shapes can be traced.

    Rules pass ``t.shape[0]`` into ``zeros``/``reshape``/``broadcast_to``; the tracer sees
    this type there and knows it is the batch axis. ``q`` counts elements folded into it
    (``reshape(t, (-1, k))`` folds the batch into the rows, as ``matmul`` does).
    """

    n: int
    q: int

    def __new__(cls, n: int, q: int = 1) -> _BatchDim:
        obj = int.__new__(cls, n * q)
        obj.n, obj.q = n, q
        return obj

    def __mul__(self, k: Any) -> Any:
        if type(k) is int:
            return _BatchDim(self.n, self.q * k)
        return int(self) * k

    __rmul__ = __mul__


class _Sets:
    """Index sets in CSR form: row ``e`` holds the sorted input indices element ``e`` depends on."""

    __slots__ = ("indptr", "indices", "M")

    def __init__(self, indptr: np.ndarray, indices: np.ndarray) -> None:
        self.indptr, self.indices = indptr, indices
        self.M = indptr.shape[0] - 1

    @staticmethod
    def identity(n: int) -> _Sets:
        """Element ``e`` depends on input ``e`` (the seed)."""
        return _Sets(np.arange(n + 1, dtype=np.int64), np.arange(n, dtype=np.int64))

    @staticmethod
    def empty(M: int) -> _Sets:
        return _Sets(np.zeros(M + 1, dtype=np.int64), np.zeros(0, dtype=np.int64))

    def gather(self, e: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pairs (rows[p], i) for every input ``i`` in the set of element ``e[p]``."""
        starts = self.indptr[e]
        lens = self.indptr[e + 1] - starts
        total = int(lens.sum())
        if total == 0:
            z = np.zeros(0, dtype=np.int64)
            return z, z
        ends = np.cumsum(lens)
        offs = np.arange(total, dtype=np.int64) - np.repeat(ends - lens, lens)
        return np.repeat(rows, lens), self.indices[np.repeat(starts, lens) + offs]

    @staticmethod
    def build(rows: np.ndarray, cols: np.ndarray, P: int, n: int) -> _Sets:
        """The sets of ``P`` elements from (element, input) pairs, duplicates removed."""
        key = np.sort(rows * max(n, 1) + cols)  # np.unique hashes (slow here); sort and drop repeats
        if key.shape[0] > 1:
            key = key[np.concatenate(([True], key[1:] != key[:-1]))]
        rows, cols = key // max(n, 1), key % max(n, 1)
        indptr = np.zeros(P + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=P), out=indptr[1:])
        return _Sets(indptr, cols)

    @staticmethod
    def stack(sets: list[_Sets]) -> tuple[_Sets, list[int]]:
        """All sets in one table; returns it and the row offset of each part."""
        offs, ptrs, idx, base = [], [np.zeros(1, dtype=np.int64)], [], 0
        pos = 0
        for s in sets:
            offs.append(pos)
            ptrs.append(s.indptr[1:] + base)
            idx.append(s.indices)
            base += s.indices.shape[0]
            pos += s.M
        return _Sets(np.concatenate(ptrs), np.concatenate(idx)), offs


class _Deps:
    """A dependency tangent: for each element of a ``(B, *shape)`` tangent, a set of inputs.

    ``vid`` has the tangent's shape with the batch axis of size 2 (two identical copies),
    and holds ``b * M + e``: batch copy ``b`` and row ``e`` of ``sets``. Data movement is
    NumPy applied to ``vid``; two copies (not one) let the tracer find the batch axis
    again after any permutation or fold of the axes.
    """

    __array_ufunc__ = None  # NumPy hands mixed operators to our reflected methods
    __slots__ = ("vid", "sets", "n", "dtype", "_shape")
    _tr: _TraceNamespace  # set on the subclass made for each backend (see _deps_type)

    def __init__(self, vid: np.ndarray, sets: _Sets, n: int, dtype: Any) -> None:
        self.vid, self.sets, self.n, self.dtype = vid, sets, n, dtype
        self._shape: tuple | None = None

    def new(self, vid: np.ndarray, sets: _Sets | None = None, dtype: Any = None) -> _Deps:
        return type(self)(
            vid, self.sets if sets is None else sets, self.n, self.dtype if dtype is None else dtype
        )

    def __array_namespace__(self, /, *, api_version: str | None = None) -> _TraceNamespace:
        return self._tr  # rules that look up a tangent's namespace get the tracing one

    def batch_axis(self) -> tuple[int, int]:
        """The axis holding the batch and how many elements are folded into it with it."""
        vid, M = self.vid, max(self.sets.M, 1)
        b = vid // M
        for a, L in enumerate(vid.shape):
            if L >= 2 and L % 2 == 0:
                q = L // 2
                idx = (np.arange(L) // q).reshape((L,) + (1,) * (vid.ndim - a - 1))
                if np.array_equal(b, np.broadcast_to(idx, vid.shape)):
                    return a, q
        raise _errors.FwdTensorError(
            "sparsity_pattern lost track of the batch axis of a tangent (a rule mixed the "
            "directions); pass the pattern to sparse_jacfwd yourself"
        )

    @property
    def shape(self) -> tuple:
        if self._shape is None:
            a, q = self.batch_axis()
            s = list(self.vid.shape)
            s[a] = _BatchDim(self.n, q)
            self._shape = tuple(s)
        return self._shape

    @property
    def ndim(self) -> int:
        return self.vid.ndim

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def device(self) -> Any:
        return None

    @property
    def mT(self) -> _Deps:
        return self.new(_NPX.matrix_transpose(self.vid))

    @property
    def T(self) -> _Deps:
        return self.new(self.vid.T)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"_Deps(shape={self.shape}, nnz={self.sets.indices.shape[0]})"

    def __getitem__(self, key: Any) -> _Deps:
        return self.new(self.vid[_to_vid_space(key)])

    def __setitem__(self, key: Any, value: Any) -> None:
        k = _to_vid_space(key)
        if isinstance(value, _Deps):
            (mine, theirs), sets = _combine([self, value])
            mine = np.array(mine)
            mine[k] = theirs
        else:  # a constant written into a tangent: those elements depend on nothing
            sets, _ = _Sets.stack([self.sets, _Sets.empty(1)])
            M = sets.M
            b, e = np.divmod(self.vid, self.sets.M)
            mine = b * M + e
            mine[k] = (mine[k] // M) * M + (M - 1)
        self.vid, self.sets, self._shape = mine, sets, None

    # operators (rules mostly call the namespace, but a few use operators on tangents): every
    # arithmetic operator depends on both operands elementwise, in the order they are given
    def _forward(self, o: Any) -> _Deps:
        return _elementwise([self, o], self)

    def _reflected(self, o: Any) -> _Deps:
        return _elementwise([o, self], self)

    __add__ = __sub__ = __mul__ = __truediv__ = _forward
    __radd__ = __rsub__ = __rmul__ = __rtruediv__ = _reflected

    def __neg__(self) -> _Deps:
        return self

    __pos__ = __neg__

    def __matmul__(self, o: Any) -> _Deps:
        return _matmul(self, o)

    def __rmatmul__(self, o: Any) -> _Deps:
        return _matmul(o, self)


def _to_vid_space(v: Any) -> Any:
    """Arguments of a tangent operation as arguments of the same operation on ``vid``."""
    if type(v) is _BatchDim:
        return 2 * v.q
    if isinstance(v, _Deps):
        return v.vid
    if isinstance(v, tuple):
        return tuple(_to_vid_space(a) for a in v)
    if isinstance(v, list):
        return [_to_vid_space(a) for a in v]
    if type(v) is DualTensor or (_backend.is_array(v) and not isinstance(v, np.ndarray)):
        return _backend.to_host(v)
    return v


def _shape_of(a: Any) -> tuple:
    if isinstance(a, _Deps):
        return a.vid.shape
    return tuple(getattr(a, "shape", ()))


def _broadcast_shape(shapes: list[tuple]) -> tuple:
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        raise _errors.FwdTensorError(
            "sparsity_pattern: a rule combined a tangent with an array that has the batch "
            f"axis of its own (shapes {shapes}); pass the pattern to sparse_jacfwd yourself"
        ) from None


def _combine(deps: list[_Deps]) -> tuple[list[np.ndarray], _Sets]:
    """The ``vid`` of each carrier re-encoded against one shared table of sets."""
    sets, offs = _Sets.stack([d.sets for d in deps])
    out = []
    for d, off in zip(deps, offs):
        b, e = np.divmod(d.vid, max(d.sets.M, 1))
        out.append(b * sets.M + (e + off))
    return out, sets


def _elementwise(args: list, like: _Deps) -> _Deps:
    """An elementwise operation of tangents and arrays: each element takes the union of sets."""
    shape = _broadcast_shape([_shape_of(a) for a in args])
    deps = [a for a in args if isinstance(a, _Deps)]
    first = deps[0]
    if all(d.sets is first.sets and d.vid is first.vid for d in deps[1:]):
        return first.new(np.broadcast_to(first.vid, shape))
    vids, sets = _combine(deps)
    P = math.prod(shape)
    M = max(sets.M, 1)
    rows_all, cols_all, b = [], [], None
    pos = np.arange(P, dtype=np.int64)
    for v in vids:
        bv, e = np.divmod(np.broadcast_to(v, shape).reshape(-1), M)
        if b is None:
            b = bv
        elif not np.array_equal(b, bv):
            raise _errors.FwdTensorError("sparsity_pattern: two tangents with misaligned batch axes met")
        r, c = sets.gather(e, pos)
        rows_all.append(r)
        cols_all.append(c)
    new = _Sets.build(np.concatenate(rows_all), np.concatenate(cols_all), P, first.n)
    return first.new((b * P + pos).reshape(shape), new)


def _reduce(d: _Deps, axes: tuple[int, ...], keepdims: bool) -> _Deps:
    """Union of the sets along ``axes`` (a sum, a mean, a contraction)."""
    vid = d.vid
    nd = vid.ndim
    axes = tuple(sorted({a % nd for a in axes})) if nd else ()
    keep = tuple(1 if i in axes else s for i, s in enumerate(vid.shape))
    M = max(d.sets.M, 1)
    b0 = vid[tuple(slice(0, 1) if i in axes else slice(None) for i in range(nd))] // M
    if not np.array_equal(np.broadcast_to(b0, vid.shape), vid // M):
        raise _errors.FwdTensorError("sparsity_pattern: a rule reduced a tangent over its batch axis")
    P = math.prod(keep)
    groups = np.broadcast_to(np.arange(P, dtype=np.int64).reshape(keep), vid.shape).reshape(-1)
    rows, cols = d.sets.gather((vid % M).reshape(-1), groups)
    out = b0 * P + np.arange(P, dtype=np.int64).reshape(keep)
    if not keepdims:
        out = out.reshape(tuple(s for i, s in enumerate(keep) if i not in axes))
    return d.new(out, _Sets.build(rows, cols, P, d.n))


def _spread(d: _Deps, shape: tuple) -> _Deps:
    """Broadcast (a view, the sets are shared) to a larger shape."""
    return d.new(np.broadcast_to(d.vid, shape))


def _mix(operands: list, axes_of: list, out_shape: tuple) -> _Deps:
    """Every output element depends on the union, along ``axes_of[i]``, of each carrier operand."""
    parts = []
    for a, axes in zip(operands, axes_of):
        if isinstance(a, _Deps):
            r = _reduce(a, axes, keepdims=True) if axes else a
            parts.append(r)
    if len(parts) == 1:
        return _spread(parts[0], out_shape)
    return _elementwise([_spread(p, out_shape) for p in parts], parts[0])


def _matmul(x1: Any, x2: Any) -> _Deps:
    """``x1 @ x2`` with carriers: an output depends on the whole contracted row and column."""
    s1, s2 = list(_shape_of(x1)), list(_shape_of(x2))
    v1, v2 = len(s1) == 1, len(s2) == 1
    if v1:
        x1, s1 = _expand(x1, 0), [1, *s1]
    if v2:
        x2, s2 = _expand(x2, -1), [*s2, 1]
    stack = _broadcast_shape([tuple(s1[:-2]), tuple(s2[:-2])])
    out = (*stack, s1[-2], s2[-1])
    r = _mix([x1, x2], [(-1,), (-2,)], out)
    if v1:
        r = r.new(r.vid.reshape(out[:-2] + out[-1:]))
    if v2:
        r = r.new(r.vid.reshape(r.vid.shape[:-1]))
    return r


def _expand(a: Any, axis: int) -> Any:
    """A vector operand of ``matmul`` as a matrix: (k,) -> (1, k) or (k, 1)."""
    if isinstance(a, _Deps):
        return a.new(np.expand_dims(a.vid, axis))
    s = _shape_of(a)
    return _Shaped((1, *s) if axis == 0 else (*s, 1))


class _Shaped:
    """A stand-in for a plain array that only contributes its shape to a broadcast."""

    __slots__ = ("shape",)

    def __init__(self, shape: tuple) -> None:
        self.shape = shape


# ------------------------------------------------- the tracing namespace
def _has_deps(args: tuple, kwargs: dict) -> bool:
    for a in (*args, *kwargs.values()):
        if isinstance(a, _Deps) or (isinstance(a, (list, tuple)) and any(isinstance(x, _Deps) for x in a)):
            return True
    return False


def _has_batchdim(shape: Any) -> bool:
    return isinstance(shape, tuple) and any(type(s) is _BatchDim for s in shape)


def _gather(name: str) -> Callable:
    """A data-movement function: the same NumPy function applied to the element ids."""

    def h(tr: Any, target: Callable, args: tuple, kwargs: dict) -> Any:
        d = args[0] if args else kwargs.pop("x")
        fn = getattr(_NPX, name)
        res = fn(d.vid, *_to_vid_space(args[1:]), **_to_vid_space(kwargs))
        if isinstance(res, tuple):  # unstack
            return tuple(d.new(r) for r in res)
        return d.new(res)

    return h


def _same(tr: Any, target: Callable, args: tuple, kwargs: dict) -> Any:
    """Functions that keep every element's dependencies (negative, conj, astype, copies)."""
    d = args[0] if args else kwargs.pop("x")
    dtype = kwargs.get("dtype", args[1] if len(args) > 1 and not isinstance(args[1], bool) else None)
    return d.new(np.array(d.vid) if kwargs.get("copy") else d.vid, dtype=dtype)


def _union(tr: Any, target: Callable, args: tuple, kwargs: dict) -> Any:
    args = tuple(a for a in (*args, *kwargs.values()) if a is not None)
    return _elementwise(list(args), next(a for a in args if isinstance(a, _Deps)))


def _axes_arg(axis: Any, nd: int) -> tuple:
    if axis is None:
        return tuple(range(nd))
    return tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)


def _sum(tr: Any, target: Callable, args: tuple, kwargs: dict) -> Any:
    d = args[0]
    axis = kwargs.get("axis", args[1] if len(args) > 1 else None)
    return _reduce(d, _axes_arg(axis, d.ndim), bool(kwargs.get("keepdims", False)))


def _cumulative(tr: Any, target: Callable, args: tuple, kwargs: dict) -> Any:
    d = args[0]
    axis = kwargs.get("axis", args[1] if len(args) > 1 else None)
    if axis is None:
        raise _errors.FwdTensorError("sparsity_pattern: cumulative_sum of a tangent needs an axis")
    ax = axis % d.ndim
    v = np.moveaxis(d.vid, ax, -1)
    L = v.shape[-1]
    parts = [d.new(np.moveaxis(v[..., : k + 1], -1, ax)) for k in range(L)]
    cols = [_reduce(p, (ax,), keepdims=True) for p in parts]
    vids, sets = _combine(cols)
    out = np.concatenate(vids, axis=ax)
    if kwargs.get("include_initial", False):
        sets2, _ = _Sets.stack([sets, _Sets.empty(1)])
        b, e = np.divmod(out, max(sets.M, 1))
        out = b * sets2.M + e
        first = np.take(b, [0], axis=ax) * sets2.M + (sets2.M - 1)
        out, sets = np.concatenate([first, out], axis=ax), sets2
    return d.new(out, sets)


def _join(name: str) -> Callable:
    """``concat``/``stack`` of tangents: the sets of all parts in one table, ids joined."""

    def h(tr: Any, target: Callable, args: tuple, kwargs: dict) -> Any:
        arrays = list(args[0])
        if not all(isinstance(a, _Deps) for a in arrays):
            raise _errors.FwdTensorError(
                "sparsity_pattern: a rule joined a tangent with a plain array; pass the pattern yourself"
            )
        vids, sets = _combine(arrays)
        return arrays[0].new(getattr(_NPX, name)(vids, *args[1:], **kwargs), sets)

    return h


def _contract(tr: Any, target: Callable, args: tuple, kwargs: dict) -> Any:
    return _matmul(args[0], args[1])


def _vecdot(tr: Any, target: Callable, args: tuple, kwargs: dict) -> Any:
    x1, x2 = args[0], args[1]
    axis = kwargs.get("axis", args[2] if len(args) > 2 else -1)
    shape = _broadcast_shape([_shape_of(x1), _shape_of(x2)])
    parts = [_reduce(_spread(a, shape), (axis,), keepdims=False) for a in (x1, x2) if isinstance(a, _Deps)]
    return parts[0] if len(parts) == 1 else _elementwise(parts, parts[0])


def _tensordot(tr: Any, target: Callable, args: tuple, kwargs: dict) -> Any:
    x1, x2 = args[0], args[1]
    axes = kwargs.get("axes", args[2] if len(args) > 2 else 2)
    s1, s2 = _shape_of(x1), _shape_of(x2)
    if isinstance(axes, int):
        a1, a2 = tuple(range(len(s1) - axes, len(s1))), tuple(range(axes))
    else:
        a1, a2 = tuple(a % len(s1) for a in axes[0]), tuple(a % len(s2) for a in axes[1])
    f1 = [i for i in range(len(s1)) if i not in a1]
    f2 = [i for i in range(len(s2)) if i not in a2]
    out = tuple(s1[i] for i in f1) + tuple(s2[i] for i in f2)
    parts = []
    if isinstance(x1, _Deps):
        r = _reduce(x1, a1, keepdims=False)
        parts.append(r.new(r.vid.reshape(r.vid.shape + (1,) * len(f2))))
    if isinstance(x2, _Deps):
        r = _reduce(x2, a2, keepdims=False)
        parts.append(r.new(r.vid.reshape((1,) * len(f1) + r.vid.shape)))
    return (
        _elementwise([_spread(p, out) for p in parts], parts[0]) if len(parts) > 1 else _spread(parts[0], out)
    )


def _solve(tr: Any, target: Callable, args: tuple, kwargs: dict) -> Any:
    # x = A^{-1} b: every element of a column of x depends on the whole column of b (and of A).
    a, b = args[0], args[1]
    if isinstance(a, _Deps):
        raise _errors.FwdTensorError("sparsity_pattern: linalg.solve with a tangent matrix is not traced")
    sb = _shape_of(b)
    return _mix([b], [(-2,)], sb)


def _fft(name: str) -> Callable:
    def h(tr: Any, target: Callable, args: tuple, kwargs: dict) -> Any:
        d = args[0]
        probe = getattr(_NPX.fft, name)(np.zeros(d.vid.shape), *args[1:], **kwargs)
        nd = d.ndim
        if "axes" in kwargs or name.endswith("n"):
            axes = kwargs.get("axes")
            axes = tuple(range(1, nd)) if axes is None else tuple(axes)
        else:
            axes = (kwargs.get("axis", -1),)
        r = _reduce(d, axes, keepdims=True)
        return _spread(r, probe.shape)

    return h


def _fft_shift(name: str) -> Callable:
    """``fftshift``/``ifftshift`` only move elements: the sets move with them."""

    def h(tr: Any, target: Callable, args: tuple, kwargs: dict) -> Any:
        d = args[0]
        return d.new(getattr(_NPX.fft, name)(d.vid, *_to_vid_space(args[1:]), **_to_vid_space(kwargs)))

    return h


def _zeros(tr: Any, target: Callable, args: tuple, kwargs: dict) -> Any:
    """``zeros((B, ...))`` with the traced batch size: a tangent that depends on nothing."""
    shape = tuple(args[0] if args else kwargs["shape"])
    n = next(s for s in shape if type(s) is _BatchDim).n
    return tr.deps(_batch_of(_to_vid_space(shape), shape), _Sets.empty(1), n, kwargs.get("dtype"))


def _zeros_like(tr: Any, target: Callable, args: tuple, kwargs: dict) -> Any:
    d = args[0]
    b = d.vid // max(d.sets.M, 1)
    return d.new(np.array(b), _Sets.empty(1), kwargs.get("dtype", d.dtype))


def _batch_of(vshape: tuple, shape: tuple) -> np.ndarray:
    """``b`` (0 or 1) for a fresh tangent of ``vshape`` whose batch axis is the _BatchDim one."""
    a = next(i for i, s in enumerate(shape) if type(s) is _BatchDim)
    L = vshape[a]
    idx = (np.arange(L, dtype=np.int64) // (L // 2)).reshape((L,) + (1,) * (len(vshape) - a - 1))
    return np.array(np.broadcast_to(idx, vshape))


def _empty_where(d: _Deps, mask: np.ndarray) -> _Deps:
    """``d`` with the elements where ``mask`` (broadcast to ``vid``) is False depending on nothing."""
    sets, _ = _Sets.stack([d.sets, _Sets.empty(1)])
    b, e = np.divmod(d.vid, max(d.sets.M, 1))
    return d.new(np.where(mask, b * sets.M + e, b * sets.M + (sets.M - 1)), sets)


def _triangle(lower: bool) -> Callable:
    def h(tr: Any, target: Callable, args: tuple, kwargs: dict) -> Any:
        d = args[0]
        k = kwargs.get("k", args[1] if len(args) > 1 else 0)
        r, c = d.vid.shape[-2:]
        keep = (np.tril if lower else np.triu)(np.ones((r, c), dtype=bool), k)
        return _empty_where(d, keep)

    return h


def _diff(tr: Any, target: Callable, args: tuple, kwargs: dict) -> Any:
    d = args[0]
    axis = kwargs.get("axis", -1)
    parts = [a for a in (kwargs.get("prepend"), d, kwargs.get("append")) if a is not None]
    if len(parts) > 1:
        if not all(isinstance(a, _Deps) for a in parts):
            raise _errors.FwdTensorError("sparsity_pattern: diff of a tangent with a plain prepend/append")
        vids, sets = _combine(parts)
        d = d.new(np.concatenate(vids, axis=axis), sets)
    for _ in range(kwargs.get("n", 1)):
        L = d.vid.shape[axis]
        hi = d.new(np.take(d.vid, np.arange(1, L), axis=axis))
        lo = d.new(np.take(d.vid, np.arange(0, L - 1), axis=axis))
        d = _elementwise([hi, lo], hi)
    return d


def _trace(tr: Any, target: Callable, args: tuple, kwargs: dict) -> Any:
    d = args[0]
    diag = d.new(_NPX.linalg.diagonal(d.vid, offset=kwargs.get("offset", 0)))
    return _reduce(diag, (-1,), keepdims=False)


def _cross(tr: Any, target: Callable, args: tuple, kwargs: dict) -> Any:
    x1, x2 = args[0], args[1]
    axis = kwargs.get("axis", -1)
    shape = _broadcast_shape([_shape_of(x1), _shape_of(x2)])
    return _mix(
        [_spread(a, shape) if isinstance(a, _Deps) else a for a in (x1, x2)], [(axis,), (axis,)], shape
    )


_GATHERS = (
    "reshape permute_dims matrix_transpose broadcast_to expand_dims squeeze flip roll moveaxis "
    "take take_along_axis tile repeat unstack"
).split()
_SAME = "negative positive conj real imag astype asarray copy".split()
_UNIONS = (
    "add subtract multiply divide where maximum minimum clip copysign hypot atan2 logaddexp pow"
).split()

_HANDLERS: dict[str, Callable] = {
    **{name: _gather(name) for name in _GATHERS},
    **dict.fromkeys(_SAME, _same),
    **dict.fromkeys(_UNIONS, _union),
    "sum": _sum,
    "mean": _sum,
    "cumulative_sum": _cumulative,
    "concat": _join("concat"),
    "stack": _join("stack"),
    "matmul": _contract,
    "linalg.matmul": _contract,
    "vecdot": _vecdot,
    "linalg.vecdot": _vecdot,
    "tensordot": _tensordot,
    "linalg.tensordot": _tensordot,
    "linalg.matrix_transpose": _gather("matrix_transpose"),
    "linalg.diagonal": lambda tr, target, args, kwargs: args[0].new(
        _NPX.linalg.diagonal(args[0].vid, **_to_vid_space(kwargs))
    ),
    "linalg.solve": _solve,
    "zeros_like": _zeros_like,
    "tril": _triangle(True),
    "triu": _triangle(False),
    "diff": _diff,
    "linalg.trace": _trace,
    "linalg.cross": _cross,
    "empty_like": _zeros_like,
    **{f"fft.{n}": _fft(n) for n in "fft ifft fftn ifftn rfft irfft rfftn irfftn hfft ihfft".split()},
    **{f"fft.{n}": _fft_shift(n) for n in ("fftshift", "ifftshift")},
}


class _TraceNamespace:
    """The backend namespace for primals, with tangent operations turned into set operations.

    A call without a dependency carrier among its arguments goes straight to the backend.
    A call with one goes to its handler in ``_HANDLERS``; a function without a handler
    raises an error that names it (the pattern is never silently incomplete).
    """

    def __init__(self, backend: ModuleType, prefix: str = "") -> None:
        self.wraps = backend  # read by _core._check_const: constants of the backend are fine
        self._prefix = prefix
        # Carriers of this backend get their own type, so that namespace lookups by type
        # (cached in _backend) find this namespace and not another backend's.
        self.deps = type(
            f"_Deps_{getattr(backend, '__name__', 'xp')}", (_Deps,), {"__slots__": (), "_tr": self}
        )

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.wraps, name)
        if isinstance(target, ModuleType) and name in ("linalg", "fft"):
            sub = _TraceNamespace(target, f"{name}.")
            object.__setattr__(self, name, sub)
            return sub
        if not callable(target) or isinstance(target, type) or name.startswith("__"):
            return target
        fn = self._wrap(self._prefix + name, target)
        object.__setattr__(self, name, fn)
        return fn

    def _wrap(self, qualname: str, target: Callable) -> Callable:
        handler = _HANDLERS.get(qualname)
        creates = qualname in ("zeros", "empty")

        def fn(*args: Any, **kwargs: Any) -> Any:
            if creates and _has_batchdim(args[0] if args else kwargs.get("shape")):
                return _zeros(self, target, args, kwargs)
            if not _has_deps(args, kwargs):
                return target(*args, **kwargs)
            if handler is None:
                raise _errors.NotDifferentiableError(
                    f"sparsity_pattern cannot follow dependencies through {qualname!r} on a tangent; "
                    "pass the sparsity pattern to sparse_jacfwd yourself"
                )
            return handler(self, target, args, dict(kwargs))

        fn.__name__ = qualname.rsplit(".", 1)[-1]
        return fn


_TRACERS: dict = {}


def _tracer(bxp: ModuleType) -> _TraceNamespace:
    """One tracing namespace per backend (rules cache functions per namespace)."""
    tr = _TRACERS.get(bxp)
    if tr is None:
        tr = _TRACERS[bxp] = _TraceNamespace(bxp)
    return tr


def is_tracer(xp: Any) -> bool:
    """True for the namespace of a sparsity-detection run."""
    return isinstance(xp, _TraceNamespace)


def custom_dependency(out: Any, tangents: list, level: int, B: Any, bxp: Any) -> Any:
    """Outputs of a ``custom_jvp`` function during detection: each depends on all its inputs."""
    deps = [t for t in tangents if isinstance(t, _Deps)]
    n, dtype = deps[0].n, deps[0].dtype
    vids, sets = _combine(deps)
    e = np.concatenate([v.reshape(-1) for v in vids]) % max(sets.M, 1)
    rows, cols = sets.gather(e, np.zeros(e.shape, dtype=np.int64))
    union = _Sets.build(rows, cols, 1, n)  # one row; vid = b (batch copy), e = 0

    def one(o: Any) -> Any:
        if type(o) is DualTensor or not _backend.is_floating(_backend.namespace_of(o), o.dtype):
            return o
        vid = _batch_of((2, *o.shape), (_BatchDim(n), *o.shape))
        return _core._make(o, bxp.deps(vid, union, n, dtype), level, B, bxp)

    return _tree.map_tree(one, out)
