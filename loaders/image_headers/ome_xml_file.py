"""A standalone OME-XML file (``.ome.xml``, a ``.companion.ome``): one series per OME Image."""

from __future__ import annotations

from . import ome_xml
from .model import ImageHeaders
from .sources import CountingReader


def read(reader: CountingReader, result: ImageHeaders) -> None:
    result.format = "ome-xml"
    result.series = ome_xml.series_from_ome(ome_xml.parse(ome_xml.read_file(reader)))
