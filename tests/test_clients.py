"""Code written by others against the Array API differentiates when a DualTensor goes in:
functions of array-api-extra, SciPy (``SCIPY_ARRAY_API=1``) and scikit-learn
(``array_api_dispatch=True``) either match central finite differences of the same function on
NumPy arrays, or raise a clear error (never a silent zero or a wrong derivative).

The cases live in ``tests/client_battery.py``; it runs in one subprocess, so that
``SCIPY_ARRAY_API=1`` is set before SciPy is imported and never reaches the other tests.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

from tests import client_battery as cb

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "library-code.md"
_ENV_AT_IMPORT = os.environ.get("SCIPY_ARRAY_API")


def _battery(*flags: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "SCIPY_ARRAY_API"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "client_battery.py"), *flags],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def results() -> dict:
    return _battery()


def test_every_case_ran(results):
    assert sorted(results) == sorted(c.name for c in cb.CASES)


@pytest.mark.parametrize("c", cb.CASES, ids=[c.name for c in cb.CASES])
def test_client_function(c, results):
    r = results[c.name]
    if r["status"] == "skipped":
        pytest.skip(r["why"])
    assert r["status"] != "broken", f"the NumPy reference itself fails: {r['error']}"
    # never a silent zero or wrong derivative, whatever the expectation
    assert r["status"] in ("ok", "raises", "nan"), f"{c.name}: wrong derivative or value: {r}"
    if c.expect == cb.DIFF:
        assert r["status"] == "ok", f"{c.name} was expected to differentiate: {r}"
        assert r["fd_norm"] > 1e-3, "a case whose derivative is zero checks nothing"
    elif c.expect == cb.NAN:
        # visible, not silent: the tangent holds NaN where the reference is finite
        assert r["status"] == "nan", f"{c.name} was expected to give a NaN tangent: {r}"
        assert c.why
    else:
        assert r["status"] == "raises", f"{c.name} now differentiates: update its expectation ({r})"
        assert r["error_type"] == c.expect, r
        assert c.why, "an expected error needs its cause"
        if c.expect == "DerivativeLostError":
            assert "derivative would be lost" in r["error"] and "d.primal" in r["error"], r["error"]
        if c.expect == "ValueError" and "DerivativeLostError" in c.why:
            assert "DerivativeLostError" in r["chain"], r  # NumPy's error is chained from ours


def test_the_environment_does_not_leak(results):
    """The battery's ``SCIPY_ARRAY_API=1`` and scikit-learn's dispatch stay in its subprocess."""
    assert os.environ.get("SCIPY_ARRAY_API") == _ENV_AT_IMPORT
    if "sklearn" in sys.modules:
        assert sys.modules["sklearn"].get_config()["array_api_dispatch"] is False


def test_every_library_is_covered():
    counts = {lib: sum(c.library == lib for c in cb.CASES) for lib in (cb.XPX, cb.SP, cb.SK)}
    assert all(n >= 10 for n in counts.values()), counts


def test_the_docs_table_is_current():
    text = DOC.read_text()
    table = cb.markdown_table()
    assert table in text, "docs/library-code.md is stale: paste `python tests/client_battery.py --markdown`"


@pytest.mark.slow
def test_against_jax():
    """Where JAX runs a client function (``jax.jvp`` on JAX arrays), its tangent is fwdtensor's."""
    pytest.importorskip("jax", reason="JAX is the optional second reference")
    res = _battery("--jax")
    compared = {k: r for k, r in res.items() if r.get("jax") == "ok"}
    assert len(compared) >= 50, "JAX should run most of the cases that differentiate"
    bad = {k: r["jax_err"] for k, r in compared.items() if r["jax_err"] > 1e-7}
    assert not bad, bad
