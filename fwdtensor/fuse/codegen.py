"""C++ source for a traced elementwise program: one loop body, two wrappers (CUDA, host C++).

``ft.fuse`` traces a program into expressions (``_trace.Expr``); this module writes them as
one loop body over the flat index ``i``, where ``p = i % N`` is the element and
``base = i - p`` the start of the tangent direction. The body is the same text for the
CUDA kernel (``target="cuda"``, compiled by NVRTC through CuPy) and for a plain C++ loop
(``target="cpp"``), which lets a CPU-only machine compile and check every generated body.

The operation tables are data, one row per function: the C++ expression with ``{0}, {1}``
for the operands, and whether the result is boolean. ``T`` is the element type.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

__all__ = ["OPS", "BOOL_OUT", "BOOL_IN", "Kernel", "emit"]

# name: C++ expression; each formula is the backend's own (NumPy's for the helpers below).
OPS: dict[str, str] = {
    # one argument
    "abs": "fabs({0})",
    "acos": "acos({0})",
    "acosh": "acosh({0})",
    "asin": "asin({0})",
    "asinh": "asinh({0})",
    "atan": "atan({0})",
    "atanh": "atanh({0})",
    "ceil": "ceil({0})",
    "conj": "{0}",
    "cos": "cos({0})",
    "cosh": "cosh({0})",
    "exp": "exp({0})",
    "expm1": "expm1({0})",
    "floor": "floor({0})",
    "isfinite": "isfinite({0})",
    "isinf": "isinf({0})",
    "isnan": "isnan({0})",
    "log": "log({0})",
    "log1p": "log1p({0})",
    "log2": "log2({0})",
    "log10": "log10({0})",
    "logical_not": "(!{0})",
    "negative": "(-{0})",
    "positive": "{0}",
    "real": "{0}",
    "reciprocal": "((T)1 / {0})",
    "round": "rint({0})",  # half to even, as the standard asks
    "sign": "fwd_sign({0})",
    "signbit": "signbit({0})",
    "sin": "sin({0})",
    "sinh": "sinh({0})",
    "sqrt": "sqrt({0})",
    "square": "({0} * {0})",
    "tan": "tan({0})",
    "tanh": "tanh({0})",
    "trunc": "trunc({0})",
    # two arguments
    "add": "({0} + {1})",
    "subtract": "({0} - {1})",
    "multiply": "({0} * {1})",
    "divide": "({0} / {1})",
    "pow": "pow({0}, {1})",
    "remainder": "fwd_remainder({0}, {1})",
    "floor_divide": "fwd_floor_divide({0}, {1})",
    "atan2": "atan2({0}, {1})",
    "copysign": "copysign({0}, {1})",
    "hypot": "hypot({0}, {1})",
    "logaddexp": "fwd_logaddexp({0}, {1})",
    "maximum": "fwd_maximum({0}, {1})",
    "minimum": "fwd_minimum({0}, {1})",
    "nextafter": "nextafter({0}, {1})",
    "equal": "({0} == {1})",
    "not_equal": "({0} != {1})",
    "less": "({0} < {1})",
    "less_equal": "({0} <= {1})",
    "greater": "({0} > {1})",
    "greater_equal": "({0} >= {1})",
    "logical_and": "({0} && {1})",
    "logical_or": "({0} || {1})",
    "logical_xor": "({0} != {1})",
    # the tracer's own
    "where": "({0} ? {1} : {2})",
    "to_float": "((T)({0}))",
    "to_bool": "({0} != (T)0)",
}
# Functions with a boolean result, and those that take boolean operands.
BOOL_OUT = frozenset(
    "isfinite isinf isnan signbit equal not_equal less less_equal greater greater_equal "
    "logical_not logical_and logical_or logical_xor to_bool".split()
)
BOOL_IN = frozenset("logical_not logical_and logical_or logical_xor to_float".split())

# NumPy's definitions where C++ has none (or a different one): NaN propagation in
# maximum/minimum, the sign of remainder, floor division by parts, a stable logaddexp.
_HELPERS = r"""
template <typename U> FWD_FN U fwd_maximum(U a, U b) { return (a > b || a != a) ? a : b; }
template <typename U> FWD_FN U fwd_minimum(U a, U b) { return (a < b || a != a) ? a : b; }
template <typename U> FWD_FN U fwd_sign(U a) {  // +0 for both zeros, NaN for NaN
  return a > (U)0 ? (U)1 : (a < (U)0 ? (U)-1 : (a == (U)0 ? (U)0 : a));
}
template <typename U> FWD_FN U fwd_remainder(U a, U b) {
  U r = fmod(a, b);
  if (r != (U)0) { if ((b < (U)0) != (r < (U)0)) r += b; } else { r = copysign((U)0, b); }
  return r;
}
template <typename U> FWD_FN U fwd_floor_divide(U a, U b) {
  if (b == (U)0) return a / b;
  U m = fmod(a, b);
  U d = (a - m) / b;
  if (m != (U)0 && ((b < (U)0) != (m < (U)0))) d -= (U)1;
  if (d == (U)0) return copysign((U)0, a / b);
  U f = floor(d);
  return (d - f > (U)0.5) ? f + (U)1 : f;
}
template <typename U> FWD_FN U fwd_logaddexp(U a, U b) {
  if (a == b) return a + (U)0.693147180559945309417232121458176568;
  U d = a - b;
  if (d > (U)0) return a + log1p(exp(-d));
  if (d <= (U)0) return b + log1p(exp(d));
  return d;
}
"""
_PRELUDE = {
    "cuda": "#define FWD_FN __device__ __forceinline__\n",
    "cpp": "#include <cmath>\nusing namespace std;\n#define FWD_FN static inline\n",
}
_CTYPE = {"float32": "float", "float64": "double"}


@dataclass
class Kernel:
    """One generated loop: its body, argument list and the values of its scalar arguments."""

    name: str
    body: str
    args: list[str]  # C++ parameter declarations: arrays, N and total, then the rest
    params: list[int | float]  # values of the arguments after N and total: ints, then doubles
    dtype: str  # "float32" | "float64"
    batched: bool  # True: the loop runs over every direction (n * B), else over elements (n)
    N: int  # elements of the traced shape

    def source(self, target: str = "cuda") -> str:
        """The whole translation unit for ``target``: ``"cuda"`` or ``"cpp"``."""
        head = _PRELUDE[target] + f"typedef {_CTYPE[self.dtype]} T;\n" + _HELPERS
        sig = ", ".join(self.args)
        if target == "cuda":
            loop = (
                f'extern "C" __global__ void {self.name}({sig}) {{\n'
                "  const long long step = (long long)blockDim.x * gridDim.x;\n"
                "  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; "
                "i < total; i += step) {\n"
            )
        else:
            loop = f'extern "C" void {self.name}({sig}) {{\n  for (long long i = 0; i < total; ++i) {{\n'
        return head + loop + self.body + "  }\n}\n"


class _Writer:
    """Statements for the expression graph, each value computed once per index context."""

    def __init__(self, shape: tuple, batched: bool) -> None:
        self.shape = shape
        self.N = math.prod(shape)
        self.batched = batched
        self.lines: list[str] = []
        self.names: dict[tuple, str] = {}
        self.rolls: dict[tuple, int] = {}  # (axis, shift) or ("bcast", shape) -> its number
        self.bcasts: dict[int, list] = {}  # number -> parameter names of a broadcast index
        self.params: list[int] = []
        self.args: list[str] = []
        self.consts: list[float] = []  # numbers of the program, passed as double arguments

    def value(self, root: Any, ctx: str) -> str:
        """The C++ name (or literal) of ``root`` at primal index ``ctx``, emitting what it needs."""
        stack = [(root, ctx)]
        while stack:
            e, c = stack[-1]
            key = (id(e), c)
            if key in self.names:
                stack.pop()
                continue
            if e.op == "const":
                self.names[key] = self._constant(e.params[0])
                stack.pop()
                continue
            if e.op == "in":
                self.names[key] = self._load(e, c)
                stack.pop()
                continue
            sub = self._roll_index(e, c) if e.op == "roll" else c
            pending = [(a, sub) for a in e.args if (id(a), sub) not in self.names]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            if e.op == "roll":
                self.names[key] = self.names[(id(e.args[0]), sub)]
                continue
            operands = [self.names[(id(a), sub)] for a in e.args]
            v = f"v{len(self.names)}"
            ctype = "bool" if e.dtype == "bool" else "T"
            self.lines.append(f"const {ctype} {v} = {OPS[e.op].format(*operands)};")
            self.names[key] = v
        return self.names[(id(root), ctx)]

    def _constant(self, v: Any) -> str:
        """A number as a kernel argument (a double, rounded to T where it is used), so that a
        program whose constants change between calls (a time step) compiles once."""
        if isinstance(v, bool):
            return "true" if v else "false"
        key = ("const", repr(float(v)))
        if key not in self.names:
            k = len(self.consts)
            self.consts.append(float(v))
            self.names[key] = f"((T)c{k})"
        return self.names[key]

    def _load(self, e: Any, c: str) -> str:
        slot, kind, shape = e.params
        if kind == "scalar":
            return f"in{slot}[0]"
        if kind == "scalar_tangent":  # one value per direction
            return f"in{slot}[b]" if self.batched else f"in{slot}[0]"
        if kind.startswith("bcast"):
            r, size = self._broadcast_index(shape, c)
            if kind == "bcast_tangent" and self.batched:
                return f"in{slot}[b * {size} + {r}]"
            return f"in{slot}[{r}]"
        if kind == "tangent" and self.batched:
            return f"in{slot}[base + {c}]"
        return f"in{slot}[{c}]"

    def _broadcast_index(self, shape: tuple, c: str) -> tuple[str, str]:
        """Emit the flat index, into an array of ``shape`` broadcast to the traced shape, of
        element ``c``; return it and the name of the array's size (both kernel arguments)."""
        key = ("bcast", shape)
        if key not in self.rolls:
            k = self.rolls[key] = len(self.rolls)
            S, lead = self.shape, len(self.shape) - len(shape)
            axes = [lead + j for j, n in enumerate(shape) if n > 1]
            terms = []
            for j in axes:  # (c / stride_S) % n_S * stride_L for each axis the array spans
                stride_L = math.prod(shape[j - lead + 1 :])
                self.params += [S[j], math.prod(S[j + 1 :]), stride_L]
                names = (f"bn{k}_{j}", f"bs{k}_{j}", f"bl{k}_{j}")
                self.args += [f"const long long {v}" for v in names]
                terms.append(names)
            self.params.append(math.prod(shape))
            self.args.append(f"const long long bsize{k}")
            self.bcasts[k] = terms
        k = self.rolls[key]
        idx = (key, c)
        if idx not in self.names:
            r = f"r{len(self.names)}"
            sum_ = " + ".join(f"(({c} / {st}) % {n}) * {sl}" for n, st, sl in self.bcasts[k])
            self.lines.append(f"const long long {r} = {sum_};")
            self.names[idx] = r
        return self.names[idx], f"bsize{k}"

    def _roll_index(self, e: Any, c: str) -> str:
        """Emit the index that ``roll`` reads from at ``c``; its parameters become kernel arguments.

        Rolls by the same amount along the same axis (of a primal and its tangent) share
        their parameters and, at the same index, their arithmetic.
        """
        axis, shift = e.params
        n = self.N if axis == "flat" else self.shape[axis]
        if n == self.N:
            axis = "flat"  # every other axis has length one: the flat form needs no division
        step = (axis, shift % n)
        key = (step, c)
        if key in self.names:
            return self.names[key]
        if step not in self.rolls:
            k = self.rolls[step] = len(self.rolls)
            stride = 1 if axis == "flat" else math.prod(self.shape[axis + 1 :])
            self.params += [n, shift % n, stride]
            self.args += [f"const long long n{k}", f"const long long s{k}", f"const long long st{k}"]
        k = self.rolls[step]
        q = f"q{len(self.names)}"
        if axis == "flat":  # out[j] = x[j - s], wrapped into [0, N)
            self.lines.append(f"const long long {q} = {c} - s{k} + ({c} < s{k} ? n{k} : 0);")
        else:  # the same along one axis: j is the index on that axis
            j = f"j{len(self.names)}"
            self.lines.append(f"const long long {j} = ({c} / st{k}) % n{k};")
            self.lines.append(f"const long long {q} = {c} - s{k} * st{k} + ({j} < s{k} ? n{k} * st{k} : 0);")
        self.names[key] = q
        return q


def emit(
    inputs: list[tuple[str, str]],
    outputs: list[tuple[Any, str]],
    shape: tuple,
    batched: bool,
    dtype: str,
) -> Kernel:
    """The kernel computing ``outputs`` (``(expr, "primal" | "tangent")``) from ``inputs``.

    ``inputs`` lists ``(ctype, kind)`` per slot. Primal outputs are written once per
    element, tangent outputs once per element and direction; with several directions
    (``batched``) the loop runs over all of them and primal stores happen in the first.
    """
    w = _Writer(shape, batched)
    head = ["const long long p = i;"]
    if batched:  # direction b, element p
        head = [
            "const long long b = i / N;",
            "const long long p = i - b * N;",
            "const long long base = i - p;",
        ]
    stores, late = [], []
    for k, (e, kind) in enumerate(outputs):
        if kind == "tangent" or not batched:
            stores.append(f"out{k}[i] = {w.value(e, 'p')};")
    if batched:  # primal values: once per element, in the first direction's pass
        mark = len(w.lines)
        for k, (e, kind) in enumerate(outputs):
            if kind == "primal":
                late.append(f"out{k}[p] = {w.value(e, 'p')};")
        inner = w.lines[mark:]
        del w.lines[mark:]
        if late:
            late = ["if (i < N) {", *("  " + s for s in inner + late), "}"]
    body = "".join(f"    {s}\n" for s in head + w.lines + stores + late)
    args = [
        f"const {'bool' if ct == 'bool' else 'T'}* __restrict__ in{k}" for k, (ct, _) in enumerate(inputs)
    ]
    args += [f"T* __restrict__ out{k}" for k in range(len(outputs))]
    args += ["const long long N", "const long long total", *w.args]
    args += [f"const double c{k}" for k in range(len(w.consts))]
    digest = hashlib.sha1((dtype + "|".join(args) + body).encode()).hexdigest()[:16]
    return Kernel(f"fwdtensor_fused_{digest}", body, args, [*w.params, *w.consts], dtype, batched, w.N)
