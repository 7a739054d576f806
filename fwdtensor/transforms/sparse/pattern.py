"""Sparsity patterns: the boolean structure of a Jacobian in CSR form on the host, and the
small helpers the sparse transforms share (argument position, ``has_aux`` split, namespaces).

* ``SparsityPattern``: the boolean structure of a Jacobian ``(out.size, in.size)`` in CSR
  form on the host (NumPy index arrays), from a boolean array or a scipy.sparse matrix.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from ...core import backend as _backend

__all__ = ["SparsityPattern", "as_pattern"]


# ------------------------------------------------------------------ patterns
class SparsityPattern:
    """The structure of a Jacobian: which outputs depend on which inputs (CSR, on the host).

    ``shape`` is ``(m, n)`` for ``m`` output and ``n`` input elements (flattened in C order);
    ``indptr`` and ``indices`` are NumPy int64 arrays, column indices sorted in each row.
    """

    __slots__ = ("shape", "indptr", "indices")

    def __init__(self, shape: tuple[int, int], indptr: Any, indices: Any) -> None:
        self.shape = (int(shape[0]), int(shape[1]))
        self.indptr = np.asarray(indptr, dtype=np.int64)
        self.indices = np.asarray(indices, dtype=np.int64)

    @property
    def nnz(self) -> int:
        """Number of structurally nonzero entries."""
        return int(self.indices.shape[0])

    def rows(self) -> np.ndarray:
        """Row index of every stored entry, in storage order."""
        return np.repeat(np.arange(self.shape[0], dtype=np.int64), np.diff(self.indptr))

    def toarray(self) -> np.ndarray:
        """The pattern as a dense NumPy boolean array."""
        out = np.zeros(self.shape, dtype=bool)
        out[self.rows(), self.indices] = True
        return out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        """The dense boolean pattern (``np.asarray(pattern)``)."""
        a = self.toarray()
        return a if dtype is None else a.astype(dtype)

    def to_scipy(self) -> Any:
        """The pattern as a ``scipy.sparse.csr_array`` of booleans (needs SciPy)."""
        sp = scipy_sparse()
        data = np.ones(self.nnz, dtype=bool)
        return sp.csr_array((data, self.indices.copy(), self.indptr.copy()), shape=self.shape)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SparsityPattern):
            return NotImplemented
        return (
            self.shape == other.shape
            and np.array_equal(self.indptr, other.indptr)
            and np.array_equal(self.indices, other.indices)
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"SparsityPattern(shape={self.shape}, nnz={self.nnz})"


def as_pattern(p: Any) -> SparsityPattern:
    """A ``SparsityPattern`` from a pattern, a 2-D boolean array or a scipy.sparse matrix."""
    if isinstance(p, SparsityPattern):
        return p
    if hasattr(p, "tocsr") and hasattr(p, "nnz"):  # scipy.sparse (matrix or array)
        csr = p.tocsr()
        csr = csr.copy()
        csr.eliminate_zeros()  # stored zeros of a boolean pattern are not structure
        csr.sort_indices()
        if len(csr.shape) != 2:
            raise ValueError(f"a sparsity pattern must be 2-D (outputs x inputs), got shape {csr.shape}")
        return SparsityPattern(csr.shape, csr.indptr, csr.indices)
    if _backend.is_array(p) or isinstance(p, (list, tuple)):
        a = _host(p) if _backend.is_array(p) else np.asarray(p)
        if a.ndim != 2:
            raise ValueError(
                f"a sparsity pattern must be 2-D (out.size, in.size), got shape {a.shape}; "
                "reshape it or pass a scipy.sparse matrix"
            )
        if a.dtype != bool and not np.issubdtype(a.dtype, np.number):
            raise TypeError(f"a sparsity pattern must be boolean (or numeric), got dtype {a.dtype}")
        nz = a != 0
        indptr = np.concatenate([[0], np.cumsum(nz.sum(axis=1))])
        return SparsityPattern(a.shape, indptr, np.nonzero(nz)[1])
    raise TypeError(
        "sparsity must be a boolean array, a scipy.sparse matrix or a SparsityPattern, "
        f"got {type(p).__name__}"
    )


def scipy_sparse() -> ModuleType:
    """``scipy.sparse``, or an ImportError that says how to do without it (internal)."""
    try:
        import scipy.sparse as sp
    except ImportError:
        raise ImportError(
            "sparse Jacobians of NumPy arrays are scipy.sparse matrices and SciPy is not "
            "installed: pip install scipy, or pass output='dense'"
        ) from None
    return sp


_host = _backend.to_host
