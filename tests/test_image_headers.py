"""Image header readers (loaders/image_headers) against the facts of real files (tests/data/images/SOURCES.txt),
files written at test time from real pixels, and hostile files; the sandbox they run in (catalog/sandbox.py); and
``bia headers``."""

from __future__ import annotations

import gzip
import json
import os
import random
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

from api.cli import cli
from catalog.sandbox import Limits, SandboxFailure, SandboxPool
from loaders.image_headers import (
    ImageHeaders,
    MemorySource,
    RangeSource,
    ReadAhead,
    read_bytes,
    read_headers,
    read_source,
)
from loaders.image_headers.pool import HeaderCaps, HeaderPool
from loaders.image_headers.sources import ByteCapExceeded, DirectoryKeys

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "tests" / "data" / "images"
KIB = 1024
#: what a TIFF or MRC header read may take (issue 16's target), when no OME-XML is embedded
HEADER_TARGET = 64 * KIB


def ok(path: Path | str, **kwargs) -> ImageHeaders:
    found = read_headers(path, **kwargs)
    assert found.status == "ok", (found.reason, found.warnings)
    return found


def metres(quantity) -> float:
    return quantity.si


@pytest.fixture(scope="module")
def pool():
    with HeaderPool(workers=2, caps=HeaderCaps(seconds=10)) as headers:
        yield headers


# ---------------------------------------------------------------------- MRC


def test_emd_3197_map_facts():
    found = ok(IMAGES / "mrc" / "EMD-3197.map")
    (series,) = found.series
    assert (found.format, series.axes, series.pixel_type) == ("mrc", "ZYX", "float32")
    assert (series.size_x, series.size_y, series.size_z, series.size_c, series.size_t) == (20, 20, 20, 1, 1)
    for size in (series.physical_size_x, series.physical_size_y, series.physical_size_z):
        assert (size.value, size.unit) == (pytest.approx(11.4), "Å")
        assert size.si == pytest.approx(11.4e-10)
    assert (found.bytes_read, found.reads, found.warnings) == (1024, 1, [])


def test_emd_3001_map_with_permuted_axes_gives_sizes_in_the_data_frame():
    found = ok(IMAGES / "mrc" / "EMD-3001.map")
    (series,) = found.series
    assert (series.size_x, series.size_y, series.size_z) == (73, 43, 25)  # nx, ny, nz (numpy shape (25, 43, 73))
    # mapc/mapr/maps = 3,1,2: columns run along the cell's Z (33.03/72), rows along X (17.93/40), sections along Y
    assert series.physical_size_x.value == pytest.approx(0.45875, rel=1e-6)
    assert series.physical_size_y.value == pytest.approx(0.44825, rel=1e-6)
    assert series.physical_size_z.value == pytest.approx(0.3925, rel=1e-6)
    assert any("mapc/mapr/maps = (3, 1, 2)" in w for w in found.warnings)
    assert found.bytes_read == 1024  # the 160-byte symmetry extended header is never read


def test_gzipped_map_reads_as_the_plain_one_inflating_only_the_header():
    plain, packed = ok(IMAGES / "mrc" / "EMD-3197.map"), ok(IMAGES / "mrc" / "emd_3197.map.gz")
    assert packed.series == plain.series
    assert packed.bytes_read <= 8 * KIB


@pytest.mark.parametrize(
    "name, facts",
    [
        (
            "fei-extended.header.mrc.gz",
            dict(size=(3710, 3838, 1), voxel=0.8537755, microscope="TITAN52336320", software="Fei EPU 1.2.0.16",
                 magnification=165000.0, camera="EF-CCD", date="2017-10-10T08:37:35"),
        ),
        (
            "epu2.9_example.header.mrc.gz",
            dict(size=(4096, 4096, 1), voxel=0.66655135, microscope="TITAN52337720", software="EPU 2.9.0.1519",
                 magnification=120000.0, camera="BM-Falcon", date="2020-11-03T17:36:04"),
        ),
    ],
)  # fmt: skip
def test_fei_extended_headers(name, facts, tmp_path):
    """The real EPU headers, gzipped as stored here and as a full-size plain file (the data block sparse)."""
    packed = IMAGES / "mrc" / name
    plain = tmp_path / name.replace(".gz", "")
    with plain.open("wb") as handle:
        handle.write(gzip.decompress(packed.read_bytes()))
        handle.truncate(1024 + (plain.stat().st_size - 1024) + facts["size"][0] * facts["size"][1] * 2)
    for path in (packed, plain):
        found = ok(path)
        (series,) = found.series
        assert (series.size_x, series.size_y, series.size_z, series.pixel_type) == (*facts["size"], "uint16")
        assert series.physical_size_x.value == pytest.approx(facts["voxel"], rel=1e-6)
        assert series.physical_size_z is None  # cella.z = 0
        instrument = series.instrument
        assert (instrument.microscope_model, instrument.software) == (facts["microscope"], facts["software"])
        assert (instrument.magnification, instrument.accelerating_voltage.si) == (facts["magnification"], 300000.0)
        assert [d.model for d in instrument.detectors] == [facts["camera"]]
        assert series.acquisition_date == facts["date"]
        assert found.warnings == []
    assert read_headers(plain).bytes_read <= 2 * KIB  # header + the first extended-header record, of ~0.8 MB


# ---------------------------------------------------------------------- TIFF, OME-TIFF, PNG, JPEG


def test_stardist_2d_tiff_facts():
    found = ok(IMAGES / "tiff" / "stardist_img2d.tif")
    (series,) = found.series
    assert (found.format, series.axes, series.pixel_type, series.compression) == ("tiff", "YX", "uint16", "none")
    assert (series.size_x, series.size_y, series.size_z) == (512, 512, 1)
    assert series.physical_size_x is None and series.tile_size is None  # X/YResolution 1/1, unit NONE
    assert found.bytes_read <= HEADER_TARGET and found.warnings == []


def test_stardist_3d_tiff_counts_its_unknown_axis_as_z():
    found = ok(IMAGES / "tiff" / "stardist_img3d.tif")
    (series,) = found.series
    assert (series.axes, series.size_x, series.size_y, series.size_z) == ("QYX", 57, 61, 31)
    assert (series.pixel_type, series.compression) == ("uint16", "adobe_deflate")
    assert found.warnings == ["axis Q (31) has no stated meaning; counted as Z"]
    assert found.bytes_read <= HEADER_TARGET  # 31 directories, no pixels


def real_pixels() -> np.ndarray:
    return tifffile.imread(IMAGES / "tiff" / "stardist_img2d.tif")


def test_ome_tiff_written_from_real_pixels(tmp_path):
    image = real_pixels()
    data = np.stack([image, image.max() - image])
    path = tmp_path / "nuclei.ome.tif"
    meta = {
        "axes": "CYX",
        "Name": "nuclei",
        "PhysicalSizeX": 0.65,
        "PhysicalSizeXUnit": "µm",
        "PhysicalSizeY": 650.0,
        "PhysicalSizeYUnit": "nm",
        "Channel": {"Name": ["DAPI", "inverted"], "Fluor": ["DAPI", "DAPI"]},
    }
    with tifffile.TiffWriter(path) as writer:
        writer.write(data, subifds=2, tile=(128, 128), compression="zlib", metadata=meta, photometric="minisblack")
        for step in (2, 4):
            writer.write(data[:, ::step, ::step], subfiletype=1, tile=(128, 128), compression="zlib")
    found = ok(path)
    (series,) = found.series
    assert (found.format, series.name, series.pixel_type) == ("ome-tiff", "nuclei", "uint16")
    assert (series.size_x, series.size_y, series.size_c, series.axes) == (512, 512, 2, "TZCYX")
    assert (series.physical_size_x.value, series.physical_size_x.unit) == (0.65, "µm")
    assert (series.physical_size_y.value, series.physical_size_y.unit) == (650.0, "nm")
    assert series.physical_size_x.si == pytest.approx(series.physical_size_y.si) == pytest.approx(6.5e-7)
    assert [(c.name, c.fluorophore) for c in series.channels] == [("DAPI", "DAPI"), ("inverted", "DAPI")]
    assert (series.tile_size, series.compression, series.pyramid_levels) == ((128, 128), "adobe_deflate", 3)
    assert found.bytes_read <= HEADER_TARGET


def test_ome_tiff_carrying_a_real_acquisition_description(tmp_path):
    """tubhiswt's real OME-XML (Nikon, 2 channels x 20 time points) written into a TIFF of real pixels."""
    xml = (IMAGES / "ome-xml" / "tubhiswt.ome.xml").read_bytes()
    plane = (real_pixels() >> 1).astype(np.uint8)
    path = tmp_path / "tubhiswt_C0.ome.tif"  # the file its first TiffData names
    with tifffile.TiffWriter(path) as writer:
        for index in range(40):
            writer.write(plane, description=xml if index == 0 else None, metadata=None, compression="zlib")
    found = ok(path)
    (series,) = found.series
    assert (found.format, series.size_c, series.size_t, series.compression) == ("ome-tiff", 2, 20, "adobe_deflate")
    assert series.instrument.objective.model == "S Fluor"
    assert found.bytes_read <= HEADER_TARGET + len(xml)
    renamed = path.rename(tmp_path / "renamed.ome.tif")
    (elsewhere,) = ok(renamed).series  # the XML says its planes are in tubhiswt_C0.ome.tif: no storage facts
    assert (elsewhere.size_t, elsewhere.compression, elsewhere.tile_size) == (20, None, None)


def test_imagej_tiff_sizes_and_frame_interval(tmp_path):
    path = tmp_path / "imagej.tif"
    stack = np.stack([real_pixels()] * 3)[:, :64, :48]
    tifffile.imwrite(
        path, stack, imagej=True, resolution=(1 / 0.25, 1 / 0.5), metadata={"unit": "micron", "finterval": 2.5, "axes": "TYX"}
    )
    (series,) = ok(path).series
    assert (series.axes, series.size_x, series.size_y, series.size_t) == ("TYX", 48, 64, 3)
    assert (series.physical_size_x.value, series.physical_size_x.unit) == (pytest.approx(0.25), "micron")
    assert series.physical_size_y.si == pytest.approx(0.5e-6)
    assert (series.time_increment.value, series.time_increment.si) == (2.5, 2.5)


def test_cell_png_facts():
    found = ok(IMAGES / "png" / "skimage_cell.png")
    (series,) = found.series
    assert (found.format, series.axes, series.size_x, series.size_y, series.size_c) == ("png", "YX", 550, 660, 1)
    assert (series.pixel_type, series.physical_size_x) == ("uint8", None)
    assert found.bytes_read <= 4 * KIB


def test_jpeg_resolution_is_a_pixel_size_unless_a_display_default(tmp_path):
    from PIL import Image

    pixels = np.asarray(Image.open(IMAGES / "png" / "skimage_cell.png"))
    rgb = np.stack([pixels] * 3, axis=-1)
    Image.fromarray(rgb).save(tmp_path / "fine.jpg", dpi=(2540, 2540))
    Image.fromarray(rgb).save(tmp_path / "screen.jpg", dpi=(72, 72))
    fine, screen = ok(tmp_path / "fine.jpg"), ok(tmp_path / "screen.jpg")
    (series,) = fine.series
    assert (fine.format, series.axes, series.size_c, series.compression) == ("jpeg", "YXS", 3, "jpeg")
    assert series.physical_size_x.si == pytest.approx(1e-5)  # 1/2540 inch
    assert screen.series[0].physical_size_x is None
    assert screen.warnings == ["resolution 72 dpi is a display or print setting, not taken as a pixel size"]


# ---------------------------------------------------------------------- OME-XML


def ome(name: str) -> ImageHeaders:
    found = ok(IMAGES / "ome-xml" / name)
    assert found.format == "ome-xml"
    return found


def test_tubhiswt_ome_xml_facts():
    (series,) = ome("tubhiswt.ome.xml").series
    assert (series.name, series.acquisition_date, series.axes) == ("tubhiswt", "2013-01-15T17:02:41", "CTZYX")
    assert (series.size_x, series.size_y, series.size_z, series.size_c, series.size_t) == (512, 512, 1, 2, 20)
    assert (series.pixel_type, series.physical_size_x, len(series.channels)) == ("uint8", None, 2)
    instrument = series.instrument
    assert (instrument.microscope_manufacturer, instrument.microscope_model, instrument.microscope_type) == (
        "Nikon",
        "Eclipse TE300",
        "Inverted",
    )
    objective = instrument.objective
    assert (objective.manufacturer, objective.model, objective.correction) == ("Nikon", "S Fluor", "PlanApo")
    assert (objective.nominal_magnification, objective.calibrated_magnification, objective.lens_na) == (100.0, 100.0, 1.4)
    assert objective.immersion == "Oil"
    assert [(d.manufacturer, d.model, d.type) for d in instrument.detectors] == [
        ("Hamamatzu", "H7422", "PMT"),
        ("Bio-Rad", "1024TLD", "Photodiode"),
    ]


def test_overviewscan_ome_xml_facts():
    (series,) = ome("OverViewScan.ome.xml").series
    assert (series.name, series.size_x, series.size_y, series.pixel_type) == ("TR1", 7398, 3212, "uint16")
    assert series.acquisition_date == "2016-03-11T10:23:44.925154+00:00"
    for size in (series.physical_size_x, series.physical_size_y):
        assert (size.value, size.unit, size.si) == (4.5743626119409, "µm", pytest.approx(4.5743626119409e-6))
    (channel,) = series.channels
    assert (channel.name, channel.fluorophore, channel.acquisition_mode, channel.illumination_type) == (
        "DAPI",
        "DAPI",
        "WideField",
        "Epifluorescence",
    )
    assert (channel.excitation_wavelength.value, channel.emission_wavelength.value) == (353.0, 465.0)
    assert channel.excitation_wavelength.si == pytest.approx(353e-9)
    instrument = series.instrument
    assert (instrument.microscope_manufacturer, [d.model for d in instrument.detectors]) == ("Zeiss", ["Axiocam506m"])
    objective = instrument.objective  # no NA or magnification; the settings' medium is Air
    assert (objective.lens_na, objective.nominal_magnification, objective.immersion) == (None, None, "Air")


def test_mmstack_ome_xml_facts():
    found = ome("MMStack.ome.xml")
    assert [s.name[-12:] for s in found.series] == ["2-Pos000_000", "2-Pos001_000"]
    for series in found.series:
        assert (series.size_x, series.size_y, series.size_z, series.size_c, series.size_t) == (256, 256, 5, 3, 2)
        assert (series.axes, series.pixel_type) == ("TZCYX", "uint16")
        assert (series.physical_size_x.value, series.physical_size_z.value) == (2.0, 1.75)
        assert (series.time_increment.value, series.time_increment.unit, series.time_increment.si) == (1.0, "ms", 0.001)
        assert [c.name for c in series.channels] == ["Cy5", "DAPI", "FITC"]
        assert series.instrument.objective is None


def test_example_ome_xml_pyramid_written_as_images():
    found = ome("example.ome.xml")
    sizes = [(s.size_x, s.size_y) for s in found.series]
    assert sizes == [(14799, 12464), (7400, 6232), (3700, 3116), (1850, 1558), (925, 779)]
    assert all((s.size_c, s.size_z, s.size_t, s.pixel_type) == (28, 1, 1, "uint16") for s in found.series)
    first = found.series[0]
    assert first.physical_size_x.value == 0.324999988079
    assert [c.name for c in first.channels] == [f"Channel {i}" for i in range(28)]
    assert found.series[1].physical_size_x is None
    assert all(s.instrument is None for s in found.series)


def test_instrument_ome_xml_facts():
    (series,) = ome("instrument.ome.xml").series
    assert (series.size_x, series.size_y, series.pixel_type) == (6, 4, "uint8")
    assert (series.physical_size_x.value, series.physical_size_x.unit) == (10000.0, "µm")  # no unit: OME's default
    instrument = series.instrument
    assert (instrument.microscope_manufacturer, instrument.microscope_model) == ("OME Insturuments", "Lab Mk3")
    objective = instrument.objective
    assert (objective.model, objective.lens_na, objective.nominal_magnification) == ("60xUV-Air", 1.2, 60.0)
    assert (objective.calibrated_magnification, objective.immersion, objective.correction) == (60.12, "Air", "UV")
    assert [d.type for d in instrument.detectors] == ["CCD"]


def test_spim_ome_xml_facts():
    found = ome("spim.ome.xml")
    assert len(found.series) == 4
    for series in found.series:
        assert (series.size_x, series.size_y, series.size_z, series.size_c, series.size_t) == (6, 4, 2, 2, 2)
        assert [c.name for c in series.channels] == [None, None]


def test_old_schema_nikon_ome_xml_is_upgraded_and_read():
    (series,) = ome("seq0000xy01c1.ome.xml").series
    assert (series.size_x, series.size_y, series.pixel_type) == (2044, 2060, "uint16")
    assert series.acquisition_date == "2021-03-04T15:25:04"
    assert series.physical_size_x.value == 0.644888 and series.physical_size_x.si == pytest.approx(0.644888e-6)
    (channel,) = series.channels
    assert (channel.name, channel.acquisition_mode, channel.emission_wavelength.value) == ("Mono", "WideField", 525.0)
    instrument = series.instrument  # Instrument:1, the one the image names
    assert instrument.microscope_model == "Ti Microscope"
    objective = instrument.objective
    assert (objective.model, objective.nominal_magnification, objective.lens_na) == ("Plan Apo ? 10x", 10.0, 0.45)


# ---------------------------------------------------------------------- OME-Zarr


def test_bia_hcs_plate_facts():
    found = ok(IMAGES / "ome-zarr" / "bia_hcs.ome.zarr")
    assert found.format == "ome-zarr"
    assert [s.path for s in found.series] == ["A/1/0", "A/1/1", "A/2/0", "A/2/1", "B/1/0", "B/1/1", "B/2/0", "B/2/1"]
    assert [s.name for s in found.series] == ["hcs"] + [f"hcs {i}" for i in range(2, 9)]
    for series in found.series:
        assert (series.axes, series.size_x, series.size_y, series.size_z, series.size_c, series.size_t) == (
            "TCZYX",
            64,
            64,
            1,
            1,
            1,
        )
        assert (series.pixel_type, series.pyramid_levels, series.tile_size, series.compression) == (
            "uint8",
            1,
            (64, 64),
            "blosc/lz4",
        )
        assert (series.physical_size_x.value, series.physical_size_x.unit) == (1.0, "micrometer")
        assert series.physical_size_z.si == pytest.approx(1e-6)
        assert [c.name for c in series.channels] == ["Name"]
        objective = series.instrument.objective  # from OME/METADATA.ome.xml (placeholders)
        assert (objective.lens_na, objective.nominal_magnification, objective.immersion) == (0.5, 1.5, "Oil")
    assert found.bytes_read < 64 * KIB  # metadata objects only: no chunk is fetched


def test_bioformats2raw_series_facts():
    found = ok(IMAGES / "ome-zarr" / "fake-series-2.zarr")
    assert [(s.path, s.name) for s in found.series] == [("0", "series"), ("1", "series 2")]
    for series in found.series:
        assert (series.size_x, series.size_y, series.pyramid_levels, series.pixel_type) == (512, 512, 2, "uint8")
        assert series.physical_size_x is None  # axes without units, no PhysicalSize in the XML


def test_ngff_0_1_implies_tczyx():
    (series,) = ok(IMAGES / "ome-zarr" / "ome-zarr-py_v0.1.zarr").series
    assert (series.axes, series.size_x, series.size_y, series.size_c) == ("TCZYX", 16, 16, 2)
    assert (series.tile_size, series.compression) == ((128, 128), "blosc/lz4")


def test_zarr_v3_ngff_0_5(tmp_path):
    import zarr

    store = tmp_path / "image.ome.zarr"
    root = zarr.open_group(store, mode="w", zarr_format=3)
    axes = [{"name": "c", "type": "channel"}] + [{"name": n, "type": "space", "unit": "micrometer"} for n in "yx"]
    datasets = [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 0.5, 0.25]}]}]
    root.attrs["ome"] = {"version": "0.5", "multiscales": [{"axes": axes, "datasets": datasets, "name": "v3"}]}
    root.create_array("0", shape=(2, 100, 80), chunks=(1, 50, 40), dtype="uint16")
    (series,) = ok(store).series
    assert (series.name, series.axes, series.size_c, series.size_y, series.size_x) == ("v3", "CYX", 2, 100, 80)
    assert (series.tile_size, series.pixel_type, series.compression) == ((40, 50), "uint16", "zstd")
    assert series.physical_size_x.si == pytest.approx(0.25e-6)


def test_a_zarr_key_outside_the_store_is_never_read(tmp_path):
    (tmp_path / "secret").write_text("{}")
    store = tmp_path / "store"
    store.mkdir()
    (store / ".zattrs").symlink_to(tmp_path / "secret")
    keys = DirectoryKeys(store)
    assert keys.get(".zattrs", 100) is None and keys.get("../secret", 100) is None
    with pytest.raises(ByteCapExceeded):
        DirectoryKeys(tmp_path).get("secret", 1)


# ---------------------------------------------------------------------- sources


def test_a_byte_range_source_reads_like_the_file():
    data = (IMAGES / "tiff" / "stardist_img3d.tif").read_bytes()
    ranges: list[tuple[int, int]] = []

    def fetch(offset: int, length: int) -> bytes:
        ranges.append((offset, length))
        return data[offset : offset + length]

    remote = read_source(RangeSource(fetch, len(data), "https://example.org/img3d.tif"))
    local = read_headers(IMAGES / "tiff" / "stardist_img3d.tif")
    assert remote.series == local.series and remote.status == "ok"
    assert (remote.reads, remote.bytes_read) == (len(ranges), sum(min(n, len(data) - o) for o, n in ranges))
    assert read_source(MemorySource(data, "img3d.tif")).series == local.series


def test_read_ahead_makes_a_remote_header_read_a_few_range_requests():
    """Over HTTP every read is a request: with 64 KiB blocks, a 31-directory TIFF, an OME-TIFF, a map and an
    OME-XML take at most 3 each (issue 16's target for remote files), and read the same."""
    for name in ("tiff/stardist_img3d.tif", "tiff/stardist_img2d.tif", "mrc/EMD-3001.map", "ome-xml/tubhiswt.ome.xml"):
        data = (IMAGES / name).read_bytes()
        remote = ReadAhead(RangeSource(lambda offset, length: data[offset : offset + length], len(data), name))
        found = read_source(remote)
        assert found.series == read_headers(IMAGES / name).series
        assert remote.calls <= 3, (name, remote.calls)


def test_results_round_trip_through_json():
    found = ok(IMAGES / "ome-xml" / "tubhiswt.ome.xml")
    assert ImageHeaders.from_dict(json.loads(json.dumps(found.to_dict()))) == found


def test_files_no_reader_knows_are_unsupported(tmp_path):
    (tmp_path / "notes.csv").write_text("a,b\n1,2\n")
    assert read_headers(tmp_path / "notes.csv").status == "unsupported"
    assert read_headers(tmp_path).status == "unsupported"  # a folder that is not a Zarr store
    assert read_headers(tmp_path / "missing.tif").status == "unreadable"
    os.mkfifo(tmp_path / "pipe.tif")
    assert read_headers(tmp_path / "pipe.tif").reason == "not a regular file"  # opening it would wait for a writer


# ---------------------------------------------------------------------- hostile files


def tiff_bytes(tags: dict[int, tuple[int, list[int] | bytes]], tail: bytes = b"") -> bytes:
    """A little-endian classic TIFF with one directory at offset 8 (tags: number → (type, values)), ``tail`` after
    it; a StripOffsets value of -1 points at the tail."""

    def build(tail_at: int) -> bytes:
        data_start = 8 + 2 + 12 * len(tags) + 4
        entries, data = b"", b""
        for tag in sorted(tags):
            kind, values = tags[tag]
            if kind == 2:
                raw = bytes(values) + b"\0"  # type: ignore[arg-type]
            else:
                values = [tail_at if v == -1 else v for v in values]  # type: ignore[union-attr]
                raw = struct.pack(f"<{len(values)}{'H' if kind == 3 else 'I'}", *values)
            count = len(raw) if kind == 2 else len(values)
            if len(raw) <= 4:
                field = raw.ljust(4, b"\0")
            else:
                field = struct.pack("<I", data_start + len(data))
                data += raw + b"\0" * (len(raw) % 2)
            entries += struct.pack("<HHI", tag, kind, count) + field
        return b"II*\0" + struct.pack("<IH", 8, len(tags)) + entries + b"\0\0\0\0" + data

    head = build(0)
    return build(len(head)) + tail


def claimed_tiff(width: int, height: int, description: bytes, tail: bytes = b"", compression: int = 1) -> bytes:
    return tiff_bytes(
        {
            256: (4, [width]),
            257: (4, [height]),
            258: (3, [8]),
            259: (3, [compression]),
            262: (3, [1]),
            270: (2, description),
            273: (4, [-1]),
            277: (3, [1]),
            278: (4, [height]),
            279: (4, [len(tail) or 4_000_000_000]),
        },
        tail,
    )


def test_a_tiff_claiming_10_to_the_14_pixels_is_read_as_a_claim():
    data = claimed_tiff(100_000, 100_000, b'{"shape": [10000, 100000, 100000]}')
    found = read_bytes(data, "huge.tif")
    assert found.status in ("ok", "unreadable")
    if found.status == "ok":
        assert (found.series[0].size_x, found.series[0].size_y) == (100_000, 100_000)
        assert found.warnings  # its pixels are not in the file
    assert found.bytes_read <= HEADER_TARGET


def test_a_deflate_bomb_in_a_tiff_strip_is_never_inflated():
    packer = zlib.compressobj(9)
    zeros = bytes(16 << 20)
    bomb = b"".join(packer.compress(zeros) for _ in range(16)) + packer.flush()  # 256 MiB in ~256 KiB
    found = read_bytes(claimed_tiff(16384, 16384, b"bomb", bomb, compression=8), "bomb.tif")
    assert found.status == "ok" and found.series[0].compression == "adobe_deflate"
    assert found.bytes_read <= HEADER_TARGET


def test_a_gzip_bomb_behind_a_map_header_is_inflated_only_as_far_as_the_header(tmp_path):
    header = (IMAGES / "mrc" / "EMD-3197.map").read_bytes()[:1024]
    path = tmp_path / "bomb.map.gz"
    with gzip.open(path, "wb", compresslevel=9) as handle:
        handle.write(header)
        for _ in range(64):
            handle.write(bytes(16 << 20))  # 1 GiB of zeros after the header
    found = ok(path)
    assert found.series[0].size_x == 20 and found.bytes_read <= 8 * KIB


def test_a_png_bomb_is_refused_by_pillow():
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(1000))) + chunk(b"IEND", b"")
    found = read_bytes(png, "bomb.png")
    assert found.status == "unreadable" and "DecompressionBomb" in found.reason


def test_an_mrc_header_claiming_a_huge_extended_header_and_volume(tmp_path):
    header = bytearray((IMAGES / "mrc" / "EMD-3197.map").read_bytes()[:1024])
    struct.pack_into("<3i", header, 0, 2**31 - 1, 2**31 - 1, 2**31 - 1)
    struct.pack_into("<i4s", header, 92, 2**31 - 1, b"FEI1")
    found = read_bytes(bytes(header), "huge.mrc")
    assert found.status == "ok" and found.series[0].size_x == 2**31 - 1
    assert any("truncated" in w for w in found.warnings) and found.bytes_read == 1024
    struct.pack_into("<i", header, 0, -5)
    assert read_bytes(bytes(header), "negative.mrc").status == "unreadable"


def test_a_100_mb_ome_xml_is_refused_unread(tmp_path):
    path = tmp_path / "bomb.ome.xml"
    xml = (IMAGES / "ome-xml" / "instrument.ome.xml").read_bytes()
    with path.open("wb") as handle:
        handle.write(xml.replace(b"</OME>", b"<!--"))
        handle.write(b" " * (100 << 20))
        handle.write(b"--></OME>")
    found = read_headers(path)
    assert found.status == "unreadable" and "cap" in found.reason
    assert found.bytes_read == 1024  # the first block, to tell the format


def test_a_100_mb_ome_xml_in_a_tiff_is_stopped_at_the_cap(tmp_path):
    path = tmp_path / "bomb.ome.tif"
    xml = (IMAGES / "ome-xml" / "instrument.ome.xml").read_text(encoding="utf-8")
    description = xml.replace("</OME>", "<!--" + " " * (100 << 20) + "--></OME>")
    tifffile.imwrite(path, np.zeros((4, 6), np.uint8), description=description, metadata=None)
    found = read_headers(path)
    assert found.status == "unreadable" and "cap" in found.reason
    assert found.bytes_read <= 32 << 20


def test_xml_entity_declarations_are_refused_before_parsing():
    laughs = b'<?xml version="1.0"?><!DOCTYPE OME [<!ENTITY a "aaaaaaaaaa">' + b"".join(
        f'<!ENTITY a{i} "{"&a;" * 10}">'.encode() for i in range(1, 9)
    )
    found = read_bytes(laughs + b"]><OME>&a8;</OME>", "laughs.ome.xml")
    assert found.status == "unreadable" and "document type" in found.reason
    external = b'<?xml version="1.0"?><!DOCTYPE OME [<!ENTITY x SYSTEM "file:///etc/passwd">]><OME>&x;</OME>'
    assert read_bytes(external, "x.ome.xml").status == "unreadable"


@pytest.mark.parametrize(
    "name", ["tiff/stardist_img2d.tif", "mrc/EMD-3001.map", "ome-xml/tubhiswt.ome.xml", "png/skimage_cell.png"]
)
def test_truncated_files_are_unreadable_or_warned_about(name):
    data = (IMAGES / name).read_bytes()
    for length in (0, 3, 8, 100, 500, 1023, len(data) // 2):
        found = read_bytes(data[:length], Path(name).name)
        if found.status == "ok":
            assert found.warnings or name.endswith(".png"), (length, found)  # Pillow reads a PNG's header only
        else:
            assert found.status in ("unreadable", "unsupported") and found.reason and not found.series


def bit_flipped(data: bytes, rng: random.Random, header: int) -> bytes:
    mutated = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        position = rng.randrange(min(header, len(data))) if rng.random() < 0.8 else rng.randrange(len(data))
        mutated[position] ^= 1 << rng.randrange(8)
    return bytes(mutated)


def test_bit_flips_over_real_files_never_escape_the_sandbox(tmp_path, pool):
    """Fixed-seed bit flips (mostly in the first KiB) over real files, each read in the sandbox: a status and a
    reason every time, never past the byte cap."""
    rng = random.Random(16)
    paths = []
    for name in (
        "tiff/stardist_img3d.tif",
        "mrc/EMD-3001.map",
        "mrc/emd_3197.map.gz",
        "ome-xml/tubhiswt.ome.xml",
        "png/skimage_cell.png",
    ):
        data = (IMAGES / name).read_bytes()
        for index in range(40):
            path = tmp_path / f"{index}-{Path(name).name}"
            path.write_bytes(bit_flipped(data, rng, 2048))
            paths.append(path)
    results = list(pool.read_many(paths))
    assert [r.source for r in results] == [str(p) for p in paths]
    statuses = {r.status for r in results}
    assert statuses <= {"ok", "unreadable", "unsupported"} and "ok" in statuses and "unreadable" in statuses
    for found in results:
        assert found.bytes_read <= pool.caps.max_bytes
        assert (found.status == "ok") == bool(found.series) and (found.status == "ok" or found.reason)
        assert all(min(s.size_x, s.size_y, s.size_z, s.size_c, s.size_t) >= 0 for s in found.series)


def test_a_parse_past_the_time_or_memory_cap_is_killed_and_the_pool_goes_on(tmp_path):
    """An OME-XML under the byte cap whose parse needs more time or memory than allowed: unreadable, and the next
    file is read by a fresh worker."""
    image = (
        '<Image ID="Image:{i}"><Pixels ID="Pixels:{i}" DimensionOrder="XYZCT" Type="uint8" SizeX="1" SizeY="1" '
        'SizeZ="1" SizeC="1" SizeT="1"><Channel ID="Channel:{i}:0"/><TiffData/></Pixels></Image>'
    )
    heavy = tmp_path / "heavy.ome.xml"
    body = "".join(image.format(i=i) for i in range(120_000))
    heavy.write_text(f'<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">{body}</OME>', encoding="utf-8")
    with HeaderPool(workers=1, caps=HeaderCaps(seconds=3)) as slow:
        stopped = slow.read(heavy)
        after = slow.read(IMAGES / "mrc" / "EMD-3197.map")
        assert slow.sandbox.killed == 1 and slow.sandbox.started == 2
    assert stopped.status == "unreadable" and stopped.reason == "it ran longer than 3 s; the worker was killed"
    assert after.status == "ok"
    with HeaderPool(workers=1, caps=HeaderCaps(seconds=60, memory_bytes=600 << 20)) as small:
        stopped = small.read(heavy)
        assert small.read(IMAGES / "mrc" / "EMD-3197.map").status == "ok"
        assert small.sandbox.killed == 1 and small.sandbox.started == 2  # the worker that ran out is replaced
    assert stopped.status == "unreadable" and "out of memory" in stopped.reason


# ---------------------------------------------------------------------- the sandbox


@pytest.fixture
def sandbox():
    with SandboxPool(workers=1, limits=Limits(seconds=2, memory_bytes=512 << 20, max_result_bytes=1 << 20)) as pool:
        yield pool


def test_sandbox_reuses_its_worker(sandbox):
    assert [sandbox.call("math:factorial", n) for n in range(5)] == [1, 1, 2, 6, 24]
    assert (sandbox.started, sandbox.killed) == (1, 0)


def test_sandbox_kills_a_call_past_the_time_limit_and_replaces_the_worker(sandbox):
    with pytest.raises(SandboxFailure) as failure:
        sandbox.call("time:sleep", 30)
    assert failure.value.kind == "timeout" and "longer than 2 s" in failure.value.reason
    assert sandbox.call("math:factorial", 3) == 6
    assert (sandbox.started, sandbox.killed) == (2, 1)


def test_sandbox_caps_memory(sandbox):
    with pytest.raises(SandboxFailure) as failure:
        sandbox.call("builtins:bytearray", 1 << 30)
    assert failure.value.kind == "memory"
    assert sandbox.call("math:factorial", 4) == 24


def test_sandbox_survives_a_crash_and_an_oversized_answer(sandbox):
    with pytest.raises(SandboxFailure) as crashed:
        sandbox.call("os:abort")
    assert crashed.value.kind == "crashed" and "SIGABRT" in crashed.value.reason
    with pytest.raises(SandboxFailure) as large:
        sandbox.call("operator:mul", "x", 2 << 20)
    assert large.value.kind == "too_large"
    with pytest.raises(SandboxFailure) as failed:
        sandbox.call("json:loads", "{")
    assert failed.value.kind == "error" and "JSONDecodeError" in failed.value.reason
    assert sandbox.call("math:factorial", 5) == 120


def test_sandbox_workers_cannot_write_files(sandbox, tmp_path):
    with pytest.raises(SandboxFailure):
        sandbox.call("pathlib:Path.write_text", str(tmp_path / "x"), "data")
    assert not (tmp_path / "x").exists() or (tmp_path / "x").stat().st_size == 0


def test_a_busy_worker_stops_when_its_caller_dies(tmp_path):
    """The caller is killed while its worker computes: the worker stops at its CPU backstop, twice the time limit."""
    script = (
        "import os, sys, threading, time\n"
        "from catalog.sandbox import Limits, SandboxPool\n"
        "pool = SandboxPool(limits=Limits(seconds=1))\n"
        "threading.Thread(target=pool.call, args=('math:factorial', 10**9), daemon=True).start()\n"
        "time.sleep(1)\n"
        "tasks = f'/proc/{os.getpid()}/task'\n"
        "print(' '.join(open(f'{tasks}/{t}/children').read() for t in os.listdir(tasks)), flush=True)\n"
        "os._exit(0)\n"
    )
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=60)
    (pid,) = map(int, child.stdout.split())
    deadline = time.monotonic() + 20
    while Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower():
        assert time.monotonic() < deadline, "the orphaned worker is still running"
        time.sleep(0.2)


def test_sandbox_map_keeps_order_and_reports_failures_in_place():
    with SandboxPool(workers=2, limits=Limits(seconds=2)) as pool:
        outcomes = list(pool.map("math:sqrt", [(4,), (-1,), (9,)]))
    assert outcomes[0] == 2.0 and outcomes[2] == 3.0 and isinstance(outcomes[1], SandboxFailure)


# ---------------------------------------------------------------------- bia headers


def bia(*args: str):
    return CliRunner().invoke(cli, ["headers", "--workers", "1", *args], obj={}, catch_exceptions=False)


def test_bia_headers_prints_what_the_files_say():
    result = bia(str(IMAGES / "ome-xml" / "tubhiswt.ome.xml"), str(IMAGES / "mrc" / "EMD-3197.map"))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"{IMAGES / 'ome-xml' / 'tubhiswt.ome.xml'}: ome-xml, 1 image, 14,284 bytes read in 2 reads"
    assert "  image 0 'tubhiswt': x 512, y 512, z 1, c 2, t 20 (CTZYX), uint8" in lines
    assert any(
        line.startswith("    instrument: Nikon Eclipse TE300 (Inverted); objective Nikon S Fluor 100x NA 1.4 Oil")
        for line in lines
    )
    assert "    pixel size: 11.4 Å x 11.4 Å x 11.4 Å" in lines


def test_bia_headers_json_reads_folders_and_marks_bad_files(tmp_path):
    (tmp_path / "broken.tif").write_bytes(b"II*\0" + b"\xff" * 20)
    (tmp_path / "notes.txt").write_text("not an image")
    result = bia("--json", str(IMAGES / "ome-zarr"), str(tmp_path))
    assert result.exit_code == 1
    found = {Path(item["source"]).name: item for item in json.loads(result.output)}
    assert set(found) == {"bia_hcs.ome.zarr", "fake-series-2.zarr", "ome-zarr-py_v0.1.zarr", "broken.tif", "notes.txt"}
    assert len(found["bia_hcs.ome.zarr"]["series"]) == 8 and found["bia_hcs.ome.zarr"]["status"] == "ok"
    assert found["broken.tif"]["status"] == "unreadable" and found["broken.tif"]["reason"]
    assert found["notes.txt"]["status"] == "unsupported"


def test_a_stored_file_whose_key_has_no_extension_is_told_by_its_name(tmp_path, pool):
    """A staged upload is stored under a key without the file's name: the name the job carries tells the format of
    a map whose header lacks the ``MAP`` stamp (older CCP4 writers leave it blank)."""
    from catalog.file_store_local import LocalFileStore
    from loaders.image_headers.stored import read_stored

    data = bytearray((IMAGES / "mrc" / "EMD-3197.map").read_bytes())
    data[208:212] = b"\0\0\0\0"
    (tmp_path / "staging" / "sub1").mkdir(parents=True)
    (tmp_path / "staging" / "sub1" / "f0001").write_bytes(bytes(data))
    store = LocalFileStore(tmp_path)
    assert read_stored(pool, store, "staging/sub1/f0001").status == "unsupported"
    found = read_stored(pool, store, "staging/sub1/f0001", name="maps/emd_3197.map")
    assert found.status == "ok" and found.series[0].size_z == 20


def test_a_sandboxed_reader_inherits_no_credential(monkeypatch):
    """A process that parses untrusted bytes gets none of the catalog's settings (S3 keys, the database URL) nor a
    cloud SDK's credentials."""
    monkeypatch.setenv("BIA_S3_SECRET_KEY", "s3cret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cret")
    monkeypatch.setenv("HOME_PAGE_COLOUR", "kept")
    with SandboxPool(1, Limits(seconds=10)) as sandbox:
        seen = sandbox.call("os:getenv", "BIA_S3_SECRET_KEY"), sandbox.call("os:getenv", "AWS_SECRET_ACCESS_KEY")
        kept = sandbox.call("os:getenv", "HOME_PAGE_COLOUR")
    assert seen == (None, None) and kept == "kept"
