"""Rodas4: a stiffly accurate Rosenbrock method of order 4 with an embedded order-3 error
estimate and a third-order continuous extension (Hairer & Wanner, Solving ODEs II, VI.4;
the coefficients of their code RODAS, method 1, as published).

A Rosenbrock step solves six linear systems with one matrix ``I/(h gamma) - J`` (no Newton
iteration), ``J`` the exact Jacobian of the right-hand side at the step's start. With dual
parameters the Jacobian is a dual (forward mode applied to the forward-mode Jacobian), so
each stage's tangent is the exact solution of the differentiated linear stage equation,
through the same LU factorisation: the solution is differentiated exactly as computed.
"""

from __future__ import annotations

import math
from typing import Any

import fwdtensor as ft

from ..core import backend as _backend
from ..core import dual as _core
from ._implicit import Factored, FlatProblem, all_finite, eye_like, scaled_rms

_innermost = _core.innermost

GAMMA = 0.25
_C = (0.0, 0.386, 0.21, 0.63, 1.0, 1.0)  # stage nodes
_D = (0.25, -0.1043, 0.1035, -0.3620000000000023e-01, 0.0, 0.0)  # time-derivative weights
_A = (
    (),
    (0.1544000000000000e01,),
    (0.9466785280815826, 0.2557011698983284),
    (0.3314825187068521e01, 0.2896124015972201e01, 0.9986419139977817),
    (0.1221224509226641e01, 0.6019134481288629e01, 0.1253708332932087e02, -0.6878860361058950),
)
_CC = (
    (),
    (-0.5668800000000000e01,),
    (-0.2430093356833875e01, -0.2063599157091915),
    (-0.1073529058151375, -0.9594562251023355e01, -0.2047028614809616e02),
    (0.7496443313967647e01, -0.1024680431464352e02, -0.3399990352819905e02, 0.1170890893206160e02),
    (
        0.8083246795921522e01,
        -0.7981132988064893e01,
        -0.3152159432874371e02,
        0.1631930543123136e02,
        -0.6058818238834054e01,
    ),
)
# dense output: y(s) = (1 - s) y0 + s (y1 + (1 - s) (q2 + s q3)), q_i = sum_j D_ij k_j
_D2 = (0.1012623508344586e02, -0.7487995877610167e01, -0.3480091861555747e02, -0.7992771707568823e01,
       0.1025137723295662e01)  # fmt: skip
_D3 = (-0.6762803392801253, 0.6087714651680015e01, 0.1643084320892478e02, 0.2476722511418386e02,
       -0.6594389125716872e01)  # fmt: skip


def _lin(y: Any, terms: list) -> Any:
    """``y + sum(c * k)`` (``y`` may be None: the sum alone)."""
    acc = y
    for c, k in terms:
        if c == 0.0:
            continue
        ck = k * c
        acc = ck if acc is None else ft.add(acc, ck)
    return acc


def step(
    prob: FlatProblem, t: float, y: Any, f0: Any, fx: Any, M: Factored, h: float
) -> tuple[Any, Any, list]:
    """One Rodas4 step of size ``h``: the new state, the error estimate and the stages."""
    ks: list = []
    for i in range(6):
        if i == 0:
            fi = f0
        else:
            yi = _lin(y, [(a, k) for a, k in zip(_A[min(i, 4)], ks)])
            if i == 5:  # the embedded solution: stage 5's state plus k5
                yi = ft.add(yi, ks[4])
            fi = prob(t + _C[i] * h, yi)
        rhs = _lin(fi, [(c / h, k) for c, k in zip(_CC[i], ks)])
        if fx is not None and _D[i] != 0.0:
            rhs = ft.add(rhs, fx * (h * _D[i]))
        ks.append(M.solve(rhs))
    y_new = _lin(y, [(a, k) for a, k in zip(_A[4], ks)] + [(1.0, ks[4]), (1.0, ks[5])])
    return y_new, ks[5], ks


def dense(y: Any, y_new: Any, ks: list, s: float) -> Any:
    """The continuous extension at ``t + s h`` (third order)."""
    q = _lin(None, [(s * (1 - s) * d2 + s * s * (1 - s) * d3, k) for d2, d3, k in zip(_D2, _D3, ks)])
    base = _lin(y * (1.0 - s), [(s, y_new)])
    return base if q is None else ft.add(base, q)


def integrate(
    prob: FlatProblem,
    t0: float,
    t1: float,
    y0: Any,
    ts: list | None,
    rtol: float,
    atol: float,
    first_step: float | None,
    max_step: float,
    max_steps: int,
    out: Any,
) -> tuple[int, int]:
    """Rodas4 from ``t0`` to ``t1``; stored states go through ``out(t, y)``. Returns the step counts."""
    xp = _backend.namespace_of(_innermost(y0))
    eps = float(xp.finfo(_innermost(y0).dtype).eps)
    eye = eye_like(y0, prob.n)
    t, y = t0, y0
    f0 = prob(t, y)
    h = first_step if first_step is not None else _first_step(xp, y0, f0, t1 - t0, rtol, atol)
    h = min(h, max_step, t1 - t0)
    pending = list(ts) if ts is not None else None
    if pending is None or (pending and pending[0] <= t0):
        out(t0, y0)
        if pending:
            pending.pop(0)
    nsteps = nrej = 0
    while t < t1:
        J = prob.jacobian(t, y)
        fx = prob.time_derivative(t, y, f0)
        h_min = 10 * eps * max(abs(t), 1.0)
        rejected, bad = False, 0
        while True:
            if nsteps + nrej >= max_steps:
                raise RuntimeError(
                    f"Rodas4 reached max_steps={max_steps} at t={t} before t1={t1}; raise max_steps "
                    "or loosen rtol/atol"
                )
            h = min(h, max_step)
            t_new = t1 if t + h >= t1 - h_min else t + h
            h = t_new - t
            M = Factored(J, 1.0 / (h * GAMMA), eye, prob)
            y_new, err, ks = step(prob, t, y, f0, fx, M, h)
            en = scaled_rms(xp, err, y, y_new, rtol, atol)
            if en <= 1.0:
                break
            nrej += 1
            rejected = True
            if not math.isfinite(en):  # a non-finite trial: shrink a few times, then give up
                bad += 1
                if bad > 5 or not all_finite(f0):
                    from ._implicit import describe_state as _describe_state

                    raise FloatingPointError(
                        f"Rodas4: fun returned NaN or inf on every trial step from t={t:.10g} (last "
                        f"h={h:.3g}), state y={_describe_state(y)}; the model is not defined near there"
                    )
                h *= 0.1
            else:
                h *= max(0.2, 0.9 * en**-0.25)
            if h < h_min:
                raise FloatingPointError(
                    f"Rodas4 step size fell below {h_min:.3g} at t={t}: the error stays too large; "
                    "the solution may blow up there"
                )
        nsteps += 1
        if pending is None:
            out(t_new, y_new)
        else:
            while pending and pending[0] <= t_new:
                te = pending.pop(0)
                s = (te - t) / h
                out(te, y_new if s >= 1.0 else dense(y, y_new, ks, s))
        factor = 6.0 if en == 0 else min(6.0, 0.9 * en**-0.25)
        h *= min(factor, 1.0) if rejected else max(factor, 0.2)
        t, y = t_new, y_new
        f0 = prob(t, y)
    return nsteps, nrej


def _first_step(xp: Any, y: Any, f: Any, span: float, rtol: float, atol: float) -> float:
    """Hairer and Wanner's first guess ``0.01 |y| / |f|`` in the tolerance norm (primal values)."""
    yi, fi = _innermost(y), _innermost(f)
    scale = xp.abs(yi) * rtol + atol
    d0 = float(xp.sqrt(xp.mean((yi / scale) ** 2)))
    d1 = float(xp.sqrt(xp.mean((fi / scale) ** 2)))
    h = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
    return min(h, span)
