"""Rules for ``ft.special``: SciPy's special functions, their names and signatures, with the
derivative of each as one row of data.

The backend computes the values (``_special_backend.special_function``: ``scipy.special``,
``cupyx.scipy.special``, ``torch.special``, ...); a row gives the derivative in the form
that stays accurate where users need it, written with the namespace ``xp`` it receives, so
that a nested derivative (``xp`` is fwdtensor itself) differentiates the derivative again:
``digamma' = polygamma(1, .)``, ``polygamma(n, .)' = polygamma(n + 1, .)``.

Conventions (each also in the row's note):

* ``xlogy(0, y) = 0`` and ``xlog1py(0, y) = 0`` for every ``y`` (SciPy): along ``x = 0`` the
  function is constant, so the partial in ``y`` is 0 there; the partial in ``x`` is
  ``log(y)`` (``-inf`` at ``y = 0``, the slope of ``x log 0``).
* ``entr(0) = 0``: the derivative ``-(log x + 1)`` is ``+inf`` at 0 (the one-sided slope);
  ``rel_entr``/``kl_div`` likewise at ``x = 0``. Outside the domain (``x < 0``): NaN.
* ``sinc'(0) = 0``, ``i1'(0) = i1e'(0) = 1/2``; ``i0e' = i1e - sign(x) i0e`` (0 at 0, as
  ``sign`` gives).
* ``logsumexp``, ``softmax``, ``log_softmax``: tangents through the softmax weights, formed
  from ``exp(a - max a)`` (never ``exp(a)``, nor ``exp(a - logsumexp(a))``, which rounds
  ``a`` against the result), so ``x = 1000`` neither overflows nor loses digits; where the
  result is infinite the tangent is 0 (the value cannot move).
* Integer orders (``polygamma``'s ``n``) are not differentiated: a tangent there raises.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import array_api_compat

from ..core import dual as _core
from ..core import errors as _errors
from ..core.batch import align, shift_axes
from ..core.dual import DualTensor
from ..core.special_backend import special_function
from ._forms import Rule, custom

_SQRT_PI_2 = math.sqrt(math.pi) / 2
_TWO_SQRT_PI = 2 / math.sqrt(math.pi)
_SQRT_2PI = math.sqrt(2 * math.pi)


def _sp(xp: Any, name: str) -> Callable:
    return special_function(xp, name)


def _value(x: Any) -> Any:
    while type(x) is DualTensor:
        x = x.primal
    return x


def _as_array(xp: Any, s: Any, like: Any) -> Any:
    """A Python scalar operand as a 0-d array of ``like``'s dtype and device."""
    if isinstance(s, (int, float)):
        v = _value(like)
        return xp.asarray(s, dtype=like.dtype, device=array_api_compat.device(v))
    return s


# ------------------------------------------------------------------ row constructors
def _times(xp: Any, t: Any, d: Any) -> Any:
    """The tangent ``t`` (batch axis first) times the partial derivative ``d`` (an array)."""
    return xp.multiply(t, d[None, ...])


def _primal(name: str) -> Callable:
    return lambda xp, *a: _sp(xp, name)(*a)


def unary(name: str, d: Callable, *, domain: str = "real", note: str = "", **meta: Any) -> Rule:
    """``y = f(x)`` elementwise with ``dy = d(xp, x, y) * dx``."""
    f = _primal(name)

    def jvp(xp: Any, primals: list, tangents: list) -> tuple:
        x = primals[0]
        y = f(xp, x)
        return y, _times(xp, tangents[0], d(xp, x, y))

    meta["elementwise"] = 1
    return custom(
        "special." + name, jvp, f=f, args=("x",), domain=domain, dtypes="real", note=note, meta=meta
    )


def binary(
    name: str,
    d1: Callable | None,
    d2: Callable,
    *,
    args: tuple[str, str] = ("x", "y"),
    domain: str = "real",
    note: str = "",
    **meta: Any,
) -> Rule:
    """``y = f(x1, x2)`` elementwise (broadcasting) with one partial per operand; ``d1 = None``
    marks an integer first argument that is never differentiated (``polygamma``'s order)."""
    f = _primal(name)

    def jvp(xp: Any, primals: list, tangents: list) -> tuple:
        a, b = primals
        ta, tb = tangents
        if ta is not None and d1 is None:
            raise _errors.integer_argument(f"ft.special.{name}", args[0])
        if d1 is not None:
            a, b = _as_array(xp, a, b), _as_array(xp, b, a)
        y = f(xp, a, b)
        nd = y.ndim
        t = None if ta is None else _times(xp, align(xp, ta, nd), d1(xp, a, b, y))
        if tb is not None:
            t2 = _times(xp, align(xp, tb, nd), d2(xp, a, b, y))
            t = t2 if t is None else xp.add(t, t2)
        if t.shape[1:] != y.shape:
            t = xp.broadcast_to(t, (t.shape[0], *y.shape))
        return y, t

    meta["elementwise"] = 2
    return custom("special." + name, jvp, f=f, args=args, domain=domain, dtypes="real", note=note, meta=meta)


# ------------------------------------------------------------------ derivatives
def _where0(xp: Any, x: Any, at0: float, v: Callable) -> Any:
    """``v(x)`` except ``at0`` where ``x == 0`` (``v`` evaluated away from 0 only)."""
    zero = _value(x) == 0
    safe = xp.where(zero, 1.0, x)
    return xp.where(zero, at0, v(safe))


def _d_expit(xp: Any, x: Any, y: Any) -> Any:
    # expit(x) expit(-x) = e / (1 + e)^2 with e = exp(-|x|): no 1 - y cancellation for large x
    e = xp.exp(-xp.abs(x))
    return e / ((e + 1.0) * (e + 1.0))


def _d_log_expit(xp: Any, x: Any, y: Any) -> Any:
    # expit(-x) = 1 - expit(x), computed without the cancellation: e / (1 + e) or 1 / (1 + e)
    e = xp.exp(-xp.abs(x))
    return xp.where(_value(x) >= 0, e, 1.0) / (e + 1.0)


def _d_i1(xp: Any, x: Any, y: Any) -> Any:
    return _where0(xp, x, 0.5, lambda s: _sp(xp, "i0")(s) - _sp(xp, "i1")(s) / s)


def _d_i1e(xp: Any, x: Any, y: Any) -> Any:
    i1e = _sp(xp, "i1e")
    return _where0(xp, x, 0.5, lambda s: _sp(xp, "i0e")(s) - i1e(s) / s - xp.sign(s) * i1e(s))


def _d_sinc(xp: Any, x: Any, y: Any) -> Any:
    # (cos(pi x) - sinc(x)) / x cancels near 0 (relative error ~ 3 eps / z^2, z = pi x): for
    # |z| < 0.2 the series pi sum_k (-1)^k 2k z^(2k-1) / (2k+1)!, five terms (truncation < 1e-15)
    z = x * math.pi
    zz = z * z
    c = (-1 / 3, 1 / 30, -1 / 840, 1 / 45360, -1 / 3991680)
    series = z * (c[0] + zz * (c[1] + zz * (c[2] + zz * (c[3] + zz * c[4])))) * math.pi
    small = xp.abs(_value(x)) < 0.2 / math.pi
    safe = xp.where(small, 1.0, x)
    return xp.where(small, series, (xp.cos(safe * math.pi) - xp.where(small, 1.0, y)) / safe)


def _d_log_ndtr(xp: Any, x: Any, y: Any) -> Any:
    # phi(x) / Phi(x): for x < 0 as sqrt(2/pi) / erfcx(-x/sqrt(2)), exact deep in the left tail
    # (exp(-x^2/2 - log_ndtr(x)) loses |x|^2 eps there); for x >= 0 that form is exact
    neg = _value(x) < 0
    tail = _sp(xp, "erfcx")(xp.where(neg, x, -1.0) * -math.sqrt(0.5))
    xr, yr = xp.where(neg, 0.0, x), xp.where(neg, 0.0, y)  # each branch evaluated where it is used
    return xp.where(neg, math.sqrt(2 / math.pi) / tail, xp.exp(xr * xr * -0.5 - yr) / _SQRT_2PI)


def _d_erfcx(xp: Any, x: Any, y: Any) -> Any:
    # 2 x erfcx(x) - 2/sqrt(pi) cancels for large x (both terms near 2/sqrt(pi)); there its
    # series -(1/sqrt(pi)) (1/x^2 - 3/(2 x^4) + 15/(4 x^6) - 105/(8 x^8) + 945/(16 x^10)),
    # whose truncation is below 4e-15 (relative) for x > 50
    big = _value(x) > 50.0
    w = 1.0 / (xp.where(big, x, 50.0) ** 2)
    series = w * (1.0 + w * (-1.5 + w * (3.75 + w * (-13.125 + w * 59.0625)))) * (-1.0 / math.sqrt(math.pi))
    return xp.where(big, series, 2.0 * x * y - _TWO_SQRT_PI)


def _d_gamma(xp: Any, x: Any, y: Any) -> Any:
    return y * _sp(xp, "digamma")(x)


def _d_betaln(which: int) -> Callable:
    def d(xp: Any, a: Any, b: Any, y: Any) -> Any:
        psi_ab = _sp(xp, "digamma")(xp.add(a, b))
        return xp.subtract(_sp(xp, "digamma")(a if which == 0 else b), psi_ab)

    return d


def _d_y_times_x_over(xp: Any, x: Any, y: Any, shift: float) -> Any:
    """``x / (y + shift)``, 0 where ``x == 0`` (SciPy's ``xlogy(0, y) = 0`` for every y)."""
    zero = _value(x) == 0
    return xp.where(zero, 0.0, xp.divide(x, xp.where(zero, 1.0, y + shift)))


# ------------------------------------------------------------------ logsumexp, softmax
def _axes(axis: Any, ndim: int) -> tuple:
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, tuple) else (axis,)
    return tuple(a % ndim if ndim else a for a in axes)


def _reduced_shape(shape: tuple, axes: tuple) -> tuple:
    return tuple(n for i, n in enumerate(shape) if i not in axes)


def _lse_parts(xp: Any, a: Any, b: Any, axis: Any) -> tuple[Any, Any, Any]:
    """``log|s|`` with kept dims, ``e = exp(a - max a)`` and ``s = sum(b e)``."""
    m = xp.max(a, axis=axis, keepdims=True)
    m = xp.where(xp.isfinite(_value(m)), m, 0.0)  # all -inf (or an inf): no shift
    e = xp.exp(a - m)  # a - max(a) is exact where it matters (nearby values)
    s = xp.sum(e if b is None else xp.multiply(b, e), axis=axis, keepdims=True)
    return xp.add(xp.log(xp.abs(s)), m), e, s


def _lse_out(xp: Any, out: Any, s: Any, shape: tuple, b: Any, keepdims: bool, return_sign: bool) -> Any:
    """The result SciPy returns from ``log|s|`` with kept dims: reshaped, signed or NaN."""
    sign = xp.sign(s)
    if not keepdims:
        out, sign = xp.reshape(out, shape), xp.reshape(sign, shape)
    if return_sign:
        return out, sign
    if b is not None:  # a negative sum has no real logarithm (SciPy: NaN)
        out = xp.where(_value(sign) < 0, math.nan, out)
    return out


def _lse_broadcast(xp: Any, a: Any, b: Any, ta: Any = None, tb: Any = None) -> tuple:
    """``a`` and the weights ``b`` (and their tangents) broadcast to one shape, as SciPy does."""
    if b is None:
        return a, b, ta, tb
    b = _as_array(xp, b, a)
    if tuple(a.shape) == tuple(b.shape):
        return a, b, ta, tb
    a, b = xp.broadcast_arrays(a, b)
    nd = a.ndim
    ta, tb = (
        None if t is None else xp.broadcast_to(align(xp, t, nd), (t.shape[0], *a.shape)) for t in (ta, tb)
    )
    return a, b, ta, tb


def _lse_f(
    xp: Any, a: Any, b: Any = None, *, axis: Any = None, keepdims: bool = False, return_sign: bool = False
) -> Any:
    a, b, _, _ = _lse_broadcast(xp, a, b)
    out, _, s = _lse_parts(xp, a, b, axis)
    shape = _reduced_shape(tuple(a.shape), _axes(axis, a.ndim))
    return _lse_out(xp, out, s, shape, b, keepdims, return_sign)


def _lse_jvp(
    xp: Any,
    primals: list,
    tangents: list,
    *,
    axis: Any = None,
    keepdims: bool = False,
    return_sign: bool = False,
) -> tuple:
    a, b, ta, tb = _lse_broadcast(xp, *primals, *tangents)
    out_k, e, s = _lse_parts(xp, a, b, axis)
    # d log|s| = ds / s = sum(e (b da + db)) / s with e = exp(a - max a): no overflow, and no
    # rounding of log(s) in the weights (exp(a - logsumexp(a)) would lose |a| eps)
    nd = a.ndim
    u = None if ta is None else align(xp, ta, nd)
    if u is not None and b is not None:
        u = xp.multiply(u, b[None, ...] if b.ndim else b)
    if tb is not None:
        tb = align(xp, tb, nd)
        u = tb if u is None else xp.add(u, tb)
    u = xp.multiply(u, e[None, ...])
    t = xp.sum(u, axis=shift_axes(None if axis is None else _axes(axis, nd), nd), keepdims=True)
    finite = xp.isfinite(_value(out_k))
    t = xp.where(finite[None, ...], xp.divide(t, xp.where(finite, s, 1.0)[None, ...]), 0.0)
    shape = _reduced_shape(tuple(a.shape), _axes(axis, nd))
    out = _lse_out(xp, out_k, s, shape, b, keepdims, return_sign)
    t = xp.reshape(t, (t.shape[0], *(out_k.shape if keepdims else shape)))
    return out, ((t, None) if return_sign else t)


def _softmax_f(xp: Any, x: Any, axis: Any = None) -> Any:
    m = xp.max(x, axis=axis, keepdims=True)
    e = xp.exp(x - m)
    return e / xp.sum(e, axis=axis, keepdims=True)


def _softmax_jvp(xp: Any, primals: list, tangents: list, axis: Any = None) -> tuple:
    x, t = primals[0], tangents[0]
    y = _softmax_f(xp, x, axis)
    yt = xp.multiply(t, y[None, ...])
    s = xp.sum(yt, axis=shift_axes(axis, x.ndim), keepdims=True)
    return y, xp.subtract(yt, xp.multiply(s, y[None, ...]))  # y (t - sum(y t))


def _log_softmax_f(xp: Any, x: Any, axis: Any = None) -> Any:
    m = xp.max(x, axis=axis, keepdims=True)
    m = xp.where(xp.isfinite(_value(m)), m, 0.0)
    z = x - m  # (x - max) - log(sum): never rounds x against a large logsumexp
    return z - xp.log(xp.sum(xp.exp(z), axis=axis, keepdims=True))


def _log_softmax_jvp(xp: Any, primals: list, tangents: list, axis: Any = None) -> tuple:
    x, t = primals[0], tangents[0]
    y = _log_softmax_f(xp, x, axis)
    s = xp.sum(xp.multiply(t, xp.exp(y)[None, ...]), axis=shift_axes(axis, x.ndim), keepdims=True)
    return y, xp.subtract(t, s)  # t - sum(softmax(x) t)


def logsumexp(
    a: Any, axis: Any = None, b: Any = None, keepdims: bool = False, return_sign: bool = False
) -> Any:
    """``log(sum(b * exp(a)))`` over ``axis``, computed stably (SciPy's signature and meaning)."""
    params = {"axis": axis, "keepdims": keepdims, "return_sign": return_sign}
    return _core.apply(_LOGSUMEXP, (a, b), params)


_LOGSUMEXP = custom(
    "special.logsumexp",
    _lse_jvp,
    f=_lse_f,
    args=("a", "b"),
    params=("axis", "keepdims", "return_sign"),
    note="tangent sum(e (b da + db)) / sum(b e), e = exp(a - max a): no overflow; 0 where infinite",
    meta={"function": logsumexp, "reduction": True},
)

# ------------------------------------------------------------------ the table
_EXP_X2 = lambda xp, x, y: xp.exp(-x * x)  # shared by erf and erfc

RULES: tuple[Rule, ...] = (
    unary("erf", lambda xp, x, y: _EXP_X2(xp, x, y) * _TWO_SQRT_PI, note="d/dx = 2/sqrt(pi) exp(-x^2)"),
    unary("erfc", lambda xp, x, y: _EXP_X2(xp, x, y) * -_TWO_SQRT_PI, note="d/dx = -2/sqrt(pi) exp(-x^2)"),
    unary("erfcx", _d_erfcx, note="d/dx = 2 x erfcx(x) - 2/sqrt(pi); its asymptotic series for x > 50"),
    unary(
        "erfinv",
        lambda xp, x, y: xp.exp(y * y) * _SQRT_PI_2,
        domain="unit",
        note="d/dx = sqrt(pi)/2 exp(y^2), y = erfinv(x)",
    ),
    unary(
        "erfcinv",
        lambda xp, x, y: xp.exp(y * y) * -_SQRT_PI_2,
        domain="erfc",
        note="d/dx = -sqrt(pi)/2 exp(y^2), y = erfcinv(x)",
    ),
    unary("expit", _d_expit, note="d/dx = exp(-|x|) / (1 + exp(-|x|))^2: accurate for large |x|"),
    unary("logit", lambda xp, x, y: 1.0 / (x * (1.0 - x)), domain="prob", note="d/dx = 1 / (x (1 - x))"),
    unary("log_expit", _d_log_expit, note="d/dx = expit(-x), without the 1 - expit(x) cancellation"),
    unary("gammaln", lambda xp, x, y: _sp(xp, "digamma")(x), domain="positive", note="d/dx = digamma(x)"),
    unary(
        "digamma",
        lambda xp, x, y: _sp(xp, "polygamma")(1, x),
        domain="positive",
        note="d/dx = polygamma(1, x)",
    ),
    unary(
        "psi",
        lambda xp, x, y: _sp(xp, "polygamma")(1, x),
        domain="positive",
        note="alias of digamma; d/dx = polygamma(1, x)",
    ),
    binary(
        "polygamma",
        None,
        lambda xp, n, x, y: _sp(xp, "polygamma")(n + 1, x),
        args=("n", "x"),
        domain="polygamma",
        note="d/dx = polygamma(n + 1, x); the order n is an integer constant: a tangent there raises",
    ),
    unary("gamma", _d_gamma, domain="positive", note="d/dx = gamma(x) digamma(x)"),
    binary(
        "xlogy",
        lambda xp, x, y, r: xp.log(y),
        lambda xp, x, y, r: _d_y_times_x_over(xp, x, y, 0.0),
        domain="xlogy",
        note="xlogy(0, y) = 0 (SciPy): d/dy is 0 on x = 0; d/dx = log(y), -inf at y = 0",
    ),
    binary(
        "xlog1py",
        lambda xp, x, y, r: xp.log1p(y),
        lambda xp, x, y, r: _d_y_times_x_over(xp, x, y, 1.0),
        domain="xlogy",
        note="xlog1py(0, y) = 0 (SciPy): d/dy is 0 on x = 0; d/dx = log1p(y)",
    ),
    unary(
        "entr",
        lambda xp, x, y: -(xp.log(x) + 1.0),
        domain="positive",
        note="d/dx = -(log(x) + 1); +inf at 0 (the one-sided slope); NaN for x < 0",
    ),
    binary(
        "rel_entr",
        lambda xp, x, y, r: xp.log(xp.divide(x, y)) + 1.0,
        lambda xp, x, y, r: -xp.divide(x, y),
        domain="positive",
        note="d/dx = log(x/y) + 1 (-inf at x = 0: the one-sided slope), d/dy = -x/y",
    ),
    binary(
        "kl_div",
        lambda xp, x, y, r: xp.log(xp.divide(x, y)),
        lambda xp, x, y, r: 1.0 - xp.divide(x, y),
        domain="positive",
        note="d/dx = log(x/y), d/dy = 1 - x/y",
    ),
    unary("ndtr", lambda xp, x, y: xp.exp(x * x * -0.5) / _SQRT_2PI, note="d/dx = exp(-x^2/2) / sqrt(2 pi)"),
    unary(
        "log_ndtr",
        _d_log_ndtr,
        note="d/dx = exp(-x^2/2 - log_ndtr(x)) / sqrt(2 pi); for x < 0 sqrt(2/pi) / erfcx(-x/sqrt(2))",
    ),
    unary(
        "ndtri",
        lambda xp, x, y: xp.exp(y * y * 0.5) * _SQRT_2PI,
        domain="prob",
        note="d/dx = sqrt(2 pi) exp(y^2/2), y = ndtri(x)",
    ),
    unary("i0", lambda xp, x, y: _sp(xp, "i1")(x), note="d/dx = i1(x)"),
    unary("i0e", lambda xp, x, y: _sp(xp, "i1e")(x) - xp.sign(x) * y, note="d/dx = i1e(x) - sign(x) i0e(x)"),
    unary("i1", _d_i1, note="d/dx = i0(x) - i1(x)/x; 1/2 at 0"),
    unary("i1e", _d_i1e, note="d/dx = i0e(x) - i1e(x)/x - sign(x) i1e(x); 1/2 at 0"),
    unary("sinc", _d_sinc, note="d/dx = (cos(pi x) - sinc(x)) / x; a series near 0, where it is 0 at 0"),
    binary(
        "betaln",
        _d_betaln(0),
        _d_betaln(1),
        args=("a", "b"),
        domain="positive",
        note="d/da = digamma(a) - digamma(a + b), likewise d/db",
    ),
    _LOGSUMEXP,
    custom(
        "special.softmax",
        _softmax_jvp,
        f=_softmax_f,
        params=("axis",),
        note="tangent y (t - sum(y t)), y = softmax(x): no overflow",
        meta={"reduction": True},
    ),
    custom(
        "special.log_softmax",
        _log_softmax_jvp,
        f=_log_softmax_f,
        params=("axis",),
        note="tangent t - sum(softmax(x) t): no overflow",
        meta={"reduction": True},
    ),
)
