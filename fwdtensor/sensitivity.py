"""Local sensitivity analysis of scientific models, with named parameters and outputs.

``local_sensitivity(model, params, ...)`` evaluates ``model(params, ...)`` and its Jacobian
with respect to the parameters in one batched forward pass (``ft.value_and_jacfwd``; in
chunks with ``chunk_size``) and returns a ``Sensitivity`` that knows the names of the
parameters and outputs. From it come the three usual measures:

- absolute: ``dy/dp``, the Jacobian;
- relative: ``(1/y) dy/dp``, the fractional change of the output per unit of parameter;
- normalized: ``d ln y / d ln p = (p/y) dy/dp``, the percent change of the output per
  percent change of the parameter (dimensionless, so parameters compare directly).

Where an output is zero, relative and normalized sensitivities are undefined; where a
parameter is zero, the normalized one is. Those cells are NaN, with a
``SensitivityWarning`` that names them. Rankings and the "insensitive below a threshold"
flag ignore NaN cells.

For a trajectory (``times=...``) the first axis of the output is time and every measure
has the layout time x output x parameter. ``ode_sensitivity`` builds such a model from an
ODE right-hand side with ``fwdtensor.ode.solve``.
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .core import backend as _backend
from .core.dual import DualTensor
from .core.errors import FwdTensorError
from .transforms import jacobian as _transforms

__all__ = [
    "local_sensitivity",
    "ode_sensitivity",
    "Sensitivity",
    "SensitivityWarning",
    "NonFiniteError",
    "KINDS",
    "AGGREGATES",
    "DESCRIPTIONS",
    "check_kind",
    "nearest_time",
]

KINDS = ("absolute", "relative", "normalized")
AGGREGATES = ("max", "mean", "rms")
_ALIASES = {"normalised": "normalized", "jacobian": "absolute"}
# The title of each kind of sensitivity, for reports and plots.
DESCRIPTIONS = {
    "absolute": "absolute sensitivity dy/dp",
    "relative": "relative sensitivity (1/y) dy/dp",
    "normalized": "normalized sensitivity d ln y / d ln p = (p/y) dy/dp",
}


class SensitivityWarning(UserWarning):
    """A sensitivity is undefined in some cells (zero output or parameter): they are NaN."""


class NonFiniteError(FwdTensorError, FloatingPointError):
    """The model returned a non-finite value or derivative (the message names where)."""


to_numpy = _backend.to_host  # for reports: host copies of backend arrays


# ---------------------------------------------------------------- the result
class Sensitivity:
    """Local sensitivities of a model's outputs to its named parameters.

    ``value`` is the model output (time first for a trajectory), ``jacobian`` has shape
    ``value.shape + (P,)``, ``params`` the P parameter values; all stay on the model's
    backend and device. ``param_names`` and ``output_names`` label the last axes; outputs
    of more than one dimension (after time) are named in C order, ``y[i,j]``.
    """

    def __init__(
        self,
        value: Any,
        jacobian: Any,
        params: Any,
        param_names: Sequence[str],
        output_names: Sequence[str],
        times: Any = None,
    ) -> None:
        self.value = value
        self.jacobian = jacobian
        self.params = params
        self.param_names = tuple(param_names)
        self.output_names = tuple(output_names)
        self.times = times
        self._cache: dict[str, Any] = {}

    # ------------------------------------------------------------ measures
    @property
    def absolute(self) -> Any:
        """``dy/dp`` with shape ``value.shape + (P,)`` (the Jacobian)."""
        return self.jacobian

    @property
    def relative(self) -> Any:
        """``(1/y) dy/dp``; NaN (with a ``SensitivityWarning``) where the output is zero."""
        return self.get("relative")

    @property
    def normalized(self) -> Any:
        """``(p/y) dy/dp``; NaN (with a warning) where the output or the parameter is zero."""
        return self.get("normalized")

    def get(self, kind: str = "normalized") -> Any:
        """The sensitivities of ``kind``: ``"absolute"``, ``"relative"`` or ``"normalized"``."""
        kind = check_kind(kind)
        if kind == "absolute":
            return self.jacobian
        if kind not in self._cache:
            self._cache[kind] = self._scaled(kind)
        return self._cache[kind]

    def _scaled(self, kind: str) -> Any:
        xp = _backend.namespace_of(self.jacobian)
        J, y = self.jacobian, self.value[..., None]
        bad_y = xp.equal(y, 0)
        S = xp.divide(J, xp.where(bad_y, xp.ones_like(y), y))
        bad = bad_y
        if kind == "normalized":
            p = self.params
            S = xp.multiply(S, p)
            bad = xp.logical_or(bad_y, xp.equal(p, 0))
        if bool(xp.any(bad)):
            self._warn_undefined(kind, to_numpy(bad_y)[..., 0], to_numpy(self.params) == 0)
            bad = xp.broadcast_to(bad, S.shape)
            S = xp.where(bad, xp.full_like(S, math.nan), S)
        return S

    def _warn_undefined(self, kind: str, zero_y: np.ndarray, zero_p: np.ndarray) -> None:
        parts = []
        if zero_y.any():
            cells = [self._where(idx) for idx in zip(*np.nonzero(zero_y))]
            more = f" and {len(cells) - 3} more" if len(cells) > 3 else ""
            parts.append(f"the output is zero ({', '.join(cells[:3])}{more})")
        if kind == "normalized" and zero_p.any():
            names = ", ".join(repr(self.param_names[i]) for i in np.flatnonzero(zero_p))
            parts.append(f"the parameter is zero ({names})")
        warnings.warn(
            f"{kind} sensitivity is undefined where {' and where '.join(parts)}: those cells are NaN "
            "(the absolute sensitivity is defined there)",
            SensitivityWarning,
            stacklevel=_user_stacklevel(),
        )

    def _where(self, idx: tuple) -> str:
        """A readable name for the output at ``idx`` (an index into ``value``)."""
        if self.times is not None:
            t = self.times[idx[0]]
            return f"output {self._out_name(idx[1:])!r} at time {t:g}"
        return f"output {self._out_name(idx)!r}"

    def _out_name(self, idx: tuple) -> str:
        shape = self.value.shape[1:] if self.times is not None else self.value.shape
        flat = int(np.ravel_multi_index(tuple(int(i) for i in idx), shape)) if shape else 0
        return self.output_names[flat]

    # ------------------------------------------------------------ summaries
    def on_host(self, kind: str) -> np.ndarray:
        """The sensitivities of ``kind`` on the host as ``(T, n_out, P)`` or ``(n_out, P)``."""
        S = to_numpy(self.get(kind))
        lead = (S.shape[0],) if self.times is not None else ()
        return S.reshape(*lead, len(self.output_names), len(self.param_names))

    def influence(self, kind: str = "normalized", aggregate: str = "max") -> dict[str, float]:
        """Each parameter's influence: ``|S|`` aggregated over outputs (and times), NaN ignored.

        ``aggregate`` is ``"max"`` (the largest ``|S|``), ``"mean"`` (mean ``|S|``) or
        ``"rms"``; a parameter whose every cell is NaN gets NaN.
        """
        if aggregate not in AGGREGATES:
            raise ValueError(f"unknown aggregate {aggregate!r}; choose one of {', '.join(AGGREGATES)}")
        S = np.abs(self.on_host(kind)).reshape(-1, len(self.param_names))
        out = {}
        for j, name in enumerate(self.param_names):
            col = S[:, j][~np.isnan(S[:, j])]
            if col.size == 0:
                out[name] = math.nan
            elif aggregate == "max":
                out[name] = float(col.max())
            elif aggregate == "mean":
                out[name] = float(col.mean())
            else:
                out[name] = float(np.sqrt(np.mean(col * col)))
        return out

    def ranking(self, kind: str = "normalized", aggregate: str = "max") -> list[tuple[str, float]]:
        """Parameters from most to least influential: ``[(name, influence), ...]`` (NaN last)."""
        inf = self.influence(kind, aggregate)
        return sorted(inf.items(), key=lambda kv: math.inf if math.isnan(kv[1]) else -kv[1])

    def insensitive(
        self, threshold: float = 0.01, kind: str = "normalized", aggregate: str = "max"
    ) -> tuple[str, ...]:
        """Names of the parameters whose influence is below ``threshold``.

        The default reads: a 1% change of the parameter moves no output by more than
        0.01%. Parameters whose influence is NaN are not flagged (nothing is known).
        """
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not threshold >= 0:
            raise ValueError(f"threshold must be a non-negative number, got {threshold!r}")
        return tuple(n for n, v in self.influence(kind, aggregate).items() if v < threshold)

    def at_time(self, t: float) -> Sensitivity:
        """The sensitivities at the stored time nearest to ``t`` (a result without times)."""
        if self.times is None:
            raise ValueError("at_time needs a trajectory: this result has no times")
        i = nearest_time(self.times, t)
        return Sensitivity(
            self.value[i, ...], self.jacobian[i, ...], self.params, self.param_names, self.output_names
        )

    def table(self, kind: str = "normalized", *, time: float | None = None, digits: int = 4) -> str:
        """A text table (outputs x parameters) for terminals; trajectories at ``time`` (default: last)."""
        res, head = self, DESCRIPTIONS[check_kind(kind)]
        if self.times is not None:
            t = float(self.times[-1]) if time is None else time
            res = self.at_time(t)
            head += f" at time {float(self.times[nearest_time(self.times, t)]):g}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SensitivityWarning)
            S = res.on_host(kind)
        w_name = max(6, *(len(n) for n in res.output_names))
        w = max(digits + 7, *(len(n) + 1 for n in res.param_names))
        lines = [head, "output".ljust(w_name) + "".join(n.rjust(w) for n in res.param_names)]
        for name, row in zip(res.output_names, S):
            lines.append(name.ljust(w_name) + "".join(f"{v:{w}.{digits}g}" for v in row))
        return "\n".join(lines)

    def __repr__(self) -> str:
        t = f" x {len(self.times)} times" if self.times is not None else ""
        return (
            f"<Sensitivity of {len(self.output_names)} outputs{t} to {len(self.param_names)} "
            f"parameters ({', '.join(self.param_names)})>"
        )

    # ------------------------------------------------------------- exports
    def to_pandas(self, kind: str = "normalized") -> Any:
        """A pandas DataFrame: rows are outputs (``(time, output)`` for a trajectory), columns parameters."""
        pd = _optional("pandas", "to_pandas")
        S = self.on_host(kind)
        cols = pd.Index(self.param_names, name="parameter")
        if self.times is None:
            return pd.DataFrame(S, index=pd.Index(self.output_names, name="output"), columns=cols)
        idx = pd.MultiIndex.from_product([self.times, self.output_names], names=["time", "output"])
        return pd.DataFrame(S.reshape(-1, S.shape[-1]), index=idx, columns=cols)

    def to_xarray(self, kind: str = "normalized") -> Any:
        """An xarray DataArray with dims ``(time,) output, parameter`` and their coordinates."""
        xr = _optional("xarray", "to_xarray")
        S = self.on_host(kind)
        coords: dict[str, Any] = {"output": list(self.output_names), "parameter": list(self.param_names)}
        dims: tuple[str, ...] = ("output", "parameter")
        if self.times is not None:
            dims = ("time", *dims)
            coords["time"] = self.times
        return xr.DataArray(S, dims=dims, coords=coords, name=f"{check_kind(kind)} sensitivity")


def _user_stacklevel() -> int:
    """The ``stacklevel`` of the first caller outside fwdtensor, so warnings point at user code."""
    frame, level = sys._getframe(2), 2
    while frame is not None and frame.f_globals.get("__name__", "").startswith("fwdtensor"):
        frame, level = frame.f_back, level + 1
    return level


def nearest_time(times: np.ndarray, t: float) -> int:
    """The index of the time in ``times`` nearest to ``t`` (a trajectory's report or plot at ``t``)."""
    return int(np.argmin(np.abs(times - float(t))))


def check_kind(kind: str) -> str:
    """The canonical name of a sensitivity ``kind`` (one of ``KINDS``; aliases accepted), or ValueError."""
    k = _ALIASES.get(kind, kind)
    if k not in KINDS:
        raise ValueError(f"unknown sensitivity kind {kind!r}; choose one of {', '.join(KINDS)}")
    return k


def _optional(module: str, what: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"{what}() needs {module}, which is not installed: pip install {module}") from None


# --------------------------------------------------------------- computing
def _param_vector(params: Any, param_names: Sequence[str] | None) -> tuple[Any, tuple[str, ...]]:
    """Validate the parameters given as a 1-D array; return it with its names."""
    p = params if _backend.is_array(params) else _backend.as_array(params)
    xp = _backend.namespace_of(p)
    if p.ndim != 1:
        raise ValueError(
            f"params must be a 1-D array of parameter values, got shape {tuple(p.shape)}; "
            "wrap a single parameter as [p], or pass a dict {name: value}"
        )
    if not xp.isdtype(p.dtype, "real floating"):
        raise TypeError(f"params must have a real floating dtype, got {p.dtype}; cast it with astype")
    n = p.shape[0]
    if param_names is None:
        return p, tuple(f"p{i}" for i in range(n))
    names = _names(param_names, "param_names")
    if len(names) != n:
        raise ValueError(f"param_names has {len(names)} names but params has {n} values; they must match")
    return p, names


def _param_dict(params: Mapping, param_names: Any) -> tuple[dict, tuple[str, ...]]:
    """Validate parameters given as ``{name: scalar}``; the model receives such a dict."""
    if param_names is not None:
        raise ValueError("params is a dict, whose keys are the parameter names: do not pass param_names too")
    names = _names(list(params), "the keys of params")
    out = {}
    for k in names:
        v = params[k]
        v = v if _backend.is_array(v) else _backend.as_array(v)
        if v.ndim != 0:
            raise ValueError(f"parameter {k!r} must be a scalar, got shape {tuple(v.shape)}")
        if not _backend.namespace_of(v).isdtype(v.dtype, "real floating"):
            raise TypeError(f"parameter {k!r} has dtype {v.dtype}; parameters must be real floating")
        out[k] = v
    return out, names


def _names(names: Any, what: str) -> tuple[str, ...]:
    if isinstance(names, str) or not isinstance(names, Sequence):
        raise TypeError(f"{what} must be a sequence of strings, got {names!r}")
    names = tuple(names)
    for n in names:
        if not isinstance(n, str):
            raise TypeError(f"{what} must be strings, got {n!r}")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"{what} repeats {', '.join(map(repr, dup))}; names must be unique")
    return names


def _output_names(shape: tuple, output_names: Sequence[str] | None) -> tuple[str, ...]:
    n = math.prod(shape)
    if output_names is not None:
        names = _names(output_names, "output_names")
        if len(names) != n:
            raise ValueError(
                f"output_names has {len(names)} names but the model has {n} outputs (shape {shape}"
                f"{', after the time axis' if shape != () else ''}); they must match"
            )
        return names
    if len(shape) == 0:
        return ("y",)
    if len(shape) == 1:
        return tuple(f"y{i}" for i in range(n))
    return tuple("y[" + ",".join(map(str, idx)) + "]" for idx in np.ndindex(*shape))


def _check_finite(res: Sensitivity) -> None:
    """Raise ``NonFiniteError`` naming the first non-finite output or derivative."""
    xp = _backend.namespace_of(res.jacobian)
    for what, arr in (("value", res.value), ("derivative", res.jacobian)):
        if bool(xp.all(xp.isfinite(arr))):
            continue
        host = to_numpy(arr)
        idx = tuple(int(i) for i in np.argwhere(~np.isfinite(host))[0])
        v = host[idx]
        if what == "value":
            raise NonFiniteError(
                f"the model returned {v} for {res._where(idx)}; sensitivities need finite outputs"
            )
        raise NonFiniteError(
            f"the derivative of {res._where(idx[:-1])} with respect to parameter "
            f"{res.param_names[idx[-1]]!r} is {v} (the model is not differentiable there, "
            "e.g. sqrt or log at 0, or it overflowed)"
        )


def local_sensitivity(
    model: Callable,
    params: Any,
    *args: Any,
    param_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    times: Any = None,
    chunk_size: int | None = None,
    check_finite: bool = True,
    **kwargs: Any,
) -> Sensitivity:
    """Local sensitivities of ``model(params, *args, **kwargs)`` to each parameter, in one forward pass.

    Args:
        model: returns an array (any backend); for a trajectory its first axis is time.
        params: a 1-D floating array of parameter values (names from ``param_names``,
            else ``p0, p1, ...``), or a dict ``{name: scalar}`` that is passed to the model
            as a dict of 0-d arrays.
        *args: further positional arguments of the model, not differentiated.
        output_names: names of the outputs (after the time axis, flattened in C order).
        times: the times along the output's first axis, for time-resolved sensitivities.
        chunk_size: directions per pass, as in ``ft.jacfwd`` (default: all at once,
            within the memory budget).
        check_finite: raise ``NonFiniteError`` naming the first non-finite output or
            derivative (on by default; it costs one device sync).
        **kwargs: further keyword arguments of the model, not differentiated.

    Returns:
        A ``Sensitivity`` with the absolute, relative and normalized sensitivities.

    Examples:
        >>> import numpy as np
        >>> from fwdtensor.sensitivity import local_sensitivity
        >>> def growth(p):  # y = a * exp(b), so d ln y / d ln a = 1 and d ln y / d ln b = b
        ...     return p[0] * np.exp(1.0) ** p[1]
        >>> s = local_sensitivity(growth, np.array([2.0, 0.5]), param_names=["a", "b"])
        >>> [(n, round(v, 6)) for n, v in s.ranking()]
        [('a', 1.0), ('b', 0.5)]
    """
    if not callable(model):
        raise TypeError(f"model must be callable, got {type(model).__name__}")
    if isinstance(params, Mapping):
        p, names = _param_dict(params, param_names)
    else:
        p, names = _param_vector(params, param_names)
    value, jac = _transforms.value_and_jacfwd(model, 0, chunk_size=chunk_size)(p, *args, **kwargs)
    if type(value) is not DualTensor and not _backend.is_array(value):
        raise TypeError(f"model must return one array, got {type(value).__name__}")
    if isinstance(p, dict):
        xp = _backend.namespace_of(value)
        jac = xp.stack([jac[k] for k in names], axis=-1)
        p = xp.stack([p[k] for k in names])
    shape = tuple(value.shape)
    if times is not None:
        times = _check_times(times, shape)
        shape = shape[1:]
    res = Sensitivity(value, jac, p, names, _output_names(shape, output_names), times)
    if check_finite:
        _check_finite(res)
    return res


def _check_times(times: Any, shape: tuple) -> np.ndarray:
    """The times of a trajectory as a host float64 array (they label the first axis)."""
    ts = np.asarray(to_numpy(times) if _backend.is_array(times) else times, dtype=np.float64)
    if ts.ndim != 1:
        raise ValueError(f"times must be 1-D, got shape {ts.shape}")
    if len(shape) == 0 or shape[0] != ts.shape[0]:
        raise ValueError(
            f"the model's output has shape {shape} but there are {ts.shape[0]} times: a "
            "trajectory has time along its first axis"
        )
    return ts


def ode_sensitivity(
    fun: Callable,
    y0: Any,
    times: Any,
    params: Any,
    *,
    t0: float | None = None,
    param_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    chunk_size: int | None = None,
    **solver_options: Any,
) -> Sensitivity:
    """Time-resolved sensitivities of an ODE solution ``dy/dt = fun(t, y, params)``.

    ``y0`` is the initial state, or a function ``y0(params)`` when initial conditions are
    parameters too. The solution is stored at ``times`` (integration starts at ``t0``,
    by default ``times[0]``); ``solver_options`` go to ``fwdtensor.ode.solve`` (``method``,
    ``rtol``, ``atol``, ``step``, ``jac``, ``jac_sparsity``...): ``method="Rodas4"`` or
    ``"auto"`` for stiff models, whose sensitivities flow through the implicit stages in the
    same single pass. The result has layout time x state x parameter.
    """
    from .ode import solve

    ts = [float(t) for t in (to_numpy(times) if _backend.is_array(times) else times)]
    if not ts:
        raise ValueError("times is empty; give the times at which to compare the solution")
    start = ts[0] if t0 is None else float(t0)

    def model(p: Any) -> Any:
        init = y0(p) if callable(y0) else y0
        return solve(fun, (start, ts[-1]), init, args=(p,), t_eval=ts, **solver_options).y

    return local_sensitivity(
        model,
        params,
        param_names=param_names,
        output_names=output_names,
        times=ts,
        chunk_size=chunk_size,
    )
