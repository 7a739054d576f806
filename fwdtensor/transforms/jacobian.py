"""The transforms users call: ``jvp``, ``jacfwd``, ``value_and_jacfwd``, ``hessian``, ``derivative``.

Each call opens a fresh level (see ``_levels``), seeds duals at that level, runs the
function, and reads the tangents of that level back out of the outputs. Everything a
user can get wrong is checked before the function runs.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import array_api_compat
import numpy as _np

from ..core import backend as _backend
from ..core import dual as _core
from ..core import errors as _errors
from ..core import hooks
from ..core import tree as _tree
from ..core.dual import DualTensor
from ..core.levels import new_level
from . import progress as _progress

__all__ = [
    "jvp",
    "batched_jvp",
    "jacfwd",
    "value_and_jacfwd",
    "hessian",
    "derivative",
    "set_memory_budget",
    "get_memory_budget",
]

_DEFAULT_BUDGET = 1 << 30  # bytes of tangent storage per chunk that jacfwd aims for
_budget = [int(os.environ.get("FWDTENSOR_MEMORY_BUDGET", _DEFAULT_BUDGET))]


def set_memory_budget(nbytes: int) -> None:
    """Set the memory (bytes) that ``jacfwd`` sizes its chunks of directions for."""
    if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes <= 0:
        raise ValueError(f"the memory budget must be a positive number of bytes, got {nbytes!r}")
    _budget[0] = nbytes


def get_memory_budget() -> int:
    """The memory budget (bytes) ``jacfwd`` uses to choose its chunk size."""
    return _budget[0]


# ------------------------------------------------------------------ helpers
def _leaf_array(x: Any, what: str) -> Any:
    """A primal leaf as an array (Python scalars become NumPy float64)."""
    if type(x) is DualTensor or _backend.is_array(x):
        return x
    if isinstance(x, (int, float, complex)) and not isinstance(x, bool):
        return _backend.as_array(x)
    raise TypeError(f"{what} must be an array or a Python number, got {type(x).__name__}")


def _ns(x: Any) -> Any:
    """The namespace to operate on ``x`` itself: fwdtensor's for a dual."""
    return _core.FT if type(x) is DualTensor else _backend.namespace_of(x)


def _innermost_ns(x: Any) -> Any:
    return x._bxp if type(x) is DualTensor else _backend.namespace_of(x)


def _seed(p: Any, t: Any, level: int, B: int) -> DualTensor:
    """A dual of ``level`` with primal ``p`` (array or lower dual) and batched tangent ``t``."""
    return _core._make(p, t, level, B, _innermost_ns(p))


def _check_tangent_leaf(i: int, p: Any, t: Any, batched: bool) -> Any:
    """Validate one tangent against its primal for ``jvp``; return it with the batch axis."""
    xp = _innermost_ns(p)
    if t is None:
        return None
    if not _backend.is_floating(xp, p.dtype):
        raise _errors.TangentError(
            f"primal {i} has dtype {p.dtype}: integer and boolean inputs are constants; "
            "pass None as their tangent (or cast the primal to a floating dtype)"
        )
    if type(t) is not DualTensor and not _backend.is_array(t):
        t = xp.asarray(t, dtype=p.dtype, device=array_api_compat.device(p))
    elif type(t) is not DualTensor and _backend.namespace_of(t) is not xp:
        raise _errors.backend_mismatch(p, t)
    if t.dtype != p.dtype:
        raise _errors.TangentError(
            f"tangent {i} has dtype {t.dtype} but its primal has dtype {p.dtype}; they must match"
        )
    dp, dt = array_api_compat.device(p), array_api_compat.device(t)
    if dp != dt:  # else ops on constants alone would leave the tangent on the other device
        raise _errors.device_mismatch(dp, dt)
    want, got = tuple(p.shape), tuple(t.shape)
    if batched:
        if len(got) == 0 or got[1:] != want:
            raise _errors.TangentError(
                f"batched tangent {i} has shape {got}; expected (B, *primal.shape) = "
                f"(B, {', '.join(map(str, want))})"
            )
        return t
    if got != want:
        raise _errors.TangentError(f"tangent {i} has shape {got} but its primal has shape {want}")
    return _core.FT.reshape(t, (1, *want)) if type(t) is DualTensor else xp.reshape(t, (1, *want))


def _unpack(leaf: Any, level: int, B: int) -> tuple[Any, Any]:
    """Primal and batched tangent of one output leaf at ``level`` (zeros if constant)."""
    if type(leaf) is DualTensor:
        if leaf.level == level:
            t = leaf._t
            return leaf.primal, (_core.zeros_tangent(leaf, B) if t is None else _full_batch(leaf, t, B))
        if leaf.level > level:
            raise _errors.FwdTensorError(
                "a dual of an inner transform escaped to an outer one; return its primal "
                "(or call the inner transform inside the outer function)"
            )
        return leaf, _core.zeros_tangent(leaf, B)
    if _backend.is_array(leaf):
        return leaf, _core.zeros_tangent(leaf, B)
    if isinstance(leaf, (int, float, complex)) and not isinstance(leaf, bool):
        arr = _backend.as_array(leaf)
        return arr, _core.zeros_tangent(arr, B)
    raise _errors.StructureError(
        f"the function returned a {type(leaf).__name__}; outputs must be arrays or nested "
        "tuples/lists/dicts of arrays"
    )


def _full_batch(leaf: DualTensor, t: Any, B: int) -> Any:
    if t.shape[0] == B:
        return t
    return _ns(t).broadcast_to(t, (B, *t.shape[1:]))


# ---------------------------------------------------------------------- jvp
def jvp(
    f: Callable,
    primals: Sequence,
    tangents: Sequence,
    *,
    has_aux: bool = False,
    batched: bool = False,
) -> tuple:
    """Evaluate ``f(*primals)`` and its directional derivative along ``tangents``.

    Like ``jax.jvp``: ``primals`` and ``tangents`` are tuples (or lists) with the same
    nested structure of arrays; returns ``(out, tangent_out)`` with ``out``'s structure
    (and ``aux`` third when ``has_aux``). With ``batched=True`` every tangent has a leading
    axis of B directions, all pushed in one pass, and so has every output tangent.
    A tangent may be ``None``: a zero direction (required for integer inputs).

    >>> import numpy as np, fwdtensor as ft
    >>> y, dy = ft.jvp(lambda x: x * x, (np.array(3.0),), (np.array(1.0),))
    >>> float(y), float(dy)
    (9.0, 6.0)
    """
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise _errors.StructureError(
            "jvp takes primals and tangents as tuples (or lists) of arguments, got "
            f"{type(primals).__name__} and {type(tangents).__name__}; write jvp(f, (x,), (t,))"
        )
    if len(primals) != len(tangents):
        raise _errors.StructureError(
            f"jvp got {len(primals)} primals but {len(tangents)} tangents; they must match"
        )
    p_leaves, p_def = _tree.flatten(list(primals))
    t_leaves, t_def = _flatten_tangents(tangents, p_def)
    p_leaves = [_leaf_array(p, f"primal {i}") for i, p in enumerate(p_leaves)]
    t_leaves = [_check_tangent_leaf(i, p, t, batched) for i, (p, t) in enumerate(zip(p_leaves, t_leaves))]
    sizes = {int(t.shape[0]) for t in t_leaves if t is not None}
    if len(sizes) > 1:
        raise _errors.TangentError(f"batched tangents disagree on the number of directions: {sorted(sizes)}")
    B = sizes.pop() if sizes else 1
    level = new_level()
    duals = [_seed(p, t, level, B if batched else 0) for p, t in zip(p_leaves, t_leaves)]
    out = f(*_tree.unflatten(p_def, duals))
    aux = None
    if has_aux:
        out, aux = _split_aux(out)
    o_leaves, o_def = _tree.flatten(out)
    pairs = [_unpack(o, level, B) for o in o_leaves]
    outs = [_np.asarray(p) if isinstance(p, _np.generic) else p for p, _ in pairs]  # 0-d arrays, not scalars
    touts = [t if batched else t[0, ...] for _, t in pairs]
    res = (_tree.unflatten(o_def, outs), _tree.unflatten(o_def, touts))
    return (*res, _strip(aux, level)) if has_aux else res


def batched_jvp(f: Callable, primals: Sequence, tangents: Sequence, *, has_aux: bool = False) -> tuple:
    """``jvp`` with B directions per input in one pass: tangents are ``(B, *primal.shape)``."""
    return jvp(f, primals, tangents, has_aux=has_aux, batched=True)


def _flatten_tangents(tangents: Sequence, p_def: Any) -> tuple[list, Any]:
    # None tangents stand for zero leaves: expand a None where the primal has a subtree.
    t_leaves: list = []
    _match(list(tangents), p_def, t_leaves, "tangents")
    return t_leaves, p_def


def _match(t: Any, td: Any, out: list, path: str) -> None:
    kind = td[0]
    if kind == "leaf":
        out.append(t)
        return
    if kind == "none":
        return
    n = _tree.num_leaves(td)
    if t is None:
        out.extend([None] * n)
        return
    tdef = _tree.flatten(t)[1]
    if _tree.describe(tdef) != _tree.describe(td) and not _compatible(t, td):
        raise _errors.StructureError(
            f"{path} have structure {_tree.describe(tdef)} but the primals have "
            f"{_tree.describe(td)}; they must match"
        )
    children = list(t.values()) if isinstance(t, dict) else list(t)
    if isinstance(t, dict):
        children = [t[k] for k in td[1]]
    for i, (c, cd) in enumerate(zip(children, td[2])):
        _match(c, cd, out, f"{path}[{i}]")


def _compatible(t: Any, td: Any) -> bool:
    kind = td[0]
    if kind == "dict":
        return isinstance(t, dict) and sorted(t) == list(td[1])
    if kind in ("tuple", "list", "namedtuple"):
        return isinstance(t, (tuple, list)) and len(t) == len(td[2])
    return False


def _split_aux(out: Any) -> tuple[Any, Any]:
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise _errors.StructureError(
            f"with has_aux=True the function must return a pair (output, aux), got {type(out).__name__}"
        )
    return out[0], out[1]


def _strip(tree: Any, level: int) -> Any:
    """Aux outputs lose the tangents of this level (they are not differentiated)."""
    return _tree.map_tree(lambda x: x.primal if type(x) is DualTensor and x.level == level else x, tree)


# ------------------------------------------------------------------- jacfwd
def _check_argnums(argnums: Any) -> tuple[int, ...]:
    nums = argnums if isinstance(argnums, tuple) else (argnums,)
    if not nums:
        raise ValueError("argnums is an empty tuple; name at least one argument to differentiate")
    for a in nums:
        if isinstance(a, bool) or not isinstance(a, int):
            raise TypeError(f"argnums must be an int or a tuple of ints, got {argnums!r}")
    if len(set(nums)) != len(nums):
        raise ValueError(f"argnums has repeated entries: {argnums!r}")
    return nums


def _check_chunk_size(chunk_size: Any) -> None:
    if chunk_size is not None and (
        isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size <= 0
    ):
        raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size!r}")


def _check_options(argnums: Any, chunk_size: Any, has_aux: Any, holomorphic: Any, progress: Any) -> tuple:
    """Every argument of ``jacfwd`` checked when the transform is built, before any call."""
    nums = _check_argnums(argnums)
    _check_chunk_size(chunk_size)
    for name, v in (("has_aux", has_aux), ("holomorphic", holomorphic)):
        if not isinstance(v, bool):
            raise TypeError(f"{name} must be True or False, got {v!r}")
    _progress.check(progress)
    return nums


# Working set per direction, in arrays as large as the larger of input and output: a
# ForwardDiff-style fixed heuristic (the intermediates of f cannot be known in advance).
_LIVE_ARRAYS = 8


def _auto_chunk(n: int, m: int, itemsize: int) -> int:
    """Directions per pass so that ~8 tangents of max(n, m) elements each fit the memory budget."""
    per_direction = _LIVE_ARRAYS * itemsize * max(n, m, 1)
    return max(1, min(n, get_memory_budget() // per_direction))


def jacfwd(
    f: Callable,
    argnums: int | tuple[int, ...] = 0,
    *,
    has_aux: bool = False,
    chunk_size: int | None = None,
    holomorphic: bool = False,
    sparsity: Any = None,
    progress: Any = False,
    executor: Any = None,
) -> Callable:
    """A function computing the Jacobian of ``f`` by forward mode, layout ``out.shape + in.shape``.

    The identity basis is seeded as the tangent batch axis, so one pass of ``f`` gives the
    whole Jacobian when the directions fit; ``chunk_size`` bounds the directions per pass
    (by default chosen from ``get_memory_budget()``). ``argnums`` selects the positional
    arguments (a tuple gives a tuple of Jacobians); inputs and outputs may be nested
    tuples/lists/dicts, as in ``jax.jacfwd``. ``has_aux`` returns ``(jacobian, aux)``.
    Complex inputs need ``holomorphic=True`` (then the complex derivative is returned).
    ``sparsity`` (a pattern, or ``"detect"``) returns a coloured sparse Jacobian instead
    (see ``sparse_jacfwd``); ``progress=True`` shows a tqdm bar over the chunks;
    ``executor`` runs the chunks as tasks on it (see ``distributed_jacfwd``).

    >>> import numpy as np, fwdtensor as ft
    >>> ft.jacfwd(lambda x: x ** 2)(np.array([1.0, 2.0]))
    array([[2., 0.],
           [0., 4.]])
    """
    nums = _check_options(argnums, chunk_size, has_aux, holomorphic, progress)
    if sparsity is not None:
        sparse_jacfwd = hooks.entry("sparse_jacfwd")  # the sparse transform sits above this module

        return sparse_jacfwd(
            f, None if _is_detect(sparsity) else sparsity, argnums, has_aux=has_aux, chunk_size=chunk_size
        )
    if executor is not None:
        distributed_jacfwd = hooks.entry("distributed_jacfwd")  # the executors sit above this module

        return distributed_jacfwd(
            f, argnums, executor=executor, chunk_size=chunk_size, has_aux=has_aux, progress=progress
        )
    opts = (argnums, nums, has_aux, chunk_size, holomorphic, progress)

    def jacfun(*args: Any, **kwargs: Any) -> Any:
        value, jac, aux = _jacobian(f, args, kwargs, *opts)
        return (jac, aux) if has_aux else jac

    jacfun.__doc__ = f"Jacobian of {getattr(f, '__name__', 'f')} with respect to argnums={argnums}."
    return jacfun


def _is_detect(sparsity: Any) -> bool:
    if isinstance(sparsity, str):
        if sparsity != "detect":
            raise ValueError(f"sparsity must be a pattern or 'detect', got {sparsity!r}")
        return True
    return False


def value_and_jacfwd(
    f: Callable,
    argnums: int | tuple[int, ...] = 0,
    *,
    has_aux: bool = False,
    chunk_size: int | None = None,
    holomorphic: bool = False,
    sparsity: Any = None,
    progress: Any = False,
) -> Callable:
    """Like ``jacfwd`` but returns ``(value, jacobian)`` from the same pass.

    With ``has_aux`` it returns ``((value, aux), jacobian)``, as ``jax.value_and_grad`` does.
    """
    nums = _check_options(argnums, chunk_size, has_aux, holomorphic, progress)
    if sparsity is not None:
        sparse_jacfwd = hooks.entry("sparse_jacfwd")

        sj = sparse_jacfwd(
            f, None if _is_detect(sparsity) else sparsity, argnums, has_aux=has_aux, chunk_size=chunk_size
        )
        return sj.value_and_jacobian
    opts = (argnums, nums, has_aux, chunk_size, holomorphic, progress)

    def fun(*args: Any, **kwargs: Any) -> Any:
        value, jac, aux = _jacobian(f, args, kwargs, *opts)
        return ((value, aux), jac) if has_aux else (value, jac)

    return fun


def _select(args: tuple, argnums: Any, nums: tuple[int, ...]) -> tuple[tuple[int, ...], Any]:
    """The positions (made non-negative) and the tree of the arguments to differentiate."""
    for a in nums:
        if not -len(args) <= a < len(args):
            raise ValueError(
                f"argnums {argnums!r} is out of range for a call with {len(args)} positional arguments"
            )
    nums = tuple(a % len(args) for a in nums)
    return nums, (args[nums[0]] if isinstance(argnums, int) else tuple(args[a] for a in nums))


def _call_with(f: Callable, args: tuple, kwargs: dict, argnums: Any, nums: tuple, tree: Any) -> Any:
    """Call ``f`` with the differentiated arguments replaced by ``tree``."""
    call_args = list(args)
    if isinstance(argnums, int):
        call_args[nums[0]] = tree
    else:
        for a, sub in zip(nums, tree):
            call_args[a] = sub
    return f(*call_args, **kwargs)


def _jacobian(
    f: Callable,
    args: tuple,
    kwargs: dict,
    argnums: Any,
    nums: tuple[int, ...],
    has_aux: bool,
    chunk_size: int | None,
    holomorphic: bool,
    progress: Any = False,
) -> tuple:
    """Value, Jacobian tree and aux of ``f`` at ``args``: seed, run in chunks, assemble."""
    nums, in_tree = _select(args, argnums, nums)
    if progress is False and (type(in_tree) is DualTensor or _backend.is_array(in_tree)):
        res = _jacobian_one_pass(f, args, kwargs, nums[0], in_tree, has_aux, chunk_size, holomorphic)
        if res is not None:
            return res
    leaves, in_def = _tree.flatten(in_tree)
    leaves = [_leaf_array(x, "a differentiated argument") for x in leaves]
    itemsize = 8
    for x in leaves:
        itemsize = _check_differentiable_input(x, holomorphic)
    sizes = [math.prod(x.shape) for x in leaves]
    offsets = [sum(sizes[:i]) for i in range(len(sizes))]
    n = sum(sizes)
    if n == 0:
        return _empty_jacobian(f, args, kwargs, argnums, nums, has_aux, leaves, in_def)
    k = min(chunk_size, n) if chunk_size else _auto_chunk(n, n, itemsize)
    level = new_level()
    bar = _progress.reporter(progress if k < n or callable(progress) else False, n, "direction", "jacfwd")
    value = aux = sink = o_def = None
    s = 0
    try:
        while s < n:
            e = min(s + k, n)
            duals = [_seed_chunk(x, o, m, s, e, level) for x, o, m in zip(leaves, offsets, sizes)]
            out = _call_with(f, args, kwargs, argnums, nums, _tree.unflatten(in_def, duals))
            if has_aux:
                out, a_ = _split_aux(out)
                aux = _strip(a_, level) if aux is None else aux
            o_leaves, o_def = _tree.flatten(out)
            pairs = [_unpack_chunk(o, level) for o in o_leaves]
            if sink is None:
                value = _tree.unflatten(o_def, [p for p, _ in pairs])
                outs = [p for p, _ in pairs]
                sink = _Sink(outs, leaves, offsets, sizes, n, e < n)
                if chunk_size is None and e < n:  # the output size is known now: refine
                    m = sum(math.prod(o.shape) for o in outs)
                    k = min(k, _auto_chunk(n, m, itemsize))
            sink.add(s, e, [t for _, t in pairs])
            bar.update(e - s)
            s = e
    finally:
        bar.close()
    blocks = [_tree.unflatten(in_def, per_in) for per_in in sink.result()]
    return value, _tree.unflatten(o_def, blocks), aux


def _jacobian_one_pass(
    f: Callable, args: tuple, kwargs: dict, i: int, x: Any, has_aux: bool, chunk_size: Any, holomorphic: bool
) -> tuple | None:
    """The common case, with less bookkeeping: one array argument, all directions in one pass.

    Returns None (the general path takes over) when the directions need several chunks.
    """
    itemsize = _check_differentiable_input(x, holomorphic)
    n = math.prod(x.shape)
    if n == 0 or (chunk_size or _auto_chunk(n, n, itemsize)) < n:
        return None
    level = new_level()
    call = list(args)
    call[i] = _seed_chunk(x, 0, n, 0, n, level)
    out = f(*call, **kwargs)
    aux = None
    if has_aux:
        out, aux = _split_aux(out)
        aux = _strip(aux, level)
    if type(out) is DualTensor and out.level == level:  # one output array: no tree to walk
        o, t = out.primal, out._t
        if t is not None and t.shape[0] != n:
            t = _ns(t).broadcast_to(t, (n, *t.shape[1:]))
        return o, _plain(_block(t, o, x, 0, n)), aux
    o_leaves, o_def = _tree.flatten(out)
    pairs = [_unpack_chunk(leaf, level) for leaf in o_leaves]
    blocks = []
    for o, t in pairs:
        if t is not None and t.shape[0] != n:
            t = _ns(t).broadcast_to(t, (n, *t.shape[1:]))
        blocks.append(_plain(_block(t, o, x, 0, n)))
    return _tree.unflatten(o_def, [o for o, _ in pairs]), _tree.unflatten(o_def, blocks), aux


def _empty_jacobian(f, args, kwargs, argnums, nums, has_aux, leaves, in_def) -> tuple:
    """No input elements: one plain call, and Jacobian blocks with a zero-size axis."""
    out = _call_with(f, args, kwargs, argnums, nums, _tree.unflatten(in_def, leaves))
    aux = None
    if has_aux:
        out, aux = _split_aux(out)
    o_leaves, o_def = _tree.flatten(out)
    outs = [_unpack(o, 0, 1)[0] for o in o_leaves]
    blocks = [_tree.unflatten(in_def, [_block(None, o, x, 0, 0) for x in leaves]) for o in outs]
    return _tree.unflatten(o_def, outs), _tree.unflatten(o_def, blocks), aux


_DTYPE_INFO: dict = {}  # (namespace, dtype) -> (kind, itemsize): isdtype is slow on NumPy


def _dtype_info(xp: Any, dt: Any) -> tuple[str, int]:
    key = (xp, dt)
    info = _DTYPE_INFO.get(key)
    if info is None:
        if xp.isdtype(dt, "real floating"):
            info = ("real", xp.finfo(dt).bits // 8)
        elif xp.isdtype(dt, "complex floating"):
            info = ("complex", 2 * (xp.finfo(dt).bits // 8))
        else:
            info = ("other", 8)
        _DTYPE_INFO[key] = info
    return info


def _check_differentiable_input(x: Any, holomorphic: bool) -> int:
    """Refuse an input jacfwd cannot differentiate; return its bytes per element."""
    kind, itemsize = _dtype_info(_innermost_ns(x), x.dtype)
    if kind == "real" or (kind == "complex" and holomorphic):
        return itemsize
    if kind == "complex":
        raise _errors.NotDifferentiableError(
            f"jacfwd got a complex input ({x.dtype}). For a holomorphic function pass "
            "holomorphic=True to get the complex derivative df/dz; otherwise differentiate "
            "with respect to the real and imaginary parts as separate real inputs, e.g. "
            "jacfwd(lambda re, im: f(re + 1j * im), argnums=(0, 1))"
        )
    raise _errors.NotDifferentiableError(
        f"jacfwd differentiates floating inputs, got dtype {x.dtype}; cast it with "
        "astype(x, float64) or leave it out of argnums"
    )


def _seed_chunk(x: Any, off: int, m: int, s: int, e: int, level: int) -> DualTensor:
    """The dual for input leaf ``x`` (elements ``off..off+m``) in directions ``s..e``."""
    B = e - s
    if off >= e or off + m <= s:
        return _seed(x, None, level, B)
    xp = _innermost_ns(x)
    if x.ndim == 1 and xp is _NP:
        return _seed(x, _basis(B, m, s - off, x.dtype), level, B)
    eye = xp.eye(B, m, k=s - off, dtype=x.dtype, device=array_api_compat.device(_innermost(x)))
    return _seed(x, xp.reshape(eye, (B, *x.shape)), level, B)


def _unpack_chunk(leaf: Any, level: int) -> tuple[Any, Any]:
    if type(leaf) is DualTensor and leaf.level == level:
        return leaf.primal, leaf._t
    p, _ = _unpack(leaf, level, 1)  # validates the leaf; its tangent is zero
    return p, None


class _Sink:
    """Collects the chunk tangents of every output leaf into Jacobian blocks.

    One chunk: its tangents are transposed into place. Several chunks of plain arrays:
    each is written into preallocated blocks at once and dropped, so the memory beyond
    the Jacobian itself grows with the chunk size, not with n. Tangents that are duals
    (jacfwd inside another transform) are kept and joined with ``concat``.
    """

    def __init__(self, outs: list, leaves: list, offsets: list, sizes: list, n: int, chunked: bool) -> None:
        self.outs, self.leaves, self.offsets, self.sizes, self.n = outs, leaves, offsets, sizes, n
        self.chunked = chunked
        self.parts: list[list] = [[] for _ in outs]  # (s, e, tangent) per output leaf
        self.bufs: list[list | None] = [None] * len(outs)  # preallocated (m_out, m_in) blocks

    def add(self, s: int, e: int, touts: list) -> None:
        for j, t in enumerate(touts):
            if t is None:
                continue
            if t.shape[0] != e - s:
                t = _ns(t).broadcast_to(t, (e - s, *t.shape[1:]))
            if self.chunked and type(t) is not DualTensor:
                self._write(j, s, e, t)
            else:
                self.parts[j].append((s, e, t))

    def _write(self, j: int, s: int, e: int, t: Any) -> None:
        xp = _backend.namespace_of(t)
        mo = math.prod(self.outs[j].shape)
        if self.bufs[j] is None:
            dev = array_api_compat.device(t)
            self.bufs[j] = [xp.zeros((mo, m), dtype=t.dtype, device=dev) for m in self.sizes]
        t2 = xp.reshape(t, (e - s, mo))
        for buf, off, m in zip(self.bufs[j], self.offsets, self.sizes):
            a, b = max(s, off), min(e, off + m)
            if a < b:
                buf[:, a - off : b - off] = xp.matrix_transpose(t2[a - s : b - s, ...])

    def result(self) -> list[list]:
        """Per output leaf, the list of blocks ``out.shape + in.shape`` (one per input leaf)."""
        res = []
        for j, o in enumerate(self.outs):
            if self.bufs[j] is not None:
                xp = _backend.namespace_of(self.bufs[j][0])
                so = tuple(o.shape)
                res.append([xp.reshape(b, so + tuple(x.shape)) for b, x in zip(self.bufs[j], self.leaves)])
                continue
            full = _assemble(self.parts[j], o, self.n)
            res.append(
                [
                    _plain(_block(full, o, x, off, m))
                    for x, off, m in zip(self.leaves, self.offsets, self.sizes)
                ]
            )
        return res


def _assemble(parts: list, out: Any, n: int) -> Any:
    """Join chunk tangents ``(s, e, t)`` of one output into ``(n, *out.shape)``; None when all zero."""
    if not parts:
        return None
    if len(parts) == 1 and parts[0][:2] == (0, n):
        return parts[0][2]
    xp = _ns(parts[0][2])
    full, pos = [], 0
    for s, e, t in parts:
        if s > pos:
            full.append(_core.zeros_tangent(out, s - pos))
        full.append(t)
        pos = e
    if pos < n:
        full.append(_core.zeros_tangent(out, n - pos))
    return xp.concat(full, axis=0)


def _block(full: Any, out: Any, x: Any, off: int, m: int) -> Any:
    """The Jacobian block ``out.shape + x.shape`` from the stacked tangents ``(n, *out.shape)``."""
    so = tuple(out.shape)
    if full is None:  # a constant output: zeros on the input's backend and device
        xp = _innermost_ns(x)
        dt = _result_dtype(xp, out, x)
        return xp.zeros(so + tuple(x.shape), dtype=dt, device=array_api_compat.device(_innermost(x)))
    xp = _ns(full)
    t = full[off : off + m, ...] if (off, m) != (0, full.shape[0]) else full
    nd = len(so)
    if nd == 1:
        t = t.T  # the common 1-D output: a transposed view, no call through the namespace
    elif nd:
        t = xp.permute_dims(t, (*range(1, nd + 1), 0))
    want = so + tuple(x.shape)
    return t if tuple(t.shape) == want else xp.reshape(t, want)


_innermost = _core.innermost


def _result_dtype(xp: Any, out: Any, x: Any) -> Any:
    """The input's dtype, promoted with a floating output's dtype of the same backend."""
    if _innermost_ns(out) is xp and _backend.is_floating(xp, out.dtype):
        return xp.result_type(out.dtype, x.dtype)
    return x.dtype


# ------------------------------------------------------- identity seeds (NumPy)
_NP = _backend.default_numpy()


class _Basis(_np.ndarray):
    """Rows of the identity, as a NumPy array that knows it: ``E @ M`` is a row gather of M.

    The first linear layer of a Jacobian multiplies the identity seed by a weight matrix;
    this skips that O(B n p) product (a copy of O(B p) instead). Only 2-D seeds of 1-D
    inputs qualify, only ``matmul`` with the seed on the left is special, and any view
    that is not the whole seed (slices, transposes, other shapes) is an ordinary array.
    """

    _shift: int | None  # E[r, r + shift] = 1; None for views that are not the whole seed

    def __array_finalize__(self, obj: Any) -> None:
        same = isinstance(obj, _Basis) and self.shape == obj.shape and self.strides == obj.strides
        self._shift = obj._shift if same else None

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        if ufunc is _np.matmul and method == "__call__" and not kwargs and inputs[0] is self:
            r = _basis_matmul(self, inputs[1])
            if r is not None:
                return r
        inputs = tuple(_plain(i) for i in inputs)
        if "out" in kwargs:
            kwargs["out"] = tuple(_plain(o) for o in kwargs["out"])
        return getattr(ufunc, method)(*inputs, **kwargs)

    def __array_function__(self, func: Any, types: Any, args: tuple, kwargs: dict) -> Any:
        # reshape to its own shape (matmul of a vector folds the batch that way) keeps the
        # seed; every other function sees, and returns, ordinary arrays.
        if func is _np.reshape and args and args[0] is self and self._shift is not None:
            shape = args[1] if len(args) > 1 else kwargs.get("shape", kwargs.get("newshape"))
            if _same_shape(self.shape, shape):
                return self
        args = tuple(_plain(a) for a in args)
        args = tuple([_plain(x) for x in a] if isinstance(a, (list, tuple)) else a for a in args)
        return func(*args, **kwargs)

    def __getitem__(self, key: Any) -> Any:
        return self.view(_np.ndarray)[key]  # slices (p[0], ...) are ordinary arrays


def _same_shape(shape: tuple, new: Any) -> bool:
    """True when ``reshape(x, new)`` for ``x`` of ``shape`` gives ``shape`` again."""
    if isinstance(new, int):
        new = (new,)
    new = tuple(new)
    if len(new) != len(shape) or sum(1 for b in new if b == -1) > 1:
        return False
    return all(a == b or b == -1 for a, b in zip(shape, new))


def _basis(B: int, m: int, shift: int, dtype: Any) -> _Basis:
    e = _np.eye(B, m, k=shift, dtype=dtype).view(_Basis)
    e._shift = shift
    return e


def _basis_matmul(E: _Basis, M: Any) -> Any:
    """``E @ M`` for the identity rows ``E`` (B, m): rows of M, zeros where E has none."""
    if E._shift is None or not isinstance(M, _np.ndarray) or isinstance(M, _Basis) or M.ndim == 0:
        return None
    B, m = E.shape
    k = E._shift
    if (M.shape[0] if M.ndim == 1 else M.shape[-2]) != m:
        return None  # let NumPy raise its own shape error
    dt = _np.result_type(E.dtype, M.dtype)
    r0, r1 = max(0, -k), min(B, m - k)
    if M.ndim == 1:
        if (r0, r1, k) == (0, B, 0) and B == m:
            return M.astype(dt, copy=True)
        res = _np.zeros((B,), dtype=dt)
        res[r0:r1] = M[r0 + k : r1 + k]
        return res
    res = _np.zeros((*M.shape[:-2], B, M.shape[-1]), dtype=dt)
    res[..., r0:r1, :] = M[..., r0 + k : r1 + k, :]
    return res


def _plain(x: Any) -> Any:
    """A Jacobian block handed to the user is never the identity-seed subclass."""
    return x.view(_np.ndarray) if isinstance(x, _Basis) else x


# ---------------------------------------------------------- higher orders
def hessian(
    f: Callable, argnums: int | tuple[int, ...] = 0, *, has_aux: bool = False, chunk_size: int | None = None
) -> Callable:
    """The Hessian of ``f`` by forward-over-forward: ``jacfwd(jacfwd(f))``, layout ``out + in + in``."""
    if has_aux:
        inner = jacfwd(f, argnums, has_aux=True, chunk_size=chunk_size)
        return jacfwd(inner, argnums, has_aux=True, chunk_size=chunk_size)
    return jacfwd(jacfwd(f, argnums, chunk_size=chunk_size), argnums, chunk_size=chunk_size)


def derivative(f: Callable, order: int = 1) -> Callable:
    """The ``order``-th derivative of a function of one scalar (applied elementwise to arrays).

    >>> import fwdtensor as ft
    >>> float(ft.derivative(ft.sin, order=2)(0.5)) == -float(ft.sin(ft.asarray(0.5)))
    True
    """
    if isinstance(order, bool) or not isinstance(order, int) or order < 0:
        raise ValueError(f"order must be a non-negative integer, got {order!r}")
    g = f
    for _ in range(order):
        g = _first_derivative(g)
    return g


def _first_derivative(f: Callable) -> Callable:
    def df(x: Any) -> Any:
        x = _leaf_array(x, "the argument")
        xp = _innermost_ns(x)
        one = xp.ones(tuple(x.shape), dtype=x.dtype, device=array_api_compat.device(_innermost(x)))
        return jvp(f, (x,), (one,))[1]

    return df
