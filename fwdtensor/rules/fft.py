"""The ``fft`` extension: every transform is linear over the reals, so its tangent is the
same transform of the tangent, with the axis arguments moved past the batch axis.

That holds for the real-to-complex (``rfft``, ``ihfft``) and complex-to-real (``irfft``,
``hfft``) transforms too: ``irfft`` ignores the imaginary part of the zero-frequency
(and Nyquist) term, which is an R-linear projection that the tangent goes through as
well because the very same function is applied to it. ``fftfreq``/``rfftfreq`` make new
arrays from integers and carry no tangent (unless the spacing ``d`` is a dual).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from ..core import backend as _backend
from ..core import dual as _core
from ..core.batch import shift_axis
from ..core.dual import DualTensor
from ._forms import Rule, linear, resolve

# Libraries whose Array API namespace is array-api-compat's wrapper, not the library itself.
_WRAPPED = frozenset({"numpy", "cupy", "torch", "dask"})
# Namespaces whose fftfreq/rfftfreq refuse every device but "cpu" (array-api-compat 1.16 for
# CuPy): build on the default device there and move the (n-element) result.
_FREQ_WITHOUT_DEVICE = frozenset({"array_api_compat.cupy"})


def _shifted(axes: Any, nd: int) -> tuple:
    """The tangent's axes for the primal's ``axes`` (an int or any sequence of ints)."""
    if isinstance(axes, int):
        return shift_axis(axes, nd)
    return tuple(shift_axis(a, nd) for a in axes)


def _nd_axes(axes: Any, s: Any, nd: int) -> tuple:
    """The tangent's axes for an n-d transform; never the batch axis, even when ``axes`` is None."""
    if axes is not None:
        return _shifted(axes, nd)
    if s is not None:  # the last len(s) axes, as every backend does; explicit, as NumPy 2 asks
        return tuple(range(-len(s), 0))
    return tuple(range(1, nd + 1))


def _t_1d(name: str) -> Callable:
    """The tangent of a one-axis transform (``fft``, ``rfft``, ``hfft``, ...)."""

    def tangent(xp: Any, t: Any, *, axis: int = -1, **kw: Any) -> Any:
        return resolve(xp, name)(t, axis=shift_axis(axis, t.ndim - 1), **kw)

    return tangent


def _t_nd(name: str) -> Callable:
    """The tangent of an n-axis transform (``fftn``, ``rfftn``, ``irfftn``, ``ifftn``)."""

    def tangent(xp: Any, t: Any, *, s: Any = None, axes: Any = None, **kw: Any) -> Any:
        if s is not None:
            kw["s"] = s
        return resolve(xp, name)(t, axes=_nd_axes(axes, s, t.ndim - 1), **kw)

    return tangent


def _t_shift(name: str) -> Callable:
    """The tangent of ``fftshift``/``ifftshift``: axes None means the primal's axes only."""

    def tangent(xp: Any, t: Any, *, axes: Any = None) -> Any:
        nd = t.ndim - 1
        return resolve(xp, name)(t, axes=tuple(range(1, nd + 1)) if axes is None else _shifted(axes, nd))

    return tangent


def _device_namespace(device: Any) -> ModuleType:
    """The namespace whose arrays live on ``device``: a function without array arguments
    has nothing else to tell the backend by."""
    if isinstance(device, str):  # NumPy's only device is the string "cpu"
        return _backend.default_numpy()
    top = type(device).__module__.partition(".")[0]
    if top in _WRAPPED:
        return importlib.import_module(f"array_api_compat.{top}")
    ns = sys.modules.get(top)
    if ns is None or not hasattr(ns, "__array_api_version__"):
        raise TypeError(
            f"cannot tell which Array API library the device {device!r} belongs to; "
            "pass a device taken from an array (x.device) of a supported library"
        )
    return ns


def _plain_freq(ns: ModuleType, name: str, n: int, d: Any, kw: dict) -> Any:
    """The backend's ``fftfreq``/``rfftfreq``, on ``kw["device"]`` even where it refuses devices."""
    if "device" in kw and ns.__name__ in _FREQ_WITHOUT_DEVICE:
        kw = dict(kw)
        device = kw.pop("device")
        return ns.asarray(resolve(ns, name)(n, d=d, **kw), device=device)
    return resolve(ns, name)(n, d=d, **kw)


def _freq(name: str) -> Callable:
    """``fftfreq``/``rfftfreq``: a plain array, or ``freq(n, 1) / d`` when ``d`` is a dual."""

    def f(xp: Any, n: int, d: Any = 1.0, dtype: Any = None, device: Any = None) -> Any:
        kw = {k: v for k, v in (("dtype", dtype), ("device", device)) if v is not None}
        if type(d) is DualTensor:  # differentiate in the sample spacing: freq scales as 1/d
            kw.setdefault("dtype", d.dtype)
            kw.setdefault("device", d.device)
            return _core.FT.divide(_plain_freq(d._bxp, name, n, 1.0, kw), d)
        return _plain_freq(xp if device is None else _device_namespace(device), name, n, d, kw)

    return f


def _freq_rule(name: str) -> Rule:
    """A rule without array arguments: the core calls ``f`` directly, never a tangent rule."""
    note = "A new array of sample frequencies; a dual spacing d is differentiated."
    params = ("n", "d", "dtype", "device")
    return Rule(name, "general", "nondiff", _freq(name), args=(), params=params, dtypes="real", note=note)


_1D = ("n", "axis", "norm")
_ND = ("s", "axes", "norm")

RULES: tuple[Rule, ...] = (
    linear("fft.fft", _t_1d("fft.fft"), params=_1D, dtypes="complex"),
    linear("fft.ifft", _t_1d("fft.ifft"), params=_1D, dtypes="complex"),
    linear("fft.fftn", _t_nd("fft.fftn"), params=_ND, dtypes="complex"),
    linear("fft.ifftn", _t_nd("fft.ifftn"), params=_ND, dtypes="complex"),
    linear("fft.rfft", _t_1d("fft.rfft"), params=_1D, dtypes="real"),
    linear("fft.irfft", _t_1d("fft.irfft"), params=_1D, dtypes="complex"),
    linear("fft.rfftn", _t_nd("fft.rfftn"), params=_ND, dtypes="real"),
    linear("fft.irfftn", _t_nd("fft.irfftn"), params=_ND, dtypes="complex"),
    linear("fft.hfft", _t_1d("fft.hfft"), params=_1D, dtypes="complex"),
    linear("fft.ihfft", _t_1d("fft.ihfft"), params=_1D, dtypes="real"),
    linear("fft.fftshift", _t_shift("fft.fftshift"), params=("axes",)),
    linear("fft.ifftshift", _t_shift("fft.ifftshift"), params=("axes",)),
    _freq_rule("fft.fftfreq"),
    _freq_rule("fft.rfftfreq"),
)
