"""Whole-program fusion: trace (symbolic arrays) -> codegen (C++ loop bodies) -> launch (``ft.fuse``).

Also ``kernels``, the opt-in per-rule CuPy kernels (``ft.set_fused``).
"""
