"""``ft.custom_jvp``: user rules for functions fwdtensor cannot see into, one direction per
call or batched, with non-differentiable arguments, under jacfwd's batched seeds and under
nesting, on every backend; and the implicit-function root solver example."""

from __future__ import annotations

import importlib.util
import pathlib
from functools import partial

import numpy as np
import pytest

import fwdtensor as ft
from tests._util import assert_close, central_difference, to_numpy

RNG = np.random.default_rng(3)
ROOT = pathlib.Path(__file__).resolve().parents[1]


def make_softplus(batched: bool, log: list):
    """softplus(x) = log(1 + exp(x)) with the rule sigmoid(x) * t, as a black box."""

    @ft.custom_jvp
    def softplus(x):
        return ft.log1p(ft.exp(x))

    def rule(primals, tangents):
        (x,), (t,) = primals, tangents
        log.append(tuple(t.shape))
        s = 1.0 / (1.0 + ft.exp(-x))  # a constant of the namespace: plain x and t meet it
        return softplus(x), ft.multiply(t, s)  # through ft (array-api-strict refuses `t * s`)

    softplus.defjvp(rule, batched=batched)
    return softplus


def softplus_np(x):
    return np.log1p(np.exp(x))


@pytest.mark.parametrize("batched", [False, True])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_rule_against_finite_differences(backend, batched, dtype):
    log: list = []
    sp = make_softplus(batched, log)
    x = RNG.uniform(-2, 2, 4)
    J = ft.jacfwd(sp)(backend.asarray(x, dtype))
    want = np.stack([central_difference(softplus_np, [x], [e]) for e in np.eye(4)], axis=1)
    assert_close(J, want, dtype)
    # batched rules see (B, *shape) once; one-direction rules see the primal shape B times
    assert log == ([(4, 4)] if batched else [(4,)] * 4)


def test_batched_tangent_equals_stacked_single(backend):
    sp = make_softplus(True, [])
    x = backend.asarray(RNG.uniform(-1, 1, 3))
    V = RNG.standard_normal((3, 3))
    _, tb = ft.jvp(sp, (x,), (backend.asarray(V),), batched=True)
    for i in range(3):
        _, ti = ft.jvp(sp, (x,), (backend.asarray(V[i]),))
        np.testing.assert_allclose(to_numpy(tb[i, ...]), to_numpy(ti), rtol=1e-14)


def test_primal_call_does_not_use_the_rule(backend):
    log: list = []
    sp = make_softplus(False, log)
    x = RNG.uniform(-1, 1, 3)
    np.testing.assert_allclose(to_numpy(sp(backend.asarray(x))), softplus_np(x), rtol=1e-14)
    assert log == []


@pytest.mark.parametrize("batched", [False, True])
def test_nested_second_derivative(backend, batched):
    """The rule is written with fwdtensor operations, so it is differentiated again."""
    sp = make_softplus(batched, [])
    x = RNG.uniform(-2, 2, 3)
    xb = backend.asarray(x)
    d2 = np.stack([to_numpy(ft.derivative(sp, order=2)(xb[i])) for i in range(3)])
    s = 1 / (1 + np.exp(-x))
    np.testing.assert_allclose(to_numpy(d2), s * (1 - s), rtol=1e-12)
    H = ft.hessian(lambda x: ft.sum(sp(x)))(backend.asarray(x))
    np.testing.assert_allclose(to_numpy(H), np.diag(s * (1 - s)), rtol=1e-12, atol=1e-15)


def test_rule_replaces_what_fwdtensor_cannot_see():
    """A 'compiled' function on the host (np.vectorize of math) gets a derivative by its rule."""
    import math

    black_box = np.vectorize(math.erf)

    @ft.custom_jvp
    def erf(x):
        return black_box(x)

    @erf.defjvp
    def _(primals, tangents):
        (x,), (t,) = primals, tangents
        return erf(x), t * (2 / math.sqrt(math.pi)) * np.exp(-x * x)

    x = np.array([-0.5, 0.1, 0.9])
    np.testing.assert_allclose(ft.jacfwd(erf)(x), np.diag(2 / np.sqrt(np.pi) * np.exp(-x * x)), rtol=1e-14)


def test_nondiff_argnums_function_and_option(backend):
    @partial(ft.custom_jvp, nondiff_argnums=(0, 2))
    def apply(fn, x, power):
        return fn(x) ** power

    @apply.defjvp
    def _(fn, power, primals, tangents):
        (x,), (t,) = primals, tangents
        y, ty = ft.jvp(fn, (x,), (t,))
        return apply(fn, x, power), power * y ** (power - 1) * ty

    x = RNG.uniform(0.1, 1, 3)
    J = ft.jacfwd(lambda x: apply(ft.sin, x, 3))(backend.asarray(x))
    np.testing.assert_allclose(to_numpy(J), np.diag(3 * np.sin(x) ** 2 * np.cos(x)), rtol=1e-13)


def test_keywords_defaults_and_symbolic_zeros():
    seen = []

    @ft.custom_jvp
    def scaled(x, y, scale=2.0):
        return x * y * scale

    def rule(primals, tangents):
        x, y, scale = primals
        tx, ty, tscale = tangents
        seen.append((tx is None, ty is None, tscale is None))
        t = None
        if tx is not None:
            t = tx * y * scale
        if ty is not None:
            t = (0.0 if t is None else t) + x * ty * scale
        return scaled(x, y, scale), t

    scaled.defjvp(rule, symbolic_zeros=True)
    x, y = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    J = ft.jacfwd(lambda x: scaled(x, y, scale=3.0))(x)
    np.testing.assert_allclose(J, np.diag(3.0 * y))
    assert seen[-1] == (False, True, True)  # y is a constant, scale a Python float


def test_pytree_arguments_and_outputs(backend):
    @ft.custom_jvp
    def polar(d):
        return {"r": d["x"] * d["x"] + d["y"] * d["y"], "s": (d["x"] * d["y"],)}

    @polar.defjvp
    def _(primals, tangents):
        (d,), (t,) = primals, tangents
        return polar(d), {
            "r": 2 * d["x"] * t["x"] + 2 * d["y"] * t["y"],
            "s": (t["x"] * d["y"] + d["x"] * t["y"],),
        }

    x, y = backend.asarray(np.array([0.3, 0.6])), backend.asarray(np.array([1.1, -0.4]))
    J = ft.jacfwd(polar)({"x": x, "y": y})
    np.testing.assert_allclose(to_numpy(J["r"]["x"]), np.diag(2 * to_numpy(x)))
    np.testing.assert_allclose(to_numpy(J["s"][0]["y"]), np.diag(to_numpy(x)))


def test_sparsity_detection_sees_through_conservatively():
    @ft.custom_jvp
    def opaque(v):
        return v * 2.0

    opaque.defjvp(lambda p, t: (opaque(p[0]), 2.0 * t[0]))
    P = ft.sparsity_pattern(lambda x: ft.concat([opaque(x[:2]), x[2:] * 3.0]), np.ones(4)).toarray()
    want = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=bool)
    np.testing.assert_array_equal(P, want)  # every output of the opaque block on every input


# ---------------------------------------------------------------- errors
def test_missing_rule_is_an_error():
    @ft.custom_jvp
    def f(x):
        return x

    assert f(1.0) == 1.0  # primal calls need no rule
    with pytest.raises(ft.NotDifferentiableError, match="defjvp"):
        ft.jacfwd(f)(np.array([1.0]))


def test_rule_with_wrong_tangent_shape():
    @ft.custom_jvp
    def f(x):
        return x * 2.0

    f.defjvp(lambda p, t: (f(p[0]), 2.0 * ft.sum(t[0], axis=0)), batched=True)
    with pytest.raises(ft.TangentError, match=r"expected \(3, 3\).*batched=True"):
        ft.jacfwd(f)(np.ones(3))
    f.defjvp(lambda p, t: (f(p[0]), 2.0 * t[0]), batched=True)
    with pytest.raises(ft.TangentError, match="keep the leading axis"):
        ft.jvp(lambda x: f(x) if False else _squeeze_rule(x), (np.ones(3),), (np.ones(3),))


def _squeeze_rule(x):
    @ft.custom_jvp
    def g(x):
        return x

    g.defjvp(lambda p, t: (g(p[0]), t[0][0, ...]), batched=True)
    return g(x)


def test_rule_returning_garbage():
    @ft.custom_jvp
    def f(x):
        return x

    f.defjvp(lambda p, t: p[0])
    with pytest.raises(ft.StructureError, match="pair"):
        ft.jacfwd(f)(np.ones(2))
    f.defjvp(lambda p, t: (p[0], t[0].astype(np.float32)))
    with pytest.raises(ft.TangentError, match="dtype"):
        ft.jacfwd(f)(np.ones(2))
    with pytest.raises(TypeError, match="callable"):
        f.defjvp("not a rule")
    with pytest.raises(TypeError, match="nondiff_argnums"):
        ft.custom_jvp(lambda x: x, nondiff_argnums=(-1,))


def test_nondiff_argument_that_depends_on_the_input():
    @partial(ft.custom_jvp, nondiff_argnums=(1,))
    def f(x, scale):
        return x * scale

    f.defjvp(lambda scale, p, t: (f(p[0], scale), t[0] * scale))
    with pytest.raises(ft.NotDifferentiableError, match="nondiff_argnums"):
        ft.jacfwd(lambda x: f(x, x[0]))(np.ones(2))


# ------------------------------------------------------------- the example
def test_implicit_root_example():
    spec = importlib.util.spec_from_file_location("implicit_root", ROOT / "examples" / "implicit_root.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = mod.main(n=6)
    assert res["residual"] < 1e-12
    assert res["ift_vs_unrolled"] < 1e-12  # same derivative as differentiating every Newton step
    assert res["ift_vs_fd"] < 1e-7
    assert res["hessian_vs_fd"] < 1e-6
    assert res["dxdp"].shape == (6, 2)
