"""The pieces the Jacobian transforms share: ``jacobian.py``, ``sparse/`` and ``parallel/``.

An internal module of the transforms layer (no public API): input and output leaves, seeding
and unpacking duals, ``argnums`` and ``chunk_size`` checks, the dtype of a constant output's
block, the per-direction memory heuristic, and the transposed writes of chunk tangents into
Jacobian blocks. It imports only the core, so every transform may use it without a cycle.
"""

from __future__ import annotations

from typing import Any

import array_api_compat

from ..core import backend as _backend
from ..core import dual as _core
from ..core import errors as _errors
from ..core import memory as _memory
from ..core import tree as _tree
from ..core.dual import DualTensor

__all__ = [
    "LIVE_ARRAYS",
    "check_argnums",
    "check_chunk_size",
    "check_differentiable_input",
    "dtype_info",
    "fresh",
    "fresh_tree",
    "innermost_ns",
    "leaf_array",
    "ns",
    "position",
    "positions",
    "result_dtype",
    "seed",
    "split_aux",
    "split_output",
    "strip",
    "transpose_into",
    "zero_blocks",
    "unpack",
]


def leaf_array(x: Any, what: str) -> Any:
    """A primal leaf as an array (Python scalars become NumPy float64; constants their array)."""
    if type(x) is DualTensor:
        return _core.bare(x)
    if _backend.is_array(x):
        return x
    if isinstance(x, (int, float, complex)) and not isinstance(x, bool):
        return _backend.as_array(x)
    raise TypeError(f"{what} must be an array or a Python number, got {type(x).__name__}")


def ns(x: Any) -> Any:
    """The namespace to operate on ``x`` itself: fwdtensor's for a dual."""
    return _core.FT if type(x) is DualTensor else _backend.namespace_of(x)


def innermost_ns(x: Any) -> Any:
    """The backend namespace of ``x``'s innermost arrays (a dual's, or a plain array's own)."""
    return x._bxp if type(x) is DualTensor else _backend.namespace_of(x)


def seed(p: Any, t: Any, level: int, B: int) -> DualTensor:
    """A dual of ``level`` with primal ``p`` (array or lower dual) and batched tangent ``t``."""
    return _core._make(p, t, level, B, innermost_ns(p))


def unpack(leaf: Any, level: int, B: int, tdtype: Any = None) -> tuple[Any, Any]:
    """Primal and batched tangent of one output leaf at ``level`` (zeros if constant)."""
    if type(leaf) is DualTensor:
        if leaf.level == level:
            t = leaf._t
            p = _core.bare(leaf.primal)  # constants of the namespace go back as their arrays
            return p, (_zero_tangent(p, B, tdtype) if t is None else _full_batch(leaf, t, B))
        if leaf.level > level and _core.carries_tangent(leaf):
            raise _errors.FwdTensorError(
                "a dual of an inner transform escaped to an outer one; return its primal "
                "(or call the inner transform inside the outer function)"
            )
        leaf = _core.bare(leaf)
        return leaf, _zero_tangent(leaf, B, tdtype)
    if _backend.is_array(leaf):
        return leaf, _zero_tangent(leaf, B, tdtype)
    if isinstance(leaf, (int, float, complex)) and not isinstance(leaf, bool):
        arr = _backend.as_array(leaf)
        return arr, _core.zeros_tangent(arr, B)
    raise _errors.StructureError(
        f"the function returned a {type(leaf).__name__}; outputs must be arrays or nested "
        "tuples/lists/dicts of arrays"
    )


def _zero_tangent(p: Any, B: int, tdtype: Any = None) -> Any:
    """The zero tangent of an output that carries none: its own dtype when it is floating.

    Integer and boolean outputs get zeros of ``tdtype``, the dtype of the input tangents
    (promoted together), as their ``jacfwd`` blocks get the input's dtype; the backend's
    default floating dtype when there is none.
    """
    xp = innermost_ns(p)
    if _backend.is_floating(xp, p.dtype):
        return _core.zeros_tangent(p, B)
    dt = _default_float(xp, p) if tdtype is None else tdtype
    return xp.zeros((B, *p.shape), dtype=dt, device=array_api_compat.device(_core.innermost(p)))


def _default_float(xp: Any, p: Any) -> Any:
    """The default real floating dtype of ``xp`` on ``p``'s device (float64 where it exists)."""
    try:
        dev = array_api_compat.device(_core.innermost(p))
        return xp.__array_namespace_info__().default_dtypes(device=dev)["real floating"]
    except Exception:  # a namespace without inspection
        return xp.float64


def _full_batch(leaf: DualTensor, t: Any, B: int) -> Any:
    """A tangent with its batch axis broadcast to all ``B`` directions."""
    if t.shape[0] == B:
        return t
    return ns(t).broadcast_to(t, (B, *t.shape[1:]))


def fresh(leaves: list, inputs: list) -> list:
    """The output leaves, each copied where it may share memory with an input (results own
    their memory); a fresh result, the common case, is handed back without a copy."""
    ins = _memory.leaves(inputs)
    share = _memory.may_share_any
    return [_copy_out(o) if o is not None and share(o, ins) else o for o in leaves]


def fresh_tree(tree: Any, inputs: list) -> Any:
    """``tree`` with its array and dual leaves made fresh as ``fresh`` does (aux outputs)."""
    leaves, td = _tree.flatten(tree)
    arrays = [x if type(x) is DualTensor or _backend.is_array(x) else None for x in leaves]
    copied = fresh(arrays, inputs)
    return _tree.unflatten(td, [f if a is not None else x for x, a, f in zip(leaves, arrays, copied)])


def _copy_out(x: Any) -> Any:
    """A copy of an array or a dual, through its own backend."""
    import copy

    return copy.deepcopy(x) if type(x) is DualTensor else _memory.copy_array(x)


def split_aux(out: Any) -> tuple[Any, Any]:
    """The pair ``(output, aux)`` a ``has_aux=True`` function returns, checked."""
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise _errors.StructureError(
            f"with has_aux=True the function must return a pair (output, aux), got {type(out).__name__}"
        )
    return out[0], out[1]


def split_output(out: Any, has_aux: bool) -> tuple[Any, Any]:
    """``(output, aux)`` of what the function returned (aux None without ``has_aux``)."""
    return split_aux(out) if has_aux else (out, None)


def strip(tree: Any, level: int) -> Any:
    """Aux outputs lose the tangents of this level (they are not differentiated); constants
    of the namespace become their arrays."""

    def bare(x: Any) -> Any:
        if type(x) is not DualTensor:
            return x
        return _core.bare(x.primal if x.level == level else x)

    return _tree.map_tree(bare, tree)


def check_argnums(argnums: Any, nargs: int | None = None) -> tuple[int, ...]:
    """The positions named by ``argnums`` (an integer or a tuple of them), as Python ints.

    With ``nargs`` (the number of positional arguments of a call) they are also checked
    against it and made non-negative (``positions``).
    """
    nums = argnums if isinstance(argnums, tuple) else (argnums,)
    if not nums:
        raise ValueError("argnums is an empty tuple; name at least one argument to differentiate")
    nums = tuple(_errors.as_index(a, "argnums", None, "an int or a tuple of ints") for a in nums)
    if len(set(nums)) != len(nums):
        raise ValueError(f"argnums has repeated entries: {argnums!r}")
    return nums if nargs is None else positions(argnums, nums, nargs)


def positions(argnums: Any, nums: tuple[int, ...], nargs: int) -> tuple[int, ...]:
    """``nums`` (checked ``argnums``) made non-negative for a call with ``nargs`` positional arguments."""
    for a in nums:
        if not -nargs <= a < nargs:
            raise ValueError(
                f"argnums {argnums!r} is out of range for a call with {nargs} positional arguments"
            )
    return tuple(a % nargs for a in nums)


def position(argnum: int, nargs: int) -> int:
    """The one position ``argnum`` (a checked int) names, made non-negative for ``nargs`` arguments."""
    return positions(argnum, (argnum,), nargs)[0]


def check_chunk_size(chunk_size: Any) -> int | None:
    """``chunk_size`` as a positive Python int, or None (the transform picks one)."""
    if chunk_size is None:
        return None
    return _errors.as_index(chunk_size, "chunk_size", 1, "a positive integer or None")


_DTYPE_INFO: dict = {}  # (namespace, dtype) -> (kind, itemsize): isdtype is slow on NumPy


def dtype_info(xp: Any, dt: Any) -> tuple[str, int]:
    """``("real" | "complex" | "other", bytes per element)`` of ``dt``, cached."""
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


def check_differentiable_input(x: Any, holomorphic: bool, who: str = "jacfwd") -> int:
    """Refuse an input ``who`` (jacfwd, grad) cannot differentiate; return its bytes per element."""
    kind, itemsize = dtype_info(innermost_ns(x), x.dtype)
    if kind == "real" or (kind == "complex" and holomorphic):
        return itemsize
    if kind == "complex" and who == "grad":
        raise _errors.NotDifferentiableError(
            f"grad got a complex input ({x.dtype}); grad differentiates real floating inputs. "
            "Use ft.jacfwd(f, holomorphic=True) for the complex derivative of a holomorphic f, "
            "or differentiate with respect to the real and imaginary parts as separate inputs"
        )
    if kind == "complex":
        raise _errors.NotDifferentiableError(
            f"jacfwd got a complex input ({x.dtype}). For a holomorphic function pass "
            "holomorphic=True to get the complex derivative df/dz; otherwise differentiate "
            "with respect to the real and imaginary parts as separate real inputs, e.g. "
            "jacfwd(lambda re, im: f(re + 1j * im), argnums=(0, 1))"
        )
    raise _errors.NotDifferentiableError(
        f"{who} differentiates floating inputs, got dtype {x.dtype}; cast it with "
        "astype(x, float64) or leave it out of argnums"
    )


def result_dtype(xp: Any, out: Any, x: Any) -> Any:
    """The dtype of the block d``out``/d``x`` when ``out`` carries no tangent (a zero block).

    A floating output of backend ``xp``: its own dtype, the dtype its tangent would have had
    (a non-constant output's block, ``jvp``'s zero tangent and the distributed blocks all have
    it). An integer or boolean output, or one of another backend: the input's dtype.
    """
    if innermost_ns(out) is xp and _backend.is_floating(xp, out.dtype):
        return out.dtype
    return x.dtype


# Working set per direction, in arrays as large as the larger of input and output: a
# ForwardDiff-style fixed heuristic (the intermediates of f cannot be known in advance).
LIVE_ARRAYS = 8


def zero_blocks(xp: Any, mo: int, sizes: list, dtype: Any, device: Any) -> list:
    """Zero Jacobian blocks ``(mo, m)`` for one output of ``mo`` elements, one per input size ``m``.

    ``dtype`` is one dtype, or a list of them, one per input.
    """
    dtypes = dtype if isinstance(dtype, list) else [dtype] * len(sizes)
    return [xp.zeros((mo, m), dtype=dt, device=device) for m, dt in zip(sizes, dtypes)]


def transpose_into(bufs: list, offsets: list, sizes: list, s: int, e: int, t2: Any) -> None:
    """Write the tangents ``t2`` ``(e - s, mo)`` of directions ``[s, e)`` into the blocks ``bufs``.

    The directions are the flattened inputs one after another: input ``i`` owns directions
    ``offsets[i] .. offsets[i] + sizes[i]``, and its block ``(mo, sizes[i])`` gets the columns
    of the directions of this chunk that are its own.
    """
    xp = _backend.namespace_of(t2)
    for buf, off, m in zip(bufs, offsets, sizes):
        a, b = max(s, off), min(e, off + m)
        if a < b:
            buf[:, a - off : b - off] = xp.matrix_transpose(t2[a - s : b - s, ...])
