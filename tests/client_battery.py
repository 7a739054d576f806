"""A battery of functions of real Array API clients (array-api-extra, SciPy with
``SCIPY_ARRAY_API=1``, scikit-learn with ``array_api_dispatch=True``), called on duals and
checked against central finite differences of the same function on plain NumPy arrays.

Run as a script (``python tests/client_battery.py [--jax]``) it sets ``SCIPY_ARRAY_API=1``
before SciPy is imported, runs every case and prints one JSON object: case name -> outcome
(``ok``, ``raises`` with the error's type and message, ``wrong`` with the error measured);
with ``--jax`` each case that differentiates is also run under ``jax.jvp`` (minutes: JAX runs
the clients op by op) as a second reference.
``tests/test_clients.py`` runs it in a subprocess, so the environment variable never reaches
other tests, and compares the outcomes with ``CASES``' expectations. Imported as a module it
only defines the cases and the table of ``docs/library-code.md`` (no client is imported).
"""

from __future__ import annotations

import json
import os
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass

# Expected outcomes: "differentiates", or the error the case must raise, with the reason.
DIFF = "differentiates"
POS = (0.5, 2.0)
UNIT = (0.05, 0.95)
# The causes of the expected errors, by whose limit they are.
NP_CLIENT = "the client converts its input with `np.asarray` (its own limit: compiled code)"
NO_SPECIAL = "SciPy computes the p-value with `scipy.special.{}`, which `ft.special` lacks"
MIXED = (
    "array-api-compat refuses a dual mixed with a NumPy array (`Multiple namespaces`); "
    "pass `ft.asarray(constant)`"
)
NAN = "NaN tangent"


@dataclass(frozen=True)
class Case:
    """One client function: ``fn(*inputs)`` with inputs of ``shapes``, differentiated w.r.t. all."""

    name: str
    library: str  # "array-api-extra", "scipy", "scikit-learn"
    fn: Callable
    shapes: tuple
    expect: str = DIFF  # DIFF, or the name of the error type it must raise
    why: str = ""  # for an expected error: the cause (whose limit, what to do)
    domain: tuple = (-1.0, 1.0)  # inputs drawn uniformly from this interval


CASES: list[Case] = []


def case(name, library, shapes, expect=DIFF, why="", domain=(-1.0, 1.0)):
    assert all(c.name != name for c in CASES), name

    def deco(fn):
        CASES.append(Case(name, library, fn, tuple(shapes), expect, why, domain))
        return fn

    return deco


def _xp(x):
    import array_api_compat

    return array_api_compat.array_namespace(x)


# --------------------------------------------------------------------------- array-api-extra
XPX = "array-api-extra"


@case("xpx.atleast_nd", XPX, [(3,)])
def _(x):
    import array_api_extra as xpx

    return xpx.atleast_nd(x, ndim=3)


@case("xpx.cov", XPX, [(3, 6)])
def _(x):
    import array_api_extra as xpx

    return xpx.cov(x)


@case("xpx.create_diagonal", XPX, [(4,)])
def _(x):
    import array_api_extra as xpx

    return xpx.create_diagonal(x)


@case("xpx.expand_dims", XPX, [(2, 3)])
def _(x):
    import array_api_extra as xpx

    return xpx.expand_dims(x, axis=(0, 2))


@case("xpx.kron", XPX, [(2, 2), (3, 2)])
def _(a, b):
    import array_api_extra as xpx

    return xpx.kron(a, b)


@case("xpx.pad", XPX, [(2, 3)])
def _(x):
    import array_api_extra as xpx

    return xpx.pad(x, 2)


@case("xpx.sinc", XPX, [(5,)])
def _(x):
    import array_api_extra as xpx

    return xpx.sinc(x)


@case("xpx.nan_to_num", XPX, [(5,)])
def _(x):
    import array_api_extra as xpx

    return xpx.nan_to_num(x)


@case("xpx.nansum", XPX, [(3, 4)])
def _(x):
    import array_api_extra as xpx

    xp = _xp(x)
    y = xp.where(x > 0.5, xp.nan, x)
    return xpx.nansum(y, axis=1)


@case("xpx.nanmean", XPX, [(3, 4)])
def _(x):
    import array_api_extra as xpx

    xp = _xp(x)
    return xpx.nanmean(xp.where(x > 0.5, xp.nan, x), axis=0)


@case("xpx.nanmax", XPX, [(3, 4)])
def _(x):
    import array_api_extra as xpx

    return xpx.nanmax(x, axis=1)


@case("xpx.partition", XPX, [(6,)])
def _(x):
    import array_api_extra as xpx

    xp = _xp(x)
    p = xpx.partition(x, 2)  # only p[2] and the sets before and after it are defined
    return xp.stack([p[2], xp.sum(p[:2]), xp.sum(p[3:])])


@case("xpx.apply_where", XPX, [(6,)])
def _(x):
    import array_api_extra as xpx

    xp = _xp(x)
    return xpx.apply_where(x > 0, x, xp.sqrt, fill_value=0.0)


@case("xpx.at.set", XPX, [(5,), (2,)])
def _(x, v):
    import array_api_extra as xpx

    return xpx.at(x)[1:3].set(v)


@case("xpx.at.multiply", XPX, [(5,), (2,)])
def _(x, v):
    import array_api_extra as xpx

    return xpx.at(x)[1:3].multiply(v, copy=True)


@case("xpx.deg2rad", XPX, [(4,)])
def _(x):
    import array_api_extra as xpx

    return xpx.deg2rad(x)


@case("xpx.rad2deg", XPX, [(4,)])
def _(x):
    import array_api_extra as xpx

    return xpx.rad2deg(x)


# ----------------------------------------------------------------------------------- scipy
SP = "scipy"


def _special(name, shapes=((5,),), domain=(-1.0, 1.0), **kw):
    @case(f"special.{name}", SP, shapes, domain=domain)
    def _(*args):
        import scipy.special as sc

        return getattr(sc, name)(*args, **kw)


for _n in ("erf", "erfc", "expit", "log_expit", "ndtr", "log_ndtr", "i0", "i0e", "i1e"):
    _special(_n)
for _n in ("gammaln", "digamma", "entr", "logit", "ndtri", "erfinv"):
    _special(_n, domain=UNIT if _n in ("logit", "ndtri", "erfinv") else POS)
_special("xlogy", ((5,), (5,)), domain=POS)
_special("xlog1py", ((5,), (5,)), domain=POS)
_special("rel_entr", ((5,), (5,)), domain=POS)
_special("kl_div", ((5,), (5,)), domain=POS)
_special("betaln", ((5,), (5,)), domain=POS)
_special("logsumexp", ((3, 4),), axis=1)


@case("special.polygamma", SP, [(5,)], domain=POS)
def _(x):
    import scipy.special as sc

    return sc.polygamma(1, x)


_special("gamma", domain=POS)
_special("erfcx")


@case("special.expm1", SP, [(5,)], "NotDifferentiableError", "`ft.special` has no `expm1` (use `xp.expm1`)")
def _(x):
    import scipy.special as sc

    return sc.expm1(x)


@case("special.xlogy(dual, ndarray)", SP, [(5,)], "TypeError", MIXED, domain=POS)
def _(x):
    import numpy as np
    import scipy.special as sc

    return sc.xlogy(x, np.linspace(0.5, 2.0, 5))


@case("special.xlogy(dual, ft.asarray)", SP, [(5,)], domain=POS)
def _(x):
    import numpy as np
    import scipy.special as sc

    return sc.xlogy(x, _xp(x).asarray(np.linspace(0.5, 2.0, 5)))


_special("softmax", ((3, 4),), axis=1)
_special("log_softmax", ((3, 4),), axis=0)


def _stats(name, shapes=((8,),), domain=(-1.0, 1.0), attr=None, expect=DIFF, why="", **kw):
    @case(f"stats.{name}" + (f".{attr}" if attr else ""), SP, shapes, expect, why, domain)
    def _(*args):
        import scipy.stats as st

        r = getattr(st, name)(*args, **kw)
        return getattr(r, attr) if attr else r


for _n in ("variation", "zscore", "skew", "kurtosis", "sem", "tvar", "tstd", "tmean"):
    _stats(_n, domain=POS if _n == "variation" else (-1.0, 1.0))
_stats("moment", order=3)
_stats("gmean", domain=POS)
_stats("hmean", domain=POS)
_stats("pmean", domain=POS, p=2.5)
_stats("entropy", domain=POS)
_stats("trim_mean", proportiontocut=0.1)
_stats("zmap", ((4,), (8,)))
_stats("circmean", domain=POS)
_stats("circvar", domain=POS)
_stats(
    "ttest_1samp", attr="statistic", popmean=0.1, expect="DerivativeLostError", why=NO_SPECIAL.format("stdtr")
)
_stats(
    "pearsonr",
    ((8,), (8,)),
    attr="statistic",
    expect="DerivativeLostError",
    why=NO_SPECIAL.format("betaincc"),
)
_stats("quantile", p=0.3)


_stats("describe", attr="variance")
_stats("circstd", domain=POS)
_stats("kstat", n=2)
_stats("differential_entropy")
_stats("gstd", domain=POS)
_stats("tmin")
_stats("lmoment")
_stats("directional_stats", ((6, 3),), attr="mean_direction")
_stats("linregress", ((8,), (8,)), attr="slope", expect="DerivativeLostError", why=NP_CLIENT)
_stats("expectile", alpha=0.3, expect="DerivativeLostError", why=NP_CLIENT)


@case("stats.Normal(mu=x).logpdf", SP, [(5,)], "DerivativeLostError", NP_CLIENT)
def _(x):
    import scipy.stats as st

    return st.Normal(mu=x, sigma=1.0).logpdf(0.3)


@case("stats.boxcox_llf", SP, [(8,)], domain=POS)
def _(x):
    import scipy.stats as st

    return st.boxcox_llf(0.5, x)


def _integrate(name, shapes=((7,),), expect=DIFF, why="", **kw):
    @case(f"integrate.{name}" + ("(y, x)" if len(shapes) == 2 else ""), SP, shapes, expect, why)
    def _(*args):
        import scipy.integrate as si

        return getattr(si, name)(*args, **kw)


_integrate("trapezoid", dx=0.3)
_integrate("simpson", dx=0.3, expect="DerivativeLostError", why=NP_CLIENT)
_integrate("cumulative_trapezoid", dx=0.3)
_integrate("cumulative_simpson", dx=0.3)
_integrate("trapezoid", ((7,), (7,)))  # y and the sample points x both differentiated


def _signal(name, shapes=((8,),), expect=DIFF, why="", **kw):
    label = f"({', '.join(f'{k}={v!r}' for k, v in kw.items())})" if kw else ""

    @case(f"signal.{name}{label}", SP, shapes, expect, why)
    def _(*args):
        import scipy.signal as ss

        return getattr(ss, name)(*args, **kw)


_CHOOSE = "`choose_conv_method` calls `int()` on the data to pick a method; pass `method=` to avoid it"
_signal("convolve", ((8,), (3,)), "DerivativeLostError", _CHOOSE)
_signal("correlate", ((8,), (3,)), "DerivativeLostError", _CHOOSE)
_signal("convolve", ((8,), (3,)), "DerivativeLostError", NP_CLIENT, method="direct")
_signal("convolve", ((8,), (3,)), method="fft")
_signal("correlate", ((8,), (3,)), method="fft")
_signal("fftconvolve", ((8,), (3,)))
_signal("fftconvolve", ((5, 4), (2, 3)), mode="same")
_signal("resample", num=12)
_signal("welch", expect="DerivativeLostError", why=NP_CLIENT, nperseg=4)
_signal("periodogram", expect="DerivativeLostError", why=NP_CLIENT)
_signal("convolve2d", ((5, 4), (2, 3)), "DerivativeLostError", NP_CLIENT)
_signal("medfilt", expect="DerivativeLostError", why=NP_CLIENT)


@case("signal.windows.hann", SP, [(8,)])
def _(x):
    import scipy.signal as ss

    return ss.windows.hann(8, xp=_xp(x)) * x


@case("signal.sosfilt(butter)", SP, [(8,)], "TypeError", MIXED + " (`butter` returns NumPy coefficients)")
def _(x):
    import scipy.signal as ss

    return ss.sosfilt(ss.butter(2, 0.3, output="sos"), x)


_signal("oaconvolve", ((8,), (3,)))
_signal("detrend", expect="DerivativeLostError", why=NP_CLIENT)
_signal("savgol_filter", expect="DerivativeLostError", why=NP_CLIENT, window_length=5, polyorder=2)
_signal("lfilter", ((3,), (1,), (8,)), "DerivativeLostError", NP_CLIENT)
_signal("hilbert")


@case("differentiate.derivative", SP, [(4,)])
def _(x):
    import scipy.differentiate as sd

    return sd.derivative(lambda t: _xp(t).exp(t) * _xp(t).sin(t), x).df


@case("differentiate.jacobian", SP, [(3,)])
def _(x):
    import scipy.differentiate as sd

    def f(t):
        xp = _xp(t)
        return xp.stack([t[0] * xp.sin(t[1]), t[2] ** 2 * t[0]])

    return sd.jacobian(f, x).df


# ---------------------------------------------------------------------------- scikit-learn
SK = "scikit-learn"


def _metric(name, expect=DIFF, why="", **kw):
    label = f"({', '.join(f'{k}={v!r}' for k, v in kw.items())})" if kw else ""
    dom = POS if name.endswith("log_error") else (-1.0, 1.0)

    @case(f"metrics.{name}{label}", SK, [(6,), (6,)], expect=expect, why=why, domain=dom)
    def _(y, p):
        import sklearn.metrics as m

        return getattr(m, name)(y, p, **kw)


_FLOAT = "returns `float(result)`: a Python float cannot carry a derivative (use `multioutput='raw_values'`)"
for _n in ("mean_squared_error", "mean_absolute_error", "r2_score", "explained_variance_score"):
    _metric(_n, "DerivativeLostError", _FLOAT)
_metric("mean_squared_log_error", "DerivativeLostError", _FLOAT)
_metric("mean_pinball_loss", "DerivativeLostError", _FLOAT, alpha=0.3)
_metric("max_error", "DerivativeLostError", _FLOAT)
_metric("d2_tweedie_score", "DerivativeLostError", _FLOAT)
_metric("mean_absolute_percentage_error", multioutput="raw_values")
_metric("mean_absolute_error", multioutput="raw_values")
_metric("r2_score", multioutput="raw_values")
_metric("mean_squared_error", multioutput="raw_values")


def _pairwise(name, shapes=((4, 3), (5, 3)), domain=(-1.0, 1.0), expect=DIFF, why="", **kw):
    label = f"({', '.join(f'{k}={v!r}' for k, v in kw.items())})" if kw else ""

    @case(f"metrics.pairwise.{name}{label}", SK, shapes, expect, why, domain)
    def _(a, b):
        import sklearn.metrics.pairwise as pw

        return getattr(pw, name)(a, b, **kw)


for _n in ("euclidean_distances", "manhattan_distances", "cosine_similarity", "cosine_distances"):
    _pairwise(_n)
for _n in ("linear_kernel", "polynomial_kernel", "rbf_kernel", "sigmoid_kernel", "laplacian_kernel"):
    _pairwise(_n)
_pairwise("chi2_kernel", domain=POS)
_pairwise("additive_chi2_kernel", domain=POS)
_pairwise("pairwise_distances", metric="euclidean")
_pairwise("pairwise_kernels", metric="rbf")
_pairwise("pairwise_distances", metric="manhattan")
_pairwise("paired_distances", ((4, 3), (4, 3)))
_pairwise("paired_euclidean_distances", ((4, 3), (4, 3)))
_pairwise("nan_euclidean_distances")


@case(
    "metrics.pairwise.nan_euclidean_distances(X)",
    SK,
    [(4, 3)],
    NAN,
    "the diagonal is zeroed (`np.fill_diagonal`) and then square-rooted: `sqrt` has slope inf at 0 "
    "(fwdtensor's kink convention, as JAX's), times a zero tangent gives NaN on the diagonal",
)
def _(x):
    import sklearn.metrics.pairwise as pw

    return pw.nan_euclidean_distances(x)


def _transform(name, make, shapes=((6, 3),), expect=DIFF, why=""):
    @case(f"preprocessing.{name}", SK, shapes, expect, why)
    def _(x):
        return make().fit_transform(x)


def _pp(cls, **kw):
    def make():
        import sklearn.preprocessing as pp

        return getattr(pp, cls)(**kw)

    return make


for _n in ("StandardScaler", "MinMaxScaler", "MaxAbsScaler", "Normalizer"):
    _transform(_n, _pp(_n))
_transform("PolynomialFeatures", _pp("PolynomialFeatures", degree=2))
_transform("KernelCenterer", _pp("KernelCenterer"), ((4, 4),))


@case("preprocessing.normalize", SK, [(4, 3)])
def _(x):
    import sklearn.preprocessing as pp

    return pp.normalize(x)


@case("preprocessing.minmax_scale", SK, [(4, 3)])
def _(x):
    import sklearn.preprocessing as pp

    return pp.minmax_scale(x)


@case("preprocessing.add_dummy_feature", SK, [(4, 3)])
def _(x):
    import sklearn.preprocessing as pp

    return pp.add_dummy_feature(x)


_transform(
    "RobustScaler",
    _pp("RobustScaler"),
    expect="DerivativeLostError",
    why="`np.nanmedian` and `np.nanpercentile` differentiate, but then `np.transpose(list_of_duals)`: "
    "NumPy dispatches on arrays, never on a list's items, so it converts the list",
)
_transform("PowerTransformer", _pp("PowerTransformer"), expect="DerivativeLostError", why=NP_CLIENT)
_transform(
    "SplineTransformer",
    _pp("SplineTransformer"),
    expect="ValueError",
    why="writes `np.nanmin(dual)` into a NumPy buffer; NumPy reraises the DerivativeLostError as "
    "`ValueError: setting an array element with a sequence` (chained)",
)


@case("preprocessing.scale", SK, [(4, 3)], expect="DerivativeLostError", why=NP_CLIENT)
def _(x):
    import sklearn.preprocessing as pp

    return pp.scale(x)


_LABELS = (0, 0, 0, 1, 1, 1, 2, 2, 2)


@case("LinearDiscriminantAnalysis.transform", SK, [(9, 2)])
def _(x):
    import numpy as np
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    xp = _xp(x)
    y = xp.asarray(np.asarray(_LABELS))
    return LinearDiscriminantAnalysis(solver="svd").fit(x, y).transform(x)


@case("LinearDiscriminantAnalysis.predict_proba", SK, [(9, 2)])
def _(x):
    import numpy as np
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    xp = _xp(x)
    y = xp.asarray(np.asarray(_LABELS))
    return LinearDiscriminantAnalysis(solver="svd").fit(x, y).predict_proba(x)


@case("Ridge(solver='svd').coef_", SK, [(7, 3), (7,)])
def _(x, y):
    from sklearn.linear_model import Ridge

    return Ridge(alpha=0.5, solver="svd").fit(x, y).coef_


@case("Ridge(solver='svd').predict", SK, [(7, 3), (7,)])
def _(x, y):
    from sklearn.linear_model import Ridge

    return Ridge(alpha=0.5, solver="svd").fit(x, y).predict(x)


@case("PCA(svd_solver='full').fit_transform", SK, [(6, 3)])
def _(x):
    from sklearn.decomposition import PCA

    return PCA(n_components=2, svd_solver="full").fit_transform(x)


@case(
    "PCA(svd_solver='randomized').fit_transform",
    SK,
    [(6, 3)],
    NAN,
    "the range finder QR-factors a rank-deficient 6 x 12 matrix, whose QR has no derivative; "
    "fwdtensor's `qr` rule gives NaN there (documented); use `svd_solver='full'`",
)
def _(x):
    from sklearn.decomposition import PCA

    pca = PCA(n_components=2, svd_solver="randomized", power_iteration_normalizer="QR", random_state=0)
    return pca.fit_transform(x)


@case("Nystroem.fit_transform", SK, [(6, 3)])
def _(x):
    from sklearn.kernel_approximation import Nystroem

    return Nystroem(n_components=3, random_state=0).fit_transform(x)


@case("RidgeCV.coef_", SK, [(7, 3), (7,)])
def _(x, y):
    from sklearn.linear_model import RidgeCV

    return RidgeCV().fit(x, y).coef_


@case(
    "LinearRegression.coef_", SK, [(7, 3), (7,)], "DerivativeLostError", NP_CLIENT + " (`scipy.linalg.lstsq`)"
)
def _(x, y):
    from sklearn.linear_model import LinearRegression

    return LinearRegression().fit(x, y).coef_


@case(
    "KernelRidge.predict",
    SK,
    [(7, 3), (7,)],
    "AttributeError",
    "its Cholesky solve writes the NumPy-only `K.flat` (not part of the Array API)",
)
def _(x, y):
    from sklearn.kernel_ridge import KernelRidge

    return KernelRidge(alpha=0.5).fit(x, y).predict(x)


@case(
    "LogisticRegression.coef_",
    SK,
    [(8, 2)],
    "DerivativeLostError",
    "fits with `scipy.optimize` on NumPy floats (`float(loss)`)",
)
def _(x):
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    y = _xp(x).asarray(np.asarray([0, 1, 0, 1, 1, 0, 1, 0]))
    return LogisticRegression().fit(x, y).coef_


@case(
    "Ridge(solver='cholesky').coef_",
    SK,
    [(7, 3), (7,)],
    "ValueError",
    "scikit-learn dispatches only `solver='svd'`",
)
def _(x, y):
    from sklearn.linear_model import Ridge

    return Ridge(alpha=0.5, solver="cholesky").fit(x, y).coef_


# ------------------------------------------------------------------------------------ run
def _inputs(c: Case):
    import numpy as np

    rng = np.random.default_rng(zlib.crc32(c.name.encode()))
    lo, hi = c.domain
    xs = tuple(rng.uniform(lo, hi, s) for s in c.shapes)
    vs = tuple(rng.standard_normal(s) for s in c.shapes)
    return xs, vs


def _flat(out):
    import numpy as np

    if isinstance(out, tuple | list):
        return np.concatenate([_flat(o) for o in out]) if out else np.zeros(0)
    return np.asarray(out, dtype=np.float64).ravel()


def run_case(c: Case, with_jax: bool = False) -> dict:
    """Call ``c.fn`` on duals through ``ft.jvp`` and compare with central differences."""
    import numpy as np

    import fwdtensor as ft

    xs, vs = _inputs(c)
    try:
        f0 = _flat(c.fn(*xs))
        h = 1e-6
        fp = _flat(c.fn(*(x + h * v for x, v in zip(xs, vs))))
        fm = _flat(c.fn(*(x - h * v for x, v in zip(xs, vs))))
        fd = (fp - fm) / (2 * h)
    except Exception as e:  # the reference itself fails: the case is broken
        return {"status": "broken", "error": f"{type(e).__name__}: {e}"[:400]}
    try:
        p, t = ft.jvp(c.fn, xs, vs)
    except Exception as e:
        chain, cause = [], e
        while cause is not None and len(chain) < 5:
            chain.append(type(cause).__name__)
            cause = cause.__cause__ or cause.__context__
        return {"status": "raises", "error_type": type(e).__name__, "chain": chain, "error": str(e)[:400]}
    p, t = _flat(p), _flat(t)
    if not np.all(np.isfinite(fd)):
        return {"status": "broken", "error": "the finite differences are not finite"}
    if t.shape == fd.shape and np.any(np.isnan(t)):
        return {"status": "nan", "fd_norm": float(np.linalg.norm(fd))}
    scale = 1.0 + float(np.max(np.abs(fd), initial=0.0))
    err_p = float(np.max(np.abs(p - f0), initial=0.0)) / (1.0 + float(np.max(np.abs(f0), initial=0.0)))
    err_t = float(np.max(np.abs(t - fd), initial=0.0)) / scale if t.shape == fd.shape else float("inf")
    ok = err_p < 1e-9 and err_t < 1e-5
    out = {
        "status": "ok" if ok else "wrong",
        "err_primal": err_p,
        "err_tangent": err_t,
        "fd_norm": float(np.linalg.norm(fd)),
    }
    if with_jax:
        out.update(_against_jax(c, xs, vs, t, scale))
    return out


def _against_jax(c: Case, xs: tuple, vs: tuple, t, scale: float) -> dict:
    """The same call under ``jax.jvp`` where JAX is installed and the client takes JAX arrays:
    a second, independent reference (``jax_err``), or why JAX cannot run it (``jax``)."""
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return {}
    import numpy as np

    jax.config.update("jax_enable_x64", True)
    try:
        _, tj = jax.jvp(c.fn, tuple(map(jnp.asarray, xs)), tuple(map(jnp.asarray, vs)))
        tj = _flat(jax.tree_util.tree_map(np.asarray, tj))
    except Exception as e:
        return {"jax": type(e).__name__}
    if tj.shape != t.shape or not np.all(np.isfinite(tj)):
        return {"jax": "no finite tangent"}
    return {"jax": "ok", "jax_err": float(np.max(np.abs(t - tj), initial=0.0)) / scale}


TABLE_BEGIN = "<!-- client table: generated by `python tests/client_battery.py --markdown` -->"
TABLE_END = "<!-- end of client table -->"
_MODULES = {XPX: "array_api_extra", SP: "scipy", SK: "sklearn"}


def markdown_table() -> str:
    """The table of ``docs/library-code.md``: every case, its expected outcome and why."""
    lines = [TABLE_BEGIN, "", "| library | differentiates | raises | NaN tangent |", "|---|---|---|---|"]
    for lib in _MODULES:
        cs = [c for c in CASES if c.library == lib]
        n, nan = sum(c.expect == DIFF for c in cs), sum(c.expect == NAN for c in cs)
        lines.append(f"| {lib} | {n} | {len(cs) - n - nan} | {nan} |")
    lines += ["", "| library | function | outcome | why |", "|---|---|---|---|"]
    for c in CASES:
        outcome = c.expect if c.expect in (DIFF, NAN) else f"raises `{c.expect}`"
        lines.append(f"| {c.library} | `{c.name}` | {outcome} | {c.why} |")
    return "\n".join([*lines, "", TABLE_END])


def main(argv: list[str]) -> None:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout
    if "--markdown" in argv:
        print(markdown_table())
        return
    os.environ["SCIPY_ARRAY_API"] = "1"  # before SciPy is imported, in this process only
    import importlib
    import warnings

    missing = {}
    for lib, mod in _MODULES.items():
        try:
            importlib.import_module(mod)
        except ImportError as e:
            missing[lib] = f"{mod} is not installed ({e})"
    if SK not in missing:
        import sklearn

        sklearn.set_config(array_api_dispatch=True)
    results = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for c in CASES:
            if c.library in missing:
                results[c.name] = {"status": "skipped", "why": missing[c.library]}
            else:
                results[c.name] = run_case(c, with_jax="--jax" in argv)
    json.dump(results, sys.stdout, indent=1)


if __name__ == "__main__":
    main(sys.argv[1:])
