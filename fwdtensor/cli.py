"""The command line: ``python -m fwdtensor`` (or ``fwdtensor``) with ``info``, ``demo``, ``bench``.

Exit status: 0 on success, 1 when a check fails or a backend is unavailable, 2 for a
command line that does not parse (argparse's convention), 130 when interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import json
import math
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import numpy as np

import fwdtensor as ft

from .ode import solve
from .sensitivity import ode_sensitivity, to_numpy

BACKENDS = ("numpy", "array_api_strict", "torch", "cupy")
_MODULE = {
    "numpy": "numpy",
    "array_api_strict": "array_api_strict",
    "torch": "torch",
    "cupy": "cupy",
    "dask": "dask",
}
_INSTALL = {
    "array_api_strict": "pip install array-api-strict",
    "torch": "CPU build: pip install torch --index-url https://download.pytorch.org/whl/cpu",
    "cupy": "pip install cupy-cuda12x (or cupy-cuda13x) on a machine with an NVIDIA GPU",
    "dask": "pip install 'dask[array]' distributed",
}
# Optional dependencies: what each gives, and how to install it (also from a checkout:
# pip install -e ".[EXTRA]" with the extra named in pyproject.toml).
_OPTIONAL = {
    "scipy": ("sparse Jacobians (sparse_jacfwd), special functions", "pip install scipy"),
    "matplotlib": ("plots", "pip install matplotlib"),
    "pandas": ("DataFrame export", "pip install pandas"),
    "xarray": ("DataArray export", "pip install xarray"),
    "tqdm": ("progress bars for long Jacobians", "pip install tqdm"),
    "distributed": ("Jacobians on a Dask cluster", "pip install distributed"),
    "nvidia": ("NVRTC: compiling ft.fuse kernels without a GPU (tests)", "pip install nvidia-cuda-nvrtc"),
}


class CLIError(Exception):
    """A failure to report as ``error: ...`` with exit status 1 (no traceback)."""


# ----------------------------------------------------------------- backends
# Distribution names to ask importlib.metadata for a module's version (cheap, no import).
_DISTRIBUTIONS = {
    "array_api_strict": ("array-api-strict",),
    "cupy": ("cupy-cuda12x", "cupy-cuda13x", "cupy-cuda11x", "cupy"),
    "nvidia": ("nvidia-cuda-nvrtc", "nvidia-cuda-nvrtc-cu12"),
}


def _version(module: str) -> str | None:
    """The installed version of ``module``'s distribution (None when absent), without importing it."""
    if importlib.util.find_spec(module) is None:
        return None
    for dist in _DISTRIBUTIONS.get(module, (module,)):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unknown version"


def _devices(name: str) -> list[str]:
    """The devices a backend can use; imports the backend (only called when it is installed)."""
    if name == "numpy" or name == "dask":
        return ["cpu"]
    if name == "array_api_strict":
        import array_api_strict

        # shown by name: array_api_strict.Device('device1') -> device1
        return [
            str(d).split("'")[1] if "'" in str(d) else str(d)
            for d in array_api_strict.__array_namespace_info__().devices()
        ]
    if name == "torch":
        import torch

        cuda = [f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())]
        return ["cpu", *cuda]
    import cupy

    n = cupy.cuda.runtime.getDeviceCount()
    names = [cupy.cuda.runtime.getDeviceProperties(i)["name"] for i in range(n)]
    return [f"cuda:{i} ({nm.decode() if isinstance(nm, bytes) else nm})" for i, nm in enumerate(names)]


def gather_info(probe_devices: bool = True) -> dict[str, Any]:
    """Versions, backends (found with ``find_spec``), their devices, and optional extras."""
    backends = {}
    for name in (*BACKENDS, "dask"):
        version = _version(_MODULE[name])
        entry: dict[str, Any] = {"installed": version is not None, "version": version}
        if version is None:
            entry["install"] = _INSTALL.get(name)
        elif probe_devices:
            try:
                entry["devices"] = _devices(name)
            except Exception as exc:  # a driver or runtime problem: report it, do not fail
                entry["devices"] = []
                entry["problem"] = f"{type(exc).__name__}: {exc}"
        backends[name] = entry
    return {
        "fwdtensor": ft.__version__,
        "array_api_version": ft.__array_api_version__,
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "default_backend": "numpy",
        "backends": backends,
        "optional": {m: _version(m) for m in _OPTIONAL},
    }


def _need_backend(name: str) -> Any:
    """The Array API namespace of backend ``name``, or a ``CLIError`` that says how to get it."""
    if importlib.util.find_spec(_MODULE[name]) is None:
        raise CLIError(f"backend {name!r} is not installed: {_INSTALL[name]}")
    if name == "array_api_strict":
        import array_api_strict as xp

        return xp
    if name == "cupy":
        try:
            import cupy

            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:  # no driver or runtime
            raise CLIError(f"backend 'cupy' is installed but unusable: {type(exc).__name__}: {exc}") from None
        if count < 1:
            raise CLIError("backend 'cupy' is installed but no CUDA device is visible")
    return importlib.import_module("array_api_compat." + name)


# --------------------------------------------------------------------- info
def cmd_info(args: argparse.Namespace, out: TextIO) -> int:
    data = gather_info()
    if args.json:
        print(json.dumps(data, indent=2), file=out)
        return 0
    print(f"fwdtensor {data['fwdtensor']}  (Array API {data['array_api_version']})", file=out)
    print(f"Python {data['python']} on {data['platform']}", file=out)
    print("\nbackends", file=out)
    for name, b in data["backends"].items():
        if not b["installed"]:
            print(f"  {name:<18} not installed  ({b['install']})", file=out)
            continue
        devices = ", ".join(b.get("devices", [])) or "none"
        tag = "  [default]" if name == data["default_backend"] else ""
        print(f"  {name:<18} {b['version']:<14} devices: {devices}{tag}", file=out)
        if "problem" in b:
            print(f"  {'':<18} problem: {b['problem']}", file=out)
    print(
        "\nThe backend of a computation is the library its arrays come from; Python numbers and\n"
        "lists become NumPy float64 (the default). Results stay on the device of their inputs.",
        file=out,
    )
    print("\noptional", file=out)
    for mod, (what, how) in _OPTIONAL.items():
        v = data["optional"][mod]
        print(f"  {mod:<18} {v or 'not installed':<14} {what}{'' if v else '  (' + how + ')'}", file=out)
    return 0


# --------------------------------------------------------------------- demo
def _demo_scalar(xp: Any, dtype: Any) -> tuple[list[tuple], float]:
    """The starting example twice (two passes; one batched pass) and its exact values."""

    def f(x1: Any, x2: Any) -> Any:
        return ft.log(x1) + x1 * x2 - ft.sin(x2)

    def arr(v: Any) -> Any:
        return xp.asarray(v, dtype=dtype)

    y1 = f(ft.DualTensor(arr(2.0), arr(1.0)), ft.DualTensor(arr(5.0), arr(0.0)))
    y2 = f(ft.DualTensor(arr(2.0), arr(0.0)), ft.DualTensor(arr(5.0), arr(1.0)))
    yb = f(
        ft.DualTensor(arr(2.0), arr([1.0, 0.0]), batched=True),
        ft.DualTensor(arr(5.0), arr([0.0, 1.0]), batched=True),
    )
    exact = (math.log(2) + 10 - math.sin(5), 5.5, 2 - math.cos(5))
    rows = [
        ("textbook (2 passes)", float(y1.primal), float(y1.tangent), float(y2.tangent)),
        ("batched (1 pass)", float(yb.primal), float(yb.tangent[0]), float(yb.tangent[1])),
        ("exact", *exact),
    ]
    err = max(abs(r[i] - exact[i - 1]) / max(1.0, abs(exact[i - 1])) for r in rows[:2] for i in (1, 2, 3))
    return rows, err


def _demo_jacobian(xp: Any, dtype: Any) -> tuple[Any, Any, Any]:
    """``f(x) = tanh(W x) + x**2``: ``ft.jacfwd`` and the exact ``diag(1 - y**2) W + diag(2x)``."""
    Wn = np.array([[0.5, -1.0, 0.25], [1.5, 0.2, -0.3], [-0.4, 0.8, 1.0]])
    xn = np.array([0.3, -0.7, 1.1])
    W, x = xp.asarray(Wn, dtype=dtype), xp.asarray(xn, dtype=dtype)
    J = to_numpy(ft.jacfwd(lambda v: ft.tanh(ft.matmul(W, v)) + v**2)(x))
    t = np.tanh(Wn @ xn)
    exact = (1 - t**2)[:, None] * Wn + np.diag(2 * xn)
    return xn, J, exact


def _logistic(t: float, y: Any, p: dict) -> Any:
    return p["r"] * y * (1.0 - y / p["K"])


def _logistic_exact(t: Any, r: float, K: float, N0: float) -> tuple[Any, Any]:
    """The closed form N(t) and its normalized sensitivities to (r, K, N0), as columns."""
    e = np.exp(-r * t)
    N = K / (1 + (K / N0 - 1) * e)
    q = N / K  # d ln N / d ln p from differentiating ln N = ln K - ln(1 + (K/N0 - 1) e)
    dr = (1 - q) * r * t
    dK = 1 - (1 - q) * (K / N0) / (K / N0 - 1)
    dN0 = (1 - q) * (K / N0) / (K / N0 - 1)
    return N, np.stack([dr, dK, dN0], axis=-1)


def _demo_sensitivity(xp: Any, dtype: Any, f64: bool) -> tuple[Any, Any, float]:
    """Logistic growth integrated by RK45 with dual parameters, against the closed form."""
    r, K, N0 = 0.8, 10.0, 0.5
    times = np.linspace(0.0, 10.0, 11)
    params = {name: xp.asarray(v, dtype=dtype) for name, v in (("r", r), ("K", K), ("N0", N0))}
    res = ode_sensitivity(
        _logistic,
        lambda p: p["N0"],
        times,
        params,
        output_names=["N"],
        rtol=1e-10 if f64 else 1e-5,
        atol=1e-12 if f64 else 1e-6,
    )
    _, exact = _logistic_exact(times, r, K, N0)
    S = to_numpy(res.normalized)  # (time, parameter): the state is a scalar
    err = float(np.max(np.abs(S - exact)))
    return res, S, err


def cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    xp = _need_backend(args.backend)
    dtype = getattr(xp, args.dtype)
    f64 = args.dtype == "float64"
    exact_tol = 1e-12 if f64 else 1e-5  # rounding only
    ode_tol = 1e-7 if f64 else 2e-3  # plus the solver's error at rtol 1e-10 (1e-5 for float32)
    start = time.perf_counter()
    ok = True

    def verdict(err: float, tol: float) -> str:
        nonlocal ok
        good = err <= tol
        ok = ok and good
        return f"agreement: max error {err:.1e} ({'ok' if good else 'FAILED'}, tolerance {tol:.0e})"

    print(f"fwdtensor demo on {args.backend} ({args.dtype})\n", file=out)
    print("1. The starting example: f(x1, x2) = ln(x1) + x1*x2 - sin(x2) at (2, 5)", file=out)
    rows, err = _demo_scalar(xp, dtype)
    print(f"   {'':<20} {'value':>9} {'df/dx1':>9} {'df/dx2':>9}", file=out)
    for name, v, d1, d2 in rows:
        print(f"   {name:<20} {v:9.4f} {d1:9.4f} {d2:9.4f}", file=out)
    print(f"   {verdict(err, exact_tol)}\n", file=out)

    print("2. A Jacobian: ft.jacfwd(f)(x) for f(x) = tanh(W @ x) + x**2, one batched pass", file=out)
    x, J, exact = _demo_jacobian(xp, dtype)
    print(f"   x = {_fmt_row(x)}", file=out)
    for i, row in enumerate(J):
        print(f"   {'J =' if i == 0 else '   '} {_fmt_row(row)}", file=out)
    print(
        f"   exact: diag(1 - tanh(Wx)**2) W + diag(2x); {verdict(float(abs(J - exact).max()), exact_tol)}\n",
        file=out,
    )

    print("3. Sensitivity of logistic growth dN/dt = r N (1 - N/K), N(0) = N0, solved by RK45", file=out)
    print("   with dual parameters (one pass); normalized sensitivities d ln N / d ln p:", file=out)
    res, S, err = _demo_sensitivity(xp, dtype, f64)
    print(f"   {'time':>6} {'N':>9}" + "".join(f"{n:>9}" for n in res.param_names), file=out)
    N = to_numpy(res.value)
    for i in range(0, len(res.times), 2):
        print(f"   {res.times[i]:6.1f} {N[i]:9.4f}" + "".join(f"{v:9.4f}" for v in S[i]), file=out)
    ranking = ", ".join(f"{n} ({v:.2f})" for n, v in res.ranking())
    print(f"   ranking by largest |d ln N / d ln p| over time: {ranking}", file=out)
    print(
        f"   exact: the closed form N(t) = K / (1 + (K/N0 - 1) exp(-r t)); {verdict(err, ode_tol)}\n",
        file=out,
    )

    print(
        f"{'all checks agree' if ok else 'SOME CHECKS FAILED'} ({time.perf_counter() - start:.2f} s)",
        file=out,
    )
    print("Next: python -m fwdtensor info, python -m fwdtensor bench, and the examples/ folder.", file=out)
    return 0 if ok else 1


def _fmt_row(v: Sequence[float]) -> str:
    return "[" + "  ".join(f"{float(a):8.4f}" for a in v) + "]"


# -------------------------------------------------------------------- bench
class Progress:
    """A one-line progress display on a terminal, one line per finished case elsewhere."""

    def __init__(self, total: int, stream: TextIO, enabled: bool = True) -> None:
        self.total, self.stream, self.done = total, stream, 0
        self.enabled = enabled
        self.tty = enabled and hasattr(stream, "isatty") and stream.isatty()

    def start(self, name: str) -> None:
        if self.tty:
            bar = "#" * (20 * self.done // self.total)
            self.stream.write(f"\r[{bar:<20}] {self.done}/{self.total} {name:<48}")
            self.stream.flush()

    def finish(self, name: str, seconds: float) -> None:
        self.done += 1
        if not self.enabled:
            return
        if self.tty:
            bar = "#" * (20 * self.done // self.total)
            end = "\n" if self.done == self.total else ""
            self.stream.write(f"\r[{bar:<20}] {self.done}/{self.total} {name:<48}{end}")
        else:
            self.stream.write(f"[{self.done}/{self.total}] {name} ({seconds:.2f} s)\n")
        self.stream.flush()


def _median_time(fn: Callable[[], Any], repeat: int, sync: Callable[[], Any]) -> float:
    """Median wall time of ``fn`` over ``repeat`` runs after one warm-up run."""
    fn()
    sync()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _bench_cases(xp: Any, dtype: Any, quick: bool) -> list[tuple[str, str, Callable, Callable, str]]:
    """(name, size, fwdtensor run, baseline run, what the baseline is) for each case."""
    rng = np.random.default_rng(0)
    cases = []
    for n in (10_000,) if quick else (10_000, 1_000_000):
        x = xp.asarray(rng.uniform(0.5, 2.0, n), dtype=dtype)
        v = xp.ones_like(x)

        def f(x: Any) -> Any:
            return ft.sin(x) * ft.exp(-x * x) + ft.log1p(x * x)

        cases.append(
            (
                "jvp of sin(x)*exp(-x^2) + log1p(x^2)",
                f"n={n:,}",
                lambda f=f, x=x, v=v: ft.jvp(f, (x,), (v,)),
                lambda f=f, x=x: f(x),
                "primal f(x)",
            )
        )
    for n in (30,) if quick else (30, 300):
        W = xp.asarray(rng.normal(size=(n, n)) / math.sqrt(n), dtype=dtype)
        x = xp.asarray(rng.normal(size=n), dtype=dtype)

        def g(x: Any, W: Any = W) -> Any:
            return ft.tanh(W @ x)

        cases.append(
            (
                "jacfwd of tanh(W @ x)",
                f"n={n}",
                lambda g=g, x=x: ft.jacfwd(g)(x),
                lambda g=g, x=x, n=n: _central_fd(xp, g, x, n),
                "central differences",
            )
        )
    p = {k: xp.asarray(v, dtype=dtype) for k, v in (("r", 0.8), ("K", 10.0), ("N0", 0.5))}
    ts = [float(t) for t in np.linspace(0, 10, 21)]

    def traj(q: dict) -> Any:
        return solve(_logistic, (0.0, 10.0), q["N0"], args=(q,), t_eval=ts, rtol=1e-8, atol=1e-10).y

    cases.append(
        (
            "ODE sensitivity (RK45, 3 parameters)",
            "21 times",
            lambda: ft.jacfwd(traj)(p),
            lambda: _central_fd_dict(xp, traj, p),
            "central differences",
        )
    )
    return cases


def _central_fd(xp: Any, g: Callable, x: Any, n: int, h: float = 1e-6) -> Any:
    cols = []
    for i in range(n):
        e = xp.zeros_like(x)
        e[i] = h
        cols.append((g(x + e) - g(x - e)) / (2 * h))
    return xp.stack(cols, axis=-1)


def _central_fd_dict(xp: Any, g: Callable, p: dict, h: float = 1e-6) -> list:
    cols = []
    for k in p:
        hi, lo = dict(p), dict(p)
        hi[k], lo[k] = p[k] + h, p[k] - h
        cols.append((g(hi) - g(lo)) / (2 * h))
    return cols


def _sync(name: str) -> Callable[[], None]:
    if name == "cupy":
        import cupy

        return lambda: cupy.cuda.Device().synchronize()
    return lambda: None


def cmd_bench(args: argparse.Namespace, out: TextIO) -> int:
    xp = _need_backend(args.backend)
    dtype = getattr(xp, args.dtype)
    if args.repeat < 1:
        raise CLIError(f"--repeat must be at least 1, got {args.repeat}")
    cases = _bench_cases(xp, dtype, args.quick)
    sync = _sync(args.backend)
    progress = Progress(len(cases), sys.stderr, enabled=args.json != "-")
    rows = []
    for name, size, run, base, base_name in cases:
        label = f"{name} {size}"
        progress.start(label)
        t0 = time.perf_counter()
        t_ft = _median_time(run, args.repeat, sync)
        t_base = _median_time(base, args.repeat, sync)
        progress.finish(label, time.perf_counter() - t0)
        rows.append(
            {"case": name, "size": size, "fwdtensor_s": t_ft, "baseline": base_name, "baseline_s": t_base}
        )
    if args.json:
        payload = {"backend": args.backend, "dtype": args.dtype, "repeat": args.repeat, "cases": rows}
        payload["info"] = gather_info(probe_devices=False)
        text = json.dumps(payload, indent=2)
        if args.json == "-":
            print(text, file=out)
            return 0
        with open(args.json, "w") as fh:
            fh.write(text + "\n")
    _print_table(rows, args, out)
    return 0


def _print_table(rows: list[dict], args: argparse.Namespace, out: TextIO) -> None:
    print(f"\nfwdtensor bench on {args.backend} ({args.dtype}), median of {args.repeat} runs", file=out)
    head = f"{'case':<38} {'size':>12} {'fwdtensor':>11} {'baseline':>11}  {'ratio':>7}  baseline is"
    print(head, file=out)
    print("-" * len(head), file=out)
    for r in rows:
        ratio = r["fwdtensor_s"] / r["baseline_s"] if r["baseline_s"] > 0 else math.inf
        print(
            f"{r['case']:<38} {r['size']:>12} {_fmt_time(r['fwdtensor_s']):>11} "
            f"{_fmt_time(r['baseline_s']):>11}  {ratio:7.2f}  {r['baseline']}",
            file=out,
        )
    print("ratio = fwdtensor time / baseline time (below 1: fwdtensor is faster).", file=out)


def _fmt_time(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:.1f} us"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


# --------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fwdtensor",
        description="Forward-mode automatic differentiation for Array API programs.",
        epilog="Run 'fwdtensor COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"fwdtensor {ft.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "info",
        help="versions, backends and devices found",
        description=(
            "Print fwdtensor's version, the Array API backends that are installed (found without "
            "importing the missing ones) with their versions and devices, and the optional extras."
        ),
    )
    p.add_argument("--json", action="store_true", help="print the same as JSON")
    p.set_defaults(func=cmd_info)

    for name, func, helptext, desc in (
        (
            "demo",
            cmd_demo,
            "the starting example, a Jacobian and a sensitivity table",
            "Run the starting example (dual numbers by hand, two ways), a Jacobian with ft.jacfwd and "
            "the sensitivity analysis of an ODE model, each checked against the exact answer. Exit "
            "status 1 when a check fails.",
        ),
        (
            "bench",
            cmd_bench,
            "a short benchmark with a summary table",
            "Time a few typical jobs (a JVP, Jacobians, an ODE sensitivity) against their "
            "baselines (the plain function, central finite differences) and print a table.",
        ),
    ):
        p = sub.add_parser(name, help=helptext, description=desc)
        p.add_argument(
            "--backend", choices=BACKENDS, default="numpy", help="array library to run on (default: numpy)"
        )
        p.add_argument(
            "--dtype",
            choices=("float64", "float32"),
            default="float64",
            help="floating dtype (default: float64)",
        )
        if name == "bench":
            p.add_argument(
                "--repeat", type=int, default=5, help="timed runs per case; the median is shown (default: 5)"
            )
            p.add_argument("--quick", action="store_true", help="small sizes only (a few seconds)")
            p.add_argument(
                "--json",
                metavar="PATH",
                help="also write the results as JSON to PATH ('-': only JSON to stdout)",
            )
        p.set_defaults(func=func)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (the console script exits with it)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.func(args, sys.stdout)
    except CLIError as exc:
        print(f"fwdtensor {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into head & co.
        return 0
