"""``custom_jvp``: a user-given forward rule for a function fwdtensor cannot see into.

The contract (see docs/jacobians.md):

* ``@ft.custom_jvp`` wraps ``f``; ``f.defjvp(rule)`` gives its rule,
  ``rule(*nondiff_args, primals, tangents) -> (out, tangent_out)``, as in ``jax.custom_jvp``.
* ``primals`` is the tuple of differentiable arguments with the duals of the level being
  differentiated taken off: plain arrays at first order, lower-level duals under nesting
  (so a rule written with array operations can itself be differentiated: ``hessian``).
* With ``defjvp(rule)`` (the default) every tangent has its primal's shape, one direction
  per call: when B directions are pushed at once (``jacfwd``), the rule is called B times
  and the tangents are stacked, so a rule written for ``jax.custom_jvp`` is right as it is.
* With ``defjvp(rule, batched=True)`` every tangent carries a leading axis of B directions,
  ``(B, *primal.shape)``, and ``tangent_out`` must be ``(B, *out.shape)``: one call for all
  directions. Elementwise rules (``t * cos(x)``) need no change; products and solves must
  treat the leading axis as a batch.
* Under nesting, tangents are lifted to (constant) duals of the primals' level, so a rule
  may combine them with primals by operators on every backend.
* Zero tangents (constants, other levels, integer arguments) are passed as zeros, or as
  ``None`` with ``symbolic_zeros=True``. Integer and boolean arguments always get ``None``.
* ``nondiff_argnums`` names positional arguments that are not differentiated (functions,
  options, sizes); they come first in the rule's arguments, as in JAX. They must not carry
  a tangent of the level being differentiated.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from ..core import backend as _backend
from ..core import dual as _core
from ..core import errors as _errors
from ..core import tree as _tree
from ..core.dual import DualTensor

__all__ = ["custom_jvp"]


class custom_jvp:  # named like jax.custom_jvp, used as a decorator
    """Give ``fun`` a forward-mode rule of your own, like ``jax.custom_jvp``.

    >>> import numpy as np, fwdtensor as ft
    >>> @ft.custom_jvp
    ... def cube(x):
    ...     return x * x * x
    >>> @cube.defjvp
    ... def cube_jvp(primals, tangents):
    ...     (x,), (t,) = primals, tangents
    ...     return cube(x), 3.0 * x * x * t
    >>> float(ft.derivative(cube)(np.array(2.0)))
    12.0
    """

    def __init__(self, fun: Callable, nondiff_argnums: tuple[int, ...] = ()) -> None:
        if not callable(fun):
            raise TypeError(
                f"custom_jvp wraps a function, got {type(fun).__name__} {fun!r}; write "
                "@ft.custom_jvp above a def, or ft.custom_jvp(f) with f callable"
            )
        functools.update_wrapper(self, fun)
        try:
            nums = tuple(nondiff_argnums)
        except TypeError:
            nums = (nondiff_argnums,)
        nums = tuple(_errors.as_index(i, "nondiff_argnums", 0, "a tuple of non-negative ints") for i in nums)
        self.fun = fun
        self._checked: set = set()  # argument signatures whose rule outputs matched fun's
        self.nondiff_argnums = tuple(sorted(set(nums)))
        self.rule: Callable | None = None
        self.batched = False
        self.symbolic_zeros = False
        try:
            self._sig: inspect.Signature | None = inspect.signature(fun)
        except (TypeError, ValueError):  # builtins and compiled functions may have none
            self._sig = None
        positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        params = [] if self._sig is None else list(self._sig.parameters.values())
        self._npos = sum(1 for q in params if q.kind in positional)

    def defjvp(self, rule: Callable, *, batched: bool = False, symbolic_zeros: bool = False) -> Callable:
        """Set the rule ``rule(*nondiff_args, primals, tangents) -> (out, tangent_out)``; returns it."""
        if not callable(rule):
            raise TypeError(f"defjvp takes a callable rule, got {type(rule).__name__}")
        self.rule, self.batched, self.symbolic_zeros = rule, bool(batched), bool(symbolic_zeros)
        return rule

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        return self if obj is None else functools.partial(self, obj)  # methods bind like functions

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        args = self._positional(args, kwargs)
        for i in self.nondiff_argnums:
            if i >= len(args):
                raise ValueError(
                    f"nondiff_argnums {self.nondiff_argnums} names argument {i}, but "
                    f"{self.__name__} was called with {len(args)} positional arguments"
                )
        diff = [a for i, a in enumerate(args) if i not in self.nondiff_argnums]
        leaves, tdef = _tree.flatten(tuple(diff))
        top = _core._top_level(tuple(leaves))
        if top is None:
            return self.fun(*args)
        self._check_nondiff(args, top.level)
        if self.rule is None:
            raise _errors.NotDifferentiableError(
                f"{self.__name__} is a custom_jvp function without a rule: define one with "
                f"@{self.__name__}.defjvp before differentiating it"
            )
        return _apply(self, args, leaves, tdef, top)

    # ----------------------------------------------------------------- helpers
    def _positional(self, args: tuple, kwargs: dict) -> tuple:
        """Arguments by position, defaults filled in, so argnums count them (as JAX does)."""
        if not kwargs and len(args) >= self._npos:
            return args
        if self._sig is None:
            raise TypeError(f"{self.__name__} is a custom_jvp function: pass its arguments by position")
        bound = self._sig.bind(*args, **kwargs)
        bound.apply_defaults()
        if bound.kwargs:
            raise TypeError(
                f"{self.__name__} is a custom_jvp function: keyword-only arguments "
                f"({', '.join(bound.kwargs)}) are not supported; make them positional"
            )
        return tuple(bound.args)

    def _check_nondiff(self, args: tuple, level: int) -> None:
        for i in self.nondiff_argnums:
            for leaf in _tree.flatten(args[i])[0]:
                if type(leaf) is DualTensor and leaf.level == level:
                    raise _errors.NotDifferentiableError(
                        f"argument {i} of {self.__name__} is in nondiff_argnums but depends on the "
                        "input being differentiated; take it out of nondiff_argnums"
                    )


def _apply(cj: custom_jvp, args: tuple, leaves: list, tdef: Any, top: DualTensor) -> Any:
    """Split the arguments at ``top``'s level, call the rule, and pair its outputs up again."""
    level, bxp = top.level, top._bxp
    primals, tangents, B = [], [], 0
    for leaf in leaves:
        if type(leaf) is DualTensor and leaf.level == level:
            primals.append(leaf.primal)
            tangents.append(leaf._t)
            B = max(B, leaf._B)
        else:
            primals.append(leaf)
            tangents.append(None)
    nondiff = [args[i] for i in cj.nondiff_argnums]
    if all(t is None for t in tangents):  # constant at this level: lower levels still apply
        return cj(*_merge(cj, args, _tree.unflatten(tdef, primals)))
    from .sparse import detect as _sparse  # sparsity detection sees through a custom rule conservatively

    if _sparse.is_tracer(bxp):
        out = cj(*_merge(cj, args, _tree.unflatten(tdef, primals)))
        return _sparse.custom_dependency(out, tangents, level, B, bxp)
    n = max(B, 1)
    tangents = [_full(p, t, n, cj.symbolic_zeros) for p, t in zip(primals, tangents)]
    p_tree = _tree.unflatten(tdef, primals)
    if cj.batched:
        out, tout = _call(cj, nondiff, p_tree, _tree.unflatten(tdef, tangents))
        pairs = _pair(cj, out, tout, n, batched=True)
    else:
        pairs = _loop(cj, nondiff, p_tree, tdef, tangents, n)
    _check_against_fun(cj, args, p_tree, pairs[0])
    o_leaves, o_def = _tree.flatten(_check_out(cj, pairs[0]))
    results = [
        _core.make_dual(o, t, level, B, bxp) if _floating(o) else o for o, t in zip(o_leaves, pairs[1])
    ]
    return _tree.unflatten(o_def, results)


def _signature(args: tuple) -> Any:
    """A hashable key for what decides the output's structure, shapes and dtypes; None if unknown."""
    leaves, tdef = _tree.flatten(args)
    key: list = [_tree.describe(tdef)]
    for leaf in leaves:
        if type(leaf) is DualTensor or _backend.is_array(leaf):
            key.append((type(_core.innermost(leaf)).__name__, tuple(leaf.shape), str(leaf.dtype)))
        else:
            try:
                hash(leaf)
            except TypeError:
                return None
            key.append((type(leaf).__name__, leaf))
    return tuple(key)


def _check_against_fun(cj: custom_jvp, args: tuple, p_tree: Any, rule_out: Any) -> None:
    """The rule's primal outputs must match ``fun``'s in structure, shape and dtype.

    ``fun`` runs once on the primals for each new signature of the arguments (shapes,
    dtypes, other arguments), so a rule that disagrees with its function is caught on
    first use and the check costs nothing afterwards.
    """
    key = _signature(args)
    if key is not None and key in cj._checked:
        return
    ref = cj.fun(*_merge(cj, args, p_tree))
    r_leaves, r_def = _tree.flatten(ref)
    o_leaves, o_def = _tree.flatten(rule_out)
    name = cj.__name__
    if _tree.describe(r_def) != _tree.describe(o_def):
        raise _errors.StructureError(
            f"the jvp rule of {name} returned outputs of structure {_tree.describe(o_def)}, but "
            f"{name} itself returns {_tree.describe(r_def)}; the rule's first result must be "
            f"{name}'s output"
        )
    for i, (r, o) in enumerate(zip(r_leaves, o_leaves)):
        rs, os_ = tuple(getattr(r, "shape", ())), tuple(getattr(o, "shape", ()))
        if rs != os_:
            raise _errors.StructureError(
                f"the jvp rule of {name} returned output {i} of shape {os_}, but {name} itself "
                f"returns shape {rs}; the rule's first result must be {name}'s output"
            )
        rd, od = getattr(r, "dtype", None), getattr(o, "dtype", None)
        if rd is not None and od is not None and rd != od:
            raise _errors.StructureError(
                f"the jvp rule of {name} returned output {i} of dtype {od}, but {name} itself "
                f"returns dtype {rd}; cast the rule's output (astype) to match"
            )
    if key is not None:
        cj._checked.add(key)


def _merge(cj: custom_jvp, args: tuple, diff: tuple) -> list:
    """The full argument list with the differentiable ones replaced by ``diff``."""
    it = iter(diff)
    return [a if i in cj.nondiff_argnums else next(it) for i, a in enumerate(args)]


def _floating(o: Any) -> bool:
    return type(o) is DualTensor or _backend.is_floating(_backend.namespace_of(o), o.dtype)


def _full(p: Any, t: Any, n: int, symbolic: bool) -> Any:
    """The tangent the rule sees: ``(n, *p.shape)``, zeros (or None) for a constant."""
    if type(p) is not DualTensor and not (_backend.is_array(p) and _floating(p)):
        return None  # integers, booleans, Python scalars: no tangent
    if t is None:
        if symbolic:
            return None
        t = _core.zeros_tangent(p, n)
    elif t.shape[0] != n:
        xp = _core.FT if type(t) is DualTensor else _backend.namespace_of(t)
        t = xp.broadcast_to(t, (n, *t.shape[1:]))
    if type(p) is DualTensor and type(t) is not DualTensor:
        # Nested: the primal is a dual of an outer level. A constant dual of that level
        # lets the rule write `t * f(x)` on every backend (array-api-strict refuses
        # `array * dual`); the result is a dual of that level either way.
        t = _core._make(t, None, p.level, 0, p._bxp)
    return t


def _call(cj: custom_jvp, nondiff: list, p_tree: Any, t_tree: Any) -> tuple:
    res = cj.rule(*nondiff, p_tree, t_tree)
    if not (isinstance(res, (tuple, list)) and len(res) == 2):
        raise _errors.StructureError(
            f"the jvp rule of {cj.__name__} must return a pair (out, tangent_out), got {type(res).__name__}"
        )
    # a rule written with ft.* on plain arrays returns constants of the namespace: their arrays
    return _tree.map_tree(_core.bare, res[0]), _tree.map_tree(_core.bare, res[1])


def _loop(cj: custom_jvp, nondiff: list, p_tree: Any, tdef: Any, tangents: list, n: int) -> tuple:
    """Call a one-direction rule once per direction and stack its tangents on a new axis."""
    out, per_dir = None, []
    for b in range(n):
        tb = [None if t is None else t[b, ...] for t in tangents]
        o, to = _call(cj, nondiff, p_tree, _tree.unflatten(tdef, tb))
        out = o if out is None else out
        per_dir.append(_pair(cj, o, to, 1, batched=False)[1])
    stacked = []
    for j in range(len(per_dir[0])):
        ts = [d[j] for d in per_dir]
        if all(t is None for t in ts):
            stacked.append(None)
            continue
        ref = next(t for t in ts if t is not None)
        xp = _core.FT if any(type(t) is DualTensor for t in ts) else _ns(ref)
        stacked.append(xp.stack([xp.zeros_like(ref) if t is None else t for t in ts], axis=0))
    return out, stacked


def _ns(x: Any) -> Any:
    return _core.FT if type(x) is DualTensor else _backend.namespace_of(x)


def _pair(cj: custom_jvp, out: Any, tout: Any, n: int, *, batched: bool) -> tuple:
    """Check the rule's tangents against its outputs; return (out, list of tangent leaves)."""
    o_leaves, o_def = _tree.flatten(_check_out(cj, out))
    t_leaves = _tangent_leaves(cj, tout, o_def, len(o_leaves))
    checked = []
    for i, (o, t) in enumerate(zip(o_leaves, t_leaves)):
        if t is None or not _floating(o):
            checked.append(None)
            continue
        want = (n, *o.shape) if batched else tuple(o.shape)
        got = tuple(getattr(t, "shape", ()))
        if got != want:
            if batched and got == tuple(o.shape) and n == 1:
                raise _errors.TangentError(_batched_hint(cj, i, got, want))
            raise _errors.TangentError(
                f"the jvp rule of {cj.__name__} returned a tangent of shape {got} for output {i}, "
                f"whose shape is {tuple(o.shape)}; expected {want}"
                + (" (B directions first: the rule was defined with batched=True)" if batched else "")
            )
        if t.dtype != o.dtype:
            raise _errors.TangentError(
                f"the jvp rule of {cj.__name__} returned a tangent of dtype {t.dtype} for output {i}, "
                f"whose dtype is {o.dtype}; they must match (cast with astype)"
            )
        checked.append(t)
    return out, checked


def _batched_hint(cj: custom_jvp, i: int, got: tuple, want: tuple) -> str:
    return (
        f"the jvp rule of {cj.__name__} (batched=True) returned a tangent of shape {got} for "
        f"output {i}; it must keep the leading axis of directions: expected {want}"
    )


def _tangent_leaves(cj: custom_jvp, tout: Any, o_def: Any, k: int) -> list:
    if tout is None:
        return [None] * k
    if o_def == ("leaf",):
        return [tout]
    t_leaves, t_def = _tree.flatten(tout)
    if _tree.describe(t_def) != _tree.describe(o_def):
        raise _errors.StructureError(
            f"the jvp rule of {cj.__name__} returned tangents of structure {_tree.describe(t_def)} "
            f"for outputs of structure {_tree.describe(o_def)}; they must match"
        )
    return t_leaves


def _check_out(cj: custom_jvp, out: Any) -> Any:
    for leaf in _tree.flatten(out)[0]:
        if type(leaf) is not DualTensor and not _backend.is_array(leaf):
            raise _errors.StructureError(
                f"the jvp rule of {cj.__name__} returned a primal output of type "
                f"{type(leaf).__name__}; outputs must be arrays or tuples/lists/dicts of arrays"
            )
    return out
