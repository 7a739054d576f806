"""The ``linalg`` extension of the namespace, on duals and plain arrays.

Besides the standard's functions it offers SciPy-style ``lu_factor``/``lu_solve`` with
tangents and ``expm`` (``_linalg_factor.py``); the implicit ODE solvers use the LU pair.
"""

from __future__ import annotations

from .namespace import linalg_factor as _factor
from .namespace.build import build as _build

_functions = _build("linalg.")
_functions.update(_factor.public_functions())
globals().update(_functions)
__all__ = sorted(_functions)
