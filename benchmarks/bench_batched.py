"""Per-sample Jacobians: ``ft.jacfwd(f, batch_axis=0)`` beside JAX and torch.func, same run.

Workloads: the Lorenz right-hand side (R^3 -> R^3 per sample) and a tanh MLP R^8 -> R^8
with shared weights, at N samples. Every time is a median of repeats and is reported as a
ratio to the primal evaluation of f over all N samples (NumPy), measured in the same run.
Peers that are not installed are left out. The load average and the thread count are
printed with the table; ``--json`` writes ``benchmarks/results/batched.json``.

Run: ``python benchmarks/bench_batched.py [--n 1000 100000] [--repeat 7] [--json]``
(for a one-thread run: ``OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python ...``).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import statistics
import time

import numpy as np

import fwdtensor as ft

W = np.random.default_rng(0)
W1, B1, W2 = W.normal(size=(8, 16)) / 3, W.normal(size=16) / 3, W.normal(size=(16, 8)) / 4


def lorenz(u, s=10.0, r=28.0, b=8.0 / 3.0):
    xp = u.__array_namespace__()
    x, y, z = u[:, 0], u[:, 1], u[:, 2]
    return xp.stack([s * (y - x), x * (r - z) - y, x * y - b * z], axis=1)


def mlp(x):
    xp = x.__array_namespace__()
    return xp.tanh(x @ W1 + B1) @ W2


def lorenz_np(u, s=10.0, r=28.0, b=8.0 / 3.0):
    x, y, z = u[:, 0], u[:, 1], u[:, 2]
    return np.stack([s * (y - x), x * (r - z) - y, x * y - b * z], axis=1)


def mlp_np(x):
    return np.tanh(x @ W1 + B1) @ W2


def median_time(fn, repeat: int) -> float:
    fn()  # warm up (and compile, for jit)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def peers(name: str, X: np.ndarray) -> dict:
    """Callables of the installed peers computing the same per-sample Jacobians."""
    out = {}
    try:
        import jax
        import jax.numpy as jnp

        jax.config.update("jax_enable_x64", True)
        one = {
            "lorenz": lambda u: jnp.stack(
                [10.0 * (u[1] - u[0]), u[0] * (28.0 - u[2]) - u[1], u[0] * u[1] - 8.0 / 3.0 * u[2]]
            ),
            "mlp": lambda x: jnp.tanh(x @ W1 + B1) @ W2,
        }[name]
        Xj = jnp.asarray(X)
        eager = jax.vmap(jax.jacfwd(one))
        jitted = jax.jit(eager)
        out["jax vmap(jacfwd) eager"] = lambda: eager(Xj).block_until_ready()
        out["jax jit(vmap(jacfwd))"] = lambda: jitted(Xj).block_until_ready()
    except ImportError:
        pass
    try:
        import torch
        from torch.func import jacfwd, vmap

        Xt = torch.as_tensor(X)
        w1, b1, w2 = (torch.as_tensor(a) for a in (W1, B1, W2))
        one = {
            "lorenz": lambda u: torch.stack(
                [10.0 * (u[1] - u[0]), u[0] * (28.0 - u[2]) - u[1], u[0] * u[1] - 8.0 / 3.0 * u[2]]
            ),
            "mlp": lambda x: torch.tanh(x @ w1 + b1) @ w2,
        }[name]
        fn = vmap(jacfwd(one))
        out["torch.func vmap(jacfwd)"] = lambda: fn(Xt)
    except ImportError:
        pass
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[1000, 100_000])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = []
    print(f"load average {os.getloadavg()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    for name, f, f_np, d in (("lorenz", lorenz, lorenz_np, 3), ("mlp", mlp, mlp_np, 8)):
        for n in args.n:
            X = np.random.default_rng(n).normal(size=(n, d))
            base = median_time(lambda f_np=f_np, X=X: f_np(X), args.repeat)
            jac = ft.jacfwd(f, batch_axis=0)
            jac(X)  # the independence check runs once per signature
            times = {"fwdtensor jacfwd(batch_axis=0)": median_time(lambda jac=jac, X=X: jac(X), args.repeat)}
            for label, fn in peers(name, X).items():
                times[label] = median_time(fn, args.repeat)
            for label, t in times.items():
                rows.append({"workload": name, "n": n, "method": label, "seconds": t, "ratio": t / base})
                print(f"{name:7s} N={n:>8d}  {label:32s} {t * 1e3:9.3f} ms  {t / base:8.2f}x primal")
    if args.json:
        out = pathlib.Path(__file__).parent / "results" / "batched.json"
        out.parent.mkdir(exist_ok=True)
        meta = {
            "machine": platform.platform(),
            "processor": platform.processor(),
            "loadavg": os.getloadavg(),
            "threads": os.environ.get("OMP_NUM_THREADS", "unset"),
        }
        out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
