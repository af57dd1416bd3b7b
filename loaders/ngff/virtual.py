"""Virtual OME-Zarr: an fsspec reference document that points into a tiled TIFF's own bytes, so nothing is copied.

tifffile writes the references (``aszarr().write_fsspec``): one ``[url, offset, length]`` per tile, inline Zarr v2
metadata, and group attributes saying NGFF 0.1 without axes. :func:`reference_document` rewrites them into a
store NGFF 0.4 describes: levels ``0``, ``1``… each a Zarr v2 array with ``/`` as its dimension separator, the
group's ``multiscales`` with axes and scales from the physical sizes. Every reference points at the template
``{{u}}`` (:data:`TEMPLATE`), which the document's ``templates`` map to the source file's key; whoever serves the
document puts the URL clients fetch the file from in its place.

Only tiles Zarr can decode without tifffile can be referenced: codecs that ``numcodecs`` has (none, zlib/deflate,
zstd, lzma…) and no predictor. Anything else raises :class:`NotReferenceable` with the reason (the image is
converted instead).
"""

from __future__ import annotations

import io
import json
from typing import Any, Mapping, Sequence

from .metadata import NotNgff, in_order, multiscales, ngff_axes

#: the name of the URL template every reference uses
TEMPLATE = "u"
#: references one document holds at most (about 20 MB of JSON; the server parses a document, about 260 bytes a
#: reference, for the requests of its chunks, and keeps documents of up to ``served.CACHED_BYTES`` parsed): an image
#: of more tiles, which only tiles smaller than 256² allow within the pixel cap, is converted instead
MAX_REFERENCES = 500_000
#: what the TIFF compression schemes are called as numcodecs codecs (those a Zarr client can decode)
NUMCODECS = {1: None, 8: "zlib", 32946: "zlib", 50000: "zstd", 34925: "lzma"}


class NotReferenceable(ValueError):
    """The TIFF's tiles cannot be read by Zarr in place (the reason says why)."""


def reference_document(tif: Any, series_index: int, source_key: str, sizes: Mapping[str, float | None]) -> dict[str, Any]:
    """The reference document (fsspec version 1) of series ``series_index`` of the open ``tifffile.TiffFile``;
    :class:`NotReferenceable` if its pixels cannot be referenced."""
    series = tif.series[series_index]
    _check_tiled(series)
    try:
        names = ngff_axes(series.axes)
    except NotNgff as exc:
        raise NotReferenceable(str(exc)) from exc
    if not in_order(names):
        raise NotReferenceable(f"axes {series.axes} are not in NGFF order (time, channel, space)")
    _check_pyramid(series.levels)
    raw = _tifffile_refs(series)
    levels = len(series.levels)
    refs = _arrays(raw, levels, names)
    _check_within(refs, int(tif.filehandle.size))
    count = sum(1 for value in refs.values() if isinstance(value, list))
    if count > MAX_REFERENCES:
        raise NotReferenceable(f"its {count:,} tiles are more than the {MAX_REFERENCES:,} a reference document holds")
    shapes = [json.loads(refs[f"{level}/.zarray"])["shape"] for level in range(levels)]
    attrs = multiscales(names, shapes, sizes, name=series.name or None)
    refs[".zgroup"] = json.dumps({"zarr_format": 2})
    refs[".zattrs"] = json.dumps(attrs)
    return {"version": 1, "templates": {TEMPLATE: source_key}, "refs": refs}


def _check_tiled(series: Any) -> None:
    """:class:`NotReferenceable` unless every page of every level has tiles Zarr decodes as they are. The pages after
    a series' first are often frames (``TiffFrame``: offsets only), which tifffile decodes with their key frame's
    tags; so are they checked here."""
    for level in series.levels:
        for frame in level.pages:
            if frame is None:
                continue
            page = getattr(frame, "keyframe", None) or frame
            if not page.is_tiled:
                raise NotReferenceable("its pixels are stored in strips, not tiles")
            if page.compression not in NUMCODECS:
                raise NotReferenceable(f"its compression {page.compression.name} has no Zarr codec")
            if page.predictor != 1:
                raise NotReferenceable(f"its tiles use a predictor ({page.predictor.name}) Zarr cannot undo")
            if page.bitspersample not in (8, 16, 32, 64) or page.sampleformat == 5:
                raise NotReferenceable(f"its samples ({page.bitspersample} bits) are not whole numpy values Zarr reads")


def _check_pyramid(levels: Sequence[Any]) -> None:
    """:class:`NotReferenceable` unless each of the file's levels is the one above it reduced: the same type and the
    same sizes but in y and x, which shrink by one whole factor (2 or more) in both, give or take a pixel. (Else the
    levels the file calls its pyramid are other pixels: level 0 is converted with a pyramid of its own.)"""
    for index, (above, level) in enumerate(zip(levels, levels[1:]), start=1):
        if level.dtype != above.dtype or len(level.shape) != len(above.shape) or level.shape[:-2] != above.shape[:-2]:
            raise NotReferenceable(f"its level {index} ({level.dtype} {level.shape}) is not level {index - 1} reduced")
        longer = max((-2, -1), key=lambda axis: above.shape[axis])
        factor = round(above.shape[longer] / max(1, level.shape[longer]))
        if factor < 2 or any(abs(level.shape[a] - above.shape[a] / factor) > 1 for a in (-2, -1)):
            raise NotReferenceable(f"its level {index} {level.shape} is not level {index - 1} {above.shape} reduced")


def _tifffile_refs(series: Any) -> dict[str, Any]:
    from tifffile import COMPRESSION

    text = io.StringIO()
    codecs = {COMPRESSION(code): name for code, name in NUMCODECS.items() if name}
    try:
        with series.aszarr() as store:
            store.write_fsspec(text, url="source", compressors=codecs)
    except ValueError as exc:  # tifffile's word that these tiles cannot be referenced (bit depths, layouts)
        raise NotReferenceable(f"tifffile cannot reference its tiles: {exc}") from exc
    loaded = json.loads(text.getvalue())
    return loaded.get("refs", loaded) if isinstance(loaded, dict) else {}


def _arrays(raw: Mapping[str, Any], levels: int, names: list[str]) -> dict[str, Any]:
    """Arrays ``0``… with ``/``-separated chunk keys and references to the template, from tifffile's refs."""
    from numcodecs import get_codec  # type: ignore[import-untyped]

    single = ".zarray" in raw
    refs: dict[str, Any] = {}
    for key, value in raw.items():
        if key in (".zgroup", ".zattrs") or key.startswith("."):
            if single and key == ".zarray":
                refs["0/.zarray"] = _array_meta(value, get_codec)
            continue
        level, _, rest = ("0", "", key) if single else key.partition("/")
        if rest == ".zarray":
            refs[f"{level}/.zarray"] = _array_meta(value, get_codec)
        elif rest == ".zattrs":
            refs[f"{level}/.zattrs"] = json.dumps({"_ARRAY_DIMENSIONS": names})
        elif isinstance(value, list):
            refs[f"{level}/{rest.replace('.', '/')}"] = ["{{" + TEMPLATE + "}}", *value[1:]]
        else:
            refs[f"{level}/{rest.replace('.', '/')}"] = value
    missing = [level for level in range(levels) if f"{level}/.zarray" not in refs]
    if missing:
        raise NotReferenceable(f"tifffile gave no array for levels {missing}")
    return refs


def _check_within(refs: Mapping[str, Any], size: int) -> None:
    """:class:`NotReferenceable` if a reference runs past the end of the file (a tile whose offset or byte count
    lies): served, its chunk would be missing, which Zarr reads as zeros."""
    for key, value in refs.items():
        if isinstance(value, list) and int(value[1]) + int(value[2]) > size:
            raise NotReferenceable(
                f"its tile {key} runs past the end of the file ({int(value[1]) + int(value[2]):,} > {size:,} bytes)"
            )


def _array_meta(text: str, get_codec: Any) -> str:
    meta = json.loads(text)
    for codec in [meta.get("compressor"), *(meta.get("filters") or [])]:
        if codec is None:
            continue
        try:
            get_codec(dict(codec))
        except Exception as exc:  # noqa: BLE001 - an unknown codec id: a Zarr client could not decode it either
            raise NotReferenceable(f"its codec {codec.get('id')!r} is not one Zarr clients have") from exc
    meta["dimension_separator"] = "/"
    return json.dumps(meta)


def metadata_store(document: Mapping[str, Any]) -> dict[str, bytes]:
    """The document's inline metadata objects (``.zgroup``, ``.zattrs``, ``*/.zarray``…) as a key → bytes map, for
    validating the store without reading a pixel."""
    return {k: v.encode() for k, v in document["refs"].items() if isinstance(v, str) and k.rsplit("/", 1)[-1].startswith(".z")}
