"""Every elementwise rule, driven by the rule table: primal, tangent against finite
differences (and the complex step where the function is analytic), batched against
stacked single tangents, broadcasting and Python scalars, on every backend."""

from __future__ import annotations

import zlib

import array_api_compat.numpy as cnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fwdtensor as ft
from fwdtensor.rules import elementwise
from tests._util import assert_close, central_difference, is_constant, sample, to_numpy

RULES = {r.name: r for r in elementwise.RULES}
DIFF = [r for r in elementwise.RULES if r.kind in ("diff", "zero") and r.form in ("unary", "binary")]
NONDIFF = [r for r in elementwise.RULES if r.kind == "nondiff"]
NON_HOLOMORPHIC = {"abs", "conj", "real", "imag", "sign", "round"}

# Every elementwise function of the standard (2025.12), to prove the table is complete.
STANDARD_ELEMENTWISE = """abs acos acosh add asin asinh atan atan2 atanh bitwise_and bitwise_left_shift
bitwise_invert bitwise_or bitwise_right_shift bitwise_xor ceil clip conj copysign cos cosh divide equal
exp expm1 floor floor_divide greater greater_equal hypot imag isfinite isinf isnan less less_equal log
log1p log2 log10 logaddexp logical_and logical_not logical_or logical_xor maximum minimum multiply
negative nextafter not_equal positive pow real reciprocal remainder round sign signbit sin sinh square
sqrt subtract tan tanh trunc""".split()


def dtypes_of(rule) -> list[str]:
    if rule.dtypes == "complex":
        return ["complex128", "complex64"]
    return ["float64", "float32"] + (["complex128"] if rule.dtypes == "float" else [])


def cases():
    for r in DIFF:
        for dt in dtypes_of(r):
            yield pytest.param(r, dt, id=f"{r.name}-{dt}")


def ref_fn(name):
    return getattr(cnp, name)


def _fn(name):
    return getattr(ft, name)


def _inputs(rule, shapes, dtype, rng):
    return [sample(rule.domain, s, dtype, rng, arg=i) for i, s in enumerate(shapes)]


@pytest.mark.parametrize("rule,dtype", list(cases()))
def test_rule_against_finite_differences(rule, dtype, backend):
    seed = zlib.crc32(f"{rule.name} {dtype}".encode())  # deterministic across processes, unlike hash()
    rng = np.random.default_rng(seed)
    nargs = 1 if rule.form == "unary" else 2
    xs = _inputs(rule, [(3, 4)] * nargs, dtype, rng)
    vs = [sample("real", (3, 4), dtype, rng) for _ in range(nargs)]
    duals = [ft.DualTensor(backend.asarray(x), backend.asarray(v)) for x, v in zip(xs, vs)]
    out = _fn(rule.name)(*duals)
    want = getattr(backend.xp, rule.name)(*[backend.asarray(x) for x in xs])
    np.testing.assert_allclose(to_numpy(out.primal), to_numpy(want), rtol=1e-6)
    assert tuple(out.tangent.shape) == tuple(out.shape)
    assert out.tangent.dtype == out.dtype
    if rule.kind == "zero":  # by definition (nextafter is the identity up to one ulp)
        assert np.all(to_numpy(out.tangent) == 0)
        return
    wide = "complex128" if dtype.startswith("complex") else "float64"
    ref = central_difference(ref_fn(rule.name), [x.astype(wide) for x in xs], [v.astype(wide) for v in vs])
    assert_close(out.tangent, ref, dtype, f"{rule.name} {dtype} on {backend.name} (seed {seed})")


@pytest.mark.parametrize("rule", [r for r in DIFF if r.form == "binary"], ids=lambda r: r.name)
@pytest.mark.parametrize("which", [0, 1])
def test_binary_partial_alone(rule, which, backend):
    # one operand constant: exercises each partial on its own and the symbolic zero
    rng = np.random.default_rng(7)
    xs = _inputs(rule, [(5,), (5,)], "float64", rng)
    v = sample("real", (5,), "float64", rng)
    args = [backend.asarray(x) for x in xs]
    args[which] = ft.DualTensor(args[which], backend.asarray(v))
    out = _fn(rule.name)(*args)
    dirs = [None, None]
    dirs[which] = v
    ref = 0 * v if rule.kind == "zero" else central_difference(ref_fn(rule.name), xs, dirs)
    assert_close(out.tangent, ref, "float64", rule.name)


@pytest.mark.parametrize("rule", DIFF, ids=lambda r: r.name)
def test_batched_equals_stacked_single(rule, backend):
    rng = np.random.default_rng(3)
    nargs = 1 if rule.form == "unary" else 2
    dt = dtypes_of(rule)[0]
    xs = _inputs(rule, [(2, 3)] * nargs, dt, rng)
    vs = [sample("real", (3, 2, 3), dt, rng) for _ in range(nargs)]
    batched = _fn(rule.name)(
        *[ft.DualTensor(backend.asarray(x), backend.asarray(v), batched=True) for x, v in zip(xs, vs)]
    )
    assert batched.batched and tuple(batched.tangent.shape) == (3, 2, 3)
    for b in range(3):
        single = _fn(rule.name)(
            *[ft.DualTensor(backend.asarray(x), backend.asarray(v[b])) for x, v in zip(xs, vs)]
        )
        np.testing.assert_allclose(
            to_numpy(batched.tangent)[b], to_numpy(single.tangent), rtol=1e-12, atol=1e-15
        )


@pytest.mark.parametrize("rule", [r for r in DIFF if r.form == "binary"], ids=lambda r: r.name)
@pytest.mark.parametrize("shapes", [((3, 1), (4,)), ((), (2, 3)), ((2, 3), ())], ids=str)
def test_binary_broadcasting(rule, shapes, backend):
    rng = np.random.default_rng(5)
    xs = _inputs(rule, list(shapes), "float64", rng)
    vs = [sample("real", s, "float64", rng) for s in shapes]
    out = _fn(rule.name)(*[ft.DualTensor(backend.asarray(x), backend.asarray(v)) for x, v in zip(xs, vs)])
    ref = central_difference(ref_fn(rule.name), xs, vs)
    if rule.kind == "zero":
        ref = 0 * ref
    assert tuple(out.tangent.shape) == ref.shape
    assert_close(out.tangent, ref, "float64", rule.name)
    # batched tangents with broadcasting
    vb = [np.stack([v, 2 * v]) for v in vs]
    outb = _fn(rule.name)(
        *[ft.DualTensor(backend.asarray(x), backend.asarray(v), batched=True) for x, v in zip(xs, vb)]
    )
    assert_close(to_numpy(outb.tangent)[1], 2 * ref, "float64", rule.name)


@pytest.mark.parametrize("rule", [r for r in DIFF if r.form == "binary"], ids=lambda r: r.name)
@pytest.mark.parametrize("side", [0, 1])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_python_scalar_operand(rule, side, dtype, backend):
    rng = np.random.default_rng(11)
    xs = _inputs(rule, [(4,), (4,)], dtype, rng)
    scalar = float(xs[side][0])
    v = sample("real", (4,), dtype, rng)
    args: list = [None, None]
    args[side] = scalar
    args[1 - side] = ft.DualTensor(backend.asarray(xs[1 - side]), backend.asarray(v))
    out = _fn(rule.name)(*args)
    assert out.dtype == backend.dtype(dtype), "a Python scalar must not promote the dtype"
    ref_args = [np.float64(scalar) if i == side else xs[i].astype("float64") for i in range(2)]
    dirs = [None if i == side else v.astype("float64") for i in range(2)]
    ref = central_difference(ref_fn(rule.name), ref_args, dirs)
    assert_close(out.tangent, 0 * ref if rule.kind == "zero" else ref, dtype, rule.name)


HOLOMORPHIC = [r for r in DIFF if r.form == "unary" and r.dtypes == "float" and r.name not in NON_HOLOMORPHIC]


@pytest.mark.parametrize("rule", HOLOMORPHIC, ids=lambda r: r.name)
def test_complex_step(rule):
    # f(x + i h v).imag / h is exact to rounding for real-analytic functions
    rng = np.random.default_rng(13)
    x = sample(rule.domain, (6,), "float64", rng)
    v = sample("real", (6,), "float64", rng)
    h = 1e-30
    ref = np.imag(ref_fn(rule.name)(x + 1j * h * v)) / h
    out = _fn(rule.name)(ft.DualTensor(x, v))
    np.testing.assert_allclose(to_numpy(out.tangent), ref, rtol=1e-13, atol=1e-300)


@pytest.mark.parametrize("rule", NONDIFF, ids=lambda r: r.name)
def test_nondifferentiable_results_are_constants(rule, backend):
    if rule.dtypes in ("bool", "int"):  # such inputs are constant duals (no tangent)
        x = ft.DualTensor(backend.asarray([True, False, True] if rule.dtypes == "bool" else [1, 2, 3]))
    else:
        x = ft.DualTensor(backend.asarray([0.5, -1.5, 2.0]), backend.asarray([1.0, 1.0, 1.0]))
    out = _fn(rule.name)(x) if rule.form == "unary" else _fn(rule.name)(x, x)
    assert is_constant(out)


def test_zero_rules_give_zero_tangent(backend):
    x = ft.DualTensor(backend.asarray([0.4, -1.6]), backend.asarray([1.0, 1.0]))
    for name in ("floor", "ceil", "round", "trunc", "sign"):
        out = getattr(ft, name)(x)
        assert isinstance(out, ft.DualTensor)
        assert np.all(to_numpy(out.tangent) == 0)


def test_table_covers_every_elementwise_function():
    missing = sorted(set(STANDARD_ELEMENTWISE) - set(RULES))
    assert not missing, f"elementwise functions without a rule: {missing}"


# ------------------------------------------------------------ conventions
def test_kink_conventions_match_jax():
    x = ft.DualTensor(np.array([0.0, 1.0, 2.0]), np.ones(3))
    assert to_numpy(ft.abs(x).tangent)[0] == 0.0
    m = ft.maximum(x, np.array([0.0, 2.0, 1.0]))
    np.testing.assert_array_equal(to_numpy(m.tangent), [0.5, 0.0, 1.0])
    c = ft.clip(x, 0.0, 2.0)
    np.testing.assert_array_equal(to_numpy(c.tangent), [0.5, 1.0, 0.5])
    p = ft.pow(ft.DualTensor(np.array([0.0]), np.ones(1)), 0.0)
    assert to_numpy(p.tangent)[0] == 0.0
    q = ft.pow(0.0, ft.DualTensor(np.array([2.0]), np.ones(1)))
    assert to_numpy(q.tangent)[0] == 0.0


def test_complex_abs_is_r_linear():
    z = np.array([3.0 + 4.0j])
    for v in (np.array([1.0 + 0j]), np.array([1j])):
        out = ft.abs(ft.DualTensor(z, v))
        ref = central_difference(np.abs, [z], [v])
        np.testing.assert_allclose(to_numpy(out.tangent), ref.real, rtol=1e-9)


def test_clip_differentiates_bounds():
    x = ft.DualTensor(np.array([-1.0, 0.5, 3.0]), np.zeros(3))
    lo = ft.DualTensor(np.array(0.0), np.array(1.0))
    hi = ft.DualTensor(np.array(2.0), np.array(10.0))
    out = ft.clip(x, lo, hi)
    np.testing.assert_array_equal(to_numpy(out.tangent), [1.0, 0.0, 10.0])


# ------------------------------------------------------------- properties
finite = st.floats(-3, 3, allow_nan=False, allow_infinity=False)


@given(a=finite, b=finite, seed=st.integers(0, 2**16))
def test_tangent_is_linear_in_the_seed(a, b, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.5, 2.0, 5)
    t1, t2 = rng.normal(size=5), rng.normal(size=5)

    def f(x):
        return ft.log(x) * ft.sin(x) + ft.exp(-x) / (1 + x * x) - ft.sqrt(x) ** 3

    j = lambda t: ft.jvp(f, (x,), (t,))[1]
    np.testing.assert_allclose(j(a * t1 + b * t2), a * j(t1) + b * j(t2), rtol=1e-9, atol=1e-9)


@given(x=st.floats(0.1, 10), y=st.floats(-10, 10))
def test_starting_example_partials(x, y):
    f = lambda x1, x2: ft.log(x1) + x1 * x2 - ft.sin(x2)
    d1 = ft.jvp(f, (x, y), (1.0, 0.0))[1]
    d2 = ft.jvp(f, (x, y), (0.0, 1.0))[1]
    np.testing.assert_allclose(float(d1), 1 / x + y, rtol=1e-12)
    np.testing.assert_allclose(float(d2), x - np.cos(y), rtol=1e-12, atol=1e-12)
