"""The sandboxed side of the ``ome_zarr`` job: one file in, one OME-Zarr per image out, in a local folder.

:func:`make_stores` runs in a :mod:`catalog.sandbox` worker (memory and time capped); it reads the file's headers
with the header readers (the same series, indices and physical sizes the ``image_headers`` job records), then for
each image: a tiled TIFF with Zarr-readable tiles gets a reference document (``<index>/ome.zarr.json``), anything
else it can read is converted (``<index>/ome.zarr/``); an ``.ome.zarr.zip`` is unpacked once (``0/ome.zarr/``) and
each image it holds (a plain image, each series of a bioformats2raw layout, each field of an HCS plate: the header
readers' series) is validated where it sits in that one store (``image_path``). It answers a JSON-able outline of
what it wrote; the caller uploads the folder.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Mapping

from .metadata import metres

#: what an image may claim to hold at most (pixels), by default: a larger claim is refused, not attempted
MAX_PIXELS = 1 << 34
#: images of one file made at most, by default
MAX_IMAGES = 64
#: threads Zarr encodes and writes chunks on in a worker (the sandbox starts workers with one; as many as asyncio
#: gives a process by default, at most 8: each reserves a stack within the memory cap)
ZARR_THREADS = min(4, (os.cpu_count() or 1) + 2)
ZIP_SUFFIX = ".ome.zarr.zip"


def make_stores(path: str, out: str, name: str, source_key: str, caps: Mapping[str, int]) -> dict[str, Any]:
    """Make the OME-Zarr of each image of the file at ``path`` (called ``name`` in the study, ``source_key`` in the
    file store: what reference documents point at) under ``out``."""
    folder = Path(out)
    if name.lower().endswith(ZIP_SUFFIX):
        return _unpacked(path, folder, caps)
    if Path(path).is_dir():
        return _in_place(path, caps)
    from loaders.image_headers.read import read_headers

    _zarr_threads(ZARR_THREADS)
    headers = read_headers(path, max_bytes=_header_cap(caps), fatal=(MemoryError, SystemError)).to_dict()
    if headers["status"] != "ok":
        return {"status": headers["status"], "reason": headers.get("reason") or "no image found"}
    made: dict[str, Any] = {"status": "ok", "format": headers.get("format"), "images": [], "failures": []}
    cap = int(caps.get("max_images", MAX_IMAGES))
    for series in headers["series"][:cap]:
        try:
            made["images"].append(
                _one(path, source_key, headers.get("format") or "", series, folder / str(series["index"]), caps)
            )
        except (MemoryError, SystemError):
            raise  # the sandbox's to report: the process is not trusted with more work
        except Exception as exc:  # noqa: BLE001 - any library's failure to read one image (a codec it lacks, a
            # corrupt tile: NotImplementedError, zlib.error…) is that image's, not the file's
            made["failures"].append({"series": series["index"], "reason": f"{type(exc).__name__}: {str(exc)[:500]}"})
    if len(headers["series"]) > cap:  # one entry for them all: the result stays small
        left = headers["series"][cap:]
        reason = f"the file's {len(left):,} images from this one on get no store: at most {cap} are made of one file"
        made["failures"].append({"series": left[0]["index"], "reason": reason})
    if not made["images"]:
        made["status"] = "unreadable"
        made["reason"] = "; ".join(f"image {f['series']}: {f['reason']}" for f in made["failures"]) or "no image"
    return made


def _header_cap(caps: Mapping[str, int]) -> int:
    """The bytes the header readers may read of a file: the catalog's ``BIA_HEADER_MAX_BYTES``, as the
    ``image_headers`` job reads it (so both jobs find the same images)."""
    from loaders.image_headers.read import DEFAULT_MAX_BYTES

    return int(caps.get("max_metadata_bytes", DEFAULT_MAX_BYTES))


def peak_memory() -> int:
    """This process's peak resident memory so far, in bytes (for figures)."""
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _zarr_threads(count: int) -> None:
    """Let Zarr encode and write chunks on ``count`` threads: its executor is made anew when the count changes."""
    import zarr
    from zarr.core.sync import cleanup_resources

    if zarr.config.get("threading.max_workers") != count:
        zarr.config.set({"threading.max_workers": count})
        cleanup_resources()


def _one(
    path: str, source_key: str, fmt: str, series: Mapping[str, Any], folder: Path, caps: Mapping[str, int]
) -> dict[str, Any]:
    from .pixels import MrcPixels, PngPixels, TiffPixels, Unconvertible

    sizes, index = metres(series), int(series["index"])
    claimed = math.prod(int(series.get(f"size_{a}") or 1) for a in "xyzct")
    if claimed > caps.get("max_pixels", MAX_PIXELS):
        raise Unconvertible(f"it claims {claimed:,} pixels, more than the {caps.get('max_pixels', MAX_PIXELS):,} allowed")
    folder.mkdir(parents=True)
    if fmt in ("tiff", "ome-tiff"):
        import tifffile

        with tifffile.TiffFile(path, _multifile=False) as tif:
            if index >= len(tif.series):
                raise Unconvertible(f"tifffile finds no series {index} in the file")
            virtual, why = _virtual(tif, index, source_key, sizes, series.get("name"), folder)
            if virtual is not None:
                return virtual
            pixels = TiffPixels(tif, index)
            try:
                return {**_converted(pixels, folder, sizes, series.get("name"), index), "not_virtual": why}
            finally:
                pixels.close()
    source: MrcPixels | PngPixels
    if fmt == "mrc":
        source = MrcPixels(path)
    elif fmt in ("png", "jpeg", "gif", "bmp", "webp"):
        source = PngPixels(path)
    else:
        raise Unconvertible(f"no converter for {fmt or 'this format'}")
    try:
        return _converted(source, folder, sizes, series.get("name"), index)
    finally:
        source.close()


def _virtual(
    tif: Any, index: int, source_key: str, sizes: Any, name: Any, folder: Path
) -> tuple[dict[str, Any] | None, str | None]:
    import zarr

    from .metadata import validate_group
    from .virtual import NotReferenceable, metadata_store, reference_document

    try:
        document = reference_document(tif, index, source_key, sizes)
    except NotReferenceable as exc:
        return None, str(exc)
    check = folder / "metadata"
    for key, value in metadata_store(document).items():
        (check / key).parent.mkdir(parents=True, exist_ok=True)
        (check / key).write_bytes(value)
    version = validate_group(zarr.open_group(str(check), mode="r", zarr_format=2))
    text = json.dumps(document, separators=(",", ":"))
    (folder / "ome.zarr.json").write_text(text)
    level0 = json.loads(document["refs"]["0/.zarray"])
    return {
        "series": index,
        "kind": "virtual",
        "file": "ome.zarr.json",
        "ngff_version": version,
        "levels": len(json.loads(document["refs"][".zattrs"])["multiscales"][0]["datasets"]),
        "shape": level0["shape"],
        "chunks": level0["chunks"],
        "dtype": level0["dtype"],
        "axes": [a["name"] for a in json.loads(document["refs"][".zattrs"])["multiscales"][0]["axes"]],
        "references": sum(1 for v in document["refs"].values() if isinstance(v, list)),
    }, None


def _converted(source: Any, folder: Path, sizes: Any, name: Any, index: int) -> dict[str, Any]:
    from .convert import write_image

    written = write_image(source, folder / "ome.zarr", sizes, name=name)
    return {
        "series": index,
        "kind": "converted",
        "file": "ome.zarr",
        "ngff_version": written["ngff_version"],
        "levels": written["levels"],
        "shape": written["shapes"][0],
        "chunks": written["chunks"],
        "dtype": source.dtype.str,
        "axes": list(source.names),
    }


def _unpacked(path: str, folder: Path, caps: Mapping[str, int]) -> dict[str, Any]:
    """Unpack the zip once; each image the header readers find in it points into that store (``shared``)."""
    from loaders.image_headers.read import read_headers

    from .unpack import MAX_BYTES, MAX_MEMBERS, UnsafeArchive, unpack

    headers = read_headers(path, max_bytes=_header_cap(caps), fatal=(MemoryError, SystemError)).to_dict()
    if headers["status"] != "ok":
        return {"status": "unreadable", "reason": headers.get("reason") or "no OME-Zarr image found"}
    target = folder / "0" / "ome.zarr"
    target.mkdir(parents=True)
    try:
        done = unpack(path, target, max_members=caps.get("max_members", MAX_MEMBERS), max_bytes=caps.get("max_bytes", MAX_BYTES))
    except (UnsafeArchive, ValueError) as exc:
        return {"status": "unreadable", "reason": str(exc)}
    return _images_in(target / done.root, headers["series"], "ome-zarr-zip", done)


def _in_place(path: str, caps: Mapping[str, int]) -> dict[str, Any]:
    """A Zarr store uploaded as a folder (or a copy of its metadata objects): nothing is written; each image the
    header readers find in it is validated where it sits and served from the study's own files."""
    from loaders.image_headers.read import read_headers

    headers = read_headers(path, max_bytes=_header_cap(caps), fatal=(MemoryError, SystemError)).to_dict()
    if headers["status"] != "ok":
        return {"status": "unreadable", "reason": headers.get("reason") or "no OME-Zarr image found"}
    return _images_in(Path(path), headers["series"], "ome-zarr", None)


def _images_in(store: Path, found: list[dict[str, Any]], fmt: str, done: Any) -> dict[str, Any]:
    """Each image the header readers ``found`` in an OME-Zarr store, validated where it sits (:func:`_unpacked_image`;
    one that is not valid NGFF is a failure, the others keep their stores)."""
    made: dict[str, Any] = {"status": "ok", "format": fmt, "images": [], "failures": []}
    for series in found:
        try:
            made["images"].append(_unpacked_image(store, series, done))
        except (ValueError, OSError, KeyError, IndexError) as exc:
            made["failures"].append({"series": series["index"], "reason": f"{type(exc).__name__}: {str(exc)[:500]}"})
    if not made["images"]:
        made["status"] = "unreadable"
        made["reason"] = "; ".join(f"image {f['series']}: {f['reason']}" for f in made["failures"])
    return made


def _unpacked_image(store: Path, series: Mapping[str, Any], done: Any) -> dict[str, Any]:
    """Image ``series`` validated where it sits in ``store``: ``unpacked`` from a zip (``done``: what unpacking
    made), else ``in_place`` (a folder uploaded as it is)."""
    import zarr

    from .metadata import validate_group

    from catalog.file_paths import path_problem

    image_path = str(series.get("path") or "")
    problem = path_problem(image_path) if image_path else None
    if problem or (image_path and not (store / image_path).resolve().is_relative_to(store.resolve())):
        raise ValueError(f"its path in the store {image_path[:200]!r} has {problem or 'a way out of the store'}")
    group = zarr.open_group(str(store / image_path) if image_path else str(store), mode="r")
    version = validate_group(group)
    attrs: dict[str, Any] = dict(group.attrs.asdict())
    multiscales: Any = (attrs.get("ome") or attrs)["multiscales"]
    image = {
        "series": int(series["index"]),
        "image_path": image_path,
        "ngff_version": version,
        "levels": len(multiscales[0]["datasets"]),
    }
    if done is None:
        return {**image, "kind": "in_place"}
    return {**image, "kind": "unpacked", "folder": "0", "file": "ome.zarr", "root": done.root, "members": done.members}
