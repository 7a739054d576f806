"""Small programs written only against the Array API standard (``xp = array_namespace(x)``)
run unchanged on duals: their Jacobians (ft.jacfwd) match finite differences of the same
programs run on NumPy, in float64 and float32, batched directions match single ones, on
every backend."""

from __future__ import annotations

import numpy as np
import pytest
from array_api_compat import array_namespace

import fwdtensor as ft
from tests._util import assert_close, central_difference, to_numpy


# --------------------------------------------------------------- programs
def mlp_layer(x, W, b):
    """One dense layer: tanh(W @ x + b)."""
    xp = array_namespace(x, W, b)
    return xp.tanh(xp.matmul(W, x) + b)


def mlp_fixed_weights(x, W, b):
    """The same layer differentiated in x only: W and b stay plain backend arrays."""
    xp = array_namespace(x)
    return xp.tanh(xp.add(xp.matmul(W, x), b))


def heat_periodic(u, r):
    """Three explicit steps of u_t = u_xx on a ring (finite differences with roll)."""
    xp = array_namespace(u)
    for _ in range(3):
        u = u + r * (xp.roll(u, 1) - 2.0 * u + xp.roll(u, -1))
    return u


def heat_dirichlet(u, r):
    """One explicit step with fixed end values, written with slices and concat."""
    xp = array_namespace(u)
    inner = u[1:-1] + r * (u[:-2] - 2.0 * u[1:-1] + u[2:])
    return xp.concat([u[:1], inner, u[-1:]])


def softmax(x):
    """Softmax over the last axis, stabilised by the maximum."""
    xp = array_namespace(x)
    e = xp.exp(x - xp.max(x, axis=-1, keepdims=True))
    return e / xp.sum(e, axis=-1, keepdims=True)


def logsumexp(x):
    """log(sum(exp(x))) computed stably from max, exp, sum and log."""
    xp = array_namespace(x)
    m = xp.max(x)
    return m + xp.log(xp.sum(xp.exp(x - m)))


rng = np.random.default_rng(0)
W0, b0, x0 = rng.normal(size=(3, 4)), rng.normal(size=3), rng.normal(size=4)
u0 = np.sin(np.linspace(0.0, np.pi, 7)) + 0.1 * rng.normal(size=7)
s0 = rng.normal(size=(2, 5))

# (name, program, inputs, argnums, constant-args); constants are passed after the inputs
CASES = [
    ("mlp", mlp_layer, [x0, W0, b0], (0, 1, 2)),
    ("mlp_in_x", mlp_fixed_weights, [x0, W0, b0], (0,)),
    ("heat_periodic", heat_periodic, [u0, 0.2], (0,)),
    ("heat_dirichlet", heat_dirichlet, [u0, 0.2], (0,)),
    ("softmax", softmax, [s0], (0,)),
    ("logsumexp", logsumexp, [s0[0]], (0,)),
]


def _on(backend, args, dtype):
    return [backend.asarray(a, dtype) if isinstance(a, np.ndarray) else a for a in args]


def _reference_jacobian(prog, args, k):
    """d prog / d args[k] by central differences of the NumPy program, out.shape + in.shape."""
    x = args[k]
    cols = []
    for e in np.eye(x.size):
        dirs = [None] * len(args)
        dirs[k] = e.reshape(x.shape)
        cols.append(central_difference(prog, [np.asarray(a) for a in args], dirs))
    J = np.stack(cols, axis=-1)
    return J.reshape(J.shape[:-1] + x.shape)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name,prog,args,argnums", CASES, ids=[c[0] for c in CASES])
def test_jacobian_matches_finite_differences(name, prog, args, argnums, dtype, backend):
    ins = _on(backend, args, dtype)
    jac = ft.jacfwd(prog, argnums=argnums)(*ins)
    value = prog(*ins)
    assert array_namespace(value) is array_namespace(ins[0]), "plain inputs run on the backend itself"
    for i, k in enumerate(argnums):
        J = jac[i] if len(argnums) > 1 or isinstance(jac, tuple) else jac
        ref = _reference_jacobian(prog, args, k)
        assert tuple(J.shape) == ref.shape, (name, k)
        assert J.dtype == backend.dtype(dtype)
        assert_close(J, ref, dtype, f"{name} d/d arg {k} on {backend.name}")


@pytest.mark.parametrize("name,prog,args,argnums", CASES, ids=[c[0] for c in CASES])
def test_batched_directions_equal_single_ones(name, prog, args, argnums, backend):
    ins = _on(backend, args, "float64")
    r = np.random.default_rng(4)
    dirs = [r.normal(size=(3, *args[k].shape)) for k in argnums]

    def f(*xs):
        full = list(ins)
        for k, x in zip(argnums, xs):
            full[k] = x
        return prog(*full)

    primals = tuple(ins[k] for k in argnums)
    out, tb = ft.batched_jvp(f, primals, tuple(backend.asarray(d) for d in dirs))
    for j in range(3):
        _, t = ft.jvp(f, primals, tuple(backend.asarray(d[j]) for d in dirs))
        np.testing.assert_allclose(to_numpy(tb)[j], to_numpy(t), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(to_numpy(out), to_numpy(prog(*ins)), rtol=1e-12)


def test_the_namespace_seen_by_a_program_is_fwdtensor(backend):
    seen = []

    def prog(x):
        seen.append(array_namespace(x))
        return softmax(x)

    ft.jacfwd(prog)(backend.asarray(s0[0]))
    assert seen == [ft]


def test_logsumexp_gradient_is_softmax(backend):
    x = backend.asarray(s0[0])
    g = ft.jacfwd(logsumexp)(x)
    np.testing.assert_allclose(to_numpy(g), to_numpy(softmax(x)), rtol=1e-12)
