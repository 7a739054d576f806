"""Jacobians side by side: fwdtensor against jax.jacfwd (jit and not), torch.func.jacfwd,
HIPS autograd's jacobian and NumPy central differences, in one run.

Problems:
  (1) mlp        the Jacobian of a two-layer tanh MLP R^n -> R^n, n = 64, 256, 1024
  (2) lotka      the final state of an RK4 integration (500 steps) of Lotka-Volterra with
                 respect to its 4 parameters; reaction-diffusion (200 points, 200 explicit
                 steps) with respect to 3 parameters
  (3) burgers    a periodic 1-D Burgers residual, n = 1000 and 5000: dense forward mode,
                 coloured sparse forward mode (colouring and detection timed separately),
                 finite differences (dense and coloured)

Every time is a median over repeats (compile time of jitted JAX excluded and reported on its
own) and also given relative to the plain NumPy function in the same run. The whole set
runs twice, with all threads and with one (OMP_NUM_THREADS=1, torch and XLA limited to one
thread), each in a fresh process. Peak memory for (1) and (3): the rise of the process's
peak resident set during one call, measured in a fresh process per case after a warm-up
call (glibc's mmap threshold is fixed so freed buffers go back to the system).

Run (the NumPy timings need OpenBLAS's own core detection):
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_jacobian.py
Options: --quick (fewer sizes and repeats), --no-memory, --no-single-thread.
Writes benchmarks/results/bench_jacobian.json and .txt (the printed tables).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"

MLP_SIZES = (64, 256, 1024)
BURGERS_SIZES = (1000, 5000)
LV_STEPS, RD_STEPS, RD_POINTS = 500, 200, 200
ONE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
}


# ======================================================================= problems
def mlp_weights(n: int):
    import numpy as np

    rng = np.random.default_rng(n)
    s = 1.0 / np.sqrt(n)
    return (
        rng.standard_normal((n, n)) * s,
        rng.standard_normal(n),
        rng.standard_normal((n, n)) * s,
        rng.standard_normal(n),
        rng.standard_normal(n),
    )


def mlp_fn(xp, W1, b1, W2, b2):
    def f(x):
        return xp.matmul(W2, xp.tanh(xp.matmul(W1, x) + b1)) + b2

    return f


def _loop(steps, step, u, fori):
    """``steps`` applications of ``step``: a Python loop, or ``jax.lax.fori_loop`` under jit
    (unrolling 500 RK4 steps makes XLA's compile time and memory explode)."""
    if fori is not None:
        return fori(0, steps, lambda i, v: step(v), u)
    for _ in range(steps):
        u = step(u)
    return u


def lotka_fn(xp, u0, sign_r, sign_s, steps=LV_STEPS, h=0.01, fori=None, rev=None):
    """x' = x (a - b y), y' = y (c x - d), p = (a, d, b, c): RK4, final state."""
    rev = rev or (lambda u: xp.flip(u, axis=0))

    def f(p):
        r = p[:2] * sign_r  # (a, -d)
        s = p[2:] * sign_s  # (-b, c)

        def rhs(u):
            return u * (r + s * rev(u))

        def step(u):
            k1 = rhs(u)
            k2 = rhs(u + (h / 2) * k1)
            k3 = rhs(u + (h / 2) * k2)
            k4 = rhs(u + h * k3)
            return u + (h / 6) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)

        return _loop(steps, step, u0, fori)

    return f


def rd_fn(xp, u0, steps=RD_STEPS, dt=0.05, dx=1.0 / RD_POINTS, fori=None):
    """u_t = D u_xx + r u (1 - u / K), periodic, explicit Euler; p = (D, r, K)."""

    def f(p):
        D, r, K = p[0], p[1], p[2]

        def step(u):
            lap = (xp.roll(u, 1) - 2.0 * u + xp.roll(u, -1)) / (dx * dx)
            return u + dt * (D * lap + r * u * (1.0 - u / K))

        return _loop(steps, step, u0, fori)

    return f


def burgers_fn(xp, n: int, nu: float = 0.01):
    """Residual of u u_x - nu u_xx on a periodic grid of n points (central differences)."""
    h = 1.0 / n

    def f(u):
        up, um = xp.roll(u, -1), xp.roll(u, 1)
        return u * (up - um) * (0.5 / h) - (nu / (h * h)) * (up - 2.0 * u + um)

    return f


def problem(name: str, n: int, lib: str):
    """(f, x) for one problem in one library's arrays (float64 everywhere)."""
    import numpy as np

    xp, asarray = _namespace(lib)
    fori = None
    if lib == "jax-jit":
        import jax

        fori = jax.lax.fori_loop
    if name == "mlp":
        W1, b1, W2, b2, x = mlp_weights(n)
        return mlp_fn(xp, *(asarray(a) for a in (W1, b1, W2, b2))), asarray(x)
    if name == "lotka":
        consts = (np.array([10.0, 5.0]), np.array([1.0, -1.0]), np.array([-1.0, 1.0]))
        rev = (lambda u: u[::-1]) if lib == "autograd" else None  # autograd has no VJP of flip
        f = lotka_fn(xp, *(asarray(c) for c in consts), fori=fori, rev=rev)
        return f, asarray(np.array([1.1, 0.4, 0.4, 0.1]))
    if name == "reaction_diffusion":
        grid = np.linspace(0, 1, RD_POINTS, endpoint=False)
        u0 = asarray(1.0 + 0.5 * np.sin(2 * np.pi * grid))
        return rd_fn(xp, u0, fori=fori), asarray(np.array([1e-5, 0.5, 2.0]))
    if name == "burgers":
        u = np.sin(2 * np.pi * np.linspace(0, 1, n, endpoint=False)) + 0.1 * np.cos(
            6 * np.pi * np.linspace(0, 1, n, endpoint=False)
        )
        return burgers_fn(xp, n), asarray(u)
    raise ValueError(name)


def _namespace(lib: str):
    import numpy as np

    if lib in ("numpy", "fd"):
        return np, np.asarray
    if lib == "fwdtensor":
        import fwdtensor as ft

        return ft, np.asarray
    if lib.startswith("jax"):
        import jax

        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp

        return jnp, jnp.asarray
    if lib == "torch":
        import array_api_compat.torch as xt
        import torch

        return xt, lambda a: torch.asarray(a, dtype=torch.float64)
    if lib == "autograd":
        import autograd.numpy as anp

        return anp, np.asarray
    raise ValueError(lib)


# ======================================================================= methods
def central_differences(f, x, h=None):
    """Dense Jacobian by central differences, one input at a time (2n evaluations)."""
    import numpy as np

    h = h or 1e-6
    cols = []
    for j in range(x.size):
        e = np.zeros_like(x)
        e[j] = h
        cols.append((f(x + e) - f(x - e)) / (2 * h))
    return np.stack(cols, axis=-1)


def coloured_differences(f, x, colors, pattern, h=1e-6):
    """Sparse Jacobian by central differences, one pair of evaluations per colour."""
    import numpy as np
    import scipy.sparse as sp

    nc = int(colors.max()) + 1
    C = np.empty((nc, x.size))
    for c in range(nc):
        d = (colors == c) * h
        C[c] = (f(x + d) - f(x - d)) / (2 * h)
    rows = pattern.rows()
    vals = C[colors[pattern.indices], rows]
    return sp.csr_array((vals, pattern.indices, pattern.indptr), shape=pattern.shape)


def make_method(problem_name: str, n: int, method: str):
    """A zero-argument callable computing the Jacobian (and some facts about it)."""
    facts: dict = {}
    if method == "numpy primal":
        f, x = problem(problem_name, n, "numpy")
        return (lambda: f(x)), facts
    if method.startswith("fwdtensor"):
        import fwdtensor as ft

        f, x = problem(problem_name, n, "fwdtensor")
        if method == "fwdtensor coloured":
            t0 = time.perf_counter()
            pattern = ft.sparsity_pattern(f, x)
            facts["detection_s"] = time.perf_counter() - t0
            jac = ft.sparse_jacfwd(f, pattern)
            facts["coloring_s"] = jac.coloring_seconds
            facts["ncolors"] = jac.ncolors
            return (lambda: jac(x)), facts
        chunk = int(method.split("chunk ")[1].rstrip(")")) if "chunk" in method else None
        jac = ft.jacfwd(f, chunk_size=chunk)
        return (lambda: jac(x)), facts
    if method.startswith("jax"):
        import jax

        f, x = problem(problem_name, n, "jax-jit" if method == "jax.jacfwd jit" else "jax")
        jf = jax.jacfwd(f)
        if method == "jax.jacfwd jit":
            jf = jax.jit(jf)
            t0 = time.perf_counter()
            jax.block_until_ready(jf(x))
            facts["compile_s"] = time.perf_counter() - t0
        return (lambda: jax.block_until_ready(jf(x))), facts
    if method == "torch.func.jacfwd":
        import torch

        f, x = problem(problem_name, n, "torch")
        jf = torch.func.jacfwd(f)
        return (lambda: jf(x)), facts
    if method == "autograd.jacobian":
        import autograd

        f, x = problem(problem_name, n, "autograd")
        jf = autograd.jacobian(f)
        return (lambda: jf(x)), facts
    if method == "numpy central diff":
        f, x = problem(problem_name, n, "numpy")
        return (lambda: central_differences(f, x)), facts
    if method == "numpy coloured diff":
        import fwdtensor as ft

        f, x = problem(problem_name, n, "numpy")
        pattern = ft.sparsity_pattern(problem(problem_name, n, "fwdtensor")[0], x)
        colors = ft.color_columns(pattern)
        facts["ncolors"] = int(colors.max()) + 1
        return (lambda: coloured_differences(f, x, colors, pattern)), facts
    raise ValueError(method)


METHODS = {
    "mlp": [
        "numpy primal",
        "fwdtensor jacfwd",
        "fwdtensor jacfwd (chunk 64)",
        "jax.jacfwd jit",
        "jax.jacfwd",
        "torch.func.jacfwd",
        "autograd.jacobian",
        "numpy central diff",
    ],
    "lotka": [
        "numpy primal",
        "fwdtensor jacfwd",
        "jax.jacfwd jit",
        "jax.jacfwd",
        "torch.func.jacfwd",
        "autograd.jacobian",
        "numpy central diff",
    ],
    "reaction_diffusion": [
        "numpy primal",
        "fwdtensor jacfwd",
        "jax.jacfwd jit",
        "jax.jacfwd",
        "torch.func.jacfwd",
        "autograd.jacobian",
        "numpy central diff",
    ],
    "burgers": [
        "numpy primal",
        "fwdtensor coloured",
        "fwdtensor jacfwd",
        "fwdtensor jacfwd (chunk 256)",
        "jax.jacfwd jit",
        "torch.func.jacfwd",
        "numpy central diff",
        "numpy coloured diff",
    ],
}
MEMORY_PROBLEMS = ("mlp", "burgers")


def sizes(problem_name: str, quick: bool) -> tuple:
    if problem_name == "mlp":
        return (64, 256) if quick else MLP_SIZES
    if problem_name == "burgers":
        return (1000,) if quick else BURGERS_SIZES
    return (None,)


# ==================================================================== measuring
def _status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field):
                return int(line.split()[1])
    raise RuntimeError(field)


def child_time(quick: bool) -> list[dict]:
    """Every method of every problem in this process (thread settings come from the parent).

    With one thread, the methods of one problem are timed in interleaved rounds, so that
    load from other processes falls on all of them alike. With all threads each method
    runs in one block: interleaved, the worker threads that one library leaves spinning
    after its turn starve the next library's threads.
    """
    single = os.environ.get("OMP_NUM_THREADS") == "1"
    if single:
        import torch

        torch.set_num_threads(1)
    records = []
    for pname, methods in METHODS.items():
        for n in sizes(pname, quick):
            fns, recs = {}, {}
            for m in methods:
                recs[m] = {"problem": pname, "n": n, "method": m}
                try:
                    fns[m], facts = make_method(pname, n, m)
                    recs[m].update(facts)
                except Exception as exc:  # a missing peer is reported, not fatal
                    recs[m]["error"] = f"{type(exc).__name__}: {exc}"[:300]
            stats = interleaved(fns, 0.1 if quick else 0.4, rounds=5 if single else 1)
            primal = stats.get("numpy primal", (None,))[0]
            for m in methods:
                if m in stats:
                    med, reps, err = stats[m]
                    if err:
                        recs[m]["error"] = err
                    else:
                        recs[m].update(median_s=med, reps=reps, x_primal=med / primal if primal else None)
                records.append(recs[m])
                print(json.dumps(recs[m]), file=sys.stderr, flush=True)
    records.extend(_accuracy(quick))
    return records


def interleaved(fns: dict, budget: float, rounds: int = 5, max_reps: int = 200) -> dict:
    """Median seconds per method: warm-up, then ``rounds`` rounds of time slices per method.

    A method slower than a second gets one timed call in total (the run must stay short).
    """
    warm, out, samples = {}, {}, {m: [] for m in fns}
    for m, fn in list(fns.items()):
        try:
            t0 = time.perf_counter()
            fn()
            warm[m] = time.perf_counter() - t0
        except Exception as exc:
            out[m] = (None, 0, f"{type(exc).__name__}: {exc}"[:300])
            del fns[m]
    for _ in range(rounds):
        for m, fn in fns.items():
            if samples[m] and (warm[m] > 1.0 or len(samples[m]) >= max_reps):
                continue
            end = time.perf_counter() + budget / rounds
            while True:
                t0 = time.perf_counter()
                fn()
                t1 = time.perf_counter()
                samples[m].append(t1 - t0)
                if t1 >= end or warm[m] > 1.0:
                    break
    for m in fns:
        out[m] = (statistics.median(samples[m]), len(samples[m]), None)
    return out


def _accuracy(quick: bool) -> list[dict]:
    """Coloured against dense fwdtensor Jacobians (exact to rounding?) and against JAX."""
    import numpy as np

    import fwdtensor as ft

    out = []
    for n in sizes("burgers", quick):
        f, x = problem("burgers", n, "fwdtensor")
        Js = ft.sparse_jacfwd(f, ft.sparsity_pattern(f, x))(x).toarray()
        Jd = np.asarray(ft.jacfwd(f)(x))
        out.append(
            {
                "problem": "burgers",
                "n": n,
                "method": "accuracy",
                "coloured_vs_dense_rel": float(np.max(np.abs(Js - Jd)) / np.max(np.abs(Jd))),
            }
        )
    return out


def child_memory(pname: str, n: int | None, method: str) -> dict:
    """Rise of the peak resident set during a call, after warm-up; the larger of two calls.

    Libraries that keep freed buffers in a pool of their own (XLA's allocator) may reuse
    them on the second call, so both calls are measured and the larger rise is reported.
    """
    fn, _ = make_method(pname, n, method)
    rises = []
    for _ in range(2):
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # reset the peak resident set to the current one
        base = _status_kb("VmRSS:")
        fn()
        rises.append((_status_kb("VmHWM:") - base) / 1024)
    return {"problem": pname, "n": n, "method": method, "peak_rise_mib": max(rises), "rises_mib": rises}


# ======================================================================= parent
def run_child(args: list[str], env_extra: dict, timeout: float) -> dict | list:
    env = dict(os.environ)
    env.update(env_extra)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("MALLOC_MMAP_THRESHOLD_", "131072")  # freed large buffers return to the OS
    proc = subprocess.run(
        [sys.executable, __file__, *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("numpy", "fwdtensor", "jax", "jaxlib", "torch", "autograd", "scipy", "array-api-compat"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--no-single-thread", action="store_true")
    ap.add_argument("--child", choices=("time", "memory"))
    ap.add_argument("--gpu-check", action="store_true", help="CuPy timings and checks (on a CUDA machine)")
    ap.add_argument("--problem")
    ap.add_argument("--n", type=int)
    ap.add_argument("--method")
    ap.add_argument("--out", default=str(RESULTS / "bench_jacobian.json"))
    a = ap.parse_args()
    if a.child == "time":
        print(json.dumps(child_time(a.quick)))
        return
    if a.child == "memory":
        print(json.dumps(child_memory(a.problem, a.n, a.method)))
        return
    if a.gpu_check:
        gpu_check(a.out)
        return

    started = time.time()
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
        "versions": versions(),
        "openblas_env_unset": "OPENBLAS_CORETYPE" not in os.environ and "OPENBLAS_L2_SIZE" not in os.environ,
        "quick": a.quick,
    }
    configs = {"all threads": {}}
    if not a.no_single_thread:
        configs["1 thread"] = ONE_THREAD_ENV
    runs = {}
    for label, env in configs.items():
        print(f"timing with {label} ...", file=sys.stderr, flush=True)
        runs[label] = run_child(["--child", "time"] + (["--quick"] if a.quick else []), env, timeout=900)
    memory = []
    if not a.no_memory:
        for pname in MEMORY_PROBLEMS:
            for n in sizes(pname, a.quick):
                for m in METHODS[pname]:
                    if "diff" in m and m != "numpy coloured diff" and (n or 0) >= 1000:
                        continue  # memory of a loop of primal calls: nothing to learn, minutes to wait
                    print(f"memory {pname} n={n} {m}", file=sys.stderr, flush=True)
                    try:
                        memory.append(
                            run_child(
                                ["--child", "memory", "--problem", pname, "--n", str(n), "--method", m],
                                {},
                                300,
                            )
                        )
                    except Exception as exc:
                        memory.append({"problem": pname, "n": n, "method": m, "error": str(exc)[-300:]})
    meta["loadavg_end"] = os.getloadavg()
    meta["wall_s"] = time.time() - started
    result = {"meta": meta, "runs": runs, "memory": memory}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=1))
    table = report(result)
    Path(a.out).with_suffix(".txt").write_text(table + "\n")
    print(table)
    print(f"\nwritten to {a.out}")


# ======================================================================= report
def _fmt_t(s: float | None) -> str:
    if s is None:
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:8.1f} us"
    if s < 1:
        return f"{s * 1e3:8.2f} ms"
    return f"{s:8.2f} s "


def report(result: dict) -> str:
    runs, mem = result["runs"], {(r["problem"], r["n"], r["method"]): r for r in result["memory"]}
    labels = list(runs)
    lines = []
    m = result["meta"]
    lines.append(f"fwdtensor Jacobian benchmark, {m['date']}, {m['processor']}, {m['cpu_count']} CPUs")
    lines.append(f"load average at start {m['loadavg_start']}, at end {m.get('loadavg_end')}")
    lines.append("times: medians; x primal: relative to the plain NumPy function in the same run")
    by = {lab: {(r["problem"], r["n"], r["method"]): r for r in runs[lab]} for lab in labels}
    for pname, methods in METHODS.items():
        ns = sorted({r["n"] for r in runs[labels[0]] if r["problem"] == pname}, key=lambda v: v or 0)
        for n in ns:
            lines.append("")
            lines.append(f"== {pname}" + (f"  n = {n}" if n else ""))
            head = f"{'method':30s}"
            for lab in labels:
                head += f" | {lab + ' time':>13s} {'x primal':>9s}"
            head += " | peak MiB"
            lines.append(head)
            for meth in methods:
                row = f"{meth:30s}"
                extra = ""
                for lab in labels:
                    r = by[lab].get((pname, n, meth), {})
                    if "error" in r:
                        row += f" | {'error':>13s} {'':>9s}"
                        extra = "  " + r["error"][:60]
                        continue
                    x = r.get("x_primal")
                    row += f" | {_fmt_t(r.get('median_s')):>13s} {(f'{x:9.1f}' if x else '-'):>9s}"
                    for k in ("compile_s", "coloring_s", "detection_s"):
                        if k in r and lab == labels[0]:
                            extra += f"  {k.replace('_s', '')} {_fmt_t(r[k]).strip()}"
                    if "ncolors" in r and lab == labels[0]:
                        extra += f"  colours {r['ncolors']}"
                mr = mem.get((pname, n, meth), {})
                row += f" | {mr['peak_rise_mib']:8.1f}" if "peak_rise_mib" in mr else " |        -"
                lines.append(row + extra)
    lines.append("")
    lines.extend(targets(result))
    return "\n".join(lines)


def targets(result: dict) -> list[str]:
    """The issue's targets, each checked against this run (all-threads numbers first)."""
    out = ["targets:"]
    for lab, recs in result["runs"].items():
        by = {(r["problem"], r["n"], r["method"]): r for r in recs}

        def t(p, n, meth, by=by):
            return by.get((p, n, meth), {}).get("median_s")

        def x(p, n, meth, by=by):
            return by.get((p, n, meth), {}).get("x_primal")

        mlp_ns = sorted(n for (p, n, meth) in by if p == "mlp" and meth == "numpy primal")
        faster = [(n, t("mlp", n, "fwdtensor jacfwd"), t("mlp", n, "jax.jacfwd jit")) for n in mlp_ns]
        ok = all(a and b and a < b for _, a, b in faster)
        out.append(
            f"  [{lab}] MLP faster than jitted jax.jacfwd at every n: {'yes' if ok else 'NO'} ("
            + ", ".join(f"n={n}: {a / b:.2f}x of JAX's time" for n, a, b in faster if a and b)
            + ")"
        )
        out.append(
            f"  [{lab}] MLP fwdtensor x primal: "
            + ", ".join(
                f"n={n}: {x('mlp', n, 'fwdtensor jacfwd'):.1f}"
                for n in mlp_ns
                if x("mlp", n, "fwdtensor jacfwd")
            )
        )
        lv, rd = x("lotka", None, "fwdtensor jacfwd"), x("reaction_diffusion", None, "fwdtensor jacfwd")
        if lv:
            out.append(
                f"  [{lab}] Lotka-Volterra {lv:.1f}x primal (target <= 10): {'yes' if lv <= 10 else 'NO'}"
            )
        if rd:
            out.append(
                f"  [{lab}] reaction-diffusion {rd:.1f}x primal (target <= 2.5): "
                + ("yes" if rd <= 2.5 else "NO")
            )
        for n in sorted(n for (p, n, meth) in by if p == "burgers" and meth == "numpy primal"):
            col = x("burgers", n, "fwdtensor coloured")
            tc = t("burgers", n, "fwdtensor coloured")
            dense = [
                t("burgers", n, meth)
                for meth in (
                    "fwdtensor jacfwd",
                    "fwdtensor jacfwd (chunk 256)",
                    "jax.jacfwd jit",
                    "torch.func.jacfwd",
                )
            ]
            dense = [d for d in dense if d]
            if col and tc and dense:
                sp = min(dense) / tc
                out.append(
                    f"  [{lab}] Burgers n={n}: coloured {col:.1f}x primal (target <= 10: "
                    + ("yes" if col <= 10 else "NO")
                    + f"), {sp:.0f}x faster than the fastest dense forward Jacobian (target >= 1000: "
                    + ("yes" if sp >= 1000 else "NO")
                    + ")"
                )
        acc = [r for r in recs if r["method"] == "accuracy"]
        for r in acc:
            out.append(
                f"  [{lab}] Burgers n={r['n']}: max |coloured - dense| / max |J| = "
                f"{r['coloured_vs_dense_rel']:.1e}"
            )
    return out


if __name__ == "__main__":
    main()


# ===================================================================== GPU check
def gpu_check(out_path: str) -> None:
    """CuPy: coloured Burgers Jacobians (exact against dense, cupyx CSR) and the MLP Jacobian,
    timed with CUDA events against the CuPy primal and jitted JAX on the same GPU."""
    import cupy as cp
    import numpy as np

    import fwdtensor as ft

    def cuda_median(fn, reps=20):
        fn()
        cp.cuda.Device().synchronize()
        times = []
        for _ in range(reps):
            start, end = cp.cuda.Event(), cp.cuda.Event()
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(cp.cuda.get_elapsed_time(start, end) / 1e3)
        return statistics.median(times)

    props = cp.cuda.runtime.getDeviceProperties(0)
    res: dict = {
        "device": props["name"].decode(),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    nbytes = 1 << 28
    buf = cp.ones(nbytes // 8)
    res["copy_bandwidth_GBps"] = 2 * nbytes / cuda_median(buf.copy) / 1e9
    del buf
    rows = []
    for n in (10_000, 1_000_000):
        grid = np.linspace(0, 1, n, endpoint=False)
        u = cp.asarray(np.sin(2 * np.pi * grid) + 0.1 * np.cos(6 * np.pi * grid))
        f, fp = burgers_fn(ft, n), burgers_fn(cp, n)
        t0 = time.perf_counter()
        P = ft.sparsity_pattern(f, u)
        detect = time.perf_counter() - t0
        jac = ft.sparse_jacfwd(f, P)
        J = jac(u)
        row = {
            "problem": "burgers",
            "n": n,
            "ncolors": jac.ncolors,
            "type": type(J).__module__ + "." + type(J).__name__,
            "primal_s": cuda_median(lambda fp=fp, u=u: fp(u)),
            "coloured_s": cuda_median(lambda jac=jac, u=u: jac(u)),
            "detection_s": detect,
            "coloring_s": jac.coloring_seconds,
        }
        row["coloured_x_primal"] = row["coloured_s"] / row["primal_s"]
        if n <= 10_000:
            D = ft.jacfwd(f)(u)
            row["dense_s"] = cuda_median(lambda f=f, u=u: ft.jacfwd(f)(u), reps=3)
            row["max_rel_diff_vs_dense"] = float(cp.max(cp.abs(J.toarray() - D)) / cp.max(cp.abs(D)))
        rows.append(row)
        print(json.dumps(row), flush=True)
    for n in (1024, 4096):
        W1, b1, W2, b2, x = (cp.asarray(v) for v in mlp_weights(n))
        f = mlp_fn(ft, W1, b1, W2, b2)
        fp = mlp_fn(cp, W1, b1, W2, b2)
        jac = ft.jacfwd(f)
        row = {
            "problem": "mlp",
            "n": n,
            "primal_s": cuda_median(lambda fp=fp, x=x: fp(x)),
            "fwdtensor_s": cuda_median(lambda jac=jac, x=x: jac(x), 5),
        }
        try:
            import jax

            jax.config.update("jax_enable_x64", True)
            jW = [jax.numpy.asarray(cp.asnumpy(v)) for v in (W1, b1, W2, b2, x)]
            jf = jax.jit(jax.jacfwd(mlp_fn(jax.numpy, *jW[:4])))
            jax.block_until_ready(jf(jW[4]))
            ts = []
            for _ in range(5):
                t0 = time.perf_counter()
                jax.block_until_ready(jf(jW[4]))
                ts.append(time.perf_counter() - t0)
            row["jax_jit_s"] = statistics.median(ts)
            row["jax_device"] = str(jax.devices()[0])
        except Exception as exc:
            row["jax_error"] = str(exc)[:200]
        rows.append(row)
        print(json.dumps(row), flush=True)
    res["rows"] = rows
    Path(out_path).write_text(json.dumps(res, indent=1))
