"""Per-sample Jacobians: ``jacfwd(f, batch_axis=k)`` gives one Jacobian per sample along axis k.

When axis ``k`` of every differentiated argument and of every output indexes independent
samples, the Jacobian is block diagonal: sample n of the outputs depends on sample n of the
inputs only. Seeding direction e of the *sample* shape in every sample at once then gives
the e-th column of all N Jacobians in one pass, so ``prod(in_sample_shape)`` directions
suffice whatever N is. Independence is checked on the first call, exactly, by sparsity
detection on the first few samples; ``check=False`` skips it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import array_api_compat

from ..core import backend as _backend
from ..core import errors as _errors
from ..core import tree as _tree
from ..core.dual import DualTensor, innermost
from .common import LIVE_ARRAYS, positions

__all__ = ["Engine", "batched_hessian", "batched_jacfwd", "check_independent"]

_CHECK_SAMPLES = 3  # samples traced by the independence check (enough to see any mixing)


class Engine:
    """What this module needs from the transforms above it, handed in rather than imported."""

    def __init__(self, batched_jvp: Callable, budget: Callable, sparsity_pattern: Callable) -> None:
        self.batched_jvp = batched_jvp
        self.budget = budget
        self._sparsity_pattern = sparsity_pattern

    def sparsity_pattern(self) -> Callable:
        return self._sparsity_pattern()


def _axis(batch_axis: Any) -> int:
    import operator

    if isinstance(batch_axis, bool):
        raise TypeError(f"batch_axis must be an integer axis, got {batch_axis!r}")
    try:
        return operator.index(batch_axis)
    except TypeError:
        raise TypeError(f"batch_axis must be an integer axis, got {batch_axis!r}") from None


def _norm(k: int, ndim: int, what: str) -> int:
    if not -ndim <= k < ndim:
        extra = (
            "; with batch_axis every output must carry the samples on that axis" if "output" in what else ""
        )
        raise ValueError(f"batch_axis={k} is out of range for {what} with {ndim} dimensions{extra}")
    return k % ndim


def _sample_shape(shape: tuple, k: int) -> tuple:
    return tuple(shape[:k]) + tuple(shape[k + 1 :])


def _seed(x: Any, k: int, s: int, e: int, off: int) -> Any:
    """Directions ``[s, e)`` for leaf ``x`` (flattened sample elements from ``off``), in every sample."""
    m = math.prod(_sample_shape(tuple(x.shape), k))
    if off >= e or off + m <= s:
        return None
    p = innermost(x)
    xp = _backend.namespace_of(p)
    eye = xp.eye(e - s, m, k=s - off, dtype=p.dtype, device=array_api_compat.device(p))
    eye = xp.reshape(eye, (e - s, *_sample_shape(tuple(x.shape), k)))
    eye = xp.expand_dims(eye, axis=k + 1)
    return xp.broadcast_to(eye, (e - s, *x.shape))


def _chunk(n: int, per_direction: int, itemsize: int, chunk_size: int | None, budget: int) -> int:
    if chunk_size is not None:
        return max(1, min(n, chunk_size))
    fits = budget // max(1, LIVE_ARRAYS * itemsize * per_direction)
    return max(1, min(n, fits))


def _blocks(xp: Any, t: Any, k: int, N: int, leaves: list, offsets: list, sizes: list, in_k: list) -> list:
    """Split ``t`` ``(n, *y.shape)`` into per-input blocks ``(N, *y_sample, *x_sample)``."""
    out = []
    y_nd = t.ndim - 1
    for x, off, m, kx in zip(leaves, offsets, sizes, in_k):
        b = t[off : off + m, ...]  # (m, *y.shape), batch axis of y at k + 1
        perm = (k + 1, *[i + 1 for i in range(y_nd) if i != k], 0)
        b = xp.permute_dims(b, perm)  # (N, *y_sample, m)
        out.append(xp.reshape(b, (N, *tuple(b.shape[1:-1]), *_sample_shape(tuple(x.shape), kx))))
    return out


def _run(f: Callable, args: tuple, kwargs: dict, argnums: Any, nums: tuple, k: int, has_aux: bool,
         chunk_size: int | None, out_axis: int, engine: Engine) -> tuple:  # fmt: skip
    """Value, per-sample Jacobian tree and aux of ``f`` at ``args``."""
    tree = args[nums[0]] if isinstance(argnums, int) else tuple(args[a] for a in nums)
    leaves, in_def = _tree.flatten(tree)
    if not leaves:
        raise ValueError("batch_axis needs at least one array to differentiate")
    in_k = [_norm(k, x.ndim, "a differentiated argument") for x in leaves]
    Ns = {int(x.shape[kx]) for x, kx in zip(leaves, in_k)}
    if len(Ns) != 1:
        raise ValueError(
            f"the differentiated arguments disagree on the number of samples along batch_axis={k}: "
            f"{sorted(Ns)}"
        )
    N = Ns.pop()
    sizes = [math.prod(_sample_shape(tuple(x.shape), kx)) for x, kx in zip(leaves, in_k)]
    offsets = [sum(sizes[:i]) for i in range(len(sizes))]
    n = sum(sizes)
    itemsize = max(
        (_backend.namespace_of(innermost(x)).finfo(innermost(x).dtype).bits // 8 for x in leaves
         if _backend.is_floating(_backend.namespace_of(innermost(x)), innermost(x).dtype)),
        default=8,
    )  # fmt: skip
    per_direction = sum(math.prod(x.shape) for x in leaves)
    step = _chunk(n, per_direction, itemsize, chunk_size, engine.budget())

    def call(t: Any) -> Any:
        a = list(args)
        for pos, sub in zip(nums, (t,) if isinstance(argnums, int) else t):
            a[pos] = sub
        return f(*a, **kwargs)

    value = aux = o_def = None
    parts: list[list] = []
    for s in range(0, max(n, 1), step):
        e = min(s + step, n)
        seeds = [_seed(x, kx, s, e, off) for x, kx, off in zip(leaves, in_k, offsets)]
        res = engine.batched_jvp(call, (tree,), (_tree.unflatten(in_def, seeds),), has_aux=has_aux)
        o_leaves, o_def = _tree.flatten(res[0])
        t_leaves = _tree.flatten(res[1])[0]
        if value is None:
            value, aux = res[0], (res[2] if has_aux else None)
            for y in o_leaves:
                ky = _norm(out_axis, getattr(y, "ndim", 0), "an output")
                if int(y.shape[ky]) != N:
                    raise ValueError(
                        f"an output has {y.shape[ky]} entries along batch_axis={out_axis} but the "
                        f"inputs have {N} samples; with batch_axis every output must carry the samples "
                        "on that axis"
                    )
            parts = [[] for _ in t_leaves]
        for j, t in enumerate(t_leaves):
            parts[j].append(t)
    jac_leaves = []
    for ts in parts:
        xp = array_api_compat.array_namespace(ts[0])
        t = ts[0] if len(ts) == 1 else xp.concat(ts, axis=0)
        ky = _norm(out_axis, t.ndim - 1, "an output")
        blocks = _blocks(xp, t, ky, N, leaves, offsets, sizes, in_k)
        jac_leaves.append(_tree.unflatten(in_def, blocks))
    return value, _tree.unflatten(o_def, jac_leaves), aux


# ------------------------------------------------------------- independence
def _slice(x: Any, k: int, c: int) -> Any:
    key = (slice(None),) * k + (slice(0, c),)
    return x[(*key, Ellipsis)]


def check_independent(
    f: Callable, args: tuple, kwargs: dict, argnums: Any, nums: tuple, k: int, has_aux: bool,
    sparsity_pattern: Callable, out_axis: int | None = None,
) -> None:  # fmt: skip
    """Raise ``NotDifferentiableError`` when an output sample depends on another input sample.

    Runs sparsity detection on the first few samples of the differentiated arguments (and of
    the other array arguments that carry the same number of samples on the batch axis);
    falls back to the whole input when ``f`` cannot run on the slice.
    """
    tree = args[nums[0]] if isinstance(argnums, int) else tuple(args[a] for a in nums)
    leaves, in_def = _tree.flatten(tree)
    if any(type(x) is DualTensor for x in leaves):
        return  # inside another transform: the outermost call checked f
    in_k = [_norm(k, x.ndim, "a differentiated argument") for x in leaves]
    N = int(leaves[0].shape[in_k[0]])
    try:
        _check_on(
            f, args, kwargs, argnums, nums, k, has_aux, min(N, _CHECK_SAMPLES), sparsity_pattern, out_axis
        )
    except (_errors.NotDifferentiableError, ValueError):
        raise
    except Exception:  # f needs all samples (a per-sample parameter we did not slice, ...)
        _check_on(f, args, kwargs, argnums, nums, k, has_aux, N, sparsity_pattern, out_axis)


def _check_on(f, args, kwargs, argnums, nums, k, has_aux, c, sparsity_pattern, out_axis=None) -> None:
    ko = k if out_axis is None else out_axis
    import numpy as np

    tree = args[nums[0]] if isinstance(argnums, int) else tuple(args[a] for a in nums)
    leaves, in_def = _tree.flatten(tree)
    in_k = [_norm(k, x.ndim, "a differentiated argument") for x in leaves]
    N = int(leaves[0].shape[in_k[0]])
    small = [_slice(x, kx, c) for x, kx in zip(leaves, in_k)]
    shapes = [tuple(x.shape) for x in small]
    sizes = [math.prod(s) for s in shapes]
    xp = _backend.namespace_of(small[0])
    flat = (
        xp.concat([xp.reshape(x, (-1,)) for x in small], axis=0)
        if len(small) > 1
        else xp.reshape(small[0], (-1,))
    )
    others = list(args)
    for i, a in enumerate(args):
        if i not in nums and _backend.is_array(a) and a.ndim > 0:
            ka = k % a.ndim if -a.ndim <= k < a.ndim else None
            if ka is not None and int(a.shape[ka]) == N and c < N:
                others[i] = _slice(a, ka, c)  # a per-sample parameter: the same samples
    out_shapes: list = []

    def g(v: Any) -> Any:
        fxp = array_api_compat.array_namespace(v)
        parts, off = [], 0
        for shp, m in zip(shapes, sizes):
            parts.append(fxp.reshape(v[off : off + m], shp))
            off += m
        sub = _tree.unflatten(in_def, parts)
        a = list(others)
        for pos, piece in zip(nums, (sub,) if isinstance(argnums, int) else sub):
            a[pos] = piece
        out = f(*a, **kwargs)
        if has_aux:
            out = out[0]
        o_leaves = _tree.flatten(out)[0]
        out_shapes[:] = [tuple(y.shape) for y in o_leaves]
        return (
            fxp.concat([fxp.reshape(y, (-1,)) for y in o_leaves], axis=0)
            if len(o_leaves) > 1
            else (fxp.reshape(o_leaves[0], (-1,)))
        )

    pattern = sparsity_pattern(g, flat)
    for s in out_shapes:
        ky = _norm(ko, len(s), "an output")
        if s[ky] != c:
            raise ValueError(
                f"an output has {s[ky]} entries along batch_axis={k} on {c} samples; with batch_axis "
                "every output must carry the samples on that axis"
            )
    in_sample = np.concatenate(
        [np.unravel_index(np.arange(m), s)[kx] for m, s, kx in zip(sizes, shapes, in_k)]
    )
    out_sample, out_leaf = [], []
    for j, s in enumerate(out_shapes):
        ky = _norm(ko, len(s), "an output")
        out_sample.append(np.unravel_index(np.arange(math.prod(s)), s)[ky])
        out_leaf.append(np.full(math.prod(s), j))
    out_sample_a = np.concatenate(out_sample) if out_sample else np.zeros(0, dtype=np.int64)
    rows = np.repeat(np.arange(pattern.shape[0]), np.diff(pattern.indptr))
    bad = np.nonzero(out_sample_a[rows] != in_sample[pattern.indices])[0]
    if bad.size:
        r, col = rows[bad[0]], pattern.indices[bad[0]]
        raise _errors.NotDifferentiableError(
            f"batch_axis={k}: the samples are not independent: sample {int(out_sample_a[r])} of output "
            f"{int(np.concatenate(out_leaf)[r])} depends on sample {int(in_sample[col])} of the input. "
            "Something mixes samples along the batch axis (a sum, mean or norm over it, a batch "
            "normalisation, a roll, sort or cumulative sum along it, a matmul that contracts it); per-"
            "sample Jacobians would drop those terms. Use ft.jacfwd without batch_axis for the full "
            "Jacobian (or ft.sparse_jacfwd), or pass check=False if the dependence is intended to be ignored"
        )


# ------------------------------------------------------------------ entry point
def batched_jacfwd(
    f: Callable,
    argnums: Any,
    nums: tuple,
    *,
    batch_axis: int,
    has_aux: bool = False,
    chunk_size: int | None = None,
    check: bool = True,
    with_value: bool = False,
    out_axis: int | None = None,
    engine: Engine,
) -> Callable:
    """The per-sample Jacobian function behind ``jacfwd(f, batch_axis=k)`` (see ``jacfwd``)."""
    k = _axis(batch_axis)
    ko = k if out_axis is None else out_axis
    checked: set = set()

    def jacfun(*args: Any, **kwargs: Any) -> Any:
        pos = positions(argnums, nums, len(args))
        if check:
            tree = args[pos[0]] if isinstance(argnums, int) else tuple(args[a] for a in pos)
            sig = tuple((tuple(x.shape), str(x.dtype)) for x in _tree.flatten(tree)[0])
            if sig not in checked:
                check_independent(f, args, kwargs, argnums, pos, k, has_aux, engine.sparsity_pattern(), ko)
                checked.add(sig)
        return compute(args, kwargs, pos)

    def compute(args: tuple, kwargs: dict, pos: tuple) -> Any:
        value, jac, aux = _run(f, args, kwargs, argnums, pos, k, has_aux, chunk_size, ko, engine)
        if with_value:
            return ((value, aux), jac) if has_aux else (value, jac)
        return (jac, aux) if has_aux else jac

    jacfun.__doc__ = f"Per-sample Jacobian of {getattr(f, '__name__', 'f')} along batch_axis={k}."
    return jacfun


def batched_hessian(
    f: Callable, argnums: Any, nums: tuple, *, batch_axis: int, has_aux: bool, chunk_size: int | None,
    check: bool, engine: Engine,
) -> Callable:  # fmt: skip
    """Per-sample Hessians ``(N, *out_sample, *in_sample, *in_sample)``: per-sample forward over forward."""
    k = _axis(batch_axis)
    opts = {"has_aux": has_aux, "chunk_size": chunk_size, "check": False, "engine": engine}
    inner = batched_jacfwd(f, argnums, nums, batch_axis=k, **opts)
    # the inner Jacobians carry the samples first, whatever k is
    outer = batched_jacfwd(inner, argnums, nums, batch_axis=k, out_axis=0, **opts)
    if not check:
        return outer
    checked: set = set()

    def hess(*args: Any, **kwargs: Any) -> Any:
        pos = tuple(a % len(args) for a in nums)
        tree = args[pos[0]] if isinstance(argnums, int) else tuple(args[a] for a in pos)
        sig = tuple((tuple(x.shape), str(x.dtype)) for x in _tree.flatten(tree)[0])
        if sig not in checked:
            check_independent(f, args, kwargs, argnums, pos, k, has_aux, engine.sparsity_pattern())
            checked.add(sig)
        return outer(*args, **kwargs)

    return hess
