"""TIFF, BigTIFF and OME-TIFF headers, read with tifffile (image file directories only, never pixels).

An OME-TIFF's series come from its OME-XML (:mod:`.ome_xml`), with tiling, compression and pyramid levels from
the first directory of each image; a plain TIFF's from tifffile's series (shaped, ImageJ, LSM, SVS and generic
layouts), with pixel sizes from the ImageJ description, LSM or SVS metadata, or the resolution tags. Other files an
OME-TIFF names are never opened.
"""

from __future__ import annotations

from typing import IO, Any, cast

from . import ome_xml, units
from .axes import dtype_name, fold_axes
from .model import ImageHeaders, ImageSeries, Quantity
from .sources import ByteCapExceeded, CountingReader

#: most series reported per file (a hostile file can describe any number)
MAX_SERIES = 10_000
#: resolutions in dots per inch that programs write by default: not a pixel size
_DISPLAY_DPI = (72.0, 96.0, 150.0, 300.0, 600.0)
_RESOLUTION_UNITS = {2: "inch", 3: "cm", 4: "mm", 5: "µm"}


def read(reader: CountingReader, result: ImageHeaders) -> None:
    import tifffile

    with tifffile.TiffFile(cast(IO[bytes], reader), name=reader.name, _multifile=False) as tif:
        result.format = "ome-tiff" if tif.is_ome else "tiff"
        if tif.is_ome and _read_ome(tif, result):
            return
        _read_plain(tif, result)


# ---------------------------------------------------------------------- OME-TIFF


def _read_ome(tif: Any, result: ImageHeaders) -> bool:
    """Fill ``result`` from the OME-XML; False (with a warning) when it cannot be read."""
    description = tif.pages.first.description
    try:
        ome = ome_xml.parse(description.encode("utf-8"))
    except ByteCapExceeded:
        raise
    except Exception as exc:  # noqa: BLE001 - any parse failure: fall back to the TIFF structure
        result.warnings.append(f"the OME-XML could not be read ({_short(exc)}); read as a plain TIFF")
        return False
    series = ome_xml.series_from_ome(ome)[:MAX_SERIES]
    for item, image in zip(series, ome.images):
        _ome_storage(tif, image, item, result.warnings)
    result.series = series
    return True


def _ome_storage(tif: Any, image: Any, series: ImageSeries, warnings: list[str]) -> None:
    """Tiling, compression and levels of an OME image, from the first directory it names in this file."""
    blocks = image.pixels.tiff_data_blocks
    first = blocks[0] if blocks else None
    if first is not None and first.uuid is not None and first.uuid.file_name not in (None, "", _base(tif.filename)):
        return  # its planes are in another file
    ifd = first.ifd if first is not None else 0
    try:
        page = tif.pages[ifd]
    except (IndexError, ValueError) as exc:
        warnings.append(f"image {series.index}: directory {ifd} cannot be read ({_short(exc)})")
        return
    _page_storage(page, series)
    _check_extent(tif, page, series, warnings)
    series.pyramid_levels = 1 + len(page.subifds or ())


def _base(name: str) -> str:
    return name.replace("\\", "/").rsplit("/", 1)[-1]


def _check_extent(tif: Any, page: Any, series: ImageSeries, warnings: list[str]) -> None:
    """Warn when the first plane's pixel data runs past the end of the file (a truncated file)."""
    size = tif.filehandle.size
    ends = [offset + count for offset, count in zip(page.dataoffsets, page.databytecounts) if count]
    if ends and size and max(ends) > size:
        warnings.append(f"image {series.index}: its pixel data runs past the end of the file ({max(ends):,} > {size:,} bytes)")


def _page_storage(page: Any, series: ImageSeries) -> None:
    series.compression = page.compression.name.lower()
    if page.is_tiled:
        series.tile_size = (int(page.tilewidth), int(page.tilelength))


# ---------------------------------------------------------------------- plain TIFF


def _read_plain(tif: Any, result: ImageHeaders) -> None:
    all_series = tif.series
    if len(all_series) > MAX_SERIES:
        result.warnings.append(f"{len(all_series):,} series; the first {MAX_SERIES:,} are reported")
    for index, series in enumerate(all_series[:MAX_SERIES]):
        result.series.append(_plain_series(tif, index, series, result.warnings))


def _plain_series(tif: Any, index: int, series: Any, warnings: list[str]) -> ImageSeries:
    page = series.keyframe
    sizes = fold_axes(series.axes, series.shape, warnings)
    item = ImageSeries(
        index=index,
        axes=series.axes,
        **sizes,
        pixel_type=dtype_name(series.dtype),
        name=series.name or None,
        pyramid_levels=len(series.levels),
        acquisition_date=_tiff_date(page),
    )
    _page_storage(page, item)
    _check_extent(tif, page, item, warnings)
    _physical_sizes(tif, page, item, warnings)
    return item


def _tiff_date(page: Any) -> str | None:
    """The DateTime tag (``YYYY:MM:DD HH:MM:SS``) as ISO 8601."""
    tag = page.tags.get("DateTime")
    value = tag.value if tag is not None else None
    if not isinstance(value, str) or len(value) < 19 or value[4] != ":" or value[7] != ":":
        return None
    return f"{value[0:4]}-{value[5:7]}-{value[8:10]}T{value[11:19]}"


def _physical_sizes(tif: Any, page: Any, item: ImageSeries, warnings: list[str]) -> None:
    if tif.is_imagej:
        _imagej_sizes(tif.imagej_metadata or {}, page, item)
    elif tif.is_lsm:
        _lsm_sizes(tif.lsm_metadata or {}, item)
    elif tif.is_svs and (tif.svs_metadata or {}).get("MPP"):
        mpp = float(tif.svs_metadata["MPP"])
        item.physical_size_x = item.physical_size_y = units.length(mpp, "µm")
    else:
        _resolution_sizes(page, item, warnings)


def _per_unit(resolution: float) -> float | None:
    return 1.0 / resolution if resolution and resolution > 0 else None


def _imagej_sizes(meta: dict, page: Any, item: ImageSeries) -> None:
    unit = str(meta.get("unit") or "")
    if unit and unit.lower() not in ("pixel", "pixels", "none"):
        x_res, y_res = page.resolution
        item.physical_size_x = units.length(_per_unit(x_res), unit)
        item.physical_size_y = units.length(_per_unit(y_res), unit)
        if meta.get("spacing"):
            item.physical_size_z = units.length(float(meta["spacing"]), unit)
    if meta.get("finterval"):
        item.time_increment = units.time(float(meta["finterval"]), str(meta.get("tunit") or "s"))


def _lsm_sizes(meta: dict, item: ImageSeries) -> None:
    for axis in ("x", "y", "z"):
        value = meta.get(f"VoxelSize{axis.upper()}")
        if value:
            setattr(item, f"physical_size_{axis}", units.length(float(value), "m"))
    if meta.get("TimeIntervall"):
        item.time_increment = units.time(float(meta["TimeIntervall"]), "s")


def _resolution_sizes(page: Any, item: ImageSeries, warnings: list[str]) -> None:
    unit = _RESOLUTION_UNITS.get(int(page.resolutionunit))
    if unit is None:
        return
    x_res, y_res = page.resolution
    if unit == "inch" and any(abs(x_res - dpi) < 0.05 for dpi in _DISPLAY_DPI):
        warnings.append(f"resolution {x_res:g} dpi is a display or print setting, not taken as a pixel size")
        return
    item.physical_size_x = _quantity(_per_unit(x_res), unit)
    item.physical_size_y = _quantity(_per_unit(y_res), unit)


def _quantity(value: float | None, unit: str) -> Quantity | None:
    return units.length(value, unit)


def _short(exc: BaseException) -> str:
    return str(exc)[:300] or type(exc).__name__
