"""Indexing on duals: every key form of the standard's ``__getitem__`` (integers, slices with
steps, None, ..., integer arrays, boolean masks, mixed), ``take``, ``take_along_axis``, and
``__setitem__`` with a dual on either side, masks and integer arrays. Keys that a backend
refuses (array-api-strict allows integer arrays only among integers and a mask only alone)
must raise the backend's own exception."""

from __future__ import annotations

import numpy as np
import pytest

import fwdtensor as ft
from tests._util import central_difference, to_numpy
from tests.test_manipulation import Case, check_case, params

SHAPE = (3, 4, 5)
_rng = np.random.default_rng(0)
MASK2 = np.array([[True, False, True, True], [False, False, False, False], [True, True, False, True]])
MASKF = _rng.uniform(size=SHAPE) > 0.5


def _i(*v):
    return np.array(v)


# Each key is built for the backend under test by ``_key(bk, spec)``: NumPy arrays become
# the backend's arrays; everything else (ints, slices, None, ...) is kept.
KEYS = {
    "int": (1, Ellipsis),
    "ints": (1, -1, 2),
    "slices": (slice(None), slice(1, 3), slice(None, None, 2)),
    "neg-step": (slice(None, None, -1), slice(3, 0, -2), Ellipsis),
    "none": (None, 0, Ellipsis, None),
    "ellipsis-last": (Ellipsis, 1),
    "mid-none": (slice(None), None, 1, Ellipsis),
    "int-array-all": (_i(0, 2, 1), _i(1, 1, 3), _i(4, 0, 2)),
    "int-array-neg": (_i(-1, 0), 2, _i(-5, 4)),
    "int-array-2d": (_i(0, 2, 1, 0).reshape(2, 2), 1, 0),
    "int-array-int-mid": (_i(0, 2), 1, _i(3, 4)),
    "int-array-first": (_i(0, 2, 2), Ellipsis),
    "int-array-slice": (slice(None), _i(3, 0)),
    "int-array-apart": (_i(0, 2), slice(None), _i(3, 4)),
    "int-then-array": (0, slice(None), _i(1, 4, 4)),
    "int-array-none": (_i(0, 1), None, _i(2, 3)),
    "mask-lead": (MASK2,),
    "mask-full": (MASKF,),
    "mask-1d": (np.array([True, False, True]),),
    "mask-0d": (np.array(True),),
    "mask-after-int": (0, np.array([True, False, True, True])),
    "mask-mid": (slice(None), np.array([False, True, True, False]), Ellipsis),
}


def _key(bk, spec):
    return tuple(bk.asarray(k) if isinstance(k, np.ndarray) else k for k in spec)


def _accepted(backend, spec) -> bool:
    try:
        backend.asarray(np.zeros(SHAPE))[_key(backend.xp, spec)]
    except Exception:  # noqa: BLE001 - the backend's refusal is what the error test expects
        return False
    return True


@pytest.mark.parametrize("name", list(KEYS))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_getitem(name, dtype, backend):
    spec = KEYS[name]
    if not _accepted(backend, spec):
        x = ft.DualTensor(backend.asarray(np.zeros(SHAPE)), backend.asarray(np.ones(SHAPE)))
        with pytest.raises(type(_error(backend, spec))):
            x[_key(backend.xp, spec)]
        return
    check_case(Case(name, lambda ns, bk, x: x[_key(bk, spec)], (SHAPE,)), dtype, backend)


def _error(backend, spec) -> Exception:
    try:
        backend.asarray(np.zeros(SHAPE))[_key(backend.xp, spec)]
    except Exception as exc:  # noqa: BLE001
        return exc
    raise AssertionError("expected an error")


def test_strict_refuses_what_it_should():
    # documents why the strict path exists: these keys work there only as below
    from tests._util import Backend

    strict = Backend("array_api_strict")
    for name in (
        "int-array-all",
        "int-array-neg",
        "int-array-2d",
        "int-array-int-mid",
        "mask-lead",
        "mask-full",
    ):
        assert _accepted(strict, KEYS[name]), name
    for name in ("int-array-slice", "int-array-apart", "mask-after-int", "mask-mid"):
        assert not _accepted(strict, KEYS[name]), name


def test_wrong_mask_shape_raises_the_backends_error(backend):
    x = ft.DualTensor(backend.asarray(np.zeros((3, 4))), backend.asarray(np.ones((3, 4))))
    bad = backend.asarray(np.array([True, False]))
    with pytest.raises(type(_mask_error(backend, bad))):
        x[bad]


def _mask_error(backend, bad):
    try:
        backend.asarray(np.zeros((3, 4)))[bad]
    except Exception as exc:  # noqa: BLE001
        return exc
    raise AssertionError("expected an error")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_getitem_1d_integer_array(dtype, backend):
    check_case(Case("1d", lambda ns, bk, x: x[bk.asarray([4, 0, -1, 4])], ((5,),)), dtype, backend)


def test_dual_as_index(backend):
    x = ft.DualTensor(backend.asarray(np.arange(4.0)), backend.asarray(np.ones(4)))
    k = ft.DualTensor(backend.asarray(np.array([3, 1])))
    np.testing.assert_array_equal(to_numpy(x[k].primal), [3.0, 1.0])


def test_nested_indexing_derivative(backend):
    def f(y):
        return ft.sum(y[backend.asarray(np.array([2, 0, 2]))] ** 3)

    x = backend.asarray(np.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(to_numpy(ft.hessian(f)(x)), np.diag([6.0, 0.0, 36.0]))


# ------------------------------------------------------- take, take_along_axis
CASES = [
    Case("take", lambda ns, bk, x: ns.take(x, bk.asarray([2, 0, 2]), axis=1)),
    Case("take-neg-axis", lambda ns, bk, x: ns.take(x, bk.asarray([1, 0]), axis=-1)),
    Case("take-1d", lambda ns, bk, x: ns.take(x, bk.asarray([4, 0, 3])), ((6,),)),
    Case(
        "take_along_axis",
        lambda ns, bk, x: ns.take_along_axis(x, bk.asarray([[0, 3], [2, 2], [1, 0]]), axis=1),
    ),
    Case("take_along_axis-0", lambda ns, bk, x: ns.take_along_axis(x, bk.asarray([[0, 2, 1, 1]]), axis=0)),
    Case(
        "take_along_axis-3d",
        lambda ns, bk, x: ns.take_along_axis(x, bk.asarray([[[1], [0]]]), axis=-1),
        ((2, 2, 3),),
    ),
]


@pytest.mark.parametrize("case,dtype", params(CASES))
def test_take(case, dtype, backend):
    check_case(case, dtype, backend)


# ------------------------------------------------------------------ setitem
SET_KEYS = {
    "int": ((1,), ()),
    "slice-step": ((slice(None), slice(None, None, 2)), (3, 2)),
    "ellipsis": ((Ellipsis, 0), (3,)),
    "broadcast-row": ((slice(0, 2),), (4,)),
    "mask-lead": ((np.array([True, False, True]),), (2, 4)),
    "mask-lead-broadcast": ((np.array([True, False, True]),), (4,)),
    "mask-full": ((np.array([[True, False, True, True], [False] * 4, [True, True, False, False]]),), (5,)),
    "mask-scalar": ((np.array([[True, False, True, True], [False] * 4, [True, True, False, False]]),), ()),
    "int-arrays": ((np.array([0, 2]), np.array([1, 3])), (2,)),
    "int-array-apart": ((np.array([0, 2]), slice(None)), (2, 4)),
}


def _set_reference(x, key, v):
    y = np.array(x, copy=True)
    y[key] = v
    return y


@pytest.mark.parametrize("name", list(SET_KEYS))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("sides", ["both", "target", "value"])
def test_setitem(name, dtype, sides, backend):
    spec, vshape = SET_KEYS[name]
    rng = np.random.default_rng(2)
    x, v = rng.normal(size=(3, 4)).astype(dtype), rng.normal(size=vshape).astype(dtype)
    tx, tv = rng.normal(size=(3, 4)).astype(dtype), rng.normal(size=vshape).astype(dtype)
    key = _key(backend.xp, spec)
    plain = backend.asarray(x)
    try:
        plain[key] = backend.asarray(v)
    except Exception as exc:  # noqa: BLE001 - strict refuses integer arrays in setitem
        target = ft.DualTensor(backend.asarray(x), backend.asarray(tx))
        with pytest.raises(type(exc)):
            target[key] = ft.DualTensor(backend.asarray(v), backend.asarray(tv))
        return
    target = ft.DualTensor(backend.asarray(x), None if sides == "value" else backend.asarray(tx))
    value = (
        ft.DualTensor(backend.asarray(v), backend.asarray(tv)) if sides != "target" else backend.asarray(v)
    )
    target[key] = value
    np.testing.assert_array_equal(to_numpy(target.primal), _set_reference(x, spec, v))
    dirs = [
        None if sides == "value" else tx.astype("float64"),
        None if sides == "target" else tv.astype("float64"),
    ]
    ref = central_difference(
        lambda a, b: _set_reference(a, spec, b), [x.astype("float64"), v.astype("float64")], dirs
    )
    np.testing.assert_allclose(to_numpy(target.tangent), ref, rtol=1e-6, atol=1e-6)
    assert target.tangent.dtype == target.dtype


@pytest.mark.parametrize("name", ["int", "mask-lead", "mask-full", "int-array-apart", "broadcast-row"])
def test_setitem_batched(name, backend):
    spec, vshape = SET_KEYS[name]
    rng = np.random.default_rng(3)
    x, v = rng.normal(size=(3, 4)), rng.normal(size=vshape)
    tx, tv = rng.normal(size=(3, 3, 4)), rng.normal(size=(3, *vshape))
    key = _key(backend.xp, spec)
    if not _accepted_set(backend, key, v):
        pytest.skip("the backend refuses this assignment (tested in test_setitem)")
    target = ft.DualTensor(backend.asarray(x), backend.asarray(tx), batched=True)
    target[key] = ft.DualTensor(backend.asarray(v), backend.asarray(tv), batched=True)
    for b in range(3):
        single = ft.DualTensor(backend.asarray(x), backend.asarray(tx[b]))
        single[key] = ft.DualTensor(backend.asarray(v), backend.asarray(tv[b]))
        np.testing.assert_allclose(to_numpy(target.tangent)[b], to_numpy(single.tangent), rtol=1e-14)
    # a single-direction value written into a batched target is broadcast over the batch
    target = ft.DualTensor(backend.asarray(x), backend.asarray(tx), batched=True)
    target[key] = ft.DualTensor(backend.asarray(v), backend.asarray(tv[0]))
    assert tuple(target.tangent.shape) == (3, 3, 4)


def _accepted_set(backend, key, v) -> bool:
    try:
        backend.asarray(np.zeros((3, 4)))[key] = backend.asarray(v)
    except Exception:  # noqa: BLE001
        return False
    return True


def test_setitem_copy_on_write(backend):
    t = np.arange(12.0).reshape(3, 4)
    p_user, t_user = backend.asarray(np.zeros((3, 4))), backend.asarray(t)
    x = ft.DualTensor(p_user, t_user)
    view = x[0:2, ...]  # a view of x: it sees x's writes (NumPy semantics)
    x[0, ...] = ft.DualTensor(backend.asarray(np.ones(4)), backend.asarray(np.full(4, -1.0)))
    np.testing.assert_array_equal(to_numpy(t_user), t)  # the user's buffers are untouched
    np.testing.assert_array_equal(to_numpy(p_user), np.zeros((3, 4)))
    np.testing.assert_array_equal(to_numpy(x.tangent)[0], np.full(4, -1.0))
    np.testing.assert_array_equal(to_numpy(view.tangent), to_numpy(x.tangent)[0:2])
    np.testing.assert_array_equal(to_numpy(view.primal), to_numpy(x.primal)[0:2])
    mask = backend.asarray(np.array([False, True, False]))
    x[mask] = 7.0  # a constant value: zero tangent there
    np.testing.assert_array_equal(to_numpy(x.tangent)[1], np.zeros(4))
    np.testing.assert_array_equal(to_numpy(view.tangent), to_numpy(x.tangent)[0:2])
    np.testing.assert_array_equal(to_numpy(view.primal)[1], np.full(4, 7.0))


def test_setitem_inside_jvp(backend):
    def f(a, b):
        y = a * 1.0
        y[backend.asarray(np.array([True, False, True]))] = b * b
        return y

    a, b = np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0])
    out, tan = ft.jvp(
        f,
        (backend.asarray(a), backend.asarray(b)),
        (backend.asarray(np.ones(3)), backend.asarray(np.ones(2))),
    )
    np.testing.assert_array_equal(to_numpy(out), [16.0, 2.0, 25.0])
    np.testing.assert_array_equal(to_numpy(tan), [8.0, 1.0, 10.0])


def test_setitem_inner_dual_into_outer_array_nests():
    # was a TypeError: a buffer now takes a dual of an inner transform and nests its own tangent
    x = ft.DualTensor(np.zeros(3), np.ones(3))
    seen = {}

    def f(y):
        x[0] = y[0] * 2.0
        seen["t"] = x.tangent
        return y

    ft.jvp(f, (np.ones(2),), (np.full(2, 3.0),))
    inner = x.primal  # x is now a dual of the jvp's level; its level-0 tangent lives in its primal
    assert type(inner) is ft.DualTensor
    np.testing.assert_array_equal(inner.primal, [2.0, 0.0, 0.0])
    np.testing.assert_array_equal(inner.tangent, [0.0, 1.0, 1.0])
    np.testing.assert_array_equal(seen["t"], [6.0, 0.0, 0.0])
