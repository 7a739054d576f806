"""1-D heat equation: the sensitivity of the temperature profile to the diffusion coefficient.

    du/dt = D d2u/dx2   on a periodic rod [0, 1),   u(0, x) = 1 + 0.5 sin(2 pi x)

Discretised by central differences on n points (the method of lines) and integrated with
fixed-step RK4 (``fwdtensor.ode.solve(..., method="RK4")``) with D a dual number, so one
solve gives u and du/dD at every point and time. The semi-discrete system has an exact
solution, since sin(2 pi x_j) is an eigenvector of the discrete Laplacian:

    u_j(t) = 1 + 0.5 exp(lam t) sin(2 pi x_j),   lam = -(4 D / dx^2) sin^2(pi dx),
    du_j/dD = 0.5 t (lam / D) exp(lam t) sin(2 pi x_j),

against which the forward-mode sensitivities are checked, as well as against central
finite differences of the same solver.

Run: python examples/heat_equation.py [--out DIR]   (the plot needs matplotlib)
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import pathlib

import numpy as np

import fwdtensor as ft
from fwdtensor.ode import solve
from fwdtensor.sensitivity import ode_sensitivity

N = 64
DX = 1.0 / N
X = np.arange(N) * DX
U0 = 1.0 + 0.5 * np.sin(2 * np.pi * X)
D = 0.1
TIMES = np.linspace(0.0, 0.5, 6)
STEP = 1e-3  # explicit RK4 is stable for D * STEP / DX**2 below about 0.7


def heat(t, u, p):
    """Central second differences with periodic neighbours, times the diffusion coefficient."""
    laplacian = (ft.roll(u, 1) - 2.0 * u + ft.roll(u, -1)) / DX**2
    return p[0] * laplacian


def temperature(p):
    return solve(heat, (TIMES[0], TIMES[-1]), U0, args=(p,), method="RK4", step=STEP, t_eval=TIMES).y


def exact_sensitivity(t, d):
    lam = -(4.0 * d / DX**2) * math.sin(math.pi * DX) ** 2
    return 0.5 * t[:, None] * (lam / d) * np.exp(lam * t[:, None]) * np.sin(2 * np.pi * X)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", "--outdir", dest="out", default="out", help="folder for the plot (default: ./out)"
    )
    args = parser.parse_args(argv)

    res = ode_sensitivity(heat, U0, TIMES, np.array([D]), param_names=["D"], method="RK4", step=STEP)
    dudD = np.asarray(res.absolute)[..., 0]  # time x position
    exact = exact_sensitivity(TIMES, D)
    h = 1e-6 * D
    fd = (temperature(np.array([D + h])) - temperature(np.array([D - h]))) / (2 * h)
    scale = np.max(np.abs(exact))
    err_exact, err_fd = np.max(np.abs(dudD - exact)) / scale, np.max(np.abs(dudD - fd)) / scale
    ok = err_exact < 1e-8 and err_fd < 1e-6
    print(f"heat equation on {N} points, D = {D}, RK4 with step {STEP}: du/dD at every point in one solve")
    print(f"{'time':>6}{'max |du/dD|':>14}{'exact':>14}")
    for t, row, ex in zip(TIMES, dudD, exact):
        print(f"{t:6.2f}{np.max(np.abs(row)):14.6f}{np.max(np.abs(ex)):14.6f}")
    print(
        f"agreement: max relative difference {err_exact:.1e} from the exact semi-discrete answer, "
        f"{err_fd:.1e} from central finite differences ({'ok' if ok else 'FAILED'})"
    )
    print(f"influence of D on u (largest |d ln u / d ln D| over space and time): {res.influence()['D']:.4f}")

    if importlib.util.find_spec("matplotlib") is None:
        print("matplotlib is not installed: no plot (pip install fwdtensor[plot])")
        return 0 if ok else 1
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.6), layout="constrained")
    ax = fig.add_subplot()
    for t, row, ex in zip(TIMES[1:], dudD[1:], exact[1:]):
        (line,) = ax.plot(X, row, label=f"t = {t:.1f}")
        ax.plot(X, ex, "--", color=line.get_color(), linewidth=0.8)
    ax.set_xlabel("x")
    ax.set_ylabel("du/dD")
    ax.set_title("sensitivity of the temperature to D (dashed: exact)")
    ax.legend(fontsize="small")
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "heat_equation_sensitivity.png", dpi=110)
    print(f"plot written to {out / 'heat_equation_sensitivity.png'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
