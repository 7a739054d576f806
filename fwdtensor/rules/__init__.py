"""The rule tables, one module per chapter of the standard, collected in one tuple.

Nothing registers itself on import: ``ALL_RULES`` is the explicit list the namespace,
the coverage page and the tests are generated from.
"""

from __future__ import annotations

from . import (
    creation,
    data_types,
    elementwise,
    fft,
    indexing,
    linalg,
    linear_algebra,
    manipulation,
    searching,
    sorting,
    special,
    statistical,
    unsupported,
)
from ._forms import Rule

ALL_RULES: tuple[Rule, ...] = (
    *elementwise.RULES,
    *manipulation.RULES,
    *statistical.RULES,
    *linear_algebra.RULES,
    *indexing.RULES,
    *searching.RULES,
    *sorting.RULES,
    *creation.RULES,
    *data_types.RULES,
    *linalg.RULES,
    *fft.RULES,
    *special.RULES,
)

# Names of the standard deliberately without a rule, each with its reason.
UNSUPPORTED: dict[str, str] = dict(unsupported.UNSUPPORTED)

__all__ = ["ALL_RULES", "UNSUPPORTED", "Rule"]
