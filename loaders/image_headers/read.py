"""Read one file's headers in this process: pick the reader by the file's first bytes, contain every failure.

:func:`read_headers` never raises: whatever a file does to a reader (malformed, truncated, over the byte cap,
exhausting memory) ends as ``status="unreadable"`` with a reason. It bounds bytes, not time or memory: for files
from anyone, run it in the sandbox (:mod:`.pool`), which adds a time limit and a memory cap. Library warnings are
caught with :func:`warnings.catch_warnings`, which is process-wide: read from one thread at a time (as the sandbox's
workers do) to keep each file's warnings its own.
"""

from __future__ import annotations

import logging
import os
import warnings as pywarnings
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .model import ImageHeaders, bounded
from .sources import (
    ByteCapExceeded,
    ByteSource,
    CountingKeys,
    CountingReader,
    DirectoryKeys,
    FileSource,
    KeySource,
    MemorySource,
)

#: bytes read from one file at most, unless told otherwise (a larger OME-XML is refused unread)
DEFAULT_MAX_BYTES = 32 << 20
#: warnings kept per file
MAX_WARNINGS = 50
KNOWN_FORMATS = "TIFF, OME-XML, MRC, PNG, JPEG, OME-Zarr (a folder or a .zarr.zip), CZI, ND2, LIF"
MRC_SUFFIXES = (".mrc", ".map", ".mrcs", ".rec", ".st", ".ali", ".ccp4", ".mrc2014")
ZARR_MARKERS = ("zarr.json", ".zgroup", ".zattrs", ".zarray")
#: names of zip archives read as a zipped OME-Zarr (``x.ome.zarr.zip``)
ZARR_ZIP_SUFFIX = ".zarr.zip"
_LIBRARY_LOGGERS = ("tifffile", "zarr", "ome_types", "PIL", "xsdata", "czifile", "nd2", "liffile")
Fatal = tuple[type[BaseException], ...]


def read_headers(
    target: str | os.PathLike[str] | ByteSource,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    fatal: Fatal = (),
    name: str | None = None,
) -> ImageHeaders:
    """The headers of a local file, an OME-Zarr folder or a :class:`~.sources.ByteSource`.

    ``name``: the file's own name, when the path does not carry it (a staged upload's key): it helps tell the format.
    ``fatal`` names exceptions to let through instead of reporting (the sandbox retires a worker process that met
    ``MemoryError`` or ``SystemError``: its state is not to be trusted with another file)."""
    if not isinstance(target, (str, os.PathLike)):
        return read_source(target, max_bytes=max_bytes, fatal=fatal)
    path = Path(target)
    result = ImageHeaders(source=str(target))
    if path.is_dir():
        return _read_folder(path, result, max_bytes, fatal)
    if path.exists() and not path.is_file():  # a FIFO, a device: opening or reading it may never end
        return result.fail("unsupported", "not a regular file")
    try:
        source = FileSource(path)
    except OSError as exc:
        return result.fail("unreadable", f"cannot open: {exc.strerror or exc}")
    if name:
        source.name = name
    with source:
        return read_source(source, max_bytes=max_bytes, fatal=fatal)


def read_bytes(data: bytes, name: str = "<memory>", *, max_bytes: int = DEFAULT_MAX_BYTES) -> ImageHeaders:
    """The headers of a file held in memory (``name`` helps to tell its format, e.g. ``x.map.gz``)."""
    return read_source(MemorySource(data, name), max_bytes=max_bytes)


def read_source(source: ByteSource, *, max_bytes: int = DEFAULT_MAX_BYTES, fatal: Fatal = ()) -> ImageHeaders:
    result = ImageHeaders(source=source.name)
    reader: CountingReader | None = None

    def run() -> None:
        nonlocal reader
        reader = CountingReader(source, max_bytes)
        reader_for = _reader_for(reader.head, source.name)
        if reader_for is None:
            result.fail("unsupported", f"not a format the header readers know ({KNOWN_FORMATS})")
            return
        reader_for(reader, result)
        _no_images(result)

    _contained(result, run, fatal)
    if reader is not None:
        _count(result, reader.bytes_read, reader.reads, reader.over_cap, max_bytes)
    return result


def _read_folder(path: Path, result: ImageHeaders, max_bytes: int, fatal: Fatal) -> ImageHeaders:
    if not any((path / marker).is_file() for marker in ZARR_MARKERS):
        return result.fail("unsupported", "a folder that is not a Zarr store")
    return _read_store(DirectoryKeys(path), result, max_bytes, fatal)


def read_keys(source: KeySource, name: str, *, max_bytes: int = DEFAULT_MAX_BYTES, fatal: Fatal = ()) -> ImageHeaders:
    """The headers of the Zarr store whose objects ``source`` hands out (a store at a URL: :class:`~.remote.HttpKeys`),
    called ``name``; never raises, as :func:`read_headers`."""
    return _read_store(source, ImageHeaders(source=name), max_bytes, fatal)


def _read_store(source: KeySource, result: ImageHeaders, max_bytes: int, fatal: Fatal) -> ImageHeaders:
    from . import ome_zarr

    keys = CountingKeys(source, max_bytes)

    def run() -> None:
        ome_zarr.read(keys, result)
        _no_images(result)

    _contained(result, run, fatal)
    _count(result, keys.bytes_read, keys.reads, keys.over_cap, max_bytes)
    return result


def _no_images(result: ImageHeaders) -> None:
    """The end of every read: no image is unreadable; what the file claims is kept within bounds."""
    if result.status == "ok" and not result.series:
        result.fail("unreadable", "no image found in it")
    bounded(result)


def _count(result: ImageHeaders, bytes_read: int, reads: int, over_cap: bool, max_bytes: int) -> None:
    result.bytes_read, result.reads = bytes_read, reads
    if over_cap and result.status == "ok":  # a library swallowed the refusal: what it made of the rest is not kept
        result.fail("unreadable", f"reading it needs more than the {max_bytes:,}-byte cap")


def _reader_for(head: bytes, name: str) -> Callable[[CountingReader, ImageHeaders], None] | None:
    """The reader for a file starting with ``head`` and called ``name``; None if there is none."""
    from . import czi, lif, mrc, nd2, ome_xml_file, ome_zarr, raster, tiff

    lower = name.lower()
    if lower.endswith(ZARR_ZIP_SUFFIX):  # a zip (PK\3\4) or not, the zip reader says what it is
        return ome_zarr.read_zip
    if head[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
        return tiff.read
    if head.startswith(czi.MAGIC):
        return czi.read
    if head.startswith(nd2.MAGIC):
        return nd2.read
    if lif.is_lif(head):
        return lif.read
    if head.startswith(b"\x89PNG\r\n\x1a\n") or head.startswith(b"\xff\xd8\xff"):
        return raster.read
    if head.startswith(b"\x1f\x8b"):
        return (lambda r, res: mrc.read(r, res, gzipped=True)) if _gzipped_mrc(head, lower) else None
    if _is_mrc(head, lower):
        return lambda r, res: mrc.read(r, res, gzipped=False)
    if _is_ome_xml(head, lower):
        return ome_xml_file.read
    return None


def _is_mrc(head: bytes, lower: str) -> bool:
    return head[208:211] == b"MAP" or lower.endswith(MRC_SUFFIXES)


def _gzipped_mrc(head: bytes, lower: str) -> bool:
    if lower.endswith(tuple(s + ".gz" for s in MRC_SUFFIXES)):
        return True
    try:
        inflated = zlib.decompressobj(wbits=31).decompress(head, 1024)
    except zlib.error:
        return False
    return inflated[208:211] == b"MAP"


def _is_ome_xml(head: bytes, lower: str) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not text.startswith(b"<"):
        return False
    return lower.endswith((".ome.xml", ".companion.ome", ".ome")) or b"<OME" in head or b":OME" in head


def _contained(result: ImageHeaders, run: Callable[[], None], fatal: Fatal = ()) -> None:
    """Run a reader: warnings and library log messages become ``result.warnings``; failures, its reason."""
    with _captured(result.warnings):
        try:
            run()
        except fatal:
            raise
        except ByteCapExceeded as exc:
            result.fail("unreadable", f"over the byte cap: {exc}")
        except MemoryError:
            result.fail("unreadable", "reading it ran out of memory")
        except RecursionError:
            result.fail("unreadable", "its structure is nested too deep to read")
        except Exception as exc:  # noqa: BLE001 - untrusted input: any failure is the file's
            result.fail("unreadable", f"{type(exc).__name__}: {str(exc)[:400]}")
    unique = list(dict.fromkeys(result.warnings))
    result.warnings[:] = unique[:MAX_WARNINGS] + (
        [f"{len(unique) - MAX_WARNINGS} more warnings"] if len(unique) > MAX_WARNINGS else []
    )


class _ListHandler(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.into) <= MAX_WARNINGS:
            self.into.append(f"{record.name}: {record.getMessage()}"[:500])


@contextmanager
def _captured(into: list[str]) -> Iterator[None]:
    handler = _ListHandler(into)
    loggers = [logging.getLogger(name) for name in _LIBRARY_LOGGERS]
    saved = [logger.propagate for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.propagate = False
    try:
        with pywarnings.catch_warnings(record=True) as caught:
            pywarnings.simplefilter("always")
            yield
        into.extend(str(w.message)[:500] for w in caught if not issubclass(w.category, ResourceWarning))
    finally:
        for logger, propagate in zip(loggers, saved):
            logger.removeHandler(handler)
            logger.propagate = propagate
