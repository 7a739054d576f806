"""Nested tuples, lists and dicts of arrays ("pytrees"): flatten and rebuild them.

Dict keys are visited in sorted order and ``None`` is an empty node, as in JAX, so the
same structure always flattens to the same list of leaves. Unlike JAX, a rebuilt dict has
the caller's insertion order: Python users read their own order back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Treedef = Any  # ("leaf",) | ("none",) | (kind, aux, children)


class _Keys(tuple):
    """A dict's keys in sorted order (leaf order, compared), remembering the insertion order."""

    order: tuple

    def __new__(cls, keys: list) -> _Keys:
        new = super().__new__(cls, sorted(keys))
        new.order = tuple(keys)
        return new


def flatten(tree: Any) -> tuple[list, Treedef]:
    """The leaves of ``tree`` in a fixed order, and a description to rebuild it."""
    leaves: list = []
    return leaves, _flatten(tree, leaves)


def _flatten(tree: Any, leaves: list) -> Treedef:
    if tree is None:
        return ("none",)
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        return ("namedtuple", type(tree), tuple(_flatten(c, leaves) for c in tree))
    if isinstance(tree, (tuple, list)):
        return (type(tree).__name__, None, tuple(_flatten(c, leaves) for c in tree))
    if isinstance(tree, dict):
        keys = _Keys(list(tree))
        return ("dict", keys, tuple(_flatten(tree[k], leaves) for k in keys))
    leaves.append(tree)
    return ("leaf",)


def unflatten(treedef: Treedef, leaves: list) -> Any:
    """Rebuild the structure described by ``treedef`` with ``leaves`` in order."""
    it = iter(leaves)
    return _unflatten(treedef, it)


def _unflatten(td: Treedef, it: Any) -> Any:
    kind = td[0]
    if kind == "leaf":
        return next(it)
    if kind == "none":
        return None
    children = [_unflatten(c, it) for c in td[2]]
    if kind == "tuple":
        return tuple(children)
    if kind == "list":
        return children
    if kind == "namedtuple":
        return td[1](*children)
    keys = td[1]
    by_key = dict(zip(keys, children))
    return {k: by_key[k] for k in getattr(keys, "order", keys)}


def num_leaves(treedef: Treedef) -> int:
    kind = treedef[0]
    if kind == "leaf":
        return 1
    if kind == "none":
        return 0
    return sum(num_leaves(c) for c in treedef[2])


def map_tree(fn: Callable, tree: Any) -> Any:
    leaves, td = flatten(tree)
    return unflatten(td, [fn(x) for x in leaves])


def describe(treedef: Treedef) -> str:
    """A compact text form of a structure for error messages, like ``(*, [*, *])``."""
    kind = treedef[0]
    if kind == "leaf":
        return "*"
    if kind == "none":
        return "None"
    inner = ", ".join(describe(c) for c in treedef[2])
    if kind == "list":
        return f"[{inner}]"
    if kind == "dict":
        return "{" + ", ".join(f"{k!r}: {describe(c)}" for k, c in zip(treedef[1], treedef[2])) + "}"
    return f"({inner}{',' if len(treedef[2]) == 1 else ''})"
