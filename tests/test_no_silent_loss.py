"""No silent loss of a derivative: every conversion of a dual that carries a tangent
(``float``, ``int``, ``complex``, ``__index__``, ``__array__``/``np.asarray``, ``.item()``,
``.tolist()``, ``__dlpack__``, ``from_dlpack``, ``math.*``) raises ``DerivativeLostError``,
also when the tangent sits at a lower level (nested duals) and for batched duals; the same
conversions of constants work. ``bool`` always works (control flow on the primal)."""

from __future__ import annotations

import math
import operator

import numpy as np
import pytest

import fwdtensor as ft
from fwdtensor.core import dual as _dual
from fwdtensor.core import levels as _levels

CONVERSIONS = {
    "float": float,
    "int": int,
    "complex": complex,
    "index": operator.index,
    "np.asarray": np.asarray,
    "np.array": lambda d: np.array(d, dtype=np.float64),
    "item": lambda d: d.item(),
    "tolist": lambda d: d.tolist(),
    "dlpack": lambda d: d.__dlpack__(),
    "from_dlpack": ft.from_dlpack,
    "np.from_dlpack": np.from_dlpack,
    "math.exp": math.exp,
    "math.sqrt": math.sqrt,
}


def _one(backend, dtype="float64"):
    return backend.asarray(np.array(2.0), dtype)


def _carrying(backend):
    """0-d duals whose tangent is not a symbolic zero, at the top or a lower level."""
    p = _one(backend)
    single = ft.DualTensor(p, backend.asarray(np.array(1.0)))
    batched = ft.DualTensor(p, backend.asarray(np.array([1.0, 0.0, 2.0])), batched=True)
    zero_tangent = ft.DualTensor(p, backend.asarray(np.array(0.0)))  # zeros, not a symbolic zero
    # a constant of a higher level whose primal is a dual with a tangent (as inside nested transforms)
    nested = _dual._make(single, None, _levels.new_level(), 0, single._bxp)
    return {"single": single, "batched": batched, "zero-valued": zero_tangent, "nested": nested}


def test_the_error_is_public_and_a_type_error():
    assert issubclass(ft.DerivativeLostError, TypeError)
    assert issubclass(ft.DerivativeLostError, ft.FwdTensorError)
    assert "DerivativeLostError" in ft.__all__


@pytest.mark.parametrize("conv", sorted(CONVERSIONS))
def test_conversions_of_duals_with_a_tangent_raise(conv, backend):
    for what, d in _carrying(backend).items():
        with pytest.raises(ft.DerivativeLostError, match="derivative would be lost.*d.primal") as err:
            CONVERSIONS[conv](d)
        assert isinstance(err.value, TypeError), what


def _as_index(backend):
    two = backend.asarray(np.array(2), "int64")
    return ft.DualTensor(two), ft.asarray(two)


@pytest.mark.parametrize("conv", sorted(CONVERSIONS))
def test_conversions_of_constants_work(conv, backend):
    c = ft.asarray(_one(backend))
    assert _dual.carries_tangent(c) is False
    if conv == "index":
        for i in _as_index(backend):
            assert operator.index(i) == 2 and [0, 1, 2, 3][i] == 2
        return
    got = CONVERSIONS[conv](c)
    if conv in ("float", "int", "complex", "item"):
        assert got == 2
    elif conv in ("math.exp", "math.sqrt"):
        assert got == pytest.approx(getattr(math, conv[5:])(2.0))
    elif conv == "tolist":
        assert got == 2.0
    elif conv == "dlpack":
        assert got is not None
    else:
        assert float(np.asarray(got)) == 2.0
    # a constant nested in levels converts the same way
    nested = _dual._make(c, None, _levels.new_level(), 0, c._bxp)
    if conv not in ("dlpack", "from_dlpack", "np.from_dlpack"):
        assert CONVERSIONS[conv](nested) == got or np.all(np.asarray(CONVERSIONS[conv](nested)) == got)


def test_bool_keeps_working_on_every_dual(backend):
    for d in _carrying(backend).values():
        assert bool(d > 1.0) and bool(d)
    assert not bool(ft.zeros((), device=_one(backend).device))


def test_numpy_refuses_to_fill_from_duals():
    d = ft.DualTensor(np.array([1.0, 2.0]), np.array([1.0, 1.0]))
    with pytest.raises(ft.DerivativeLostError):
        np.asarray(d)
    with pytest.raises(ft.DerivativeLostError):
        np.array([d[0], d[1]], dtype=np.float64)
    np.testing.assert_array_equal(np.asarray(ft.sin(np.zeros(2))), [0.0, 0.0])


def test_math_inside_a_transform_raises():
    with pytest.raises(ft.DerivativeLostError):
        ft.derivative(lambda x: math.exp(x))(1.0)
    with pytest.raises(ft.DerivativeLostError):
        ft.jacfwd(lambda x: float(ft.sum(x)) * x)(np.ones(2))
    with pytest.raises(ft.DerivativeLostError):  # inner and outer levels alike
        ft.hessian(lambda x: ft.sum(x) * math.sin(x[0]))(np.ones(2))
    with pytest.raises(ft.DerivativeLostError):  # a float() at the outer level of a nested program
        ft.jacfwd(lambda x: ft.jacfwd(lambda y: y * float(x[0]))(x))(np.ones(2))
    # the documented way out: drop the derivative on purpose
    val = ft.derivative(lambda x: x * math.exp(x.primal))(1.0)
    assert float(val) == pytest.approx(math.e)


def test_a_reduction_to_float_like_sklearn_raises():
    def mse(y):  # scikit-learn's metrics end with `return float(result)`
        return float(ft.mean((y - 1.0) ** 2))

    with pytest.raises(ft.DerivativeLostError, match="float"):
        ft.jacfwd(mse)(np.array([0.5, 2.0]))
    assert mse(np.array([0.5, 2.0])) == pytest.approx(0.625)  # on plain arrays: a constant converts


def test_dual_none_is_a_clear_error():
    with pytest.raises(TypeError, match="None"):
        ft.DualTensor(None)
    with pytest.raises(TypeError, match="None"):
        ft.DualTensor(None, np.ones(2))


def test_dual_of_a_constant_takes_its_array(backend):
    c = ft.linspace(0.0, 1.0, 3, device=_one(backend).device)
    d = ft.DualTensor(c, ft.ones(3, device=c.device))
    assert type(d.primal) is type(_one(backend)) and type(d.tangent) is type(_one(backend))
    with pytest.raises(TypeError, match="tangent"):
        ft.DualTensor(d)
