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

from . import _backend, _core, _errors, _tree
from ._core import DualTensor
from ._levels import new_level

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
    want, got = tuple(p.shape), tuple(t.shape)
    if batched:
        if len(got) == 0 or got[1:] != want:
            raise _errors.TangentError(
                f"batched tangent {i} has shape {got}; expected (B, *primal.shape) = (B, {', '.join(map(str, want))})"
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
    outs = [p for p, _ in pairs]
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


def _auto_chunk(n: int, itemsize: int) -> int:
    """Directions per pass so that tangents of about 8 arrays of n inputs fit the budget."""
    per_direction = 8 * itemsize * max(n, 1)
    return max(1, min(n, get_memory_budget() // per_direction))


def jacfwd(
    f: Callable,
    argnums: int | tuple[int, ...] = 0,
    *,
    has_aux: bool = False,
    chunk_size: int | None = None,
    holomorphic: bool = False,
) -> Callable:
    """A function computing the Jacobian of ``f`` by forward mode, layout ``out.shape + in.shape``.

    The identity basis is seeded as the tangent batch axis, so one pass of ``f`` gives the
    whole Jacobian when the directions fit; ``chunk_size`` bounds the directions per pass
    (by default chosen from ``get_memory_budget()``). ``argnums`` selects the positional
    arguments (a tuple gives a tuple of Jacobians); inputs and outputs may be nested
    tuples/lists/dicts, as in ``jax.jacfwd``. ``has_aux`` returns ``(jacobian, aux)``.
    Complex inputs need ``holomorphic=True`` (then the complex derivative is returned).

    >>> import numpy as np, fwdtensor as ft
    >>> ft.jacfwd(lambda x: x ** 2)(np.array([1.0, 2.0]))
    array([[2., 0.],
           [0., 4.]])
    """
    nums = _check_argnums(argnums)
    _check_chunk_size(chunk_size)

    def jacfun(*args: Any, **kwargs: Any) -> Any:
        value, jac, aux = _jacobian(f, args, kwargs, argnums, nums, has_aux, chunk_size, holomorphic)
        return (jac, aux) if has_aux else jac

    jacfun.__doc__ = f"Jacobian of {getattr(f, '__name__', 'f')} with respect to argnums={argnums}."
    return jacfun


def value_and_jacfwd(
    f: Callable,
    argnums: int | tuple[int, ...] = 0,
    *,
    has_aux: bool = False,
    chunk_size: int | None = None,
    holomorphic: bool = False,
) -> Callable:
    """Like ``jacfwd`` but returns ``(value, jacobian)`` from the same pass.

    With ``has_aux`` it returns ``((value, aux), jacobian)``, as ``jax.value_and_grad`` does.
    """
    nums = _check_argnums(argnums)
    _check_chunk_size(chunk_size)

    def fun(*args: Any, **kwargs: Any) -> Any:
        value, jac, aux = _jacobian(f, args, kwargs, argnums, nums, has_aux, chunk_size, holomorphic)
        return ((value, aux), jac) if has_aux else (value, jac)

    return fun


def _jacobian(
    f: Callable,
    args: tuple,
    kwargs: dict,
    argnums: Any,
    nums: tuple[int, ...],
    has_aux: bool,
    chunk_size: int | None,
    holomorphic: bool,
) -> tuple:
    for a in nums:
        if not -len(args) <= a < len(args):
            raise ValueError(
                f"argnums {argnums!r} is out of range for a call with {len(args)} positional arguments"
            )
    nums = tuple(a % len(args) for a in nums)
    in_tree = args[nums[0]] if isinstance(argnums, int) else tuple(args[a] for a in nums)
    leaves, in_def = _tree.flatten(in_tree)
    leaves = [_leaf_array(x, "a differentiated argument") for x in leaves]
    for x in leaves:
        _check_differentiable_input(x, holomorphic)
    sizes = [math.prod(x.shape) for x in leaves]
    offsets = [sum(sizes[:i]) for i in range(len(sizes))]
    n = sum(sizes)
    itemsize = max((_itemsize(x) for x in leaves), default=8)
    k = chunk_size or _auto_chunk(n, itemsize)
    k = max(1, min(k, n)) if n else 1
    level = new_level()
    chunks: list[list] = []
    value = aux = None
    o_def = None
    for s in range(0, max(n, 1), k):
        e = min(s + k, n)
        duals = [_seed_chunk(x, o, m, s, e, level) for x, o, m in zip(leaves, offsets, sizes)]
        call_args = list(args)
        new_tree = _tree.unflatten(in_def, duals)
        if isinstance(argnums, int):
            call_args[nums[0]] = new_tree
        else:
            for a, sub in zip(nums, new_tree):
                call_args[a] = sub
        out = f(*call_args, **kwargs)
        if has_aux:
            out, a_ = _split_aux(out)
            if aux is None:
                aux = _strip(a_, level)
        o_leaves, o_def = _tree.flatten(out)
        pairs = [_unpack_chunk(o, level) for o in o_leaves]
        if value is None:
            value = _tree.unflatten(o_def, [p for p, _ in pairs])
        chunks.append([t for _, t in pairs])
    out_leaves = _tree.flatten(value)[0]
    blocks = []
    for j, o in enumerate(out_leaves):
        full = _assemble([c[j] for c in chunks], o, n, k)
        per_in = [_block(full, o, x, off, m) for x, off, m in zip(leaves, offsets, sizes)]
        blocks.append(_tree.unflatten(in_def, per_in))
    return value, _tree.unflatten(o_def, blocks), aux


def _itemsize(x: Any) -> int:
    xp = _innermost_ns(x)
    dt = x.dtype
    if xp.isdtype(dt, "complex floating"):
        return 2 * xp.finfo(dt).bits // 8
    return xp.finfo(dt).bits // 8 if xp.isdtype(dt, "real floating") else 8


def _check_differentiable_input(x: Any, holomorphic: bool) -> None:
    xp = _innermost_ns(x)
    if xp.isdtype(x.dtype, "real floating"):
        return
    if xp.isdtype(x.dtype, "complex floating"):
        if holomorphic:
            return
        raise _errors.NotDifferentiableError(
            f"jacfwd got a complex input ({x.dtype}); for a holomorphic function pass "
            "holomorphic=True, otherwise split it into real and imaginary parts"
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
    eye = xp.eye(B, m, k=s - off, dtype=x.dtype, device=array_api_compat.device(x))
    return _seed(x, xp.reshape(eye, (B, *x.shape)), level, B)


def _unpack_chunk(leaf: Any, level: int) -> tuple[Any, Any]:
    if type(leaf) is DualTensor and leaf.level == level:
        return leaf.primal, leaf._t
    p, _ = _unpack(leaf, level, 1)  # validates the leaf; its tangent is zero
    return p, None


def _assemble(parts: list, out: Any, n: int, k: int) -> Any:
    """Join the chunk tangents of one output into ``(n, *out.shape)``; None when all zero."""
    if all(p is None for p in parts):
        return None
    xp = _ns(next(p for p in parts if p is not None))
    sizes = [min(k, n - i * k) for i in range(len(parts))]
    full = []
    for p, b in zip(parts, sizes):
        if p is None:
            p = _core.zeros_tangent(out, b)
        elif p.shape[0] != b:
            p = xp.broadcast_to(p, (b, *p.shape[1:]))
        full.append(p)
    return full[0] if len(full) == 1 else xp.concat(full, axis=0)


def _block(full: Any, out: Any, x: Any, off: int, m: int) -> Any:
    """The Jacobian block ``out.shape + x.shape`` from the stacked tangents ``(n, *out.shape)``."""
    so = tuple(out.shape)
    if full is None:
        xp = _innermost_ns(out)
        dt = _result_dtype(xp, out, x)
        return xp.zeros(so + tuple(x.shape), dtype=dt, device=array_api_compat.device(_innermost(out)))
    xp = _ns(full)
    t = full[off : off + m, ...] if (off, m) != (0, full.shape[0]) else full
    nd = len(so)
    t = xp.permute_dims(t, (*range(1, nd + 1), 0))
    return xp.reshape(t, so + tuple(x.shape))


def _innermost(x: Any) -> Any:
    while type(x) is DualTensor:
        x = x.primal
    return x


def _result_dtype(xp: Any, out: Any, x: Any) -> Any:
    if _backend.is_floating(xp, out.dtype):
        return xp.result_type(out.dtype, x.dtype)
    return x.dtype


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
