"""Nesting levels: every transform opens a fresh, higher level than any before it.

Levels come from one process-wide counter, so a transform opened inside another always
gets the higher number and outer duals are constants for it. Level 0 belongs to duals
that users build by hand with ``DualTensor(primal, tangent)``.
"""

from __future__ import annotations

import itertools

USER_LEVEL = 0
_counter = itertools.count(1)


def new_level() -> int:
    """Return a level higher than every level handed out so far (thread safe under the GIL)."""
    return next(_counter)
