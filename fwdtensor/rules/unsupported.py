"""Rules for the ``unsupported``  functions of the standard (filled in by its own issue)."""

from __future__ import annotations

from ._forms import Rule

RULES: tuple[Rule, ...] = ()

# name -> why it has no derivative rule (shown in the coverage table).
UNSUPPORTED: dict[str, str] = {}
