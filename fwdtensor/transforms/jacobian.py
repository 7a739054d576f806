"""The transforms users call: ``jvp``, ``jacfwd``, ``value_and_jacfwd``, ``hessian``, ``derivative``.

Each call opens a fresh level (see ``_levels``), seeds duals at that level, runs the
function, and reads the tangents of that level back out of the outputs. Everything a
user can get wrong is checked before the function runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import array_api_compat
import numpy as _np

from ..core import backend as _backend
from ..core import budget as _budget
from ..core import dual as _core
from ..core import errors as _errors
from ..core import hooks
from ..core import tree as _tree
from ..core.budget import get_memory_budget, set_memory_budget
from ..core.dual import DualTensor
from ..core.levels import new_level
from . import batched as _batched
from . import progress as _progress
from .common import (
    LIVE_ARRAYS,
    check_argnums,
    check_chunk_size,
    check_differentiable_input,
    dtype_info,
    fresh,
    fresh_tree,
    innermost_ns,
    leaf_array,
    ns,
    positions,
    result_dtype,
    seed,
    split_aux,
    strip,
    transpose_into,
    unpack,
    zero_blocks,
)

__all__ = [
    "jvp",
    "batched_jvp",
    "jacfwd",
    "value_and_jacfwd",
    "hessian",
    "derivative",
    "grad",
    "value_and_grad",
    "set_memory_budget",
    "get_memory_budget",
]


# ------------------------------------------------------------------ helpers


def _check_tangent_leaf(i: int, p: Any, t: Any, batched: bool) -> Any:
    """Validate one tangent against its primal for ``jvp``; return it with the batch axis."""
    xp = innermost_ns(p)
    if t is None:
        return None
    t = _core.bare(t)
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
    p_leaves = [leaf_array(p, f"primal {i}") for i, p in enumerate(p_leaves)]
    ins = p_leaves + t_leaves  # the caller's buffers, which no output may share
    t_leaves = [_check_tangent_leaf(i, p, t, batched) for i, (p, t) in enumerate(zip(p_leaves, t_leaves))]
    sizes = {int(t.shape[0]) for t in t_leaves if t is not None}
    if len(sizes) > 1:
        raise _errors.TangentError(f"batched tangents disagree on the number of directions: {sorted(sizes)}")
    B = sizes.pop() if sizes else 1
    level = new_level()
    duals = [seed(p, t, level, B if batched else 0) for p, t in zip(p_leaves, t_leaves)]
    token = _budget.push(B, False)  # inner jacfwds size their chunks for it
    try:
        out = f(*_tree.unflatten(p_def, duals))
    finally:
        _budget.pop(token)
    aux = None
    if has_aux:
        out, aux = split_aux(out)
    o_leaves, o_def = _tree.flatten(out)
    given = [t for t in t_leaves if t is not None]
    tdtype = innermost_ns(given[0]).result_type(*given) if given else None
    pairs = [unpack(o, level, B, tdtype) for o in o_leaves]
    outs = [_np.asarray(p) if isinstance(p, _np.generic) else p for p, _ in pairs]  # 0-d arrays, not scalars
    touts = [t if batched else t[0, ...] for _, t in pairs]
    res = (_tree.unflatten(o_def, fresh(outs, ins)), _tree.unflatten(o_def, fresh(touts, ins)))
    return (*res, fresh_tree(strip(aux, level), ins)) if has_aux else res


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


# ------------------------------------------------------------------- jacfwd


def _normal_argnums(argnums: Any, nums: tuple[int, ...]) -> int | tuple[int, ...]:
    """``argnums`` with NumPy (or other integral) entries made Python ints, its form kept."""
    return nums if isinstance(argnums, tuple) else nums[0]


def _check_options(argnums: Any, chunk_size: Any, has_aux: Any, holomorphic: Any, progress: Any) -> tuple:
    """Every argument of ``jacfwd`` checked when the transform is built, before any call.

    Returns ``(argnums, nums, chunk_size)`` with integral values made Python ints.
    """
    nums = check_argnums(argnums)
    chunk_size = check_chunk_size(chunk_size)
    for name, v in (("has_aux", has_aux), ("holomorphic", holomorphic)):
        if not isinstance(v, bool):
            raise TypeError(f"{name} must be True or False, got {v!r}")
    _progress.check(progress)
    return _normal_argnums(argnums, nums), nums, chunk_size


def _auto_chunk(n: int, m: int, itemsize: int, reserved: int | None = 0) -> int:
    """Directions per pass so that ~8 tangents of max(n, m) elements each fit the memory budget.

    Inside other transforms every element already carries ``_budget.scale()`` values (the outer
    passes' primal and tangents), so the budget buys proportionally fewer directions here.
    """
    frames = _budget.frames()
    per_direction = LIVE_ARRAYS * itemsize * max(n, m, 1) * _budget.scale(frames)
    budget = get_memory_budget()
    if not frames:
        return max(1, min(n, budget // per_direction))
    # Nested, the primal part is a dual of the outer passes: it costs as much as a direction;
    # ``reserved`` is this level's own result, growing while its chunks run.
    guess = reserved is None  # the output size is not known yet: assume a square Jacobian
    if guess:
        reserved = min(_budget.ASSEMBLY * n * max(n, m) * itemsize * _budget.scale(frames), budget // 2)
    need = reserved + 2 * per_direction
    if need > budget:
        if not guess and any(fr.auto and fr.k > 1 for fr in frames):
            raise _budget.Shrink(need)  # not even one direction fits here: an outer pass gives way
        reserved = 0  # below the floor of one direction per level: at least do not crawl
    return max(1, min(n, (budget - reserved) // per_direction - 1))


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
    batch_axis: int | None = None,
    check: bool = True,
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
    ``batch_axis=k`` computes per-sample Jacobians: axis k of the differentiated arguments
    and of every output indexes independent samples, and the result has shape
    ``(N, *out_sample_shape, *in_sample_shape)`` (like ``vmap(jacfwd(f))``), from
    ``prod(in_sample_shape)`` directions whatever N is. The first call checks that no output
    sample depends on another input sample (``check=False`` skips that).

    >>> import numpy as np, fwdtensor as ft
    >>> ft.jacfwd(lambda x: x ** 2)(np.array([1.0, 2.0]))
    array([[2., 0.],
           [0., 4.]])
    >>> ft.jacfwd(lambda x: x * x[:, ::-1], batch_axis=0)(np.array([[1.0, 2.0], [3.0, 4.0]])).shape
    (2, 2, 2)
    """
    argnums, nums, chunk_size = _check_options(argnums, chunk_size, has_aux, holomorphic, progress)
    opts = (argnums, nums, has_aux, chunk_size, holomorphic, progress)
    routed = _routed(f, opts, sparsity, executor, batch_axis, check, with_value=False)
    if routed is not None:
        return routed

    def jacfun(*args: Any, **kwargs: Any) -> Any:
        value, jac, aux = _jacobian(f, args, kwargs, *opts)
        return (jac, fresh_tree(aux, _tree.flatten((args, kwargs))[0])) if has_aux else jac

    jacfun.__doc__ = f"Jacobian of {getattr(f, '__name__', 'f')} with respect to argnums={argnums}."
    return jacfun


def _routed(
    f: Callable, opts: tuple, sparsity: Any, executor: Any, batch_axis: Any, check: bool, with_value: bool
) -> Callable | None:
    """The transform ``jacfwd`` (``value_and_jacfwd`` with ``with_value``) hands over to: per-sample,
    sparse or distributed; None for the dense one. ``opts`` are the checked options."""
    argnums, nums, has_aux, chunk_size, holomorphic, progress = opts
    if batch_axis is not None:
        _only_with_batch_axis(
            sparsity=sparsity, executor=executor, holomorphic=holomorphic, progress=progress
        )
        return _batched.batched_jacfwd(
            f, argnums, nums, batch_axis=batch_axis, has_aux=has_aux, chunk_size=chunk_size, check=check,
            with_value=with_value, engine=_engine(),
        )  # fmt: skip
    _check_combination(sparsity, executor, holomorphic)
    if sparsity is not None:
        sparse = _sparse_transform(f, sparsity, argnums, has_aux, chunk_size, holomorphic, progress)
        return sparse.value_and_jacobian if with_value else sparse
    if executor is not None:
        distributed_jacfwd = hooks.entry("distributed_jacfwd")  # the executors sit above this module

        return distributed_jacfwd(
            f, argnums, executor=executor, chunk_size=chunk_size, has_aux=has_aux, progress=progress
        )
    return None


def _sparsity_pattern_fn() -> Callable:
    return hooks.entry("sparsity_pattern")  # sparsity detection sits above this module


def _engine() -> _batched.Engine:
    return _batched.Engine(batched_jvp, get_memory_budget, _sparsity_pattern_fn)


def _only_with_batch_axis(**options: Any) -> None:
    """Refuse options that per-sample Jacobians do not combine with (nothing is dropped silently)."""
    for name, value in options.items():
        if value is not None and value is not False:
            raise ValueError(
                f"batch_axis cannot be combined with {name}={value!r}: per-sample Jacobians are dense "
                f"blocks computed in this process; drop {name}, or drop batch_axis for the full Jacobian"
            )


def _check_combination(sparsity: Any, executor: Any, holomorphic: bool) -> None:
    """Options of ``jacfwd`` that cannot work together are refused by name, never dropped."""
    if sparsity is not None and executor is not None:
        raise ValueError(
            "jacfwd got both sparsity= and executor=, which cannot be combined: a sparse Jacobian "
            "takes one pass per chunk of colours on this process. Drop executor= (the colouring "
            "already makes the pass count small) or drop sparsity= to distribute dense chunks"
        )
    if executor is not None and holomorphic:
        raise ValueError(
            "jacfwd got both executor= and holomorphic=True, which cannot be combined: a "
            "distributed Jacobian differentiates real inputs only. Drop executor= for a complex "
            "derivative, or split the input into real and imaginary parts"
        )


def _sparse_transform(
    f: Callable, sparsity: Any, argnums: Any, has_aux: bool, chunk_size: Any, holomorphic: bool, progress: Any
) -> Any:

    pattern = None if _is_detect(sparsity) else sparsity
    if pattern is None and holomorphic:
        raise ValueError(
            "jacfwd got sparsity='detect' and holomorphic=True, which cannot be combined: the "
            "sparsity detection traces real inputs. Pass the pattern itself as sparsity= "
            "(ft.sparsity_pattern of a real version of f, or a known one) with holomorphic=True"
        )
    return hooks.entry("sparse_jacfwd")(  # the sparse transform sits above this module
        f,
        pattern,
        argnums,
        has_aux=has_aux,
        chunk_size=chunk_size,
        holomorphic=holomorphic,
        progress=progress,
    )


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
    batch_axis: int | None = None,
    check: bool = True,
) -> Callable:
    """Like ``jacfwd`` but returns ``(value, jacobian)`` from the same pass.

    With ``has_aux`` it returns ``((value, aux), jacobian)``, as ``jax.value_and_grad`` does.
    ``batch_axis`` gives per-sample Jacobians, as in ``jacfwd``.
    """
    argnums, nums, chunk_size = _check_options(argnums, chunk_size, has_aux, holomorphic, progress)
    opts = (argnums, nums, has_aux, chunk_size, holomorphic, progress)
    routed = _routed(f, opts, sparsity, None, batch_axis, check, with_value=True)
    if routed is not None:
        return routed

    def fun(*args: Any, **kwargs: Any) -> Any:
        value, jac, aux = _jacobian(f, args, kwargs, *opts)
        value, aux = fresh_tree((value, aux), _tree.flatten((args, kwargs))[0])  # results own their memory
        return ((value, aux), jac) if has_aux else (value, jac)

    return fun


def _select(args: tuple, argnums: Any, nums: tuple[int, ...]) -> tuple[tuple[int, ...], Any]:
    """The positions (made non-negative) and the tree of the arguments to differentiate."""
    nums = positions(argnums, nums, len(args))
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
    who: str = "jacfwd",
) -> tuple:
    """Value, Jacobian tree and aux of ``f`` at ``args``: seed, run in chunks, assemble.

    ``who`` names the transform in errors; ``"grad"`` also requires a scalar output.
    """
    nums, in_tree = _select(args, argnums, nums)
    if type(in_tree) is DualTensor:
        in_tree = _core.bare(in_tree)  # a constant input is its array
    k, depth = None, len(_budget.frames())
    if progress is False and (type(in_tree) is DualTensor or _backend.is_array(in_tree)):
        try:
            res = _jacobian_one_pass(f, args, kwargs, nums[0], in_tree, has_aux, chunk_size, holomorphic, who)
        except _budget.Shrink as exc:  # an inner transform needs fewer directions here
            k = _budget.shrunk(math.prod(in_tree.shape), exc, chunk_size, depth)
            if k is None:
                raise
            res = None
        if res is not None:
            return res
    leaves, in_def = _tree.flatten(in_tree)
    leaves = [leaf_array(x, "a differentiated argument") for x in leaves]
    itemsize = 8
    for x in leaves:
        itemsize = check_differentiable_input(x, holomorphic, who)
    sizes = [math.prod(x.shape) for x in leaves]
    offsets = [sum(sizes[:i]) for i in range(len(sizes))]
    n = sum(sizes)
    if n == 0:
        return _empty_jacobian(f, args, kwargs, argnums, nums, has_aux, leaves, in_def, who)
    if k is None:
        k = min(chunk_size, n) if chunk_size else _auto_chunk(n, n, itemsize, None)
    level = new_level()
    bar = _progress.reporter(progress if k < n or callable(progress) else False, n, "direction", who)
    value = aux = sink = o_def = None
    s = 0
    try:
        while s < n:
            e = min(s + k, n)
            duals = [_seed_chunk(x, o, m, s, e, level) for x, o, m in zip(leaves, offsets, sizes)]
            token = _budget.push(e - s, chunk_size is None)
            try:
                out = _call_with(f, args, kwargs, argnums, nums, _tree.unflatten(in_def, duals))
            except _budget.Shrink as exc:
                k2 = _budget.shrunk(e - s, exc, chunk_size, depth)
                if k2 is None:
                    raise
                k = k2
                continue
            finally:
                _budget.pop(token)
            if has_aux:
                out, a_ = split_aux(out)
                aux = strip(a_, level) if aux is None else aux
            o_leaves, o_def = _tree.flatten(out)
            if who == "grad":
                _check_scalar(o_leaves, o_def)
            pairs = [_unpack_chunk(o, level) for o in o_leaves]
            if sink is None:
                value = _tree.unflatten(o_def, [p for p, _ in pairs])
                outs = [p for p, _ in pairs]
                m = sum(math.prod(o.shape) for o in outs)
                held = _budget.check_result(n, m, itemsize, leaves[0], who)
                sink = _Sink(outs, leaves, offsets, sizes, n, e < n)
                if chunk_size is None and e < n:  # the output size is known now: refine
                    k2 = _auto_chunk(n, m, itemsize, held)
                    k = k2 if depth else min(k, k2)  # nested, the first chunk guessed low
            sink.add(s, e, [t for _, t in pairs])
            bar.update(e - s)
            s = e
    finally:
        bar.close()
    blocks = [_tree.unflatten(in_def, per_in) for per_in in sink.result()]
    return value, _tree.unflatten(o_def, blocks), aux


def _jacobian_one_pass(
    f: Callable,
    args: tuple,
    kwargs: dict,
    i: int,
    x: Any,
    has_aux: bool,
    chunk_size: Any,
    holomorphic: bool,
    who: str = "jacfwd",
) -> tuple | None:
    """The common case, with less bookkeeping: one array argument, all directions in one pass.

    Returns None (the general path takes over) when the directions need several chunks.
    """
    itemsize = check_differentiable_input(x, holomorphic, who)
    n = math.prod(x.shape)
    if n == 0 or (chunk_size or _auto_chunk(n, n, itemsize)) < n:
        return None
    level = new_level()
    call = list(args)
    call[i] = _seed_chunk(x, 0, n, 0, n, level)
    token = _budget.push(n, chunk_size is None)
    try:
        out = f(*call, **kwargs)
    finally:
        _budget.pop(token)
    aux = None
    if has_aux:
        out, aux = split_aux(out)
        aux = strip(aux, level)
    if who == "grad":
        _check_scalar(*_tree.flatten(out))
    if type(out) is DualTensor and out.level == level:  # one output array: no tree to walk
        o, t = _core.bare(out.primal), out._t
        _budget.check_result(n, math.prod(o.shape), itemsize, x, who)
        if t is not None and t.shape[0] != n:
            t = ns(t).broadcast_to(t, (n, *t.shape[1:]))
        return o, _plain(_block(t, o, x, 0, n)), aux
    o_leaves, o_def = _tree.flatten(out)
    pairs = [_unpack_chunk(leaf, level) for leaf in o_leaves]
    _budget.check_result(n, sum(math.prod(o.shape) for o, _ in pairs), itemsize, x, who)
    blocks = []
    for o, t in pairs:
        if t is not None and t.shape[0] != n:
            t = ns(t).broadcast_to(t, (n, *t.shape[1:]))
        blocks.append(_plain(_block(t, o, x, 0, n)))
    return _tree.unflatten(o_def, [o for o, _ in pairs]), _tree.unflatten(o_def, blocks), aux


def _check_scalar(o_leaves: list, o_def: Any) -> None:
    """``grad`` differentiates functions with one real scalar output; refuse anything else."""
    leaf = o_leaves[0] if len(o_leaves) == 1 and o_def == ("leaf",) else None
    if leaf is None or not hasattr(leaf, "shape"):
        what = f"outputs of structure {_tree.describe(o_def)}" if leaf is None else type(leaf).__name__
        raise _errors.StructureError(
            f"grad needs a function with one scalar (0-d array) output, got {what}; use "
            "ft.jacfwd for the Jacobian of several or non-scalar outputs"
        )
    if tuple(leaf.shape) != ():
        raise _errors.StructureError(
            f"grad needs a function with a scalar output, got an output of shape {tuple(leaf.shape)}; "
            "use ft.jacfwd for the Jacobian of a non-scalar output (or reduce it, e.g. with ft.sum)"
        )
    kind = dtype_info(innermost_ns(leaf), leaf.dtype)[0]
    if kind != "real":
        raise _errors.NotDifferentiableError(
            f"grad needs a real floating scalar output, got dtype {leaf.dtype}; use ft.jacfwd "
            "(holomorphic=True for complex outputs of complex inputs), or take the real part"
        )


def _empty_jacobian(f, args, kwargs, argnums, nums, has_aux, leaves, in_def, who="jacfwd") -> tuple:
    """No input elements: one plain call, and Jacobian blocks with a zero-size axis."""
    out = _call_with(f, args, kwargs, argnums, nums, _tree.unflatten(in_def, leaves))
    aux = None
    if has_aux:
        out, aux = split_aux(out)
    o_leaves, o_def = _tree.flatten(out)
    if who == "grad":
        _check_scalar(o_leaves, o_def)
    outs = [unpack(o, 0, 1)[0] for o in o_leaves]
    blocks = [_tree.unflatten(in_def, [_block(None, o, x, 0, 0) for x in leaves]) for o in outs]
    return _tree.unflatten(o_def, outs), _tree.unflatten(o_def, blocks), aux


def _seed_chunk(x: Any, off: int, m: int, s: int, e: int, level: int) -> DualTensor:
    """The dual for input leaf ``x`` (elements ``off..off+m``) in directions ``s..e``."""
    B = e - s
    if off >= e or off + m <= s:
        return seed(x, None, level, B)
    xp = innermost_ns(x)
    if x.ndim == 1 and xp is _NP:
        return seed(x, _basis(B, m, s - off, x.dtype), level, B)
    eye = xp.eye(B, m, k=s - off, dtype=x.dtype, device=array_api_compat.device(_innermost(x)))
    return seed(x, xp.reshape(eye, (B, *x.shape)), level, B)


def _unpack_chunk(leaf: Any, level: int) -> tuple[Any, Any]:
    if type(leaf) is DualTensor and leaf.level == level:
        return _core.bare(leaf.primal), leaf._t
    p, _ = unpack(leaf, level, 1)  # validates the leaf; its tangent is zero
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
                t = ns(t).broadcast_to(t, (e - s, *t.shape[1:]))
            if self.chunked and type(t) is not DualTensor:
                self._write(j, s, e, t)
            else:
                self.parts[j].append((s, e, t))

    def _write(self, j: int, s: int, e: int, t: Any) -> None:
        xp = _backend.namespace_of(t)
        mo = math.prod(self.outs[j].shape)
        if self.bufs[j] is None:
            self.bufs[j] = zero_blocks(xp, mo, self.sizes, t.dtype, array_api_compat.device(t))
        transpose_into(self.bufs[j], self.offsets, self.sizes, s, e, xp.reshape(t, (e - s, mo)))

    def result(self) -> list[list]:
        """Per output leaf, the list of blocks ``out.shape + in.shape`` (one per input leaf)."""
        res = []
        for j, o in enumerate(self.outs):
            if self.bufs[j] is not None:
                xp = _backend.namespace_of(self.bufs[j][0])
                so = tuple(o.shape)
                res.append([xp.reshape(b, so + tuple(x.shape)) for b, x in zip(self.bufs[j], self.leaves)])
                continue
            parts, self.parts[j] = self.parts[j], []
            full = _assemble(parts, o, self.n)
            del parts  # the chunks are garbage once joined: one copy alive, not two
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
    xp = ns(parts[0][2])
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
        xp = innermost_ns(x)
        dt = result_dtype(xp, out, x)
        return xp.zeros(so + tuple(x.shape), dtype=dt, device=array_api_compat.device(_innermost(x)))
    xp = ns(full)
    t = full[off : off + m, ...] if (off, m) != (0, full.shape[0]) else full
    nd = len(so)
    if nd == 1:
        t = t.T  # the common 1-D output: a transposed view, no call through the namespace
    elif nd:
        t = xp.permute_dims(t, (*range(1, nd + 1), 0))
    want = so + tuple(x.shape)
    return t if tuple(t.shape) == want else xp.reshape(t, want)


_innermost = _core.innermost


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
    f: Callable,
    argnums: int | tuple[int, ...] = 0,
    *,
    has_aux: bool = False,
    chunk_size: int | None = None,
    batch_axis: int | None = None,
    check: bool = True,
) -> Callable:
    """The Hessian of ``f`` by forward-over-forward: ``jacfwd(jacfwd(f))``, layout ``out + in + in``.

    ``batch_axis=k`` gives per-sample Hessians ``(N, *out_sample, *in_sample, *in_sample)``.
    """
    if batch_axis is not None:
        argnums, nums, chunk_size = _check_options(argnums, chunk_size, has_aux, False, False)
        return _batched.batched_hessian(
            f, argnums, nums, batch_axis=batch_axis, has_aux=has_aux, chunk_size=chunk_size, check=check,
            engine=_engine(),
        )  # fmt: skip
    if has_aux:
        inner = jacfwd(f, argnums, has_aux=True, chunk_size=chunk_size)
        return jacfwd(inner, argnums, has_aux=True, chunk_size=chunk_size)
    return jacfwd(jacfwd(f, argnums, chunk_size=chunk_size), argnums, chunk_size=chunk_size)


def derivative(f: Callable, order: int = 1) -> Callable:
    """The ``order``-th derivative of a function of one scalar: ``f``'s output may have any shape.

    The argument must be a Python number or a 0-d array (or dual); for arrays use
    ``jacfwd`` (the Jacobian), ``jvp`` (one directional derivative) or ``grad``.

    >>> import fwdtensor as ft
    >>> float(ft.derivative(ft.sin, order=2)(0.5)) == -float(ft.sin(ft.asarray(0.5)))
    True
    """
    order = _errors.as_index(order, "order", 0, "a non-negative integer")
    if not callable(f):
        raise TypeError(f"derivative takes a callable, got {type(f).__name__}")
    g = f
    for _ in range(order):
        g = _first_derivative(g)
    return g


def _scalar_argument(x: Any) -> Any:
    """The argument of ``derivative`` as a 0-d array; anything with elements to choose from is refused."""
    if isinstance(x, (int, float, complex)) and not isinstance(x, bool):
        return _backend.as_array(x)
    if (type(x) is DualTensor or _backend.is_array(x)) and tuple(x.shape) == ():
        return x
    what = f"an array of shape {tuple(x.shape)}" if hasattr(x, "shape") else type(x).__name__
    raise TypeError(
        f"derivative takes a Python number or a 0-d array, got {what}; for a function of an array "
        "use ft.jacfwd (the Jacobian), ft.grad (a scalar output) or ft.jvp (one direction), or "
        "apply derivative to each element"
    )


def _first_derivative(f: Callable) -> Callable:
    def df(x: Any) -> Any:
        x = _scalar_argument(x)
        xp = innermost_ns(x)
        one = xp.ones((), dtype=x.dtype, device=array_api_compat.device(_innermost(x)))
        return jvp(f, (x,), (one,))[1]

    return df


# ------------------------------------------------------------------- grad
def grad(
    f: Callable,
    argnums: int | tuple[int, ...] = 0,
    *,
    has_aux: bool = False,
    batch_axis: int | None = None,
    check: bool = True,
) -> Callable:
    """The gradient of a function with one real scalar output, like ``jax.grad``, by forward mode.

    Forward mode pushes one direction per input element, so the cost is ``n`` evaluations'
    worth of tangents (chunked by ``get_memory_budget()``), not one as in reverse mode; it
    pays off for few inputs or inside ``jacfwd``/``hessian``. The result has the input's
    shape (a tuple for tuple ``argnums``, the same tree for dict/list inputs); with
    ``has_aux`` it returns ``(gradient, aux)``. Non-scalar outputs raise (use ``jacfwd``).
    ``batch_axis=k`` gives per-sample gradients: ``f`` returns one scalar per sample (shape
    ``(N,)``) and the result is ``(N, *in_sample_shape)``, from ``prod(in_sample_shape)``
    directions whatever N is (see ``jacfwd``).

    >>> import numpy as np, fwdtensor as ft
    >>> ft.grad(lambda x: ft.sum(x ** 2))(np.array([1.0, 2.0]))
    array([2., 4.])
    >>> ft.grad(lambda x: ft.sum(x ** 2, axis=1), batch_axis=0)(np.array([[1.0, 2.0], [3.0, 4.0]]))
    array([[2., 4.],
           [6., 8.]])
    """
    vg = value_and_grad(f, argnums, has_aux=has_aux, batch_axis=batch_axis, check=check)

    def gradfun(*args: Any, **kwargs: Any) -> Any:
        value, g = vg(*args, **kwargs)
        return (g, value[1]) if has_aux else g

    gradfun.__doc__ = f"Gradient of {getattr(f, '__name__', 'f')} with respect to argnums={argnums}."
    return gradfun


def value_and_grad(
    f: Callable,
    argnums: int | tuple[int, ...] = 0,
    *,
    has_aux: bool = False,
    batch_axis: int | None = None,
    check: bool = True,
) -> Callable:
    """``(value, gradient)`` of a scalar function from the same passes, like ``jax.value_and_grad``.

    With ``has_aux`` it returns ``((value, aux), gradient)``. See ``grad`` for the cost and
    for ``batch_axis`` (per-sample values of shape ``(N,)`` and gradients).

    >>> import numpy as np, fwdtensor as ft
    >>> v, g = ft.value_and_grad(lambda x: ft.sum(x ** 3))(np.array([1.0, 2.0]))
    >>> float(v), g.tolist()
    (9.0, [3.0, 12.0])
    """
    if not callable(f):
        raise TypeError(f"grad takes a callable, got {type(f).__name__}")
    argnums, nums, _ = _check_options(argnums, None, has_aux, False, False)
    if batch_axis is not None:
        return _batched.batched_jacfwd(
            f, argnums, nums, batch_axis=batch_axis, has_aux=has_aux, check=check, with_value=True,
            out_axis=0, engine=_engine(),
        )  # fmt: skip

    def fun(*args: Any, **kwargs: Any) -> Any:
        value, g, aux = _jacobian(f, args, kwargs, argnums, nums, has_aux, None, False, who="grad")
        value = _np.asarray(value) if isinstance(value, _np.generic) else value  # 0-d, as jax does
        return ((value, aux), g) if has_aux else (value, g)

    return fun
