"""The registration protocol: how the layers above hand the core what it needs.

The core (``fwdtensor/core/``) imports nothing above it. Where it must call up (an
operator needs the rule for ``add``, ``x.T`` needs the namespace, ``x.compute()`` needs
Dask), it reads a slot that the upper layers fill, once, at import time. This module is
the only writer of those slots, and ``fwdtensor/__init__.py`` is the only caller: it
wires the layers together after importing them. The core never fills a slot itself (as
JAX's ``ad.primitive_jvps`` is a dict in the core that the primitives fill).

Slots the core reads (declared in ``core/dual.py``, where the hot paths read them as globals):

- ``dual.FT``: the fwdtensor namespace module (``register_namespace``).
- ``dual.R``: every top-level rule by name, ``R.add`` (``register_rules``).
- ``dual.TRACED``: array types of tracing namespaces, which outrank plain arrays in a call
  (``register_traced``).
- ``dual._fused``: an object with ``enabled`` (bool), ``unary(rule, x)`` and
  ``binary(rule, a, b)`` returning a result or None: the fused elementwise kernels
  (``register_fused``).
- ``dual.LAZY``: ``"compute"`` and ``"persist"`` for lazy (Dask) duals (``register_lazy``).
- ``dual.NUMPY``: NumPy's protocols on duals (``__array_ufunc__``, ``__array_function__``,
  ``__torch_function__``, the array methods): an object with ``array_ufunc``,
  ``array_function``, ``torch_function`` and ``method`` (``register_numpy``).

Named entry points that a lower transform calls in a higher one, so the two never import
each other (``register_entry`` / ``entry``): ``"sparse_jacfwd"`` (``jacfwd(sparsity=...)``)
and ``"distributed_jacfwd"`` (``jacfwd(executor=...)``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

from . import dual
from .errors import FwdTensorError

__all__ = [
    "register_namespace",
    "register_rules",
    "register_traced",
    "register_fused",
    "register_lazy",
    "register_numpy",
    "register_entry",
    "entry",
]

_ENTRIES: dict[str, Callable] = {}


def register_namespace(namespace: ModuleType) -> None:
    """Make ``namespace`` what ``DualTensor.__array_namespace__`` returns and rules nest into."""
    dual.FT = namespace


def register_rules(rules: Iterable[Any]) -> None:
    """Register the rules the operators dispatch to (top-level names only: ``add``, not ``linalg.*``)."""
    for rule in rules:
        if "." not in rule.name:
            setattr(dual.R, rule.name, rule)


def register_traced(array_type: type) -> None:
    """Register the array type of a tracing namespace (it outranks plain arrays in a call)."""
    dual.TRACED.add(array_type)


def register_fused(kernels: Any) -> None:
    """Register fused elementwise kernels: ``enabled``, ``unary(rule, x)``, ``binary(rule, a, b)``."""
    dual._fused = kernels


def register_lazy(compute: Callable, persist: Callable) -> None:
    """Register how a lazy-backend dual is evaluated (``DualTensor.compute``/``persist``)."""
    dual.LAZY["compute"] = compute
    dual.LAZY["persist"] = persist


def register_numpy(protocols: Any) -> None:
    """Register what answers NumPy's protocols and array methods on duals (``namespace/numpy_protocols``)."""
    dual.NUMPY = protocols


def register_entry(name: str, fn: Callable) -> None:
    """Register an entry point of an upper transform under ``name`` (see the module docstring)."""
    _ENTRIES[name] = fn


def entry(name: str) -> Callable:
    """The entry point registered under ``name``; an error if nothing registered it."""
    try:
        return _ENTRIES[name]
    except KeyError:
        raise FwdTensorError(
            f"no {name!r} is registered: import fwdtensor (its __init__ registers the layers' hooks)"
        ) from None
