"""Argument and array validation shared by every public metric.

Each metric checks its options first, then its arrays, then computes. All failures raise
`ValueError` with one message template: "Expected <what> to <rule>, but got <value>."
"""

from numbers import Integral
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

#: Probabilities this far outside [0, 1] are float noise: they are clipped, not rejected.
PROB_TOLERANCE = 1e-9


def check_option(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    """Reject a `Literal` option that is not one of `allowed`."""
    if value not in allowed:
        raise ValueError(f"Expected argument `{name}` to be one of {allowed}, but got {value!r}.")


def check_positive_int(name: str, value: Any) -> None:
    """Reject anything but an int >= 1 (bools are rejected too)."""
    if not isinstance(value, Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"Expected argument `{name}` to be an int >= 1, but got {value!r}.")


def _as_matrix(name: str, x: ArrayLike, shape: tuple[int, ...] | None) -> np.ndarray:
    """Convert to a numeric array of shape (n_docs, n_labels), both >= 1, or exactly `shape`."""
    try:
        arr = np.asarray(x)
    except ValueError:  # ragged nested sequences
        raise ValueError(
            f"Expected `{name}` to have shape (n_docs, n_labels), but got a ragged sequence."
        ) from None
    if shape is not None and arr.shape != shape:
        raise ValueError(
            f"Expected `{name}` to have shape (n_docs, n_labels) = {shape}, but got {arr.shape}."
        )
    if arr.ndim != 2 or 0 in arr.shape:
        raise ValueError(
            f"Expected `{name}` to have shape (n_docs, n_labels) with n_docs, n_labels >= 1, "
            f"but got {arr.shape}."
        )
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"Expected `{name}` to hold bools or real numbers, but got {arr.dtype}.")
    return arr


def check_binary(name: str, x: ArrayLike, *, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Return `x` as an int64 0/1 matrix; bools, ints and floats equal to 0 or 1 are accepted."""
    arr = _as_matrix(name, x, shape)
    bad = ~np.isin(arr, (0, 1))
    if bad.any():
        raise ValueError(f"Expected `{name}` to be 0 or 1, but got {arr[bad][0].item()!r}.")
    return arr.astype(np.int64)


def check_probs(name: str, x: ArrayLike, *, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Return `x` as a float64 matrix in [0, 1].

    Values within `PROB_TOLERANCE` outside [0, 1] (e.g. 1.0000000000000002 from a softmax) are
    clipped; anything further out, NaN or infinite is rejected.
    """
    arr = _as_matrix(name, x, shape).astype(np.float64)
    finite = np.isfinite(arr)
    if not finite.all():
        raise ValueError(f"Expected `{name}` to be finite, but got {arr[~finite][0].item()!r}.")
    outside = (arr < -PROB_TOLERANCE) | (arr > 1 + PROB_TOLERANCE)
    if outside.any():
        raise ValueError(f"Expected `{name}` to be in [0, 1], but got {arr[outside][0].item()!r}.")
    return np.clip(arr, 0.0, 1.0)
