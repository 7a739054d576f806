"""DualTensor itself: construction, attributes, operators, Python protocols, bad input."""

from __future__ import annotations

import operator

import numpy as np
import pytest

import fwdtensor as ft
from tests._util import is_constant, to_numpy


def test_construction_from_python_values():
    x = ft.DualTensor(2.0, 1.0)
    assert x.dtype == np.float64 and x.shape == ()
    assert float(x.tangent) == 1.0
    y = ft.DualTensor([1, 2, 3], [1.0, 0.0, 0.0])
    assert y.dtype == np.float64 and y.shape == (3,)
    z = ft.DualTensor([1.0 + 1j], [1j])
    assert z.dtype == np.complex128


def test_missing_tangent_is_zero_and_free():
    x = ft.DualTensor(np.arange(3.0))
    assert x._t is None
    np.testing.assert_array_equal(to_numpy(x.tangent), np.zeros(3))
    y = x * 3.0 + 1.0
    assert y._t is None, "a constant dual must not allocate a tangent"


def test_attributes(backend):
    p = backend.asarray(np.arange(6.0).reshape(2, 3))
    x = ft.DualTensor(p, backend.asarray(np.ones((2, 3))))
    assert x.shape == (2, 3) and x.ndim == 2 and x.size == 6
    assert x.dtype == p.dtype and x.device == p.device
    assert x.T.shape == (3, 2) and x.mT.shape == (3, 2)
    np.testing.assert_array_equal(to_numpy(x.T.tangent), np.ones((3, 2)))
    assert len(x) == 2
    rows = list(x)
    assert len(rows) == 2 and rows[1].shape == (3,)
    assert x.__array_namespace__() is ft


@pytest.mark.parametrize(
    "primal,tangent,kw,match",
    [
        (np.zeros(3), np.zeros(4), {}, "shape"),
        (np.zeros(3), np.zeros((2, 3)), {}, "shape"),
        (np.zeros(3), np.zeros(3), {"batched": True}, "expected a tangent of shape"),
        (np.zeros(3), np.zeros(3, dtype=np.float32), {}, "dtype"),
        (np.arange(3), np.zeros(3), {}, "integer"),
    ],
)
def test_bad_tangents_raise(primal, tangent, kw, match):
    with pytest.raises(ft.TangentError, match=match):
        ft.DualTensor(primal, tangent, **kw)


def test_backend_mismatch_is_refused():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    with pytest.raises(ft.BackendMismatchError, match="numpy.*torch|torch.*numpy"):
        ft.DualTensor(np.zeros(3), torch.zeros(3, dtype=torch.float64))
    x = ft.DualTensor(np.ones(3), np.ones(3))
    with pytest.raises(ft.BackendMismatchError):
        x * torch.ones(3, dtype=torch.float64)
    with pytest.raises(ft.BackendMismatchError):
        x * ft.DualTensor(torch.ones(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64))


def test_strict_mismatch_is_refused():
    import array_api_strict as xs

    x = ft.DualTensor(np.ones(3), np.ones(3))
    with pytest.raises(ft.BackendMismatchError):
        ft.add(x, xs.ones(3))


def test_python_protocols():
    x = ft.DualTensor(2.5, 1.0)
    assert bool(x)  # control flow branches on the primal
    c = ft.DualTensor(2.5)  # a constant converts freely
    assert float(c) == 2.5 and int(c) == 2 and complex(c) == 2.5
    i = ft.DualTensor(np.asarray(3))
    assert [0, 1, 2, 3, 4][i] == 3
    with pytest.raises(ft.DerivativeLostError, match="DLPack"):
        x.__dlpack__()
    assert "DualTensor" in repr(x) and "tangent" in repr(x)


def test_control_flow_on_primal_values():
    def relu_like(x):
        return x * x if x > 0 else -x

    assert float(ft.jvp(relu_like, (3.0,), (1.0,))[1]) == 6.0
    assert float(ft.jvp(relu_like, (-3.0,), (1.0,))[1]) == -1.0


OPS = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "**": operator.pow,
    "//": operator.floordiv,
    "%": operator.mod,
}


@pytest.mark.parametrize("op", list(OPS))
def test_reflected_operators_match_forward(op, backend):
    fn = OPS[op]
    a = backend.asarray(np.array([1.5, 2.5]))
    x = ft.DualTensor(a, backend.asarray(np.array([1.0, -1.0])))
    left, right = fn(2.0, x), fn(x, 2.0)
    np.testing.assert_allclose(to_numpy(left.primal), to_numpy(fn(2.0, a)))
    np.testing.assert_allclose(to_numpy(right.primal), to_numpy(fn(a, 2.0)))
    if op != "//":
        h, v, an = 1e-6, np.array([1.0, -1.0]), to_numpy(a)
        fd = (fn(2.0, an + h * v) - fn(2.0, an - h * v)) / (2 * h)
        np.testing.assert_allclose(to_numpy(left.tangent), fd, rtol=1e-5)


def test_array_on_the_left_defers_to_the_dual():
    a = np.array([1.0, 2.0])
    x = ft.DualTensor(np.array([3.0, 4.0]), np.array([1.0, 1.0]))
    y = a * x
    assert isinstance(y, ft.DualTensor)
    np.testing.assert_array_equal(to_numpy(y.tangent), a)
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    xt = ft.DualTensor(torch.tensor([3.0, 4.0], dtype=torch.float64), torch.ones(2, dtype=torch.float64))
    yt = torch.tensor([1.0, 2.0], dtype=torch.float64) * xt
    assert isinstance(yt, ft.DualTensor)


def test_comparisons_return_boolean_constants(backend):
    x = ft.DualTensor(backend.asarray([1.0, 2.0]), backend.asarray([1.0, 1.0]))
    for r in (x < 1.5, x <= 1.5, x > 1.5, x >= 1.5, x == 1.0, x != 1.0):
        assert is_constant(r) and r.dtype == backend.dtype("bool")
    np.testing.assert_array_equal(to_numpy(x < 1.5), [True, False])


def test_inplace_operators_update_primal_and_tangent(backend):
    x = ft.DualTensor(backend.asarray([1.0, 2.0]), backend.asarray([1.0, 0.0]))
    alias = x
    x *= x
    x += 1.0
    assert alias is x
    np.testing.assert_allclose(to_numpy(x.primal), [2.0, 5.0])
    np.testing.assert_allclose(to_numpy(x.tangent), [2.0, 0.0])
    with pytest.raises(TypeError, match="dtype"):
        y = ft.DualTensor(
            backend.asarray(np.array([1.0], dtype=np.float32)),
            backend.asarray(np.array([1.0], dtype=np.float32)),
        )
        y += ft.DualTensor(backend.asarray([1.0]), backend.asarray([1.0]))


def test_inplace_does_not_corrupt_shared_tangents():
    x = ft.DualTensor(np.array([1.0, 2.0]), np.array([1.0, 1.0]))
    y = x + 0.0  # shares x's tangent buffer (d/dx is exactly one)
    y[0] = 10.0
    np.testing.assert_array_equal(to_numpy(x.tangent), [1.0, 1.0])
    np.testing.assert_array_equal(to_numpy(y.tangent), [0.0, 1.0])


def test_getitem_and_setitem_basic(backend):
    p = backend.asarray(np.arange(12.0).reshape(3, 4))
    x = ft.DualTensor(p, backend.asarray(np.ones((3, 4))))
    assert x[1, ...].shape == (4,) and x[:, ::2].shape == (3, 2) and x[None, ..., 1].shape == (1, 3)
    z = ft.DualTensor(backend.asarray(np.zeros(4)))
    z[1:3] = x[0, 1:3] * 2.0
    np.testing.assert_array_equal(to_numpy(z.primal), [0.0, 2.0, 4.0, 0.0])
    np.testing.assert_array_equal(to_numpy(z.tangent), [0.0, 2.0, 2.0, 0.0])


def test_to_device_moves_both_parts():
    import array_api_strict as xs

    dev = xs.Device("device1")
    x = ft.DualTensor(xs.asarray([1.0, 2.0]), xs.asarray([1.0, 0.0]))
    y = x.to_device(dev)
    assert y.device == dev and y.tangent.device == dev
    z = ft.sin(y)
    assert z.device == dev and z.tangent.device == dev


def test_float32_stays_float32_with_python_scalars(backend):
    x = ft.DualTensor(
        backend.asarray(np.array([1.0, 2.0], dtype=np.float32)),
        backend.asarray(np.array([1.0, 1.0], dtype=np.float32)),
    )
    for y in (2.0 * x, x + 1.5, x**3, 3.0**x, x / 7.0, ft.sin(x) * 0.5):
        assert y.dtype == backend.dtype("float32")
        assert y.tangent.dtype == backend.dtype("float32")


def test_batched_and_unbatched_mix():
    a = ft.DualTensor(np.array([1.0, 2.0]), np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), batched=True)
    b = ft.DualTensor(np.array([3.0, 4.0]), np.array([1.0, 1.0]))
    c = a * b
    assert c.batched and c.tangent.shape == (3, 2)
    np.testing.assert_allclose(
        to_numpy(c.tangent), to_numpy(a.tangent) * np.array([3.0, 4.0]) + np.array([1.0, 2.0])
    )


def test_perturbation_confusion_classic():
    # d/dx [x * d/dy (x + y)] = 1 at every point: inner and outer tangents must not mix
    def outer(x):
        inner = ft.derivative(lambda y: x + y)(1.0)
        return x * inner

    for x0 in (0.0, 1.5, -3.0):
        assert float(ft.derivative(outer)(x0)) == 1.0


def test_setitem_under_nesting_keeps_inner_tangents():
    # writing second-order duals into a first-order array must not drop the inner tangent
    def f(p):
        out = p * 0.0
        out[0] = ft.sin(p[0])
        out[1] = p[1] ** 3
        return ft.sum(out)

    h = ft.hessian(f)(np.array([1.0, 2.0]))
    np.testing.assert_allclose(h, [[-np.sin(1.0), 0.0], [0.0, 12.0]], rtol=1e-12)


def test_plain_arrays_refuse_duals():
    with pytest.raises(ft.DerivativeLostError, match="derivative would be lost"):
        np.asarray(ft.DualTensor(np.ones(2), np.ones(2)))


def test_rules_never_write_into_inputs_or_outputs(backend):
    # derivative temporaries are reused in place; inputs, outputs and tangents must not be
    xp_x = backend.asarray([0.3, 0.7, 1.1])
    xt = backend.asarray([1.0, 2.0, 3.0])
    x = ft.DualTensor(xp_x, xt)
    before = (to_numpy(x.primal).copy(), to_numpy(x.tangent).copy())
    for name in ("sin", "cos", "exp", "sqrt", "tanh", "square", "reciprocal", "expm1"):
        y = getattr(ft, name)(x)
        y2 = getattr(ft, name)(x)
        np.testing.assert_array_equal(to_numpy(y.primal), to_numpy(y2.primal))
        np.testing.assert_array_equal(to_numpy(y.tangent), to_numpy(y2.tangent))
    z = x * x
    np.testing.assert_array_equal(to_numpy(x.primal), before[0])
    np.testing.assert_array_equal(to_numpy(x.tangent), before[1])
    np.testing.assert_allclose(to_numpy(z.tangent), 2 * before[0] * before[1])
