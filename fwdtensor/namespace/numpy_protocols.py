"""NumPy's protocols on duals: NEP 13 ufuncs, NEP 18 array functions, NumPy's array methods.

``np.sin(d)``, ``np.sum(d, axis=0)``, ``ndarray + d`` and ``d.sum()`` reach the tables here
through ``DualTensor.__array_ufunc__`` / ``__array_function__`` and the method block of
``_core`` (the hook ``_core.NUMPY``, installed by ``fwdtensor/__init__.py``). Each table
maps a NumPy object to a namespace function, or to an adapter in ``_numpy_functions``
that takes NumPy's argument names and defaults. Calls without a row run NumPy on the
primals when no argument carries a tangent, and raise ``NotDifferentiableError`` when one
does. SciPy's ufuncs map to ``ft.special.<name>`` where that module has the name.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import fft as ft_fft
from .. import linalg as ft_linalg
from ..core import dual as _core
from ..core import errors as _errors
from ..core.dual import DualTensor
from . import numpy_functions as nf

ft: Any = _core.FT

# ---------------------------------------------------------------------- ufuncs
# NumPy ufunc name -> namespace function name, where the two agree on arguments.
_SAME = {
    "add": "add", "subtract": "subtract", "multiply": "multiply", "divide": "divide",
    "floor_divide": "floor_divide", "remainder": "remainder", "power": "pow",
    "negative": "negative", "positive": "positive", "absolute": "abs", "fabs": "abs",
    "sign": "sign", "sqrt": "sqrt", "reciprocal": "reciprocal", "exp": "exp",
    "expm1": "expm1", "log": "log", "log2": "log2", "log10": "log10", "log1p": "log1p",
    "sin": "sin", "cos": "cos", "tan": "tan", "arcsin": "asin", "arccos": "acos",
    "arctan": "atan", "arctan2": "atan2", "sinh": "sinh", "cosh": "cosh", "tanh": "tanh",
    "arcsinh": "asinh", "arccosh": "acosh", "arctanh": "atanh", "hypot": "hypot",
    "logaddexp": "logaddexp", "maximum": "maximum", "minimum": "minimum", "floor": "floor",
    "ceil": "ceil", "trunc": "trunc", "rint": "round", "conjugate": "conj",
    "copysign": "copysign", "nextafter": "nextafter", "signbit": "signbit",
    "isfinite": "isfinite", "isinf": "isinf", "isnan": "isnan", "equal": "equal",
    "not_equal": "not_equal", "less": "less", "less_equal": "less_equal", "greater": "greater",
    "greater_equal": "greater_equal", "logical_and": "logical_and", "logical_or": "logical_or",
    "logical_xor": "logical_xor", "logical_not": "logical_not", "bitwise_and": "bitwise_and",
    "bitwise_or": "bitwise_or", "bitwise_xor": "bitwise_xor", "invert": "bitwise_invert",
    "left_shift": "bitwise_left_shift", "right_shift": "bitwise_right_shift",
}  # fmt: skip

# NumPy ufunc name -> adapter (a composition of namespace functions, NumPy's arguments).
_EXTRA: dict[str, Callable] = {
    "square": nf.square, "exp2": nf.exp2, "logaddexp2": nf.logaddexp2, "deg2rad": nf.deg2rad,
    "radians": nf.deg2rad, "rad2deg": nf.rad2deg, "degrees": nf.rad2deg, "fmax": nf.fmax,
    "fmin": nf.fmin, "cbrt": nf.cbrt, "float_power": nf.float_power, "fmod": nf.fmod,
    "heaviside": nf.heaviside, "ldexp": nf.ldexp, "matmul": nf.matmul, "vecdot": nf.vecdot,
    "matvec": nf.matvec, "vecmat": nf.vecmat, "divmod": nf.divmod_, "modf": nf.modf,
}  # fmt: skip

UFUNCS: dict[Any, Callable] = {}
for _n, _f in _SAME.items():
    UFUNCS[getattr(np, _n)] = getattr(ft, _f)
for _n, _f in _EXTRA.items():
    if hasattr(np, _n):  # matvec/vecmat are NumPy >= 2.2
        UFUNCS[getattr(np, _n)] = _f


def logaddexp_reduce(a: Any, axis: Any = 0, keepdims: bool = False) -> Any:
    return nf.logsumexp_reduce(a, axis, keepdims)


def logaddexp2_reduce(a: Any, axis: Any = 0, keepdims: bool = False) -> Any:
    return nf.logsumexp_reduce(a, axis, keepdims, base2=True)


def fmax_reduce(a: Any, axis: Any = 0, keepdims: bool = False) -> Any:
    return nf.nanmax(a, axis=axis, keepdims=keepdims)


def fmin_reduce(a: Any, axis: Any = 0, keepdims: bool = False) -> Any:
    return nf.nanmin(a, axis=axis, keepdims=keepdims)


# ufunc.reduce and ufunc.accumulate: the namespace's reductions and cumulative functions.
REDUCE: dict[Any, Callable] = {
    np.add: ft.sum, np.multiply: ft.prod, np.maximum: ft.max, np.minimum: ft.min,
    np.logical_and: ft.all, np.logical_or: ft.any, np.logaddexp: logaddexp_reduce,
    np.logaddexp2: logaddexp2_reduce, np.fmax: fmax_reduce, np.fmin: fmin_reduce,
}  # fmt: skip
ACCUMULATE: dict[Any, Callable] = {
    np.add: ft.cumulative_sum, np.multiply: ft.cumulative_prod, np.maximum: nf.cummax,
    np.minimum: nf.cummin,
}  # fmt: skip

_PLAIN = frozenset({DualTensor, np.ndarray, int, float, complex, bool})


def _operands(inputs: tuple) -> tuple:
    """Inputs NumPy handed over, with NumPy scalars and sequences made arrays.

    A NumPy scalar of a dual's own dtype becomes a Python scalar (same result, cheaper path);
    any other keeps its dtype as a 0-d array, so NumPy's promotion rules hold.
    """
    for x in inputs:
        if type(x) not in _PLAIN:
            dtypes = {x.dtype for x in inputs if type(x) is DualTensor}
            return tuple(_operand(x, dtypes) if type(x) not in _PLAIN else x for x in inputs)
    return inputs


def _operand(x: Any, dtypes: set) -> Any:
    if isinstance(x, np.generic) and x.dtype in dtypes:
        return x.item()
    return nf.operand(x)


def _any_tangent(seq: Any) -> bool:
    for x in seq:
        if type(x) is DualTensor:
            if nf.carries(x):
                return True
        elif isinstance(x, (list, tuple)) and _any_tangent(x):
            return True
        elif isinstance(x, dict) and _any_tangent(x.values()):
            return True
    return False


def _strip(x: Any) -> Any:
    """``x`` with each dual replaced by its primal (one level), inside lists and tuples too."""
    if type(x) is DualTensor:
        return x.primal
    if isinstance(x, (list, tuple)) and not hasattr(x, "_fields"):
        return type(x)(_strip(v) for v in x)
    if isinstance(x, dict):
        return {k: _strip(v) for k, v in x.items()}
    return x


def _scipy_name(ufunc: Any) -> str | None:
    """The name of ``ufunc`` in ``scipy.special`` when it is SciPy's (None otherwise)."""
    sp = sys.modules.get("scipy.special")
    name = getattr(ufunc, "__name__", "")
    if sp is not None and getattr(sp, name, None) is ufunc and getattr(np, name, None) is not ufunc:
        return name
    return None


def ufunc_function(ufunc: Any) -> Callable | None:
    """The namespace function for ``ufunc`` (NumPy's, or SciPy's through ``ft.special``)."""
    fn = UFUNCS.get(ufunc)
    if fn is None:
        name = _scipy_name(ufunc)
        special = getattr(_core.FT, "special", None) or sys.modules.get("fwdtensor.special")
        if name is not None and special is not None:
            fn = getattr(special, name, None)
    return fn


def _no_ufunc_rule(ufunc: Any, method: str) -> Exception:
    name = getattr(ufunc, "__name__", repr(ufunc))
    if _scipy_name(ufunc) is not None:
        return _errors.scipy_no_rule(name)
    what = f"numpy.{name}" + ("" if method == "__call__" else f".{method}")
    return _errors.numpy_no_rule(what, "use the fwdtensor namespace (ft.*) for this step")


def array_ufunc(ufunc: Any, method: str, inputs: tuple, kwargs: dict) -> Any:
    """NEP 13: ``ufunc.method(*inputs, **kwargs)`` with at least one dual among them."""
    if method == "__call__" and not kwargs:  # the common case: np.sin(d), ndarray + d
        fn = UFUNCS.get(ufunc)
        if fn is not None:
            for x in inputs:
                if type(x) not in _PLAIN:
                    break
            else:
                return fn(*inputs)
    for x in (*inputs, *(kwargs.get("out") or ())):
        if type(x) not in _PLAIN and not isinstance(x, np.ndarray) and getattr(x, "__array_ufunc__", None):
            return NotImplemented  # another array type that overrides NumPy: NumPy asks it next
    out = kwargs.pop("out", None)
    if type(out) is tuple and len(out) == 1:
        out = out[0]
    dtype = kwargs.pop("dtype", None)
    where = kwargs.pop("where", True)
    for k in ("casting", "order", "subok"):
        kwargs.pop(k, None)
    inputs = _operands(inputs)
    if method == "__call__":
        fn = ufunc_function(ufunc)
        if fn is None:
            return _on_primals(ufunc, inputs, out, dtype, _no_ufunc_rule(ufunc, method))
        if kwargs and fn not in (nf.matmul, nf.vecdot):
            raise nf.unsupported(ufunc.__name__, ", ".join(kwargs) + "=")
        r = fn(*inputs, **kwargs)
    elif method == "reduce":
        if where is not True:  # NumPy's where= masks the reduced elements
            raise nf.unsupported(f"{ufunc.__name__}.reduce", "where=")
        fn = REDUCE.get(ufunc)
        if fn is None:
            return _on_primals(
                getattr(ufunc, method), inputs, out, dtype, _no_ufunc_rule(ufunc, method), kwargs
            )
        a = nf.arr(inputs[0])
        axis = kwargs.get("axis", 0)
        r = fn(a, axis=nf.axis_arg(axis), keepdims=bool(kwargs.get("keepdims", False)))
        if kwargs.get("initial", nf.NV) is not nf.NV:
            r = UFUNCS[ufunc](r, kwargs["initial"])
    elif method == "accumulate":
        fn = ACCUMULATE.get(ufunc)
        if fn is None:
            return _on_primals(
                getattr(ufunc, method), inputs, out, dtype, _no_ufunc_rule(ufunc, method), kwargs
            )
        r = fn(nf.arr(inputs[0]), axis=kwargs.get("axis", 0))
    elif method == "outer":
        fn = ufunc_function(ufunc)
        if fn is None:
            return _on_primals(getattr(ufunc, method), inputs, out, dtype, _no_ufunc_rule(ufunc, method))
        a, b = (nf.arr(x) for x in inputs)
        r = fn(ft.reshape(a, (*a.shape, *(1,) * b.ndim)), b)
    else:  # at, reduceat
        return _on_primals(getattr(ufunc, method), inputs, out, dtype, _no_ufunc_rule(ufunc, method), kwargs)
    if dtype is not None:
        r = ft.astype(r, np.dtype(dtype))
    if where is not True:
        if out is None:
            raise nf.unsupported(ufunc.__name__, "where= without out=")
        r = ft.where(np.asarray(where), r, out)
    return nf.put(r, out, ufunc.__name__)


def _on_primals(
    fn: Any, inputs: tuple, out: Any, dtype: Any, err: Exception, kwargs: dict | None = None
) -> Any:
    """Run NumPy on the primals when nothing carries a tangent; else raise ``err``."""
    if _any_tangent(inputs) or (type(out) is DualTensor and nf.carries(out)):
        raise err
    kw = dict(kwargs or {})
    if dtype is not None:
        kw["dtype"] = dtype
    r = fn(*_strip(inputs), **_strip(kw))
    return r if out is None else nf.put(r, out, getattr(fn, "__name__", ""))


# ------------------------------------------------------------ array functions
def _linalg_norm(x: Any, ord: Any = None, axis: Any = None, keepdims: bool = False) -> Any:
    x = nf.arr(x)
    if axis is None:
        if ord is None:
            return ft_linalg.vector_norm(x, axis=None, keepdims=keepdims)
        axis = (0,) if x.ndim == 1 else (0, 1)
    if isinstance(axis, int) or len(axis) == 1:
        ax = axis if isinstance(axis, int) else axis[0]
        return ft_linalg.vector_norm(x, axis=ax, keepdims=keepdims, ord=2 if ord is None else ord)
    a0, a1 = (a + x.ndim if a < 0 else a for a in axis)
    y = ft.moveaxis(x, (a0, a1), (-2, -1))
    r = ft_linalg.matrix_norm(y, ord="fro" if ord is None else ord)
    if keepdims:
        r = nf.expand_dims(r, tuple(sorted((a0, a1))))
    return r


def _svd(a: Any, full_matrices: bool = True, compute_uv: bool = True, hermitian: bool = False) -> Any:
    if not compute_uv:
        return ft_linalg.svdvals(nf.arr(a))
    return ft_linalg.svd(nf.arr(a), full_matrices=full_matrices)


def _eigh(a: Any, UPLO: str = "L") -> Any:
    a = nf.arr(a)
    a = ft.tril(a) if UPLO == "L" else ft.triu(a)  # NumPy reads one triangle only
    diag = ft_linalg.diagonal(a)
    full = ft.add(a, ft.conj(ft.matrix_transpose(a)))
    return ft_linalg.eigh(ft.subtract(full, _diag_embed(diag)))


def _eigvalsh(a: Any, UPLO: str = "L") -> Any:
    return _eigh(a, UPLO).eigenvalues


def _diag_embed(d: Any) -> Any:
    n = d.shape[-1]
    return ft.multiply(ft.expand_dims(d, axis=-1), np.eye(n, dtype=np.asarray(_core.innermost(d)).dtype))


def _multi_dot(arrays: Any, *, out: Any = None) -> Any:
    xs = [nf.arr(x) for x in arrays]
    r = xs[0]
    for x in xs[1:]:
        r = ft.matmul(r, x)
    return nf.put(r, out, "linalg.multi_dot")


def _one(fn: Callable) -> Callable:
    """A one-array function of ``ft.linalg`` under NumPy's name (array-likes accepted)."""

    def one(a: Any, *args: Any, **kw: Any) -> Any:
        return fn(nf.arr(a), *args, **kw)

    one.target = fn  # type: ignore[attr-defined]  # for the coverage page
    return one


def _solve(a: Any, b: Any) -> Any:
    return ft_linalg.solve(nf.arr(a), nf.arr(b))


def _cholesky(a: Any, /, *, upper: bool = False) -> Any:
    return ft_linalg.cholesky(nf.arr(a), upper=upper)


def _pinv(a: Any, rcond: Any = None, hermitian: bool = False, *, rtol: Any = nf.NV) -> Any:
    r = rtol if rtol is not nf.NV else rcond
    return ft_linalg.pinv(nf.arr(a), rtol=r)


def _qr(a: Any, mode: str = "reduced") -> Any:
    return ft_linalg.qr(nf.arr(a), mode=mode)


def _fft(name: str) -> Callable:
    fn = getattr(ft_fft, name)

    def one(a: Any, n: Any = None, axis: int = -1, norm: Any = None, out: Any = None) -> Any:
        return nf.put(fn(nf.arr(a), n=n, axis=axis, norm=norm or "backward"), out, "fft." + name)

    one.target = fn  # type: ignore[attr-defined]
    return one


def _fftn(name: str, default_axes: Any = None) -> Callable:
    fn = getattr(ft_fft, name)

    def many(a: Any, s: Any = None, axes: Any = default_axes, norm: Any = None, out: Any = None) -> Any:
        ax = None if axes is None else tuple(axes)
        ss = None if s is None else tuple(s)
        return nf.put(fn(nf.arr(a), s=ss, axes=ax, norm=norm or "backward"), out, "fft." + name)

    many.target = fn  # type: ignore[attr-defined]
    return many


def _shift(name: str) -> Callable:
    fn = getattr(ft_fft, name)

    def shift(x: Any, axes: Any = None) -> Any:
        return fn(nf.arr(x), axes=axes if axes is None or isinstance(axes, int) else tuple(axes))

    shift.target = fn  # type: ignore[attr-defined]
    return shift


def _unique(
    ar: Any,
    return_index: bool = False,
    return_inverse: bool = False,
    return_counts: bool = False,
    axis: Any = None,
    *,
    equal_nan: bool = True,
    sorted: bool = True,
) -> Any:
    if return_index or return_inverse or return_counts or axis is not None:
        raise _errors.numpy_no_rule("numpy.unique with return_*/axis", "use ft.unique_all on the dual")
    return ft.unique_values(nf.ravel(ar))


def _functions() -> dict[Any, Callable]:
    """NumPy function -> adapter; the adapters take NumPy's arguments."""
    table: dict[Any, Callable] = {}
    for name in (
        "sum", "prod", "max", "min", "ptp", "mean", "std", "var", "average", "cumsum", "cumprod",
        "cumulative_sum", "cumulative_prod", "median", "quantile", "percentile", "nansum", "nanmean",
        "nanmedian", "nanquantile", "nanpercentile", "fill_diagonal",
        "dot", "vdot", "inner", "outer", "tensordot", "matmul", "vecdot", "einsum", "kron", "cross",
        "trace", "diagonal", "diag", "triu", "tril", "polyval", "reshape", "ravel", "transpose",
        "swapaxes", "moveaxis", "squeeze", "expand_dims", "concatenate", "stack", "atleast_1d",
        "atleast_2d", "atleast_3d", "hstack", "vstack", "dstack", "column_stack", "array_split",
        "split", "hsplit", "vsplit", "dsplit", "roll", "flip", "fliplr", "flipud", "rot90", "tile",
        "repeat", "broadcast_to", "broadcast_arrays", "pad", "diff", "gradient", "trapezoid",
        "interp", "where", "select", "clip", "take", "take_along_axis", "sort", "partition", "copy",
        "astype", "meshgrid", "linspace", "real", "imag", "angle", "around", "sinc", "nan_to_num",
        "real_if_close", "cov", "corrcoef", "convolve", "correlate", "nanmax", "nanmin", "nanprod",
        "nancumsum", "nanvar", "nanstd", "logspace", "fix", "ediff1d", "vander",
    ):  # fmt: skip
        if hasattr(np, name):
            table[getattr(np, name)] = getattr(nf, name)
    table[np.append] = nf.append
    table[np.round] = nf.around
    table[np.amax] = nf.max
    table[np.amin] = nf.min
    table[np.concat] = nf.concatenate
    table[np.permute_dims] = nf.transpose
    table[np.conj] = nf.conj
    table[np.unique] = _unique
    if hasattr(np, "unique_values"):
        table[np.unique_values] = _unique
    la = np.linalg
    table.update({
        la.solve: _solve, la.inv: _one(ft_linalg.inv), la.det: _one(ft_linalg.det),
        la.slogdet: _one(ft_linalg.slogdet), la.norm: _linalg_norm, la.eigh: _eigh,
        la.eigvalsh: _eigvalsh, la.svd: _svd, la.svdvals: _one(ft_linalg.svdvals), la.qr: _qr,
        la.cholesky: _cholesky, la.pinv: _pinv, la.matrix_power: _one(ft_linalg.matrix_power),
        la.eig: _one(ft_linalg.eig), la.eigvals: _one(ft_linalg.eigvals), la.multi_dot: _multi_dot,
        la.matrix_norm: _one(ft_linalg.matrix_norm), la.vector_norm: _one(ft_linalg.vector_norm),
        la.trace: _one(ft_linalg.trace), la.outer: nf.outer, la.cross: nf.cross,
        la.matmul: nf.matmul, la.tensordot: nf.tensordot, la.vecdot: nf.vecdot,
        la.diagonal: _one(ft_linalg.diagonal), la.matrix_transpose: _one(ft.matrix_transpose),
        la.cond: nf.cond, la.lstsq: nf.lstsq,
    })  # fmt: skip
    for name in ("fft", "ifft", "rfft", "irfft", "hfft", "ihfft"):
        table[getattr(np.fft, name)] = _fft(name)
    for name in ("fftn", "ifftn", "rfftn", "irfftn"):
        table[getattr(np.fft, name)] = _fftn(name)
    for name in ("fft2", "ifft2", "rfft2", "irfft2"):
        table[getattr(np.fft, name)] = _fftn(name[:-1] + "n", (-2, -1))
    table[np.fft.fftshift] = _shift("fftshift")
    table[np.fft.ifftshift] = _shift("ifftshift")
    return table


FUNCTIONS: dict[Any, Callable] = _functions()

# Functions whose results carry no derivative (shapes, indices, booleans): NumPy runs them
# on the primal values even when a tangent is present.
PRIMAL_ONLY = frozenset(
    getattr(np, n)
    for n in (
        "shape",
        "ndim",
        "size",
        "argmax",
        "argmin",
        "argsort",
        "argwhere",
        "nonzero",
        "flatnonzero",
        "count_nonzero",
        "searchsorted",
        "isclose",
        "allclose",
        "array_equal",
        "array_equiv",
        "all",
        "any",
        "iscomplexobj",
        "isrealobj",
        "iscomplex",
        "isreal",
        "zeros_like",
        "ones_like",
        "empty_like",
        "result_type",
        "digitize",
        "isin",
        "may_share_memory",
        "shares_memory",
        "lexsort",
        "argpartition",
        "unravel_index",
        "ravel_multi_index",
        "isneginf",
        "isposinf",
    )  # fmt: skip
    if hasattr(np, n)
)

# The fwdtensor function to name in an error for a NumPy function without a row.
_ALTERNATIVE = {
    "histogram": "ft.searchsorted with a sum",
    "unwrap": "ft.diff, ft.remainder and ft.cumulative_sum",
}


def array_function(func: Any, types: Any, args: tuple, kwargs: dict) -> Any:
    """NEP 18: ``func(*args, **kwargs)`` where some argument is a dual.

    Another array type that overrides NumPy (not an ndarray) gets its turn first: NumPy
    tries it when this returns ``NotImplemented``.
    """
    for t in types:
        if t is not DualTensor and not issubclass(t, np.ndarray):
            return NotImplemented
    fn = FUNCTIONS.get(func)
    if fn is not None:
        return fn(*args, **kwargs)
    if func in PRIMAL_ONLY or not (_any_tangent(args) or _any_tangent(kwargs.values())):
        return func(*_strip(args), **_strip(kwargs))
    mod = getattr(func, "__module__", "numpy") or "numpy"
    name = f"{mod.replace('numpy._core.', 'numpy.').split('.')[0]}.{func.__name__}"
    if mod.startswith("numpy.linalg") or mod.startswith("numpy.fft"):
        name = f"{mod.split('._')[0]}.{func.__name__}"
    alt = _ALTERNATIVE.get(func.__name__)
    hint = (
        f"use {alt}" if alt else "write this step with the fwdtensor namespace (ft.*, ft.linalg.*, ft.fft.*)"
    )
    raise _errors.numpy_no_rule(name, hint)


# ----------------------------------------------------------------------- torch
# torch function name -> namespace function name, for the elementwise functions whose
# torch signature (input[, other]) is the standard's.
_TORCH_SAME = {
    **{n: n for n in (
        "sin", "cos", "tan", "exp", "expm1", "log", "log1p", "log2", "log10", "sqrt", "tanh",
        "sinh", "cosh", "abs", "floor", "ceil", "trunc", "sign", "square", "asin", "acos", "atan",
        "asinh", "acosh", "atanh", "atan2", "hypot", "logaddexp", "maximum", "minimum", "real",
        "imag", "conj", "matmul", "reciprocal", "negative", "positive", "add", "subtract",
        "multiply", "divide", "pow", "where",
    )},
    "sub": "subtract", "mul": "multiply", "div": "divide", "true_divide": "divide", "neg": "negative",
    "absolute": "abs", "arcsin": "asin", "arccos": "acos", "arctan": "atan", "arctan2": "atan2",
    "arcsinh": "asinh", "arccosh": "acosh", "arctanh": "atanh", "clamp": "clip", "clip": "clip",
}  # fmt: skip


def _torch_reduce(fn: Callable) -> Callable:
    def reduce(input: Any, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> Any:
        x = input if dtype is None else ft.astype(input, dtype)
        return fn(x, axis=tuple(dim) if isinstance(dim, list) else dim, keepdims=keepdim)

    return reduce


_TORCH_REDUCE = {"sum": _torch_reduce(ft.sum), "mean": _torch_reduce(ft.mean), "prod": _torch_reduce(ft.prod)}


def torch_function(func: Any, args: tuple, kwargs: dict) -> Any:
    """``__torch_function__``: torch's elementwise functions and sum/mean/prod on duals.

    Operators (``tensor + dual``) are left to the dual's reflected methods; every other
    torch function raises and names the fwdtensor function to call instead.
    """
    name = getattr(func, "__name__", "")
    if name.startswith("__"):
        return NotImplemented  # torch turns this into NotImplemented: Python tries d.__radd__
    fn = _TORCH_REDUCE.get(name)
    if fn is not None:
        return fn(*args, **kwargs)
    ftname = _TORCH_SAME.get(name)
    if ftname is not None and not kwargs:
        return getattr(ft, ftname)(*args)
    if not (_any_tangent(args) or _any_tangent(kwargs.values())):
        return func(*_strip(args), **_strip(kwargs))
    alt = f"ft.{ftname or name}" if hasattr(ft, ftname or name) else "the fwdtensor namespace (ft.*)"
    raise _errors.numpy_no_rule(f"torch.{name}", f"call {alt} on the dual (it runs on torch-backed duals)")


# --------------------------------------------------------------- array methods
def _reshape_method(self: Any, *shape: Any, order: str = "C", copy: Any = None) -> Any:
    if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
        shape = shape[0]
    return nf.reshape(self, shape, order=order, copy=copy)


def _transpose_method(self: Any, *axes: Any) -> Any:
    if len(axes) == 1 and (axes[0] is None or not isinstance(axes[0], (int, np.integer))):
        axes = axes[0]
    return nf.transpose(self, axes if axes else None)


def _astype_method(
    self: Any, dtype: Any, order: str = "K", casting: str = "unsafe", subok: bool = True, copy: bool = True
) -> Any:
    return ft.astype(self, np.dtype(dtype), copy=copy)


METHODS: dict[str, Callable] = {
    "reshape": _reshape_method, "transpose": _transpose_method, "astype": _astype_method,
    "flatten": lambda self, order="C": nf.ravel(nf.copy(self), order),
    "sum": nf.sum, "mean": nf.mean, "std": nf.std, "var": nf.var, "prod": nf.prod, "max": nf.max,
    "min": nf.min, "cumsum": nf.cumsum, "cumprod": nf.cumprod, "dot": nf.dot, "ravel": nf.ravel,
    "squeeze": nf.squeeze, "swapaxes": nf.swapaxes, "copy": nf.copy, "clip": nf.clip,
    "round": nf.around, "conj": nf.conj, "trace": nf.trace, "diagonal": nf.diagonal,
    "real": nf.real, "imag": nf.imag,
    "all": lambda self, *a, **k: np.all(_core.innermost(self), *a, **k),
    "any": lambda self, *a, **k: np.any(_core.innermost(self), *a, **k),
    "argmax": lambda self, *a, **k: np.argmax(_core.innermost(self), *a, **k),
    "argmin": lambda self, *a, **k: np.argmin(_core.innermost(self), *a, **k),
}  # fmt: skip


def method(name: str, self: DualTensor, args: tuple, kwargs: dict) -> Any:
    """NumPy's array method ``name`` on a dual (``d.sum(axis=0)``), through the namespace."""
    return METHODS[name](self, *args, **kwargs)
