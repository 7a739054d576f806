"""Core benchmark: forward-mode cost against the plain NumPy function and against peers.

(a) f(x) = log(x) + x*roll(x, 1) - sin(x): time of the JVP over the time of the NumPy
    primal, n = 1e3 .. 1e7, for fwdtensor, torch.func.jvp, HIPS autograd (forward mode),
    eager jax.jvp and jitted jax.jvp (compile excluded).
(b) per-operation overhead on 3-element float64 arrays: a dual multiply against a NumPy
    multiply, a dual sin against a NumPy sin, and sin(x) * x for every peer.

Run: ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_core.py``
(``--quick`` for a smoke run, ``--threads 1`` for the single-thread run). Prints a table
and writes JSON to benchmarks/results/. Medians of repeated runs; the load average is
recorded because these machines are shared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import fwdtensor as ft  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def median_time(fn: Callable[[], object], *, min_time: float = 0.2, repeats: int = 7) -> float:
    """Median over ``repeats`` of the mean time of a loop lasting about ``min_time``."""
    fn()
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-7)
    number = max(1, int(min_time / repeats / one))
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - t0) / number)
    return statistics.median(samples)


# ------------------------------------------------------------------ peers
def f_numpy(x):
    return np.log(x) + x * np.roll(x, 1) - np.sin(x)


def f_ft(x):
    return ft.log(x) + x * ft.roll(x, 1) - ft.sin(x)


def peers_a() -> dict[str, Callable]:
    """JVP implementations of (a), each ``make(x, v) -> thunk``."""
    out: dict[str, Callable] = {"fwdtensor": lambda x, v: lambda: ft.jvp(f_ft, (x,), (v,))}
    try:
        import torch
        from torch.func import jvp as tjvp

        def f_t(x):
            return torch.log(x) + x * torch.roll(x, 1) - torch.sin(x)

        def mk_torch(x, v):
            tx, tv = torch.from_numpy(x), torch.from_numpy(v)
            return lambda: tjvp(f_t, (tx,), (tv,))

        out["torch.func.jvp"] = mk_torch
    except ImportError:
        pass
    try:
        import autograd.numpy as anp
        from autograd import make_jvp

        def f_a(x):
            return anp.log(x) + x * anp.roll(x, 1) - anp.sin(x)

        def mk_autograd(x, v):
            j = make_jvp(f_a)
            return lambda: j(x)(v)

        out["autograd make_jvp"] = mk_autograd
    except ImportError:
        pass
    try:
        import jax

        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp

        def f_j(x):
            return jnp.log(x) + x * jnp.roll(x, 1) - jnp.sin(x)

        def mk_eager(x, v):
            jx, jv = jnp.asarray(x), jnp.asarray(v)
            return lambda: jax.block_until_ready(jax.jvp(f_j, (jx,), (jv,)))

        jitted = jax.jit(lambda x, v: jax.jvp(f_j, (x,), (v,)))

        def mk_jit(x, v):
            jx, jv = jnp.asarray(x), jnp.asarray(v)
            jax.block_until_ready(jitted(jx, jv))  # compile outside the timing
            return lambda: jax.block_until_ready(jitted(jx, jv))

        out["jax.jvp (eager)"] = mk_eager
        out["jax.jvp (jit)"] = mk_jit
    except ImportError:
        pass
    return out


def bench_a(sizes: list[int]) -> list[dict]:
    rows = []
    rng = np.random.default_rng(0)
    peers = peers_a()
    for n in sizes:
        x = rng.uniform(0.5, 2.0, n)
        v = rng.normal(size=n)
        # Interleaved rounds: the primal and every peer are timed once per round, so a
        # neighbour's load on this shared machine hits them alike; medians over rounds.
        thunks = {"numpy": lambda x=x: f_numpy(x)}
        row = {"n": n}
        for name, make in peers.items():
            try:
                thunks[name] = make(x, v)
            except Exception as exc:  # a peer that cannot run this size is reported, not fatal
                row[name] = f"error: {type(exc).__name__}"
        samples: dict[str, list[float]] = {k: [] for k in thunks}
        for _ in range(3 if n >= 10**7 else 5):
            for name, thunk in thunks.items():
                try:
                    samples[name].append(median_time(thunk, min_time=0.05, repeats=3))
                except Exception as exc:
                    row[name] = f"error: {type(exc).__name__}"
        base = statistics.median(samples.pop("numpy"))
        row["numpy_primal_s"] = base
        for name, ts in samples.items():
            if name not in row and ts:
                row[name] = statistics.median(ts) / base
        rows.append(row)
        print_row_a(row, list(peers))
    return rows


def print_row_a(row: dict, names: list[str]) -> None:
    cells = [f"{row['n']:>9.0e}", f"{row['numpy_primal_s'] * 1e3:9.3f} ms"]
    cells += [f"{row[k]:8.2f}x" if isinstance(row[k], float) else f"{row[k]:>9}" for k in names]
    print(" | ".join(cells))


def bench_b() -> dict:
    rng = np.random.default_rng(1)
    x, y, tx, ty = (rng.uniform(0.5, 2.0, 3) for _ in range(4))
    a, b = ft.DualTensor(x, tx), ft.DualTensor(y, ty)
    res = {
        "numpy multiply": median_time(lambda: x * y),
        "dual multiply": median_time(lambda: a * b),
        "numpy sin": median_time(lambda: np.sin(x)),
        "dual sin": median_time(lambda: ft.sin(a)),
        "numpy sin(x)*x": median_time(lambda: np.sin(x) * x),
        "dual sin(x)*x": median_time(lambda: ft.sin(a) * a),
    }
    try:
        import torch
        from torch.func import jvp as tjvp

        t1, t2 = torch.from_numpy(x), torch.from_numpy(tx)
        res["torch.func.jvp sin(x)*x"] = median_time(lambda: tjvp(lambda z: torch.sin(z) * z, (t1,), (t2,)))
    except ImportError:
        pass
    try:
        import jax
        import jax.numpy as jnp

        j1, j2 = jnp.asarray(x), jnp.asarray(tx)
        res["jax.jvp (eager) sin(x)*x"] = median_time(
            lambda: jax.block_until_ready(jax.jvp(lambda z: jnp.sin(z) * z, (j1,), (j2,)))
        )
    except ImportError:
        pass
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes only (smoke run)")
    ap.add_argument("--threads", type=int, default=None, help="limit BLAS/torch threads")
    args = ap.parse_args()
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
        try:
            import torch

            torch.set_num_threads(args.threads)
        except ImportError:
            pass
        try:
            from threadpoolctl import threadpool_limits

            threadpool_limits(args.threads)
        except ImportError:
            pass
    sizes = [10**3, 10**4] if args.quick else [10**3, 10**4, 10**5, 10**6, 10**7]
    load = os.getloadavg()
    print(f"# fwdtensor core benchmark  {time.strftime('%Y-%m-%d %H:%M')}  load {load[0]:.2f}")
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, numpy {np.__version__}")
    print("\n(a) jvp time / NumPy primal time for log(x) + x*roll(x,1) - sin(x)")
    names = list(peers_a())
    print(" | ".join([f"{'n':>9}", f"{'primal':>12}"] + [f"{k[:9]:>9}" for k in names]))
    rows = bench_a(sizes)
    print("\n(b) per-operation cost on 3-element float64 arrays")
    b = bench_b()
    for k, v in b.items():
        print(f"{k:28s} {v * 1e6:8.2f} us")
    print(f"dual multiply / numpy multiply = {b['dual multiply'] / b['numpy multiply']:.2f}x")
    print(f"dual sin / numpy sin           = {b['dual sin'] / b['numpy sin']:.2f}x")
    RESULTS.mkdir(exist_ok=True)
    tag = f"threads{args.threads}" if args.threads else "default"
    out = RESULTS / f"core_{tag}{'_quick' if args.quick else ''}.json"
    out.write_text(
        json.dumps(
            {
                "date": time.strftime("%Y-%m-%d %H:%M"),
                "load_before": load,
                "load_after": os.getloadavg(),
                "machine": platform.platform(),
                "cpus": os.cpu_count(),
                "threads": args.threads,
                "a_ratio_to_numpy_primal": rows,
                "b_seconds": b,
            },
            indent=1,
        )
    )
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
