"""Stiff ODE solvers beside SciPy: fwdtensor's Rodas4, BDF and method="auto" against
``scipy.integrate.solve_ivp`` with BDF, Radau and LSODA on the same problems and tolerances.

Problems:
  robertson   Robertson's kinetics (k = 0.04, 3e7, 1e4; y0 = (1, 0, 0)) to t = 4e5,
              rtol 1e-6, atol 1e-10; sensitivities to the three rate constants
  vdp         Van der Pol with mu = 1000 from (2, 0) to t = 3000, rtol 1e-6, atol 1e-8;
              sensitivity to mu
  heat1d      a 1-D reaction-diffusion u_t = D u_xx - u^3 on N = 200 points to t = 1,
              rtol 1e-6, atol 1e-9, Jacobian by coloured sparse forward mode (jac_sparsity);
              sensitivity to D

Columns: steps (accepted), right-hand-side evaluations (fwdtensor's Jacobians are counted
apart, one forward-mode pass each; SciPy's finite-difference Jacobians are counted in its
nfev), Jacobians, LU factorisations, wall time for the solution alone and (fwdtensor) with
all parameter sensitivities in one dual pass. SciPy cannot differentiate its solvers.
Times are the best of ``--repeat`` runs.

Run: OPENBLAS_NUM_THREADS=1 python benchmarks/bench_stiff.py [--repeat 3] [--json FILE]
(one BLAS thread: on a loaded machine OpenBLAS's threads make a 200 x 200 LU take 100 ms
instead of 1 ms, for SciPy's solvers and fwdtensor's alike).
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
from scipy.integrate import solve_ivp

import fwdtensor as ft
from fwdtensor.ode import solve

K = np.array([0.04, 3e7, 1e4])
N_HEAT = 200


def robertson(t, y, k):
    a, b, c = y[0], y[1], y[2]
    return ft.stack([-k[0] * a + k[2] * b * c, k[0] * a - k[1] * b * b - k[2] * b * c, k[1] * b * b])


def robertson_np(t, y, k):
    return [
        -k[0] * y[0] + k[2] * y[1] * y[2],
        k[0] * y[0] - k[1] * y[1] ** 2 - k[2] * y[1] * y[2],
        k[1] * y[1] ** 2,
    ]


def vdp(t, y, mu):
    return ft.stack([y[1], mu * (1 - y[0] ** 2) * y[1] - y[0]])


def vdp_np(t, y, mu):
    return [y[1], mu * (1 - y[0] ** 2) * y[1] - y[0]]


def heat(t, u, D):
    lap = ft.concat([u[1:2] - u[0:1], u[2:] - 2 * u[1:-1] + u[:-2], u[-2:-1] - u[-1:]])
    return D * lap * (N_HEAT * N_HEAT) - u**3


def heat_np(t, u, D):
    lap = np.concatenate([u[1:2] - u[0:1], u[2:] - 2 * u[1:-1] + u[:-2], u[-2:-1] - u[-1:]])
    return D * lap * (N_HEAT * N_HEAT) - u**3


HEAT_PATTERN = np.abs(np.subtract.outer(np.arange(N_HEAT), np.arange(N_HEAT))) <= 1

PROBLEMS = {
    "robertson": dict(
        f=robertson,
        f_np=robertson_np,
        y0=np.array([1.0, 0.0, 0.0]),
        t1=4e5,
        p=K,
        rtol=1e-6,
        atol=1e-10,
        opts={},
    ),
    "vdp": dict(
        f=vdp,
        f_np=vdp_np,
        y0=np.array([2.0, 0.0]),
        t1=3000.0,
        p=np.asarray(1000.0),
        rtol=1e-6,
        atol=1e-8,
        opts={},
    ),
    "heat1d": dict(
        f=heat,
        f_np=heat_np,
        y0=np.sin(np.linspace(0, 3, N_HEAT)) + 1,
        t1=1.0,
        p=np.asarray(1.0),
        rtol=1e-6,
        atol=1e-9,
        opts={"jac_sparsity": HEAT_PATTERN},
        scipy_opts={"jac_sparsity": HEAT_PATTERN},
    ),
}


def best(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def run(repeat: int) -> list[dict]:
    rows = []
    for name, P in PROBLEMS.items():
        y_ref = solve_ivp(
            P["f_np"],
            (0, P["t1"]),
            P["y0"],
            args=(P["p"],),
            method="Radau",
            rtol=1e-10,
            atol=P["atol"] * 1e-3,
            **P.get("scipy_opts", {}),
        ).y[:, -1]
        for method in ("Rodas4", "BDF", "auto"):

            def primal(method=method, P=P):
                return solve(
                    P["f"],
                    (0.0, P["t1"]),
                    P["y0"],
                    args=(P["p"],),
                    method=method,
                    rtol=P["rtol"],
                    atol=P["atol"],
                    **P["opts"],
                )

            def sens(method=method, P=P):
                def final(p):
                    return solve(
                        P["f"],
                        (0.0, P["t1"]),
                        P["y0"],
                        args=(p,),
                        method=method,
                        rtol=P["rtol"],
                        atol=P["atol"],
                        **P["opts"],
                    ).y[-1]

                return ft.jacfwd(final)(P["p"])

            t_p, sol = best(primal, repeat)
            t_s, _ = best(sens, repeat)
            err = float(np.max(np.abs(np.asarray(sol.y)[-1] - y_ref) / (np.abs(y_ref) + P["atol"] * 1e3)))
            rows.append(
                dict(
                    problem=name,
                    solver=f"fwdtensor {sol.method}",
                    steps=sol.nsteps,
                    nfev=sol.nfev,
                    njev=sol.njev,
                    nlu=sol.nlu,
                    t_primal=t_p,
                    t_sens=t_s,
                    err=err,
                )
            )
        for method in ("BDF", "Radau", "LSODA"):

            def sp(method=method, P=P):
                return solve_ivp(
                    P["f_np"],
                    (0, P["t1"]),
                    P["y0"],
                    args=(P["p"],),
                    method=method,
                    rtol=P["rtol"],
                    atol=P["atol"],
                    **(P.get("scipy_opts", {}) if method != "LSODA" else {}),
                )

            t_p, r = best(sp, repeat)
            err = float(np.max(np.abs(r.y[:, -1] - y_ref) / (np.abs(y_ref) + P["atol"] * 1e3)))
            rows.append(
                dict(
                    problem=name,
                    solver=f"scipy {method}",
                    steps=r.t.size - 1,
                    nfev=r.nfev,
                    njev=r.njev,
                    nlu=r.nlu,
                    t_primal=t_p,
                    t_sens=None,
                    err=err,
                )
            )
    return rows


def table(rows: list[dict]) -> str:
    head = (
        "| problem | solver | steps | f evals | Jacobians | LU | solution (s) "
        "| with sensitivities (s) | rel. error |"
    )
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        ts = "-" if r["t_sens"] is None else f"{r['t_sens']:.3f}"
        lines.append(
            f"| {r['problem']} | {r['solver']} | {r['steps']} | {r['nfev']} | {r['njev']} | {r['nlu']} | "
            f"{r['t_primal']:.3f} | {ts} | {r['err']:.1e} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", default=None, help="also write the rows as JSON to this file")
    args = ap.parse_args(argv)
    rows = run(args.repeat)
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print(table(rows))
    for name in PROBLEMS:
        bdf = next(r for r in rows if r["problem"] == name and r["solver"] == "scipy BDF")
        ours = min(
            (r for r in rows if r["problem"] == name and r["solver"].startswith("fwdtensor")),
            key=lambda r: r["t_sens"],
        )
        print(
            f"{name}: fastest fwdtensor solver with sensitivities ({ours['solver']}) / "
            "SciPy BDF solution alone = "
            f"{ours['t_sens'] / bdf['t_primal']:.1f}x "
            "(goal: within 3x)"
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
