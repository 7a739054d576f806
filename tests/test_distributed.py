"""Distributed Jacobians: chunks of seed directions as tasks on an executor.

The distributed Jacobian must equal the local ``ft.jacfwd`` (itself checked against
finite differences here too) on threads, processes and a two-worker Dask LocalCluster,
for the MLP (nested-dict parameters) and the Burgers residual. Failures are the other
half: a lost task is retried, an error in ``f`` is reported with its chunk range, an
executor that goes away stops the run, and a partial Jacobian is never returned.

The models live at module level so that worker processes can import them by name.
"""

from __future__ import annotations

import importlib.util
import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from functools import partial

import array_api_compat
import numpy as np
import pytest

import fwdtensor as ft
from fwdtensor.core import tree as _tree
from fwdtensor.transforms.parallel import executors as _distributed
from tests._util import assert_close, central_difference, to_numpy

HAVE_DISTRIBUTED = importlib.util.find_spec("distributed") is not None
needs_distributed = pytest.mark.skipif(
    not HAVE_DISTRIBUTED, reason="dask.distributed is not installed (pip install 'dask[array]' distributed)"
)


# ------------------------------------------------------------------ models
def burgers(u, nu=0.05):
    """Residual of viscous Burgers on a periodic grid: u u_x - nu u_xx (central differences)."""
    dx = 1.0 / u.shape[0]
    up, um = ft.roll(u, -1), ft.roll(u, 1)
    return u * (up - um) / (2 * dx) - nu * (up - 2.0 * u + um) / dx**2


def burgers_np(u, nu=0.05):
    dx = 1.0 / u.shape[0]
    up, um = np.roll(u, -1), np.roll(u, 1)
    return u * (up - um) / (2 * dx) - nu * (up - 2.0 * u + um) / dx**2


def mlp(params, x):
    """A two-layer tanh network: the Jacobian is taken with respect to a dict of parameters."""
    h = ft.tanh(ft.add(ft.matmul(x, ft.matrix_transpose(params["W1"])), params["b1"]))
    return ft.add(ft.matmul(h, ft.matrix_transpose(params["W2"])), params["b2"])


def mlp_with_aux(params, x):
    y = mlp(params, x)
    return y, {"mean": ft.mean(y)}


def two_args(a, b, scale=1.0):
    return {"ab": a * ft.sum(b) * scale, "a2": (a * a,)}


def slow_burgers(delay, u):
    time.sleep(delay)
    return burgers(u)


def dying_burgers(marker, u):
    """Burgers, but the first call anywhere (the marker file is absent) kills its process."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        return burgers(u)
    os.close(fd)
    os._exit(1)


def reject_element_5(u):
    """Burgers, but the chunk whose seed directions move element 5 raises."""
    if float(np.sum(to_numpy(u.tangent)[:, 5])) > 0:
        raise ValueError("element 5 may not move")
    return burgers(u)


class ColourSeeds:
    """Three colours of a periodic tridiagonal Jacobian: direction c moves every j with j % 3 == c."""

    def __call__(self, i, x, s, e):
        xp = array_api_compat.array_namespace(x)
        j = xp.arange(x.shape[0])
        return xp.stack([xp.astype(xp.equal(j % 3, c), x.dtype) for c in range(s, e)])


def _state(n=32, dtype="float64"):
    x = np.linspace(0.0, 1.0, n, endpoint=False)
    return (np.sin(2 * np.pi * x) + 0.5).astype(dtype)


def _params(rng):
    return {
        "W1": rng.normal(size=(6, 3)),
        "b1": rng.normal(size=6),
        "W2": rng.normal(size=(2, 6)),
        "b2": rng.normal(size=2),
    }


def _leaves(tree):
    return _tree.flatten(tree)[0]


def assert_same_tree(got, want):
    g, w = _tree.flatten(got), _tree.flatten(want)
    assert _tree.describe(g[1]) == _tree.describe(w[1])
    for a, b in zip(g[0], w[0]):
        assert tuple(a.shape) == tuple(b.shape)
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-12, atol=1e-12)


def _process_pool(n):
    # fork starts a worker in milliseconds (spawn: ~1.5 s of imports); no Dask threads exist yet
    ctx = multiprocessing.get_context("fork") if "fork" in multiprocessing.get_all_start_methods() else None
    return ProcessPoolExecutor(n, mp_context=ctx)


# ------------------------------------------------------- threads, every backend
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_threads_match_local_and_finite_differences(backend, dtype):
    u_np = _state(24, dtype)
    u = backend.asarray(u_np)
    with ThreadPoolExecutor(2) as pool:
        jac = ft.distributed_jacfwd(burgers, executor=pool, chunk_size=5)(u)
    assert tuple(jac.shape) == (24, 24) and jac.dtype == u.dtype
    assert_close(jac, to_numpy(ft.jacfwd(burgers)(u)), dtype)
    v = np.random.default_rng(0).normal(size=24)
    fd = central_difference(burgers_np, [u_np.astype("float64")], [v])
    assert_close(to_numpy(jac).astype("float64") @ v, fd, dtype, "J @ v against finite differences")


def test_chunks_equal_single_pass_and_single_directions(backend):
    """Chunks of 3 directions (batched) and of 1 (single tangents) give the one-pass Jacobian."""
    u = backend.asarray(_state(10))
    want = to_numpy(ft.jacfwd(burgers)(u))
    with ThreadPoolExecutor(2) as pool:
        for k in (1, 3, 10, 50):
            got = ft.distributed_jacfwd(burgers, executor=pool, chunk_size=k)(u)
            np.testing.assert_allclose(to_numpy(got), want, rtol=1e-13, atol=1e-13, err_msg=f"chunk_size={k}")


def test_jacfwd_with_an_executor_delegates_to_the_engine():
    u = _state(16)
    with ThreadPoolExecutor(2) as pool:
        got = ft.jacfwd(burgers, executor=pool, chunk_size=4)(u)
    np.testing.assert_allclose(got, ft.jacfwd(burgers)(u), rtol=1e-13, atol=1e-13)


def test_threads_mlp_dict_params_and_aux():
    rng = np.random.default_rng(1)
    p, x = _params(rng), rng.normal(size=(4, 3))
    want, want_aux = ft.jacfwd(mlp_with_aux, has_aux=True)(p, x)
    with ThreadPoolExecutor(2) as pool:
        got, aux = ft.distributed_jacfwd(mlp_with_aux, executor=pool, chunk_size=7, has_aux=True)(p, x)
    assert_same_tree(got, want)
    np.testing.assert_allclose(aux["mean"], want_aux["mean"])


def test_argnums_tuple_nested_outputs_and_kwargs():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(2, 3)), rng.normal(size=4)
    want = ft.jacfwd(two_args, argnums=(0, 1))(a, b, scale=2.0)
    with ThreadPoolExecutor(2) as pool:
        got = _distributed.jacfwd_distributed(
            two_args, (a, b), {"scale": 2.0}, argnums=(0, 1), chunk_size=4, executor=pool
        )
        got_neg = _distributed.jacfwd_distributed(two_args, (a, b), {"scale": 2.0}, argnums=-1, executor=pool)
    assert_same_tree(got, want)
    assert_same_tree(got_neg, ft.jacfwd(two_args, argnums=1)(a, b, scale=2.0))


def test_default_chunk_size_gives_several_chunks_per_worker():
    assert _distributed.default_chunk_size(200, 8, 2) == 25
    assert _distributed.default_chunk_size(3, 8, 8) == 1
    ft_budget = ft.get_memory_budget()
    try:  # a tight memory budget wins over load balancing
        ft.set_memory_budget(8 * 8 * 1000 * 10)
        assert _distributed.default_chunk_size(1000, 8, 1) == 10
    finally:
        ft.set_memory_budget(ft_budget)


def test_progress_callback_counts_every_direction():
    seen = []
    with ThreadPoolExecutor(2) as pool:
        jac = ft.distributed_jacfwd(
            burgers, executor=pool, chunk_size=4, progress=lambda d, t: seen.append((d, t))
        )
        jac(_state(10))
    assert seen[-1] == (10, 10) and len(seen) == 3


# ------------------------------------------------------------------ processes
def test_processes_match_local():
    u = _state(32)
    with _process_pool(2) as pool:
        got = ft.distributed_jacfwd(burgers, executor=pool, chunk_size=8)(u)
    np.testing.assert_allclose(got, ft.jacfwd(burgers)(u), rtol=1e-13, atol=1e-13)


def test_push_directions_with_colour_seeds_gives_the_compressed_jacobian():
    """The general engine (as sparse Jacobians use it): 3 coloured directions instead of 12."""
    u = _state(12)
    with _process_pool(2) as pool:
        comp, aux = _distributed.push_directions(
            burgers, (u,), {}, argnums=0, n=3, seeds=ColourSeeds(), executor=pool, chunk_size=2
        )
    assert aux is None and comp.shape == (3, 12)
    jac = ft.jacfwd(burgers)(u)
    colours = np.stack([(np.arange(12) % 3 == c).astype(float) for c in range(3)])
    np.testing.assert_allclose(comp, colours @ jac.T, rtol=1e-13, atol=1e-12)
    rows, cols = np.nonzero(jac)  # each column's entries come back from its colour's row
    np.testing.assert_allclose(comp[cols % 3, rows], jac[rows, cols], rtol=1e-13)


def test_process_pool_killed_worker_gives_no_partial_jacobian(tmp_path):
    f = partial(dying_burgers, str(tmp_path / "died"))
    with _process_pool(1) as pool:
        with pytest.raises(ft.DistributedError, match=r"directions \[\d+, \d+\).*no partial Jacobian"):
            ft.distributed_jacfwd(f, executor=pool, chunk_size=8, retries=1)(_state(32))


# ---------------------------------------------------------------- bad input
class _Recorder:
    """An executor that records what it is asked to run and runs it inline."""

    def __init__(self):
        self.calls = []

    def submit(self, fn, *args):
        self.calls.append(args[1:])
        fut = Future()
        fut.set_result(fn(*args))
        return fut


class _Counting:
    def __init__(self):
        self.n = 0

    def __call__(self, u):
        self.n += 1
        return burgers(u)


def test_not_an_executor_is_refused_before_any_work():
    f = _Counting()
    for bad in (None, 4, "threads", object()):
        with pytest.raises(TypeError, match=r"\.submit\(fn, \*args\)"):
            ft.distributed_jacfwd(f, executor=bad)
        with pytest.raises(TypeError, match="executor must be"):
            _distributed.jacfwd_distributed(f, (_state(4),), {}, executor=bad)
    assert f.n == 0


def test_unpicklable_function_is_named_with_the_fix_before_submitting():
    rec = _Recorder()
    scale = 2.0
    with pytest.raises(TypeError, match=r"cannot send the function .*lambda.*define it at module level"):
        ft.distributed_jacfwd(lambda u: burgers(u) * scale, executor=rec)(_state(4))

    def local(u):
        return burgers(u) * scale

    with pytest.raises(TypeError, match=r"local.*not as a lambda, a closure.*cloudpickle"):
        ft.distributed_jacfwd(local, executor=rec)(_state(4))
    with pytest.raises(TypeError, match=r"cannot send keyword argument nu \(lock\)"):
        _distributed.jacfwd_distributed(burgers, (_state(4),), {"nu": threading.Lock()}, executor=rec)
    assert rec.calls == []
    with ThreadPoolExecutor(1) as pool:  # threads share the process: closures are fine there
        np.testing.assert_allclose(
            ft.distributed_jacfwd(local, executor=pool)(_state(4)), 2 * ft.jacfwd(burgers)(_state(4))
        )


@pytest.mark.parametrize(
    "kwargs,err,match",
    [
        ({"chunk_size": 0}, ValueError, "chunk_size must be a positive integer"),
        ({"chunk_size": 2.5}, ValueError, "chunk_size must be a positive integer"),
        ({"retries": -1}, ValueError, "retries must be a non-negative integer"),
        ({"retries": True}, ValueError, "retries must be a non-negative integer"),
        ({"argnums": "0"}, TypeError, "argnums must be an int"),
        ({"argnums": (0, 0)}, ValueError, "repeated"),
        ({"progress": "yes"}, TypeError, "progress must be"),
        ({"timeout": 0}, ValueError, "timeout must be a positive number"),
        ({"timeout": -1.0}, ValueError, "timeout must be a positive number"),
        ({"timeout": "10"}, ValueError, "timeout must be a positive number"),
    ],
)
def test_bad_options_are_refused_when_built(kwargs, err, match):
    with pytest.raises(err, match=match):
        ft.distributed_jacfwd(burgers, executor=_Recorder(), **kwargs)


def test_bad_inputs_are_refused_before_submitting():
    rec = _Recorder()
    jac = ft.distributed_jacfwd(burgers, 1, executor=rec)
    with pytest.raises(ValueError, match="out of range"):
        jac(_state(4))
    jac = ft.distributed_jacfwd(burgers, executor=rec)
    with pytest.raises(ft.NotDifferentiableError, match="int64"):
        jac(np.arange(4))
    with pytest.raises(ft.NotDifferentiableError, match="holomorphic"):
        jac(_state(4).astype("complex128"))
    with pytest.raises(ft.FwdTensorError, match="inside another transform"):
        ft.jvp(jac, (_state(4),), (_state(4),))
    assert rec.calls == []


# ------------------------------------------------------------------ failures
class _Flaky(_Recorder):
    """Loses the first attempt of the chunks in ``lose`` (as a dead worker would)."""

    def __init__(self, lose):
        super().__init__()
        self.lose = set(lose)

    def submit(self, fn, *args):
        s = args[1]
        if s in self.lose:
            self.lose.discard(s)
            self.calls.append(args[1:])
            fut = Future()
            fut.set_exception(ConnectionError("worker at 10.0.0.7 went away"))
            return fut
        return super().submit(fn, *args)


def test_lost_task_is_retried_and_stored_once(caplog):
    u = _state(12)
    ex = _Flaky(lose={4})
    with caplog.at_level(logging.WARNING, logger="fwdtensor.distributed"):
        got = ft.distributed_jacfwd(burgers, executor=ex, chunk_size=4)(u)
    np.testing.assert_allclose(got, ft.jacfwd(burgers)(u), rtol=1e-13, atol=1e-13)
    assert sorted(ex.calls) == [(0, 4), (4, 8), (4, 8), (8, 12)]  # only the lost chunk ran twice
    assert "retrying directions [4, 8) after ConnectionError" in caplog.text


def test_task_lost_more_often_than_retries_is_reported_with_its_range():
    ex = _Flaky(lose={4})
    with pytest.raises(
        ft.DistributedError, match=r"directions \[4, 8\) \(chunk 2 of 3\) were lost 1 time"
    ) as info:
        ft.distributed_jacfwd(burgers, executor=ex, chunk_size=4, retries=0)(_state(12))
    assert isinstance(info.value.__cause__, ConnectionError)


def test_error_in_f_is_reported_with_its_chunk_and_not_retried():
    u = _state(12)
    ex = _Recorder()
    with pytest.raises(
        ft.DistributedError, match=r"f raised ValueError on directions \[4, 8\).*may not move"
    ) as info:
        ft.distributed_jacfwd(reject_element_5, executor=ex, chunk_size=4, retries=3)(u)
    assert isinstance(info.value.__cause__, ValueError)
    assert "Worker traceback" in str(info.value)
    assert [c for c in ex.calls if c == (4, 8)] == [(4, 8)]


def test_executor_shut_down_mid_run_gives_no_partial_jacobian():
    inner = ThreadPoolExecutor(1)

    class Closing:
        """Shuts its pool down (cancelling queued tasks) as soon as the first chunk is done."""

        def submit(self, fn, *args):
            fut = inner.submit(fn, *args)
            if args[1] == 0:
                fut.add_done_callback(lambda _: inner.shutdown(wait=False, cancel_futures=True))
            return fut

    with pytest.raises(ft.DistributedError, match=r"refused directions .*shut down.*no partial Jacobian"):
        ft.distributed_jacfwd(partial(slow_burgers, 0.02), executor=Closing(), chunk_size=2)(_state(12))


# ------------------------------------------------------------ Dask LocalCluster
@pytest.fixture(scope="module")
def client():
    """One two-worker cluster of processes on the loopback for the whole module."""
    import dask
    from distributed import Client, LocalCluster

    # No scheduler-side retries: a task on a worker that dies surfaces as KilledWorker, so the
    # engine's own retry is what the tests exercise.
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        )
    c = Client(cluster)
    yield c
    c.close()
    cluster.close()


@needs_distributed
def test_cluster_burgers_and_mlp_match_local(client):
    u = _state(40)
    got = ft.distributed_jacfwd(burgers, executor=client, chunk_size=6)(u)
    np.testing.assert_allclose(got, ft.jacfwd(burgers)(u), rtol=1e-13, atol=1e-13)
    rng = np.random.default_rng(3)
    p, x = _params(rng), rng.normal(size=(4, 3))
    assert_same_tree(ft.distributed_jacfwd(mlp, executor=client)(p, x), ft.jacfwd(mlp)(p, x))


@needs_distributed
def test_cluster_runs_closures_through_cloudpickle(client):
    scale = 3.0
    got = ft.distributed_jacfwd(lambda u: burgers(u) * scale, executor=client, chunk_size=8)(_state(16))
    np.testing.assert_allclose(got, 3.0 * ft.jacfwd(burgers)(_state(16)), rtol=1e-13)


@needs_distributed
def test_cluster_worker_killed_mid_run_loses_and_duplicates_nothing(client, tmp_path, caplog):
    u = _state(32)
    f = partial(dying_burgers, str(tmp_path / "died"))
    with caplog.at_level(logging.WARNING, logger="fwdtensor.distributed"):
        got = ft.distributed_jacfwd(f, executor=client, chunk_size=4, retries=2)(u)
    assert (tmp_path / "died").exists(), "no worker died: the test did not test anything"
    np.testing.assert_allclose(got, ft.jacfwd(burgers)(u), rtol=1e-13, atol=1e-13)
    assert "after KilledWorker" in caplog.text
    client.wait_for_workers(2, timeout=30)  # the nanny restarts it for the next tests


@needs_distributed
def test_cluster_error_in_f_names_its_chunk(client):
    u = _state(12)
    with pytest.raises(ft.DistributedError, match=r"ValueError on directions \[4, 8\) \(chunk 2 of 3\)"):
        ft.distributed_jacfwd(reject_element_5, executor=client, chunk_size=4)(u)


@needs_distributed
@pytest.mark.filterwarnings("ignore:Port 8787 is already in use")  # the module's cluster holds it
def test_cluster_that_goes_away_mid_run_gives_no_partial_jacobian():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    )
    c = Client(cluster)
    closer = []

    def close_after_first(done, total):
        if not closer:
            closer.append(threading.Thread(target=cluster.close))
            closer[0].start()

    try:
        jac = ft.distributed_jacfwd(
            partial(slow_burgers, 0.2), executor=c, chunk_size=2, progress=close_after_first
        )
        with pytest.raises(ft.DistributedError, match="no partial Jacobian"):
            jac(_state(12))
    finally:
        closer[0].join(30)
        c.close()
        cluster.close()


def _blocked_burgers(event, u):
    event.wait(30)  # a task that hangs until the test releases it
    return burgers(u)


def test_stuck_chunk_ends_the_run_within_its_timeout():
    release = threading.Event()
    t0 = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        jac = ft.distributed_jacfwd(
            partial(_blocked_burgers, release), executor=pool, chunk_size=4, timeout=0.5
        )
        try:
            with pytest.raises(
                ft.DistributedError, match=r"did not finish within 0.5 s.*no partial Jacobian"
            ):
                jac(_state(8))
        finally:
            release.set()
    assert time.monotonic() - t0 < 10


@needs_distributed
@pytest.mark.filterwarnings("ignore:Port 8787 is already in use")
def test_cluster_without_workers_ends_the_run_instead_of_waiting_forever():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=0, processes=True, host="127.0.0.1", dashboard_address=None)
    c = Client(cluster)
    try:
        t0 = time.monotonic()
        with pytest.raises(ft.DistributedError, match="no workers for .* start or scale up workers"):
            ft.distributed_jacfwd(burgers, executor=c, chunk_size=4, timeout=2.0)(_state(8))
        assert time.monotonic() - t0 < 20
    finally:
        c.close()
        cluster.close()


@needs_distributed
@pytest.mark.filterwarnings("ignore:Port 8787 is already in use")
def test_cluster_scaled_to_zero_mid_run_ends_the_run():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    )
    c = Client(cluster)
    scaled = []

    def scale_to_zero_after_first(done, total):
        if not scaled:
            scaled.append(True)
            cluster.scale(0)

    try:
        t0 = time.monotonic()
        jac = ft.distributed_jacfwd(
            partial(slow_burgers, 0.3),
            executor=c,
            chunk_size=2,
            timeout=3.0,
            progress=scale_to_zero_after_first,
        )
        with pytest.raises(ft.DistributedError, match="no workers|no partial Jacobian"):
            jac(_state(12))
        assert scaled, "the run ended before any chunk finished: the test did not test anything"
        assert time.monotonic() - t0 < 40
    finally:
        c.close()
        cluster.close()
