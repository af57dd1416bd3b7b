"""Header readers of vendor formats (Zeiss CZI, Nikon ND2, Leica LIF; the ``images-vendor`` extra) against the facts
of real files (tests/data/images/SOURCES.txt, "Vendor formats"), each fact also read here with the library's own
API; that they read headers and never pixels; hostile variants; and the files' fate without the extra."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

from loaders.image_headers import FileSource, ImageHeaders, RangeSource, read_bytes, read_headers, read_source
from loaders.image_headers.extras import VENDOR_EXTRA
from loaders.image_headers.pool import HeaderCaps, HeaderPool

VENDOR = Path(__file__).resolve().parent / "data" / "images" / "vendor"
CZI_RGB = VENDOR / "RGB-multichannel.czi"
CZI_TILES = VENDOR / "tiles.czi"
CZI_SCENES = VENDOR / "two_scenes.czi"
ND2 = VENDOR / "cluster.nd2"
LIF = VENDOR / "LeicaLASX_wavelength-sweep_example.lif"
ALL = (CZI_RGB, CZI_TILES, CZI_SCENES, ND2, LIF)
NOT_INSTALLED = f"the {VENDOR_EXTRA} extra is not installed"


def library(name: str):
    return pytest.importorskip(name, reason=f"{NOT_INSTALLED} ({name})")


@pytest.fixture
def czifile():
    return library("czifile")


@pytest.fixture
def nd2():
    return library("nd2")


@pytest.fixture
def liffile():
    return library("liffile")


def ok(path: Path, **kwargs) -> ImageHeaders:
    found = read_headers(path, **kwargs)
    assert found.status == "ok", (found.reason, found.warnings)
    return found


# ---------------------------------------------------------------------- CZI


def test_czi_rgb_multichannel_facts(czifile):
    with czifile.CziFile(CZI_RGB) as czi:
        shape, axes, dtype = czi.shape, czi.axes, czi.dtype
    assert (shape, axes, dtype.name) == ((1, 7, 81, 147, 3), "SCYX0", "uint8")
    found = ok(CZI_RGB)
    assert found.format == "czi" and len(found.series) == 1
    image = found.series[0]
    assert (image.name, image.axes, image.pixel_type) == ("ScanRegion0", "CYXS", "uint8")
    assert (image.size_x, image.size_y, image.size_z, image.size_c, image.size_t) == (147, 81, 1, 7 * 3, 1)
    assert image.physical_size_x.si == image.physical_size_y.si == 2.9584899946757142e-06
    assert image.physical_size_x.unit == "m" and image.physical_size_z is None
    assert [c.name for c in image.channels] == ["Bright", "Pol_0", "Pol_15", "Pol_30", "Pol_45", "Pol_60", "Pol_75"]
    first = image.channels[0]
    assert (first.fluorophore, first.acquisition_mode, first.illumination_type, first.contrast_method) == (
        "TL Brightfield",
        "WideField",
        "Transmitted",
        "Brightfield",
    )
    assert {c.samples_per_pixel for c in image.channels} == {3}
    instrument = image.instrument
    assert (instrument.microscope_model, instrument.microscope_type) == ("Axio Scan.Z1", "Upright")
    objective = instrument.objective
    assert (objective.model, objective.lens_na, objective.nominal_magnification, objective.immersion) == (
        "EC Plan-Neofluar 40x/0.90 Pol M27",
        0.9,
        40.0,
        "Air",
    )
    assert [d.model for d in instrument.detectors] == ["MILCamHitachi_FD202SCL"]
    assert instrument.software == "ZEN 3.1 (blue edition) 3.1.0.0000"
    assert image.acquisition_date == "2019-12-08T20:28:57.949441+00:00"


def test_czi_mosaic_merges_its_tiles(czifile):
    with czifile.CziFile(CZI_TILES) as czi:
        shape, axes, tiles = czi.shape, czi.axes, len(czi.filtered_subblock_directory)
    assert (shape, axes, tiles) == ((1, 1, 2, 1, 1, 512, 510, 1), "BVCTZYX0", 8)
    image = ok(CZI_TILES).series[0]
    assert (image.axes, image.size_x, image.size_y, image.size_c, image.pixel_type) == ("BVCTZYX", 510, 512, 2, "uint8")
    assert image.physical_size_x.si == 8.3026582096383912e-07  # as written: 8.3026582096383912e-007
    assert image.physical_size_z is None  # Scaling Z is 0: not sampled
    assert [c.name for c in image.channels] == ["Ch1", "T PMT"]
    assert image.channels[0].fluorophore == "ATTO 488" and image.channels[0].emission_wavelength.si == 571e-9
    objective = image.instrument.objective
    assert (objective.model, objective.lens_na, objective.immersion) == (
        "C-Apochromat 40x/1.2 W Korr FCS M27",
        1.2000000000000002,
        "Water",
    )
    assert image.acquisition_date is None


def test_czi_scenes_are_series(czifile):
    """The synthetic file written with pylibCZIrw: scene 0 is 40 x 30, scene 1 24 x 16, each 2 channels x 3 planes."""
    with czifile.CziFile(CZI_SCENES) as czi:
        assert czi.axes.startswith("S") and czi.shape[0] == 2  # czifile merges the scenes into one array
    found = ok(CZI_SCENES)
    sizes = [(s.size_x, s.size_y, s.size_z, s.size_c, s.size_t) for s in found.series]
    assert sizes == [(40, 30, 3, 2, 1), (24, 16, 3, 2, 1)]
    for image in found.series:
        assert image.pixel_type == "uint16" and "S" not in image.axes
        assert (image.physical_size_x.si, image.physical_size_y.si, image.physical_size_z.si) == (5e-07, 5e-07, 2e-06)
        assert [c.name for c in image.channels] == ["DAPI", "GFP"]
        assert image.instrument.software == "pylibCZIrw 6.1.0"


def test_czi_metadata_with_entity_declarations_is_refused(czifile):
    """An entity declaration put in front of the metadata XML of the scenes file, two elements emptied to make room
    and spaces after the root element to keep every offset in the file right."""
    data = CZI_SCENES.read_bytes()
    start = data.index(b"<ImageDocument>")
    end = data.index(b"</ImageDocument>") + len(b"</ImageDocument>")
    xml = data[start:end].replace(b"<Title>two scenes</Title>", b"<Title/>")
    xml = xml.replace(b"<Comment>pylibCZIrw generated</Comment>", b"<Comment/>")
    hostile = (b'<!DOCTYPE a [<!ENTITY e "x">]>' + xml).ljust(end - start)
    assert len(hostile) == end - start
    found = read_bytes(data[:start] + hostile + data[end:], "x.czi")
    assert found.status == "unreadable" and "document type" in found.reason


# ---------------------------------------------------------------------- ND2


def test_nd2_cluster_facts(nd2):
    with nd2.ND2File(ND2) as handle:
        sizes, dtype, voxel = handle.sizes, handle.dtype, handle.voxel_size()
        channels = [(c.channel.name, c.channel.excitationLambdaNm, c.channel.emissionLambdaNm) for c in handle.metadata.channels]
        microscope = handle.metadata.channels[0].microscope
    assert sizes == {"T": 3, "Z": 10, "C": 2, "Y": 31, "X": 38} and dtype.name == "uint16"
    found = ok(ND2)
    assert found.format == "nd2" and len(found.series) == 1
    image = found.series[0]
    assert (image.axes, image.size_x, image.size_y, image.size_z, image.size_c, image.size_t) == ("TZCYX", 38, 31, 10, 2, 3)
    assert image.pixel_type == "uint16"
    assert (image.physical_size_x.value, image.physical_size_x.unit) == (voxel.x, "µm") == (0.16780898323268245, "µm")
    assert image.physical_size_z.si == pytest.approx(0.5e-6) and voxel.z == 0.5
    assert (
        [(c.name, c.excitation_wavelength.value, c.emission_wavelength.value) for c in image.channels]
        == channels
        == [("5-FAM/pH 9.0", 488.0, 525.0), ("FM 4-64/2% CHAPS", 561.0, 700.0)]
    )
    assert {c.acquisition_mode for c in image.channels} == {"LaserScanningConfocalMicroscopy"}
    objective = image.instrument.objective
    assert (
        (objective.model, objective.nominal_magnification, objective.lens_na)
        == (
            microscope.objectiveName,
            microscope.objectiveMagnification,
            microscope.objectiveNumericalAperture,
        )
        == ("Plan Apo λ 60x", 60.0, 0.95)
    )
    assert [d.model for d in image.instrument.detectors] == ["Nikon A1"]
    assert image.acquisition_date == "2014-06-18T13:55:23.392019+00:00"


# ---------------------------------------------------------------------- LIF


def test_lif_wavelength_sweep_facts(liffile):
    with liffile.LifFile(LIF) as lif:
        facts = [(i.name, "".join(i.dims), i.shape, str(i.timestamps[0])) for i in lif.images]
    assert facts == [
        ("x_y_lambdaEmi", "λYX", (20, 64, 64), "2021-01-29T14:33:36.935"),
        ("x_y_lambdaExc", "ΛYX", (15, 64, 64), "2021-01-29T14:38:05.825"),
        ("x_y_z_t_lambdaEmi", "TλZYX", (2, 10, 11, 64, 64), "2021-01-29T14:43:39.392"),
    ]
    found = ok(LIF)
    assert found.format == "lif"
    assert [(s.name, s.axes, s.size_x, s.size_y, s.size_z, s.size_t) for s in found.series] == [
        ("x_y_lambdaEmi", "λYX", 64, 64, 20, 1),
        ("x_y_lambdaExc", "ΛYX", 64, 64, 15, 1),
        ("x_y_z_t_lambdaEmi", "TλZYX", 64, 64, 110, 2),
    ]
    assert [s.acquisition_date for s in found.series] == [f"{fact[3]}000+00:00" for fact in facts]
    assert any("emission wavelength sweep, 20" in w for w in found.warnings)
    last = found.series[2]
    # readlif gives 9.54067119984844 px/µm in x and y, 1.9991895285651198 in z, 0.01235941169200346 frames/s
    assert last.physical_size_x.si == pytest.approx(1e-6 / 9.54067119984844)
    assert last.physical_size_y.si == last.physical_size_x.si and last.physical_size_x.unit == "m"
    assert last.physical_size_z.si == pytest.approx(1e-6 / 1.9991895285651198)
    assert last.time_increment.si == pytest.approx(1 / 0.01235941169200346)
    assert found.series[0].physical_size_z is None and found.series[0].time_increment is None
    instrument = last.instrument
    assert (instrument.microscope_model, instrument.microscope_type) == ("DMI6000B-CS", "Inverted")
    objective = instrument.objective
    assert (objective.model, objective.nominal_magnification, objective.lens_na, objective.immersion) == (
        "HC PL APO CS2    63x/1.30 GLYC",
        63.0,
        1.3,
        "GLYC",
    )
    assert [(d.model, d.type) for d in instrument.detectors] == [("HyD 1", "HyD")]
    assert all(s.pixel_type == "uint8" and s.size_c == 1 for s in found.series)


# ---------------------------------------------------------------------- headers only, bounded, from anywhere


class RecordingSource:
    """A file read through :class:`FileSource`, each read's range kept."""

    def __init__(self, path: Path) -> None:
        self.file = FileSource(path)
        self.name, self.size = self.file.name, self.file.size
        self.ranges: list[tuple[int, int]] = []

    def read(self, offset: int, length: int) -> bytes:
        self.ranges.append((offset, offset + length))
        return self.file.read(offset, length)


def pixel_ranges(path: Path) -> list[tuple[int, int]]:
    """Where the pixels are, found with the library's own API."""
    if path.suffix == ".czi":
        import czifile

        with czifile.CziFile(path) as czi:
            segments = [entry.data_segment() for entry in czi.filtered_subblock_directory]
            return [(s.data_offset, s.data_offset + s.data_size) for s in segments]
    if path.suffix == ".lif":
        import liffile

        with liffile.LifFile(path) as lif:
            return [(b.offset, b.offset + b.size) for b in lif.memory_blocks.values() if b.size]
    from nd2._parse._chunk_decode import get_chunkmap

    with path.open("rb") as handle:
        chunks = get_chunkmap(handle)
    return [(offset, offset + size) for name, (offset, size) in chunks.items() if name.startswith(b"ImageDataSeq")]


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_headers_are_read_without_touching_a_pixel(path, czifile, nd2, liffile):
    pixels = pixel_ranges(path)
    assert pixels and sum(end - start for start, end in pixels) > 10_000
    source = RecordingSource(path)
    found = read_source(source)
    assert found.status == "ok" and found.bytes_read < path.stat().st_size
    fetched = [r for r in source.ranges if r != (0, 1024)]  # the first KiB, fetched to tell the format, aside
    touched = [(r, p) for r in fetched for p in pixels if r[0] < p[1] and p[0] < r[1]]
    assert not touched, touched[:3]


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_a_byte_range_source_reads_like_the_file(path, czifile, nd2, liffile):
    data = path.read_bytes()
    calls = []

    def ranged(offset: int, length: int) -> bytes:
        calls.append(length)
        return data[offset : offset + length]

    remote = read_source(RangeSource(ranged, len(data), str(path)))
    assert remote.to_dict() == ok(path).to_dict() and len(calls) == remote.reads


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_a_read_over_the_byte_cap_is_unreadable(path, czifile, nd2, liffile):
    found = read_headers(path, max_bytes=2048)
    assert found.status == "unreadable" and "cap" in found.reason and found.bytes_read <= 2048


# ---------------------------------------------------------------------- hostile files


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_truncated_files_are_unreadable_or_warned_about(path, czifile, nd2, liffile):
    data = path.read_bytes()
    for length in (0, 13, 100, 1024, 20_000, len(data) // 2, len(data) - 2000):
        found = read_bytes(data[:length], path.name)
        if found.status == "ok":
            assert any("truncated" in w for w in found.warnings), (length, found.warnings)
        else:
            assert found.status in ("unreadable", "unsupported") and found.reason and not found.series


def test_bit_flips_over_vendor_files_never_escape_the_sandbox(tmp_path, czifile, nd2, liffile):
    """Fixed-seed bit flips, 30 per file (mostly in the first 2 KiB), each read in the sandbox: a status and a
    reason every time, never past the byte cap."""
    rng = random.Random(16)
    paths = []
    for source in ALL:
        data = source.read_bytes()
        for index in range(30):
            mutated = bytearray(data)
            for _ in range(rng.randint(1, 8)):
                position = rng.randrange(2048) if rng.random() < 0.8 else rng.randrange(len(data))
                mutated[position] ^= 1 << rng.randrange(8)
            path = tmp_path / f"{index}-{source.name}"
            path.write_bytes(bytes(mutated))
            paths.append(path)
    with HeaderPool(workers=2, caps=HeaderCaps(seconds=20)) as pool:
        results = list(pool.read_many(paths))
    assert [r.source for r in results] == [str(p) for p in paths]
    statuses = {r.status for r in results}
    assert statuses <= {"ok", "unreadable", "unsupported"} and {"ok", "unreadable"} <= statuses
    for found in results:
        assert found.bytes_read <= pool.caps.max_bytes
        assert (found.status == "ok") == bool(found.series) and (found.status == "ok" or found.reason)
        assert all(min(s.size_x, s.size_y, s.size_z, s.size_c, s.size_t) >= 0 for s in found.series)


# ---------------------------------------------------------------------- without the extra


@pytest.mark.parametrize(
    "path, package, format_name", [(CZI_RGB, "czifile", "czi"), (ND2, "nd2", "nd2"), (LIF, "liffile", "lif")]
)
def test_without_the_extra_a_vendor_file_is_unsupported_naming_the_extra(path, package, format_name, monkeypatch):
    monkeypatch.setitem(sys.modules, package, None)  # `import package` now raises ImportError, installed or not
    found = read_headers(path)
    assert (found.status, found.format, found.series) == ("unsupported", format_name, [])
    assert package in found.reason and f"bia-catalog[images,{VENDOR_EXTRA}]" in found.reason
