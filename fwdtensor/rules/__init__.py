"""The rule tables, one module per chapter of the standard, collected in one tuple.

Nothing registers itself on import: ``ALL_RULES`` is the explicit list the namespace,
the coverage page and the tests are generated from.
"""

from __future__ import annotations

from . import creation, elementwise, indexing, linear_algebra, manipulation, statistical
from ._forms import Rule

ALL_RULES: tuple[Rule, ...] = (
    *elementwise.RULES,
    *manipulation.RULES,
    *statistical.RULES,
    *linear_algebra.RULES,
    *indexing.RULES,
    *creation.RULES,
)

__all__ = ["ALL_RULES", "Rule"]
