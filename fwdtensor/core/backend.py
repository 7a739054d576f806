"""Finding the Array API namespace of an array, once per array type.

Nothing here imports CuPy, torch or Dask: array-api-compat recognises their arrays by
looking in ``sys.modules``, so importing fwdtensor never pulls them in.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import array_api_compat
import numpy as np

from . import errors as _errors

PY_SCALARS = (int, float, complex, bool)
_NS_BY_TYPE: dict[type, ModuleType] = {}


def namespace_of(x: Any) -> ModuleType:
    """The Array API namespace of a backend array (cached by its type)."""
    tp = type(x)
    ns = _NS_BY_TYPE.get(tp)
    if ns is None:
        try:
            ns = array_api_compat.array_namespace(x)
        except TypeError:
            raise TypeError(f"expected an array of an Array API library, got {_errors.describe(x)}") from None
        _NS_BY_TYPE[tp] = ns
    return ns


def is_array(x: Any) -> bool:
    """True for an array of any Array API library that array-api-compat knows."""
    return type(x) not in PY_SCALARS and array_api_compat.is_array_api_obj(x)


def as_array(value: Any, xp: ModuleType | None = None) -> Any:
    """A backend array for ``value``; Python scalars and sequences become NumPy float64.

    Integers and booleans given as Python values become float64 too, because a value
    that a user hands to a differentiating constructor is meant to be differentiated.
    """
    if is_array(value):
        return value
    if xp is None:
        xp = array_api_compat.numpy
    arr = xp.asarray(value)
    if not xp.isdtype(arr.dtype, ("real floating", "complex floating")):
        arr = xp.astype(arr, xp.float64 if _supports_float64(xp, arr) else xp.float32)
    return arr


def _supports_float64(xp: ModuleType, arr: Any) -> bool:
    try:
        return xp.float64 in xp.__array_namespace_info__().dtypes(device=arr.device).values()
    except Exception:  # a namespace without inspection: assume float64 exists
        return True


def is_floating(xp: ModuleType, dtype: Any) -> bool:
    """True for real or complex floating dtypes, the ones that carry tangents."""
    return xp.isdtype(dtype, ("real floating", "complex floating"))


def to_host(a: Any) -> Any:
    """A backend array (or a dual: its innermost primal) as a NumPy array on the host.

    For reports, plots and sparse assembly only; no rule calls this (it synchronises a GPU).
    """
    while hasattr(a, "primal") and hasattr(a, "level"):
        a = a.primal
    if isinstance(a, np.ndarray):
        return a
    if array_api_compat.is_cupy_array(a):
        return a.get()
    if array_api_compat.is_torch_array(a):
        return a.detach().cpu().numpy()
    if is_array(a):
        try:
            return np.from_dlpack(a)
        except Exception:  # a library without DLPack export to the host
            pass
    return np.asarray(a)


# NumPy's scalar types: a 0-d result is kept as a 0-d array, never as one of these.
NP_SCALARS = frozenset(np.sctypeDict.values())


def zero_d(x: Any) -> Any:
    """A NumPy scalar (what NumPy returns for many 0-d results) as a 0-d array."""
    return np.asarray(x)


def host_array(a: Any, dtype: Any = None, copy: Any = None) -> Any:
    """``np.asarray`` of a backend array on the host (``__array__`` of a constant)."""
    h = to_host(a)
    return h if dtype is None and copy is None else np.asarray(h, dtype=dtype, copy=copy)


def default_numpy() -> ModuleType:
    return array_api_compat.numpy


__all__ = ["PY_SCALARS", "namespace_of", "is_array", "as_array", "is_floating", "np"]
