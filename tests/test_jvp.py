"""ft.jvp and ft.batched_jvp: structures, batching, errors (the jax.jvp contract)."""

from __future__ import annotations

import numpy as np
import pytest

import fwdtensor as ft
from tests._util import central_difference, to_numpy


def test_tuple_of_arrays(backend):
    x = backend.asarray([0.5, 1.0, 2.0])
    v = backend.asarray([1.0, 2.0, 3.0])
    y, t = ft.jvp(lambda a: ft.exp(a) * a, (x,), (v,))
    xn, vn = to_numpy(x), to_numpy(v)
    np.testing.assert_allclose(to_numpy(y), np.exp(xn) * xn)
    np.testing.assert_allclose(to_numpy(t), (np.exp(xn) * xn + np.exp(xn)) * vn)


def test_nested_structures_in_and_out():
    params = {"w": np.array([1.0, 2.0]), "b": (np.array(0.5), [np.array(3.0)])}
    tang = {"w": np.array([1.0, 0.0]), "b": (np.array(1.0), [np.array(0.0)])}

    def f(p):
        s = ft.sum(p["w"] * p["b"][0]) + p["b"][1][0]
        return {"s": s, "pair": (p["w"] * 2.0, [s * s])}

    out, tout = ft.jvp(f, (params,), (tang,))
    assert set(out) == {"s", "pair"} and isinstance(out["pair"], tuple) and isinstance(out["pair"][1], list)
    # ds = w . db0 + b0 . dw = (1*1 + 2*1) + 0.5*1 = 3.5
    assert float(tout["s"]) == pytest.approx(3.5)
    np.testing.assert_allclose(to_numpy(tout["pair"][0]), [2.0, 0.0])
    assert float(tout["pair"][1][0]) == pytest.approx(2 * float(out["s"]) * 3.5)


def test_batched_jvp_equals_stacked(backend):
    rng = np.random.default_rng(0)
    x = rng.uniform(0.5, 2, 4)
    V = rng.normal(size=(3, 4))

    def f(a):
        return ft.log(a) + a * ft.roll(a, 1) - ft.sin(a)

    y, T = ft.batched_jvp(f, (backend.asarray(x),), (backend.asarray(V),))
    assert tuple(T.shape) == (3, 4)
    for b in range(3):
        _, t = ft.jvp(f, (backend.asarray(x),), (backend.asarray(V[b]),))
        np.testing.assert_allclose(to_numpy(T)[b], to_numpy(t), rtol=1e-12)
    ref = central_difference(lambda a: np.log(a) + a * np.roll(a, 1) - np.sin(a), [x], [V[1]])
    np.testing.assert_allclose(to_numpy(T)[1], ref, rtol=1e-7)


def test_has_aux_and_constant_outputs():
    y, t, aux = ft.jvp(
        lambda a: (a * 2.0, {"n": a.shape[0], "c": np.ones(2)}), (np.ones(2),), (np.ones(2),), has_aux=True
    )
    assert aux["n"] == 2
    out, tout = ft.jvp(lambda a: (a, np.ones(3)), (np.ones(2),), (np.ones(2),))
    np.testing.assert_array_equal(tout[1], np.zeros(3))


def test_none_tangent_for_integer_inputs():
    y, t = ft.jvp(lambda a, k: a * k, (np.array([1.0, 2.0]), np.array([3, 4])), (np.ones(2), None))
    np.testing.assert_array_equal(t, [3.0, 4.0])


@pytest.mark.parametrize(
    "primals,tangents,exc,match",
    [
        (np.ones(2), np.ones(2), ft.StructureError, "tuples"),
        ((np.ones(2),), (np.ones(2), np.ones(2)), ft.StructureError, "1 primals but 2"),
        (((np.ones(2), np.ones(2)),), ((np.ones(2),),), ft.StructureError, "structure"),
        ((np.ones(2),), (np.ones(3),), ft.TangentError, "shape"),
        ((np.ones(2),), (np.ones(2, dtype=np.float32),), ft.TangentError, "dtype"),
        ((np.arange(2),), (np.ones(2),), ft.TangentError, "integer"),
    ],
)
def test_bad_input_raises_before_calling(primals, tangents, exc, match):
    called = []
    with pytest.raises(exc, match=match):
        ft.jvp(lambda *a: called.append(1) or a[0], primals, tangents)
    assert not called, "the function must not run on bad input"


def test_output_must_be_arrays():
    with pytest.raises(ft.StructureError, match="str"):
        ft.jvp(lambda a: "nope", (np.ones(2),), (np.ones(2),))


def test_scalar_outputs_are_zero_d_arrays():
    y, t = ft.jvp(lambda a: a * a, (3.0,), (1.0,))
    assert isinstance(y, np.ndarray) and y.shape == () and float(y) == 9.0
    assert isinstance(t, np.ndarray) and float(t) == 6.0
