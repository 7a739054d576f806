"""DualTensor and the dispatch path that applies a derivative rule.

A tangent always carries a leading axis of B directions: ``t.shape == (B, *primal.shape)``.
An unbatched dual stores B == 1 and shows ``primal.shape`` through ``.tangent``. A
tangent of ``None`` is a symbolic zero: constants never allocate one.

Levels (see ``_levels``): when duals of different levels meet, the highest level is
differentiated and every other operand is a constant for it, even if it is itself a dual.
Rules compute with ``xp``, the namespace of their inputs: the backend's namespace when the
primals are plain arrays, and fwdtensor's own when some primal is a lower-level dual, so
a rule written once recurses through nested differentiation.
"""

from __future__ import annotations

import operator
from types import ModuleType, SimpleNamespace
from typing import Any

import array_api_compat

from . import backend as _backend
from . import errors as _errors
from .backend import PY_SCALARS, namespace_of
from .batch import align
from .levels import USER_LEVEL

# A rule of ``fwdtensor/rules/_forms.py`` (the core reads its fields, never imports the rules).
Rule = Any

# Slots the layers above fill at import time through ``core/hooks.py`` (the core never does).
# The fwdtensor namespace module (``hooks.register_namespace``).
FT: ModuleType = None  # type: ignore[assignment]
# NumPy's protocols (``namespace/numpy_protocols``: ufuncs, array functions, array methods),
# filled by ``hooks.register_numpy``.
NUMPY: Any = None
# Every rule by its name (``R.add``), from the rule tables (``hooks.register_rules``).
R = SimpleNamespace()

# Array types of tracing namespaces (``fuse.trace.Sym``): they outrank plain arrays in a call.
TRACED: set[type] = set()

# NaN debug mode (``ft.set_debug_nans``): when true, unary/binary/apply run through ``_debug``.
DEBUG_NANS = False
# The NaN checker (``core/debug.py``, which sits above this module and sets both names).
DEBUG: Any = None


class _NoFusion:
    """The fused-kernel slot until ``hooks.register_fused`` fills it: never enabled."""

    enabled = False


# Fused elementwise kernels (``fuse/kernels.py``, ``hooks.register_fused``).
_fused: Any = _NoFusion
# How lazy (Dask) duals are evaluated: ``"compute"``, ``"persist"`` (``hooks.register_lazy``).
LAZY: dict[str, Any] = {}

# Markers a binary rule may return for a partial derivative, so no multiply is spent.
ONE = object()
MINUS_ONE = object()


class DivBy:
    """A partial derivative ``1 / x``: the core divides by ``x`` (one pass, not two)."""

    __slots__ = ("x",)

    def __init__(self, x: Any) -> None:
        self.x = x


_NP_SCALARS = _backend.NP_SCALARS  # a 0-d result is stored as a 0-d array, never as one of these
_SCALAR_TYPES = frozenset(PY_SCALARS)  # one hash lookup instead of a scan of the tuple

# Partial derivatives that are not arrays (scalars and markers) and so cannot be reused.
_NOT_ARRAYS = frozenset({int, float, complex, bool, DivBy, object, type(None)})


class _NumpyOnly:
    """``__array_ufunc__`` as NumPy sees it (on the class) and as None on a non-NumPy dual.

    NumPy reads the hook from the type, so ``np.sin(d)`` reaches it for every dual. CuPy's
    operators read it from the instance and defer to the reflected method only when it is
    None, so ``cupy_array + d`` keeps reaching ``d.__radd__``.
    """

    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            return self.fn
        return self.fn.__get__(obj, owner) if obj._bxp.__name__.endswith("numpy") else None


def _numpy_method(name: str) -> Any:
    """NumPy's array method ``name`` for DualTensor, answered by ``NUMPY.method``."""

    def method(self: DualTensor, *args: Any, **kwargs: Any) -> Any:
        return NUMPY.method(name, self, args, kwargs)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"NumPy's ``ndarray.{name}`` with NumPy's arguments, on the dual (derivative included)."
    return method


class DualTensor:
    """An array together with its tangent: a point and B directional derivatives.

    ``DualTensor(primal, tangent=None, *, batched=False)`` takes an array of any Array API
    library (or Python scalars and nested sequences, which become NumPy float64). The
    tangent has the primal's shape, or ``(B, *primal.shape)`` with ``batched=True``; its
    dtype is the primal's. A missing tangent is zero and costs nothing.

    >>> import fwdtensor as ft
    >>> x = ft.DualTensor(2.0, 1.0)
    >>> y = ft.log(x) + x * 5.0 - ft.sin(ft.asarray(5.0))
    >>> round(float(y.tangent), 4)
    5.5
    """

    # ``_link`` is a view's ``(base, key)``, None for every other dual (set by every
    # constructor, so the hot paths read it without a failed lookup); ``_views`` (weak
    # references to the views of a dual) is set only on duals that indexing indexed.
    # Readers use getattr, for duals built without a constructor.
    __slots__ = ("primal", "_t", "level", "_B", "xp", "_bxp", "_owned", "_link", "_views", "__weakref__")
    __array_priority__ = 1000

    # NEP 13 / NEP 18: np.sin(d), np.sum(d), ndarray + d dispatch to the namespace.
    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        return NUMPY.array_ufunc(ufunc, method, inputs, kwargs)

    __array_ufunc__ = _NumpyOnly(__array_ufunc__)  # type: ignore[assignment]

    def __array_function__(self, func: Any, types: Any, args: tuple, kwargs: dict) -> Any:
        return NUMPY.array_function(func, types, args, kwargs)

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        return NUMPY.torch_function(func, args, kwargs or {})  # torch.sin(d) on torch-backed duals

    primal: Any
    _t: Any
    level: int
    _B: int  # 0 for a single direction (stored as B == 1), else the number of directions
    xp: ModuleType  # namespace to compute the primal with (fwdtensor's when it is nested)
    _bxp: ModuleType  # namespace of the innermost backend arrays
    # True while primal and tangent are private to this dual, so a write may go in place.
    # False for every new dual (its buffers may be the caller's or another dual's): the
    # first write copies both, and handing the buffers to a rule makes them shared again.
    _owned: bool

    def __init__(self, primal: Any, tangent: Any = None, *, batched: bool = False) -> None:
        if type(primal) is DualTensor:
            if carries_tangent(primal):
                raise TypeError(
                    "DualTensor(primal) got a DualTensor with a tangent as primal; nest derivatives "
                    "with ft.jvp / ft.jacfwd, which keep the levels apart"
                )
            primal = innermost(primal)  # a constant of the namespace is its array
        if primal is None:
            raise TypeError("DualTensor(primal) needs an array or a Python number as primal, got None")
        if type(tangent) is DualTensor and not carries_tangent(tangent):
            tangent = innermost(tangent)
        p = _backend.as_array(primal)
        bxp = namespace_of(p)
        t = None
        B = 0
        if tangent is not None:
            if not _backend.is_floating(bxp, p.dtype):
                raise _errors.integer_primal(p.dtype)
            t = _check_tangent(bxp, p, tangent, batched)
            B = t.shape[0] if batched else 0
        self.primal = p
        self._t = t
        self.level = USER_LEVEL
        self._B = B
        self.xp = bxp
        self._bxp = bxp
        self._owned = False
        self._link = None

    # ---------------------------------------------------------------- attributes
    @property
    def tangent(self) -> Any:
        """The tangent: ``primal.shape``, or ``(B, *primal.shape)`` for a batched dual."""
        t = self._t
        if t is None:
            t = zeros_tangent(self, max(self._B, 1))
        return t if self._B else t[0, ...]

    @property
    def batched(self) -> bool:
        """True when the tangent carries a leading axis of several directions."""
        return self._B > 0

    @property
    def shape(self) -> tuple:
        return self.primal.shape

    @property
    def dtype(self) -> Any:
        return self.primal.dtype

    @property
    def device(self) -> Any:
        return array_api_compat.device(self.primal)

    @property
    def ndim(self) -> int:
        return self.primal.ndim

    @property
    def size(self) -> int | None:
        return array_api_compat.size(self.primal)

    @property
    def T(self) -> DualTensor:
        if self.ndim != 2:
            raise ValueError(f".T needs a 2-D array, got {self.ndim} dimensions; use .mT or permute_dims")
        return FT.permute_dims(self, (1, 0))

    @property
    def mT(self) -> DualTensor:
        return FT.matrix_transpose(self)

    def to_device(self, device: Any, /, *, stream: Any = None) -> DualTensor:
        """Move primal and tangent together to ``device``."""
        kw = {} if stream is None else {"stream": stream}
        p = array_api_compat.to_device(self.primal, device, **kw)
        t = None if self._t is None else array_api_compat.to_device(self._t, device, **kw)
        # the backend may change with the device (CuPy to "cpu" gives NumPy arrays)
        bxp = p._bxp if type(p) is DualTensor else namespace_of(p)
        return _make(p, t, self.level, self._B, bxp)

    def __array_namespace__(self, /, *, api_version: str | None = None) -> ModuleType:
        return FT

    # Conversions out of the namespace: free for constants, refused where a tangent would
    # be lost (see ``_plain_value``); ``bool`` branches on the primal and is always allowed.
    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        return _backend.host_array(self._plain_value("np.asarray()"), dtype, copy)

    def __dlpack__(
        self, /, *, stream: Any = None, max_version: Any = None, dl_device: Any = None, copy: Any = None
    ) -> Any:
        """DLPack export of a constant (the standard's signature); only given keywords are passed on."""
        given = (("stream", stream), ("max_version", max_version), ("dl_device", dl_device), ("copy", copy))
        kw = {k: v for k, v in given if v is not None}
        return self._plain_value("DLPack export").__dlpack__(**kw)

    def __dlpack_device__(self) -> Any:
        return innermost(self).__dlpack_device__()

    def item(self) -> Any:
        """The value of a one-element constant as a Python number (see ``__float__``)."""
        p = self._plain_value(".item()")
        return p.item() if hasattr(p, "item") else _backend.to_host(p).item()

    def tolist(self) -> Any:
        """The values of a constant as nested Python lists (see ``__float__``)."""
        p = self._plain_value(".tolist()")
        return p.tolist() if hasattr(p, "tolist") else _backend.to_host(p).tolist()

    def _plain_value(self, what: str) -> Any:
        """The innermost array, or ``DerivativeLostError`` when some level carries a tangent."""
        d: Any = self
        while type(d) is DualTensor:
            if d._t is not None:
                raise _errors.derivative_lost(what)
            d = d.primal
        return d

    def __repr__(self) -> str:
        pad = " " * len("DualTensor(")
        prim = repr(self.primal).replace("\n", "\n" + pad + " " * len("primal="))
        if self._t is None:
            return f"DualTensor(primal={prim}, tangent=0)"
        tan = repr(self.tangent).replace("\n", "\n" + pad + " " * len("tangent="))
        extra = f", batched={self._B}" if self._B else ""
        return f"DualTensor(primal={prim},\n{pad}tangent={tan}{extra})"

    # ---------------------------------------------------------- python protocol
    def __format__(self, spec: str) -> str:
        # Formatting shows the value (a string cannot carry a derivative onward); the
        # backend's array decides which specs it supports, as for a plain 0-d array.
        return format(self.primal, spec) if spec else str(self)

    def __bool__(self) -> bool:
        return bool(self.primal)

    def __float__(self) -> float:
        return float(self._plain_value("float()"))

    def __int__(self) -> int:
        return int(self._plain_value("int()"))

    def __index__(self) -> int:
        return self._plain_value("__index__ (an integer use)").__index__()

    def __complex__(self) -> complex:
        return complex(self._plain_value("complex()"))

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d DualTensor")
        return self.shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d DualTensor")
        return (self[i, ...] for i in range(self.shape[0]))

    __hash__ = None  # type: ignore[assignment]  # arrays are unhashable

    # ------------------------------------------------------------- operators
    def __add__(self, other):
        return binary(R.add, self, other)  # noqa: E704

    def __radd__(self, other):
        return binary(R.add, other, self)  # noqa: E704

    def __sub__(self, other):
        return binary(R.subtract, self, other)  # noqa: E704

    def __rsub__(self, other):
        return binary(R.subtract, other, self)  # noqa: E704

    def __mul__(self, other):
        # Dual times dual, the hottest operation of most programs: the product rule inline
        # where nothing needs the general path (``binary``): one level, one backend, plain
        # primals of one type and rank, both tangents with one number of directions, no
        # NaN debugging, no fused kernels. The tangent is the multiply rule's own ``jvp``
        # (``rules/elementwise.py``), so the product rule stays written once.
        if type(other) is not DualTensor:
            return binary(R.multiply, self, other)
        pa, pb, ta, tb = self.primal, other.primal, self._t, other._t
        if (
            ta is None
            or tb is None
            or DEBUG_NANS
            or _fused.enabled
            or self.level != other.level
            or self._B != other._B
            or (bxp := self._bxp) is not other._bxp
            or type(pa) is DualTensor
            or type(pb) is not type(pa)
            or pa.ndim != pb.ndim
        ):
            return binary(R.multiply, self, other)
        rule = R.multiply
        y = (rule.cache.get(bxp) or _fn(rule, bxp))(pa, pb)
        self._owned = other._owned = False  # the result may share their buffers: their next write copies
        t = rule.jvp(bxp, pa, pb, y, ta, tb)
        r = _new(DualTensor)
        if type(y) in _NP_SCALARS:
            y = _backend.zero_d(y)
        r.primal = y
        r._t = t
        r.level = self.level
        r._B = self._B
        r.xp = r._bxp = bxp
        r._owned = False
        r._link = None
        return r

    def __rmul__(self, other):
        return binary(R.multiply, other, self)  # noqa: E704

    def __truediv__(self, other):
        return binary(R.divide, self, other)  # noqa: E704

    def __rtruediv__(self, other):
        return binary(R.divide, other, self)  # noqa: E704

    def __floordiv__(self, other):
        return binary(R.floor_divide, self, other)  # noqa: E704

    def __rfloordiv__(self, other):
        return binary(R.floor_divide, other, self)  # noqa: E704

    def __mod__(self, other):
        return binary(R.remainder, self, other)  # noqa: E704

    def __rmod__(self, other):
        return binary(R.remainder, other, self)  # noqa: E704

    def __pow__(self, other):
        return binary(R.pow, self, other)  # noqa: E704

    def __rpow__(self, other):
        return binary(R.pow, other, self)  # noqa: E704

    def __matmul__(self, other):
        return FT.matmul(self, other)  # noqa: E704

    def __rmatmul__(self, other):
        return FT.matmul(other, self)  # noqa: E704

    def __and__(self, other):
        return binary(R.bitwise_and, self, other)  # noqa: E704

    def __rand__(self, other):
        return binary(R.bitwise_and, other, self)  # noqa: E704

    def __or__(self, other):
        return binary(R.bitwise_or, self, other)  # noqa: E704

    def __ror__(self, other):
        return binary(R.bitwise_or, other, self)  # noqa: E704

    def __xor__(self, other):
        return binary(R.bitwise_xor, self, other)  # noqa: E704

    def __rxor__(self, other):
        return binary(R.bitwise_xor, other, self)  # noqa: E704

    def __lshift__(self, other):
        return binary(R.bitwise_left_shift, self, other)  # noqa: E704

    def __rlshift__(self, other):
        return binary(R.bitwise_left_shift, other, self)  # noqa: E704

    def __rshift__(self, other):
        return binary(R.bitwise_right_shift, self, other)  # noqa: E704

    def __rrshift__(self, other):
        return binary(R.bitwise_right_shift, other, self)  # noqa: E704

    def __lt__(self, other):
        return binary(R.less, self, other)  # noqa: E704

    def __le__(self, other):
        return binary(R.less_equal, self, other)  # noqa: E704

    def __gt__(self, other):
        return binary(R.greater, self, other)  # noqa: E704

    def __ge__(self, other):
        return binary(R.greater_equal, self, other)  # noqa: E704

    def __eq__(self, other):
        return binary(R.equal, self, other)  # type: ignore[override]  # noqa: E704

    def __ne__(self, other):
        return binary(R.not_equal, self, other)  # type: ignore[override]  # noqa: E704

    def __neg__(self):
        return unary(R.negative, self)  # noqa: E704

    def __pos__(self):
        return unary(R.positive, self)  # noqa: E704

    def __abs__(self):
        return unary(R.abs, self)  # noqa: E704

    def __invert__(self):
        return unary(R.bitwise_invert, self)  # noqa: E704

    # In-place operators compute the result, then rebind this dual to it; a view, or a dual
    # with live views, writes the result into its buffers instead (NumPy semantics).
    def __iadd__(self, other):
        return self._inplace(self + other)  # noqa: E704

    def __isub__(self, other):
        return self._inplace(self - other)  # noqa: E704

    def __imul__(self, other):
        return self._inplace(self * other)  # noqa: E704

    def __itruediv__(self, other):
        return self._inplace(self / other)  # noqa: E704

    def __ifloordiv__(self, other):
        return self._inplace(self // other)  # noqa: E704

    def __imod__(self, other):
        return self._inplace(self % other)  # noqa: E704

    def __ipow__(self, other):
        return self._inplace(self**other)  # noqa: E704

    def __imatmul__(self, other):
        return self._inplace(self @ other)  # noqa: E704

    def __iand__(self, other):
        return self._inplace(self & other)  # noqa: E704

    def __ior__(self, other):
        return self._inplace(self | other)  # noqa: E704

    def __ixor__(self, other):
        return self._inplace(self ^ other)  # noqa: E704

    def __ilshift__(self, other):
        return self._inplace(self << other)  # noqa: E704

    def __irshift__(self, other):
        return self._inplace(self >> other)  # noqa: E704

    def _inplace(self, r: Any) -> Any:
        if type(r) is not DualTensor or r.level < self.level:
            return r  # a plain result: Python rebinds the name to it
        through = getattr(self, "_link", None) is not None or getattr(self, "_views", None)
        if r.level > self.level and not through:
            return r  # a dual of an inner transform: Python rebinds the name to it
        if r.shape != self.shape:
            raise ValueError(f"in-place operation would change the shape from {self.shape} to {r.shape}")
        if r.dtype != self.dtype:
            raise TypeError(
                f"in-place operation would change the dtype from {self.dtype} to {r.dtype}; "
                "the standard does not allow that, write x = x op y instead"
            )
        if through:
            FT._setitem(self, Ellipsis, r)  # reaches the base of a view and the views of a base
            return self
        self.primal, self._t, self._B, self.xp, self._owned = r.primal, r._t, r._B, r.xp, False
        return self

    # ------------------------------------------------------- copying, pickling
    def __copy__(self) -> DualTensor:
        """An independent dual: both share the buffers until either is written (copy-on-write)."""
        root = self
        while getattr(root, "_link", None) is not None:
            root = root._link[0]
        root._owned = self._owned = False
        return _make(self.primal, self._t, self.level, self._B, self._bxp)

    def __deepcopy__(self, memo: dict) -> DualTensor:
        import copy

        p = copy.deepcopy(self.primal, memo)
        d = _make(p, copy.deepcopy(self._t, memo), self.level, self._B, self._bxp)
        d._owned = True
        return d

    def __reduce__(self) -> tuple:
        # The namespaces are modules (not picklable): they are found again from the arrays.
        return (_rebuild, (self.primal, self._t, self.level, self._B))

    # --------------------------------------------------------------- indexing
    def __getitem__(self, key: Any) -> Any:
        return FT._getitem(self, key)

    def __setitem__(self, key: Any, value: Any) -> None:
        FT._setitem(self, key, value)

    # ------------------------------------------- NumPy's array methods (_numpy_protocols)
    # NumPy's signatures (d.sum(axis=0), d.reshape(2, 3), d.std(ddof=1)), through the namespace.
    reshape = _numpy_method("reshape")
    sum = _numpy_method("sum")
    mean = _numpy_method("mean")
    std = _numpy_method("std")
    var = _numpy_method("var")
    prod = _numpy_method("prod")
    max = _numpy_method("max")
    min = _numpy_method("min")
    cumsum = _numpy_method("cumsum")
    cumprod = _numpy_method("cumprod")
    dot = _numpy_method("dot")
    ravel = _numpy_method("ravel")
    flatten = _numpy_method("flatten")
    squeeze = _numpy_method("squeeze")
    transpose = _numpy_method("transpose")
    swapaxes = _numpy_method("swapaxes")
    astype = _numpy_method("astype")
    copy = _numpy_method("copy")
    clip = _numpy_method("clip")
    round = _numpy_method("round")
    all = _numpy_method("all")
    any = _numpy_method("any")
    conj = _numpy_method("conj")
    trace = _numpy_method("trace")
    diagonal = _numpy_method("diagonal")
    argmax = _numpy_method("argmax")
    argmin = _numpy_method("argmin")
    conjugate = conj
    real = property(_numpy_method("real"), doc="The real part (NumPy's attribute).")
    imag = property(_numpy_method("imag"), doc="The imaginary part (NumPy's attribute).")

    # ------------------------------------------------------------ lazy backends
    def compute(self, **kwargs: Any) -> DualTensor:
        """Evaluate a Dask-backed dual, primal and tangent in one graph (``parallel/dask.py``)."""
        return LAZY["compute"](self, **kwargs)

    def persist(self, **kwargs: Any) -> DualTensor:
        """Persist a Dask-backed dual's primal and tangent together (``parallel/dask.py``)."""
        return LAZY["persist"](self, **kwargs)


_new = object.__new__


def _make(p: Any, t: Any, level: int, B: int, bxp: ModuleType) -> DualTensor:
    """Build a result dual without validation (the hot path)."""
    d = _new(DualTensor)
    tp = type(p)
    if tp in _NP_SCALARS:  # NumPy gives scalars for 0-d results; the standard wants 0-d arrays
        p = _backend.zero_d(p)
    d.primal = p
    d._t = t
    d.level = level
    d._B = B
    d.xp = FT if tp is DualTensor else bxp
    d._bxp = bxp
    d._owned = False
    d._link = None
    return d


def _rebuild(p: Any, t: Any, level: int, B: int) -> DualTensor:
    """A dual from its pickled state: the backend namespace is derived from the primal again."""
    d = _make(p, t, level, B, namespace_of(innermost(p)))
    d._owned = True  # unpickled buffers belong to this dual alone
    return d


def share(x: DualTensor) -> None:
    """Mark ``x``'s buffers as shared (a result holds them): its next write, or its base's
    when it is a view, copies first instead of writing in place."""
    while True:
        x._owned = False
        link = getattr(x, "_link", None)
        if link is None:
            return
        x = link[0]


def make_dual(p: Any, t: Any, level: int, B: int, bxp: ModuleType) -> DualTensor:
    """A result of a rule: always a dual of ``level``, a constant (tangent None) when ``t`` is.

    Integer and boolean results are constants too, so the namespace stays closed; a
    constant keeps its level so that duals written into it keep their tangents.
    """
    return _make(p, t, level, B, bxp)


# Array types whose results ``constant`` wraps, with their backend namespace (filled lazily).
_CONST_NS: dict[type, ModuleType] = {}


def constant(out: Any) -> Any:
    """A backend result (array or tuple of arrays) as constants of the namespace, level 0.

    Used where no dual took part. Traced arrays (``ft.fuse``), duals, ``None`` and Python
    values pass unchanged.
    """
    tp = type(out)
    bxp = _CONST_NS.get(tp)
    if bxp is not None:  # the common case: an array type seen before
        return _make(out, None, USER_LEVEL, 0, bxp)
    if tp is DualTensor or tp in TRACED or out is None or tp in PY_SCALARS:
        return out
    if isinstance(out, (tuple, list)):
        items = [constant(o) for o in out]
        if isinstance(out, list):
            return items
        if hasattr(out, "_fields"):
            return type(out)(*items)
        return type(out)(items) if hasattr(type(out), "n_fields") else tuple(items)
    if tp in _NP_SCALARS:
        out = _backend.zero_d(out)
    elif not _backend.is_array(out):
        return out
    bxp = namespace_of(out)
    if getattr(bxp, "wraps", None) is not None:  # a tracing namespace's array
        return out
    _CONST_NS[type(out)] = bxp
    return _make(out, None, USER_LEVEL, 0, bxp)


def bare(x: Any) -> Any:
    """``x`` without the levels that carry no tangent: a constant's array, a dual's lowest
    level that still carries one (the same value to every level above it)."""
    while type(x) is DualTensor and x._t is None:
        x = x.primal
    return x


def carries_tangent(x: Any) -> bool:
    """True when ``x`` is a dual with a tangent at some level (not a symbolic zero)."""
    while type(x) is DualTensor:
        if x._t is not None:
            return True
        x = x.primal
    return False


def _check_tangent(bxp: ModuleType, p: Any, tangent: Any, batched: bool) -> Any:
    """Validate a user tangent against its primal; return it with the batch axis."""
    if type(tangent) is DualTensor:
        raise TypeError("a tangent cannot be a DualTensor here; nest derivatives with ft.jvp")
    if not _backend.is_array(tangent):
        tangent = bxp.asarray(tangent, dtype=p.dtype, device=array_api_compat.device(p))
    elif namespace_of(tangent) is not bxp:
        raise _errors.backend_mismatch(p, tangent)
    if tangent.dtype != p.dtype:
        raise _errors.tangent_dtype(p.dtype, tangent.dtype)
    want = tuple(p.shape)
    got = tuple(tangent.shape)
    if (got[1:] != want or len(got) == 0) if batched else got != want:
        raise _errors.tangent_shape(want, got, batched)
    dp, dt = array_api_compat.device(p), array_api_compat.device(tangent)
    if dp != dt:
        raise _errors.device_mismatch(dp, dt)
    return tangent if batched else bxp.reshape(tangent, (1, *want))


def innermost(x: Any) -> Any:
    """The plain backend array under any number of dual levels."""
    while type(x) is DualTensor:
        x = x.primal
    return x


def zeros_tangent(x: Any, B: int) -> Any:
    """An explicit zero tangent of B directions for ``x`` (a dual or an array)."""
    if type(x) is DualTensor:
        xp, p = x._bxp, x.primal
    else:
        xp, p = namespace_of(x), x
    return xp.zeros((B, *p.shape), dtype=p.dtype, device=array_api_compat.device(p))


# ------------------------------------------------------------------ dispatch
def _check_const(bxp: ModuleType, ref: Any, c: Any) -> None:
    """Refuse a constant operand that comes from another Array API library."""
    if type(c) is DualTensor:
        if c._bxp is bxp:
            return
        c = bare(c)  # a constant: its array is checked (a tracer's backend accepts it)
        if type(c) is DualTensor:
            raise _errors.backend_mismatch(ref, c.primal)
    if not isinstance(c, PY_SCALARS) and namespace_of(c) is not bxp:
        if namespace_of(c) is getattr(bxp, "wraps", None):  # sparsity detection's namespace
            return
        raise _errors.backend_mismatch(ref, c)


def expand(d: Any) -> Any:
    """Give a derivative array a unit batch axis so it multiplies a tangent cheaply."""
    if type(d) in _SCALAR_TYPES or not d.ndim:  # 0-d broadcasts as it is
        return d
    return d[None, ...]


def _fn(rule: Rule, xp: ModuleType) -> Any:
    """The backend function of an elementwise rule (cached per namespace)."""
    fn = rule.cache.get(xp)
    if fn is None:
        try:
            fn = rule.cache[xp] = getattr(xp, rule.name)
        except AttributeError:
            raise _errors.missing_function(rule.name, xp) from None
    return fn


def _times(xp: ModuleType, t: Any, d: Any) -> Any:
    """``t * d`` for a partial derivative ``d`` (array, scalar or marker); None if zero."""
    if d is ONE or d is None:
        return t if d is ONE else None
    if d is MINUS_ONE:
        return xp.negative(t)
    # Broadcasting aligns d (shape S) with t (B, *S) from the right, so expanding d is
    # only a speed-up: NumPy multiplies equal-rank operands about twice as fast when tiny.
    tp = type(d)
    if tp is DivBy:
        d = d.x
        return xp.divide(t, d if type(d) in PY_SCALARS or d.ndim == 0 else d[None, ...])
    return xp.multiply(t, d if tp in PY_SCALARS or d.ndim == 0 else d[None, ...])


def _fits(d: Any, t: Any) -> bool:
    """True when ``d`` is an array that can hold ``t[0] * d`` in place."""
    return type(d) not in _NOT_ARRAYS and d.shape == t.shape[1:] and d.dtype == t.dtype


def add_into(xp: ModuleType, u: Any, v: Any) -> Any:
    """``u + v``, written into ``u`` when ``u`` is a fresh temporary of the same shape and dtype."""
    if xp is not FT and u.shape == v.shape and ((dt := u.dtype) is v.dtype or dt == v.dtype):
        u += v
        return u
    return xp.add(u, v)


def unary(rule: Rule, x: Any) -> Any:
    """Apply a one-argument elementwise rule."""
    if DEBUG_NANS and DEBUG.outermost():
        return DEBUG.run(unary, rule, (x,), x)
    if type(x) is not DualTensor:
        return constant(_fn(rule, namespace_of(x))(x))
    if _fused.enabled and (r := _fused.unary(rule, x)) is not None:
        return r  # one CuPy kernel for primal and tangent (opt-in, see _fused)
    xp = x.xp
    p = x.primal
    y = (rule.cache.get(xp) or _fn(rule, xp))(p)
    x._owned = False  # the result may share x's buffers: x's next write copies them
    t = x._t
    bxp = x._bxp
    if t is not None and rule.kind == "diff":
        jvp = rule.jvp
        if jvp is not None:
            t = jvp(xp, p, y, t)
            if t is not None and t is x._t:  # the result hands on x's tangent buffer (astype)
                share(x)
        else:
            d = rule.d(xp, p, y)
            # A derivative that is neither x nor y is a temporary of this rule: with one
            # direction, multiply into it in place instead of allocating (page faults on
            # large fresh buffers cost as much as the arithmetic). It must be an array of
            # the primal's type (not a scalar or marker), shape and the tangent's dtype.
            if (
                d is not p
                and d is not y
                and xp is bxp
                and type(d) is type(p)
                and (not x._B or t.shape[0] == 1)
                and d.shape == p.shape
                and ((dt := d.dtype) is t.dtype or dt == t.dtype)
            ):
                d = d[None, ...]  # a view of the temporary with the tangent's shape (1, *S)
                d *= t
                t = d
            else:
                t = _times(xp, t, d)
                if t is not None and t is x._t:  # the result hands on x's tangent buffer
                    share(x)
    else:
        t = None
    # _make, inlined (this is the hottest path)
    r = _new(DualTensor)
    tp = type(y)
    if tp in _NP_SCALARS:
        y = _backend.zero_d(y)
    r.primal = y
    r._t = t
    r.level = x.level
    r._B = x._B
    r.xp = FT if tp is DualTensor else bxp
    r._bxp = bxp
    r._owned = False
    r._link = None
    return r


def binary(rule: Rule, a: Any, b: Any) -> Any:
    """Apply a two-argument elementwise rule (operands broadcast, scalars allowed)."""
    if DEBUG_NANS and DEBUG.outermost():
        return DEBUG.run(binary, rule, (a, b), a, b)
    if _fused.enabled and (r := _fused.binary(rule, a, b)) is not None:
        return r
    full = False  # True when the tangent is known to have the result's full shape
    # Each dual operand's buffers may be shared by the result: its next write copies them
    # (``_owned = False``, set before the call: a failed call only costs a later copy).
    if type(a) is DualTensor:
        a._owned = False
        if type(b) is not DualTensor:  # the common case: a dual and a plain array or scalar
            pa, ta, pb, tb = a.primal, a._t, b, None
            bxp, B, level = a._bxp, a._B, a.level
            full = type(b) in _SCALAR_TYPES  # a scalar operand keeps the dual's shape
            if not full and type(b) is not type(pa):
                _check_const(bxp, pa, b)
        else:
            b._owned = False
            level = a.level
            if b.level == level:
                pa, ta, pb, tb = a.primal, a._t, b.primal, b._t
                bxp = a._bxp
                if b._bxp is not bxp:
                    raise _errors.backend_mismatch(pa, pb)
                B = a._B if a._B >= b._B else b._B
            elif b.level > level:  # a is a constant for b: only its value counts
                pa, ta, pb, tb = bare(a), None, b.primal, b._t
                bxp, B, level = b._bxp, b._B, b.level
                if a._bxp is not bxp:
                    _check_const(bxp, pb, a)
            else:  # b is a constant for a
                pa, ta, pb, tb = a.primal, a._t, bare(b), None
                bxp, B = a._bxp, a._B
                if b._bxp is not bxp:
                    _check_const(bxp, pa, b)
    elif type(b) is DualTensor:
        b._owned = False
        pa, ta, pb, tb = a, None, b.primal, b._t
        bxp, B, level = b._bxp, b._B, b.level
        full = type(a) in _SCALAR_TYPES
        if not full and type(a) is not type(pb):
            _check_const(bxp, pb, a)
    else:
        src = a if type(a) not in _SCALAR_TYPES and type(b) not in TRACED else b
        return constant(_fn(rule, namespace_of(src))(a, b))

    xp = FT if (type(pa) is DualTensor or type(pb) is DualTensor) else bxp
    y = (rule.cache.get(xp) or _fn(rule, xp))(pa, pb)
    t = None
    if rule.kind == "diff" and (ta is not None or tb is not None):
        nd = y.ndim + 1
        if ta is not None and ta.ndim != nd:
            ta = align(xp, ta, nd - 1)
        if tb is not None and tb.ndim != nd:
            tb = align(xp, tb, nd - 1)
        if ta is not None and tb is not None and rule.jvp is not None:
            # both operands carry tangents: the rule's one-expression form (add, multiply...),
            # whose result has the full shape (B, *y.shape) and the result's dtype
            t = rule.jvp(xp, pa, pb, y, ta, tb)
        else:
            if ta is not None:
                d = rule.d1(xp, pa, pb, y)
                if d is ONE:  # the result hands on a's tangent buffer
                    t = ta
                    share(a)
                else:
                    t = _times(xp, ta, d)
            if tb is not None:
                d = rule.d2(xp, pa, pb, y)
                if t is not None and d is MINUS_ONE:
                    t = xp.subtract(t, tb)  # one pass instead of negate-then-add
                else:
                    t2 = _times(xp, tb, d)
                    if t2 is not None:
                        if d is ONE and t is None:
                            share(b)
                        t = t2 if t is None else xp.add(t, t2)
            if t is not None:
                # With both tangents present the sum already has the full shape (B, *y.shape).
                if not full and (ta is None or tb is None) and t.shape[1:] != y.shape:
                    t = xp.broadcast_to(t, (t.shape[0], *y.shape))
                if (dt := t.dtype) is not y.dtype and dt != y.dtype:
                    t = xp.astype(t, y.dtype)  # the lower-precision operand's tangent: promote it
    # _make, inlined (this is the hottest path)
    r = _new(DualTensor)
    tp = type(y)
    if tp in _NP_SCALARS:
        y = _backend.zero_d(y)
    r.primal = y
    r._t = t
    r.level = level
    r._B = B
    r.xp = FT if tp is DualTensor else bxp
    r._bxp = bxp
    r._owned = False
    r._link = None
    return r


# ----------------------------------------------------------- general rules
def _top_level(arrays: tuple) -> DualTensor | None:
    """The dual of the highest level among ``arrays`` (None when there is none)."""
    top = None
    for a in arrays:
        if type(a) is DualTensor and (top is None or a.level > top.level):
            top = a
    return top


def split(arrays: tuple, top: DualTensor) -> tuple[list, list, int, ModuleType, ModuleType, bool]:
    """Primals and tangents of ``arrays`` at ``top``'s level; everything else is constant.

    Also returns the batch size, the namespace to compute with, the backend namespace, and
    whether any tangent is present (so that constants skip the rule's JVP).
    """
    level, bxp = top.level, top._bxp
    primals, tangents = [], []
    B = 0
    nested = False
    any_t = False
    for a in arrays:
        if type(a) is DualTensor:
            if a._bxp is not bxp:
                raise _errors.backend_mismatch(top.primal, a.primal)
            if a.level == level:
                p, t = a.primal, a._t
                a._owned = False  # the result may share a's buffers: a's next write copies
                B = B if B >= a._B else a._B
                any_t = any_t or t is not None
            else:
                p, t = bare(a), None  # a lower level is a constant here: only its value counts
        else:
            if a is not None and not isinstance(a, PY_SCALARS) and type(a) is not type(top.primal):
                _check_const(bxp, top.primal, a)
            p, t = a, None
        nested = nested or type(p) is DualTensor
        primals.append(p)
        tangents.append(t)
    return primals, tangents, B, (FT if nested else bxp), bxp, any_t


def wrap(out: Any, tout: Any, level: int, B: int, bxp: ModuleType) -> Any:
    """Pair a rule's primal output (array or tuple of arrays) with its tangent output."""
    if not isinstance(out, (tuple, list)):
        if out is None or type(out) in _SCALAR_TYPES:
            return out
        return _make(out, tout, level, B, bxp)
    touts = (None,) * len(out) if tout is None else tout
    items = [wrap(o, t, level, B, bxp) for o, t in zip(out, touts)]
    if isinstance(out, list):
        return items
    if hasattr(out, "_fields"):
        return type(out)(*items)
    # torch.return_types are C struct sequences: named, but built from one sequence
    return type(out)(items) if hasattr(type(out), "n_fields") else tuple(items)


def apply(rule: Rule, arrays: tuple, params: dict) -> Any:
    """Apply a general rule to the array arguments ``arrays`` with keyword ``params``."""
    if DEBUG_NANS and DEBUG.outermost():
        return DEBUG.run(apply, rule, (*arrays, *params.values()), arrays, params)
    if params:
        for k, v in params.items():
            if type(v) is DualTensor and v._t is None:  # a constant as indices, axis, shape...
                params[k] = _param(bare(v))
    if len(arrays) == 1:  # one array argument (sum, reshape, getitem...): split inline
        top = arrays[0]
        if type(top) is not DualTensor:
            return constant(rule.f(_plain_namespace(arrays, params), *arrays, **params))
        p, t = top.primal, top._t
        top._owned = False  # the result may share its buffers: its next write copies
        primals, tangents, B, bxp, any_t = [p], [t], top._B, top._bxp, t is not None
        xp = FT if type(p) is DualTensor else bxp
    else:
        top = _top_level(arrays)
        if top is None:
            xp = _plain_namespace(arrays, params)
            return constant(rule.f(xp, *arrays, **params))
        primals, tangents, B, xp, bxp, any_t = split(arrays, top)
    try:
        if rule.kind != "diff" or not any_t:
            return wrap(rule.f(xp, *primals, **params), None, top.level, B, bxp)
        out, tout = rule.jvp(xp, primals, tangents, **params)
        for a, t in zip(arrays, tangents):
            if t is not None and t is tout:  # the result hands on a's tangent buffer (astype)
                share(a)
    except AttributeError as exc:  # the backend lacks a function the rule needs
        if isinstance(getattr(exc, "obj", None), ModuleType):
            raise _errors.missing_function(exc.name, exc.obj) from exc
        raise
    except Exception as exc:  # name the devices where the backend's message does not
        err = _device_error(arrays)
        if err is not None:
            raise err from exc
        raise
    return wrap(out, tout, top.level, B, bxp)


def _param(v: Any) -> Any:
    """A constant's array given as a parameter: a 0-d integer one is the Python int it
    stands for (``axis=``, ``n=``), which every backend takes."""
    if getattr(v, "ndim", None) == 0:
        try:
            return operator.index(v)
        except TypeError:  # not an integer
            pass
    return v


def _device_error(arrays: tuple) -> Exception | None:
    """A device-mismatch error naming two different devices among ``arrays``, else None."""
    first = None
    for a in arrays:
        if a is None or isinstance(a, PY_SCALARS):
            continue
        try:
            d = array_api_compat.device(a)
        except Exception:  # not an array: the backend's own error stands
            continue
        if first is None:
            first = d
        elif d != first:
            return _errors.device_mismatch(first, d)
    return None


def _plain_namespace(arrays: tuple, params: dict) -> ModuleType:
    """The backend of the first array argument (NumPy when there is none); a traced array
    (``ft.fuse``) wins over the arrays its program closes over."""
    found = None
    for a in arrays:
        if a is not None and not isinstance(a, PY_SCALARS):
            if type(a) in TRACED:
                return namespace_of(a)
            found = found or namespace_of(a)
    return found or _backend.default_numpy()
