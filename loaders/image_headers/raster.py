"""PNG and JPEG headers, read with Pillow (``Image.open`` parses the header and stops before the pixels).

Only Pillow's PNG and JPEG plugins are allowed to open the file. A resolution is taken as a pixel size unless it is
one of the dots-per-inch values programs write by default (72, 96, 150, 300, 600 dpi), which a warning notes.
An image over twice Pillow's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``) is refused by Pillow itself.
"""

from __future__ import annotations

from typing import IO, cast

from . import units
from .model import ImageHeaders, ImageSeries, Quantity
from .sources import CountingReader

#: Pillow mode → (numpy dtype name, samples per pixel)
_MODES = {
    "1": ("bool", 1), "L": ("uint8", 1), "P": ("uint8", 1), "LA": ("uint8", 2), "La": ("uint8", 2),
    "PA": ("uint8", 2), "RGB": ("uint8", 3), "YCbCr": ("uint8", 3), "LAB": ("uint8", 3), "HSV": ("uint8", 3),
    "RGBA": ("uint8", 4), "RGBa": ("uint8", 4), "RGBX": ("uint8", 4), "CMYK": ("uint8", 4), "I": ("int32", 1),
    "F": ("float32", 1), "I;16": ("uint16", 1), "I;16L": ("uint16", 1), "I;16B": ("uint16", 1),
    "I;16N": ("uint16", 1),
}  # fmt: skip
_DISPLAY_DPI = (72.0, 96.0, 150.0, 300.0, 600.0)


def read(reader: CountingReader, result: ImageHeaders) -> None:
    from PIL import Image

    reader.seek(0)
    with Image.open(cast(IO[bytes], reader), formats=["PNG", "JPEG"]) as image:
        result.format = image.format.lower() if image.format else None
        dtype, samples = _MODES.get(image.mode, (None, 1))
        if dtype is None:
            result.warnings.append(f"Pillow mode {image.mode} has no known pixel type")
        width, height = image.size
        series = ImageSeries(
            index=0,
            axes="YXS" if samples > 1 else "YX",
            size_x=width,
            size_y=height,
            size_c=samples,
            pixel_type=dtype,
            compression="deflate" if image.format == "PNG" else "jpeg",
        )
        series.physical_size_x, series.physical_size_y = _pixel_size(image.format, image.info, result.warnings)
        result.series = [series]


def _pixel_size(fmt: str | None, info: dict, warnings: list[str]) -> tuple[Quantity | None, Quantity | None]:
    dpi = info.get("dpi")
    if not dpi or not all(isinstance(v, (int, float)) and v > 0 for v in dpi):
        return None, None
    if any(abs(float(dpi[0]) - d) < 0.05 for d in _DISPLAY_DPI):
        warnings.append(f"resolution {float(dpi[0]):g} dpi is a display or print setting, not taken as a pixel size")
        return None, None
    if fmt == "PNG":  # pHYs holds pixels per metre; Pillow gives it in dots per inch
        return tuple(units.length(0.0254 / float(v), "m") for v in dpi)  # type: ignore[return-value]
    if info.get("jfif_unit") == 2:  # dots per centimetre
        density = info.get("jfif_density") or dpi
        return tuple(units.length(1.0 / float(v), "cm") for v in density)  # type: ignore[return-value]
    return tuple(units.length(1.0 / float(v), "inch") for v in dpi)  # type: ignore[return-value]
