"""One backend fixture for every test: NumPy and array-api-strict always, PyTorch (CPU)
when installed, CuPy when a CUDA device is present. Missing backends skip with a reason."""

from __future__ import annotations

import importlib.util
import os

import pytest
from hypothesis import settings

settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True)
settings.register_profile("dev", max_examples=50, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def _cuda_reason() -> str | None:
    if importlib.util.find_spec("cupy") is None:
        return (
            "CuPy is not installed (from a checkout, on a CUDA machine: "
            "pip install -e '.[cuda12]' or '.[cuda13]')"
        )
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() < 1:
            return "no CUDA device is visible to CuPy"
    except Exception as exc:  # no driver, no runtime
        return f"no usable CUDA device ({type(exc).__name__}: {exc})"
    return None


def _backends() -> list:
    params = [pytest.param("numpy", id="numpy"), pytest.param("array_api_strict", id="strict")]
    torch_reason = (
        None
        if importlib.util.find_spec("torch")
        else "PyTorch is not installed (CPU build: pip install torch --index-url https://download.pytorch.org/whl/cpu)"
    )
    params.append(
        pytest.param(
            "torch", id="torch", marks=pytest.mark.skipif(torch_reason is not None, reason=str(torch_reason))
        )
    )
    cuda = _cuda_reason()
    params.append(
        pytest.param("cupy", id="cupy", marks=pytest.mark.skipif(cuda is not None, reason=str(cuda)))
    )
    return params


BACKENDS = _backends()


@pytest.fixture(params=BACKENDS)
def backend(request):
    """A ``Backend`` helper (namespace, conversions) for each available library."""
    from tests._util import Backend

    return Backend(request.param)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """One line per reason for skipped tests (how many, and why), instead of one per test."""
    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped:
        return
    reasons: dict[str, int] = {}
    for rep in skipped:
        longrepr = rep.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
        reasons[reason] = reasons.get(reason, 0) + 1
    terminalreporter.write_sep("-", f"{len(skipped)} skipped, by reason")
    for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
        terminalreporter.write_line(f"{n:6d}  {reason}")
