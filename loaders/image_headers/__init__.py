"""Image headers: what every image file says about itself (dimensions, pixel sizes, channels, instrument).

:func:`read_headers` reads one file in this process (bounded in bytes, never raising); :class:`HeaderPool` reads
files in sandboxed worker processes (bounded in bytes, time and memory) for files from anyone. Both return an
:class:`ImageHeaders` per file, with an :class:`ImageSeries` per image in it (:mod:`.model`).
"""

from __future__ import annotations

from .model import Channel, Detector, ImageHeaders, ImageSeries, Instrument, Objective, Quantity
from .read import DEFAULT_MAX_BYTES, read_bytes, read_headers, read_source
from .sources import ByteSource, FileSource, MemorySource, RangeSource, ReadAhead

__all__ = [
    "DEFAULT_MAX_BYTES",
    "ByteSource",
    "Channel",
    "Detector",
    "FileSource",
    "ImageHeaders",
    "ImageSeries",
    "Instrument",
    "MemorySource",
    "Objective",
    "Quantity",
    "RangeSource",
    "ReadAhead",
    "read_bytes",
    "read_headers",
    "read_source",
]
