"""Compile ``ft.fuse``'s generated loop bodies with the host C++ compiler and run them on NumPy.

The body is the same text the CUDA kernel gets (only the loop around it differs), so a
machine without a GPU still checks the tracer, the code generator and the launch
arguments end to end against the eager path. Skips, with the reason, without ``g++``.
"""

from __future__ import annotations

import atexit
import ctypes
import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

CXX = shutil.which("g++") or shutil.which("c++")
REASON = None if CXX else "no C++ compiler (g++) on this machine to build the generated kernels"
_DIR = Path(tempfile.mkdtemp(prefix="fwdtensor-kernels-"))
atexit.register(shutil.rmtree, _DIR, ignore_errors=True)
_LIBS: dict[str, ctypes.CDLL] = {}
compiled: list[str] = []  # sources compiled so far (tests count kernels with this)


def build(source: str) -> ctypes.CDLL:
    """The shared library of ``source`` (compiled once per source text)."""
    lib = _LIBS.get(source)
    if lib is None:
        digest = hashlib.sha1(source.encode()).hexdigest()[:16]
        src, so = _DIR / f"k{digest}.cpp", _DIR / f"k{digest}.so"
        src.write_text(source)
        # -ffp-contract=off: no fused multiply-adds, as NumPy's separate ufuncs round each step.
        cmd = [CXX, "-O2", "-ffp-contract=off", "-fno-fast-math", "-shared", "-fPIC", str(src), "-o", str(so)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"g++ failed on the generated kernel:\n{done.stderr}\n{source}")
        lib = _LIBS[source] = ctypes.CDLL(str(so))
        compiled.append(source)
    return lib


def launch(kernel, inputs, outputs, total) -> None:
    """A launcher for ``fwdtensor.fuse.launch.register_launcher``: the loop runs on the host."""
    fn = getattr(build(kernel.source("cpp")), kernel.name)
    ins = [np.ascontiguousarray(a) for a in inputs]
    for o in outputs:
        assert o.flags.c_contiguous
    ptrs = [ctypes.c_void_p(a.ctypes.data) for a in (*ins, *outputs)]
    scalars = [
        ctypes.c_double(v) if type(v) is float else ctypes.c_longlong(v)
        for v in (kernel.N, total, *kernel.params)
    ]
    fn.restype = None
    fn(*ptrs, *scalars)


def is_numpy(xp) -> bool:
    return getattr(xp, "__name__", "").split(".")[-1] == "numpy"
