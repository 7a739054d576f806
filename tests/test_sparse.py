"""Sparse Jacobians: colouring, compressed forward mode against dense jacfwd and finite
differences, exact structural detection without n x n work, reuse of the colouring, and
bad patterns refused before any work, on every backend."""

from __future__ import annotations

import time
import tracemalloc

import array_api_compat
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fwdtensor as ft
from fwdtensor.transforms.sparse import detect as _detect
from fwdtensor.transforms.sparse import pattern as _pattern
from tests._util import assert_close, central_difference, to_numpy

RNG = np.random.default_rng(11)


def tridiag(x):
    """A nonlinear function with a tridiagonal Jacobian (ends included)."""
    xp = array_api_compat.array_namespace(x)
    mid = x[:-2] - 2.0 * x[1:-1] + x[2:] + x[1:-1] * x[1:-1]
    first = -2.0 * x[:1] + x[1:2] + 0.5 * xp.sin(x[:1])
    last = x[-2:-1] - 2.0 * x[-1:] + 0.5 * xp.exp(x[-1:])
    return xp.concat([first, mid, last])


def burgers(u, nu=0.05, h=0.1):
    """A periodic Burgers residual: cyclic tridiagonal."""
    xp = array_api_compat.array_namespace(u)
    up, um = xp.roll(u, -1), xp.roll(u, 1)
    return u * (up - um) / (2 * h) - nu * (up - 2.0 * u + um) / (h * h)


def tridiag_pattern(n: int) -> np.ndarray:
    return np.abs(np.subtract.outer(np.arange(n), np.arange(n))) <= 1


def as_dense(J) -> np.ndarray:
    if hasattr(J, "toarray"):
        return to_numpy(J.toarray())  # scipy gives NumPy, cupyx gives CuPy
    if hasattr(J, "to_dense"):
        return J.to_dense().numpy()
    return to_numpy(J)


def output_for(backend) -> str:
    return "dense" if backend.name == "array_api_strict" else "sparse"


# ---------------------------------------------------------------- colouring
@pytest.mark.parametrize("n", [3, 4, 10, 1000])
def test_tridiagonal_takes_three_colours_whatever_n(n):
    colors = ft.color_columns(tridiag_pattern(n))
    assert colors.max() + 1 == 3
    assert ft.sparse_jacfwd(tridiag, tridiag_pattern(n)).ncolors == 3


@given(st.integers(1, 12), st.integers(1, 12), st.integers(0, 2**31 - 1), st.floats(0.05, 0.6))
def test_colouring_is_valid(m, n, seed, density):
    P = np.random.default_rng(seed).random((m, n)) < density
    colors = ft.color_columns(P)
    assert colors.shape == (n,)
    for r in range(m):
        cols = np.nonzero(P[r])[0]
        assert len(set(colors[cols].tolist())) == len(cols)  # no two in a row share a colour
    degree = max(1, int((P.T.astype(int) @ P.astype(int) > 0).sum(axis=1).max())) if n else 1
    assert colors.max(initial=-1) + 1 <= degree  # greedy: at most max degree + 1 colours


# ------------------------------------------------------- sparse vs dense
@pytest.mark.parametrize("fn", [tridiag, burgers], ids=["tridiag", "burgers"])
def test_sparse_equals_dense(backend, fn):
    x = backend.asarray(RNG.uniform(-1, 1, 17))
    P = ft.sparsity_pattern(fn, x)
    jac = ft.sparse_jacfwd(fn, P, output=output_for(backend))
    J = jac(x)
    dense = to_numpy(ft.jacfwd(fn)(x))
    np.testing.assert_allclose(as_dense(J), dense, rtol=1e-14, atol=1e-14)
    assert jac.ncolors <= 5  # 3 for the band, at most 2 more where the cycle closes


def test_sparse_matrix_family(backend):
    x = backend.asarray(RNG.uniform(-1, 1, 9))
    jac = ft.sparse_jacfwd(tridiag, tridiag_pattern(9))
    if backend.name == "numpy":
        J = jac(x)
        assert type(J).__module__.startswith("scipy.sparse") and J.format == "csr"
        assert J.nnz == 25
    elif backend.name == "torch":
        assert jac(x).layout.__repr__() == "torch.sparse_csr"
    elif backend.name == "cupy":
        assert type(jac(x)).__module__.startswith("cupyx.scipy.sparse")
    else:
        with pytest.raises(NotImplementedError, match="output='dense'"):
            jac(x)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_sparse_against_finite_differences(backend, dtype):
    x = RNG.uniform(-1, 1, 8)
    J = ft.sparse_jacfwd(burgers, ft.sparsity_pattern(burgers, x), output=output_for(backend))(
        backend.asarray(x, dtype)
    )
    want = np.stack([central_difference(burgers, [x], [e]) for e in np.eye(8)], axis=1)
    assert_close(as_dense(J), want, dtype)


@pytest.mark.parametrize("chunk", [1, 2, 3])
def test_chunked_sparse_equals_unchunked(backend, chunk):
    x = backend.asarray(RNG.uniform(-1, 1, 12))
    P = tridiag_pattern(12)
    out = output_for(backend)
    want = as_dense(ft.sparse_jacfwd(tridiag, P, output=out)(x))
    got = as_dense(ft.sparse_jacfwd(tridiag, P, chunk_size=chunk, output=out)(x))
    np.testing.assert_array_equal(got, want)


def test_multidimensional_input_and_output(backend):
    """The pattern is (out.size, in.size) in C order; dense output keeps out.shape + in.shape."""

    def f(x):
        xp = array_api_compat.array_namespace(x)
        return xp.reshape(x * x, (3, 2)) + 1.0

    x = backend.asarray(RNG.uniform(-1, 1, (2, 3)))
    jac = ft.sparse_jacfwd(f, np.eye(6, dtype=bool), output="dense")
    J = jac(x)
    assert tuple(J.shape) == (3, 2, 2, 3)
    np.testing.assert_allclose(to_numpy(J), to_numpy(ft.jacfwd(f)(x)), rtol=1e-15)
    assert jac.ncolors == 1


def test_seeds_per_call_independent_of_n():
    """A tridiagonal Jacobian costs one pass of 3 directions for any n."""
    for n in (10, 100, 3000):
        calls = []

        def f(x, calls=calls):
            calls.append(x.tangent.shape[0])
            return tridiag(x)

        J = ft.sparse_jacfwd(f, tridiag_pattern(n) if n <= 100 else _band(n))(np.linspace(0, 1, n))
        assert calls == [3]
        assert J.nnz == 3 * n - 2


def _band(n: int):
    sp = pytest.importorskip("scipy.sparse", reason="SciPy builds the large band pattern here")
    return sp.diags([1, 1, 1], [-1, 0, 1], shape=(n, n), format="csr", dtype=bool)


def test_colouring_computed_once_and_reused_in_newton():
    """Newton on F(u) = tridiag(u) - 4u - b (diagonally dominant): one colouring for all steps."""
    spla = pytest.importorskip("scipy.sparse.linalg", reason="SciPy solves the sparse Newton steps")
    n = 200
    b = 0.05 * np.sin(np.linspace(0, 6, n))  # small: Newton from u = 0 converges
    jac = ft.sparse_jacfwd(lambda u: tridiag(u) - 4.0 * u - b, tridiag_pattern(n))
    colors, t_colour = jac.colors, jac.coloring_seconds
    u = np.zeros(n)
    for _ in range(20):
        F, J = jac.value_and_jacobian(u)
        if np.max(np.abs(F)) < 1e-12:
            break
        u = u - spla.spsolve(J.tocsc(), F)
    assert np.max(np.abs(tridiag(u) - 4.0 * u - b)) < 1e-12
    assert jac.colors is colors and jac.coloring_seconds == t_colour and t_colour > 0


def test_jacfwd_sparsity_argument_and_detection(backend):
    x = backend.asarray(RNG.uniform(-1, 1, 10))
    out = output_for(backend)
    if out == "dense":
        jac = ft.sparse_jacfwd(burgers, output="dense")
    else:
        jac = ft.jacfwd(burgers, sparsity="detect")
    assert jac.pattern is None
    J1 = jac(x)
    P = jac.pattern
    assert P == ft.sparsity_pattern(burgers, x) and jac.detection_seconds > 0
    J2 = jac(x)
    assert jac.pattern is P  # detected once, kept
    np.testing.assert_array_equal(as_dense(J1), as_dense(J2))
    if out == "sparse":
        value, J3 = ft.value_and_jacfwd(burgers, sparsity=P)(x)
        np.testing.assert_array_equal(to_numpy(value), to_numpy(burgers(x)))
        np.testing.assert_array_equal(as_dense(J3), as_dense(J1))


def test_has_aux():
    x = RNG.uniform(-1, 1, 6)
    jac = ft.sparse_jacfwd(lambda x: (tridiag(x), {"norm": ft.sum(x * x)}), tridiag_pattern(6), has_aux=True)
    J, aux = jac(x)
    assert not isinstance(aux["norm"], ft.DualTensor)
    np.testing.assert_allclose(float(aux["norm"]), np.sum(x * x))
    np.testing.assert_allclose(J.toarray(), ft.jacfwd(tridiag)(x), rtol=1e-15)


def test_zero_pattern_needs_no_pass(backend):
    calls = []

    def f(x):
        calls.append(type(x).__name__)
        return x[:2] * 0.0 + 1.0

    jac = ft.sparse_jacfwd(f, np.zeros((2, 4), dtype=bool), output="dense")
    J = jac(backend.asarray(np.ones(4)))
    assert jac.ncolors == 0 and len(calls) == 1 and calls[0] != "DualTensor"
    assert tuple(J.shape) == (2, 4) and not np.any(to_numpy(J))


def test_empty_columns_get_no_direction():
    P = np.array([[1, 0, 0, 1], [0, 0, 0, 1]], dtype=bool)  # inputs 1 and 2 are unused
    colors = ft.color_columns(P)
    assert colors.tolist() == [0, -1, -1, 1]
    J = ft.sparse_jacfwd(lambda x: ft.stack([x[0] * x[3], x[3] * 2.0]), P, output="dense")(
        np.arange(1.0, 5.0)
    )
    np.testing.assert_array_equal(J, [[4.0, 0, 0, 1.0], [0, 0, 0, 2.0]])


# -------------------------------------------------------------- detection
def test_detected_patterns_are_exact_and_structural(backend):
    x = backend.asarray(RNG.uniform(-1, 1, 9))
    np.testing.assert_array_equal(ft.sparsity_pattern(tridiag, x).toarray(), tridiag_pattern(9))
    cyc = tridiag_pattern(9)
    cyc[0, -1] = cyc[-1, 0] = True
    np.testing.assert_array_equal(ft.sparsity_pattern(burgers, x).toarray(), cyc)
    # structural: at u = 0 every entry of this Jacobian is 0, yet the dependency is real
    zero = backend.asarray(np.zeros(5))
    P = ft.sparsity_pattern(lambda u: u * array_api_compat.array_namespace(u).roll(u, 1), zero)
    assert not np.any(to_numpy(ft.jacfwd(lambda u: u * ft.roll(u, 1))(zero)))
    np.testing.assert_array_equal(
        P.toarray(), np.eye(5, dtype=bool) | np.eye(5, k=-1, dtype=bool) | np.eye(5, k=4, dtype=bool)
    )


ZOO = {
    "reduce": lambda x: ft.sum(ft.reshape(x, (3, 4)), axis=0),
    "cumsum": lambda x: ft.cumulative_sum(x[:5], axis=0),
    "sort": lambda x: ft.sort(x),
    "take": lambda x: ft.take(x, np.array([3, 1, 1])),
    "stack": lambda x: ft.stack([x[:3], x[3:6]], axis=1),
    "flip": lambda x: ft.flip(ft.reshape(x, (3, 4)), axis=1),
    "where": lambda x: ft.where(x > 1, x, 0.0),
    "matvec": lambda x: ft.matmul(np.arange(24.0).reshape(2, 12), x),
    "vecmat": lambda x: ft.matmul(x[:4], np.ones((4, 3))),
    "outer": lambda x: ft.linalg.outer(x[:3], x[3:5]),
    "solve": lambda x: ft.linalg.solve(np.eye(4) * 3.0 + 1.0, x[:4]),
    "inv": lambda x: ft.linalg.inv(ft.reshape(x[:4], (2, 2)) + 3.0 * ft.eye(2)),
    "diff": lambda x: ft.diff(x),
    "tril": lambda x: ft.tril(ft.reshape(x[:9], (3, 3))),
    "trace": lambda x: ft.linalg.trace(ft.reshape(x[:9], (3, 3))),
    "fft": lambda x: ft.real(ft.fft.fft(x[:6])),
    "fftshift": lambda x: ft.fft.fftshift(x * 2.0),
    "setitem": lambda x: _written(x),
    "tensordot": lambda x: ft.tensordot(ft.reshape(x, (3, 4)), np.ones((4, 2)), axes=1),
    "vecdot": lambda x: ft.vecdot(ft.reshape(x, (3, 4)), ft.reshape(x, (3, 4))),
    "max": lambda x: ft.max(ft.reshape(x, (3, 4)), axis=1),
}


def _written(x):
    y = ft.zeros_like(x)
    y[2:5] = x[:3] * 2.0
    y[0] = x[7]
    return y


@pytest.mark.parametrize("name", sorted(ZOO))
def test_detection_never_misses_a_nonzero(name):
    x = RNG.uniform(0.5, 1.5, 12)
    f = ZOO[name]
    P = ft.sparsity_pattern(f, x).toarray()
    J = np.asarray(ft.jacfwd(f)(x + 0.01)).reshape(P.shape) != 0
    assert not np.any(J & ~P), f"{name}: missed {np.argwhere(J & ~P)}"
    exact = (
        "reduce",
        "take",
        "stack",
        "flip",
        "diff",
        "tril",
        "setitem",
        "cumsum",
        "outer",
        "sort",
        "fftshift",
    )
    if name in exact:
        np.testing.assert_array_equal(P, J)  # exact where no value can vanish


def test_detection_without_quadratic_memory():
    """A banded problem of n = 100 000: index sets, never an n x n array (80 GB)."""
    n = 100_000
    x = np.linspace(0, 1, n)
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        P = ft.sparsity_pattern(burgers, x)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert P.nnz == 3 * n and time.perf_counter() - t0 < 30
    assert peak < 400e6  # O(nnz) bookkeeping: about 100 bytes per nonzero


def test_detection_names_a_function_it_cannot_follow():
    tr = _detect._tracer(array_api_compat.numpy)
    d = tr.deps(np.arange(4).reshape(2, 2), _detect._Sets.identity(2), 2, np.float64)
    with pytest.raises(ft.NotDifferentiableError, match="'linalg.inv'.*pass the sparsity pattern"):
        tr.linalg.inv(d)


def test_detection_bad_outputs_and_inputs():
    with pytest.raises(ft.StructureError, match="single array output"):
        ft.sparsity_pattern(lambda x: (x, x), np.ones(3))
    with pytest.raises(ft.NotDifferentiableError, match="floating"):
        ft.sparsity_pattern(lambda x: x, np.arange(3))
    P = ft.sparsity_pattern(lambda x: np.ones(2), np.ones(3))  # a constant: no entries
    assert P.shape == (2, 3) and P.nnz == 0


# ---------------------------------------------------------------- errors
def _never(x):
    raise AssertionError("the function must not run when the pattern is refused")


def test_pattern_shape_mismatch_before_any_work(backend):
    with pytest.raises(ValueError, match=r"pattern has shape \(4, 4\).*input has 5 elements"):
        ft.sparse_jacfwd(_never, tridiag_pattern(4), output="dense")(backend.asarray(np.ones(5)))
    with pytest.raises(ValueError, match=r"output has 3 elements"):
        ft.sparse_jacfwd(lambda x: x[:3], tridiag_pattern(4), output="dense")(backend.asarray(np.ones(4)))


def test_bad_patterns_and_options():
    with pytest.raises(ValueError, match="2-D"):
        ft.sparse_jacfwd(_never, np.ones(4, dtype=bool))
    with pytest.raises(TypeError, match="sparsity must be"):
        ft.sparse_jacfwd(_never, {"not": "a pattern"})
    with pytest.raises(ValueError, match="output must be"):
        ft.sparse_jacfwd(_never, np.eye(2, dtype=bool), output="coo")
    with pytest.raises(TypeError, match="one array argument"):
        ft.sparse_jacfwd(_never, np.eye(2, dtype=bool), argnums=(0,))
    with pytest.raises(ValueError, match="chunk_size"):
        ft.jacfwd(_never, sparsity=np.eye(2, dtype=bool), chunk_size=0)
    with pytest.raises(ValueError, match="'detect'"):
        ft.jacfwd(_never, sparsity="auto")
    with pytest.raises(ft.StructureError, match="single array output"):
        ft.sparse_jacfwd(lambda x: {"a": x}, np.eye(2, dtype=bool))(np.ones(2))
    with pytest.raises(ft.NotDifferentiableError, match="floating"):
        ft.sparse_jacfwd(_never, np.eye(2, dtype=bool))(np.arange(2))


def test_scipy_patterns_and_pattern_object():
    sp = pytest.importorskip("scipy.sparse", reason="SciPy patterns need SciPy")
    A = sp.coo_array(tridiag_pattern(5).astype(float))
    A.data[0] = 0.0  # a stored zero is not structure
    P = _pattern.as_pattern(A)
    assert P.nnz == 12 and P.shape == (5, 5)
    assert P == _pattern.as_pattern(P.to_scipy())
    assert P != _pattern.as_pattern(tridiag_pattern(5)) and "nnz=12" in repr(P)
    J = ft.sparse_jacfwd(tridiag, sp.csr_matrix(tridiag_pattern(5)))(np.linspace(0, 1, 5))
    np.testing.assert_allclose(J.toarray(), ft.jacfwd(tridiag)(np.linspace(0, 1, 5)))


def test_pattern_converts_to_a_dense_boolean_array():
    pat = ft.sparsity_pattern(lambda x: x[1:] - x[:-1] ** 2, np.linspace(0.0, 1.0, 6))
    dense = np.asarray(pat)
    assert dense.dtype == bool and dense.shape == (5, 6)
    np.testing.assert_array_equal(dense, np.eye(5, 6, dtype=bool) | np.eye(5, 6, k=1, dtype=bool))
