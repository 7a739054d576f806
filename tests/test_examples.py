"""Every script in examples/ runs to the end, reports agreement, and writes its plots
(into a temporary folder: each script is run from there)."""

from __future__ import annotations

import importlib.util
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCRIPTS = sorted(p for p in (ROOT / "examples").glob("*.py") if not p.name.startswith("_"))
# The plots each example writes when matplotlib is installed.
PLOTS = {
    "lotka_volterra.py": ["lotka_volterra_sensitivity.png", "lotka_volterra_heatmap.png"],
    "sir_epidemic.py": ["sir_sensitivity.png"],
    "heat_equation.py": ["heat_equation_sensitivity.png"],
}
HAS_MPL = importlib.util.find_spec("matplotlib") is not None


def test_examples_exist():
    names = {p.name for p in SCRIPTS}
    mine = {
        "lotka_volterra.py",
        "sir_epidemic.py",
        "heat_equation.py",
        "newton_solver.py",
        "sparse_pde_jacobian.py",
    }
    assert {"scalar_dual.py", *mine} <= names


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_example_runs(script, tmp_path):
    env = {
        **os.environ,
        "MPLBACKEND": "Agg",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, f"{script.name} failed:\n{proc.stdout}\n{proc.stderr}"
    assert "FAILED" not in proc.stdout and "Traceback" not in proc.stderr
    if script.name != "scalar_dual.py":  # every other example checks itself and prints the agreement
        assert "agreement" in proc.stdout.lower() or "difference" in proc.stdout.lower(), proc.stdout
    for name in PLOTS.get(script.name, []) if HAS_MPL else []:
        assert (tmp_path / "out" / name).stat().st_size > 5000, f"{script.name} did not write {name}"
