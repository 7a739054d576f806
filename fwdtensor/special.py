"""The ``special`` extension: SciPy's special functions on duals and plain arrays.

SciPy (with ``SCIPY_ARRAY_API=1``) finds these as ``xp.special.<name>`` on the namespace of
its inputs, so ``scipy.special.erf(dual)`` differentiates. The signatures are SciPy's:
elementwise functions take their arrays positionally (``erf(x, /)``, ``xlogy(x, y, /)``),
``polygamma(n, x)``, ``softmax(x, axis=None)``, ``log_softmax(x, axis=None)``,
``logsumexp(a, axis=None, b=None, keepdims=False, return_sign=False)``.
"""

from __future__ import annotations

import inspect

from .namespace.build import build as _build

_functions = _build("special.")


def _signature(fn: object) -> inspect.Signature:
    """SciPy's signature for a generated function (a hand-written one keeps its own)."""
    rule = fn.rule  # type: ignore[attr-defined]
    if "function" in rule.meta:
        return inspect.signature(fn)  # type: ignore[arg-type]
    P = inspect.Parameter
    kind = (
        P.POSITIONAL_ONLY if rule.meta.get("elementwise") and rule.args[0] != "n" else P.POSITIONAL_OR_KEYWORD
    )
    return inspect.Signature(
        [P(a, kind) for a in rule.args] + [P(p, P.POSITIONAL_OR_KEYWORD, default=None) for p in rule.params]
    )


for _fn in _functions.values():
    if "function" not in _fn.rule.meta:  # type: ignore[attr-defined]
        _fn.__signature__ = _signature(_fn)  # type: ignore[attr-defined]
        _fn.__doc__ = f"SciPy's ``{_fn.__name__}`` on duals and arrays.\n\n{_fn.rule.note}".strip()  # type: ignore[attr-defined]
del _fn

globals().update(_functions)
__all__ = sorted(_functions)


def __getattr__(name: str) -> object:
    """Name what exists when a function is missing (SciPy's lookup still sees an AttributeError)."""
    if name.startswith("__"):
        raise AttributeError(name)
    raise AttributeError(
        f"fwdtensor.special has no function {name!r}; it has: {', '.join(__all__)}. "
        "Compose it from these and the namespace's functions, or use ft.custom_jvp to give its derivative"
    )
