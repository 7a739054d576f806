"""Turn the rule tables into the functions of the Array API namespace.

Each function accepts duals, plain arrays and Python scalars where the standard does,
and returns the namespace's own arrays: duals, or constants (tangent None) where nothing
is differentiated, integer and boolean results and plain inputs included. A fwdtensor
dtype token given as ``dtype=`` becomes the backend's dtype before any backend call.
Creation functions (rules with ``meta["creation"]``) pick their backend from their
array arguments, else from ``device=``, else NumPy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..core import dual as _core
from ..core.dtypes import DType, backend_for
from ..core.dual import DualTensor
from ..rules import ALL_RULES
from ..rules._forms import Rule


def function_of(rule: Rule) -> Callable:
    written = rule.meta.get("function")
    if written is not None:  # a function written by hand; the row gives kind and note
        written.rule = rule  # type: ignore[attr-defined]
        return written
    if rule.form == "unary":
        unary = _core.unary

        def fn(x: Any, /) -> Any:
            return unary(rule, x)

    elif rule.form == "binary":
        binary = _core.binary

        def fn(x1: Any, x2: Any, /) -> Any:  # type: ignore[misc]
            return binary(rule, x1, x2)

    elif rule.meta.get("creation"):
        fn = _creation(rule)
    else:
        fn = _general(rule)
    name = rule.name.rsplit(".", 1)[-1]
    fn.__name__ = fn.__qualname__ = name
    # where the function is found by name, so pickle (process pools, Dask) can send it
    fn.__module__ = "fwdtensor." + rule.name.rsplit(".", 1)[0] if "." in rule.name else "fwdtensor"
    fn.__doc__ = f"Array API ``{rule.name}`` on duals and arrays. {rule.note}".strip()
    fn.rule = rule  # type: ignore[attr-defined]
    return fn


def _general(rule: Rule) -> Callable:
    apply = _core.apply
    names, params, seq = rule.args, rule.params, rule.seq
    varargs = names == ("*arrays",)
    has_dtype = "dtype" in params
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
        if has_dtype and type(kwargs.get("dtype")) is DType:
            kwargs["dtype"] = kwargs["dtype"].on(backend_for(arrays))
        return apply(rule, arrays, kwargs)

    return fn


def _binder(rule: Rule) -> Callable[[tuple, dict], tuple[tuple, dict]]:
    """Split a call into (array arguments, keyword parameters) for a creation rule.

    ``meta["order"]`` lists the positional parameters where they do not start with the
    array arguments (``full(shape, fill_value)``).
    """
    names, params = rule.args, rule.params
    varargs = names == ("*arrays",)
    order = rule.meta.get("order") or (*names, *params)

    def bind(args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        if varargs:
            return args, kwargs
        if len(args) > len(order):
            raise TypeError(f"{rule.name}() takes at most {len(order)} positional arguments")
        for k, a in zip(order, args):
            if k in kwargs:
                raise TypeError(f"{rule.name}() got multiple values for argument {k!r}")
            kwargs[k] = a
        return tuple(kwargs.pop(k, None) for k in names), kwargs

    return bind


def _creation(rule: Rule) -> Callable:
    apply, constant = _core.apply, _core.constant
    bind = _binder(rule)

    def fn(*args: Any, **kwargs: Any) -> Any:
        arrays, kwargs = bind(args, dict(kwargs))
        top = None
        for a in arrays:
            if type(a) is DualTensor:
                top = a
                break
        xp = top._bxp if top is not None else backend_for(arrays, kwargs.get("device"))
        if type(kwargs.get("dtype")) is DType:
            kwargs["dtype"] = kwargs["dtype"].on(xp)
        if top is None:
            return constant(rule.f(xp, *arrays, **kwargs))
        return apply(rule, arrays, kwargs)

    return fn


def build(prefix: str = "") -> dict[str, Callable]:
    """The namespace functions whose rule names start with ``prefix`` (``""`` or ``"linalg."``)."""
    out = {}
    for rule in ALL_RULES:
        if prefix:
            if rule.name.startswith(prefix):
                out[rule.name[len(prefix) :]] = function_of(rule)
        elif "." not in rule.name:
            out[rule.name] = function_of(rule)
    return out
