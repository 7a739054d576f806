"""Peak memory of nested transforms against the memory budget.

For ``hessian``, ``jacfwd(jacfwd(f))``, ``value_and_jacfwd``, ``grad`` and
``derivative(order=3)`` at several sizes and budgets, the peak of traced allocations
(``tracemalloc``, which sees NumPy's buffers) during one call, after a warm-up call, and
what it leaves once the result and one primal evaluation's own peak are taken off:
the transform's intermediates, which the budget bounds. ``within`` marks the cases whose
intermediates stay under the budget; ``floor`` the cases where one direction per nesting
level already needs more than the budget (each level then runs one direction at a time and
the budget cannot be met; ``derivative(order=k)`` of a scalar has one direction, whose
intermediates are about ``2**k`` times the primal's).

Run: python benchmarks/bench_memory.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import fwdtensor as ft  # noqa: E402  (the checkout's package, not an installed one)


def scalar_f(x):
    return ft.sum(ft.sin(x) * x**3)


def vector_g(x):
    return ft.sin(x) * x**3


W = np.linspace(0.5, 1.5, 2000)


def curve(t):
    return ft.sin(t * W) * ft.exp(t * W)


def peak(fn):
    fn()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        t0 = time.perf_counter()
        res = fn()
        return tracemalloc.get_traced_memory()[1], res, time.perf_counter() - t0
    finally:
        tracemalloc.stop()


def nbytes(res) -> int:
    leaves = res if isinstance(res, tuple) else (res,)
    return sum(np.asarray(a).nbytes for a in leaves)


def cases(n: int):
    x = np.linspace(0.1, 1.0, n)
    yield "hessian", lambda: ft.hessian(scalar_f)(x), lambda: scalar_f(x), 2 * 3 * n * n * 8
    yield "jacfwd(jacfwd)", lambda: ft.jacfwd(ft.jacfwd(vector_g))(x), lambda: vector_g(x), 2 * 3 * n * n * 8
    x4 = np.linspace(0.1, 1.0, 4 * n)
    yield "value_and_jacfwd", lambda: ft.value_and_jacfwd(vector_g)(x4), lambda: vector_g(x4), 0
    xg = np.linspace(0.1, 1.0, 16 * n)
    yield "grad", lambda: ft.grad(scalar_f)(xg), lambda: scalar_f(xg), 0
    # one direction cannot be split: order 3 holds 2**3 copies of the primal's intermediates
    t0 = np.asarray(0.7)
    yield "derivative(order=3)", lambda: ft.derivative(curve, order=3)(t0), lambda: curve(t0), -8


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="two small sizes, one budget")
    args = ap.parse_args()
    sizes = (32, 64) if args.quick else (64, 128, 256)
    budgets = (1 << 20,) if args.quick else (256 << 10, 1 << 20, 4 << 20)
    old = ft.get_memory_budget()
    print(
        f"{'case':<22}{'n':>5}{'budget KiB':>12}{'peak KiB':>10}{'result KiB':>12}"
        f"{'primal KiB':>12}{'excess/budget':>15}{'seconds':>9}  verdict"
    )
    try:
        for budget in budgets:
            ft.set_memory_budget(budget)
            for n in sizes:
                for name, run, primal, floor in cases(n):
                    p_primal, _, _ = peak(primal)
                    p, res, secs = peak(run)
                    excess = p - nbytes(res) - p_primal
                    floor = -floor * p_primal if floor < 0 else floor
                    verdict = "within" if excess <= budget else ("floor" if floor > budget else "OVER")
                    print(
                        f"{name:<22}{n:>5}{budget >> 10:>12}{p / 1024:>10.0f}{nbytes(res) / 1024:>12.0f}"
                        f"{p_primal / 1024:>12.0f}{excess / budget:>15.2f}{secs:>9.2f}  {verdict}"
                    )
    finally:
        ft.set_memory_budget(old)


if __name__ == "__main__":
    main()
