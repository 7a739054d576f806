"""Sparse Jacobians: sparsity patterns, column colouring, sparsity detection, compressed Jacobians."""
