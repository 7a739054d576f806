"""Derivatives at the edges the standard batteries found wrong (issue 12, items 9-11).

Each class of fault has a test that sweeps the functions it could touch, against central
differences along random directions that are deliberately awkward: non-symmetric
directions for functions of a symmetric matrix, a tangent only on the lower-precision
operand, complex inputs of real-valued reductions, zero-size matrices, singular matrices,
NaN inputs. Also the NaN debug mode (``ft.set_debug_nans``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
import zlib

import numpy as np
import pytest

import fwdtensor as ft
from fwdtensor.rules import ALL_RULES
from tests._util import assert_close, central_difference, sample, to_numpy


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode()))


def _spd(rng: np.random.Generator, n: int, batch: tuple = (), cplx: bool = False) -> np.ndarray:
    m = rng.normal(size=(*batch, n, n))
    if cplx:
        m = m + 1j * rng.normal(size=m.shape)
    q = np.linalg.qr(m)[0]
    d = np.linspace(1.0, 3.0, n)
    return (q * d) @ np.conj(np.swapaxes(q, -1, -2))


def _dir(rng: np.random.Generator, shape: tuple, cplx: bool = False) -> np.ndarray:
    v = rng.normal(size=shape)
    return v + 1j * rng.normal(size=shape) if cplx else v


# ------------------------------------------------------- mixed precision
_BINARY = [r for r in ALL_RULES if r.form == "binary" and r.kind == "diff"]


@pytest.mark.parametrize("rule", _BINARY, ids=[r.name for r in _BINARY])
@pytest.mark.parametrize("which", [0, 1], ids=["dual-x1", "dual-x2"])
def test_tangent_dtype_follows_promotion(rule, which, backend):
    # A float32 dual meets a float64 constant: the result is float64 and so is its tangent.
    rng = _rng("mixed-" + rule.name)
    a = sample(rule.domain, (4,), "float64", rng, 0)
    b = sample(rule.domain, (4,), "float64", rng, 1)
    t = rng.normal(size=4)
    args = [a, b]
    low = args[which].astype(np.float32)
    x = [backend.asarray(a), backend.asarray(b)]
    x[which] = ft.DualTensor(backend.asarray(low), backend.asarray(t.astype(np.float32)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = getattr(ft, rule.name)(*x)
    assert out.tangent.dtype == out.dtype, (rule.name, out.tangent.dtype, out.dtype)
    args[which] = low.astype(np.float64)
    ref = central_difference(
        lambda *v: getattr(np, rule.name if rule.name != "pow" else "power")(*v),
        args,
        [t if i == which else None for i in range(2)],
    )
    assert_close(out.tangent, ref, "float32", rule.name)


@pytest.mark.parametrize("which", [0, 1, 2], ids=["x", "min", "max"])
def test_clip_and_where_tangent_dtype(which, backend):
    rng = _rng("mixed-clip")
    x, lo, hi = rng.uniform(-2, 2, 5), np.full(5, -0.5), np.full(5, 0.7)
    args = [backend.asarray(v) for v in (x, lo, hi)]
    args[which] = ft.DualTensor(
        backend.asarray([x, lo, hi][which].astype(np.float32)), backend.asarray(np.ones(5, np.float32))
    )
    out = ft.clip(*args)
    assert out.tangent.dtype == out.dtype
    cond = backend.asarray(x > 0)
    w = ft.where(
        cond,
        ft.DualTensor(backend.asarray(x.astype(np.float32)), backend.asarray(np.ones(5, np.float32))),
        backend.asarray(hi),
    )
    assert w.dtype == backend.xp.float64 and w.tangent.dtype == w.dtype
    np.testing.assert_array_equal(to_numpy(w.tangent), (x > 0).astype(float))


_GENERAL_MIXED = {
    "matmul": (lambda a, b: ft.matmul(a, b), (3, 3), (3, 3)),
    "tensordot": (lambda a, b: ft.tensordot(a, b, axes=1), (3, 3), (3, 2)),
    "vecdot": (lambda a, b: ft.vecdot(a, b), (2, 3), (2, 3)),
    "linalg.solve": (lambda a, b: ft.linalg.solve(a, b), (3, 3), (3,)),
    "linalg.outer": (lambda a, b: ft.linalg.outer(a, b), (3,), (2,)),
    "linalg.cross": (lambda a, b: ft.linalg.cross(a, b), (3,), (3,)),
    "concat": (lambda a, b: ft.concat([a, b]), (3,), (2,)),
    "stack": (lambda a, b: ft.stack([a, b]), (3,), (3,)),
    "where": (lambda a, b: ft.where(a > 0, a, b), (3,), (3,)),
    "diff": (lambda a, b: ft.diff(a, prepend=b), (3,), (1,)),
}


@pytest.mark.parametrize("name", list(_GENERAL_MIXED))
@pytest.mark.parametrize("which", [0, 1], ids=["dual-x1", "dual-x2"])
def test_general_rules_tangent_dtype_follows_promotion(name, which, backend):
    fn, sa, sb = _GENERAL_MIXED[name]
    rng = _rng("mixed-general-" + name)
    a, b = rng.normal(size=sa), rng.normal(size=sb)
    if name == "linalg.solve":
        a = a + 3 * np.eye(3)  # well conditioned
    t = rng.normal(size=(sa, sb)[which])
    args = [backend.asarray(a), backend.asarray(b)]
    args[which] = ft.DualTensor(
        backend.asarray((a, b)[which].astype(np.float32)), backend.asarray(t.astype(np.float32))
    )
    out = fn(*args)
    assert out.dtype == backend.xp.float64 and out.tangent.dtype == out.dtype, name
    ref_args = [a, b]
    ref_args[which] = (a, b)[which].astype(np.float32).astype(np.float64)
    np_fn = {
        "matmul": np.matmul,
        "tensordot": lambda x, y: np.tensordot(x, y, axes=1),
        "vecdot": lambda x, y: np.sum(x * y, axis=-1),
        "linalg.solve": np.linalg.solve,
        "linalg.outer": np.outer,
        "linalg.cross": np.cross,
        "concat": lambda x, y: np.concatenate([x, y]),
        "stack": lambda x, y: np.stack([x, y]),
        "where": lambda x, y: np.where(a > 0, x, y),
        "diff": lambda x, y: np.diff(x, prepend=y),
    }[name]
    ref = central_difference(np_fn, ref_args, [t if i == which else None for i in range(2)])
    assert_close(out.tangent, ref, "float32", name)


# ------------------------------------------ real results of complex input
_REAL_OF_COMPLEX = {
    "abs": (lambda xp: xp.abs, np.abs, (5,)),
    "real": (lambda xp: xp.real, np.real, (5,)),
    "imag": (lambda xp: xp.imag, np.imag, (5,)),
    "var": (lambda xp: xp.var, np.var, (5,)),
    "var-axis": (
        lambda xp: lambda x: xp.var(x, axis=0, correction=1),
        lambda x: np.var(x, axis=0, ddof=1),
        (4, 3),
    ),
    "std": (lambda xp: xp.std, np.std, (5,)),
    "std-axis": (
        lambda xp: lambda x: xp.std(x, axis=1, keepdims=True),
        lambda x: np.std(x, axis=1, keepdims=True),
        (4, 3),
    ),
    "vector_norm": (lambda xp: xp.linalg.vector_norm, np.linalg.norm, (5,)),
    "vector_norm-1": (
        lambda xp: lambda x: xp.linalg.vector_norm(x, ord=1),
        lambda x: np.linalg.norm(x, 1),
        (5,),
    ),
    "matrix_norm": (lambda xp: xp.linalg.matrix_norm, lambda x: np.linalg.norm(x, "fro"), (3, 3)),
    "matrix_norm-nuc": (
        lambda xp: lambda x: xp.linalg.matrix_norm(x, ord="nuc"),
        lambda x: np.linalg.norm(x, "nuc"),
        (3, 3),
    ),
    "svdvals": (lambda xp: xp.linalg.svdvals, lambda x: np.linalg.svd(x, compute_uv=False), (3, 2)),
    "slogdet-logabs": (
        lambda xp: lambda x: xp.linalg.slogdet(x)[1],
        lambda x: np.linalg.slogdet(x)[1],
        (3, 3),
    ),
}


@pytest.mark.parametrize("name", list(_REAL_OF_COMPLEX))
@pytest.mark.parametrize("dtype", ["complex128", "complex64"])
def test_real_valued_functions_of_complex_input(name, dtype, backend):
    if backend.name == "array_api_strict" and name.startswith(("var", "std")):
        pytest.skip("array-api-strict's var/std accept real floating-point input only")
    fn, ref_fn, shape = _REAL_OF_COMPLEX[name]
    rng = _rng("real-of-complex-" + name)
    x = _dir(rng, shape, cplx=True) + 0.5
    t = _dir(rng, (3, *shape), cplx=True)
    out = fn(ft)(
        ft.DualTensor(backend.asarray(x.astype(dtype)), backend.asarray(t.astype(dtype)), batched=True)
    )
    assert out.tangent.dtype == out.dtype and not backend.xp.isdtype(out.dtype, "complex floating"), name
    for k in range(3):
        ref = central_difference(ref_fn, [x], [t[k]])
        assert_close(out.tangent[k, ...], ref, "float32" if dtype == "complex64" else "float64", name)


# ------------------------------------------- functions of one triangle
_TRIANGLE = {
    "eigvalsh": (lambda a: ft.linalg.eigvalsh(a), np.linalg.eigvalsh),
    "eigh-values": (lambda a: ft.linalg.eigh(a)[0], lambda a: np.linalg.eigh(a)[0]),
    "eigh-vectors": (
        lambda a: _fix_sign(ft.linalg.eigh(a)[1]),
        lambda a: _fix_sign_np(np.linalg.eigh(a)[1]),
    ),
    "cholesky": (lambda a: ft.linalg.cholesky(a), np.linalg.cholesky),
    "cholesky-upper": (
        lambda a: ft.linalg.cholesky(a, upper=True),
        lambda a: np.linalg.cholesky(a, upper=True),
    ),
}


def _fix_sign(v):
    s = ft.sign(v[..., :1, :])  # the first row's sign, a smooth choice of each real column's sign
    return v * s


def _fix_sign_np(v):
    return v * np.sign(v[..., :1, :])


@pytest.mark.parametrize("name", list(_TRIANGLE))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_one_triangle_functions_along_non_symmetric_directions(name, dtype, backend):
    # The backend reads the lower triangle (the upper one for upper=True) of its input; the
    # derivative must be the derivative of that function, along any direction.
    fn, ref_fn = _TRIANGLE[name]
    rng = _rng("triangle-" + name)
    a = _spd(rng, 4, batch=(2,))
    t = _dir(rng, (3, 2, 4, 4))  # B = 3 directions, none symmetric
    out = fn(ft.DualTensor(backend.asarray(a.astype(dtype)), backend.asarray(t.astype(dtype)), batched=True))
    for k in range(3):
        ref = central_difference(ref_fn, [a], [t[k]])
        assert_close(out.tangent[k, ...], ref, dtype, name)


def test_issue_example_eigvalsh_upper_direction(backend):
    a = backend.asarray(np.array([[2.0, 1.0], [1.0, 3.0]]))
    t = backend.asarray(np.array([[0.0, 1.0], [0.0, 0.0]]))
    np.testing.assert_allclose(to_numpy(ft.jvp(ft.linalg.eigvalsh, (a,), (t,))[1]), [0.0, 0.0], atol=1e-12)


@pytest.mark.parametrize("name", ["eigvalsh", "cholesky"])
def test_one_triangle_complex_with_imaginary_diagonal_direction(name, backend):
    fn, ref_fn = _TRIANGLE[name]
    rng = _rng("triangle-complex-" + name)
    a = _spd(rng, 3, cplx=True)
    t = _dir(rng, (3, 3), cplx=True)  # not Hermitian, imaginary parts on the diagonal
    out = fn(ft.DualTensor(backend.asarray(a), backend.asarray(t)))
    assert_close(out.tangent, central_difference(ref_fn, [a], [t]), "float64", name)


# --------------------------------------------------------------- pow
def test_pow_negative_scalar_base_agrees_with_the_array_path(backend):
    x = ft.DualTensor(backend.asarray(np.array([0.5, 2.0])), backend.asarray(np.ones(2)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scalar = ft.pow(-1.0, x)
        array = ft.pow(backend.asarray(np.array([-1.0, -1.0])), x)
    for out in (scalar, array):
        assert not backend.xp.isdtype(out.tangent.dtype, "complex floating")
        assert np.all(np.isnan(to_numpy(out.tangent)))  # no real derivative in x2 at a negative base
    assert (
        ft.pow(-2.0, ft.DualTensor(backend.asarray(np.array(2.0)), backend.asarray(np.array(0.0)))).dtype
        == x.dtype
    )


# ---------------------------------------------------------- NaN in, NaN out
_NAN_RULES = ["logaddexp", "hypot", "maximum", "minimum"]


@pytest.mark.parametrize("name", _NAN_RULES)
@pytest.mark.parametrize("other", [1.0, float("nan"), float("inf"), -float("inf")])
def test_nan_in_nan_out(name, other, backend):
    f = getattr(ft, name)
    one = backend.asarray(np.array([1.0]))
    for nan_first in (True, False):
        p = [backend.asarray(np.array([np.nan])), backend.asarray(np.array([other]))]
        if not nan_first:
            p.reverse()
        for k in (0, 1):
            x = list(p)
            x[k] = ft.DualTensor(x[k], one)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out = f(*x)
            assert np.isnan(to_numpy(out.tangent)).all(), (name, nan_first, k, other)


def test_logaddexp_nan_nan_and_limits(backend):
    def d(a, b, k):
        x = [backend.asarray(np.array(a)), backend.asarray(np.array(b))]
        x[k] = ft.DualTensor(x[k], backend.asarray(np.array(1.0)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(to_numpy(ft.logaddexp(*x).tangent))

    assert np.isnan(d(np.nan, np.nan, 0))
    inf = np.inf
    assert (d(-inf, -inf, 0), d(inf, inf, 1)) == (0.5, 0.5)
    assert (d(inf, 1.0, 0), d(inf, 1.0, 1)) == (1.0, 0.0)
    assert (d(-inf, 1.0, 0), d(-inf, 1.0, 1)) == (0.0, 1.0)


def test_clip_nan_in_nan_out(backend):
    x = ft.DualTensor(backend.asarray(np.array([np.nan, 0.3])), backend.asarray(np.ones(2)))
    out = ft.clip(x, -1.0, 1.0)
    t = to_numpy(out.tangent)
    assert np.isnan(t[0]) and t[1] == 1.0


# ---------------------------------------------------------- zero-size
_EMPTY = [
    ("inv", ft.linalg.inv, [(0, 0), (2, 0, 0), (0, 3, 3)]),
    ("cholesky", ft.linalg.cholesky, [(0, 0), (0, 3, 3)]),
    ("det", ft.linalg.det, [(0, 0), (2, 0, 0), (0, 3, 3)]),
    ("slogdet", ft.linalg.slogdet, [(0, 0), (0, 3, 3)]),
    ("qr", ft.linalg.qr, [(0, 0), (3, 0), (0, 3), (0, 3, 2)]),
    ("qr-complete", lambda a: ft.linalg.qr(a, mode="complete"), [(3, 0), (0, 3)]),
    ("svd", lambda a: ft.linalg.svd(a, full_matrices=False), [(0, 0), (3, 0), (0, 3), (0, 3, 2)]),
    ("svd-full", ft.linalg.svd, [(0, 0), (3, 0), (0, 3)]),
    ("svdvals", ft.linalg.svdvals, [(0, 0), (3, 0)]),
    ("eigh", ft.linalg.eigh, [(0, 0), (0, 3, 3), (2, 0, 0)]),
    ("eigvalsh", ft.linalg.eigvalsh, [(0, 0), (0, 3, 3)]),
    ("pinv", ft.linalg.pinv, [(0, 0), (3, 0), (0, 3)]),
    ("matrix_power", lambda a: ft.linalg.matrix_power(a, 3), [(0, 0), (0, 2, 2)]),
]
_EMPTY_CASES = [(n, f, s) for n, f, shapes in _EMPTY for s in shapes]


def _leaves(out):
    return list(out) if isinstance(out, tuple) else [out]


@pytest.mark.parametrize("name,fn,shape", _EMPTY_CASES, ids=[f"{n}-{s}" for n, _, s in _EMPTY_CASES])
def test_zero_size_matrices(name, fn, shape, backend):
    rng = _rng("empty-" + name)
    a = rng.normal(size=shape)
    if len(shape) >= 2 and shape[-1] == shape[-2] and shape[-1] > 0:
        a = _spd(rng, shape[-1], batch=shape[:-2])
    try:
        plain = _leaves(fn(backend.asarray(a)))
    except Exception as exc:  # the backend itself refuses this shape: so may we, the same way
        with pytest.raises(type(exc)):
            fn(ft.DualTensor(backend.asarray(a), backend.asarray(a)))
        return
    out = _leaves(
        fn(ft.DualTensor(backend.asarray(a), backend.asarray(rng.normal(size=(3, *shape))), batched=True))
    )
    assert len(out) == len(plain)
    for o, p in zip(out, plain):
        assert tuple(o.shape) == tuple(p.shape)
        t = to_numpy(o.tangent)
        assert t.shape == (3, *p.shape) and np.all(np.isfinite(t))


@pytest.mark.parametrize(
    "name,sa,sb",
    [
        ("matmul", (2, 0), (0, 3)),
        ("matmul", (4, 2, 0), (0, 3)),
        ("matmul", (0,), (0, 3)),
        ("matmul", (2, 0), (0,)),
        ("tensordot", (2, 0), (0, 3)),
        ("vecdot", (2, 0), (2, 0)),
        ("solve", (0, 0), (0, 2)),
        ("solve", (2, 0, 0), (2, 0, 3)),
    ],
)
def test_zero_size_products(name, sa, sb, backend):
    # k = 0: the product is a sum over nothing, zeros with a zero tangent.
    rng = _rng("empty-prod-" + name)
    f = {
        "matmul": ft.matmul,
        "tensordot": lambda a, b: ft.tensordot(a, b, axes=1),
        "vecdot": ft.vecdot,
        "solve": ft.linalg.solve,
    }[name]
    a, b = rng.normal(size=sa), rng.normal(size=sb)
    ta, tb = rng.normal(size=(3, *sa)), rng.normal(size=(3, *sb))
    plain = f(backend.asarray(a), backend.asarray(b))
    out = f(
        ft.DualTensor(backend.asarray(a), backend.asarray(ta), batched=True),
        ft.DualTensor(backend.asarray(b), backend.asarray(tb), batched=True),
    )
    assert tuple(out.shape) == tuple(plain.shape)
    t = to_numpy(out.tangent)
    assert t.shape == (3, *plain.shape)
    np.testing.assert_array_equal(t, np.zeros(t.shape))


# ------------------------------------------------------ singular matrices
def _rank_deficient(rng: np.random.Generator, n: int, rank: int, cplx: bool = False) -> np.ndarray:
    u = np.linalg.qr(_dir(rng, (n, n), cplx))[0]
    v = np.linalg.qr(_dir(rng, (n, n), cplx))[0]
    s = np.r_[np.linspace(1.0, 2.0, rank), np.zeros(n - rank)]
    return (u * s) @ np.conj(v.T)


@pytest.mark.parametrize("rank", [2, 1, 0])
@pytest.mark.parametrize("dtype", ["float64", "float32", "complex128"])
def test_det_at_singular_matrices_is_the_adjugate(rank, dtype, backend):
    rng = _rng(f"det-singular-{rank}-{dtype}")
    cplx = dtype.startswith("complex")
    a = _rank_deficient(rng, 3, rank, cplx)
    t = _dir(rng, (3, 3, 3), cplx)
    out = ft.linalg.det(
        ft.DualTensor(backend.asarray(a.astype(dtype)), backend.asarray(t.astype(dtype)), batched=True)
    )
    for k in range(3):
        assert_close(
            out.tangent[k, ...],
            central_difference(np.linalg.det, [a], [t[k]]),
            dtype.replace("complex128", "float64"),
        )


def test_det_exactly_singular_and_stacked(backend):
    rng = _rng("det-exact")
    a = np.stack([np.array([[1.0, 2.0], [2.0, 4.0]]), np.array([[2.0, 1.0], [1.0, 3.0]])])
    t = _dir(rng, (2, 2, 2))
    out = ft.linalg.det(ft.DualTensor(backend.asarray(a), backend.asarray(t)))
    assert_close(out.tangent, central_difference(np.linalg.det, [a], [t]), "float64")


def test_slogdet_at_a_singular_matrix_has_a_nan_tangent(backend):
    # log|det| = -inf there: no derivative. NaN for that matrix only, not its neighbours.
    a = np.stack([np.array([[1.0, 2.0], [2.0, 4.0]]), np.array([[2.0, 1.0], [1.0, 3.0]])])
    x = backend.asarray(a)
    if float(to_numpy(backend.xp.linalg.slogdet(x)[0])[0]) != 0:
        pytest.skip("this backend's slogdet rounds the singular matrix to a tiny nonzero determinant")
    t = _dir(_rng("slogdet-singular"), (2, 2, 2))
    sign, logabs = ft.linalg.slogdet(ft.DualTensor(x, backend.asarray(t)))
    d = to_numpy(logabs.tangent)
    assert np.isnan(d[0])
    assert_close(d[1], central_difference(lambda m: np.linalg.slogdet(m)[1], [a[1]], [t[1]]), "float64")
    np.testing.assert_array_equal(to_numpy(sign.tangent), 0)


@pytest.mark.parametrize("mode", ["reduced", "complete"])
def test_qr_of_a_rank_deficient_matrix_has_nan_tangents(mode, backend):
    # Q past the rank is not unique: the rank-deficient matrix's tangents are NaN, the
    # full-rank one's beside it in the stack are exact.
    rng = _rng("qr-rank")
    a = np.stack([_rank_deficient(rng, 3, 2), _spd(rng, 3)])
    t = _dir(rng, (2, 3, 3))
    q, r = ft.linalg.qr(ft.DualTensor(backend.asarray(a), backend.asarray(t)), mode=mode)
    dq, dr = to_numpy(q.tangent), to_numpy(r.tangent)
    assert np.isnan(dq[0]).all() and np.isnan(dr[0]).all()
    assert_close(dq[1], central_difference(lambda m: np.linalg.qr(m)[0], [a[1]], [t[1]]), "float64")
    assert_close(dr[1], central_difference(lambda m: np.linalg.qr(m)[1], [a[1]], [t[1]]), "float64")


# ------------------------------------------------------------ rtol as a dual
def test_dual_rtol_counts_by_its_value(backend):
    rng = _rng("rtol")
    a = rng.normal(size=(4, 3))
    t = rng.normal(size=(4, 3))
    rtol = ft.DualTensor(backend.asarray(np.array(1e-3)), backend.asarray(np.array(1.0)))
    ref = to_numpy(backend.xp.linalg.pinv(backend.asarray(a), rtol=1e-3))
    p = ft.linalg.pinv(backend.asarray(a), rtol=rtol)
    np.testing.assert_allclose(to_numpy(p), ref)
    assert int(to_numpy(ft.linalg.matrix_rank(backend.asarray(a), rtol=rtol))) == 3
    both = ft.linalg.pinv(ft.DualTensor(backend.asarray(a), backend.asarray(t)), rtol=rtol)
    assert_close(
        both.tangent, central_difference(lambda x: np.linalg.pinv(x, rtol=1e-3), [a], [t]), "float64"
    )
    only_rtol = ft.jvp(lambda r: ft.linalg.pinv(backend.asarray(a), rtol=r), (rtol.primal,), (rtol.tangent,))[
        1
    ]
    np.testing.assert_array_equal(to_numpy(only_rtol), np.zeros((3, 4)))


# ----------------------------------------------- full svd, complete qr
def _mh(a):
    return np.conj(np.swapaxes(a, -1, -2))


@pytest.mark.parametrize("shape", [(5, 3), (3, 5), (2, 5, 3)])
@pytest.mark.parametrize("dtype", ["float64", "complex128"])
def test_svd_full_matrices(shape, dtype, backend):
    rng = _rng(f"svd-full-{shape}")
    cplx = dtype == "complex128"
    a, t = _dir(rng, shape, cplx), _dir(rng, (3, *shape), cplx)
    k = min(shape[-2:])
    dual = ft.DualTensor(backend.asarray(a), backend.asarray(t), batched=True)
    (u, s, vh), (ur, sr, vhr) = ft.linalg.svd(dual), ft.linalg.svd(dual, full_matrices=False)
    U, Vh = to_numpy(u), to_numpy(vh)
    dU, dS, dVh = (to_numpy(x.tangent) for x in (u, s, vh))
    # the unique part is the reduced factors' tangent
    assert_close(dU[..., :k], to_numpy(ur.tangent), "float64")
    assert_close(dVh[..., :k, :], to_numpy(vhr.tangent), "float64")
    assert_close(dS, to_numpy(sr.tangent), "float64")
    # the completion stays orthonormal to first order, and U S V^H moves as A does
    for dq, q in ((dU, U), (_mh(dVh), _mh(Vh))):
        np.testing.assert_allclose(_mh(dq) @ q + _mh(q) @ dq, 0, atol=1e-10)
    S = np.zeros(shape, dtype=dtype)
    S[..., range(k), range(k)] = to_numpy(s)
    dSm = np.zeros((3, *shape), dtype=dtype)
    dSm[..., range(k), range(k)] = dS
    assert_close(dU @ S @ Vh + U @ dSm @ Vh + U @ S @ dVh, t, "float64")
    # no rotation within the completion: Q2^H dQ2 = 0
    np.testing.assert_allclose(_mh(U[..., k:]) @ dU[..., k:], 0, atol=1e-10)


@pytest.mark.parametrize("shape", [(5, 3), (2, 4, 2)])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_qr_complete_of_a_tall_matrix(shape, dtype, backend):
    rng = _rng(f"qr-complete-{shape}")
    a, t = _dir(rng, shape), _dir(rng, (3, *shape))
    n = shape[-1]
    dual = ft.DualTensor(backend.asarray(a.astype(dtype)), backend.asarray(t.astype(dtype)), batched=True)
    (q, r), (qr_, rr) = ft.linalg.qr(dual, mode="complete"), ft.linalg.qr(dual)
    Q, R, dQ, dR = to_numpy(q), to_numpy(r), to_numpy(q.tangent), to_numpy(r.tangent)
    assert_close(dQ[..., :n], to_numpy(qr_.tangent), dtype)
    assert_close(dR[..., :n, :], to_numpy(rr.tangent), dtype)
    np.testing.assert_array_equal(dR[..., n:, :], 0)
    atol = 1e-10 if dtype == "float64" else 1e-4
    np.testing.assert_allclose(_mh(dQ) @ Q + _mh(Q) @ dQ, 0, atol=atol)
    assert_close(dQ @ R + Q @ dR, t, dtype)
    ref = central_difference(lambda x: np.linalg.qr(x)[0], [a], [t[0]])  # reduced Q is unique
    assert_close(dQ[0, ..., :n], ref, dtype)


# ------------------------------------------------------------ debug nans
@pytest.fixture
def debug_nans():
    ft.set_debug_nans(True)
    try:
        yield
    finally:
        ft.set_debug_nans(False)


def test_debug_nans_unary_binary_general(debug_nans, backend):
    x = ft.DualTensor(backend.asarray(np.array([-1.0, 1.0])), backend.asarray(np.ones(2)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ft.DebugNaNError, match=r"log produced a NaN in its value"):
            ft.log(x)
        z = ft.DualTensor(backend.asarray(np.array([0.0, 1.0])), backend.asarray(np.ones(2)))
        with pytest.raises(ft.DebugNaNError, match=r"sqrt produced a NaN in its tangent of level"):
            ft.sqrt(z * 0.0)  # value 0, tangent 0: inf * 0
        with pytest.raises(ft.DebugNaNError, match="divide"):
            z / z
        with pytest.raises(FloatingPointError, match="vector_norm"):
            ft.linalg.vector_norm(z * 0.0, ord=0.5)
        ft.exp(x)  # fine: no NaN
        nan_in = ft.DualTensor(backend.asarray(np.array([np.nan, 1.0])), backend.asarray(np.ones(2)))
        ft.sin(nan_in)  # NaN in, NaN out: not this operation's doing


def test_debug_nans_names_the_level_of_a_nested_tangent(debug_nans):
    def f(x):
        return ft.sqrt(x * x)  # the second derivative at 0 is 0 * inf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ft.DebugNaNError, match="level"):
            ft.hessian(lambda x: ft.sum(f(x)))(np.array([0.0, 1.0]))


def test_debug_nans_off_costs_nothing_and_is_off_by_default():
    assert ft.debug_nans() is False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ft.log(ft.DualTensor(np.array(-1.0), 1.0))  # no error when off
    with pytest.raises(TypeError):
        ft.set_debug_nans(1)


@pytest.mark.parametrize("value,raises", [("1", True), ("0", False), ("maybe", None)])
def test_debug_nans_environment_variable(value, raises):
    code = (
        "import warnings, numpy as np, fwdtensor as ft\n"
        "warnings.simplefilter('ignore')\n"
        "try:\n"
        "    ft.log(ft.DualTensor(np.array(-1.0), 1.0))\n"
        "    print('NO')\n"
        "except ft.DebugNaNError:\n"
        "    print('RAISED')\n"
        "except ValueError as e:\n"
        "    print('BAD', e)\n"
    )
    env = dict(os.environ, FWDTENSOR_DEBUG_NANS=value)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    if raises is None:
        assert out.stdout.startswith("BAD") and "FWDTENSOR_DEBUG_NANS" in out.stdout
    else:
        assert out.stdout.strip() == ("RAISED" if raises else "NO")
