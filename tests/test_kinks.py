"""The page of derivatives at kinks (docs/kinks.md): current, and true to its convention.

``tools/gen_kinks.py`` computes every row from the rules; this checks that each value
fwdtensor gives equals the convention written next to it, and that the page is what the
generator writes now (the JAX column only where the JAX it names is installed).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("gen_kinks", ROOT / "tools" / "gen_kinks.py")
gen = importlib.util.module_from_spec(_spec)
sys.modules["gen_kinks"] = gen  # dataclasses look their module up while it loads
_spec.loader.exec_module(gen)


@pytest.mark.parametrize("point", gen.POINTS, ids=[gen._label(p) for p in gen.POINTS])
def test_value_follows_the_documented_convention(point):
    got = gen.fwdtensor_value(point)
    assert gen._same(got, point.want), (
        f"{gen._label(point)}: fwdtensor gives {got}, the convention says {point.want}"
    )


def _column(text: str, k: int) -> list[str]:
    rows = [r for r in text.splitlines() if r.startswith("| `")]
    return [r.split(" | ")[k].strip() for r in rows]


def test_page_is_current():
    page = gen.PAGE.read_text()
    installed = gen._jax_available()
    if installed == gen.JAX_VERSION:
        assert gen.render() == page, "regenerate with `python tools/gen_kinks.py`"
        return
    # Without that JAX, the fwdtensor column (and the rows) must still be current.
    fresh = gen.render(with_jax=False)
    assert _column(fresh, 0) == _column(page, 0), "regenerate with `python tools/gen_kinks.py`"
    assert _column(fresh, 1) == _column(page, 1), "regenerate with `python tools/gen_kinks.py`"


def test_every_difference_from_jax_is_explained():
    if gen._jax_available() != gen.JAX_VERSION:
        pytest.skip(f"JAX {gen.JAX_VERSION} is not installed (the page's JAX column comes from it)")
    for row in gen.PAGE.read_text().splitlines():
        if row.startswith("| `"):
            label, ours, theirs, why = (c.strip() for c in row.strip().strip("|").split("|"))
            if theirs != "n/a" and ours != theirs:
                assert why, f"{label}: fwdtensor {ours}, JAX {theirs}, and no reason given"
