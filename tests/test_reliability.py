"""Reliability: threads, exceptions and interrupts inside f, memory growth, and input bytes.

Each test states a property a user relies on without thinking about it: transforms give
the same answer from 8 threads as from one, an exception (or KeyboardInterrupt) inside
``f`` leaves no level or budget frame behind, repeated calls do not grow memory, and no
transform changes a byte of its inputs, whatever ``f`` does to them.
"""

from __future__ import annotations

import gc
import threading
import tracemalloc
import zlib

import numpy as np
import pytest

import fwdtensor as ft
from fwdtensor.core import budget as _budget
from fwdtensor.core import levels as _levels


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode()))


def model(x):
    return ft.sum(ft.sin(x) * x**2) + ft.log(ft.sum(x * x) + 1.0)


def vector_model(x):
    return ft.tanh(x) * ft.roll(x, 1) + x**3


def test_eight_threads_agree_with_one():
    xs = [_rng(f"thread-{i}").normal(size=12) for i in range(8)]
    want = [
        (ft.jvp(vector_model, (x,), (np.ones(12),))[1], ft.jacfwd(vector_model)(x), ft.hessian(model)(x))
        for x in xs
    ]
    got: list = [None] * 8
    errors: list = []
    barrier = threading.Barrier(8)

    def work(i: int) -> None:
        try:
            barrier.wait()
            x = xs[i]
            for _ in range(5):  # interleave the transforms of different threads
                got[i] = (
                    ft.jvp(vector_model, (x,), (np.ones(12),))[1],
                    ft.jacfwd(vector_model, chunk_size=5)(x),
                    ft.hessian(model)(x),
                )
        except BaseException as exc:  # reported in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    for g, w in zip(got, want):
        for a, b in zip(g, w):
            np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)


class _Boom(Exception):
    pass


@pytest.mark.parametrize("exc_type", [_Boom, KeyboardInterrupt])
def test_an_exception_inside_f_leaves_no_state_behind(exc_type):
    x = np.linspace(0.1, 1.0, 6)
    level_before = _levels.new_level()
    frames_before = len(_budget.frames())

    def bad(z):
        y = ft.sin(z) * 2.0
        raise exc_type("inside f")
        return y  # pragma: no cover

    for transform in (
        lambda: ft.jvp(bad, (x,), (np.ones(6),)),
        lambda: ft.jacfwd(bad)(x),
        lambda: ft.jacfwd(bad, chunk_size=2)(x),
        lambda: ft.hessian(lambda z: ft.sum(bad(z)))(x),
        lambda: ft.grad(lambda z: ft.sum(bad(z)))(x),
    ):
        with pytest.raises(exc_type):
            transform()
        assert len(_budget.frames()) == frames_before, "a budget frame was left behind"
    # levels only grow (each transform opens a fresh one), and the next transform still works
    assert _levels.new_level() > level_before
    np.testing.assert_allclose(ft.jacfwd(vector_model)(x), ft.jacfwd(vector_model)(x.copy()))
    np.testing.assert_allclose(ft.grad(model)(x), ft.jacfwd(model)(x))


def test_memory_does_not_grow_over_many_calls():
    x = _rng("memory").normal(size=8)
    jac = ft.jacfwd(vector_model)

    def once():
        ft.jvp(vector_model, (x,), (np.ones(8),))
        jac(x)
        ft.grad(model)(x)

    for _ in range(200):  # warm caches (namespace lookups, rule caches)
        once()
    gc.collect()
    tracemalloc.start()
    try:
        start = tracemalloc.take_snapshot()
        for _ in range(3_400):  # about 10,000 transform calls
            once()
        gc.collect()
        end = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(s.size_diff for s in end.compare_to(start, "filename"))
    assert grown < 1 << 20, f"memory grew by {grown / 1024:.0f} KiB over 10,000 calls"


def _writes_everywhere(x):
    x[0] = x[0] * x[1]
    x[1:3] *= 2.0
    v = ft.reshape(x, (-1,))
    v[x > 1e9] = 0.0
    return x * 1.0


@pytest.mark.parametrize(
    "transform",
    [
        lambda f, x: ft.jvp(f, (x,), (np.ones_like(x),)),
        lambda f, x: ft.jacfwd(f)(x),
        lambda f, x: ft.jacfwd(f, chunk_size=1)(x),
        lambda f, x: ft.value_and_jacfwd(f)(x),
        lambda f, x: ft.hessian(lambda z: ft.sum(f(z)))(x),
        lambda f, x: ft.grad(lambda z: ft.sum(f(z)))(x),
        lambda f, x: ft.sparse_jacfwd(f)(x),
    ],
    ids=["jvp", "jacfwd", "jacfwd-chunked", "value_and_jacfwd", "hessian", "grad", "sparse_jacfwd"],
)
def test_in_place_programs_leave_inputs_byte_for_byte_unchanged(transform):
    x = np.array([2.0, 3.0, 4.0, 5.0])
    before = x.tobytes()
    transform(_writes_everywhere, x)
    assert x.tobytes() == before


def test_chunked_and_unchunked_jacobians_of_in_place_programs_agree():
    x = np.array([2.0, 3.0, 4.0, 5.0])
    full = ft.jacfwd(_writes_everywhere)(x)
    for c in (1, 2, 3):
        np.testing.assert_array_equal(ft.jacfwd(_writes_everywhere, chunk_size=c)(x), full)
    # the exact Jacobian: y0 = x0 x1, y1 = 2 x1, y2 = 2 x2, y3 = x3
    want = np.array([[3.0, 2.0, 0, 0], [0, 2.0, 0, 0], [0, 0, 2.0, 0], [0, 0, 0, 1.0]])
    np.testing.assert_array_equal(full, want)
