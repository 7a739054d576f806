"""Tracing an elementwise program into expressions, for ``ft.fuse``.

The program runs on ``Sym`` arrays, which record each operation as an ``Expr`` instead
of computing it. Duals whose primal and tangent are Syms go through the ordinary dispatch
in ``_core``, so the tangent expressions come from the same rule rows as the eager path;
this module only has to know the elementwise functions of the standard, ``where`` and
``roll``, and the views the dispatch makes (unit axes, the tangent's batch axis).

A Sym is the value of one element: which element each of its axes indexes is recorded in
its *roles* (``None`` for a unit axis, ``"b"`` for the tangent's directions, ``k`` for
axis ``k`` of the primal shape, ``"flat"`` for all primal axes flattened). Broadcasting
checks the roles, so a program that would combine different elements (an outer product,
a slice, a reduction) is refused with a ``FuseError`` and never compiled wrongly.
"""

from __future__ import annotations

import contextvars
import math
from collections.abc import Callable
from typing import Any

import array_api_compat
import numpy as np

from ..core import dual as _core
from ..core.backend import PY_SCALARS, namespace_of
from ..core.errors import FwdTensorError
from .codegen import BOOL_IN, BOOL_OUT, OPS

__all__ = ["FuseError", "Expr", "Sym", "Trace", "SYM", "tracing", "significant"]


class FuseError(FwdTensorError):
    """A program that ``ft.fuse`` cannot compile into one elementwise kernel (the message says why)."""


class Expr:
    """One operation of the traced program (interned per trace: equal operations are one Expr)."""

    __slots__ = ("op", "args", "params", "dtype")

    def __init__(self, op: str, args: tuple, params: tuple, dtype: str) -> None:
        self.op, self.args, self.params, self.dtype = op, args, params, dtype


class Trace:
    """What one trace knows: the primal shape and dtype, the directions, the kernel inputs."""

    def __init__(self, xp: Any, shape: tuple, dtype: Any, B: int, device: Any) -> None:
        self.xp = xp
        self.shape = tuple(shape)
        self.N = math.prod(self.shape)
        self.dtype = dtype
        self.B = B
        self.device = device
        self.canon: tuple = tuple(range(len(self.shape)))
        self.inputs: list[Any] = []  # arrays to pass, by slot
        self.kinds: list[tuple[str, str]] = []  # (ctype, kind) by slot
        self._interned: dict[tuple, Expr] = {}
        self._captured: dict[int, Sym] = {}

    # ----------------------------------------------------------- expressions
    def expr(self, op: str, args: tuple, params: tuple = (), dtype: str = "T") -> Expr:
        key = (op, dtype, tuple(map(repr, params)) if params else (), *map(id, args))
        e = self._interned.get(key)
        if e is None:
            e = self._interned[key] = Expr(op, args, params, dtype)
        return e

    def const(self, v: Any) -> Expr:
        if isinstance(v, complex):
            raise FuseError("complex constants are not fused")
        return self.expr("const", (), (v,), "bool" if isinstance(v, bool) else "T")

    def leaf(self, array: Any, kind: str, roles: tuple, shape: tuple | None = None) -> Sym:
        """A kernel input (flattened ``array``): ``kind`` says how the kernel indexes it."""
        ctype = "bool" if array.dtype == self.xp.bool else "T"
        slot = len(self.inputs)
        self.inputs.append(array)
        self.kinds.append((ctype, kind))
        return Sym(self.expr("in", (), (slot, kind, shape or self.shape), ctype), roles, self)

    def array(self, a: Any, tangent: Any = None) -> tuple[Sym, Sym | None]:
        """Leaves for an argument's primal ``a`` (and its tangent, B directions first), whose
        shape broadcasts to the traced shape: the whole shape, one value, or a broadcast."""
        L, S, xp = tuple(a.shape), self.shape, self.xp
        while len(L) > len(S) and L[0] == 1:  # leading unit axes: a view of the same values
            L = L[1:]
        lead = len(S) - len(L)
        if lead < 0 or any(n not in (1, S[lead + k]) for k, n in enumerate(L)):
            raise FuseError(f"an array of shape {tuple(a.shape)} does not broadcast to the inputs' shape {S}")
        n = math.prod(L)
        if L == S:
            kinds, roles = ("primal", "tangent"), self.canon
        elif n == 1:
            kinds, roles = ("scalar", "scalar_tangent"), (None,) * len(L)
        else:
            kinds = ("bcast", "bcast_tangent")
            roles = tuple(lead + k if m > 1 else None for k, m in enumerate(L))
        p = self.leaf(xp.reshape(a, (n,)), kinds[0], roles, L)
        if tangent is None:
            return p, None
        return p, self.leaf(xp.reshape(tangent, (self.B * n,)), kinds[1], ("b", *roles), L)

    def capture(self, a: Any) -> Sym:
        """A backend array the program closes over: one more kernel input."""
        hit = self._captured.get(id(a))
        if hit is not None:
            return hit
        if namespace_of(a) is not self.xp:
            raise FuseError(
                f"a constant array of another library ({type(a).__module__}) met the traced inputs"
            )
        if a.dtype != self.dtype and a.dtype != self.xp.bool:
            raise FuseError(f"a constant array of dtype {a.dtype} met inputs of dtype {self.dtype}")
        s, _ = self.array(a)
        if a.ndim > s.ndim:  # keep the unit axes it had, so shapes stay what eager gives
            s = Sym(s.e, (None,) * (a.ndim - s.ndim) + s.roles, self)
        self._captured[id(a)] = s
        return s

    # ------------------------------------------------------------------ roles
    def size(self, r: Any) -> int:
        if r is None:
            return 1
        if r == "b":
            return self.B
        if r == "flat":
            return self.N
        return self.shape[r]

    def broadcast(self, *rs: tuple) -> tuple:
        first = rs[0]
        if all(r == first or not r for r in rs):  # the common case: the same roles, or scalars
            return first
        nd = max(len(r) for r in rs)
        out = []
        for ax in range(-nd, 0):
            role = None
            for r in rs:
                if -ax > len(r):
                    continue
                x = r[ax]
                if x is None or x == role:
                    continue
                if role is None or self.size(role) == 1:
                    role = x
                elif self.size(x) != 1:
                    raise FuseError(self._mixing(rs))
            out.append(role)
        big = [r for r in out if r is not None and self.size(r) > 1]
        if len(set(big)) != len(big) or ("flat" in big and len(self.shape) > 1 and len(big) > 1):
            raise FuseError(self._mixing(rs))
        return tuple(out)

    def _mixing(self, rs: tuple) -> str:
        shapes = " and ".join(str(tuple(self.size(x) for x in r)) for r in rs)
        return (
            f"broadcasting {shapes} combines different elements (an outer product or a "
            "transpose); fused programs are elementwise"
        )

    def template(self, shape: tuple) -> tuple:
        """Roles for a shape the dispatch asks for by value (zeros, broadcast_to, reshape)."""
        shape = tuple(shape)
        S, B = self.shape, self.B
        if shape == S:
            return self.canon
        if len(shape) == len(S) + 1 and shape[1:] == S and shape[0] == B:
            return ("b", *self.canon)
        flat = ("flat",) if len(S) > 1 else (self.canon or (None,))  # the primal as one axis
        if shape == (self.N,):
            return flat
        if shape == (B, self.N):
            return ("b", *flat)
        if all(n == 1 for n in shape):
            return (None,) * len(shape)
        raise FuseError(f"an array of shape {shape} is not elementwise over the inputs' shape {S}")


def significant(t: Trace, roles: tuple) -> tuple:
    """The roles that index something (size above one), with ``flat`` spelt out."""
    out = []
    for r in roles:
        if r is None or t.size(r) == 1:
            continue
        out.extend(k for k in t.canon if t.shape[k] > 1) if r == "flat" else out.append(r)
    return tuple(out)


class Sym:
    """A traced array: an expression and the roles of its axes."""

    __slots__ = ("e", "roles", "tr")
    __array_priority__ = 2000

    def __init__(self, e: Expr, roles: tuple, tr: Trace) -> None:
        self.e, self.roles, self.tr = e, roles, tr

    @property
    def shape(self) -> tuple:
        return tuple(self.tr.size(r) for r in self.roles)

    @property
    def ndim(self) -> int:
        return len(self.roles)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def dtype(self) -> Any:
        return self.tr.xp.bool if self.e.dtype == "bool" else self.tr.dtype

    @property
    def device(self) -> Any:
        return self.tr.device

    @property
    def mT(self) -> Sym:
        raise FuseError("transposes are not fused (a fused program is elementwise)")

    T = mT

    def __array_namespace__(self, /, *, api_version: str | None = None) -> Any:
        return SYM

    def __repr__(self) -> str:
        return f"Sym({self.e.op}, shape={self.shape}, dtype={self.dtype})"

    __hash__ = object.__hash__

    def _data(self, *_: Any) -> Any:
        raise FuseError(
            "the program reads a traced value in Python (bool(), float(), len(), an if on an "
            "array): a fused program cannot branch on its data; use where()"
        )

    __bool__ = __float__ = __int__ = __index__ = __complex__ = __len__ = __iter__ = __array__ = _data

    def __getitem__(self, key: Any) -> Sym:
        return _getitem(self, key)

    def __setitem__(self, key: Any, value: Any) -> None:
        raise FuseError("item assignment is not fused")


def _op(name: str, swap: bool = False) -> Callable:
    def method(self: Sym, other: Any) -> Any:
        if type(other) is _core.DualTensor:
            return NotImplemented  # the dual's reflected operator takes over
        fn = getattr(SYM, name)
        return fn(other, self) if swap else fn(self, other)

    return method


for _name, _fn in {
    "add": "add",
    "sub": "subtract",
    "mul": "multiply",
    "truediv": "divide",
    "floordiv": "floor_divide",
    "mod": "remainder",
    "pow": "pow",
    "lt": "less",
    "le": "less_equal",
    "gt": "greater",
    "ge": "greater_equal",
    "eq": "equal",
    "ne": "not_equal",
    "and": "logical_and",
    "or": "logical_or",
    "xor": "logical_xor",
}.items():
    setattr(Sym, f"__{_name}__", _op(_fn))
    if _name not in ("lt", "le", "gt", "ge", "eq", "ne"):
        setattr(Sym, f"__r{_name}__", _op(_fn, swap=True))
Sym.__neg__ = lambda self: SYM.negative(self)  # type: ignore[method-assign]
Sym.__pos__ = lambda self: self  # type: ignore[method-assign]
Sym.__abs__ = lambda self: SYM.abs(self)  # type: ignore[method-assign]
Sym.__invert__ = lambda self: SYM.logical_not(self)  # type: ignore[method-assign]


def _getitem(x: Sym, key: Any) -> Sym:
    """Views that only add or drop unit axes (``t[None, ...]``, ``t[0, ...]`` with one direction)."""
    key = key if isinstance(key, tuple) else (key,)
    if sum(k is Ellipsis for k in key) > 1:
        raise IndexError("an index can only have a single ellipsis")
    if Ellipsis not in key:
        key = (*key, Ellipsis)
    rest = len(x.roles) - sum(k is not None and k is not Ellipsis for k in key)
    roles, out, pos = x.roles, [], 0
    for k in key:
        if k is Ellipsis:
            out.extend(roles[pos : pos + rest])
            pos += rest
        elif k is None:
            out.append(None)
        elif pos >= len(roles):
            raise IndexError(f"too many indices for an array of dimension {len(roles)}")
        elif isinstance(k, slice) and k == slice(None):
            out.append(roles[pos])
            pos += 1
        elif type(k) is int and k in (0, -1) and x.tr.size(roles[pos]) == 1:
            pos += 1
        elif roles[pos] == "b":
            raise FuseError(
                "picking one tangent direction is not fused (a custom_jvp rule over several "
                "directions: define it with batched=True)"
            )
        else:
            raise FuseError(f"indexing with {k!r} picks elements; fused programs are elementwise (use roll)")
    return Sym(x.e, tuple(out), x.tr)


# ---------------------------------------------------------------- the namespace
_current: contextvars.ContextVar[Trace | None] = contextvars.ContextVar("fwdtensor_trace", default=None)


def tracing() -> Trace:
    t = _current.get()
    if t is None:
        raise FuseError("a traced array was used outside its ft.fuse call")
    return t


def _operand(t: Trace, a: Any) -> Sym:
    if isinstance(a, Sym):
        if a.tr is not t:
            raise FuseError("a traced array from another ft.fuse call was used")
        return a
    if type(a) in PY_SCALARS:
        return Sym(t.const(a), (), t)
    if isinstance(a, np.generic) and a.ndim == 0:
        # NumPy scalars are typed: one of another dtype would promote the eager result
        if a.dtype != t.dtype and a.dtype != np.bool_:
            raise FuseError(f"a NumPy scalar of dtype {a.dtype} met inputs of dtype {t.dtype}")
        return Sym(t.const(a.item()), (), t)
    if type(a) is _core.DualTensor:
        raise FuseError("a dual reached the traced namespace directly; call ft's functions on duals")
    if array_api_compat.is_array_api_obj(a):
        return t.capture(a)
    raise FuseError(f"cannot trace an operand of type {type(a).__name__}")


def _elementwise(name: str, arity: int) -> Callable:
    bool_in = name in BOOL_IN
    out_dtype = "bool" if name in BOOL_OUT else "T"
    comparison = out_dtype == "bool" and not bool_in and arity == 2

    def fn(*args: Any) -> Sym:
        if len(args) != arity:
            raise TypeError(f"{name}() takes {arity} positional arguments, got {len(args)}")
        t = tracing()
        ops = [a if type(a) is Sym and a.tr is t else _operand(t, a) for a in args]
        kinds = {o.e.dtype for o in ops}
        if bool_in:
            if kinds != {"bool"}:
                raise FuseError(f"{name} of a floating operand is not fused")
        elif "bool" in kinds and not (comparison and kinds == {"bool"}):
            # booleans in arithmetic count as 0 and 1, as NumPy and CuPy promote them
            ops = [SYM.astype(o, t.dtype) if o.e.dtype == "bool" else o for o in ops]
        roles = ops[0].roles if arity == 1 else t.broadcast(*[o.roles for o in ops])
        return Sym(t.expr(name, tuple([o.e for o in ops]), (), out_dtype), roles, t)

    fn.__name__ = name
    return fn


def _arity(template: str) -> int:
    return 1 + max(int(c) for c in template if c.isdigit() and "{" + c + "}" in template)


class _Namespace:
    """The Array API namespace of ``Sym`` arrays: the elementwise functions, ``where``, ``roll``,
    the views and constants the dispatch asks for; anything else raises ``FuseError``."""

    __name__ = "fwdtensor.fuse_trace"
    indexed_roll = True  # rules call roll itself, not slices joined by concat (see rules.manipulation)

    def __init__(self) -> None:
        for name, template in OPS.items():
            if name in ("where", "to_float", "to_bool"):
                continue
            setattr(self, name, _elementwise(name, _arity(template)))

    @property
    def wraps(self) -> Any:  # constants of the traced backend are allowed (see _core._check_const)
        t = _current.get()
        return None if t is None else t.xp

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        t = _current.get()
        if t is not None:
            attr = getattr(t.xp, name, None)
            if isinstance(attr, type) or (attr is not None and not callable(attr)):
                return attr  # dtypes and constants
        raise FuseError(f"{name!r} is not fused: ft.fuse compiles elementwise functions, where and roll")

    # ---- types
    def isdtype(self, dtype: Any, kind: Any) -> bool:
        return tracing().xp.isdtype(dtype, kind)

    def astype(self, x: Any, dtype: Any, /, *, copy: bool = True, device: Any = None) -> Sym:
        t = tracing()
        x = _operand(t, x)
        if dtype == t.xp.bool:
            return x if x.e.dtype == "bool" else Sym(t.expr("to_bool", (x.e,), (), "bool"), x.roles, t)
        if dtype != t.dtype:
            raise FuseError(f"astype to {dtype} is not fused (the inputs are {t.dtype})")
        return x if x.e.dtype == "T" else Sym(t.expr("to_float", (x.e,)), x.roles, t)

    # ---- choices and moves
    def where(self, condition: Any, x1: Any, x2: Any, /) -> Sym:
        t = tracing()
        c, a, b = (_operand(t, v) for v in (condition, x1, x2))
        if c.e.dtype != "bool":
            c = self.astype(c, t.xp.bool)
        if a.e.dtype != "T" or b.e.dtype != "T":
            raise FuseError("where with boolean branches is not fused")
        return Sym(t.expr("where", (c.e, a.e, b.e)), t.broadcast(c.roles, a.roles, b.roles), t)

    def roll(self, x: Any, /, shift: Any, *, axis: Any = None) -> Sym:
        t = tracing()
        x = _operand(t, x)
        if isinstance(axis, tuple) or not isinstance(shift, (int, np.integer)):
            raise FuseError("roll by a tuple of shifts is not fused; roll one axis at a time")
        shift = int(shift)
        if axis is None:
            if any(r == "b" for r in x.roles if t.size(r) > 1):
                raise FuseError("roll without an axis across tangent directions is not fused")
            role = "flat" if len(significant(t, x.roles)) > 1 else next(iter(significant(t, x.roles)), None)
        else:
            role = x.roles[axis]
        if role is None or t.size(role) == 1:
            return x
        if role == "b":
            raise FuseError("roll across tangent directions is not fused")
        if role == "flat" and len(t.shape) == 1:
            role = 0
        return Sym(t.expr("roll", (x.e,), ("flat" if role == "flat" else role, shift), x.e.dtype), x.roles, t)

    def clip(self, x: Any, /, min: Any = None, max: Any = None) -> Sym:
        y = _operand(tracing(), x)
        if min is not None:
            y = self.maximum(y, min)
        if max is not None:
            y = self.minimum(y, max)
        return y

    # ---- views
    def broadcast_to(self, x: Any, /, shape: tuple) -> Sym:
        t = tracing()
        x = _operand(t, x)
        roles = t.template(shape)
        fits = len(x.roles) <= len(roles)
        if not fits or significant(t, t.broadcast(roles, x.roles)) != significant(t, roles):
            raise FuseError(f"cannot broadcast shape {x.shape} to {tuple(shape)}")
        return Sym(x.e, roles, t)

    def reshape(self, x: Any, /, shape: tuple, *, copy: Any = None) -> Sym:
        t = tracing()
        x = _operand(t, x)
        shape = tuple(shape)
        if -1 in shape:
            known = math.prod(n for n in shape if n != -1)
            shape = tuple(x.size // known if n == -1 else n for n in shape)
        if shape == x.shape:
            return x
        roles = t.template(shape)
        if significant(t, roles) != significant(t, x.roles):
            raise FuseError(f"reshape of {x.shape} to {shape} moves elements; it is not fused")
        return Sym(x.e, roles, t)

    def expand_dims(self, x: Any, /, *, axis: int = 0) -> Sym:
        x = _operand(tracing(), x)
        nd = x.ndim + 1
        a = axis % nd
        return Sym(x.e, (*x.roles[:a], None, *x.roles[a:]), x.tr)

    def stack(self, arrays: Any, /, *, axis: int = 0) -> Sym:
        """One array only (a one-direction ``custom_jvp`` rule's tangent gets its batch axis)."""
        arrays = list(arrays)
        if len(arrays) != 1:
            raise FuseError(
                "stack of several arrays is not fused (over several directions, give a "
                "custom_jvp rule batched=True)"
            )
        return self.expand_dims(arrays[0], axis=axis)

    # ---- constants
    def asarray(self, obj: Any, /, *, dtype: Any = None, device: Any = None, copy: Any = None) -> Sym:
        t = tracing()
        s = _operand(t, obj)
        return self.astype(s, dtype) if dtype is not None else s

    def full(self, shape: Any, fill_value: Any, *, dtype: Any = None, device: Any = None) -> Sym:
        t = tracing()
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        if dtype is not None and dtype not in (t.dtype, t.xp.bool):
            raise FuseError(f"arrays of dtype {dtype} are not fused (the inputs are {t.dtype})")
        v = bool(fill_value) if dtype == t.xp.bool else float(fill_value)
        return Sym(t.const(v), t.template(shape), t)

    def zeros(self, shape: Any, *, dtype: Any = None, device: Any = None) -> Sym:
        return self.full(shape, 0, dtype=dtype)

    def ones(self, shape: Any, *, dtype: Any = None, device: Any = None) -> Sym:
        return self.full(shape, 1, dtype=dtype)

    def full_like(self, x: Any, /, fill_value: Any, *, dtype: Any = None, device: Any = None) -> Sym:
        t = tracing()
        x = _operand(t, x)
        dtype = x.dtype if dtype is None else dtype
        if dtype not in (t.dtype, t.xp.bool):
            raise FuseError(f"arrays of dtype {dtype} are not fused (the inputs are {t.dtype})")
        v = bool(fill_value) if dtype == t.xp.bool else float(fill_value)
        return Sym(t.const(v), x.roles, t)

    def zeros_like(self, x: Any, /, *, dtype: Any = None, device: Any = None) -> Sym:
        return self.full_like(x, 0, dtype=dtype)

    def ones_like(self, x: Any, /, *, dtype: Any = None, device: Any = None) -> Sym:
        return self.full_like(x, 1, dtype=dtype)

    empty_like = zeros_like


SYM = _Namespace()


def start(xp: Any, shape: tuple, dtype: Any, B: int, device: Any) -> tuple[Trace, Any]:
    """Begin a trace (returns it and the token that ``stop`` needs)."""
    t = Trace(xp, shape, dtype, B, device)
    return t, _current.set(t)


def stop(token: Any) -> None:
    _current.reset(token)
