"""ODE solvers that differentiate: solutions against closed forms, forward sensitivities
against finite differences of the exact solution (float64 and float32), batched against
single tangents, step-size control that ignores tangents, and every error path."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg

import fwdtensor as ft
from fwdtensor.ode import solve
from tests._util import assert_close, central_difference, to_numpy

TIMES = [0.0, 0.35, 1.0, 1.7, 2.5]


# --------------------------------------------------------------- problems
# Each problem: a right-hand side, how parameters p (1-D) become (y0, args), and the exact
# solution at TIMES as a NumPy function of p (for values and finite differences).
def _decay(t, y, k):
    return -k * y


def _decay_setup(p):
    return p[0:3], (p[3:6],)


def _decay_exact(p):
    t = np.asarray(TIMES)[:, None]
    return p[0:3] * np.exp(-p[3:6] * t)


def _logistic(t, y, r, K):
    return r * y * (1.0 - y / K)


def _logistic_setup(p):
    return p[0], (p[1], p[2])


def _logistic_exact(p):
    n0, r, K = p
    return K / (1 + (K / n0 - 1) * np.exp(-r * np.asarray(TIMES)))


def _linear(t, y, A):
    return ft.matmul(A, y)


def _linear_setup(p):
    return p[0:2], (ft.reshape(p[2:6], (2, 2)),)


def _linear_exact(p):
    A = p[2:6].reshape(2, 2)
    return np.stack([scipy.linalg.expm(A * t) @ p[0:2] for t in TIMES])


PROBLEMS = {
    "decay": (_decay, _decay_setup, _decay_exact, [1.0, 2.0, 0.5, 0.5, 1.0, 2.0]),
    "logistic": (_logistic, _logistic_setup, _logistic_exact, [0.5, 1.2, 10.0]),
    "linear": (_linear, _linear_setup, _linear_exact, [1.0, 0.5, -0.5, 1.0, -1.0, -0.3]),
}
SETTINGS = {  # (method, options) per dtype: tight enough that the solver error is below the test tolerance
    ("RK45", "float64"): {"rtol": 1e-10, "atol": 1e-12},
    ("RK45", "float32"): {"rtol": 1e-5, "atol": 1e-7},
    ("RK4", "float64"): {"step": 0.02},
    ("RK4", "float32"): {"step": 0.05},
    ("RK45", "coarse"): {"rtol": 1e-4},  # where only consistency matters (batched vs single)
    ("RK4", "coarse"): {"step": 0.25},
}


def _model(name, method, dtype):
    fun, setup, _, _ = PROBLEMS[name]
    opts = SETTINGS[(method, dtype)]

    def model(p):
        y0, args = setup(p)
        return solve(fun, (0.0, TIMES[-1]), y0, args=args, method=method, t_eval=TIMES, **opts).y

    return model


def _params(backend, name, dtype):
    return backend.asarray(np.asarray(PROBLEMS[name][3]), dtype)


CASES = [(n, m) for n in PROBLEMS for m in ("RK45", "RK4")]


@pytest.mark.parametrize("name,method", CASES)
def test_solution_matches_closed_form(name, method, backend):
    p = _params(backend, name, "float64")
    y = _model(name, method, "float64")(p)
    assert_close(y, PROBLEMS[name][2](np.asarray(PROBLEMS[name][3])), "float64", f"{name} {method}")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name,method", CASES)
def test_sensitivity_against_finite_differences(name, method, dtype, backend):
    # The reference differentiates the exact solution; the solver's error is below tolerance.
    rng = np.random.default_rng(len(name) + len(method))
    p64 = np.asarray(PROBLEMS[name][3])
    v = rng.uniform(-1, 1, p64.shape)
    y, dy = ft.jvp(
        _model(name, method, dtype), (_params(backend, name, dtype),), (backend.asarray(v, dtype),)
    )
    assert dy.dtype == y.dtype == backend.dtype(dtype)
    assert tuple(dy.shape) == (len(TIMES), *PROBLEMS[name][2](p64).shape[1:])
    ref = central_difference(PROBLEMS[name][2], [p64], [v])
    assert_close(dy, ref, dtype, f"{name} {method} {dtype} on {backend.name}")


@pytest.mark.parametrize("name,method", CASES)
def test_batched_equals_single_tangents(name, method, backend):
    rng = np.random.default_rng(3)
    p = _params(backend, name, "float64")
    V = rng.normal(size=(3, p.shape[0]))
    model = _model(name, method, "coarse")
    _, batched = ft.batched_jvp(model, (p,), (backend.asarray(V),))
    for i in range(3):
        _, single = ft.jvp(model, (p,), (backend.asarray(V[i]),))
        np.testing.assert_allclose(to_numpy(batched)[i], to_numpy(single), rtol=1e-12, atol=1e-14)


def test_steps_do_not_depend_on_tangents(backend):
    # Step-size control reads primals only: with or without tangents, the same grid.
    p = _params(backend, "logistic", "float64")

    def run(q):
        y0, args = _logistic_setup(q)
        return solve(_logistic, (0.0, 3.0), y0, args=args, rtol=1e-6)

    plain = run(p)
    out = {}

    def grid(q):
        sol = run(q)
        out["sol"] = sol
        return sol.y

    ft.jacfwd(grid)(p)
    dual = out["sol"]
    assert isinstance(dual.y, ft.DualTensor) and not isinstance(plain.y, ft.DualTensor)
    assert (dual.nsteps, dual.nrejected, dual.nfev) == (plain.nsteps, plain.nrejected, plain.nfev)
    np.testing.assert_array_equal(to_numpy(dual.t), to_numpy(plain.t))


def test_t_eval_does_not_change_steps():
    p = np.asarray(PROBLEMS["logistic"][3])
    y0, args = _logistic_setup(p)
    every = solve(_logistic, (0.0, 2.5), y0, args=args, rtol=1e-9)
    some = solve(_logistic, (0.0, 2.5), y0, args=args, rtol=1e-9, t_eval=TIMES)
    assert every.nsteps == some.nsteps and every.nsteps > len(TIMES)
    np.testing.assert_allclose(to_numpy(every.t)[[0, -1]], [0.0, 2.5])


def test_dense_output_is_fourth_order():
    # Interpolation error between steps shrinks like the step's error, not like a cubic's.
    p = np.asarray(PROBLEMS["logistic"][3])
    y0, args = _logistic_setup(p)
    ts = np.linspace(0.0, 2.5, 41)
    errs = []
    for rtol in (1e-6, 1e-9):
        sol = solve(_logistic, (0.0, 2.5), y0, args=args, rtol=rtol, atol=rtol * 1e-2, t_eval=ts)
        exact = p[2] / (1 + (p[2] / p[0] - 1) * np.exp(-p[1] * ts))
        errs.append(np.max(np.abs(to_numpy(sol.y) - exact)))
    assert errs[0] < 1e-5 and errs[1] < 1e-7, errs  # a cubic Hermite interpolant gives ~5e-7 at 1e-9


def test_rk4_converges_with_order_four():
    p = np.asarray(PROBLEMS["decay"][3])
    y0, args = _decay_setup(p)
    exact = _decay_exact(p)[-1]
    e1, e2 = (
        np.max(np.abs(to_numpy(solve(_decay, (0, 2.5), y0, args=args, method="RK4", step=h).y[-1]) - exact))
        for h in (0.1, 0.05)
    )
    assert 13 < e1 / e2 < 19, (e1, e2)


def test_rk4_without_t_eval_stores_every_step():
    sol = solve(_decay, (0.0, 1.0), np.ones(2), args=(np.ones(2),), method="RK4", step=0.3)
    np.testing.assert_allclose(to_numpy(sol.t), [0.0, 0.25, 0.5, 0.75, 1.0])  # 4 equal steps <= 0.3
    assert sol.nsteps == 4 and sol.nfev == 16 and to_numpy(sol.y).shape == (5, 2)


def test_initial_state_and_parameters_together():
    # argnums over y0 and a rate: d y(t) / d y0 = exp(-k t), d y(t) / d k = -t y0 exp(-k t)
    def final(y0, k):
        return solve(_decay, (0.0, 2.0), y0, args=(k,), rtol=1e-11, atol=1e-13).y[-1]

    y0, k = np.array([1.5]), np.array([0.7])
    Jy, Jk = ft.jacfwd(final, argnums=(0, 1))(y0, k)
    np.testing.assert_allclose(Jy, [[math.exp(-1.4)]], rtol=1e-9)
    np.testing.assert_allclose(Jk, [[-2.0 * 1.5 * math.exp(-1.4)]], rtol=1e-9)


def test_second_derivative_through_the_solver():
    # d^2/dk^2 of y0 exp(-k t) is t^2 y0 exp(-k t); forward over forward through RK45.
    def final(k):
        return solve(_decay, (0.0, 2.0), np.ones(1), args=(k,), rtol=1e-11, atol=1e-13).y[-1, 0]

    H = ft.hessian(final)(np.array([0.7]))
    np.testing.assert_allclose(H, [[4.0 * math.exp(-1.4)]], rtol=1e-7)


def test_constant_right_hand_side_with_dual_state():
    # fun ignores y and returns a plain array: the state stays a dual of the same level
    sol_y = ft.jacfwd(lambda y0: solve(lambda t, y: np.ones(2), (0.0, 1.0), y0, rtol=1e-8).y[-1])(np.zeros(2))
    np.testing.assert_allclose(sol_y, np.eye(2))


def test_solution_stays_on_backend(backend):
    p = _params(backend, "decay", "float32")
    sol = solve(_decay, (0.0, 1.0), p[0:3], args=(p[3:6],), rtol=1e-5)
    assert type(sol.y) is type(p) and type(sol.t) is type(p)
    assert sol.y.dtype == sol.t.dtype == backend.dtype("float32")


# ------------------------------------------------------------------ errors
def _ok(t, y):
    return -y


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        ({"method": "RK4", "step": 0.0}, ValueError, "step must be a positive"),
        ({"method": "RK4", "step": -0.1}, ValueError, "step must be a positive"),
        ({"method": "RK4", "step": math.nan}, ValueError, "step must be a positive"),
        ({"method": "RK4", "step": True}, TypeError, "step must be a positive number"),
        ({"method": "RK4"}, ValueError, "needs a fixed step size"),
        ({"step": 0.1}, ValueError, "fixed step of method='RK4'"),
        ({"method": "euler"}, ValueError, "unknown method 'euler'"),
        ({"rtol": 0.0}, ValueError, "rtol must be a positive"),
        ({"atol": -1e-9}, ValueError, "atol must be a positive"),
        ({"first_step": 0.0}, ValueError, "first_step must be a positive"),
        ({"max_step": -1.0}, ValueError, "max_step must be a positive"),
        ({"max_steps": 0}, ValueError, "max_steps must be a positive integer"),
        ({"t_eval": [0.5, 0.2]}, ValueError, "strictly increasing"),
        ({"t_eval": [0.5, 3.0]}, ValueError, "within t_span"),
        ({"t_eval": []}, ValueError, "t_eval is empty"),
        ({"args": [1.0]}, TypeError, "args must be a tuple"),
    ],
)
def test_bad_options_are_refused(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        solve(_ok, (0.0, 1.0), np.ones(2), **kwargs)


@pytest.mark.parametrize(
    "t_span,match",
    [((1.0, 0.0), "must be increasing"), ((0.0, math.inf), "must be finite"), ((0.0,), "pair")],
)
def test_bad_time_span(t_span, match):
    with pytest.raises((ValueError, TypeError), match=match):
        solve(_ok, t_span, np.ones(2))


def test_fun_with_the_wrong_shape():
    with pytest.raises(
        ValueError, match=r"fun returned shape \(3,\) at t=0.0 but the state has shape \(2,\)"
    ):
        solve(lambda t, y: np.ones(3), (0.0, 1.0), np.ones(2))
    with pytest.raises(TypeError, match="fun must return an array"):
        solve(lambda t, y: 1.0, (0.0, 1.0), np.ones(2))


def test_integer_initial_state():
    with pytest.raises(TypeError, match="real floating dtype"):
        solve(_ok, (0.0, 1.0), np.ones(2, dtype=np.int64))


def test_blow_up_is_reported():
    # y' = y^2 from y(0) = 1 reaches infinity at t = 1
    with pytest.raises(FloatingPointError, match="step size fell below"):
        solve(lambda t, y: y * y, (0.0, 2.0), np.ones(1))
    with (
        pytest.raises(FloatingPointError, match="fun returned an infinity at t="),
        np.errstate(over="ignore"),
    ):
        solve(lambda t, y: y * y, (0.0, 2.0), np.ones(1), method="RK4", step=0.25)


def test_max_steps_is_reported():
    with pytest.raises(RuntimeError, match="max_steps=5"):
        solve(_ok, (0.0, 100.0), np.ones(2), max_steps=5, rtol=1e-10)
    with pytest.raises(ValueError, match="more than max_steps"):
        solve(_ok, (0.0, 1.0), np.ones(2), method="RK4", step=1e-3, max_steps=10)


def test_doctest_examples():
    import doctest

    import fwdtensor.ode

    assert doctest.testmod(fwdtensor.ode).failed == 0
