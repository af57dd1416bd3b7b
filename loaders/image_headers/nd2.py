"""Nikon ND2 (NIS-Elements, the chunked format of version 2 and later, starting ``DA CE BE 0A``).

The nd2 package reads the chunk map, the global metadata and the per-frame metadata through the counting reader
and gives them as OME (``ND2File.ome_metadata``), which :mod:`.ome_xml` turns into series: one per XY position.
Frames (pixels) are never read. Legacy ND2 files (JPEG 2000 containers of NIS-Elements before 4) are not
recognised here.
"""

from __future__ import annotations

from . import extras, ome_xml
from .model import ImageHeaders
from .sources import CountingReader

MAGIC = b"\xda\xce\xbe\x0a"


def read(reader: CountingReader, result: ImageHeaders) -> None:
    result.format = "nd2"
    try:
        import nd2
    except ImportError:
        result.fail("unsupported", extras.missing("nd2", "ND2"))
        return
    with nd2.ND2File(reader) as handle:
        ome = handle.ome_metadata()
    result.series = ome_xml.series_from_ome(ome)
