"""Dtypes that work with every backend, and the data-type functions of the namespace.

``ft.float32`` is a token, not a backend's dtype: it compares equal to every library's
``float32`` (in both directions of ``==``) and the namespace swaps it for the backend's
own dtype wherever a ``dtype=`` argument reaches a backend function. ``DualTensor.dtype``
stays the backend's dtype. ``isdtype``, ``result_type``, ``can_cast``, ``finfo`` and
``iinfo`` accept duals, backend arrays, backend dtypes and tokens alike.
"""

from __future__ import annotations

import builtins
import importlib
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import array_api_compat.numpy
import numpy as np

from . import errors as _errors
from .backend import PY_SCALARS, is_array, namespace_of
from .dual import DualTensor, innermost

# The dtypes of the standard, in the order its tables list them.
NAMES: tuple[str, ...] = (
    "bool",
    "int8", "int16", "int32", "int64",
    "uint8", "uint16", "uint32", "uint64",
    "float32", "float64",
    "complex64", "complex128",
)  # fmt: skip

_SIGNED = frozenset(("int8", "int16", "int32", "int64"))
_UNSIGNED = frozenset(("uint8", "uint16", "uint32", "uint64"))
# float16 and bfloat16 are not in the standard, but torch and CuPy arrays may have them.
_REAL = frozenset(("float16", "bfloat16", "float32", "float64"))
_COMPLEX = frozenset(("complex32", "complex64", "complex128"))
KINDS: dict[str, frozenset[str]] = {
    "bool": frozenset(("bool",)),
    "signed integer": _SIGNED,
    "unsigned integer": _UNSIGNED,
    "integral": _SIGNED | _UNSIGNED,
    "real floating": _REAL,
    "complex floating": _COMPLEX,
    "numeric": _SIGNED | _UNSIGNED | _REAL | _COMPLEX,
}
_KNOWN = frozenset(NAMES) | _REAL | _COMPLEX


class DType:
    """A backend-agnostic dtype: equal to every library's dtype of the same name.

    >>> import numpy as np, fwdtensor as ft
    >>> ft.float32 == np.dtype("float32"), np.dtype("float32") == ft.float32
    (True, True)
    """

    __slots__ = ("name", "dtype", "_np_dtype", "_canonical_name", "_by_ns")

    def __init__(self, name: str) -> None:
        self.name = name
        # NumPy (and CuPy, Dask) turn any object with a ``.dtype`` into that dtype, so
        # ``np.dtype("float32") == ft.float32`` and ``np.zeros(2, dtype=ft.float32)`` work.
        self.dtype = np.dtype(name)
        # array-api-strict compares only with its own DType (see ``__class__``) and reads these.
        self._np_dtype = self.dtype
        self._canonical_name = self.dtype
        self._by_ns: dict[ModuleType, Any] = {}

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        # array-api-strict's DType.__eq__ answers False to anything that is not
        # isinstance of its DType; reporting that class (only once array-api-strict is
        # imported) makes ``strict.float32 == ft.float32`` True. type(self) is unchanged.
        strict = sys.modules.get("array_api_strict")
        return type(strict.float32) if strict is not None else DType

    def __eq__(self, other: object) -> builtins.bool:
        return name_of(other) == self.name

    def __ne__(self, other: object) -> builtins.bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        # NumPy's and array-api-strict's dtypes hash like this too, so dict keys mix.
        return hash(self.dtype)

    def __repr__(self) -> str:
        return f"fwdtensor.{self.name}"

    __str__ = __repr__

    def __reduce__(self) -> tuple:
        return (_token, (self.name,))

    def on(self, xp: ModuleType) -> Any:
        """This dtype in the namespace ``xp`` (``torch.float32`` for torch's)."""
        d = self._by_ns.get(xp)
        if d is None:
            d = getattr(xp, self.name, None)
            if d is None:
                raise TypeError(f"{xp.__name__} has no dtype {self.name}")
            self._by_ns[xp] = d
        return d


TOKENS: dict[str, DType] = {n: DType(n) for n in NAMES}


def _token(name: str) -> DType:
    return TOKENS[name]


# --------------------------------------------------------------------- names
_NAME_CACHE: dict[tuple, str | None] = {}


def name_of(dtype: Any) -> str | None:
    """The standard name of any library's dtype (``"float32"``), or None for a non-dtype."""
    if type(dtype) is DType:
        return dtype.name
    if isinstance(dtype, str):
        return None
    try:
        # keyed with the type first: strict's dtypes warn when compared with NumPy's
        key = (type(dtype), dtype)
        return _NAME_CACHE[key]
    except KeyError:
        name = _NAME_CACHE[key] = _compute_name(dtype)
        return name
    except TypeError:  # unhashable: not a dtype of any library we know
        return _compute_name(dtype)


def _compute_name(dtype: Any) -> str | None:
    if isinstance(dtype, np.dtype) or (isinstance(dtype, type) and issubclass(dtype, np.generic)):
        name = np.dtype(dtype).name
    elif hasattr(dtype, "shape"):  # an array, not a dtype (and too big to print)
        return None
    else:  # torch.float32, array_api_strict.float32, ...
        name = str(dtype).rsplit(".", 1)[-1]
    return name if name in _KNOWN else None


def token_of(dtype: Any) -> Any:
    """The fwdtensor token for a backend's dtype (the dtype itself if it has none)."""
    return TOKENS.get(name_of(dtype) or "", dtype)


def to_backend(dtype: Any, xp: ModuleType) -> Any:
    """``dtype`` as the backend ``xp`` spells it: tokens are translated, the rest passes."""
    return dtype.on(xp) if type(dtype) is DType else dtype


# ---------------------------------------------------------------- backends
def backend_of_device(device: Any) -> ModuleType:
    """The Array API library a device belongs to; NumPy for None or ``"cpu"``."""
    if device is None or (isinstance(device, str) and device == "cpu"):
        return array_api_compat.numpy
    lib = type(device).__module__.split(".")[0]
    if lib in ("torch", "cupy"):
        return importlib.import_module(f"array_api_compat.{lib}")
    if lib == "array_api_strict":
        return sys.modules["array_api_strict"]
    raise TypeError(
        f"cannot tell which Array API library the device {device!r} belongs to; "
        "pass an array of that library (or call its own namespace) instead"
    )


def backend_of_dtype(dtype: Any) -> ModuleType | None:
    """The library a backend dtype comes from (None for tokens and non-dtypes)."""
    if type(dtype) is DType:
        return None
    if isinstance(dtype, np.dtype) or (isinstance(dtype, type) and issubclass(dtype, np.generic)):
        return array_api_compat.numpy
    lib = type(dtype).__module__.split(".")[0]
    if lib == "torch":
        return importlib.import_module("array_api_compat.torch")
    if lib == "array_api_strict":
        return sys.modules["array_api_strict"]
    return None


def backend_for(values: tuple | list, device: Any = None) -> ModuleType:
    """The backend of the first dual or array in ``values``, else of ``device`` (else NumPy)."""
    for v in values:
        if type(v) is DualTensor:
            return v._bxp
        if v is not None and _is_array(v):
            return namespace_of(v)
    return backend_of_device(device)


def _is_array(v: Any) -> builtins.bool:
    """A backend array; not a scalar type such as ``np.float32`` (it has the array methods)."""
    return type(v) not in PY_SCALARS and not isinstance(v, type) and is_array(v)


def _dtype_of(x: Any) -> Any:
    """A dtype argument: arrays and duals stand for their dtype."""
    if type(x) is DualTensor or _is_array(x):
        return x.dtype
    return x


def _single_backend(values: tuple) -> tuple[ModuleType | None, builtins.bool]:
    """(backend, True if some value is a dual or token) for dtype functions; mixing raises."""
    xp, ref, special = None, None, False
    for v in values:
        if type(v) is DualTensor:
            vxp, special = v._bxp, True
            v = innermost(v)  # name the backend array in errors
        elif type(v) is DType:
            special = True
            continue
        elif _is_array(v):
            vxp = namespace_of(v)
        else:
            continue
        if xp is None:
            xp, ref = vxp, v
        elif vxp is not xp:
            raise _errors.backend_mismatch(ref, v)
    if xp is None:  # dtypes only: the library of the first backend dtype
        for v in values:
            xp = backend_of_dtype(v)
            if xp is not None:
                break
    return xp, special


# ------------------------------------------------------- data-type functions
def isdtype(dtype: Any, kind: Any) -> builtins.bool:
    """Whether ``dtype`` (a dtype of any library, a token, an array or a dual) is of ``kind``.

    >>> import fwdtensor as ft
    >>> ft.isdtype(ft.float32, "real floating"), ft.isdtype(ft.int8, ("bool", ft.int8))
    (True, True)
    """
    d = _dtype_of(dtype)
    name = name_of(d)
    if name is None:
        raise TypeError(f"isdtype expects a dtype, got {_errors.describe(dtype)}")
    return _is_kind(name, kind)


def _is_kind(name: str, kind: Any) -> builtins.bool:
    if isinstance(kind, tuple):
        return any(_is_kind(name, k) for k in kind)
    if isinstance(kind, str):
        names = KINDS.get(kind)
        if names is None:
            raise ValueError(f"unknown dtype kind {kind!r}; expected a dtype or one of {sorted(KINDS)}")
        return name in names
    other = name_of(kind)
    if other is None:
        raise TypeError(f"kind must be a dtype, a kind name or a tuple of them, got {kind!r}")
    return name == other


def result_type(*arrays_and_dtypes: Any) -> Any:
    """The dtype the standard's promotion gives, on the backend of the arrays or duals.

    Tokens, duals and backend dtypes may be mixed; with tokens (and Python scalars) only,
    the answer is a token.

    >>> import fwdtensor as ft
    >>> ft.result_type(ft.float32, ft.float64)
    fwdtensor.float64
    """
    xp, special = _single_backend(arrays_and_dtypes)
    if not special:  # backend arrays and dtypes only: exactly the backend's answer
        return (xp or array_api_compat.numpy).result_type(*arrays_and_dtypes)
    out_xp = xp or array_api_compat.numpy
    args = [_backend_arg(a, out_xp) for a in arrays_and_dtypes]
    r = out_xp.result_type(*args)
    return r if xp is not None else token_of(r)


def _backend_arg(a: Any, xp: ModuleType) -> Any:
    if type(a) is DualTensor:
        return a.dtype
    return to_backend(a, xp)


def can_cast(from_: Any, to: Any, /) -> builtins.bool:
    """Whether ``from_`` (a dtype, array or dual) casts to ``to`` under the standard's rules.

    >>> import fwdtensor as ft
    >>> ft.can_cast(ft.float32, ft.float64), ft.can_cast(ft.float64, ft.int32)
    (True, False)
    """
    xp, _ = _single_backend((from_, to))
    xp = xp or array_api_compat.numpy
    return xp.can_cast(_backend_arg(from_, xp), to_backend(to, xp))


@dataclass(frozen=True)
class finfo_object:
    """Machine limits of a floating dtype, as Python numbers (the standard's ``finfo_object``)."""

    bits: int
    eps: float
    max: float
    min: float
    smallest_normal: float
    dtype: Any


@dataclass(frozen=True)
class iinfo_object:
    """Machine limits of an integer dtype, as Python ints (the standard's ``iinfo_object``)."""

    bits: int
    max: int
    min: int
    dtype: Any


def _info_dtype(xp: ModuleType | None, name: str | None, found: Any) -> Any:
    """The ``dtype`` field: a token when only tokens were asked about, else the backend's dtype.

    (torch's ``finfo(...).dtype`` is a string: then the backend's dtype of that name.)
    """
    if name is None:
        return found
    if xp is None:
        return TOKENS[name] if name in TOKENS else found
    return getattr(xp, name, found) if found is None or isinstance(found, str) else found


def finfo(type: Any, /) -> finfo_object:  # the standard's parameter name
    """Machine limits of a floating dtype (token, backend dtype, array or dual), from its backend.

    The fields are Python numbers; ``dtype`` is the real dtype of the same precision.

    >>> import fwdtensor as ft
    >>> ft.finfo(ft.float32).bits, type(ft.finfo(ft.float32).eps)
    (32, <class 'float'>)
    """
    xp, _ = _single_backend((type,))
    bxp = xp or array_api_compat.numpy
    got = bxp.finfo(_backend_arg(type, bxp))
    name = name_of(_dtype_of(type))
    real = {"complex64": "float32", "complex128": "float64"}.get(name, name) if name else None
    return finfo_object(
        bits=int(got.bits),
        eps=float(got.eps),
        max=float(got.max),
        min=float(got.min),
        smallest_normal=float(got.smallest_normal),
        dtype=_info_dtype(xp, real, getattr(got, "dtype", None)),
    )


def iinfo(type: Any, /) -> iinfo_object:  # the standard's parameter name
    """Machine limits of an integer dtype (token, backend dtype, array or dual), from its backend.

    The fields are Python ints.

    >>> import fwdtensor as ft
    >>> ft.iinfo(ft.int8).max
    127
    """
    xp, _ = _single_backend((type,))
    bxp = xp or array_api_compat.numpy
    got = bxp.iinfo(_backend_arg(type, bxp))
    name = name_of(_dtype_of(type))
    return iinfo_object(
        bits=int(got.bits),
        max=int(got.max),
        min=int(got.min),
        dtype=_info_dtype(xp, name, getattr(got, "dtype", None)),
    )


__all__ = [
    "DType", "NAMES", "KINDS", "TOKENS", "name_of", "token_of", "to_backend",
    "backend_of_device", "backend_for", "isdtype", "result_type", "can_cast", "finfo", "iinfo",
    "finfo_object", "iinfo_object",
]  # fmt: skip
