"""Generate docs/kinks.md: derivatives at kinks, zeros, infinities and NaN, from the rules.

    python tools/gen_kinks.py           # write docs/kinks.md
    python tools/gen_kinks.py --check   # exit 1 if it is stale

Each row is a function at one special point, the derivative fwdtensor computes there
(``ft.jvp`` in float64 on NumPy, one partial at a time, the other operand a constant),
the convention it is meant to give (written below, checked by tests/test_kinks.py), and,
where JAX is installed, what ``jax.jvp`` gives for the same partial, with a short reason
where the two differ. The JAX column is regenerated only with the JAX version the page
names; the fwdtensor column always.
"""

from __future__ import annotations

import math
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's fwdtensor, not an installed one
PAGE = ROOT / "docs" / "kinks.md"
JAX_VERSION = "0.10.2"  # the JAX whose values the page shows
NAN, INF = math.nan, math.inf


@dataclass(frozen=True)
class Point:
    """One derivative at one special point: ``fn`` along ``direction`` at ``args``."""

    fn: str  # the namespace function (``"maximum"``, ``"linalg.vector_norm"``)
    args: tuple  # the point: numbers or tuples (1-D arrays)
    direction: tuple  # the tangent of each argument (0 for a constant)
    want: Any  # the convention: the expected derivative (a number or a tuple)
    why: str = ""  # why JAX differs, where it does
    kw: tuple = ()  # keyword arguments, as pairs


def _u(fn: str, x: float, want: Any, why: str = "") -> Point:
    return Point(fn, (x,), (1.0,), want, why)


def _b(fn: str, x1: float, x2: float, which: int, want: Any, why: str = "") -> Point:
    return Point(fn, (x1, x2), (1.0, 0.0) if which == 0 else (0.0, 1.0), want, why)


_ABS0 = "JAX takes the slope of abs at 0 from the right (1); fwdtensor uses the mean subgradient 0"
_NANWHY = "JAX does not give NaN here"

POINTS: tuple[Point, ...] = (
    # one argument: kinks and the edges of the domain
    _u("abs", 0.0, 0.0, _ABS0),
    _u("abs", -INF, -1.0),
    _u("abs", INF, 1.0),
    _u("abs", NAN, NAN, "JAX's select picks the negative branch for NaN; fwdtensor keeps NaN in, NaN out"),
    _u("sign", 0.0, 0.0),
    _u("sqrt", 0.0, INF),
    _u("sqrt", INF, 0.0),
    _u("sqrt", NAN, NAN),
    _u("log", 0.0, INF),
    _u("log", INF, 0.0),
    _u("log1p", -1.0, INF),
    _u("log2", 0.0, INF),
    _u("log10", 0.0, INF),
    _u("exp", -INF, 0.0),
    _u("exp", INF, INF),
    _u("exp", NAN, NAN),
    _u("expm1", -INF, 0.0),
    _u("acos", 1.0, -INF),
    _u("acos", -1.0, -INF),
    _u("asin", 1.0, INF),
    _u("atanh", 1.0, INF),
    _u("acosh", 1.0, INF),
    _u("atan", INF, 0.0),
    _u("tanh", INF, 0.0),
    _u("reciprocal", 0.0, -INF),
    _u("reciprocal", INF, -0.0),
    _u("square", INF, INF),
    _u("floor", 1.0, 0.0),
    _u("ceil", 1.0, 0.0),
    _u("round", 0.5, 0.0),
    _u("trunc", 1.0, 0.0),
    # two arguments
    _b("maximum", 1.0, 1.0, 0, 0.5),
    _b("maximum", 1.0, 1.0, 1, 0.5),
    _b("maximum", NAN, 1.0, 0, NAN, _NANWHY),
    _b("maximum", NAN, 1.0, 1, NAN, _NANWHY),
    _b("minimum", 1.0, 1.0, 0, 0.5),
    _b("minimum", NAN, 1.0, 1, NAN, _NANWHY),
    _b("hypot", 0.0, 0.0, 0, 0.0, "JAX divides 0 by 0 there"),
    _b("hypot", INF, 1.0, 0, 1.0, "JAX gives 0; the limit of x1 / hypot(x1, x2) as x1 grows is 1"),
    _b("hypot", INF, 1.0, 1, 0.0),
    _b("hypot", NAN, INF, 1, NAN, _NANWHY),
    _b("copysign", 0.0, 1.0, 0, 0.0, "JAX gives copysign the slope of abs at 0 from the right"),
    _b("copysign", 0.0, -1.0, 0, 0.0, "JAX gives copysign the slope of abs at 0 from the right"),
    _b("copysign", 2.0, 0.0, 1, 0.0),
    _b("logaddexp", -INF, -INF, 0, 0.5, "JAX computes exp(-inf - (-inf)) = NaN; fwdtensor splits the tie"),
    _b("logaddexp", INF, INF, 0, 0.5, "JAX gives a tie of infinities wholly to x1; fwdtensor splits it"),
    _b("logaddexp", INF, 1.0, 0, 1.0),
    _b("logaddexp", INF, 1.0, 1, 0.0, "JAX's exp(x2 - max) loses the infinite max: the limit is 0"),
    _b("logaddexp", NAN, NAN, 0, NAN),
    _b("pow", 0.0, 0.0, 0, 0.0, "JAX computes 0 * 0 ** -1; x ** 0 = 1 is constant, so fwdtensor gives 0"),
    _b("pow", 0.0, 0.0, 1, 0.0),
    _b("pow", 0.0, 1.0, 0, 1.0),
    _b("pow", 0.0, 2.0, 0, 0.0),
    _b("pow", 0.0, 0.5, 0, INF),
    _b("pow", 0.0, 2.0, 1, 0.0),
    _b("pow", -1.0, 2.0, 1, NAN),
    Point("pow", (0.0, 0.0), (1.0, 1.0), 0.0, "x ** x at 0: JAX adds log(0) * 0 ** 0 = -inf"),
    _b("atan2", 0.0, 0.0, 0, NAN),
    _b("atan2", 0.0, 0.0, 1, NAN),
    _b("divide", 1.0, 0.0, 0, INF),
    _b("remainder", 3.0, 1.5, 1, -2.0),
    _b("nextafter", 1.0, 2.0, 0, 0.0),
    # clip and the reductions: ties split the tangent evenly
    Point("clip", (1.0, 1.0, 2.0), (1.0, 0.0, 0.0), 0.5, kw=()),
    Point("clip", (1.0, 1.0, 2.0), (0.0, 1.0, 0.0), 0.5),
    Point("clip", (2.0, 1.0, 2.0), (1.0, 0.0, 0.0), 0.5),
    Point("clip", (NAN, 1.0, 2.0), (1.0, 0.0, 0.0), NAN, _NANWHY),
    Point("max", ((1.0, 1.0, 0.0),), ((1.0, 0.0, 0.0),), 0.5),
    Point("min", ((1.0, 1.0, 2.0),), ((0.0, 1.0, 0.0),), 0.5),
    Point("max", ((NAN, 1.0),), ((0.0, 1.0),), NAN, _NANWHY),
    Point(
        "sort",
        ((1.0, 1.0),),
        ((1.0, 0.0),),
        (1.0, 0.0),
        "ties keep their order (a stable sort): the tangents are permuted as the values are",
    ),
    Point("linalg.vector_norm", ((0.0, 0.0),), ((1.0, 0.0),), 0.0, "JAX's 2-norm at 0 is NaN"),
    Point("std", ((1.0, 1.0),), ((1.0, 0.0),), 0.0, "JAX's std at a constant input is NaN"),
)


def _label(p: Point) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, tuple):
            return "[" + ", ".join(fmt(x) for x in v) + "]"
        return _num(v)

    args = ", ".join(fmt(a) for a in p.args)
    wrt = [i for i, d in enumerate(p.direction) if d != 0 and not isinstance(d, tuple)]
    if all(isinstance(d, tuple) for d in p.direction):
        along = " along " + ", ".join(fmt(d) for d in p.direction)
    elif len(p.args) == 1:
        along = ""
    elif len(wrt) == len(p.args):
        along = " along the diagonal"
    else:
        along = f", d/dx{wrt[0] + 1}" if p.fn != "clip" else ", d/d" + ("x", "min", "max")[wrt[0]]
    return f"`{p.fn}({args})`{along}"


def _num(v: Any) -> str:
    if isinstance(v, tuple):
        return "[" + ", ".join(_num(x) for x in v) + "]"
    v = float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == 0:
        return "-0" if math.copysign(1.0, v) < 0 else "0"
    return f"{v:g}"


def _same(a: Any, b: Any) -> bool:
    """Equal numbers (NaN equals NaN, -0 equals 0), elementwise for tuples."""
    if isinstance(a, tuple) or isinstance(b, tuple):
        a, b = tuple(a) if isinstance(a, tuple) else (a,), tuple(b) if isinstance(b, tuple) else (b,)
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    a, b = float(a), float(b)
    return (math.isnan(a) and math.isnan(b)) or a == b or abs(a - b) <= 1e-12 * max(1.0, abs(b))


def _call(mod: Any, p: Point, xs: list) -> Any:
    fn = mod
    for part in p.fn.split("."):
        fn = getattr(fn, part)
    if p.fn == "clip":
        return fn(xs[0], xs[1], xs[2])
    return fn(*xs, **dict(p.kw))


def fwdtensor_value(p: Point) -> Any:
    """The derivative fwdtensor computes at ``p`` (float64 NumPy)."""
    import numpy as np

    import fwdtensor as ft

    xs = [np.asarray(a, dtype=np.float64) for a in p.args]
    ts = [np.asarray(d, dtype=np.float64) for d in p.direction]
    idx = [i for i, d in enumerate(p.direction) if np.any(ts[i] != 0)]

    def f(*vary: Any) -> Any:
        full = list(xs)
        for i, v in zip(idx, vary):
            full[i] = v
        return _call(ft, p, full)

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        _, t = ft.jvp(f, tuple(xs[i] for i in idx), tuple(ts[i] for i in idx))
    t = np.asarray(t)
    return tuple(float(v) for v in t) if t.ndim else float(t)


def jax_value(p: Point) -> Any:
    """What ``jax.jvp`` gives at ``p`` (float64), or None where JAX has no such function."""
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    xs = [jnp.asarray(a, dtype=jnp.float64) for a in p.args]
    ts = [jnp.asarray(d, dtype=jnp.float64) for d in p.direction]
    idx = [i for i, d in enumerate(p.direction) if bool(jnp.any(ts[i] != 0))]
    mod = jnp
    if p.fn == "std":
        mod = type("M", (), {"std": staticmethod(jnp.std)})
    elif p.fn == "linalg.vector_norm":
        mod = type("M", (), {"linalg": type("L", (), {"vector_norm": staticmethod(jnp.linalg.vector_norm)})})

    def f(*vary: Any) -> Any:
        full = list(xs)
        for i, v in zip(idx, vary):
            full[i] = v
        return _call(mod, p, full)

    try:
        _, t = jax.jvp(f, tuple(xs[i] for i in idx), tuple(ts[i] for i in idx))
    except (AttributeError, TypeError, NotImplementedError):
        return None
    import numpy as np

    t = np.asarray(t)
    return tuple(float(v) for v in t) if t.ndim else float(t)


def _jax_available() -> str | None:
    try:
        import jax
    except ImportError:
        return None
    return jax.__version__


def render(with_jax: bool | None = None) -> str:
    """The page's text; with JAX's column when JAX is installed at ``JAX_VERSION``."""
    if with_jax is None:
        with_jax = _jax_available() == JAX_VERSION
    lines = [
        "# Derivatives at kinks, zeros, infinities and NaN",
        "",
        "<!-- generated by tools/gen_kinks.py from the rules; tests/test_kinks.py checks it -->",
        "",
        "Where a function has no derivative in the textbook sense (a kink such as `abs` at 0,",
        "a tie of `maximum`, an infinite slope, an infinite or NaN input), fwdtensor still",
        "returns a number, chosen by a stated convention:",
        "",
        "* **Kinks take the mean of the one-sided slopes** (the minimum-norm subgradient):",
        "  `abs'(0) = 0`, `sign'(0) = 0`, the 2-norm and `std` have slope 0 at 0, and ties of",
        "  `maximum`, `minimum`, `clip`, `max` and `min` split the tangent evenly.",
        "* **Limits where they exist:** an infinite slope is `inf` (`sqrt` at 0), a slope that",
        "  tends to a number at an infinite input is that number (`hypot`, `logaddexp`).",
        "* **NaN in, NaN out:** a NaN input gives a NaN tangent, also for `maximum`, `minimum`,",
        "  `clip`, `hypot` and `logaddexp` (`hypot(inf, nan)` is `inf`, its tangent NaN).",
        "* **No derivative at all:** NaN (`pow` in x2 at a negative base, `atan2` at the origin).",
        "* **Piecewise-constant functions** (`floor`, `round`, `sign` of a real number...) have",
        "  slope 0, also at their jumps.",
        "",
        "JAX chooses the same in most places, but not everywhere: the last column of the table",
        f"says where JAX {JAX_VERSION} (`jax.jvp`, float64) differs and why.",
        "",
        "## Linear algebra",
        "",
        "* `eigh`, `eigvalsh` and `cholesky` read the lower triangle of their input (`cholesky`",
        "  with `upper=True` the upper one) and the real part of its diagonal, as the backends",
        "  do; their tangents read a direction the same way, so they are exact along any",
        "  direction, symmetric or not (JAX symmetrises, `(dA + dA^H) / 2`: the same along",
        "  symmetric directions).",
        "* Repeated eigenvalues (singular values): the values get the derivative of their",
        "  cluster's mean; the vectors of a cluster are not unique and their tangents are NaN.",
        "* `det` has the derivative `tr(adj(A) dA)` everywhere, singular matrices included (the",
        "  adjugate comes from an SVD). `slogdet` at a singular matrix (log|det| = -inf) has no",
        "  derivative: the tangent of log|det| is NaN there, the sign's 0. `qr` of a",
        "  rank-deficient matrix (a diagonal entry of R within rounding of 0): Q past the rank",
        "  is not unique, so that matrix's tangents of Q and R are NaN. These are NaN, not",
        "  errors, because deciding would move data to the host; `ft.set_debug_nans(True)`",
        "  raises at the first such NaN.",
        "* `svd(full_matrices=True)` of a non-square matrix and `qr(mode='complete')` of a tall",
        "  one: the extra columns `Q2` only complete the unique `Q1` to an orthonormal basis. Their",
        "  tangent is `-Q1 (dQ1^H Q2)`, the derivative of the completion that does not rotate",
        "  within its own span (`[Q1 Q2]` stays orthonormal to first order); the zero rows of a",
        "  complete `R` have tangent 0. `svdvals` is unaffected.",
        "* `pinv` and `matrix_rank`: `rtol` only sets the cut-off of the rank, so a dual `rtol`",
        "  counts by its value (its derivative is 0 wherever the rank does not change).",
        "* Zero-size matrices and empty stacks give empty (or constant: `det` of a 0x0 matrix",
        "  is 1) results with zero tangents.",
        "* Mixed precision: a tangent always has its primal's dtype; a float32 dual meeting a",
        "  float64 array gives a float64 result and a float64 tangent.",
        "",
        "## Elementwise functions and reductions",
        "",
        f"| function and point | fwdtensor | JAX {JAX_VERSION} | where JAX differs |",
        "|---|---|---|---|",
    ]
    for p in POINTS:
        value = fwdtensor_value(p)
        ours = _num(value)
        if with_jax:
            jv = jax_value(p)
            theirs = "n/a" if jv is None else _num(jv)
            differ = jv is not None and not _same(jv, value)
            why = p.why if differ else ""
            if differ and not why:
                raise RuntimeError(f"{_label(p)}: JAX gives {_num(jv)}, fwdtensor differs; say why in POINTS")
        else:
            theirs, why = "(not generated)", ""
        lines.append(f"| {_label(p)} | {ours} | {theirs} | {why} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        stale = not PAGE.exists() or PAGE.read_text() != text
        print("docs/kinks.md is stale" if stale else "docs/kinks.md is current")
        return int(stale)
    PAGE.write_text(text)
    print(f"wrote {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
