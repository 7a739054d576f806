"""The namespace is closed: every function returns fwdtensor arrays on every backend.

For every function of ``ft``, ``ft.linalg`` and ``ft.fft`` (a completeness loop over the
namespace, so a new function without a call here fails), called with a dual carrying a
tangent, with a plain backend array and with a constant: every array in the result is a
``DualTensor`` (a constant, tangent None, where nothing is differentiated, integer and
boolean results included), and ``array_namespace`` of it beside a dual is fwdtensor.
Also: 0-d results hold 0-d arrays; constants index, mask and stand in for Python ints;
the one convention for the tangents of integer and boolean outputs of the transforms;
and real Array API clients (array-api-extra, SciPy) differentiate end to end.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import zlib

import array_api_compat
import numpy as np
import pytest

import fwdtensor as ft
from fwdtensor.core import dual as _dual
from tests._util import central_difference, is_constant, to_numpy

RNG_SEED = zlib.crc32(b"closed namespace")

# Functions that answer with dtypes, shapes or Python values, not arrays.
NOT_ARRAYS = {
    "__array_namespace_info__",
    "broadcast_shapes",
    "can_cast",
    "finfo",
    "iinfo",
    "isdtype",
    "result_type",
}


def _complex(ns, x):
    return ns.astype(x, ns.complex128)  # the standard's complex-input transforms


def _sorted_row(ns, x):
    return ns.sort(x[0, ...])


# name -> call(ns, x) where x is a 3 x 3 symmetric positive definite float64 matrix (a dual,
# a plain array or a constant) and ns is fwdtensor's namespace. Integer and boolean
# functions get integer and boolean arrays derived from x through the namespace.
CALLS = {
    "all": lambda ns, x: ns.all(x > 0.5),
    "any": lambda ns, x: ns.any(x > 0.5),
    "arange": lambda ns, x: ns.arange(3, device=x.device),
    "argmax": lambda ns, x: ns.argmax(x),
    "argmin": lambda ns, x: ns.argmin(x, axis=0),
    "argsort": lambda ns, x: ns.argsort(x, axis=1),
    "asarray": lambda ns, x: ns.asarray(x),
    "astype": lambda ns, x: (ns.astype(x, ns.int32), ns.astype(x, ns.float32)),
    "bitwise_and": lambda ns, x: ns.bitwise_and(ns.astype(x, ns.int64), 3),
    "bitwise_invert": lambda ns, x: ns.bitwise_invert(ns.astype(x, ns.int64)),
    "bitwise_left_shift": lambda ns, x: ns.bitwise_left_shift(ns.astype(x, ns.int64), 1),
    "bitwise_or": lambda ns, x: ns.bitwise_or(ns.astype(x, ns.int64), 1),
    "bitwise_right_shift": lambda ns, x: ns.bitwise_right_shift(ns.astype(x, ns.int64), 1),
    "bitwise_xor": lambda ns, x: ns.bitwise_xor(ns.astype(x, ns.int64), 5),
    "broadcast_arrays": lambda ns, x: ns.broadcast_arrays(x, x[0, ...]),
    "broadcast_to": lambda ns, x: ns.broadcast_to(x, (2, 3, 3)),
    "clip": lambda ns, x: ns.clip(x, 0.5, 2.0),
    "concat": lambda ns, x: ns.concat([x, x]),
    "count_nonzero": lambda ns, x: ns.count_nonzero(x > 1.0),
    "cumulative_prod": lambda ns, x: ns.cumulative_prod(x, axis=0),
    "cumulative_sum": lambda ns, x: ns.cumulative_sum(x, axis=1),
    "diff": lambda ns, x: ns.diff(x, axis=0),
    "empty": lambda ns, x: ns.empty((2, 3), device=x.device),
    "empty_like": lambda ns, x: ns.empty_like(x),
    "expand_dims": lambda ns, x: ns.expand_dims(x, axis=0),
    "eye": lambda ns, x: ns.eye(3, device=x.device),
    "flip": lambda ns, x: ns.flip(x),
    # a dual with a tangent cannot be exported (tests/test_no_silent_loss.py): its zeros can
    "from_dlpack": lambda ns, x: ns.from_dlpack(ns.zeros_like(x) if type(x) is ft.DualTensor else x),
    "full": lambda ns, x: (ns.full((2,), 1.5, device=x.device), ns.full((2,), ns.sum(x))),
    "full_like": lambda ns, x: ns.full_like(x, 2.0),
    "isin": lambda ns, x: ns.isin(ns.astype(x, ns.int64), ns.asarray([1, 2], device=x.device)),
    "linspace": lambda ns, x: (ns.linspace(0.0, 1.0, 5, device=x.device), ns.linspace(ns.sum(x), 40.0, 4)),
    "logical_and": lambda ns, x: ns.logical_and(x > 1.0, x < 3.0),
    "logical_not": lambda ns, x: ns.logical_not(x > 1.0),
    "logical_or": lambda ns, x: ns.logical_or(x > 1.0, x < 0.5),
    "logical_xor": lambda ns, x: ns.logical_xor(x > 1.0, x < 3.0),
    "matmul": lambda ns, x: ns.matmul(x, x),
    "matrix_transpose": lambda ns, x: ns.matrix_transpose(x),
    "max": lambda ns, x: ns.max(x),
    "mean": lambda ns, x: ns.mean(x, axis=0),
    "meshgrid": lambda ns, x: ns.meshgrid(x[0, ...], x[1, ...]),
    "min": lambda ns, x: ns.min(x),
    "moveaxis": lambda ns, x: ns.moveaxis(x, 0, 1),
    "nonzero": lambda ns, x: ns.nonzero(x > 1.0),
    "ones": lambda ns, x: ns.ones(3, device=x.device),
    "ones_like": lambda ns, x: ns.ones_like(x),
    "permute_dims": lambda ns, x: ns.permute_dims(x, (1, 0)),
    "prod": lambda ns, x: ns.prod(x),
    "repeat": lambda ns, x: ns.repeat(x, 2, axis=0),
    "reshape": lambda ns, x: ns.reshape(x, (9,)),
    "roll": lambda ns, x: ns.roll(x, 1),
    "searchsorted": lambda ns, x: ns.searchsorted(_sorted_row(ns, x), x[1, ...]),
    "sort": lambda ns, x: ns.sort(x, axis=0),
    "squeeze": lambda ns, x: ns.squeeze(ns.expand_dims(x, axis=0), axis=0),
    "stack": lambda ns, x: ns.stack([x, x]),
    "std": lambda ns, x: ns.std(x),
    "sum": lambda ns, x: ns.sum(x),
    "take": lambda ns, x: ns.take(x, ns.asarray([0, 2], device=x.device), axis=0),
    "take_along_axis": lambda ns, x: ns.take_along_axis(x, ns.argsort(x, axis=1), axis=1),
    "tensordot": lambda ns, x: ns.tensordot(x, x, axes=1),
    "tile": lambda ns, x: ns.tile(x, (2, 1)),
    "tril": lambda ns, x: ns.tril(x),
    "triu": lambda ns, x: ns.triu(x, k=1),
    "unique_all": lambda ns, x: ns.unique_all(x),
    "unique_counts": lambda ns, x: ns.unique_counts(x),
    "unique_inverse": lambda ns, x: ns.unique_inverse(x),
    "unique_values": lambda ns, x: ns.unique_values(x),
    "unstack": lambda ns, x: ns.unstack(x),
    "var": lambda ns, x: ns.var(x, axis=1),
    "vecdot": lambda ns, x: ns.vecdot(x, x),
    "where": lambda ns, x: ns.where(x > 1.0, x, 0.0),
    "zeros": lambda ns, x: ns.zeros(3, device=x.device),
    "zeros_like": lambda ns, x: ns.zeros_like(x),
    # linalg
    "linalg.cholesky": lambda ns, x: ns.linalg.cholesky(x),
    "linalg.cross": lambda ns, x: ns.linalg.cross(x, ns.flip(x, axis=0)),
    "linalg.det": lambda ns, x: ns.linalg.det(x),
    "linalg.diagonal": lambda ns, x: ns.linalg.diagonal(x),
    "linalg.eig": lambda ns, x: ns.linalg.eig(x),
    "linalg.eigh": lambda ns, x: ns.linalg.eigh(x),
    "linalg.eigvals": lambda ns, x: ns.linalg.eigvals(x),
    "linalg.eigvalsh": lambda ns, x: ns.linalg.eigvalsh(x),
    "linalg.inv": lambda ns, x: ns.linalg.inv(x),
    "linalg.expm": lambda ns, x: ns.linalg.expm(x),
    "linalg.lu_factor": lambda ns, x: ns.linalg.lu_factor(x),
    "linalg.lu_solve": lambda ns, x: ns.linalg.lu_solve(ns.linalg.lu_factor(x), x[0, ...]),
    "linalg.matmul": lambda ns, x: ns.linalg.matmul(x, x),
    "linalg.matrix_norm": lambda ns, x: ns.linalg.matrix_norm(x),
    "linalg.matrix_power": lambda ns, x: ns.linalg.matrix_power(x, 2),
    "linalg.matrix_rank": lambda ns, x: ns.linalg.matrix_rank(x),
    "linalg.matrix_transpose": lambda ns, x: ns.linalg.matrix_transpose(x),
    "linalg.outer": lambda ns, x: ns.linalg.outer(x[0, ...], x[1, ...]),
    "linalg.pinv": lambda ns, x: ns.linalg.pinv(x),
    "linalg.qr": lambda ns, x: ns.linalg.qr(x),
    "linalg.slogdet": lambda ns, x: ns.linalg.slogdet(x),
    "linalg.solve": lambda ns, x: ns.linalg.solve(x, x[0, ...]),
    "linalg.svd": lambda ns, x: ns.linalg.svd(x, full_matrices=False),
    "linalg.svdvals": lambda ns, x: ns.linalg.svdvals(x),
    "linalg.tensordot": lambda ns, x: ns.linalg.tensordot(x, x, axes=2),
    "linalg.trace": lambda ns, x: ns.linalg.trace(x),
    "linalg.vecdot": lambda ns, x: ns.linalg.vecdot(x, x),
    "linalg.vector_norm": lambda ns, x: ns.linalg.vector_norm(x),
    # fft
    "fft.fft": lambda ns, x: ns.fft.fft(_complex(ns, x)),
    "fft.fftfreq": lambda ns, x: ns.fft.fftfreq(4, device=x.device),
    "fft.fftn": lambda ns, x: ns.fft.fftn(_complex(ns, x)),
    "fft.fftshift": lambda ns, x: ns.fft.fftshift(x),
    "fft.hfft": lambda ns, x: ns.fft.hfft(_complex(ns, x)),
    "fft.ifft": lambda ns, x: ns.fft.ifft(_complex(ns, x)),
    "fft.ifftn": lambda ns, x: ns.fft.ifftn(_complex(ns, x)),
    "fft.ifftshift": lambda ns, x: ns.fft.ifftshift(x),
    "fft.ihfft": lambda ns, x: ns.fft.ihfft(x),
    "fft.irfft": lambda ns, x: ns.fft.irfft(_complex(ns, x)),
    "fft.irfftn": lambda ns, x: ns.fft.irfftn(_complex(ns, x)),
    "fft.rfft": lambda ns, x: ns.fft.rfft(x),
    "fft.rfftfreq": lambda ns, x: ns.fft.rfftfreq(4, device=x.device),
    "fft.rfftn": lambda ns, x: ns.fft.rfftn(x),
}


def _namespace_functions() -> set[str]:
    names = {n for n in ft._functions if n not in NOT_ARRAYS}
    names |= {"linalg." + n for n in ft.linalg.__all__}
    names |= {"fft." + n for n in ft.fft.__all__}
    return names


def _elementwise_call(name: str):
    """A call for an elementwise function, from its rule: its domain and its input dtypes."""
    fn = getattr(ft, name)
    rule = fn.rule
    if rule.dtypes == "bool":
        arg = lambda ns, x: x > 1.0  # noqa: E731
    elif rule.dtypes == "int":
        arg = lambda ns, x: ns.astype(x, ns.int64)  # noqa: E731
    elif rule.dtypes == "complex":
        arg = lambda ns, x: _complex(ns, x) * 0.1j + 0.3  # noqa: E731
    else:  # x lies in (0.25, 0.95) after scaling (shifted by one above 1): in every domain
        shift = 1.25 if rule.domain == "gt1" else 0.25
        arg = lambda ns, x: ns.multiply(x, 0.1) + shift  # noqa: E731
    if rule.form == "unary":
        return lambda ns, x: getattr(ns, name)(arg(ns, x))
    return lambda ns, x: getattr(ns, name)(arg(ns, x), arg(ns, ns.flip(x)))


def _call(name: str):
    if name in CALLS:
        return CALLS[name]
    fn = getattr(ft, name, None)
    if fn is not None and getattr(fn, "rule", None) is not None and fn.rule.form in ("unary", "binary"):
        return _elementwise_call(name)
    return None


def test_every_function_has_a_call_here():
    """Completeness: a function added to the namespace must be checked by this module."""
    missing = sorted(n for n in _namespace_functions() if _call(n) is None)
    assert not missing, f"add calls for {missing} to CALLS (or to NOT_ARRAYS if they return no arrays)"
    stale = sorted(set(CALLS) - _namespace_functions())
    assert not stale, f"CALLS names functions the namespace does not have: {stale}"


def _spd(backend):
    rng = np.random.default_rng(RNG_SEED)
    m = rng.uniform(0.5, 1.5, (3, 3))
    a = m @ m.T + 3.0 * np.eye(3)
    return a, rng.normal(size=(3, 3))


def _leaves(out):
    if isinstance(out, (tuple, list)):
        return [leaf for o in out for leaf in _leaves(o)]
    return [out]


def _run(backend, name, x):
    try:
        return _call(name)(ft, x)
    except ft.NotDifferentiableError as exc:
        if "has no function" in str(exc):  # e.g. array-api-strict has no linalg.eig
            pytest.skip(f"{backend.name} lacks a function {name} needs: {exc}")
        raise
    except NotImplementedError as exc:  # e.g. PyTorch has no unique_all
        pytest.skip(f"{backend.name} does not implement {name}: {exc}")


@pytest.mark.parametrize("name", sorted(_namespace_functions()))
def test_results_are_fwdtensor_arrays(name, backend):
    a, v = _spd(backend)
    dual = ft.DualTensor(backend.asarray(a), backend.asarray(v))
    plain = backend.asarray(a)
    const = ft.asarray(plain)
    assert is_constant(const) and type(const.primal) is type(plain)
    for what, x in (("dual", dual), ("plain", plain), ("constant", const)):
        out = _run(backend, name, x)
        leaves = [leaf for leaf in _leaves(out) if leaf is not None]
        assert leaves, f"{name} returned no arrays"
        for leaf in leaves:
            assert isinstance(leaf, ft.DualTensor), f"{name}({what}) returned a {type(leaf).__name__}"
            inside = type(_dual.innermost(leaf))
            assert inside is type(plain), f"{name}({what}): the backend's array inside"
            assert array_api_compat.array_namespace(dual, leaf) is ft, name
            if what != "dual":
                assert is_constant(leaf), f"{name}({what}) carries a tangent"
            elif not ft.isdtype(leaf.dtype, ("real floating", "complex floating")):
                assert is_constant(leaf), f"{name}: integer and boolean results are constants"


ZERO_D = {
    "sum": lambda x: ft.sum(x),
    "max": lambda x: ft.max(x),
    "mean": lambda x: ft.mean(x),
    "prod": lambda x: ft.prod(x),
    "std": lambda x: ft.std(x),
    "det": lambda x: ft.linalg.det(x),
    "trace": lambda x: ft.linalg.trace(x),
    "vecdot": lambda x: ft.vecdot(x[0, ...], x[1, ...]),
    "getitem": lambda x: x[1, 2] if isinstance(x, ft.DualTensor) else ft.asarray(x)[1, 2],
    "sin": lambda x: ft.sin(ft.sum(x)),
    "add": lambda x: ft.sum(x) + 1.0,
}


@pytest.mark.parametrize("name", sorted(ZERO_D))
def test_zero_d_results_are_zero_d_arrays(name, backend):
    a, v = _spd(backend)
    for x in (ft.DualTensor(backend.asarray(a), backend.asarray(v)), backend.asarray(a)):
        s = ZERO_D[name](x)
        assert s.ndim == 0 and array_api_compat.is_array_api_obj(s.primal)
        assert not isinstance(s.primal, np.generic), f"{name}: a NumPy scalar, not a 0-d array"
        assert s.__array_namespace__() is ft
        s[()] = 7.0  # item assignment on a 0-d result
        assert float(to_numpy(s)) == 7.0


def test_getitem_of_a_zero_d_result_is_zero_d():
    d = ft.DualTensor(np.array([1.0, 2.0]), np.array([1.0, 0.0]))
    e = d[0]
    assert isinstance(e.primal, np.ndarray) and e.primal.ndim == 0
    assert isinstance(ft.sin(np.asarray(0.5)).primal, np.ndarray)


def test_constants_index_mask_and_count(backend):
    p = backend.asarray([3.0, -1.0, 2.0, -4.0])
    d = ft.DualTensor(p, backend.asarray([1.0, 2.0, 3.0, 4.0]))
    mask = d > 0
    assert is_constant(mask)
    np.testing.assert_array_equal(to_numpy(d[mask].tangent), [1.0, 3.0])
    idx = ft.asarray([0, 2], device=p.device)
    np.testing.assert_array_equal(to_numpy(d[idx].primal), [3.0, 2.0])
    np.testing.assert_array_equal(to_numpy(ft.take(d, idx).tangent), [1.0, 3.0])
    np.testing.assert_array_equal(to_numpy(ft.take(p, idx)), [3.0, 2.0])
    n = ft.argmax(d)  # an integer 0-d constant stands in for a Python int
    assert int(n) == 0 and [10, 20, 30][n] == 10 and list(range(ft.asarray(3))) == [0, 1, 2]
    assert ft.zeros((ft.asarray(2), 3)).shape == (2, 3)
    assert ft.sum(d, axis=ft.asarray(0)).shape == ()
    assert float(ft.sum(p)) == 0.0 and bool(ft.any(mask))


def test_numpy_array_masked_by_a_constant():
    x = np.array([1.0, -2.0, 3.0])
    d = ft.DualTensor(x, np.ones(3))
    np.testing.assert_array_equal(x[d > 0], [1.0, 3.0])
    np.testing.assert_array_equal(np.asarray(ft.zeros(2)), [0.0, 0.0])


# ------------------------------------------------ integer and boolean output tangents
def _int_and_bool(x):
    return x > 0.0, ft.argmax(x), ft.astype(x, ft.int32)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_integer_and_boolean_outputs_have_zero_tangents_of_the_input_dtype(dtype, backend):
    """The one convention: zeros with the dtype of the differentiated input (the input
    tangents' dtype in jvp), in jvp, batched jvp, jacfwd and hessian alike."""
    x = backend.asarray(np.array([0.5, -1.0, 2.0]), dtype)
    want = backend.dtype(dtype)
    outs, touts = ft.jvp(_int_and_bool, (x,), (backend.asarray(np.ones(3), dtype),))
    for o, t in zip(outs, touts):
        assert not isinstance(o, ft.DualTensor) and not isinstance(t, ft.DualTensor)
        assert t.dtype == want and tuple(t.shape) == tuple(o.shape)
        assert np.all(to_numpy(t) == 0)
    _, touts = ft.batched_jvp(_int_and_bool, (x,), (backend.asarray(np.ones((2, 3)), dtype),))
    assert all(t.dtype == want and tuple(t.shape)[0] == 2 for t in touts)
    for jac in (ft.jacfwd(_int_and_bool)(x), ft.hessian(_int_and_bool)(x)):
        for o, j in zip(_int_and_bool(x), jac):
            assert not isinstance(j, ft.DualTensor) and j.dtype == want
            assert tuple(j.shape)[: o.ndim] == tuple(o.shape) and np.all(to_numpy(j) == 0)


def test_transforms_hand_back_plain_arrays(backend):
    x = backend.asarray([0.5, 1.5])

    def f(x):
        return {"y": ft.sin(x), "c": ft.zeros(2, device=x.device), "b": x > 1.0}

    y, t = ft.jvp(f, (x,), (backend.asarray([1.0, 0.0]),))
    for tree in (y, t, ft.jacfwd(f)(x), ft.hessian(f)(x)):
        for leaf in tree.values():
            assert not isinstance(leaf, ft.DualTensor) and type(leaf) is type(x)
    y, aux = ft.jacfwd(lambda x: (ft.sum(x * x), {"c": ft.ones(1), "m": x > 1.0}), has_aux=True)(x)
    assert all(not isinstance(a, ft.DualTensor) for a in aux.values())
    assert not isinstance(ft.derivative(lambda s: ft.sin(s) + ft.zeros(()))(0.3), ft.DualTensor)
    # constants go in as their arrays
    c = ft.asarray(to_numpy(x))
    y, t = ft.jvp(ft.sin, (c,), (ft.ones(2),))
    assert type(y) is np.ndarray and type(t) is np.ndarray
    assert type(ft.jacfwd(ft.sin)(c)) is np.ndarray
    from fwdtensor.ode import solve

    sol = solve(lambda t, y: -ft.sin(y), (0.0, 1.0), np.ones(2))  # a right-hand side in ft.*
    assert type(sol.y) is np.ndarray and type(sol.t) is np.ndarray


def test_nested_levels_keep_working():
    f = lambda x: ft.sum(ft.where(x > 0, x**3, -x) * ft.sort(x))  # noqa: E731
    x = np.array([0.7, -0.4, 1.3])
    h = ft.hessian(f)(x)
    hh = ft.jacfwd(ft.jacfwd(f))(x)
    np.testing.assert_allclose(h, hh, rtol=1e-12)
    g = lambda x: ft.jacfwd(f)(x)  # noqa: E731
    ref = np.stack([central_difference(g, [x], [e]) for e in np.eye(3)], axis=-1)
    np.testing.assert_allclose(h, ref, rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------- real clients
def test_array_api_extra_pad_differentiates(backend):
    xpx = pytest.importorskip("array_api_extra", reason="array-api-extra is not installed")
    rng = np.random.default_rng(RNG_SEED)
    x, v = rng.normal(size=4), rng.normal(size=4)
    out = xpx.pad(ft.DualTensor(backend.asarray(x), backend.asarray(v)), 1)
    assert isinstance(out, ft.DualTensor)
    ref = central_difference(lambda a: np.pad(a, 1), [x], [v])
    np.testing.assert_allclose(to_numpy(out.tangent), ref, rtol=1e-8, atol=1e-10)


_SCIPY_SCRIPT = textwrap.dedent(
    """
    import os, zlib
    assert os.environ["SCIPY_ARRAY_API"] == "1"
    import numpy as np, scipy.stats as st, fwdtensor as ft
    rng = np.random.default_rng(zlib.crc32(b"scipy variation"))
    x, v = rng.uniform(1, 3, 6), rng.normal(size=6)
    out = st.variation(ft.DualTensor(x, v))
    assert isinstance(out, ft.DualTensor), type(out)
    h = 1e-6
    fd = (st.variation(x + h * v) - st.variation(x - h * v)) / (2 * h)
    assert abs(float(out.tangent) - fd) < 1e-7 * max(1.0, abs(fd)), (float(out.tangent), fd)
    assert abs(fd) > 1e-3  # a direction along which the derivative is not zero
    print("ok", float(out.tangent), fd)
    """
)


def test_scipy_stats_variation_differentiates():
    pytest.importorskip("scipy", reason="SciPy is not installed")
    # SCIPY_ARRAY_API must be set before SciPy is imported: a fresh process keeps it from
    # leaking into other tests.
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "SCIPY_ARRAY_API": "1", "PYTHONPATH": root}
    proc = subprocess.run(
        [sys.executable, "-c", _SCIPY_SCRIPT], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("ok")
