"""``ft.fuse``: the traced, generated kernel against the eager path it replaces.

Without a GPU the generated loop body is compiled by the host C++ compiler and run on
NumPy arrays (``tests/_host_kernels``), and the CUDA translation unit is compiled to PTX
by NVRTC or nvcc (``tests/_cuda_compile``); with CuPy and a device the kernels also run
there. The eager path is the reference: it is itself checked against finite differences
in ``test_elementwise``.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

import fwdtensor as ft
from fwdtensor.core.backend import namespace_of
from fwdtensor.fuse import codegen as _codegen
from fwdtensor.fuse import launch as _fuse
from fwdtensor.rules.elementwise import RULES
from tests import _cuda_compile, _host_kernels
from tests._util import central_difference, is_constant, sample, to_numpy, tolerances

# Elementwise rules the tracer compiles: every real-valued one of the standard.
FUSABLE = [
    r
    for r in RULES
    if r.form in ("unary", "binary") and r.kind != "nondiff" and r.dtypes in ("float", "real")
]
UNARY = [r for r in FUSABLE if r.form == "unary" and r.name not in ("imag",)]
BINARY = [r for r in FUSABLE if r.form == "binary"]
DTYPES = ["float32", "float64"]
SHAPE = (4, 5)


@pytest.fixture
def host(monkeypatch):
    """Run fused kernels on NumPy arrays through the host C++ compiler."""
    if _host_kernels.REASON:
        pytest.skip(_host_kernels.REASON)
    monkeypatch.setattr(_fuse, "_LAUNCHERS", [(_host_kernels.is_numpy, _host_kernels.launch)])


def _tol(dtype: str) -> dict:
    # float32: libm (glibc, CUDA) and NumPy's own SIMD kernels differ by a few ulp.
    return {"rtol": 3e-6, "atol": 3e-6} if dtype == "float32" else {"rtol": 1e-12, "atol": 1e-12}


def _same(got, want, dtype: str, what: str = "") -> None:
    """Same type, batching and level; primal and tangent equal to a few ulp of the largest
    finite value (infinities and NaNs must match exactly)."""
    assert type(got) is type(want), what
    pairs = [(got, want, "primal")]
    if isinstance(want, ft.DualTensor):
        assert got.batched == want.batched and got.level == want.level, what
        pairs = [(got.primal, want.primal, "primal"), (got.tangent, want.tangent, "tangent")]
    tol = _tol(dtype)
    for g, w, part in pairs:
        w = np.asarray(w)
        finite = np.abs(w[np.isfinite(w)])
        scale = max(1.0, float(finite.max())) if finite.size else 1.0
        np.testing.assert_allclose(g, w, rtol=tol["rtol"], atol=tol["atol"] * scale, err_msg=f"{what} {part}")


def _duals(xs: list, B: int, rng) -> list:
    if B == 0:
        return [ft.DualTensor(x, rng.normal(size=x.shape).astype(x.dtype)) for x in xs]
    return [ft.DualTensor(x, rng.normal(size=(B, *x.shape)).astype(x.dtype), batched=True) for x in xs]


def test_the_fusable_functions_are_the_generated_ones():
    """Every real elementwise rule has a C++ row, and no row is left without a rule."""
    names = {r.name for r in FUSABLE}
    assert names <= set(_codegen.OPS), names - set(_codegen.OPS)
    nondiff = {r.name for r in RULES if r.kind == "nondiff" and r.dtypes != "int"}
    assert nondiff <= set(_codegen.OPS), nondiff - set(_codegen.OPS)


@pytest.mark.parametrize("B", [0, 3], ids=["one-direction", "batched3"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_unary_function_in_one_kernel(host, dtype, B):
    rng = np.random.default_rng(1)
    xs = [sample(r.domain, SHAPE, dtype, rng) for r in UNARY]

    def f(*args):
        return {r.name: getattr(ft, r.name)(a) for r, a in zip(UNARY, args)}

    args = _duals(xs, B, rng)
    got = ft.fuse(f, strict=True)(*args)
    want = f(*args)
    for r in UNARY:
        _same(got[r.name], want[r.name], dtype, r.name)


@pytest.mark.parametrize("B", [0, 3], ids=["one-direction", "batched3"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_binary_function_in_one_kernel(host, dtype, B):
    rng = np.random.default_rng(2)
    pairs = [(sample(r.domain, SHAPE, dtype, rng, 0), sample(r.domain, SHAPE, dtype, rng, 1)) for r in BINARY]
    flat = [a for p in pairs for a in p]

    def f(*args):
        return [getattr(ft, r.name)(args[2 * k], args[2 * k + 1]) for k, r in enumerate(BINARY)]

    args = _duals(flat, B, rng)
    got = ft.fuse(f, strict=True)(*args)
    want = f(*args)
    for r, g, w in zip(BINARY, got, want):
        _same(g, w, dtype, r.name)


@pytest.mark.parametrize("form", ["dual-plain", "plain-dual", "dual-scalar", "scalar-dual"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_functions_with_one_dual_and_scalars(host, dtype, form):
    """Partials through one operand only, and Python scalars on either side."""
    rng = np.random.default_rng(3)
    pairs = [(sample(r.domain, SHAPE, dtype, rng, 0), sample(r.domain, SHAPE, dtype, rng, 1)) for r in BINARY]
    consts = [float(b.flat[0]) if form == "dual-scalar" else float(a.flat[0]) for a, b in pairs]
    if form == "scalar-dual":  # the dual is the second argument: draw it from that domain
        pairs = [(b, a) for a, b in pairs]

    def f(*args):
        out = []
        for k, r in enumerate(BINARY):
            fn, a, b, c = getattr(ft, r.name), args[2 * k], args[2 * k + 1], consts[k]
            if form == "dual-plain":
                out.append(fn(a, b))
            elif form == "plain-dual":
                out.append(fn(b, a))
            else:
                out.append(fn(a, c) if form == "dual-scalar" else fn(c, a))
        return out

    args = [
        ft.DualTensor(a, rng.normal(size=SHAPE).astype(dtype)) if k % 2 == 0 else a
        for k, a in enumerate([v for p in pairs for v in p])
    ]
    with np.errstate(all="ignore"):  # swapped operands may leave the domain: NaN on both paths
        want = f(*args)
    got = ft.fuse(f, strict=True)(*args)
    for r, g, w in zip(BINARY, got, want):
        _same(g, w, dtype, r.name)


@pytest.mark.parametrize("dtype", DTYPES)
def test_issue_program_and_its_jacobian(host, dtype):
    """f(x) = log(x) + x*roll(x, 1) - sin(x): the GPU benchmark's program."""
    rng = np.random.default_rng(4)

    def f(x):
        return ft.log(x) + x * ft.roll(x, 1) - ft.sin(x)

    x = rng.uniform(0.5, 2.0, 300).astype(dtype)
    v = rng.normal(size=300).astype(dtype)
    g = ft.fuse(f, strict=True)
    (y, t), (y0, t0) = ft.jvp(g, (x,), (v,)), ft.jvp(f, (x,), (v,))
    np.testing.assert_allclose(y, y0, **_tol(dtype))
    np.testing.assert_allclose(t, t0, **_tol(dtype))
    np.testing.assert_allclose(ft.jacfwd(g)(x[:40]), ft.jacfwd(f)(x[:40]), **_tol(dtype))
    np.testing.assert_allclose(g(x), f(x), **_tol(dtype))  # plain arrays: primal only
    # and against an independent reference: central differences of the NumPy program
    x64, v64 = x.astype(np.float64), v.astype(np.float64)
    fd = central_difference(lambda z: np.log(z) + z * np.roll(z, 1) - np.sin(z), [x64], [v64])
    rtol, atol = tolerances(dtype)
    np.testing.assert_allclose(t, fd, rtol=rtol, atol=atol * float(np.max(np.abs(fd))))


def test_other_backends_run_the_program_as_written(backend):
    """No launcher (every backend here but CuPy): the eager result, silently, batched or not."""
    if backend.name == "cupy":
        pytest.skip("CuPy fuses: tested in test_fused_kernels_on_cupy_match_numpy")
    xp = backend.xp

    def f(x):
        return ft.exp(ft.roll(x, 1)) * x - 2.0

    x = backend.asarray(np.linspace(0.1, 1.0, 6))
    for t in (backend.asarray(np.ones(6)), backend.asarray(np.eye(6)[:3])):
        d = ft.DualTensor(x, t, batched=t.ndim == 2)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            got, want = ft.fuse(f)(d), f(d)
        np.testing.assert_allclose(to_numpy(got.tangent), to_numpy(want.tangent), rtol=1e-15)
        assert type(got.primal) is type(want.primal) and namespace_of(got.primal) is namespace_of(x)
    with pytest.raises(ft.FuseError, match="no kernel launcher"):
        ft.fuse(f, strict=True)(xp.asarray(x))


@pytest.mark.parametrize("B", [0, 2])
@pytest.mark.parametrize("axis", [None, 0, 1, -1])
@pytest.mark.parametrize("shift", [1, -2, 7])
def test_roll_along_any_axis(host, axis, shift, B):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3, 4))

    def f(x):
        return ft.exp(ft.roll(ft.sin(x), shift, axis=axis)) * x + ft.roll(
            ft.roll(x, 1, axis=0), shift, axis=axis
        )

    (d,) = _duals([x], B, rng)
    _same(ft.fuse(f, strict=True)(d), f(d), "float64", f"roll {axis} {shift}")


def test_where_clip_constants_and_captured_arrays(host):
    rng = np.random.default_rng(6)
    w = rng.normal(size=SHAPE)
    mask = rng.normal(size=SHAPE) > 0
    c0 = np.asarray(0.25)

    def f(x, y):
        z = ft.where(mask, x * w, ft.clip(y, -0.5, 0.5))
        z = ft.where(x > y, z, ft.maximum(x, y) ** 2) * c0 + ft.zeros_like(x) + 1.5
        return ft.where(ft.isnan(z), 0.0, z) + ft.astype(x > 0, x.dtype) * y

    args = _duals([rng.normal(size=SHAPE), rng.normal(size=SHAPE)], 0, rng)
    _same(ft.fuse(f, strict=True)(*args), f(*args), "float64", "where")


PREDICATES = [r.name for r in RULES if r.kind == "nondiff" and r.dtypes in ("float", "real", "any", "bool")]


def _predicates(a, b):
    """Every boolean function of the standard, each choosing between two branches."""
    out = []
    for name in PREDICATES:
        fn = getattr(ft, name)
        r = next(r for r in RULES if r.name == name)
        if r.dtypes == "bool":  # logical_*: of comparisons
            c = fn(a > 0.0) if r.form == "unary" else fn(a > 0.0, b < 0.5)
        else:
            c = fn(a) if r.form == "unary" else fn(a, b)
        out.append(ft.where(c, a * b, a - b))
    return out


@pytest.mark.parametrize("dtype", DTYPES)
def test_boolean_functions_choose_branches(host, dtype):
    rng = np.random.default_rng(13)
    a = rng.normal(size=SHAPE).astype(dtype)
    a[0, :3] = [np.nan, np.inf, -0.0]
    b = np.where(rng.random(SHAPE) < 0.3, a, rng.normal(size=SHAPE)).astype(dtype)  # some ties
    args = _duals([a, b], 0, rng)
    with np.errstate(all="ignore"):
        want = _predicates(*args)
    got = ft.fuse(_predicates, strict=True)(*args)
    assert len(got) == len(PREDICATES) >= 13
    for name, g, w in zip(PREDICATES, got, want):
        _same(g, w, dtype, name)


def test_outputs_of_every_kind(host):
    """Tuples, dicts, an input returned as it is, a constant tangent, plain and dual outputs."""
    rng = np.random.default_rng(7)
    x, y = rng.uniform(0.5, 1.5, SHAPE), rng.uniform(0.5, 1.5, SHAPE)

    def f(a, b):
        return a, {"s": ft.sin(b) * 2.0, "b": b}, (ft.exp(a) / b,)

    args = (ft.DualTensor(x, np.ones(SHAPE)), y)  # b is plain: its results are constants
    got, want = ft.fuse(f, strict=True)(*args), f(*args)
    assert is_constant(got[1]["s"]) and isinstance(got[1]["b"], np.ndarray)
    assert isinstance(got[2][0], ft.DualTensor)
    for g, w in [
        (got[0], want[0]),
        (got[1]["s"], want[1]["s"]),
        (got[1]["b"], want[1]["b"]),
        (got[2][0], want[2][0]),
    ]:
        _same(g, w, "float64")

    def g(a, b):  # a dual output whose tangent is a symbolic zero
        return a * 0.0 + ft.sin(b)

    out = ft.fuse(g, strict=True)(ft.DualTensor(x), ft.DualTensor(y))
    assert out._t is None and isinstance(out, ft.DualTensor)


def test_shapes_with_unit_axes_zero_dimensions_and_mixed_directions(host):
    rng = np.random.default_rng(11)
    x0 = np.asarray(0.7)
    cases = [
        (lambda x: ft.sin(ft.roll(x, 3)) * x, [ft.DualTensor(x0, np.asarray(1.0))]),
        (lambda x: ft.sin(x) * x, [ft.DualTensor(x0, np.ones(3), batched=True)]),
        (
            lambda x: ft.roll(x, 2, axis=0) * ft.roll(x, -7, axis=1),
            [ft.DualTensor(*rng.normal(size=(2, 1, 5)))],
        ),
        (
            lambda x: ft.roll(x, 2) * x,
            [ft.DualTensor(rng.normal(size=(1, 5)), np.ones((3, 1, 5)), batched=True)],
        ),
        # a batched dual beside a constant one: each output keeps the batching eager gives it
        (
            lambda x, y: (x, y * 2.0, ft.sin(y) + x),
            [
                ft.DualTensor(rng.normal(size=(3, 4)), np.ones((2, 3, 4)), batched=True),
                ft.DualTensor(np.ones((3, 4))),
            ],
        ),
    ]
    for k, (f, args) in enumerate(cases):
        got, want = ft.fuse(f, strict=True)(*args), f(*args)
        for g, w in zip(
            got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)
        ):
            _same(g, w, "float64", f"case {k}")
            assert g.shape == w.shape and g.tangent.shape == w.tangent.shape, f"case {k}"


def test_closed_over_arrays_in_any_operand_position(host):
    """A captured array first in a call on plain traced arrays still gives the traced call."""
    rng = np.random.default_rng(12)
    w, mask = rng.normal(size=SHAPE), rng.normal(size=SHAPE) > 0

    def f(x):
        return ft.where(mask, w * x, ft.add(w, x)) - ft.maximum(w, x)

    x = rng.normal(size=SHAPE)
    np.testing.assert_allclose(ft.fuse(f, strict=True)(x), f(x), rtol=1e-12)
    row = mask[:1]  # (1, 5): broadcast over the rows
    np.testing.assert_array_equal(
        ft.fuse(lambda x: ft.where(row, x, 0.0), strict=True)(x), np.where(row, x, 0.0)
    )
    with pytest.raises(ft.FuseError, match="does not broadcast"):
        ft.fuse(lambda x: ft.where(mask[:, :2], x, 0.0), strict=True)(x)


def test_a_fused_method_binds_its_instance(host):
    class Model:
        scale = 3.0

        @ft.fuse
        def __call__(self, x):
            return ft.sin(x) * self.scale

    x = np.linspace(0.0, 1.0, 5)
    np.testing.assert_allclose(Model()(x), np.sin(x) * 3.0, rtol=1e-12)
    y, t = ft.jvp(Model(), (x,), (np.ones(5),))
    np.testing.assert_allclose(t, 3.0 * np.cos(x), rtol=1e-12)


def test_one_compiled_kernel_per_program_whatever_the_size(host):
    def f(x):
        return ft.tanh(ft.roll(x, 3)) * x

    g = ft.fuse(f, strict=True)
    rng = np.random.default_rng(8)
    before = len(_host_kernels.compiled)
    sources = {g.explain(ft.DualTensor(rng.normal(size=n), rng.normal(size=n))) for n in (10, 100, 1000)}
    for n in (10, 100, 1000):
        x, v = rng.normal(size=n), rng.normal(size=n)
        _same(g(ft.DualTensor(x, v)), f(ft.DualTensor(x, v)), "float64")
    assert len(sources) == 1
    assert len(_host_kernels.compiled) - before <= 1


def test_the_kernel_reads_each_input_once_and_writes_each_output_once(host):
    """No temporaries in memory: every input is loaded at its own element or its rolled one."""
    x = np.linspace(1.0, 2.0, 16)
    src = ft.fuse(lambda x: ft.log(x) + x * ft.roll(x, 1) - ft.sin(x)).explain(ft.DualTensor(x, x))
    body = src.split("step) {")[1]
    assert src.count("__global__") == 1
    loads = set(re.findall(r"in\d\[[^\]]+\]", body))
    assert loads == {"in0[p]", "in0[q2]", "in1[p]", "in1[q2]"}
    assert body.count("out0[") == 1 and body.count("out1[") == 1


# ----------------------------------------------------------------- fallbacks
def test_numpy_without_a_launcher_runs_the_program_as_written():
    def f(x):
        return ft.sin(x) * x

    x = ft.DualTensor(np.linspace(0, 1, 5), np.ones(5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not a warning: other backends are not meant to fuse
        _same(ft.fuse(f)(x), f(x), "float64")
    with pytest.raises(ft.FuseError, match="CuPy"):
        ft.fuse(f, strict=True)(x)


@pytest.mark.parametrize(
    "program, reason",
    [
        (lambda x: ft.sum(x) * x, "sum"),
        (lambda x: x[1:] * 2.0, "picks elements"),
        (lambda x: x * 2.0 if x[0, 0] > 0 else x, "picks elements|branch"),
        (lambda x: x[:, None] * x[None, 0], "picks elements|outer"),
        (lambda x: ft.matmul(x, x.mT), "transpose|matmul"),
        (lambda x: ft.astype(x, ft.float32) * 2, "astype"),
    ],
)
def test_programs_that_are_not_elementwise_warn_and_run_eagerly(host, program, reason):
    x = ft.DualTensor(np.linspace(0.5, 1.0, 16).reshape(4, 4), np.ones((4, 4)))
    with pytest.warns(ft.FuseWarning, match=reason):
        got = ft.fuse(program)(x)
    _same(got, program(x), "float64")
    with pytest.raises(ft.FuseError, match=reason):
        ft.fuse(program, strict=True)(x)


def test_branching_on_traced_values_is_refused(host):
    def f(x):
        return x * 2.0 if x > 0 else -x

    x = ft.DualTensor(np.array([0.5]), np.array([1.0]))
    with pytest.raises(ft.FuseError, match="branch"):
        ft.fuse(f, strict=True)(x)
    with pytest.warns(ft.FuseWarning, match="branch"):
        _same(ft.fuse(f)(x), f(x), "float64")


def test_calls_that_cannot_be_fused_name_the_reason(host):
    f = ft.fuse(lambda a, b: a * b, strict=True)
    with pytest.raises(ft.FuseError, match="do not broadcast"):
        f(np.ones(3), np.ones(4))
    with pytest.raises(ft.FuseError, match="dtype"):
        f(np.ones(3), np.ones(3, dtype=np.float32))
    with pytest.raises(ft.FuseError, match="dtype"):
        f(np.ones(3, dtype=np.int64), np.ones(3, dtype=np.int64))
    with pytest.raises(ft.FuseError, match="keyword"):
        f(np.ones(3), b=np.ones(3))
    with pytest.raises(ft.FuseError, match="nested"):
        ft.jvp(lambda x: ft.jvp(f, (x, x), (x, x))[1], (np.ones(3),), (np.ones(3),))


def test_bad_arguments_are_refused_before_any_work():
    with pytest.raises(TypeError, match="function"):
        ft.fuse(3)
    with pytest.raises(TypeError, match="strict"):
        ft.fuse(lambda x: x, strict="yes")
    assert ft.fuse(strict=True)(lambda x: x).strict is True


# ------------------------------------------------------------- CUDA sources
@pytest.mark.skipif(_cuda_compile.REASON is not None, reason=str(_cuda_compile.REASON))
@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_sources_compile(host, dtype):
    """Every generated form compiles for the GPU: all functions, rolls, directions, where."""
    rng = np.random.default_rng(9)
    xs = [sample(r.domain, SHAPE, dtype, rng) for r in UNARY]

    def every(*args):
        out = [getattr(ft, r.name)(a) for r, a in zip(UNARY, args)]
        out += [getattr(ft, r.name)(args[0], args[1]) for r in BINARY]
        out += _predicates(args[0], args[1])
        return out + [ft.where(args[0] > args[1], ft.roll(args[0], 2, axis=1), ft.roll(args[1], -1)) * np.inf]

    sources = []
    for B in (0, 3):
        sources.append(ft.fuse(every).explain(*_duals(xs, B, rng)))
    sources.append(ft.fuse(every).explain(*xs))

    def scaled(x, w, a):  # broadcast and 0-d parameters beside the grid
        return ft.roll(ft.sin(x * w), 1, axis=0) * a + w

    for B in (0, 3):
        for wshape in ((SHAPE[1],), (SHAPE[0], 1)):
            grid = [xs[0], rng.normal(size=wshape).astype(dtype), np.asarray(0.5, dtype=dtype)]
            sources.append(ft.fuse(scaled).explain(*_duals(grid, B, rng)))
    for src in sources:
        ptx = _cuda_compile.ptx(src)
        assert ".entry fwdtensor_fused_" in ptx, _cuda_compile.compiler()


# ---------------------------------------------------------------- on a GPU
def _cupy_reason():
    from tests.conftest import _cuda_reason

    return _cuda_reason()


@pytest.mark.skipif(_cupy_reason() is not None, reason=str(_cupy_reason()))
@pytest.mark.parametrize("B", [0, 4])
@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_kernels_on_cupy_match_numpy(dtype, B):
    import cupy as cp

    def f(x):
        return ft.log(x) + x * ft.roll(x, 1) - ft.sin(x)

    rng = np.random.default_rng(10)
    x = rng.uniform(0.5, 2.0, (64, 33)).astype(dtype)
    (d,) = _duals([x], B, rng)
    want = f(d)
    dc = ft.DualTensor(cp.asarray(x), cp.asarray(d.tangent), batched=d.batched)
    got = ft.fuse(f, strict=True)(dc)
    np.testing.assert_allclose(cp.asnumpy(got.primal), want.primal, **_tol(dtype))
    np.testing.assert_allclose(cp.asnumpy(got.tangent), want.tangent, **_tol(dtype))


@pytest.mark.skipif(_cupy_reason() is not None, reason=str(_cupy_reason()))
@pytest.mark.parametrize("B", [0, 3])
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_function_fused_on_cupy_matches_numpy(dtype, B):
    """All elementwise rules and boolean functions in one CuPy kernel, against eager NumPy."""
    import cupy as cp

    rng = np.random.default_rng(15)
    xs = [sample(r.domain, SHAPE, dtype, rng) for r in UNARY]
    pairs = [(sample(r.domain, SHAPE, dtype, rng, 0), sample(r.domain, SHAPE, dtype, rng, 1)) for r in BINARY]
    n = len(UNARY)

    def f(*args):
        out = [getattr(ft, r.name)(a) for r, a in zip(UNARY, args[:n])]
        out += [getattr(ft, r.name)(args[n + 2 * k], args[n + 2 * k + 1]) for k, r in enumerate(BINARY)]
        return out + _predicates(args[0], args[1])

    host = _duals([*xs, *(v for p in pairs for v in p)], B, rng)
    dev = [ft.DualTensor(cp.asarray(d.primal), cp.asarray(d.tangent), batched=d.batched) for d in host]
    with np.errstate(all="ignore"):
        want = f(*host)
    got = ft.fuse(f, strict=True)(*dev)
    for k, (g, w) in enumerate(zip(got, want)):
        g = ft.DualTensor(cp.asnumpy(g.primal), cp.asnumpy(g.tangent), batched=g.batched)
        _same(g, w, dtype, f"output {k}")


@pytest.mark.skipif(_cuda_compile.REASON is not None, reason=str(_cuda_compile.REASON))
@pytest.mark.parametrize("B", [0, 4], ids=["one-direction", "batched4"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_the_compiled_kernel_moves_the_least_memory(dtype, B):
    """In the PTX of the benchmark program: four element loads (x, t and their rolled
    neighbours, read through the read-only cache) and two stores (y and its tangent); the
    only other global reads are the math library's constant tables."""

    def f(x):
        return ft.log(x) + x * ft.roll(x, 1) - ft.sin(x)

    x = np.linspace(1.0, 2.0, 10).astype(dtype)
    d = ft.DualTensor(x, x) if B == 0 else ft.DualTensor(x, np.ones((B, 10), dtype), batched=True)
    ptx = _cuda_compile.ptx(ft.fuse(f).explain(d))
    body = ptx[ptx.index(".entry") :]
    width = "f32" if dtype == "float32" else "f64"
    assert len(re.findall(rf"ld\.global(\.nc)?\.{width}\s", body)) == 4, _cuda_compile.compiler()
    assert len(re.findall(r"st\.global", body)) == 2


def test_numpy_scalars_are_constants_of_their_own_dtype(host):
    x = np.linspace(1.0, 2.0, 5)
    np.testing.assert_allclose(ft.fuse(lambda x: np.float64(2.0) * x + np.pi, strict=True)(x), 2 * x + np.pi)
    # float64 scalar * float32 array is float64 in NumPy 2: a float32 kernel would be wrong
    with pytest.raises(ft.FuseError, match="NumPy scalar of dtype float64"):
        ft.fuse(lambda x: np.float64(2.0) * x, strict=True)(x.astype(np.float32))


# ------------------------------------------------------- random programs
_W = np.linspace(-1.0, 1.0, 12).reshape(3, 4)  # an array the programs close over
_UNARY = {
    "sin": ft.sin,
    "tanh": ft.tanh,
    "atan": ft.atan,
    "exp-sin": lambda z: ft.exp(ft.sin(z)),
    "log1p-sq": lambda z: ft.log1p(z * z),
    "hypot1": lambda z: ft.sqrt(z * z + 1.0),
    "neg": lambda z: -z,
}
_BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "damp": lambda a, b: a / (1.0 + b * b),
}


def _programs():
    from hypothesis import strategies as st

    leaves = st.sampled_from(["x", "y", "w", "c", "a", "v"])
    return st.recursive(
        leaves,
        lambda kids: st.one_of(
            st.tuples(st.sampled_from(sorted(_UNARY)), kids),
            st.tuples(st.sampled_from(sorted(_BINARY)), kids, kids),
            st.tuples(st.just("roll"), kids, st.integers(-3, 3), st.sampled_from([None, 0, 1, -1])),
            st.tuples(st.just("where"), kids, kids),
        ),
        max_leaves=8,
    )


def _evaluate(tree, x, y, a, v):
    if isinstance(tree, str):
        return {"x": x, "y": y, "w": _W, "a": a, "v": v}[tree] if tree != "c" else ft.full_like(x, 0.75)
    op, *kids = tree
    if op == "roll":
        z = _evaluate(kids[0], x, y, a, v)
        if z.ndim == 0:  # a subtree of only ``a``
            return z
        axis = kids[2] if kids[2] is None or z.ndim == 2 else -1  # of only ``a`` and ``v``: 1-d
        return ft.roll(z, kids[1], axis=axis)
    if op == "where":  # compare inputs only: an intermediate within an ulp could branch apart
        return ft.where(x > y, _evaluate(kids[0], x, y, a, v), _evaluate(kids[1], x, y, a, v))
    args = [_evaluate(k, x, y, a, v) for k in kids]
    return (_UNARY if len(args) == 1 else _BINARY)[op](*args)


def test_random_programs_match_the_eager_path(host):
    """Random trees of functions, rolls, where, constants, closed-over arrays, a 0-d
    parameter and a broadcast one, in one direction and two."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=20, deadline=None)
    @given(_programs(), st.sampled_from([0, 2]), st.sampled_from(DTYPES), st.integers(0, 2**32 - 1))
    def check(tree, B, dtype, seed):
        rng = np.random.default_rng(seed)
        x, y = (rng.uniform(-1.5, 1.5, (3, 4)).astype(dtype) for _ in range(2))
        a0 = np.asarray(rng.uniform(-1.0, 1.0), dtype=dtype)  # a 0-d parameter
        v0 = rng.uniform(-1.0, 1.0, 4).astype(dtype)  # a parameter per column
        w = _W.astype(dtype)

        def f(x, y, a, v):  # the tree plus x, so that every program has a dual output
            global _W
            saved, _W = _W, w
            try:
                return _evaluate(tree, x, y, a, v) + x
            finally:
                _W = saved

        args = _duals([x, y, a0, v0], B, rng)
        _same(ft.fuse(f, strict=True)(*args), f(*args), dtype, repr(tree))

    check()


def _follow_numpy(names, got, want, dtype) -> None:
    """Equal to a few ulp, NaN where NumPy has NaN, and zeros of NumPy's sign."""
    for name, g, w in zip(names, got, want):
        g, w = np.asarray(g), np.asarray(w)  # constants of the namespace (plain inputs)
        np.testing.assert_allclose(g, w, rtol=_tol(dtype)["rtol"], atol=0, err_msg=name)
        zeros = w == 0
        np.testing.assert_array_equal(
            np.signbit(g[zeros]), np.signbit(w[zeros]), err_msg=f"{name}: sign of zero"
        )


@pytest.mark.parametrize("dtype", DTYPES)
def test_special_values_follow_numpy(host, dtype):
    """The C++ helpers (remainder, floor_divide, logaddexp, maximum, minimum, sign, round)
    against NumPy on zeros of both signs, infinities, NaN, tiny and half-integer values."""
    specials = [0.0, -0.0, 1.0, -1.0, 2.5, -2.5, 0.5, -1.5, 3.0, 1e-30, np.inf, -np.inf, np.nan]
    a, b = (np.array(v, dtype=dtype) for v in np.meshgrid(specials, specials))
    names = [
        "remainder",
        "floor_divide",
        "logaddexp",
        "maximum",
        "minimum",
        "copysign",
        "atan2",
        "hypot",
        "pow",
    ]

    def f(a, b):
        out = [getattr(ft, n)(a, b) for n in names]
        return out + [ft.sign(a), ft.round(a), ft.abs(a), ft.trunc(a), ft.nextafter(a, b)]

    with np.errstate(all="ignore"):
        want = f(a, b)
        got = ft.fuse(f, strict=True)(a, b)
    _follow_numpy([*names, "sign", "round", "abs", "trunc", "nextafter"], got, want, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_unary_functions_at_special_values_follow_numpy(host, dtype):
    x = np.array([0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 1e-30, 40.0, -40.0, np.inf, -np.inf, np.nan], dtype=dtype)
    names = [r.name for r in UNARY]

    def f(x):
        return [getattr(ft, n)(x) for n in names]

    with np.errstate(all="ignore"):
        want, got = f(x), ft.fuse(f, strict=True)(x)
    _follow_numpy(names, got, want, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_zero_dimensional_parameters_beside_arrays(host, dtype):
    """A model over a grid with scalar parameters: derivatives in the parameters, the state,
    or both at once, as ft.jvp / ft.jacfwd give them."""
    rng = np.random.default_rng(14)
    u = rng.uniform(0.1, 0.9, (5, 6)).astype(dtype)
    r, k = np.asarray(1.3, dtype=dtype), np.asarray(0.7, dtype=dtype)

    def f(u, r, k):
        return u + r * u * (1.0 - u / k) + 0.1 * (ft.roll(u, 1, axis=1) - u)

    g = ft.fuse(f, strict=True)
    zero = np.zeros_like(u)
    for tangents in [(zero, np.asarray(1.0, dtype), np.asarray(0.0, dtype)), (u, np.asarray(0.5, dtype), r)]:
        got, want = ft.jvp(g, (u, r, k), tangents), ft.jvp(f, (u, r, k), tangents)
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, **_tol(dtype))
    for argnums in (1, (0, 1, 2)):
        got, want = ft.jacfwd(g, argnums=argnums)(u, r, k), ft.jacfwd(f, argnums=argnums)(u, r, k)
        for a, b in zip(*(x if isinstance(x, tuple) else (x,) for x in (got, want))):
            np.testing.assert_allclose(a, b, **_tol(dtype))


def test_sparsity_detection_and_sparse_jacobians_go_through_fused_functions(host):
    """Sparsity detection traces tangents itself: a fused function runs eagerly for it,
    quietly, and the coloured Jacobian then runs fused."""
    f = ft.fuse(lambda x: ft.sin(x) * ft.roll(x, 1), strict=False)
    x = np.linspace(0.0, 1.0, 7)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        P = ft.sparsity_pattern(f, x)
        J = ft.sparse_jacfwd(f, P)(x)
    want = np.diag(np.cos(x) * np.roll(x, 1)) + np.roll(np.diag(np.sin(x)), -1, axis=1)
    assert P.toarray().sum() == 14
    np.testing.assert_allclose(J.toarray(), want, rtol=1e-12, atol=1e-15)


def test_custom_jvp_rules_inside_fused_programs(host):
    @ft.custom_jvp
    def softplus(x):
        return ft.log1p(ft.exp(x))

    @softplus.defjvp
    def _(primals, tangents):
        (x,), (t,) = primals, tangents
        return softplus(x), t / (1.0 + ft.exp(-x))

    @ft.custom_jvp
    def softplus_b(x):
        return ft.log1p(ft.exp(x))

    def batched_rule(primals, tangents):  # tangents carry the directions first
        (x,), (t,) = primals, tangents
        return softplus_b(x), t / (1.0 + ft.exp(-x))

    softplus_b.defjvp(batched_rule, batched=True)

    x = np.linspace(-1.0, 1.0, 5)
    one = ft.DualTensor(x, np.ones(5))
    three = ft.DualTensor(x, np.ones((3, 5)), batched=True)
    for f, d in [(lambda x: softplus(x) * x, one), (lambda x: softplus_b(x) * x, three)]:
        _same(ft.fuse(f, strict=True)(d), f(d), "float64")
    # a one-direction rule over three directions is called per direction: runs eagerly
    g = lambda x: softplus(x) * x  # noqa: E731
    with pytest.warns(ft.FuseWarning, match="batched=True"):
        _same(ft.fuse(g)(three), g(three), "float64")


@pytest.mark.parametrize("B", [0, 3])
@pytest.mark.parametrize("wshape", [(5,), (4, 1), (1, 5), (1, 1), ()])
def test_arguments_that_broadcast(host, wshape, B):
    """Per-column or per-row parameters beside a grid, with their own tangents."""
    rng = np.random.default_rng(16)
    x, w = rng.normal(size=(4, 5)), rng.normal(size=wshape)

    def f(x, w):
        return ft.sin(x * w) + ft.roll(w * x, 1, axis=0) + w - ft.roll(x, -2, axis=1) / (1.0 + w * w)

    args = _duals([x, w], B, rng)
    got, want = ft.fuse(f, strict=True)(*args), f(*args)
    _same(got, want, "float64", str(wshape))
    assert got.shape == want.shape == (4, 5)
    if B == 0:  # the Jacobian in the parameters, all directions in one fused pass
        np.testing.assert_allclose(
            ft.jacfwd(ft.fuse(f, strict=True), argnums=1)(x, w), ft.jacfwd(f, argnums=1)(x, w), rtol=1e-12
        )


def test_retrace_false_traces_once_per_signature(host):
    calls = []
    scale = [2.0]

    def f(x, k):
        calls.append(1)
        return ft.sin(x) * scale[0] + k

    g = ft.fuse(f, strict=True, retrace=False)
    rng = np.random.default_rng(17)
    x = rng.normal(size=(3, 4))
    for _ in range(3):  # a fresh level each time (jvp), the same signature
        v = rng.normal(size=(3, 4))
        y, t = ft.jvp(lambda x: g(x, 1.0), (x,), (v,))
        np.testing.assert_allclose(t, 2.0 * np.cos(x) * v, rtol=1e-12)
    assert len(calls) == 1
    g(x, 1.0), g(x, 1.0), g(x, -0.0), g(rng.normal(size=5), 1.0)  # plain, again, -0.0, a new shape
    assert len(calls) == 4
    scale[0] = 3.0  # read from elsewhere: frozen at the trace (documented), unlike retrace=True
    np.testing.assert_allclose(g(x, 1.0), np.sin(x) * 2.0 + 1.0, rtol=1e-12)
    np.testing.assert_allclose(ft.fuse(f, strict=True)(x, 1.0), np.sin(x) * 3.0 + 1.0, rtol=1e-12)
    with pytest.raises(TypeError, match="retrace"):
        ft.fuse(f, retrace=1)


def test_retrace_false_rebinds_arguments_and_closed_over_arrays(host):
    rng = np.random.default_rng(18)
    w = rng.normal(size=(3, 4))

    def f(x, p):
        return ft.roll(x, 1, axis=1) * w + p

    g = ft.fuse(f, strict=True, retrace=False)
    for B in (0, 2, 2):
        x, p = rng.normal(size=(3, 4)), rng.normal(size=(4,))
        args = _duals([x, p], B, rng)
        _same(g(*args), f(*args), "float64", f"B={B}")


def test_numbers_are_kernel_arguments_so_changing_them_does_not_recompile(host):
    """An adaptive time step changes dt every call: one compiled kernel serves every value."""

    def step(u, dt, s):
        return u + dt * ft.sin(u) + ft.copysign(u, s)

    g = ft.fuse(step, strict=True)
    u = np.linspace(0.1, 1.0, 8)
    g(u, 0.1, 1.0)
    before = len(_host_kernels.compiled)
    for dt, s in [(0.05, 1.0), (1e-7, -0.0), (np.inf, 0.0), (-3.5, -2.0)]:
        with np.errstate(all="ignore"):
            np.testing.assert_allclose(g(u, dt, s), step(u, dt, s), rtol=1e-13)
    assert len(_host_kernels.compiled) == before
    assert "0.05" not in g.explain(u, 0.05, 1.0)
