"""Reductions and statistics, table-driven (see ``tests/test_manipulation.py`` for the
checker): products and cumulative products with one and several zeros, max/min ties,
var/std with ``correction``, diff with dual ``prepend``/``append``, every ``axis``/``keepdims``
form, errors from the backend, and nested derivatives (Hessians) of products."""

from __future__ import annotations

import numpy as np
import pytest

import fwdtensor as ft
from tests._util import central_difference, is_constant, to_numpy
from tests.test_manipulation import Case, check_case, check_same_error, params

AXES = [None, 0, -1, (0, 2), (0, 1, 2), ()]


def _reductions() -> list:
    out = []
    for name in ("sum", "prod", "mean", "max", "min", "var", "std"):
        for axis in AXES:
            if axis == () and name in ("max", "min", "var", "std", "mean"):
                continue  # an empty reduction: the backends disagree on it
            for keepdims in (False, True):
                fn = lambda ns, bk, x, name=name, axis=axis, k=keepdims: getattr(ns, name)(
                    x, axis=axis, keepdims=k
                )
                out.append(Case(f"{name}-{axis}-{keepdims}", fn, ((2, 3, 4),)))
    return out


CASES = _reductions() + [
    Case("prod-one-zero", lambda ns, bk, x: ns.prod(x, axis=-1), ((3, 4),), "zeros"),
    Case("prod-zeros-all", lambda ns, bk, x: ns.prod(x), ((2, 3),), "zeros"),
    Case("prod-zeros-tuple", lambda ns, bk, x: ns.prod(x, axis=(0, 2), keepdims=True), ((2, 2, 3),), "zeros"),
    Case("prod-0d", lambda ns, bk, x: ns.prod(x), ((),)),
    Case("prod-1", lambda ns, bk, x: ns.prod(x, axis=0), ((1, 3),)),
    Case("sum-dtype", lambda ns, bk, x: ns.sum(x, axis=0, dtype=bk.float64), ((3, 2),)),
    Case("prod-dtype", lambda ns, bk, x: ns.prod(x, axis=1, dtype=bk.float64), ((3, 4),), "zeros"),
    Case("cumulative_sum-dtype", lambda ns, bk, x: ns.cumulative_sum(x, axis=0, dtype=bk.float64), ((3, 2),)),
    Case(
        "cumulative_prod-dtype", lambda ns, bk, x: ns.cumulative_prod(x, axis=1, dtype=bk.float64), ((2, 5),)
    ),
    Case("var-correction", lambda ns, bk, x: ns.var(x, axis=1, correction=1), ((3, 4),)),
    Case("std-correction", lambda ns, bk, x: ns.std(x, axis=(0, 1), correction=2, keepdims=True), ((3, 4),)),
    Case("max-1d", lambda ns, bk, x: ns.max(x), ((5,),)),
    Case("cumulative_sum", lambda ns, bk, x: ns.cumulative_sum(x, axis=1)),
    Case("cumulative_sum-1d", lambda ns, bk, x: ns.cumulative_sum(x), ((5,),)),
    Case("cumulative_sum-init", lambda ns, bk, x: ns.cumulative_sum(x, axis=0, include_initial=True)),
    Case("cumulative_prod", lambda ns, bk, x: ns.cumulative_prod(x, axis=1), ((3, 7),)),
    Case("cumulative_prod-zeros", lambda ns, bk, x: ns.cumulative_prod(x, axis=-1), ((3, 6),), "zeros"),
    Case("cumulative_prod-axis0", lambda ns, bk, x: ns.cumulative_prod(x, axis=0), ((5, 2, 3),), "zeros"),
    Case("cumulative_prod-1d", lambda ns, bk, x: ns.cumulative_prod(x), ((9,),), "zeros"),
    Case(
        "cumulative_prod-init",
        lambda ns, bk, x: ns.cumulative_prod(x, axis=1, include_initial=True),
        ((2, 5),),
        "zeros",
    ),
    Case("cumulative_prod-len1", lambda ns, bk, x: ns.cumulative_prod(x, axis=1), ((3, 1),)),
    Case("diff", lambda ns, bk, x: ns.diff(x)),
    Case("diff-n2-axis0", lambda ns, bk, x: ns.diff(x, axis=0, n=2), ((4, 3),)),
    Case("diff-prepend-dual", lambda ns, bk, x, p: ns.diff(x, axis=1, prepend=p), ((3, 4), (3, 2))),
    Case("diff-append-dual", lambda ns, bk, x, a: ns.diff(x, axis=0, n=2, append=a), ((3, 4), (1, 4))),
    Case(
        "diff-both-dual",
        lambda ns, bk, x, p, a: ns.diff(x, axis=-1, prepend=p, append=a),
        ((2, 3), (2, 1), (2, 2)),
    ),
    Case("diff-prepend-const", lambda ns, bk, x: ns.diff(x, axis=1, prepend=bk.zeros((3, 1), dtype=x.dtype))),
    Case(
        "diff-only-append-dual",
        lambda ns, bk, a: ns.diff(bk.ones((2, 3), dtype=a.dtype), append=a),
        ((2, 2),),
    ),
]


@pytest.mark.parametrize("case,dtype", params(CASES))
def test_statistical(case, dtype, backend):
    check_case(case, dtype, backend)


# --------------------------------------------------------------- conventions
def test_prod_with_zeros_is_exact(backend):
    x = np.array([[2.0, 0.0, 3.0], [0.0, 0.0, 5.0], [1.0, 2.0, 4.0]])
    d = ft.DualTensor(backend.asarray(x), backend.asarray(np.ones((3, 3))))
    # d/dt prod(x + t) at t = 0: sum over i of the product of the others
    np.testing.assert_array_equal(to_numpy(ft.prod(d, axis=1).tangent), [6.0, 0.0, 8.0 + 4.0 + 2.0])
    cp = ft.cumulative_prod(d, axis=1)
    np.testing.assert_array_equal(to_numpy(cp.tangent), [[1.0, 2.0, 6.0], [1.0, 0.0, 0.0], [1.0, 3.0, 14.0]])


def test_max_min_ties_share_the_tangent(backend):
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    v = np.array([[5.0, 1.0, 2.0], [3.0, 6.0, 9.0]])
    d = ft.DualTensor(backend.asarray(x), backend.asarray(v))
    np.testing.assert_allclose(to_numpy(ft.max(d, axis=1).tangent), [1.5, 6.0])
    np.testing.assert_allclose(to_numpy(ft.min(d, axis=1).tangent), [5.0, 6.0])
    np.testing.assert_allclose(to_numpy(ft.max(d).tangent), 1.5)


def test_std_at_a_constant_input_has_slope_zero(backend):
    d = ft.DualTensor(backend.asarray(np.full((2, 3), 2.0)), backend.asarray(np.arange(6.0).reshape(2, 3)))
    out = ft.std(d, axis=1)
    np.testing.assert_array_equal(to_numpy(out.primal), [0.0, 0.0])
    np.testing.assert_array_equal(to_numpy(out.tangent), [0.0, 0.0])


def test_all_any_are_boolean_constants(backend):
    d = ft.DualTensor(backend.asarray(np.array([[0.0, 1.0], [2.0, 3.0]])), backend.asarray(np.ones((2, 2))))
    for name in ("all", "any"):
        for kw in ({}, {"axis": 0}, {"axis": (0, 1), "keepdims": True}):
            out = getattr(ft, name)(d, **kw)
            assert is_constant(out)
            np.testing.assert_array_equal(to_numpy(out), to_numpy(getattr(backend.xp, name)(d.primal, **kw)))


# -------------------------------------------------------------------- errors
ERRORS = [
    Case(f"{name}-axis", lambda ns, bk, x, name=name: getattr(ns, name)(x, axis=2))
    for name in ("sum", "prod", "mean", "max", "min", "var", "std", "cumulative_sum", "cumulative_prod")
] + [
    Case("sum-tuple-axis", lambda ns, bk, x: ns.sum(x, axis=(0, -3))),
    Case("diff-axis", lambda ns, bk, x: ns.diff(x, axis=3)),
    Case("diff-prepend-shape", lambda ns, bk, x: ns.diff(x, axis=1, prepend=bk.zeros((2, 1), dtype=x.dtype))),
    Case("cumulative_sum-2d-none", lambda ns, bk, x: ns.cumulative_sum(x)),
]


@pytest.mark.parametrize("case", ERRORS, ids=str)
def test_errors_are_the_backends(case, backend):
    check_same_error(backend, case.fn, np.ones((3, 4)))


# ------------------------------------------------------ nested derivatives
def _hessian_against_jacobian_differences(f, x: np.ndarray, rng: np.random.Generator) -> None:
    """The Hessian times a direction equals the central difference of the Jacobian."""
    v = rng.normal(size=x.shape)
    hv = np.tensordot(to_numpy(ft.hessian(f)(x)), v, axes=v.ndim)
    ref = central_difference(lambda y: to_numpy(ft.jacfwd(f)(y)), [x], [v], h=1e-4)
    np.testing.assert_allclose(hv, ref, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "name,f",
    [
        ("prod", lambda x: ft.prod(x)),
        ("prod-axis", lambda x: ft.sum(ft.prod(x, axis=1) ** 2)),
        ("cumulative_prod", lambda x: ft.sum(ft.cumulative_prod(x, axis=1) * ft.cumulative_prod(x, axis=1))),
        ("var", lambda x: ft.sum(ft.var(x, axis=0) * ft.mean(x, axis=0))),
        ("max", lambda x: ft.sum(ft.max(x, axis=1) ** 3)),
    ],
)
@pytest.mark.parametrize("zeros", [False, True])
def test_hessian(name, f, zeros):
    rng = np.random.default_rng(4)
    x = rng.uniform(0.5, 1.5, (3, 4)) * rng.choice([-1, 1], (3, 4))
    if zeros and name.startswith(("prod", "cumulative")):
        x[0, 1] = x[1, 1] = x[1, 3] = 0.0  # one zero in row 0, two in row 1
    _hessian_against_jacobian_differences(f, x, rng)


def test_hessian_of_prod_with_zeros_is_exact():
    x = np.array([2.0, 0.0, 3.0, 0.0])
    h = to_numpy(ft.hessian(lambda y: ft.prod(y))(x))
    want = np.zeros((4, 4))
    want[1, 3] = want[3, 1] = 6.0  # the only product of the others without a zero
    np.testing.assert_array_equal(h, want)


def test_hessian_on_every_backend(backend):
    x = backend.asarray(np.array([[1.0, 0.0, 2.0], [0.5, -1.0, 3.0]]))
    h = to_numpy(ft.hessian(lambda y: ft.sum(ft.cumulative_prod(ft.prod(y, axis=0), axis=0)))(x))
    ref = to_numpy(ft.hessian(lambda y: ft.sum(ft.cumulative_prod(ft.prod(y, axis=0), axis=0)))(to_numpy(x)))
    np.testing.assert_allclose(h, ref, rtol=1e-12)
    assert np.any(h != 0)
