"""The backend's own special function (``erf``, ``gammaln``, ...) for ``ft.special``: one place
that knows where each library keeps them.

NumPy: ``scipy.special``; CuPy: ``cupyx.scipy.special``; PyTorch: ``torch.special``; JAX:
``jax.scipy.special``; Dask: ``scipy.special`` block by block (the rules ask this helper for
elementwise functions only; ``logsumexp`` and the softmaxes are written with the standard's
functions); array-api-strict: ``scipy.special`` on the NumPy array it wraps, the
result wrapped again on the same (simulated) device. Where a library lacks a function, a few
are composed from the standard and other special functions (``_COMPOSED``); otherwise the
error names the function and the backend. Nested derivatives pass fwdtensor's own namespace,
whose ``special`` recurses through the rules.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from types import ModuleType
from typing import Any

from . import dual as _core
from . import errors as _errors

# Libraries that name a function differently: backend -> {scipy name: their name}.
_ALIASES: dict[str, dict[str, str]] = {
    "torch": {"psi": "digamma"},
    "jax": {"psi": "digamma"},
}

_CACHE: dict[tuple[ModuleType, str], Callable] = {}


def _library(xp: ModuleType) -> str:
    """``numpy``, ``torch``, ``cupy``, ``dask``, ``jax``, ``array_api_strict`` or the module's name."""
    name = xp.__name__
    if name.startswith("array_api_compat."):
        name = name[len("array_api_compat.") :]
    return name.partition(".")[0]


def _scipy_special(what: str) -> ModuleType:
    try:
        return importlib.import_module("scipy.special")
    except ImportError:  # pragma: no cover - SciPy is a dependency of the tests
        raise _errors.NotDifferentiableError(
            f"ft.special.{what} on NumPy arrays needs SciPy (pip install scipy)"
        ) from None


def _native(xp: ModuleType, lib: str, name: str) -> Callable | None:
    """The library's own function, wrapped so that it takes and returns ``xp`` arrays."""
    name = _ALIASES.get(lib, {}).get(name, name)
    if lib == "numpy":
        fn = getattr(_scipy_special(name), name, None)
        if fn is None:
            return None
        asarray = xp.asarray
        return lambda *a: asarray(_same_precision(fn(*a), a))  # 0-d: an array, not a NumPy scalar
    if lib == "array_api_strict":
        fn = getattr(_scipy_special(name), name, None)
        return None if fn is None else _on_wrapped_numpy(fn)
    if lib == "dask":
        fn = getattr(_scipy_special(name), name, None)
        if fn is None:
            return None
        import dask.array as da

        return lambda *a: da.map_blocks(fn, *a)
    module = {"torch": "torch.special", "cupy": "cupyx.scipy.special", "jax": "jax.scipy.special"}.get(lib)
    if module is None:
        return None
    return getattr(importlib.import_module(module), name, None)


def _on_wrapped_numpy(fn: Callable) -> Callable:
    """``fn`` (a SciPy function) on the NumPy arrays array-api-strict wraps: that library
    keeps a NumPy array on each of its simulated devices, so the result goes back to the
    device of the first array argument."""
    import numpy as np

    def call(*args: Any) -> Any:
        first = next(a for a in args if hasattr(a, "_array"))
        arrays = [a._array if hasattr(a, "_array") else a for a in args]
        return type(first)._new(np.asarray(_same_precision(fn(*arrays), arrays)), device=first.device)

    return call


def _same_precision(out: Any, args: Any) -> Any:
    """SciPy's result in its floating inputs' precision (``polygamma`` computes float32 in float64)."""
    kinds = [a.dtype for a in args if getattr(getattr(a, "dtype", None), "kind", "") == "f"]
    if kinds and getattr(out, "dtype", None) is not None and out.dtype.kind == "f":
        want = max(kinds, key=lambda dt: dt.itemsize)
        if out.dtype != want:
            return out.astype(want)
    return out


def special_function(xp: ModuleType, name: str) -> Callable:
    """The function ``name`` of ``scipy.special``'s family for arrays of the namespace ``xp``."""
    if xp is _core.FT:  # a nested derivative: the inputs are duals, go through the rules
        return getattr(xp.special, name)
    fn = _CACHE.get((xp, name))
    if fn is None:
        lib = _library(xp)
        fn = _native(xp, lib, name)
        if fn is None and name in _COMPOSED:
            fn = _COMPOSED[name](xp)
        if fn is None:
            raise _errors.missing_special(name, lib)
        _CACHE[(xp, name)] = fn
    return fn


# ------------------------------------------------- compositions where a library lacks one
def _erfcinv(xp: ModuleType) -> Callable:
    ndtri = special_function(xp, "ndtri")
    return lambda x: ndtri(x / 2.0) * (-1.0 / math.sqrt(2.0))  # accurate for tiny x too


def _log_expit(xp: ModuleType) -> Callable:
    # log(1 / (1 + exp(-x))) = -(max(-x, 0) + log1p(exp(-|x|))): no overflow either way
    return lambda x: xp.negative(xp.add(xp.clip(-x, min=0.0), xp.log1p(xp.exp(-xp.abs(x)))))


def _gamma(xp: ModuleType) -> Callable:
    gammaln = special_function(xp, "gammaln")

    def gamma(x: Any) -> Any:
        # sign of Gamma: positive for x > 0; on (-k-1, -k) it is (-1)^(k+1)
        odd = xp.remainder(xp.floor(x), 2.0) == 1.0
        neg = xp.logical_and(x < 0.0, odd)
        return xp.where(neg, -xp.exp(gammaln(x)), xp.exp(gammaln(x)))

    return gamma


def _rel_entr(xp: ModuleType) -> Callable:
    def rel_entr(x: Any, y: Any) -> Any:
        pos = xp.logical_and(x > 0.0, y > 0.0)
        safe_x, safe_y = xp.where(pos, x, 1.0), xp.where(pos, y, 1.0)
        v = xp.multiply(safe_x, xp.log(xp.divide(safe_x, safe_y)))
        zero = xp.logical_and(x == 0.0, y >= 0.0)
        return xp.where(pos, v, xp.where(zero, 0.0, xp.where(xp.isnan(xp.add(x, y)), xp.nan, xp.inf)))

    return rel_entr


def _kl_div(xp: ModuleType) -> Callable:
    rel_entr = special_function(xp, "rel_entr")
    return lambda x, y: xp.add(xp.subtract(rel_entr(x, y), x), y)


def _betaln(xp: ModuleType) -> Callable:
    gammaln = special_function(xp, "gammaln")
    return lambda a, b: xp.subtract(xp.add(gammaln(a), gammaln(b)), gammaln(xp.add(a, b)))


def _sinc(xp: ModuleType) -> Callable:
    def sinc(x: Any) -> Any:
        z = xp.where(x == 0.0, 1.0, x) * math.pi
        return xp.where(x == 0.0, 1.0, xp.sin(z) / z)

    return sinc


def _alias(name: str) -> Callable[[ModuleType], Callable]:
    return lambda xp: special_function(xp, name)


_COMPOSED: dict[str, Callable[[ModuleType], Callable]] = {
    "erfcinv": _erfcinv,
    "log_expit": _log_expit,
    "gamma": _gamma,
    "rel_entr": _rel_entr,
    "kl_div": _kl_div,
    "betaln": _betaln,
    "sinc": _sinc,
    "psi": _alias("digamma"),
}
