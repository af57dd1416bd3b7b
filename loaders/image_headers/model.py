"""What the header readers return: one :class:`ImageHeaders` per file, holding one :class:`ImageSeries` per image.

Conventions every reader keeps:

- ``axes`` has one letter per dimension, slowest-varying first, in the order the file stores them (numpy order):
  ``T`` time, ``C`` channel, ``Z``, ``Y``, ``X``, ``S`` samples of a pixel (RGB), and whatever else the format
  names (``Q`` for an unknown axis). ``size_x`` … ``size_t`` fold them into the five OME dimensions (samples count
  as channels; an axis of unknown meaning counts as Z, as Bio-Formats does, with a warning).
- ``pixel_type`` is a numpy dtype name (``uint16``, ``float32``, ``complex64``, ``bool``).
- lengths and times are :class:`Quantity`: the value and unit as the file writes them, and the value in metres or
  seconds (``si``; None when the unit is not a physical one, e.g. OME's ``pixel``).
- ``status`` is ``ok``, ``unreadable`` (with a ``reason``: malformed, truncated, over a cap, killed) or
  ``unsupported`` (no reader for this kind of file); an ``unreadable`` or ``unsupported`` file has no series.

Everything is plain data: :meth:`ImageHeaders.to_dict` gives JSON-ready dicts and :meth:`ImageHeaders.from_dict`
reads them back (the sandbox sends results between processes as JSON).
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["ok", "unreadable", "unsupported"]


@dataclass
class Quantity:
    """A length or a time: ``value`` in ``unit`` as written, and ``si`` in metres or seconds (None: not physical)."""

    value: float
    unit: str
    si: float | None


@dataclass
class Channel:
    name: str | None = None
    fluorophore: str | None = None
    excitation_wavelength: Quantity | None = None
    emission_wavelength: Quantity | None = None
    #: OME AcquisitionMode (``WideField``, ``LaserScanningConfocalMicroscopy``, …) as written
    acquisition_mode: str | None = None
    #: OME IlluminationType (``Epifluorescence``, ``Transmitted``, …) as written
    illumination_type: str | None = None
    contrast_method: str | None = None
    samples_per_pixel: int | None = None


@dataclass
class Objective:
    model: str | None = None
    manufacturer: str | None = None
    lens_na: float | None = None
    nominal_magnification: float | None = None
    calibrated_magnification: float | None = None
    immersion: str | None = None
    correction: str | None = None


@dataclass
class Detector:
    model: str | None = None
    manufacturer: str | None = None
    type: str | None = None


@dataclass
class Instrument:
    microscope_model: str | None = None
    microscope_manufacturer: str | None = None
    #: OME MicroscopeType (``Inverted``, ``Upright``…) as written
    microscope_type: str | None = None
    objective: Objective | None = None
    detectors: list[Detector] = field(default_factory=list)
    #: the magnification of an instrument without objective settings (an electron microscope's)
    magnification: float | None = None
    #: an electron microscope's high tension
    accelerating_voltage: Quantity | None = None
    #: acquisition software and version as written
    software: str | None = None


@dataclass
class ImageSeries:
    """One image of a file (a TIFF series, an OME Image, an OME-Zarr multiscale image, a map)."""

    index: int
    axes: str
    size_x: int
    size_y: int
    size_z: int = 1
    size_c: int = 1
    size_t: int = 1
    pixel_type: str | None = None
    name: str | None = None
    #: where the image is inside its container (an OME-Zarr group path), when it has one
    path: str | None = None
    physical_size_x: Quantity | None = None
    physical_size_y: Quantity | None = None
    physical_size_z: Quantity | None = None
    time_increment: Quantity | None = None
    #: resolution levels, the full one included
    pyramid_levels: int = 1
    #: (width, height) of a tile or chunk, when the pixels are stored in tiles or chunks
    tile_size: tuple[int, int] | None = None
    compression: str | None = None
    channels: list[Channel] = field(default_factory=list)
    instrument: Instrument | None = None
    #: ISO 8601 (a UTC time written with ``Z`` comes out as ``+00:00``)
    acquisition_date: str | None = None


@dataclass
class ImageHeaders:
    """What the readers found in one file (or OME-Zarr store)."""

    source: str
    status: Status = "ok"
    format: str | None = None
    reason: str | None = None
    series: list[ImageSeries] = field(default_factory=list)
    #: bytes fetched from the source (for a gzip file: compressed bytes)
    bytes_read: int = 0
    #: calls to the source (for a remote source: range requests)
    reads: int = 0
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ImageHeaders":
        return _build(cls, data)

    def fail(self, status: Status, reason: str) -> "ImageHeaders":
        """Mark the file unreadable or unsupported: the reason is kept, the series are dropped."""
        self.status, self.reason, self.series = status, reason, []
        return self


def _build(cls: Any, data: Any) -> Any:
    """An instance of dataclass ``cls`` from its :func:`dataclasses.asdict` form (nested dataclasses rebuilt)."""
    hints = _hints(cls)
    values = {f.name: _convert(hints[f.name], data[f.name]) for f in dataclasses.fields(cls) if f.name in data}
    return cls(**values)


@functools.cache
def _hints(cls: Any) -> dict[str, Any]:
    """The resolved field types of ``cls`` (resolving them costs more than the rest of :func:`_build`)."""
    return typing.get_type_hints(cls)


def _convert(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return _convert(inner[0], value) if len(inner) == 1 else value
    if origin is list:
        return [_convert(typing.get_args(hint)[0], v) for v in value]
    if origin is tuple:
        return tuple(value)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value)
    return value


#: the largest size an image may claim along one axis (pixels, planes, channels, time points): a larger claim makes
#: the file unreadable (no real image comes near; stores keep sizes as 64-bit integers)
MAX_AXIS = 1 << 40
#: the longest text kept from a header (names, models, dates…); longer text is cut there
MAX_TEXT = 1000
#: items kept of each list inside one image (channels), and of an instrument's detectors
MAX_ITEMS = 1024
MAX_DETECTORS = 16


def bounded(result: ImageHeaders) -> ImageHeaders:
    """``result`` within bounds whatever the file claims: a size past :data:`MAX_AXIS` makes it unreadable (saying
    which); texts are cut at :data:`MAX_TEXT` characters, lists inside an image at :data:`MAX_ITEMS` items."""
    for series in result.series:
        for axis in "xyzct":
            size = getattr(series, f"size_{axis}")
            if not isinstance(size, int) or not 0 <= size <= MAX_AXIS:
                shown = f"{size:,}" if isinstance(size, int) else repr(size)[:40]
                return result.fail("unreadable", f"image {series.index} claims {shown} along {axis}, over {MAX_AXIS:,}")
        if series.pyramid_levels > MAX_ITEMS or (series.tile_size and max(series.tile_size) > MAX_AXIS):
            return result.fail("unreadable", f"image {series.index} claims more levels or larger tiles than can be")
        _cut(series)
    return result


def _cut(item: Any) -> None:
    """Cut the texts and lists of a dataclass instance, and of those it holds, in place."""
    for spec in dataclasses.fields(item):
        value = getattr(item, spec.name)
        if isinstance(value, str) and len(value) > MAX_TEXT and spec.name != "path":
            setattr(item, spec.name, value[:MAX_TEXT])
        elif isinstance(value, list):
            del value[MAX_DETECTORS if spec.name == "detectors" else MAX_ITEMS :]
            for inner in value:
                if dataclasses.is_dataclass(inner):
                    _cut(inner)
        elif dataclasses.is_dataclass(value):
            _cut(value)
