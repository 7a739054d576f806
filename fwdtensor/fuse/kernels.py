"""Optional fused CuPy kernels: the primal and the tangent of an elementwise rule in one pass.

On a GPU elementwise functions are bound by memory traffic. The generic path computes
``y = f(x)``, then ``f'(x)``, then ``t * f'(x)``: three kernels and two temporaries. One
kernel that reads ``x, t`` and writes ``y, ty`` moves the least memory an elementwise JVP
can. Fusion is off by default (the generic path is the reference): turn it on with
``set_fused(True)`` or the environment variable ``FWDTENSOR_FUSED=1``.

A hook returns None, and the generic path runs, unless every condition holds: CuPy arrays
of float32 or float64, one direction (a tangent of shape ``(1, *primal.shape)``), operands
of one shape, dtype and level, plain primals (not nested duals), and a kernel for the
rule. Wiring, in ``_core.unary`` and ``_core.binary`` right after the dual checks::

    if _fused.enabled and (r := _fused.unary(rule, x)) is not None:
        return r

Nothing here imports CuPy until a hook meets a CuPy array with fusion enabled.
"""

from __future__ import annotations

import os
from typing import Any

from ..core import dual as _core

__all__ = ["set_fused", "is_fused", "is_cupy", "unary", "binary", "UNARY", "BINARY"]

# The loop body of each kernel, in CUDA C++: ``x, t -> y, ty`` and ``a, ta, b, tb -> y, ty``.
# ``T`` is the element type; literals are cast to it so float32 kernels stay in float32.
# Each body is the same formula as the rule's row in rules/elementwise.py.
UNARY: dict[str, str] = {
    "sin": "y = sin(x); ty = t * cos(x);",
    "cos": "y = cos(x); ty = -(t * sin(x));",
    "tan": "T v = tan(x); y = v; ty = t * ((T)1 + v * v);",
    "exp": "T v = exp(x); y = v; ty = t * v;",
    "expm1": "T v = expm1(x); y = v; ty = t * (v + (T)1);",
    "log": "y = log(x); ty = t / x;",
    "log1p": "y = log1p(x); ty = t / (x + (T)1);",
    "sqrt": "T v = sqrt(x); y = v; ty = t * ((T)0.5 / v);",
    "tanh": "T v = tanh(x); y = v; ty = t * ((T)1 - v * v);",
    "sinh": "y = sinh(x); ty = t * cosh(x);",
    "cosh": "y = cosh(x); ty = t * sinh(x);",
    "negative": "y = -x; ty = -t;",
    "square": "y = x * x; ty = t * ((T)2 * x);",
    "reciprocal": "T v = (T)1 / x; y = v; ty = -(t * (v * v));",
}
BINARY: dict[str, str] = {
    "add": "y = a + b; ty = ta + tb;",
    "subtract": "y = a - b; ty = ta - tb;",
    "multiply": "y = a * b; ty = ta * b + a * tb;",
    # (ta - y tb) / b: the quotient rule with one division, as the generic DivBy path.
    "divide": "T v = a / b; y = v; ty = (ta - v * tb) / b;",
}

_ON = ("1", "true", "yes", "on")
enabled: bool = os.environ.get("FWDTENSOR_FUSED", "").strip().lower() in _ON
hits: list[int] = [0]  # fused calls so far: lets a benchmark see whether the hooks are wired
_kernels: dict[str, Any] = {}
_cupy_ns: dict[int, bool] = {}


def set_fused(flag: bool) -> None:
    """Turn fused CuPy kernels for elementwise rules on or off (off by default)."""
    global enabled
    if not isinstance(flag, bool):
        raise TypeError(f"set_fused takes True or False, got {flag!r}")
    enabled = flag


def is_fused() -> bool:
    """True when fused CuPy kernels are enabled."""
    return enabled


def is_cupy(xp: Any) -> bool:
    """True for CuPy's namespace (decided once per namespace object, without importing CuPy)."""
    key = id(xp)
    hit = _cupy_ns.get(key)
    if hit is None:
        hit = _cupy_ns[key] = getattr(xp, "__name__", "").split(".")[-1] == "cupy"
    return hit


def _plain_float(d: Any) -> bool:
    """A dual this module can fuse: plain CuPy float32/float64 primal, one direction."""
    t = d._t
    if t is None or t.shape[0] != 1 or type(d.primal) is _core.DualTensor or not is_cupy(d._bxp):
        return False
    dt = d.primal.dtype
    return dt.kind == "f" and dt.itemsize in (4, 8)


def _kernel(name: str, body: str, params: str) -> Any:
    """The ElementwiseKernel for ``name`` (built once; CuPy compiles it per dtype and device)."""
    k = _kernels.get(name)
    if k is None:
        import cupy

        k = _kernels[name] = cupy.ElementwiseKernel(params, "T y, T ty", body, f"fwdtensor_{name}_jvp")
    return k


def unary(rule: Any, x: Any) -> Any:
    """The fused result of a one-argument rule on dual ``x``, or None to use the generic path."""
    body = UNARY.get(rule.name)
    if body is None or rule.kind != "diff" or not _plain_float(x):
        return None
    y, ty = _kernel(rule.name, body, "T x, T t")(x.primal, x._t[0, ...])
    hits[0] += 1
    return _core._make(y, ty[None, ...], x.level, x._B, x._bxp)


def binary(rule: Any, a: Any, b: Any) -> Any:
    """The fused result of a two-argument rule on duals ``a, b``, or None to use the generic path."""
    body = BINARY.get(rule.name)
    D = _core.DualTensor
    if body is None or type(a) is not D or type(b) is not D or a.level != b.level:
        return None
    if not (_plain_float(a) and _plain_float(b)) or a._bxp is not b._bxp:
        return None
    pa, pb = a.primal, b.primal
    if pa.shape != pb.shape or pa.dtype != pb.dtype:
        return None  # broadcasting and type promotion stay on the generic path
    y, ty = _kernel(rule.name, body, "T a, T ta, T b, T tb")(pa, a._t[0, ...], pb, b._t[0, ...])
    hits[0] += 1
    return _core._make(y, ty[None, ...], a.level, max(a._B, b._B), a._bxp)
