"""The package as users meet it: version, license and citation agree; dicts keep their order."""

from __future__ import annotations

import importlib.metadata
import pathlib
import re

import numpy as np

import fwdtensor as ft

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_version_is_the_distributions():
    assert ft.__version__ == importlib.metadata.version("fwdtensor")


def test_license_and_citation_match_pyproject():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^license = "MIT"$', pyproject, re.M)
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    version = re.search(r'^version = "([^"]+)"$', pyproject, re.M).group(1)
    cff = (ROOT / "CITATION.cff").read_text()
    assert re.search(rf"^version: {re.escape(version)}$", cff, re.M), "CITATION.cff names another version"
    assert "## [Unreleased]" in (ROOT / "CHANGELOG.md").read_text()


def test_output_dicts_keep_insertion_order():
    def f(d):
        return {"z": d["b"] * 2.0, "a": d["a"] + 0.0, "m": d["b"] - d["a"]}

    x = {"b": np.ones(2), "a": np.arange(2.0)}
    y, dy = ft.jvp(f, (x,), (x,))
    assert list(y) == list(dy) == ["z", "a", "m"]
    J = ft.jacfwd(f)(x)
    assert list(J) == ["z", "a", "m"]
    assert list(J["z"]) == ["b", "a"]  # the input's order too
    np.testing.assert_array_equal(J["m"]["a"], -np.eye(2))
