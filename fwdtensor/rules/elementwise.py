"""Elementwise functions of the standard: one row per function.

A derivative may be written in terms of the input ``x`` or, where cheaper, the output
``y``. Complex inputs get the R-linear pushforward (the JAX convention): for holomorphic
functions that is ``f'(x) * t``; ``abs``, ``real``, ``imag`` and ``conj`` have their own rows.
Inside a rule, operations between two arrays go through ``xp`` (never an operator with a
plain array on the left), so that the same rule runs on lower-level duals.
"""

from __future__ import annotations

import cmath
import math
from typing import Any

from ..core.dual import add_into, expand
from ._forms import MINUS_ONE, ONE, DivBy, Rule, binary, custom, nondiff, unary, zero

LN2 = math.log(2.0)
LN10 = math.log(10.0)
_SCALAR = (int, float, complex)


def _is_complex(xp: Any, x: Any) -> bool:
    return xp.isdtype(x.dtype, "complex floating")


def _abs_jvp(xp: Any, x: Any, y: Any, t: Any) -> Any:
    # Real: sign(x) * t, so the slope at 0 is 0 (JAX). Complex: Re(conj(x) t) / |x|, 0 at 0.
    if not _is_complex(xp, x):
        return xp.multiply(t, xp.sign(x)[None, ...])
    safe = xp.where(xp.equal(y, 0), xp.ones_like(y), y)
    u = xp.divide(xp.conj(x), safe)
    return xp.real(xp.multiply(t, u[None, ...]))


def _real_jvp(xp: Any, x: Any, y: Any, t: Any) -> Any:
    return xp.real(t) if _is_complex(xp, x) else t


def _imag_jvp(xp: Any, x: Any, y: Any, t: Any) -> Any:
    return xp.imag(t) if _is_complex(xp, x) else None


def _conj_jvp(xp: Any, x: Any, y: Any, t: Any) -> Any:
    return xp.conj(t) if _is_complex(xp, x) else t


def _sign_jvp(xp: Any, x: Any, y: Any, t: Any) -> Any:
    # Real: zero slope (JAX). Complex: sign(z) = z/|z| turns with z, so its derivative is
    # i*Im(conj(s) t)/|z| * s (the exact R-linear pushforward; JAX returns 0 here).
    if not _is_complex(xp, x):
        return None
    r = xp.abs(x)
    safe = xp.where(xp.equal(r, 0), xp.ones_like(r), r)
    rot = xp.imag(xp.multiply(t, xp.conj(y)[None, ...]))
    return xp.multiply(rot * 1j, xp.divide(y, safe)[None, ...])


def _cos_d(xp: Any, x: Any, y: Any) -> Any:
    d = xp.sin(x)
    return xp.negative(d)


def _balanced(xp: Any, x1: Any, x2: Any, y: Any) -> Any:
    # d maximum(x1, x2) / d x1: 1 where x1 wins, 1/2 at ties (JAX splits ties evenly);
    # NaN where the result is NaN (NaN in, NaN out; neither operand "wins" a comparison then).
    win = xp.astype(xp.greater(x1, x2), y.dtype)
    tie = xp.astype(xp.equal(x1, x2), y.dtype)
    return xp.where(xp.isnan(y), math.nan, win + 0.5 * tie)


def _pow_d1(xp: Any, x1: Any, x2: Any, y: Any) -> Any:
    # x2 * x1 ** (x2 - 1), defined as 0 where x2 == 0 so that 0 ** 0 has slope 0 (JAX).
    if isinstance(x2, _SCALAR):
        if x2 == 0:
            return None
        if x2 == 1:
            return ONE
        if x2 == 2:
            return 2 * x1
        return x2 * xp.pow(x1, x2 - 1)
    d = xp.multiply(x2, xp.pow(x1, x2 - 1))
    return xp.where(xp.equal(x2, 0), xp.zeros_like(d), d)


def _pow_d2(xp: Any, x1: Any, x2: Any, y: Any) -> Any:
    # log(x1) * y, defined as 0 where x1 == 0 (the limit from the right; JAX does the same).
    if isinstance(x1, _SCALAR):
        if x1 == 0:
            return None
        if isinstance(x1, complex) or (x1 < 0 and _is_complex(xp, y)):
            return y * cmath.log(x1)
        # a negative real base: x1 ** x2 is NaN for every non-integer x2 near any point, so
        # there is no derivative in x2: NaN, as the array path's log(x1 < 0) gives.
        return y * (math.log(x1) if x1 > 0 else math.nan)
    zero_base = xp.equal(x1, 0)
    safe = xp.where(zero_base, xp.ones_like(x1), x1)
    return xp.multiply(xp.log(safe), y)


def _copysign_d1(xp: Any, x1: Any, x2: Any, y: Any) -> Any:
    # copysign(x1, x2) = +-|x1|: slope sign(x1) * (-1 if x2 is negative else 1); 0 at x1 == 0.
    s = xp.sign(x1)
    if isinstance(x2, _SCALAR):
        return -s if math.copysign(1.0, x2) < 0 else s
    return xp.where(xp.signbit(x2), -s, s)


def _symmetric(d: Any) -> tuple:
    """The two partials of a function symmetric in its arguments from the first one:
    d/dx2 f(x1, x2) is d/dx1 f(x2, x1)."""
    return d, lambda xp, a, b, y: d(xp, b, a, y)


def _hypot_d(xp: Any, a: Any, b: Any, y: Any) -> Any:
    # a / hypot, defined as 0 where both inputs are 0 (no direction is preferred there);
    # where an input is infinite, sign(a) for an infinite a and 0 for a finite one (the
    # limit of a / hypot), instead of inf / inf; NaN where either input is NaN (hypot(inf,
    # nan) is inf by IEEE, but NaN in, NaN out holds for tangents).
    safe = xp.where(xp.equal(y, 0), xp.ones_like(y), y)
    d = xp.divide(a, safe)
    if isinstance(a, _SCALAR):
        d = xp.where(xp.isinf(y), math.copysign(1.0, a) if math.isinf(a) else 0.0, d)
        d = d if a == a else d * math.nan
    else:
        d = xp.where(xp.isinf(y), xp.where(xp.isinf(a), xp.sign(a), xp.zeros_like(d)), d)
        d = xp.where(xp.isnan(a), math.nan, d)
    if isinstance(b, _SCALAR):
        return d if b == b else d * math.nan
    return xp.where(xp.isnan(b), math.nan, d)


def _divide_jvp(xp: Any, a: Any, b: Any, y: Any, ta: Any, tb: Any) -> Any:
    # (ta - y tb) / b: three passes over the tangents instead of five
    return xp.divide(xp.subtract(ta, xp.multiply(tb, expand(y))), expand(b))


def _neg(xp: Any, a: Any) -> Any:
    return -a if isinstance(a, _SCALAR) else xp.negative(a)


def _atan2_d1(xp: Any, x1: Any, x2: Any, y: Any) -> Any:
    return xp.divide(x2, xp.add(x1 * x1, x2 * x2))


def _atan2_d2(xp: Any, x1: Any, x2: Any, y: Any) -> Any:
    return xp.divide(_neg(xp, x1), xp.add(x1 * x1, x2 * x2))


def _logaddexp_d(xp: Any, a: Any, b: Any, y: Any) -> Any:
    # exp(a - y). Where y is infinite, a - y is inf - inf: the limit is 1 where a alone is
    # the infinite maximum, 1/2 where both are (the even split of maximum), 0 where a is
    # finite. A NaN input keeps its NaN (NaN in, NaN out).
    d = xp.exp(xp.subtract(a, y))
    inf = xp.isinf(y)
    a_top = (y == a) if isinstance(a, _SCALAR) else xp.equal(a, y)
    b_top = (y == b) if isinstance(b, _SCALAR) else xp.equal(b, y)
    lim = xp.astype(a_top, d.dtype) * (1.0 - 0.5 * xp.astype(b_top, d.dtype))
    return xp.where(inf, lim, d)


def _clip_jvp(xp: Any, primals: list, tangents: list) -> tuple:
    # clip = minimum(maximum(x, min), max), so kinks split ties evenly, as JAX does.
    x, lo, hi = primals
    tx, tlo, thi = tangents
    y = xp.clip(x, lo, hi)
    m = x if lo is None else xp.maximum(x, lo)
    tm = tx
    if lo is not None:
        dx = _balanced(xp, x, lo, m)
        tm = None if tx is None else xp.multiply(tx, dx[None, ...])
        if tlo is not None:
            tl = xp.multiply(tlo, (1 - dx)[None, ...])
            tm = tl if tm is None else xp.add(tm, tl)
    t = tm
    if hi is not None:
        dm = _balanced(xp, xp.negative(m), _neg(xp, hi), y)
        t = None if tm is None else xp.multiply(tm, dm[None, ...])
        if thi is not None:
            th = xp.multiply(thi, (1 - dm)[None, ...])
            t = th if t is None else xp.add(t, th)
    if t is not None and t.shape[1:] != y.shape:
        t = xp.broadcast_to(t, (t.shape[0], *y.shape))
    if t is not None and t.dtype != y.dtype:  # a bound of another precision: the tangent follows y
        t = xp.astype(t, y.dtype)
    return y, t


def _clip_primal(xp: Any, x: Any, lo: Any = None, hi: Any = None) -> Any:
    return xp.clip(x, lo, hi)


RULES: tuple[Rule, ...] = (
    # one argument ---------------------------------------------------------------------
    unary("abs", jvp=_abs_jvp, note="slope 0 at 0 (JAX); complex: Re(conj(x) t)/|x|"),
    unary("acos", lambda xp, x, y: -1 / xp.sqrt(1 - x * x), domain="unit"),
    unary("acosh", lambda xp, x, y: 1 / xp.multiply(xp.sqrt(x - 1), xp.sqrt(x + 1)), domain="gt1"),
    unary("asin", lambda xp, x, y: 1 / xp.sqrt(1 - x * x), domain="unit"),
    unary("asinh", lambda xp, x, y: 1 / xp.sqrt(x * x + 1)),
    unary("atan", lambda xp, x, y: 1 / (x * x + 1)),
    unary("atanh", lambda xp, x, y: 1 / (1 - x * x), domain="unit"),
    unary("conj", jvp=_conj_jvp),
    unary("cos", _cos_d),
    unary("cosh", lambda xp, x, y: xp.sinh(x)),
    unary("exp", lambda xp, x, y: y),
    unary("expm1", lambda xp, x, y: y + 1),
    unary("imag", jvp=_imag_jvp, dtypes="complex"),
    unary("log", lambda xp, x, y: DivBy(x), domain="positive"),
    unary("log1p", lambda xp, x, y: DivBy(x + 1), domain="gtm1"),
    unary("log2", lambda xp, x, y: DivBy(x * LN2), domain="positive"),
    unary("log10", lambda xp, x, y: DivBy(x * LN10), domain="positive"),
    unary("negative", lambda xp, x, y: MINUS_ONE),
    unary("positive", lambda xp, x, y: ONE),
    unary("real", jvp=_real_jvp),
    unary("reciprocal", lambda xp, x, y: -(y * y), domain="nonzero"),
    unary("sin", lambda xp, x, y: xp.cos(x)),
    unary("sinh", lambda xp, x, y: xp.cosh(x)),
    unary("sqrt", lambda xp, x, y: 0.5 / y, domain="positive", note="infinite slope at 0"),
    unary("square", lambda xp, x, y: 2 * x),
    unary("tan", lambda xp, x, y: 1 + y * y, domain="tan"),
    unary("tanh", lambda xp, x, y: 1 - y * y),
    zero("ceil", dtypes="real"),
    zero("floor", dtypes="real"),
    zero("round", note="zero slope (JAX)"),
    unary(
        "sign",
        jvp=_sign_jvp,
        domain="nonzero",
        note="real: zero slope (JAX); complex: exact derivative of z/|z|",
    ),
    zero("trunc", dtypes="real"),
    nondiff("signbit", dtypes="real"),
    nondiff("isfinite"),
    nondiff("isinf"),
    nondiff("isnan"),
    nondiff("logical_not", dtypes="bool"),
    nondiff("bitwise_invert", dtypes="int"),
    # two arguments --------------------------------------------------------------------
    # add, subtract, multiply also give the tangent for two dual operands as one expression
    # (jvp=...), which skips the per-partial dispatch in the hottest operations.
    binary(
        "add",
        lambda xp, a, b, y: ONE,
        lambda xp, a, b, y: ONE,
        jvp=lambda xp, a, b, y, ta, tb: xp.add(ta, tb),
    ),
    binary(
        "subtract",
        lambda xp, a, b, y: ONE,
        lambda xp, a, b, y: MINUS_ONE,
        jvp=lambda xp, a, b, y, ta, tb: xp.subtract(ta, tb),
    ),
    binary(
        "multiply",
        lambda xp, a, b, y: b,
        lambda xp, a, b, y: a,
        jvp=lambda xp, a, b, y, ta, tb: add_into(xp, xp.multiply(ta, expand(b)), xp.multiply(tb, expand(a))),
    ),
    binary(
        "divide",
        lambda xp, a, b, y: DivBy(b),
        lambda xp, a, b, y: xp.negative(xp.divide(y, b)),
        jvp=_divide_jvp,
        domain="nonzero2",
    ),
    binary(
        "pow",
        _pow_d1,
        _pow_d2,
        domain="pow",
        note="slope in x1 is 0 where x2 == 0; in x2 is 0 where x1 == 0 (JAX), NaN where x1 < 0",
    ),
    binary(
        "remainder",
        lambda xp, a, b, y: ONE,
        lambda xp, a, b, y: xp.negative(xp.floor_divide(a, b)),
        domain="nonzero2",
        dtypes="real",
        note="d/dx2 = -floor(x1/x2); jumps where x1/x2 is an integer",
    ),
    binary("atan2", _atan2_d1, _atan2_d2, dtypes="real"),
    binary(
        "copysign", _copysign_d1, lambda xp, a, b, y: None, dtypes="real", note="slope 0 at x1 == 0, as abs"
    ),
    binary(
        "hypot",
        *_symmetric(_hypot_d),
        dtypes="real",
        note="slope 0 at (0, 0); at an infinite input the limit (1 or 0); NaN in, NaN out",
    ),
    binary(
        "logaddexp",
        *_symmetric(_logaddexp_d),
        dtypes="real",
        note="infinite inputs: the limit (ties split evenly); NaN in, NaN out",
    ),
    binary(
        "maximum",
        *_symmetric(_balanced),
        dtypes="real",
        note="ties split the tangent evenly (JAX); NaN in, NaN out",
    ),
    binary(
        "minimum",
        *_symmetric(lambda xp, a, b, y: _balanced(xp, _neg(xp, a), _neg(xp, b), y)),
        dtypes="real",
        note="ties split the tangent evenly (JAX); NaN in, NaN out",
    ),
    zero("floor_divide", "binary", dtypes="real", domain="nonzero2"),
    zero("nextafter", "binary", dtypes="real", note="zero slope: the result is x1 moved by one ulp"),
    custom(
        "clip",
        lambda xp, primals, tangents: _clip_jvp(xp, primals, tangents),
        f=_clip_primal,
        args=("x", "min", "max"),
        dtypes="real",
        note="minimum(maximum(x, min), max): ties at the bounds split evenly (JAX); NaN in, NaN out",
    ),
    *(
        nondiff(n, "binary", dtypes="any")
        for n in ("equal", "not_equal", "less", "less_equal", "greater", "greater_equal")
    ),
    *(nondiff(n, "binary", dtypes="bool") for n in ("logical_and", "logical_or", "logical_xor")),
    *(
        nondiff(n, "binary", dtypes="int")
        for n in ("bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_left_shift", "bitwise_right_shift")
    ),
)
