"""Dask arrays as a backend: duals whose primal and tangent are ``dask.array`` arrays.

Every elementwise rule (from its table), every reduction, manipulation and matmul-family
rule runs on Dask duals and agrees with the same rule on NumPy duals (which the other
test modules check against finite differences); a composite function is checked against
finite differences here too, in float64 and float32, batched against stacked single
tangents. Building a dual expression computes nothing; ``compute()``/``persist()`` run
primal and tangent in one graph. The tangent's batch axis is its own chunk dimension.
"""

from __future__ import annotations

import itertools
import zlib

import numpy as np
import pytest

dask = pytest.importorskip("dask", reason="Dask is not installed (pip install 'dask[array]')")
da = pytest.importorskip("dask.array", reason="dask.array is not installed (pip install 'dask[array]')")

import fwdtensor as ft  # noqa: E402
from fwdtensor.rules import elementwise, linear_algebra, manipulation, statistical  # noqa: E402
from tests._util import assert_close, central_difference, sample  # noqa: E402

B = 3
CHUNKS = (2, 3)  # uneven on purpose: (4, 5) arrays split into (2, 2) x (3, 2) blocks


@pytest.fixture(autouse=True)
def _synchronous():
    """Compute in the test's thread: tiny graphs, no thread-pool overhead, plain tracebacks."""
    with dask.config.set(scheduler="synchronous"):
        yield


def _forbid(*args, **kwargs):
    raise AssertionError("a Dask graph was computed while only building an expression")


def lazily():
    """Within this block any computation of a Dask graph fails the test."""
    return dask.config.set(scheduler=_forbid)


def pair(x, t, chunks=CHUNKS):
    """The same batched dual on NumPy and on Dask (tangent chunked as (B, *primal chunks))."""
    n = ft.DualTensor(x, t, batched=True)
    c = chunks if x.ndim == len(chunks) else "auto"
    xd = da.from_array(x, chunks=c)
    td = da.from_array(t, chunks=((t.shape[0],), *xd.chunks))
    return n, ft.DualTensor(xd, td, batched=True)


def computed(y):
    """Primal and batched tangent of a result as NumPy arrays (tangent None if constant)."""
    if not isinstance(y, ft.DualTensor):
        return np.asarray(dask.compute(y)[0] if isinstance(y, da.Array) else y), None
    c = y.compute()
    return np.asarray(c.primal), None if c._t is None else np.asarray(c._t)


def assert_agree(got, want, dtype, what):
    gp, gt = computed(got)
    wp, wt = computed(want)
    assert gp.shape == wp.shape and gp.dtype == wp.dtype, what
    rtol = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(gp, wp, rtol=rtol, atol=rtol, err_msg=f"{what}: primal")
    assert (gt is None) == (wt is None), f"{what}: one tangent is a symbolic zero, the other is not"
    if gt is not None:
        np.testing.assert_allclose(gt, wt, rtol=rtol, atol=rtol, err_msg=f"{what}: tangent")


def _stays_lazy(y):
    leaves = [y] if not isinstance(y, (tuple, list)) else list(y)
    for leaf in leaves:
        p = leaf.primal if isinstance(leaf, ft.DualTensor) else leaf
        assert isinstance(p, da.Array), f"the result is {type(p).__name__}, not a Dask array"
        if isinstance(leaf, ft.DualTensor) and leaf._t is not None:
            assert isinstance(leaf._t, da.Array)


# ---------------------------------------------------------------- elementwise
ELEMENTWISE = [
    r
    for r in elementwise.RULES
    if r.kind in ("diff", "zero") and r.form in ("unary", "binary") and r.dtypes in ("float", "real")
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("rule", ELEMENTWISE, ids=[r.name for r in ELEMENTWISE])
def test_elementwise_rule_on_dask_agrees_with_numpy(rule, dtype):
    seed = zlib.crc32(rule.name.encode())  # deterministic across processes, unlike hash()
    rng = np.random.default_rng(seed)
    nargs = 1 if rule.form == "unary" else 2
    xs = [sample(rule.domain, (4, 5), dtype, rng, arg=i) for i in range(nargs)]
    ts = [rng.normal(size=(B, 4, 5)).astype(dtype) for _ in range(nargs)]
    pairs = [pair(x, t) for x, t in zip(xs, ts)]
    fn = getattr(ft, rule.name)
    with lazily():
        got = fn(*[d for _, d in pairs])
    _stays_lazy(got)
    if isinstance(got, ft.DualTensor) and got._t is not None:  # the batch axis is its own chunk
        assert got._t.chunks == ((B,), *got.primal.chunks)
    assert_agree(got, fn(*[n for n, _ in pairs]), dtype, f"{rule.name} (seed {seed})")


# ------------------------------------------- reductions, manipulation, matmul
def _v(d):
    """Row 0 of a 2-D dual: a 1-D operand."""
    return d[0, ...]


CASES = {
    # statistical
    "all": lambda d: ft.all(ft.greater(d, 0.0), axis=1),
    "any": lambda d: ft.any(ft.greater(d, 1.0)),
    "cumulative_prod": lambda d: ft.cumulative_prod(d, axis=1),
    "cumulative_sum": lambda d: ft.cumulative_sum(d, axis=0, include_initial=True),
    "diff": lambda d: ft.diff(d, axis=1, n=2),
    "max": lambda d: ft.max(d, axis=1),
    "mean": lambda d: ft.mean(d, axis=0, keepdims=True),
    "min": lambda d: ft.min(d),
    "prod": lambda d: ft.prod(d, axis=1),
    "std": lambda d: ft.std(d, axis=0, correction=1),
    "sum": lambda d: ft.sum(d, axis=(0, 1)),
    "var": lambda d: ft.var(d, axis=1),
    # manipulation
    "broadcast_arrays": lambda d: ft.broadcast_arrays(d, _v(d))[1],
    "broadcast_to": lambda d: ft.broadcast_to(_v(d), (3, 5)),
    "concat": lambda d: ft.concat([d, ft.flip(d, axis=0)], axis=1),
    "expand_dims": lambda d: ft.expand_dims(d, axis=1),
    "flip": lambda d: ft.flip(d),
    "matrix_transpose": lambda d: ft.matrix_transpose(d),
    "moveaxis": lambda d: ft.moveaxis(d, 0, -1),
    "permute_dims": lambda d: ft.permute_dims(d, (1, 0)),
    "repeat": lambda d: ft.repeat(d, 2, axis=0),
    "reshape": lambda d: ft.reshape(d, (2, 2, 5)),  # Dask splits axes only evenly (its own limit)
    "roll": lambda d: ft.roll(d, 2, axis=1),
    "squeeze": lambda d: ft.squeeze(ft.expand_dims(d, axis=0), axis=0),
    "stack": lambda d: ft.stack([d, d * 2.0], axis=-1),
    "tile": lambda d: ft.tile(d, (2, 1)),
    "tril": lambda d: ft.tril(d, k=1),
    "triu": lambda d: ft.triu(d),
    "unstack": lambda d: ft.unstack(d, axis=1)[2],
    # linear algebra (matrix, vector and stacked operands: the batch axis must not be misread)
    "matmul": lambda d: ft.matmul(d, ft.matrix_transpose(d)),
    "matmul-matrix-vector": lambda d: ft.matmul(d, _v(d)),
    "matmul-vector-matrix": lambda d: ft.matmul(_v(d), ft.matrix_transpose(d)),
    "matmul-stacked": lambda d: ft.matmul(
        ft.reshape(d, (2, 2, 5)), ft.reshape(ft.matrix_transpose(d), (5, 4))
    ),
    "tensordot": lambda d: ft.tensordot(d, ft.matrix_transpose(d), axes=1),
    "vecdot": lambda d: ft.vecdot(d, ft.sin(d), axis=0),
}
# Rules whose Dask tangent may legitimately be rechunked along the batch axis (none now:
# matmul by a matrix keeps it, see test_matmul_keeps_the_batch_axis_its_own_chunk).
FOLDS_BATCH_AXIS: tuple[str, ...] = ()
# Rules of these tables whose Dask support is not tested here, with the reason.
NOT_COVERED: dict[str, str] = {}


def test_every_reduction_manipulation_and_matmul_rule_has_a_dask_case():
    names = {r.name for m in (statistical, manipulation, linear_algebra) for r in m.RULES}
    covered = {k.split("-")[0] for k in CASES} | set(NOT_COVERED)
    assert names <= covered, f"add a Dask case (or a reason) for: {sorted(names - covered)}"


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_rule_on_dask_agrees_with_numpy(name, dtype):
    rng = np.random.default_rng(7)
    x = rng.uniform(0.5, 2.0, (4, 5)).astype(dtype)
    t = rng.normal(size=(B, 4, 5)).astype(dtype)
    n, d = pair(x, t)
    with lazily():
        got = CASES[name](d)
    _stays_lazy(got)
    if isinstance(got, ft.DualTensor) and got._t is not None and name not in FOLDS_BATCH_AXIS:
        assert got._t.chunks[0] == (B,), "the batch axis was split or merged with other chunks"
    assert_agree(got, CASES[name](n), dtype, name)


def test_matmul_keeps_the_batch_axis_its_own_chunk():
    _, d = pair(np.ones((4, 5)), np.ones((B, 4, 5)))
    y = ft.matmul(d, da.ones((5, 3), chunks=(5, 3)))
    assert y._t.chunks == ((B,), *y.primal.chunks)


# ----------------------------------------------- derivatives, end to end
def model(x, w):
    """Elementwise, reduction, manipulation and matmul in one function: (4, 5), (5, 3) -> (4,)."""
    h = ft.tanh(ft.matmul(x, w))
    s = ft.concat([h, ft.flip(h, axis=1)], axis=1)
    return ft.sum(s * ft.exp(-s), axis=1) + ft.mean(x * x, axis=1)


def model_np(x, w):
    h = np.tanh(x @ w)
    s = np.concatenate([h, np.flip(h, axis=1)], axis=1)
    return np.sum(s * np.exp(-s), axis=1) + np.mean(x * x, axis=1)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_jvp_on_dask_matches_finite_differences_and_stacked_singles(dtype):
    rng = np.random.default_rng(11)
    x, w = rng.normal(size=(4, 5)).astype(dtype), rng.normal(size=(5, 3)).astype(dtype)
    tx, tw = rng.normal(size=(B, 4, 5)).astype(dtype), rng.normal(size=(B, 5, 3)).astype(dtype)
    xd, wd = da.from_array(x, chunks=CHUNKS), da.from_array(w, chunks=(5, 2))
    txd = da.from_array(tx, chunks=((B,), *xd.chunks))
    twd = da.from_array(tw, chunks=((B,), *wd.chunks))
    with lazily():
        y, ty = ft.batched_jvp(model, (xd, wd), (txd, twd))
    assert isinstance(ty, da.Array) and ty.shape == (B, 4)
    ty = ty.compute()
    for b in range(B):
        fd = central_difference(model_np, [x.astype("float64"), w.astype("float64")], [tx[b], tw[b]])
        assert_close(ty[b], fd, dtype, f"direction {b} against finite differences")
        _, single = ft.jvp(model, (xd, wd), (txd[b], twd[b]))
        np.testing.assert_allclose(single.compute(), ty[b], rtol=1e-5 if dtype == "float32" else 1e-12)


def test_jacfwd_of_dask_input_is_lazy_and_equals_numpy():
    x = np.random.default_rng(12).normal(size=(4, 5))
    w = np.random.default_rng(13).normal(size=(5, 3))
    xd = da.from_array(x, chunks=CHUNKS)
    with lazily():
        jac = ft.jacfwd(model)(xd, da.from_array(w))
    assert isinstance(jac, da.Array) and jac.shape == (4, 4, 5)
    np.testing.assert_allclose(jac.compute(), ft.jacfwd(model)(x, w), rtol=1e-12, atol=1e-12)


# --------------------------------------------------------- compute / persist
_calls = itertools.count()


def _counted(block):
    next(_calls)
    return block


def _counted_dual():
    """A dual whose primal comes from a counting graph (4 blocks) and a seeded tangent."""
    base = da.map_blocks(_counted, da.from_array(np.linspace(0.1, 1.0, 8), chunks=2))
    return ft.DualTensor(base, da.ones((B, 8), chunks=(B, 2)), batched=True)


def _count() -> int:
    return next(_calls)  # the counter's next value: calls so far plus the probes taken


def test_compute_runs_primal_and_tangent_in_one_graph():
    x = _counted_dual()
    y = ft.sin(x) * x + ft.sum(x)
    before = _count()
    c = y.compute()
    assert _count() - before - 1 == 4, "the shared primal blocks ran more than once"
    assert type(c.primal) is np.ndarray and type(c._t) is np.ndarray
    assert c.batched and c.level == y.level and c._t.shape == (B, 8)
    p = np.linspace(0.1, 1.0, 8)
    np.testing.assert_allclose(c.primal, np.sin(p) * p + p.sum())
    np.testing.assert_allclose(c._t, np.broadcast_to(np.cos(p) * p + np.sin(p) + 8.0, (B, 8)))
    before = _count()
    dask.compute(y.primal)
    dask.compute(y._t)
    assert _count() - before - 1 == 8, "control: separate computations repeat the shared work"


def test_persist_keeps_a_lazy_dual_whose_values_are_ready():
    y = ft.exp(_counted_dual())
    pst = y.persist()
    assert isinstance(pst.primal, da.Array) and isinstance(pst._t, da.Array)
    assert pst.level == y.level and pst.batched
    before = _count()
    z = (pst * 2.0).compute()
    assert _count() - before == 1, "a persisted dual recomputed its inputs"
    np.testing.assert_allclose(z.primal, 2.0 * np.exp(np.linspace(0.1, 1.0, 8)))


def test_compute_of_constants_eager_and_nested_duals():
    e = ft.DualTensor(np.ones(3), np.ones(3))
    assert e.compute() is e and e.persist() is e  # eager backends: nothing to do
    const = ft.DualTensor(da.ones(3))  # a symbolic zero tangent stays one
    c = const.compute()
    assert c._t is None and type(c.primal) is np.ndarray
    x0 = ft.DualTensor(da.arange(1.0, 4.0), da.ones(3))  # level 0, itself the primal of a level-1 dual

    def f(x):
        inner = (x * x).compute()
        assert type(inner.primal) is ft.DualTensor and type(inner.primal.primal) is np.ndarray
        assert type(inner._t) is ft.DualTensor and type(inner._t.primal) is np.ndarray  # a nested tangent
        assert inner.level == x.level
        return x * x

    ft.jvp(f, (x0,), (da.ones(3),))


# ------------------------------------------------------------------ bad input
def test_dask_lacks_a_function_names_it_and_the_backend():
    _, d = pair(np.ones((4, 5)), np.ones((B, 4, 5)))
    for call, fn in (
        (lambda: ft.sort(d, axis=1), "take_along_axis"),
        (lambda: ft.linalg.det(d[:, :4]), "det"),
    ):
        with pytest.raises((AttributeError, ft.NotDifferentiableError), match=rf"dask.*{fn}|{fn}.*dask"):
            call()


def test_dask_chunking_limits_come_with_dasks_own_message():
    _, d = pair(np.eye(4) * 2.0, np.ones((B, 4, 4)), chunks=(2, 3))  # blocks that are not square
    with pytest.raises(ValueError, match="rechunk"):
        ft.linalg.inv(d)


def test_mixing_dask_and_numpy_is_refused():
    xd = da.ones((2, 3))
    with pytest.raises(ft.BackendMismatchError, match="dask.*numpy|numpy.*dask"):
        ft.DualTensor(xd, np.ones((2, 3)))
    with pytest.raises(ft.BackendMismatchError):
        ft.DualTensor(xd, da.ones((2, 3))) + ft.DualTensor(np.ones((2, 3)), np.ones((2, 3)))


def test_forbidding_the_scheduler_does_catch_a_computation():
    """Control for ``lazily``: a computation inside it fails, so laziness tests can fail."""
    with lazily(), pytest.raises(AssertionError, match="was computed"):
        da.ones(3).sum().compute()
