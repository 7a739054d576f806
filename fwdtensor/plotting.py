"""Plots of sensitivities (matplotlib, optional: ``pip install matplotlib``).

Both functions draw on matplotlib's object-oriented API without pyplot, so they need no
display and leave pyplot's global state alone: pass an ``Axes`` to draw into your own
figure, or take the returned ``Figure`` and call ``fig.savefig(path)``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from .sensitivity import DESCRIPTIONS, Sensitivity, SensitivityWarning, check_kind, nearest_time

__all__ = ["plot_trajectories", "plot_heatmap"]

_SYMBOL = {"absolute": "dy/dp", "relative": "(1/y) dy/dp", "normalized": "d ln y / d ln p"}


def _matplotlib() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(
            "plotting needs matplotlib, which is not installed: pip install matplotlib "
            '(or pip install -e ".[plot]" from a checkout)'
        ) from None
    return Figure


def _select(names: Sequence[str], chosen: Sequence[str] | None, what: str) -> list[int]:
    """Indices of ``chosen`` among ``names`` (all when None), with a clear error for typos."""
    if chosen is None:
        return list(range(len(names)))
    if isinstance(chosen, str):
        chosen = [chosen]
    missing = [c for c in chosen if c not in names]
    if missing:
        raise ValueError(f"unknown {what} {', '.join(map(repr, missing))}; known: {', '.join(names)}")
    return [names.index(c) for c in chosen]


def plot_trajectories(
    result: Sensitivity,
    kind: str = "normalized",
    *,
    outputs: Sequence[str] | None = None,
    params: Sequence[str] | None = None,
    ncols: int = 2,
) -> Any:
    """One panel per output with a line per parameter: the sensitivity over time.

    Args:
        result: a time-resolved ``Sensitivity`` (computed with ``times``).
        kind: ``"absolute"``, ``"relative"`` or ``"normalized"``.
        outputs: the names of the outputs to show (default: all).
        params: the names of the parameters to show (default: all).
        ncols: panels per row.

    Returns:
        The matplotlib ``Figure``.
    """
    Figure = _matplotlib()
    kind = check_kind(kind)
    if result.times is None:
        raise ValueError("plot_trajectories needs a time-resolved result (local_sensitivity(..., times=...))")
    oi = _select(result.output_names, outputs, "output")
    pi = _select(result.param_names, params, "parameter")
    S = result.on_host(kind)
    nrows = math.ceil(len(oi) / ncols)
    cols = min(ncols, len(oi))
    fig = Figure(figsize=(4.2 * cols, 3.0 * nrows + 0.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, cols, sharex=True, squeeze=False)).ravel()
    for ax, o in zip(axes, oi):
        for p in pi:
            ax.plot(result.times, S[:, o, p], label=result.param_names[p])
        ax.axhline(0.0, color="0.6", linewidth=0.8)
        ax.set_title(result.output_names[o])
        ax.set_xlabel("time")
        ax.set_ylabel(_SYMBOL[kind])
    for ax in axes[len(oi) :]:
        ax.set_visible(False)
    axes[0].legend(title="parameter", fontsize="small")
    fig.suptitle(DESCRIPTIONS[kind])
    return fig


def plot_heatmap(
    result: Sensitivity,
    kind: str = "normalized",
    *,
    time: float | None = None,
    ax: Any = None,
    annotate: bool | None = None,
    cmap: str = "RdBu_r",
) -> Any:
    """A parameter x output heatmap of sensitivities, coloured symmetrically around zero.

    Args:
        result: a ``Sensitivity``; for a trajectory the map is at ``time`` (the stored
            time nearest to it; by default the last one).
        kind: ``"normalized"`` (the default: dimensionless, so cells compare), ``"relative"``
            or ``"absolute"``.
        ax: a matplotlib ``Axes`` to draw into (default: a new figure).
        annotate: write each value into its cell (default: when there are at most 150 cells).
        cmap: a diverging colormap.

    Returns:
        The matplotlib ``Figure``. NaN cells (undefined sensitivities) are left blank.
    """
    Figure = _matplotlib()
    kind = check_kind(kind)
    title = f"{kind} sensitivity"
    if result.times is not None:
        result_times = result.times
        t = float(result_times[-1]) if time is None else float(time)
        result = result.at_time(t)
        title += f" at time {float(result_times[nearest_time(result_times, t)]):g}"
    elif time is not None:
        raise ValueError("time is for a time-resolved result; this one has no times")
    with warnings.catch_warnings():  # NaN cells are shown blank; the caller saw the warning already
        warnings.simplefilter("ignore", SensitivityWarning)
        S = result.on_host(kind).T  # parameters x outputs
    if ax is None:
        npar, nout = S.shape
        fig = Figure(figsize=(1.5 + 0.9 * max(nout, 4), 1.0 + 0.5 * max(npar, 2)), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    finite = np.abs(S[np.isfinite(S)])
    vmax = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    im = ax.imshow(np.ma.masked_invalid(S), cmap=cmap, vmin=-vmax, vmax=vmax, aspect="auto")
    tilt = S.shape[1] > 6
    ax.set_xticks(
        range(S.shape[1]), result.output_names, rotation=45 if tilt else 0, ha="right" if tilt else "center"
    )
    ax.set_yticks(range(S.shape[0]), result.param_names)
    ax.set_xlabel("output")
    ax.set_ylabel("parameter")
    ax.set_title(title, fontsize="medium")
    if annotate if annotate is not None else S.size <= 150:
        for (i, j), v in np.ndenumerate(S):
            if np.isfinite(v):
                dark = abs(v) > 0.6 * vmax
                ax.text(
                    j, i, f"{v:.3g}", ha="center", va="center", fontsize="small", color="w" if dark else "k"
                )
    fig.colorbar(im, ax=ax, label=_SYMBOL[kind])
    return fig
