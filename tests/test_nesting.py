"""Nested differentiation: hessian by forward-over-forward, derivative(order=k), any nesting of
jvp and jacfwd, and the perturbation-confusion classic, on every backend."""

from __future__ import annotations

import importlib.util

import array_api_compat
import numpy as np
import pytest

import fwdtensor as ft
from tests._util import assert_close, central_difference, to_numpy

RNG = np.random.default_rng(7)


def rosenbrock(x):
    xp = array_api_compat.array_namespace(x)
    a, b = x[:-1], x[1:]
    return xp.sum(100.0 * (b - a * a) ** 2 + (1.0 - a) ** 2)


def rosenbrock_hessian(x: np.ndarray) -> np.ndarray:
    """The analytic Hessian: tridiagonal."""
    n = x.size
    H = np.zeros((n, n))
    i = np.arange(n - 1)
    H[i, i] += 1200 * x[:-1] ** 2 - 400 * x[1:] + 2
    H[i + 1, i + 1] += 200
    H[i, i + 1] = H[i + 1, i] = -400 * x[:-1]
    return H


@pytest.mark.parametrize("n", [2, 100])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_rosenbrock_hessian_against_analytic(backend, n, dtype):
    x = RNG.uniform(-1.5, 1.5, n)
    H = ft.hessian(rosenbrock)(backend.asarray(x, dtype))
    assert tuple(H.shape) == (n, n)
    assert H.dtype == backend.dtype(dtype)
    assert_close(H, rosenbrock_hessian(x.astype(dtype).astype("float64")), dtype, f"n={n}")


def test_hessian_chunked_equals_unchunked(backend):
    x = backend.asarray(RNG.uniform(-1, 1, 6))
    want = to_numpy(ft.hessian(rosenbrock)(x))
    for k in (1, 2, 4):
        np.testing.assert_allclose(to_numpy(ft.hessian(rosenbrock, chunk_size=k)(x)), want, rtol=1e-14)


@pytest.mark.parametrize("x0", [-2.0, 0.0, 0.5, 3.0])
def test_perturbation_confusion(backend, x0):
    """d/dx [x * d/dy (x + y)] = 1 everywhere (a confused implementation gives 2)."""
    x = backend.asarray(np.array(x0))

    def outer(x):
        inner = ft.derivative(lambda y: x + y)(backend.asarray(np.array(1.0)))
        return x * inner

    assert float(to_numpy(ft.derivative(outer)(x))) == 1.0
    # the same with jvp at both levels
    one = backend.asarray(np.array(1.0))
    _, d = ft.jvp(lambda x: x * ft.jvp(lambda y: x + y, (one,), (one,))[1], (x,), (one,))
    assert float(to_numpy(d)) == 1.0
    # and with jacfwd: the inner derivative is a constant 1 for the outer level
    J = ft.jacfwd(lambda x: x * ft.jacfwd(lambda y: ft.sum(x * 0.0 + y))(x))(backend.asarray(np.array([x0])))
    np.testing.assert_array_equal(to_numpy(J), [[1.0]])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_derivative_orders(backend, dtype):
    x = RNG.uniform(-1, 1, 4)
    xb = backend.asarray(x, dtype)
    derivs = [np.sin, np.cos, lambda t: -np.sin(t), lambda t: -np.cos(t), np.sin]
    xs = [xb[i] for i in range(4)]  # derivative takes one scalar: one 0-d array per point
    for k, d in enumerate(derivs):
        got = np.stack([to_numpy(ft.derivative(ft.sin, order=k)(xi)) for xi in xs])
        assert_close(got, d(x.astype(dtype).astype("float64")), dtype, f"sin order {k}")
    got = np.stack([to_numpy(ft.derivative(lambda t: t**5, order=3)(xi)) for xi in xs])
    assert_close(got, 60 * x.astype(dtype).astype("float64") ** 2, dtype)
    assert float(to_numpy(ft.derivative(lambda t: t**3, order=4)(backend.asarray(np.array(2.0))))) == 0.0


def test_derivative_bad_order():
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="non-negative integer"):
            ft.derivative(ft.sin, order=bad)


def test_jvp_of_jacfwd_against_finite_differences(backend):
    """d/dt J(x + t v): a jvp around a Jacobian."""

    def f(x):
        xp = array_api_compat.array_namespace(x)
        return xp.sin(x) * xp.sum(x * x)

    x, v = RNG.uniform(-1, 1, 3), RNG.standard_normal(3)
    _, dJ = ft.jvp(ft.jacfwd(f), (backend.asarray(x),), (backend.asarray(v),))

    def J_np(x):
        return np.diag(np.cos(x)) * np.sum(x * x) + np.outer(np.sin(x), 2 * x)

    assert_close(dJ, central_difference(J_np, [x], [v]), "float64")


def test_jacfwd_of_jvp_is_hessian_vector(backend):
    x, v = RNG.uniform(-1, 1, 5), RNG.standard_normal(5)
    xb, vb = backend.asarray(x), backend.asarray(v)
    Hv = ft.jacfwd(lambda x: ft.jvp(ft.jacfwd(rosenbrock), (x,), (vb,))[1])(xb)
    np.testing.assert_allclose(to_numpy(Hv), _hv_jac(x, v), rtol=1e-6, atol=1e-6)
    gv = ft.jacfwd(lambda x: ft.jvp(rosenbrock, (x,), (vb,))[1])(xb)
    np.testing.assert_allclose(to_numpy(gv), rosenbrock_hessian(x) @ v, rtol=1e-10)


def _hv_jac(x, v):
    """d/dx (H(x) v): central differences of the analytic Hessian-vector product."""
    return np.stack(
        [central_difference(lambda y: rosenbrock_hessian(y) @ v, [x], [e]) for e in np.eye(x.size)], axis=1
    )


def test_third_order_tensor(backend):
    x = RNG.uniform(-1, 1, 3)

    def cubic(x):
        xp = array_api_compat.array_namespace(x)
        return xp.sum(x * x * x) + x[0] * x[1] * x[2]

    T = ft.jacfwd(ft.hessian(cubic))(backend.asarray(x))
    want = np.zeros((3, 3, 3))
    for i in range(3):
        want[i, i, i] = 6.0
    for p in ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)):
        want[p] = 1.0
    np.testing.assert_allclose(to_numpy(T), want, atol=1e-12)


def test_hessian_argnums_tuple_layout(backend):
    """Like jax.hessian: ((d2/dx2, d2/dxdy), (d2/dydx, d2/dy2))."""
    x, y = backend.asarray(np.array([0.3, 0.4])), backend.asarray(np.array(1.5))

    def f(x, y):
        xp = array_api_compat.array_namespace(x)
        return xp.sum(x * x) * y * y

    (hxx, hxy), (hyx, hyy) = ft.hessian(f, argnums=(0, 1))(x, y)
    xn, yn = to_numpy(x), float(to_numpy(y))
    np.testing.assert_allclose(to_numpy(hxx), 2 * yn * yn * np.eye(2))
    np.testing.assert_allclose(to_numpy(hxy), 4 * yn * xn)
    np.testing.assert_allclose(to_numpy(hyx), 4 * yn * xn)
    np.testing.assert_allclose(to_numpy(hyy), 2 * np.sum(xn * xn))


def test_hessian_has_aux(backend):
    x = backend.asarray(np.array([0.5, -0.2, 1.0]))
    H, aux = ft.hessian(lambda x: (rosenbrock(x), {"x0": x[0]}), has_aux=True)(x)
    np.testing.assert_allclose(to_numpy(H), rosenbrock_hessian(to_numpy(x)), rtol=1e-12)
    assert not isinstance(aux["x0"], ft.DualTensor)
    assert float(to_numpy(aux["x0"])) == 0.5


def test_hessian_against_jax():
    if importlib.util.find_spec("jax") is None:
        pytest.skip("JAX is not installed (pip install jax) so there is nothing to compare with")
    import jax
    import jax.numpy as jnp

    x = RNG.uniform(-1, 1, 7)
    with jax.enable_x64(True):
        want = jax.hessian(lambda x: jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2))(
            jnp.asarray(x)
        )
    np.testing.assert_allclose(ft.hessian(rosenbrock)(x), np.asarray(want), rtol=1e-13)


def test_inner_dual_escaping_is_an_error():
    """A dual of an inner transform returned to the outer one is refused, not mixed up."""

    def f(x):
        leaked = []
        ft.jacfwd(lambda y: leaked.append(y) or y)(x)
        return leaked[0]

    with pytest.raises(ft.FwdTensorError, match="escaped"):
        ft.jacfwd(f)(np.array([2.0]))
