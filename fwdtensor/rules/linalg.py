"""Rules for the ``linalg`` extension: exact forward-mode derivatives of every function.

Every rule works on stacks of matrices ``(..., m, n)`` and on a tangent with its leading
batch axis ``(B, ..., m, n)``: the B directions share one factorisation (an inverse, an
eigendecomposition, an SVD) and go through it as batched matrix products, never a loop.

Conventions (each also said where it is implemented):

* ``cholesky``, ``eigh``, ``eigvalsh`` read one triangle of a matrix the standard says is
  symmetric (Hermitian); the tangent is symmetrised first, ``(dA + dA^H) / 2``, which is
  the derivative on that domain and what JAX does.
* Coinciding eigenvalues (singular values), that is exactly equal ones: the eigenvectors
  (singular vectors) of a cluster are not unique, so their tangents are NaN. The values of
  a cluster get the derivative of the cluster's mean, which does not depend on the basis
  the backend picked (the same even split of ties that ``maximum`` uses). A singular value
  0 is a kink (like ``abs`` at 0): its tangent is 0, and its vectors' tangents are NaN.
  Values that are close but distinct get their exact (large) tangents.
* ``eig``: each eigenvector keeps the unit norm the backend gives it; its free phase is
  fixed by ``diag(V^{-1} dV) = 0`` before that normalisation (JAX's choice).
* ``det``, ``slogdet``, ``inv``, ``solve`` need an invertible matrix; at an exactly
  singular one the backend's own inverse raises (NumPy ``LinAlgError``, torch's error).
* ``pinv``: the derivative of the constant-rank pseudo-inverse (Golub and Pereyra), exact
  for full-rank matrices; where the rank changes ``pinv`` is discontinuous.
* ``qr(mode='complete')`` of a tall matrix and ``svd(full_matrices=True)`` of a non-square
  one return columns that are not unique: they raise instead of guessing a tangent.
* Norms at kinks follow JAX: zero slope of the 2-norm at 0, ``abs`` has slope 0 at 0, and
  ties of a max or min (``ord=inf``, ``1``, ``2``, ...) split the derivative evenly. A
  ``vector_norm`` with ``ord < 1`` has an infinite slope at a zero entry: NaN there.
"""

from __future__ import annotations

import math
from typing import Any

import array_api_compat

from ..core import errors as _errors
from ..core.backend import namespace_of
from ..core.batch import align, shift_axes
from ..core.dual import DualTensor
from . import linear_algebra as la
from ._forms import Rule, custom, linear, nondiff
from .linear_algebra import left, right


# ------------------------------------------------------------------ helpers
def _value(x: Any) -> Any:
    """The backend array under every level of ``x`` (masks depend only on it)."""
    while type(x) is DualTensor:
        x = x.primal
    return x


def _bxp(x: Any) -> Any:
    """The backend namespace of ``x`` (a dual's innermost arrays), for constants."""
    return x._bxp if type(x) is DualTensor else namespace_of(x)


def _is_complex(x: Any) -> bool:
    return _bxp(x).isdtype(x.dtype, "complex floating")


def _const(x: Any, make: Any, dtype: Any = None) -> Any:
    """A constant built by ``make(bxp, dtype, device)`` next to ``x`` (same backend, device)."""
    v = _value(x)
    return make(_bxp(x), v.dtype if dtype is None else dtype, array_api_compat.device(v))


def _real_dtype(x: Any) -> Any:
    """The real dtype of ``x``'s precision (``finfo(...).dtype`` is a string in torch)."""
    b, dt = _bxp(x), x.dtype
    if not b.isdtype(dt, "complex floating"):
        return dt
    return b.float64 if dt == b.complex128 else b.float32


def _eye(x: Any, n: int) -> Any:
    return _const(x, lambda b, dt, dev: b.eye(n, dtype=dt, device=dev), _real_dtype(x))


def _tril_mask(x: Any, n: int, k: int, diag: float = 1.0) -> Any:
    """Ones on and below diagonal ``k`` (the main diagonal, when included, set to ``diag``)."""

    def make(b: Any, dt: Any, dev: Any) -> Any:
        m = b.tril(b.ones((n, n), dtype=dt, device=dev), k=k)
        return m if diag == 1.0 else m - (1.0 - diag) * b.eye(n, dtype=dt, device=dev)

    return _const(x, make, _real_dtype(x))


def _mH(xp: Any, a: Any) -> Any:
    """The conjugate transpose of the last two axes."""
    a = xp.matrix_transpose(a)
    return xp.conj(a) if _is_complex(a) else a


def _re(xp: Any, a: Any) -> Any:
    return xp.real(a) if _is_complex(a) else a


def _sym(xp: Any, t: Any) -> Any:
    """``(t + t^H) / 2``: the tangent of a matrix known to be symmetric (Hermitian)."""
    return xp.add(t, _mH(xp, t)) * 0.5


def _sandwich(xp: Any, a: Any, t: Any, b: Any) -> Any:
    """``a @ t @ b`` for every direction of the tangent ``t``."""
    return right(xp, left(xp, a, t), b)


def _inner(xp: Any, g: Any, t: Any, axis: Any, keepdims: bool = False) -> Any:
    """``sum(Re(conj(g) * t))`` over the primal's ``axis``: the tangent of a real function
    whose gradient is ``g``."""
    p = _re(xp, xp.multiply(t, xp.conj(g) if _is_complex(g) else g))
    return xp.sum(p, axis=shift_axes(axis, t.ndim - 1), keepdims=keepdims)


def _diag_of(xp: Any, a: Any, m: Any) -> Any:
    """``diag(a^H m)`` for every direction of ``m``: one elementwise product and a sum."""
    return xp.sum(xp.multiply(m, xp.conj(a) if _is_complex(a) else a), axis=-2)


def _safe(xp: Any, y: Any) -> Any:
    """``y`` with its zeros replaced by ones (a divisor whose numerator is 0 there)."""
    v = _value(y)
    return xp.add(y, _bxp(y).astype(v == 0, v.dtype))


def _unit(xp: Any, x: Any) -> Any:
    """``x / |x|`` (``sign`` for real input), 0 where ``x`` is 0: the gradient of ``|x|``."""
    if not _is_complex(x):
        return xp.sign(x)
    return xp.divide(x, _safe(xp, xp.abs(x)))


# ------------------------------------------------------- ties of a spectrum
class _Spectrum:
    """What the tangents of a spectrum ``w`` (..., k) need to know about its ties.

    Built from the values only (ties are locally constant): ``mean`` averages a tangent
    over each cluster of equal values (giving 0 to a zero singular value when
    ``zero_kink``), ``nan_cols`` is NaN for the vectors that are not unique and 0 for the
    others, and ``gaps`` gives ``1 / (w_j - w_i)`` between distinct values, 0 elsewhere.
    """

    def __init__(self, w: Any, zero_kink: bool = False) -> None:
        b, v = _bxp(w), _value(w)
        dt, dev = v.dtype, array_api_compat.device(v)
        eq = b.equal(v[..., :, None], v[..., None, :])
        self.eqf = b.astype(eq, dt)
        count = b.sum(b.astype(eq, _real_dtype(v)), axis=-1)
        bad = count > 1
        mean = self.eqf
        if zero_kink:  # a zero singular value is a kink: slope 0, like abs at 0
            zero = v == 0
            mean = mean * b.astype(b.logical_not(zero), dt)[..., :, None]
            bad = b.logical_or(bad, zero)
        self.mean = mean / b.astype(count, dt)[..., :, None]  # rows of one cluster are equal: symmetric
        nan, zero = (b.asarray(c, dtype=dt, device=dev) for c in (math.nan, 0.0))
        self.nan_cols = b.where(bad, nan, zero)

    def spread(self, xp: Any, d: Any) -> Any:
        """The values' tangent ``d`` (B, ..., k) averaged over each cluster of ties."""
        return xp.reshape(xp.matmul(xp.expand_dims(d, axis=-2), self.mean), d.shape)

    def gaps(self, xp: Any, w: Any) -> Any:
        """``F[i, j] = 1 / (w_j - w_i)`` for distinct values, 0 elsewhere (``w``: the values)."""
        d = xp.subtract(xp.expand_dims(w, axis=-2), xp.expand_dims(w, axis=-1))
        return xp.divide(1 - self.eqf, xp.add(d, self.eqf))

    def mark(self, xp: Any, dv: Any) -> Any:
        """NaN in the columns of the vectors' tangent ``dv`` that are not unique."""
        return xp.add(dv, xp.expand_dims(self.nan_cols, axis=-2))


# ----------------------------------------------------------- inverse, det
def _inv_jvp(xp: Any, primals: list, tangents: list) -> tuple:
    (a,), (t,) = primals, tangents
    y = xp.linalg.inv(a)
    return y, xp.negative(_sandwich(xp, y, t, y))


def _trace_inv_times(xp: Any, a: Any, t: Any) -> Any:
    """``tr(a^{-1} t)`` for every direction: one inverse, then one product and sum each."""
    return xp.sum(xp.multiply(t, xp.matrix_transpose(xp.linalg.inv(a))), axis=(-2, -1))


def _det_jvp(xp: Any, primals: list, tangents: list) -> tuple:
    (a,), (t,) = primals, tangents
    y = xp.linalg.det(a)
    return y, xp.multiply(_trace_inv_times(xp, a, t), y)


def _slogdet_jvp(xp: Any, primals: list, tangents: list) -> tuple:
    (a,), (t,) = primals, tangents
    out = xp.linalg.slogdet(a)
    tr = _trace_inv_times(xp, a, t)
    if not _is_complex(a):  # the sign of a real determinant is locally constant
        return out, (None, tr)
    half_im = xp.subtract(tr, xp.conj(tr)) * 0.5  # i Im(tr): the sign turns by that angle
    return out, (xp.multiply(half_im, out[0]), xp.real(tr))


def _solve_stacked(xp: Any, a: Any, rhs: Any) -> Any:
    """Solve ``a @ x = rhs`` for all B directions of ``rhs`` (B, ..., n, k) in one call.

    The directions become columns, so the backend factorises each matrix of ``a`` once.
    """
    B, nd = rhs.shape[0], rhs.ndim
    if B == 1:
        x = xp.linalg.solve(a, xp.reshape(rhs, rhs.shape[1:]))
        return xp.reshape(x, (1, *x.shape))
    n, k = rhs.shape[-2], rhs.shape[-1]
    cols = xp.permute_dims(rhs, (*range(1, nd - 1), 0, nd - 1))  # (..., n, B, k)
    x = xp.linalg.solve(a, xp.reshape(cols, (*rhs.shape[1:-2], n, B * k)))
    q = x.ndim - 2
    x = xp.reshape(x, (*x.shape[:-1], B, k))
    return xp.permute_dims(x, (q + 1, *range(q), q, q + 2))


def _solve_jvp(xp: Any, primals: list, tangents: list) -> tuple:
    # d(A^{-1} b) = A^{-1} (db - dA x): the B right-hand sides go through one solve.
    a, b = primals
    ta, tb = tangents
    y = xp.linalg.solve(a, b)
    vec = b.ndim == 1  # the standard's only vector case: x2 of shape (n,)
    ym = xp.reshape(y, (*y.shape, 1)) if vec else y
    rank = ym.ndim + 1
    rhs = None if tb is None else la.lift(xp, xp.reshape(tb, (*tb.shape, 1)) if vec else tb, rank)
    if ta is not None:
        d = right(xp, ta, ym)
        rhs = xp.negative(d) if rhs is None else xp.subtract(rhs, d)
    if tuple(rhs.shape[1:]) != tuple(ym.shape):  # CuPy's solve does not broadcast its operands
        rhs = xp.broadcast_to(rhs, (rhs.shape[0], *ym.shape))
    x = _solve_stacked(xp, a, rhs)
    return y, (xp.reshape(x, x.shape[:-1]) if vec else x)


def _matrix_power(xp: Any, x: Any, n: int) -> Any:
    return xp.linalg.matrix_power(x, n)  # n is positional-only in the standard


def _product_t(xp: Any, f: tuple, g: tuple) -> Any:
    """The tangent of ``F @ G`` from the pairs (primal, tangent) ``f`` and ``g``."""
    return xp.add(right(xp, f[1], g[0]), left(xp, f[0], g[1]))


def _matrix_power_jvp(xp: Any, primals: list, tangents: list, n: int) -> tuple:
    # Binary powering with the product rule: 2 products per direction per squaring.
    (a,), (t,) = primals, tangents
    y = xp.linalg.matrix_power(a, n)
    if n == 0:
        return y, None
    if n < 0:
        a = xp.linalg.inv(a)
        t, n = xp.negative(_sandwich(xp, a, t, a)), -n
    acc = None
    while True:
        if n & 1:
            acc = (a, t) if acc is None else (xp.matmul(acc[0], a), _product_t(xp, acc, (a, t)))
        n >>= 1
        if not n:
            return y, acc[1]
        a, t = xp.matmul(a, a), _product_t(xp, (a, t), (a, t))


def _pinv_jvp(xp: Any, primals: list, tangents: list, rtol: Any = None) -> tuple:
    # Golub-Pereyra: -P dA P + P P^H dA^H (I - A P) + (I - P A) dA^H P^H P (constant rank).
    (a,), (t,) = primals, tangents
    p = xp.linalg.pinv(a, rtol=rtol)
    ph, th = _mH(xp, p), _mH(xp, t)
    m, n = a.shape[-2], a.shape[-1]
    d = xp.negative(_sandwich(xp, p, t, p))
    d = xp.add(d, _sandwich(xp, xp.matmul(p, ph), th, xp.subtract(_eye(a, m), xp.matmul(a, p))))
    d = xp.add(d, _sandwich(xp, xp.subtract(_eye(a, n), xp.matmul(p, a)), th, xp.matmul(ph, p)))
    return p, d


# ------------------------------------------------------------ factorisations
def _cholesky_jvp(xp: Any, primals: list, tangents: list, upper: bool = False) -> tuple:
    # dL = L phi(L^{-1} dA L^{-H}), phi: lower triangle with the diagonal halved.
    (a,), (t,) = primals, tangents
    c = xp.linalg.cholesky(a, upper=upper)
    low = _mH(xp, c) if upper else c
    li = xp.linalg.inv(low)
    x = _sandwich(xp, li, _sym(xp, t), _mH(xp, li))
    n = a.shape[-1]
    dl = left(xp, low, xp.multiply(x, _tril_mask(a, n, 0, diag=0.5)))
    return c, (_mH(xp, dl) if upper else dl)


def _qr_jvp(xp: Any, primals: list, tangents: list, mode: str = "reduced") -> tuple:
    # With X = Q^H dA_k R_k^{-1} and Omega = Q^H dQ (its strict lower part is X's, and it
    # is skew-Hermitian): dR = (X - Omega) R and dQ = dA_k R_k^{-1} - Q (X - Omega).
    (a,), (t,) = primals, tangents
    m, n = a.shape[-2], a.shape[-1]
    if mode == "complete" and m > n:
        raise _errors.NotDifferentiableError(
            f"qr(mode='complete') of a tall {m}x{n} matrix: the last {m - n} columns of Q are "
            "not unique, so they have no derivative; use mode='reduced'"
        )
    q, r = out = xp.linalg.qr(a, mode=mode)
    k = min(m, n)
    rk, tk = (r, t) if n == k else (r[..., :k], t[..., :k])  # wide: A's leading square block
    y = right(xp, tk, xp.linalg.inv(rk))
    x = left(xp, _mH(xp, q), y)
    low = xp.multiply(x, _tril_mask(a, k, -1))
    omega = xp.subtract(low, _mH(xp, low))
    if _is_complex(a):  # R's diagonal stays real: Omega takes the imaginary part of X's
        omega = xp.add(omega, xp.multiply(xp.subtract(x, xp.conj(x)) * 0.5, _eye(a, k)))
    ux = xp.subtract(x, omega)  # dR R^{-1}, upper triangular
    if n == k:
        dr = right(xp, ux, r)
    else:  # the columns right of the square block: dR2 = Q^H dA2 - Omega R2
        dr = xp.subtract(left(xp, _mH(xp, q), t), right(xp, omega, r))
    dq = left(xp, q, omega) if m == k else xp.subtract(y, left(xp, q, ux))
    return out, (dq, dr)


def _eigh_jvp(xp: Any, primals: list, tangents: list) -> tuple:
    # X = Q^H dA Q: dw = diag(X), dQ = Q (F * X) with F = 1 / (w_j - w_i).
    (a,), (t,) = primals, tangents
    w, q = out = xp.linalg.eigh(a)
    sp = _Spectrum(w)
    x = _sym(xp, _sandwich(xp, _mH(xp, q), t, q))
    dw = sp.spread(xp, _re(xp, xp.linalg.diagonal(x)))
    dq = sp.mark(xp, left(xp, q, xp.multiply(x, sp.gaps(xp, w))))
    return out, (dw, dq)


def _eigvalsh_jvp(xp: Any, primals: list, tangents: list) -> tuple:
    # diag(Q^H dA Q) needs no symmetrised dA: q^H dA q is real for the Hermitian part only.
    (a,), (t,) = primals, tangents
    w, q = xp.linalg.eigh(a)
    d = _re(xp, _diag_of(xp, q, right(xp, t, q)))
    return w, _Spectrum(w).spread(xp, d)


def _complex_tangent(xp: Any, t: Any, like: Any) -> Any:
    return t if _is_complex(t) else xp.astype(t, like.dtype)


def _eig_parts(xp: Any, a: Any, t: Any) -> tuple:
    w, v = out = xp.linalg.eig(a)
    vi = xp.linalg.inv(v)
    return out, w, v, vi, _complex_tangent(xp, t, v)


def _eig_jvp(xp: Any, primals: list, tangents: list) -> tuple:
    # X = V^{-1} dA V: dw = diag(X), dV = V (F * X), then each column's norm is kept at 1.
    (a,), (t,) = primals, tangents
    out, w, v, vi, tc = _eig_parts(xp, a, t)
    sp = _Spectrum(w)
    x = _sandwich(xp, vi, tc, v)
    dw = sp.spread(xp, xp.linalg.diagonal(x))
    dv = left(xp, v, xp.multiply(x, sp.gaps(xp, w)))
    along = xp.real(_diag_of(xp, v, dv))  # Re(v^H dv): the change of each column's norm
    dv = xp.subtract(dv, xp.multiply(v, xp.expand_dims(along, axis=-2)))
    return out, (dw, sp.mark(xp, dv))


def _eigvals_jvp(xp: Any, primals: list, tangents: list) -> tuple:
    (a,), (t,) = primals, tangents
    out, w, v, vi, tc = _eig_parts(xp, a, t)
    d = xp.sum(xp.multiply(right(xp, tc, v), xp.matrix_transpose(vi)), axis=-2)
    return w, _Spectrum(w).spread(xp, d)


def _svd_jvp(xp: Any, primals: list, tangents: list, full_matrices: bool = True) -> tuple:
    # P = U^H dA V: dS = Re diag(P), U^H dU = F * (P S + S P^H), V^H dV = F * (S P + P^H S)
    # with F = 1 / (s_j^2 - s_i^2), plus the parts outside the span of U (V) for m != n.
    (a,), (t,) = primals, tangents
    m, n = a.shape[-2], a.shape[-1]
    if full_matrices and m != n:
        raise _errors.NotDifferentiableError(
            f"svd(full_matrices=True) of a {m}x{n} matrix: the extra {abs(m - n)} singular "
            "vectors are not unique, so they have no derivative; use full_matrices=False"
        )
    u, s, vh = out = xp.linalg.svd(a, full_matrices=full_matrices)
    v, k = _mH(xp, vh), min(m, n)
    sp = _Spectrum(s, zero_kink=True)
    p = _sandwich(xp, _mH(xp, u), t, v)
    dp = _re(xp, xp.linalg.diagonal(p))
    ds = sp.spread(xp, dp)
    f = sp.gaps(xp, xp.multiply(s, s))
    ps = xp.multiply(p, xp.expand_dims(s, axis=-2))  # P S
    sp_ = xp.multiply(p, xp.expand_dims(s, axis=-1))  # S P
    du = left(xp, u, xp.multiply(f, xp.add(ps, _mH(xp, ps))))
    dv = left(xp, v, xp.multiply(f, xp.add(sp_, _mH(xp, sp_))))
    inv_s = xp.expand_dims(xp.divide(1, _safe(xp, s)), axis=-2)
    if _is_complex(a):  # the phase left free by U, V goes to U: i Im(P_jj) / s_j
        im = xp.multiply(xp.subtract(p, xp.conj(p)) * 0.5, _eye(a, k))
        du = xp.add(du, left(xp, u, xp.multiply(im, inv_s)))
    if m > k:
        du = xp.add(du, xp.multiply(xp.subtract(right(xp, t, v), left(xp, u, p)), inv_s))
    if n > k:
        dv = xp.add(dv, xp.multiply(xp.subtract(right(xp, _mH(xp, t), u), left(xp, v, _mH(xp, p))), inv_s))
    return out, (sp.mark(xp, du), ds, _mH(xp, sp.mark(xp, dv)))


def _svdvals_jvp(xp: Any, primals: list, tangents: list) -> tuple:
    (a,), (t,) = primals, tangents
    u, s, vh = xp.linalg.svd(a, full_matrices=False)
    d = _re(xp, _diag_of(xp, u, right(xp, t, _mH(xp, vh))))
    return s, _Spectrum(s, zero_kink=True).spread(xp, d)


# -------------------------------------------------------------------- norms
def _extreme_weights(x: Any, v: Any, axis: Any, largest: bool) -> Any:
    """1/c where ``v`` attains its max (min) over ``axis`` (c of them: ties split evenly)."""
    b = _bxp(x)
    pick = b.max(v, axis=axis, keepdims=True) if largest else b.min(v, axis=axis, keepdims=True)
    hit = b.astype(v == pick, v.dtype)
    return hit / b.sum(hit, axis=axis, keepdims=True)


def _spectral_grad(xp: Any, x: Any, ord: Any) -> Any:
    """The gradient ``U diag(w) V^H`` of the nuclear norm or of the largest/smallest singular value."""
    u, s, vh = xp.linalg.svd(x, full_matrices=False)
    sv = _value(s)
    b = _bxp(x)
    nonzero = b.astype(sv != 0, sv.dtype)
    if ord == "nuc":  # a zero singular value is a kink: slope 0, like abs at 0
        w = nonzero
    else:
        w = _extreme_weights(x, sv, -1, ord == 2)
        w = w if ord == 2 else w * nonzero
    return xp.matmul(xp.multiply(u, b.astype(w, _value(u).dtype)[..., None, :]), vh)


def _matrix_norm_grad(xp: Any, x: Any, y: Any, keepdims: bool, ord: Any) -> Any:
    if ord == "fro":
        yk = y if keepdims else xp.reshape(y, (*y.shape, 1, 1))
        return xp.divide(x, _safe(xp, yk))  # 0 at the zero matrix, as JAX's 2-norm
    if ord in ("nuc", 2, -2):
        return _spectral_grad(xp, x, ord)
    ax = -2 if ord in (1, -1) else -1  # 1: max column sum; inf: max row sum
    sums = _bxp(x).sum(_bxp(x).abs(_value(x)), axis=ax, keepdims=True)
    w = _extreme_weights(x, sums, -1 if ax == -2 else -2, ord > 0)
    return xp.multiply(_unit(xp, x), w)


def _matrix_norm_jvp(
    xp: Any, primals: list, tangents: list, keepdims: bool = False, ord: Any = "fro"
) -> tuple:
    (x,), (t,) = primals, tangents
    y = xp.linalg.matrix_norm(x, keepdims=keepdims, ord=ord)
    return y, _inner(xp, _matrix_norm_grad(xp, x, y, keepdims, ord), t, (-2, -1), keepdims)


def _norm_axes(axis: Any, ndim: int) -> tuple:
    if axis is None:
        return tuple(range(ndim))
    return tuple(a % ndim for a in axis) if isinstance(axis, tuple) else (axis % ndim,)


def _vector_norm_grad(xp: Any, x: Any, yk: Any, axes: tuple, ord: Any) -> Any:
    if ord == 2:
        return xp.divide(x, _safe(xp, yk))  # zero subgradient at x = 0, as JAX
    if ord == 1:
        return _unit(xp, x)
    b = _bxp(x)
    if ord in (math.inf, -math.inf):  # ties of the max (min) split the slope evenly
        return xp.multiply(_unit(xp, x), _extreme_weights(x, b.abs(_value(x)), axes, ord > 0))
    ratio = xp.divide(xp.abs(x), _safe(xp, yk))  # general p: sign(x) (|x| / y)^(p - 1)
    return xp.multiply(_unit(xp, x), xp.pow(ratio, ord - 1))


def _vector_norm_jvp(
    xp: Any, primals: list, tangents: list, axis: Any = None, keepdims: bool = False, ord: Any = 2
) -> tuple:
    (x,), (t,) = primals, tangents
    y = xp.linalg.vector_norm(x, axis=axis, keepdims=keepdims, ord=ord)
    if ord == 0:  # the number of nonzero entries: piecewise constant
        return y, None
    axes = _norm_axes(axis, x.ndim)
    kshape = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
    yk = y if keepdims else xp.reshape(y, kshape)
    return y, _inner(xp, _vector_norm_grad(xp, x, yk, axes, ord), t, axes, keepdims)


# ----------------------------------------------------------- vector products
def _outer_jvp(xp: Any, primals: list, tangents: list) -> tuple:
    a, b = primals
    ta, tb = tangents
    y = xp.linalg.outer(a, b)  # checks that both are 1-D
    t = None if ta is None else xp.multiply(xp.reshape(ta, (*ta.shape, 1)), b)
    if tb is not None:
        t2 = xp.multiply(xp.reshape(a, (a.shape[0], 1)), xp.reshape(tb, (tb.shape[0], 1, tb.shape[1])))
        t = t2 if t is None else xp.add(t, t2)
    return y, t


def _cross_jvp(xp: Any, primals: list, tangents: list, axis: int = -1) -> tuple:
    a, b = primals
    ta, tb = tangents
    y = xp.linalg.cross(a, b, axis=axis)
    ax = la.negative_axis(axis, a.ndim, b.ndim, "cross")
    nd = y.ndim
    t = None if ta is None else xp.linalg.cross(align(xp, ta, nd), b, axis=ax)
    if tb is not None:
        t2 = xp.linalg.cross(a, align(xp, tb, nd), axis=ax)
        t = t2 if t is None else xp.add(t, t2)
    return y, t


def _diagonal_t(xp: Any, t: Any, offset: int = 0) -> Any:
    return xp.linalg.diagonal(t, offset=offset)  # acts on the last two axes: B is a stack axis


def _trace_t(xp: Any, t: Any, offset: int = 0, dtype: Any = None) -> Any:
    return xp.linalg.trace(t, offset=offset, dtype=dtype)


_XY = ("x1", "x2")
_TIES = "repeated eigenvalues: vectors NaN, values the cluster mean"
_TIED_VALUES = "repeated eigenvalues: the cluster mean"
_KINKS = "kinks as JAX: slope 0 at 0, ties split evenly"

RULES: tuple[Rule, ...] = (
    custom("linalg.cholesky", _cholesky_jvp, params=("upper",), domain="spd"),
    custom("linalg.cross", _cross_jvp, args=_XY, params=("axis",), domain="cross"),
    custom("linalg.det", _det_jvp, domain="invertible", note="needs an invertible matrix"),
    linear("linalg.diagonal", _diagonal_t, params=("offset",), domain="matrix"),
    custom("linalg.eig", _eig_jvp, domain="square", note=_TIES),
    custom("linalg.eigh", _eigh_jvp, domain="symmetric", note=_TIES),
    custom("linalg.eigvals", _eigvals_jvp, domain="square", note=_TIED_VALUES),
    custom("linalg.eigvalsh", _eigvalsh_jvp, domain="symmetric", note=_TIED_VALUES),
    custom("linalg.inv", _inv_jvp, domain="invertible"),
    custom("linalg.matmul", la.matmul_jvp, args=_XY, domain="matmul"),
    custom("linalg.matrix_norm", _matrix_norm_jvp, params=("keepdims", "ord"), domain="matrix",
           note=_KINKS),
    linear("linalg.matrix_transpose", lambda xp, t: xp.matrix_transpose(t), domain="matrix"),
    custom("linalg.matrix_power", _matrix_power_jvp, f=_matrix_power, params=("n",), domain="invertible"),
    nondiff("linalg.matrix_rank", "general", params=("rtol",), domain="matrix"),
    custom("linalg.outer", _outer_jvp, args=_XY, domain="real"),
    custom("linalg.pinv", _pinv_jvp, params=("rtol",), domain="matrix", note="constant rank"),
    custom("linalg.qr", _qr_jvp, params=("mode",), domain="matrix", note="mode='complete' needs m <= n"),
    custom("linalg.slogdet", _slogdet_jvp, domain="invertible"),
    custom("linalg.solve", _solve_jvp, args=_XY, domain="invertible"),
    custom("linalg.svd", _svd_jvp, params=("full_matrices",), domain="matrix",
           note="full_matrices=True needs a square matrix; repeated or zero singular values: vectors NaN"),
    custom("linalg.svdvals", _svdvals_jvp, domain="matrix", note="ties: the cluster mean; slope 0 at 0"),
    custom("linalg.tensordot", la.tensordot_jvp, args=_XY, params=("axes",)),
    linear("linalg.trace", _trace_t, params=("offset", "dtype"), domain="matrix"),
    custom("linalg.vecdot", la.vecdot_jvp, args=_XY, params=("axis",)),
    custom("linalg.vector_norm", _vector_norm_jvp, params=("axis", "keepdims", "ord"),
           note=_KINKS),
)  # fmt: skip
