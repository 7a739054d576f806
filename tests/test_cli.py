"""The command line: help on every command, exit codes, info without importing missing
backends, the demo on every backend (its numbers are the starting example's), bench."""

from __future__ import annotations

import importlib.util
import json
import pathlib
import subprocess
import sys

import pytest

from fwdtensor import cli as _cli
from fwdtensor.__main__ import main

ROOT = pathlib.Path(__file__).resolve().parent.parent


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("argv", [["--help"], ["info", "--help"], ["demo", "--help"], ["bench", "--help"]])
def test_help_on_every_command(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    assert "usage: fwdtensor" in capsys.readouterr().out


def test_no_command_prints_help(capsys):
    code, out, _ = run(capsys)
    assert code == 0 and "info" in out and "demo" in out and "bench" in out


@pytest.mark.parametrize(
    "argv,message",
    [
        (["frobnicate"], "invalid choice"),
        (["demo", "--backend", "jax"], "invalid choice"),
        (["bench", "--repeat", "x"], "invalid int value"),
    ],
)
def test_bad_command_line_exits_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    import fwdtensor

    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"fwdtensor {fwdtensor.__version__}"


def test_info_lists_backends(capsys):
    code, out, _ = run(capsys, "info")
    assert code == 0 and out.startswith("fwdtensor ")
    assert "numpy" in out and "[default]" in out and "array_api_strict" in out
    if importlib.util.find_spec("cupy") is None:
        assert "cupy               not installed" in out


def test_info_json(capsys):
    code, out, _ = run(capsys, "info", "--json")
    data = json.loads(out)
    assert code == 0 and data["default_backend"] == "numpy"
    assert data["backends"]["numpy"]["devices"] == ["cpu"]
    assert data["backends"]["cupy"]["installed"] == (importlib.util.find_spec("cupy") is not None)


def test_info_does_not_import_missing_backends(monkeypatch):
    # a backend that find_spec does not find is reported as missing and never imported
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a)
    )
    monkeypatch.setitem(sys.modules, "torch", None)  # importing it now would raise ImportError
    data = _cli.gather_info()
    assert data["backends"]["torch"] == {
        "installed": False,
        "version": None,
        "install": "CPU build: pip install torch --index-url https://download.pytorch.org/whl/cpu",
    }


def _example_numbers():
    spec = importlib.util.spec_from_file_location("scalar_dual", ROOT / "examples" / "scalar_dual.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.textbook(), mod.batched()


def test_demo_matches_the_starting_example(capsys):
    code, out, _ = run(capsys, "demo")
    assert code == 0 and "all checks agree" in out and "FAILED" not in out
    textbook, batched = _example_numbers()
    assert f"{textbook[0]:9.4f} {textbook[1]:9.4f} {textbook[2]:9.4f}" in out  # 11.6521 5.5000 1.7163
    assert f"{batched[0]:9.4f} {batched[1]:9.4f} {batched[2]:9.4f}" in out
    assert "ranking by largest" in out and "N0" in out


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_demo_on_every_backend(backend, dtype, capsys):
    code, out, _ = run(capsys, "demo", "--backend", backend.name, "--dtype", dtype)
    assert code == 0 and out.count("(ok,") == 3, out


def test_demo_reports_a_failed_check(monkeypatch, capsys):
    monkeypatch.setattr(_cli, "_demo_scalar", lambda xp, dtype: ([("wrong", 0.0, 0.0, 0.0)] * 3, 1.0))
    code, out, _ = run(capsys, "demo")
    assert code == 1 and "SOME CHECKS FAILED" in out


def test_unavailable_backend_exits_1(monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "cupy" else real(name, *a)
    )
    code, out, err = run(capsys, "demo", "--backend", "cupy")
    assert code == 1 and out == ""
    assert "fwdtensor demo: error: backend 'cupy' is not installed: pip install cupy-cuda12x" in err


def test_bench_quick_with_json(tmp_path, capsys):
    path = tmp_path / "bench.json"
    code, out, err = run(capsys, "bench", "--quick", "--repeat", "1", "--json", str(path))
    assert code == 0 and "ratio" in out and "[3/3]" in err  # progress on stderr, table on stdout
    data = json.loads(path.read_text())
    assert data["backend"] == "numpy" and len(data["cases"]) == 3
    assert all(c["fwdtensor_s"] > 0 and c["baseline_s"] > 0 for c in data["cases"])


def test_bench_json_to_stdout_only(capsys):
    code, out, err = run(capsys, "bench", "--quick", "--repeat", "1", "--json", "-")
    assert code == 0 and json.loads(out)["repeat"] == 1 and err == ""


def test_bench_rejects_zero_repeats(capsys):
    code, _, err = run(capsys, "bench", "--repeat", "0")
    assert code == 1 and "--repeat must be at least 1" in err


def test_progress_on_a_terminal():
    class Tty:
        def __init__(self):
            self.text = ""

        def isatty(self):
            return True

        def write(self, s):
            self.text += s

        def flush(self):
            pass

    tty = Tty()
    p = _cli.Progress(2, tty)
    p.start("one")
    p.finish("one", 0.1)
    p.start("two")
    p.finish("two", 0.1)
    assert "\r[##########          ] 1/2 one" in tty.text and tty.text.endswith("\n")


def test_python_dash_m_and_exit_code():
    out = subprocess.run(
        [sys.executable, "-m", "fwdtensor", "demo"], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert out.returncode == 0 and "11.6521" in out.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "fwdtensor", "nope"], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
