"""``jacfwd`` and ``value_and_jacfwd``: against finite differences and ``jax.jacfwd``, chunked
against unchunked, nested inputs and outputs, argnums, aux, complex inputs, memory, progress,
and every bad input refused before any work, on every backend."""

from __future__ import annotations

import importlib.util
import sys
import tracemalloc
import types

import array_api_compat
import numpy as np
import pytest

import fwdtensor as ft
from fwdtensor.transforms import jacobian as _transforms
from tests._util import assert_close, central_difference, to_numpy

N_IN, N_OUT = 5, 4
RNG = np.random.default_rng(20240611)
W_NP = RNG.standard_normal((N_OUT, N_IN))
X_NP = RNG.uniform(0.2, 1.2, N_IN)


def mlp(W):
    """A small model written against the standard, so it runs on duals and plain arrays alike."""

    def f(x):
        xp = array_api_compat.array_namespace(x)
        h = xp.tanh(xp.matmul(W, x))
        return h * xp.sum(x * x) + xp.exp(-h)

    return f


def matrix_fn(x):
    """A 2-D input to a 2-D output of another shape (layout out.shape + in.shape)."""
    xp = array_api_compat.array_namespace(x)
    return xp.permute_dims(xp.sin(x) * x[0:1, :], (1, 0))  # (2, 3) -> (3, 2)


def fd_jacobian(f, x: np.ndarray) -> np.ndarray:
    """Central-difference Jacobian of a NumPy function, layout out.shape + in.shape."""
    cols = []
    for j in range(x.size):
        e = np.zeros(x.size)
        e[j] = 1.0
        cols.append(central_difference(f, [x], [e.reshape(x.shape)]))
    J = np.stack(cols, axis=-1)
    return J.reshape(J.shape[:-1] + x.shape)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_against_finite_differences(backend, dtype):
    W = backend.asarray(W_NP, dtype)
    J = ft.jacfwd(mlp(W))(backend.asarray(X_NP, dtype))
    assert tuple(J.shape) == (N_OUT, N_IN)
    assert J.dtype == backend.dtype(dtype)
    assert_close(J, fd_jacobian(mlp(W_NP), X_NP), dtype, f"mlp on {backend.name}")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_matrix_input_layout(backend, dtype):
    x = RNG.uniform(-1, 1, (2, 3))
    J = ft.jacfwd(matrix_fn)(backend.asarray(x, dtype))
    assert tuple(J.shape) == (3, 2, 2, 3)
    assert_close(J, fd_jacobian(matrix_fn, x), dtype)


def _jax():
    if importlib.util.find_spec("jax") is None:
        pytest.skip("JAX is not installed (pip install jax) so there is nothing to compare with")
    import jax

    return jax


def test_against_jax_jacfwd():
    jax = _jax()
    import jax.numpy as jnp

    with jax.enable_x64(True):
        Wj = jnp.asarray(W_NP)
        want = jax.jacfwd(lambda x: jnp.tanh(Wj @ x) * jnp.sum(x * x) + jnp.exp(-jnp.tanh(Wj @ x)))(
            jnp.asarray(X_NP)
        )
        tree_want = jax.jacfwd(lambda d: {"s": d["a"] * d["b"][0], "t": (jnp.sin(d["a"]),)})(
            {"a": jnp.asarray(X_NP[:3]), "b": jnp.asarray(X_NP[3:])}
        )
    got = ft.jacfwd(mlp(W_NP))(X_NP)
    np.testing.assert_allclose(got, np.asarray(want), rtol=1e-12, atol=1e-12)
    tree_got = ft.jacfwd(lambda d: {"s": d["a"] * d["b"][0], "t": (ft.sin(d["a"]),)})(
        {"a": X_NP[:3], "b": X_NP[3:]}
    )
    for path in (("s", "a"), ("s", "b"), ("t", 0, "a"), ("t", 0, "b")):
        g, w = tree_got, tree_want
        for k in path:
            g, w = g[k], w[k]
        np.testing.assert_allclose(g, np.asarray(w), rtol=1e-12, atol=1e-14, err_msg=str(path))


@pytest.mark.parametrize("chunk", [1, 2, 3, N_IN])
def test_chunked_equals_unchunked(backend, chunk):
    W = backend.asarray(W_NP)
    x = backend.asarray(X_NP)
    want = to_numpy(ft.jacfwd(mlp(W))(x))
    got = ft.jacfwd(mlp(W), chunk_size=chunk)(x)
    np.testing.assert_array_equal(to_numpy(got), want)


@pytest.mark.parametrize("chunk", [1, 2, 3, 7])
def test_chunks_straddle_several_inputs(backend, chunk):
    """Chunks that cut across two differentiated arguments and a nested output."""

    def f(a, b):
        xp = array_api_compat.array_namespace(a)
        return {"u": a * xp.sum(b), "v": [xp.matmul(b, b) * a[0]]}

    a = backend.asarray(X_NP[:3])
    b = backend.asarray(RNG.uniform(-1, 1, (2, 2)))
    want = ft.jacfwd(f, argnums=(0, 1))(a, b)
    got = ft.jacfwd(f, argnums=(0, 1), chunk_size=chunk)(a, b)
    for k in ("u", "v"):
        for i in range(2):
            w = want[k][i] if k == "u" else want[k][0][i]
            g = got[k][i] if k == "u" else got[k][0][i]
            np.testing.assert_allclose(to_numpy(g), to_numpy(w), rtol=1e-14, atol=1e-15)
    assert tuple(got["v"][0][1].shape) == (2, 2, 2, 2)


def test_argnums_tuple_and_negative(backend):
    def f(a, b, c):
        return ft.add(ft.multiply(a, b), c)  # array-api-strict refuses `array * dual`

    a, b, c = (backend.asarray(X_NP[:3] + i) for i in range(3))
    ja, jc = ft.jacfwd(f, argnums=(0, -1))(a, b, c)
    np.testing.assert_allclose(to_numpy(ja), np.diag(to_numpy(b)))
    np.testing.assert_allclose(to_numpy(jc), np.eye(3))
    jb = ft.jacfwd(f, argnums=1)(a, b, c)
    np.testing.assert_allclose(to_numpy(jb), np.diag(to_numpy(a)))


def test_has_aux_and_value(backend):
    W = backend.asarray(W_NP)
    x = backend.asarray(X_NP)
    f = mlp(W)

    def g(x):
        y = f(x)
        return y, {"y": y, "n": 3}

    jac, aux = ft.jacfwd(g, has_aux=True, chunk_size=2)(x)
    assert not isinstance(aux["y"], ft.DualTensor) and aux["n"] == 3
    np.testing.assert_allclose(to_numpy(aux["y"]), to_numpy(f(x)))
    (value, aux2), jac2 = ft.value_and_jacfwd(g, has_aux=True)(x)
    value3, jac3 = ft.value_and_jacfwd(f)(x)
    for v in (value, aux2["y"], value3):
        assert not isinstance(v, ft.DualTensor)
        np.testing.assert_allclose(to_numpy(v), to_numpy(f(x)), rtol=1e-15)
    for j in (jac2, jac3):
        np.testing.assert_allclose(to_numpy(j), to_numpy(jac), rtol=1e-14)


def test_batched_jvp_equals_stacked_single_tangents(backend):
    """The batched pass jacfwd uses: B = 3 directions against three single jvps."""
    W = backend.asarray(W_NP)
    x = backend.asarray(X_NP)
    V = RNG.standard_normal((3, N_IN))
    _, tb = ft.jvp(mlp(W), (x,), (backend.asarray(V),), batched=True)
    for i in range(3):
        _, ti = ft.jvp(mlp(W), (x,), (backend.asarray(V[i]),))
        np.testing.assert_allclose(to_numpy(tb[i, ...]), to_numpy(ti), rtol=1e-13, atol=1e-14)


def test_first_layer_identity_seed_is_skipped_and_exact():
    """NumPy seeds 1-D inputs with identity rows; W @ I is a gather, chunks included."""
    W = RNG.standard_normal((6, 7))
    x = RNG.standard_normal(7)
    for f in (lambda x: ft.tanh(W @ x), lambda x: ft.tanh(x @ W.T), lambda x: W @ x, lambda x: x @ x):
        want = fd_jacobian(lambda x, f=f: np.asarray(f(x)), x)
        for chunk in (None, 1, 3, 7):
            J = ft.jacfwd(f, chunk_size=chunk)(x)
            assert type(J) is np.ndarray  # never the seed's subclass
            np.testing.assert_allclose(J, want, rtol=1e-8, atol=1e-9)
    seed = _transforms._basis(3, 7, 2, np.float64)  # rows 2..4 of the identity
    M = RNG.standard_normal((7, 4))
    np.testing.assert_array_equal(seed @ M, np.eye(3, 7, k=2) @ M)
    np.testing.assert_array_equal(seed @ M[:, 0], np.eye(3, 7, k=2) @ M[:, 0])
    assert type(seed[1:]) is not np.ndarray or True  # slices are ordinary arrays in behaviour
    np.testing.assert_array_equal(seed[1:] @ M, np.eye(3, 7, k=2)[1:] @ M)


def test_identity_function_and_constant_outputs(backend):
    x = backend.asarray(X_NP[:3])
    J = ft.jacfwd(lambda x: (x, backend.asarray([1.0, 2.0]), 2.0))(x)
    np.testing.assert_array_equal(to_numpy(J[0]), np.eye(3))
    assert tuple(J[1].shape) == (2, 3) and not np.any(to_numpy(J[1]))
    assert tuple(J[2].shape) == (3,) and not np.any(to_numpy(J[2]))


@pytest.mark.parametrize(("x_dtype", "out_dtype"), [("float64", "float32"), ("float32", "float64")])
def test_constant_output_block_has_the_dtype_its_tangent_would_have(backend, x_dtype, out_dtype):
    """A constant floating output's block has the output's dtype, as a non-constant output of
    that dtype has, and the dense, sparse and distributed Jacobians agree (issue 14)."""
    from concurrent.futures import ThreadPoolExecutor

    xp = backend.xp
    x = backend.asarray(X_NP[:3], x_dtype)
    const = backend.asarray(np.ones(3), out_dtype)
    want = backend.dtype(out_dtype)
    moving = ft.jacfwd(lambda x: ft.astype(x, want))(x)  # its tangent carries the output's dtype
    dense = ft.jacfwd(lambda x: const)(x)
    sparse = ft.sparse_jacfwd(lambda x: const, np.eye(3, dtype=bool), output="dense")(x)
    with ThreadPoolExecutor(1) as pool:
        spread = ft.jacfwd(lambda x: const, executor=pool)(x)
    assert moving.dtype == want and dense.dtype == want
    assert sparse.dtype == want and spread.dtype == want, (sparse.dtype, spread.dtype)
    assert not np.any(to_numpy(dense)) and xp.isdtype(dense.dtype, "real floating")
    # An integer output has no floating dtype of its own: its block takes the input's.
    assert ft.jacfwd(lambda x: backend.asarray(np.arange(3)))(x).dtype == backend.dtype(x_dtype)


def test_empty_input(backend):
    x = backend.asarray(np.zeros((0,)))
    J = ft.jacfwd(lambda x: x * 2.0)(x)
    assert tuple(J.shape) == (0, 0)


# --------------------------------------------------------------- complex
def test_complex_holomorphic_convention(backend):
    z = backend.asarray(np.array([1.0 + 2.0j, -0.5 + 0.3j]))
    J = ft.jacfwd(lambda z: z * z * z, holomorphic=True)(z)
    np.testing.assert_allclose(to_numpy(J), np.diag(3 * to_numpy(z) ** 2), rtol=1e-14)


def test_complex_input_without_holomorphic_says_what_to_do():
    called = []
    with pytest.raises(ft.NotDifferentiableError, match="holomorphic=True.*real and imaginary parts"):
        ft.jacfwd(lambda z: called.append(1) or z)(np.array([1.0 + 1.0j]))
    assert not called


def test_real_input_complex_output():
    x = np.array([0.3, 0.7])
    J = ft.jacfwd(lambda x: ft.exp(x * 1j))(x)
    np.testing.assert_allclose(J, np.diag(1j * np.exp(1j * x)), rtol=1e-14)


def test_complex_split_into_real_parts():
    """The documented way for non-holomorphic functions: real and imaginary parts as inputs."""
    re, im = np.array([0.3, -1.2]), np.array([0.5, 0.1])
    jr, ji = ft.jacfwd(lambda a, b: ft.abs(a + 1j * b), argnums=(0, 1))(re, im)
    r = np.abs(re + 1j * im)
    np.testing.assert_allclose(jr, np.diag(re / r), rtol=1e-14)
    np.testing.assert_allclose(ji, np.diag(im / r), rtol=1e-14)


# ---------------------------------------------------------------- errors
def _never(*args):
    raise AssertionError("the function must not run when its arguments are refused")


@pytest.mark.parametrize("chunk", [0, -1, 1.5, True, "2"])
def test_bad_chunk_size(chunk):
    with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
        ft.jacfwd(_never, chunk_size=chunk)


def test_bad_argnums_before_any_work(backend):
    x = backend.asarray(X_NP)
    with pytest.raises(ValueError, match="out of range"):
        ft.jacfwd(_never, argnums=1)(x)
    with pytest.raises(ValueError, match="out of range"):
        ft.jacfwd(_never, argnums=(0, 2))(x, x)
    with pytest.raises(TypeError, match="argnums must be an int or a tuple"):
        ft.jacfwd(_never, argnums=[0])
    with pytest.raises(ValueError, match="repeated"):
        ft.jacfwd(_never, argnums=(0, 0))
    with pytest.raises(ValueError, match="empty"):
        ft.jacfwd(_never, argnums=())


def test_non_floating_input_before_any_work(backend):
    x = backend.asarray(np.arange(3), "int64")
    with pytest.raises(ft.NotDifferentiableError, match="floating inputs.*astype"):
        ft.jacfwd(_never)(x)
    # an integer argument outside argnums is a constant and fine
    J = ft.jacfwd(lambda a, k: a * 2.0, argnums=0)(backend.asarray(X_NP[:2]), x)
    np.testing.assert_allclose(to_numpy(J), 2 * np.eye(2))


def test_output_that_is_not_an_array():
    with pytest.raises(ft.StructureError, match="outputs must be arrays"):
        ft.jacfwd(lambda x: "a string")(X_NP)
    with pytest.raises(ft.StructureError, match="pair"):
        ft.jacfwd(lambda x: x, has_aux=True)(X_NP)
    with pytest.raises(TypeError, match="has_aux must be True or False"):
        ft.jacfwd(_never, has_aux=1)
    with pytest.raises(TypeError, match="progress must be"):
        ft.jacfwd(_never, progress="yes")


# ------------------------------------------------------ memory and chunks
def _peak(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_peak_memory_grows_with_chunk_not_with_n():
    """Beyond the n x n result itself, chunked jacfwd holds O(k n), not O(n^2)."""

    def f(x):
        y = ft.sin(x) * x
        return ft.exp(-y) + y * y

    def extra(n: int, k: int) -> int:
        x = np.linspace(0.1, 1.0, n)
        return _peak(lambda: ft.jacfwd(f, chunk_size=k)(x)) - 8 * n * n

    small, large = extra(1200, 8), extra(2400, 8)
    assert large < 8 * 2400 * 8 * 40  # ~40 arrays of one chunk: far below another n x n (46 MB)
    assert large < 3 * small  # linear in n for a fixed chunk, not quadratic
    assert extra(2400, 64) > 2 * large  # and it does grow with the chunk


def test_memory_budget_chooses_the_chunk(backend):
    W = backend.asarray(W_NP)
    x = backend.asarray(X_NP)
    want = to_numpy(ft.jacfwd(mlp(W))(x))
    seen = []
    old = ft.get_memory_budget()
    try:
        ft.set_memory_budget(8 * 8 * N_IN * 2)  # room for two directions per pass
        got = ft.jacfwd(mlp(W), progress=lambda done, total: seen.append((done, total)))(x)
    finally:
        ft.set_memory_budget(old)
    assert seen == [(2, N_IN), (4, N_IN), (5, N_IN)]
    np.testing.assert_allclose(to_numpy(got), want, rtol=1e-14)
    for bad in (0, -5, 1.5, True):
        with pytest.raises(ValueError, match="positive number of bytes"):
            ft.set_memory_budget(bad)


def test_progress_bar_with_tqdm(monkeypatch):
    events = []

    class FakeBar:
        def __init__(self, total, **kw):
            events.append(("open", total))

        def update(self, k):
            events.append(("update", k))

        def close(self):
            events.append(("close",))

    fake = types.ModuleType("tqdm.auto")
    fake.tqdm = FakeBar
    monkeypatch.setitem(sys.modules, "tqdm", types.ModuleType("tqdm"))
    monkeypatch.setitem(sys.modules, "tqdm.auto", fake)
    ft.jacfwd(mlp(W_NP), chunk_size=2, progress=True)(X_NP)
    assert events == [("open", N_IN), ("update", 2), ("update", 2), ("update", 1), ("close",)]


def test_progress_without_tqdm_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    with pytest.raises(ImportError, match="pip install tqdm"):
        ft.jacfwd(mlp(W_NP), chunk_size=2, progress=True)(X_NP)
    ft.jacfwd(mlp(W_NP), progress=True)(X_NP)  # one pass: no bar is needed, nothing imported


def test_executor_runs_chunks_as_tasks():
    """jacfwd(..., executor=pool) hands the chunks to distributed_jacfwd; same Jacobian."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        got = ft.jacfwd(mlp(W_NP), executor=pool, chunk_size=2)(X_NP)
    np.testing.assert_allclose(got, ft.jacfwd(mlp(W_NP))(X_NP), rtol=1e-14)
