"""Pieces shared by the stiff solvers: the right-hand side on a flat state, its Jacobian
(forward mode, a user's ``jac``, or a sparse colouring), its time derivative, and a
factorised iteration matrix whose solves carry tangents.

The stiff solvers work on the state flattened to ``(n,)`` so that the Jacobian is an
``(n, n)`` matrix; the user's ``fun`` still sees the state's own shape.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import array_api_compat

import fwdtensor as ft

from ..core import backend as _backend
from ..core import dual as _core
from ..core import tree as _tree
from ..core.dual import DualTensor

_innermost = _core.innermost


class FlatProblem:
    """``fun`` on a flat state ``(n,)``, with counters of its evaluations and Jacobians."""

    def __init__(self, fun: Callable, args: tuple, shape: tuple, jac: Callable | None, sparsity: Any) -> None:
        self.fun, self.args, self.shape = fun, args, shape
        self.n = math.prod(shape)
        self.jac, self.sparsity = jac, sparsity
        self.primal_args = tuple(_tree.map_tree(_innermost, list(args)))
        self.nfev = 0
        self.njev = 0
        self.nlu = 0
        self._t = 0.0  # the time the coloured Jacobian below is taken at
        self._sparse = self._sparse_primal = None
        if sparsity is not None:  # colour once; every step then costs one pass of ncolors directions
            self._sparse = ft.sparse_jacfwd(lambda z: self(self._t, z), sparsity, output="dense")
            self._sparse_primal = ft.sparse_jacfwd(lambda z: self(self._t, z, True), sparsity, output="dense")

    def __call__(self, t: Any, y: Any, primal: bool = False) -> Any:
        """``fun`` at ``(t, y)``; ``primal=True`` passes the arguments without their tangents."""
        args = self.primal_args if primal else self.args
        if primal and type(y) is DualTensor:  # constant duals next to a dual state (array-api-strict)
            args = tuple(_tree.map_tree(lambda a: _lift(a, y), list(args)))
        k = self._call(t, y, args)
        # primal values are plain arrays for the solver's own arithmetic (the namespace's
        # results are constant duals, which array-api-strict refuses beside its arrays)
        return _core.bare(k) if primal else k

    def _call(self, t: Any, y: Any, args: tuple) -> Any:
        self.nfev += 1
        if self.shape != (self.n,):  # plain states stay plain (ft.* would make them constants)
            y = (
                ft.reshape(y, self.shape)
                if type(y) is DualTensor
                else _backend.namespace_of(y).reshape(y, self.shape)
            )
        k = self.fun(t, y, *args)
        if type(k) is not DualTensor and not _backend.is_array(k):
            raise TypeError(
                f"fun must return an array of the state's shape {self.shape}, got {type(k).__name__}"
            )
        if tuple(k.shape) != self.shape:
            raise ValueError(
                f"fun returned shape {tuple(k.shape)} at t={t} but the state has shape {self.shape}"
            )
        return ft.reshape(k, (self.n,)) if self.shape != (self.n,) else k

    def jacobian(self, t: float, y: Any, primal: bool = False) -> Any:
        """``d fun / d y`` at ``(t, y)`` as an ``(n, n)`` matrix (a dual when y or args are,
        unless ``primal``: then of the arguments without tangents)."""
        self.njev += 1
        n = self.n
        if self.jac is not None:
            J = self.jac(t, ft.reshape(y, self.shape), *(self.primal_args if primal else self.args))
            if tuple(J.shape) not in ((n, n), (*self.shape, *self.shape)):
                raise ValueError(f"jac returned shape {tuple(J.shape)}; expected ({n}, {n})")
            return ft.reshape(J, (n, n))
        if self._sparse is not None and not primal:
            self._t = t
            return ft.reshape(self._sparse(y), (n, n))
        if self._sparse_primal is not None and primal:
            self._t = t
            return ft.reshape(self._sparse_primal(y), (n, n))
        return ft.jacfwd(lambda z: self(t, z, primal))(y)

    def time_derivative(self, t: float, y: Any, f0: Any) -> Any:
        """``d fun / d t`` at ``(t, y)`` by a forward difference (as Hairer's RODAS does).

        Not forward mode: a ``fun`` that calls ``math.cos(t)`` turns a dual time into a float
        and would silently drop the term. The difference's error only perturbs the method's
        coefficients by about sqrt(eps); the tangents stay consistent with the values.
        """
        inner = _innermost(y)
        eps = float(_backend.namespace_of(inner).finfo(inner.dtype).eps)
        dt = math.sqrt(eps) * max(1.0, abs(t))
        return ft.divide(ft.subtract(self(t + dt, y), f0), (t + dt) - t)


def _lift(a: Any, like: DualTensor) -> Any:
    """A plain array leaf as a constant dual of ``like``'s level; anything else unchanged."""
    if type(a) is DualTensor or not _backend.is_array(a):
        return a
    return _core._make(a, None, like.level, 0, like._bxp)


def eye_like(y: Any, n: int) -> Any:
    inner = _innermost(y)
    xp = _backend.namespace_of(inner)
    return xp.eye(n, dtype=inner.dtype, device=array_api_compat.device(inner))


class Factored:
    """``M = c I - J`` factorised once (``ft.linalg.lu_factor``); ``solve`` carries tangents.

    When ``J`` is a dual the factor is too, and every solve pushes the tangents of ``J`` and
    of the right-hand side through the same factorisation (the implicit function theorem
    for the linear stage equations).
    """

    def __init__(self, J: Any, c: float, eye: Any, problem: FlatProblem) -> None:
        self.c = c
        self.lu = ft.linalg.lu_factor(ft.subtract(eye * c, J))
        problem.nlu += 1

    def solve(self, b: Any) -> Any:
        x = ft.linalg.lu_solve(self.lu, b)
        # a plain right-hand side with constant factors gives a plain solution, as the solver's
        # own arithmetic on the backend's arrays needs (array-api-strict refuses constant duals)
        return _core.bare(x) if type(b) is not DualTensor else x


def scaled_rms(xp: Any, e: Any, y: Any, y_new: Any, rtol: float, atol: float) -> float:
    """RMS of ``e / (atol + rtol * max(|y|, |y_new|))`` on primal values, as a Python float."""
    scale = xp.maximum(xp.abs(_innermost(y)), xp.abs(_innermost(y_new))) * rtol + atol
    r = _innermost(e) / scale
    return float(xp.sqrt(xp.mean(r * r)))


def all_finite(*arrays: Any) -> bool:
    for a in arrays:
        inner = _innermost(a)
        xp = _backend.namespace_of(inner)
        if not bool(xp.all(xp.isfinite(inner))):
            return False
    return True


def describe_state(y: Any, limit: int = 6) -> str:
    """A short text of a state's primal values for error messages (first ``limit`` entries)."""
    inner = _core.innermost(y)
    xp = _backend.namespace_of(inner)
    flat = xp.reshape(inner, (-1,))
    n = flat.shape[0]
    vals = ", ".join(f"{float(flat[i]):.6g}" for i in range(min(n, limit)))
    return f"[{vals}{', ...' if n > limit else ''}] (shape {tuple(inner.shape)})"
