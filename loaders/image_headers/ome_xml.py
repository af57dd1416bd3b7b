"""OME-XML (a ``.ome.xml`` file, an OME-TIFF's description, an OME-Zarr's ``METADATA.ome.xml``) → series.

ome-types parses it, upgrading older OME schemas (2015-01 and before) to 2016-06. A document with a document type
declaration is refused before parsing (entity expansion and external entities are how XML is made hostile; OME
writers never use one); so is one in another encoding than UTF-8.
"""

from __future__ import annotations

import re
from typing import Any

from . import units
from .axes import OME_PIXEL_TYPES
from .model import Channel, Detector, ImageSeries, Instrument, Objective
from .sources import ByteCapExceeded, CountingReader

_DECLARATIONS = re.compile(rb"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)


class UnsafeXml(ValueError):
    """An XML document refused before parsing."""


def parse(data: bytes) -> Any:
    """The ``ome_types.OME`` of an OME-XML document (UTF-8 bytes); :class:`UnsafeXml` or a parse error if not."""
    import ome_types

    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in data[:64]:
        raise UnsafeXml("OME-XML that is not UTF-8 is not read")
    if _DECLARATIONS.search(data):
        raise UnsafeXml("XML with a document type or entity declaration is not read")
    return ome_types.from_xml(data.lstrip())


def read_file(reader: CountingReader) -> bytes:
    """The whole of an XML file, refused unread when its size is over the reader's cap."""
    size = reader.source.size
    if size is not None and size > reader.cap:
        reader.over_cap = True
        raise ByteCapExceeded(f"the XML is {size:,} bytes, over the {reader.cap:,}-byte cap")
    reader.seek(0)
    return reader.read()


def _value(item: Any) -> Any:
    """An enum's value (OME enums are ``str`` enums), else the item."""
    return getattr(item, "value", item)


def _text(item: Any) -> str | None:
    value = _value(item)
    return None if value in (None, "") else str(value)


def series_from_ome(ome: Any) -> list[ImageSeries]:
    """One series per OME Image, in document order."""
    instruments = {instrument.id: instrument for instrument in ome.instruments}
    return [_series(index, image, instruments) for index, image in enumerate(ome.images)]


def _series(index: int, image: Any, instruments: dict[str, Any]) -> ImageSeries:
    pixels = image.pixels
    order = _value(pixels.dimension_order)  # e.g. "XYZCT", fastest first
    date = image.acquisition_date
    instrument = _image_instrument(image, instruments)
    return ImageSeries(
        index=index,
        name=image.name or None,
        axes=order[::-1],
        size_x=pixels.size_x,
        size_y=pixels.size_y,
        size_z=pixels.size_z,
        size_c=pixels.size_c,
        size_t=pixels.size_t,
        pixel_type=OME_PIXEL_TYPES.get(_value(pixels.type), _text(pixels.type)),
        physical_size_x=units.length(pixels.physical_size_x, _value(pixels.physical_size_x_unit)),
        physical_size_y=units.length(pixels.physical_size_y, _value(pixels.physical_size_y_unit)),
        physical_size_z=units.length(pixels.physical_size_z, _value(pixels.physical_size_z_unit)),
        time_increment=units.time(pixels.time_increment, _value(pixels.time_increment_unit)),
        channels=[_channel(channel) for channel in pixels.channels],
        instrument=_instrument(instrument, image, pixels) if instrument is not None else None,
        acquisition_date=date.isoformat() if date is not None else None,
    )


def _image_instrument(image: Any, instruments: dict[str, Any]) -> Any:
    """The instrument the image names, else the document's only one."""
    if image.instrument_ref is not None:
        return instruments.get(image.instrument_ref.id)
    return next(iter(instruments.values())) if len(instruments) == 1 else None


def _channel(channel: Any) -> Channel:
    return Channel(
        name=channel.name or None,
        fluorophore=channel.fluor or None,
        excitation_wavelength=units.length(channel.excitation_wavelength, _value(channel.excitation_wavelength_unit)),
        emission_wavelength=units.length(channel.emission_wavelength, _value(channel.emission_wavelength_unit)),
        acquisition_mode=_text(channel.acquisition_mode),
        illumination_type=_text(channel.illumination_type),
        contrast_method=_text(channel.contrast_method),
        samples_per_pixel=channel.samples_per_pixel,
    )


def _instrument(instrument: Any, image: Any, pixels: Any) -> Instrument:
    microscope = instrument.microscope
    return Instrument(
        microscope_model=(microscope.model or None) if microscope else None,
        microscope_manufacturer=(microscope.manufacturer or None) if microscope else None,
        microscope_type=_text(microscope.type) if microscope else None,
        objective=_objective(instrument, image.objective_settings),
        detectors=_detectors(instrument, pixels),
    )


def _objective(instrument: Any, settings: Any) -> Objective | None:
    """The objective the image's settings name, else the instrument's only one."""
    chosen = None
    if settings is not None:
        chosen = next((o for o in instrument.objectives if o.id == settings.id), None)
    elif len(instrument.objectives) == 1:
        chosen = instrument.objectives[0]
    if chosen is None:
        return None
    objective = Objective(
        model=chosen.model or None,
        manufacturer=chosen.manufacturer or None,
        lens_na=chosen.lens_na,
        nominal_magnification=chosen.nominal_magnification,
        calibrated_magnification=chosen.calibrated_magnification,
        immersion=_text(chosen.immersion) or (_text(settings.medium) if settings is not None else None),
        correction=_text(chosen.correction),
    )
    return objective


def _detectors(instrument: Any, pixels: Any) -> list[Detector]:
    """The detectors the channels name, else all the instrument's."""
    named = {c.detector_settings.id for c in pixels.channels if c.detector_settings is not None}
    chosen = [d for d in instrument.detectors if d.id in named] or list(instrument.detectors)
    return [Detector(model=d.model or None, manufacturer=d.manufacturer or None, type=_text(d.type)) for d in chosen]
