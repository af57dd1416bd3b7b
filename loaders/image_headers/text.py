"""Readable text of what the header readers found (``bia headers``), and the files a folder holds."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from .model import Channel, ImageHeaders, ImageSeries, Instrument, Quantity
from .read import ZARR_MARKERS


def image_paths(paths: Iterable[str | os.PathLike[str]]) -> Iterator[str]:
    """Each file given, and the files below each folder given (sorted); a Zarr store counts as one file."""
    for path in map(Path, paths):
        if not path.is_dir() or _is_zarr(path):
            yield str(path)
            continue
        for folder, subfolders, files in os.walk(path):
            here = Path(folder)
            stores = sorted(name for name in subfolders if _is_zarr(here / name))
            subfolders[:] = sorted(name for name in subfolders if name not in stores)
            yield from (str(here / name) for name in sorted([*files, *stores]))


def _is_zarr(path: Path) -> bool:
    return any((path / marker).is_file() for marker in ZARR_MARKERS)


def describe(headers: ImageHeaders, max_images: int = 20) -> list[str]:
    """Lines describing one file: a summary line, then each image (up to ``max_images``) and the warnings."""
    if headers.status != "ok":
        lines = [f"{headers.source}: {headers.status}: {headers.reason}"]
    else:
        count = len(headers.series)
        lines = [
            f"{headers.source}: {headers.format}, {count} image{'s' if count != 1 else ''}, "
            f"{headers.bytes_read:,} bytes read in {headers.reads} read{'s' if headers.reads != 1 else ''}"
        ]
        for series in headers.series[:max_images]:
            lines.extend(_series(series))
        if count > max_images:
            lines.append(f"  … {count - max_images} more images")
    lines.extend(f"  warning: {warning}" for warning in headers.warnings)
    return lines


def _series(series: ImageSeries) -> list[str]:
    title = (
        f"  image {series.index}" + (f" {series.name!r}" if series.name else "") + (f" at {series.path}" if series.path else "")
    )
    sizes = f"x {series.size_x}, y {series.size_y}, z {series.size_z}, c {series.size_c}, t {series.size_t}"
    lines = [f"{title}: {sizes} ({series.axes}), {series.pixel_type or 'unknown pixel type'}"]
    storage = [f"{series.pyramid_levels} levels" if series.pyramid_levels > 1 else ""]
    storage.append(f"tiles {series.tile_size[0]} x {series.tile_size[1]}" if series.tile_size else "")
    storage.append(f"compression {series.compression}" if series.compression else "")
    if any(storage):
        lines.append("    storage: " + ", ".join(filter(None, storage)))
    sizes_written = [_quantity(getattr(series, f"physical_size_{axis}")) for axis in "xyz"]
    if any(sizes_written):
        lines.append("    pixel size: " + " x ".join(s or "?" for s in sizes_written[: 3 if sizes_written[2] else 2]))
    if series.time_increment:
        lines.append(f"    time increment: {_quantity(series.time_increment)}")
    lines.extend(f"    channel {i}: {_channel(c)}" for i, c in enumerate(series.channels) if _channel(c))
    if series.instrument:
        lines.append(f"    instrument: {_instrument(series.instrument)}")
    if series.acquisition_date:
        lines.append(f"    acquired: {series.acquisition_date}")
    return lines


def _quantity(quantity: Quantity | None) -> str:
    return f"{quantity.value:g} {quantity.unit}" if quantity else ""


def _channel(channel: Channel) -> str:
    parts = [
        channel.name or "",
        f"fluorophore {channel.fluorophore}" if channel.fluorophore else "",
        f"excitation {_quantity(channel.excitation_wavelength)}" if channel.excitation_wavelength else "",
        f"emission {_quantity(channel.emission_wavelength)}" if channel.emission_wavelength else "",
        channel.acquisition_mode or "",
        channel.illumination_type or "",
        channel.contrast_method or "",
    ]
    return ", ".join(filter(None, parts))


def _instrument(instrument: Instrument) -> str:
    microscope = " ".join(filter(None, (instrument.microscope_manufacturer, instrument.microscope_model)))
    parts = [microscope + (f" ({instrument.microscope_type})" if instrument.microscope_type else "")]
    objective = instrument.objective
    if objective:
        described = [
            objective.manufacturer or "",
            objective.model or "",
            f"{objective.nominal_magnification:g}x" if objective.nominal_magnification else "",
            f"NA {objective.lens_na:g}" if objective.lens_na else "",
            objective.immersion or "",
            objective.correction or "",
        ]
        parts.append("objective " + " ".join(filter(None, described)))
    if instrument.magnification:
        parts.append(f"magnification {instrument.magnification:g}x")
    if instrument.accelerating_voltage:
        parts.append(f"{instrument.accelerating_voltage.value / 1000:g} kV")
    models = [" ".join(filter(None, (d.manufacturer, d.model, d.type))) for d in instrument.detectors]
    if any(models):
        parts.append("detectors " + ", ".join(m for m in models if m))
    if instrument.software:
        parts.append(f"software {instrument.software}")
    return "; ".join(p for p in parts if p.strip())
