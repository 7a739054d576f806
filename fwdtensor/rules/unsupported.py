"""Functions of the standard that deliberately have no derivative rule, each with its reason.

Keys are rule names (``"sort"``, ``"linalg.matrix_rank"`` for the extensions); the reason
is shown in docs/coverage.md (``python tools/gen_coverage.py``). A function listed here
must not also have a rule: the coverage test checks both.
"""

from __future__ import annotations

from ._forms import Rule

RULES: tuple[Rule, ...] = ()

# name -> why it has no derivative rule (shown in the coverage table).
UNSUPPORTED: dict[str, str] = {}
