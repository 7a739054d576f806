"""Per-sample Jacobians and Hessians (``batch_axis``) against a loop of single Jacobians.

The loop (``ft.jacfwd`` of one sample at a time) is the reference, and on NumPy also
central finite differences and ``jax.vmap(jax.jacfwd(f))`` where JAX is installed.
Functions that mix samples must raise, naming what to do.
"""

from __future__ import annotations

import importlib.util
import zlib

import numpy as np
import pytest

import fwdtensor as ft
from tests._util import assert_close, central_difference, to_numpy


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode()))


def lorenz(u, s=10.0, r=28.0, b=8.0 / 3.0):
    """Lorenz right-hand side on the last axis: R^3 -> R^3 per sample."""
    xp = u.__array_namespace__() if hasattr(u, "__array_namespace__") else ft
    x, y, z = u[..., 0], u[..., 1], u[..., 2]
    return xp.stack([s * (y - x), x * (r - z) - y, x * y - b * z], axis=-1)


def mlp(x, W1, b1, W2):
    """A small tanh network applied to each row of x (shared weights)."""
    return ft.tanh(x @ W1 + b1) @ W2


def _loop(f, X, axis=0):
    """Per-sample Jacobians by a Python loop of single ones (the reference)."""
    Xn = to_numpy(X)
    blocks = []
    for i in range(Xn.shape[axis]):
        xi = np.take(Xn, i, axis=axis)
        blocks.append(to_numpy(ft.jacfwd(lambda v: f(v))(xi)))
    return np.stack(blocks)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_lorenz_matches_a_loop_of_single_jacobians(backend, dtype):
    rng = _rng("lorenz")
    U = rng.normal(size=(7, 3)).astype(dtype)
    J = ft.jacfwd(lorenz, batch_axis=0)(backend.asarray(U))
    assert tuple(J.shape) == (7, 3, 3)
    assert not isinstance(J, ft.DualTensor)
    assert_close(J, _loop(lorenz, U), dtype)


def test_against_finite_differences_and_jax():
    rng = _rng("mlp-fd")
    W1, b1, W2 = rng.normal(size=(8, 16)), rng.normal(size=16), rng.normal(size=(16, 8))
    X = rng.normal(size=(5, 8))
    J = ft.jacfwd(mlp, batch_axis=0)(X, W1, b1, W2)
    assert J.shape == (5, 8, 8)
    for n in range(5):
        for j in range(8):
            e = np.zeros(8)
            e[j] = 1.0
            fd = central_difference(lambda x: np.tanh(x @ W1 + b1) @ W2, [X[n]], [e])
            np.testing.assert_allclose(J[n, :, j], fd, rtol=1e-7, atol=1e-9)
    if importlib.util.find_spec("jax") is None:
        pytest.skip("JAX is not installed, so vmap(jacfwd) is not compared")
    import jax
    import jax.numpy as jnp

    with jax.enable_x64(True):
        want = jax.vmap(jax.jacfwd(lambda x: jnp.tanh(x @ W1 + b1) @ W2))(X)
    np.testing.assert_allclose(J, np.asarray(want), rtol=1e-12, atol=1e-12)


def test_other_batch_axis_and_sample_shapes(backend):
    rng = _rng("axis1")
    X = rng.normal(size=(2, 6, 3))  # samples on axis 1, sample shape (2, 3)

    def f(x):  # per sample: (2, 3) -> (1, 3), elementwise and a reduction inside the sample
        return ft.sum(ft.sin(x) * x, axis=0, keepdims=True) * x[0:1, ...]

    J = ft.jacfwd(f, batch_axis=1)(backend.asarray(X))
    assert tuple(J.shape) == (6, 1, 3, 2, 3)
    one = lambda v: ft.sum(ft.sin(v) * v, axis=0, keepdims=True) * v[0:1]  # noqa: E731
    ref = np.stack([ft.jacfwd(one)(X[:, n, :]) for n in range(6)])
    assert_close(J, ref, "float64")
    J_neg = ft.jacfwd(f, batch_axis=-2)(backend.asarray(X))
    assert_close(J_neg, ref, "float64")


def test_argnums_tuple_dict_inputs_aux_and_per_sample_parameters():
    rng = _rng("trees")
    X, P = rng.normal(size=(4, 3)), rng.uniform(0.5, 1.5, size=(4, 3))

    def f(x, p, scale):  # p carries the samples too (per-sample parameters), scale is shared
        return {"y": x * p * scale, "z": ft.sum(x * x, axis=1, keepdims=True)}, "aux"

    J, aux = ft.jacfwd(f, argnums=(0, 1), batch_axis=0, has_aux=True)(X, P, 2.0)
    assert aux == "aux"
    # output structure outside, argument structure inside (as jax.jacfwd)
    Jx = {name: J[name][0] for name in J}
    Jp = {name: J[name][1] for name in J}
    assert Jx["y"].shape == (4, 3, 3) and Jx["z"].shape == (4, 1, 3)
    for n in range(4):
        np.testing.assert_allclose(Jx["y"][n], np.diag(P[n] * 2.0))
        np.testing.assert_allclose(Jp["y"][n], np.diag(X[n] * 2.0))
        np.testing.assert_allclose(Jx["z"][n], 2 * X[n][None, :])
        np.testing.assert_allclose(Jp["z"][n], np.zeros((1, 3)))
    J = ft.jacfwd(lambda d: d["a"] * d["b"], batch_axis=0)({"a": X, "b": P})
    np.testing.assert_allclose(J["a"][1], np.diag(P[1]))
    np.testing.assert_allclose(J["b"][1], np.diag(X[1]))


def test_value_and_chunks_agree():
    rng = _rng("chunks")
    U = rng.normal(size=(9, 3))
    value, J = ft.value_and_jacfwd(lorenz, batch_axis=0)(U)
    np.testing.assert_array_equal(value, to_numpy(lorenz(U)))
    for c in (1, 2, 3):
        np.testing.assert_array_equal(ft.jacfwd(lorenz, batch_axis=0, chunk_size=c)(U), J)


def test_per_sample_hessians(backend):
    rng = _rng("hessian")
    X = rng.normal(size=(5, 3))

    def energy(x):  # per sample scalar
        return ft.sum(ft.sin(x) * x**2, axis=-1)

    H = ft.hessian(energy, batch_axis=0)(backend.asarray(X))
    assert tuple(H.shape) == (5, 3, 3)
    ref = np.stack([ft.hessian(lambda v: ft.sum(ft.sin(v) * v**2))(X[n]) for n in range(5)])
    assert_close(H, ref, "float64")
    Ht = ft.hessian(lambda x: ft.expand_dims(energy(x.T), axis=0), batch_axis=1)(backend.asarray(X.T.copy()))
    assert tuple(Ht.shape) == (5, 1, 3, 3)
    assert_close(Ht[:, 0, ...], ref, "float64")


@pytest.mark.parametrize(
    "name,f",
    [
        ("mean over the batch axis", lambda x: x - ft.mean(x, axis=0)),
        ("batch normalisation", lambda x: (x - ft.mean(x, axis=0)) / ft.std(x, axis=0)),
        ("roll along the batch axis", lambda x: x * ft.roll(x, 1, axis=0)),
        ("sum over the batch axis", lambda x: ft.sum(x, axis=0, keepdims=True) * ft.ones_like(x)),
        ("cumulative sum along it", lambda x: ft.cumulative_sum(x, axis=0)),
    ],
)
def test_mixing_functions_raise(name, f):
    X = _rng(name).normal(size=(6, 3))
    with pytest.raises(ft.NotDifferentiableError, match="samples are not independent.*check=False"):
        ft.jacfwd(f, batch_axis=0)(X)
    # check=False is the user's word that the cross terms may be dropped: it then runs
    J = ft.jacfwd(f, batch_axis=0, check=False)(X)
    assert J.shape == (6, 3, 3)


def test_independence_is_checked_once_per_signature(monkeypatch):
    from fwdtensor.transforms import batched as _batched

    calls = []
    real = _batched.check_independent
    monkeypatch.setattr(_batched, "check_independent", lambda *a: calls.append(1) or real(*a))
    jac = ft.jacfwd(lorenz, batch_axis=0)
    X = np.ones((4, 3))
    jac(X)
    jac(X + 1.0)
    assert len(calls) == 1
    jac(np.ones((5, 3)))
    assert len(calls) == 2


@pytest.mark.parametrize(
    "kwargs,err,match",
    [
        ({"batch_axis": 1.0}, TypeError, "batch_axis must be an integer"),
        ({"batch_axis": True}, TypeError, "batch_axis must be an integer"),
        ({"batch_axis": 0, "sparsity": "detect"}, ValueError, "cannot be combined with sparsity"),
        ({"batch_axis": 0, "holomorphic": True}, ValueError, "cannot be combined with holomorphic"),
    ],
)
def test_bad_options_raise_when_built(kwargs, err, match):
    with pytest.raises(err, match=match):
        ft.jacfwd(lorenz, **kwargs)


def test_bad_shapes_raise_before_work():
    with pytest.raises(ValueError, match="out of range"):
        ft.jacfwd(lorenz, batch_axis=2)(np.ones((4, 3)))
    with pytest.raises(ValueError, match="disagree on the number of samples"):
        ft.jacfwd(lambda a, b: a * b, argnums=(0, 1), batch_axis=0)(np.ones((4, 3)), np.ones((5, 3)))
    with pytest.raises(ValueError, match="every output must carry the samples"):
        ft.jacfwd(lambda x: ft.sum(x), batch_axis=0, check=False)(np.ones((4, 3)))


@pytest.mark.parametrize("axis", [0, 1])
def test_per_sample_gradients(backend, axis):
    rng = _rng(f"grad-{axis}")
    X = rng.normal(size=(6, 3))

    def energy(x):  # one scalar per sample
        return ft.sum(ft.sin(x) * x**2, axis=1 - axis)

    Xb = X if axis == 0 else X.T.copy()
    g = ft.grad(energy, batch_axis=axis)(backend.asarray(Xb))
    assert tuple(g.shape) == (6, 3)
    ref = np.stack([ft.grad(lambda v: ft.sum(ft.sin(v) * v**2))(X[n]) for n in range(6)])
    assert_close(g, ref, "float64")
    value, g2 = ft.value_and_grad(energy, batch_axis=axis)(backend.asarray(Xb))
    assert_close(value, np.sum(np.sin(X) * X**2, axis=1), "float64")
    assert_close(g2, ref, "float64")
    with pytest.raises(ft.NotDifferentiableError, match="not independent"):
        ft.grad(lambda x: energy(x) * ft.sum(x), batch_axis=axis)(backend.asarray(Xb))
