"""Searching, sorting and set functions on duals (checker in ``tests/test_manipulation.py``):
``where`` in both branches with scalars and broadcasting, ``sort`` (stable, descending,
every axis), the ``unique_*`` family (values dual, other fields integer constants, the
backend's result types), and the index-valued functions returning constants equal to the
backend's."""

from __future__ import annotations

import numpy as np
import pytest

import fwdtensor as ft
from tests._util import central_difference, is_constant, to_numpy
from tests.test_manipulation import Case, check_case, check_same_error, params

CASES = [
    Case("where", lambda ns, bk, x, y: ns.where(x > 0, x, y), ((3, 4), (3, 4))),
    Case("where-broadcast", lambda ns, bk, x, y: ns.where(x > 0, x, y), ((3, 1), (4,))),
    Case(
        "where-cond-broadcast", lambda ns, bk, x: ns.where(bk.asarray([True, False, True]), x, 0.5), ((2, 3),)
    ),
    Case("where-const-left", lambda ns, bk, y: ns.where(y > 0, bk.ones((3, 4), dtype=y.dtype), y), ((3, 4),)),
    Case("where-scalar-left", lambda ns, bk, y: ns.where(y < 0, 2.0, y), ((3, 4),)),
    Case("where-scalar-right", lambda ns, bk, x: ns.where(x < 0, x, -1.0), ((2, 3),)),
    Case("where-cond-wider", lambda ns, bk, x: ns.where(bk.ones((2, 3), dtype=bk.bool), x, x), ((3,),)),
    Case("sort", lambda ns, bk, x: ns.sort(x), ((3, 5),), "steps"),
    Case("sort-axis0", lambda ns, bk, x: ns.sort(x, axis=0), ((4, 3),), "steps"),
    Case("sort-desc", lambda ns, bk, x: ns.sort(x, axis=1, descending=True), ((2, 4, 3),), "steps"),
    Case("sort-unstable", lambda ns, bk, x: ns.sort(x, stable=False), ((6,),), "steps"),
    Case("unique_values", lambda ns, bk, x: ns.unique_values(x), ((3, 4),), "steps"),
    Case("unique_counts", lambda ns, bk, x: ns.unique_counts(x), ((5,),), "steps"),
    Case("unique_inverse", lambda ns, bk, x: ns.unique_inverse(x), ((2, 3),), "steps"),
]


@pytest.mark.parametrize("case,dtype", params(CASES))
def test_searching_sorting(case, dtype, backend):
    check_case(case, dtype, backend)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_unique_all(dtype, backend):
    case = Case("unique_all", lambda ns, bk, x: ns.unique_all(x), ((2, 3),), "steps")
    try:
        backend.xp.unique_all(backend.asarray(np.arange(3.0)))
    except NotImplementedError:  # array-api-compat has none for PyTorch: the same error
        x = ft.DualTensor(backend.asarray(np.arange(3.0)), backend.asarray(np.ones(3)))
        with pytest.raises(NotImplementedError):
            ft.unique_all(x)
        return
    check_case(case, dtype, backend)


# ------------------------------------------------------------------ conventions
def test_sort_ties_follow_the_stable_permutation(backend):
    x = ft.DualTensor(
        backend.asarray(np.array([2.0, 1.0, 2.0, 1.0])), backend.asarray(np.array([1.0, 2.0, 3.0, 4.0]))
    )
    np.testing.assert_array_equal(to_numpy(ft.sort(x).tangent), [2.0, 4.0, 1.0, 3.0])
    np.testing.assert_array_equal(to_numpy(ft.sort(x, descending=True).tangent), [1.0, 3.0, 2.0, 4.0])


DUPS = np.array([[3.0, 1.0, 3.0], [2.0, 1.0, 3.0]])
DUPS_T = np.array([[10.0, 20.0, 30.0], [40.0, 50.0, 60.0]])


@pytest.mark.parametrize("name", ["unique_values", "unique_counts", "unique_inverse", "unique_all"])
def test_unique_tangent_is_taken_at_the_first_occurrence(name, backend):
    x = ft.DualTensor(backend.asarray(DUPS), backend.asarray(DUPS_T))
    try:
        want = getattr(backend.xp, name)(backend.asarray(DUPS))
    except NotImplementedError:
        pytest.skip(f"{backend.name} has no {name} (the same error is tested in test_unique_all)")
    out = getattr(ft, name)(x)
    values = out if name == "unique_values" else out.values
    np.testing.assert_array_equal(to_numpy(values.primal), [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(to_numpy(values.tangent), [20.0, 40.0, 10.0])
    if name != "unique_values":
        assert type(out) is type(want), "the backend's named tuple type is kept"
        for field, w in zip(out._fields[1:], want[1:]):
            g = getattr(out, field)
            assert is_constant(g), f"{field} is an integer constant"
            np.testing.assert_array_equal(to_numpy(g), to_numpy(w))


def test_where_zero_tangent_where_the_constant_is_chosen(backend):
    x = ft.DualTensor(backend.asarray(np.array([1.0, -1.0, 2.0])), backend.asarray(np.array([1.0, 1.0, 1.0])))
    out = ft.where(x > 0, 0.0, x)
    np.testing.assert_array_equal(to_numpy(out.tangent), [0.0, 1.0, 0.0])


# ----------------------------------------------------- integer-valued results
PLAIN = [
    Case("argsort", lambda ns, bk, x: ns.argsort(x, axis=0, descending=True)),
    Case("argmax", lambda ns, bk, x: ns.argmax(x, axis=1, keepdims=True)),
    Case("argmin", lambda ns, bk, x: ns.argmin(x)),
    Case("nonzero", lambda ns, bk, x: ns.nonzero(x > 0)),
    Case("nonzero-dual", lambda ns, bk, x: ns.nonzero(x)),
    Case("count_nonzero", lambda ns, bk, x: ns.count_nonzero(x > 0, axis=0)),
    Case(
        "searchsorted",
        lambda ns, bk, x: ns.searchsorted(bk.asarray([-1.0, 0.0, 1.0], dtype=x.dtype), x[0, ...]),
    ),
    Case(
        "searchsorted-right",
        lambda ns, bk, x: ns.searchsorted(bk.asarray([-1.0, 0.0], dtype=x.dtype), x, side="right"),
    ),
    Case("isin", lambda ns, bk, x: ns.isin(bk.asarray([1, 2, 5]), bk.asarray([2, 3]))),
    Case("all", lambda ns, bk, x: ns.all(x > -1.0, axis=1)),
]


@pytest.mark.parametrize("case", PLAIN, ids=str)
def test_index_results_are_constants(case, backend):
    rng = np.random.default_rng(5)
    x = rng.uniform(-2, 2, (3, 4))
    dual = ft.DualTensor(backend.asarray(x), backend.asarray(np.ones((3, 4))))
    got = case.fn(ft, backend.xp, dual)
    want = case.fn(backend.xp, backend.xp, backend.asarray(x))
    got_l = list(got) if isinstance(got, tuple) else [got]
    want_l = list(want) if isinstance(want, tuple) else [want]
    for g, w in zip(got_l, want_l):
        assert is_constant(g)
        np.testing.assert_array_equal(to_numpy(g), to_numpy(w))


# ------------------------------------------------------------------- errors
ERRORS = [
    Case("sort-axis", lambda ns, bk, x: ns.sort(x, axis=2)),
    Case("argsort-axis", lambda ns, bk, x: ns.argsort(x, axis=-3)),
    Case("argmax-axis", lambda ns, bk, x: ns.argmax(x, axis=5)),
    Case("where-shapes", lambda ns, bk, x: ns.where(bk.ones((2,), dtype=bk.bool), x, x)),
]


@pytest.mark.parametrize("case", ERRORS, ids=str)
def test_errors_are_the_backends(case, backend):
    check_same_error(backend, case.fn, np.ones((3, 4)))


# ------------------------------------------------------- nested derivatives
WEIGHTS = np.arange(1.0, 5.0)  # makes the Hessian of sorted squares depend on the order


@pytest.mark.parametrize(
    "name,f",
    [
        ("sort-squares", lambda x: ft.sum(ft.sort(x) ** 2 * WEIGHTS)),
        (
            "sort-product",
            lambda x: ft.sum(ft.sort(x, axis=0, descending=True)[0, ...] * ft.sort(x, axis=0)[0, ...]),
        ),
        ("where", lambda x: ft.sum(ft.where(x > 0, x * x * x, ft.sin(x)))),
    ],
)
def test_hessian_against_jacobian_differences(name, f):
    rng = np.random.default_rng(6)
    x = rng.permutation(12).reshape(3, 4) * 0.3 - 1.7
    v = rng.normal(size=x.shape)
    hv = np.tensordot(to_numpy(ft.hessian(f)(x)), v, axes=2)
    ref = central_difference(lambda y: to_numpy(ft.jacfwd(f)(y)), [x], [v], h=1e-4)
    np.testing.assert_allclose(hv, ref, rtol=1e-6, atol=1e-7)
    assert np.any(hv != 0)


def test_hessian_of_sort_on_every_backend(backend):
    def f(y):
        s = ft.sort(y, descending=True)
        return ft.sum(s * s * backend.asarray(np.arange(1.0, 5.0)))

    x = np.array([0.5, -1.0, 2.0, 1.5])
    h = to_numpy(ft.hessian(f)(backend.asarray(x)))
    # s = (2.0, 1.5, 0.5, -1.0): weight 2 * (rank + 1) on the diagonal at each input's place
    np.testing.assert_array_equal(h, np.diag([6.0, 8.0, 2.0, 4.0]))
