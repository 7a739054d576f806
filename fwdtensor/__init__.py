"""fwdtensor: forward-mode automatic differentiation for Array API programs.

``import fwdtensor as ft`` gives the transforms (``ft.jvp``, ``ft.jacfwd``, ...), the
``DualTensor`` type and an Array API namespace (``ft.sin``, ``ft.sum``, ``ft.linalg``...)
whose functions accept duals and plain arrays of any backend alike. It is also what
``DualTensor.__array_namespace__()`` returns, so code written against the standard runs
on duals unchanged.
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _dist_version
from typing import TYPE_CHECKING

from .core import debug as _debug
from .core import hooks as _hooks
from .core.debug import debug_nans, set_debug_nans
from .core.dual import DualTensor
from .core.errors import (
    BackendMismatchError,
    DebugNaNError,
    DerivativeLostError,
    FwdTensorError,
    NotDifferentiableError,
    ResultTooLargeError,
    StructureError,
    TangentError,
)
from .core.info import *  # noqa: F403  (constants, dtypes, inspection: see its __all__)
from .core.info import __all__ as _extras_all
from .fuse import kernels as _kernels
from .fuse.kernels import is_fused, set_fused
from .fuse.launch import FuseError, FuseWarning, fuse
from .fuse.trace import Sym as _Sym
from .namespace.build import build as _build
from .rules import ALL_RULES as _ALL_RULES
from .rules.creation import asarray

# DualTensor.__getitem__/__setitem__ reach these through the namespace (FT._getitem).
from .rules.indexing import getitem as _getitem  # noqa: F401
from .rules.indexing import setitem as _setitem  # noqa: F401
from .transforms.custom import custom_jvp
from .transforms.jacobian import (
    batched_jvp,
    derivative,
    get_memory_budget,
    grad,
    hessian,
    jacfwd,
    jvp,
    set_memory_budget,
    value_and_grad,
    value_and_jacfwd,
)
from .transforms.parallel import dask as _dask
from .transforms.sparse.jacobian import (
    SparseJacobian,
    SparsityPattern,
    color_columns,
    sparse_jacfwd,
    sparsity_pattern,
)

try:  # one source of truth: the installed distribution's metadata (pyproject.toml)
    __version__ = _dist_version("fwdtensor")
except PackageNotFoundError:  # pragma: no cover  (imported from a source tree that was never installed)
    __version__ = "0+unknown"
__array_api_version__ = "2025.12"

# The standard's functions, generated from the rule tables (names listed in _namespace_functions.pyi).
_functions = _build()
globals().update(_functions)
if TYPE_CHECKING:  # IDEs and type checkers see the generated names through the stub
    from ._namespace_functions import *  # noqa: F403

# The wiring: the layers above hand the core what it needs, here and nowhere else (see core/hooks.py).
_hooks.register_rules(_ALL_RULES)
_hooks.register_namespace(sys.modules[__name__])
_hooks.register_traced(_Sym)
_hooks.register_fused(_kernels)
_hooks.register_lazy(_dask.compute, _dask.persist)
_hooks.register_entry("sparse_jacfwd", sparse_jacfwd)
_hooks.register_entry("sparsity_pattern", sparsity_pattern)

from . import fft, linalg, special  # noqa: E402  (the extensions need the namespace above)
from .namespace import numpy_protocols as _numpy_protocols  # noqa: E402  (so do NumPy's protocols)
from .transforms.parallel.executors import DistributedError, distributed_jacfwd  # noqa: E402

_hooks.register_entry("distributed_jacfwd", distributed_jacfwd)
_debug.init_from_env()

# NumPy's protocols (np.sin(d), np.sum(d), d.sum()) reach the namespace through this hook.
_hooks.register_numpy(_numpy_protocols)

__all__ = [
    "DualTensor",
    "fuse",
    "FuseError",
    "FuseWarning",
    "set_fused",
    "is_fused",
    "jvp",
    "batched_jvp",
    "jacfwd",
    "value_and_jacfwd",
    "distributed_jacfwd",
    "DistributedError",
    "hessian",
    "derivative",
    "grad",
    "value_and_grad",
    "custom_jvp",
    "sparse_jacfwd",
    "sparsity_pattern",
    "SparsityPattern",
    "SparseJacobian",
    "color_columns",
    "set_memory_budget",
    "get_memory_budget",
    "asarray",
    "linalg",
    "fft",
    "special",
    "FwdTensorError",
    "TangentError",
    "BackendMismatchError",
    "DerivativeLostError",
    "NotDifferentiableError",
    "StructureError",
    "ResultTooLargeError",
    "DebugNaNError",
    "set_debug_nans",
    "debug_nans",
    *_extras_all,
    *sorted(_functions),
]
