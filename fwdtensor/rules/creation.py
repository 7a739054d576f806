"""Creation functions: new arrays carry no tangent, except ``asarray`` of duals."""

from __future__ import annotations

from typing import Any

from .. import _core
from .._backend import namespace_of
from .._core import DualTensor
from ._forms import Rule


def asarray(obj: Any, /, *, dtype: Any = None, device: Any = None, copy: bool | None = None) -> Any:
    """``asarray`` that keeps duals (and nested sequences of duals are stacked)."""
    if type(obj) is DualTensor:
        if dtype is None or dtype == obj.dtype:
            return obj
        return _core.FT.astype(obj, dtype)
    if isinstance(obj, (list, tuple)) and _has_dual(obj):
        return _core.FT.stack([asarray(o, dtype=dtype, device=device) for o in obj])
    if _core._backend.is_array(obj):
        return namespace_of(obj).asarray(obj, dtype=dtype, device=device, copy=copy)
    return _core._backend.default_numpy().asarray(obj, dtype=dtype, device=device, copy=copy)


def _has_dual(obj: Any) -> bool:
    if type(obj) is DualTensor:
        return True
    return isinstance(obj, (list, tuple)) and any(_has_dual(o) for o in obj)


RULES: tuple[Rule, ...] = ()
