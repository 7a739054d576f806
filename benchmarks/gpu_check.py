"""The GPU check: CuPy tests, copy bandwidth, elementwise JVP bandwidth, MLP Jacobians.

One command for a lent GPU machine (see docs/backends.md):

    python3 -m pip install -q --no-index --no-deps --target .site .whl/*.whl && \\
    export PYTHONPATH=$PWD/.site:$PWD && python3 benchmarks/gpu_check.py

Sections, each timed and fail-soft (an exception is recorded in the JSON, the rest runs):

(a) ``pytest -v -k cupy`` over tests/, in 4 processes (CuPy compiles its kernels per
    process on a fresh machine): output in ``pytest_cupy.log``, summarised in the JSON.
(b) device-to-device copy bandwidth of a 1 GiB array (bytes read + written), CUDA events.
(c) JVP of f(x) = log(x) + x*roll(x, 1) - sin(x), n = 1e6, 1e7, 1e8, float32 and float64,
    as achieved bandwidth: the bytes that must move are x and t in, y and its tangent out
    (4 n itemsize), compared with (b). Rows: the CuPy primal alone, the generic path, the
    fused per-rule kernels of fwdtensor/fuse/kernels.py, ``ft.fuse`` (the whole program traced
    into one generated kernel, retraced per call or with ``retrace=False``; the host cost
    per call is in the JSON),
    and one hand-written kernel for the whole JVP (the floor any library could reach).
(d) the Jacobian of a two-layer tanh MLP R^n -> R^n (n = 1024, 4096; all n directions in
    one batched pass) with ft.jacfwd on CuPy and on torch tensors, torch.func.jacfwd and
    jax.jit(jax.jacfwd), same weights, same GPU; float32 matmuls in full precision (no TF32).

Writes ``gpu_check.json``, ``gpu_check.txt`` (the printed table) and ``pytest_cupy.log`` to
``$OUT`` (default ``./gpu_results``). Warm-up first, medians of repeated runs, CUDA events
(CuPy) or synchronisation (torch, JAX). The whole run keeps to ``--budget`` seconds (320 by
default): sections that would not fit are skipped and say so. Without CuPy or a CUDA
device, or with ``--dry-run``, every section runs on NumPy and the CPU at small sizes to
show the script works, and it exits 0 saying so.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # JAX must not take 75% of the GPU

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import fwdtensor as ft  # noqa: E402
from fwdtensor.core import dual as _core  # noqa: E402
from fwdtensor.fuse import kernels as _fused  # noqa: E402

T0 = time.perf_counter()


# ------------------------------------------------------------------ the device
class Device:
    """CuPy on the current CUDA device, timed with CUDA events."""

    dry = False

    def __init__(self) -> None:
        import cupy

        self.cp = self.mod = cupy
        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        name = props["name"]
        self.name = name.decode() if isinstance(name, bytes) else str(name)

    def sync(self) -> None:
        self.cp.cuda.Device().synchronize()

    def times(self, fn: Callable[[], Any], warmup: int, reps: int) -> list[float]:
        for _ in range(warmup):
            fn()
        self.sync()
        start, end = self.cp.cuda.Event(), self.cp.cuda.Event()
        out = []
        for _ in range(reps):
            start.record()
            fn()
            end.record()
            end.synchronize()
            out.append(self.cp.cuda.get_elapsed_time(start, end) / 1e3)
        return out

    def uniform(self, n: int, dtype: str, lo: float, hi: float) -> Any:
        x = self.cp.random.rand(n, dtype=dtype)
        x *= hi - lo
        x += lo
        return x

    def normal(self, n: int, dtype: str) -> Any:
        return self.cp.random.randn(n, dtype=dtype)

    def free_bytes(self) -> int:
        self.release()
        return int(self.cp.cuda.Device().mem_info[0])

    def release(self) -> None:
        self.sync()
        self.cp.get_default_memory_pool().free_all_blocks()

    def info(self) -> dict:
        rt = self.cp.cuda.runtime
        free, total = self.cp.cuda.Device().mem_info
        return {
            "device": self.name,
            "memory_total_gib": round(total / 2**30, 1),
            "cuda_runtime": rt.runtimeGetVersion(),
            "cuda_driver": rt.driverGetVersion(),
            "cupy": self.cp.__version__,
        }


class HostDevice:
    """The dry run: NumPy on the CPU, timed with perf_counter."""

    dry = True
    name = "CPU (dry run)"

    def __init__(self) -> None:
        self.mod = np
        self.rng = np.random.default_rng(0)

    def sync(self) -> None:
        pass

    def times(self, fn: Callable[[], Any], warmup: int, reps: int) -> list[float]:
        for _ in range(warmup):
            fn()
        out = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
        return out

    def uniform(self, n: int, dtype: str, lo: float, hi: float) -> Any:
        return self.rng.uniform(lo, hi, n).astype(dtype)

    def normal(self, n: int, dtype: str) -> Any:
        return self.rng.standard_normal(n).astype(dtype)

    def free_bytes(self) -> int:
        return 4 << 30

    def release(self) -> None:
        pass

    def info(self) -> dict:
        return {"device": self.name}


def pick_device(dry: bool) -> tuple[Any, str]:
    """The CUDA device, or the CPU stand-in with the reason why."""
    if dry:
        return HostDevice(), "--dry-run given"
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() < 1:
            return HostDevice(), "no CUDA device is visible to CuPy"
        return Device(), ""
    except Exception as exc:  # CuPy missing, or no driver
        return HostDevice(), f"no usable CuPy/CUDA ({type(exc).__name__}: {exc})"


# ------------------------------------------------------------------ bookkeeping
class Run:
    """Results, the time budget, and fail-soft sections."""

    def __init__(self, budget: float, out: Path) -> None:
        self.budget, self.out = budget, out
        self.results: dict[str, Any] = {"sections": {}}
        self.lines: list[str] = []

    def left(self) -> float:
        return self.budget - (time.perf_counter() - T0)

    def say(self, line: str = "") -> None:
        print(line, flush=True)
        self.lines.append(line)

    def section(self, name: str, fn: Callable[[], Any], need: float) -> None:
        """Run ``fn`` unless fewer than ``need`` seconds are left; record any exception."""
        rec: dict[str, Any] = {}
        self.results["sections"][name] = rec
        if self.left() < need:
            rec["skipped"] = f"{self.left():.0f} s left of the budget, {need:.0f} s needed"
            self.say(f"\n[{name}] skipped: {rec['skipped']}")
            return
        t0 = time.perf_counter()
        try:
            rec["result"] = fn()
            rec["ok"] = True
        except Exception:
            rec["ok"] = False
            rec["error"] = traceback.format_exc()
            self.say(f"\n[{name}] FAILED:\n{rec['error']}")
        rec["seconds"] = round(time.perf_counter() - t0, 1)

    def save(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        self.results["total_seconds"] = round(time.perf_counter() - T0, 1)
        (self.out / "gpu_check.json").write_text(json.dumps(self.results, indent=1, default=str))
        (self.out / "gpu_check.txt").write_text("\n".join(self.lines) + "\n")


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def rel_err(a: Any, b: Any) -> float:
    """max |a - b| / max |b| (1 when b is all zero), computed on the host."""
    a, b = host(a), host(b)
    scale = float(np.max(np.abs(b))) or 1.0
    return float(np.max(np.abs(a - b))) / scale


def dev_rel_err(xm: Any, a: Any, b: Any) -> float:
    """``rel_err`` computed where the arrays are (large arrays are not copied to the host)."""
    scale = float(xm.max(xm.abs(b))) or 1.0
    return float(xm.max(xm.abs(a - b))) / scale


def host(a: Any) -> np.ndarray:
    if isinstance(a, ft.DualTensor):
        a = a.primal
    if hasattr(a, "get"):
        return a.get()
    if hasattr(a, "detach"):
        return a.detach().cpu().numpy()
    return np.asarray(a)


# ------------------------------------------------------------------ (a) tests
def shards(k: int) -> list[list[str]]:
    """The test files in ``k`` groups of about equal size (CuPy compiles kernels per process)."""
    files = sorted((ROOT / "tests").glob("test_*.py"), key=lambda p: -p.stat().st_size)
    groups: list[list[str]] = [[] for _ in range(k)]
    sizes = [0] * k
    for f in files:
        i = sizes.index(min(sizes))
        groups[i].append(str(f.relative_to(ROOT)))
        sizes[i] += f.stat().st_size
    return [g for g in groups if g]


OUTCOME = r"(\d+) (passed|failed|skipped|errors?|deselected|xfailed|xpassed)\b"


def run_tests(run: Run, timeout: float, jobs: int) -> dict:
    """``pytest -v -k cupy`` over every test file, in ``jobs`` processes at once."""
    base = [
        sys.executable,
        "-m",
        "pytest",
        "-v",
        "-k",
        "cupy",
        "-p",
        "no:cacheprovider",
        "-rfE",
        "--tb=short",
    ]
    run.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    procs = []
    for i, files in enumerate(shards(jobs)):
        log = open(run.out / f"pytest_cupy_{i}.part", "w+")  # noqa: SIM115  (closed below)
        env = dict(os.environ, PYTHONUNBUFFERED="1")  # keep every line if the run is stopped
        cmd = [*base, *files]
        procs.append(
            (files, log, subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env))
        )
    texts, codes = [], []
    for files, log, proc in procs:
        try:
            codes.append(proc.wait(timeout=max(1.0, timeout - (time.perf_counter() - t0))))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)  # pytest then prints its summary of what ran
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            codes.append("timeout")
            log.seek(0, os.SEEK_END)
            log.write(f"\n[gpu_check] pytest stopped after {timeout:.0f} s\n")
        log.seek(0)
        texts.append(f"$ {' '.join(base)} {' '.join(files)}\n{log.read()}")
        log.close()
        os.remove(log.name)
    text = "\n\n".join(texts)
    (run.out / "pytest_cupy.log").write_text(text)
    counts: dict[str, int] = {}
    for m in re.finditer(OUTCOME, _summaries(texts)):
        key = "error" if m.group(2).startswith("error") else m.group(2)
        counts[key] = counts.get(key, 0) + int(m.group(1))
    ids = set(re.findall(r"^(?:FAILED|ERROR) (\S+)", text, re.M))  # the -rfE summary
    ids |= set(re.findall(r"^(\S+::\S+) (?:FAILED|ERROR)", text, re.M))  # -v lines, if stopped early
    failed = sorted(ids)
    summary = ", ".join(f"{v} {k}" for k, v in counts.items())
    took = time.perf_counter() - t0
    run.say(f"\n(a) pytest -k cupy in {len(procs)} processes: {summary} (exit {codes}, {took:.0f} s)")
    for ln in failed[:40]:
        run.say("    " + ln[:200])
    return {
        "command": " ".join(base) + " <files>",
        "exit": codes,
        "counts": counts,
        "failed": failed,
        "tail": text[-6000:],
    }


def _summaries(texts: list[str]) -> str:
    """The last summary line of each pytest output (``3 passed, 1 skipped in 2.0s``)."""
    out = []
    for t in texts:
        lines = [ln for ln in t.splitlines() if re.search(OUTCOME, ln)]
        if lines and " in " in lines[-1]:
            out.append(lines[-1])
    return "\n".join(out)


# ------------------------------------------------------------------ (b) copy bandwidth
def copy_bandwidth(run: Run, dev: Any) -> dict:
    nbytes = (16 << 20) if dev.dry else (1 << 30)
    ts = _copy_times(dev, nbytes)
    dev.release()
    bw = 2 * nbytes / median(ts)
    run.say(f"\n(b) copy bandwidth ({nbytes / 2**30:.3g} GiB, read + write): {bw / 1e9:.0f} GB/s")
    return {"bytes": nbytes, "median_s": median(ts), "times_s": ts, "GBps": bw / 1e9}


def _copy_times(dev: Any, nbytes: int) -> list[float]:
    src = dev.uniform(nbytes // 4, "float32", 0.0, 1.0)
    dst = dev.mod.empty_like(src)
    return dev.times(lambda: dev.mod.copyto(dst, src), warmup=3, reps=20)


# ------------------------------------------------------------------ (c) elementwise JVP
def f_ft(x: Any) -> Any:
    return ft.log(x) + x * ft.roll(x, 1) - ft.sin(x)


def fused_program() -> Callable:
    """f written with the fused hooks called directly (the generic path where they decline)."""
    R = _core.R

    def un(name: str, x: Any) -> Any:
        r = _fused.unary(getattr(R, name), x)
        return getattr(ft, name)(x) if r is None else r

    def bi(name: str, a: Any, b: Any) -> Any:
        r = _fused.binary(getattr(R, name), a, b)
        return getattr(ft, name)(a, b) if r is None else r

    def f(x: Any) -> Any:
        return bi("subtract", bi("add", un("log", x), bi("multiply", x, ft.roll(x, 1))), un("sin", x))

    return f


# The whole JVP of f in one kernel: reads x, t (and their left neighbours, from cache),
# writes y, ty. roll(x, 1)[i] = x[i - 1], wrapping at 0.
ONE_KERNEL = (
    "ptrdiff_t j = (i == 0) ? (ptrdiff_t)_ind.size() - 1 : (ptrdiff_t)i - 1;"
    "T xr = xs[j]; T tr = ts[j];"
    "y = log(x) + x * xr - sin(x);"
    "ty = t / x + (t * xr + x * tr) - t * cos(x);"
)


def fused_wired(dev: Any) -> bool:
    """True when _core's elementwise dispatch calls the fused hooks (set_fused(True) works)."""
    if dev.dry:
        return False
    x = dev.uniform(64, "float64", 0.5, 2.0)
    before, flag = _fused.hits[0], _fused.is_fused()
    try:
        _fused.set_fused(True)
        ft.jvp(f_ft, (x,), (x,))
    except Exception:  # a broken kernel shows in the rows that use it; measure the rest
        traceback.print_exc()
    finally:
        _fused.set_fused(flag)
    return _fused.hits[0] > before


def elementwise(run: Run, dev: Any, copy_GBps: float | None) -> dict:
    sizes = [10_000, 100_000] if dev.dry else [1_000_000, 10_000_000, 100_000_000]
    wired = fused_wired(dev)
    fused_direct = fused_program()
    # strict on a GPU: a fallback to the eager path would be timed as if it were fused
    whole = ft.fuse(f_ft, strict=not dev.dry)
    once = ft.fuse(f_ft, strict=not dev.dry, retrace=False)
    kernel = (
        None
        if dev.dry
        else dev.cp.ElementwiseKernel(
            "T x, T t, raw T xs, raw T ts", "T y, T ty", ONE_KERNEL, "fwdtensor_bench_chain_jvp"
        )
    )
    rows = []
    run.say("\n(c) JVP of log(x) + x*roll(x,1) - sin(x): bandwidth of x,t in + y,ty out")
    run.say(f"    fused hooks wired into the core dispatch: {wired}")
    run.say(f"    {'dtype':8} {'n':>11} {'path':24} {'ms':>9} {'GB/s':>7} {'of copy':>8} {'rel err':>9}")
    for dtype in ("float32", "float64"):
        item = np.dtype(dtype).itemsize
        for n in sizes:
            if run.left() < 25:
                rows.append({"dtype": dtype, "n": n, "skipped": "time budget"})
                continue
            if 16 * n * item > 0.8 * dev.free_bytes():
                rows.append({"dtype": dtype, "n": n, "skipped": "does not fit in device memory"})
                run.say(f"    {dtype:8} {n:>11} skipped: 16 arrays of {n * item / 1e9:.1f} GB each: no room")
                continue
            try:
                programs = (fused_direct, whole, once)
                rows += _elementwise_case(run, dev, dtype, n, wired, programs, kernel, copy_GBps)
            except Exception:  # e.g. out of memory: record it, go on with the next size
                rows.append({"dtype": dtype, "n": n, "error": traceback.format_exc()})
                run.say(f"    {dtype:8} {n:>11} FAILED: {traceback.format_exc().strip().splitlines()[-1]}")
            dev.release()
    return {"fused_hooks_wired": wired, "rows": rows}


def _elementwise_case(run, dev, dtype, n, wired, programs, kernel, copy_GBps) -> list[dict]:
    fused_direct, whole, once = programs
    xm = dev.mod
    x, t = dev.uniform(n, dtype, 0.5, 2.0), dev.normal(n, dtype)
    need = 4 * n * np.dtype(dtype).itemsize
    reps = 7 if n >= 50_000_000 else 15
    primal = "primal only (NumPy)" if dev.dry else "primal only (CuPy)"
    paths: dict[str, Callable] = {
        primal: lambda: xm.log(x) + x * xm.roll(x, 1) - xm.sin(x),
        "generic ft.jvp": lambda: ft.jvp(f_ft, (x,), (t,)),
        "fused hooks, direct": lambda: ft.jvp(fused_direct, (x,), (t,)),
    }
    if wired:
        paths["fused via set_fused(True)"] = lambda: _with_fused(lambda: ft.jvp(f_ft, (x,), (t,)))
    paths["ft.fuse (whole program)"] = lambda: ft.jvp(whole, (x,), (t,))
    paths["ft.fuse, retrace=False"] = lambda: ft.jvp(once, (x,), (t,))
    if kernel is not None:
        paths["one kernel (floor)"] = lambda: kernel(x, t, x, t)
    ref = ft.jvp(f_ft, (x,), (t,))
    rows = []
    for label, fn in paths.items():
        rec: dict[str, Any] = {"dtype": dtype, "n": n, "path": label}
        try:
            got = fn()
            if label.startswith("primal"):
                rec["rel_err"] = dev_rel_err(xm, got, ref[0])
                moved = 2 * n * np.dtype(dtype).itemsize  # x in, y out
            else:
                rec["rel_err"] = max(dev_rel_err(xm, got[0], ref[0]), dev_rel_err(xm, got[1], ref[1]))
                moved = need
            del got
            if label.startswith("ft.fuse"):  # host time per call: trace, code, launch (no sync)
                t0 = time.perf_counter()
                for _ in range(5):
                    fn()
                rec["host_us_per_call"] = (time.perf_counter() - t0) / 5 * 1e6
                dev.sync()
            ts = dev.times(fn, warmup=3, reps=reps)
            rec.update(median_s=median(ts), GBps=moved / median(ts) / 1e9)
            if copy_GBps:
                rec["of_copy"] = rec["GBps"] / copy_GBps
            of = f"{rec['of_copy']:>8.0%}" if "of_copy" in rec else f"{'':>8}"
            ms, bw, err = 1e3 * rec["median_s"], rec["GBps"], rec["rel_err"]
            run.say(f"    {dtype:8} {n:>11} {label:24} {ms:>9.3f} {bw:>7.0f} {of} {err:>9.1e}")
        except Exception:
            rec["error"] = traceback.format_exc()
            run.say(f"    {dtype:8} {n:>11} {label:24} FAILED: {rec['error'].strip().splitlines()[-1]}")
        rows.append(rec)
    return rows


def _with_fused(fn: Callable) -> Any:
    flag = _fused.is_fused()
    _fused.set_fused(True)
    try:
        return fn()
    finally:
        _fused.set_fused(flag)


# ------------------------------------------------------------------ (d) MLP Jacobians
def mlp_weights(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "W1": rng.standard_normal((n, n)) / np.sqrt(n),
        "b1": rng.standard_normal(n) * 0.1,
        "W2": rng.standard_normal((n, n)) / np.sqrt(n),
        "b2": rng.standard_normal(n) * 0.1,
        "x": rng.standard_normal(n),
    }


def ft_mlp_jacobian(w: dict) -> Callable:
    W1, b1, W2, b2 = w["W1"], w["b1"], w["W2"], w["b2"]

    def f(x):
        return ft.add(ft.matmul(W2, ft.tanh(ft.add(ft.matmul(W1, x), b1))), b2)

    jac = ft.jacfwd(f)
    return lambda: jac(w["x"])


def peers(dev: Any) -> dict[str, Any]:
    """torch and JAX on the same device (GPU, or CPU in a dry run), when importable."""
    found: dict[str, Any] = {}
    try:
        import torch

        tdev = "cpu" if dev.dry else "cuda"
        if tdev == "cpu" or torch.cuda.is_available():
            torch.backends.cuda.matmul.allow_tf32 = False
            found["torch"] = (torch, torch.device(tdev))
        else:
            found["torch_error"] = "torch.cuda.is_available() is False"
    except Exception as exc:
        found["torch_error"] = repr(exc)
    try:
        import jax

        jax.config.update("jax_enable_x64", True)
        jax.config.update("jax_default_matmul_precision", "highest")  # no TF32, like the others
        platform_ = "cpu" if dev.dry else "gpu"
        jdev = jax.devices(platform_)[0]
        found["jax"] = (jax, jdev)
    except Exception as exc:
        found["jax_error"] = repr(exc)
    return found


def mlp(run: Run, dev: Any) -> dict:
    sizes = [64, 128] if dev.dry else [1024, 4096]
    libs = peers(dev)
    out: dict[str, Any] = {k: v for k, v in libs.items() if k.endswith("_error")}
    rows = []
    run.say("\n(d) Jacobian of a 2-layer tanh MLP R^n -> R^n, all n directions in one pass")
    run.say(f"    {'dtype':8} {'n':>5} {'library':30} {'median ms':>10} {'vs ft':>7} {'rel err':>9}")
    for dtype in ("float32", "float64"):
        for n in sizes:
            if run.left() < 20:
                rows.append({"dtype": dtype, "n": n, "skipped": "time budget"})
                continue
            rows += _mlp_case(run, dev, libs, dtype, n)
            dev.release()
    out["rows"] = rows
    return out


def _mlp_case(run: Run, dev: Any, libs: dict, dtype: str, n: int) -> list[dict]:
    w64 = mlp_weights(n)
    cases: dict[str, Callable[[], tuple[Callable, Callable]]] = {}
    xm = dev.mod
    cases[f"ft.jacfwd ({'NumPy' if dev.dry else 'CuPy'})"] = lambda: (
        ft_mlp_jacobian({k: xm.asarray(v.astype(dtype)) for k, v in w64.items()}),
        dev.sync,
    )
    if "torch" in libs:
        torch, tdev = libs["torch"]

        def torch_cases(use_ft: bool) -> tuple[Callable, Callable]:
            w = {k: torch.as_tensor(v.astype(dtype), device=tdev) for k, v in w64.items()}
            sync = torch.cuda.synchronize if tdev.type == "cuda" else (lambda: None)
            if use_ft:
                return ft_mlp_jacobian(w), sync

            def f(x):
                return w["W2"] @ torch.tanh(w["W1"] @ x + w["b1"]) + w["b2"]

            jac = torch.func.jacfwd(f)
            return (lambda: jac(w["x"])), sync

        cases["ft.jacfwd (torch tensors)"] = lambda: torch_cases(True)
        cases["torch.func.jacfwd"] = lambda: torch_cases(False)
    if "jax" in libs:
        jax, jdev = libs["jax"]

        def jax_case() -> tuple[Callable, Callable]:
            w = {k: jax.device_put(v.astype(dtype), jdev) for k, v in w64.items()}

            def f(x, W1, b1, W2, b2):
                return W2 @ jax.numpy.tanh(W1 @ x + b1) + b2

            jac = jax.jit(jax.jacfwd(f))
            args = (w["x"], w["W1"], w["b1"], w["W2"], w["b2"])
            return (lambda: jac(*args).block_until_ready()), (lambda: None)

        cases["jax.jit(jax.jacfwd)"] = jax_case
    rows, ref, t_ft = [], None, None
    for label, make in cases.items():
        rec: dict[str, Any] = {"dtype": dtype, "n": n, "library": label}
        try:
            fn, sync = make()
            jac = fn()
            sync()
            if ref is None:
                ref = host(jac)
                assert ref.shape == (n, n), ref.shape
            rec["rel_err"] = rel_err(jac, ref)
            del jac
            ts = _wall_times(fn, sync, warmup=2, reps=10 if n <= 1024 else 7)
            rec["median_s"] = median(ts)
            t_ft = t_ft or rec["median_s"]
            rec["vs_ft"] = rec["median_s"] / t_ft
            ms, err = 1e3 * rec["median_s"], rec["rel_err"]
            run.say(f"    {dtype:8} {n:>5} {label:30} {ms:>10.2f} {rec['vs_ft']:>7.2f} {err:>9.1e}")
        except Exception:
            rec["error"] = traceback.format_exc()
            run.say(f"    {dtype:8} {n:>5} {label:30} FAILED: {rec['error'].strip().splitlines()[-1]}")
        rows.append(rec)
    return rows


def _wall_times(fn: Callable, sync: Callable, warmup: int, reps: int) -> list[float]:
    for _ in range(warmup):
        fn()
    sync()
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - t0)
    return out


# ------------------------------------------------------------------ main
def versions() -> dict:
    v = {"python": platform.python_version(), "numpy": np.__version__, "fwdtensor": ft.__version__}
    for name in ("array_api_compat", "array_api_strict", "torch", "jax"):
        try:
            v[name] = __import__(name).__version__
        except Exception as exc:
            v[name] = f"unavailable ({type(exc).__name__})"
    return v


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="run every section on NumPy/CPU at small sizes")
    ap.add_argument("--budget", type=float, default=320.0, help="seconds for the whole run (default 320)")
    ap.add_argument(
        "--tests-timeout", type=float, default=170.0, help="seconds for the pytest run (default 170)"
    )
    ap.add_argument("--jobs", type=int, default=4, help="pytest processes at once (default 4)")
    ap.add_argument("--skip", nargs="*", default=[], choices=["tests", "copy", "elementwise", "mlp"])
    args = ap.parse_args(argv)
    out = Path(os.environ.get("OUT") or "gpu_results")
    run = Run(args.budget, out)
    dev, why_dry = pick_device(args.dry_run)
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    run.results.update(
        date=now,
        dry_run=dev.dry,
        dry_reason=why_dry,
        versions=versions(),
        env={
            k: os.environ.get(k)
            for k in ("CUPY_TF32", "CUDA_VISIBLE_DEVICES", "XLA_PYTHON_CLIENT_PREALLOCATE")
        },
    )
    run.section("device", dev.info, need=0)
    run.say(f"fwdtensor GPU check, {now}, on {dev.name}" + (f" — DRY RUN: {why_dry}" if dev.dry else ""))
    if "tests" not in args.skip:
        timeout = min(args.tests_timeout, max(30.0, run.left() - 150))
        run.section("tests", lambda: run_tests(run, timeout, max(1, args.jobs)), need=60)
    if "copy" not in args.skip:
        run.section("copy", lambda: copy_bandwidth(run, dev), need=10)
    copy = run.results["sections"].get("copy", {}).get("result") or {}
    if "elementwise" not in args.skip:
        run.section("elementwise", lambda: elementwise(run, dev, copy.get("GBps")), need=30)
    if "mlp" not in args.skip:
        run.section("mlp", lambda: mlp(run, dev), need=30)
    run.say(f"\ntotal {time.perf_counter() - T0:.0f} s; results in {out.resolve()}")
    if dev.dry:
        run.say(f"DRY RUN ({why_dry}): every section ran on the CPU at small sizes; no GPU numbers.")
    run.save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
