"""The core: DualTensor and its dispatch, levels, the batch axis, backends, dtypes, trees, errors.

It imports nothing above it; upper layers hand it what it needs through ``core.hooks``.
"""
