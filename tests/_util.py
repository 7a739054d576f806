"""Shared test helpers: backends, random inputs from a rule's domain, reference derivatives."""

from __future__ import annotations

import math
from typing import Any

import array_api_compat
import numpy as np

import fwdtensor as ft


class Backend:
    """A backend under test: its namespace and conversions to and from NumPy."""

    def __init__(self, name: str) -> None:
        self.name = name
        if name == "numpy":
            import array_api_compat.numpy as xp
        elif name == "array_api_strict":
            import array_api_strict as xp
        elif name == "torch":
            import array_api_compat.torch as xp
        elif name == "cupy":
            import array_api_compat.cupy as xp
        else:  # pragma: no cover
            raise ValueError(name)
        self.xp = xp

    def __repr__(self) -> str:
        return f"Backend({self.name})"

    def dtype(self, name: str) -> Any:
        return getattr(self.xp, name)

    def asarray(self, a: Any, dtype: str | None = None) -> Any:
        a = np.asarray(a)
        if dtype is not None:
            a = a.astype(dtype)
        return self.xp.asarray(a) if self.name != "cupy" else self.xp.asarray(a)

    def to_numpy(self, a: Any) -> np.ndarray:
        return to_numpy(a)


def is_constant(a: Any) -> bool:
    """True for a constant of the namespace: a dual with no tangent at any level."""
    if not isinstance(a, ft.DualTensor):
        return False
    while isinstance(a, ft.DualTensor):
        if a._t is not None:
            return False
        a = a.primal
    return True


def to_numpy(a: Any) -> np.ndarray:
    """Any backend array (or dual: its primal) as a NumPy array, copying from devices."""
    while isinstance(a, ft.DualTensor):
        a = a.primal
    if isinstance(a, (int, float, complex, np.generic)):
        return np.asarray(a)
    if array_api_compat.is_cupy_array(a):
        return a.get()
    if array_api_compat.is_torch_array(a):
        return a.detach().cpu().resolve_conj().resolve_neg().numpy()  # torch's lazy conj/neg views
    if isinstance(a, np.ndarray):
        return a
    return np.from_dlpack(a)


# ----------------------------------------------------------------- domains
def sample(domain: str, shape: tuple, dtype: str, rng: np.random.Generator, arg: int = 0) -> np.ndarray:
    """Random values of a function's domain (named in its rule) as a NumPy array."""
    real = dtype.startswith("float")
    n = math.prod(shape)

    def u(lo: float, hi: float) -> np.ndarray:
        return rng.uniform(lo, hi, n)

    if domain in ("real", "matmul", "matrix"):
        v = u(-2, 2)
    elif domain == "positive":
        v = u(0.2, 3)
    elif domain == "unit":
        v = u(-0.9, 0.9)
    elif domain == "gt1":
        v = u(1.2, 3)
    elif domain == "gtm1":
        v = u(-0.8, 3)
    elif domain == "tan":
        v = u(-1.2, 1.2)
    elif domain == "nonzero":
        v = u(0.3, 2) * rng.choice([-1, 1], n)
    elif domain == "nonzero2":  # second argument away from 0 and from integer ratios
        v = u(-2, 2) if arg == 0 else u(0.3, 2) * rng.choice([-1, 1], n)
    elif domain == "pow":
        v = u(0.3, 2) if arg == 0 else u(-1.5, 1.5)
    else:
        raise ValueError(f"unknown domain {domain!r}")
    if not real:
        v = v + 1j * 0.5 * u(-1, 1) if domain not in ("positive", "pow") else v * np.exp(0.3j * u(-1, 1))
    return v.reshape(shape).astype(dtype)


def tolerances(dtype: str) -> tuple[float, float]:
    """(rtol, atol) for comparing a tangent with a float64 finite-difference reference."""
    return (2e-6, 2e-7) if dtype in ("float64", "complex128") else (3e-3, 3e-4)


def central_difference(
    f: Any, args: list[np.ndarray], dirs: list[np.ndarray | None], h: float = 1e-5
) -> np.ndarray:
    """Fourth-order central difference of ``f`` (NumPy float64/complex128) along ``dirs``."""

    def at(s: float) -> np.ndarray:
        return np.asarray(f(*[a if d is None else a + s * d for a, d in zip(args, dirs)]))

    return (8 * (at(h) - at(-h)) - (at(2 * h) - at(-2 * h))) / (12 * h)


def assert_close(got: Any, want: Any, dtype: str, what: str = "") -> None:
    rtol, atol = tolerances(dtype)
    g, w = to_numpy(got), np.asarray(want)
    scale = max(1.0, float(np.max(np.abs(w)))) if w.size else 1.0
    np.testing.assert_allclose(g, w, rtol=rtol, atol=atol * scale, err_msg=what)


def elementwise_derivative(f: Any, order: int = 1) -> Any:
    """The ``order``-th derivative of an elementwise ``f`` at every element of an array at once.

    ``ft.derivative`` takes one number; for an elementwise function the derivative at each
    element is the JVP along a direction of ones, nested ``order`` times.
    """

    def d(h: Any) -> Any:
        def dh(x: Any) -> Any:
            inner = x
            while isinstance(inner, ft.DualTensor):
                inner = inner.primal
            xp = array_api_compat.array_namespace(inner)
            one = xp.ones(inner.shape, dtype=inner.dtype, device=array_api_compat.device(inner))
            return ft.jvp(h, (x,), (one,))[1]

        return dh

    g = f
    for _ in range(order):
        g = d(g)
    return g
