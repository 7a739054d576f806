"""The five shapes a derivative rule takes, each with a constructor that reads as one line.

- ``unary``/``binary``: elementwise; the rule gives the partial derivative(s) as a function
  of ``(xp, x, y)`` or ``(xp, x1, x2, y)`` and the core multiplies by the tangent.
- ``linear``: the function applied to the tangent (``sum``, ``reshape``, ``fft``); the
  rule's tangent function receives the tangent with its leading batch axis.
- ``zero``: floating result, zero derivative (``floor``, ``sign``): a constant.
- ``nondiff``: integer or boolean result (comparisons, ``argmax``): a constant of the
  namespace, a dual with tangent None, so the namespace stays closed.
- ``custom``: the whole ``(xp, primals, tangents, **params) -> (out, tangent_out)`` form.

Tangents inside a rule always carry the batch axis first; ``None`` is a symbolic zero.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..core.dual import MINUS_ONE, ONE, DivBy

__all__ = ["Rule", "unary", "binary", "linear", "zero", "nondiff", "custom", "ONE", "MINUS_ONE", "DivBy"]


def resolve(xp: Any, name: str) -> Callable:
    """The function ``name`` (``"sin"``, ``"linalg.solve"``) of the namespace ``xp``."""
    if "." in name:
        ext, fn = name.split(".")
        return getattr(getattr(xp, ext), fn)
    return getattr(xp, name)


@dataclass(frozen=True, eq=False)
class Rule:
    """One function of the standard and how its tangent is pushed forward."""

    name: str
    form: str  # "unary" | "binary" | "general": how the namespace calls it
    kind: str  # "diff" | "zero" | "nondiff"
    f: Callable  # the primal: f(xp, *arrays, **params)
    d: Callable | None = None  # unary: derivative (xp, x, y) -> array | scalar | marker
    jvp: Callable | None = None  # unary: (xp, x, y, t) -> t_out; general: full form
    d1: Callable | None = None  # binary: partial in x1 (xp, x1, x2, y)
    d2: Callable | None = None  # binary: partial in x2
    args: tuple[str, ...] = ("x",)  # names of the arguments that may be arrays or duals
    params: tuple[str, ...] = ()  # names of the other arguments, in positional order
    seq: bool = False  # True when the first argument is a sequence of arrays (concat)
    domain: str = "real"  # where the tests draw inputs: see tests/_domains.py
    dtypes: str = "float"  # "float" (real and complex), "real", "complex", "int", "bool", "any"
    note: str = ""  # convention at kinks, shown in the coverage table
    meta: dict = field(default_factory=dict)  # anything else the tests may need
    cache: dict = field(default_factory=dict, repr=False)  # backend function per namespace


def _primal(name: str) -> Callable:
    if "." in name:
        return lambda xp, *a, **k: resolve(xp, name)(*a, **k)
    return lambda xp, *a, **k: getattr(xp, name)(*a, **k)


def _primal1(name: str) -> Callable:
    return lambda xp, x: getattr(xp, name)(x)


def _primal2(name: str) -> Callable:
    return lambda xp, x1, x2: getattr(xp, name)(x1, x2)


def unary(name: str, d: Callable | None = None, *, jvp: Callable | None = None, **kw: Any) -> Rule:
    """Elementwise ``y = f(x)`` with ``dy = d(xp, x, y) * dx`` (or a full ``jvp(xp, x, y, t)``).

    ``d`` returns ``x``, ``y``, a scalar, a marker, or a new array that the core may
    overwrite (it multiplies the tangent into it in place); never an array kept elsewhere.
    """
    return Rule(name, "unary", "diff", _primal1(name), d=d, jvp=jvp, **kw)


def binary(name: str, d1: Callable, d2: Callable, **kw: Any) -> Rule:
    """Elementwise ``y = f(x1, x2)`` with one partial derivative per operand.

    An optional ``jvp=(xp, x1, x2, y, t1, t2) -> t`` gives the tangent when both operands
    carry one, as one expression (fewer passes and calls than two partials and a sum).
    """
    return Rule(name, "binary", "diff", _primal2(name), d1=d1, d2=d2, args=("x1", "x2"), **kw)


def zero(name: str, form: str = "unary", **kw: Any) -> Rule:
    """A floating result whose derivative is zero everywhere it exists."""
    f = {"unary": _primal1, "binary": _primal2}.get(form, _primal)(name)
    kw.setdefault("args", ("x1", "x2") if form == "binary" else ("x",))
    return Rule(name, form, "zero", f, **kw)


def nondiff(name: str, form: str = "unary", **kw: Any) -> Rule:
    """An integer or boolean result: a constant of the namespace (tangent None), never a tangent."""
    f = {"unary": _primal1, "binary": _primal2}.get(form, _primal)(name)
    kw.setdefault("args", ("x1", "x2") if form == "binary" else ("x",))
    return Rule(name, form, "nondiff", f, **kw)


def linear(name: str, tangent: Callable, **kw: Any) -> Rule:
    """A function linear in its one array argument: the tangent goes through ``tangent``.

    ``tangent(xp, t, **params)`` gets the tangent with its leading batch axis and must
    shift axis-like parameters by one.
    """
    f = kw.pop("f", None) or _primal(name)

    def jvp(xp: Any, primals: list, tangents: list, **params: Any) -> tuple:
        return f(xp, *primals, **params), tangent(xp, tangents[0], **params)

    return Rule(name, "general", "diff", f, jvp=jvp, **kw)


def custom(name: str, jvp: Callable, **kw: Any) -> Rule:
    """The full form ``jvp(xp, primals, tangents, **params) -> (out, tangent_out)``."""
    f = kw.pop("f", None) or _primal(name)
    return Rule(name, "general", "diff", f, jvp=jvp, **kw)
