"""Rules for the ``linalg`` extension: exact forward-mode derivatives of every function.

Every rule works on stacks of matrices ``(..., m, n)`` and on a tangent with its leading
batch axis ``(B, ..., m, n)``: the B directions share one factorisation (an inverse, an
eigendecomposition, an SVD) and go through it as batched matrix products, never a loop.

Conventions (each also said where it is implemented):

* ``cholesky``, ``eigh``, ``eigvalsh`` read one triangle of their input (the lower one;
  ``cholesky(upper=True)`` the upper one) and the real part of its diagonal, as the
  backends do: the tangent is read the same way, ``tril(dA, -1) + tril(dA, -1)^H +
  Re diag(dA)``, so it is the derivative of the function the backend computes, along any
  direction, symmetric or not. (JAX symmetrises instead, ``(dA + dA^H) / 2``: the same
  along symmetric directions.)
* Coinciding eigenvalues (singular values), that is exactly equal ones: the eigenvectors
  (singular vectors) of a cluster are not unique, so their tangents are NaN. The values of
  a cluster get the derivative of the cluster's mean, which does not depend on the basis
  the backend picked (the same even split of ties that ``maximum`` uses). A singular value
  0 is a kink (like ``abs`` at 0): its tangent is 0, and its vectors' tangents are NaN.
  Values that are close but distinct get their exact (large) tangents.
* ``eig``: each eigenvector keeps the unit norm the backend gives it; its free phase is
  fixed by ``diag(V^{-1} dV) = 0`` before that normalisation (JAX's choice).
* ``det`` has the derivative ``tr(adj(A) dA)`` everywhere: ``det(A) A^{-1}`` where A is
  well conditioned, the adjugate from an SVD where it is not (singular matrices included).
  ``slogdet`` at a singular matrix (sign 0, log|det| = -inf) has no derivative: the
  tangent of log|det| is NaN there (the sign's is 0). ``qr`` of a rank-deficient matrix (a
  diagonal entry of R within rounding of 0): Q past the rank is not unique, so the
  tangents of Q and R of that matrix are NaN (``ft.set_debug_nans`` finds where). These
  are NaN rather than errors because deciding would move data to the host. ``inv`` and
  ``solve`` need an invertible matrix (the backend's own error).
* ``pinv``: the derivative of the constant-rank pseudo-inverse (Golub and Pereyra), exact
  for full-rank matrices; where the rank changes ``pinv`` is discontinuous.
* ``qr(mode='complete')`` of a tall matrix and ``svd(full_matrices=True)`` of a non-square
  one return extra columns ``Q2`` that only complete the unique ones ``Q1`` to an
  orthonormal basis. Their tangent is ``-Q1 (dQ1^H Q2)``: the derivative of the completion
  that does not rotate within its own span (it keeps ``[Q1 Q2]`` orthonormal to first
  order). The rows of zeros under a complete ``R`` have tangent 0.
* Empty matrices (a dimension 0, or an empty stack) give empty or constant results
  (``det`` of a 0x0 matrix is 1) with zero tangents.
* Norms at kinks follow JAX: zero slope of the 2-norm at 0, ``abs`` has slope 0 at 0, and
  ties of a max or min (``ord=inf``, ``1``, ``2``, ...) split the derivative evenly. A
  ``vector_norm`` with ``ord < 1`` has an infinite slope at a zero entry: NaN there.
"""

from __future__ import annotations

import math
from typing import Any

import array_api_compat

from ..core.backend import namespace_of
from ..core.batch import align, shift_axes
from ..core.dual import DualTensor, innermost
from . import linear_algebra as la
from ._forms import Rule, custom, linear
from .linear_algebra import left, right


# ------------------------------------------------------------------ helpers
def _bxp(x: Any) -> Any:
    """The backend namespace of ``x`` (a dual's innermost arrays), for constants."""
    return x._bxp if type(x) is DualTensor else namespace_of(x)


def _is_complex(x: Any) -> bool:
    return _bxp(x).isdtype(x.dtype, "complex floating")


def _const(x: Any, make: Any, dtype: Any = None) -> Any:
    """A constant built by ``make(bxp, dtype, device)`` next to ``x`` (same backend, device)."""
    v = innermost(x)
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


def _from_lower(xp: Any, t: Any, n: int) -> Any:
    """The Hermitian matrix built from the lower triangle of ``t`` and the real part of its
    diagonal: what ``eigh``, ``eigvalsh`` and ``cholesky`` read of their input, so the
    tangent they see along any direction ``t`` (symmetric or not)."""
    low = xp.multiply(t, _tril_mask(t, n, -1))
    diag = xp.multiply(_re(xp, t), _eye(t, n))
    return xp.add(xp.add(low, _mH(xp, low)), diag)


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
    v = innermost(y)
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
        b, v = _bxp(w), innermost(w)
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


def _others_product(xp: Any, s: Any) -> Any:
    """For each entry of ``s`` (..., k), the product of the other entries (no division):
    the exclusive products from the left times those from the right."""
    left_p = xp.cumulative_prod(s, axis=-1, include_initial=True)[..., :-1]
    rev = xp.flip(s, axis=-1)
    right_p = xp.flip(xp.cumulative_prod(rev, axis=-1, include_initial=True)[..., :-1], axis=-1)
    return xp.multiply(left_p, right_p)


def _adjugate(xp: Any, a: Any) -> Any:
    """``adj(A)`` from an SVD, ``det(U) det(V^H) V diag(prod_{j != i} s_j) U^H``: exact and
    stable at singular and ill-conditioned matrices, where ``det(A) A^{-1}`` is not."""
    u, s, vh = xp.linalg.svd(a, full_matrices=False)
    phase = xp.multiply(xp.linalg.det(u), xp.linalg.det(vh))
    p = _others_product(xp, s)
    p = p if not _is_complex(a) else xp.astype(p, innermost(a).dtype)
    m = xp.matmul(xp.multiply(_mH(xp, vh), xp.expand_dims(p, axis=-2)), _mH(xp, u))
    return xp.multiply(m, xp.expand_dims(xp.expand_dims(phase, axis=-1), axis=-1))


def _det_jvp(xp: Any, primals: list, tangents: list) -> tuple:
    # d det = tr(adj(A) dA) with the adjugate from an SVD, so singular matrices get their
    # derivative too (nonzero where the rank is n - 1), with no data-dependent branch.
    (a,), (t,) = primals, tangents
    y = xp.linalg.det(a)
    if a.shape[-1] == 0:  # det of a 0x0 matrix is 1, a constant
        return y, None
    adj_t = xp.matrix_transpose(_adjugate(xp, a))
    return y, xp.sum(xp.multiply(t, adj_t), axis=(-2, -1))


def _slogdet_jvp(xp: Any, primals: list, tangents: list) -> tuple:
    # d log|det| = Re tr(A^{-1} dA). At a singular matrix (sign 0, log|det| = -inf) there is
    # no derivative: its tangent is NaN there (the inverse is taken of I instead, so the
    # other matrices of a stack are unaffected and nothing goes to the host).
    (a,), (t,) = primals, tangents
    out = xp.linalg.slogdet(a)
    if a.shape[-1] == 0:  # (1, 0) for a 0x0 matrix: constants
        return out, (None, None)
    b, sign = _bxp(a), innermost(out[0])
    singular = b.expand_dims(b.expand_dims(sign == 0, axis=-1), axis=-1)
    eye = _const(a, lambda bb, dt, dev: bb.eye(a.shape[-1], dtype=dt, device=dev))
    tr = _trace_inv_times(xp, xp.where(singular, eye, a), t)
    nan = _nan_where(b, sign == 0, a)
    if not _is_complex(a):  # the sign of a real determinant is locally constant
        return out, (None, xp.add(tr, nan))
    half_im = xp.subtract(tr, xp.conj(tr)) * 0.5  # i Im(tr): the sign turns by that angle
    return out, (xp.multiply(half_im, out[0]), xp.add(xp.real(tr), nan))


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


def _pinv(xp: Any, x: Any, rtol: Any = None) -> Any:
    # rtol only sets the cut-off below which singular values count as 0: the rank, and so
    # pinv, is locally constant in it, so a dual rtol is used by its value (derivative 0).
    return xp.linalg.pinv(x, rtol=None if rtol is None else innermost(rtol))


def _matrix_rank(xp: Any, x: Any, rtol: Any = None) -> Any:
    return xp.linalg.matrix_rank(x, rtol=None if rtol is None else innermost(rtol))


def _pinv_jvp(xp: Any, primals: list, tangents: list, rtol: Any = None) -> tuple:
    # Golub-Pereyra: -P dA P + P P^H dA^H (I - A P) + (I - P A) dA^H P^H P (constant rank).
    (a,), (t,) = primals, tangents
    p = _pinv(xp, a, rtol)
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
    n = a.shape[-1]
    # The backend reads the lower triangle (the upper one for upper=True): so does the tangent.
    x = _sandwich(xp, li, _from_lower(xp, _mH(xp, t) if upper else t, n), _mH(xp, li))
    dl = left(xp, low, xp.multiply(x, _tril_mask(a, n, 0, diag=0.5)))
    return c, (_mH(xp, dl) if upper else dl)


def _completion_t(xp: Any, q1: Any, dq1: Any, q2: Any) -> Any:
    """The tangent of the orthonormal completion ``q2`` of ``q1``: ``-Q1 (dQ1^H Q2)``.

    ``q2`` is not unique (any rotation of it completes ``q1``); this is the derivative of
    the completion that does not rotate within its own span (its tangent has no part in
    ``span(Q2)``), the only choice that keeps ``[Q1 Q2]`` orthonormal to first order
    without turning ``q2`` for no reason.
    """
    return xp.negative(left(xp, q1, xp.matmul(_mH(xp, dq1), q2)))


def _nan_where(b: Any, mask: Any, like: Any) -> Any:
    """NaN where ``mask`` holds and 0 elsewhere, in the real dtype of ``like`` (backend ``b``)."""
    dt, dev = _real_dtype(like), array_api_compat.device(mask)
    nan, zero = (b.asarray(c, dtype=dt, device=dev) for c in (math.nan, 0.0))
    return b.where(mask, nan, zero)


def _deficient(rk: Any, k: int) -> tuple:
    """Where the square triangular ``rk`` is rank-deficient: a diagonal entry within
    rounding of 0 (``|r_ii| <= k eps max|r_jj|``, the cut-off of ``matrix_rank``).

    Returns a boolean mask of those diagonal entries (..., k) and, per matrix of the stack,
    NaN where it is deficient and 0 elsewhere (..., 1, 1): computed on the backend, no sync.
    """
    b, v = _bxp(rk), innermost(rk)
    d = b.abs(b.linalg.diagonal(v))
    small = d <= b.max(d, axis=-1, keepdims=True) * (k * b.finfo(d.dtype).eps)
    nan = _nan_where(b, b.any(small, axis=-1), rk)
    return small, b.expand_dims(b.expand_dims(nan, axis=-1), axis=-1)


def _qr_reduced_t(xp: Any, a: Any, t: Any, q: Any, r: Any) -> tuple:
    # With X = Q^H dA_k R_k^{-1} and Omega = Q^H dQ (its strict lower part is X's, and it
    # is skew-Hermitian): dR = (X - Omega) R and dQ = dA_k R_k^{-1} - Q (X - Omega).
    m, n = a.shape[-2], a.shape[-1]
    k = min(m, n)
    rk, tk = (r, t) if n == k else (r[..., :k], t[..., :k])  # wide: A's leading square block
    # Rank-deficient: Q past the rank is not unique, so there is no derivative. The matrix
    # gets NaN tangents; its zero pivots are replaced by 1 so that inv(R) stays finite.
    small, nan = _deficient(rk, k)
    pivots = xp.multiply(_eye(a, k), _bxp(a).astype(small, _real_dtype(a))[..., None, :])
    rk = xp.add(rk, xp.multiply(pivots, 1.0 - rk))
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
    return xp.add(dq, nan), xp.add(dr, nan)


def _qr_jvp(xp: Any, primals: list, tangents: list, mode: str = "reduced") -> tuple:
    (a,), (t,) = primals, tangents
    m, n = a.shape[-2], a.shape[-1]
    q, r = out = xp.linalg.qr(a, mode=mode)
    if m == 0 or n == 0:  # empty factors, or Q = I (m x m) and R of shape (m, 0): constants
        return out, (None, None)
    if mode == "complete" and m > n:
        # Q = [Q1 Q2], R = [R1; 0]: Q1, R1 are the reduced factors; the rows of zeros stay 0.
        q1, q2 = q[..., :n], q[..., n:]
        dq1, dr1 = _qr_reduced_t(xp, a, t, q1, r[..., :n, :])
        dq = xp.concat([dq1, _completion_t(xp, q1, dq1, q2)], axis=-1)
        zeros = xp.multiply(xp.expand_dims(r[..., n:, :], axis=0), 0.0)
        zeros = xp.broadcast_to(zeros, (dr1.shape[0], *r[..., n:, :].shape))
        return out, (dq, xp.concat([dr1, zeros], axis=-2))
    return out, _qr_reduced_t(xp, a, t, q, r)


def _eigh_jvp(xp: Any, primals: list, tangents: list) -> tuple:
    # X = Q^H dA Q: dw = diag(X), dQ = Q (F * X) with F = 1 / (w_j - w_i).
    (a,), (t,) = primals, tangents
    w, q = out = xp.linalg.eigh(a)
    sp = _Spectrum(w)
    x = _sandwich(xp, _mH(xp, q), _from_lower(xp, t, a.shape[-1]), q)
    dw = sp.spread(xp, _re(xp, xp.linalg.diagonal(x)))
    dq = sp.mark(xp, left(xp, q, xp.multiply(x, sp.gaps(xp, w))))
    return out, (dw, dq)


def _eigvalsh_jvp(xp: Any, primals: list, tangents: list) -> tuple:
    # diag(Q^H dA Q) of the Hermitian matrix the backend reads (its lower triangle).
    (a,), (t,) = primals, tangents
    w, q = xp.linalg.eigh(a)
    d = _re(xp, _diag_of(xp, q, right(xp, _from_lower(xp, t, a.shape[-1]), q)))
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
    (a,), (t,) = primals, tangents
    m, n = a.shape[-2], a.shape[-1]
    u, s, vh = out = xp.linalg.svd(a, full_matrices=full_matrices)
    k = min(m, n)
    if k == 0:  # empty singular values; U, V^H (identities when full) are constants
        return out, (None, None, None)
    if not full_matrices or m == n:
        return out, _svd_reduced_t(xp, a, t, u, s, vh)
    # Full factors of a non-square matrix: the first k columns of U (rows of V^H) are the
    # reduced factors; the rest complete them and get the non-rotating completion's tangent.
    u1, vh1 = u[..., :k], vh[..., :k, :]
    du, ds, dvh = _svd_reduced_t(xp, a, t, u1, s, vh1)
    if m > k:
        du = xp.concat([du, _completion_t(xp, u1, du, u[..., k:])], axis=-1)
    if n > k:
        v1, dv1 = _mH(xp, vh1), _mH(xp, dvh)
        dv2 = _completion_t(xp, v1, dv1, _mH(xp, vh[..., k:, :]))
        dvh = xp.concat([dvh, _mH(xp, dv2)], axis=-2)
    return out, (du, ds, dvh)


def _svd_reduced_t(xp: Any, a: Any, t: Any, u: Any, s: Any, vh: Any) -> tuple:
    # P = U^H dA V: dS = Re diag(P), U^H dU = F * (P S + S P^H), V^H dV = F * (S P + P^H S)
    # with F = 1 / (s_j^2 - s_i^2), plus the parts outside the span of U (V) for m != n.
    m, n = a.shape[-2], a.shape[-1]
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
    return sp.mark(xp, du), ds, _mH(xp, sp.mark(xp, dv))


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
    sv = innermost(s)
    b = _bxp(x)
    nonzero = b.astype(sv != 0, sv.dtype)
    if ord == "nuc":  # a zero singular value is a kink: slope 0, like abs at 0
        w = nonzero
    else:
        w = _extreme_weights(x, sv, -1, ord == 2)
        w = w if ord == 2 else w * nonzero
    return xp.matmul(xp.multiply(u, b.astype(w, innermost(u).dtype)[..., None, :]), vh)


def _matrix_norm_grad(xp: Any, x: Any, y: Any, keepdims: bool, ord: Any) -> Any:
    if ord == "fro":
        yk = y if keepdims else xp.reshape(y, (*y.shape, 1, 1))
        return xp.divide(x, _safe(xp, yk))  # 0 at the zero matrix, as JAX's 2-norm
    if ord in ("nuc", 2, -2):
        return _spectral_grad(xp, x, ord)
    ax = -2 if ord in (1, -1) else -1  # 1: max column sum; inf: max row sum
    sums = _bxp(x).sum(_bxp(x).abs(innermost(x)), axis=ax, keepdims=True)
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
        return xp.multiply(_unit(xp, x), _extreme_weights(x, b.abs(innermost(x)), axes, ord > 0))
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
    custom("linalg.det", _det_jvp, domain="invertible", note="singular matrices: the adjugate (from an SVD)"),
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
    Rule("linalg.matrix_rank", "general", "nondiff", _matrix_rank, params=("rtol",), domain="matrix"),
    custom("linalg.outer", _outer_jvp, args=_XY, domain="real"),
    custom("linalg.pinv", _pinv_jvp, f=_pinv, params=("rtol",), domain="matrix",
           note="constant rank; a dual rtol counts by its value"),
    custom("linalg.qr", _qr_jvp, params=("mode",), domain="matrix",
           note="rank-deficient: NaN tangents; mode='complete': extra columns: the non-rotating completion"),
    custom("linalg.slogdet", _slogdet_jvp, domain="invertible",
           note="singular matrices: log|det| has tangent NaN"),
    custom("linalg.solve", _solve_jvp, args=_XY, domain="invertible"),
    custom("linalg.svd", _svd_jvp, params=("full_matrices",), domain="matrix",
           note="full_matrices=True: extra vectors get the non-rotating completion; "
                "repeated or zero singular values: vectors NaN"),
    custom("linalg.svdvals", _svdvals_jvp, domain="matrix", note="ties: the cluster mean; slope 0 at 0"),
    custom("linalg.tensordot", la.tensordot_jvp, args=_XY, params=("axes",)),
    linear("linalg.trace", _trace_t, params=("offset", "dtype"), domain="matrix"),
    custom("linalg.vecdot", la.vecdot_jvp, args=_XY, params=("axis",)),
    custom("linalg.vector_norm", _vector_norm_jvp, params=("axis", "keepdims", "ord"),
           note=_KINKS),
)  # fmt: skip
