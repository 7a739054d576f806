"""Transforms: jvp, jacfwd/hessian (``jacobian``), ``custom_jvp``, progress bars, ``sparse/``, ``parallel/``."""
