"""Devices, tested on a CPU with array-api-strict's fake devices and torch's ``meta`` device.

Results stay on their inputs' device; ``to_device`` moves primal and tangent together;
mixing devices is an error that names both; seeds of ``jvp``/``jacfwd`` are built on the
input's device; a device without float64 works in float32; and nothing in the
differentiation machinery converts device data to the host (checked by reading the source
and by running everything with host conversions made to fail). Importing fwdtensor never
imports a GPU library.
"""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import array_api_compat
import array_api_strict as xps
import numpy as np
import pytest

import fwdtensor as ft
from fwdtensor.core import errors as _errors
from fwdtensor.rules import elementwise
from tests._util import sample, to_numpy
from tests.test_cross_backend import JACOBIAN_PROGRAMS, PROGRAMS, Program, _missing

CPU = xps.Device()
D1, D2 = xps.Device("device1"), xps.Device("device2")
NO64 = xps.Device("no_float64")  # like Apple's MPS: no float64 at all, float32 by default
ROOT = pathlib.Path(ft.__file__).parent

# (device, dtype) pairs every device test runs on; device2 defaults to float32 like torch.
PLACES = [
    pytest.param(D1, "float64", id="device1-float64"),
    pytest.param(D2, "float64", id="device2-float64"),
    pytest.param(D1, "float32", id="device1-float32"),
    pytest.param(NO64, "float32", id="no_float64-float32"),
]
ELEMENTWISE = [
    r
    for r in elementwise.RULES
    if r.kind in ("diff", "zero")
    and r.dtypes in ("float", "real")
    and r.form in ("unary", "binary", "general")
]


# ------------------------------------------------------------------ helpers
@pytest.fixture(autouse=True)
def no_host(monkeypatch):
    """Make every host conversion of an array-api-strict array off the CPU device fail."""
    Array = type(xps.asarray(0.0))

    def guarded(name):
        original = getattr(Array, name)

        def method(self, *args, **kwargs):
            if self.device != CPU:
                raise AssertionError(f"{name} called on an array on {self.device}: data went to the host")
            return original(self, *args, **kwargs)

        return method

    for name in (
        "__bool__",
        "__float__",
        "__int__",
        "__complex__",
        "__index__",
        "__array__",
        "__buffer__",
        "__dlpack__",
    ):
        if hasattr(Array, name):
            monkeypatch.setattr(Array, name, guarded(name))


def on(a, device):
    return None if a is None else xps.asarray(np.asarray(a), device=device)


def host(a) -> np.ndarray:
    """A strict array or dual on any device as NumPy (through the CPU device)."""
    if isinstance(a, ft.DualTensor):
        a = a.primal
    return to_numpy(a.to_device(CPU))


def assert_on(a, device) -> None:
    if isinstance(a, ft.DualTensor):
        assert a.device == device, f"primal on {a.device}, expected {device}"
        if a._t is not None:
            assert a._t.device == device, f"tangent on {a._t.device}, expected {device}"
        return
    assert a.device == device, f"result on {a.device}, expected {device}"


def _leaves(tree) -> list:
    if isinstance(tree, (tuple, list)):
        return [leaf for sub in tree for leaf in _leaves(sub)]
    return [tree]


def _skip_missing(prog: Program) -> None:
    missing = _missing(prog.needs)
    if missing:
        pytest.skip(f"fwdtensor has no {', '.join(missing)} yet")


def test_host_guard_works():
    with pytest.raises(AssertionError, match="went to the host"):
        float(xps.asarray(1.0, device=D1))
    with pytest.raises(AssertionError, match="went to the host"):
        bool(xps.asarray(True, device=NO64))
    assert float(xps.asarray(1.0)) == 1.0  # the CPU device is left alone


# ------------------------------------------------------------------ results stay on the device
def _rule_inputs(rule, dtype, rng):
    n = 1 if rule.form == "unary" else (3 if rule.name == "clip" else 2)
    xs = [sample(rule.domain, (2, 3), dtype, rng, arg=i) for i in range(n)]
    if rule.name == "clip":  # min below max
        xs[1], xs[2] = np.minimum(xs[1], xs[2]) - 0.5, np.maximum(xs[1], xs[2]) + 0.5
    vs = [sample("real", (2, 2, 3), dtype, rng) for _ in range(n)]
    return xs, vs


@pytest.mark.parametrize("device,dtype", PLACES)
@pytest.mark.parametrize("rule", ELEMENTWISE, ids=lambda r: r.name)
def test_elementwise_rule_stays_on_device(rule, device, dtype):
    rng = np.random.default_rng(3)
    xs, vs = _rule_inputs(rule, dtype, rng)
    f = getattr(ft, rule.name)
    got = f(*[ft.DualTensor(on(x, device), on(v, device), batched=True) for x, v in zip(xs, vs)])
    want = f(*[ft.DualTensor(on(x, CPU), on(v, CPU), batched=True) for x, v in zip(xs, vs)])
    assert_on(got, device)
    assert got.dtype == want.dtype == getattr(xps, dtype)
    np.testing.assert_array_equal(host(got), host(want))
    np.testing.assert_array_equal(host(got.tangent), host(want.tangent))


@pytest.mark.parametrize("device,dtype", PLACES)
def test_python_scalars_and_constants_stay_on_device(device, dtype):
    rng = np.random.default_rng(5)
    x = ft.DualTensor(on(sample("positive", (4,), dtype, rng), device), 1.0 * on(np.ones(4, dtype), device))
    c = on(sample("real", (4,), dtype, rng), device)
    outs = [x * 2.0, 2.0 / x, x**2, 3.0 - x, ft.pow(x, 0.5), ft.multiply(c, x), ft.add(x, c), x[1:], -x]
    for y in outs:
        assert_on(y, device)
        assert y.dtype == getattr(xps, dtype), "a Python scalar must not change the dtype"


@pytest.mark.parametrize("device,dtype", PLACES)
@pytest.mark.parametrize("prog", PROGRAMS, ids=lambda p: p.name)
def test_program_jvp_stays_on_device(prog, device, dtype):
    _skip_missing(prog)
    rng = np.random.default_rng(7)
    xs = prog.inputs(dtype, rng)
    vs = [sample("real", x.shape, dtype, rng) if i in prog.diff else None for i, x in enumerate(xs)]
    out, tout = ft.jvp(prog.fn, [on(x, device) for x in xs], [on(v, device) for v in vs])
    ref, tref = ft.jvp(prog.fn, [on(x, CPU) for x in xs], [on(v, CPU) for v in vs])
    for o, r in zip(_leaves((out, tout)), _leaves((ref, tref))):
        assert_on(o, device)
        assert o.dtype == getattr(xps, dtype)
        np.testing.assert_allclose(host(o), host(r), rtol=1e-15, atol=0)


@pytest.mark.parametrize("device,dtype", PLACES)
@pytest.mark.parametrize("prog", JACOBIAN_PROGRAMS, ids=lambda p: p.name)
def test_program_jacobian_stays_on_device(prog, device, dtype):
    rng = np.random.default_rng(11)
    xs = prog.inputs(dtype, rng)
    jac = ft.jacfwd(prog.fn, argnums=prog.diff, chunk_size=4)(*[on(x, device) for x in xs])
    ref = ft.jacfwd(prog.fn, argnums=prog.diff, chunk_size=4)(*[on(x, CPU) for x in xs])
    for j, r in zip(_leaves(jac), _leaves(ref)):
        assert_on(j, device)
        assert j.dtype == getattr(xps, dtype)
        np.testing.assert_allclose(host(j), host(r), rtol=1e-15, atol=0)


@pytest.mark.parametrize("device,dtype", PLACES)
def test_transforms_stay_on_device(device, dtype):
    rng = np.random.default_rng(13)
    x = on(sample("positive", (3,), dtype, rng), device)

    def f(v):
        return ft.sum(ft.sin(v) * v * v)

    H = ft.hessian(f)(x)
    assert_on(H, device)
    assert H.dtype == getattr(xps, dtype) and H.shape == (3, 3)
    d2 = ft.derivative(ft.sin, order=2)(x[0])
    assert_on(d2, device)
    np.testing.assert_allclose(host(d2), -np.sin(host(x)[0]), rtol=1e-5 if dtype == "float32" else 1e-14)
    value, jac = ft.value_and_jacfwd(lambda v: (v * 2.0, ft.sin(v)))(x)
    for a in _leaves((value, jac)):
        assert_on(a, device)
    # an output that does not depend on the input: its Jacobian block is zeros, on the device
    const = ft.jacfwd(lambda v: (v * 2.0, on(np.ones(2, dtype), device)))(x)
    assert_on(const[1], device)
    assert np.all(host(const[1]) == 0)
    _, tb = ft.batched_jvp(lambda v: ft.exp(v), (x,), (on(np.eye(3, dtype=dtype), device),))
    assert_on(tb, device)


@pytest.mark.parametrize("device,dtype", PLACES)
def test_jacfwd_seeds_are_built_on_the_device(device, dtype):
    seen = []

    def f(v):
        seen.append(v)
        return v * 3.0

    x = on(np.arange(5.0, dtype=dtype), device)
    ft.jacfwd(f, chunk_size=2)(x)
    assert len(seen) == 3
    for d in seen:
        assert_on(d, device)
        assert d._t is not None and d._t.dtype == getattr(xps, dtype)


# ------------------------------------------------------------------ to_device
@pytest.mark.parametrize("batched", [False, True])
def test_to_device_moves_primal_and_tangent(batched):
    rng = np.random.default_rng(17)
    p = sample("real", (2, 3), "float64", rng)
    t = sample("real", (4, 2, 3) if batched else (2, 3), "float64", rng)
    x = ft.DualTensor(on(p, D1), on(t, D1), batched=batched)
    y = x.to_device(D2)
    assert_on(y, D2)
    assert y.batched == batched and y.level == x.level and y.shape == x.shape
    np.testing.assert_array_equal(host(y), p)
    np.testing.assert_array_equal(host(y.tangent), t)
    assert_on(ft.sin(y) * y, D2)  # computing there keeps it there
    assert_on(y.to_device(D1), D1)


def test_to_device_of_constant_and_nested_duals():
    x = ft.DualTensor(on([1.0, 2.0], D1)).to_device(D2)
    assert_on(x, D2)
    assert x._t is None, "a symbolic zero stays symbolic"

    def inner(v):
        moved = v.to_device(D2)  # v is a dual of this level whose primal may be a lower-level dual
        assert_on(moved, D2)
        return ft.sin(moved)

    def outer(u):
        return ft.jvp(inner, (u,), (on([1.0, 1.0], D1),))[1]

    _, t = ft.jvp(outer, (on([0.5, 1.0], D1),), (on([1.0, 1.0], D1),))
    assert_on(t, D2)
    np.testing.assert_allclose(host(t), -np.sin([0.5, 1.0]), rtol=1e-14)


# ------------------------------------------------------------------ mixing devices
def _names_both(exc: BaseException) -> None:
    msg = str(exc)
    assert "device1" in msg and "device2" in msg, f"the error must name both devices: {msg}"


def _pair():
    a = ft.DualTensor(on(np.ones((2, 2)), D1), on(np.ones((2, 2)), D1))
    b = ft.DualTensor(on(np.ones((2, 2)), D2), on(np.ones((2, 2)), D2))
    return a, b


@pytest.mark.parametrize(
    "op",
    [lambda a, b: a + b, lambda a, b: ft.multiply(a, b.primal), lambda a, b: ft.multiply(b.primal, a)],
    ids=["dual+dual", "dual*array", "array*dual"],
)
def test_mixing_devices_in_elementwise_names_both(op):
    # the backend's own primal call raises first, with a message that names both devices
    with pytest.raises((ValueError, TypeError, RuntimeError)) as info:
        op(*_pair())
    _names_both(info.value)


@pytest.mark.parametrize(
    "op",
    [
        lambda a, b: ft.matmul(a, b),
        lambda a, b: ft.where(a.primal > 0, a, b),
        lambda a, b: ft.concat([a, b]),
        lambda a, b: ft.stack([a, b]),
        lambda a, b: ft.matmul(a.primal, b),
    ],
    ids=["matmul", "where", "concat", "stack", "array@dual"],
)
def test_mixing_devices_in_other_functions_is_a_backend_mismatch(op):
    with pytest.raises(ft.BackendMismatchError) as info:
        op(*_pair())
    _names_both(info.value)
    assert info.value.__cause__ is not None, "the backend's own error is kept as the cause"


def test_other_errors_of_general_functions_are_the_backends():
    a = ft.DualTensor(on(np.ones((2, 3)), D1), on(np.ones((2, 3)), D1))
    with pytest.raises(ValueError) as info:
        ft.matmul(a, a)  # a shape error on one device stays the backend's error
    assert not isinstance(info.value, ft.BackendMismatchError)


def test_tangent_on_another_device_is_refused():
    with pytest.raises(ft.BackendMismatchError) as info:
        ft.DualTensor(on([1.0, 2.0], D1), on([1.0, 1.0], D2))
    _names_both(info.value)


@pytest.mark.parametrize("batched", [False, True])
def test_jvp_tangent_on_another_device_is_refused(batched):
    # without the check, f(x) = 2 x would return a tangent on device2 for a primal on device1
    t = on(np.ones((1, 3)) if batched else np.ones(3), D2)
    with pytest.raises(ft.BackendMismatchError) as info:
        ft.jvp(lambda v: v * 2.0, (on(np.ones(3), D1),), (t,), batched=batched)
    _names_both(info.value)


def test_jacfwd_of_arguments_on_two_devices_names_both():
    with pytest.raises((ValueError, TypeError, RuntimeError)) as info:
        ft.jacfwd(lambda a, b: a * b, argnums=(0, 1))(on(np.ones(2), D1), on(np.ones(2), D2))
    _names_both(info.value)


def test_device_mismatch_message_is_actionable():
    err = _errors.device_mismatch(D1, D2)
    assert isinstance(err, ft.BackendMismatchError)
    assert "device1" in str(err) and "device2" in str(err) and "to_device" in str(err)


# ------------------------------------------------------------------ a device without float64
def test_no_float64_device_defaults_to_float32():
    x = ft.DualTensor(xps.asarray(2.0, device=NO64), 1.0)  # Python scalars become the device's float32
    assert x.dtype == xps.float32 and x.tangent.dtype == xps.float32
    assert_on(x, NO64)
    y = ft.log(x) + x * 5.0 - 1.0 / x
    assert y.dtype == xps.float32
    np.testing.assert_allclose(host(y.tangent), 0.5 + 5.0 + 0.25, rtol=1e-6)
    _, t = ft.jvp(lambda v: v * v, (xps.asarray(3.0, device=NO64),), (1.0,))
    assert t.dtype == xps.float32 and host(t) == 6.0
    assert_on(t, NO64)


def test_no_float64_device_jacobian_and_hessian():
    x = xps.asarray([0.5, 1.0, 2.0], device=NO64)
    assert x.dtype == xps.float32
    J = ft.jacfwd(lambda v: ft.tanh(v) * v)(x)
    assert J.dtype == xps.float32 and J.shape == (3, 3)
    assert_on(J, NO64)
    xv = np.array([0.5, 1.0, 2.0])
    np.testing.assert_allclose(np.diag(host(J)), np.tanh(xv) + xv / np.cosh(xv) ** 2, rtol=1e-6)
    H = ft.hessian(lambda v: ft.sum(v * v * v))(x)
    assert H.dtype == xps.float32
    np.testing.assert_allclose(host(H), np.diag(6 * xv), rtol=1e-6)


def test_no_float64_device_integer_primal_needs_a_cast():
    with pytest.raises(ft.TangentError, match="integer"):
        ft.DualTensor(xps.asarray([1, 2], device=NO64), xps.asarray([1, 1], device=NO64))


# ------------------------------------------------------------------ torch's meta device: no data at all
try:
    import torch
except ImportError:  # pragma: no cover
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
META = None if torch is None else torch.device("meta")


def _meta(a, dtype):
    return torch.empty(np.shape(a), dtype=getattr(torch, dtype), device=META)


@needs_torch
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("rule", ELEMENTWISE, ids=lambda r: r.name)
def test_elementwise_rule_on_meta_device(rule, dtype):
    # meta tensors hold no data: any conversion to a Python number raises in torch
    xs, vs = _rule_inputs(rule, dtype, np.random.default_rng(19))
    args = [_meta(x, dtype) for x in xs]
    try:
        getattr(array_api_compat.array_namespace(args[0]), rule.name)(*args)
    except (NotImplementedError, RuntimeError) as exc:
        pytest.skip(f"torch has no meta kernel for {rule.name}: {exc}")
    out = getattr(ft, rule.name)(*[ft.DualTensor(a, _meta(v, dtype), batched=True) for a, v in zip(args, vs)])
    assert out.device == META and (out._t is None or out._t.device == META)


@needs_torch
@pytest.mark.parametrize("prog", PROGRAMS, ids=lambda p: p.name)
def test_program_on_meta_device(prog):
    _skip_missing(prog)
    xs = prog.inputs("float32", np.random.default_rng(23))
    args = [_meta(x, "float32") for x in xs]
    try:
        prog.fn(*args)
    except (NotImplementedError, RuntimeError) as exc:
        pytest.skip(f"torch cannot run {prog.name} on the meta device: {exc}")
    tangents = [_meta(x, "float32") if i in prog.diff else None for i, x in enumerate(xs)]
    for leaf in _leaves(ft.jvp(prog.fn, args, tangents)):
        assert leaf.device == META
    if prog in JACOBIAN_PROGRAMS:
        for leaf in _leaves(ft.jacfwd(prog.fn, argnums=prog.diff)(*args)):
            assert leaf.device == META


# ------------------------------------------------------------------ the source never goes to the host
# The differentiation machinery: rules, dispatch, transforms. (Application modules such as
# an adaptive ODE solver may read a norm on the host on purpose; they are not scanned.)
SCANNED = sorted(
    [*(ROOT / "rules").glob("*.py")]
    + [
        ROOT / n
        for n in (
            "core/dual.py",
            "transforms/jacobian.py",
            "core/batch.py",
            "namespace/build.py",
            "fuse/kernels.py",
            "fuse/launch.py",
            "linalg.py",
            "fft.py",
        )
    ]
)
CONVERSIONS = {"float", "int", "bool", "complex"}
HOST_METHODS = {"item", "tolist", "numpy", "cpu", "asnumpy", "__array__", "__float__", "__int__", "__bool__"}
# attributes whose values live on the host: shapes, dtype facts
HOST_ATTRS = {"shape", "ndim", "size", "bits", "itemsize", "nbytes", "kind", "environ"}
# xp functions that answer on the host (about dtypes), so they may decide an ``if``
HOST_XP = {"isdtype", "can_cast", "finfo", "iinfo", "result_type", "__array_namespace_info__"}
# explicit conversions a user asks for: float(dual), bool(dual), ...
ALLOWED_FUNCTIONS = {
    ("core/dual.py", n)
    for n in ("__bool__", "__float__", "__int__", "__complex__", "__index__", "item", "tolist", "__array__")
}
ALLOWED_FUNCTIONS.add(("fuse/kernels.py", "_kernel"))  # the CuPy-only kernels import CuPy, lazily
BACKENDS = ("numpy", "cupy", "torch", "jax")
BACKEND_FREE = ("core/dual.py", "core/batch.py", "namespace/build.py", "fuse/kernels.py")


def _host_like(node: ast.AST) -> bool:
    """An expression that is evidently a host value (a constant, a shape, a length...)."""
    if isinstance(node, ast.Constant):
        return True
    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute) and sub.attr in HOST_ATTRS:
            return True
        if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name) and sub.func.id in ("len", "round"):
            return True
        if isinstance(sub, ast.Name) and sub.id in ("math", "os"):
            return True
        if (
            isinstance(sub, ast.Call)
            and isinstance(sub.func, ast.Attribute)
            and sub.func.attr in ("finfo", "iinfo")
        ):
            return True
    return False


def _xp_call(node: ast.AST) -> str | None:
    """The name of an ``xp.fn(...)`` call inside ``node`` that returns an array, if any."""
    for sub in ast.walk(node):
        if (
            isinstance(sub, ast.Call)
            and isinstance(sub.func, ast.Attribute)
            and isinstance(sub.func.value, ast.Name)
            and sub.func.value.id == "xp"
            and sub.func.attr not in HOST_XP
        ):
            return sub.func.attr
    return None


class _HostScan(ast.NodeVisitor):
    def __init__(self, path: pathlib.Path) -> None:
        self.path, self.stack, self.found = path, [], []

    def _report(self, node: ast.AST, why: str) -> None:
        fn = self.stack[-1] if self.stack else "<module>"
        if (self.path.relative_to(ROOT).as_posix(), fn) not in ALLOWED_FUNCTIONS:
            rel = self.path.relative_to(ROOT.parent)
            self.found.append(f"{rel}:{node.lineno} in {fn}: {why}: {ast.unparse(node)[:80]}")

    def visit_FunctionDef(self, node):
        self.stack.append(node.name)
        self.generic_visit(node)
        self.stack.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Call(self, node):
        f = node.func
        if isinstance(f, ast.Name) and f.id in CONVERSIONS and node.args and not _host_like(node.args[0]):
            self._report(node, f"{f.id}() of what may be device data")
        if isinstance(f, ast.Attribute) and f.attr in HOST_METHODS:
            self._report(node, f".{f.attr}() copies to the host")
        if isinstance(f, ast.Attribute) and f.attr == "get" and not node.args and not node.keywords:
            self._report(node, ".get() (CuPy's copy to the host)")
        self.generic_visit(node)

    def _bool_context(self, test: ast.AST) -> None:
        name = _xp_call(test)
        if name is not None:
            self._report(test, f"the truth value of xp.{name}(...) waits for the device")

    def visit_If(self, node):
        self._bool_context(node.test)
        self.generic_visit(node)

    visit_While = visit_If

    def visit_IfExp(self, node):
        self._bool_context(node.test)
        self.generic_visit(node)

    def visit_Assert(self, node):
        self._bool_context(node.test)
        self.generic_visit(node)

    def visit_BoolOp(self, node):
        for v in node.values[:-1]:  # the last operand is returned, not tested
            self._bool_context(v)
        self.generic_visit(node)

    def _no_backend_imports(self) -> bool:
        # rules and dispatch name no backend; _transforms may special-case NumPy inputs
        return self.path.parent.name == "rules" or self.path.relative_to(ROOT).as_posix() in BACKEND_FREE

    def visit_Import(self, node):
        for a in node.names:
            if a.name.split(".")[0] in BACKENDS and self._no_backend_imports():
                self._report(node, f"imports {a.name}")

    def visit_ImportFrom(self, node):
        if node.module and node.module.split(".")[0] in BACKENDS and self._no_backend_imports():
            self._report(node, f"imports from {node.module}")


def test_machinery_never_converts_device_data_to_host():
    found = []
    for path in SCANNED:
        scan = _HostScan(path)
        scan.visit(ast.parse(path.read_text(), filename=str(path)))
        found += scan.found
    assert not found, (
        "device data must stay on the device (no float()/bool()/.item()/NumPy in rules and "
        "dispatch); restructure, or compute on shapes and dtypes only:\n" + "\n".join(found)
    )


def test_host_scan_catches_what_it_should():
    src = (
        "def r(xp, x):\n"
        "    a = float(x)\n"
        "    b = x.item()\n"
        "    if xp.any(x > 0):\n"
        "        pass\n"
        "    c = int(x.shape[0]) + float(1.5)\n"
        "    if xp.isdtype(x.dtype, 'real floating'):\n"
        "        pass\n"
        "    import numpy as np\n"
    )
    scan = _HostScan(ROOT / "rules" / "probe.py")
    scan.visit(ast.parse(src))
    kinds = [f.split(": ")[1] for f in scan.found]
    assert len(kinds) == 4, scan.found
    assert any("float()" in k for k in kinds) and any(".item()" in k for k in kinds)
    assert any("xp.any" in k for k in kinds) and any("numpy" in k for k in kinds)


# ------------------------------------------------------------------ importing
def test_import_never_pulls_in_gpu_libraries():
    code = (
        "import sys, fwdtensor\n"
        "bad = [m for m in ('torch', 'cupy', 'jax', 'dask', 'array_api_strict') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
