"""Everything that knows about Dask: lazy duals (``compute``/``persist``) and the Client adapter.

Dask is optional. Nothing here imports it at module level: a dual holds Dask arrays only
when the user made them (so ``dask`` is already imported), and an executor is a
``dask.distributed.Client`` only when ``distributed`` is in ``sys.modules``. The rules
themselves need nothing from this module: array-api-compat's ``dask.array`` namespace is
just another backend, so operations on Dask duals stay lazy by construction.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from concurrent.futures import CancelledError
from contextlib import suppress
from typing import Any

import array_api_compat

from ...core import dual as _core
from ...core.backend import namespace_of
from ...core.dual import DualTensor

__all__ = ["compute", "persist", "is_client", "ClientPool"]


# ------------------------------------------------------------------ lazy duals
def _arrays(d: DualTensor) -> list:
    """The backend arrays of a dual, primal first, through nested levels (None: no tangent)."""
    out: list = []
    for part in (d.primal, d._t):
        if type(part) is DualTensor:
            out.extend(_arrays(part))
        else:
            out.append(part)
    return out


def _rebuild(d: DualTensor, it: Any) -> DualTensor:
    """``d`` with its arrays replaced, in ``_arrays`` order, by the values from ``it``."""
    parts = [_rebuild(x, it) if type(x) is DualTensor else next(it) for x in (d.primal, d._t)]
    p, t = parts
    return _core._make(p, t, d.level, d._B, namespace_of(_core.innermost(p)))


def _has_dask(arrays: Iterable) -> bool:
    return any(array_api_compat.is_dask_array(a) for a in arrays)


def _lazy_call(d: DualTensor, how: str, kwargs: dict) -> DualTensor:
    """Apply ``dask.compute`` or ``dask.persist`` to every array of ``d`` in one graph."""
    arrays = _arrays(d)
    if not _has_dask(arrays):  # an eager backend: its values are already there
        return d
    import dask  # only reached when the dual holds Dask arrays, so Dask is installed

    present = [a for a in arrays if a is not None]
    done = iter(getattr(dask, how)(*present, **kwargs))
    return _rebuild(d, iter([None if a is None else next(done) for a in arrays]))


def compute(d: DualTensor, **kwargs: Any) -> DualTensor:
    """Evaluate a Dask-backed dual: primal and tangent in one graph (shared work runs once).

    Returns a dual of the computed (NumPy, or CuPy) arrays with the same level and batch
    size; ``kwargs`` go to ``dask.compute`` (``scheduler=...``). A dual of an eager backend
    is returned unchanged, so backend-agnostic code may call it unconditionally.
    """
    return _lazy_call(d, "compute", kwargs)


def persist(d: DualTensor, **kwargs: Any) -> DualTensor:
    """Keep a Dask-backed dual's primal and tangent computed (in memory or on a cluster), still lazy.

    One ``dask.persist`` call for both parts; ``kwargs`` go to it. Eager duals are returned
    unchanged.
    """
    return _lazy_call(d, "persist", kwargs)


# ------------------------------------------------------- dask.distributed Client
def is_client(executor: Any) -> bool:
    """True for a ``dask.distributed.Client`` (checked without importing distributed)."""
    distributed = sys.modules.get("distributed")
    return distributed is not None and isinstance(executor, distributed.Client)


class ClientPool:
    """The executor protocol of ``_distributed`` on a ``dask.distributed.Client``.

    The work description is scattered once to every worker (not embedded in every task),
    tasks are impure (a resubmitted chunk is a new task, never the cached failure) and
    named after their chunk, so the dashboard shows which directions run where.
    """

    serializer = "cloudpickle"  # what distributed falls back to for functions pickle refuses
    name = "dask.distributed.Client"

    def __init__(self, client: Any) -> None:
        self.client = client
        self._work: Any = None
        self._payload: Any = None

    def workers(self) -> int:
        return max(1, sum(self.client.nthreads().values()))

    def share(self, payload: Any) -> None:
        # broadcast: a worker that dies does not take the only copy of the inputs with it
        self._work = payload
        self._payload = self.client.scatter(payload, broadcast=True, hash=False)

    def refresh(self) -> None:
        """Scatter the work again if every copy was lost with its workers (before a retry)."""
        if self._payload is not None and self._payload.status != "finished":
            self.share(self._work)

    def submit(self, fn: Callable, s: int, e: int, name: str) -> Any:
        return self.client.submit(fn, self._payload, s, e, key=name, pure=False)

    def live_workers(self) -> int | None:
        """How many workers the scheduler has now (None when it cannot be asked)."""
        try:
            return len(self.client.nthreads())
        except Exception:  # a closed client: the futures report that themselves
            return None

    def wait_any(self, futures: Iterable, timeout: float) -> set:
        """The futures that finished within ``timeout`` seconds (possibly none)."""
        from distributed import wait

        futures = list(futures)
        try:
            return set(wait(futures, timeout=timeout, return_when="FIRST_COMPLETED").done)
        except CancelledError:  # a closed client or cluster: its cancelled futures are finished too
            return {f for f in futures if f.cancelled() or f.done()}
        except TimeoutError:  # distributed's TimeoutError is the builtin one
            return {f for f in futures if f.done()}

    def release(self, futures: Iterable) -> None:
        with suppress(Exception):  # a client that is already closed has nothing left to release
            for f in futures:
                f.cancel()
            if self._payload is not None:
                self._payload.release()
        self._work = self._payload = None
