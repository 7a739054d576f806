"""Differentiate a root solver by the implicit function theorem, not through its iterations.

``F(x, p) = 0`` defines ``x*(p)``. Newton's method finds ``x*`` in a data-dependent number
of steps; differentiating those steps would be slow and only approximately right before
convergence. The implicit function theorem gives the exact derivative from the solution
alone: ``F_x dx + F_p dp = 0``, so ``dx = -F_x^{-1} (F_p dp)``.

``ft.custom_jvp`` attaches that rule to the solver. The rule is written with fwdtensor's
own operations, so it can itself be differentiated: second derivatives of ``x*(p)`` work
too (``ft.hessian``). The solver takes the residual function as a non-differentiable
argument (``nondiff_argnums=(0,)``), as with ``jax.custom_jvp``.

The problem: a chain of nonlinear springs, ``F(x, p) = K x + p0 * x**3 - p1 * load``, with
``K`` the stiffness matrix of a chain (tridiagonal, positive definite), ``p0`` the cubic
stiffening and ``p1`` the load factor. Run it: ``python examples/implicit_root.py``.
"""

from __future__ import annotations

from functools import partial

import numpy as np

import fwdtensor as ft


@partial(ft.custom_jvp, nondiff_argnums=(0,))
def newton_root(F, x0, p, tol=1e-13, max_steps=50):
    """Solve ``F(x, p) = 0`` for ``x`` by Newton's method, starting at ``x0``."""
    x = x0
    for _ in range(max_steps):
        r, Jx = ft.value_and_jacfwd(F)(x, p)
        dx = ft.linalg.solve(Jx, r)
        x = x - dx
        if float(ft.max(ft.abs(dx))) < tol * (1.0 + float(ft.max(ft.abs(x)))):
            break
    return x


@newton_root.defjvp
def _newton_root_jvp(F, primals, tangents):
    """One direction: ``dx = -F_x^{-1} F_p dp`` at the solution (x0 has no influence)."""
    x0, p, tol, max_steps = primals
    _, dp, _, _ = tangents
    x = newton_root(F, x0, p, tol, max_steps)
    Jx = ft.jacfwd(F, argnums=0)(x, p)
    _, Fp_dp = ft.jvp(lambda q: F(x, q), (p,), (dp,))
    return x, -ft.linalg.solve(Jx, Fp_dp)


def chain_stiffness(n: int) -> np.ndarray:
    """Stiffness matrix of n masses joined by unit springs, both ends fixed."""
    return 2.0 * np.eye(n) - np.eye(n, k=1) - np.eye(n, k=-1)


def make_residual(n: int):
    K = chain_stiffness(n)
    load = np.linspace(0.5, 1.5, n)

    def F(x, p):
        return ft.matmul(K, x) + p[0] * x**3 - p[1] * load

    return F


def solve_unrolled(F, x0, p, steps=30):
    """The same Newton iteration as plain code (no custom rule): fwdtensor differentiates it."""
    x = x0
    for _ in range(steps):
        r, Jx = ft.value_and_jacfwd(F)(x, p)
        x = x - ft.linalg.solve(Jx, r)
    return x


def main(n: int = 8) -> dict:
    F = make_residual(n)
    x0 = np.zeros(n)
    p = np.array([0.7, 1.3])
    x = newton_root(F, x0, p)
    dxdp = ft.jacfwd(lambda q: newton_root(F, x0, q))(p)  # implicit function theorem
    through = ft.jacfwd(lambda q: solve_unrolled(F, x0, q))(p)  # through the iterations
    h = 1e-6
    fd = np.stack(
        [(newton_root(F, x0, p + h * e) - newton_root(F, x0, p - h * e)) / (2 * h) for e in np.eye(2)],
        axis=1,
    )
    d2 = ft.hessian(lambda q: ft.sum(newton_root(F, x0, q)))(p)  # the rule differentiated again
    fd2 = np.stack(
        [
            (
                np.sum(ft.jacfwd(lambda q: newton_root(F, x0, q))(p + h * e), axis=0)
                - np.sum(ft.jacfwd(lambda q: newton_root(F, x0, q))(p - h * e), axis=0)
            )
            / (2 * h)
            for e in np.eye(2)
        ]
    )
    return {
        "residual": float(np.max(np.abs(np.asarray(F(x, p))))),  # a constant of the namespace
        "ift_vs_unrolled": float(np.max(np.abs(dxdp - through))),
        "ift_vs_fd": float(np.max(np.abs(dxdp - fd))),
        "hessian_vs_fd": float(np.max(np.abs(d2 - fd2))),
        "dxdp": dxdp,
        "hessian": d2,
    }


if __name__ == "__main__":
    res = main()
    np.set_printoptions(precision=5, suppress=True)
    print("max |F(x*, p)|                        ", f"{res['residual']:.1e}")
    print("dx*/dp (implicit function theorem):\n", res["dxdp"])
    print("max difference from unrolled Newton    ", f"{res['ift_vs_unrolled']:.1e}")
    print("max difference from finite differences ", f"{res['ift_vs_fd']:.1e}")
    print("d2 sum(x*)/dp2:\n", res["hessian"])
    print("max difference from finite differences ", f"{res['hessian_vs_fd']:.1e}")
