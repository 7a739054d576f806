"""The namespace's functions have, and enforce, the Array API standard's signatures.

The table ``fwdtensor/namespace/signatures.py`` is generated from the standard's stubs by
``tools/gen_signatures.py``; these tests check that it is current (where the standard's
repository is on this machine), that every function of ``ft``, ``ft.linalg`` and ``ft.fft``
shows exactly its entry, that Python enforces it (keyword-only, positional-only), and that
``finfo``/``iinfo`` answer in Python numbers.
"""

from __future__ import annotations

import importlib.util
import inspect
import zlib
from pathlib import Path

import numpy as np
import pytest

import fwdtensor as ft
from fwdtensor.core.dtypes import NAMES
from fwdtensor.namespace.signatures import API_VERSION, SIGNATURES
from fwdtensor.rules import UNSUPPORTED
from tests._util import assert_close, to_numpy

ROOT = Path(__file__).resolve().parent.parent


def _load_tool():
    spec = importlib.util.spec_from_file_location("gen_signatures", ROOT / "tools" / "gen_signatures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


tool = _load_tool()


def _namespace_function(name: str):
    module, _, short = name.rpartition(".")
    return getattr(getattr(ft, module) if module else ft, short, None)


def _expected(params: str) -> inspect.Signature:
    """The signature the table's parameter list spells, read by Python itself."""
    scope: dict = {}
    exec(f"def f({params}): pass", scope)
    return inspect.signature(scope["f"])


def _shape(sig: inspect.Signature) -> list[tuple]:
    return [(p.name, p.kind, p.default) for p in sig.parameters.values()]


def test_table_is_current():
    repo = tool.repo_path()
    if not repo.exists():
        pytest.skip(f"the standard's repository is not at {repo} (set ARRAY_API_REPO to a checkout)")
    text = tool.generate(repo)
    current = (ROOT / "fwdtensor" / "namespace" / "signatures.py").read_text()
    assert current == text, "regenerate with `python tools/gen_signatures.py`"


def test_table_covers_the_standard():
    assert API_VERSION == ft.__array_api_version__
    for name in ("sum", "linalg.solve", "fft.fft", "meshgrid", "astype", "finfo"):
        assert name in SIGNATURES
    assert SIGNATURES["sum"] == "x, /, *, axis=None, dtype=None, keepdims=False"


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_every_function_has_the_standard_signature(name):
    fn = _namespace_function(name)
    if fn is None:
        assert name in UNSUPPORTED, f"{name} is neither in the namespace nor in rules/unsupported.py"
        return
    assert _shape(inspect.signature(fn)) == _shape(_expected(SIGNATURES[name]))


def test_signature_shows_in_help_text():
    assert str(inspect.signature(ft.sum)) == "(x, /, *, axis=None, dtype=None, keepdims=False)"
    assert str(inspect.signature(ft.meshgrid)) == "(*arrays, indexing='xy')"
    assert str(inspect.signature(ft.linalg.matrix_norm)) == "(x, /, *, keepdims=False, ord='fro')"


def _guarded() -> list[str]:
    """Functions with keyword-only parameters and no ``*args``: a surplus positional must fail."""
    out = []
    for name, params in SIGNATURES.items():
        fn = _namespace_function(name)
        kinds = [p.kind for p in _expected(params).parameters.values()]
        if fn is not None and inspect.Parameter.KEYWORD_ONLY in kinds:
            if inspect.Parameter.VAR_POSITIONAL not in kinds:
                out.append(name)
    return sorted(out)


@pytest.mark.parametrize("name", _guarded())
def test_keyword_only_parameters_refuse_positions(name):
    fn = _namespace_function(name)
    sig = _expected(SIGNATURES[name])
    positional = [
        p for p in sig.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    first_keyword = next(p.name for p in sig.parameters.values() if p.kind is p.KEYWORD_ONLY)
    x = ft.asarray(np.ones((2, 2)))
    # the refusal comes before any argument is looked at, so placeholders do
    with pytest.raises(TypeError) as info:
        fn(*[x] * len(positional), 0)
    if "function" not in getattr(getattr(fn, "rule", None), "meta", {}):  # generated: names the parameter
        assert f"{first_keyword} is keyword-only" in str(info.value)


def test_sum_enforces_and_computes(backend):
    rng = np.random.default_rng(zlib.crc32(b"test_sum_enforces_and_computes"))
    p, t = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    d = ft.DualTensor(backend.asarray(p), backend.asarray(t))
    with pytest.raises(TypeError, match="axis is keyword-only"):
        ft.sum(d, 0)
    with pytest.raises(TypeError, match="positional-only"):
        ft.sum(x=d)
    out = ft.sum(d, axis=0, keepdims=True)
    assert_close(to_numpy(out.primal), p.sum(axis=0, keepdims=True), "float64")
    assert_close(to_numpy(out.tangent), t.sum(axis=0, keepdims=True), "float64")
    full = ft.full((2,), 3.0, dtype=ft.float32, device=None)
    assert to_numpy(full.primal).dtype == np.float32
    with pytest.raises(TypeError, match="dtype is keyword-only"):
        ft.full((2,), 3.0, ft.float32)
    assert to_numpy(ft.eye(2, 3, k=1).primal).tolist() == np.eye(2, 3, k=1).tolist()


def test_pos_or_keyword_parameters_take_both():
    x = ft.asarray(np.arange(5.0))
    by_position, by_keyword = ft.clip(x, 1.0, 3.0), ft.clip(x, min=1.0, max=3.0)
    assert to_numpy(by_position.primal).tolist() == to_numpy(by_keyword.primal).tolist() == [1, 1, 2, 3, 3]
    assert to_numpy(ft.arange(1, 7, 2).primal).tolist() == [1, 3, 5]


def test_dlpack_signature():
    sig = inspect.signature(ft.DualTensor.__dlpack__)
    assert [n for n, p in sig.parameters.items() if p.kind is p.KEYWORD_ONLY] == [
        "stream", "max_version", "dl_device", "copy",
    ]  # fmt: skip
    c = ft.asarray(np.arange(3.0))
    assert np.from_dlpack(c).tolist() == [0.0, 1.0, 2.0]


def test_finfo_iinfo_fields_are_python_numbers(backend):
    have = backend.xp.__array_namespace_info__().dtypes()
    for name in NAMES:
        if name not in have or name == "bool":
            continue
        for arg in (getattr(ft, name), backend.dtype(name), backend.asarray([1], name)):
            if "float" in name or "complex" in name:
                fi = ft.finfo(arg)
                for field in ("eps", "max", "min", "smallest_normal"):
                    assert type(getattr(fi, field)) is float, (name, field)
                ref = np.finfo(name)
                assert type(fi.bits) is int and fi.bits == ref.bits
                assert fi.eps == float(ref.eps) and fi.max == float(ref.max)
                assert fi.dtype == getattr(ft, "float32" if ref.bits == 32 else "float64")
            else:
                ii = ft.iinfo(arg)
                for field in ("bits", "max", "min"):
                    assert type(getattr(ii, field)) is int, (name, field)
                ref = np.iinfo(name)
                assert (ii.bits, ii.max, ii.min) == (ref.bits, int(ref.max), int(ref.min))
                assert ii.dtype == getattr(ft, name)
