"""The ``fft`` extension of the namespace, on duals and plain arrays."""

from __future__ import annotations

from .namespace.build import build as _build

_functions = _build("fft.")
globals().update(_functions)
__all__ = sorted(_functions)
