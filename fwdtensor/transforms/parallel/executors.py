"""Jacobians whose chunks of seed directions run as tasks on an executor.

``jacfwd`` pushes the identity basis through ``f`` in chunks of directions. Every chunk
is independent, so here each one is a task on a ``concurrent.futures``-style executor
(``ThreadPoolExecutor``, ``ProcessPoolExecutor``, a ``dask.distributed.Client``, ...):
the task builds its own seed rows from the range ``[s, e)`` (nothing of size n x n is
shipped), runs ``ft.batched_jvp`` and returns the ``(e - s, *out.shape)`` tangents, which
the client writes into place as they arrive.

Failures never yield a partial Jacobian. An exception raised by ``f`` is deterministic,
so it is reported at once with its chunk range; a lost task (a worker that died, a
cancelled future) is resubmitted up to ``retries`` times, then reported; an executor that
no longer takes work (shut down, a cluster that went away) stops the run. Nothing waits
forever: a chunk that has not finished ``timeout`` seconds after it was submitted, or a
cluster left without workers for ``min(timeout, 30)`` seconds, stops the run with a
``DistributedError``. Each chunk is stored exactly once, whatever arrives late.

``push_directions`` is the general engine: any picklable ``seeds`` object (the identity
here, a colouring for sparse Jacobians) says which tangent rows chunk ``[s, e)`` gets.
"""

from __future__ import annotations

import concurrent.futures as cf
import io
import logging
import math
import os
import pickle
import time
import traceback
import uuid
from collections.abc import Callable
from typing import Any

import array_api_compat

from ...core import backend as _backend
from ...core import errors as _errors
from ...core import tree as _tree
from ...core.dual import DualTensor
from ...core.errors import FwdTensorError, NotDifferentiableError
from .. import jacobian as _jacobian
from .. import progress as _progress
from ..common import LIVE_ARRAYS, check_argnums, transpose_into, zero_blocks
from . import dask as _dask

__all__ = ["DistributedError", "distributed_jacfwd", "jacfwd_distributed", "push_directions"]

log = logging.getLogger("fwdtensor.distributed")

_CHUNKS_PER_WORKER = 4  # enough tasks to balance uneven workers, few enough to amortise overhead
DEFAULT_TIMEOUT = 600.0  # seconds one chunk may take from submission before it counts as stuck
_NO_WORKERS_GRACE = 30.0  # seconds a cluster may have no workers (a restart) before the run stops
_POLL = 0.5  # seconds between checks for stuck chunks and missing workers


class DistributedError(FwdTensorError, RuntimeError):
    """A distributed Jacobian could not be completed; the message names the chunk and the cause."""


# ------------------------------------------------------------------- executors
class _FuturesPool:
    """The executor protocol on anything with ``submit(fn, *args) -> future``."""

    def __init__(self, executor: Any) -> None:
        self.executor = executor
        self.name = type(executor).__name__
        self.serializer = _serializer_of(executor)
        self._payload: Any = None

    def workers(self) -> int:
        n = getattr(self.executor, "_max_workers", None)  # set by both concurrent.futures pools
        return n if isinstance(n, int) and n > 0 else os.cpu_count() or 1

    def live_workers(self) -> int | None:
        return None  # a local pool does not lose its workers without failing its futures

    def share(self, payload: Any) -> None:
        self._payload = payload

    def refresh(self) -> None:
        pass  # the work travels with every task

    def submit(self, fn: Callable, s: int, e: int, name: str) -> Any:
        return self.executor.submit(fn, self._payload, s, e)

    def wait_any(self, futures: Any, timeout: float) -> set:
        """The futures that finished within about ``timeout`` seconds (possibly none)."""
        futures = list(futures)
        native = all(isinstance(f, cf.Future) for f in futures)
        end = time.monotonic() + timeout
        while True:
            if native:  # cf.wait never counts a future cancelled by shutdown(cancel_futures=True): poll too
                done = cf.wait(futures, timeout=0.1, return_when=cf.FIRST_COMPLETED).done
                done = done or {f for f in futures if f.done()}
            else:  # futures of another library: poll them
                done = {f for f in futures if f.done()}
                time.sleep(0 if done else 0.005)
            if done or time.monotonic() >= end:
                return done

    def release(self, futures: Any) -> None:
        for f in futures:
            f.cancel()
        self._payload = None


def _serializer_of(executor: Any) -> str | None:
    """How the executor ships a task to its workers: None (same process), pickle or cloudpickle."""
    if isinstance(executor, cf.ThreadPoolExecutor):
        return None
    if type(executor).__module__.split(".")[0] in ("loky", "joblib"):
        return "cloudpickle"
    return "pickle"


def _pool(executor: Any) -> Any:
    """The adapter for ``executor``, refusing objects that cannot run tasks."""
    if _dask.is_client(executor):
        return _dask.ClientPool(executor)
    if not callable(getattr(executor, "submit", None)):
        raise TypeError(
            f"executor must be a concurrent.futures-style executor with a .submit(fn, *args) "
            f"method (ThreadPoolExecutor, ProcessPoolExecutor, dask.distributed.Client), got "
            f"{type(executor).__name__}; for a Dask cluster pass Client(cluster), not the cluster"
        )
    return _FuturesPool(executor)


# ------------------------------------------------------------- serialisation
def _pickles(obj: Any, serializer: str) -> None:
    """Serialise ``obj`` into nothing; arrays go out of band, so no copy of the data is made."""
    if serializer == "cloudpickle":
        import cloudpickle

        pickler = cloudpickle.CloudPickler(_Discard(), protocol=5, buffer_callback=_out_of_band)
    else:
        pickler = pickle.Pickler(_Discard(), protocol=5, buffer_callback=_out_of_band)
    pickler.dump(obj)


class _Discard(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        return len(b)


def _out_of_band(buffer: Any) -> bool:
    return False  # a false value keeps the buffer out of band: it is not copied


def _check_serializable(pool: Any, f: Callable, args: tuple, kwargs: dict) -> None:
    """Refuse, before any task is submitted, what the executor cannot send to its workers."""
    ser = pool.serializer
    if ser is None:
        return
    where = f"the workers of a {pool.name}"
    try:
        _pickles(f, ser)
    except Exception as exc:
        name = getattr(f, "__qualname__", type(f).__name__)
        fix = (
            "define it at module level (not as a lambda, a closure or a function inside a function) "
            "and pass data as arguments"
        )
        if ser == "pickle":
            fix += ", or use an executor that serialises with cloudpickle (a dask.distributed.Client, loky)"
        raise TypeError(
            f"cannot send the function {name} to {where}: {type(exc).__name__}: {exc}; {fix}"
        ) from exc
    named = [
        *((f"positional argument {i}", a) for i, a in enumerate(args)),
        *((f"keyword argument {k}", v) for k, v in kwargs.items()),
    ]
    for what, obj in named:
        try:
            _pickles(obj, ser)
        except Exception as exc:
            raise TypeError(
                f"cannot send {what} ({type(obj).__name__}) to {where}: {type(exc).__name__}: {exc}; "
                "pass only picklable values (arrays, numbers, containers of them)"
            ) from exc


# ------------------------------------------------------------------ the task
class IdentitySeeds:
    """Seed rows of the identity basis: direction j is element j of the flattened inputs."""

    def __init__(self, sizes: list[int]) -> None:
        self.sizes = list(sizes)
        self.offsets = [sum(self.sizes[:i]) for i in range(len(self.sizes))]

    def __call__(self, i: int, x: Any, s: int, e: int) -> Any:
        """Rows ``[s, e)`` of the basis restricted to leaf ``i``: ``(e - s, *x.shape)``, or None."""
        off, m = self.offsets[i], self.sizes[i]
        if off >= e or off + m <= s:
            return None  # this leaf is constant for the whole chunk
        xp = _backend.namespace_of(x)
        eye = xp.eye(e - s, m, k=s - off, dtype=x.dtype, device=array_api_compat.device(x))
        return xp.reshape(eye, (e - s, *x.shape))


class _Work:
    """Everything a chunk task needs, shipped once: f, its arguments, and the seeds."""

    def __init__(
        self, f: Callable, args: tuple, kwargs: dict, argnums: Any, nums: tuple, seeds: Any, aux: bool
    ):
        self.f, self.args, self.kwargs = f, args, kwargs
        self.argnums, self.nums, self.seeds, self.has_aux = argnums, nums, seeds, aux

    def tree(self) -> Any:
        """The differentiated arguments (one argument, or a tuple for a tuple of argnums)."""
        if isinstance(self.argnums, int):
            return self.args[self.nums[0]]
        return tuple(self.args[a] for a in self.nums)

    def call(self, tree: Any) -> Any:
        args = list(self.args)
        parts = (tree,) if isinstance(self.argnums, int) else tree
        for a, sub in zip(self.nums, parts):
            args[a] = sub
        return self.f(*args, **self.kwargs)

    def run(self, s: int, e: int) -> _Done:
        tree = self.tree()
        leaves, in_def = _tree.flatten(tree)
        seeds = [self.seeds(i, x, s, e) for i, x in enumerate(leaves)]
        res = _jacobian.batched_jvp(
            self.call, (tree,), (_tree.unflatten(in_def, seeds),), has_aux=self.has_aux
        )
        aux = res[2] if self.has_aux and s == 0 else None  # one copy of aux is enough
        return _Done(res[1], aux)


class _Done:
    def __init__(self, touts: Any, aux: Any) -> None:
        self.touts, self.aux = touts, aux


class _Failed:
    """An exception raised by ``f`` inside a task, brought back as a value (never retried)."""

    def __init__(self, exc: BaseException, tb: str) -> None:
        try:
            pickle.dumps(exc)
        except Exception:  # an exception that cannot travel: keep its text
            exc = RuntimeError(f"{type(exc).__name__}: {exc}")
        self.exc, self.tb = exc, tb


def run_chunk(work: _Work, s: int, e: int) -> _Done | _Failed:
    """The task: tangents of ``f`` along directions ``[s, e)``; errors of ``f`` come back as values."""
    try:
        return work.run(s, e)
    except Exception as exc:
        return _Failed(exc, traceback.format_exc())


# ---------------------------------------------------------------- the client
class _ChunkStore:
    """Stores each chunk's tangents exactly once; subclasses say where they go."""

    def __init__(self, n_chunks: int) -> None:
        self.stored = [False] * n_chunks
        self.o_def: Any = None
        self.shapes: list = []  # output leaf shapes
        self.bufs: list = []  # per output leaf, preallocated on the first chunk

    def add(self, i: int, s: int, e: int, touts: Any) -> None:
        if self.stored[i]:  # cannot happen: one live future per chunk; guard the invariant anyway
            raise DistributedError(f"chunk {i} (directions [{s}, {e})) arrived twice")
        leaves, o_def = _tree.flatten(touts)
        if self.o_def is None:
            self.o_def, self.shapes = o_def, [tuple(t.shape[1:]) for t in leaves]
            self.bufs = [self.alloc(t) for t in leaves]
        for j, t in enumerate(leaves):
            if _backend.is_floating(_backend.namespace_of(t), t.dtype):  # else zero: already there
                self.write(j, s, e, t)
        self.stored[i] = True

    def alloc(self, t: Any) -> Any:
        raise NotImplementedError

    def write(self, j: int, s: int, e: int, t: Any) -> None:
        raise NotImplementedError


class _Blocks(_ChunkStore):
    """Identity seeds: the tangents become Jacobian blocks ``(m_out, m_in)`` per input leaf."""

    def __init__(self, leaves: list, n_chunks: int) -> None:
        super().__init__(n_chunks)
        self.sizes = [math.prod(x.shape) for x in leaves]
        self.offsets = [sum(self.sizes[:i]) for i in range(len(self.sizes))]
        self.dtypes = [x.dtype for x in leaves]

    def alloc(self, t: Any) -> list:
        xp = _backend.namespace_of(t)
        floating = _backend.is_floating(xp, t.dtype)  # a constant integer output: x's dtype, as jacfwd
        dtype = t.dtype if floating else self.dtypes
        return zero_blocks(xp, math.prod(t.shape[1:]), self.sizes, dtype, array_api_compat.device(t))

    def write(self, j: int, s: int, e: int, t: Any) -> None:
        t2 = _backend.namespace_of(t).reshape(t, (e - s, math.prod(self.shapes[j])))
        transpose_into(self.bufs[j], self.offsets, self.sizes, s, e, t2)

    def result(self, in_def: Any, leaves: list) -> Any:
        """The Jacobian tree: output structure of input structures of ``out.shape + in.shape``."""
        blocks = []
        for bufs, so in zip(self.bufs, self.shapes):
            xp = _backend.namespace_of(bufs[0])
            per_in = [xp.reshape(b, so + tuple(x.shape)) for b, x in zip(bufs, leaves)]
            blocks.append(_tree.unflatten(in_def, per_in))
        return _tree.unflatten(self.o_def, blocks)


class _Rows(_ChunkStore):
    """Any seeds: the tangents of the n directions stacked as ``(n, *out.shape)`` per output leaf."""

    def __init__(self, n: int, n_chunks: int) -> None:
        super().__init__(n_chunks)
        self.n = n

    def alloc(self, t: Any) -> Any:
        xp = _backend.namespace_of(t)
        return xp.zeros((self.n, *t.shape[1:]), dtype=t.dtype, device=array_api_compat.device(t))

    def write(self, j: int, s: int, e: int, t: Any) -> None:
        self.bufs[j][s:e, ...] = t

    def result(self) -> Any:
        return _tree.unflatten(self.o_def, self.bufs)


def _refused(i: int, ranges: list, exc: BaseException, done: int) -> DistributedError:
    """The error for an executor that no longer takes tasks."""
    s, e = ranges[i]
    return DistributedError(
        f"the executor refused directions [{s}, {e}) (chunk {i + 1} of {len(ranges)}): "
        f"{type(exc).__name__}: {exc}. It has shut down or lost its workers (a closed client, a "
        f"cluster that went away, a broken process pool); {done} of {len(ranges)} chunks had "
        "finished, but no partial Jacobian is returned: make a new executor and call again"
    )


def _lost(i: int, ranges: list, attempt: int, exc: BaseException, done: int) -> DistributedError:
    """The error for a chunk whose task was lost more often than the retries allow."""
    s, e = ranges[i]
    if isinstance(exc, cf.CancelledError):
        hint = "the executor cancelled it: was it shut down, or did its cluster go away?"
    else:
        hint = "check the workers (memory, logs) or pass a larger retries="
    return DistributedError(
        f"directions [{s}, {e}) (chunk {i + 1} of {len(ranges)}) were lost {attempt + 1} time(s), "
        f"last with {type(exc).__name__}: {exc}; {hint}. {done} of {len(ranges)} chunks had "
        "finished, but no partial Jacobian is returned"
    )


def _raised(i: int, ranges: list, failed: _Failed) -> DistributedError:
    """The error for an exception raised by ``f`` itself (deterministic, so never retried)."""
    s, e = ranges[i]
    return DistributedError(
        f"f raised {type(failed.exc).__name__} on directions [{s}, {e}) (chunk {i + 1} of "
        f"{len(ranges)}): {failed.exc}; no Jacobian is returned. Worker traceback:\n{failed.tb}"
    )


def _stuck(i: int, ranges: list, timeout: float, done: int) -> DistributedError:
    """The error for a chunk that did not finish within ``timeout`` seconds of its submission."""
    s, e = ranges[i]
    return DistributedError(
        f"directions [{s}, {e}) (chunk {i + 1} of {len(ranges)}) did not finish within {timeout:g} s "
        f"of being submitted: a hung worker or an f that does not return? {done} of {len(ranges)} "
        "chunks had finished, but no partial Jacobian is returned; pass a larger timeout= (seconds "
        "per chunk) or a smaller chunk_size= if chunks are slow by nature"
    )


def _no_workers(waited: float, ranges: list, done: int) -> DistributedError:
    """The error for a cluster that has had no workers for ``waited`` seconds."""
    return DistributedError(
        f"the cluster has had no workers for {waited:.0f} s, so the {len(ranges) - done} chunks left "
        f"can never run ({done} of {len(ranges)} had finished; no partial Jacobian is returned): "
        "start or scale up workers (cluster.scale(n), client.wait_for_workers(n)) and call again"
    )


def _grace(timeout: float | None) -> float:
    return _NO_WORKERS_GRACE if timeout is None else min(timeout, _NO_WORKERS_GRACE)


def _await_workers(pool: Any, ranges: list, timeout: float | None, done: int) -> None:
    """Wait a grace period for a cluster that has no workers now (scattering would hang), else raise."""
    t0 = time.monotonic()
    while pool.live_workers() == 0:
        waited = time.monotonic() - t0
        if waited >= _grace(timeout):
            raise _no_workers(waited, ranges, done)
        time.sleep(min(_POLL, _grace(timeout)))


class _Runner:
    """Submits every chunk, stores results as they arrive and resubmits lost tasks."""

    def __init__(
        self, pool: Any, ranges: list, retries: int, sink: _ChunkStore, bar: Any, timeout: float | None
    ) -> None:
        self.pool, self.ranges, self.retries, self.sink, self.bar = pool, ranges, retries, sink, bar
        self.timeout = timeout
        self.run_id = uuid.uuid4().hex[:8]  # task names stay unique across calls and attempts
        self.pending: dict = {}  # future -> (chunk index, attempt): one live future per chunk
        self.started: dict = {}  # future -> time.monotonic() at submission
        self.no_workers_since: float | None = None
        self.aux: Any = None

    def run(self) -> Any:
        """Every chunk stored, or an exception; returns the aux output of chunk 0."""
        try:
            for i in range(len(self.ranges)):
                self.submit(i, 0)
            while self.pending:
                for fut in self.pool.wait_any(self.pending, _POLL):
                    self.settle(fut)
                self.check_progress()
        finally:
            self.pool.release(list(self.pending))
        return self.aux

    def check_progress(self) -> None:
        """Raise when a pending chunk is stuck or the cluster has been without workers too long."""
        if not self.pending:
            return
        now = time.monotonic()
        done = sum(self.sink.stored)
        if self.timeout is not None:
            for fut, t0 in self.started.items():
                if now - t0 > self.timeout:
                    raise _stuck(self.pending[fut][0], self.ranges, self.timeout, done)
        live = self.pool.live_workers()
        if live is None or live > 0:
            self.no_workers_since = None
            return
        if self.no_workers_since is None:
            self.no_workers_since = now
        if now - self.no_workers_since >= _grace(self.timeout):
            raise _no_workers(now - self.no_workers_since, self.ranges, done)

    def submit(self, i: int, attempt: int) -> None:
        s, e = self.ranges[i]
        if attempt:  # outside the try: a cluster without workers is not a refusal
            _await_workers(self.pool, self.ranges, self.timeout, sum(self.sink.stored))
        try:
            if attempt:
                self.pool.refresh()
            fut = self.pool.submit(run_chunk, s, e, f"fwdtensor-jacfwd-{self.run_id}-{s}-{e}-{attempt}")
        except Exception as exc:
            raise _refused(i, self.ranges, exc, sum(self.sink.stored)) from exc
        self.pending[fut] = (i, attempt)
        self.started[fut] = time.monotonic()

    def settle(self, fut: Any) -> None:
        i, attempt = self.pending.pop(fut)
        del self.started[fut]
        s, e = self.ranges[i]
        try:
            res = fut.result()
        except Exception as exc:  # the task itself was lost: its worker died, it was cancelled, ...
            if attempt >= self.retries:
                raise _lost(i, self.ranges, attempt, exc, sum(self.sink.stored)) from exc
            log.warning("retrying directions [%d, %d) after %s: %s", s, e, type(exc).__name__, exc)
            self.submit(i, attempt + 1)
            return
        if isinstance(res, _Failed):
            raise _raised(i, self.ranges, res) from res.exc
        self.sink.add(i, s, e, res.touts)
        self.aux = res.aux if s == 0 else self.aux
        self.bar.update(e - s)


# ------------------------------------------------------------------ checks
def _check_options(chunk_size: Any, retries: Any, timeout: Any = None) -> None:
    if chunk_size is not None:
        _errors.as_index(chunk_size, "chunk_size", 1, "a positive integer or None")
    _errors.as_index(retries, "retries", 0, "a non-negative integer")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0
    ):
        raise ValueError(f"timeout must be a positive number of seconds or None, got {timeout!r}")


def _check_leaf(x: Any) -> int:
    """Refuse inputs that cannot be differentiated here; return the itemsize."""
    if type(x) is DualTensor:
        raise FwdTensorError(
            "a distributed Jacobian cannot run inside another transform (its inputs are duals, whose "
            "levels live in this process); distribute the outermost transform, or use ft.jacfwd inside"
        )
    if not _backend.is_array(x):
        raise TypeError(f"a differentiated argument must be an array, got {type(x).__name__}")
    xp = _backend.namespace_of(x)
    if not xp.isdtype(x.dtype, "real floating"):
        raise NotDifferentiableError(
            f"a distributed Jacobian differentiates real floating inputs, got dtype {x.dtype}; cast it "
            "with astype, leave it out of argnums, or use ft.jacfwd(..., holomorphic=True) for complex inputs"
        )
    return xp.finfo(x.dtype).bits // 8


def default_chunk_size(n: int, itemsize: int, workers: int) -> int:
    """About ``4 * workers`` chunks, each small enough that its tangents fit the memory budget."""
    balanced = math.ceil(n / (_CHUNKS_PER_WORKER * max(workers, 1)))
    fits = _jacobian.get_memory_budget() // (LIVE_ARRAYS * itemsize * max(n, 1))
    return max(1, min(n, balanced, fits))


# ------------------------------------------------------------------ entry points
def push_directions(
    f: Callable,
    args: tuple,
    kwargs: dict,
    *,
    argnums: Any,
    n: int,
    seeds: Callable,
    executor: Any,
    chunk_size: int | None = None,
    retries: int = 1,
    has_aux: bool = False,
    progress: Any = False,
    timeout: float | None = DEFAULT_TIMEOUT,
) -> tuple:
    """Push ``n`` seed directions through ``f`` as chunk tasks on ``executor`` (e.g. colourings).

    ``seeds(i, leaf, s, e)`` (picklable) gives the tangent rows ``(e - s, *leaf.shape)`` of
    differentiated leaf ``i`` for directions ``[s, e)``, or None for none. Returns
    ``(tangents, aux)``: the output structure with leaves ``(n, *out.shape)``, and aux.
    """
    sink, aux = _push(
        f, args, kwargs, argnums, n, seeds, executor, chunk_size, retries, has_aux, progress, timeout
    )
    return sink.result(), aux


def _push(
    f, args, kwargs, argnums, n, seeds, executor, chunk_size, retries, has_aux, progress, timeout
) -> tuple:
    """Check everything, run the chunks, return the filled sink (``_Blocks`` for identity seeds)."""
    pool = _pool(executor)
    nums = check_argnums(argnums, len(args))
    _check_options(chunk_size, retries, timeout)
    _progress.check(progress)
    work = _Work(f, tuple(args), dict(kwargs), argnums, nums, seeds, has_aux)
    leaves = _tree.flatten(work.tree())[0]
    itemsize = max((_check_leaf(x) for x in leaves), default=8)
    _check_serializable(pool, f, work.args, work.kwargs)
    k = min(chunk_size, n) if chunk_size else default_chunk_size(n, itemsize, pool.workers())
    ranges = [(s, min(s + k, n)) for s in range(0, n, k)]
    sink = _Blocks(leaves, len(ranges)) if isinstance(seeds, IdentitySeeds) else _Rows(n, len(ranges))
    _await_workers(pool, ranges, timeout, 0)
    pool.share(work)
    bar = _progress.reporter(progress, n, "direction", "jacfwd")
    try:
        aux = _Runner(pool, ranges, retries, sink, bar, timeout).run()
    finally:
        bar.close()
    return sink, aux


def jacfwd_distributed(
    f: Callable,
    args: tuple,
    kwargs: dict,
    *,
    argnums: int | tuple[int, ...] = 0,
    chunk_size: int | None = None,
    executor: Any,
    retries: int = 1,
    has_aux: bool = False,
    progress: Any = False,
    timeout: float | None = DEFAULT_TIMEOUT,
) -> Any:
    """The Jacobian of ``f(*args, **kwargs)`` (layout ``out.shape + in.shape``), chunks run on ``executor``.

    Returns what ``ft.jacfwd(f, argnums, has_aux=has_aux)(*args, **kwargs)`` returns: the
    Jacobian, or ``(jacobian, aux)``.
    """
    _pool(executor)  # a bad executor is named before anything else is looked at
    nums = check_argnums(argnums, len(args))
    tree = args[nums[0]] if isinstance(argnums, int) else tuple(args[a] for a in nums)
    leaves, in_def = _tree.flatten(tree)
    for x in leaves:
        _check_leaf(x)
    sizes = [math.prod(x.shape) for x in leaves]
    n = sum(sizes)
    if n == 0:  # nothing to distribute
        return _jacobian.jacfwd(f, argnums, has_aux=has_aux)(*args, **kwargs)
    seeds = IdentitySeeds(sizes)
    sink, aux = _push(
        f, args, kwargs, argnums, n, seeds, executor, chunk_size, retries, has_aux, progress, timeout
    )
    jac = sink.result(in_def, leaves)
    return (jac, aux) if has_aux else jac


def distributed_jacfwd(
    f: Callable,
    argnums: int | tuple[int, ...] = 0,
    *,
    executor: Any,
    chunk_size: int | None = None,
    retries: int = 1,
    has_aux: bool = False,
    progress: Any = False,
    timeout: float | None = DEFAULT_TIMEOUT,
) -> Callable:
    """``jacfwd`` whose chunks of directions run as tasks on ``executor`` (threads, processes, Dask).

    Each chunk of ``chunk_size`` seed directions (by default about four per worker) is one
    task computing ``ft.batched_jvp``; the client assembles them in order. A task lost with
    its worker is resubmitted up to ``retries`` times; an error in ``f`` is raised with its
    chunk range; a partial Jacobian is never returned. A chunk still running ``timeout``
    seconds after its submission (default 600; None waits forever), or a cluster without
    workers for ``min(timeout, 30)`` seconds, raises ``DistributedError``.

    >>> import numpy as np, fwdtensor as ft
    >>> from concurrent.futures import ThreadPoolExecutor
    >>> with ThreadPoolExecutor(2) as pool:
    ...     ft.distributed_jacfwd(ft.sin, executor=pool, chunk_size=1)(np.zeros(2))
    array([[1., 0.],
           [0., 1.]])
    """
    _pool(executor)
    nums = check_argnums(argnums)
    argnums = nums if isinstance(argnums, tuple) else nums[0]  # NumPy integers made Python ints
    _check_options(chunk_size, retries, timeout)
    chunk_size = None if chunk_size is None else _errors.as_index(chunk_size, "chunk_size")
    retries = _errors.as_index(retries, "retries")
    _progress.check(progress)

    def jacfun(*args: Any, **kwargs: Any) -> Any:
        return jacfwd_distributed(
            f, args, kwargs, argnums=argnums, chunk_size=chunk_size, executor=executor,
            retries=retries, has_aux=has_aux, progress=progress, timeout=timeout,
        )  # fmt: skip

    jacfun.__doc__ = (
        f"Distributed Jacobian of {getattr(f, '__name__', 'f')} with respect to argnums={argnums}."
    )
    return jacfun
