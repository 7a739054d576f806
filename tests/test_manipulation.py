"""Manipulation rules, table-driven: primal against the backend, tangent against central
differences along a random direction, batched (B = 3) against stacked single tangents, on
every backend in float64 and float32. Also duals mixed with constants in sequences, and
errors raised by the backend's own primal.

The checker here (``Case``, ``check_case``, ``check_same_error``) is shared by the tests of
the statistical, indexing and searching/sorting rules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

import fwdtensor as ft
from tests._util import assert_close, central_difference, is_constant, sample, to_numpy

DTYPES = ["float64", "float32"]


# ------------------------------------------------------------------ checker
@dataclass(frozen=True)
class Case:
    """``fn(ns, bk, *xs)``: ``ns`` is the namespace under test (fwdtensor, the backend or the
    NumPy reference), ``bk`` the backend that builds constants (index arrays, masks)."""

    id: str
    fn: Callable
    shapes: tuple = ((3, 4),)
    domain: str = "real"

    def __str__(self) -> str:
        return self.id


def draw(domain: str, shape: tuple, rng: np.random.Generator) -> np.ndarray:
    """Inputs from a domain: ``tests._util.sample``'s, plus ``zeros`` (one or several zeros
    per row) and ``steps`` (distinct values on a grid, so sorting has no near ties)."""
    if domain == "zeros":
        x = rng.uniform(0.5, 2.0, shape) * rng.choice([-1, 1], shape)
        if x.ndim:
            x[..., 1 % shape[-1]] = 0.0  # one zero in every row
            x.reshape(-1, shape[-1])[0, -1] = 0.0  # a second zero in the first row
            x.flat[-2 % x.size] = 0.0
        return x
    if domain == "steps":
        n = int(np.prod(shape))
        return (rng.permutation(n) * 0.25 - n * 0.1).reshape(shape)
    return sample(domain, shape, "float64", rng)


def leaves(out: object) -> list:
    """The arrays of a result that may be a tuple, list or named tuple of arrays."""
    if isinstance(out, (tuple, list)):
        return [leaf for o in out for leaf in leaves(o)]
    return [out]


def floating(a: object) -> bool:
    return np.issubdtype(to_numpy(a).dtype, np.inexact)


def _flat_reference(case: Case, backend) -> Callable:
    """The case through the backend itself (its indexing rules differ: PyTorch treats
    integers in a key as basic indices), on float64 NumPy inputs, flattened."""
    bk = backend.xp

    def f(*xs: np.ndarray) -> np.ndarray:
        out = case.fn(bk, bk, *[backend.asarray(x) for x in xs])
        outs = [to_numpy(o) for o in leaves(out) if floating(o)]
        return np.concatenate([o.ravel() for o in outs]) if outs else np.zeros(0)

    return f


def _duals(backend, xs: list, vs: list, batched: bool = False) -> list:
    return [ft.DualTensor(backend.asarray(x), backend.asarray(v), batched=batched) for x, v in zip(xs, vs)]


def check_case(case: Case, dtype: str, backend, seed: int = 0) -> None:
    """Primal, tangent (finite differences) and batched tangent of one case."""
    rng = np.random.default_rng(seed)
    xs = [draw(case.domain, s, rng).astype(dtype) for s in case.shapes]
    vs = [rng.normal(size=s).astype(dtype) for s in case.shapes]
    bk = backend.xp
    out = case.fn(ft, bk, *_duals(backend, xs, vs))
    want = case.fn(bk, bk, *[backend.asarray(x) for x in xs])
    got_l, want_l = leaves(out), leaves(want)
    assert len(got_l) == len(want_l)
    assert type(out) is type(want) or not isinstance(want, tuple), "result type must be the backend's"
    rtol = 1e-6 if dtype == "float32" else 1e-12
    tangents = []
    for g, w in zip(got_l, want_l):
        if not floating(w):
            assert is_constant(g), "integer and boolean results are constants (no tangent)"
            np.testing.assert_array_equal(to_numpy(g), to_numpy(w))
            continue
        assert isinstance(g, ft.DualTensor)
        np.testing.assert_allclose(to_numpy(g.primal), to_numpy(w), rtol=rtol, atol=rtol)
        assert g.dtype == w.dtype and tuple(g.tangent.shape) == tuple(w.shape)
        assert g.tangent.dtype == w.dtype
        tangents.append(to_numpy(g.tangent).ravel())
    ref = central_difference(
        _flat_reference(case, backend), [x.astype("float64") for x in xs], [v.astype("float64") for v in vs]
    )
    got = np.concatenate(tangents) if tangents else np.zeros(0)
    assert_close(got, ref, dtype, f"{case.id} {dtype} on {backend.name}")
    check_batched(case, xs, dtype, backend, rng)


def check_batched(case: Case, xs: list, dtype: str, backend, rng: np.random.Generator) -> None:
    """A batched tangent of B = 3 directions equals the three single tangents stacked."""
    bk = backend.xp
    vb = [rng.normal(size=(3, *np.shape(x))).astype(dtype) for x in xs]
    batched = [o for o in leaves(case.fn(ft, bk, *_duals(backend, xs, vb, batched=True))) if floating(o)]
    for b in range(3):
        single = [o for o in leaves(case.fn(ft, bk, *_duals(backend, xs, [v[b] for v in vb]))) if floating(o)]
        for ob, os_ in zip(batched, single):
            assert ob.batched and tuple(ob.tangent.shape) == (3, *ob.shape)
            tol = 1e-5 if dtype == "float32" else 1e-12
            np.testing.assert_allclose(to_numpy(ob.tangent)[b], to_numpy(os_.tangent), rtol=tol, atol=tol)


def check_same_error(backend, fn: Callable, x: np.ndarray) -> None:
    """``fn`` raises on a dual exactly the exception type the backend raises on its array."""
    bk = backend.xp
    try:
        fn(bk, bk, backend.asarray(x))
    except Exception as exc:  # noqa: BLE001 - whatever the backend raises is the reference
        expected = type(exc)
    else:
        raise AssertionError("the backend accepted the call; the case does not test an error")
    dual = ft.DualTensor(backend.asarray(x), backend.asarray(np.ones_like(x)))
    with pytest.raises(expected):
        fn(ft, bk, dual)


def params(cases: list) -> list:
    return [pytest.param(c, dt, id=f"{c.id}-{dt}") for c in cases for dt in DTYPES]


# -------------------------------------------------------------------- table
CASES = [
    Case("broadcast_arrays", lambda ns, bk, x, y: ns.broadcast_arrays(x, y), ((3, 1), (4,))),
    Case(
        "broadcast_arrays-3", lambda ns, bk, x, y, z: ns.broadcast_arrays(x, y, z), ((2, 1, 1), (3, 1), (4,))
    ),
    Case("broadcast_to", lambda ns, bk, x: ns.broadcast_to(x, (2, 3, 4)), ((3, 1),)),
    Case("broadcast_to-0d", lambda ns, bk, x: ns.broadcast_to(x, (2, 3)), ((),)),
    Case("concat-0", lambda ns, bk, x, y: ns.concat([x, y]), ((2, 3), (4, 3))),
    Case("concat-neg", lambda ns, bk, x, y: ns.concat((x, y), axis=-1), ((2, 3), (2, 1))),
    Case("concat-none", lambda ns, bk, x, y: ns.concat([x, y], axis=None), ((2, 3), (4,))),
    Case("expand_dims", lambda ns, bk, x: ns.expand_dims(x, axis=1)),
    Case("expand_dims-neg", lambda ns, bk, x: ns.expand_dims(x, axis=-1)),
    Case("expand_dims-tuple", lambda ns, bk, x: ns.expand_dims(x, axis=(0, -1))),
    Case("flip-none", lambda ns, bk, x: ns.flip(x)),
    Case("flip-axis", lambda ns, bk, x: ns.flip(x, axis=-1)),
    Case("flip-tuple", lambda ns, bk, x: ns.flip(x, axis=(0, 2)), ((2, 3, 2),)),
    Case("flip-0d", lambda ns, bk, x: ns.flip(x), ((),)),
    Case("moveaxis", lambda ns, bk, x: ns.moveaxis(x, 0, -1), ((2, 3, 4),)),
    Case("moveaxis-tuple", lambda ns, bk, x: ns.moveaxis(x, (0, 1), (2, 0)), ((2, 3, 4),)),
    Case("permute_dims", lambda ns, bk, x: ns.permute_dims(x, (2, 0, 1)), ((2, 3, 4),)),
    Case("matrix_transpose", lambda ns, bk, x: ns.matrix_transpose(x), ((2, 3, 4),)),
    Case("repeat-int", lambda ns, bk, x: ns.repeat(x, 2, axis=1)),
    Case("repeat-none", lambda ns, bk, x: ns.repeat(x, 3)),
    Case("repeat-array", lambda ns, bk, x: ns.repeat(x, bk.asarray([1, 0, 2]), axis=0)),
    Case("reshape", lambda ns, bk, x: ns.reshape(x, (2, -1, 3)), ((3, 4),)),
    Case("reshape-flat", lambda ns, bk, x: ns.reshape(x, (-1,))),
    Case("roll-none", lambda ns, bk, x: ns.roll(x, 2)),
    Case("roll-axis", lambda ns, bk, x: ns.roll(x, -1, axis=1)),
    Case("roll-tuple", lambda ns, bk, x: ns.roll(x, (1, 2), axis=(0, 1))),
    Case("squeeze", lambda ns, bk, x: ns.squeeze(x, axis=1), ((3, 1, 4),)),
    Case("squeeze-tuple", lambda ns, bk, x: ns.squeeze(x, axis=(0, -1)), ((1, 3, 1),)),
    Case("stack", lambda ns, bk, x, y: ns.stack([x, y]), ((3, 4), (3, 4))),
    Case("stack-neg", lambda ns, bk, x, y: ns.stack((x, y), axis=-1), ((3, 4), (3, 4))),
    Case("stack-mid", lambda ns, bk, x, y, z: ns.stack([x, y, z], axis=1), ((3,), (3,), (3,))),
    Case("tile", lambda ns, bk, x: ns.tile(x, (2, 1))),
    Case("tile-longer", lambda ns, bk, x: ns.tile(x, (2, 1, 3)), ((2, 3),)),
    Case("tile-shorter", lambda ns, bk, x: ns.tile(x, (2,)), ((2, 3),)),
    Case("unstack", lambda ns, bk, x: ns.unstack(x)),
    Case("unstack-neg", lambda ns, bk, x: ns.unstack(x, axis=-1), ((2, 3, 2),)),
    Case("tril", lambda ns, bk, x: ns.tril(x)),
    Case("tril-k", lambda ns, bk, x: ns.tril(x, k=-1), ((2, 3, 3),)),
    Case("triu", lambda ns, bk, x: ns.triu(x, k=1)),
]


@pytest.mark.parametrize("case,dtype", params(CASES))
def test_manipulation(case, dtype, backend):
    check_case(case, dtype, backend)


# ---------------------------------------------------- duals among constants
@pytest.mark.parametrize("axis", [0, -1, None])
def test_concat_constant_and_dual(axis, backend):
    rng = np.random.default_rng(1)
    c, x, v = rng.normal(size=(2, 3)), rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
    out = ft.concat([backend.asarray(c), ft.DualTensor(backend.asarray(x), backend.asarray(v))], axis=axis)
    want = np.concatenate([c, x], axis=axis)
    np.testing.assert_array_equal(to_numpy(out.primal), want)
    np.testing.assert_array_equal(to_numpy(out.tangent), np.concatenate([0 * c, v], axis=axis))


def test_stack_dual_between_constants(backend):
    c = np.arange(3.0)
    v = np.array([1.0, -2.0, 3.0])
    x = ft.DualTensor(backend.asarray(c + 1), backend.asarray(v))
    out = ft.stack([backend.asarray(c), x, backend.asarray(c)], axis=1)
    np.testing.assert_array_equal(to_numpy(out.tangent), np.stack([0 * v, v, 0 * v], axis=1))


def test_concat_batched_with_single_direction(backend):
    # a batched dual (B = 3) next to a single-direction one: the single one is broadcast
    x = ft.DualTensor(
        backend.asarray(np.ones(2)), backend.asarray(np.arange(6.0).reshape(3, 2)), batched=True
    )
    y = ft.DualTensor(backend.asarray(np.zeros(1)), backend.asarray(np.array([5.0])))
    out = ft.concat([x, y])
    assert tuple(out.tangent.shape) == (3, 3)
    np.testing.assert_array_equal(to_numpy(out.tangent), [[0, 1, 5], [2, 3, 5], [4, 5, 5]])


def test_concat_all_constants_is_a_constant(backend):
    a = backend.asarray(np.ones(2))
    out = ft.concat([a, a])
    assert is_constant(out) and type(out.primal) is type(a)
    np.testing.assert_array_equal(to_numpy(out), np.ones(4))


def test_broadcast_arrays_constant_output_has_zero_tangent(backend):
    x = ft.DualTensor(backend.asarray(np.ones((3, 1))), backend.asarray(np.ones((3, 1))))
    a, b = ft.broadcast_arrays(x, backend.asarray(np.zeros(4)))
    assert tuple(a.tangent.shape) == (3, 4)
    assert isinstance(b, ft.DualTensor) and np.all(to_numpy(b.tangent) == 0)


def test_jacobian_of_stack_and_concat(backend):
    def f(x):
        return ft.concat([ft.stack([x[0:1], x[1:2] * 2.0], axis=0)[:, 0], x], axis=0)

    x = backend.asarray(np.array([1.0, 2.0]))
    jac = to_numpy(ft.jacfwd(f)(x))
    np.testing.assert_array_equal(jac, [[1, 0], [0, 2], [1, 0], [0, 1]])


# -------------------------------------------------------------------- errors
ERRORS = [
    Case("expand_dims", lambda ns, bk, x: ns.expand_dims(x, axis=3)),
    Case("flip", lambda ns, bk, x: ns.flip(x, axis=2)),
    Case("moveaxis", lambda ns, bk, x: ns.moveaxis(x, 2, 0)),
    Case("permute_dims", lambda ns, bk, x: ns.permute_dims(x, (0, 0))),
    Case("repeat", lambda ns, bk, x: ns.repeat(x, 2, axis=4)),
    Case("reshape", lambda ns, bk, x: ns.reshape(x, (5, -1))),
    Case("roll", lambda ns, bk, x: ns.roll(x, 1, axis=2)),
    Case("squeeze", lambda ns, bk, x: ns.squeeze(x, axis=0)),
    Case("stack", lambda ns, bk, x: ns.stack([x, x], axis=3)),
    Case("concat", lambda ns, bk, x: ns.concat([x, x], axis=2)),
    Case("concat-shapes", lambda ns, bk, x: ns.concat([x, x[0:2, 0:2]], axis=0)),
    Case("unstack", lambda ns, bk, x: ns.unstack(x, axis=2)),
    Case("broadcast_to", lambda ns, bk, x: ns.broadcast_to(x, (3, 5))),
]


@pytest.mark.parametrize("case", ERRORS, ids=str)
def test_errors_are_the_backends(case, backend):
    check_same_error(backend, case.fn, np.ones((3, 4)))
