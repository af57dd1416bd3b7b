"""Zeiss CZI (``ZISRAWFILE``): one series per scene.

czifile reads the file header, the subblock directory and the metadata segment through the counting reader;
subblocks (pixels) and attachments are never read. Sizes come from the directory (per scene: the extent of the
scene's subblocks, tiles of a mosaic merged), in the directory's axis order; the samples of a pixel (``Bgr24``)
are the last axis, ``S``. CZI's other dimensions (``B`` block, ``V`` view, ``H`` phase, ``I`` illumination,
``R`` rotation) keep their letters. Pixel sizes, channels, objective, microscope, detectors, software and
acquisition date come from the metadata XML (ZEN's ``ImageDocument``), which is refused unparsed if it declares a
document type or entities.
"""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
from datetime import datetime
from typing import Any

from . import extras, units
from .axes import dtype_name, fold_axes
from .model import Channel, Detector, ImageHeaders, ImageSeries, Instrument, Objective
from .ome_xml import _DECLARATIONS, UnsafeXml
from .sources import CountingReader

MAGIC = b"ZISRAWFILE"
#: directory dimensions that are not array axes (M: the tile of a mosaic; S: the scene, one series each)
_NOT_AXES = ("M", "S")
#: a segment's header: its id (16 bytes), allocated size and used size (int64 each)
_SEGMENT_HEADER = 32


def read(reader: CountingReader, result: ImageHeaders) -> None:
    result.format = "czi"
    try:
        import czifile  # type: ignore[import-untyped]
    except ImportError:
        result.fail("unsupported", extras.missing("czifile", "CZI"))
        return
    czi = czifile.CziFile(reader, multifile=False)
    try:
        entries = czi.filtered_subblock_directory
        if not entries:
            raise ValueError("the subblock directory is empty")
        metadata = _parse(czi.metadata(raw=True))
        scenes = _scenes(entries, result.warnings)
        pixel_type = dtype_name(czi.dtype)
        _check_end(reader, czi.header, entries, result.warnings)
    finally:
        czi.close()
    image = metadata.find("Metadata/Information/Image") if metadata is not None else None
    names = _scene_names(image)
    result.series = [
        _series(index, names.get(scene), axes, shape, pixel_type, metadata, result.warnings)
        for index, (scene, (axes, shape)) in enumerate(sorted(scenes.items()))
    ]


def _check_end(reader: CountingReader, header: Any, entries: list[Any], warnings: list[str]) -> None:
    """Warn when the file's last segment (found from the positions the header and directory give; its 32-byte
    segment header read) runs past the end of the file."""
    size = reader.source.size
    positions = [header.directory_position, header.metadata_position, header.attachment_directory_position]
    last = max([int(p) for p in positions if p] + [int(e.file_position) for e in entries])
    if size is None:
        return
    reader.seek(last)
    raw = reader.read(_SEGMENT_HEADER)
    end = last + _SEGMENT_HEADER + (struct.unpack("<16sqq", raw)[2] if len(raw) == _SEGMENT_HEADER else 0)
    if len(raw) < _SEGMENT_HEADER or end > size:
        warnings.append(f"the file is {size:,} bytes but its last segment ends at {end:,}: truncated")


def _parse(text: str | None) -> ET.Element | None:
    if not text:
        return None
    data = text.encode("utf-8")
    if _DECLARATIONS.search(data):
        raise UnsafeXml("XML with a document type or entity declaration is not read")
    return ET.fromstring(data)


def _scenes(entries: list[Any], warnings: list[str]) -> dict[int, tuple[str, tuple[int, ...]]]:
    """Axes and shape of each scene (by its index; 0 when the file has no scene dimension)."""
    grouped: dict[int, list[Any]] = {}
    for entry in entries:
        scene = next((d.start for d in entry.dimension_entries if d.dimension == "S"), 0)
        grouped.setdefault(int(scene), []).append(entry)
    return {scene: _extent(members) for scene, members in grouped.items()}


def _extent(entries: list[Any]) -> tuple[str, tuple[int, ...]]:
    import numpy as np

    axes = "".join(d.dimension for d in entries[0].dimension_entries if d.dimension not in _NOT_AXES)
    starts: dict[str, int] = {}
    ends: dict[str, int] = {}
    for entry in entries:
        for dim in entry.dimension_entries:
            if dim.dimension in _NOT_AXES:
                continue
            starts[dim.dimension] = min(starts.get(dim.dimension, dim.start), dim.start)
            ends[dim.dimension] = max(ends.get(dim.dimension, dim.start + dim.size), dim.start + dim.size)
    shape = tuple(ends[a] - starts[a] for a in axes)
    samples = np.dtype(entries[0].dtype).shape
    if samples:
        return axes + "S", shape + (int(samples[0]),)
    return axes, shape


def _series(
    index: int,
    name: str | None,
    axes: str,
    shape: tuple[int, ...],
    pixel_type: str | None,
    metadata: ET.Element | None,
    warnings: list[str],
) -> ImageSeries:
    series = ImageSeries(index=index, name=name, axes=axes, pixel_type=pixel_type, **fold_axes(axes, shape, warnings))
    if metadata is None:
        warnings.append("no metadata segment: sizes only")
        return series
    scaling = metadata.find("Metadata/Scaling/Items")
    series.physical_size_x, series.physical_size_y, series.physical_size_z = (_distance(scaling, axis) for axis in "XYZ")
    information = metadata.find("Metadata/Information")
    image = information.find("Image") if information is not None else None
    if image is not None:
        samples = shape[-1] if axes.endswith("S") else None
        series.channels = [_channel(c, samples) for c in image.findall("Dimensions/Channels/Channel")]
        series.acquisition_date = _date(image.findtext("AcquisitionDateAndTime"), warnings)
        series.time_increment = units.time(_number(image.findtext("Dimensions/T/Positions/Interval/Increment")), "s")
    if information is not None:
        series.instrument = _instrument(information, image)
    return series


def _distance(items: ET.Element | None, axis: str) -> Any:
    """A pixel size: CZI writes it in metres (0 where the dimension was not sampled)."""
    if items is None:
        return None
    value = _number(items.findtext(f"Distance[@Id='{axis}']/Value"))
    return units.length(value, "m") if value is not None and value > 0 else None


def _scene_names(image: ET.Element | None) -> dict[int, str]:
    if image is None:
        return {}
    names = {}
    for scene in image.findall("Dimensions/S/Scenes/Scene"):
        index, name = scene.get("Index"), scene.get("Name")
        if index is not None and index.isdigit() and name:
            names[int(index)] = name
    return names


def _channel(channel: ET.Element, samples: int | None) -> Channel:
    return Channel(
        name=channel.get("Name") or None,
        fluorophore=_text(channel, "Fluor"),
        excitation_wavelength=units.length(_number(channel.findtext("ExcitationWavelength")), "nm"),
        emission_wavelength=units.length(_number(channel.findtext("EmissionWavelength")), "nm"),
        acquisition_mode=_text(channel, "AcquisitionMode"),
        illumination_type=_text(channel, "IlluminationType"),
        contrast_method=_text(channel, "ContrastMethod"),
        samples_per_pixel=samples,
    )


def _instrument(information: ET.Element, image: ET.Element | None) -> Instrument | None:
    instrument = information.find("Instrument")
    application = " ".join(filter(None, (_text(information, "Application/Name"), _text(information, "Application/Version"))))
    if instrument is None:
        return Instrument(software=application) if application else None
    microscope = _referenced(instrument, "Microscopes/Microscope", image, "MicroscopeRef")
    return Instrument(
        microscope_model=microscope.get("Name") or _text(microscope, "Model") if microscope is not None else None,
        microscope_manufacturer=_text(microscope, "Manufacturer/Manufacturer") if microscope is not None else None,
        microscope_type=_text(microscope, "Type") if microscope is not None else None,
        objective=_objective(instrument, image),
        detectors=[_detector(d) for d in instrument.findall("Detectors/Detector")],
        software=application or None,
    )


def _objective(instrument: ET.Element, image: ET.Element | None) -> Objective | None:
    chosen = _referenced(instrument, "Objectives/Objective", image, "ObjectiveSettings/ObjectiveRef")
    if chosen is None:
        return None
    return Objective(
        model=_text(chosen, "Manufacturer/Model") or chosen.get("Name") or None,
        manufacturer=_text(chosen, "Manufacturer/Manufacturer"),
        lens_na=_number(chosen.findtext("LensNA")),
        nominal_magnification=_number(chosen.findtext("NominalMagnification")),
        calibrated_magnification=_number(chosen.findtext("CalibratedMagnification")),
        immersion=_text(chosen, "Immersion"),
        correction=_text(chosen, "Correction"),
    )


def _detector(detector: ET.Element) -> Detector:
    return Detector(
        model=_text(detector, "Manufacturer/Model") or detector.get("Name") or None,
        manufacturer=_text(detector, "Manufacturer/Manufacturer"),
        type=_text(detector, "Type"),
    )


def _referenced(parent: ET.Element, path: str, image: ET.Element | None, ref: str) -> ET.Element | None:
    """The element the image refers to (``ref``'s ``Id``), else the only one there is."""
    candidates = parent.findall(path)
    wanted = image.find(ref) if image is not None else None
    if wanted is not None:
        found = next((c for c in candidates if c.get("Id") == wanted.get("Id")), None)
        if found is not None:
            return found
    return candidates[0] if len(candidates) == 1 else None


def _text(element: ET.Element, path: str) -> str | None:
    text = element.findtext(path)
    return text.strip() or None if text else None


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text.strip())
    except ValueError:
        return None


def _date(text: str | None, warnings: list[str]) -> str | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.strip()).isoformat()
    except ValueError:
        warnings.append(f"acquisition date {text.strip()[:40]!r} is not ISO 8601; left out")
        return None
