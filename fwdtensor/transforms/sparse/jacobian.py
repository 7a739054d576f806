"""Compressed sparse Jacobians.

* ``sparse_jacfwd`` / ``SparseJacobian``: one direction per colour, pushed in one batched
  pass, then decompressed into a sparse matrix of the backend's family (scipy.sparse,
  cupyx.scipy.sparse, torch sparse CSR) or a dense array. The colouring is computed once,
  when the object is made, and reused by every call (a Newton iteration).

The patterns, the colouring and the detection live beside this module (``pattern.py``,
``coloring.py``, ``detect.py``); their public names are re-exported here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import array_api_compat
import numpy as np

from ...core import backend as _backend
from ...core import errors as _errors
from ...core import tree as _tree
from ...core.dual import DualTensor, innermost
from ...core.levels import new_level
from ..common import (
    check_chunk_size,
    check_differentiable_input,
    fresh_tree,
    leaf_array,
    ns,
    position,
    result_dtype,
    seed,
    split_aux,
    split_output,
    strip,
    unpack,
)
from .coloring import color_columns
from .detect import sparsity_pattern
from .pattern import SparsityPattern, as_pattern, scipy_sparse

__all__ = ["SparsityPattern", "SparseJacobian", "color_columns", "sparse_jacfwd", "sparsity_pattern"]


# ------------------------------------------------------- compressed Jacobians
def sparse_jacfwd(
    f: Callable,
    sparsity: Any = None,
    argnums: int = 0,
    *,
    has_aux: bool = False,
    chunk_size: int | None = None,
    output: str = "sparse",
    holomorphic: bool = False,
    progress: Any = False,
) -> SparseJacobian:
    """A reusable sparse-Jacobian function of ``f``: colours once, then one pass per call.

    ``sparsity`` is the pattern ``(out.size, in.size)`` (boolean array, scipy.sparse
    matrix or ``SparsityPattern``); ``None`` detects it with ``sparsity_pattern`` at the
    first call and keeps it. ``output="sparse"`` returns the backend's sparse matrix
    (scipy.sparse CSR for NumPy, cupyx for CuPy, torch sparse CSR), ``"dense"`` an array
    of shape ``out.shape + in.shape``. ``holomorphic=True`` takes complex inputs (with a
    given pattern) and gives df/dz; ``progress`` reports the colours done, as in ``jacfwd``.

    >>> import numpy as np, fwdtensor as ft
    >>> jac = ft.sparse_jacfwd(lambda x: x * x, np.eye(4, dtype=bool))
    >>> jac.ncolors, jac(np.arange(4.0)).toarray().diagonal().tolist()
    (1, [0.0, 2.0, 4.0, 6.0])
    """
    return SparseJacobian(
        f,
        sparsity,
        argnums,
        has_aux=has_aux,
        chunk_size=chunk_size,
        output=output,
        holomorphic=holomorphic,
        progress=progress,
    )


class SparseJacobian:
    """The Jacobian of ``f`` by compressed forward mode with a fixed colouring.

    Attributes: ``pattern`` (``SparsityPattern``), ``colors`` (colour of each input
    element), ``ncolors`` (directions per call), ``coloring_seconds`` (time the colouring
    took, once). Call it like ``f`` to get the Jacobian; ``value_and_jacobian`` gives both.
    """

    def __init__(
        self,
        f: Callable,
        sparsity: Any = None,
        argnums: int = 0,
        *,
        has_aux: bool = False,
        chunk_size: int | None = None,
        output: str = "sparse",
        holomorphic: bool = False,
        progress: Any = False,
    ) -> None:
        from .. import progress as _progress

        if isinstance(argnums, tuple):
            raise TypeError(
                "a sparse Jacobian differentiates one array argument: argnums must be an int, "
                f"got {argnums!r}"
            )
        argnums = _errors.as_index(
            argnums, "argnums (of a sparse Jacobian, one array argument)", None, "an int"
        )
        chunk_size = check_chunk_size(chunk_size)
        if output not in ("sparse", "dense"):
            raise ValueError(f"output must be 'sparse' or 'dense', got {output!r}")
        for name, v in (("has_aux", has_aux), ("holomorphic", holomorphic)):
            if not isinstance(v, bool):
                raise TypeError(f"{name} must be True or False, got {v!r}")
        _progress.check(progress)
        self.f, self.argnums, self.has_aux = f, argnums, has_aux
        self.chunk_size, self.output = chunk_size, output
        self.holomorphic, self.progress = holomorphic, progress
        self.pattern: SparsityPattern | None = None
        self.colors: np.ndarray | None = None
        self.ncolors = 0
        self.coloring_seconds = 0.0
        self.detection_seconds = 0.0
        self._cache: dict = {}
        if sparsity is not None:
            self._use(as_pattern(sparsity))

    def _use(self, P: SparsityPattern) -> None:
        t0 = time.perf_counter()
        colors = color_columns(P)
        self.coloring_seconds = time.perf_counter() - t0
        self.pattern, self.colors = P, colors
        self.ncolors = int(colors.max(initial=-1)) + 1
        self._cache = {}

    def __repr__(self) -> str:
        return f"SparseJacobian(pattern={self.pattern!r}, ncolors={self.ncolors})"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        (value, aux), jac = self._run(args, kwargs)
        return (jac, aux) if self.has_aux else jac

    def value_and_jacobian(self, *args: Any, **kwargs: Any) -> tuple:
        """``(value, jacobian)`` from one pass (``((value, aux), jacobian)`` with ``has_aux``)."""
        (value, aux), jac = self._run(args, kwargs)
        value, aux = fresh_tree((value, aux), _tree.flatten((args, kwargs))[0])  # results own their memory
        return ((value, aux), jac) if self.has_aux else (value, jac)

    # --------------------------------------------------------------- one call
    def _run(self, args: tuple, kwargs: dict) -> tuple:
        i = position(self.argnums, len(args))
        x = leaf_array(args[i], f"argument {self.argnums}")
        check_differentiable_input(x, self.holomorphic)
        if self.pattern is None:
            t0 = time.perf_counter()
            self._use(sparsity_pattern(self.f, *args, argnums=i, has_aux=self.has_aux, **kwargs))
            self.detection_seconds = time.perf_counter() - t0
        P = self.pattern
        n = math.prod(x.shape)
        if P.shape[1] != n:
            raise ValueError(
                f"the sparsity pattern has shape {P.shape} (outputs x inputs) but the input has "
                f"{n} elements (shape {tuple(x.shape)}); the pattern's second axis must match"
            )

        def g(xx: Any) -> Any:
            a = list(args)
            a[i] = xx
            return self.f(*a, **kwargs)

        value, aux, C = self._compressed(g, x)
        if not (type(value) is DualTensor or _backend.is_array(value)):
            raise _errors.StructureError(
                "a sparse Jacobian needs a function with a single array output, got "
                f"{type(value).__name__}; use ft.jacfwd for nested outputs"
            )
        m = math.prod(value.shape)
        if P.shape[0] != m:
            raise ValueError(
                f"the sparsity pattern has shape {P.shape} (outputs x inputs) but the output has "
                f"{m} elements (shape {tuple(value.shape)}); the pattern's first axis must match"
            )
        return (value, aux), self._decompress(C, value, x)

    def _compressed(self, g: Callable, x: Any) -> tuple:
        """Value, aux and the compressed Jacobian ``(ncolors, m)`` (None when there are no colours)."""
        if self.ncolors == 0:
            out = g(x)
            out, aux = split_output(out, self.has_aux)
            return out, aux, None
        from .. import progress as _progress

        seeds = self._seeds(x)
        k = self.chunk_size or self.ncolors
        parts, value, aux = [], None, None
        bar = _progress.reporter(self.progress, self.ncolors, "colour", "sparse_jacfwd")
        try:
            for s in range(0, self.ncolors, k):
                e = min(s + k, self.ncolors)
                chunk = seeds if (s, e) == (0, self.ncolors) else seeds[s:e, ...]
                level = new_level()
                out = g(seed(x, chunk, level, e - s))
                if self.has_aux:
                    out, a_ = split_aux(out)
                    aux = strip(a_, level) if aux is None else aux
                if not (type(out) is DualTensor or _backend.is_array(out)):
                    return out, aux, None  # reported by the caller
                o, t = unpack(out, level, e - s)
                value = o if value is None else value
                parts.append(t)
                bar.update(e - s)
        finally:
            bar.close()
        C = parts[0] if len(parts) == 1 else ns(parts[0]).concat(parts, axis=0)
        return value, aux, ns(C).reshape(C, (self.ncolors, math.prod(value.shape)))

    def _seeds(self, x: Any) -> Any:
        """One direction per colour, ``(ncolors, *x.shape)``, cached per backend and device."""
        xp, dev = _backend.namespace_of(innermost(x)), array_api_compat.device(innermost(x))
        key = ("seed", xp, dev, x.dtype, tuple(x.shape))
        s = self._cache.get(key)
        if s is None:
            onehot = self.colors[None, :] == np.arange(self.ncolors)[:, None]
            s = xp.asarray(onehot.reshape((self.ncolors, *x.shape)), dtype=x.dtype, device=dev)
            self._cache[key] = s
        return s

    def _index(self, xp: ModuleType, dev: Any, m: int, kind: str) -> Any:
        """Index arrays for decompression, moved to the device once."""
        key = (kind, xp, dev, m)
        a = self._cache.get(key)
        if a is None:
            P = self.pattern
            host = {
                "flat": self.colors[P.indices] * m + P.rows(),
                "indptr": P.indptr,
                "indices": P.indices,
                "colors": np.maximum(self.colors, 0),  # empty columns are masked out anyway
                "mask": P.toarray() if kind == "mask" else None,
            }[kind]
            itype = (
                xp.int32
                if (array_api_compat.is_cupy_namespace(xp) and kind in ("indptr", "indices"))
                else None
            )
            a = xp.asarray(host, device=dev) if itype is None else xp.asarray(host, dtype=itype, device=dev)
            self._cache[key] = a
        return a

    def _decompress(self, C: Any, value: Any, x: Any) -> Any:
        """The Jacobian from the compressed product ``C = J S`` (``S`` the colour seeds)."""
        P = self.pattern
        m, n = P.shape
        inner = innermost(value)
        bxp, dev = _backend.namespace_of(inner), array_api_compat.device(inner)
        dt = result_dtype(bxp, value, x)
        if self.output == "dense":
            if C is None:
                return bxp.zeros((*value.shape, *x.shape), dtype=dt, device=dev)
            xp = ns(C)
            D = xp.permute_dims(xp.take(C, self._index(bxp, dev, m, "colors"), axis=0), (1, 0))
            D = xp.where(self._index(bxp, dev, m, "mask"), D, xp.zeros_like(D))
            return xp.reshape(D, (*value.shape, *x.shape))
        if C is not None and type(C) is DualTensor:
            raise _errors.StructureError(
                "a sparse matrix cannot hold nested duals (this sparse Jacobian runs inside "
                "another transform); pass output='dense'"
            )
        if C is None:
            vals = bxp.zeros((P.nnz,), dtype=dt, device=dev)
        else:
            vals = bxp.take(bxp.reshape(C, (-1,)), self._index(bxp, dev, m, "flat"))
        return _sparse_matrix(
            bxp, vals, self._index(bxp, dev, m, "indptr"), self._index(bxp, dev, m, "indices"), (m, n)
        )


def _sparse_matrix(xp: ModuleType, vals: Any, indptr: Any, indices: Any, shape: tuple) -> Any:
    """A CSR matrix of the backend's own sparse family."""
    if array_api_compat.is_numpy_namespace(xp):
        return scipy_sparse().csr_array((vals, indices, indptr), shape=shape, copy=False)
    if array_api_compat.is_cupy_namespace(xp):
        import cupyx.scipy.sparse as csp

        return csp.csr_matrix((vals, indices, indptr), shape=shape)
    if array_api_compat.is_torch_namespace(xp):
        import warnings

        import torch

        with warnings.catch_warnings():  # torch warns that sparse CSR is in beta, every call
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            return torch.sparse_csr_tensor(indptr, indices, vals, size=shape, check_invariants=False)
    raise NotImplementedError(
        f"{xp.__name__} has no sparse matrix type fwdtensor knows; pass output='dense' "
        "to get the Jacobian as a dense array"
    )
