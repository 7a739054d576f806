"""The cost of NumPy's protocols: ``np.sin(d)`` against ``ft.sin(d)``, and a model via ``np.*`` vs ``ft.*``.

(a) one ufunc on a dual: ``np.sin(d)`` (NEP 13 dispatch) against ``ft.sin(d)``, on small
    (3) and large (1e5) arrays, one direction and 8;
(b) one ``np.*`` array function: ``np.sum(d, axis=0)`` against ``ft.sum(d, axis=0)``;
(c) the reaction-diffusion residual of ``examples/numpy_model.py`` written with ``np.*``
    against the same residual written with ``ft.*``, as ``ft.jvp`` (n = 40 and 1e5) and
    as ``ft.jacfwd`` (n = 40).

The goal is a ratio within 1.3 on arrays large enough that arithmetic dominates; on tiny
arrays the ratio shows the fixed per-call cost of NumPy's dispatch. Medians of repeated
loops timed alternately in CPU time; the load average is printed because these machines
are shared.

Run: ``python benchmarks/bench_numpy_protocols.py`` (``--quick`` for a smoke run, about 10 s).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import fwdtensor as ft  # noqa: E402

DX, DT, D, K, E, U_CRIT = 0.025, 1e-3, 0.5, 4.0, 2.0, 0.3


def residual_np(u, u_old):
    lap = (np.roll(u, 1) - 2.0 * u + np.roll(u, -1)) / DX**2
    r = np.where(u > U_CRIT, K * np.exp(-E / (1.0 + u)), -K * u)
    return u - u_old - DT * (D * lap + r) + 1e-3 * np.sum(u) / u.shape[0]


def residual_ft(u, u_old):
    lap = (ft.roll(u, 1) - 2.0 * u + ft.roll(u, -1)) / DX**2
    r = ft.where(u > U_CRIT, K * ft.exp(-E / (1.0 + u)), -K * u)
    return u - u_old - DT * (D * lap + r) + 1e-3 * ft.sum(u) / u.shape[0]


def interleaved(a: Callable[[], object], b: Callable[[], object], *, min_time: float, repeats: int = 9):
    """Medians of the per-call CPU time of ``a`` and ``b``, timed in alternating loops.

    CPU time (``process_time``) and alternation keep the comparison fair on a shared
    machine, where wall-clock time also counts the time other jobs hold the cores.
    """
    a(), b()
    t0 = time.process_time()
    a()
    one = max(time.process_time() - t0, 1e-6)
    number = max(1, int(min_time / repeats / one))
    sa, sb = [], []
    for _ in range(repeats):
        for fn, out in ((a, sa), (b, sb)):
            t0 = time.process_time()
            for _ in range(number):
                fn()
            out.append((time.process_time() - t0) / number)
    return statistics.median(sa), statistics.median(sb)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    mt = 0.1 if args.quick else 0.5
    rng = np.random.default_rng(0)
    rows = []

    def pair(label: str, a: Callable, b: Callable) -> None:
        ta, tb = interleaved(a, b, min_time=mt)
        rows.append((label, ta, tb))

    for n in (3, 100_000):
        for B in (1, 8):
            x = rng.uniform(0.1, 1.0, n)
            d = ft.DualTensor(x, rng.standard_normal((B, n)), batched=True) if B > 1 else ft.DualTensor(x, x)
            pair(f"sin n={n} B={B}", lambda d=d: np.sin(d), lambda d=d: ft.sin(d))
    m = ft.DualTensor(rng.standard_normal((300, 300)), rng.standard_normal((300, 300)))
    pair("sum(axis=0) 300x300", lambda: np.sum(m, axis=0), lambda: ft.sum(m, axis=0))
    for n in (40, 100_000):
        u = rng.uniform(0.0, 1.0, n)
        t = rng.standard_normal(n)
        pair(
            f"model jvp n={n}",
            lambda u=u, t=t: ft.jvp(lambda v: residual_np(v, u), (u,), (t,)),
            lambda u=u, t=t: ft.jvp(lambda v: residual_ft(v, u), (u,), (t,)),
        )
    u = rng.uniform(0.0, 1.0, 40)
    jn, jf = ft.jacfwd(lambda v: residual_np(v, u)), ft.jacfwd(lambda v: residual_ft(v, u))
    assert np.allclose(jn(u), jf(u))
    pair("model jacfwd n=40", lambda: jn(u), lambda: jf(u))

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"numpy {np.__version__}, load average {load:.1f}; medians of 9 alternating loops (CPU time)")
    print(f"{'case':<24}{'np.* (us)':>12}{'ft.* (us)':>12}{'ratio':>8}")
    for label, ta, tb in rows:
        print(f"{label:<24}{ta * 1e6:>12.1f}{tb * 1e6:>12.1f}{ta / tb:>8.2f}")


if __name__ == "__main__":
    main()
