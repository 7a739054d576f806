"""fwdtensor: forward-mode automatic differentiation for Array API programs.

``import fwdtensor as ft`` gives the transforms (``ft.jvp``, ``ft.jacfwd``, ...), the
``DualTensor`` type and an Array API namespace (``ft.sin``, ``ft.sum``, ``ft.linalg``...)
whose functions accept duals and plain arrays of any backend alike. It is also what
``DualTensor.__array_namespace__()`` returns, so code written against the standard runs
on duals unchanged.
"""

from __future__ import annotations

import importlib
import sys
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _dist_version
from typing import TYPE_CHECKING

from . import _core, _debug
from ._core import DualTensor
from ._custom import custom_jvp
from ._debug import debug_nans, set_debug_nans
from ._errors import (
    BackendMismatchError,
    DebugNaNError,
    DerivativeLostError,
    FwdTensorError,
    NotDifferentiableError,
    ResultTooLargeError,
    StructureError,
    TangentError,
)
from ._fuse import FuseError, FuseWarning, fuse
from ._fused import is_fused, set_fused
from ._namespace import build as _build
from ._namespace_extras import *  # noqa: F403  (constants, dtypes, inspection: see its __all__)
from ._namespace_extras import __all__ as _extras_all
from ._sparse import SparseJacobian, SparsityPattern, color_columns, sparse_jacfwd, sparsity_pattern
from ._transforms import (
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
from .rules.creation import asarray

# DualTensor.__getitem__/__setitem__ reach these through the namespace (FT._getitem).
from .rules.indexing import getitem as _getitem  # noqa: F401
from .rules.indexing import setitem as _setitem  # noqa: F401

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

_core.FT = sys.modules[__name__]
_debug._init_from_env()

from . import fft, linalg, special  # noqa: E402  (the extensions need the namespace above)
from ._distributed import DistributedError, distributed_jacfwd  # noqa: E402

# NumPy's protocols (np.sin(d), np.sum(d), d.sum()) reach the namespace through this hook.
_core.NUMPY = importlib.import_module(__name__ + "._numpy_protocols")

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
