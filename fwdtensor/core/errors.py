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
