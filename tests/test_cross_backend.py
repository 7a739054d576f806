"""The same programs on every backend from the same random inputs: primal, tangent and
Jacobian must agree with NumPy (which is checked against finite differences), and every
result must stay on its input's device. CuPy runs where a CUDA device exists (the
``backend`` fixture skips it elsewhere, with the conftest's reason); torch and
array-api-strict run everywhere, so the module is exercised on any machine.

The fused CuPy kernels (``fwdtensor/fuse/kernels.py``) are checked here too: their formulas on
the CPU by evaluating the kernel bodies with NumPy, their plumbing with a stand-in kernel,
and the real kernels against the generic path on a GPU.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import array_api_compat
import array_api_compat.numpy as cnp
import numpy as np
import pytest

import fwdtensor as ft
from fwdtensor.fuse import kernels as _fused
from fwdtensor.rules import elementwise
from tests._util import Backend, central_difference, sample, to_numpy, tolerances
from tests.conftest import _cuda_reason

CUDA_REASON = _cuda_reason()
needs_cupy = pytest.mark.skipif(CUDA_REASON is not None, reason=str(CUDA_REASON))
DTYPES = ["float64", "float32"]
RULES = {r.name: r for r in elementwise.RULES}


# ------------------------------------------------------------------ programs
# Each program is written once against the namespace of its first argument (always
# differentiated), so it runs on plain arrays of any backend and on duals alike. Array
# combinations go through xp.add/xp.multiply where a plain array could meet a dual.
def bench_chain(x):
    """The elementwise benchmark: log(x) + x * roll(x, 1) - sin(x)."""
    xp = array_api_compat.array_namespace(x)
    return xp.subtract(xp.add(xp.log(x), xp.multiply(x, xp.roll(x, 1))), xp.sin(x))


def smooth_chain(x, y):
    xp = array_api_compat.array_namespace(x)
    a = xp.divide(xp.tanh(xp.multiply(x, y)), 1.0 + xp.exp(-x))
    b = xp.multiply(xp.sqrt(xp.add(x * x, xp.multiply(y, y))), xp.cos(y))
    return xp.subtract(xp.add(a, b), xp.pow(xp.maximum(x, y), 1.5))


def matvec(A, x):
    xp = array_api_compat.array_namespace(A)
    return xp.add(xp.matmul(A, x), xp.matmul(x, xp.matrix_transpose(A)))


def matmul_stack(X, Y):
    xp = array_api_compat.array_namespace(X)
    Z = xp.matmul(xp.matmul(X, Y), Y[0, ...])  # (2, 3, 4) @ (4, 5) @ (5,): a 1-D right operand
    return Z, xp.matmul(X[0, :, 0], X)  # (3,) @ (2, 3, 4): a 1-D left operand


def reductions(x):
    xp = array_api_compat.array_namespace(x)
    s1 = xp.sum(x * x, axis=1, keepdims=True)
    return xp.add(xp.multiply(xp.sum(x, axis=0), xp.sum(x)), xp.sum(xp.multiply(s1, x), axis=(0, 1)))


def mlp(x, W1, b1, W2, b2):
    """A two-layer tanh network."""
    xp = array_api_compat.array_namespace(x)
    h = xp.tanh(xp.add(xp.matmul(W1, x), b1))
    return xp.add(xp.matmul(W2, h), b2)


def lotka_volterra(theta, x0, y0, h=0.05, steps=12):
    """Prey and predators after ``steps`` classic RK4 steps, for several initial states."""
    xp = array_api_compat.array_namespace(theta)
    a, b, c, d = theta[0], theta[1], theta[2], theta[3]

    def rhs(x, y):
        xy = xp.multiply(x, y)
        return (
            xp.subtract(xp.multiply(a, x), xp.multiply(b, xy)),
            xp.subtract(xp.multiply(c, xy), xp.multiply(d, y)),
        )

    def step(x, y, kx, ky, s):
        return xp.add(x, s * kx), xp.add(y, s * ky)

    x, y = x0, y0
    for _ in range(steps):
        k1 = rhs(x, y)
        k2 = rhs(*step(x, y, *k1, h / 2))
        k3 = rhs(*step(x, y, *k2, h / 2))
        k4 = rhs(*step(x, y, *k3, h))
        x = xp.add(x, (h / 6) * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0]))
        y = xp.add(y, (h / 6) * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1]))
    return x, y


def _stat(name):
    def prog(x):
        xp = array_api_compat.array_namespace(x)
        f = getattr(xp, name)
        return xp.multiply(f(x, axis=0), f(x))

    return prog


def _cumulative(name):
    def prog(x):
        xp = array_api_compat.array_namespace(x)
        return getattr(xp, name)(x, axis=1)

    return prog


def _la(body):
    def prog(A, *rest):
        xp = array_api_compat.array_namespace(A)
        return body(xp, A, *rest)

    return prog


def _well_conditioned(a):
    return a + 3 * np.eye(a.shape[-1], dtype=a.dtype)


@dataclass(frozen=True)
class Program:
    name: str
    fn: Callable
    shapes: tuple
    domain: str = "real"
    diff: tuple = (0,)  # the arguments that are differentiated (the first always is)
    needs: tuple = ()  # namespace functions it uses that may not exist yet
    prep: Callable | None = None  # reshapes random inputs into the function's domain

    def inputs(self, dtype, rng):
        xs = [sample(self.domain, s, "float64", rng, arg=i) for i, s in enumerate(self.shapes)]
        if self.prep is not None:
            xs = self.prep(xs)
        return [x.astype(dtype) for x in xs]


_LV_THETA = np.array([1.1, 0.4, 0.1, 0.4])
_LINALG = [
    ("linalg.solve", lambda xp, A, b: xp.linalg.solve(A, b), ((3, 3), (3, 2))),
    ("linalg.inv", lambda xp, A: xp.linalg.inv(A), ((3, 3),)),
    ("linalg.det", lambda xp, A: xp.linalg.det(A), ((3, 3),)),
    ("linalg.slogdet", lambda xp, A: xp.linalg.slogdet(A)[1], ((3, 3),)),
    ("linalg.cholesky", lambda xp, A: xp.linalg.cholesky(xp.matmul(A, xp.matrix_transpose(A))), ((3, 3),)),
    ("linalg.eigh", lambda xp, A: xp.linalg.eigh(xp.add(A, xp.matrix_transpose(A)))[0], ((3, 3),)),
    ("linalg.svdvals", lambda xp, A: xp.linalg.svdvals(A), ((3, 3),)),
    ("linalg.vector_norm", lambda xp, A: xp.linalg.vector_norm(A, axis=1), ((3, 3),)),
    ("linalg.matrix_norm", lambda xp, A: xp.linalg.matrix_norm(A), ((3, 3),)),
    ("linalg.trace", lambda xp, A: xp.linalg.trace(A), ((3, 3),)),
    ("linalg.matrix_power", lambda xp, A: xp.linalg.matrix_power(A, 3), ((3, 3),)),
    ("linalg.pinv", lambda xp, A: xp.linalg.pinv(A), ((3, 3),)),
    ("vecdot", lambda xp, A, B: xp.vecdot(A, B), ((3, 3), (3, 3))),
    ("tensordot", lambda xp, A, B: xp.tensordot(A, B, axes=1), ((3, 3), (3, 3))),
]

PROGRAMS = [
    Program("bench_chain", bench_chain, ((4, 5),), domain="positive"),
    Program("smooth_chain", smooth_chain, ((3, 4), (3, 4)), domain="positive", diff=(0, 1)),
    Program("matvec", matvec, ((4, 3), (3,)), diff=(0, 1)),
    Program("matmul_stack", matmul_stack, ((2, 3, 4), (4, 5)), diff=(0, 1)),
    Program("reductions", reductions, ((3, 4),)),
    Program("mlp", mlp, ((3,), (4, 3), (4,), (2, 4), (2,)), diff=(0, 1)),
    Program(
        "lotka_volterra",
        lotka_volterra,
        ((4,), (3,), (3,)),
        diff=(0, 1, 2),
        prep=lambda xs: [_LV_THETA + 0.05 * xs[0], 1.0 + 0.5 * np.abs(xs[1]), 1.0 + 0.5 * np.abs(xs[2])],
    ),
    *(Program(n, _stat(n), ((3, 4),), needs=(n,)) for n in ("mean", "prod", "max", "min", "std", "var")),
    *(Program(n, _cumulative(n), ((3, 4),), needs=(n,)) for n in ("cumulative_sum", "cumulative_prod")),
    *(
        Program(
            n,
            _la(body),
            shapes,
            diff=tuple(range(len(shapes))),
            needs=(n,),
            prep=lambda xs: [
                _well_conditioned(x) if x.ndim == 2 and x.shape[0] == x.shape[1] else x for x in xs
            ],
        )
        for n, body, shapes in _LINALG
    ),
]
JACOBIAN_PROGRAMS = [p for p in PROGRAMS if p.name in ("bench_chain", "matvec", "mlp", "lotka_volterra")]


def _missing(names) -> list[str]:
    out = []
    for n in names:
        mod, _, fn = n.rpartition(".")
        if not hasattr(getattr(ft, mod) if mod else ft, fn):
            out.append(n)
    return out


def _skip_unless_available(prog: Program) -> None:
    missing = _missing(prog.needs)
    if missing:
        pytest.skip(f"fwdtensor has no {', '.join(missing)} yet; this program runs once it does")


# ------------------------------------------------------------------ helpers
def _leaves(tree) -> list:
    return list(tree) if isinstance(tree, (tuple, list)) else [tree]


def cross_tolerance(dtype: str) -> tuple[float, float]:
    """(rtol, atol) between two backends running the same program in the same dtype."""
    return (1e-9, 1e-11) if dtype == "float64" else (2e-4, 2e-5)


def assert_same(got, want, dtype: str, what: str) -> None:
    rtol, atol = cross_tolerance(dtype)
    g, w = to_numpy(got), to_numpy(want)
    assert g.shape == w.shape, f"{what}: shape {g.shape} != {w.shape}"
    scale = max(1.0, float(np.max(np.abs(w)))) if w.size else 1.0
    np.testing.assert_allclose(g, w, rtol=rtol, atol=atol * scale, err_msg=what)


def assert_fd(got, want, dtype: str, what: str) -> None:
    rtol, atol = tolerances(dtype)
    g, w = to_numpy(got), np.asarray(want)
    scale = max(1.0, float(np.max(np.abs(w)))) if w.size else 1.0
    np.testing.assert_allclose(g, w, rtol=rtol, atol=atol * scale, err_msg=what)


def assert_on_device_of(out, ref) -> None:
    """``out`` (array or dual) is an array of ``ref``'s library, on ``ref``'s device."""
    p = out.primal if isinstance(out, ft.DualTensor) else out
    got, want = array_api_compat.array_namespace(p), array_api_compat.array_namespace(ref)
    assert got is want, f"result is a {type(p).__name__}, input a {type(ref).__name__}"
    assert array_api_compat.device(p) == array_api_compat.device(ref)


def _directions(prog: Program, xs, dtype, rng, batch: int | None = None) -> list:
    vs = []
    for i, x in enumerate(xs):
        if i not in prog.diff:
            vs.append(None)
            continue
        shape = x.shape if batch is None else (batch, *x.shape)
        vs.append(sample("real", shape, dtype, rng))
    return vs


def _on(backend: Backend, a):
    return None if a is None else backend.asarray(a)


NUMPY = Backend("numpy")


def _fd_jvp(prog: Program, xs, vs) -> list[np.ndarray]:
    """Float64 central differences of every output of ``prog`` along ``vs``."""
    x64 = [x.astype("float64") for x in xs]
    v64 = [None if v is None else v.astype("float64") for v in vs]
    n_out = len(_leaves(prog.fn(*x64)))
    return [
        central_difference(lambda *a, k=k: to_numpy(_leaves(prog.fn(*a))[k]), x64, v64) for k in range(n_out)
    ]


# ------------------------------------------------------------------ the tests
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("prog", PROGRAMS, ids=lambda p: p.name)
def test_jvp_matches_numpy_and_finite_differences(prog, dtype, backend):
    _skip_unless_available(prog)
    seed = zlib.crc32(prog.name.encode())  # deterministic across processes, unlike hash()
    rng = np.random.default_rng(seed)
    xs = prog.inputs(dtype, rng)
    vs = _directions(prog, xs, dtype, rng)
    args = [backend.asarray(x) for x in xs]
    out, tout = ft.jvp(prog.fn, args, [_on(backend, v) for v in vs])
    ref, tref = ft.jvp(prog.fn, [NUMPY.asarray(x) for x in xs], [_on(NUMPY, v) for v in vs])
    fd = _fd_jvp(prog, xs, vs)
    for k, (o, t, r, tr, f) in enumerate(zip(_leaves(out), _leaves(tout), _leaves(ref), _leaves(tref), fd)):
        what = f"{prog.name} output {k} {dtype} on {backend.name} (seed {seed})"
        assert_on_device_of(o, args[0])
        assert_on_device_of(t, args[0])
        assert o.dtype == args[0].dtype and t.dtype == args[0].dtype, what
        assert_same(o, r, dtype, "primal of " + what)
        assert_same(t, tr, dtype, "tangent of " + what)
        assert_fd(tr, f, dtype, "NumPy tangent vs finite differences of " + what)


@pytest.mark.parametrize("prog", PROGRAMS, ids=lambda p: p.name)
def test_batched_equals_stacked_single(prog, backend):
    _skip_unless_available(prog)
    rng = np.random.default_rng(17)
    xs = prog.inputs("float64", rng)
    vs = _directions(prog, xs, "float64", rng, batch=3)
    args = [backend.asarray(x) for x in xs]
    _, tb = ft.batched_jvp(prog.fn, args, [_on(backend, v) for v in vs])
    for b in range(3):
        _, ts = ft.jvp(prog.fn, args, [None if v is None else backend.asarray(v[b]) for v in vs])
        for k, (tbk, tsk) in enumerate(zip(_leaves(tb), _leaves(ts))):
            assert_on_device_of(tbk, args[0])
            np.testing.assert_allclose(
                to_numpy(tbk)[b], to_numpy(tsk), rtol=1e-12, atol=1e-14, err_msg=f"{prog.name} output {k}"
            )


def _fd_jacobian(prog: Program, xs) -> list[list[np.ndarray]]:
    """Jacobian blocks ``[output][argument]`` (layout out.shape + in.shape) by differences."""
    x64 = [x.astype("float64") for x in xs]
    outs = _leaves(prog.fn(*x64))
    blocks = [[np.zeros(np.shape(o) + x64[i].shape) for i in prog.diff] for o in outs]
    for j, i in enumerate(prog.diff):
        for idx in np.ndindex(*x64[i].shape):
            dirs = [None] * len(x64)
            dirs[i] = np.zeros_like(x64[i])
            dirs[i][idx] = 1.0
            for k in range(len(outs)):
                col = central_difference(lambda *a, k=k: to_numpy(_leaves(prog.fn(*a))[k]), x64, dirs)
                blocks[k][j][(...,) + idx] = col
    return blocks


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("prog", JACOBIAN_PROGRAMS, ids=lambda p: p.name)
def test_jacobian_matches_numpy_and_finite_differences(prog, dtype, backend):
    rng = np.random.default_rng(23)
    xs = prog.inputs(dtype, rng)
    args = [backend.asarray(x) for x in xs]
    jac = ft.jacfwd(prog.fn, argnums=prog.diff, chunk_size=5)(*args)  # several chunks
    ref = ft.jacfwd(prog.fn, argnums=prog.diff)(*[NUMPY.asarray(x) for x in xs])
    fd = _fd_jacobian(prog, xs)
    jac_blocks = [jac] if not isinstance(jac[0], tuple) else list(jac)
    ref_blocks = [ref] if not isinstance(ref[0], tuple) else list(ref)
    for k, (jo, ro, fo) in enumerate(zip(jac_blocks, ref_blocks, fd)):
        for j, (jb, rb, fb) in enumerate(zip(jo, ro, fo)):
            what = f"d output {k} / d arg {prog.diff[j]} of {prog.name} {dtype} on {backend.name}"
            assert_on_device_of(jb, args[0])
            assert jb.dtype == args[0].dtype, what
            assert_same(jb, rb, dtype, what)
            assert_fd(rb, fb, dtype, "NumPy Jacobian vs finite differences, " + what)


@pytest.mark.parametrize("n", [1, 7])
def test_rk4_jacobian_consistent_with_jvp(n, backend):
    # Jacobian columns are the JVPs along basis vectors: J @ v equals jvp along v.
    rng = np.random.default_rng(29)
    prog = next(p for p in PROGRAMS if p.name == "lotka_volterra")
    xs = prog.inputs("float64", rng)
    xs[1], xs[2] = np.resize(xs[1], n), np.resize(xs[2], n)
    args = [backend.asarray(x) for x in xs]
    vs = _directions(prog, xs, "float64", rng)
    jac = ft.jacfwd(prog.fn, argnums=(0, 1, 2))(*args)
    _, tout = ft.jvp(prog.fn, args, [backend.asarray(v) for v in vs])
    for k in range(2):
        contracted = sum(to_numpy(jac[k][j]) @ vs[j] for j in range(3))
        np.testing.assert_allclose(to_numpy(tout[k]), contracted, rtol=1e-12, atol=1e-13)


# ------------------------------------------------------------------ fused kernels
def _emulate(body: str, **inputs) -> tuple[np.ndarray, np.ndarray]:
    """Run a fused kernel body (CUDA C++ of the restricted form used there) with NumPy."""
    src = re.sub(r"\(T\)", "", body)
    src = re.sub(r"\bT\s+(\w+)\s*=", r"\1 =", src)
    env = {n: getattr(np, n) for n in ("sin", "cos", "tan", "exp", "expm1", "log", "log1p", "sqrt")}
    env.update({n: getattr(np, n) for n in ("tanh", "sinh", "cosh")}, **inputs)
    for stmt in filter(None, (s.strip() for s in src.split(";"))):
        exec(stmt, {}, env)  # the bodies are this package's own constants
    return env["y"], env["ty"]


def _generic_unary(name, x, t):
    return ft.jvp(getattr(ft, name), (x,), (t,))


def _generic_binary(name, a, ta, b, tb):
    return ft.jvp(getattr(ft, name), (a, b), (ta, tb))


def _domain(name: str) -> str:
    return {"divide": "nonzero"}.get(name, RULES[name].domain)


@pytest.mark.parametrize("name", sorted(_fused.UNARY))
def test_fused_unary_formula_matches_rule(name):
    rng = np.random.default_rng(31)
    x, t = sample(_domain(name), (7,), "float64", rng), sample("real", (7,), "float64", rng)
    y, ty = _emulate(_fused.UNARY[name], x=x, t=t)
    ry, rty = _generic_unary(name, x, t)
    np.testing.assert_allclose(y, ry, rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose(ty, rty, rtol=1e-13, atol=1e-300)


@pytest.mark.parametrize("name", sorted(_fused.BINARY))
def test_fused_binary_formula_matches_rule(name):
    rng = np.random.default_rng(37)
    a, ta, tb = (sample("real", (7,), "float64", rng) for _ in range(3))
    b = sample(_domain(name), (7,), "float64", rng)
    y, ty = _emulate(_fused.BINARY[name], a=a, ta=ta, b=b, tb=tb)
    ry, rty = _generic_binary(name, a, ta, b, tb)
    np.testing.assert_allclose(y, ry, rtol=1e-14, atol=1e-300)
    scale = max(1.0, float(np.max(np.abs(rty))))
    np.testing.assert_allclose(ty, rty, rtol=1e-13, atol=1e-13 * scale)  # the quotient rule regroups


def test_fused_names_are_rules():
    for name in [*_fused.UNARY, *_fused.BINARY]:
        assert name in RULES and RULES[name].kind == "diff", name


class _StandInKernel:
    """Plays a CuPy ElementwiseKernel on NumPy arrays, to test the hooks' plumbing on a CPU."""

    def __init__(self, body: str, params: str) -> None:
        self.body, self.names = body, [p.split()[-1] for p in params.split(",")]

    def __call__(self, *arrays):
        for a in arrays:
            assert isinstance(a, np.ndarray)
        return _emulate(self.body, **dict(zip(self.names, arrays)))


@pytest.fixture
def stand_in_cupy(monkeypatch):
    """Let the fused hooks treat NumPy as if it were CuPy, with stand-in kernels."""
    monkeypatch.setattr(_fused, "is_cupy", lambda xp: xp is cnp)
    monkeypatch.setattr(_fused, "_kernel", lambda name, body, params: _StandInKernel(body, params))


def _dual(rng, name, shape=(3, 4), dtype="float64", B=0):
    x = sample(_domain(name), shape, dtype, rng)
    t = sample("real", (B, *shape) if B else shape, dtype, rng)
    return ft.DualTensor(x, t, batched=B > 0)


@pytest.mark.parametrize("name", sorted(_fused.UNARY))
def test_fused_unary_hook_matches_generic(name, stand_in_cupy):
    rng = np.random.default_rng(41)
    x = _dual(rng, name)
    got = _fused.unary(RULES[name], x)
    want = getattr(ft, name)(x)
    assert isinstance(got, ft.DualTensor) and not got.batched and got.level == x.level
    np.testing.assert_allclose(to_numpy(got.primal), to_numpy(want.primal), rtol=1e-14)
    np.testing.assert_allclose(to_numpy(got.tangent), to_numpy(want.tangent), rtol=1e-13)


@pytest.mark.parametrize("name", sorted(_fused.BINARY))
def test_fused_binary_hook_matches_generic(name, stand_in_cupy):
    rng = np.random.default_rng(43)
    a, b = _dual(rng, "add"), _dual(rng, name)
    got = _fused.binary(RULES[name], a, b)
    want = getattr(ft, name)(a, b)
    np.testing.assert_allclose(to_numpy(got.primal), to_numpy(want.primal), rtol=1e-14)
    np.testing.assert_allclose(to_numpy(got.tangent), to_numpy(want.tangent), rtol=1e-13)
    one = ft.DualTensor(a.primal, a.tangent[None, ...], batched=True)  # B == 1, batched layout
    assert _fused.binary(RULES[name], one, b).batched


def test_fused_hooks_decline_what_they_cannot_fuse(stand_in_cupy):
    rng = np.random.default_rng(47)
    sin, mul = RULES["sin"], RULES["multiply"]
    x = _dual(rng, "sin")
    assert _fused.unary(RULES["abs"], x) is None, "no kernel for abs"
    assert _fused.unary(sin, ft.DualTensor(x.primal)) is None, "a zero tangent costs nothing already"
    assert _fused.unary(sin, _dual(rng, "sin", B=3)) is None, "several directions"
    assert _fused.unary(sin, _dual(rng, "sin", dtype="float16")) is None
    assert (
        _fused.unary(sin, ft.DualTensor(x.primal.astype("complex128"), x.tangent.astype("complex128")))
        is None
    )
    assert _fused.binary(mul, x, _dual(rng, "sin", shape=(4,))) is None, "broadcasting"
    assert _fused.binary(mul, x, _dual(rng, "sin", dtype="float32")) is None, "type promotion"
    assert _fused.binary(mul, x, x.primal) is None, "a plain operand"
    assert _fused.binary(mul, x, 2.0) is None
    nested = ft.jvp(lambda u: _fused.unary(sin, u), (x,), (x.tangent,))
    assert nested[0] is None, "a nested dual (its primal is a dual) stays on the generic path"
    inner = ft.jvp(lambda u: _fused.binary(mul, u, x), (x.primal,), (x.tangent,))
    assert inner[0] is None, "different levels"


def test_fused_is_off_for_other_backends():
    x = ft.DualTensor(np.ones(3), np.ones(3))
    assert _fused.unary(RULES["sin"], x) is None
    assert _fused.binary(RULES["add"], x, x) is None


def test_set_fused_flag():
    before = _fused.is_fused()
    try:
        _fused.set_fused(True)
        assert _fused.is_fused()
        _fused.set_fused(False)
        assert not _fused.is_fused()
        with pytest.raises(TypeError, match="True or False"):
            _fused.set_fused(1)
    finally:
        _fused.set_fused(before)


# ---- on a GPU: the real kernels against the generic path
def _cupy_dual(name, dtype, B=0, shape=(1000, 3), seed=53):
    import cupy

    rng = np.random.default_rng(seed)
    x = sample(_domain(name), shape, dtype, rng)
    t = sample("real", (B, *shape) if B else shape, dtype, rng)
    return ft.DualTensor(cupy.asarray(x), cupy.asarray(t), batched=B > 0)


def assert_fused_close(got, want, dtype: str) -> None:
    # the same formulas; FMA contraction and regrouping (divide) differ by a few roundings
    # of the largest term, so the tolerance scales with the largest value
    tol = 1e-12 if dtype == "float64" else 1e-5
    g, w = to_numpy(got), to_numpy(want)
    np.testing.assert_allclose(g, w, rtol=tol, atol=tol * max(1.0, float(np.max(np.abs(w)))))


@needs_cupy
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(_fused.UNARY))
def test_fused_unary_kernel_cupy(name, dtype):
    x = _cupy_dual(name, dtype)
    got = _fused.unary(RULES[name], x)
    assert got is not None, "a single-direction CuPy float dual must take the fused path"
    assert _fused.unary(RULES[name], _cupy_dual(name, dtype, B=3)) is None, "several directions"
    want = getattr(ft, name)(x)
    for g, w in ((got.primal, want.primal), (got.tangent, want.tangent)):
        assert_on_device_of(g, x.primal)
        assert g.dtype == x.dtype and g.shape == x.shape
        assert_fused_close(g, w, dtype)


@needs_cupy
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(_fused.BINARY))
def test_fused_binary_kernel_cupy(name, dtype):
    a, b = _cupy_dual("add", dtype), _cupy_dual(name, dtype, seed=59)
    got = _fused.binary(RULES[name], a, b)
    assert got is not None
    want = getattr(ft, name)(a, b)
    for g, w in ((got.primal, want.primal), (got.tangent, want.tangent)):
        assert_on_device_of(g, a.primal)
        assert g.dtype == a.dtype and g.shape == a.shape
        assert_fused_close(g, w, dtype)


@needs_cupy
def test_fused_chain_through_namespace_cupy():
    x = _cupy_dual("log", "float64", shape=(4096,))
    before_flag, before_hits = _fused.is_fused(), _fused.hits[0]
    want = ft.jvp(bench_chain, (x.primal,), (x.tangent,))
    try:
        _fused.set_fused(True)
        got = ft.jvp(bench_chain, (x.primal,), (x.tangent,))
    finally:
        _fused.set_fused(before_flag)
    if _fused.hits[0] == before_hits:
        pytest.skip("the fused hooks are not wired into _core.unary/_core.binary yet")
    for g, w in zip(got, want):
        np.testing.assert_allclose(to_numpy(g), to_numpy(w), rtol=1e-12, atol=1e-12)


@needs_cupy
def test_to_device_cpu_switches_backend_cupy():
    x = _cupy_dual("sin", "float64", shape=(5,))
    h = x.to_device("cpu")
    assert isinstance(h.primal, np.ndarray) and isinstance(h.tangent, np.ndarray)
    y = ft.sin(h) * h  # computed with NumPy now
    assert isinstance(y.primal, np.ndarray)
    np.testing.assert_allclose(to_numpy(y.tangent), to_numpy((ft.sin(x) * x).tangent), rtol=1e-12)


@needs_cupy
def test_cupy_results_stay_on_current_device_cupy():
    import cupy

    x = _cupy_dual("sin", "float32", shape=(64,))
    jac = ft.jacfwd(bench_chain)(ft.exp(x).primal)
    assert isinstance(jac, cupy.ndarray) and jac.device == cupy.cuda.Device()
    assert jac.dtype == cupy.float32 and jac.shape == (64, 64)
    assert math.isfinite(float(cupy.sum(jac)))
