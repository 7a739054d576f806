"""The short paths of the dispatch (``core/dual.py``) give what the general path gives.

``a * b`` of two duals has an inline product rule, ``unary`` multiplies the tangent into a
fresh derivative in place, ``apply`` splits one array argument inline: each case here is
checked against central differences (an independent reference) and against the general
path, for the shapes and dtypes where a short path must step aside (broadcasting, ranks,
mixed precision, batches, a missing tangent), and the inputs are never written.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

import fwdtensor as ft
from tests._util import assert_close, central_difference, to_numpy

CASES = [
    # (shape of a, shape of b, dtype of a, dtype of b, B)
    ((3,), (3,), "float64", "float64", 0),
    ((), (), "float64", "float64", 0),
    ((2, 3), (1, 3), "float64", "float64", 0),  # one rank, broadcast
    ((2, 3), (3,), "float64", "float64", 0),  # two ranks
    ((3,), (3,), "float32", "float64", 0),  # mixed precision
    ((3,), (3,), "float32", "float32", 0),
    ((2, 3), (2, 3), "float64", "float64", 3),  # three directions
    ((2, 1), (1, 3), "float64", "float64", 2),
]


def _dual(backend, rng, shape, dtype, B):
    p = rng.uniform(0.5, 2.0, shape).astype(dtype)
    t = rng.normal(size=(B, *shape) if B else shape).astype(dtype)
    return ft.DualTensor(backend.asarray(p), backend.asarray(t), batched=bool(B)), p, t


@pytest.mark.parametrize("sa, sb, da, db, B", CASES)
def test_dual_times_dual(backend, sa, sb, da, db, B):
    rng = np.random.default_rng(zlib.crc32(f"product{sa}{sb}{da}{db}{B}".encode()))
    a, pa, ta = _dual(backend, rng, sa, da, B)
    b, pb, tb = _dual(backend, rng, sb, db, B)
    keep = [np.array(to_numpy(x), copy=True) for x in (a.primal, a._t, b.primal, b._t)]
    r = a * b
    general = ft.multiply(a, b)  # the namespace function goes through binary
    want_dtype = np.result_type(da, db).name
    assert to_numpy(r.primal).dtype == want_dtype and to_numpy(r._t).dtype == want_dtype
    assert r.primal.shape == general.primal.shape and r._t.shape == general._t.shape
    np.testing.assert_array_equal(to_numpy(r.primal), to_numpy(general.primal))
    assert_close(r._t, to_numpy(general._t), "float32" if "float32" in (da, db) else "float64")
    pa64, pb64 = pa.astype("float64"), pb.astype("float64")
    dirs = [(ta[k], tb[k]) for k in range(B)] if B else [(ta, tb)]
    for k, (da_, db_) in enumerate(dirs):
        want = central_difference(np.multiply, [pa64, pb64], [da_.astype("float64"), db_.astype("float64")])
        got = to_numpy(r._t)[k] if B else to_numpy(r.tangent)
        assert_close(got, want, "float32" if "float32" in (da, db) else "float64", f"direction {k}")
    for before, x in zip(keep, (a.primal, a._t, b.primal, b._t)):
        np.testing.assert_array_equal(to_numpy(x), before)  # the inputs are never written
    r._t[...] = 0  # the result owns its tangent: writing it leaves the inputs as they were
    np.testing.assert_array_equal(to_numpy(a._t), keep[1])
    np.testing.assert_array_equal(to_numpy(b._t), keep[3])


def test_dual_times_dual_steps_aside(backend):
    rng = np.random.default_rng(zlib.crc32(b"product-aside"))
    a, pa, ta = _dual(backend, rng, (3,), "float64", 0)
    b = ft.DualTensor(backend.asarray(rng.uniform(0.5, 2.0, 3)))  # no tangent
    r = a * b
    assert_close(r.tangent, ta * to_numpy(b.primal), "float64")
    c, pc, tc = _dual(backend, rng, (3,), "float64", 3)  # three directions against one
    r = a * c
    assert r._t.shape == (3, 3)
    assert_close(r._t, ta[None] * pc + tc * pa, "float64")


def test_nested_product():
    # a lower-level dual inside: the short path steps aside and both levels differentiate
    x0 = np.array([0.7, 1.3])

    def f(x):
        return ft.jvp(lambda z: z * z, (x,), (ft.ones_like(x),))[1]

    _, t = ft.jvp(f, (x0,), (np.ones(2),))
    np.testing.assert_allclose(to_numpy(t), 2.0 * np.ones(2))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_unary_in_place_derivative(backend, dtype):
    rng = np.random.default_rng(zlib.crc32(f"unary{dtype}".encode()))
    a, pa, ta = _dual(backend, rng, (2, 3), dtype, 0)
    keep = np.array(to_numpy(a._t), copy=True)
    for fn, ref in ((ft.sin, np.sin), (ft.log, np.log), (ft.tanh, np.tanh)):
        r = fn(a)
        want = central_difference(ref, [pa.astype("float64")], [ta.astype("float64")])
        assert_close(r.tangent, want, dtype, fn.__name__)
        assert to_numpy(r.tangent).dtype == dtype
    np.testing.assert_array_equal(to_numpy(a._t), keep)
    z = ft.sin(ft.DualTensor(backend.asarray(np.float64(0.5)), backend.asarray(np.float64(2.0))))
    assert z.shape == () and abs(float(z.tangent) - 2.0 * np.cos(0.5)) < 1e-12


def test_apply_one_argument(backend):
    rng = np.random.default_rng(zlib.crc32(b"apply-one"))
    a, pa, ta = _dual(backend, rng, (2, 3), "float64", 0)
    s = ft.sum(a, axis=1)
    assert_close(s.tangent, ta.sum(axis=1), "float64")
    c = ft.sum(ft.asarray(backend.asarray(pa)))  # a constant: no tangent
    assert c._t is None and abs(float(c) - pa.sum()) < 1e-12
