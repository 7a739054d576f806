"""``ft.fuse``: a whole elementwise program, primal and tangent, in one GPU kernel.

On a GPU an elementwise JVP is bound by memory traffic. The eager path runs one kernel per
operation and per tangent product, each reading and writing whole arrays; one kernel that
reads ``x, t`` once and writes ``y, ty`` once moves the least memory a JVP can. ``fuse``
traces the program (``_trace``), writes the loop body from the same rule rows the eager
path uses (``_codegen``), compiles it once per program and dtype, and launches it.

Fusion applies to CuPy arrays. Everything else (NumPy, torch, nested duals, programs with
reductions or slices) runs the program as written, which is always the reference; with
``strict=True`` such a call raises ``FuseError`` naming the reason instead.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from typing import Any

import array_api_compat
import numpy as np

from ..core import dual as _core
from ..core import tree as _tree
from ..core.backend import is_array, namespace_of
from ..core.dual import DualTensor
from . import codegen as _codegen
from . import kernels as _fused
from . import trace as _trace
from .trace import FuseError

__all__ = ["fuse", "FuseError", "FuseWarning", "Fused", "register_launcher"]

_BLOCK = 256


class FuseWarning(UserWarning):
    """A call of a fused function ran unfused: the program is not one elementwise kernel."""


# (predicate on the backend namespace, launcher) pairs; the first match launches kernels.
_LAUNCHERS: list[tuple[Callable[[Any], bool], Callable]] = []


def register_launcher(accepts: Callable[[Any], bool], launch: Callable) -> None:
    """Let ``fuse`` run kernels on another backend: ``launch(kernel, inputs, outputs, total)``.

    ``inputs`` are flat arrays (the launcher makes them contiguous), ``outputs`` fresh flat
    arrays to fill, ``total`` the loop length.
    CuPy's launcher is registered on import; the tests register a host C++ one.
    """
    _LAUNCHERS.insert(0, (accepts, launch))


def _launcher(xp: Any) -> Callable | None:
    for accepts, launch in _LAUNCHERS:
        if accepts(xp):
            return launch
    return None


_cupy_kernels: dict[str, Any] = {}


def _launch_cupy(kernel: _codegen.Kernel, inputs: list, outputs: list, total: int) -> None:
    import cupy

    inputs = [cupy.ascontiguousarray(a) for a in inputs]
    src = kernel.source("cuda")
    k = _cupy_kernels.get(src)
    if k is None:
        k = _cupy_kernels[src] = cupy.RawKernel(src, kernel.name)
    scalars = [
        cupy.float64(v) if type(v) is float else cupy.int64(v) for v in (kernel.N, total, *kernel.params)
    ]
    blocks = min((total + _BLOCK - 1) // _BLOCK, 2**31 - 1)
    with outputs[0].device:  # launch where the arrays live, not on the current device
        k((blocks,), (_BLOCK,), (*inputs, *outputs, *scalars))


register_launcher(_fused.is_cupy, _launch_cupy)


class _Plan:
    """What a call passes: which arguments are arrays, their backend, shape, dtype and level."""

    __slots__ = ("xp", "shape", "dtype", "device", "level", "B", "positions")


class _Quiet(str):
    """A reason not to fuse that is no surprise (no GPU backend, nothing to fuse): no warning."""


def _plan(args: tuple, kwargs: dict, launch: bool = True) -> _Plan | str:
    """A plan for fusing this call, or the reason it cannot be fused."""
    positions = [i for i, a in enumerate(args) if type(a) is DualTensor or is_array(a)]
    if not positions:
        return _Quiet("no array arguments")
    xp = namespace_of(_core.innermost(args[positions[0]]))
    if launch and _launcher(xp) is None:
        name = getattr(xp, "__name__", xp)
        return _Quiet(f"no kernel launcher for {name} arrays (fused kernels run on CuPy)")
    for v in kwargs.values():
        if type(v) is DualTensor or is_array(v):
            return "array keyword arguments are not fused; pass arrays positionally"
    levels, Bs, shapes, dtypes = set(), set(), set(), set()
    for i in positions:
        a = args[i]
        if type(a) is DualTensor:
            if type(a.primal) is DualTensor:
                return "nested duals (derivatives of derivatives) are not fused"
            levels.add(a.level)
            if a._t is not None:
                if namespace_of(a._t) is not xp:  # sparsity detection traces tangents itself
                    return _Quiet("tangents that are not arrays of the primal's library")
                Bs.add(a._t.shape[0])
            p, axp = a.primal, a._bxp
        else:
            p, axp = a, namespace_of(a)
        if axp is not xp:
            return "arrays of different libraries"
        shapes.add(tuple(p.shape))
        dtypes.add(p.dtype)
    if len(levels) > 1:
        return "duals of different levels"
    if len(Bs) > 1:
        return "tangents with different numbers of directions"
    try:
        shape = tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        return f"arrays of shapes {sorted(shapes)} do not broadcast together"
    (dtype,) = dtypes if len(dtypes) == 1 else (None,)
    if dtype is None or not (dtype == xp.float32 or dtype == xp.float64):
        got = sorted(map(str, dtypes))
        return f"dtypes {got}: fused programs take float32 or float64 arrays of one dtype"
    if math.prod(shape) == 0:
        return _Quiet("empty arrays")
    plan = _Plan()
    plan.positions = positions
    plan.xp, plan.shape, plan.dtype = xp, shape, dtype
    plan.device = array_api_compat.device(_core.innermost(args[positions[0]]))
    plan.level = levels.pop() if levels else None
    plan.B = Bs.pop() if Bs else 1
    return plan


class Fused:
    """A function whose elementwise program runs as one kernel per call (see ``fuse``)."""

    def __init__(self, f: Callable, strict: bool, retrace: bool = True) -> None:
        functools.update_wrapper(self, f)
        self.f = f
        self.strict = strict
        self.retrace = retrace
        self._traces: dict = {}  # signature -> (kernel, outputs, treedef, input origins)

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        # a fused method: bind the instance like a function would
        return self if obj is None else functools.partial(self, obj)

    def __repr__(self) -> str:
        name = getattr(self.f, "__qualname__", self.f)
        return f"fuse({name!r}, strict={self.strict}, retrace={self.retrace})"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        plan = _plan(args, kwargs)
        if isinstance(plan, str):
            if isinstance(plan, _Quiet) and not self.strict:
                return self.f(*args, **kwargs)
            return self._fallback(FuseError(plan), args, kwargs)
        key = None if self.retrace else _signature(plan, args, kwargs)
        hit = self._traces.get(key) if key is not None else None
        if hit is not None:  # retrace=False: the program of the first call with this signature
            kernel, outputs, treedef, origins = hit
            return self._run(plan, kernel, _inputs(plan, origins, args), outputs, treedef)
        try:
            kernel, built = self._build(plan, args, kwargs)
        except FuseError as exc:
            return self._fallback(exc, args, kwargs)
        except Exception as exc:  # an operation the tracer lacks; the eager run is the reference
            return self._fallback(FuseError(f"{type(exc).__name__}: {exc}"), args, kwargs)
        if key is not None:
            if len(self._traces) >= 64:
                self._traces.clear()
            self._traces[key] = (kernel, *built[1:])
        return self._run(plan, kernel, *built[:3])

    def _name(self) -> str:
        return getattr(self.f, "__qualname__", repr(self.f))

    def _fallback(self, exc: FuseError, args: tuple, kwargs: dict) -> Any:
        if self.strict:
            raise FuseError(f"{self._name()} cannot be fused: {exc}") from exc
        warnings.warn(f"ft.fuse: {self._name()} runs unfused: {exc}", FuseWarning, stacklevel=3)
        return self.f(*args, **kwargs)

    def explain(self, *args: Any, **kwargs: Any) -> str:
        """The CUDA source generated for these arguments, on any backend (NumPy arrays show what a
        CuPy call would compile); raises ``FuseError`` with the reason where there is none."""
        plan = _plan(args, kwargs, launch=False)
        if isinstance(plan, str):
            raise FuseError(f"{self._name()} cannot be fused: {plan}")
        kernel, _ = self._build(plan, args, kwargs)
        return kernel.source("cuda")

    def _build(self, plan: _Plan, args: tuple, kwargs: dict) -> tuple[_codegen.Kernel, tuple]:
        """Trace the program for these arguments and write its kernel."""
        xp, S = plan.xp, plan.shape
        tr, token = _trace.start(xp, S, plan.dtype, plan.B, plan.device)
        try:
            traced = list(args)
            origins: list[tuple] = []  # where each kernel input comes from: (argument, part)
            for i in plan.positions:
                a = args[i]
                if type(a) is DualTensor:
                    ps, ts = tr.array(a.primal, a._t)
                    ps = _core._make(ps, ts, a.level, a._B, _trace.SYM)
                    origins += [(i, "primal")] + ([(i, "tangent")] if ts is not None else [])
                else:
                    ps, _ = tr.array(a)
                    origins.append((i, "primal"))
                traced[i] = ps
            out = self.f(*traced, **kwargs)
            leaves, treedef = _tree.flatten(out)
            outputs = [self._output(tr, plan, leaf, traced) for leaf in leaves]
        finally:
            _trace.stop(token)
        exprs = []
        for p, t, _ in outputs:
            exprs.append((p, "primal"))
            if t is not None:
                exprs.append((t, "tangent"))
        # several directions only matter where a tangent is written
        batched = plan.B > 1 and any(kind == "tangent" for _, kind in exprs)
        kernel = _codegen.emit(tr.kinds, exprs, S, batched, str(plan.dtype))
        # inputs after the arguments' are arrays the program closed over
        origins += [(None, a) for a in tr.inputs[len(origins) :]]
        return kernel, (tr.inputs, outputs, treedef, origins)

    def _output(self, tr: _trace.Trace, plan: _Plan, leaf: Any, traced: list) -> tuple:
        """``(primal expr, tangent expr or None, B)`` of one output; B is the dual's own batch
        count (as the eager dispatch set it), ``_CONST`` for a result computed from plain
        arrays only (a constant of the namespace, as eagerly), None for a plain argument
        returned as it is."""
        if type(leaf) is DualTensor:
            if type(leaf.primal) is DualTensor or leaf.level != plan.level:
                raise FuseError(
                    "an output of another differentiation level (nested transforms are not fused)"
                )
            p, t = leaf.primal, leaf._t
        else:
            p, t = leaf, None
        if not isinstance(p, _trace.Sym):
            raise FuseError(f"an output of type {type(p).__name__}; fused programs return arrays")
        if p.e.dtype != "T":
            raise FuseError("a boolean output is not fused")
        self._check(tr, p, tr.canon, "an output")
        if t is not None:
            self._check(tr, t, ("b", *tr.canon), "a tangent output")
        if type(leaf) is DualTensor:
            return p.e, None if t is None else t.e, leaf._B
        return p.e, None, None if any(leaf is a for a in traced) else _CONST

    @staticmethod
    def _check(tr: _trace.Trace, s: _trace.Sym, roles: tuple, what: str) -> None:
        full = tuple(tr.size(r) for r in roles)
        if s.shape != full or _trace.significant(tr, s.roles) != _trace.significant(tr, roles):
            raise FuseError(f"{what} of shape {s.shape} is not elementwise over the inputs' shape {tr.shape}")

    def _run(self, plan: _Plan, kernel: _codegen.Kernel, inputs: list, outputs: list, treedef: Any) -> Any:
        xp, S, B = plan.xp, plan.shape, plan.B
        N = math.prod(S)
        arrays, results = [], []
        for _, t, B_out in outputs:
            y = xp.empty((N,), dtype=plan.dtype, device=plan.device)
            arrays.append(y)
            ty = None
            if t is not None:
                ty = xp.empty((B * N,), dtype=plan.dtype, device=plan.device)
                arrays.append(ty)
            results.append((y, ty, B_out))
        _launcher(xp)(kernel, inputs, arrays, B * N if kernel.batched else N)
        leaves = []
        for y, ty, B_out in results:
            y = xp.reshape(y, S)
            if B_out is None:
                leaves.append(y)
                continue
            if B_out is _CONST:
                leaves.append(_core.constant(y))
                continue
            ty = None if ty is None else xp.reshape(ty, (B, *S))
            leaves.append(_core._make(y, ty, plan.level, B_out, xp))
        return _tree.unflatten(treedef, leaves)


_CONST = -1  # the batch count of a constant output (see FusedFunction._output)


def _signature(plan: _Plan, args: tuple, kwargs: dict) -> tuple | None:
    """What a trace depends on besides the program's closure: shapes, dtype, directions and
    the values of non-array arguments (None when one of those values is unhashable)."""
    parts = []
    for a in args:
        if type(a) is DualTensor:
            parts.append(("dual", tuple(a.primal.shape), a._t is not None, a._B))
        elif is_array(a):
            parts.append(("array", tuple(a.shape)))
        else:  # repr keeps 0.0 and -0.0 (and 1 and True) apart
            parts.append((type(a), repr(a) if type(a) in (int, float, complex, bool) else a))
    key = (
        tuple(parts),
        tuple(sorted(kwargs.items())),
        plan.B,
        str(plan.dtype),
        id(plan.xp),
        str(plan.device),
    )
    try:
        hash(key)
    except TypeError:
        return None
    return key


def _inputs(plan: _Plan, origins: list, args: tuple) -> list:
    """The kernel inputs of a call, laid out as in the traced call they share a signature with."""
    xp, out = plan.xp, []
    for i, part in origins:
        if i is None:  # an array the program closed over at its trace
            out.append(part)
            continue
        a = args[i]
        p = a.primal if type(a) is DualTensor else a
        n = math.prod(p.shape)
        out.append(xp.reshape(p, (n,)) if part == "primal" else xp.reshape(a._t, (plan.B * n,)))
    return out


def fuse(f: Callable | None = None, *, strict: bool = False, retrace: bool = True) -> Any:
    """Run an elementwise program, and its tangents, as one kernel per call on CuPy arrays.

    ``fuse(f)`` (or ``@fuse``) returns a function with ``f``'s signature. Its array
    arguments (plain arrays or duals of one level and one float dtype, whose shapes
    broadcast together) are traced through ``f``; the program may use the
    standard's elementwise functions, operators, ``where``, ``clip``, ``roll`` and
    constants, and return one array or a tuple, list or dict of them. Each call retraces
    ``f`` (a few microseconds per operation) and reuses the compiled kernel when the program
    is unchanged, so nothing ``f`` closes over goes stale; ``f`` should be pure (a call that
    falls back runs it a second time).

    ``retrace=False`` traces once per signature instead (argument shapes, dtype, number of
    directions, values of non-array arguments) and then only launches: what ``f`` reads
    from elsewhere (closed-over arrays and numbers, globals, attributes of objects) is
    frozen at that first trace, as in ``jax.jit``. Pass what changes as arguments.

    Fusion pays on GPUs, where each eager operation is a pass over memory. On other
    backends, and for programs that are not elementwise, ``f`` runs as written; a program
    that cannot be fused on CuPy warns with ``FuseWarning`` (``strict=True`` raises
    ``FuseError`` instead).

    >>> import numpy as np, fwdtensor as ft
    >>> g = ft.fuse(lambda x: ft.log(x) + x * ft.roll(x, 1) - ft.sin(x))
    >>> y, t = ft.jvp(g, (np.array([1.0, 2.0]),), (np.array([1.0, 0.0]),))
    >>> [round(float(v), 4) for v in t]  # NumPy: the program runs as written
    [2.4597, 2.0]
    """
    if not isinstance(strict, bool):
        raise TypeError(f"strict must be True or False, got {strict!r}")
    if not isinstance(retrace, bool):
        raise TypeError(f"retrace must be True or False, got {retrace!r}")
    if f is None:
        return functools.partial(fuse, strict=strict, retrace=retrace)
    if not callable(f):
        raise TypeError(f"fuse takes a function, got {type(f).__name__}")
    return Fused(f, strict, retrace)
