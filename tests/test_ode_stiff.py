"""Stiff solvers: Rodas4 and method='auto' against closed forms and SciPy, sensitivities
against finite differences (closed forms, and tightly solved SciPy references for
Robertson's kinetics), tangents that converge as tolerances shrink, and error paths."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
import scipy.linalg
from scipy.integrate import solve_ivp

import fwdtensor as ft
from fwdtensor import sensitivity
from fwdtensor.ode import METHODS, STIFF_METHODS, solve
from tests._util import assert_close, central_difference, to_numpy
from tests.test_ode import PROBLEMS, TIMES

STIFF = {"float64": {"rtol": 1e-8, "atol": 1e-10}, "float32": {"rtol": 1e-5, "atol": 1e-7}}
K_ROB = np.array([0.04, 3e7, 1e4])


def _robertson(t, y, k):
    y1, y2, y3 = y[0], y[1], y[2]
    return ft.stack(
        [-k[0] * y1 + k[2] * y2 * y3, k[0] * y1 - k[1] * y2 * y2 - k[2] * y2 * y3, k[1] * y2 * y2]
    )


def _robertson_np(t, y, k):
    return [
        -k[0] * y[0] + k[2] * y[1] * y[2],
        k[0] * y[0] - k[1] * y[1] ** 2 - k[2] * y[1] * y[2],
        k[1] * y[1] ** 2,
    ]


def _model(name, method, dtype):
    fun, setup, _, _ = PROBLEMS[name]

    def model(p):
        y0, args = setup(p)
        return solve(fun, (0.0, TIMES[-1]), y0, args=args, method=method, t_eval=TIMES, **STIFF[dtype]).y

    return model


def test_methods_are_listed():
    assert set(STIFF_METHODS) <= set(METHODS) and "auto" in METHODS


@pytest.mark.parametrize("method", STIFF_METHODS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", ["logistic", "linear"])
def test_stiff_sensitivities_against_finite_differences(name, dtype, method, backend):
    if name == "linear" and backend.name != "numpy":
        pytest.skip("the two-state problem runs on NumPy only, to keep CI fast; logistic covers each backend")
    p64 = np.asarray(PROBLEMS[name][3])
    v = np.random.default_rng(zlib.crc32(f"rodas-{name}".encode())).uniform(-1, 1, p64.shape)
    y, dy = ft.jvp(_model(name, method, dtype), (backend.asarray(p64, dtype),), (backend.asarray(v, dtype),))
    assert dy.dtype == y.dtype == backend.dtype(dtype)
    assert_close(y, PROBLEMS[name][2](p64), dtype, f"{name} values")
    assert_close(
        dy, central_difference(PROBLEMS[name][2], [p64], [v]), dtype, f"{name} {dtype} {backend.name}"
    )


@pytest.mark.parametrize("method", STIFF_METHODS)
def test_batched_equals_single(method):
    p = np.asarray(PROBLEMS["logistic"][3])
    V = np.random.default_rng(zlib.crc32(b"rodas-batched")).normal(size=(3, p.size))
    model = _model("logistic", method, "float32")  # loose tolerances: consistency only
    _, batched = ft.batched_jvp(model, (p,), (V,))
    for i in range(3):
        _, single = ft.jvp(model, (p,), (V[i],))
        np.testing.assert_allclose(to_numpy(batched)[i], to_numpy(single), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("method", STIFF_METHODS)
def test_steps_do_not_depend_on_tangents(method):
    k = np.array([0.5, 2.0])
    plain = solve(lambda t, y, k: -k * y, (0.0, 3.0), np.ones(2), args=(k,), method=method)
    seen = {}

    def f(k):
        sol = solve(lambda t, y, k: -k * y, (0.0, 3.0), np.ones(2), args=(k,), method=method)
        seen.update(nsteps=sol.nsteps, nrejected=sol.nrejected, t=to_numpy(sol.t))
        return sol.y

    ft.jacfwd(f)(k)
    assert (seen["nsteps"], seen["nrejected"]) == (plain.nsteps, plain.nrejected)
    np.testing.assert_array_equal(seen["t"], to_numpy(plain.t))


@pytest.mark.parametrize("method", STIFF_METHODS)
def test_dense_output_and_non_autonomous_right_hand_side(method):
    # y' = -t y + cos t: dense output at t_eval (third order) and d f / d t in the stages
    f = lambda t, y: -t * y + math.cos(t)  # noqa: E731 - math.cos turns a dual time into a float
    ts = np.linspace(0.0, 3.0, 11)
    sol = solve(f, (0.0, 3.0), np.ones(1), method=method, t_eval=ts, rtol=1e-8, atol=1e-10)
    ref = solve_ivp(lambda t, y: -t * y + np.cos(t), (0, 3), [1.0], t_eval=ts, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(to_numpy(sol.y)[:, 0], ref.y[0], rtol=1e-6, atol=1e-8)


def _robertson_jac_np(t, y, k):
    return [
        [-k[0], k[2] * y[2], k[2] * y[1]],
        [k[0], -2 * k[1] * y[1] - k[2] * y[2], -k[2] * y[1]],
        [0.0, 2 * k[1] * y[1], 0.0],
    ]


def _robertson_reference(k, t1, rtol=1e-10, atol=1e-14):
    """SciPy's LSODA with the exact Jacobian and tight tolerances: an independent reference."""
    r = solve_ivp(
        _robertson_np,
        (0.0, t1),
        [1.0, 0.0, 0.0],
        args=(k,),
        method="LSODA",
        rtol=rtol,
        atol=atol,
        jac=_robertson_jac_np,
    )
    assert r.success
    return r.y[:, -1]


@pytest.mark.parametrize("method", STIFF_METHODS)
def test_robertson_with_rate_constant_sensitivities(method):
    # values against SciPy's Radau solved tightly; d y(4e5) / d k against central differences of
    # that reference, with relative steps in log k
    t1 = 4e5
    sol_J = ft.jacfwd(
        lambda k: solve(
            _robertson,
            (0.0, t1),
            np.array([1.0, 0.0, 0.0]),
            args=(k,),
            method=method,
            rtol=1e-6,
            atol=1e-10,
        ).y[-1]
    )
    J = to_numpy(sol_J(K_ROB))
    y = _robertson_reference(K_ROB, t1)
    ref = np.empty((3, 3))
    for j in range(3):
        e = np.zeros(3)
        e[j] = K_ROB[j] * 1e-4
        ref[:, j] = (_robertson_reference(K_ROB + e, t1) - _robertson_reference(K_ROB - e, t1)) / (2 * e[j])
    sol = solve(
        _robertson,
        (0.0, t1),
        np.array([1.0, 0.0, 0.0]),
        args=(K_ROB,),
        method=method,
        rtol=1e-6,
        atol=1e-10,
    )
    np.testing.assert_allclose(to_numpy(sol.y)[-1], y, rtol=2e-4, atol=1e-10)
    # normalised sensitivities k_j / y_i dy_i/dk_j agree to 1e-3 of the largest in each row
    norm = lambda S: S * K_ROB[None, :] / np.maximum(np.abs(y), 1e-12)[:, None]  # noqa: E731
    got, want = norm(J), norm(ref)
    for i in range(3):
        assert np.max(np.abs(got[i] - want[i])) <= 2e-3 * np.max(np.abs(want[i])), (i, got[i], want[i])
    assert sol.nsteps < 500
    if method == "Rodas4":  # one Jacobian a step (a rejected step reuses it)
        assert sol.njev == sol.nsteps
    else:  # BDF reuses its Jacobian across steps while Newton converges
        assert sol.njev < sol.nsteps / 10


@pytest.mark.parametrize("method", STIFF_METHODS)
def test_tangents_converge_as_tolerances_shrink(method):
    # d y(T) / d k of a stiff linear system with the exact answer: the error falls with rtol
    A = np.array([[-1000.0, 1.0], [0.0, -0.5]])

    def f(t, y, k):
        return ft.matmul(ft.asarray(A), y) * k

    T, k = 2.0, 1.3
    errs = []
    for rtol in (1e-3, 1e-5, 1e-7):
        d = ft.derivative(
            lambda k, r=rtol: solve(
                f, (0.0, T), np.ones(2), args=(k,), method=method, rtol=r, atol=r * 1e-2
            ).y[-1]
        )(k)
        exact = scipy.linalg.expm(A * k * T) @ (A * T) @ np.ones(2)
        errs.append(np.max(np.abs(to_numpy(d) - exact)))
    assert errs[-1] < 1e-4 and all(b < a for a, b in zip(errs, errs[1:])), errs


def test_van_der_pol_stiff():
    mu = 1000.0

    def vdp(t, y):
        return ft.stack([y[1], mu * (1 - y[0] ** 2) * y[1] - y[0]])

    sol = solve(vdp, (0.0, 300.0), np.array([2.0, 0.0]), method="Rodas4", rtol=1e-6, atol=1e-8)
    ref = solve_ivp(
        lambda t, y: [y[1], mu * (1 - y[0] ** 2) * y[1] - y[0]],
        (0, 300.0),
        [2.0, 0.0],
        method="Radau",
        rtol=1e-10,
        atol=1e-12,
    )
    np.testing.assert_allclose(to_numpy(sol.y)[-1], ref.y[:, -1], rtol=1e-4, atol=1e-6)
    assert sol.nsteps < 300


def test_auto_switches_on_stiffness_and_not_otherwise():
    sol = solve(
        _robertson,
        (0.0, 40.0),
        np.array([1.0, 0.0, 0.0]),
        args=(K_ROB,),
        method="auto",
        rtol=1e-6,
        atol=1e-10,
    )
    assert sol.method == "auto(RK45->Rodas4)" and sol.nsteps < 500
    np.testing.assert_allclose(to_numpy(sol.y)[-1], _robertson_reference(K_ROB, 40.0), rtol=1e-4, atol=1e-10)
    calm = solve(lambda t, y: -y, (0.0, 2.0), np.ones(2), method="auto")
    assert calm.method == "auto(RK45)"
    # t_eval across the switch: every requested time once, in order
    ts = np.geomspace(1e-3, 40.0, 9)
    sol = solve(_robertson, (0.0, 40.0), np.array([1.0, 0.0, 0.0]), args=(K_ROB,), method="auto", t_eval=ts)
    np.testing.assert_allclose(to_numpy(sol.t), ts)


def test_user_jacobian_gives_the_same_steps():
    def jac(t, y, k):
        y1, y2, y3 = y[0], y[1], y[2]
        z = 0.0 * y1
        return ft.stack(
            [
                ft.stack([-k[0] + z, k[2] * y3, k[2] * y2]),
                ft.stack([k[0] + z, -2 * k[1] * y2 - k[2] * y3, -k[2] * y2]),
                ft.stack([z, 2 * k[1] * y2, z]),
            ]
        )

    opts = dict(args=(K_ROB,), method="Rodas4", rtol=1e-6, atol=1e-10)
    a = solve(_robertson, (0.0, 40.0), np.array([1.0, 0.0, 0.0]), **opts)
    b = solve(_robertson, (0.0, 40.0), np.array([1.0, 0.0, 0.0]), jac=jac, **opts)
    assert a.nsteps == b.nsteps
    np.testing.assert_allclose(to_numpy(a.y), to_numpy(b.y), rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("method", STIFF_METHODS)
def test_ode_sensitivity_with_a_stiff_method(method):
    times = np.array([0.0, 1.0, 10.0, 40.0])
    s = sensitivity.ode_sensitivity(
        _robertson, np.array([1.0, 0.0, 0.0]), times, K_ROB, method=method, rtol=1e-7, atol=1e-11
    )
    S = to_numpy(s.jacobian)
    assert S.shape[:2] == (4, 3)
    e = np.zeros(3)
    e[0] = K_ROB[0] * 1e-4
    fd = (_robertson_reference(K_ROB + e, 40.0) - _robertson_reference(K_ROB - e, 40.0)) / (2 * e[0])
    np.testing.assert_allclose(S[-1, :, 0], fd, rtol=2e-3, atol=1e-9)


@pytest.mark.parametrize(
    "method,match",
    [("Rodas4", "Rodas4: fun returned NaN or inf"), ("BDF", "BDF: fun returned NaN or inf")],
)
def test_nan_in_a_stiff_solve_is_reported(method, match):
    with pytest.raises(FloatingPointError, match=match), np.errstate(invalid="ignore"):
        solve(lambda t, y: y * float("nan"), (0.0, 1.0), np.ones(2), method=method)


def test_stiff_options_are_checked():
    with pytest.raises(ValueError, match="fixed step of method='RK4'"):
        solve(lambda t, y: -y, (0.0, 1.0), np.ones(1), method="Rodas4", step=0.1)
    with pytest.raises(ValueError, match="jac and jac_sparsity are for the stiff methods"):
        solve(lambda t, y: -y, (0.0, 1.0), np.ones(1), jac=lambda t, y: -np.eye(1))
    with pytest.raises(TypeError, match="jac must be a function"):
        solve(lambda t, y: -y, (0.0, 1.0), np.ones(1), method="Rodas4", jac=np.eye(1))
