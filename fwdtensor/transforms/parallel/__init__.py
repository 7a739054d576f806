"""Jacobians in parallel: executor-based (threads, processes, Dask clients) and lazy Dask duals."""
