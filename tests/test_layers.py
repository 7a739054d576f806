"""The package is a stack of layers: each module imports only its own layer and those below,
and no import cycle exists inside the package (docs/architecture.md states the rule).

The imports are read from the source with ``ast``: absolute and relative ones, at module
level and inside functions, ``if TYPE_CHECKING:`` blocks included.
"""

from __future__ import annotations

import ast
import pathlib

import fwdtensor

ROOT = pathlib.Path(fwdtensor.__file__).parent

# Lowest first. A module may import its own layer and the layers before it, never a later one.
LAYERS = ("core", "rules", "namespace", "fuse", "transforms", "api", "science", "cli")

# Module path -> layer. ``name.*`` covers a package and everything in it; a plain name covers
# that module only. The most specific entry wins. A module that no entry covers fails the test:
# a new file gets its row here.
TABLE = {
    "fwdtensor.core.*": "core",  # DualTensor, dispatch, hooks, levels, batch axis, backends, dtypes, errors
    "fwdtensor.rules.*": "rules",  # the rule tables, their forms and markers
    "fwdtensor.namespace.*": "namespace",  # the namespace built from the rules
    "fwdtensor.linalg": "namespace",  # the extension namespaces
    "fwdtensor.fft": "namespace",
    "fwdtensor.special": "namespace",
    "fwdtensor.fuse.*": "fuse",  # trace -> codegen -> launch; per-rule fused kernels
    "fwdtensor.transforms.*": "transforms",  # jvp, jacfwd, custom_jvp, progress, sparse/, parallel/
    "fwdtensor": "api",  # the package's __init__: the public names, and the wiring of the hooks
    "fwdtensor._namespace_functions": "api",  # the stub naming the functions __init__ generates
    "fwdtensor.ode": "science",
    "fwdtensor.ode.*": "science",  # the solvers: explicit in __init__, implicit ones beside it
    "fwdtensor.sensitivity": "science",
    "fwdtensor.plotting": "science",
    "fwdtensor.cli": "cli",
    "fwdtensor.__main__": "cli",
}


def _modules() -> dict[str, pathlib.Path]:
    """Every module of the package by its dotted name (a package by its own name)."""
    out = {}
    # A stub without a .py beside it is a module for the type checker (``_namespace_functions.pyi``).
    stubs = [p for p in ROOT.rglob("*.pyi") if not p.with_suffix(".py").exists()]
    for path in sorted([*ROOT.rglob("*.py"), *stubs]):
        parts = ["fwdtensor", *path.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def layer_of(module: str) -> str | None:
    """The layer of ``module`` from TABLE (None: no entry covers it)."""
    best, best_len = None, -1
    for key, layer in TABLE.items():
        name = key.removesuffix(".*")
        covers = module == name or (key.endswith(".*") and module.startswith(name + "."))
        if covers and len(name) > best_len:
            best, best_len = layer, len(name)
    return best


def _target(base: str, name: str | None) -> str:
    """The module an import names: ``base.name`` where that is a module, else ``base``."""
    if name is not None and f"{base}.{name}" in MODULES:
        return f"{base}.{name}"
    return base


def imports_of(module: str) -> set[str]:
    """The package modules that ``module`` imports, anywhere in its source."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                if node.module:
                    base = f"{base}.{node.module}"
            else:
                base = node.module or ""
            out.update(_target(base, a.name) for a in node.names)
    return {m for m in out if m == "fwdtensor" or m.startswith("fwdtensor.")}


GRAPH = {m: imports_of(m) for m in MODULES}


def test_every_module_has_a_layer():
    unknown = sorted(m for m in MODULES if layer_of(m) is None)
    assert not unknown, f"modules without a layer (add a row to TABLE in tests/test_layers.py): {unknown}"


def test_every_import_names_a_module_of_the_package():
    missing = sorted((m, t) for m, ts in GRAPH.items() for t in ts if t not in MODULES)
    assert not missing, f"imports of modules that do not exist: {missing}"


def test_no_import_of_a_higher_layer():
    bad = []
    for module, targets in GRAPH.items():
        rank = LAYERS.index(layer_of(module))
        for target in sorted(targets):
            if target in MODULES and LAYERS.index(layer_of(target)) > rank:
                bad.append(f"{module} ({layer_of(module)}) imports {target} ({layer_of(target)})")
    assert not bad, "lower layers import higher ones:\n" + "\n".join(bad)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module, or with a self-import."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan; the package is small, recursion depth is its size at most
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.get(v, ()):
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle():
    cycles = _cycles(GRAPH)
    assert not cycles, f"import cycles inside the package: {cycles}"


def test_the_checker_sees_cycles_and_upward_imports():
    # The checks above could pass by reading nothing: show that they do find what they look for.
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
    assert "fwdtensor.core.backend" in GRAPH["fwdtensor.core.dual"]
    assert "fwdtensor.transforms.sparse.detect" in GRAPH["fwdtensor.transforms.custom"]  # inside functions
    assert layer_of("fwdtensor.core.dual") == "core" and layer_of("fwdtensor.newthing") is None
    assert layer_of("fwdtensor") == "api" and layer_of("fwdtensor.transforms.sparse.jacobian") == "transforms"
