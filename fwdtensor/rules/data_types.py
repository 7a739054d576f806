"""Data-type functions: ``astype`` (a rule) and the dtype inspection functions.

``astype`` keeps the tangent through floating and complex casts; integer and boolean
results are constants (no tangent). Complex to real: NumPy and torch keep the real part of the primal
(array-api-strict refuses the cast), so the tangent keeps its real part too. The other
functions of the chapter look at dtypes only; they live in ``fwdtensor/_dtypes.py`` and
appear here as rows so the namespace and the coverage table list them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..core import dtypes as _dtypes
from ..core import info as _namespace_extras
from ._forms import Rule, custom


def written(fn: Callable, kind: str = "nondiff", note: str = "", **kw: Any) -> Rule:
    """A row for a namespace function written by hand (its calling convention is its own)."""
    return Rule(
        fn.__name__, "general", kind, lambda xp, *a, **k: fn(*a, **k), note=note, meta={"function": fn}, **kw
    )


def _floating(xp: Any, dtype: Any) -> bool:
    return xp.isdtype(dtype, ("real floating", "complex floating"))


def cast_tangent(xp: Any, t: Any, src: Any, dtype: Any, **kw: Any) -> Any:
    """The tangent of casting a primal of dtype ``src`` to ``dtype`` (None for integer results)."""
    if not _floating(xp, dtype):
        return None
    if xp.isdtype(src, "complex floating") and not xp.isdtype(dtype, "complex floating"):
        t = xp.real(t)  # the primal keeps its real part (NumPy, torch): so does the tangent
    return xp.astype(t, dtype, copy=False, **kw)


def _astype(xp: Any, x: Any, dtype: Any, **kw: Any) -> Any:
    return xp.astype(x, dtype, **kw)


def _astype_jvp(xp: Any, primals: list, tangents: list, dtype: Any, **kw: Any) -> tuple:
    (x,), (t,) = primals, tangents
    y = xp.astype(x, dtype, **kw)
    device = kw.get("device")
    return y, cast_tangent(xp, t, x.dtype, y.dtype, **({} if device is None else {"device": device}))


def broadcast_shapes(*shapes: tuple[int | None, ...]) -> tuple[int | None, ...]:
    """The shape that arrays of ``shapes`` broadcast to (``None`` marks an unknown size).

    >>> import fwdtensor as ft
    >>> ft.broadcast_shapes((3, 1), (4,), ())
    (3, 4)
    """
    nd = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(-nd, 0):
        sizes = {s[i] for s in shapes if len(s) >= -i} - {1}
        known = sizes - {None}
        if len(known) > 1:
            raise ValueError(f"shapes {', '.join(map(str, shapes))} cannot be broadcast together")
        out.append(known.pop() if known else (None if None in sizes else 1))
    return tuple(out)


RULES: tuple[Rule, ...] = (
    custom(
        "astype",
        _astype_jvp,
        f=_astype,
        params=("dtype", "copy", "device"),
        dtypes="any",
        note="tangent kept for floating and complex results, none for integer and boolean; "
        "complex to real keeps the real part of the tangent, as NumPy and torch do for the primal",
    ),
    written(broadcast_shapes, note="shapes only"),
    written(_dtypes.can_cast, note="accepts duals, backend dtypes and fwdtensor dtypes"),
    written(_dtypes.finfo, note="accepts duals, backend dtypes and fwdtensor dtypes"),
    written(_dtypes.iinfo, note="accepts duals, backend dtypes and fwdtensor dtypes"),
    written(_dtypes.isdtype, note="accepts duals, backend dtypes and fwdtensor dtypes"),
    written(_dtypes.result_type, note="accepts duals, backend dtypes and fwdtensor dtypes"),
    # inspection (its own chapter of the standard, too small for a module)
    written(
        _namespace_extras.__array_namespace_info__,
        note="answers for the backend of `device` (NumPy by default)",
    ),
)
