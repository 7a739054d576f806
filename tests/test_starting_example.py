"""The starting example reproduces its published numbers both ways (textbook and batched)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "scalar_dual.py"


def _load():
    spec = importlib.util.spec_from_file_location("scalar_dual", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("way", ["textbook", "batched"])
def test_values_and_partials(way):
    value, d1, d2 = getattr(_load(), way)()
    assert f"{value:.4f}" == "11.6521"
    assert f"{d1:.4f}" == "5.5000"
    assert f"{d2:.4f}" == "1.7163"


def test_script_prints_both(capsys):
    _load().main()
    out = capsys.readouterr().out
    assert out.count("11.6521") == 3 and out.count("5.5000") == 3 and out.count("1.7163") == 3
