"""Unmodified NumPy code on duals: ufuncs (NEP 13), array functions (NEP 18), array methods.

One table of plain NumPy calls; each is differentiated with ``ft.jvp`` and compared with
a central finite difference of the same NumPy code on float64 arrays, for float64 and
float32 inputs, one direction and a batch of three. Calls without a rule must raise
``NotDifferentiableError`` naming the NumPy function while a tangent is present, and run
NumPy on the primals when none is.
"""

from __future__ import annotations

import subprocess
import sys
import types
import zlib
from pathlib import Path

import numpy as np
import pytest

import fwdtensor as ft
from fwdtensor.namespace import numpy_protocols as protocols
from tests._util import assert_close, central_difference, sample, to_numpy

ROOT = Path(__file__).resolve().parent.parent

C3 = np.linspace(0.3, 1.7, 3)  # constants for broadcasting against the duals
C43 = np.linspace(-1.0, 1.0, 12).reshape(4, 3)
XP7 = np.linspace(-3, 3, 7)  # interpolation nodes
XP5 = np.linspace(-1, 2, 5)
C33 = np.array([[2.0, 0.3, 0.1], [0.3, 1.5, -0.2], [0.1, -0.2, 1.8]])
M3 = C33 + 3 * np.eye(3)  # well conditioned
SPD = np.array([[4.0, 1.0, 0.5], [1.0, 3.0, 0.2], [0.5, 0.2, 2.0]])


def _filled(a, val, wrap=False):
    """``np.fill_diagonal`` on a copy (it writes in place and returns None)."""
    b = a * 1.0
    np.fill_diagonal(b, val, wrap=wrap)
    return b


def spd(x):
    """A symmetric positive definite matrix from any square x (for eigh, cholesky)."""
    return x @ x.T + 3 * np.eye(x.shape[0])


def sym(x):
    return x + x.T


# (id, f written in plain NumPy, input shapes, domain)
CASES = [
    # ---------------------------------------------------------------- ufuncs, unary
    ("sin", np.sin, [(3, 4)], "real"),
    ("cos", np.cos, [(3, 4)], "real"),
    ("tan", np.tan, [(5,)], "tan"),
    ("arcsin", np.arcsin, [(5,)], "unit"),
    ("arccos", np.arccos, [(5,)], "unit"),
    ("arctan", np.arctan, [(5,)], "real"),
    ("sinh", np.sinh, [(5,)], "real"),
    ("cosh", np.cosh, [(5,)], "real"),
    ("tanh", np.tanh, [(5,)], "real"),
    ("arcsinh", np.arcsinh, [(5,)], "real"),
    ("arccosh", np.arccosh, [(5,)], "gt1"),
    ("arctanh", np.arctanh, [(5,)], "unit"),
    ("exp", np.exp, [(2, 3)], "real"),
    ("exp2", np.exp2, [(2, 3)], "real"),
    ("expm1", np.expm1, [(5,)], "real"),
    ("log", np.log, [(5,)], "positive"),
    ("log2", np.log2, [(5,)], "positive"),
    ("log10", np.log10, [(5,)], "positive"),
    ("log1p", np.log1p, [(5,)], "gtm1"),
    ("sqrt", np.sqrt, [(5,)], "positive"),
    ("cbrt", np.cbrt, [(5,)], "nonzero"),
    ("square", np.square, [(5,)], "real"),
    ("reciprocal", np.reciprocal, [(5,)], "nonzero"),
    ("negative", np.negative, [(5,)], "real"),
    ("positive", np.positive, [(5,)], "real"),
    ("absolute", np.absolute, [(5,)], "nonzero"),
    ("abs", np.abs, [(5,)], "nonzero"),
    ("fabs", np.fabs, [(5,)], "nonzero"),
    ("deg2rad", np.deg2rad, [(5,)], "real"),
    ("rad2deg", np.rad2deg, [(5,)], "real"),
    ("radians", np.radians, [(5,)], "real"),
    ("degrees", np.degrees, [(5,)], "real"),
    ("conjugate", np.conjugate, [(5,)], "real"),
    ("sign*x", lambda x: np.sign(x) * x, [(5,)], "nonzero"),
    ("floor+x", lambda x: np.floor(x) + x, [(5,)], "nonzero2"),
    ("ceil*x", lambda x: np.ceil(x) * x, [(5,)], "positive"),
    ("trunc+x", lambda x: np.trunc(x) + x, [(5,)], "positive"),
    ("rint+x", lambda x: np.rint(x) + x, [(5,)], "positive"),
    ("sin(ndarray-method)", lambda x: np.sin(x).sum(), [(3, 2)], "real"),
    # ---------------------------------------------------------------- ufuncs, binary
    ("add", np.add, [(3, 4), (3, 4)], "real"),
    ("subtract", np.subtract, [(3, 4), (3, 4)], "real"),
    ("multiply", np.multiply, [(3, 4), (3, 4)], "real"),
    ("divide", np.divide, [(4,), (4,)], "nonzero"),
    ("true_divide", np.true_divide, [(4,), (4,)], "nonzero"),
    ("power", np.power, [(4,), (4,)], "pow"),
    ("float_power", np.float_power, [(4,), (4,)], "pow"),
    ("maximum", np.maximum, [(6,), (6,)], "real"),
    ("minimum", np.minimum, [(6,), (6,)], "real"),
    ("fmax", np.fmax, [(6,), (6,)], "real"),
    ("fmin", np.fmin, [(6,), (6,)], "real"),
    ("hypot", np.hypot, [(6,), (6,)], "nonzero"),
    ("arctan2", np.arctan2, [(6,), (6,)], "nonzero"),
    ("logaddexp", np.logaddexp, [(6,), (6,)], "real"),
    ("logaddexp2", np.logaddexp2, [(6,), (6,)], "real"),
    ("copysign", lambda a, b: np.copysign(a, b), [(6,), (6,)], "nonzero"),
    ("fmod", np.fmod, [(6,), (6,)], "nonzero2"),
    ("remainder", np.remainder, [(6,), (6,)], "nonzero2"),
    ("mod", np.mod, [(6,), (6,)], "nonzero2"),
    ("matmul-ufunc", np.matmul, [(3, 4), (4, 2)], "real"),
    ("matmul-batched", np.matmul, [(2, 3, 4), (4,)], "real"),
    ("vecdot-ufunc", np.vecdot, [(3, 4), (4,)], "real"),
    ("heaviside-h", lambda h: np.heaviside(np.array([-1.0, 0.0, 2.0]), h), [(3,)], "real"),
    ("ldexp", lambda x: np.ldexp(x, np.array([1, 2, -1])), [(3,)], "real"),
    ("modf", lambda x: np.modf(x)[0] * 2 + np.modf(x)[1], [(4,)], "positive"),
    ("divmod", lambda a, b: np.divmod(a, b)[1], [(4,), (4,)], "nonzero2"),
    # -------------------------------------------- broadcasting, constants, scalars
    ("add-bcast", np.add, [(3, 1), (4,)], "real"),
    ("mul-bcast", np.multiply, [(2, 1, 3), (4, 1)], "real"),
    ("ndarray+dual", lambda x: C43 + x, [(3,)], "real"),
    ("dual+ndarray", lambda x: x + C43, [(3,)], "real"),
    ("ndarray*dual", lambda x: C43 * x, [(4, 3)], "real"),
    ("ndarray-dual", lambda x: C3 - x, [(4, 3)], "real"),
    ("ndarray/dual", lambda x: C3 / x, [(4, 3)], "nonzero"),
    ("ndarray**dual", lambda x: C3**x, [(3,)], "real"),
    ("dual**ndarray", lambda x: x**C3, [(3,)], "positive"),
    ("np.add(ndarray,dual)", lambda x: np.add(C43, x), [(3,)], "real"),
    ("np.subtract(2,dual)", lambda x: np.subtract(2.0, x), [(3,)], "real"),
    ("np.divide(dual,2)", lambda x: np.divide(x, 2.0), [(3,)], "real"),
    ("np.power(2,dual)", lambda x: np.power(2.0, x), [(3,)], "real"),
    ("np.power(dual,3)", lambda x: np.power(x, 3), [(3,)], "real"),
    ("np.maximum(ndarray,dual)", lambda x: np.maximum(C43, x), [(3,)], "real"),
    ("np.minimum(dual,0.5)", lambda x: np.minimum(x, 0.5), [(5,)], "real"),
    ("np.hypot(3,dual)", lambda x: np.hypot(3.0, x), [(3,)], "real"),
    ("np.logaddexp(ndarray,dual)", lambda x: np.logaddexp(C3, x), [(2, 3)], "real"),
    ("np.float64*dual", lambda x: np.float64(2.5) * x, [(3,)], "real"),
    ("dual*np.float64", lambda x: x * np.float64(2.5), [(3,)], "real"),
    ("list+dual", lambda x: np.add([1.0, 2.0, 3.0], x), [(3,)], "real"),
    ("where-scalar", lambda x: np.where(x > 0, x, 0.1 * x), [(6,)], "nonzero"),
    # ---------------------------------------------------------------- ufunc methods
    ("add.reduce", lambda x: np.add.reduce(x), [(4, 3)], "real"),
    ("add.reduce-axis1", lambda x: np.add.reduce(x, axis=1), [(4, 3)], "real"),
    ("add.reduce-None", lambda x: np.add.reduce(x, axis=None, keepdims=True), [(4, 3)], "real"),
    ("multiply.reduce", lambda x: np.multiply.reduce(x, axis=0), [(4, 3)], "nonzero"),
    ("maximum.reduce", lambda x: np.maximum.reduce(x, axis=1), [(4, 3)], "real"),
    ("minimum.reduce", lambda x: np.minimum.reduce(x), [(4, 3)], "real"),
    ("add.reduce-initial", lambda x: np.add.reduce(x, initial=2.0), [(4,)], "real"),
    ("logaddexp.reduce", lambda x: np.logaddexp.reduce(x, axis=1), [(3, 4)], "real"),
    ("logaddexp2.reduce", lambda x: np.logaddexp2.reduce(x), [(4,)], "real"),
    ("fmax.reduce", lambda x: np.fmax.reduce(x, axis=0), [(3, 4)], "real"),
    ("fmin.reduce-None", lambda x: np.fmin.reduce(x, axis=None), [(3, 4)], "real"),
    ("maximum.accumulate", lambda x: np.maximum.accumulate(x), [(6,)], "real"),
    ("minimum.accumulate", lambda x: np.minimum.accumulate(x, axis=1), [(2, 5)], "real"),
    ("add.accumulate", lambda x: np.add.accumulate(x), [(4, 3)], "real"),
    ("add.accumulate-axis1", lambda x: np.add.accumulate(x, axis=1), [(4, 3)], "real"),
    ("multiply.accumulate", lambda x: np.multiply.accumulate(x), [(5,)], "nonzero"),
    ("multiply.outer", lambda a, b: np.multiply.outer(a, b), [(3,), (2, 2)], "real"),
    ("add.outer", lambda a, b: np.add.outer(a, b), [(3,), (4,)], "real"),
    ("subtract.outer-const", lambda a: np.subtract.outer(C3, a), [(4,)], "real"),
    ("hypot.outer", lambda a, b: np.hypot.outer(a, b), [(3,), (2,)], "nonzero"),
    # ------------------------------------------------------------- reductions
    ("sum", np.sum, [(3, 4)], "real"),
    ("sum-axis", lambda x: np.sum(x, axis=0), [(3, 4)], "real"),
    ("sum-axes-keepdims", lambda x: np.sum(x, axis=(0, 2), keepdims=True), [(2, 3, 4)], "real"),
    ("sum-initial", lambda x: np.sum(x, initial=1.5), [(3,)], "real"),
    ("prod", lambda x: np.prod(x, axis=1), [(3, 4)], "nonzero"),
    ("mean", np.mean, [(3, 4)], "real"),
    ("mean-axis", lambda x: np.mean(x, axis=-1, keepdims=True), [(3, 4)], "real"),
    ("std", np.std, [(3, 4)], "real"),
    ("std-ddof", lambda x: np.std(x, axis=0, ddof=1), [(5, 2)], "real"),
    ("var", lambda x: np.var(x, axis=1), [(3, 4)], "real"),
    ("max", lambda x: np.max(x, axis=0), [(3, 4)], "real"),
    ("amax", lambda x: np.amax(x), [(3, 4)], "real"),
    ("min", lambda x: np.min(x, axis=1), [(3, 4)], "real"),
    ("amin", lambda x: np.amin(x, axis=0), [(3, 4)], "real"),
    ("ptp", lambda x: np.ptp(x, axis=1), [(3, 4)], "real"),
    ("cumsum", np.cumsum, [(3, 4)], "real"),
    ("cumsum-axis", lambda x: np.cumsum(x, axis=1), [(3, 4)], "real"),
    ("cumprod", lambda x: np.cumprod(x, axis=0), [(3, 4)], "nonzero"),
    ("cumulative_sum", lambda x: np.cumulative_sum(x, axis=0, include_initial=True), [(3, 4)], "real"),
    ("average", lambda x: np.average(x, axis=0, weights=C3[: x.shape[0]]), [(3, 2)], "real"),
    ("average-w-dual", lambda x, w: np.average(x, weights=w), [(4,), (4,)], "positive"),
    ("median", np.median, [(5,)], "real"),
    ("median-even-axis", lambda x: np.median(x, axis=0), [(4, 3)], "real"),
    ("quantile", lambda x: np.quantile(x, 0.3), [(7,)], "real"),
    ("percentile-many", lambda x: np.percentile(x, [10, 50, 90], axis=1), [(2, 6)], "real"),
    ("nansum", lambda x: np.nansum(x, axis=0), [(3, 4)], "real"),
    ("nanmean", lambda x: np.nanmean(x), [(3, 4)], "real"),
    ("nanmedian", lambda x: np.nanmedian(np.where(C43 > 0.7, np.nan, x), axis=0), [(4, 3)], "real"),
    ("nanmedian-all", lambda x: np.nanmedian(np.where(C43 > 0.7, np.nan, x)), [(4, 3)], "real"),
    ("nanpercentile-many", lambda x: np.nanpercentile(x, [25, 75], axis=1), [(2, 6)], "real"),
    (
        "nanquantile-keepdims",
        lambda x: np.nanquantile(np.where(C43 > 0.7, np.nan, x), 0.3, axis=1, keepdims=True),
        [(4, 3)],
        "real",
    ),
    ("fill_diagonal", lambda a: _filled(a, 0.5), [(3, 3)], "real"),
    ("fill_diagonal-dual", lambda a, v: _filled(a, v), [(3, 3), (3,)], "real"),
    ("fill_diagonal-wrap", lambda a, v: _filled(a, v, wrap=True), [(7, 3), (2,)], "real"),
    ("cov", np.cov, [(3, 5)], "real"),
    ("cov-y-rowvar", lambda x, y: np.cov(x, y, rowvar=False, ddof=0), [(5, 2), (5,)], "real"),
    ("corrcoef", np.corrcoef, [(3, 5)], "real"),
    ("convolve", np.convolve, [(6,), (3,)], "real"),
    ("convolve-same-const", lambda a: np.convolve(a, C3, mode="same"), [(6,)], "real"),
    ("convolve-valid", lambda a, v: np.convolve(a, v, "valid"), [(2,), (5,)], "real"),
    ("correlate", np.correlate, [(6,), (3,)], "real"),
    ("correlate-full", lambda a, v: np.correlate(a, v, "full"), [(3,), (5,)], "real"),
    ("nanmax", lambda x: np.nanmax(np.where(C43 > 0.7, np.nan, x), axis=0), [(4, 3)], "real"),
    ("nanmin", lambda x: np.nanmin(x), [(4, 3)], "real"),
    ("nanprod", lambda x: np.nanprod(np.where(C43 > 0.7, np.nan, x)), [(4, 3)], "nonzero"),
    ("nancumsum", lambda x: np.nancumsum(x, axis=1), [(4, 3)], "real"),
    ("nanvar", lambda x: np.nanvar(np.where(C43 > 0.7, np.nan, x), axis=1), [(4, 3)], "real"),
    ("nanstd", lambda x: np.nanstd(x), [(4, 3)], "real"),
    ("logspace", lambda a: np.logspace(a[0], a[1], 4), [(2,)], "unit"),
    ("fix+x", lambda x: np.fix(x) + x, [(4,)], "positive"),
    ("ediff1d", lambda x: np.ediff1d(x, to_begin=C3), [(2, 3)], "real"),
    ("vander", lambda x: np.vander(x, 3), [(4,)], "real"),
    ("linalg.cond", np.linalg.cond, [(3, 3)], "real"),
    ("linalg.lstsq", lambda a, b: np.linalg.lstsq(a, b)[0], [(5, 3), (5,)], "real"),
    ("linalg.lstsq-res", lambda b: np.linalg.lstsq(C43, b)[1], [(4, 2)], "real"),
    ("trapezoid", np.trapezoid, [(6,)], "real"),
    ("trapezoid-x", lambda y, x: np.trapezoid(y, np.cumsum(np.abs(x)) + 0.1), [(6,), (6,)], "nonzero"),
    ("trapezoid-dx-axis", lambda y: np.trapezoid(y, dx=0.3, axis=0), [(5, 2)], "real"),
    # ------------------------------------------------------------- linear algebra
    ("dot-vv", np.dot, [(4,), (4,)], "real"),
    ("dot-mv", np.dot, [(3, 4), (4,)], "real"),
    ("dot-mm", np.dot, [(3, 4), (4, 2)], "real"),
    ("dot-nd", np.dot, [(2, 3, 4), (4, 2)], "real"),
    ("dot-scalar", lambda x: np.dot(2.0, x), [(3,)], "real"),
    ("vdot", np.vdot, [(2, 2), (4,)], "real"),
    ("inner", np.inner, [(2, 3), (4, 3)], "real"),
    ("outer", np.outer, [(3,), (2, 2)], "real"),
    ("tensordot", lambda a, b: np.tensordot(a, b, axes=([1, 2], [0, 1])), [(2, 3, 4), (3, 4)], "real"),
    ("tensordot-int", lambda a, b: np.tensordot(a, b, axes=1), [(2, 3), (3, 4)], "real"),
    ("matmul-const", lambda x: C33 @ x, [(3, 2)], "real"),
    ("matmul-op", lambda x: x @ x.T, [(3, 2)], "real"),
    ("einsum-mm", lambda a, b: np.einsum("ij,jk->ik", a, b), [(3, 4), (4, 2)], "real"),
    ("einsum-trace", lambda a: np.einsum("ii", a), [(3, 3)], "real"),
    ("einsum-diag", lambda a: np.einsum("ii->i", a), [(3, 3)], "real"),
    ("einsum-implicit", lambda a, b: np.einsum("ij,jk", a, b), [(3, 4), (4, 2)], "real"),
    ("einsum-batch", lambda a, b: np.einsum("bij,bjk->bik", a, b), [(2, 3, 4), (2, 4, 2)], "real"),
    ("einsum-ellipsis", lambda a, b: np.einsum("...ij,...j->...i", a, b), [(2, 3, 4), (4,)], "real"),
    ("einsum-3ops", lambda a, b, c: np.einsum("i,ij,j->", a, b, c), [(3,), (3, 4), (4,)], "real"),
    ("einsum-outer", lambda a, b: np.einsum("i,j->ji", a, b), [(3,), (2,)], "real"),
    ("kron", np.kron, [(2, 2), (2, 3)], "real"),
    ("kron-1d", np.kron, [(3,), (2,)], "real"),
    ("cross", np.cross, [(4, 3), (3,)], "real"),
    ("cross-axis", lambda a, b: np.cross(a, b, axisa=0, axisb=0), [(3, 2), (3, 2)], "real"),
    ("trace", np.trace, [(3, 3)], "real"),
    ("trace-offset", lambda a: np.trace(a, offset=1, axis1=1, axis2=2), [(2, 3, 4)], "real"),
    ("diagonal", lambda a: np.diagonal(a, offset=-1), [(3, 4)], "real"),
    ("diag-v", np.diag, [(3,)], "real"),
    ("diag-v-k", lambda v: np.diag(v, k=-2), [(3,)], "real"),
    ("diag-m", np.diag, [(3, 4)], "real"),
    ("triu", lambda a: np.triu(a, k=1), [(3, 4)], "real"),
    ("tril", np.tril, [(3, 4)], "real"),
    ("polyval", np.polyval, [(4,), (5,)], "real"),
    ("linalg.solve", lambda a, b: np.linalg.solve(a + 4 * np.eye(3), b), [(3, 3), (3,)], "unit"),
    ("linalg.solve-mat", lambda b: np.linalg.solve(M3, b), [(3, 2)], "real"),
    ("linalg.inv", lambda a: np.linalg.inv(a + 4 * np.eye(3)), [(3, 3)], "unit"),
    ("linalg.det", np.linalg.det, [(3, 3)], "real"),
    ("linalg.slogdet", lambda a: np.linalg.slogdet(a + 4 * np.eye(3))[1], [(3, 3)], "unit"),
    ("linalg.norm", np.linalg.norm, [(3, 4)], "nonzero"),
    ("linalg.norm-vec-ord1", lambda x: np.linalg.norm(x, ord=1), [(5,)], "nonzero"),
    ("linalg.norm-axis", lambda x: np.linalg.norm(x, axis=1), [(3, 4)], "nonzero"),
    ("linalg.norm-fro-keep", lambda x: np.linalg.norm(x, axis=(0, 1), keepdims=True), [(3, 4)], "real"),
    ("linalg.eigh-values", lambda a: np.linalg.eigh(sym(a))[0], [(3, 3)], "real"),
    ("linalg.eigh-lower", lambda a: np.linalg.eigh(a)[0], [(3, 3)], "real"),
    ("linalg.eigvalsh", lambda a: np.linalg.eigvalsh(sym(a)), [(3, 3)], "real"),
    ("linalg.svd-values", lambda a: np.linalg.svd(a, compute_uv=False), [(3, 4)], "real"),
    ("linalg.svd-recon", lambda a: np.abs(np.linalg.svd(a, full_matrices=False)[0][:, 0]), [(3, 4)], "real"),
    ("linalg.cholesky", lambda a: np.linalg.cholesky(spd(a)), [(3, 3)], "real"),
    ("linalg.qr-r", lambda a: np.abs(np.linalg.qr(a)[1]), [(4, 3)], "real"),
    ("linalg.pinv", np.linalg.pinv, [(4, 3)], "real"),
    ("linalg.matrix_power", lambda a: np.linalg.matrix_power(a, 3), [(3, 3)], "real"),
    ("linalg.multi_dot", lambda a, b: np.linalg.multi_dot([a, b, C33]), [(2, 3), (3, 3)], "real"),
    # ---------------------------------------------------------------- manipulation
    ("reshape", lambda x: np.reshape(x, (4, 3)), [(3, 4)], "real"),
    ("reshape-F", lambda x: np.reshape(x, (2, 6), order="F"), [(3, 4)], "real"),
    ("ravel", np.ravel, [(3, 4)], "real"),
    ("transpose", np.transpose, [(2, 3, 4)], "real"),
    ("transpose-axes", lambda x: np.transpose(x, (1, 0, 2)), [(2, 3, 4)], "real"),
    ("swapaxes", lambda x: np.swapaxes(x, 0, 2), [(2, 3, 4)], "real"),
    ("moveaxis", lambda x: np.moveaxis(x, 0, -1), [(2, 3, 4)], "real"),
    ("squeeze", np.squeeze, [(1, 3, 1)], "real"),
    ("expand_dims", lambda x: np.expand_dims(x, (0, 2)), [(3, 4)], "real"),
    ("concatenate", lambda a, b: np.concatenate([a, b, C43[:2]], axis=0), [(2, 3), (1, 3)], "real"),
    ("concatenate-None", lambda a, b: np.concatenate((a, b), axis=None), [(2, 3), (4,)], "real"),
    ("stack", lambda a, b: np.stack([a, b], axis=1), [(3,), (3,)], "real"),
    ("hstack", lambda a, b: np.hstack([a, b]), [(3,), (2,)], "real"),
    ("hstack-2d", lambda a, b: np.hstack((a, b)), [(2, 3), (2, 1)], "real"),
    ("vstack", lambda a, b: np.vstack([a, b]), [(3,), (2, 3)], "real"),
    ("dstack", lambda a, b: np.dstack([a, b]), [(2, 3), (2, 3)], "real"),
    ("column_stack", lambda a, b: np.column_stack([a, b]), [(3,), (3, 2)], "real"),
    ("split", lambda x: np.split(x, 2)[1] * 2, [(4, 3)], "real"),
    ("split-idx", lambda x: np.split(x, [1, 3], axis=1)[2], [(2, 5)], "real"),
    ("array_split", lambda x: np.array_split(x, 3)[0], [(7,)], "real"),
    ("hsplit", lambda x: np.hsplit(x, 2)[0], [(2, 4)], "real"),
    ("vsplit", lambda x: np.vsplit(x, 3)[2], [(3, 2)], "real"),
    ("dsplit", lambda x: np.dsplit(x, 2)[1], [(1, 2, 4)], "real"),
    ("atleast_1d", np.atleast_1d, [()], "real"),
    ("atleast_2d", np.atleast_2d, [(3,)], "real"),
    ("atleast_3d", np.atleast_3d, [(3, 2)], "real"),
    ("roll", lambda x: np.roll(x, 2), [(3, 4)], "real"),
    ("roll-axis", lambda x: np.roll(x, -1, axis=1), [(3, 4)], "real"),
    ("roll-axes", lambda x: np.roll(x, (1, 2), axis=(0, 1)), [(3, 4)], "real"),
    ("flip", np.flip, [(3, 4)], "real"),
    ("fliplr", np.fliplr, [(3, 4)], "real"),
    ("flipud", np.flipud, [(3, 4)], "real"),
    ("rot90", np.rot90, [(3, 4)], "real"),
    ("rot90-k3", lambda x: np.rot90(x, 3), [(3, 4)], "real"),
    ("tile", lambda x: np.tile(x, (2, 1)), [(2, 3)], "real"),
    ("tile-int", lambda x: np.tile(x, 3), [(2,)], "real"),
    ("repeat", lambda x: np.repeat(x, 2), [(2, 3)], "real"),
    ("repeat-axis", lambda x: np.repeat(x, 2, axis=1), [(2, 3)], "real"),
    ("broadcast_to", lambda x: np.broadcast_to(x, (2, 3)), [(3,)], "real"),
    ("broadcast_arrays", lambda a, b: np.broadcast_arrays(a, b)[0], [(3, 1), (4,)], "real"),
    ("append", lambda x: np.append(x, C3), [(2, 2)], "real"),
    ("pad-constant", lambda x: np.pad(x, 1), [(3, 4)], "real"),
    ("pad-constant-values", lambda x: np.pad(x, ((1, 2), (0, 1)), constant_values=2.5), [(3, 4)], "real"),
    ("pad-edge", lambda x: np.pad(x, 2, mode="edge"), [(3,)], "real"),
    ("pad-wrap", lambda x: np.pad(x, (1, 2), mode="wrap"), [(4,)], "real"),
    ("pad-reflect", lambda x: np.pad(x, ((1, 1), (2, 3)), mode="reflect"), [(2, 4)], "real"),
    ("pad-symmetric", lambda x: np.pad(x, 1, mode="symmetric"), [(3, 3)], "real"),
    ("diff", np.diff, [(5,)], "real"),
    ("diff-n2-axis0", lambda x: np.diff(x, n=2, axis=0), [(5, 2)], "real"),
    ("diff-prepend", lambda x: np.diff(x, prepend=0.0), [(5,)], "real"),
    ("gradient", np.gradient, [(6,)], "real"),
    ("gradient-spacing", lambda x: np.gradient(x, 0.5, axis=1), [(3, 5)], "real"),
    ("gradient-2d", lambda x: np.gradient(x)[0], [(4, 5)], "real"),
    ("gradient-coords", lambda f: np.gradient(f, np.array([0.0, 0.3, 1.0, 1.2, 2.0])), [(5,)], "real"),
    ("interp-x", lambda x: np.interp(x, XP7, np.sin(XP7)), [(5,)], "real"),
    ("interp-fp", lambda fp: np.interp(np.array([-0.3, 0.77, 1.9]), XP5, fp), [(5,)], "real"),
    ("where", lambda a, b: np.where(a > b, a * b, np.sin(b)), [(5,), (5,)], "real"),
    ("where-const", lambda x: np.where(C3 > 1.0, x, C3), [(3,)], "real"),
    ("select", lambda x: np.select([x < -0.5, x > 0.5], [x**2, np.sin(x)], 0.1 * x), [(6,)], "real"),
    ("clip", lambda x: np.clip(x, -0.5, 0.7), [(6,)], "real"),
    ("clip-dual-bounds", lambda x, lo: np.clip(x, lo - 2.0, 0.8), [(5,), (5,)], "real"),
    ("take", lambda x: np.take(x, [2, 0, 2]), [(2, 3)], "real"),
    ("take-axis", lambda x: np.take(x, np.array([[0, 1], [1, 1]]), axis=1), [(3, 2)], "real"),
    ("take_along_axis", lambda x: np.take_along_axis(x, np.argsort(x, axis=1), axis=1), [(3, 4)], "real"),
    ("sort", lambda x: np.sort(x, axis=0), [(4, 3)], "real"),
    ("partition", lambda x: np.sum(np.partition(x, 2)[:2]), [(6,)], "real"),
    ("copy", lambda x: np.copy(x) * 2, [(3,)], "real"),
    ("meshgrid", lambda a, b: np.meshgrid(a, b)[0] * np.meshgrid(a, b)[1], [(3,), (2,)], "real"),
    ("linspace", lambda a: np.linspace(a[0], a[1], 5), [(2,)], "real"),
    ("real-imag", lambda x: np.real(x) + np.imag(x), [(3,)], "real"),
    ("angle", lambda x: np.angle(x * (1 + 1j)), [(3,)], "nonzero"),
    ("around", lambda x: np.around(x, 1) + x, [(3,)], "real"),
    ("round", lambda x: np.round(x) * x, [(3,)], "real"),
    ("sinc", np.sinc, [(5,)], "real"),
    ("nan_to_num", lambda x: np.nan_to_num(np.log(x)), [(5,)], "positive"),
    ("real_if_close", lambda x: np.real_if_close(x + 0j), [(3,)], "real"),
    ("unique", lambda x: np.unique(np.round(x, 0) + 0 * x), [(6,)], "positive"),
    # ----------------------------------------------------------------------- fft
    ("fft.fft-abs", lambda x: np.abs(np.fft.fft(x)), [(6,)], "real"),
    ("fft.rfft-real", lambda x: np.real(np.fft.rfft(x, norm="ortho")), [(8,)], "real"),
    ("fft.irfft", lambda x: np.fft.irfft(np.fft.rfft(x) * np.exp(-np.arange(5))), [(8,)], "real"),
    ("fft.fft2", lambda x: np.imag(np.fft.fft2(x)), [(3, 4)], "real"),
    ("fft.ifftn", lambda x: np.real(np.fft.ifftn(x, axes=(0,))), [(3, 4)], "real"),
    ("fft.fftshift", np.fft.fftshift, [(5,)], "real"),
    ("fft.ifftshift", lambda x: np.fft.ifftshift(x, axes=0), [(4, 2)], "real"),
    # ------------------------------------------------------------- array methods
    ("m.reshape", lambda x: x.reshape(4, 3), [(3, 4)], "real"),
    ("m.reshape-tuple", lambda x: x.reshape((2, -1)), [(3, 4)], "real"),
    ("m.sum", lambda x: x.sum(axis=1), [(3, 4)], "real"),
    ("m.mean", lambda x: x.mean(), [(3, 4)], "real"),
    ("m.std", lambda x: x.std(ddof=1), [(3, 4)], "real"),
    ("m.var", lambda x: x.var(axis=0), [(3, 4)], "real"),
    ("m.prod", lambda x: x.prod(), [(4,)], "nonzero"),
    ("m.max", lambda x: x.max(axis=0), [(3, 4)], "real"),
    ("m.min", lambda x: x.min(), [(3, 4)], "real"),
    ("m.cumsum", lambda x: x.cumsum(), [(3, 4)], "real"),
    ("m.cumprod", lambda x: x.cumprod(axis=1), [(3, 4)], "nonzero"),
    ("m.dot", lambda a, b: a.dot(b), [(3, 4), (4,)], "real"),
    ("m.ravel", lambda x: x.ravel(), [(3, 4)], "real"),
    ("m.flatten", lambda x: x.flatten(), [(3, 4)], "real"),
    ("m.squeeze", lambda x: x.squeeze(), [(3, 1)], "real"),
    ("m.transpose", lambda x: x.transpose(), [(3, 4)], "real"),
    ("m.transpose-args", lambda x: x.transpose(2, 0, 1), [(2, 3, 4)], "real"),
    ("m.T", lambda x: x.T, [(3, 4)], "real"),
    ("m.swapaxes", lambda x: x.swapaxes(0, 1), [(3, 4)], "real"),
    ("m.astype", lambda x: x.astype(np.float64) * 2, [(3,)], "real"),
    ("m.copy", lambda x: x.copy(), [(3,)], "real"),
    ("m.clip", lambda x: x.clip(-0.5, 0.5), [(6,)], "real"),
    ("m.round", lambda x: x.round(1) + x, [(3,)], "real"),
    ("m.real", lambda x: x.real, [(3,)], "real"),
    ("m.imag", lambda x: x.imag + x, [(3,)], "real"),
    ("m.conj", lambda x: x.conj(), [(3,)], "real"),
    ("m.trace", lambda x: x.trace(), [(3, 3)], "real"),
    ("m.diagonal", lambda x: x.diagonal(), [(3, 3)], "real"),
    ("m.all-any", lambda x: x * float(x.all()) + x * float(x.any()), [(3,)], "positive"),
    # ----------------------------------------------------- small models, composed
    ("model-softmax", lambda x: np.exp(x - x.max()) / np.sum(np.exp(x - x.max())), [(5,)], "real"),
    ("model-logsumexp", lambda x: np.log(np.sum(np.exp(x), axis=-1)), [(3, 4)], "real"),
    ("model-mlp", lambda w, x: np.tanh(np.dot(C43, w) + 0.5) @ x, [(3, 2), (2,)], "real"),
    ("model-rbf", lambda x: np.exp(-np.sum((x[:, None, :] - x[None, :, :]) ** 2, axis=-1)), [(3, 2)], "real"),
    (
        "model-laplacian",
        lambda u: np.roll(u, 1) - 2 * u + np.roll(u, -1) + np.where(u > 0, np.exp(-u), 1.0 - u),
        [(8,)],
        "real",
    ),
]

IDS = [c[0] for c in CASES]
assert len(IDS) == len(set(IDS)), "case ids must be unique"


def _flat(out) -> np.ndarray:
    """Every leaf of a NumPy result (array, tuple, list) as one float64/complex128 vector."""
    if isinstance(out, (tuple, list)):
        return np.concatenate([_flat(o) for o in out]) if out else np.zeros(0)
    a = to_numpy(out)
    return np.ravel(a).astype(np.complex128 if np.iscomplexobj(a) else np.float64)


def _inputs(case, dtype):
    name, f, shapes, domain = case
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    xs = [sample(domain, s, dtype, rng, arg=i) for i, s in enumerate(shapes)]
    ts = [rng.standard_normal(s).astype(dtype) for s in shapes]
    return f, xs, ts


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_numpy_call_against_finite_differences(case, dtype):
    f, xs, ts = _inputs(case, dtype)
    out, tout = ft.jvp(lambda *a: f(*a), xs, ts)
    x64 = [x.astype(np.float64) for x in xs]
    want = central_difference(lambda *a: _flat(f(*a)), x64, [t.astype(np.float64) for t in ts], h=1e-4)
    assert_close(_flat(tout), want, dtype, what=f"tangent of {case[0]}")
    assert_close(_flat(out), _flat(f(*xs)), dtype, what=f"primal of {case[0]}")


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_batched_equals_three_single_directions(case):
    f, xs, _ = _inputs(case, "float64")
    rng = np.random.default_rng(zlib.crc32(b"batched" + case[0].encode()))
    tb = [rng.standard_normal((3, *x.shape)) for x in xs]
    _, tout = ft.batched_jvp(lambda *a: f(*a), xs, tb)
    for k in range(3):
        _, single = ft.jvp(lambda *a: f(*a), xs, [t[k] for t in tb])
        got = [o[k] for o in tout] if isinstance(tout, (tuple, list)) else tout[k]
        np.testing.assert_allclose(_flat(got), _flat(single), rtol=1e-12, atol=1e-12, err_msg=case[0])


HESSIANS = [
    ("sin*exp", lambda x: np.sum(np.sin(x) * np.exp(0.3 * x)), (4,)),
    ("norm", lambda x: np.linalg.norm(x), (4,)),
    ("quadratic", lambda x: np.dot(x, C33 @ x), (3,)),
    ("einsum", lambda x: np.einsum("i,ij,j->", x, C33, np.tanh(x)), (3,)),
    ("logsumexp", lambda x: np.log(np.add.reduce(np.exp(x))), (5,)),
    ("roll-model", lambda u: np.sum((np.roll(u, 1) - u) ** 2 * np.exp(-u)), (5,)),
    ("std-max", lambda x: x.std() + np.maximum(x, 0.1).mean(), (5,)),
]


@pytest.mark.parametrize("name,f,shape", HESSIANS, ids=[h[0] for h in HESSIANS])
def test_nested_hessian(name, f, shape):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    x = rng.uniform(-1, 1, shape)
    H = ft.hessian(f)(x)
    grad = ft.jacfwd(f)
    want = np.stack([central_difference(grad, [x], [e]) for e in np.eye(x.size)], axis=-1)
    np.testing.assert_allclose(to_numpy(H), want, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(to_numpy(H), to_numpy(H).T, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------ calls without a rule
NO_RULE = [
    ("numpy.histogram", lambda x: np.histogram(x, bins=3)[1]),
    ("numpy.unwrap", lambda x: np.unwrap(x)),
    ("numpy.bincount", lambda x: np.bincount(np.array([0, 1, 1]), weights=x)),
    ("numpy.i0", lambda x: np.i0(x)),
    ("numpy.spacing", lambda x: np.spacing(x)),
    ("numpy.frexp", lambda x: np.frexp(x)[0]),
    ("numpy.hypot.accumulate", lambda x: np.hypot.accumulate(x)),
    ("numpy.add.reduceat", lambda x: np.add.reduceat(x, [0, 2])),
    ("numpy.hypot.reduce", lambda x: np.hypot.reduce(x)),
    ("numpy.linalg.tensorsolve", lambda x: np.linalg.tensorsolve(C33, x)),
    ("numpy.polyfit", lambda x: np.polyfit(C3, x, 1)),
    ("numpy.apply_along_axis", lambda x: np.apply_along_axis(np.sum, 0, x)),
    ("numpy.histogram2d", lambda x: np.histogram2d(x, C3)[1]),
]


@pytest.mark.parametrize("name,f", NO_RULE, ids=[n for n, _ in NO_RULE])
def test_call_without_rule_raises_naming_it(name, f):
    x = ft.DualTensor(np.array([0.3, 1.2, 2.0]), np.ones(3))
    with pytest.raises(ft.NotDifferentiableError) as info:
        f(x)
    msg = str(info.value)
    assert name in msg and "ft.custom_jvp" in msg, msg


@pytest.mark.parametrize("name,f", NO_RULE, ids=[n for n, _ in NO_RULE])
def test_call_without_rule_runs_numpy_on_constants(name, f):
    x = np.array([0.3, 1.2, 2.0])
    got = f(ft.DualTensor(x))
    np.testing.assert_allclose(_flat(got), _flat(f(x)))


def test_constants_just_work():
    x = np.array([3.0, 1.0, 3.0, 2.0])
    d = ft.DualTensor(x)
    assert np.shape(d) == (4,) and np.ndim(d) == 1 and np.size(d) == 4
    np.testing.assert_array_equal(to_numpy(np.unique(d)), np.unique(x))
    assert float(to_numpy(np.median(d))) == np.median(x)
    # shapes, indices and booleans work with a tangent too: they carry no derivative
    t = ft.DualTensor(x, np.ones(4))
    assert np.shape(t) == (4,) and int(np.argmax(t)) == 0
    np.testing.assert_array_equal(np.argsort(t), np.argsort(x))
    assert np.allclose(t, x) and np.all(t > 0) and np.isclose(t, x).all()
    np.testing.assert_array_equal(np.isfinite(t), np.ones(4, bool))


def test_numpy_scalars_follow_numpy_promotion():
    d32 = ft.DualTensor(np.ones(3, np.float32), np.ones(3, np.float32))
    for s in (np.float32(2.5), 2.5, np.int8(2)):
        r = s * d32
        assert r.dtype == (np.ones(3, np.float32) * s).dtype and r.tangent.dtype == r.dtype
        np.testing.assert_array_equal(to_numpy(r.tangent), np.full(3, float(s), np.float32))
    r = np.float64(2.5) * d32
    assert r.dtype == np.float64 == (np.ones(3, np.float32) * np.float64(2.5)).dtype


class _Other:
    """An array type of another library that overrides NumPy's functions and ufuncs."""

    def __array_function__(self, func, types, args, kwargs):
        return "other"

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return "other"


def test_other_overriding_types_get_their_turn():
    d = ft.DualTensor(np.ones(2), np.ones(2))
    assert np.stack([d, _Other()]) == "other"
    assert np.add(d, _Other()) == "other"


def test_other_backends_still_defer_to_reflected_operators(backend):
    # CuPy's operators read __array_ufunc__ from the instance and call y.__radd__ only when
    # it is None (NEP 13); NumPy reads it from the type. Both must keep working.
    x = ft.DualTensor(backend.asarray(np.array([1.0, 2.0])), backend.asarray(np.array([1.0, 1.0])))
    assert type(x).__array_ufunc__ is not None
    if backend.name == "numpy":
        assert callable(x.__array_ufunc__)
    else:
        assert x.__array_ufunc__ is None
        if backend.name != "array_api_strict":  # strict's operators refuse other types outright
            y = backend.asarray(np.array([3.0, 4.0])) * x
            np.testing.assert_allclose(to_numpy(y.tangent), [3.0, 4.0])
        np.testing.assert_allclose(to_numpy(np.sin(x).tangent), np.cos([1.0, 2.0]))


def test_reduce_where_is_refused():
    d = ft.DualTensor(np.ones(3), np.ones(3))
    with pytest.raises(ft.NotDifferentiableError, match="where="):
        np.add.reduce(d, where=np.array([True, False, True]))


def test_comparisons_give_boolean_constants():
    # the namespace is closed: comparisons are constants (no tangent) of fwdtensor's namespace
    d = ft.DualTensor(np.array([1.0, -2.0]), np.ones(2))
    for op in (np.less, np.greater_equal, np.equal, np.not_equal, np.isnan, np.signbit):
        r = op(d, 0.0) if op not in (np.isnan, np.signbit) else op(d)
        assert r.dtype == bool and isinstance(r, ft.DualTensor) and r._t is None
        np.testing.assert_array_equal(
            np.asarray(r), op(d.primal, 0.0) if op not in (np.isnan, np.signbit) else op(d.primal)
        )


# ------------------------------------------------------------------------ out=
def test_out_dual_is_written():
    x = ft.DualTensor(np.array([0.1, 0.5]), np.array([1.0, 2.0]))
    out = ft.DualTensor(np.zeros(2), np.zeros(2))
    r = np.sin(x, out=out)
    assert r is out
    np.testing.assert_allclose(to_numpy(out.primal), np.sin(x.primal))
    np.testing.assert_allclose(to_numpy(out.tangent), np.cos(x.primal) * [1.0, 2.0])
    r = np.sum(ft.stack([x, x]), axis=0, out=out)
    np.testing.assert_allclose(to_numpy(out.tangent), [2.0, 4.0])


def test_out_plain_with_tangent_raises():
    x = ft.DualTensor(np.array([0.1, 0.5]), np.ones(2))
    buf = np.zeros(2)
    with pytest.raises(ft.DerivativeLostError, match="numpy.sin"):
        np.sin(x, out=buf)
    with pytest.raises(ft.DerivativeLostError):
        np.sum(ft.stack([x, x]), axis=0, out=buf)
    np.testing.assert_array_equal(buf, 0.0)  # nothing written
    assert issubclass(ft.DerivativeLostError, TypeError)


def test_out_plain_without_tangent_is_written():
    x = ft.DualTensor(np.array([0.1, 0.5]))
    buf = np.zeros(2)
    assert np.exp(x, out=buf) is buf
    np.testing.assert_allclose(buf, np.exp([0.1, 0.5]))


def test_ufunc_where_and_dtype():
    x = ft.DualTensor(np.array([0.1, 0.5, 0.9]), np.ones(3))
    out = ft.DualTensor(np.full(3, 7.0))
    np.sin(x, out=out, where=np.array([True, False, True]))
    np.testing.assert_allclose(to_numpy(out.primal), [np.sin(0.1), 7.0, np.sin(0.9)])
    np.testing.assert_allclose(to_numpy(out.tangent), [np.cos(0.1), 0.0, np.cos(0.9)])
    r = np.add(x, 1.0, dtype=np.float32)
    assert r.dtype == np.float32 and r.tangent.dtype == np.float32


def test_inputs_are_not_written():
    x = np.array([0.3, 0.7, 1.1])
    t = np.ones(3)
    d = ft.DualTensor(x, t)
    np.sin(d, out=ft.DualTensor(np.zeros(3)))
    np.cumsum(d)
    np.pad(d, 1)
    np.testing.assert_array_equal(x, [0.3, 0.7, 1.1])
    np.testing.assert_array_equal(t, 1.0)


# ----------------------------------------------------------------------- SciPy
def test_scipy_ufunc_maps_to_ft_special_or_says_how_to_add_a_rule():
    special = pytest.importorskip("scipy.special")
    x = ft.DualTensor(np.array([0.2, 0.9]), np.ones(2))
    ftspecial = getattr(ft, "special", None)
    for name in ("erf", "expit", "gammaln"):
        ufunc = getattr(special, name)
        if ftspecial is not None and hasattr(ftspecial, name):
            r = ufunc(x)
            want = central_difference(ufunc, [np.array([0.2, 0.9])], [np.ones(2)])
            np.testing.assert_allclose(to_numpy(r.tangent), want, rtol=1e-6)
        else:
            with pytest.raises(ft.NotDifferentiableError, match=f"scipy.special.{name}.*ft.custom_jvp"):
                ufunc(x)
    # a SciPy ufunc that no fwdtensor table has
    with pytest.raises(ft.NotDifferentiableError, match=r"scipy\.special\.struve|struve"):
        special.struve(1.0, x)
    # without a tangent, SciPy runs on the primals
    const = ft.DualTensor(np.array([0.2]))
    np.testing.assert_allclose(special.struve(1.0, const), special.struve(1.0, [0.2]))


def test_scipy_ufunc_dispatches_to_a_row_of_ft_special(monkeypatch):
    special = pytest.importorskip("scipy.special")
    rows = types.SimpleNamespace(expit=lambda x: 1.0 / (1.0 + ft.exp(-x)), xlogy=lambda x, y: x * ft.log(y))
    monkeypatch.setattr(ft, "special", rows, raising=False)
    x = np.array([-0.4, 0.3, 1.7])
    for f, args in ((special.expit, [x]), (special.xlogy, [x, x + 2.0])):
        dirs = [np.ones(3)] * len(args)
        out, tout = ft.jvp(lambda *a, f=f: f(*a), args, dirs)
        np.testing.assert_allclose(to_numpy(out), f(*args), rtol=1e-12)
        np.testing.assert_allclose(to_numpy(tout), central_difference(f, args, dirs), rtol=1e-7)


# ----------------------------------------------------------------------- torch
def test_torch_function_on_torch_duals():
    torch = pytest.importorskip("torch")
    x = torch.tensor([0.3, 1.1], dtype=torch.float64)
    d = ft.DualTensor(x, torch.ones(2, dtype=torch.float64))
    r = torch.sin(d)
    np.testing.assert_allclose(to_numpy(r.tangent), np.cos([0.3, 1.1]))
    r = torch.sum(torch.exp(d) * 2.0)
    np.testing.assert_allclose(to_numpy(r.tangent), 2 * np.exp([0.3, 1.1]).sum())
    r = torch.sum(d * d, dim=0, keepdim=True)
    assert tuple(r.shape) == (1,)
    mixed = x + d  # torch tensor on the left: still the dual's reflected operator
    np.testing.assert_allclose(to_numpy(mixed.tangent), [1.0, 1.0])
    with pytest.raises(ft.NotDifferentiableError, match=r"ft\."):
        torch.special.bessel_j0(d)


# ------------------------------------------------------------------ coverage page
def test_coverage_page_is_current():
    r = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_numpy_coverage.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_battery_is_large_enough():
    ufuncs = {c[0] for c in CASES}
    assert len(CASES) >= 150, len(CASES)
    assert len(protocols.UFUNCS) >= 70 and len(protocols.FUNCTIONS) >= 120
    assert {"sin", "add", "maximum", "hypot", "logaddexp", "power", "abs"} <= ufuncs
