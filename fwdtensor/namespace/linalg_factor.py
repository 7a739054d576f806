"""Rules for factorisations outside the Array API standard: ``lu_factor`` and ``lu_solve``.

Signatures follow SciPy: ``lu_factor(a) -> (lu, piv)`` packs the unit lower triangle L
(without its diagonal) and the upper triangle U of ``a = P L U`` into one square matrix,
``piv`` lists LAPACK's row interchanges (0-based: row i was swapped with row ``piv[i]``,
in order); ``lu_solve((lu, piv), b)`` solves ``a x = b`` for a vector or a matrix ``b``.
They take one square matrix (no stacks). The primal uses SciPy on NumPy and
``torch.linalg`` on PyTorch; other backends (array-api-strict, ...) and nested duals run a
partial-pivoting elimination written with Array API operations.

Tangents (B directions at once, one factorisation shared):

* ``lu_factor``: with ``F = L^{-1} P^T da U^{-1}``, ``dL = L stril(F)`` and ``dU = triu(F) U``;
  the packed tangent is ``dL + dU``. The pivots are piecewise constant (no tangent).
* ``lu_solve``: ``dx = a^{-1} (db - da x)`` with ``da = P (dL U + L dU)`` read from the
  packed tangent of ``lu``; the B directions go through one more ``lu_solve``.

These are not names of the standard, so they are not in ``ALL_RULES`` (which mirrors the
standard); ``fwdtensor.linalg`` adds them. The module lives outside ``rules/`` because
partial pivoting decides on the host: the pivots are read back (one transfer of n integers
per factorisation or solve), and the generic elimination syncs once per column to pick its
pivot; the rules proper never leave the device.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import array_api_compat

from ..core import dual as _core
from ..core import errors as _errors
from ..core.dual import DualTensor
from ..rules._forms import Rule

# Below this size NumPy matrices skip SciPy: its LAPACK calls cost about a millisecond each on
# small matrices when the BLAS threads compete for cores, and elimination in NumPy is cheap.
_SMALL = 24


# ------------------------------------------------------------------ helpers
def _is_dual(x: Any) -> bool:
    return type(x) is DualTensor


def _device(x: Any) -> Any:
    while type(x) is DualTensor:
        x = x.primal
    return array_api_compat.device(x)


def _check_square(a: Any) -> None:
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"lu_factor needs one square matrix (n, n), got shape {tuple(a.shape)}")


def _perm(xp: Any, piv: Any, n: int) -> list[int]:
    """The row order ``perm`` with ``(P^T a)[i] = a[perm[i]]`` from LAPACK interchanges."""
    perm = list(range(n))
    sw = [int(piv[i]) for i in range(piv.shape[0])]  # one host transfer of n integers
    for i, j in enumerate(sw):
        perm[i], perm[j] = perm[j], perm[i]
    return perm


def _take_rows(xp: Any, x: Any, rows: list[int], axis: int) -> Any:
    idx = xp.asarray(rows, dtype=xp.int64, device=_device(x))
    return xp.take(x, idx, axis=axis)


def _triangles(xp: Any, lu: Any) -> tuple[Any, Any]:
    """``L`` (unit diagonal) and ``U`` from the packed factor."""
    n = lu.shape[0]
    dt = lu.dtype
    eye = xp.eye(n, dtype=dt, device=_device(lu))
    return xp.add(xp.tril(lu, k=-1), eye), xp.triu(lu)


# ------------------------------------------------------------------ primals
def _lu_generic(xp: Any, a: Any) -> tuple[Any, Any]:
    """Doolittle elimination with partial pivoting in Array API operations (one host sync a column)."""
    n = a.shape[0]
    lu = xp.asarray(a, copy=True)
    piv = []
    for k in range(n):
        p = k + int(xp.argmax(xp.abs(lu[k:, k])))
        piv.append(p)
        if p != k:
            row = xp.asarray(lu[k, :], copy=True)
            lu[k, :] = lu[p, :]
            lu[p, :] = row
        if k + 1 < n:
            col = lu[k + 1 :, k] / lu[k, k]
            lu[k + 1 :, k] = col
            lu[k + 1 :, k + 1 :] = lu[k + 1 :, k + 1 :] - xp.reshape(col, (-1, 1)) * xp.reshape(
                lu[k, k + 1 :], (1, -1)
            )
    return lu, xp.asarray(piv, dtype=xp.int32, device=_device(a))


def _lu_factor_f(xp: Any, a: Any) -> tuple[Any, Any]:
    _check_square(a)
    if _is_dual(a):  # a nested level: the rule again, one level down
        return _core.FT.linalg.lu_factor(a)
    if array_api_compat.is_numpy_array(a) and a.shape[0] > _SMALL:
        import scipy.linalg

        return scipy.linalg.lu_factor(a, check_finite=False)
    if array_api_compat.is_torch_array(a):
        import torch

        lu, piv = torch.linalg.lu_factor(a)
        return lu, piv.to(torch.int32) - 1  # torch counts rows from 1
    return _lu_generic(xp, a)


def _as_matrix(xp: Any, b: Any) -> tuple[Any, bool]:
    return (xp.reshape(b, (b.shape[0], 1)), True) if b.ndim == 1 else (b, False)


def _lu_solve_f(xp: Any, lu: Any, piv: Any, b: Any) -> Any:
    n = lu.shape[0]
    if b.ndim not in (1, 2) or b.shape[0] != n:
        raise ValueError(f"lu_solve: b must have shape ({n},) or ({n}, k), got {tuple(b.shape)}")
    if not (_is_dual(lu) or _is_dual(b)):
        if array_api_compat.is_numpy_array(lu) and array_api_compat.is_numpy_array(b) and n > _SMALL:
            import scipy.linalg

            return scipy.linalg.lu_solve((lu, piv), b, check_finite=False)
        if array_api_compat.is_torch_array(lu):
            import torch

            bm, vec = _as_matrix(xp, b)
            x = torch.linalg.lu_solve(lu, piv.to(torch.int32) + 1, bm)
            return x[:, 0] if vec else x
    # generic (and nested duals): forward and back substitution through the standard's solve
    L, U = _triangles(xp, lu)
    y = xp.linalg.solve(L, _take_rows(xp, b, _perm(xp, piv, n), 0))
    return xp.linalg.solve(U, y)


# ----------------------------------------------------------- tangent helpers
def _columns(xp: Any, t: Any) -> tuple[Any, tuple]:
    """``(B, n, k)`` directions as one ``(n, B*k)`` right-hand side (and how to undo it)."""
    B, n, k = t.shape
    return xp.reshape(xp.permute_dims(t, (1, 0, 2)), (n, B * k)), (B, n, k)


def _uncolumns(xp: Any, x: Any, shape: tuple) -> Any:
    B, n, k = shape
    return xp.permute_dims(xp.reshape(x, (n, B, k)), (1, 0, 2))


def _tri_solve(xp: Any, m: Any, rhs: Any, *, lower: bool, trans: bool) -> Any:
    """Solve ``m x = rhs`` (or ``m^T x = rhs``) for a triangular ``m`` and a matrix ``rhs``."""
    if not (_is_dual(m) or _is_dual(rhs)):
        if array_api_compat.is_numpy_array(m) and m.shape[0] > _SMALL:
            import scipy.linalg

            return scipy.linalg.solve_triangular(
                m, rhs, lower=lower, trans=1 if trans else 0, check_finite=False
            )
        if array_api_compat.is_torch_array(m):
            import torch

            mm = m.mT if trans else m
            return torch.linalg.solve_triangular(mm, rhs, upper=(lower == trans))
    return xp.linalg.solve(xp.matrix_transpose(m) if trans else m, rhs)


# ------------------------------------------------------------------- rules
def _lu_factor_jvp(xp: Any, primals: list, tangents: list) -> tuple:
    (a,), (ta,) = primals, tangents
    lu, piv = _lu_factor_f(xp, a)
    n = a.shape[0]
    L, U = _triangles(xp, lu)
    g = _take_rows(xp, ta, _perm(xp, piv, n), 1)  # P^T da, each direction
    cols, shape = _columns(xp, g)
    g = _uncolumns(xp, _tri_solve(xp, L, cols, lower=True, trans=False), shape)  # L^{-1} P^T da
    cols, shape = _columns(xp, xp.matrix_transpose(g))
    f = xp.matrix_transpose(_uncolumns(xp, _tri_solve(xp, U, cols, lower=False, trans=True), shape))
    dlu = xp.add(xp.matmul(L, xp.tril(f, k=-1)), xp.matmul(xp.triu(f), U))
    return (lu, piv), (dlu, None)


def _lu_solve_jvp(xp: Any, primals: list, tangents: list) -> tuple:
    lu, piv, b = primals
    tlu, _, tb = tangents
    x = _lu_solve_f(xp, lu, piv, b)
    n = lu.shape[0]
    perm = _perm(xp, piv, n)
    xm, vec = _as_matrix(xp, x)
    r = None  # the B right-hand sides, already in L U's row order: P^T db - (dL U + L dU) x
    if tb is not None:
        tbm = xp.reshape(tb, (tb.shape[0], n, 1)) if vec else tb
        r = _take_rows(xp, tbm, perm, 1)
    if tlu is not None:
        L, U = _triangles(xp, lu)
        dl, du = xp.tril(tlu, k=-1), xp.triu(tlu)
        v = xp.add(xp.matmul(dl, xp.matmul(U, xm)), xp.matmul(L, xp.matmul(du, xm)))
        r = xp.negative(v) if r is None else xp.subtract(r, v)
    if r.shape[1:] != xm.shape:
        r = xp.broadcast_to(r, (r.shape[0], *xm.shape))
    cols, shape = _columns(xp, r)
    # A^{-1} P r = U^{-1} L^{-1} r: the inverse row order first, then the factor's own solve
    inv = [0] * n
    for i, p in enumerate(perm):
        inv[p] = i
    dx = _uncolumns(xp, _lu_solve_f(xp, lu, piv, _take_rows(xp, cols, inv, 0)), shape)
    return x, (xp.reshape(dx, dx.shape[:-1]) if vec else dx)


def _refuse_trans(trans: int) -> None:
    if trans != 0:
        raise _errors.NotDifferentiableError(
            f"fwdtensor.linalg.lu_solve supports trans=0 only, got trans={trans}; solve with the "
            "transposed matrix's own factorisation (lu_factor(a.T)) instead"
        )


RULES: tuple[Rule, ...] = (
    Rule(
        "linalg.lu_factor",
        "general",
        "diff",
        _lu_factor_f,
        jvp=_lu_factor_jvp,
        args=("a",),
        domain="invertible",
    ),
    Rule(
        "linalg.lu_solve",
        "general",
        "diff",
        _lu_solve_f,
        jvp=_lu_solve_jvp,
        args=("lu", "piv", "b"),
        domain="invertible",
    ),
)


def public_functions() -> dict:
    """``lu_factor`` and ``lu_solve`` with SciPy's signatures, built on the two rules."""
    from .build import function_of

    factor, solve = (function_of(r) for r in RULES)

    def lu_factor(a: Any) -> tuple[Any, Any]:
        """LU factorisation with partial pivoting, ``a = P L U``, packed as SciPy's ``(lu, piv)``.

        Differentiable in ``a`` (the pivots are constants); see ``lu_solve``.
        """
        return factor(a)

    def lu_solve(lu_and_piv: tuple[Any, Any], b: Any, trans: int = 0) -> Any:
        """Solve ``a x = b`` from ``lu_factor(a)``; differentiable in the factor and in ``b``."""
        _refuse_trans(trans)
        lu, piv = lu_and_piv
        return solve(lu, piv, b)

    def expm(a: Any) -> Any:
        """Matrix exponential (scaling and squaring with a (6, 6) Pade approximant); differentiable.

        Written with fwdtensor operations, so its derivative (any order, any backend) is the
        exact derivative of the approximation, accurate to about the approximation itself.
        """
        return _expm(a)

    # the rows the stub and coverage generators read: written functions with their own signatures
    for fn, rule in zip((lu_factor, lu_solve), RULES):
        fn.rule = dataclasses.replace(rule, meta={"function": fn})  # type: ignore[attr-defined]
    for fn in (lu_factor, lu_solve):
        fn.__module__ = "fwdtensor.linalg"
    expm.__module__ = "fwdtensor.linalg"
    return {"lu_factor": lu_factor, "lu_solve": lu_solve, "expm": expm}


# (6, 6) Pade coefficients of exp: c_k = (2q - k)! q! / ((2q)! k! (q - k)!), q = 6
_PADE6 = tuple(
    math.factorial(12 - k)
    * math.factorial(6)
    / (math.factorial(12) * math.factorial(k) * math.factorial(6 - k))
    for k in range(7)
)


def _expm(a: Any) -> Any:
    ft = _core.FT  # the namespace, so nested duals recurse

    _check_square(a)
    inner = a
    while type(inner) is DualTensor:
        inner = inner.primal
    xp = array_api_compat.array_namespace(inner)
    n = a.shape[0]
    # scale so that the 1-norm is at most 1/2: the approximant's error is then below 1e-16
    norm = float(xp.max(xp.sum(xp.abs(inner), axis=0))) if n else 0.0
    s = max(0, math.ceil(math.log2(norm / 0.5))) if norm > 0.5 else 0
    x = ft.divide(a, float(2**s))
    eye = xp.eye(n, dtype=inner.dtype, device=array_api_compat.device(inner))
    num = eye * _PADE6[0]
    den = eye * _PADE6[0]
    power = None
    for k in range(1, 7):
        power = x if power is None else ft.matmul(power, x)
        num = ft.add(num, power * _PADE6[k])
        den = ft.add(den, power * (_PADE6[k] * (-1) ** k))
    r = ft.linalg.solve(den, num)
    for _ in range(s):
        r = ft.matmul(r, r)
    return r
