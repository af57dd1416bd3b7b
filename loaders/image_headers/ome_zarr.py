"""OME-Zarr (NGFF 0.1 to 0.5, Zarr v2 and v3) metadata, read with zarr over a counted, capped key source.

A store is one image (``multiscales``), a plate (``plate`` → wells → fields), or a bioformats2raw layout (series
``0``, ``1``, … or the paths its ``OME/.zattrs`` lists), whose ``OME/METADATA.ome.xml`` then adds names, channels,
instrument and dates (image *i* of the XML is series *i*). Only metadata objects are fetched (``zarr.json``,
``.zgroup``, ``.zattrs``, ``.zarray``, the XML): never a chunk. Pixel sizes are the first level's ``scale`` for axes
with a unit (an axis without one has no physical size).

The store is a :class:`~.sources.KeySource`: a folder, or an uploaded ``.ome.zarr.zip`` read in place
(:func:`read_zip`); the layouts are read the same way in both.
"""

from __future__ import annotations

from typing import Any, AsyncIterator, Iterable

from . import ome_xml, units
from .axes import dtype_name, fold_axes
from .model import Channel, ImageHeaders, ImageSeries
from .sources import CountingKeys, CountingReader, UnreadableZip, ZipKeys

#: most images read from one store (a plate can hold any number)
MAX_SERIES = 10_000
#: the axes NGFF 0.1 and 0.2 imply
_IMPLIED_AXES = ["t", "c", "z", "y", "x"]
_METADATA_KEYS = (".zgroup", ".zattrs", ".zarray", ".zmetadata", "zarr.json")


def key_store(keys: CountingKeys, *, chunks: bool = False) -> Any:
    """A read-only zarr store over ``keys`` that hands out metadata objects only (with ``chunks``, chunks too: the
    previews' renderer reads pixels through it). Metadata objects are kept once read; of chunks, only the last (a
    shard read in parts is then unpacked once)."""
    from zarr.abc.store import OffsetByteRequest, RangeByteRequest, Store, SuffixByteRequest

    class KeyStore(Store):
        supports_writes = supports_deletes = supports_listing = supports_partial_writes = False

        def __init__(self) -> None:
            super().__init__(read_only=True)
            self._seen: dict[str, bytes | None] = {}
            self._chunk: tuple[str, bytes | None] | None = None

        def _fetch(self, key: str) -> bytes | None:
            if not key.endswith(_METADATA_KEYS):
                return self._fetch_chunk(key) if chunks else None  # the header readers never read a chunk
            if key not in self._seen:
                self._seen[key] = keys.get(key)
            return self._seen[key]

        def _fetch_chunk(self, key: str) -> bytes | None:
            if self._chunk is None or self._chunk[0] != key:
                self._chunk = None  # the last one is let go before the next is unpacked
                self._chunk = (key, keys.get(key))
            return self._chunk[1]

        async def get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:
            data = self._fetch(key)
            if data is None:
                return None
            if isinstance(byte_range, RangeByteRequest):
                data = data[byte_range.start : byte_range.end]
            elif isinstance(byte_range, OffsetByteRequest):
                data = data[byte_range.offset :]
            elif isinstance(byte_range, SuffixByteRequest):
                data = data[-byte_range.suffix :]
            return prototype.buffer.from_bytes(data)

        async def get_partial_values(self, prototype: Any, key_ranges: Iterable[tuple[str, Any]]) -> list[Any]:
            return [await self.get(key, prototype, byte_range) for key, byte_range in key_ranges]

        async def exists(self, key: str) -> bool:
            return self._fetch(key) is not None

        async def set(self, key: str, value: Any) -> None:
            raise PermissionError("read-only store")

        async def delete(self, key: str) -> None:
            raise PermissionError("read-only store")

        async def _nothing(self) -> AsyncIterator[str]:
            empty: tuple[str, ...] = ()
            for item in empty:
                yield item

        def list(self) -> AsyncIterator[str]:
            return self._nothing()

        def list_prefix(self, prefix: str) -> AsyncIterator[str]:
            return self._nothing()

        def list_dir(self, prefix: str) -> AsyncIterator[str]:
            return self._nothing()

        def __eq__(self, other: object) -> bool:
            return other is self

    return KeyStore()


def read(keys: CountingKeys, result: ImageHeaders) -> None:
    import zarr

    store = key_store(keys)
    paths = image_paths(store, result.warnings)
    if paths is None:
        result.format = "zarr"
        result.fail("unsupported", "a Zarr store without OME-Zarr metadata (no multiscales, plate or bioformats2raw)")
        return
    result.format = "ome-zarr"
    root = zarr.open_group(store, mode="r")
    described = _described_images(keys, result.warnings) if "bioformats2raw.layout" in ome_attributes(root) else []
    for index, path in enumerate(paths):
        group = root if path == "" else zarr.open_group(store, path=path, mode="r")
        series = _multiscale(store, group, index, path, result.warnings)
        if index < len(described):
            _add_described(series, described[index])
        result.series.append(series)


def read_zip(reader: CountingReader, result: ImageHeaders) -> None:
    """An OME-Zarr zipped into one archive: its members are checked (:class:`~.sources.ZipKeys`) and its metadata
    objects unpacked, counted against the reader's cap too; a refused archive is ``unreadable`` with the reason."""
    result.format = "ome-zarr"
    try:
        zipped = ZipKeys(reader, reader.name)
    except UnreadableZip as exc:
        result.fail("unreadable", str(exc))
        return
    if not any(marker in zipped for marker in _METADATA_KEYS):
        zipped.close()
        result.fail(
            "unreadable", "the archive holds no Zarr store (no zarr.json, .zgroup or .zattrs at its top or in its one top folder)"
        )
        return
    keys = CountingKeys(zipped, reader.cap)
    try:
        read(keys, result)
    except UnreadableZip as exc:
        result.fail("unreadable", str(exc))
    finally:
        zipped.close()
    if keys.over_cap and result.status == "ok":
        result.fail("unreadable", f"its metadata unpacks to more than the {reader.cap:,}-byte cap")


def image_paths(store: Any, warnings: list[str]) -> list[str] | None:
    """The paths of the store's images in series order (series *i* is ``paths[i]``, as :func:`read` numbers them:
    the previews' renderer finds an image the same way); None when the store has no OME-Zarr metadata."""
    import zarr

    root = zarr.open_group(store, mode="r")
    ome = ome_attributes(root)
    if not any(k in ome for k in ("multiscales", "plate", "bioformats2raw.layout")):
        return None
    return _image_paths(store, root, ome, warnings)


def ome_attributes(group: Any) -> dict:
    """A group's OME attributes (NGFF 0.5 nests them under ``ome``)."""
    attrs = group.attrs.asdict()
    nested = attrs.get("ome")
    return nested if isinstance(nested, dict) else attrs


def _open(store: Any, path: str) -> Any | None:
    import zarr

    try:
        return zarr.open_group(store, path=path, mode="r")
    except (FileNotFoundError, KeyError, ValueError):
        return None


def _image_paths(store: Any, root: Any, ome: dict, warnings: list[str]) -> list[str]:
    """Paths of the store's images, in series order."""
    if "multiscales" in ome:
        return [""]
    listed = _open(store, "OME") if "bioformats2raw.layout" in ome else None
    paths = [str(p) for p in ome_attributes(listed).get("series", [])] if listed is not None else []
    if not paths and "plate" in ome:
        paths = _plate_paths(store, ome["plate"])
    elif not paths:
        paths = _probe_series(store)
    paths = _distinct_paths(paths, warnings)
    if len(paths) > MAX_SERIES:
        warnings.append(f"{len(paths):,} images; the first {MAX_SERIES:,} are reported")
    return paths[:MAX_SERIES]


def _distinct_paths(paths: list[str], warnings: list[str]) -> list[str]:
    """Each image group once, in the order first named; a path that is not a plain relative path inside the store
    (``..``, empty segments, a leading or trailing ``/``, control characters) names no image."""
    from catalog.file_paths import path_problem

    kept: dict[str, None] = {}
    refused = repeated = 0
    for path in paths:
        if path in kept:
            repeated += 1
        elif path_problem(path):
            refused += 1
        else:
            kept[path] = None
        if len(kept) > MAX_SERIES:
            break
    if repeated:
        warnings.append(f"{repeated:,} image group(s) named more than once are reported once")
    if refused:
        warnings.append(f"{refused:,} image path(s) that do not name a group inside the store are left out")
    return list(kept)


def _probe(store: Any, path: str) -> bool:
    return _open(store, path) is not None


def _probe_series(store: Any) -> list[str]:
    """Series ``0``, ``1``, … of a bioformats2raw layout without a series list, up to the first missing one."""
    paths: list[str] = []
    while len(paths) <= MAX_SERIES and _probe(store, str(len(paths))):
        paths.append(str(len(paths)))
    return paths


def _plate_paths(store: Any, plate: dict) -> list[str]:
    paths: list[str] = []
    for well in plate.get("wells", []):
        group = _open(store, str(well["path"]))
        images = ome_attributes(group).get("well", {}).get("images", []) if group is not None else []
        paths.extend(f"{well['path']}/{image['path']}" for image in images)
        if len(paths) > MAX_SERIES:
            break
    return paths


def _described_images(keys: CountingKeys, warnings: list[str]) -> list[ImageSeries]:
    data = keys.get("OME/METADATA.ome.xml")
    if data is None:
        return []
    try:
        return ome_xml.series_from_ome(ome_xml.parse(data))
    except Exception as exc:  # noqa: BLE001 - the arrays are still read
        warnings.append(f"OME/METADATA.ome.xml could not be read ({str(exc)[:300]})")
        return []


def axes_of(multiscale: dict, ndim: int) -> list[dict]:
    """A multiscale's axes (as NGFF 0.1 and 0.2 imply them when it names none), each a dict with its ``name``."""
    axes = multiscale.get("axes")
    if axes is None:
        axes = _IMPLIED_AXES[-ndim:]
    return [a if isinstance(a, dict) else {"name": str(a)} for a in axes]


def axis_letters(axes: list[dict]) -> str:
    """One upper-case letter per axis (``TCZYX``): its name's first."""
    return "".join(str(a["name"])[:1].upper() for a in axes)


def _multiscale(store: Any, group: Any, index: int, path: str, warnings: list[str]) -> ImageSeries:
    import zarr

    multiscale = ome_attributes(group)["multiscales"][0]
    datasets = multiscale["datasets"]
    array = zarr.open_array(store, path="/".join(filter(None, (path, datasets[0]["path"]))), mode="r")
    axes = axes_of(multiscale, len(array.shape))
    letters = axis_letters(axes)
    series = ImageSeries(
        index=index,
        axes=letters,
        **fold_axes(letters, array.shape, warnings),
        pixel_type=dtype_name(array.dtype),
        name=multiscale.get("name") or None,
        path=path or None,
        pyramid_levels=len(datasets),
        compression=_compression(array),
        channels=[Channel(name=c.get("label") or None) for c in ome_attributes(group).get("omero", {}).get("channels", [])],
    )
    chunks = dict(zip(letters, array.chunks))
    if "X" in chunks and "Y" in chunks:
        series.tile_size = (int(chunks["X"]), int(chunks["Y"]))
    _scale(series, axes, datasets[0])
    return series


def _scale(series: ImageSeries, axes: list[dict], dataset: dict) -> None:
    scale = next((t.get("scale") for t in dataset.get("coordinateTransformations", []) if t.get("type") == "scale"), None)
    if not scale or len(scale) != len(axes):
        return
    for axis, value in zip(axes, scale):
        name, unit = str(axis.get("name", "")).lower(), axis.get("unit")
        if not unit:
            continue
        if name in ("x", "y", "z"):
            setattr(series, f"physical_size_{name}", units.length(float(value), str(unit)))
        elif name == "t":
            series.time_increment = units.time(float(value), str(unit))


def _compression(array: Any) -> str:
    names = []
    for codec in array.compressors:
        config = codec.get_config() if hasattr(codec, "get_config") else codec.to_dict()
        inner = config.get("configuration", config)
        name = str(config.get("id") or config.get("name"))
        cname = inner.get("cname")
        names.append(f"{name}/{getattr(cname, 'value', cname)}" if cname else name)
    return "+".join(names) or "none"


def _add_described(series: ImageSeries, described: ImageSeries) -> None:
    """What the OME-XML says that the Zarr attributes do not."""
    series.name = series.name or described.name
    if not any(c.name for c in series.channels) or len(described.channels) == len(series.channels):
        series.channels = described.channels or series.channels
    series.instrument = described.instrument
    series.acquisition_date = described.acquisition_date
    for field in ("physical_size_x", "physical_size_y", "physical_size_z", "time_increment"):
        if getattr(series, field) is None:
            setattr(series, field, getattr(described, field))
