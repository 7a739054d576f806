"""Exception types and the one place their messages are worded."""

from __future__ import annotations


class FwdTensorError(Exception):
    """Base class of every error fwdtensor raises on purpose."""


class TangentError(FwdTensorError, ValueError):
    """A tangent does not fit its primal (shape, dtype, backend or device)."""


class BackendMismatchError(FwdTensorError, TypeError):
    """Arrays of two different Array API libraries (or devices) met in one operation."""


class NotDifferentiableError(FwdTensorError, TypeError):
    """A function or input has no derivative rule (named in the message)."""


class StructureError(FwdTensorError, TypeError):
    """Nested inputs, tangents or outputs of a transform do not have matching structure."""


def describe(a: object) -> str:
    """A short description of an array-like value for error messages."""
    shape = getattr(a, "shape", None)
    dtype = getattr(a, "dtype", None)
    if shape is None:
        return f"{type(a).__name__} {a!r}"
    mod = type(a).__module__.split(".")[0]
    return f"{mod} array of shape {tuple(shape)} and dtype {dtype}"


def tangent_shape(primal_shape: tuple, tangent_shape: tuple, batched: bool) -> TangentError:
    want = (
        "(B, *primal.shape) = (B, " + ", ".join(map(str, primal_shape)) + ")"
        if batched
        else str(tuple(primal_shape))
    )
    return TangentError(
        f"tangent has shape {tuple(tangent_shape)} but the primal has shape {tuple(primal_shape)}; "
        f"expected a tangent of shape {want}"
        + ("" if batched else " (pass batched=True for a leading axis of directions)")
    )


def tangent_dtype(primal_dtype: object, tangent_dtype: object) -> TangentError:
    return TangentError(
        f"tangent has dtype {tangent_dtype} but the primal has dtype {primal_dtype}; "
        "a tangent must have its primal's floating or complex dtype (cast it with astype)"
    )


def integer_primal(primal_dtype: object) -> TangentError:
    return TangentError(
        f"cannot attach a tangent to a primal of dtype {primal_dtype}: integer and boolean "
        "arrays are constants; cast the primal to a floating dtype to differentiate it"
    )


def backend_mismatch(a: object, b: object) -> BackendMismatchError:
    return BackendMismatchError(
        f"cannot combine {describe(a)} with {describe(b)}: all arrays in one operation must "
        "come from the same Array API library (convert one of them, e.g. with xp.asarray)"
    )


def device_mismatch(d1: object, d2: object) -> BackendMismatchError:
    return BackendMismatchError(
        f"arrays on different devices: {d1} and {d2}; move one with .to_device() first"
    )


def missing_function(name: str, xp: object) -> NotDifferentiableError:
    backend = getattr(xp, "__name__", type(xp).__name__)
    return NotDifferentiableError(
        f"the backend {backend} has no function {name!r}, which this operation needs; "
        "convert the arrays to a backend that has it (e.g. NumPy) for this step"
    )


class DerivativeLostError(FwdTensorError, TypeError):
    """A dual carrying a tangent was converted to something that cannot hold it."""


def derivative_lost(what: str) -> DerivativeLostError:
    return DerivativeLostError(
        f"{what} of a DualTensor that carries a tangent: a derivative would be lost; "
        "use d.primal to drop it on purpose (or keep computing with the fwdtensor namespace)"
    )


class ResultTooLargeError(FwdTensorError, MemoryError):
    """A transform's result alone cannot fit in the memory available, so it was not attempted."""


def result_too_large(what: str, shape: tuple, nbytes: int, available: int) -> ResultTooLargeError:
    gib = 1 << 30
    return ResultTooLargeError(
        f"the {what} would have shape {tuple(shape)} and take {nbytes / gib:.1f} GiB, more than the "
        f"{available / gib:.1f} GiB of memory available; nothing was computed. Ways out: "
        "ft.sparse_jacfwd (a sparse Jacobian, when most entries are structurally zero), "
        "ft.jvp or ft.batched_jvp (the Jacobian applied to the directions you need, never stored), "
        "or jacfwd with a small chunk_size on a slice of the inputs (argnums, or a function of "
        "fewer variables) to compute it piece by piece"
    )


class ArgumentError(FwdTensorError, TypeError, ValueError):
    """A parameter of wrong type or value (a TypeError and a ValueError, so either catch works)."""


def as_index(value: object, name: str, minimum: int | None = None, expect: str | None = None) -> int:
    """``value`` as a Python int through ``operator.index`` (NumPy and torch integers too).

    bool and floats are refused, and so are values below ``minimum``, with a message naming
    the parameter ``name`` and what it must be (``expect``).
    """
    import operator

    if expect is None:
        expect = {None: "an integer", 0: "a non-negative integer", 1: "a positive integer"}.get(
            minimum, f"an integer >= {minimum}"
        )
    i = None
    if not isinstance(value, bool) and "bool" not in str(getattr(value, "dtype", "")):
        try:
            i = operator.index(value)
        except TypeError:
            pass
    if i is None or (minimum is not None and i < minimum):
        got = f"{type(value).__name__} {value!r}" if i is None else repr(i)
        raise ArgumentError(f"{name} must be {expect}, got {got}")
    return i


class DebugNaNError(FwdTensorError, FloatingPointError):
    """The NaN debug mode (``ft.set_debug_nans``) saw an operation make a NaN from NaN-free inputs."""


def debug_nan(name: str, level: int | None) -> DebugNaNError:
    where = "its value" if level is None else f"its tangent of level {level}"
    return DebugNaNError(
        f"debug_nans: {name} produced a NaN in {where} from NaN-free inputs; check its domain "
        "there (the traceback shows the call), or switch the check off with ft.set_debug_nans(False)"
    )


def missing_special(name: str, library: str) -> NotDifferentiableError:
    return NotDifferentiableError(
        f"ft.special.{name}: the backend {library} has no special function {name!r} (fwdtensor looks "
        "in scipy.special for NumPy, Dask and array-api-strict, cupyx.scipy.special for CuPy, "
        "torch.special for PyTorch, jax.scipy.special for JAX); convert the arrays to one of those"
    )


def integer_argument(function: str, arg: str) -> NotDifferentiableError:
    return NotDifferentiableError(
        f"{function}: the argument {arg!r} is an integer order and cannot be differentiated; "
        f"pass a constant (an integer, or an array without tangent) for {arg!r}"
    )


def numpy_no_rule(name: str, alternative: str) -> NotDifferentiableError:
    return NotDifferentiableError(
        f"{name} has no derivative rule for DualTensors that carry a tangent; {alternative}, "
        "or give it a rule with ft.custom_jvp (see docs/numpy.md); "
        "without a tangent, NumPy runs it on the primal values"
    )


def scipy_no_rule(name: str) -> NotDifferentiableError:
    return NotDifferentiableError(
        f"scipy.special.{name} has no rule in ft.special, so its derivative is unknown; write one "
        f"with ft.custom_jvp (f = ft.custom_jvp(scipy.special.{name}); @f.defjvp ...), or use "
        "ft.special if it has the function"
    )


def keyword_only(
    function: str, positional: tuple[str, ...], given: int, keywords: tuple[str, ...]
) -> TypeError:
    """A call that passed a keyword-only parameter of the standard's signature positionally."""
    extra = keywords[: given - len(positional)]
    n = len(positional)
    first = ", ".join(positional)
    return TypeError(
        f"{function}() takes {n} positional argument{'s' if n != 1 else ''} ({first}) but {given} were "
        f"given: {', '.join(extra)} {'is' if len(extra) == 1 else 'are'} keyword-only in the Array API "
        f"standard; write {function}({first}, {extra[0]}=...)"
    )
