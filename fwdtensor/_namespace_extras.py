"""The parts of the namespace that are not functions of arrays: constants and dtypes.

Dtype objects and inspection delegate to NumPy's Array API namespace for now; functions
that take a ``dtype`` pass it to the backend of their array arguments.
"""

from __future__ import annotations

import math

import array_api_compat.numpy as _np

e = math.e
inf = math.inf
nan = math.nan
pi = math.pi
newaxis = None

bool = _np.bool  # noqa: A001
int8, int16, int32, int64 = _np.int8, _np.int16, _np.int32, _np.int64
uint8, uint16, uint32, uint64 = _np.uint8, _np.uint16, _np.uint32, _np.uint64
float32, float64 = _np.float32, _np.float64
complex64, complex128 = _np.complex64, _np.complex128

__all__ = [
    "e", "inf", "nan", "pi", "newaxis", "bool",
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float32", "float64", "complex64", "complex128",
]  # fmt: skip
