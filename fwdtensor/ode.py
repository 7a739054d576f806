"""ODE integration that differentiates: fixed-step RK4 and adaptive Dormand-Prince (RK45).

``solve(fun, t_span, y0, args=...)`` integrates ``dy/dt = fun(t, y, *args)`` with the
arithmetic of the Array API namespace, so it runs on NumPy, CuPy, PyTorch and
array-api-strict, and on duals: when ``y0`` or an array in ``args`` is a dual (for example
inside ``ft.jacfwd``), the solution carries the forward sensitivities of the numerical
solution, all tangent directions in one pass.

Step-size control reads primal values only. The error estimate, the initial step and the
acceptance of a step use the primal arrays, never the tangents, so a differentiated solve
takes exactly the steps of the same solve without tangents. The derivative is therefore
the exact derivative of the numerical solution on that step sequence
(discretise-then-differentiate): it converges to the true sensitivity as ``rtol`` and
``atol`` shrink, but the tangents themselves are not error-controlled. Tighten the
tolerances when sensitivities matter more than values.

The solution is stored with time first: ``Solution.y.shape == (len(t), *y0.shape)``,
the time x output layout of ``fwdtensor.sensitivity`` (SciPy's ``solve_ivp`` puts time last).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import array_api_compat

import fwdtensor as ft

from .core import backend as _backend
from .core import dual as _core
from .core import tree as _tree
from .core.dual import DualTensor

__all__ = ["solve", "Solution", "METHODS"]

METHODS = ("RK45", "RK4")

# Dormand-Prince 5(4) tableau (Dormand & Prince 1980): nodes, stage weights, the
# fifth-order solution weights (the last stage is "first same as last": f(t + h, y_new)).
_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0)
_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
)
_B = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84)
# Fifth- minus fourth-order weights over all seven stages: the local error estimate.
_E = (71 / 57600, 0.0, -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525, -1 / 40)

# Coefficients of the fourth-order continuous extension (dense output) of Dormand-Prince,
# by stage, as in Hairer, Norsett & Wanner, Solving ODEs I, II.6 (stage 2 does not enter).
_D = (
    -12715105075 / 11282082432,
    0.0,
    87487479700 / 32700410799,
    -10690763975 / 1880347072,
    701980252875 / 199316789632,
    -1453857185 / 822651844,
    69997945 / 29380423,
)

_SAFETY = 0.9  # step-size controller: the usual safety factor and growth limits (Hairer I, II.4)
_MIN_FACTOR = 0.2
_MAX_FACTOR = 10.0


@dataclass(frozen=True)
class Solution:
    """The result of ``solve``: times, states (time first) and the solver's counters.

    ``y`` has shape ``(len(t), *y0.shape)`` and is a dual when the inputs were; ``t`` is an
    array of the same backend and device with the solution's dtype.
    """

    t: Any
    y: Any
    method: str
    nfev: int
    nsteps: int
    nrejected: int


# ------------------------------------------------------------------ helpers
_innermost = _core.innermost  # the plain array under the duals: what step control reads


def _top_dual(tree: Any) -> DualTensor | None:
    """The dual of the highest level among the leaves of ``tree`` (None when there is none)."""
    top = None
    for leaf in _tree.flatten(tree)[0]:
        if type(leaf) is DualTensor and (top is None or leaf.level > top.level):
            top = leaf
    return top


def _lift(y0: Any, top: DualTensor | None) -> Any:
    """``y0`` as a constant dual of ``top``'s level, so user code sees a dual state throughout.

    Without this the first stage would call ``fun`` with a plain array next to dual
    parameters, which array-api-strict refuses in ``array op dual``.
    """
    if top is None or (type(y0) is DualTensor and y0.level >= top.level):
        return y0
    return _core._make(y0, None, top.level, 0, top._bxp)


def _axpy(y: Any, terms: Sequence[tuple[float, Any]]) -> Any:
    """``y + sum(c * k)`` over ``terms``, skipping zero coefficients; duals and arrays alike."""
    acc = None
    for c, k in terms:
        if c == 0.0:
            continue
        ck = k * c
        acc = ck if acc is None else ft.add(acc, ck)
    return y if acc is None else ft.add(y, acc)


def _stack(rows: list) -> Any:
    """Stack equally shaped arrays or duals along a new first (time) axis."""
    if any(type(r) is DualTensor for r in rows):
        return ft.stack(rows, axis=0)
    return _backend.namespace_of(rows[0]).stack(rows, axis=0)  # no duals: the backend's own


def _rms(xp: Any, a: Any) -> float:
    """Root mean square of a backend array as a Python float (one device sync)."""
    return float(xp.sqrt(xp.mean(a * a)))


def _primal_args(args: tuple) -> tuple:
    """``args`` with every dual replaced by its innermost primal (for step-size probes)."""
    return tuple(_tree.map_tree(_innermost, list(args)))


# --------------------------------------------------------------- validation
def _positive(name: str, value: Any, *, allow_inf: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a positive number, got {value!r}")
    v = float(value)
    if not v > 0 or (math.isinf(v) and not allow_inf) or math.isnan(v):
        raise ValueError(f"{name} must be a positive{'' if allow_inf else ', finite'} number, got {value!r}")
    return v


def _check_span(t_span: Any) -> tuple[float, float]:
    try:
        t0, t1 = (float(t) for t in t_span)
    except (TypeError, ValueError):
        raise TypeError(f"t_span must be a pair of numbers (t0, t1), got {t_span!r}") from None
    if not (math.isfinite(t0) and math.isfinite(t1)):
        raise ValueError(f"t_span must be finite, got ({t0}, {t1})")
    if not t1 > t0:
        raise ValueError(
            f"t_span must be increasing (t0 < t1), got ({t0}, {t1}); backward integration is "
            "not supported: substitute s = -t in fun instead"
        )
    return t0, t1


def _check_t_eval(t_eval: Any, t0: float, t1: float) -> list[float] | None:
    if t_eval is None:
        return None
    if _backend.is_array(t_eval):
        t_eval = _backend.namespace_of(t_eval).reshape(t_eval, (-1,))
        t_eval = [float(t_eval[i]) for i in range(t_eval.shape[0])]
    ts = [float(t) for t in t_eval]
    if not ts:
        raise ValueError("t_eval is empty; give at least one time in t_span, or None")
    tol = 1e-12 * max(abs(t0), abs(t1), 1.0)
    for a, b in zip(ts, ts[1:]):
        if not b > a:
            raise ValueError(f"t_eval must be strictly increasing, but {b} follows {a}")
    if not (ts[0] >= t0 - tol and ts[-1] <= t1 + tol):
        raise ValueError(f"t_eval must lie within t_span ({t0}, {t1}); got values from {ts[0]} to {ts[-1]}")
    return [min(max(t, t0), t1) for t in ts]


def _check_y0(y0: Any) -> Any:
    if type(y0) is not DualTensor and not _backend.is_array(y0):
        y0 = _backend.as_array(y0)
    inner = _innermost(y0)
    if not _backend.namespace_of(inner).isdtype(inner.dtype, "real floating"):
        raise TypeError(f"y0 must have a real floating dtype, got {inner.dtype}; cast it with astype")
    return y0


def _checked_call(fun: Callable, t: float, y: Any, args: tuple, shape: tuple) -> Any:
    """``fun(t, y, *args)``, checked to return an array of the state's shape."""
    k = fun(t, y, *args)
    if type(k) is not DualTensor and not _backend.is_array(k):
        raise TypeError(f"fun must return an array of the state's shape {shape}, got {type(k).__name__}")
    if tuple(k.shape) != shape:
        raise ValueError(f"fun returned shape {tuple(k.shape)} at t={t} but the state has shape {shape}")
    return k


# -------------------------------------------------------------------- solve
def solve(
    fun: Callable,
    t_span: tuple[float, float],
    y0: Any,
    *,
    args: tuple = (),
    method: str = "RK45",
    t_eval: Any = None,
    step: float | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-9,
    first_step: float | None = None,
    max_step: float = math.inf,
    max_steps: int = 100_000,
) -> Solution:
    """Integrate ``dy/dt = fun(t, y, *args)`` from ``t_span[0]`` to ``t_span[1]``.

    Args:
        fun: the right-hand side; receives ``t`` as a Python float and ``y`` of ``y0``'s
            shape (a dual when differentiating) and returns an array of the same shape.
        t_span: ``(t0, t1)`` with ``t0 < t1``.
        y0: the initial state, an array of any shape (or a dual).
        args: extra arguments for ``fun``; duals among them are differentiated.
        method: ``"RK45"`` (adaptive Dormand-Prince 5(4)) or ``"RK4"`` (classical
            fourth order with a fixed ``step``).
        t_eval: times at which to store the solution. RK45 interpolates between its own
            steps with the fourth-order continuous extension of Dormand-Prince (so
            ``t_eval`` does not change the steps); RK4 splits each interval
            between consecutive times into equal steps of at most ``step``. ``None``
            stores every step.
        step: RK4's step size (required, positive).
        rtol: RK45's relative tolerance on the local error.
        atol: RK45's absolute tolerance on the local error.
        first_step: RK45's initial step (chosen automatically when ``None``).
        max_step: RK45's largest step.
        max_steps: a bound on the number of steps (accepted and rejected).

    Returns:
        A ``Solution`` with ``t`` of shape ``(T,)`` and ``y`` of shape ``(T, *y0.shape)``.

    Examples:
        >>> import numpy as np, fwdtensor as ft
        >>> from fwdtensor.ode import solve
        >>> decay = lambda t, y, k: -k * y
        >>> dy_dk = ft.jacfwd(lambda k: solve(decay, (0.0, 1.0), np.ones(1), args=(k,)).y[-1, 0])
        >>> round(float(dy_dk(np.asarray(0.5))), 5)  # d/dk exp(-k) = -exp(-0.5) at k = 0.5
        -0.60653
    """
    if not callable(fun):
        raise TypeError(f"fun must be callable, got {type(fun).__name__}")
    m = str(method).upper()
    if m not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    t0, t1 = _check_span(t_span)
    ts = _check_t_eval(t_eval, t0, t1)
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps <= 0:
        raise ValueError(f"max_steps must be a positive integer, got {max_steps!r}")
    if not isinstance(args, tuple):
        raise TypeError(f"args must be a tuple of extra arguments for fun, got {type(args).__name__}")
    y0 = _lift(_check_y0(y0), _top_dual(args))
    if m == "RK4":
        if step is None:
            raise ValueError("method='RK4' needs a fixed step size: pass step=h with h > 0")
        h = _positive("step", step)
        return _rk4(fun, t0, t1, y0, args, h, ts, max_steps)
    if step is not None:
        raise ValueError(
            "step is the fixed step of method='RK4'; RK45 chooses its own (see first_step, max_step)"
        )
    rtol = _positive("rtol", rtol)
    atol = _positive("atol", atol)
    max_step = _positive("max_step", max_step, allow_inf=True)
    if first_step is not None:
        first_step = min(_positive("first_step", first_step), t1 - t0)
    return _rk45(fun, t0, t1, y0, args, ts, rtol, atol, first_step, max_step, max_steps)


def _finish(t_out: list[float], y_out: list, method: str, nfev: int, nsteps: int, nrej: int) -> Solution:
    y = _stack(y_out)
    inner = _innermost(y)
    xp = _backend.namespace_of(inner)
    t = xp.asarray(t_out, dtype=inner.dtype, device=array_api_compat.device(inner))
    return Solution(t=t, y=y, method=method, nfev=nfev, nsteps=nsteps, nrejected=nrej)


def _check_finite_output(y: Any, t_out: list[float], method: str) -> None:
    inner = _innermost(y)
    xp = _backend.namespace_of(inner)
    flat = xp.reshape(xp.isfinite(inner), (inner.shape[0], -1))
    ok = xp.all(flat, axis=1)
    if not bool(xp.all(ok)):
        i = next(i for i in range(len(t_out)) if not bool(ok[i]))
        raise FloatingPointError(
            f"{method}: the solution is not finite at t={t_out[i]} (overflow or a non-finite "
            "value from fun); use a smaller step or check the model"
        )


# --------------------------------------------------------------------- RK4
def _rk4_step(fun: Callable, t: float, y: Any, h: float, args: tuple, shape: tuple) -> Any:
    k1 = _checked_call(fun, t, y, args, shape)
    k2 = _checked_call(fun, t + h / 2, _axpy(y, [(h / 2, k1)]), args, shape)
    k3 = _checked_call(fun, t + h / 2, _axpy(y, [(h / 2, k2)]), args, shape)
    k4 = _checked_call(fun, t + h, _axpy(y, [(h, k3)]), args, shape)
    return _axpy(y, [(h / 6, k1), (h / 3, k2), (h / 3, k3), (h / 6, k4)])


def _rk4(
    fun: Callable, t0: float, t1: float, y0: Any, args: tuple, h: float, ts: Any, max_steps: int
) -> Solution:
    shape = tuple(y0.shape)
    if ts is None:  # equal steps of at most h, every one stored
        n = max(1, math.ceil((t1 - t0) / h - 1e-9))
        if n > max_steps:
            raise ValueError(f"step={h} needs {n} steps, more than max_steps={max_steps}")
        ts = [t0 + (t1 - t0) * i / n for i in range(n + 1)]
    t, y = t0, y0
    t_out, y_out = [], []
    nsteps = 0
    for te in ts:
        n = math.ceil((te - t) / h - 1e-9) if te > t else 0  # equal sub-steps of at most h
        if nsteps + n > max_steps:
            raise ValueError(f"step={h} needs more than max_steps={max_steps} steps to reach t={te}")
        for i in range(n):
            ti = t + (te - t) * i / n
            y = _rk4_step(fun, ti, y, (te - t) / n, args, shape)
        nsteps += n
        t = te
        t_out.append(te)
        y_out.append(y)
    sol = _finish(t_out, y_out, "RK4", 4 * nsteps, nsteps, 0)
    _check_finite_output(sol.y, t_out, "RK4")
    return sol


# -------------------------------------------------------------------- RK45
def _initial_step(fun: Callable, t0: float, y0: Any, f0: Any, args: tuple, rtol: float, atol: float) -> float:
    """Hairer, Norsett & Wanner's starting step (Solving ODEs I, II.4), from primals alone."""
    y, f = _innermost(y0), _innermost(f0)
    xp = _backend.namespace_of(y)
    scale = xp.abs(y) * rtol + atol
    d0, d1 = _rms(xp, y / scale), _rms(xp, f / scale)
    h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
    f1 = _innermost(fun(t0 + h0, y + f * h0, *_primal_args(args)))
    d2 = _rms(xp, (f1 - f) / scale) / h0
    h1 = max(1e-6, h0 * 1e-3) if max(d1, d2) <= 1e-15 else (0.01 / max(d1, d2)) ** (1 / 5)
    return min(100 * h0, h1)


def _dense(y: Any, y1: Any, ks: list, h: float, s: float) -> Any:
    """The solution at ``t + s*h`` from the continuous extension of the step (fourth order).

    Hairer & Wanner's form of the Dormand-Prince interpolant, expanded into one linear
    combination of ``y``, ``y1`` and the stages, so it costs a few axpys on duals.
    """
    u = 1.0 - s
    a, b, c = s * u, s * s * u, s * s * u * u
    terms = [(s - a + 2 * b, y1), (h * (a - b + c * _D[0]), ks[0]), (h * (c * _D[6] - b), ks[6])]
    terms += [(h * c * _D[i], ks[i]) for i in range(2, 6)]
    return _axpy(y * (1.0 - s + a - 2 * b), terms)


def _dp_stages(
    fun: Callable, t: float, y: Any, f0: Any, h: float, args: tuple, shape: tuple
) -> tuple[Any, list]:
    """One Dormand-Prince step: the fifth-order ``y_new`` and all seven stage slopes."""
    ks = [f0]
    for c, a in zip(_C[1:], _A[1:]):
        yi = _axpy(y, [(h * aij, k) for aij, k in zip(a, ks)])
        ks.append(_checked_call(fun, t + c * h, yi, args, shape))
    y_new = _axpy(y, [(h * b, k) for b, k in zip(_B, ks)])
    ks.append(_checked_call(fun, t + h, y_new, args, shape))
    return y_new, ks


def _error_norm(y: Any, y_new: Any, ks: list, h: float, rtol: float, atol: float) -> float:
    """RMS of the local error estimate over the tolerance scale, from primal values only."""
    yp, ynp = _innermost(y), _innermost(y_new)
    xp = _backend.namespace_of(yp)
    err = None
    for e, k in zip(_E, ks):
        if e != 0.0:
            term = _innermost(k) * (h * e)
            err = term if err is None else err + term
    scale = xp.maximum(xp.abs(yp), xp.abs(ynp)) * rtol + atol
    return _rms(xp, err / scale)


def _rk45(
    fun: Callable,
    t0: float,
    t1: float,
    y0: Any,
    args: tuple,
    ts: Any,
    rtol: float,
    atol: float,
    first_step: float | None,
    max_step: float,
    max_steps: int,
) -> Solution:
    shape = tuple(y0.shape)
    f0 = _checked_call(fun, t0, y0, args, shape)
    nfev = 1
    h = first_step
    if h is None:
        h = _initial_step(fun, t0, y0, f0, args, rtol, atol)
        nfev += 1
    h = min(h, max_step, t1 - t0)
    eps = float(_backend.namespace_of(_innermost(y0)).finfo(_innermost(y0).dtype).eps)
    t, y = t0, y0
    t_out, y_out = [], []
    pending = list(ts) if ts is not None else None
    if pending is None or pending[0] <= t0:
        t_out.append(t0)
        y_out.append(y0)
        if pending:
            pending.pop(0)
    nsteps = nrej = 0
    while t < t1:
        h_min = 10 * eps * max(abs(t), 1.0)
        rejected = False
        while True:
            if nsteps + nrej >= max_steps:
                raise RuntimeError(
                    f"RK45 reached max_steps={max_steps} at t={t} before t1={t1}; raise "
                    "max_steps, loosen rtol/atol, or check whether the problem is stiff"
                )
            h = min(h, max_step)
            t_new = t1 if t + h >= t1 - h_min else t + h
            h = t_new - t
            y_new, ks = _dp_stages(fun, t, y, f0, h, args, shape)
            nfev += 6
            en = _error_norm(y, y_new, ks, h, rtol, atol)
            if en <= 1.0:
                break
            nrej += 1
            rejected = True
            # a non-finite estimate (fun overflowed on this trial step) shrinks as far as allowed
            factor = _MIN_FACTOR if not math.isfinite(en) else max(_MIN_FACTOR, _SAFETY * en**-0.2)
            h *= factor
            if h < h_min:
                why = (
                    "fun returned non-finite values" if not math.isfinite(en) else "the error stays too large"
                )
                raise FloatingPointError(
                    f"RK45 step size fell below {h_min:.3g} at t={t}: {why}; the solution may blow up "
                    "there, or the problem is stiff"
                )
        nsteps += 1
        if pending is None:
            t_out.append(t_new)
            y_out.append(y_new)
        else:
            while pending and pending[0] <= t_new:
                te = pending.pop(0)
                s = (te - t) / h
                t_out.append(te)
                y_out.append(y_new if s >= 1.0 else _dense(y, y_new, ks, h, s))
        factor = _MAX_FACTOR if en == 0 else min(_MAX_FACTOR, _SAFETY * en**-0.2)
        h *= min(factor, 1.0) if rejected else factor  # no growth right after a rejection
        t, y, f0 = t_new, y_new, ks[-1]
    return _finish(t_out, y_out, "RK45", nfev, nsteps, nrej)
