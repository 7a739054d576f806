"""A model written in plain NumPy, differentiated without edits: the Jacobian of a PDE residual.

The residual of one implicit Euler step of a 1-D reaction-diffusion equation with an
Arrhenius-type source that switches on above a threshold,

    F(u) = u - u_old - dt * ( D (u[i-1] - 2 u[i] + u[i+1]) / dx^2 + R(u) ),
    R(u) = where(u > u_c, k exp(-E / (1 + u)), -k u),

is written with ``np.roll``, ``np.exp``, ``np.where``, ``np.sum`` only, exactly as a NumPy
user would write it, and ``ft.jacfwd(residual)`` computes its Jacobian through NumPy's own
protocols (``__array_ufunc__``/``__array_function__``). The result is checked against
central finite differences of the same function on plain arrays, and used for a few
Newton steps that solve F(u) = 0.

Run: python examples/numpy_model.py
"""

from __future__ import annotations

import sys

import numpy as np

import fwdtensor as ft

N = 40
DX = 1.0 / N
DT = 1e-3
D = 0.5
K, E, U_CRIT = 4.0, 2.0, 0.3


def reaction(u):
    """Arrhenius-like source above the threshold, linear decay below it."""
    return np.where(u > U_CRIT, K * np.exp(-E / (1.0 + u)), -K * u)


def residual(u, u_old):
    """One implicit Euler step of u_t = D u_xx + R(u) on a periodic grid, in plain NumPy."""
    laplacian = (np.roll(u, 1) - 2.0 * u + np.roll(u, -1)) / DX**2
    return u - u_old - DT * (D * laplacian + reaction(u)) + 1e-3 * np.sum(u) / N


def finite_difference_jacobian(f, u, h=1e-6):
    cols = [(f(u + h * e) - f(u - h * e)) / (2 * h) for e in np.eye(u.size)]
    return np.stack(cols, axis=1)


def main() -> int:
    x = np.arange(N) * DX
    u_old = 0.2 + 0.3 * np.exp(-((x - 0.5) ** 2) / 0.01)
    u = u_old.copy()

    jac = ft.jacfwd(lambda v: residual(v, u_old))
    J = jac(u)
    J_fd = finite_difference_jacobian(lambda v: residual(v, u_old), u)
    err = float(np.max(np.abs(J - J_fd)))
    print(f"Jacobian {J.shape}: max |jacfwd - finite differences| = {err:.2e}")
    ok = err < 1e-6

    for it in range(6):  # Newton with the Jacobian of the unmodified NumPy residual
        F = residual(u, u_old)
        print(f"Newton {it}: |F| = {np.linalg.norm(F):.3e}")
        if np.linalg.norm(F) < 1e-12:
            break
        u = u - np.linalg.solve(jac(u), F)
    ok = ok and np.linalg.norm(residual(u, u_old)) < 1e-10
    print("agreement with finite differences and Newton convergence:", "ok" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
