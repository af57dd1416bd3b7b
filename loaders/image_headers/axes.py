"""Folding a file's own axes into the five OME dimensions, and naming pixel types."""

from __future__ import annotations

from typing import Any, Sequence

#: axis letter → the OME dimension it counts towards (samples of a pixel count as channels)
_DIMENSION = {"X": "x", "Y": "y", "Z": "z", "C": "c", "S": "c", "T": "t"}


def fold_axes(axes: str, shape: Sequence[int], warnings: list[str]) -> dict[str, Any]:
    """``size_x`` … ``size_t`` for an array of ``shape`` whose dimensions are ``axes`` (one letter each).

    An axis of any other letter counts as Z (as Bio-Formats reads the planes of a plain multi-page file), with a
    warning; several axes folding into one dimension multiply.
    """
    if len(axes) != len(shape):
        raise ValueError(f"axes {axes!r} do not match the shape {tuple(shape)}")
    sizes = {"x": 1, "y": 1, "z": 1, "c": 1, "t": 1}
    for letter, length in zip(axes.upper(), shape):
        dimension = _DIMENSION.get(letter)
        if dimension is None:
            dimension = "z"
            if length > 1:
                warnings.append(f"axis {letter} ({length}) has no stated meaning; counted as Z")
        sizes[dimension] *= int(length)
    return {f"size_{k}": v for k, v in sizes.items()}


def dtype_name(dtype: Any) -> str | None:
    """The numpy name of a dtype (``uint16``, ``float32``); None when there is none."""
    if dtype is None:
        return None
    import numpy as np

    try:
        return np.dtype(dtype).name
    except TypeError:
        return str(dtype)


#: OME PixelType → numpy dtype name
OME_PIXEL_TYPES = {
    "int8": "int8", "int16": "int16", "int32": "int32", "uint8": "uint8", "uint16": "uint16", "uint32": "uint32",
    "float": "float32", "double": "float64", "complex": "complex64", "double-complex": "complex128", "bit": "bool",
}  # fmt: skip
