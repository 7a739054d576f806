"""Derivatives of ODE solutions with respect to time: dual ends of ``t_span`` and dual
``t_eval`` points for RK4 and RK45, against the exact solution and central differences of
it; and the solvers' fast, named failure on a right-hand side that returns NaN or inf."""

from __future__ import annotations

import math
import time
import zlib

import numpy as np
import pytest

import fwdtensor as ft
from fwdtensor.core import errors as _errors
from fwdtensor.ode import STIFF_METHODS, solve
from tests._util import assert_close, central_difference, to_numpy

# y' = -k t y, y(t0) = y0 has y(t) = y0 exp(-k (t^2 - t0^2) / 2): non-autonomous, so a moved
# start time is not the same as a moved end time.
Y0 = np.array([1.0, 2.0])
OPTS = {
    ("RK45", "float64"): {"rtol": 1e-11, "atol": 1e-13},
    ("RK45", "float32"): {"rtol": 1e-6, "atol": 1e-8},
    ("RK4", "float64"): {"step": 0.01},
    ("RK4", "float32"): {"step": 0.03},
}


def _f(t, y, k):
    return -k * t * y


def _exact(t, t0, k):
    return Y0 * np.exp(-k * (np.asarray(t) ** 2 - t0**2) / 2)[..., None]


def _span_model(method, dtype, backend):
    """p = (t0, T, k) -> y at T (the last row) and at t0 (the first row)."""

    def model(p):
        y0 = backend.asarray(Y0, dtype)
        sol = solve(_f, (p[0], p[1]), y0, args=(p[2],), method=method, **OPTS[(method, dtype)])
        return ft.stack([sol.y[0, ...], sol.y[-1, ...]], axis=0)

    def exact(p):
        return np.stack([_exact(p[0], p[0], p[2]), _exact(p[1], p[0], p[2])])

    return model, exact


def _eval_model(method, dtype, backend):
    """p = (te1, te2, t0, k) -> y at the dual output times te1 < te2 inside (t0, 2)."""

    def model(p):
        y0 = backend.asarray(Y0, dtype)
        sol = solve(_f, (p[2], 2.0), y0, args=(p[3],), method=method, t_eval=p[0:2], **OPTS[(method, dtype)])
        return sol.y

    def exact(p):
        return _exact(p[0:2], p[2], p[3])

    return model, exact


P_SPAN = np.array([0.2, 1.45, 0.7])
P_EVAL = np.array([0.55, 1.3, 0.1, 0.9])
MODELS = {"span": (_span_model, P_SPAN), "eval": (_eval_model, P_EVAL)}


@pytest.mark.parametrize("method", ["RK45", "RK4", "Rodas4"])
def test_end_time_derivative_is_the_right_hand_side(method):
    # the example: d/dT exp(-T) at T = 1 is -exp(-1)
    opts = {"step": 0.01} if method == "RK4" else {"rtol": 1e-9, "atol": 1e-12} if method == "Rodas4" else {}
    d = ft.derivative(lambda T: solve(lambda t, y: -y, (0.0, T), np.ones(1), method=method, **opts).y[-1, 0])
    assert abs(float(d(1.0)) + math.exp(-1.0)) < 1e-6
    # a dual start time: d y(T) / d t0 = -Phi(T, t0) f(t0, y0) = exp(t0 - T) for y' = -y
    d0 = ft.derivative(
        lambda t0: solve(lambda t, y: -y, (t0, 1.0), np.ones(1), method=method, **opts).y[-1, 0]
    )
    assert abs(float(d0(0.25)) - math.exp(-0.75)) < 1e-6


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("method", ["RK45", "RK4"])
@pytest.mark.parametrize("which", ["span", "eval"])
def test_time_derivatives_against_finite_differences(which, method, dtype, backend):
    make, p64 = MODELS[which]
    model, exact = make(method, dtype, backend)
    rng = np.random.default_rng(zlib.crc32(f"time-{which}-{method}".encode()))
    v = rng.uniform(-1, 1, p64.shape)
    y, dy = ft.jvp(model, (backend.asarray(p64, dtype),), (backend.asarray(v, dtype),))
    assert dy.dtype == backend.dtype(dtype)
    assert_close(y, exact(p64), dtype, f"{which} {method} values")
    assert_close(dy, central_difference(exact, [p64], [v]), dtype, f"{which} {method} {dtype} {backend.name}")


@pytest.mark.parametrize("method", ["RK45", "RK4"])
def test_time_derivatives_batched_equal_single(method, backend):
    model, _ = _eval_model(method, "float64", backend)
    V = np.random.default_rng(zlib.crc32(b"time-batched")).normal(size=(3, P_EVAL.size))
    p = backend.asarray(P_EVAL)
    _, batched = ft.batched_jvp(model, (p,), (backend.asarray(V),))
    for i in range(3):
        _, single = ft.jvp(model, (p,), (backend.asarray(V[i]),))
        np.testing.assert_allclose(to_numpy(batched)[i], to_numpy(single), rtol=1e-12, atol=1e-14)


def test_scalar_end_time_broadcasts_over_a_state_grid():
    # one dual end time against a (2, 3) state: the tangent f(T, y(T)) has the state's shape
    y0 = np.arange(1.0, 7.0).reshape(2, 3)
    g = ft.derivative(lambda T: solve(lambda t, y: -y, (0.0, T), y0, rtol=1e-11, atol=1e-13).y[-1])
    np.testing.assert_allclose(to_numpy(g(0.8)), -y0 * math.exp(-0.8), rtol=1e-8)


def test_solution_times_carry_their_tangents():
    t = ft.jacfwd(lambda T: solve(lambda t, y: -y, (0.0, T), np.ones(1), method="RK4", step=0.3).t)(1.0)
    np.testing.assert_allclose(to_numpy(t), np.linspace(0, 1, t.shape[0]), atol=1e-15)
    t = ft.jacfwd(lambda T: solve(lambda t, y: -y, (0.0, T), np.ones(1)).t)(1.0)
    assert float(t[0]) == 0.0 and float(t[-1]) == 1.0


def test_mixed_time_and_parameter_derivative():
    # d^2 y(T) / dk dT for y' = -k y: d/dk (-k exp(-k T)) = (k T - 1) exp(-k T)
    def yT(k, T):
        return solve(lambda t, y, k: -k * y, (0.0, T), np.ones(1), args=(k,), rtol=1e-11, atol=1e-13).y[-1, 0]

    k, T = 0.7, 1.3
    d = ft.derivative(lambda k: ft.derivative(lambda T: yT(k, T))(T))(k)
    assert abs(float(d) - (k * T - 1) * math.exp(-k * T)) < 1e-6


def test_second_time_derivative_is_refused():
    f = ft.derivative(lambda T: solve(lambda t, y: -y, (0.0, T), np.ones(1)).y[-1, 0], order=2)
    with pytest.raises(_errors.NotDifferentiableError, match="more than one level"):
        f(1.0)


@pytest.mark.parametrize("method,opts", [("RK45", {}), ("RK4", {"step": 0.01})])
def test_nan_from_the_right_hand_side_stops_at_once(method, opts):
    def f(t, y):  # undefined after t = 1
        return np.sqrt(1.0 - t) * y

    start = time.perf_counter()
    with (
        pytest.raises(FloatingPointError, match=r"fun returned NaN at t=1\.0.*state y=\["),
        np.errstate(invalid="ignore"),
    ):
        solve(f, (0.0, 2.0), np.ones(2), method=method, **opts)
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize("method,opts", [("RK45", {}), ("RK4", {"step": 0.01})])
def test_inf_from_the_right_hand_side_stops_at_once(method, opts):
    def f(t, y):  # infinite from t = 1/2 on
        return y * (math.inf if t >= 0.5 else -1.0)

    start = time.perf_counter()
    with pytest.raises(FloatingPointError, match=r"fun returned an infinity at t=0\.[5-9]"):
        solve(f, (0.0, 1.0), np.ones(1), method=method, **opts)
    assert time.perf_counter() - start < 1.0


def test_too_many_steps_names_the_stiff_methods():
    with pytest.raises(RuntimeError, match="max_steps=300") as info:
        solve(lambda t, y: -1e6 * (y - np.cos(t)), (0.0, 1.0), np.ones(1), max_steps=300)
    for m in STIFF_METHODS:
        assert repr(m) in str(info.value)
    assert "method='auto'" in str(info.value)
