"""Turn the rule tables into the functions of the Array API namespace.

Each function accepts duals, plain arrays and Python scalars where the standard does,
and returns the namespace's own arrays: duals, or constants (tangent None) where nothing
is differentiated, integer and boolean results and plain inputs included. A fwdtensor
dtype token given as ``dtype=`` becomes the backend's dtype before any backend call.
Creation functions (rules with ``meta["creation"]``) pick their backend from their
array arguments, else from ``device=``, else NumPy.

A function of the standard has the standard's parameter list (``signatures.py``, read from
its stubs): positional-only, keyword-only and defaults as the standard writes them, so
``inspect.signature`` and ``help`` show it and Python itself enforces it. Each such function
is real Python source written from that table and compiled once at import, so binding the
arguments costs nothing per call.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from ..core import dual as _core
from ..core import errors as _errors
from ..core.dtypes import DType, backend_for
from ..core.dual import DualTensor
from ..rules import ALL_RULES
from ..rules._forms import Rule
from .signatures import SIGNATURES


def function_of(rule: Rule) -> Callable:
    written = rule.meta.get("function")
    if written is not None:  # a function written by hand; the row gives kind and note
        written.rule = rule  # type: ignore[attr-defined]
        return written
    std = SIGNATURES.get(rule.name)
    if rule.form == "unary" and std in (None, "x, /"):
        unary = _core.unary

        def fn(x: Any, /) -> Any:
            return unary(rule, x)

    elif rule.form == "binary" and std in (None, "x1, x2, /"):
        binary = _core.binary

        def fn(x1: Any, x2: Any, /) -> Any:  # type: ignore[misc]
            return binary(rule, x1, x2)

    elif std is not None:
        fn = _standard(rule, std)
    elif rule.meta.get("creation"):
        raise RuntimeError(f"creation rule {rule.name} has no signature in namespace/signatures.py")
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


def _standard(rule: Rule, params: str) -> Callable:
    """The function of ``rule`` with the standard's parameter list ``params``, as compiled source.

    The array arguments (``rule.args``) go to the dispatch positionally; every other
    parameter goes by keyword, and only when the caller gave it (a parameter left at its
    default is not passed on, so the rule's and the backend's own defaults apply).
    """
    name = rule.name.rsplit(".", 1)[-1]
    probe: dict[str, Any] = {}
    exec(f"def probe({params}): pass", probe)  # noqa: S102  (source built from the generated table)
    sig = inspect.signature(probe["probe"])
    names = list(sig.parameters)
    array_names = [a.lstrip("*") for a in rule.args]
    unknown = set(array_names) - set(names)
    if unknown:
        raise RuntimeError(
            f"rule {rule.name}: arguments {sorted(unknown)} are not in the standard's ({params})"
        )
    if rule.seq:
        arrays = f"tuple({array_names[0]})"
    elif rule.args == ("*arrays",):
        arrays = "arrays"
    else:
        arrays = "(" + "".join(f"{a}, " for a in array_names) + ")"
    env: dict[str, Any] = {"rule": rule, "DType": DType, "backend_for": backend_for}
    body = ["kw = {}"]
    plist = list(sig.parameters.values())
    keywords = tuple(p.name for p in plist if p.kind is p.KEYWORD_ONLY)
    # A keyword-only parameter given positionally gets an error naming it: the compiled
    # function takes the surplus as `*_extra` and shows the standard's signature instead.
    guard = len(keywords) > 0 and not any(p.kind is p.VAR_POSITIONAL for p in plist)
    if guard:
        positional = tuple(p.name for p in plist if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))
        env["keyword_only"] = _errors.keyword_only
        body.insert(
            0,
            f"if _extra: raise keyword_only({name!r}, {positional!r}, {len(positional)} + len(_extra), "
            f"{keywords!r})",
        )
    for p in sig.parameters.values():
        if p.default is not p.empty:
            env[f"_default_{p.name}"] = p.default
        if p.name in array_names or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.default is p.empty:
            body.append(f"kw[{p.name!r}] = {p.name}")
        else:
            body.append(f"if {p.name} is not _default_{p.name}: kw[{p.name!r}] = {p.name}")
    if rule.meta.get("creation"):  # the backend of its arrays, else of device=, else NumPy
        env["create"] = _create
        body.append(f"return create(rule, {arrays}, kw)")
    else:
        env["apply"] = _core.apply
        if "dtype" in names:
            body.append(f"if type(dtype) is DType: kw['dtype'] = dtype.on(backend_for({arrays}))")
        body.append(f"return apply(rule, {arrays}, kw)")
    # the defaults are named objects of `env`, so `is not _default_*` sees an omitted argument
    src = f"def {name}({_parameter_text(sig, guard)}):\n" + "".join(f"    {line}\n" for line in body)
    exec(compile(src, f"<fwdtensor.{rule.name}>", "exec"), env)  # noqa: S102
    fn = env[name]
    if guard:
        fn.__signature__ = sig
    return fn


def _parameter_text(sig: inspect.Signature, extra: bool) -> str:
    """``sig``'s parameter list as source, each default written as the name ``_default_<param>``.

    With ``extra``, the keyword-only parameters follow ``*_extra`` instead of ``*``.
    """
    parts: list[str] = []
    params = list(sig.parameters.values())
    for i, p in enumerate(params):
        if p.kind is p.KEYWORD_ONLY and not any(q.kind is q.VAR_POSITIONAL for q in params):
            if i == 0 or params[i - 1].kind is not p.KEYWORD_ONLY:
                parts.append("*_extra" if extra else "*")
        prefix = {p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind, "")
        parts.append(prefix + p.name + ("" if p.default is p.empty else f"=_default_{p.name}"))
        if p.kind is p.POSITIONAL_ONLY and (
            i + 1 == len(params) or params[i + 1].kind is not p.POSITIONAL_ONLY
        ):
            parts.append("/")
    return ", ".join(parts)


def _create(rule: Rule, arrays: tuple, kwargs: dict) -> Any:
    """A creation function's call: the backend of its arrays, else of ``device=``, else NumPy."""
    top = None
    for a in arrays:
        if type(a) is DualTensor:
            top = a
            break
    xp = top._bxp if top is not None else backend_for(arrays, kwargs.get("device"))
    if type(kwargs.get("dtype")) is DType:
        kwargs["dtype"] = kwargs["dtype"].on(xp)
    if top is None:
        return _core.constant(rule.f(xp, *arrays, **kwargs))
    return _core.apply(rule, arrays, kwargs)


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
