"""The parts of the namespace that are not functions of arrays: constants, dtypes, inspection.

The dtypes are backend-agnostic tokens (``fwdtensor/_dtypes.py``): ``ft.float32`` equals
NumPy's, torch's and array-api-strict's ``float32`` and becomes the backend's own dtype
wherever a namespace function passes ``dtype=`` on. ``__array_namespace_info__()``
answers for the backend of the ``device`` it is asked about (NumPy when none is given).
"""

from __future__ import annotations

import math
from typing import Any

from .dtypes import TOKENS, backend_of_device, token_of

e = math.e
inf = math.inf
nan = math.nan
pi = math.pi
newaxis = None

bool = TOKENS["bool"]  # the standard's name
int8, int16, int32, int64 = (TOKENS[n] for n in ("int8", "int16", "int32", "int64"))
uint8, uint16, uint32, uint64 = (TOKENS[n] for n in ("uint8", "uint16", "uint32", "uint64"))
float32, float64 = TOKENS["float32"], TOKENS["float64"]
complex64, complex128 = TOKENS["complex64"], TOKENS["complex128"]


class Info:
    """The standard's inspection object, answered by the backend of ``device`` (else NumPy).

    Dtypes come back as fwdtensor tokens, so they work with every backend.

    >>> import fwdtensor as ft
    >>> ft.__array_namespace_info__().default_dtypes()["real floating"]
    fwdtensor.float64
    """

    def _backend(self, device: Any = None) -> Any:
        return backend_of_device(device).__array_namespace_info__()

    def capabilities(self) -> dict:
        """What the default backend (NumPy) supports: boolean indexing, data-dependent shapes."""
        return self._backend().capabilities()

    def default_device(self) -> Any:
        """The default backend's default device (NumPy's ``"cpu"``)."""
        return self._backend().default_device()

    def devices(self) -> list:
        """The default backend's devices."""
        return self._backend().devices()

    def default_dtypes(self, *, device: Any = None) -> dict[str, Any]:
        """The default dtypes of the backend of ``device``, as fwdtensor tokens."""
        found = self._backend(device).default_dtypes(device=device)
        return {k: token_of(v) for k, v in found.items()}

    def dtypes(self, *, device: Any = None, kind: str | tuple[str, ...] | None = None) -> dict[str, Any]:
        """The dtypes the backend of ``device`` supports (of ``kind``), as fwdtensor tokens."""
        found = self._backend(device).dtypes(device=device, kind=kind)
        return {k: token_of(v) for k, v in found.items()}


def __array_namespace_info__() -> Info:
    """The standard's inspection object for the fwdtensor namespace (see ``Info``)."""
    return Info()


__all__ = [
    "e", "inf", "nan", "pi", "newaxis", "bool",
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float32", "float64", "complex64", "complex128",
]  # fmt: skip
