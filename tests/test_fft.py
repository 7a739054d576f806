"""The ``fft`` extension on duals: every transform against the backend's own function and
finite differences, batched against stacked single tangents, for 1-D, 2-D and 3-D inputs
and several n/axis/axes/s/norm choices, on every backend; plus fftfreq, Jacobians of
real composites, nested derivatives and the backends' own errors for bad axes."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

import fwdtensor as ft
from fwdtensor.rules import fft as fft_rules
from tests._util import assert_close, central_difference, is_constant, sample, to_numpy

RULES = {r.name.removeprefix("fft."): r for r in fft_rules.RULES}
STANDARD_FFT = """fft ifft fftn ifftn rfft irfft rfftn irfftn hfft ihfft fftfreq rfftfreq fftshift
ifftshift""".split()
S_WITHOUT_AXES = "ignore:`axes` should not be `None`:DeprecationWarning"  # NumPy 2 deprecates it

# (function, input shape, keyword arguments): every norm, n cropping and padding, axes
# given in any order and sign, and s with and without axes.
CASES = [
    ("fft", (8,), {}),
    ("fft", (3, 6), {"axis": 0, "norm": "ortho"}),
    ("fft", (2, 3, 5), {"n": 7, "axis": 1, "norm": "forward"}),
    ("fft", (4, 5), {"n": 3}),
    ("ifft", (7,), {"norm": "ortho"}),
    ("ifft", (3, 4, 2), {"n": 6, "axis": -3}),
    ("ifft", (4, 5), {"norm": "forward"}),
    ("fftn", (3, 4), {}),
    ("fftn", (2, 3, 4), {"axes": (0, 2), "norm": "ortho"}),
    ("fftn", (2, 3, 4), {"s": (5, 2), "axes": (-1, 0), "norm": "forward"}),
    ("fftn", (2, 3, 4), {"s": (3, 5)}),  # s without axes: the last len(s) axes
    ("ifftn", (3, 4, 5), {}),
    ("ifftn", (4, 6), {"s": (3,), "axes": (0,), "norm": "ortho"}),
    ("ifftn", (5,), {"norm": "forward"}),
    ("rfft", (8,), {}),
    ("rfft", (3, 7), {"axis": 0, "n": 6, "norm": "ortho"}),
    ("rfft", (2, 3, 5), {"n": 9, "norm": "forward"}),
    ("irfft", (5,), {}),
    ("irfft", (3, 4), {"n": 7, "axis": 0, "norm": "ortho"}),
    ("irfft", (2, 4, 3), {"n": 4, "axis": 1, "norm": "forward"}),
    ("rfftn", (4, 6), {}),
    ("rfftn", (2, 3, 4), {"s": (4, 5), "axes": (2, 0), "norm": "ortho"}),
    ("rfftn", (3, 4, 5), {"axes": (1,), "norm": "forward"}),
    ("irfftn", (4, 3), {}),
    ("irfftn", (2, 3, 4), {"s": (4, 6), "axes": (0, 2), "norm": "ortho"}),
    ("irfftn", (3, 4, 5), {"s": (3, 5), "norm": "forward"}),  # s without axes
    ("hfft", (5,), {}),
    ("hfft", (4, 3), {"n": 6, "axis": 0, "norm": "ortho"}),
    ("hfft", (2, 3, 4), {"n": 5, "norm": "forward"}),
    ("ihfft", (8,), {}),
    ("ihfft", (5, 4), {"axis": 0, "n": 7, "norm": "ortho"}),
    ("ihfft", (2, 3, 6), {"axis": 1, "norm": "forward"}),
    ("fftshift", (7,), {}),
    ("fftshift", (4, 5), {"axes": 0}),
    ("fftshift", (2, 3, 4), {"axes": (0, -1)}),
    ("ifftshift", (6,), {}),
    ("ifftshift", (3, 4, 5), {"axes": [1]}),
    ("ifftshift", (4, 5), {}),
]


def dtypes_of(name: str) -> list[str]:
    """Input dtypes the standard allows for ``name``, double and single precision."""
    kind = RULES[name].dtypes
    if kind == "complex":
        return ["complex128", "complex64"]
    return ["float64", "float32"] + (["complex128", "complex64"] if kind == "float" else [])


def cases():
    for i, (name, shape, kw) in enumerate(CASES):
        for dt in dtypes_of(name):
            yield pytest.param(name, shape, kw, dt, id=f"{name}-{i}-{dt}")


def _wide(dtype: str) -> str:
    return "complex128" if dtype.startswith("complex") else "float64"


def _ref(name: str, kw: dict):
    """NumPy's own transform (float64/complex128) as the finite-difference reference."""
    return lambda a: getattr(np.fft, name)(a, **kw)


@pytest.mark.filterwarnings(S_WITHOUT_AXES)
@pytest.mark.parametrize("name,shape,kw,dtype", list(cases()))
def test_transform(name, shape, kw, dtype, backend):
    seed = zlib.crc32(f"{name} {shape} {dtype}".encode())  # deterministic across processes, unlike hash()
    rng = np.random.default_rng(seed)
    fn = getattr(ft.fft, name)
    x = sample("real", shape, dtype, rng)  # complex dtypes get complex values and directions
    v = sample("real", shape, dtype, rng)
    xb = backend.asarray(x)
    out = fn(ft.DualTensor(xb, backend.asarray(v)), **kw)
    want = getattr(backend.xp.fft, name)(xb, **kw)
    assert out.dtype == want.dtype and tuple(out.tangent.shape) == tuple(want.shape)
    assert out.tangent.dtype == out.dtype
    np.testing.assert_allclose(to_numpy(out.primal), to_numpy(want), rtol=1e-12, atol=0)
    w = _wide(dtype)
    ref = central_difference(_ref(name, kw), [x.astype(w)], [v.astype(w)])
    assert_close(out.tangent, ref, dtype, f"{name}{kw} {dtype} on {backend.name} (seed {seed})")

    # B = 3 directions in one pass equal three single passes (the batch axis is never
    # transformed, shifted or cropped).
    vs = np.stack([sample("real", shape, dtype, rng) for _ in range(3)])
    batched = fn(ft.DualTensor(xb, backend.asarray(vs), batched=True), **kw)
    assert tuple(batched.tangent.shape) == (3, *want.shape)
    tb = to_numpy(batched.tangent)
    for b in range(3):
        single = to_numpy(fn(ft.DualTensor(xb, backend.asarray(vs[b])), **kw).tangent)
        tol = 1e-12 if w == dtype else 1e-5
        np.testing.assert_allclose(tb[b], single, rtol=tol, atol=tol * max(1.0, np.abs(single).max()))


@pytest.mark.parametrize("name", ["fft", "ifft", "fftn", "ifftn", "irfft", "hfft", "irfftn"])
def test_real_input_where_the_backend_allows_it(name, backend):
    # The standard asks for complex input; NumPy and torch also take real input, and the
    # result must then be the same; array-api-strict refuses it with its own TypeError.
    rng = np.random.default_rng(1)
    x, v = sample("real", (3, 4), "float64", rng), sample("real", (3, 4), "float64", rng)
    fn = getattr(ft.fft, name)
    xb = backend.asarray(x)
    try:
        want = getattr(backend.xp.fft, name)(xb)
    except TypeError as exc:
        with pytest.raises(TypeError, match=str(exc)):
            fn(ft.DualTensor(xb, backend.asarray(v)))
        return
    out = fn(ft.DualTensor(xb, backend.asarray(v)))
    np.testing.assert_allclose(to_numpy(out.primal), to_numpy(want), rtol=1e-12)
    assert_close(out.tangent, central_difference(_ref(name, {}), [x], [v]), "float64", name)


@pytest.mark.parametrize(
    "name,kw",
    [
        ("fft", {"axis": 2}),
        ("ifft", {"axis": -3}),
        ("rfft", {"axis": 5}),
        ("hfft", {"axis": 2}),
        ("fftn", {"axes": (0, 4)}),
        ("rfftn", {"axes": (-3,)}),
        ("irfftn", {"axes": (2, 0)}),
        ("fftshift", {"axes": 2}),
        ("ifftshift", {"axes": (0, -4)}),
    ],
    ids=lambda p: p if isinstance(p, str) else str(p),
)
def test_bad_axis_raises_the_backends_exception(name, kw, backend):
    dtype = dtypes_of(name)[0]
    xb = backend.asarray(sample("real", (3, 4), dtype, np.random.default_rng(2)))
    d = ft.DualTensor(xb, xb)
    try:
        getattr(backend.xp.fft, name)(xb, **kw)
    except Exception as exc:
        with pytest.raises(type(exc)) as ours:
            getattr(ft.fft, name)(d, **kw)
        assert type(ours.value) is type(exc) and str(ours.value) == str(exc)
        return
    # CuPy (14.2) transforms a 1-D fft along an out-of-range axis without complaint; the
    # tangent refuses it rather than guess which axis the primal used
    with pytest.raises(IndexError, match="out of bounds"):
        getattr(ft.fft, name)(d, **kw)


@pytest.mark.parametrize("name", ["fftfreq", "rfftfreq"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_frequencies(name, dtype, backend):
    xp = backend.xp
    ref = backend.asarray(np.zeros(2), dtype)
    dev = ref.device
    if backend.name == "array_api_strict":  # a device other than the default must be kept
        dev = xp.Device("device1")
    for n, d in ((8, 1.0), (7, 0.25)):
        got = getattr(ft.fft, name)(n, d=d, dtype=backend.dtype(dtype), device=dev)
        # array-api-compat's CuPy wrapper refuses devices itself: compare on the default one
        want = getattr(xp.fft, name)(n, d=d, dtype=backend.dtype(dtype))
        assert is_constant(got), "frequencies are constants"
        assert type(got.primal) is type(want) and got.dtype == want.dtype and got.device == dev
        np.testing.assert_array_equal(to_numpy(got), to_numpy(want))
    # a dual sample spacing d is differentiated: frequencies scale as 1 / d
    d = ft.DualTensor(backend.asarray(0.3, dtype), backend.asarray(1.0, dtype))
    out = getattr(ft.fft, name)(9, d=d)
    assert out.dtype == backend.dtype(dtype)
    f = lambda d: getattr(np.fft, name)(9, d=float(d))
    np.testing.assert_allclose(to_numpy(out.primal), f(0.3), rtol=1e-6)
    assert_close(out.tangent, central_difference(f, [np.float64(0.3)], [np.float64(1.0)]), dtype, name)


def test_frequencies_where_the_backend_refuses_devices(monkeypatch):
    # the path taken for array-api-compat's CuPy wrapper, exercised here on a strict device
    import array_api_strict as xp

    monkeypatch.setattr(fft_rules, "_FREQ_WITHOUT_DEVICE", frozenset({xp.__name__}))
    dev = xp.Device("device1")
    got = ft.fft.rfftfreq(6, d=0.5, device=dev)
    assert got.device == dev
    np.testing.assert_array_equal(to_numpy(got), np.fft.rfftfreq(6, d=0.5))
    d = ft.DualTensor(xp.asarray(0.5, device=dev), xp.asarray(1.0, device=dev))
    out = ft.fft.fftfreq(6, d=d)
    assert out.device == dev and out.tangent.device == dev
    np.testing.assert_allclose(to_numpy(out.tangent), -np.fft.fftfreq(6) / 0.25, rtol=1e-14)


def test_frequencies_without_device_are_numpy():
    np.testing.assert_array_equal(ft.fft.fftfreq(5, d=0.5), np.fft.fftfreq(5, d=0.5))
    with pytest.raises(TypeError, match="cannot tell which Array API library"):
        ft.fft.rfftfreq(4, device=object())


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_jacobian_of_power_spectrum(dtype, backend):
    # real composites through complex intermediates: |rfft(x)|^2 and its sum
    rng = np.random.default_rng(4)
    x = sample("real", (2, 6), dtype, rng)
    filt_np = sample("real", (2, 4), dtype, rng).astype("float64")
    filt = backend.asarray(filt_np, dtype)

    def spectrum(x):
        return ft.abs(ft.fft.rfft(x, axis=-1, norm="ortho")) ** 2

    def energy(x):
        smooth = ft.fft.irfftn(ft.multiply(ft.fft.rfftn(x), filt), s=(2, 6), axes=(0, 1))
        return ft.sum(spectrum(x)) + ft.sum(smooth * smooth)

    xb = backend.asarray(x)
    jac_s = ft.jacfwd(spectrum)(xb)
    jac_e = ft.jacfwd(energy)(xb)
    assert tuple(jac_s.shape) == (2, 4, 2, 6) and tuple(jac_e.shape) == (2, 6)

    def spectrum_np(a):
        return np.abs(np.fft.rfft(a, axis=-1, norm="ortho")) ** 2

    def energy_np(a):
        smooth = np.fft.irfftn(np.fft.rfftn(a) * filt_np, s=(2, 6), axes=(0, 1))
        return spectrum_np(a).sum() + (smooth * smooth).sum()

    eye = np.eye(12).reshape(12, 2, 6)
    x64 = x.astype("float64")
    ref_s = np.stack([central_difference(spectrum_np, [x64], [e]) for e in eye], axis=-1).reshape(2, 4, 2, 6)
    ref_e = np.array([central_difference(energy_np, [x64], [e]) for e in eye]).reshape(2, 6)
    assert_close(jac_s, ref_s, dtype, "jacobian of |rfft|^2")
    assert_close(jac_e, ref_e, dtype, "gradient of the energy")


def test_nested_derivatives_go_through_the_fft():
    # second derivatives push lower-level duals through the transforms (xp is fwdtensor's
    # own namespace inside the rules); f is quadratic, so its Hessian is 2 A^T A
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3, 4))
    c = rng.normal(size=(3, 3)) + 1j * rng.normal(size=(3, 3))

    def f(x):
        y = ft.fft.irfftn(ft.multiply(ft.fft.rfftn(ft.fft.fftshift(x)), c), s=(3, 4), axes=(0, 1))
        return ft.sum(ft.fft.ifftshift(y, axes=0) ** 2)

    h = ft.hessian(f)(x)
    assert tuple(h.shape) == (3, 4, 3, 4)
    eye = np.eye(12).reshape(12, 3, 4)
    ref = np.stack([central_difference(ft.jacfwd(f), [x], [e]) for e in eye], axis=-1).reshape(3, 4, 3, 4)
    np.testing.assert_allclose(to_numpy(h), ref, rtol=1e-6, atol=1e-8)


def test_table_covers_the_fft_extension():
    assert sorted(RULES) == sorted(STANDARD_FFT)
    assert sorted(ft.fft.__all__) == sorted(STANDARD_FFT)
