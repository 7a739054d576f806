"""Transforms: jvp, jacfwd/hessian (``jacobian``), ``custom_jvp``, progress, ``sparse/``, ``parallel/``."""
