"""Distributed Jacobian benchmark: local ``ft.jacfwd`` against chunks on a two-worker Dask cluster.

The model is a 200-point reaction-diffusion (Fisher-KPP) system, ``u_t = D u_xx + r u (1 - u)``
on a periodic grid, integrated with explicit Euler; the Jacobian is that of the final
state with respect to the 200-point initial state (200 x 200, 200 seed directions).

For each chunk size k it times (medians of repeated runs):
- ``local``: ``ft.jacfwd(model, chunk_size=k)`` in this process (the same chunks, in turn);
- ``dask``: ``ft.distributed_jacfwd(model, executor=client, chunk_size=k)`` on a
  ``LocalCluster(n_workers=2, processes=True)``; with ``--executors`` also two threads or
  two processes of ``concurrent.futures``;
- the overhead per task: ``(t_dist - t_local / min(workers, tasks)) / tasks``, the wall time
  each task adds beyond a perfect split of the same local work over the workers;
- a null task (submit + result of a function that does nothing) on the cluster.

Everything runs twice, each time in a fresh child process, under two glibc malloc
regimes, because they change NumPy's speed on these 320 KB temporaries by about 3x:
``default`` (glibc's adaptive thresholds here; Dask's nanny starts its workers with
``MALLOC_TRIM_THRESHOLD_=65536``, which switches the adaptive mmap threshold off) and
``tuned`` (``MALLOC_TRIM_THRESHOLD_`` 256 MiB and ``MALLOC_MMAP_THRESHOLD_`` 16 MiB for the
client and, through ``distributed.nanny.pre-spawn-environ``, for the workers).

Run: ``python benchmarks/bench_distributed.py`` (``--quick`` for a smoke run). Prints a
table and writes JSON to benchmarks/results/. On a machine with few cores the client,
scheduler and both workers share them: read the overhead, not the speed-up, from there.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import fwdtensor as ft  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
N = 200
# glibc reads these once, at process start: hence a child process per regime.
TUNED_MALLOC = {"MALLOC_TRIM_THRESHOLD_": str(1 << 28), "MALLOC_MMAP_THRESHOLD_": str(1 << 24)}


def reaction_diffusion(u0, steps=200, d=0.01, r=1.0):
    """Final state of Fisher-KPP on [0, 1) with N points, explicit Euler with a stable step."""
    n = u0.shape[0]
    dx = 1.0 / n
    dt = 0.4 * dx * dx / d  # below the explicit-Euler limit dx^2 / (2 d)
    u = u0
    for _ in range(steps):
        lap = (ft.roll(u, 1) - 2.0 * u + ft.roll(u, -1)) * (d / (dx * dx))
        u = u + dt * (lap + r * u * (1.0 - u))
    return u


def initial_state(n: int = N) -> np.ndarray:
    x = np.linspace(0.0, 1.0, n, endpoint=False)
    return 0.5 + 0.4 * np.exp(-80.0 * (x - 0.5) ** 2)


def _noop() -> None:
    return None


def median_time(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm up: imports on the workers, caches
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


@contextmanager
def executor(name: str, regime: str):
    """An executor with two workers; the Dask cluster listens on the loopback only."""
    if name == "dask":
        import dask
        from distributed import Client, LocalCluster

        env = {f"distributed.nanny.pre-spawn-environ.{k}": int(v) for k, v in TUNED_MALLOC.items()}
        with dask.config.set(env if regime == "tuned" else {}):
            cluster = LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
            )
        with cluster, Client(cluster) as client:
            yield client
    elif name == "threads":
        with ThreadPoolExecutor(2) as ex:
            yield ex
    elif name == "processes":
        with ProcessPoolExecutor(2) as ex:
            yield ex
    else:
        raise SystemExit(f"unknown executor {name!r}: use dask, threads, processes")


def run(regime: str, chunks: list[int], steps: int, repeats: int, names: list[str]) -> dict:
    """The rows of one malloc regime (this process was started with its environment)."""
    u0 = initial_state()
    model = partial(reaction_diffusion, steps=steps)
    ref = ft.jacfwd(model)(u0)
    local = {k: median_time(lambda k=k: ft.jacfwd(model, chunk_size=k)(u0), repeats) for k in chunks}
    rows, null = [], {}
    for name in names:
        with executor(name, regime) as ex:
            for k in chunks:
                tasks = -(-N // k)
                jac = ft.distributed_jacfwd(model, executor=ex, chunk_size=k)
                err = float(np.max(np.abs(jac(u0) - ref)))
                t = median_time(lambda jac=jac: jac(u0), repeats)
                rows.append(
                    {
                        "regime": regime,
                        "executor": name,
                        "chunk_size": k,
                        "tasks": tasks,
                        "local_s": local[k],
                        "distributed_s": t,
                        "overhead_per_task_ms": 1e3 * (t - local[k] / min(2, tasks)) / tasks,
                        "max_abs_diff_vs_local": err,
                    }
                )
            if name == "dask":
                null[regime] = 1e3 * median_time(lambda ex=ex: ex.submit(_noop, pure=False).result(), 20)
    return {"rows": rows, "dask_null_task_ms": null, "load_avg": os.getloadavg()}


def _child(regime: str, argv: list[str]) -> dict:
    """Run one regime in a fresh interpreter (malloc settings apply at process start)."""
    env = dict(os.environ)
    for k in TUNED_MALLOC:
        env.pop(k, None)
    if regime == "tuned":
        env.update(TUNED_MALLOC)
    cmd = [sys.executable, __file__, "--child", regime, *argv]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _print(res: dict, steps: int, repeats: int) -> None:
    print(f"reaction-diffusion, n={N}, steps={steps}; medians of {repeats}; {os.cpu_count()} CPUs")
    head = ("regime", "executor", "chunk", "tasks", "local s", "dist s", "ms/task", "max|diff|")
    print(f"{head[0]:8} {head[1]:10}" + "".join(f"{h:>{w}}" for h, w in zip(head[2:], (6, 6, 9, 9, 9, 10))))
    for r in res["rows"]:
        print(
            f"{r['regime']:8} {r['executor']:10}{r['chunk_size']:6d}{r['tasks']:6d}{r['local_s']:9.4f}"
            f"{r['distributed_s']:9.4f}{r['overhead_per_task_ms']:9.2f}{r['max_abs_diff_vs_local']:10.1e}"
        )
    for regime, v in res["dask_null_task_ms"].items():
        print(f"dask null task (submit + result), {regime}: {v:.2f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="few steps, chunk sizes and repeats (smoke run)")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--executors", default="dask", help="comma-separated: dask,threads,processes")
    ap.add_argument("--regimes", default="default,tuned", help="malloc regimes: default,tuned")
    ap.add_argument("--child", help=argparse.SUPPRESS)  # internal: run one regime, print JSON
    args = ap.parse_args()
    chunks = [200, 50] if args.quick else [200, 100, 50, 25, 10, 5]
    steps, repeats = (20, 2) if args.quick else (args.steps, args.repeats)
    names = args.executors.split(",")
    if args.child:
        print(json.dumps(run(args.child, chunks, steps, repeats, names)))
        return
    argv = sys.argv[1:]
    res: dict = {"rows": [], "dask_null_task_ms": {}, "load_avg": {}}
    for regime in args.regimes.split(","):
        part = _child(regime, argv)
        res["rows"] += part["rows"]
        res["dask_null_task_ms"].update(part["dask_null_task_ms"])
        res["load_avg"][regime] = part["load_avg"]
    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "n": N,
        "steps": steps,
        "repeats": repeats,
        "tuned_malloc": TUNED_MALLOC,
    }
    _print(res, steps, repeats)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"distributed_{'quick' if args.quick else 'default'}.json"
    out.write_text(json.dumps({"meta": meta, **res}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
