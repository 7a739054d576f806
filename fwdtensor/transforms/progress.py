"""Opt-in progress reporting for long chunked work (``jacfwd(..., progress=True)``).

``progress=True`` draws a tqdm bar (tqdm is an optional dependency, imported only here and
only when asked for); ``progress=callable`` calls ``callable(done, total)`` after every
chunk, for logging or a GUI; ``False`` (the default) costs nothing. Callers skip the bar
when all the work is one pass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class _Silent:
    """The no-op reporter used when progress was not asked for (or there is one chunk)."""

    def update(self, k: int) -> None:
        pass

    def close(self) -> None:
        pass


class _Callback:
    """Calls ``fn(done, total)`` after each chunk."""

    def __init__(self, fn: Callable[[int, int], Any], total: int) -> None:
        self.fn, self.total, self.done = fn, total, 0

    def update(self, k: int) -> None:
        self.done += k
        self.fn(self.done, self.total)

    def close(self) -> None:
        pass


def check(progress: Any) -> None:
    """Refuse a ``progress`` argument that is neither a bool nor a callable, before any work."""
    if not (isinstance(progress, bool) or callable(progress)):
        raise TypeError(
            f"progress must be True, False or a callable(done, total), got {type(progress).__name__}"
        )


def reporter(progress: Any, total: int, unit: str, desc: str) -> Any:
    """A reporter with ``update(k)`` and ``close()`` for ``total`` units of work."""
    if progress is False or progress is None:
        return _Silent()
    if progress is True:
        return _tqdm()(total=total, unit=unit, desc=desc, leave=False)
    return _Callback(progress, total)


def _tqdm() -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError:
        raise ImportError(
            "progress=True draws its bar with tqdm, which is not installed: "
            "pip install tqdm, or pass progress=callable(done, total)"
        ) from None
    return tqdm
