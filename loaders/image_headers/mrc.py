"""MRC/CCP4 maps (``.mrc``, ``.map``, ``.mrcs``, ``.rec``, …), also gzip-compressed, with FEI extended headers.

Only the 1,024-byte header is read, plus the first record of an FEI1/FEI2 extended header (microscope, high
tension, magnification, camera, time stamp); other extended headers (symmetry operators, …) are skipped unread.
mrcfile gives the header layout (``HEADER_DTYPE``, the FEI record dtypes, mode → dtype, machine stamp → byte
order). A gzip file is inflated only as far as those bytes, so a decompression bomb costs nothing.

Sizes are given in the data's own frame: ``size_x`` is the number of columns (``nx``), and its pixel size is the
sampling along the cell axis the columns run along (``mapc``): the same as mrcfile's ``voxel_size`` unless the
axes are permuted, which a warning then says.
"""

from __future__ import annotations

import zlib
from datetime import datetime, timedelta
from typing import Any

from . import units
from .model import Detector, ImageHeaders, ImageSeries, Instrument, Quantity
from .sources import CountingReader

HEADER_BYTES = 1024
#: MRC modes numpy has no dtype for
_OTHER_MODES = {3: ("complex_int16", 4.0), 101: ("uint4", 0.5)}
_FEI_TYPES = (b"FEI1", b"FEI2")


class _Plain:
    """Reads the uncompressed file from its start."""

    def __init__(self, reader: CountingReader) -> None:
        self.reader = reader
        reader.seek(0)

    def read(self, count: int) -> bytes:
        return self.reader.read(count)


class _Inflated:
    """Reads a gzip file's decompressed bytes from its start, fetching compressed bytes a little at a time."""

    def __init__(self, reader: CountingReader) -> None:
        self.reader, self._inflate, self._chunk = reader, zlib.decompressobj(wbits=31), 4096
        self._pending = b""
        reader.seek(0)

    def read(self, count: int) -> bytes:
        out = bytearray()
        while len(out) < count and not self._inflate.eof:
            if not self._pending:
                self._pending = self.reader.read(self._chunk)
                self._chunk = min(self._chunk * 2, 65536)
                if not self._pending:
                    break
            out += self._inflate.decompress(self._pending, count - len(out))
            self._pending = self._inflate.unconsumed_tail
        return bytes(out)


def read(reader: CountingReader, result: ImageHeaders, gzipped: bool) -> None:
    result.format = "mrc"
    stream = _Inflated(reader) if gzipped else _Plain(reader)
    raw = stream.read(HEADER_BYTES)
    if len(raw) < HEADER_BYTES:
        raise ValueError(f"the file ends after {len(raw)} bytes, inside the {HEADER_BYTES}-byte MRC header")
    header = _header(raw, result.warnings)
    nsymbt = int(header.nsymbt)
    if nsymbt < 0:
        raise ValueError(f"negative extended header size {nsymbt}")
    series = _series(header, result.warnings)
    exttyp = bytes(header.exttyp)
    if exttyp in _FEI_TYPES and nsymbt > 0:
        series.instrument, series.acquisition_date = _fei(stream, exttyp, nsymbt, header.mode.dtype.byteorder)
    if not gzipped:
        _check_size(reader, header, nsymbt, result.warnings)
    result.series = [series]


def _header(raw: bytes, warnings: list[str]) -> Any:
    import numpy as np
    from mrcfile.constants import MAP_ID  # type: ignore[import-untyped]
    from mrcfile.dtypes import HEADER_DTYPE  # type: ignore[import-untyped]
    from mrcfile.utils import byte_order_from_machine_stamp  # type: ignore[import-untyped]

    header = np.frombuffer(raw, dtype=HEADER_DTYPE).reshape(()).view(np.recarray)
    if bytes(header.map)[:3] != MAP_ID[:3]:
        warnings.append("no MAP identifier: an old-style (pre-2000) MRC header, read as such")
    try:
        order = byte_order_from_machine_stamp(header.machst)
    except ValueError:
        order = "<"
        warnings.append(f"machine stamp {bytes(header.machst)!r} is not a known one; little-endian assumed")
    header = header.view(header.dtype.newbyteorder(order)).view(np.recarray)
    if _mode_dtype(int(header.mode)) is None:  # the wrong byte order gives an unknown mode: try the other one
        swapped = header.view(header.dtype.newbyteorder()).view(np.recarray)
        if _mode_dtype(int(swapped.mode)) is not None:
            warnings.append("the machine stamp gives the wrong byte order; the other one is used")
            header = swapped
    return header


def _mode_dtype(mode: int) -> tuple[str, float] | None:
    """(numpy dtype name, bytes per voxel) of an MRC mode; None for an unknown mode."""
    from mrcfile.utils import dtype_from_mode

    if mode in _OTHER_MODES:
        return _OTHER_MODES[mode]
    try:
        dtype = dtype_from_mode(mode)
    except ValueError:
        return None
    return dtype.name, float(dtype.itemsize)


def _series(header: Any, warnings: list[str]) -> ImageSeries:
    nx, ny, nz = int(header.nx), int(header.ny), int(header.nz)
    if min(nx, ny, nz) < 1:
        raise ValueError(f"the header gives impossible dimensions {nx} x {ny} x {nz}")
    mode = _mode_dtype(int(header.mode))
    if mode is None:
        raise ValueError(f"unknown MRC mode {int(header.mode)}")
    item = ImageSeries(index=0, axes="ZYX", size_x=nx, size_y=ny, size_z=nz, pixel_type=mode[0])
    spacing = _cell_spacing(header)
    order = (int(header.mapc), int(header.mapr), int(header.maps))
    if order != (1, 2, 3):
        if sorted(order) != [1, 2, 3]:
            warnings.append(f"mapc/mapr/maps {order} is not a permutation of 1, 2, 3; taken as 1, 2, 3")
            order = (1, 2, 3)
        else:
            warnings.append(
                f"axes permuted (mapc/mapr/maps = {order}): columns, rows and sections run along cell axes "
                + ", ".join("XYZ"[i - 1] for i in order)
            )
    item.physical_size_x, item.physical_size_y, item.physical_size_z = (spacing[i - 1] for i in order)
    return item


def _cell_spacing(header: Any) -> list[Quantity | None]:
    """Sampling along the cell's X, Y and Z in Å (cell length / intervals), None where not given."""
    cell = [float(header.cella.x), float(header.cella.y), float(header.cella.z)]
    intervals = [int(header.mx), int(header.my), int(header.mz)]
    return [units.length(c / m, "Å") if m > 0 and c > 0 else None for c, m in zip(cell, intervals)]


def _fei(stream: _Plain | _Inflated, exttyp: bytes, nsymbt: int, byte_order: str) -> tuple[Instrument | None, str | None]:
    """The instrument and time stamp in the first record of an FEI extended header."""
    import numpy as np
    from mrcfile.dtypes import get_ext_header_dtype

    dtype = get_ext_header_dtype(exttyp, byte_order if byte_order in "<>" else "=")
    raw = stream.read(min(nsymbt, dtype.itemsize))
    if len(raw) < dtype.itemsize:
        return None, None
    record = np.frombuffer(raw, dtype=dtype)[0]
    camera = _fei_text(record, "Detector commercial name") or _fei_text(record, "Camera name")
    application = " ".join(filter(None, (_fei_text(record, "Application"), _fei_text(record, "Application version"))))
    volts = _fei_number(record, "HT")
    instrument = Instrument(
        microscope_model=_fei_text(record, "Microscope type"),
        detectors=[Detector(model=camera)] if camera else [],
        magnification=_fei_number(record, "Magnification"),
        accelerating_voltage=Quantity(volts, "V", volts) if volts else None,
        software=application or None,
    )
    return instrument, _fei_date(_fei_number(record, "Timestamp"))


def _fei_text(record: Any, field: str) -> str | None:
    if field not in record.dtype.names:
        return None
    text = bytes(record[field]).split(b"\0", 1)[0].decode("latin-1").strip()
    return text if text.isprintable() and text else None


def _fei_number(record: Any, field: str) -> float | None:
    if field not in record.dtype.names:
        return None
    value = float(record[field])
    return value if value == value and value not in (0.0, float("inf"), float("-inf")) else None


def _fei_date(days: float | None) -> str | None:
    """An FEI time stamp (days since 30 December 1899, the OLE automation date) as ISO 8601."""
    if days is None or not 0 < days < 2_958_465:  # up to year 9999
        return None
    return (datetime(1899, 12, 30) + timedelta(days=days)).isoformat(timespec="seconds")


def _check_size(reader: CountingReader, header: Any, nsymbt: int, warnings: list[str]) -> None:
    size = reader.source.size
    mode = _mode_dtype(int(header.mode))
    if size is None or mode is None:
        return
    expected = HEADER_BYTES + nsymbt + int(int(header.nx) * int(header.ny) * int(header.nz) * mode[1])
    if size < expected:
        warnings.append(f"the file is {size:,} bytes but its header describes {expected:,}: truncated")
