"""Compile generated CUDA sources to PTX without a GPU: NVRTC (what CuPy uses) or nvcc.

NVRTC comes from the ``nvidia-cuda-nvrtc`` wheel (the ``nvrtc`` extra, installed by CI) or
a CUDA toolkit; ``nvcc`` from a toolkit. Neither needs a device. ``REASON`` says why the
checks skip when neither is found.
"""

from __future__ import annotations

import ctypes
import glob
import importlib.util
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

ARCH = "compute_90"  # H100; the generated code uses nothing newer than compute_60


def _nvrtc_paths() -> list[str]:
    found = []
    for pkg in ("nvidia",):
        spec = importlib.util.find_spec(pkg)
        for root in spec.submodule_search_locations if spec else []:
            found += glob.glob(os.path.join(root, "*", "lib", "libnvrtc.so*"))
            found += glob.glob(os.path.join(root, "*", "*", "lib", "libnvrtc.so*"))
    for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if home:
            found += glob.glob(os.path.join(home, "lib64", "libnvrtc.so*"))
    return sorted(p for p in found if "builtins" not in p and ".alt." not in p)


def _load_nvrtc() -> ctypes.CDLL | None:
    for path in _nvrtc_paths():
        try:
            # NVRTC opens its builtins library by name at compile time: load it first.
            for b in glob.glob(os.path.join(os.path.dirname(path), "libnvrtc-builtins.so*")):
                if ".alt." not in b:
                    ctypes.CDLL(b, mode=ctypes.RTLD_GLOBAL)
            return ctypes.CDLL(path)
        except OSError:
            continue
    return None


NVRTC = _load_nvrtc()
NVCC = shutil.which("nvcc")
REASON = (
    None
    if NVRTC is not None or NVCC
    else "neither NVRTC (pip install nvidia-cuda-nvrtc) nor nvcc is here to compile CUDA sources"
)


def _nvrtc_ptx(source: str) -> str:
    lib = NVRTC
    prog = ctypes.c_void_p()
    rc = lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), b"fused.cu", 0, None, None)
    assert rc == 0, f"nvrtcCreateProgram failed ({rc})"
    opts = [f"--gpu-architecture={ARCH}".encode()]
    arr = (ctypes.c_char_p * len(opts))(*opts)
    try:
        rc = lib.nvrtcCompileProgram(prog, len(opts), arr)
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(prog, log)
        if rc != 0:
            raise RuntimeError(f"NVRTC rejected the generated kernel:\n{log.value.decode()}\n{source}")
        lib.nvrtcGetPTXSize(prog, ctypes.byref(size))
        ptx = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetPTX(prog, ptx)
        return ptx.value.decode()
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


def _nvcc_ptx(source: str) -> str:
    with tempfile.TemporaryDirectory() as d:
        src, out = Path(d) / "fused.cu", Path(d) / "fused.ptx"
        src.write_text(source)
        arch = ARCH.replace("compute_", "sm_")
        done = subprocess.run(
            [NVCC, "-ptx", f"-arch={arch}", str(src), "-o", str(out)], capture_output=True, text=True
        )
        if done.returncode:
            raise RuntimeError(f"nvcc rejected the generated kernel:\n{done.stderr}\n{source}")
        return out.read_text()


def compiler() -> str:
    return "NVRTC" if NVRTC is not None else "nvcc"


def ptx(source: str) -> str:
    """The PTX of a CUDA translation unit (raises with the compiler's log if it is rejected)."""
    return _nvrtc_ptx(source) if NVRTC is not None else _nvcc_ptx(source)
