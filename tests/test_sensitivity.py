"""Sensitivity analysis: the three measures against finite differences on every backend,
one pass against chunks, names, rankings, warnings and errors, exports, ODE trajectories,
and the plots."""

from __future__ import annotations

import importlib.util
import math
import warnings

import numpy as np
import pytest

import fwdtensor as ft
from fwdtensor.sensitivity import (
    NonFiniteError,
    Sensitivity,
    SensitivityWarning,
    local_sensitivity,
    ode_sensitivity,
)
from tests._util import assert_close, central_difference, to_numpy

T = np.linspace(0.0, 2.0, 5)
W = np.array([1.0, 2.0])
P = np.array([1.5, 0.8, 0.3])  # a, b, c
NAMES = ["a", "b", "c"]


def decay(p, t_col, w):
    """y(t, j) = a exp(-b t) w_j + c: a trajectory of two outputs."""
    return p[0] * ft.exp(-p[1] * t_col) * w + p[2]


def decay_np(p):
    return p[0] * np.exp(-p[1] * T[:, None]) * W + p[2]


def _run(backend, dtype="float64", **kw):
    xp_args = (backend.asarray(T[:, None], dtype), backend.asarray(W, dtype))
    return local_sensitivity(decay, backend.asarray(P, dtype), *xp_args, param_names=NAMES, times=T, **kw)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_measures_against_finite_differences(dtype, backend):
    res = _run(backend, dtype, output_names=["x", "z"])
    assert tuple(res.jacobian.shape) == (5, 2, 3) and res.jacobian.dtype == backend.dtype(dtype)
    y = decay_np(P)
    J = np.stack([central_difference(decay_np, [P], [e]) for e in np.eye(3)], axis=-1)
    assert_close(res.value, y, dtype, "value")
    assert_close(res.absolute, J, dtype, "absolute")
    assert_close(res.relative, J / y[..., None], dtype, "relative")
    assert_close(res.normalized, J * P / y[..., None], dtype, "normalized")
    for kind in ("relative", "normalized"):
        assert type(res.get(kind)) is type(res.jacobian)  # computed on the model's backend


def test_one_pass_equals_single_directions(backend):
    # the default pushes all P directions at once; chunk_size=1 pushes them one at a time
    batched, single = _run(backend), _run(backend, chunk_size=1)
    np.testing.assert_allclose(to_numpy(batched.jacobian), to_numpy(single.jacobian), rtol=1e-14)


def test_dict_parameters():
    t_col = T[:, None]
    res = local_sensitivity(lambda p: p["a"] * np.exp(-t_col) * p["b"], {"b": 2.0, "a": 3.0}, times=T)
    assert res.param_names == ("b", "a")  # the dict's order, not sorted
    np.testing.assert_allclose(to_numpy(res.normalized), np.ones((5, 1, 2)))
    np.testing.assert_allclose(to_numpy(res.params), [2.0, 3.0])


def test_default_names():
    res = local_sensitivity(lambda p: p * 2.0, np.array([1.0, 2.0]))
    assert res.param_names == ("p0", "p1") and res.output_names == ("y0", "y1")
    res = local_sensitivity(lambda p: ft.sum(p), np.array([1.0, 2.0]))
    assert res.output_names == ("y",)
    res = local_sensitivity(lambda p: ft.reshape(p * 1.0, (1, 2)) * np.ones((2, 1)), np.array([1.0, 2.0]))
    assert res.output_names == ("y[0,0]", "y[0,1]", "y[1,0]", "y[1,1]")


@pytest.mark.parametrize(
    "params,kw,exc,match",
    [
        (P, {"param_names": ["a", "b"]}, ValueError, "param_names has 2 names but params has 3 values"),
        (P, {"param_names": ["a", "b", "a"]}, ValueError, "repeats 'a'"),
        (P, {"param_names": "abc"}, TypeError, "sequence of strings"),
        (P, {"param_names": ["a", "b", 3]}, TypeError, "must be strings"),
        (P, {"output_names": ["x"]}, ValueError, "output_names has 1 names but the model has 3 outputs"),
        (np.ones((3, 1)), {}, ValueError, "params must be a 1-D array"),
        (np.arange(3), {}, TypeError, "real floating dtype"),
        ({"a": 1.0}, {"param_names": ["a"]}, ValueError, "do not pass param_names"),
        ({"a": np.ones(2)}, {}, ValueError, "parameter 'a' must be a scalar"),
        (P, {"times": [0.0, 1.0]}, ValueError, "output has shape \\(3,\\) but there are 2 times"),
        (P, {"times": np.ones((3, 1))}, ValueError, "times must be 1-D"),
    ],
)
def test_bad_input_is_refused(params, kw, exc, match):
    model = (lambda p: p["a"] * 1.0) if isinstance(params, dict) else (lambda p: p * 1.0)
    with pytest.raises(exc, match=match):
        local_sensitivity(model, params, **kw)


def test_model_must_return_one_array():
    with pytest.raises(TypeError, match="model must return one array"):
        local_sensitivity(lambda p: (p, p), P)
    with pytest.raises(TypeError, match="model must be callable"):
        local_sensitivity(3.0, P)


def test_non_finite_value_names_output_and_time():
    with (
        pytest.raises(NonFiniteError, match=r"returned -inf for output 'x' at time 1\b"),
        np.errstate(all="ignore"),
    ):
        local_sensitivity(
            lambda p: ft.log(p[0] - np.array([0.0, 1.0, 2.0])),
            np.array([1.0]),
            times=[0.0, 1.0, 2.0],
            output_names=["x"],
        )


def test_non_finite_derivative_names_output_and_parameter():
    with pytest.raises(
        NonFiniteError, match="derivative of output 'y1' with respect to parameter 'k' is inf"
    ):
        with np.errstate(divide="ignore"):  # d sqrt(p - 2) / dp at p = 2
            local_sensitivity(lambda p: ft.sqrt(p - np.array([0.0, 2.0])), np.array([2.0]), param_names=["k"])


def test_check_finite_can_be_switched_off():
    with np.errstate(divide="ignore", invalid="ignore"):
        res = local_sensitivity(
            lambda p: ft.sqrt(p - np.array([0.0, 2.0])), np.array([2.0]), check_finite=False
        )
    assert np.isinf(to_numpy(res.jacobian)[1, 0])


def test_zero_output_gives_nan_and_a_warning(backend):
    y = backend.asarray([1.0, 0.0])  # the second output is identically zero
    res = local_sensitivity(
        lambda p: p[0] * y, backend.asarray([2.0]), output_names=["u", "v"], param_names=["k"]
    )
    with pytest.warns(SensitivityWarning, match=r"output is zero \(output 'v'\)"):
        rel = to_numpy(res.relative)
    np.testing.assert_allclose(rel, [[0.5], [math.nan]])
    with pytest.warns(SensitivityWarning, match="normalized sensitivity is undefined"):
        np.testing.assert_allclose(to_numpy(res.normalized), [[1.0], [math.nan]])
    np.testing.assert_allclose(to_numpy(res.absolute), [[1.0], [0.0]])  # still defined


def test_zero_parameter_gives_nan_column_and_a_warning():
    res = local_sensitivity(lambda p: p[0] * 3.0 + p[1] + 1.0, np.array([0.0, 2.0]), param_names=["m", "q"])
    with pytest.warns(SensitivityWarning, match=r"parameter is zero \('m'\)"):
        S = to_numpy(res.normalized)
    np.testing.assert_allclose(S, [math.nan, 2.0 / 3.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the relative measure does not divide by p: no warning
        np.testing.assert_allclose(to_numpy(res.relative), [1.0, 1.0 / 3.0])
    assert res.ranking() == [("q", pytest.approx(2.0 / 3.0)), ("m", pytest.approx(math.nan, nan_ok=True))]
    assert res.insensitive(0.7) == ("q",)  # NaN is not flagged


def test_ranking_influence_and_threshold():
    res = local_sensitivity(
        lambda p: p[0] * p[1] ** 0.5 * p[2] ** 0.001, np.array([1.0, 2.0, 3.0]), param_names=["a", "b", "c"]
    )
    assert [n for n, _ in res.ranking()] == ["a", "b", "c"]
    np.testing.assert_allclose([v for _, v in res.ranking()], [1.0, 0.5, 0.001])
    assert res.insensitive() == ("c",)
    assert res.insensitive(threshold=0.6) == ("b", "c")
    assert res.insensitive(threshold=0.0) == ()
    with pytest.raises(ValueError, match="threshold must be a non-negative"):
        res.insensitive(threshold=-1)
    with pytest.raises(ValueError, match="unknown aggregate 'median'"):
        res.influence(aggregate="median")
    with pytest.raises(ValueError, match="unknown sensitivity kind 'percent'"):
        res.get("percent")
    assert res.get("normalised") is res.get("normalized")  # the British spelling is an alias


def test_aggregates_over_time():
    res = local_sensitivity(decay, P, T[:, None], W, param_names=NAMES, times=T)
    S = np.abs(to_numpy(res.normalized)).reshape(-1, 3)
    for agg, ref in (("max", S.max(0)), ("mean", S.mean(0)), ("rms", np.sqrt((S**2).mean(0)))):
        np.testing.assert_allclose(list(res.influence(aggregate=agg).values()), ref)


def test_trajectory_at_time_and_table():
    res = local_sensitivity(decay, P, T[:, None], W, param_names=NAMES, output_names=["x", "z"], times=T)
    snap = res.at_time(1.1)  # nearest stored time is 1.0
    assert snap.times is None and tuple(snap.jacobian.shape) == (2, 3)
    np.testing.assert_allclose(to_numpy(snap.jacobian), to_numpy(res.jacobian)[2])
    text = res.table(time=1.0)
    assert "at time 1" in text and text.splitlines()[1].split() == ["output", "a", "b", "c"]
    assert text.splitlines()[2].split()[0] == "x" and len(text.splitlines()) == 4
    assert "absolute" in res.table("absolute")
    assert "2 outputs x 5 times to 3 parameters (a, b, c)" in repr(res)
    with pytest.raises(ValueError, match="needs a trajectory"):
        snap.at_time(0.0)


def test_to_pandas():
    pd = pytest.importorskip("pandas", reason="pandas is an optional dependency")
    res = local_sensitivity(decay, P, T[:, None], W, param_names=NAMES, output_names=["x", "z"], times=T)
    df = res.to_pandas()
    assert list(df.columns) == NAMES and df.index.names == ["time", "output"] and df.shape == (10, 3)
    np.testing.assert_allclose(df.loc[(T[2], "z")].to_numpy(), to_numpy(res.normalized)[2, 1])
    static = res.at_time(0.0).to_pandas("absolute")
    assert isinstance(static, pd.DataFrame) and list(static.index) == ["x", "z"]


def test_to_xarray():
    res = local_sensitivity(decay, P, T[:, None], W, param_names=NAMES, output_names=["x", "z"], times=T)
    if importlib.util.find_spec("xarray") is None:
        with pytest.raises(ImportError, match="to_xarray\\(\\) needs xarray, which is not installed"):
            res.to_xarray()
        return
    da = res.to_xarray("relative")
    assert da.dims == ("time", "output", "parameter") and list(da.coords["parameter"].values) == NAMES


def test_ode_sensitivity_against_closed_form(backend):
    def logistic(t, y, p):
        return p[0] * y * (1.0 - y / p[1])

    r, K, n0 = 0.8, 10.0, 0.5
    times = np.linspace(0.0, 6.0, 7)
    res = ode_sensitivity(
        logistic,
        lambda p: p[2],
        times,
        backend.asarray([r, K, n0]),
        param_names=["r", "K", "N0"],
        output_names=["N"],
        rtol=1e-10,
        atol=1e-12,
    )

    def exact(p):
        return p[1] / (1 + (p[1] / p[2] - 1) * np.exp(-p[0] * times))

    J = np.stack([central_difference(exact, [np.array([r, K, n0])], [e]) for e in np.eye(3)], axis=-1)
    assert res.times.tolist() == times.tolist() and tuple(res.jacobian.shape) == (7, 3)
    assert_close(res.absolute, J, "float64", "logistic sensitivities")


def test_ode_sensitivity_needs_times():
    with pytest.raises(ValueError, match="times is empty"):
        ode_sensitivity(lambda t, y, p: -p * y, np.ones(1), [], np.array([1.0]))


def test_doctest_examples():
    import doctest

    import fwdtensor.sensitivity

    assert doctest.testmod(fwdtensor.sensitivity).failed == 0


# ------------------------------------------------------------------- plots
needs_mpl = pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is None,
    reason="matplotlib is an optional dependency (pip install matplotlib)",
)


@pytest.fixture
def trajectory() -> Sensitivity:
    return local_sensitivity(decay, P, T[:, None], W, param_names=NAMES, output_names=["x", "z"], times=T)


@needs_mpl
def test_plot_trajectories(trajectory, tmp_path):
    from fwdtensor.plotting import plot_trajectories

    fig = plot_trajectories(trajectory, params=["a", "c"])
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 2 and [ax.get_title() for ax in axes] == ["x", "z"]
    assert [line.get_label() for line in axes[0].lines if not line.get_label().startswith("_")] == ["a", "c"]
    np.testing.assert_allclose(axes[1].lines[1].get_ydata(), to_numpy(trajectory.normalized)[:, 1, 2])
    fig.savefig(tmp_path / "traj.png")
    assert (tmp_path / "traj.png").stat().st_size > 1000


@needs_mpl
def test_plot_heatmap(trajectory, tmp_path):
    from fwdtensor.plotting import plot_heatmap

    fig = plot_heatmap(trajectory, time=1.0)
    image = fig.axes[0].images[0].get_array()
    np.testing.assert_allclose(image, to_numpy(trajectory.normalized)[2].T)  # parameters x outputs
    assert "at time 1" in fig.axes[0].get_title()
    fig.savefig(tmp_path / "heat.png")
    assert (tmp_path / "heat.png").stat().st_size > 1000


@needs_mpl
def test_plot_errors(trajectory):
    from fwdtensor.plotting import plot_heatmap, plot_trajectories

    with pytest.raises(ValueError, match="unknown output 'y'; known: x, z"):
        plot_trajectories(trajectory, outputs=["y"])
    with pytest.raises(ValueError, match="needs a time-resolved result"):
        plot_trajectories(trajectory.at_time(0.0))
    with pytest.raises(ValueError, match="time is for a time-resolved result"):
        plot_heatmap(trajectory.at_time(0.0), time=1.0)


def test_plot_without_matplotlib(trajectory, monkeypatch):
    import sys

    from fwdtensor import plotting

    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # makes the import fail
    with pytest.raises(ImportError, match=r"pip install matplotlib"):
        plotting.plot_heatmap(trajectory)
