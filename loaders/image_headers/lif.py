"""Leica LIF (LAS X / LAS AF project files): one series per image in the project.

liffile reads the XML header and walks the memory block headers through the counting reader; memory blocks
(pixels) are never read. Axes and sizes are liffile's (numpy order; dimensions of one element left out); Leica's
own dimensions keep liffile's names (``λ`` emission and ``Λ`` excitation wavelength sweeps, ``M`` tiles), which
count as Z
(wavelength sweeps) or as Z with a warning. From each image's XML: pixel sizes and the time increment (a dimension's
``Length / (NumberOfElements - 1)``, in its ``Unit``), the acquisition date (the first frame's time stamp, UTC),
and from the confocal or widefield settings the objective, the microscope stand and the active detectors; a
channel's fluorophore is the dye of the spectral band of the active detector of the same rank, when there are as
many active detectors as channels.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import IO, Any, cast

from . import extras, units
from .axes import dtype_name, fold_axes
from .model import Channel, Detector, ImageHeaders, ImageSeries, Instrument, Objective, Quantity
from .sources import CountingReader

#: Leica DimID → the dimension it gives the size of
_DIMENSIONS = {1: "x", 2: "y", 3: "z", 4: "t"}
#: liffile's names of Leica's wavelength sweep dimensions
_SWEEPS = {"λ": "emission wavelength", "Λ": "excitation wavelength"}
_SETTINGS = ("ATLConfocalSettingDefinition", "ATLCameraSettingDefinition")


def is_lif(head: bytes) -> bool:
    """A LIF file starts with the test value 0x70, the header length, then 0x2A and the XML's length."""
    return len(head) >= 13 and head[:4] == b"\x70\0\0\0" and head[8] == 0x2A


def read(reader: CountingReader, result: ImageHeaders) -> None:
    result.format = "lif"
    try:
        import liffile
    except ImportError:
        result.fail("unsupported", extras.missing("liffile", "LIF"))
        return
    with liffile.LifFile(cast("IO[bytes]", reader)) as lif:
        result.series = [_series(index, image, result.warnings) for index, image in enumerate(lif.images)]
        for image in lif.images:
            _check_block(image, reader.source.size, result.warnings)


def _check_block(image: Any, size: int | None, warnings: list[str]) -> None:
    """Warn when an image's pixel block is missing or runs past the end of the file (its header is not read)."""
    try:
        block = image.memory_block
    except (IndexError, KeyError):
        warnings.append(f"image {image.name!r}: its pixel block is not in the file: truncated")
        return
    if size is not None and block.offset + block.size > size:
        warnings.append(f"image {image.name!r}: its pixel block runs past the end of the file: truncated")


def _series(index: int, image: Any, warnings: list[str]) -> ImageSeries:
    axes = "".join(image.dims)
    element: ET.Element = image.xml_element
    series = ImageSeries(
        index=index,
        name=image.name or None,
        path=image.path or None,
        axes=axes,
        pixel_type=dtype_name(image.dtype),
        **fold_axes(_sweeps_as_z(axes, image.shape, warnings), image.shape, warnings),
    )
    steps = _steps(element)
    series.physical_size_x, series.physical_size_y, series.physical_size_z = (steps.get(a) for a in "xyz")
    step = steps.get("t")
    series.time_increment = units.time(step.value, step.unit) if step is not None else None
    stamps = image.timestamps
    if stamps is not None and len(stamps):
        series.acquisition_date = f"{stamps[0].item().isoformat()}+00:00"
    settings = next((s for name in _SETTINGS for s in element.iter(name)), None)
    if settings is not None:
        detectors = [d for d in settings.iter("Detector") if d.get("IsActive") == "1"]
        series.channels = _channels(series.size_c, settings, detectors)
        series.instrument = _instrument(settings, detectors)
    return series


def _sweeps_as_z(axes: str, shape: tuple[int, ...], warnings: list[str]) -> str:
    """The axes with Leica's wavelength sweeps counted as Z (saying so)."""
    for letter, length in zip(axes, shape):
        if letter in _SWEEPS and length > 1:
            warnings.append(f"axis {letter} ({_SWEEPS[letter]} sweep, {length}) counted as Z")
    return "".join("Z" if letter in _SWEEPS else letter for letter in axes)


def _steps(element: ET.Element) -> dict[str, Quantity]:
    """The spacing along x, y, z and t: a dimension's length over its number of elements less one."""
    steps = {}
    for dimension in element.iterfind("Data/Image/ImageDescription/Dimensions/DimensionDescription"):
        axis = _DIMENSIONS.get(int(dimension.get("DimID", "0")))
        count = int(dimension.get("NumberOfElements", "0"))
        length, unit = _number(dimension.get("Length")), dimension.get("Unit")
        if axis is None or count < 2 or length is None or not unit:
            continue
        quantity = (units.time if axis == "t" else units.length)(abs(length) / (count - 1), unit)
        if quantity is not None:
            steps[axis] = quantity
    return steps


def _channels(count: int, settings: ET.Element, detectors: list[ET.Element]) -> list[Channel]:
    if len(detectors) != count:
        return [Channel() for _ in range(count)]
    bands = {band.get("Channel"): band for band in settings.iter("MultiBand")}
    channels = []
    for detector in detectors:
        band = bands.get(detector.get("Channel"))
        channels.append(Channel(fluorophore=(band.get("DyeName") or None) if band is not None else None))
    return channels


def _instrument(settings: ET.Element, detectors: list[ET.Element]) -> Instrument:
    inverted = settings.get("IsInverseMicroscopeModel")
    objective = Objective(
        model=(settings.get("ObjectiveName") or "").strip() or None,
        lens_na=_number(settings.get("NumericalAperture")),
        nominal_magnification=_number(settings.get("Magnification")),
        immersion=settings.get("Immersion") or None,
    )
    return Instrument(
        microscope_model=settings.get("MicroscopeModel") or None,
        microscope_type={"1": "Inverted", "0": "Upright"}.get(inverted or ""),
        objective=objective if any(vars(objective).values()) else None,
        detectors=[Detector(model=d.get("Name") or None, type=d.get("Type") or None) for d in detectors],
    )


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None
