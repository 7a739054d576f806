"""Host cost of one ``ft.fuse`` call, the part of a fused JVP that no GPU can hide.

A fused call traces the program (``retrace=True``, the default) or looks its trace up
(``retrace=False``), writes or reuses the kernel, allocates the outputs and launches. Here
the launcher is replaced by one that does nothing, so what is timed is only that host
work, for f(x) = log(x) + x*roll(x, 1) - sin(x) through ``ft.jvp``; the eager JVP of the
same f on NumPy at n = 1000 is the reference (its own host dispatch plus tiny kernels).
On a GPU a fused call costs about this much CPU time plus one launch (a few µs). With
the float32 kernel times of the H100 run (17 µs at n = 1e6, 73 µs at 1e7, 620 µs at 1e8,
for the hand-written kernel that moves the same bytes), the kernel outlasts this host work
from about n = 3e7 with retracing and n = 2e6 without, on this machine's CPU.

Run: ``python benchmarks/bench_fuse_host.py`` (pure Python: no BLAS, one thread). Prints
medians and writes benchmarks/results/fuse_host.json with the load average.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import fwdtensor as ft  # noqa: E402
from fwdtensor.fuse import launch as _fuse  # noqa: E402


def f(x):
    return ft.log(x) + x * ft.roll(x, 1) - ft.sin(x)


def per_call_us(g, x, v, calls: int = 200, reps: int = 9) -> float:
    for _ in range(50):
        ft.jvp(g, (x,), (v,))
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(calls):
            ft.jvp(g, (x,), (v,))
        times.append((time.perf_counter() - t0) / calls * 1e6)
    return statistics.median(times)


def main() -> int:
    # a launcher that does nothing: only the host work of a fused call is timed
    _fuse.register_launcher(lambda xp: getattr(xp, "__name__", "").endswith("numpy"), lambda *a: None)
    x, v = np.linspace(1.0, 2.0, 1000), np.ones(1000)
    rows = {
        "ft.fuse, retrace=True (default)": per_call_us(ft.fuse(f, strict=True), x, v),
        "ft.fuse, retrace=False": per_call_us(ft.fuse(f, strict=True, retrace=False), x, v),
        "eager ft.jvp on NumPy, n = 1000": per_call_us(f, x, v),
    }
    load = os.getloadavg()
    print(f"host time per ft.jvp call of log(x) + x*roll(x, 1) - sin(x); load average {load[0]:.2f}")
    for name, us in rows.items():
        print(f"  {name:34} {us:8.1f} µs")
    out = ROOT / "benchmarks" / "results" / "fuse_host.json"
    record = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "load_average": load,
        "median_us_per_call": rows,
    }
    out.write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
