"""Variable-order BDF (orders 1-5) in the quasi-constant step form of Shampine & Reichelt's
NDF family (the formulation of MATLAB's ode15s and SciPy's BDF, with kappa = 0: plain BDF).

The history is a table of backward differences ``D`` (scaled by the step); a step predicts
from it, solves the corrector ``d - c f(t + h, y_pred + d) + psi = 0`` by simplified Newton
iterations that reuse the Jacobian (recomputed only when Newton stalls) and its LU factors
(recomputed when ``h`` or the order changes), and estimates the error from ``d``.

Newton runs on primal values only. With duals, the converged step gets its tangent from the
implicit function theorem: one solve ``M dd = dR`` with ``M = I - c J(y_new)`` (``J`` a dual
Jacobian at the converged point, through ``ft.linalg.lu_solve``), so the tangent does not
depend on how many Newton iterations ran or on their tolerance.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import fwdtensor as ft

from ..core import backend as _backend
from ..core import dual as _core
from ..core.dual import DualTensor
from ._implicit import Factored, FlatProblem, all_finite, eye_like

_innermost = _core.innermost

MAX_ORDER = 5
NEWTON_MAXITER = 4
_GAMMA = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, MAX_ORDER + 1))])
_ALPHA = _GAMMA  # kappa = 0: the classical BDF formulas
_ERROR_CONST = 1.0 / np.arange(1, MAX_ORDER + 2)  # the error constant of order k is 1/(k+1)


def _lin(terms: list) -> Any:
    acc = None
    for c, k in terms:
        c = float(c)
        if c == 0.0:
            continue
        ck = k * c
        acc = ck if acc is None else ft.add(acc, ck)
    return acc


def _R(order: int, factor: float) -> np.ndarray:
    """The matrix that rescales the difference table to a step ``factor`` times as long."""
    i = np.arange(1, order + 1)[:, None]
    j = np.arange(1, order + 1)
    m = np.zeros((order + 1, order + 1))
    m[1:, 1:] = (i - 1 - factor * j) / i
    m[0] = 1.0
    return np.cumprod(m, axis=0)


def _change_D(D: list, order: int, factor: float) -> None:
    RU = _R(order, factor) @ _R(order, 1.0)
    new = [_lin([(RU[i, j], D[i]) for i in range(order + 1)]) for j in range(order + 1)]
    D[: order + 1] = new


def _rms(xp: Any, a: Any) -> float:
    return float(xp.sqrt(xp.mean(a * a)))


def _is_dual(*xs: Any) -> bool:
    return any(type(x) is DualTensor for x in xs)


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
    """BDF from ``t0`` to ``t1``; stored states go through ``out(t, y)``. Returns the step counts."""
    yp0 = _innermost(y0)
    xp = _backend.namespace_of(yp0)
    eps = float(xp.finfo(yp0.dtype).eps)
    eye = eye_like(y0, prob.n)
    dual = _is_dual(y0, *prob.args)
    f0 = prob(t0, y0)
    if not all_finite(f0):
        _nonfinite(t0, y0, None)
    if first_step is None:
        scale = xp.abs(yp0) * rtol + atol
        d0, d1 = _rms(xp, yp0 / scale), _rms(xp, _innermost(f0) / scale)
        h = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
    else:
        h = first_step
    h = min(h, max_step, t1 - t0)
    newton_tol = max(10 * eps / rtol, min(0.03, rtol**0.5))
    D: list = [None] * (MAX_ORDER + 3)
    D[0], D[1] = y0, f0 * h
    zero = y0 * 0.0
    for i in range(2, MAX_ORDER + 3):
        D[i] = zero
    order, n_equal = 1, 0
    t = t0
    J = prob.jacobian(t0, _innermost(y0), primal=True)  # Newton's Jacobian: primal values
    jac_current = True
    M = None
    pending = list(ts) if ts is not None else None
    if pending is None or (pending and pending[0] <= t0):
        out(t0, y0)
        if pending:
            pending.pop(0)
    nsteps = nrej = 0
    while t < t1:
        h_min = 10 * eps * max(abs(t), 1.0)
        bad = 0  # consecutive trial steps on which fun was not finite
        while True:
            if nsteps + nrej >= max_steps:
                raise RuntimeError(
                    f"BDF reached max_steps={max_steps} at t={t} before t1={t1}; "
                    "raise max_steps or loosen rtol/atol"
                )
            if h > max_step or t + h >= t1 - h_min:
                new_h = min(max_step, t1 - t)
                _change_D(D, order, new_h / h)
                n_equal, M = 0, None
                h = new_h
            t_new = t + h if t + h < t1 - h_min else t1
            y_pred = _lin([(1.0, D[i]) for i in range(order + 1)])
            psi = ft.divide(_lin([(_GAMMA[i], D[i]) for i in range(1, order + 1)]), float(_ALPHA[order]))
            c = h / float(_ALPHA[order])
            yp = _innermost(y_pred)
            scale = xp.abs(yp) * rtol + atol
            converged = False
            while not converged:
                if M is None:
                    M = Factored(J, 1.0 / c, eye, prob)  # (I/c - J) c = I - c J
                converged, n_iter, d = _newton(prob, xp, t_new, yp, _innermost(psi), c, M, scale, newton_tol)
                if n_iter < 0:  # fun was NaN or inf: a fresh Jacobian cannot help
                    bad += 1
                    if bad > 5:
                        _nonfinite(t, D[0], h)
                    break
                if not converged:
                    if jac_current:
                        break
                    J = prob.jacobian(t_new, yp, primal=True)
                    jac_current, M = True, None
            if not converged:
                nrej += 1
                factor = 0.5
                h *= factor
                _change_D(D, order, factor)
                n_equal, M = 0, None
                if h < h_min:
                    from ._implicit import describe_state as _describe_state

                    raise FloatingPointError(
                        f"BDF: Newton's iteration does not converge at t={t:.10g} even for h={h:.3g} "
                        f"(state y={_describe_state(D[0])}); fun may be NaN or discontinuous there"
                    )
                continue
            y_new_p = yp + d
            scale_new = xp.abs(y_new_p) * rtol + atol
            safety = 0.9 * (2 * NEWTON_MAXITER + 1) / (2 * NEWTON_MAXITER + n_iter)
            err = _rms(xp, float(_ERROR_CONST[order]) * d / scale_new)
            if err > 1.0 or not math.isfinite(err):
                nrej += 1
                factor = 0.2 if not math.isfinite(err) else max(0.2, safety * err ** (-1 / (order + 1)))
                h *= factor
                _change_D(D, order, factor)
                n_equal, M = 0, None
                if h < h_min:
                    raise FloatingPointError(f"BDF step size fell below {h_min:.3g} at t={t}")
                continue
            break
        # accepted: the step's correction d, with tangents by the implicit function theorem
        dd = _dual_correction(prob, t_new, y_pred, psi, d, c, eye) if dual else d
        y_new = ft.add(y_pred, dd)
        nsteps += 1
        jac_current = False
        n_equal += 1
        D[order + 2] = ft.subtract(dd, D[order + 1])
        D[order + 1] = dd
        for i in reversed(range(order + 1)):
            D[i] = ft.add(D[i], D[i + 1])
        if pending is None:
            out(t_new, y_new)
        else:
            while pending and pending[0] <= t_new:
                te = pending.pop(0)
                out(te, y_new if te >= t_new else _dense(D, order, t_new, h, te))
        t = t_new
        if n_equal < order + 1:
            continue
        err_m = (
            _rms(xp, float(_ERROR_CONST[order - 1]) * _innermost(D[order]) / scale_new)
            if order > 1
            else math.inf
        )
        err_p = (
            _rms(xp, float(_ERROR_CONST[order + 1]) * _innermost(D[order + 2]) / scale_new)
            if order < MAX_ORDER
            else math.inf
        )
        norms = np.array([err_m, err, err_p])
        with np.errstate(divide="ignore"):
            factors = norms ** (-1.0 / np.arange(order, order + 3))
        delta = int(np.argmax(factors)) - 1
        order += delta
        factor = min(10.0, safety * float(np.max(factors)))
        h *= factor
        _change_D(D, order, factor)
        n_equal, M = 0, None
    return nsteps, nrej


def _newton(
    prob: FlatProblem, xp: Any, t: float, y_pred: Any, psi: Any, c: float, M: Factored, scale: Any, tol: float
) -> tuple[bool, int, Any]:
    """Simplified Newton on primal values for ``d - c f(t, y_pred + d) + psi = 0``."""
    d = xp.zeros_like(y_pred)
    y = y_pred
    dy_norm_old = None
    for k in range(NEWTON_MAXITER):
        f = prob(t, y, primal=True)
        if not bool(xp.all(xp.isfinite(f))):
            return False, -1, d
        # M factors I/c - J, so M^{-1} r / c solves (I - c J) x = r
        dy = M.solve((f * c - psi - d) / c)
        dy_norm = _rms(xp, dy / scale)
        rate = None if dy_norm_old is None else dy_norm / dy_norm_old
        if rate is not None and (rate >= 1 or rate ** (NEWTON_MAXITER - k) / (1 - rate) * dy_norm > tol):
            return False, k + 1, d
        y = y + dy
        d = d + dy
        if dy_norm == 0 or (rate is not None and rate / (1 - rate) * dy_norm < tol):
            return True, k + 1, d
        dy_norm_old = dy_norm
    return False, NEWTON_MAXITER, d


def _nonfinite(t: float, y: Any, h: float | None) -> None:
    from ._implicit import describe_state as _describe_state

    where = f"at t={t:.10g}" if h is None else f"on every trial step from t={t:.10g} (last h={h:.3g})"
    raise FloatingPointError(
        f"BDF: fun returned NaN or inf {where}, state y={_describe_state(y)}; the model is not defined there"
    )


def _dual_correction(prob: FlatProblem, t: float, y_pred: Any, psi: Any, d: Any, c: float, eye: Any) -> Any:
    """``d`` with the tangent of the implicit function theorem: ``dd = (I - c J)^{-1} dR``.

    ``R(d) = c f(t, y_pred + d) - psi - d`` evaluated with every dual input and the
    converged primal ``d``; ``J`` is the dual Jacobian at the converged state. The primal
    of the result is exactly ``d`` (the correction's own primal is removed), so the steps
    and values match a solve without tangents.
    """
    y = ft.add(y_pred, d)
    J = prob.jacobian(t, y)
    M = Factored(J, 1.0 / c, eye, prob)
    R = ft.subtract(ft.subtract(prob(t, y) * c, psi), d)
    corr = ft.divide(M.solve(R), c)
    return ft.add(ft.subtract(corr, _innermost(corr)), d)


def _dense(D: list, order: int, t: float, h: float, te: float) -> Any:
    """The interpolating polynomial through the last ``order + 1`` states, at ``te``."""
    p = 1.0
    terms = [(1.0, D[0])]
    for j in range(order):
        p *= (te - (t - h * j)) / (h * (1 + j))
        terms.append((p, D[j + 1]))
    return _lin(terms)
