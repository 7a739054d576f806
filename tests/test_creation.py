"""Creation functions on every backend: plain results are constants holding the backend's own, the backend
comes from the arrays or ``device=``, and the differentiable ones (full, full_like,
linspace, meshgrid, asarray of duals) match finite differences, single and batched."""

from __future__ import annotations

import numpy as np
import pytest

import fwdtensor as ft
from tests._util import assert_close, central_difference, is_constant, to_numpy

DTYPES = ["float64", "float32"]


def device_of(backend):
    return backend.xp.__array_namespace_info__().default_device()


def dual(backend, x, v, dtype="float64", batched=False):
    return ft.DualTensor(backend.asarray(x, dtype), backend.asarray(v, dtype), batched=batched)


def check_batched(backend, fn, xs, dtype="float64"):
    """fn(*duals) with B = 3 directions per input equals three single-direction calls."""
    rng = np.random.default_rng(1)
    vs = [rng.normal(size=(3, *np.shape(x))) for x in xs]
    out = fn(*[dual(backend, x, v, dtype, batched=True) for x, v in zip(xs, vs)])
    outs = out if isinstance(out, (list, tuple)) else [out]
    for b in range(3):
        single = fn(*[dual(backend, x, v[b], dtype) for x, v in zip(xs, vs)])
        singles = single if isinstance(single, (list, tuple)) else [single]
        for o, s in zip(outs, singles):
            assert tuple(o.tangent.shape) == (3, *o.shape)
            np.testing.assert_allclose(to_numpy(o.tangent)[b], to_numpy(s.tangent), rtol=1e-6, atol=1e-7)


# ------------------------------------------------------------ no tangent
PLAIN_CALLS = [
    ("arange", (5,), {}),
    ("arange", (1, 7, 2), {"dtype": "float64"}),
    ("empty", ((2, 3),), {}),
    ("eye", (3,), {}),
    ("eye", (2, 4), {"k": 1, "dtype": "float32"}),
    ("ones", ((2, 2),), {"dtype": "int32"}),
    ("zeros", (3,), {"dtype": "float32"}),
    ("full", ((2, 3), 1.5), {}),
    ("linspace", (0.0, 2.0, 5), {"endpoint": False}),
]


@pytest.mark.parametrize("name,args,kw", PLAIN_CALLS, ids=lambda a: str(a))
def test_backend_comes_from_device(name, args, kw, backend):
    dev = device_of(backend)
    ours = dict(kw, device=dev)
    theirs = dict(kw, device=dev)
    if "dtype" in kw:
        ours["dtype"] = getattr(ft, kw["dtype"])  # a token: translated for the backend
        theirs["dtype"] = backend.dtype(kw["dtype"])
    got = getattr(ft, name)(*args, **ours)
    want = getattr(backend.xp, name)(*args, **theirs)
    assert is_constant(got) and type(got.primal) is type(want)
    assert got.dtype == want.dtype and tuple(got.shape) == tuple(want.shape)
    if name != "empty":
        np.testing.assert_array_equal(to_numpy(got), to_numpy(want))


@pytest.mark.parametrize("name,args,kw", PLAIN_CALLS, ids=lambda a: str(a))
def test_numpy_without_device(name, args, kw):
    kw = {k: getattr(ft, v) if k == "dtype" else v for k, v in kw.items()}
    got = getattr(ft, name)(*args, **kw)
    assert is_constant(got) and type(got.primal) is np.ndarray


def test_strict_device_is_kept():
    import array_api_strict as strict

    dev = strict.Device("device1")
    z = ft.zeros((2,), dtype=ft.float32, device=dev)
    assert z.device == dev and z.dtype == strict.float32
    assert ft.full_like(z, 2.0).device == dev
    x = ft.DualTensor(strict.asarray(2.0), strict.asarray(1.0))  # on the default device
    for out in (ft.full((2,), x, device=dev), ft.linspace(x, 3.0, 3, device=dev)):
        assert out.device == dev and out.tangent.device == dev


@pytest.mark.parametrize("name", ["empty_like", "ones_like", "zeros_like"])
def test_like_functions_return_constants(name, backend):
    # of a plain array: a constant holding exactly the backend's result
    p = backend.asarray([1.0, 2.0])
    want = getattr(backend.xp, name)(p)
    got = getattr(ft, name)(p)
    assert is_constant(got) and type(got.primal) is type(want) and got.dtype == want.dtype
    # of a dual: a constant dual of the same level (zero tangent), so that duals written
    # into it keep their tangents
    x = dual(backend, [1.0, 2.0], [1.0, 1.0])
    got = getattr(ft, name)(x)
    assert isinstance(got, ft.DualTensor) and got._t is None and got.level == x.level
    assert got.dtype == want.dtype and tuple(got.shape) == (2,)
    typed = getattr(ft, name)(x, dtype=ft.float32)
    assert typed.dtype == backend.dtype("float32")
    if name != "empty_like":
        np.testing.assert_array_equal(to_numpy(got), to_numpy(want))
    if name == "zeros_like":
        got[0] = x[1, ...] * 3.0
        np.testing.assert_array_equal(to_numpy(got.tangent), [3.0, 0.0])


def test_unknown_device_is_an_error():
    with pytest.raises(TypeError, match="device"):
        ft.zeros(3, device=object())


# --------------------------------------------------------------- full
@pytest.mark.parametrize("dtype", DTYPES)
def test_full_in_fill_value(dtype, backend):
    c, v = np.array(1.5), np.array(0.7)
    out = ft.full((2, 3), dual(backend, c, v, dtype))
    assert out.dtype == backend.dtype(dtype) and tuple(out.shape) == (2, 3)
    np.testing.assert_array_equal(to_numpy(out), np.full((2, 3), 1.5))
    ref = central_difference(lambda a: np.full((2, 3), a), [c], [v])
    assert_close(out.tangent, ref, dtype, "full")
    check_batched(backend, lambda d: ft.full((2, 3), d), [c], dtype)


def test_full_dtype_and_errors(backend):
    d = dual(backend, np.array(2.0), np.array(1.0))
    out = ft.full(4, d, dtype=ft.complex128)
    assert out.dtype == backend.dtype("complex128")
    np.testing.assert_array_equal(to_numpy(out.tangent), np.ones(4, dtype=complex))
    with pytest.raises(ValueError, match="0-d"):
        ft.full(3, dual(backend, [1.0, 2.0], [1.0, 1.0]))
    assert is_constant(ft.full(3, 2.0, dtype=ft.float32, device=device_of(backend)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_full_like_in_fill_value(dtype, backend):
    x = backend.asarray(np.zeros((2, 2)), dtype)
    c, v = np.array(-0.5), np.array(2.0)
    out = ft.full_like(x, dual(backend, c, v, dtype))
    assert out.dtype == backend.dtype(dtype)
    ref = central_difference(lambda a: np.full((2, 2), a), [c], [v])
    assert_close(out.tangent, ref, dtype, "full_like")
    check_batched(backend, lambda d: ft.full_like(x, d), [c], dtype)


def test_full_like_of_a_dual_with_plain_fill_is_plain(backend):
    x = dual(backend, [1.0, 2.0], [1.0, 1.0])
    got = ft.full_like(x, 3.0)
    want = backend.xp.full_like(x.primal, 3.0)
    assert isinstance(got, ft.DualTensor) and got._t is None  # a constant of x's level
    np.testing.assert_array_equal(to_numpy(got), to_numpy(want))
    # x gives only shape and dtype: its own tangent does not flow into the result
    out = ft.full_like(x, dual(backend, np.array(2.0), np.array(5.0)))
    np.testing.assert_array_equal(to_numpy(out.tangent), [5.0, 5.0])


# ------------------------------------------------------------ linspace
def np_linspace(a, b, num, endpoint):
    return np.linspace(a, b, num, endpoint=endpoint)


@pytest.mark.parametrize("endpoint", [True, False])
@pytest.mark.parametrize("num", [1, 2, 6])
@pytest.mark.parametrize("dtype", DTYPES)
def test_linspace_in_start_and_stop(endpoint, num, dtype, backend):
    a, b = np.array(-1.25), np.array(2.5)
    va, vb = np.array(0.3), np.array(-1.7)
    out = ft.linspace(dual(backend, a, va, dtype), dual(backend, b, vb, dtype), num, endpoint=endpoint)
    assert out.dtype == backend.dtype(dtype) and tuple(out.shape) == (num,)
    assert_close(out, np_linspace(a, b, num, endpoint), dtype, "linspace primal")
    ref = central_difference(lambda s, e: np_linspace(s, e, num, endpoint), [a, b], [va, vb])
    assert_close(out.tangent, ref, dtype, "linspace")
    check_batched(backend, lambda s, e: ft.linspace(s, e, num, endpoint=endpoint), [a, b], dtype)


def test_linspace_one_dual_end(backend):
    b, vb = np.array(3.0), np.array(1.0)
    out = ft.linspace(0.0, dual(backend, b, vb), 4)
    ref = central_difference(lambda e: np_linspace(0.0, e, 4, True), [b], [vb])
    assert_close(out.tangent, ref, "float64", "linspace(stop)")
    assert to_numpy(out)[-1] == 3.0 and to_numpy(out)[0] == 0.0  # exact at both ends
    with pytest.raises(ValueError, match="0-d"):
        ft.linspace(dual(backend, [0.0, 1.0], [1.0, 1.0]), 2.0, 3)


def test_linspace_complex_dtype(backend):
    out = ft.linspace(dual(backend, np.array(0.0), np.array(1.0)), 1.0, 3, dtype=ft.complex128)
    assert out.dtype == backend.dtype("complex128")
    np.testing.assert_allclose(to_numpy(out.tangent), [1.0, 0.5, 0.0])


# ------------------------------------------------------------ meshgrid
@pytest.mark.parametrize("indexing", ["xy", "ij"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_meshgrid_is_linear(indexing, dtype, backend):
    xs = [np.array([0.0, 1.0, 2.0]), np.array([-1.0, 1.0]), np.array([0.5, 1.5, 2.5, 3.5])]
    rng = np.random.default_rng(2)
    vs = [rng.normal(size=x.shape) for x in xs]
    outs = ft.meshgrid(*[dual(backend, x, v, dtype) for x, v in zip(xs, vs)], indexing=indexing)
    for k, out in enumerate(outs):
        ref = central_difference(lambda *a, k=k: np.meshgrid(*a, indexing=indexing)[k], xs, vs)
        assert tuple(out.shape) == ref.shape
        assert_close(out.tangent, ref, dtype, f"meshgrid[{k}]")
    check_batched(backend, lambda *d: ft.meshgrid(*d, indexing=indexing), xs, dtype)


def test_meshgrid_with_a_constant(backend):
    a = dual(backend, [1.0, 2.0], [1.0, 1.0])
    out = ft.meshgrid(a, backend.asarray([0.0, 1.0, 2.0]))
    assert tuple(out[0].tangent.shape) == (3, 2)
    assert out[1].tangent is not None and np.all(to_numpy(out[1].tangent) == 0)


# ------------------------------------------------------------- asarray
def test_asarray_keeps_a_dual(backend):
    x = dual(backend, [1.0, 2.0], [3.0, 4.0])
    assert ft.asarray(x) is x
    assert ft.asarray(x, dtype=ft.float64) is x
    c = ft.asarray(x, copy=True)
    assert c is not x
    x[0] = ft.DualTensor(backend.asarray(9.0), backend.asarray(9.0))  # does not show in the copy
    np.testing.assert_array_equal(to_numpy(c), [1.0, 2.0])
    np.testing.assert_array_equal(to_numpy(c.tangent), [3.0, 4.0])
    f = ft.asarray(x, dtype=ft.float32)
    assert f.dtype == backend.dtype("float32")
    with pytest.raises(ValueError, match="copy=False"):
        ft.asarray(x, dtype=ft.float32, copy=False)


@pytest.mark.parametrize("dtype", DTYPES)
def test_asarray_stacks_nested_duals(dtype, backend):
    a, b = np.array(1.5), np.array(-0.5)
    va, vb = np.array(1.0), np.array(2.0)

    def build(p, q):
        return ft.asarray([[p, q], [q * p, 2.0]])

    out = build(dual(backend, a, va, dtype), dual(backend, b, vb, dtype))
    assert out.dtype == backend.dtype(dtype) and tuple(out.shape) == (2, 2)
    ref = central_difference(lambda p, q: np.array([[p, q], [q * p, 2.0]]), [a, b], [va, vb])
    assert_close(out.tangent, ref, dtype, "asarray")
    check_batched(backend, build, [a, b], dtype)


def test_asarray_of_plain_input_is_a_constant_of_the_backends(backend):
    dev = device_of(backend)
    got = ft.asarray([1.0, 2.0], device=dev)
    want = backend.xp.asarray([1.0, 2.0], device=dev)
    assert is_constant(got) and type(got.primal) is type(want) and got.dtype == want.dtype
    arr = backend.asarray([1, 2])
    assert type(ft.asarray(arr, dtype=ft.float32).primal) is type(arr)
    assert ft.asarray(arr, dtype=ft.float32).dtype == backend.dtype("float32")
    assert type(ft.asarray([1.0, 2.0]).primal) is np.ndarray


# ----------------------------------------------------------- from_dlpack
def test_from_dlpack(backend):
    arr = backend.asarray([1.0, 2.0])
    got = ft.from_dlpack(arr)
    assert is_constant(got) and type(got.primal) is type(arr)
    np.testing.assert_array_equal(to_numpy(got), [1.0, 2.0])
    np.testing.assert_array_equal(to_numpy(ft.from_dlpack(got)), [1.0, 2.0])  # constants export freely
    with pytest.raises(ft.DerivativeLostError, match="derivative would be lost"):
        ft.from_dlpack(ft.DualTensor(arr, arr))


def test_creation_in_a_transform():
    # a function building arrays from its input is differentiated end to end
    def f(x):
        grid = ft.linspace(x[0], x[1], 5)
        return ft.sum(ft.full((3,), x[0]) * 2.0) + ft.sum(grid * grid)

    x = np.array([0.5, 2.0])
    jac = ft.jacfwd(f)(x)

    def f_np(x):
        g = np.linspace(x[0], x[1], 5)
        return np.sum(np.full((3,), x[0]) * 2.0) + np.sum(g * g)

    ref = [central_difference(f_np, [x], [e]) for e in np.eye(2)]
    np.testing.assert_allclose(to_numpy(jac), ref, rtol=1e-8)


def test_second_derivatives_through_creation(backend):
    # hessian = jacfwd(jacfwd(f)): every creation rule must also work on lower-level duals
    def f(x):
        g = ft.linspace(x[0], x[1], 4)
        c = ft.full((2,), x[0] * x[1])
        m = ft.meshgrid(g, x)
        z = ft.astype(ft.asarray([x[0], x[1] * x[0]]), ft.complex128)
        return ft.sum(g**3) + ft.sum(c * c) + ft.sum(m[0] * m[1]) + ft.sum(ft.real(z * z))

    x = np.array([0.7, -1.3])
    H = ft.hessian(f)(backend.asarray(x))

    def grad(x):
        return to_numpy(ft.jacfwd(f)(np.asarray(x)))

    ref = np.stack([central_difference(grad, [x], [e]) for e in np.eye(2)], axis=-1)
    assert_close(H, ref, "float64", "hessian through creation")
