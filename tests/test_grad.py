"""``ft.grad`` and ``ft.value_and_grad``: forward-mode gradients of scalar functions, checked
against ``jax.grad`` and central finite differences, nested, with tuple argnums, dict inputs
and aux outputs, on every backend."""

from __future__ import annotations

import importlib.util
import zlib

import numpy as np
import pytest

import fwdtensor as ft
from tests._util import assert_close, central_difference, to_numpy

SEED = zlib.crc32(b"test_grad")


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(SEED ^ zlib.crc32(name.encode()))


# Scalar functions written once against a namespace: fwdtensor's, NumPy's and jax.numpy's.
FUNCTIONS = {
    "quartic": lambda xp, x: xp.sum(x**4) - 2.0 * xp.sum(x * x),
    "sin_prod": lambda xp, x: xp.sum(xp.sin(x) * x**3),
    "logsumexp": lambda xp, x: xp.log(xp.sum(xp.exp(x))),
    "norm_tanh": lambda xp, x: xp.sqrt(xp.sum(xp.tanh(x) ** 2) + 1.0),
    "quadratic_form": lambda xp, x: xp.sum(x * (xp.flip(x) + 0.5)) / (1.0 + xp.sum(x**2)),
}


def _fd_grad(f, x: np.ndarray) -> np.ndarray:
    g = np.empty_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e.flat[i] = 1.0
        g.flat[i] = central_difference(f, [x], [e])
    return g


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_against_finite_differences(backend, name, dtype):
    fn = FUNCTIONS[name]
    x = _rng(name).uniform(-1, 1, (2, 3))
    got = ft.grad(lambda v: fn(ft, v))(backend.asarray(x, dtype))
    assert tuple(got.shape) == x.shape and got.dtype == backend.dtype(dtype)
    assert_close(got, _fd_grad(lambda v: fn(np, v), x), dtype, name)


def test_against_jax_grad():
    if importlib.util.find_spec("jax") is None:
        pytest.skip("JAX is not installed (pip install jax) so there is nothing to compare with")
    import jax
    import jax.numpy as jnp

    with jax.enable_x64(True):
        for name, fn in FUNCTIONS.items():
            x = _rng("jax" + name).uniform(-1, 1, 5)
            want = np.asarray(jax.grad(lambda v, fn=fn: fn(jnp, v))(jnp.asarray(x)))
            np.testing.assert_allclose(ft.grad(lambda v, fn=fn: fn(ft, v))(x), want, rtol=1e-12, atol=1e-14)
            v, g = ft.value_and_grad(lambda v, fn=fn: fn(ft, v))(x)
            jv, jg = jax.value_and_grad(lambda v, fn=fn: fn(jnp, v))(jnp.asarray(x))
            np.testing.assert_allclose(v, np.asarray(jv), rtol=1e-14)
            np.testing.assert_allclose(g, np.asarray(jg), rtol=1e-12, atol=1e-14)

        def two(a, b):
            return (jnp if isinstance(a, jax.Array) else ft).sum(a * a * b[0]) + b[1] ** 3

        a, b = _rng("two-a").uniform(-1, 1, 3), _rng("two-b").uniform(-1, 1, 2)
        want = jax.grad(two, argnums=(0, 1))(jnp.asarray(a), jnp.asarray(b))
        got = ft.grad(two, argnums=(np.int64(0), 1))(a, b)
        assert isinstance(got, tuple) and len(got) == 2
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, np.asarray(w), rtol=1e-12)


def test_nested_second_and_third_derivative(backend):
    """grad(grad(f)) of a scalar function of a scalar, against the exact derivatives."""
    for x0 in (0.3, -1.1):
        x = backend.asarray(np.array(x0))
        g2 = ft.grad(ft.grad(lambda t: ft.sin(t) * t**3))(x)
        want = -np.sin(x0) * x0**3 + 6 * np.cos(x0) * x0**2 + 6 * x0 * np.sin(x0)
        assert tuple(g2.shape) == ()
        np.testing.assert_allclose(to_numpy(g2), want, rtol=1e-12)
        g3 = ft.grad(ft.grad(ft.grad(lambda t: ft.exp(2.0 * t))))(x)
        np.testing.assert_allclose(to_numpy(g3), 8 * np.exp(2 * x0), rtol=1e-12)
    # grad inside jacfwd: the Hessian of a vector function's sum, by both routes
    x = _rng("nested-h").uniform(-1, 1, 4)
    H = ft.jacfwd(ft.grad(lambda v: ft.sum(ft.sin(v) * v**3)))(backend.asarray(x))
    np.testing.assert_allclose(
        to_numpy(H), to_numpy(ft.hessian(lambda v: ft.sum(ft.sin(v) * v**3))(backend.asarray(x))), rtol=1e-13
    )


def test_dict_inputs_and_aux(backend):
    rng = _rng("dict")
    w, b = rng.uniform(-1, 1, (3, 2)), rng.uniform(-1, 1, 2)
    params = {"w": backend.asarray(w), "b": backend.asarray(b)}

    def loss(p, scale):
        y = ft.tanh(ft.sum(p["w"], axis=0) + p["b"])
        return scale * ft.sum(y * y), {"y": y}

    (value, aux), g = ft.value_and_grad(loss, has_aux=True)(params, 2.0)
    assert set(g) == {"w", "b"} and tuple(g["w"].shape) == (3, 2) and tuple(g["b"].shape) == (2,)
    y = np.tanh(w.sum(0) + b)
    np.testing.assert_allclose(to_numpy(value), 2.0 * np.sum(y * y), rtol=1e-14)
    np.testing.assert_allclose(to_numpy(aux["y"]), y, rtol=1e-14)
    dy = 4.0 * y * (1 - y**2)
    np.testing.assert_allclose(to_numpy(g["b"]), dy, rtol=1e-12)
    np.testing.assert_allclose(to_numpy(g["w"]), np.broadcast_to(dy, (3, 2)), rtol=1e-12)
    g2, aux2 = ft.grad(loss, has_aux=True)(params, 2.0)
    np.testing.assert_allclose(to_numpy(g2["w"]), to_numpy(g["w"]), rtol=0)
    assert not isinstance(aux2["y"], ft.DualTensor)


def test_chunked_by_the_memory_budget():
    x = _rng("chunked").uniform(-1, 1, 300)
    want = ft.grad(lambda v: ft.sum(ft.sin(v) * v))(x)
    old = ft.get_memory_budget()
    try:
        ft.set_memory_budget(8 * 8 * 300 * 7)  # seven directions per pass
        calls = []

        def f(v):
            calls.append(1)
            return ft.sum(ft.sin(v) * v)

        got = ft.grad(f)(x)
    finally:
        ft.set_memory_budget(old)
    assert len(calls) == 43  # ceil(300 / 7) passes: forward mode costs n directions
    np.testing.assert_allclose(got, want, rtol=1e-15)
    np.testing.assert_allclose(got, np.sin(x) + x * np.cos(x), rtol=1e-14)


def test_refusals_name_the_way_out(backend):
    x = backend.asarray(np.array([1.0, 2.0]))
    with pytest.raises(ft.StructureError, match="scalar output.*shape \\(2,\\).*jacfwd"):
        ft.grad(lambda v: v * v)(x)
    with pytest.raises(ft.StructureError, match="one scalar.*jacfwd"):
        ft.grad(lambda v: (ft.sum(v), ft.sum(v)))(x)
    with pytest.raises(ft.NotDifferentiableError, match="grad differentiates floating inputs"):
        ft.grad(lambda v: ft.sum(v))(backend.asarray(np.array([1, 2])))
    with pytest.raises(ft.NotDifferentiableError, match="grad got a complex input.*holomorphic"):
        ft.grad(lambda v: ft.sum(ft.real(v)))(np.array([1 + 1j]))
    with pytest.raises(TypeError, match="argnums"):
        ft.grad(lambda v: v, argnums=1.0)
    with pytest.raises(TypeError, match="callable"):
        ft.grad(3)


def test_exported():
    assert {"grad", "value_and_grad"} <= set(ft.__all__)
