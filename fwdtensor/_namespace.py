"""Turn the rule tables into the functions of the Array API namespace.

Each function accepts duals, plain arrays and Python scalars where the standard does;
with no dual among its inputs it returns exactly what the backend returns.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import _core
from .rules import ALL_RULES
from .rules._forms import Rule


def _function(rule: Rule) -> Callable:
    if rule.form == "unary":
        unary = _core.unary

        def fn(x: Any, /) -> Any:
            return unary(rule, x)

    elif rule.form == "binary":
        binary = _core.binary

        def fn(x1: Any, x2: Any, /) -> Any:  # type: ignore[misc]
            return binary(rule, x1, x2)

    else:
        fn = _general(rule)
    name = rule.name.rsplit(".", 1)[-1]
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"Array API ``{rule.name}`` on duals and arrays. {rule.note}".strip()
    fn.rule = rule  # type: ignore[attr-defined]
    return fn


def _general(rule: Rule) -> Callable:
    apply = _core.apply
    names, params, seq = rule.args, rule.params, rule.seq
    varargs = names == ("*arrays",)
    n = len(names)

    def fn(*args: Any, **kwargs: Any) -> Any:
        if seq:
            arrays, rest = tuple(args[0]), args[1:]
        elif varargs:
            arrays, rest = args, ()
        else:
            arrays, rest = args[:n], args[n:]
            if len(arrays) < n:
                arrays = arrays + tuple(kwargs.pop(k, None) for k in names[len(arrays) :])
        if rest:
            if len(rest) > len(params):
                raise TypeError(f"{rule.name}() takes at most {n + len(params)} positional arguments")
            kwargs.update(zip(params, rest))
        return apply(rule, arrays, kwargs)

    return fn


def build(prefix: str = "") -> dict[str, Callable]:
    """The namespace functions whose rule names start with ``prefix`` (``""`` or ``"linalg."``)."""
    out = {}
    for rule in ALL_RULES:
        if prefix:
            if rule.name.startswith(prefix):
                out[rule.name[len(prefix) :]] = _function(rule)
        elif "." not in rule.name:
            out[rule.name] = _function(rule)
            setattr(_core.R, rule.name, rule)
    return out
