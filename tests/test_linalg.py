"""Linear algebra rules (``matmul``, ``tensordot``, ``vecdot`` and the ``linalg`` extension),
table-driven: primal against the backend's own function, tangent against central differences
along a random direction from the function's domain, stacked matrices, batched (B = 3)
against three single tangents, on every backend in float64 and float32 (and complex128 for
the rules marked so). Eigenvectors and singular vectors are compared with their phase fixed
(the pivot entry of each column real and positive), which is a smooth function of them.
Also: ties and kinks, errors, namedtuple results, and Hessians through ``det`` and ``solve``.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass

import array_api_compat.numpy as cnp
import numpy as np
import pytest

import fwdtensor as ft
from tests._util import central_difference, is_constant, to_numpy, tolerances

INF = float("inf")


# ------------------------------------------------------------------- inputs
def _unitary(rng: np.random.Generator, batch: tuple, n: int, cplx: bool) -> np.ndarray:
    m = rng.normal(size=(*batch, n, n))
    if cplx:
        m = m + 1j * rng.normal(size=m.shape)
    return np.linalg.qr(m)[0]


def _mh(a: np.ndarray) -> np.ndarray:
    return np.conj(np.swapaxes(a, -1, -2))


def draw(domain: str, shape: tuple, rng: np.random.Generator, cplx: bool = False) -> np.ndarray:
    """float64 (complex128) inputs from a function's domain; matrices are well conditioned
    and their eigenvalues (singular values) well apart."""
    batch, (m, n) = shape[:-2], shape[-2:] if len(shape) >= 2 else (None, None)
    if domain == "real":
        x = rng.uniform(-2, 2, shape)
        return x + 1j * rng.uniform(-2, 2, shape) if cplx else x
    if domain == "nonzero":  # every entry away from 0 (norms with p < 1)
        x = rng.uniform(0.3, 2, shape) * rng.choice([-1, 1], shape)
        return x * np.exp(1j * rng.uniform(-3, 3, shape)) if cplx else x
    if domain == "spd":
        q = _unitary(rng, batch, n, cplx)
        return (q * rng.uniform(1, 3, (*batch, 1, n))) @ _mh(q)
    if domain == "sym":  # distinct eigenvalues, at least 0.6 apart
        q = _unitary(rng, batch, n, cplx)
        d = np.arange(n) - n / 2 + rng.uniform(-0.2, 0.2, (*batch, 1, n))
        return (q * d) @ _mh(q)
    if domain in ("invertible", "fullrank"):  # distinct singular values in [1, 3.5]
        k = min(m, n)
        u, v = _unitary(rng, batch, m, cplx)[..., :k], _unitary(rng, batch, n, cplx)[..., :k]
        s = np.linspace(1.0, 3.5, k) + rng.uniform(-0.1, 0.1, (*batch, 1, k))
        return (u * s) @ _mh(v)
    if domain == "eig":  # real, non-symmetric: real eigenvalues and a complex pair
        d = np.diag([2.0, -1.0, 3.5][: n - 2] + [0.0, 0.0])
        d[-2:, -2:] = [[0.5, -1.2], [1.2, 0.5]]
        v = np.eye(n) + 0.3 * rng.normal(size=(*batch, n, n))
        return v @ d @ np.linalg.inv(v)
    raise ValueError(domain)


def direction(kind: str, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=x.shape)
    if np.iscomplexobj(x):
        v = v + 1j * rng.normal(size=x.shape)
    return (v + _mh(v)) / 2 if kind == "sym" else v


# ------------------------------------------------------- phase of vectors
def _pivot(v: np.ndarray, base: np.ndarray) -> tuple:
    """Each column's pivot (its largest entry at the base point) and its phase."""
    i = np.argmax(np.abs(base), axis=-2)[..., None, :]
    piv = np.take_along_axis(v, i, axis=-2)
    return i, piv, piv / np.abs(piv)


def fix_columns(v: np.ndarray, dv: np.ndarray | None, base: np.ndarray) -> tuple:
    """``v`` with each column's pivot made real and positive, and that map's tangent."""
    i, piv, p = _pivot(v, base)
    if dv is None:
        return v / p, None
    rot = 1j * np.imag(np.take_along_axis(dv, i, axis=-2) / piv) if np.iscomplexobj(v) else 0
    return v / p, (dv - v * rot) / p


def canon_vectors(k: int) -> Callable:
    """Fix the phase of the eigenvector output ``k`` (``eigh``, ``eig``)."""

    def canon(outs: list, touts: list | None, base: list) -> tuple:
        outs, touts = list(outs), None if touts is None else list(touts)
        outs[k], dv = fix_columns(outs[k], None if touts is None else touts[k], base[k])
        if touts is not None:
            touts[k] = dv
        return outs, touts

    return canon


def canon_svd(outs: list, touts: list | None, base: list) -> tuple:
    """U's columns and Vh's rows turned by the same phase (U S Vh does not change)."""
    u, s, vh = outs
    i, piv, p = _pivot(u, base[0])
    pr = np.swapaxes(p, -1, -2)
    fixed = [u / p, s, vh * pr]
    if touts is None:
        return fixed, None
    du, ds, dvh = touts
    rot = (
        1j * np.imag(np.take_along_axis(du, i, axis=-2) / piv) if np.iscomplexobj(u) else np.zeros(piv.shape)
    )
    return fixed, [(du - u * rot) / p, ds, (dvh + np.swapaxes(rot, -1, -2) * vh) * pr]


# -------------------------------------------------------------------- cases
@dataclass(frozen=True)
class Case:
    """``call(ns, *xs)`` with ``ns`` fwdtensor, the backend or NumPy; ``args`` gives each
    argument's (domain, shape); ``dirs`` each argument's direction ("any", "sym", or None
    for a constant); ``stack`` prepends (2,) to the shapes of the stacked test."""

    id: str
    call: Callable
    args: tuple
    dirs: tuple | None = None
    canon: Callable | None = None
    stack: bool = True
    complex: bool = False
    tol: float = 1.0
    needs: str | None = None  # a linalg function not every backend has (CuPy lacks eig)

    def __str__(self) -> str:
        return self.id


def L(name: str, **kw: object) -> Callable:
    return lambda ns, *a: getattr(ns.linalg, name)(*a, **kw)


def M(name: str, **kw: object) -> Callable:
    return lambda ns, *a: getattr(ns, name)(*a, **kw)


SQ = (("invertible", (4, 4)),)
STACKED_A = (("invertible", (2, 4, 4)), ("real", (4,)))  # a stack of matrices, one vector
EIGH, SYM = canon_vectors(1), ("sym",)

CASES = [
    # main namespace
    Case("matmul-2d-2d", M("matmul"), (("real", (3, 4)), ("real", (4, 2))), complex=True),
    Case("matmul-1d-2d", M("matmul"), (("real", (4,)), ("real", (4, 2))), stack=False),
    Case("matmul-2d-1d", M("matmul"), (("real", (3, 4)), ("real", (4,))), stack=False),
    Case("matmul-1d-1d", M("matmul"), (("real", (4,)), ("real", (4,))), stack=False),
    Case("matmul-3d-2d", M("matmul"), (("real", (2, 3, 4)), ("real", (4, 5))), stack=False),
    Case("matmul-2d-3d", M("matmul"), (("real", (3, 4)), ("real", (2, 4, 5))), stack=False),
    Case("matmul-1d-3d", M("matmul"), (("real", (4,)), ("real", (2, 4, 3))), stack=False),
    Case("matmul-3d-1d", M("matmul"), (("real", (2, 3, 4)), ("real", (4,))), stack=False),
    Case("matmul-const-b", M("matmul"), (("real", (3, 4)), ("real", (2, 4, 2))), ("any", None), stack=False),
    Case("matmul-const-a", M("matmul"), (("real", (2, 3, 4)), ("real", (4,))), (None, "any"), stack=False),
    Case(
        "tensordot-2", M("tensordot"), (("real", (3, 4, 5)), ("real", (4, 5, 2))), stack=False, complex=True
    ),
    Case("tensordot-1", M("tensordot", axes=1), (("real", (3, 4)), ("real", (4, 2))), stack=False),
    Case("tensordot-0", M("tensordot", axes=0), (("real", (2, 3)), ("real", (4,))), stack=False),
    Case(
        "tensordot-seq",
        M("tensordot", axes=([1, 0], [0, 2])),
        (("real", (3, 2, 4)), ("real", (2, 5, 3))),
        stack=False,
    ),
    Case(
        "tensordot-neg", M("tensordot", axes=([-1], [0])), (("real", (3, 4)), ("real", (4, 2))), stack=False
    ),
    Case("vecdot", M("vecdot"), (("real", (3, 4)), ("real", (3, 4))), complex=True),
    Case("vecdot-broadcast", M("vecdot"), (("real", (4,)), ("real", (3, 4))), stack=False),
    Case("vecdot-axis", M("vecdot", axis=-2), (("real", (4, 3)), ("real", (2, 4, 3))), stack=False),
    # linalg
    Case("linalg.matmul", L("matmul"), (("real", (3, 4)), ("real", (4,)))),
    Case("linalg.tensordot", L("tensordot", axes=1), (("real", (3, 4)), ("real", (4, 2))), stack=False),
    Case("linalg.vecdot", L("vecdot"), (("real", (4,)), ("real", (3, 4)))),
    Case("cholesky", L("cholesky"), (("spd", (4, 4)),), SYM, complex=True),
    Case("cholesky-upper", L("cholesky", upper=True), (("spd", (4, 4)),), SYM),
    Case("cross", L("cross"), (("real", (3,)), ("real", (3,))), complex=True),
    Case("cross-broadcast", L("cross"), (("real", (2, 3)), ("real", (3,))), stack=False),
    Case("cross-axis", L("cross", axis=-2), (("real", (3, 2)), ("real", (3, 2)))),
    Case("det", L("det"), SQ, complex=True),
    Case("diagonal", L("diagonal", offset=1), (("real", (3, 4)),)),
    Case("eigh", L("eigh"), (("sym", (4, 4)),), SYM, EIGH, complex=True, tol=3),
    Case("eigvalsh", L("eigvalsh"), (("sym", (4, 4)),), SYM, complex=True),
    Case("eig", L("eig"), (("eig", (4, 4)),), canon=canon_vectors(1), tol=3, needs="eig"),
    Case("eigvals", L("eigvals"), (("eig", (3, 3)),), needs="eigvals"),
    Case("inv", L("inv"), SQ, complex=True),
    Case("matrix_norm-fro", L("matrix_norm"), (("real", (3, 4)),), complex=True),
    Case("matrix_norm-fro-keepdims", L("matrix_norm", keepdims=True), (("real", (3, 4)),)),
    Case("matrix_norm-nuc", L("matrix_norm", ord="nuc"), (("fullrank", (4, 3)),), complex=True),
    Case("matrix_norm-1", L("matrix_norm", ord=1), (("real", (3, 4)),), complex=True),
    Case("matrix_norm--1", L("matrix_norm", ord=-1), (("real", (3, 4)),)),
    Case("matrix_norm-2", L("matrix_norm", ord=2), (("fullrank", (3, 4)),), complex=True),
    Case("matrix_norm--2", L("matrix_norm", ord=-2, keepdims=True), (("fullrank", (4, 3)),)),
    Case("matrix_norm-inf", L("matrix_norm", ord=INF), (("real", (3, 4)),)),
    Case("matrix_norm--inf", L("matrix_norm", ord=-INF), (("real", (3, 4)),)),
    *[
        Case(f"matrix_power-{n}", lambda ns, x, n=n: ns.linalg.matrix_power(x, n), SQ)
        for n in (0, 1, 2, 3, 6, -1, -3)
    ],
    Case("matrix_transpose", L("matrix_transpose"), (("real", (3, 4)),)),
    Case("outer", L("outer"), (("real", (3,)), ("real", (4,))), stack=False, complex=True),
    Case("pinv-tall", L("pinv"), (("fullrank", (4, 3)),), complex=True),
    Case("pinv-wide", L("pinv"), (("fullrank", (3, 4)),)),
    Case("qr", L("qr"), (("fullrank", (4, 3)),), complex=True),
    Case("qr-square-complete", L("qr", mode="complete"), SQ),
    Case("qr-wide", L("qr"), (("fullrank", (3, 4)),), complex=True),
    Case("slogdet", L("slogdet"), SQ, complex=True),
    Case("solve-vector", L("solve"), (*SQ, ("real", (4,))), complex=True),
    Case("solve-matrix", L("solve"), (*SQ, ("real", (4, 2)))),
    Case("solve-broadcast", L("solve"), (("invertible", (2, 4, 4)), ("real", (4, 3))), stack=False),
    Case("solve-broadcast-b", L("solve"), (*SQ, ("real", (2, 4, 3))), stack=False),
    Case("solve-const-a", L("solve"), (*SQ, ("real", (4, 2))), (None, "any")),
    Case("solve-const-b", L("solve"), (*SQ, ("real", (4,))), ("any", None)),
    Case("solve-stacked-a", L("solve"), STACKED_A, (None, "any"), stack=False),
    Case(
        "svd-tall",
        L("svd", full_matrices=False),
        (("fullrank", (4, 3)),),
        canon=canon_svd,
        complex=True,
        tol=3,
    ),
    Case("svd-wide", L("svd", full_matrices=False), (("fullrank", (3, 4)),), canon=canon_svd, tol=3),
    Case("svd-square", L("svd"), SQ, canon=canon_svd, complex=True, tol=3),
    Case("svdvals", L("svdvals"), (("fullrank", (4, 3)),), complex=True),
    Case("trace", L("trace"), (("real", (3, 3)),), complex=True),
    Case("trace-offset", L("trace", offset=-1), (("real", (3, 4)),)),
    Case("vector_norm", L("vector_norm"), (("real", (3, 4)),), complex=True),
    Case("vector_norm-axis", L("vector_norm", axis=1, keepdims=True), (("real", (3, 4)),)),
    Case("vector_norm-axes", L("vector_norm", axis=(0, -1), ord=3), (("real", (3, 2, 4)),)),
    Case("vector_norm-1", L("vector_norm", ord=1, axis=-1), (("nonzero", (3, 4)),), complex=True),
    Case("vector_norm-inf", L("vector_norm", ord=INF), (("real", (3, 4)),), complex=True),
    Case("vector_norm--inf", L("vector_norm", ord=-INF, axis=0), (("nonzero", (3, 4)),)),
    Case("vector_norm-0", L("vector_norm", ord=0), (("real", (3, 4)),)),
    Case("vector_norm-p", L("vector_norm", ord=0.5, axis=-1), (("nonzero", (3, 4)),), complex=True),
    Case("vector_norm--p", L("vector_norm", ord=-1.5), (("nonzero", (3, 4)),)),
]
COMPLEX = [c for c in CASES if c.complex]
DTYPES = ["float64", "float32"]


# ------------------------------------------------------------------ checker
def leaves(out: object) -> list:
    return list(out) if isinstance(out, tuple) else [out]


def inputs(case: Case, rng: np.random.Generator, stacked: bool = False, cplx: bool = False) -> list:
    # stacking applies to matrices: a 1-D argument stays a vector (the standard's vector case)
    return [draw(d, ((2,) if stacked and len(s) >= 2 else ()) + s, rng, cplx) for d, s in case.args]


def directions(case: Case, xs: list, rng: np.random.Generator) -> list:
    kinds = case.dirs or ("any",) * len(xs)
    return [None if k is None else direction(k, x, rng) for k, x in zip(kinds, xs)]


def reference(case: Case, xs: list, vs: list) -> list:
    """Central differences of every output (phases fixed at the base point)."""
    base = [np.asarray(o) for o in leaves(case.call(cnp, *xs))]

    def flat(*a: np.ndarray) -> np.ndarray:
        outs = [np.asarray(o) for o in leaves(case.call(cnp, *a))]
        if case.canon:
            outs = case.canon(outs, None, base)[0]
        return np.concatenate([o.ravel() for o in outs])

    d = central_difference(flat, xs, vs)
    parts, i = [], 0
    for o in base:
        parts.append(d[i : i + o.size].reshape(o.shape))
        i += o.size
    return parts


def run(case: Case, backend, xs: list, vs: list, dtype: str, batched: bool = False) -> list:
    if case.needs and not hasattr(backend.xp.linalg, case.needs):
        pytest.skip(f"{backend.name} has no linalg.{case.needs}")
    args = [
        backend.asarray(x, dtype)
        if v is None
        else ft.DualTensor(backend.asarray(x, dtype), backend.asarray(v, dtype), batched=batched)
        for x, v in zip(xs, vs)
    ]
    return leaves(case.call(ft, *args))


def check_close(got: object, want: np.ndarray, dtype: str, tol: float, what: str) -> None:
    rtol, atol = tolerances(dtype)
    g, w = to_numpy(got), np.asarray(want)
    if not np.iscomplexobj(g):
        w = w.real
    scale = max(1.0, float(np.max(np.abs(w)))) if w.size else 1.0
    np.testing.assert_allclose(g, w, rtol=rtol * tol, atol=atol * tol * scale, err_msg=what)


def refusal(case: Case, backend, xs: list) -> type | None:
    """The exception type the backend raises for these inputs (CuPy's solve does not
    broadcast), or None."""
    try:
        case.call(backend.xp, *[backend.asarray(x) for x in xs])
    except Exception as exc:
        return type(exc)
    return None


def check_case(case: Case, backend, dtype: str, stacked: bool = False) -> None:
    rng = np.random.default_rng(zlib.crc32(f"{case.id}-{dtype}-{stacked}".encode()))  # stable seeds
    cplx = dtype.startswith("complex")
    xs = [x.astype(dtype) for x in inputs(case, rng, stacked, cplx)]
    vs = [None if v is None else v.astype(dtype) for v in directions(case, xs, rng)]
    refused = refusal(case, backend, xs)
    if refused is not None:  # the backend's own function refuses: so must the rule, alike
        with pytest.raises(refused):
            run(case, backend, xs, vs, dtype)
        return
    outs = run(case, backend, xs, vs, dtype)
    want = leaves(case.call(backend.xp, *[backend.asarray(x, dtype) for x in xs]))
    assert len(outs) == len(want)
    for o, w in zip(outs, want):
        assert isinstance(o, ft.DualTensor), f"{case.id}: a floating result must be a dual"
        rtol = 1e-5 if dtype == "float32" else 1e-10
        np.testing.assert_allclose(to_numpy(o.primal), to_numpy(w), rtol=rtol, atol=rtol, err_msg=case.id)
        assert tuple(o.tangent.shape) == tuple(o.shape) and o.tangent.dtype == o.dtype
    wide = "complex128" if cplx else "float64"
    x64 = [x.astype(wide) for x in xs]
    v64 = [None if v is None else v.astype(wide) for v in vs]
    ref = reference(case, x64, v64)
    got = [to_numpy(o.tangent) for o in outs]
    if case.canon:
        prim = [to_numpy(o.primal) for o in outs]
        got = case.canon([p.astype(np.promote_types(p.dtype, np.float64)) for p in prim], got, prim)[1]
    for k, (g, r) in enumerate(zip(got, ref)):
        check_close(g, r, dtype, case.tol, f"{case.id} output {k} ({dtype}, {backend.name})")


# -------------------------------------------------------------------- tests
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_against_finite_differences(case, dtype, backend):
    check_case(case, backend, dtype)


@pytest.mark.parametrize("case", [c for c in CASES if c.stack], ids=str)
def test_stacked_matrices(case, backend):
    check_case(case, backend, "float64", stacked=True)


@pytest.mark.parametrize("case", COMPLEX, ids=str)
def test_complex(case, backend):
    check_case(case, backend, "complex128")


@pytest.mark.parametrize("case", CASES, ids=str)
def test_batched_equals_stacked_single(case, backend):
    rng = np.random.default_rng(3)
    xs = inputs(case, rng, stacked=case.stack)
    if refusal(case, backend, xs) is not None:
        pytest.skip(f"{backend.name} refuses these shapes itself (checked in the finite-difference test)")
    kinds = case.dirs or ("any",) * len(xs)
    vs = [
        None if k is None else np.stack([direction(k, x, rng) for _ in range(3)]) for k, x in zip(kinds, xs)
    ]
    batched = run(case, backend, xs, vs, "float64", batched=True)
    for b in range(3):
        single = run(case, backend, xs, [None if v is None else v[b] for v in vs], "float64")
        for o, s in zip(batched, single):
            assert o.batched and tuple(o.tangent.shape) == (3, *o.shape)
            np.testing.assert_allclose(to_numpy(o.tangent)[b], to_numpy(s.tangent), rtol=1e-9, atol=1e-12)


# ------------------------------------------------------- results and types
@pytest.mark.parametrize(
    "name,kw,fields",
    [
        ("eigh", {}, ("eigenvalues", "eigenvectors")),
        ("qr", {}, ("Q", "R")),
        ("svd", {}, ("U", "S", "Vh")),
        ("slogdet", {}, ("sign", "logabsdet")),
        ("eig", {}, ("eigenvalues", "eigenvectors")),
    ],
)
def test_named_results_keep_the_backend_type(name, kw, fields, backend):
    if not hasattr(backend.xp.linalg, name):
        pytest.skip(f"{backend.name} has no linalg.{name}")
    x = backend.asarray(draw("sym", (3, 3), np.random.default_rng(0)))
    plain = getattr(backend.xp.linalg, name)(x, **kw)
    out = getattr(ft.linalg, name)(ft.DualTensor(x, x), **kw)
    assert type(out) is type(plain)
    assert all(isinstance(o, ft.DualTensor) for o in out)
    for f in fields if hasattr(plain, fields[0]) else ():  # CuPy's eig gives a plain tuple
        assert isinstance(getattr(out, f), ft.DualTensor)


def test_slogdet_sign_has_zero_tangent(backend):
    x = backend.asarray(-draw("invertible", (3, 3), np.random.default_rng(1)))
    sign, logabs = ft.linalg.slogdet(ft.DualTensor(x, x))
    assert np.all(to_numpy(sign.tangent) == 0)
    np.testing.assert_allclose(to_numpy(logabs.tangent), 3.0, rtol=1e-12)  # d log|det(sA)|/ds at s=1


def test_matrix_rank_has_no_tangent(backend):
    x = draw("fullrank", (2, 4, 3), np.random.default_rng(2))
    out = ft.linalg.matrix_rank(ft.DualTensor(backend.asarray(x), backend.asarray(x)))
    assert is_constant(out)
    assert to_numpy(out).tolist() == [3, 3]


def test_constant_input_gives_constant_results(backend):
    x = backend.asarray(draw("invertible", (3, 3), np.random.default_rng(4)))
    assert is_constant(ft.linalg.inv(x))
    out = ft.linalg.solve(ft.DualTensor(x), x)  # a dual without a tangent
    assert isinstance(out, ft.DualTensor) and np.all(to_numpy(out.tangent) == 0)


# ------------------------------------------------------------ ties, kinks
def test_eigh_repeated_eigenvalues(backend):
    # A cluster's vectors are not unique: NaN. Its values get the cluster mean's slope.
    rng = np.random.default_rng(5)
    a = np.diag([1.0, 1.0, 3.0])
    v = direction("sym", a, rng)
    w, q = ft.linalg.eigh(ft.DualTensor(backend.asarray(a), backend.asarray(v)))
    dw, dq = to_numpy(w.tangent), to_numpy(q.tangent)
    np.testing.assert_allclose(dw, [(v[0, 0] + v[1, 1]) / 2] * 2 + [v[2, 2]], rtol=1e-12)
    assert np.all(np.isnan(dq[:, :2])) and np.all(np.isfinite(dq[:, 2]))
    dv = to_numpy(ft.linalg.eigvalsh(ft.DualTensor(backend.asarray(a), backend.asarray(v))).tangent)
    np.testing.assert_allclose(dv, dw, rtol=1e-12)
    # the mean of a cluster is differentiable: its slope is exact
    s = ft.sum(ft.linalg.eigvalsh(ft.DualTensor(backend.asarray(a), backend.asarray(v))))
    np.testing.assert_allclose(to_numpy(s.tangent), np.trace(v), rtol=1e-12)


def test_singular_value_ties_and_zeros(backend):
    rng = np.random.default_rng(6)
    a = np.diag([2.0, 2.0, 0.0])
    v = rng.normal(size=(3, 3))
    x = ft.DualTensor(backend.asarray(a), backend.asarray(v))
    ds = to_numpy(ft.linalg.svdvals(x).tangent)
    np.testing.assert_allclose(ds, [(v[0, 0] + v[1, 1]) / 2] * 2 + [0.0], rtol=1e-12)
    u, s, vh = ft.linalg.svd(x)
    assert np.all(np.isnan(to_numpy(u.tangent))) and np.all(np.isnan(to_numpy(vh.tangent)))
    n2 = ft.linalg.matrix_norm(x, ord=2)  # ties of the largest value split evenly
    np.testing.assert_allclose(to_numpy(n2.tangent), (v[0, 0] + v[1, 1]) / 2, rtol=1e-12)
    assert to_numpy(ft.linalg.matrix_norm(x, ord=-2).tangent) == 0.0  # kink at 0: slope 0
    nuc = ft.linalg.matrix_norm(x, ord="nuc")
    np.testing.assert_allclose(to_numpy(nuc.tangent), v[0, 0] + v[1, 1], rtol=1e-12)


def test_norm_kinks_follow_jax(backend):
    zero = ft.DualTensor(backend.asarray(np.zeros((2, 3))), backend.asarray(np.ones((2, 3))))
    for ord in (2, 1, INF, 3):
        assert np.all(to_numpy(ft.linalg.vector_norm(zero, ord=ord).tangent) == 0), ord
    assert to_numpy(ft.linalg.matrix_norm(zero).tangent) == 0
    x = np.array([[1.0, -3.0], [3.0, 2.0]])
    v = np.array([[0.5, 1.0], [2.0, 0.25]])
    d = ft.DualTensor(backend.asarray(x), backend.asarray(v))
    # |x| ties at 3 (entries (0, 1) and (1, 0)): the max's slope is their average
    np.testing.assert_allclose(to_numpy(ft.linalg.vector_norm(d, ord=INF).tangent), (-1.0 + 2.0) / 2)
    # row sums 4 and 5: the inf-norm follows row 1
    np.testing.assert_allclose(to_numpy(ft.linalg.matrix_norm(d, ord=INF).tangent), 2.0 + 0.25)


def test_vector_norm_axis_none_with_a_batch(backend):
    # axis=None reduces every axis of the primal, never the batch axis of the tangent
    rng = np.random.default_rng(8)
    x, v = rng.normal(size=(2, 3)), rng.normal(size=(3, 2, 3))
    out = ft.linalg.vector_norm(ft.DualTensor(backend.asarray(x), backend.asarray(v), batched=True))
    want = np.einsum("bij,ij->b", v, x) / np.linalg.norm(x)
    np.testing.assert_allclose(to_numpy(out.tangent), want, rtol=1e-12)


# -------------------------------------------------------------------- errors
def _raised(fn: Callable) -> type:
    with pytest.raises(Exception) as info:
        fn()
    return info.type


@pytest.mark.parametrize(
    "name,shapes",
    [
        ("matmul", ((3, 4), (3, 4))),
        ("matmul", ((3,), (4,))),
        ("solve", ((3, 3), (4,))),
        ("solve", ((3, 3), (4, 2))),
    ],
)
def test_shape_errors_match_the_backend(name, shapes, backend):
    rng = np.random.default_rng(9)
    xs = [
        backend.asarray(draw("invertible", s, rng) if len(s) == 2 and s[0] == s[1] else rng.normal(size=s))
        for s in shapes
    ]
    f = getattr(ft, name) if name == "matmul" else getattr(ft.linalg, name)
    g = getattr(backend.xp, name) if name == "matmul" else getattr(backend.xp.linalg, name)
    want = _raised(lambda: g(*xs))
    assert _raised(lambda: f(*[ft.DualTensor(x, x) for x in xs])) is want
    assert _raised(lambda: f(xs[0], ft.DualTensor(xs[1], xs[1]))) is want


def test_ambiguous_nonnegative_axis(backend):
    a = ft.DualTensor(backend.asarray(np.ones(3)), backend.asarray(np.ones(3)))
    with pytest.raises(ValueError):
        ft.vecdot(a, backend.asarray(np.ones((3, 3))), axis=0)


# ----------------------------------------------------------- second order
def _fd_jacobian(f: Callable, x: np.ndarray, h: float = 1e-4) -> np.ndarray:
    cols = [central_difference(f, [x], [e], h=h) for e in np.eye(x.size)]
    return np.stack(cols, axis=-1)


def _sq(a):
    return ft.sum(a * a)


def _weights(shape: tuple) -> np.ndarray:
    return np.linspace(-1.0, 1.5, int(np.prod(shape))).reshape(shape)


W3, W43 = _weights((3,)), _weights((4, 3))

# Scalar functions through each rule: (domain, shape, f(a, bk)) with bk the backend helper.
SECOND_ORDER = {
    "det": ("invertible", (3, 3), lambda a, bk: ft.linalg.det(a)),
    "solve": (
        "invertible",
        (3, 3),
        lambda a, bk: ft.sum(ft.linalg.solve(a, bk.asarray(W3)) * bk.asarray(W3 * W3)),
    ),
    "solve-both": ("invertible", (3, 3), lambda a, bk: ft.sum(ft.linalg.solve(a, a * a))),
    "inv": ("invertible", (3, 3), lambda a, bk: ft.linalg.trace(ft.linalg.inv(a))),
    "slogdet": ("invertible", (3, 3), lambda a, bk: ft.linalg.slogdet(a)[1]),
    "matrix_power": (
        "invertible",
        (3, 3),
        lambda a, bk: ft.sum(ft.linalg.matrix_power(a, -2) * bk.asarray(W3)),
    ),
    "cholesky": ("spd", (3, 3), lambda a, bk: ft.sum(ft.linalg.cholesky((a + a.mT) * 0.5) * bk.asarray(W3))),
    "eigvalsh": ("sym", (3, 3), lambda a, bk: ft.sum(ft.linalg.eigvalsh((a + a.mT) * 0.5) * bk.asarray(W3))),
    "eigh": ("sym", (3, 3), lambda a, bk: _sq(ft.linalg.eigh((a + a.mT) * 0.5)[1][0, ...] * bk.asarray(W3))),
    "qr": ("fullrank", (4, 3), lambda a, bk: ft.sum(ft.linalg.qr(a)[0] * bk.asarray(W43))),
    "svd": ("fullrank", (4, 3), lambda a, bk: _sq(ft.linalg.svd(a, full_matrices=False)[0] * bk.asarray(W3))),
    "svdvals": ("fullrank", (4, 3), lambda a, bk: ft.sum(ft.linalg.svdvals(a) * bk.asarray(W3))),
    "pinv": ("fullrank", (4, 3), lambda a, bk: ft.sum(ft.linalg.pinv(a) * bk.asarray(W43.T))),
    "matrix_norm-2": ("fullrank", (4, 3), lambda a, bk: ft.linalg.matrix_norm(a, ord=2)),
    "vector_norm-3": ("real", (4, 3), lambda a, bk: ft.linalg.vector_norm(a, ord=3)),
}


def _fd_jacobian(f: Callable, x: np.ndarray, h: float = 1e-4) -> np.ndarray:
    cols = [central_difference(f, [x], [e], h=h) for e in np.eye(x.size)]
    return np.stack(cols, axis=-1)


@pytest.mark.parametrize("which", list(SECOND_ORDER))
def test_hessian_against_differences_of_jacobian(which, backend):
    # forward over forward: every rule must also run on duals of a lower level
    domain, shape, g = SECOND_ORDER[which]
    x0 = draw(domain, shape, np.random.default_rng(11)).reshape(-1)

    def f(x):
        return g(ft.reshape(x, shape), backend)

    hess = to_numpy(ft.hessian(f)(backend.asarray(x0)))
    ref = _fd_jacobian(lambda x: to_numpy(ft.jacfwd(f)(backend.asarray(x))), x0)
    np.testing.assert_allclose(hess, ref, rtol=1e-6, atol=1e-7 * max(1.0, np.max(np.abs(ref))))
    np.testing.assert_allclose(hess, hess.T, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("case", [c for c in CASES if len(c.args) == 2 and not c.dirs], ids=str)
def test_batched_operand_meets_single_operand(case, backend):
    # B = 3 directions in x1 and one (B = 1) in x2: the tangents broadcast over the batch
    rng = np.random.default_rng(12)
    xs = inputs(case, rng)
    if refusal(case, backend, xs) is not None:
        pytest.skip(f"{backend.name} refuses these shapes itself (checked in the finite-difference test)")
    v1 = np.stack([direction("any", xs[0], rng) for _ in range(3)])
    v2 = direction("any", xs[1], rng)
    a1 = ft.DualTensor(backend.asarray(xs[0]), backend.asarray(v1), batched=True)
    out = leaves(case.call(ft, a1, ft.DualTensor(backend.asarray(xs[1]), backend.asarray(v2))))
    for b in range(3):
        ref = reference(case, xs, [v1[b], v2])
        for o, r in zip(out, ref):
            check_close(to_numpy(o.tangent)[b], r, "float64", case.tol, case.id)
