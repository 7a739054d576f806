"""The namespace itself: what array_api_compat finds, dtype tokens on every backend, the
dtype and inspection functions, ``astype``, plain-array calls returning exactly the
backend's result, backend mixing errors, and the generated coverage page and stubs."""

from __future__ import annotations

import copy
import importlib.util
import math
import pickle
from pathlib import Path

import array_api_compat
import numpy as np
import pytest

import fwdtensor as ft
from fwdtensor.core import dtypes as _dtypes
from fwdtensor.core.dtypes import KINDS, NAMES
from fwdtensor.rules import ALL_RULES, UNSUPPORTED
from tests._util import assert_close, central_difference, is_constant, to_numpy

ROOT = Path(__file__).resolve().parent.parent


def _load_generator():
    spec = importlib.util.spec_from_file_location("gen_coverage", ROOT / "tools" / "gen_coverage.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


gen = _load_generator()


def names_of(backend):
    """The standard dtype names the backend has on its default device."""
    return [n for n in NAMES if n in backend.xp.__array_namespace_info__().dtypes()]


def dual(backend, x, v=None, dtype="float64"):
    return ft.DualTensor(backend.asarray(x, dtype), None if v is None else backend.asarray(v, dtype))


# --------------------------------------------------------------- the module
def test_array_namespace_of_a_dual_is_fwdtensor(backend):
    d = dual(backend, [1.0, 2.0], [1.0, 0.0])
    assert array_api_compat.array_namespace(d) is ft
    assert d.__array_namespace__() is ft
    assert array_api_compat.array_namespace(d, d * 2.0) is ft


def test_constants_and_version():
    assert ft.__array_api_version__ == "2025.12"
    assert (ft.e, ft.pi, ft.inf) == (math.e, math.pi, math.inf)
    assert math.isnan(ft.nan) and ft.newaxis is None


# ------------------------------------------------------------------- tokens
def test_tokens_equal_backend_dtypes_both_ways(backend):
    for name in names_of(backend):
        token, theirs = getattr(ft, name), backend.dtype(name)
        assert token == theirs and theirs == token, name
        assert not (token != theirs) and not (theirs != token), name
        other = "float32" if name != "float32" else "int8"
        assert token != backend.dtype(other) and backend.dtype(other) != token, name


def test_tokens_are_values():
    assert ft.float32 == ft.float32 and ft.float32 != ft.float64
    assert hash(ft.float32) == hash(np.dtype("float32"))
    assert {np.dtype("float64"): 1}[ft.float64] == 1
    assert repr(ft.float64) == "fwdtensor.float64"
    assert pickle.loads(pickle.dumps(ft.int16)) is ft.int16 and copy.deepcopy(ft.bool) is ft.bool
    assert ft.float32 != "float32" and ft.float32 != np.float64
    assert np.zeros(2, dtype=ft.float32).dtype == np.float32  # NumPy reads the token's .dtype


def test_dual_dtype_is_the_backends(backend):
    d = dual(backend, [1.0], [1.0], "float32")
    assert d.dtype == backend.dtype("float32")
    assert type(d.dtype) is type(d.primal.dtype) and type(d.dtype) is not _dtypes.DType
    assert d.dtype == ft.float32 and ft.float32 == d.dtype


def test_dtype_arguments_are_translated(backend):
    d = dual(backend, [1.0, 2.0], [1.0, 1.0])
    s = ft.sum(d, dtype=ft.float32)
    assert s.dtype == backend.dtype("float32")
    np.testing.assert_allclose(to_numpy(s.tangent), 2.0)
    assert ft.astype(d, ft.float32).dtype == backend.dtype("float32")
    assert ft.sum(d.primal, dtype=ft.float32).dtype == backend.dtype("float32")


# -------------------------------------------------------------- isdtype
def test_isdtype_matches_the_backend(backend):
    for name in names_of(backend):
        theirs = backend.dtype(name)
        for kind in KINDS:
            want = backend.xp.isdtype(theirs, kind)
            assert ft.isdtype(theirs, kind) == want, (name, kind)
            assert ft.isdtype(getattr(ft, name), kind) == want, (name, kind)
        assert ft.isdtype(theirs, getattr(ft, name)) and ft.isdtype(getattr(ft, name), theirs)
        assert ft.isdtype(theirs, ("bool", theirs))
    d = dual(backend, [1.0], [1.0], "float32")
    assert ft.isdtype(d, "real floating") and not ft.isdtype(d, ft.float64)


def test_isdtype_errors():
    with pytest.raises(ValueError, match="unknown dtype kind"):
        ft.isdtype(ft.float32, "floating")
    with pytest.raises(TypeError, match="dtype"):
        ft.isdtype("float32", "numeric")


# ---------------------------------------------------------- result_type
PAIRS = [
    ("float32", "float64"),
    ("int8", "int32"),
    ("float32", "complex64"),
    ("bool", "bool"),
    ("uint8", "int16"),
]


def test_result_type_matches_the_backend(backend):
    for a, b in PAIRS:
        want = backend.xp.result_type(backend.dtype(a), backend.dtype(b))
        got = ft.result_type(backend.dtype(a), backend.dtype(b))
        assert got == want and type(got) is type(want)
        mixed = ft.result_type(getattr(ft, a), backend.dtype(b))
        assert mixed == want and type(mixed) is type(want)  # a backend dtype picks the backend
        tokens = ft.result_type(getattr(ft, a), getattr(ft, b))
        assert tokens == want and type(tokens) is _dtypes.DType
    d = dual(backend, [1.0], [1.0], "float32")
    got = ft.result_type(d, ft.float64)
    want = backend.xp.result_type(d.primal, backend.dtype("float64"))
    assert got == want and type(got) is type(want)
    assert ft.result_type(d, 1.0) == backend.dtype("float32")  # Python scalars are weak


def test_can_cast_finfo_iinfo(backend):
    for a, b in PAIRS:
        want = backend.xp.can_cast(backend.dtype(a), backend.dtype(b))
        assert ft.can_cast(backend.dtype(a), backend.dtype(b)) == want
        assert ft.can_cast(getattr(ft, a), getattr(ft, b)) == want
    d = dual(backend, [1.0], [1.0], "float32")
    assert ft.can_cast(d, ft.float64) and not ft.can_cast(d, ft.int32)
    for x in (d, ft.float32, backend.dtype("float32")):
        fi = ft.finfo(x)
        assert fi.bits == 32 and fi.eps == np.finfo(np.float32).eps
        # a dual or backend dtype gets the backend's dtype (never torch's string); a token, a token
        assert fi.dtype == ft.float32 and not isinstance(fi.dtype, str)
        assert (fi.dtype is ft.float32) == (x is ft.float32)
    ii = ft.iinfo(ft.int16)
    assert (ii.min, ii.max, ii.bits) == (-(2**15), 2**15 - 1, 16)
    assert ft.iinfo(backend.asarray([1], "int8")).max == 127


def test_broadcast_shapes():
    import array_api_strict as strict

    for shapes in [((3, 1), (4,), ()), ((2, 1, 5), (3, 1)), ((),), ((0, 1), (1, 4))]:
        assert (
            ft.broadcast_shapes(*shapes) == strict.broadcast_shapes(*shapes) == np.broadcast_shapes(*shapes)
        )
    assert ft.broadcast_shapes((None, 1), (1, 3)) == (None, 3)
    with pytest.raises(ValueError, match="cannot be broadcast"):
        ft.broadcast_shapes((2, 3), (4,))


# ------------------------------------------------------------ inspection
def test_namespace_info_delegates_to_the_backend(backend):
    info = ft.__array_namespace_info__()
    np_info = array_api_compat.numpy.__array_namespace_info__()
    assert info.capabilities() == np_info.capabilities()
    assert info.default_device() == np_info.default_device()
    assert list(info.devices()) == list(np_info.devices())
    theirs = backend.xp.__array_namespace_info__()
    dev = theirs.default_device()
    got, want = info.default_dtypes(device=dev), theirs.default_dtypes(device=dev)
    assert got.keys() == want.keys() and all(got[k] == want[k] for k in want)
    for kind in (None, "real floating", ("bool", "integral")):
        got, want = info.dtypes(device=dev, kind=kind), theirs.dtypes(device=dev, kind=kind)
        assert got.keys() == want.keys() and all(got[k] == want[k] for k in want)
    assert all(type(v) is _dtypes.DType for v in got.values())  # tokens work everywhere


def test_namespace_info_for_a_device_without_float64():
    import array_api_strict as strict

    dtypes = ft.__array_namespace_info__().dtypes(device=strict.Device("no_float64"))
    assert "float64" not in dtypes and dtypes["float32"] == ft.float32


# ---------------------------------------------------------------- astype
@pytest.mark.parametrize(
    "src,dst", [("float64", "float32"), ("float32", "float64"), ("float64", "complex128")]
)
def test_astype_keeps_the_tangent(src, dst, backend):
    x, v = np.array([0.5, -1.5, 2.0]), np.array([1.0, 2.0, -3.0])
    out = ft.astype(dual(backend, x, v, src), getattr(ft, dst))
    assert out.dtype == backend.dtype(dst) and out.tangent.dtype == backend.dtype(dst)
    ref = central_difference(lambda a: a.astype(dst), [x], [v])
    assert_close(out.tangent, ref, "float32" if "float32" in (src, dst) else "float64", "astype")
    batched = ft.astype(
        ft.DualTensor(backend.asarray(x, src), backend.asarray(np.stack([v, 2 * v]), src), batched=True),
        getattr(ft, dst),
    )
    np.testing.assert_allclose(to_numpy(batched.tangent)[1], 2 * to_numpy(out.tangent), rtol=1e-6)


def test_astype_to_integer_drops_the_tangent(backend):
    out = ft.astype(dual(backend, [0.5, 2.5], [1.0, 1.0]), ft.int32)
    assert is_constant(out) and out.dtype == backend.dtype("int32")
    back = ft.astype(ft.DualTensor(backend.asarray([1, 2], "int64")), ft.float64)
    assert isinstance(back, ft.DualTensor) and np.all(to_numpy(back.tangent) == 0)


def test_astype_complex_to_real_matches_the_primal(backend):
    z = ft.DualTensor(
        backend.asarray([1 + 2j, -3j], "complex128"), backend.asarray([0.5 - 1j, 2 + 4j], "complex128")
    )
    if backend.name == "array_api_strict":  # the standard forbids the cast; strict refuses it
        with pytest.raises(TypeError, match="not be permitted"):
            ft.astype(z, ft.float64)
        return
    with pytest.warns(Warning):  # NumPy and torch warn that the imaginary part is dropped
        out = ft.astype(z, ft.float64)
    np.testing.assert_array_equal(to_numpy(out), [1.0, 0.0])
    np.testing.assert_array_equal(to_numpy(out.tangent), [0.5, 2.0])  # the real part, like the primal


def test_astype_in_a_transform():
    f = lambda x: ft.sum(ft.astype(x, ft.float32) * ft.astype(x, ft.float32))
    jac = ft.jacfwd(f)(np.array([1.0, 2.0]))
    np.testing.assert_allclose(to_numpy(jac), [2.0, 4.0], rtol=1e-6)


# --------------------------------------- plain arrays give constants of the namespace
PLAIN = [
    ("sin", lambda b: (b.asarray([0.5, 1.0]),), {}),
    ("add", lambda b: (b.asarray([0.5, 1.0]), 2.0), {}),
    ("less", lambda b: (b.asarray([0.5, 1.0]), b.asarray([1.0, 0.0])), {}),
    ("sum", lambda b: (b.asarray([[0.5, 1.0], [2.0, 3.0]]),), {"axis": 0}),
    ("matmul", lambda b: (b.asarray([[0.5, 1.0], [2.0, 3.0]]), b.asarray([1.0, 2.0])), {}),
    ("reshape", lambda b: (b.asarray([0.5, 1.0, 2.0, 3.0]), (2, 2)), {}),
    ("astype", lambda b: (b.asarray([0.5, 1.0]), "float32"), {}),
    ("zeros_like", lambda b: (b.asarray([0.5, 1.0]),), {}),
    ("full_like", lambda b: (b.asarray([0.5, 1.0]), 3.0), {}),
    ("meshgrid", lambda b: (b.asarray([0.5, 1.0]), b.asarray([1.0, 2.0, 3.0])), {}),
    ("asarray", lambda b: (b.asarray([0.5, 1.0]),), {}),
    ("result_type", lambda b: (b.asarray([0.5, 1.0], "float32"), b.asarray([1.0])), {}),
]


@pytest.mark.parametrize("name,make,kw", PLAIN, ids=[p[0] for p in PLAIN])
def test_plain_arrays_give_constants_holding_the_backends_result(name, make, kw, backend):
    args = make(backend)
    ours = [getattr(ft, a) if isinstance(a, str) else a for a in args]
    theirs = [backend.dtype(a) if isinstance(a, str) else a for a in args]
    got = getattr(ft, name)(*ours, **kw)
    want = getattr(backend.xp, name)(*theirs, **kw)
    if isinstance(want, (list, tuple)):
        assert len(got) == len(want)
        got, want = got[0], want[0]
    if array_api_compat.is_array_api_obj(want):
        assert is_constant(got) and type(got.primal) is type(want), name
        assert got.dtype == want.dtype and tuple(got.shape) == tuple(want.shape)
        np.testing.assert_array_equal(to_numpy(got), to_numpy(want))
    else:
        assert got == want


# ---------------------------------------------------------- mixing backends
def test_mixing_backends_names_both():
    torch = pytest.importorskip("torch", reason="needs PyTorch to mix with NumPy")
    d = ft.DualTensor(np.array([1.0, 2.0]), np.array([1.0, 1.0]))
    t = torch.tensor([1.0, 2.0], dtype=torch.float64)
    calls = [
        lambda: ft.add(d, t),
        lambda: d * t,
        lambda: ft.matmul(d, t),
        lambda: ft.full_like(t, ft.DualTensor(np.array(1.0), np.array(1.0))),
        lambda: ft.result_type(d, t),
    ]
    for call in calls:
        with pytest.raises(ft.BackendMismatchError) as err:
            call()
        msg = str(err.value)
        assert "numpy" in msg and "torch" in msg, msg


# --------------------------------------------------------------- coverage
def test_coverage_page_and_stubs_are_current():
    bad = gen.stale()
    assert not bad, f"regenerate with `python tools/gen_coverage.py`: stale {bad}"


def test_every_function_of_the_standard_is_covered_or_unsupported():
    gaps = gen.missing()
    assert not gaps, (
        f"{len(gaps)} functions of the standard have no rule and no reason in UNSUPPORTED: {gaps}"
    )


def test_rule_names_are_the_standards_and_not_also_unsupported():
    std = {gen._full(p, n) for p, names in gen.standard_names().items() for n in names}
    own = tuple(f"{ext}." for ext in gen.OWN_EXTENSIONS)  # fwdtensor's extensions (special)
    rules = {r.name for r in ALL_RULES if not r.name.startswith(own)}
    assert sorted(rules - std) == [], "rules for names outside the standard"
    assert sorted(rules & set(UNSUPPORTED)) == [], "names with a rule must not be listed as unsupported"
    assert sorted(set(UNSUPPORTED) - std) == [], "unsupported names outside the standard"
    assert all(UNSUPPORTED.values()), "every unsupported name needs a reason"


def test_namespace_exposes_every_rule():
    for r in ALL_RULES:
        where = ft
        if "." in r.name:
            ext, name = r.name.split(".")
            where = getattr(ft, ext)
        else:
            name = r.name
        assert getattr(where, name).rule is r, r.name


def test_coverage_page_lists_statuses():
    text = gen.coverage_markdown()
    assert "| `sin` | differentiable |" in text
    assert "| `floor` | zero derivative |" in text
    assert "| `argmax` |" in text and "| `linalg.solve` |" in text and "| `fft.fft` |" in text
    assert "| `special.erf` | differentiable |" in text
    assert "| `abs` | differentiable | slope 0 at 0 (JAX)" in text  # the rule's note
