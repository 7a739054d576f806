"""Per-operation overhead: fwdtensor's dispatch against the NumPy call it wraps (issue 15).

Each case times a NumPy statement and the fwdtensor statement that does the same work
with a tangent, alternately in the same process, as ``timeit`` statements (no lambda, so
a call's overhead is not hidden in the baseline's): 3-element float64 duals with one
direction for the single operations, and W1 (``ft.jvp`` of ``log(x) + x*roll(x,1) -
sin(x)``) at n = 1e3 and 1e6. Medians of many repeats; the ratio is the median of
paired ratios (each fwdtensor sample over the NumPy sample just before it), and the change
against another checkout compares these ratios, so the load of a shared machine cancels.

Every measurement runs in a fresh worker process, once with the default threads and once
with ``OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1``. ``--against ROOT`` also measures the
fwdtensor of another checkout (``git worktree add ../base <commit>``), alternating the two
checkouts round by round so that the load of this shared machine hits both alike.

Run: ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_overhead.py
[--against ROOT] [--rounds 3] [--quick]``. Prints a table of ratios and writes JSON to
``benchmarks/results/overhead.json`` (machine, load averages, threads, medians).
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
import timeit
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"

# name -> (NumPy statement, fwdtensor statement, setup): the setup defines x, y, tx, ty
# (3-element float64) and the duals a, b; W1 cases define xs, vs at their size.
_SMALL = (
    "import numpy as np, fwdtensor as ft\n"
    "rng = np.random.default_rng(1)\n"
    "x, y, tx, ty = (rng.uniform(0.5, 2.0, 3) for _ in range(4))\n"
    "a, b = ft.DualTensor(x, tx), ft.DualTensor(y, ty)\n"
)
_W1 = (
    "import numpy as np, fwdtensor as ft\n"
    "rng = np.random.default_rng(0)\n"
    "xs = rng.uniform(0.5, 2.0, {n}); vs = rng.normal(size={n})\n"
    "def f_np(x):\n"
    "    return np.log(x) + x * np.roll(x, 1) - np.sin(x)\n"
    "def f_ft(x):\n"
    "    return ft.log(x) + x * ft.roll(x, 1) - ft.sin(x)\n"
)
CASES: dict[str, tuple[str, str, str]] = {
    "multiply": ("x * y", "a * b", _SMALL),
    "sin": ("np.sin(x)", "ft.sin(a)", _SMALL),
    "sin(ndarray)": ("np.sin(x)", "ft.sin(x)", _SMALL),
    "d + 1.0": ("x + 1.0", "a + 1.0", _SMALL),
    "sum": ("np.sum(x)", "ft.sum(a)", _SMALL),
    "d[1]": ("x[1]", "a[1]", _SMALL),
    "W1 jvp n=1e3": ("f_np(xs)", "ft.jvp(f_ft, (xs,), (vs,))", _W1.format(n=10**3)),
    "W1 jvp n=1e6": ("f_np(xs)", "ft.jvp(f_ft, (xs,), (vs,))", _W1.format(n=10**6)),
}
# Goals of issue 15 for the ratio to NumPy (cases without one are only tracked).
GOALS = {"multiply": 6.0, "sin": 5.0}


def _samples(stmt_np: str, stmt_ft: str, setup: str, repeats: int, target: float) -> tuple[list, list]:
    """Per-call seconds of both statements, ``repeats`` alternating samples of ~``target`` s each."""
    g: dict = {}
    exec(setup, g)
    timers = [timeit.Timer(s, globals=g) for s in (stmt_np, stmt_ft)]
    numbers = []
    for t in timers:
        t.timeit(3)  # warm-up (caches, first-call paths)
        n = 1
        while (dt := t.timeit(n)) < target / 10:  # calibrate: loops of about ``target`` seconds
            n *= 10
        numbers.append(max(1, int(target / (dt / n))))
    out: tuple[list, list] = ([], [])
    for _ in range(repeats):
        for t, n, acc in zip(timers, numbers, out):
            acc.append(t.timeit(n) / n)
    return out


def worker(quick: bool) -> dict:
    """Measure every case in this process (fwdtensor is imported from ``sys.path[0]``)."""
    import fwdtensor

    res = {"fwdtensor": fwdtensor.__file__, "load_before": os.getloadavg(), "cases": {}}
    for name, (s_np, s_ft, setup) in CASES.items():
        big = "1e6" in name
        if quick and big:
            continue
        reps = 5 if big else (9 if quick else 31)
        target = 0.02 if big else 0.002
        t_np, t_ft = _samples(s_np, s_ft, setup, reps, target)
        res["cases"][name] = {"numpy": t_np, "fwdtensor": t_ft}
    res["load_after"] = os.getloadavg()
    return res


def _commit(root: Path) -> str:
    try:
        git = ["git", "-C", str(root)]
        out = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True)
        dirty = subprocess.run([*git, "status", "--porcelain", "fwdtensor"], capture_output=True)
        return out.stdout.decode().strip() + ("+dirty" if dirty.stdout.strip() else "")
    except OSError:
        return "?"


def _run_worker(root: Path, threads: int | None, quick: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    env["PYTHONPATH"] = str(root)
    if threads is not None:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(threads)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker"] + (["--quick"] if quick else [])
    p = subprocess.run(cmd, env=env, cwd=str(root), capture_output=True, text=True, check=True)
    return json.loads(p.stdout)


def _median(xs: list) -> float:
    return statistics.median(xs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="fewer repeats, no n = 1e6 (smoke run)")
    ap.add_argument("--against", type=Path, default=None, help="another checkout to measure alternately")
    ap.add_argument("--rounds", type=int, default=3, help="worker runs per checkout and thread setting")
    ap.add_argument("--out", type=Path, default=RESULTS / "overhead.json")
    args = ap.parse_args()
    if args.worker:
        sys.path.insert(0, os.getcwd())
        print(json.dumps(worker(args.quick)))
        return

    roots = {"this": ROOT}
    if args.against is not None:
        roots["against"] = args.against.resolve()
    commits = {k: _commit(r) for k, r in roots.items()}
    load0 = os.getloadavg()
    pooled: dict = {}  # (threads, root) -> case -> side -> samples
    loads = []
    for threads in (None, 1):
        for r in range(args.rounds):
            order = list(roots) if r % 2 == 0 else list(reversed(roots))
            for key in order:
                res = _run_worker(roots[key], threads, args.quick)
                loads.append(res["load_before"][0])
                slot = pooled.setdefault((threads, key), {})
                for case, sides in res["cases"].items():
                    for side, xs in sides.items():
                        slot.setdefault(case, {}).setdefault(side, []).extend(xs)
    load1 = os.getloadavg()

    table: dict = {}
    for (threads, key), cases in pooled.items():
        tag = "default" if threads is None else f"{threads} thread"
        for case, sides in cases.items():
            row = table.setdefault(tag, {}).setdefault(case, {})
            row[f"numpy_s[{key}]"] = _median(sides["numpy"])
            row[f"fwdtensor_s[{key}]"] = _median(sides["fwdtensor"])
            # The ratio is the median of paired ratios: each fwdtensor sample over the NumPy
            # sample taken just before it, so a change of load between samples cancels.
            row[f"ratio[{key}]"] = _median([f / n for f, n in zip(sides["fwdtensor"], sides["numpy"])])

    print(f"# fwdtensor per-operation overhead  {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"# {platform.platform()}, {os.cpu_count()} cpus; load average {load0[0]:.2f} -> {load1[0]:.2f}")
    print("# " + ", ".join(f"{k} = {commits[k]} ({roots[k]})" for k in roots))
    for tag, cases in table.items():
        print(f"\n## threads: {tag}")
        head = f"{'case':14s} {'numpy':>10s} {'fwdtensor':>10s} {'ratio':>7s} {'goal':>5s}"
        if "against" in roots:
            head += f" {'against':>10s} {'ratio':>7s} {'change':>7s}"
        print(head)
        for case, row in cases.items():
            goal = GOALS.get(case)
            line = (
                f"{case:14s} {row['numpy_s[this]'] * 1e6:8.2f}us {row['fwdtensor_s[this]'] * 1e6:8.2f}us "
                f"{row['ratio[this]']:6.2f}x {(f'{goal:.0f}x' if goal else ''):>5s}"
            )
            if "against" in roots:
                # the change of the ratio to NumPy (each measured in its own worker processes)
                change = row["ratio[this]"] / row["ratio[against]"] - 1
                row["change_vs_against"] = change
                t_against = row["fwdtensor_s[against]"] * 1e6
                line += f" {t_against:8.2f}us {row['ratio[against]']:6.2f}x {change:+7.1%}"
            print(line)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "date": time.strftime("%Y-%m-%d %H:%M"),
                "machine": {
                    "platform": platform.platform(),
                    "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                },
                "load_average": {"before": load0, "after": load1, "per_worker_1min": loads},
                "threads": {"default": "library default", "1 thread": "OMP/OPENBLAS/MKL_NUM_THREADS=1"},
                "checkouts": {k: {"path": str(roots[k]), "commit": commits[k]} for k in roots},
                "rounds": args.rounds,
                "quick": args.quick,
                "goals_ratio": GOALS,
                "medians": table,
            },
            indent=1,
        )
    )
    print(f"\nwritten {args.out}")


if __name__ == "__main__":
    main()
