"""No module of the package uses a private name of another (docs/architecture.md).

A leading-underscore name is a module's own business: its meaning may change with no one
else told. The sources are read with ``ast``. A module breaks the rule when it

- imports such a name from another package module (``from .jacobian import _seed``), or
- reads one as an attribute (``_core._make``, ``leaf._t``) that the package defines
  (a module-level name, or a method or attribute of a class) only in other modules.

A name the module defines itself (its own ``self._cache``) is its own, and so are dunder
names and private modules (``from . import _bdf``: the module is the unit, not a name in it).
"""

from __future__ import annotations

import ast
import pathlib

import fwdtensor

ROOT = pathlib.Path(fwdtensor.__file__).parent

# The core's internal API for duals, used above the core until the core's own refactor gives
# it public names (issue 14). Each entry is one piece of the dual that the transforms, rules
# and namespace must build or read on their hot paths without a public wrapper today.
ALLOWED = {
    "_make": "core/dual.py: the dual constructor without the public checks (callers pass checked parts)",
    "_t": "DualTensor's batched tangent (None: a symbolic zero); rules and transforms read it",
    "_B": "DualTensor's batch size (the number of directions)",
    "_bxp": "DualTensor's backend namespace of the innermost arrays",
    "_owned": "DualTensor's copy-on-write flag (whether its tangent may be written in place)",
    # Pending in core/dual.py, which a concurrent change owns: give these public names there.
    "_fused": "the slot of the fused kernels in core/dual.py, written only by core/hooks.py (the protocol)",
    "_link": "a view's link to its base, set by rules/indexing.py, followed by the dual's __setitem__",
    "_top_level": "core/dual.py: the highest-level dual among arrays; custom_jvp dispatches on it",
}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _modules() -> dict[str, pathlib.Path]:
    """Every source module of the package by its dotted name (a package by its own name)."""
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = ["fwdtensor", *path.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()
TREES = {m: ast.parse(p.read_text(encoding="utf-8"), str(p)) for m, p in MODULES.items()}


def _package(module: str) -> str:
    return module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]


def _resolve(module: str, node: ast.ImportFrom) -> str | None:
    """The package module an ``ImportFrom`` reads from (None: outside the package)."""
    if node.level:
        base = _package(module)
        for _ in range(node.level - 1):
            base = base.rpartition(".")[0]
        return f"{base}.{node.module}" if node.module else base
    return node.module if node.module and node.module.split(".")[0] == "fwdtensor" else None


def _defined(tree: ast.Module) -> tuple[set[str], set[str]]:
    """The private names a module defines: ``(module-level names, class members)``.

    Class members are methods, class attributes and ``self.x = ...`` anywhere in a method.
    """
    top: set[str] = set()
    for node in tree.body:
        for sub in ast.walk(node):
            if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                top.add(sub.name)
                break
            if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                top.add(sub.id)
            elif isinstance(sub, ast.alias):
                top.add(sub.asname or sub.name.split(".")[0])
    members: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    members.add(item.name)
                elif isinstance(item, (ast.Assign, ast.AnnAssign)):
                    for t in item.targets if isinstance(item, ast.Assign) else [item.target]:
                        if isinstance(t, ast.Name):
                            members.add(t.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            members.add(node.attr)
    return {n for n in top if _private(n)}, {n for n in members if _private(n)}


def _module_aliases(module: str, tree: ast.Module) -> set[str]:
    """The local names bound to package modules (``from ..core import dual as _core``)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = _resolve(module, node)
            for a in node.names:
                if source is not None and f"{source}.{a.name}" in MODULES:
                    out.add(a.asname or a.name)
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "fwdtensor":
                    out.add(a.asname or a.name.split(".")[0])
    return out


DEFINED = {m: _defined(t) for m, t in TREES.items()}


def violations() -> list[str]:
    """Every use of another module's private name, as ``path:line: what``."""
    tops: dict[str, set[str]] = {}
    members: dict[str, set[str]] = {}
    for m, (top, mem) in DEFINED.items():
        for n in top:
            tops.setdefault(n, set()).add(m)
        for n in mem:
            members.setdefault(n, set()).add(m)
    found = []
    for m, tree in TREES.items():
        where = MODULES[m].relative_to(ROOT.parent)
        own = DEFINED[m][0] | DEFINED[m][1]
        aliases = _module_aliases(m, tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                source = _resolve(m, node)
                if source is None or source == m:
                    continue
                for a in node.names:
                    if _private(a.name) and f"{source}.{a.name}" not in MODULES and a.name not in ALLOWED:
                        found.append(f"{where}:{node.lineno}: imports {a.name} from {source}")
            elif isinstance(node, ast.Attribute) and _private(node.attr) and node.attr not in ALLOWED:
                on_module = isinstance(node.value, ast.Name) and node.value.id in aliases
                owners = (tops if on_module else members).get(node.attr, set()) - {m}
                if owners and (on_module or node.attr not in own):
                    found.append(f"{where}:{node.lineno}: uses .{node.attr} of {', '.join(sorted(owners))}")
    return found


def test_no_private_name_of_another_module():
    found = violations()
    assert not found, "private names used across modules (make them public, or move them):\n" + "\n".join(
        found
    )


def test_the_check_sees_a_private_import_and_attribute():
    """The reader itself: a planted import and attribute use are found, a module's own are not."""
    planted = {
        "fwdtensor.transforms.planted_a": "def _helper():\n    pass\n",
        "fwdtensor.transforms.planted_b": (
            "from .planted_a import _helper\nfrom . import planted_a as a\na._helper\n"
            "self._own = 1\nself._own\n"
        ),
    }
    saved = dict(TREES), dict(DEFINED), dict(MODULES)
    try:
        for m, src in planted.items():
            TREES[m] = ast.parse(src)
            DEFINED[m] = _defined(TREES[m])
            MODULES[m] = ROOT / "transforms" / f"{m.rpartition('.')[2]}.py"
        got = [v for v in violations() if "planted_b" in v]
    finally:
        for d, old in zip((TREES, DEFINED, MODULES), saved):
            d.clear()
            d.update(old)
    assert any("imports _helper" in v for v in got) and any("uses ._helper" in v for v in got), got
    assert not any("_own" in v for v in got), got
