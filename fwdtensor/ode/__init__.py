"""ODE integration that differentiates: fixed-step RK4, adaptive Dormand-Prince (RK45), and
for stiff problems Rodas4 (Rosenbrock), variable-order BDF and ``method="auto"``.

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

The ends of ``t_span`` and the points of ``t_eval`` may be duals as well: the solver runs on
their primal values and adds ``f(tau, y(tau)) * dtau`` at each output time ``tau``, and
moves the initial state along ``-f(t0, y0) * dt0`` for a dual start time.

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

from ..core import backend as _backend
from ..core import dual as _core
from ..core import errors as _errors
from ..core import tree as _tree
from ..core.dual import DualTensor
from ._implicit import describe_state as _describe_state

__all__ = ["solve", "Solution", "METHODS"]

METHODS = ("RK45", "RK4", "Rodas4", "BDF", "auto")
STIFF_METHODS = ("Rodas4", "BDF")
_CANONICAL = {m.upper(): m for m in METHODS}

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
    njev: int = 0
    nlu: int = 0


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
        acc = ck if acc is None else _add(acc, ck)
    return y if acc is None else _add(y, acc)


def _add(a: Any, b: Any) -> Any:
    """``a + b``: through the namespace where a dual takes part, else the backend's own
    (the namespace would turn plain states into constants of fwdtensor)."""
    if type(a) is DualTensor or type(b) is DualTensor:
        return ft.add(a, b)
    return _backend.namespace_of(a).add(a, b)


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


def _nonfinite_stage(ks: list) -> int | None:
    """Index of the first stage slope whose primal has a NaN or an infinity (None if all finite)."""
    for i, k in enumerate(ks):
        inner = _innermost(k)
        xp = _backend.namespace_of(inner)
        if not bool(xp.all(xp.isfinite(inner))):
            return i
    return None


def _raise_nonfinite(
    method: str, t: float, y: Any, ks: list, i: int, nodes: Sequence[float], h: float
) -> None:
    inner = _innermost(ks[i])
    xp = _backend.namespace_of(inner)
    what = "NaN" if bool(xp.any(xp.isnan(inner))) else "an infinity"
    raise FloatingPointError(
        f"{method}: fun returned {what} at t={t + nodes[i] * h:.10g} (stage {i + 1} of the step from "
        f"t={t:.10g} with h={h:.3g}, state y={_describe_state(y)}); the model is not defined there or "
        "the solution blows up: check fun near this time and state"
    )


# ------------------------------------------------------------ dual times
# A dual end of t_span or a dual t_eval point moves the time at which the solution is read.
# The solver runs on the primal times; the derivative of the exact flow is added afterwards:
# d y(tau) / d tau = f(tau, y(tau)) at an output time tau, and a start time t0 moves the
# initial state along -f(t0, y0) (so d y(T) / d t0 = -Phi(T, t0) f(t0, y0) comes out of the
# state's own sensitivities). The offsets below are duals of primal zero carrying the times'
# tangents, so ``y + offset * f`` adds exactly the tangent f * dtau.
def _time_offset(t: Any) -> tuple[float, Any]:
    """A time as ``(primal float, offset)``: the offset is ``t - primal`` for a dual, else None."""
    if type(t) is not DualTensor:
        return float(t), None
    if tuple(t.shape) != ():
        raise ValueError(f"a time must be a scalar, got a dual of shape {tuple(t.shape)}")
    if type(t.primal) is DualTensor:
        raise _errors.NotDifferentiableError(
            "fwdtensor.ode: a time (t_span or t_eval) carries tangents at more than one level "
            "(a second derivative with respect to time); only first derivatives in time are "
            "supported: differentiate the solution with respect to a parameter that rescales "
            "time instead (solve dy/ds = T * fun(s * T, y) on s in (0, 1))"
        )
    p = float(t.primal)
    return p, ft.subtract(t, p)


def _split_times(t_eval: Any) -> tuple[Any, list | None]:
    """``t_eval`` as primal values plus per-point offsets (None when it carries no tangent)."""
    if t_eval is None or type(t_eval) is not DualTensor:
        return t_eval, None
    if type(t_eval.primal) is DualTensor:
        _time_offset(ft.reshape(t_eval, (-1,))[0])  # raises the nested-level error
    flat = ft.reshape(t_eval, (-1,))
    prim = _backend.namespace_of(t_eval.primal).reshape(t_eval.primal, (-1,))
    return prim, [ft.subtract(flat[i], float(prim[i])) for i in range(prim.shape[0])]


def _apply_time_offsets(sol: Solution, fun: Callable, args: tuple, offsets: list, method: str) -> Solution:
    """Add ``offset_i * fun(t_i, y_i)`` to each stored state and make ``t`` a dual."""
    shape = tuple(sol.y.shape[1:])
    inner_t = _innermost(sol.t)
    rows, times, nfev = [], [], sol.nfev
    for i, off in enumerate(offsets):
        yi = sol.y[i, ...]
        ti = float(inner_t[i])
        if off is not None:
            fi = _checked_call(fun, ti, yi, args, shape)
            nfev += 1
            yi = ft.add(yi, ft.multiply(fi, ft.astype(off, _innermost(fi).dtype)))
            times.append(ft.add(ft.astype(off, inner_t.dtype), ti))
        else:
            times.append(inner_t[i])
        rows.append(yi)
    t = ft.stack([ft.astype(x, inner_t.dtype) if type(x) is DualTensor else x for x in times], axis=0)
    return Solution(
        t=t,
        y=_stack(rows),
        method=method,
        nfev=nfev,
        nsteps=sol.nsteps,
        nrejected=sol.nrejected,
        njev=sol.njev,
        nlu=sol.nlu,
    )


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
    jac: Callable | None = None,
    jac_sparsity: Any = None,
) -> Solution:
    """Integrate ``dy/dt = fun(t, y, *args)`` from ``t_span[0]`` to ``t_span[1]``.

    Args:
        fun: the right-hand side; receives ``t`` as a Python float and ``y`` of ``y0``'s
            shape (a dual when differentiating) and returns an array of the same shape.
        t_span: ``(t0, t1)`` with ``t0 < t1``; either end may be a dual (a derivative in time).
        y0: the initial state, an array of any shape (or a dual).
        args: extra arguments for ``fun``; duals among them are differentiated.
        method: ``"RK45"`` (adaptive Dormand-Prince 5(4)), ``"RK4"`` (classical
            fourth order with a fixed ``step``), the stiff ``"Rodas4"`` (Rosenbrock) and
            ``"BDF"`` (variable order 1-5), or ``"auto"`` (RK45, switching to Rodas4 when
            it detects stiffness). See ``docs/ode.md``.
        t_eval: times at which to store the solution. RK45 interpolates between its own
            steps with the fourth-order continuous extension of Dormand-Prince (so
            ``t_eval`` does not change the steps); RK4 splits each interval
            between consecutive times into equal steps of at most ``step``. ``None``
            stores every step. A dual ``t_eval`` differentiates with respect to the times.
        step: RK4's step size (required, positive).
        rtol: the adaptive methods' relative tolerance on the local error.
        atol: the adaptive methods' absolute tolerance on the local error.
        first_step: the adaptive methods' initial step (chosen automatically when ``None``).
        max_step: the adaptive methods' largest step.
        max_steps: a bound on the number of steps (accepted and rejected).
        jac: the stiff methods' Jacobian ``jac(t, y, *args) -> (n, n)`` (default: forward
            mode of ``fun``).
        jac_sparsity: a boolean ``(n, n)`` pattern of the Jacobian; it is then computed by
            coloured sparse forward mode (``ft.sparse_jacfwd``, coloured once).

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
    m = _CANONICAL.get(str(method).upper())
    if m is None:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    try:
        (t0, off0), (t1, off1) = (_time_offset(t) for t in t_span)
    except (TypeError, ValueError) as e:
        if isinstance(e, _errors.FwdTensorError):
            raise
        raise TypeError(f"t_span must be a pair of numbers (t0, t1), got {t_span!r}") from None
    t0, t1 = _check_span((t0, t1))
    t_eval, eval_offsets = _split_times(t_eval)
    ts = _check_t_eval(t_eval, t0, t1)
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps <= 0:
        raise ValueError(f"max_steps must be a positive integer, got {max_steps!r}")
    if not isinstance(args, tuple):
        raise TypeError(f"args must be a tuple of extra arguments for fun, got {type(args).__name__}")
    y0 = _lift(_check_y0(y0), _top_dual([args, off0, off1, eval_offsets]))
    if off0 is not None:  # a later start reaches the same states from y0 - dt0 * f(t0, y0)
        f0 = _checked_call(fun, t0, y0, args, tuple(y0.shape))
        y0 = ft.subtract(y0, ft.multiply(f0, ft.astype(off0, _innermost(f0).dtype)))
    if m in ("RK45", "RK4") and (jac is not None or jac_sparsity is not None):
        raise ValueError(
            f"jac and jac_sparsity are for the stiff methods ({', '.join(STIFF_METHODS)}, 'auto')"
        )
    if jac is not None and not callable(jac):
        raise TypeError(f"jac must be a function jac(t, y, *args) -> (n, n) matrix, got {type(jac).__name__}")
    sol = _solve_primal_times(
        fun, m, t0, t1, y0, args, ts, step, rtol, atol, first_step, max_step, max_steps, (jac, jac_sparsity)
    )
    if off0 is None and off1 is None and eval_offsets is None:
        return sol
    n = sol.y.shape[0]
    if eval_offsets is not None:
        offsets = eval_offsets
    elif ts is not None:
        offsets = [None] * n
    elif m == "RK4":  # equal steps: t_i = t0 + (t1 - t0) * i / n moves with both ends
        last = max(n - 1, 1)
        offsets = [_mix(off0, 1.0 - i / last, off1, i / last) for i in range(n)]
    else:  # adaptive steps keep their lengths: every stored time moves with t0, the last with t1
        offsets = [off0] * (n - 1) + [off1]
    return _apply_time_offsets(sol, fun, args, offsets, sol.method)


def _mix(a: Any, wa: float, b: Any, wb: float) -> Any:
    """``wa * a + wb * b`` for offsets that may be None (zero)."""
    terms = [x * w for x, w in ((a, wa), (b, wb)) if x is not None and w != 0.0]
    if not terms:
        return None
    return terms[0] if len(terms) == 1 else ft.add(terms[0], terms[1])


def _solve_primal_times(
    fun: Callable,
    m: str,
    t0: float,
    t1: float,
    y0: Any,
    args: tuple,
    ts: Any,
    step: Any,
    rtol: float,
    atol: float,
    first_step: Any,
    max_step: float,
    max_steps: int,
    jacobian: tuple = (None, None),
) -> Solution:
    """Run the chosen method between primal times (the options are checked here)."""
    if m in STIFF_METHODS or m == "auto":
        if step is not None:
            raise ValueError(f"step is the fixed step of method='RK4'; {m} chooses its own")
        rtol, atol = _positive("rtol", rtol), _positive("atol", atol)
        max_step = _positive("max_step", max_step, allow_inf=True)
        if first_step is not None:
            first_step = min(_positive("first_step", first_step), t1 - t0)
        return _stiff(fun, m, t0, t1, y0, args, ts, rtol, atol, first_step, max_step, max_steps, jacobian)
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
    if not _core.carries_tangent(y):  # a right-hand side written with ft.* gives constants
        y = _core.bare(y)
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
    return _axpy(y, [(h / 6, k1), (h / 3, k2), (h / 3, k3), (h / 6, k4)]), [k1, k2, k3, k4]


def _all_finite(y: Any) -> bool:
    inner = _innermost(y)
    xp = _backend.namespace_of(inner)
    return bool(xp.all(xp.isfinite(inner)))


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
            y_prev = y
            y, ks = _rk4_step(fun, ti, y, (te - t) / n, args, shape)
            if not _all_finite(y):  # stop at the first step whose slopes or result are not finite
                bad = _nonfinite_stage(ks)
                if bad is not None:
                    _raise_nonfinite("RK4", ti, y_prev, ks, bad, (0.0, 0.5, 0.5, 1.0), (te - t) / n)
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
    detect_stiff: bool = False,
) -> Any:
    shape = tuple(y0.shape)
    f0 = _checked_call(fun, t0, y0, args, shape)
    stiff_run = nonstiff_run = 0
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
                    f"RK45 reached max_steps={max_steps} at t={t} before t1={t1}; if the problem is "
                    f"stiff (many rejected steps: {nrej} of {nsteps + nrej} here), use an implicit "
                    f"method: {', '.join(repr(s) for s in STIFF_METHODS)}, or method='auto'; "
                    "otherwise raise max_steps or loosen rtol/atol"
                )
            h = min(h, max_step)
            t_new = t1 if t + h >= t1 - h_min else t + h
            h = t_new - t
            y_new, ks = _dp_stages(fun, t, y, f0, h, args, shape)
            nfev += 6
            en = _error_norm(y, y_new, ks, h, rtol, atol)
            if en <= 1.0:
                break
            if not math.isfinite(en):  # a NaN or inf from fun: no smaller step can repair the model
                bad = _nonfinite_stage(ks)
                if bad is not None:
                    _raise_nonfinite("RK45", t, y, ks, bad, (*_C, 1.0), h)
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
        if detect_stiff:  # Hairer's test (DOPRI5): h * |lambda| near the stability boundary 3.25
            if _h_lambda(y, y_new, ks, h) > 3.25:
                stiff_run, nonstiff_run = stiff_run + 1, 0
                if stiff_run >= 15:
                    return _Switch(t_new, y_new, t_out, y_out, pending, nfev, nsteps, nrej)
            else:
                nonstiff_run += 1
                if nonstiff_run >= 6:
                    stiff_run = 0
        factor = _MAX_FACTOR if en == 0 else min(_MAX_FACTOR, _SAFETY * en**-0.2)
        h *= min(factor, 1.0) if rejected else factor  # no growth right after a rejection
        t, y, f0 = t_new, y_new, ks[-1]
    return _finish(t_out, y_out, "RK45", nfev, nsteps, nrej)


@dataclass
class _Switch:
    """Where ``method='auto'`` leaves RK45 for the stiff method, with what it stored so far."""

    t: float
    y: Any
    t_out: list
    y_out: list
    pending: list | None
    nfev: int
    nsteps: int
    nrejected: int


def _h_lambda(y: Any, y_new: Any, ks: list, h: float) -> float:
    """``h`` times an estimate of the dominant eigenvalue's size, from the last two stages."""
    yp = _innermost(y)
    xp = _backend.namespace_of(yp)
    y6 = yp
    for a, k in zip(_A[5], ks):
        y6 = y6 + _innermost(k) * (h * a)
    num = xp.sum((_innermost(ks[6]) - _innermost(ks[5])) ** 2)
    den = xp.sum((_innermost(y_new) - y6) ** 2)
    d = float(den)
    return 0.0 if d <= 0.0 else h * math.sqrt(float(num) / d)


# ------------------------------------------------------------------ stiff
def _stiff(
    fun: Callable,
    m: str,
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
    jacobian: tuple,
) -> Solution:
    """The implicit methods on the flattened state; ``auto`` starts with RK45 and switches."""
    from . import _bdf, _implicit, _rosenbrock

    shape = tuple(y0.shape)
    n = math.prod(shape)
    prob = _implicit.FlatProblem(fun, args, shape, jacobian[0], jacobian[1])
    t_out: list[float] = []
    y_out: list = []

    def out(t: float, y: Any) -> None:
        t_out.append(t)
        y_out.append(ft.reshape(y, shape) if shape != (n,) else y)

    nsteps = nrej = 0
    start, y_start, pending, used = t0, y0, ts, m
    if m == "auto":
        switch = _rk45(
            fun, t0, t1, y0, args, ts, rtol, atol, first_step, max_step, max_steps, detect_stiff=True
        )
        if isinstance(switch, Solution):
            return Solution(switch.t, switch.y, "auto(RK45)", switch.nfev, switch.nsteps, switch.nrejected)
        t_out, y_out = switch.t_out, switch.y_out
        start, y_start, pending = switch.t, switch.y, switch.pending
        nsteps, nrej, prob.nfev = switch.nsteps, switch.nrejected, switch.nfev
        first_step, used = None, "auto(RK45->Rodas4)"
    yf = ft.reshape(y_start, (n,)) if shape != (n,) else y_start
    if pending is None and t_out:  # the switch point is stored already
        t_out.pop(), y_out.pop()
    s, r = (_bdf if m == "BDF" else _rosenbrock).integrate(
        prob, start, t1, yf, pending, rtol, atol, first_step, max_step, max_steps - nsteps - nrej, out
    )
    sol = _finish(t_out, y_out, used, prob.nfev, nsteps + s, nrej + r)
    return Solution(sol.t, sol.y, sol.method, sol.nfev, sol.nsteps, sol.nrejected, prob.njev, prob.nlu)
