"""``ft.linalg.lu_factor`` / ``lu_solve``: values against SciPy, tangents against central
differences (float64 and float32, batched, vector and matrix right-hand sides) on every
backend, second derivatives against ``linalg.solve``, and the refused cases."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import scipy.linalg

import fwdtensor as ft
from fwdtensor.core import errors as _errors
from tests._util import assert_close, central_difference, to_numpy


def _draw(name: str, n: int, k: int | None):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    a = rng.normal(size=(n, n)) + n * np.eye(n) * 0.5
    a = a[rng.permutation(n)]  # so that pivoting matters
    shape = (n,) if k is None else (n, k)
    return a, rng.normal(size=shape), rng.normal(size=(n, n)), rng.normal(size=shape)


def _solve(a, b):
    return ft.linalg.lu_solve(ft.linalg.lu_factor(a), b)


@pytest.mark.parametrize("n", [1, 4, 30])  # 30 takes SciPy's (or torch's) LAPACK path
@pytest.mark.parametrize("k", [None, 3])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_lu_solve_tangent_against_finite_differences(n, k, dtype, backend):
    a, b, ta, tb = _draw(f"lu-{n}-{k}", n, k)
    y, dy = ft.jvp(
        _solve,
        (backend.asarray(a, dtype), backend.asarray(b, dtype)),
        (backend.asarray(ta, dtype), backend.asarray(tb, dtype)),
    )
    assert dy.dtype == backend.dtype(dtype)
    assert_close(y, np.linalg.solve(a, b), dtype, "value")
    assert_close(dy, central_difference(np.linalg.solve, [a, b], [ta, tb]), dtype, f"tangent {backend.name}")
    # only one argument moving
    _, da = ft.jvp(
        lambda a: _solve(a, backend.asarray(b, dtype)),
        (backend.asarray(a, dtype),),
        (backend.asarray(ta, dtype),),
    )
    assert_close(da, central_difference(lambda a: np.linalg.solve(a, b), [a], [ta]), dtype, "da only")


@pytest.mark.parametrize("n", [3, 30])
def test_lu_factor_matches_scipy_and_differentiates(n, backend):
    a, _, ta, _ = _draw(f"factor-{n}", n, None)
    (lu, piv), dlu = ft.jvp(lambda a: ft.linalg.lu_factor(a), (backend.asarray(a),), (backend.asarray(ta),))
    lu_ref, piv_ref = scipy.linalg.lu_factor(a)
    np.testing.assert_allclose(to_numpy(lu), lu_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(to_numpy(piv), piv_ref)
    assert_close(dlu[0], central_difference(lambda a: scipy.linalg.lu_factor(a)[0], [a], [ta]), "float64")
    assert dlu[1] is None or not np.any(to_numpy(dlu[1]))


def test_batched_directions_equal_single(backend):
    a, b, _, _ = _draw("lu-batched", 5, 2)
    rng = np.random.default_rng(zlib.crc32(b"lu-batched-dirs"))
    V = rng.normal(size=(3, 5, 5))
    f = lambda a: _solve(a, backend.asarray(b))  # noqa: E731
    _, batched = ft.batched_jvp(f, (backend.asarray(a),), (backend.asarray(V),))
    for i in range(3):
        _, single = ft.jvp(f, (backend.asarray(a),), (backend.asarray(V[i]),))
        np.testing.assert_allclose(to_numpy(batched)[i], to_numpy(single), rtol=1e-12, atol=1e-13)


def test_broadcast_constant_factor_dual_right_hand_side():
    # a plain factor against a dual b: the tangent is a^{-1} db
    a, b, _, tb = _draw("lu-const", 4, None)
    lu = ft.linalg.lu_factor(a)
    _, dx = ft.jvp(lambda b: ft.linalg.lu_solve(lu, b), (b,), (tb,))
    np.testing.assert_allclose(to_numpy(dx), np.linalg.solve(a, tb), rtol=1e-12)


def test_second_derivatives_match_solve():
    a, b, _, _ = _draw("lu-hess", 3, None)
    v = np.concatenate([a.ravel(), b])

    def via(solver):
        return ft.hessian(lambda v: ft.sum(solver(ft.reshape(v[:9], (3, 3)), v[9:]) ** 3))(v)

    np.testing.assert_allclose(to_numpy(via(_solve)), to_numpy(via(ft.linalg.solve)), rtol=1e-9, atol=1e-10)


def test_inputs_are_not_written_and_results_do_not_alias():
    a, b, _, _ = _draw("lu-alias", 4, None)
    a0, b0 = a.copy(), b.copy()
    lu, piv = ft.linalg.lu_factor(a)
    x = ft.linalg.lu_solve((lu, piv), b)
    np.testing.assert_array_equal(a, a0)
    np.testing.assert_array_equal(b, b0)
    assert not np.shares_memory(lu, a) and not np.shares_memory(x, b)


def test_refused_cases():
    with pytest.raises(ValueError, match="square matrix"):
        ft.linalg.lu_factor(np.ones((2, 3)))
    lu = ft.linalg.lu_factor(np.eye(2))
    with pytest.raises(_errors.NotDifferentiableError, match="trans=0 only"):
        ft.linalg.lu_solve(lu, np.ones(2), trans=1)
    with pytest.raises(ValueError, match="b must have shape"):
        ft.linalg.lu_solve(lu, np.ones(3))


@pytest.mark.parametrize("scale", [0.3, 3.0])  # without and with squaring
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_expm_against_scipy_and_finite_differences(scale, dtype, backend):
    rng = np.random.default_rng(zlib.crc32(f"expm-{scale}".encode()))
    a, ta = rng.normal(size=(4, 4)) * scale, rng.normal(size=(4, 4))
    y, dy = ft.jvp(ft.linalg.expm, (backend.asarray(a, dtype),), (backend.asarray(ta, dtype),))
    assert dy.dtype == backend.dtype(dtype)
    assert_close(y, scipy.linalg.expm(a), dtype, "expm value")
    assert_close(dy, central_difference(scipy.linalg.expm, [a], [ta]), dtype, f"expm tangent {backend.name}")


def test_expm_batched_directions_and_a_linear_ode():
    rng = np.random.default_rng(zlib.crc32(b"expm-batched"))
    a, V = rng.normal(size=(3, 3)), rng.normal(size=(3, 3, 3))
    _, batched = ft.batched_jvp(ft.linalg.expm, (a,), (V,))
    for i in range(3):
        _, single = ft.jvp(ft.linalg.expm, (a,), (V[i],))
        np.testing.assert_allclose(to_numpy(batched)[i], to_numpy(single), rtol=1e-12, atol=1e-13)
    # d/dt expm(t A) = A expm(t A)
    d = ft.derivative(lambda t: ft.linalg.expm(a * t))(0.7)
    np.testing.assert_allclose(to_numpy(d), a @ scipy.linalg.expm(0.7 * a), rtol=1e-9, atol=1e-12)
