"""One memory budget for every transform (nested ones included), results too large to fit,
the contract of ``derivative``, integral parameters of any type, the budget's environment
variable, ``custom_jvp`` rules checked against their function, and ``jacfwd``'s option
combinations."""

from __future__ import annotations

import subprocess
import sys
import tracemalloc
import zlib

import numpy as np
import pytest

import fwdtensor as ft
from fwdtensor.core import budget as _budget
from tests._util import to_numpy

RNG = np.random.default_rng(zlib.crc32(b"test_budget"))


@pytest.fixture
def budget():
    """Set the memory budget for one test and restore it afterwards."""
    old = ft.get_memory_budget()
    yield ft.set_memory_budget
    ft.set_memory_budget(old)


def _peak(fn):
    """Peak traced bytes (NumPy's allocations are traced) of ``fn()``, and its result."""
    fn()  # warm caches (identity seeds, dtype tables) so they do not count
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        res = fn()
        return tracemalloc.get_traced_memory()[1], res
    finally:
        tracemalloc.stop()


def _nbytes(tree) -> int:
    leaves = tree if isinstance(tree, (tuple, list)) else (tree,)
    return sum(np.asarray(a).nbytes for a in leaves)


def scalar_f(x):
    return ft.sum(ft.sin(x) * x**3)


def vector_g(x):
    return ft.sin(x) * x**3


W = np.linspace(0.5, 1.5, 2000)


def curve(t):
    return ft.sin(t * W) * ft.exp(t * W)


CASES = {
    # name: (budget, transform, argument, the primal evaluation)
    "hessian": (1 << 20, lambda: ft.hessian(scalar_f), np.linspace(0.1, 1, 96), scalar_f),
    "hessian_small_budget": (256 << 10, lambda: ft.hessian(scalar_f), np.linspace(0.1, 1, 64), scalar_f),
    "jacfwd_jacfwd": (1 << 20, lambda: ft.jacfwd(ft.jacfwd(vector_g)), np.linspace(0.1, 1, 64), vector_g),
    "derivative_order_3": (512 << 10, lambda: ft.derivative(curve, order=3), 0.7, curve),
    "value_and_jacfwd": (
        256 << 10,
        lambda: ft.value_and_jacfwd(vector_g),
        np.linspace(0.1, 1, 256),
        vector_g,
    ),
    "grad": (256 << 10, lambda: ft.grad(scalar_f), np.linspace(0.1, 1, 2000), scalar_f),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_peak_within_budget_plus_result_and_primal(budget, name):
    """The issue's bound: peak <= budget + result + one primal evaluation's own peak."""
    nbudget, make, x, primal = CASES[name]
    budget(nbudget)
    primal_peak, _ = _peak(lambda: primal(np.asarray(x)))
    peak, res = _peak(lambda: make()(x))
    result = _nbytes(res)
    assert peak <= nbudget + result + primal_peak, (
        f"{name}: peak {peak} B > budget {nbudget} + result {result} + primal {primal_peak}"
    )


def test_nested_results_match_the_unbudgeted_ones(budget):
    x = RNG.uniform(0.1, 1, 40)
    want_h = ft.hessian(scalar_f)(x)
    want_jj = ft.jacfwd(ft.jacfwd(vector_g))(x)
    budget(64 << 10)
    np.testing.assert_allclose(ft.hessian(scalar_f)(x), want_h, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(ft.jacfwd(ft.jacfwd(vector_g))(x), want_jj, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(
        np.diagonal(want_h), 6 * x * np.sin(x) + 6 * x**2 * np.cos(x) - x**3 * np.sin(x)
    )


def test_inner_shrink_is_not_swallowed_by_except_exception(budget):
    """An outer pass gives way through user code that catches Exception."""
    x = RNG.uniform(0.1, 1, 64)
    want = ft.hessian(scalar_f)(x)

    def guarded(v):
        try:
            return ft.jacfwd(scalar_f)(v)
        except Exception:  # noqa: BLE001  (the point of the test)
            raise AssertionError("the budget's signal reached user code") from None

    budget(256 << 10)
    np.testing.assert_allclose(ft.jacfwd(guarded)(x), want, rtol=1e-13, atol=1e-15)


def test_memory_budget_of_a_bench_script_runs():
    out = subprocess.run(
        [sys.executable, "benchmarks/bench_memory.py", "--quick"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "hessian" in out.stdout and "within" in out.stdout


# ------------------------------------------------------- too large to fit
def test_result_that_cannot_fit_is_refused_before_the_jacobian(budget, monkeypatch):
    budget(1 << 20)
    monkeypatch.setattr(_budget, "available_memory", lambda x: 16 << 30)
    calls = []

    def f(x):
        calls.append(int(x.tangent.shape[0]))
        return x * 2.0

    with pytest.raises(
        ft.ResultTooLargeError, match=r"298\.0 GiB.*16\.0 GiB.*sparse_jacfwd.*jvp.*chunk_size"
    ) as e:
        ft.jacfwd(f)(np.zeros(200_000))
    assert isinstance(e.value, MemoryError)
    assert calls == [1]  # one pass of one direction (the budget's), then the refusal


def test_result_that_fits_memory_but_not_the_budget_is_chunked(budget, monkeypatch):
    monkeypatch.setattr(_budget, "available_memory", lambda x: 1 << 30)
    x = RNG.uniform(-1, 1, 300)
    want = ft.jacfwd(ft.sin)(x)
    budget(64 << 10)
    seen = []
    got = ft.jacfwd(ft.sin, progress=lambda done, total: seen.append(done))(x)
    assert len(seen) > 10 and seen[-1] == 300
    np.testing.assert_array_equal(got, want)


def test_unknown_available_memory_never_refuses(monkeypatch):
    monkeypatch.setattr(_budget, "CHECK_FROM", 0)  # check even these tiny results
    monkeypatch.setattr(_budget, "available_memory", lambda x: None)
    assert ft.jacfwd(ft.sin)(np.zeros(3)).shape == (3, 3)
    monkeypatch.setattr(_budget, "available_memory", lambda x: 50)
    with pytest.raises(ft.ResultTooLargeError, match="shape \\(3, 3\\)"):
        ft.jacfwd(ft.sin)(np.zeros(3))
    with pytest.raises(ft.ResultTooLargeError):
        ft.hessian(scalar_f)(np.zeros(3))


def test_available_memory_is_read_from_the_system():
    avail = _budget.available_memory(np.zeros(1))
    assert avail is None or avail > 0
    assert "ResultTooLargeError" in ft.__all__


# ------------------------------------------------------------ derivative
def test_derivative_takes_one_scalar(backend):
    with pytest.raises(TypeError, match="0-d array.*shape \\(2,\\).*jacfwd"):
        ft.derivative(lambda x: ft.sum(x**2))(np.array([1.0, 2.0]))
    with pytest.raises(TypeError, match="jacfwd"):
        ft.derivative(ft.sin, order=2)(backend.asarray(np.ones((2, 2))))
    with pytest.raises(TypeError, match="jacfwd"):
        ft.derivative(ft.sin)("1.0")
    x = backend.asarray(np.array(0.4))
    np.testing.assert_allclose(to_numpy(ft.derivative(ft.sin)(x)), np.cos(0.4), rtol=1e-15)
    np.testing.assert_allclose(float(ft.derivative(ft.sin)(0.4)), np.cos(0.4), rtol=1e-15)
    # any output: a vector function of one scalar
    got = ft.derivative(lambda t: ft.stack([t * t, ft.sin(t)]))(x)
    np.testing.assert_allclose(to_numpy(got), [0.8, np.cos(0.4)], rtol=1e-15)
    # a 0-d dual (derivative inside another transform)
    np.testing.assert_allclose(ft.jacfwd(lambda t: ft.derivative(lambda s: s**3)(t))(0.5), 3.0, rtol=1e-15)


# --------------------------------------------------- integral parameters
def test_any_integral_type_is_taken(budget):
    x, y = RNG.uniform(-1, 1, 3), RNG.uniform(-1, 1, 3)

    def f(a, b):
        return a * b * b

    want = ft.jacfwd(f, argnums=1)(x, y)
    np.testing.assert_array_equal(ft.jacfwd(f, argnums=np.int64(1))(x, y), want)
    both = ft.jacfwd(f, argnums=(np.int32(0), np.int64(1)), chunk_size=np.int64(2))(x, y)
    np.testing.assert_array_equal(both[1], want)
    np.testing.assert_array_equal(ft.value_and_jacfwd(f, argnums=np.int16(1))(x, y)[1], want)
    np.testing.assert_array_equal(
        ft.hessian(lambda a, b: ft.sum(f(a, b)), argnums=np.int64(1))(x, y).shape, (3, 3)
    )
    jac = ft.sparse_jacfwd(lambda a, b: a * b, np.eye(3, dtype=bool), argnums=np.int64(1))
    np.testing.assert_array_equal(jac(x, y).toarray(), np.diag(x))
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        dist = ft.distributed_jacfwd(f, argnums=np.int64(1), executor=pool, chunk_size=np.int64(2))
        np.testing.assert_array_equal(dist(x, y), want)
    budget(np.int64(1 << 20))
    assert ft.get_memory_budget() == 1 << 20 and type(ft.get_memory_budget()) is int
    assert float(ft.derivative(lambda t: t**3, order=np.int8(2))(2.0)) == 12.0
    sq = ft.custom_jvp(lambda k, v: v**k, nondiff_argnums=(np.int64(0),))
    sq.defjvp(lambda k, p, t: (p[0] ** k, k * p[0] ** (k - 1) * t[0]))
    assert float(ft.derivative(lambda v: sq(2, v))(3.0)) == 6.0


@pytest.mark.parametrize("bad", [True, 1.0, "1", None])
def test_bool_and_float_are_refused(bad):
    with pytest.raises(TypeError, match="argnums must be an int"):
        ft.jacfwd(ft.sin, argnums=bad)
    with pytest.raises(TypeError, match="argnums must be an int"):
        ft.jacfwd(ft.sin, argnums=(0, bad))
    with pytest.raises(TypeError, match="argnums"):
        ft.grad(ft.sin, argnums=bad)
    if bad is not None:
        with pytest.raises(TypeError, match="chunk_size must be a positive integer"):
            ft.jacfwd(ft.sin, chunk_size=bad)
        with pytest.raises(TypeError, match="order must be a non-negative integer"):
            ft.derivative(ft.sin, order=bad)
    with pytest.raises(TypeError, match="memory budget must be a positive number of bytes"):
        ft.set_memory_budget(bad)
    with pytest.raises(TypeError, match="nondiff_argnums"):
        ft.custom_jvp(lambda x: x, nondiff_argnums=(bad,))
    with pytest.raises(TypeError, match="argnums"):
        ft.sparse_jacfwd(ft.sin, np.eye(2, dtype=bool), argnums=bad)


def test_bad_values_are_refused():
    for bad in (0, -5, np.int64(0)):
        with pytest.raises(ValueError, match="memory budget must be a positive number of bytes"):
            ft.set_memory_budget(bad)
        with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
            ft.jacfwd(ft.sin, chunk_size=bad)
    with pytest.raises(ValueError, match="order must be a non-negative integer, got -1"):
        ft.derivative(ft.sin, order=np.int64(-1))


# ------------------------------------------------------- the environment
@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("512MiB", 512 * 2**20),
        ("1GB", 10**9),
        ("2e9", 2 * 10**9),
        ("1048576", 1048576),
        ("64 KiB", 64 * 1024),
        ("3kB", 3000),
        ("2TiB", 2 * 2**40),
        ("1.5GiB", 3 * 2**29),
    ],
)
def test_budget_environment_units(monkeypatch, text, value):
    monkeypatch.setenv("FWDTENSOR_MEMORY_BUDGET", text)
    monkeypatch.setattr(_budget, "_value", [None])
    assert ft.get_memory_budget() == value


@pytest.mark.parametrize("text", ["-5", "0", "abc", "1XB", "", "0.1"])
def test_budget_environment_nonsense_at_first_use(monkeypatch, text):
    monkeypatch.setenv("FWDTENSOR_MEMORY_BUDGET", text)
    monkeypatch.setattr(_budget, "_value", [None])
    with pytest.raises(ValueError, match="FWDTENSOR_MEMORY_BUDGET=.*positive number of bytes.*512MiB"):
        ft.get_memory_budget()
    with pytest.raises(ValueError, match="FWDTENSOR_MEMORY_BUDGET"):
        ft.jacfwd(ft.sin)(np.ones(3))


def test_budget_environment_is_not_read_at_import():
    code = (
        "import fwdtensor as ft\n"
        "try:\n    ft.get_memory_budget()\nexcept ValueError as e:\n    print('refused', e)\n"
    )
    env = {"FWDTENSOR_MEMORY_BUDGET": "1 gigabyte", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("refused FWDTENSOR_MEMORY_BUDGET='1 gigabyte'")
    env["FWDTENSOR_MEMORY_BUDGET"] = "1GB"
    code = "import fwdtensor as ft; print(ft.get_memory_budget())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.stdout.strip() == "1000000000", out.stderr


# ------------------------------------------------------------ custom_jvp
def test_custom_jvp_of_a_non_callable():
    with pytest.raises(TypeError, match="custom_jvp wraps a function, got int 3"):
        ft.custom_jvp(3)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (lambda p, t: ((p[0], p[0]), (t[0], t[0])), "structure.*itself returns"),
        (lambda p, t: (p[0][:2], t[0][:2]), "shape \\(2,\\).*returns shape \\(3,\\)"),
        (lambda p, t: (p[0].astype(np.float32), t[0].astype(np.float32)), "dtype float32.*dtype float64"),
        (lambda p, t: (ft.sum(p[0]), ft.sum(t[0])), "shape \\(\\).*returns shape \\(3,\\)"),
    ],
)
def test_custom_jvp_rule_that_disagrees_with_its_function(rule, message):
    @ft.custom_jvp
    def twice(x):
        return 2.0 * x

    twice.defjvp(rule)
    with pytest.raises(ft.StructureError, match="jvp rule of twice.*" + message):
        ft.jacfwd(twice)(np.ones(3))
    with pytest.raises(ft.StructureError, match="twice"):
        ft.jvp(twice, (np.ones(3),), (np.ones(3),))


def test_custom_jvp_tangent_disagreeing_with_the_primal():
    @ft.custom_jvp
    def twice(x):
        return 2.0 * x

    twice.defjvp(lambda p, t: (2.0 * p[0], (2.0 * t[0])[:2]))
    with pytest.raises(ft.TangentError, match="twice.*shape \\(2,\\).*\\(3,\\)"):
        ft.jvp(twice, (np.ones(3),), (np.ones(3),))


def test_custom_jvp_checks_its_function_once_per_signature():
    runs = []

    @ft.custom_jvp
    def f(x):
        runs.append(tuple(x.shape))
        return ft.sin(x)

    f.defjvp(lambda p, t: (ft.sin(p[0]), ft.cos(p[0]) * t[0]))
    for _ in range(3):
        ft.jacfwd(f)(np.ones(3))
    ft.jacfwd(f)(np.ones(4))
    assert runs == [(3,), (4,)]


# ------------------------------------------------------ jacfwd's options
EYE = np.eye(3, dtype=bool)
Z = np.array([1 + 2j, -0.5 + 1j, 3 - 1j])


def square(z):
    return z * z


def test_sparsity_with_holomorphic():
    got = ft.jacfwd(square, sparsity=EYE, holomorphic=True)(Z)
    np.testing.assert_allclose(got.toarray(), np.diag(2 * Z), rtol=1e-15)
    value, jac = ft.value_and_jacfwd(square, sparsity=EYE, holomorphic=True)(Z)
    np.testing.assert_allclose(value, Z * Z)
    np.testing.assert_allclose(jac.toarray(), ft.jacfwd(square, holomorphic=True)(Z), rtol=1e-15)
    with pytest.raises(ft.NotDifferentiableError, match="holomorphic=True"):
        ft.jacfwd(square, sparsity=EYE)(Z)
    with pytest.raises(ValueError, match="sparsity='detect' and holomorphic=True"):
        ft.jacfwd(square, sparsity="detect", holomorphic=True)


def test_sparsity_with_progress():
    seen = []
    x = RNG.uniform(-1, 1, 6)
    tri = np.eye(6, dtype=bool) | np.eye(6, k=1, dtype=bool)
    jac = ft.jacfwd(
        lambda v: v[:-1] * v[1:], sparsity=tri[:-1], chunk_size=1, progress=lambda *a: seen.append(a)
    )
    got = jac(x)
    assert seen == [(1, 2), (2, 2)]  # two colours, one per pass
    np.testing.assert_allclose(got.toarray(), ft.jacfwd(lambda v: v[:-1] * v[1:])(x), rtol=1e-15)
    seen.clear()
    ft.value_and_jacfwd(lambda v: v[:-1] * v[1:], sparsity=tri[:-1], progress=lambda *a: seen.append(a))(x)
    assert seen == [(2, 2)]


def test_sparsity_with_executor_is_refused_by_name():
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool, pytest.raises(ValueError, match="sparsity= and executor="):
        ft.jacfwd(square, sparsity=EYE, executor=pool)


def test_executor_with_holomorphic_is_refused_by_name():
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool, pytest.raises(ValueError, match="executor= and holomorphic=True"):
        ft.jacfwd(square, executor=pool, holomorphic=True)


def test_executor_with_its_other_options():
    from concurrent.futures import ThreadPoolExecutor

    x = RNG.uniform(-1, 1, 5)
    seen = []
    with ThreadPoolExecutor(2) as pool:
        got, aux = ft.jacfwd(
            lambda v: (ft.sin(v), 7),
            executor=pool,
            chunk_size=np.int64(2),
            has_aux=True,
            progress=lambda done, total: seen.append(done),
        )(x)
    np.testing.assert_allclose(got, np.diag(np.cos(x)), rtol=1e-15)
    assert aux == 7 and seen[-1] == 5


def test_sparsity_with_has_aux_and_chunk_size():
    x = RNG.uniform(-1, 1, 3)
    jac, aux = ft.jacfwd(lambda v: (ft.sin(v), 1), sparsity=EYE, has_aux=True, chunk_size=np.int64(1))(x)
    np.testing.assert_allclose(jac.toarray(), np.diag(np.cos(x)), rtol=1e-15)
    assert aux == 1
