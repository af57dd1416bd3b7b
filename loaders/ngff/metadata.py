"""NGFF 0.4 ``multiscales`` metadata: axes in the order NGFF allows, scales from physical sizes, validation.

Axes come as the header readers' letters (``T`` ``C`` ``Z`` ``Y`` ``X``, ``S`` for samples of a pixel, ``Q`` for an
unknown axis). NGFF 0.4 wants at most one time and one channel axis, two or three space axes, in the order
time, channel, space (z, y, x).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

NGFF_VERSION = "0.4"
#: the NGFF name and type of each reader axis letter (samples are channels; an unknown axis, tifffile's sequence of
#: pages or of regions is z, as Bio-Formats does and as the previews step through them)
AXES = {"T": ("t", "time"), "C": ("c", "channel"), "S": ("c", "channel"), "Z": ("z", "space"), "Q": ("z", "space")}
AXES.update({"I": ("z", "space"), "R": ("z", "space")})
AXES.update({"Y": ("y", "space"), "X": ("x", "space")})
ORDER = "tczyx"
#: the unit a length in metres is written in: the first whose size it reaches
_LENGTH_UNITS = ((1e-8, "micrometer"), (1e-9, "nanometer"), (0.0, "angstrom"))
_UNIT_METRES = {"micrometer": 1e-6, "nanometer": 1e-9, "angstrom": 1e-10}


class NotNgff(ValueError):
    """Axes NGFF cannot describe as they are."""


def ngff_axes(letters: str) -> list[str]:
    """The NGFF names of reader axes (``"ZCYX"`` → ``["z", "c", "y", "x"]``); :class:`NotNgff` for an axis it
    has no name for or that occurs twice."""
    names = []
    for letter in letters.upper():
        if letter not in AXES:
            raise NotNgff(f"axis {letter!r} has no NGFF name")
        names.append(AXES[letter][0])
    if len(set(names)) != len(names):
        raise NotNgff(f"axes {letters!r} name an NGFF axis twice")
    if "y" not in names or "x" not in names:
        raise NotNgff(f"axes {letters!r} lack y or x")
    return names


def in_order(names: Sequence[str]) -> bool:
    """Whether NGFF axes are in the order NGFF 0.4 requires (time, channel, then space)."""
    positions = [ORDER.index(name) for name in names]
    return positions == sorted(positions)


def sorted_axes(names: Sequence[str]) -> list[str]:
    return sorted(names, key=ORDER.index)


def length_unit(metres: Sequence[float]) -> str:
    """The unit to write lengths of about these sizes in (µm for light microscopy, Å for atoms)."""
    smallest = min(metres)
    return next(unit for bound, unit in _LENGTH_UNITS if smallest >= bound)


def physical_scale(names: Sequence[str], sizes: Mapping[str, float | None]) -> tuple[list[float], str | None]:
    """Per-axis scale of level 0 from physical sizes in metres (``sizes["x"]``…; 1 where unknown), and the length
    unit used (None when no size is known)."""
    known = [value for axis in "zyx" if (value := sizes.get(axis)) and value > 0]
    unit = length_unit(known) if known else None
    scale = []
    for name in names:
        value = sizes.get(name)
        scale.append(float(f"{value / _UNIT_METRES[unit]:.9g}") if unit and value and value > 0 else 1.0)
    return scale, unit


def multiscales(
    names: Sequence[str],
    level_shapes: Sequence[Sequence[int]],
    sizes: Mapping[str, float | None],
    *,
    name: str | None = None,
    paths: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The group attributes (``{"multiscales": [...]}``) of an image whose levels have ``level_shapes`` (level 0
    first) on axes ``names``; each level's scale is level 0's times the factor it was reduced by."""
    base, unit = physical_scale(names, sizes)
    axes = []
    for axis in names:
        entry = {"name": axis, "type": dict(AXES.values())[axis] if axis != "c" else "channel"}
        if entry["type"] == "space" and unit:
            entry["unit"] = unit
        axes.append(entry)
    full = level_shapes[0]
    datasets = []
    for index, shape in enumerate(level_shapes):
        scale = [b * (full[i] / shape[i] if shape[i] else 1.0) for i, b in enumerate(base)]
        path = paths[index] if paths else str(index)
        datasets.append({"path": path, "coordinateTransformations": [{"type": "scale", "scale": scale}]})
    block: dict[str, Any] = {"version": NGFF_VERSION, "axes": axes, "datasets": datasets}
    if name:
        block["name"] = name
    return {"multiscales": [block]}


def metres(series: Mapping[str, Any]) -> dict[str, float | None]:
    """The physical sizes (metres) of a header reader's series dict, by NGFF axis."""
    out: dict[str, float | None] = {}
    for axis in "xyz":
        quantity = series.get(f"physical_size_{axis}") or {}
        si = quantity.get("si") if isinstance(quantity, Mapping) else None
        out[axis] = float(si) if isinstance(si, (int, float)) and si > 0 else None
    return out


def validate_group(group: Any) -> str:
    """Check an NGFF image group with ``ome-zarr-models`` (0.4 for a Zarr v2 group, 0.5 for a Zarr v3 one); returns
    the NGFF version, raises ValueError naming the problem otherwise."""
    version = "0.5" if getattr(getattr(group, "metadata", None), "zarr_format", 2) == 3 else NGFF_VERSION
    try:
        if version == "0.5":
            from ome_zarr_models.v05.image import Image as Image05

            Image05.from_zarr(group)
        else:
            from ome_zarr_models.v04.image import Image
            from pydantic_zarr.v2 import ArraySpec

            Image.model_rebuild(_types_namespace={"ArraySpec": ArraySpec})  # pydantic 2.14 needs the forward name
            Image.from_zarr(group)
    except Exception as exc:  # noqa: BLE001 - pydantic and zarr errors alike: the store is not valid NGFF
        raise ValueError(f"the store is not valid NGFF {version}: {str(exc)[:500]}") from exc
    return version
