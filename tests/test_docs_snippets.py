"""Every Python snippet in the docs runs: the blocks of a page run in order in one namespace.

A block that cannot run here (it needs a GPU, a cluster, or only shows a signature) is
preceded by a line ``<!-- norun: why -->``; the reason is printed when it is skipped.
"""

from __future__ import annotations

import os
import pathlib
import re

import pytest

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"
_BLOCK = re.compile(r"(?:<!-- norun: (?P<why>[^>]*?) -->\s*\n)?```python\n(?P<code>.*?)```", re.S)


def _pages() -> list[pathlib.Path]:
    return sorted(p for p in DOCS.rglob("*.md") if "```python" in p.read_text())


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(DOCS)))
def test_snippets_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # snippets that write files write them here
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict = {"__name__": "__docs__"}
    skipped = []
    for i, m in enumerate(_BLOCK.finditer(page.read_text())):
        if m.group("why"):
            skipped.append(m.group("why"))
            continue
        code = m.group("code")
        try:
            exec(compile(code, f"{page.name}[block {i}]", "exec"), namespace)
        except ImportError as exc:  # an optional dependency: say which
            if "not installed" not in str(exc) and not isinstance(exc, ModuleNotFoundError):
                raise
            pytest.skip(f"{page.name} block {i} needs an optional dependency: {exc}")
        except Exception as exc:
            raise AssertionError(f"{page.name}, block {i} fails:\n{code}") from exc
    if skipped and os.environ.get("CI"):
        print(f"{page.name}: blocks not run: {skipped}")
