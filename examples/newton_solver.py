"""Newton's method for a nonlinear system, with the Jacobian from ``ft.jacfwd``.

The Bratu problem u'' + lam exp(u) = 0 on (0, 1), u(0) = u(1) = 0, discretised with
central differences on n interior points, is the system

    F(u) = A u / h^2 + lam exp(u) = 0,   A = tridiag(1, -2, 1).

Each Newton step takes F and its Jacobian from one batched forward pass
(``ft.value_and_jacfwd``) and solves J du = -F. The Jacobian is checked against the exact
one, A / h^2 + lam diag(exp(u)), and against central finite differences; the iteration
converges quadratically, and the solution is compared with the closed form
u(x) = -2 ln(cosh((x - 1/2) theta / 2) / cosh(theta / 4)), theta = sqrt(2 lam) cosh(theta / 4).

Run: python examples/newton_solver.py
"""

from __future__ import annotations

import argparse
import math

import numpy as np

import fwdtensor as ft

N = 50
H = 1.0 / (N + 1)
X = np.arange(1, N + 1) * H
LAM = 1.0
A = (np.diag(-2.0 * np.ones(N)) + np.diag(np.ones(N - 1), 1) + np.diag(np.ones(N - 1), -1)) / H**2


def residual(u):
    return ft.matmul(A, u) + LAM * ft.exp(u)


def newton(u, tol=1e-12, max_iter=20):
    """Newton's method; prints the residual norm, which squares at every step near the root."""
    value_and_jac = ft.value_and_jacfwd(residual)
    for k in range(max_iter):
        F, J = value_and_jac(u)
        norm = np.linalg.norm(F)
        print(f"  iteration {k}: |F(u)| = {norm:.3e}")
        if norm < tol:
            return u, k
        u = u - np.linalg.solve(J, F)
    raise RuntimeError(f"Newton did not converge in {max_iter} iterations")


def bratu_exact(x, lam):
    theta = 1.0
    for _ in range(100):  # fixed point for the lower branch: theta = sqrt(2 lam) cosh(theta / 4)
        theta = math.sqrt(2 * lam) * math.cosh(theta / 4)
    return -2 * np.log(np.cosh((x - 0.5) * theta / 2) / math.cosh(theta / 4))


def main(argv=None) -> int:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    rng = np.random.default_rng(0)
    u_test = rng.uniform(0.0, 0.2, N)
    J = ft.jacfwd(residual)(u_test)
    exact = A + LAM * np.diag(np.exp(u_test))
    h = 1e-6
    fd = np.stack(
        [(residual(u_test + h * e) - residual(u_test - h * e)) / (2 * h) for e in np.eye(N)], axis=1
    )
    scale = np.max(np.abs(exact))
    err_exact, err_fd = np.max(np.abs(J - exact)) / scale, np.max(np.abs(J - fd)) / scale
    ok = err_exact < 1e-12 and err_fd < 1e-7
    print(f"Bratu problem, {N} unknowns, lambda = {LAM}")
    print(
        f"Jacobian agreement: max relative difference {err_exact:.1e} from the exact one, {err_fd:.1e} from "
        f"central finite differences ({'ok' if ok else 'FAILED'})"
    )

    print("Newton from u = 0:")
    u, iterations = newton(np.zeros(N))
    err_u = np.max(np.abs(u - bratu_exact(X, LAM)))
    good_u = err_u < 1e-4  # the discretisation error is O(h^2)
    print(
        f"converged in {iterations} iterations; max |u - u_exact| = {err_u:.1e} "
        f"(discretisation error, O(h^2); {'ok' if good_u else 'FAILED'})"
    )
    return 0 if ok and good_u else 1


if __name__ == "__main__":
    raise SystemExit(main())
