"""One memory budget for every transform, nested ones included.

The budget (bytes) that jacfwd, grad, hessian and friends size their chunks of directions
for; the passes in progress (``push``/``pop``, per thread and task through a context
variable) so an inner transform sizes its chunks for what the outer ones left; the signal
(``Shrink``) by which an inner transform asks an outer pass for fewer directions; and the
memory available to hold a result. Host bookkeeping only: nothing here reads array data.
"""

from __future__ import annotations

import contextvars
import math
import os
import re
from typing import Any

import array_api_compat

from . import backend as _backend
from . import dual as _core
from . import errors as _errors

_DEFAULT_BUDGET = 1 << 30  # bytes of tangent storage per chunk that jacfwd aims for
_BUDGET_ENV = "FWDTENSOR_MEMORY_BUDGET"
_value: list[int | None] = [None]  # None: not read yet (the environment is read at first use)

# Byte units for FWDTENSOR_MEMORY_BUDGET: decimal (kB, MB, ...) and binary (KiB, MiB, ...).
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
_UNITS.update({"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40})
_BYTES_RE = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?(?:[eE][+]?[0-9]+)?)\s*([A-Za-z]*)\s*")


def parse_bytes(text: str, name: str = _BUDGET_ENV) -> int:
    """A positive number of bytes from text such as ``512MiB``, ``1GB``, ``2e9`` or ``1048576``."""
    m = _BYTES_RE.fullmatch(text)
    unit = _UNITS.get(m.group(2).upper()) if m else None
    value = float(m.group(1)) * unit if unit is not None else 0.0
    if not (math.isfinite(value) and value >= 1):
        raise ValueError(
            f"{name}={text!r} is not a positive number of bytes; write e.g. 512MiB (binary units "
            "KiB, MiB, GiB, TiB), 1GB (decimal kB, MB, GB, TB), 2e9 or 1048576"
        )
    return int(value)


def set_memory_budget(nbytes: int) -> None:
    """Set the memory (bytes) that every transform sizes its chunks of directions for.

    The budget is shared by nested transforms (``hessian``, ``jacfwd(jacfwd(f))``): an inner
    one sizes its chunks for what the outer ones left. The default is 1 GiB, or the
    environment variable ``FWDTENSOR_MEMORY_BUDGET`` (``512MiB``, ``1GB``, ``2e9``, ...).
    """
    _value[0] = _errors.as_index(nbytes, "the memory budget", 1, "a positive number of bytes")


def get_memory_budget() -> int:
    """The memory budget (bytes) ``jacfwd`` uses to choose its chunk size."""
    b = _value[0]
    if b is None:
        text = os.environ.get(_BUDGET_ENV)
        b = _DEFAULT_BUDGET if text is None else parse_bytes(text)
        _value[0] = b
    return b


class Frame:
    """One pass of an active transform: ``k`` directions, chosen by jacfwd itself when ``auto``."""

    __slots__ = ("k", "auto")

    def __init__(self, k: int, auto: bool) -> None:
        self.k, self.auto = k, auto


# The passes in progress around this point of the program (outermost first), per thread and
# task: a transform inside another sizes its chunks for what the outer ones left.
_NEST: contextvars.ContextVar[tuple] = contextvars.ContextVar("fwdtensor_nest", default=())


class Shrink(BaseException):
    """An inner jacfwd's result alone would exceed the budget at the current nesting.

    Raised through the user's function (a BaseException, so ``except Exception`` in ``f``
    does not swallow it) to the nearest enclosing pass that chose its own chunk, which
    retries with fewer directions. ``nbytes`` is the inner result's size as it would be.
    """

    def __init__(self, nbytes: int) -> None:
        super().__init__(nbytes)
        self.nbytes = nbytes
        self.depth = len(_NEST.get())  # the passes outside the raiser: only they may shrink


def scale(frames: tuple | None = None) -> int:
    """How many values each element carries for the enclosing passes: prod(1 + k)."""
    s = 1
    for fr in _NEST.get() if frames is None else frames:
        s *= 1 + fr.k
    return s


def shrunk(k: int, exc: Shrink, chunk_size: Any, depth: int) -> int | None:
    """Fewer directions for the pass at ``depth`` so an inner one fits the budget; None: cannot help."""
    if chunk_size is not None or k <= 1 or depth >= exc.depth:
        return None
    fits = (1 + k) * get_memory_budget() // max(exc.nbytes, 1) - 1
    return max(1, min(k - 1, fits))


# Copies of a nested Jacobian alive while it is assembled (the chunks, their concatenation,
# the block handed out): what an inner result costs the enclosing pass.
ASSEMBLY = 3


# Results smaller than this are never checked against the free memory: asking the system
# (a file read on Linux, a driver call on a GPU) would cost more than small Jacobians do.
CHECK_FROM = 64 << 20


def check_result(n: int, m: int, itemsize: int, x: Any, who: str) -> int:
    """A Jacobian of ``m x n`` entries: shrink an enclosing pass or refuse what cannot fit.

    Returns the bytes its assembly holds from the budget (0 at the top level, where the
    result is the user's and outside the budget).
    """
    active = _NEST.get()
    if not active and n * m * itemsize < CHECK_FROM:
        return 0  # the common case, at once
    per_entry = scale(active)
    nbytes = n * m * itemsize * per_entry
    if ASSEMBLY * nbytes > get_memory_budget() and any(fr.auto and fr.k > 1 for fr in active):
        raise Shrink(ASSEMBLY * nbytes)
    avail = available_memory(x) if nbytes >= CHECK_FROM else None
    if avail is not None and nbytes > avail:
        what = "Jacobian" if who == "jacfwd" else f"result of {who}"
        if per_entry > 1:
            what += f" (inside another transform, {per_entry} values per entry)"
        raise _errors.result_too_large(what, (m, n), nbytes, avail)
    return ASSEMBLY * nbytes if active else 0


def _host_available() -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def available_memory(x: Any) -> int | None:
    """Bytes free where ``x``'s arrays live (host RAM, or the GPU); None when unknown."""
    inner = _core.innermost(x)
    xp = _backend.namespace_of(inner)
    try:
        if array_api_compat.is_cupy_namespace(xp):
            import cupy

            free = cupy.cuda.runtime.memGetInfo()[0]
            return free + cupy.get_default_memory_pool().free_bytes()
        if array_api_compat.is_torch_namespace(xp):
            dev = inner.device
            if dev.type == "cuda":
                import torch

                free = torch.cuda.mem_get_info(dev)[0]
                return free + torch.cuda.memory_reserved(dev) - torch.cuda.memory_allocated(dev)
            return _host_available() if dev.type == "cpu" else None
        if array_api_compat.is_numpy_namespace(xp) or "array_api_strict" in getattr(xp, "__name__", ""):
            return _host_available()
    except Exception:  # a device query that fails leaves the size unchecked, never refused
        return None
    return None


def frames() -> tuple:
    """The passes in progress around this point, outermost first."""
    return _NEST.get()


def push(k: int, auto: bool) -> Any:
    """Record a pass of ``k`` directions (``auto``: chosen by the transform); returns a token."""
    return _NEST.set((*_NEST.get(), Frame(k, auto)))


def pop(token: Any) -> None:
    """End the pass recorded with ``token``."""
    _NEST.reset(token)
