"""Rules for the ``fft``  functions of the standard (filled in by its own issue)."""

from __future__ import annotations

from ._forms import Rule

RULES: tuple[Rule, ...] = ()
