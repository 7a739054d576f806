"""The NaN debug mode: find the first operation that turns NaN-free inputs into a NaN.

``ft.set_debug_nans(True)`` (or ``FWDTENSOR_DEBUG_NANS=1``) makes every namespace call
check its result: when no input holds a NaN (in its primal or any tangent, at any level)
but the result does, it raises ``DebugNaNError`` naming the function and the level, like
JAX's ``jax_debug_nans``. The dispatch pays one module-global test per call when the mode
is off (``_core.DEBUG_NANS``); the checks below run only when it is on.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from . import dual as _core
from . import errors as _errors

_ENV = "FWDTENSOR_DEBUG_NANS"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")

# Set while a checked call runs on this thread: the rules it calls are not checked again
# (the outermost operation is the one named), and the environment variable waits here.
_state = threading.local()
_env_pending: str | None = None


def set_debug_nans(flag: bool) -> None:
    """Raise ``DebugNaNError`` at the first operation that makes a NaN from NaN-free inputs.

    Args:
        flag: True to check every namespace operation (slow: one scan of every input and
            output), False to switch the checks off (the default; no cost then).

    >>> import fwdtensor as ft
    >>> ft.set_debug_nans(False)
    """
    global _env_pending
    if not isinstance(flag, bool):
        raise TypeError(f"set_debug_nans(flag) takes True or False, got {flag!r}")
    _env_pending = None
    _core.DEBUG, _core.DEBUG_NANS = sys.modules[__name__], flag


def debug_nans() -> bool:
    """Whether the NaN debug mode is on (the environment variable is read on first use)."""
    if _env_pending is not None:
        _read_env()
    return bool(_core.DEBUG_NANS)


def init_from_env() -> None:
    """At import: arm the hook when the variable is set; its value is parsed on first use."""
    global _env_pending
    v = os.environ.get(_ENV)
    if v is not None and v.strip() != "":
        _env_pending = v
        _core.DEBUG, _core.DEBUG_NANS = sys.modules[__name__], True


def _read_env() -> None:
    global _env_pending
    v, _env_pending = _env_pending, None
    flag = v.strip().lower()
    if flag in _TRUE:
        _core.DEBUG, _core.DEBUG_NANS = sys.modules[__name__], True
    elif flag in _FALSE:
        _core.DEBUG_NANS = False
    else:
        _core.DEBUG_NANS = False
        raise ValueError(
            f"{_ENV}={v!r} is not a flag; set it to 1 (on) or 0 (off), or call ft.set_debug_nans"
        )


def outermost() -> bool:
    """True when no checked call is running on this thread (so this one is to be checked)."""
    if _env_pending is not None:
        _read_env()
        if not _core.DEBUG_NANS:
            return False
    return not getattr(_state, "inside", False)


def _parts(x: Any) -> Iterator[tuple[int | None, Any]]:
    """Every backend array of ``x`` with its level: None for the value, L for a tangent of
    level L (an array inside a level-L tangent counts as that tangent, whatever its depth)."""
    if type(x) is _core.DualTensor:
        yield from _parts(x.primal)
        if x._t is not None:
            for _, a in _parts(x._t):
                yield x.level, a
        return
    if isinstance(x, (tuple, list)):  # tuples, lists, named results
        for item in x:
            yield from _parts(item)
        return
    if hasattr(x, "dtype") and hasattr(x, "shape"):
        yield None, x


def _has_nan(a: Any) -> bool:
    from .backend import namespace_of

    try:
        xp = namespace_of(a)
        if not xp.isdtype(a.dtype, ("real floating", "complex floating")):
            return False
        return bool(xp.any(xp.isnan(a)))
    except Exception:  # not an array this mode can scan (a tracer, an unknown type)
        return False


def run(fn: Callable, rule: Any, inputs: tuple, *args: Any) -> Any:
    """Call ``fn(rule, *args)`` unchecked inside, then check its result against ``inputs``."""
    _state.inside = True
    try:
        out = fn(rule, *args)
    finally:
        _state.inside = False
    if any(_has_nan(a) for x in inputs for _, a in _parts(x)):
        return out  # NaN in, NaN out: not this operation's doing
    for level, a in _parts(out):
        if _has_nan(a):
            raise _errors.debug_nan(rule.name, level)
    return out
