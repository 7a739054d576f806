"""Which arrays may share memory, per backend: results never alias the caller's inputs.

The transforms copy an output only when it may share memory with an input, so a fresh
result costs nothing. Where a backend cannot say, identity is the test (Dask arrays and
other backends without writable views share nothing else).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import array_api_compat
import numpy as np

from .backend import PY_SCALARS, namespace_of
from .dual import DualTensor


def _leaves(x: Any, out: list) -> list:
    """The backend arrays inside ``x`` (a dual holds a primal and a tangent, maybe duals)."""
    tx = type(x)
    if tx is np.ndarray:
        out.append(x)
    elif x is None or tx in PY_SCALARS:
        pass
    elif tx is DualTensor:
        _leaves(x.primal, out)
        _leaves(x._t, out)
    else:
        out.append(x)
    return out


_HAS_VIEWS: dict[ModuleType, bool] = {}
_REFUSES_OVERLAP: dict[ModuleType, bool] = {}


def has_views(xp: ModuleType) -> bool:
    """True for backends whose basic indexing returns views that write through to their base."""
    ok = _HAS_VIEWS.get(xp)
    if ok is None:
        ok = _HAS_VIEWS[xp] = bool(
            array_api_compat.is_numpy_namespace(xp)
            or array_api_compat.is_cupy_namespace(xp)
            or array_api_compat.is_torch_namespace(xp)
            or array_api_compat.is_array_api_strict_namespace(xp)
        )
    return ok


def refuses_overlap(xp: ModuleType) -> bool:
    """True for backends whose assignment fails or is undefined when source and target overlap
    (NumPy copies the source first; PyTorch raises; CuPy does not promise a result)."""
    no = _REFUSES_OVERLAP.get(xp)
    if no is None:
        no = _REFUSES_OVERLAP[xp] = bool(
            array_api_compat.is_torch_namespace(xp) or array_api_compat.is_cupy_namespace(xp)
        )
    return no


def _pair_may_share(a: Any, b: Any) -> bool:
    if a is b:
        return True
    ta, tb = type(a), type(b)
    if ta is not tb:
        return False
    if ta is np.ndarray:  # the common case, first: two arrays that own their data are apart
        return (a.base is not None or b.base is not None) and bool(np.may_share_memory(a, b))
    xp = namespace_of(a)
    if array_api_compat.is_array_api_strict_namespace(xp):
        a, b, xp = a._array, b._array, array_api_compat.numpy
    if array_api_compat.is_numpy_namespace(xp):
        return bool(np.may_share_memory(a, b))
    if array_api_compat.is_torch_namespace(xp):
        if a.numel() == 0 or b.numel() == 0:
            return False
        return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()
    if array_api_compat.is_cupy_namespace(xp):
        import cupy  # type: ignore[import-not-found]

        return bool(cupy.may_share_memory(a, b))
    return False  # other backends: only identity shares (checked above)


def may_share(a: Any, b: Any) -> bool:
    """True when some array inside ``a`` may share memory with some array inside ``b``."""
    return may_share_any(a, _leaves(b, []))


def may_share_any(a: Any, arrays: list) -> bool:
    """True when some array inside ``a`` may share memory with one of the backend ``arrays``."""
    return any(_pair_may_share(x, y) for x in _leaves(a, []) for y in arrays)


def leaves(xs: list) -> list:
    """The backend arrays inside the values ``xs`` (duals are opened, scalars and None dropped)."""
    out: list = []
    for x in xs:
        _leaves(x, out)
    return out


def copy_array(x: Any) -> Any:
    """A private copy of a backend array."""
    return namespace_of(x).asarray(x, copy=True)
