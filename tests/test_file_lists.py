"""Streaming file-list readers: every sample list, the awkward encodings and every row defect, bounded memory."""

from __future__ import annotations

import io
import itertools
import json
import tracemalloc
from pathlib import Path

import pytest

from catalog.errors import CatalogError
from loaders.file_lists import (
    FileListError,
    FileRow,
    check_file_list,
    detect_format,
    iter_file_list,
    normalise_path,
    write_tsv,
)

DATA = Path(__file__).parent / "data" / "file_lists"
JSON_SAMPLES = sorted(p.name for p in DATA.glob("*.json") if p.stem not in ("not_array", "truncated"))


def rows_of(name: str) -> list[FileRow]:
    return list(iter_file_list(DATA / name))


# ----------------------------------------------------------------------------- the samples


@pytest.mark.parametrize("name", JSON_SAMPLES)
def test_every_json_sample_matches_its_content(name):
    entries = json.loads((DATA / name).read_text())
    rows = rows_of(name)
    assert len(rows) == len(entries)
    for index, (row, entry) in enumerate(zip(rows, entries, strict=True)):
        assert row.line == index + 1
        assert row.path == entry["path"]
        assert row.size == entry.get("size")
        assert row.kind == entry.get("type", "file")
        assert row.attributes == {a["name"]: a["value"] for a in entry.get("attributes", [])}
    report = check_file_list(DATA / name)
    assert report.valid and report.errors == [] and report.format == "json"
    assert report.rows == len(entries) and report.duplicates == 0
    assert report.total_size == sum(e.get("size", 0) for e in entries)


def test_bbc024_images_and_directory_entries():
    first = rows_of("bbc024_images.json")[0]
    assert first == FileRow(
        1,
        "BBBC024/BBBC024_v1_c75_lowSNR_images_TIFF/image-final_0012.tif",
        50872008,
        {"clustering probability": "75%", "SNR": "low"},
    )
    report = check_file_list(DATA / "file_list_annotations_and_images.json")
    assert (report.files, report.directories) == (3, 1)
    assert report.columns == ["Comment", "AnnotationsIn", "Source image", "metadata1"]
    assert rows_of("file_list_annotations_1.json")[0].kind == "directory"


def test_ro_crate_file_list():
    rows = rows_of("ro_crate_file_list.tsv")
    assert [r.line for r in rows] == [2, 3, 4, 5, 6, 7]
    assert all(r.size == 12 for r in rows)
    assert rows[0].path == "data/particle_lists/TS_026_cyto_ribosomes.csv"
    assert rows[0].attributes == {  # empty associated_specimen / associated_protocol left out
        "dataset": "#Annotation%20Dataset",
        "type": "http://bia/AnnotationData",
        "label": "TS_026 ribosome annotations defocus data",
        "source_image_label": "TS_026 tomogram",
        "associated_annotation_method": "#Annotation%20Method",
    }
    assert rows[2].attributes["source_image_label"] == "['TS_026_001_-0.0', 'TS_026_002_2.0', 'TS_026_003_-2.0']"
    report = check_file_list(DATA / "ro_crate_file_list.tsv")
    assert report.valid and report.total_size == 72 and report.columns[:3] == ["dataset", "type", "label"]


def test_pagetab_tsv_and_json_file_lists_of_the_specification():
    tsv, js = rows_of("pagetab_experiment.tsv"), rows_of("pagetab_experiment.json")
    assert (
        [r.path for r in tsv]
        == [r.path for r in js]
        == [
            "Plate1/A01/cell01.tiff",
            "Plate1/A02/cell02.tiff",
            "Plate2/B01/cell03.tiff",
            "Plate3/C01/cell05.tiff",
        ]
    )
    assert tsv[0] == FileRow(2, "Plate1/A01/cell01.tiff", None, {"Plate": "Plate 1", "Well": "A01"})
    assert js[3] == FileRow(4, "Plate3/C01/cell05.tiff", None, {"Plate": "Plate 3", "Well": "C01"})
    assert check_file_list(DATA / "pagetab_experiment.tsv").columns == ["Plate", "Well"]


# ----------------------------------------------------------------------------- encodings and quoting


def test_csv_quoting_crlf_and_empty_values():
    rows = rows_of("quoted.csv")
    assert [r.line for r in rows] == [2, 3, 4, 6]  # the quoted line break makes row 4 span lines 4-5
    assert rows[0].attributes == {"Description": "Cells, fixed", "Channel": "DAPI"}
    assert rows[1] == FileRow(3, "plate1/b.tif", 200, {"Description": 'two\tcolumns "in" one'})
    assert rows[2] == FileRow(4, "plate1/c d.tif", None, {"Description": "first line\r\nsecond line", "Channel": "GFP"})
    assert rows[3].size == 5


def test_bom_crlf_and_unicode_names_and_values():
    rows = rows_of("bom_crlf_unicode.tsv")
    assert rows == [
        FileRow(2, "données/µm_01.tif", None, {"Größe": "1 µm", "濃度": "10 µM"}),
        FileRow(3, "données/µm_02.tif", None, {"Échantillon": "embryon №2"}),
    ]
    report = check_file_list(DATA / "bom_crlf_unicode.tsv")
    assert report.columns == ["Größe", "Échantillon", "濃度"] and report.rows == 2


def test_not_utf8_names_the_line(tmp_path):
    path = tmp_path / "latin1.tsv"
    path.write_bytes("path\tPlate\na.tif\tP1\nb\xe9.tif\tP2\n".encode("latin-1"))
    with pytest.raises(FileListError) as failure:
        list(iter_file_list(path))
    assert failure.value.errors[0]["line"] == 3 and "UTF-8" in failure.value.message
    (tmp_path / "utf16.tsv").write_bytes("path\na.tif\n".encode("utf-16"))
    with pytest.raises(FileListError, match="UTF-16"):
        list(iter_file_list(tmp_path / "utf16.tsv"))


def test_an_open_quote_names_the_line_where_the_row_starts(tmp_path):
    path = tmp_path / "open.csv"
    path.write_text('path,Note\na.tif,fine\nb.tif,"never closed\nc.tif,x\n')
    with pytest.raises(FileListError) as failure:
        list(iter_file_list(path))
    assert failure.value.errors[0]["line"] == 3 and "quote" in failure.value.message


def test_classic_mac_line_ends(tmp_path):
    path = tmp_path / "mac.csv"
    path.write_bytes(b"Files,Plate\ra.tif,P1\rb.tif,P2\r")
    rows = [(r.line, r.path, r.attributes) for r in iter_file_list(path)]
    assert rows == [(2, "a.tif", {"Plate": "P1"}), (3, "b.tif", {"Plate": "P2"})]


# ----------------------------------------------------------------------------- defects


def test_row_defects_are_collected_with_file_line_and_field():
    report = check_file_list(DATA / "bad_rows.tsv")
    found = {(e["line"], e["field"]) for e in report.errors}
    assert found == {
        (3, None),  # too many columns
        (4, "path"),  # ../etc/passwd
        (5, "path"),  # /abs/c.tif
        (6, "size"),  # -5
        (7, "size"),  # 12kB
        (8, "path"),  # duplicate of line 2
        (9, None),  # too few columns
        (10, "path"),  # backslash
    }
    assert all(e["file"] == "bad_rows.tsv" and e["message"] for e in report.errors)
    by_line = {e["line"]: e for e in report.errors}
    assert by_line[3]["message"] == "row has 4 columns, the header (line 1) has 3"
    assert "'..'" in by_line[4]["message"] and by_line[4]["value"] == "../etc/passwd"
    assert "absolute" in by_line[5]["message"]
    assert "negative" in by_line[6]["message"] and "whole number" in by_line[7]["message"]
    assert by_line[8]["other_line"] == 2 and by_line[8]["value"] == "ok/a.tif"
    assert by_line[8]["message"] == "duplicate path 'ok/a.tif', first on line 2"
    assert [e["line"] for e in report.errors] == sorted(e["line"] for e in report.errors)
    assert not report.valid and report.error_count == 8 and report.duplicates == 1
    assert (report.rows, report.files, report.total_size) == (10, 3, 60)


def test_the_iterator_stops_at_the_first_defect():
    rows = []
    with pytest.raises(FileListError) as failure:
        for row in iter_file_list(DATA / "bad_rows.tsv"):
            rows.append(row)
    assert [r.line for r in rows] == [2]
    error = failure.value
    assert isinstance(error, CatalogError) and error.status == 422
    assert error.errors == [{"file": "bad_rows.tsv", "line": 3, "field": None, "message": error.errors[0]["message"]}]
    assert "bad_rows.tsv, line 3" in error.message


def test_error_list_is_capped():
    report = check_file_list(DATA / "bad_rows.tsv", max_errors=3)
    assert [e["line"] for e in report.errors] == [3, 4, 5, None]
    assert "5 more" in report.errors[-1]["message"]


def test_missing_path_column_names_the_header():
    with pytest.raises(FileListError) as failure:
        check_file_list(DATA / "no_path_column.csv")
    error = failure.value.errors[0]
    assert (error["line"], error["field"]) == (1, "header")
    assert "no path column" in error["message"] and "name, size, Plate" in error["message"]


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        ("path\tWell\tWell\na\tA\tB\n", "Well", "twice"),
        ("path\t\tWell\na\tx\tA\n", "header", "no name"),
    ],
)
def test_bad_headers(tmp_path, text, field, words):
    (tmp_path / "h.tsv").write_text(text)
    with pytest.raises(FileListError, match=words) as failure:
        list(iter_file_list(tmp_path / "h.tsv"))
    assert failure.value.errors[0]["field"] == field and failure.value.errors[0]["line"] == 1


def test_json_that_is_not_an_array():
    with pytest.raises(FileListError, match="array") as failure:
        list(iter_file_list(DATA / "not_array.json"))
    assert failure.value.errors[0]["line"] == 1


def test_truncated_json_is_an_error_not_a_partial_read():
    rows = []
    with pytest.raises(FileListError, match="complete") as failure:
        for row in iter_file_list(DATA / "truncated.json"):
            rows.append(row)
    assert len(rows) == 33 and failure.value.errors[0]["line"] == 34
    with pytest.raises(FileListError):
        check_file_list(DATA / "truncated.json")


def test_json_entry_defects(tmp_path):
    entries = [
        {"filePath": "a/b.tif", "fileName": "b.tif", "size": "12"},  # 1 fine: filePath wins, size as text
        {"fileName": "c.tif", "attributes": [{"name": "n", "value": 3}, {"name": "e", "value": None}]},  # 2 fine
        "d.tif",  # 3 not an object
        {"size": 1},  # 4 no path
        {"path": "e.tif", "type": "link"},  # 5 bad type
        {"path": "f.tif", "size": 1.5},  # 6 not whole
        {"path": "g.tif", "size": -1},  # 7 negative
        {"path": "h.tif", "attributes": [{"name": "x", "value": "1"}, {"name": "x", "value": "2"}]},  # 8 twice
        {"path": "i.tif", "attributes": [{"value": "1"}]},  # 9 no name
        {"path": "j/", "type": "directory"},  # 10 fine
        {"path": "./k.tif", "attributes": {"x": 1}},  # 11 attributes not a list
    ]
    path = tmp_path / "list.json"
    path.write_text(json.dumps(entries))
    report = check_file_list(path)
    assert [(e["line"], e["field"]) for e in report.errors] == [
        (3, None),
        (4, "path"),
        (5, "type"),
        (6, "size"),
        (7, "size"),
        (8, "x"),
        (9, "attributes"),
        (11, "attributes"),
    ]
    assert "negative" in report.errors[4]["message"]
    assert [(r.path, r.size, r.kind, r.attributes) for r in itertools.islice(iter_file_list(path), 2)] == [
        ("a/b.tif", 12, "file", {}),
        ("c.tif", None, "file", {"n": "3"}),
    ]
    assert (report.rows, report.files, report.directories, report.columns) == (11, 2, 1, ["n"])


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("./a/b.tif", ("a/b.tif", "file")),
        ("a/b/", ("a/b", "directory")),
        (".hidden/x", (".hidden/x", "file")),
        ("a:b.tif", ("a:b.tif", "file")),
    ],
)
def test_paths_are_normalised(raw, expected):
    assert normalise_path(raw) == expected


@pytest.mark.parametrize("raw", ["", "./", "/abs", "C:/x", "a/../b", "..", "a//b", "a/./b", "a\\b", "a\x00b", "a\nb", "x" * 5000])
def test_bad_paths_are_rejected(raw):
    with pytest.raises(ValueError):
        normalise_path(raw)


def test_empty_unreadable_and_header_only(tmp_path):
    (tmp_path / "empty.tsv").write_bytes(b"\n\n")
    with pytest.raises(FileListError, match="empty"):
        list(iter_file_list(tmp_path / "empty.tsv"))
    with pytest.raises(FileListError, match="cannot read") as failure:
        list(iter_file_list(tmp_path / "missing.tsv"))
    assert failure.value.errors[0]["file"] == "missing.tsv"
    (tmp_path / "header.tsv").write_text("Files\tPlate\n")
    report = check_file_list(tmp_path / "header.tsv")
    assert report.valid and report.rows == 0 and report.columns == ["Plate"]


# ----------------------------------------------------------------------------- formats and streams


@pytest.mark.parametrize(
    ("name", "head", "fmt"),
    [
        ("x.json", b"garbage", "json"),
        ("x.txt", b"\xef\xbb\xbf  [{}]", "json"),
        ("x.csv", b"path,size\n", "csv"),
        ("x.tsv", b"path,size\n", "tsv"),
        ("upload", b"path,size\na,1\n", "csv"),
        ("upload", b"Files\tPlate,Well\n", "tsv"),
        ("upload", b"Files\n", "tsv"),
    ],
)
def test_detect_format(name, head, fmt):
    assert detect_format(name, head) == fmt


class _Trickle(io.RawIOBase):
    """A non-seekable stream that returns at most 7 bytes per read."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self._data.read(min(7, len(buffer)))
        buffer[: len(chunk)] = chunk
        return len(chunk)


@pytest.mark.parametrize("name", ["quoted.csv", "bbc024_masks.json", "ro_crate_file_list.tsv"])
def test_streams_read_like_files(name):
    expected = rows_of(name)
    data = (DATA / name).read_bytes()
    assert list(iter_file_list(io.BytesIO(data))) == expected  # format from the content alone
    assert list(iter_file_list(io.BufferedReader(_Trickle(data), 16), name=name)) == expected
    with open(DATA / name, "rb") as stream:
        assert check_file_list(stream).file == name


def test_unknown_format_and_text_streams():
    with pytest.raises(FileListError, match="unknown"):
        list(iter_file_list(DATA / "quoted.csv", fmt="xlsx"))
    with pytest.raises(TypeError):
        list(iter_file_list(io.StringIO("path\na\n")))


def test_write_tsv_round_trips(tmp_path):
    rows = rows_of("file_list_annotations_and_images.json") + [
        FileRow(9, "q/tab.tif", 1, {"Comment": 'a\t"quoted"\nvalue'}),
    ]
    columns = check_file_list(DATA / "file_list_annotations_and_images.json").columns
    with open(tmp_path / "out.tsv", "w", newline="", encoding="utf-8") as out:
        assert write_tsv(rows, out, columns) == 5
    back = list(iter_file_list(tmp_path / "out.tsv"))

    def content(row: FileRow) -> tuple:
        return row.path, row.size, row.kind, row.attributes

    assert [content(r) for r in back] == [content(r) for r in rows]
    with pytest.raises(ValueError):
        write_tsv(rows, io.StringIO(), ["path"])


# ----------------------------------------------------------------------------- size


def _write_screen(path: Path, n: int, duplicate_every: int = 0) -> None:
    with open(path, "w", encoding="utf-8") as out:
        out.write("Files\tsize\tPlate\tWell\tField\tChannel\tCompound\tConcentration\n")
        for i in range(n):
            j = i - 1 if duplicate_every and i % duplicate_every == duplicate_every - 1 else i
            well = f"{chr(65 + (j // 36) % 16)}{(j // 576) % 24 + 1:02d}"
            plate, field, channel = j // 13824, (j // 4) % 9, j % 4
            listed = f"plates/P{plate:03d}/{well}/f{field}_c{channel}_{j}.tif"
            out.write(f"{listed}\t{1000 + j}\tP{plate}\t{well}\t{field}\tch{channel}\tC{j % 977}\t{j % 7}\n")


def test_200k_rows_stream_in_bounded_memory(tmp_path):
    path = tmp_path / "screen.tsv"
    _write_screen(path, 200_000)
    tracemalloc.start()
    try:
        count = total = 0
        for row in iter_file_list(path):
            count += 1
            total += row.size
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 200_000 and total == sum(1000 + j for j in range(200_000))
    assert peak < 4 * 2**20, f"peak {peak / 2**20:.1f} MiB"  # all rows held would take > 100 MiB


def test_duplicates_across_batches_are_found(tmp_path):
    path = tmp_path / "dups.tsv"
    _write_screen(path, 120_000, duplicate_every=40_000)  # rows 39 999, 79 999, 119 999 repeat their predecessor
    report = check_file_list(path, tmp_dir=tmp_path)
    assert report.duplicates == 3 and report.rows == 120_000
    found = [(e["line"], e["other_line"]) for e in report.errors]
    assert found == [(40_001, 40_000), (80_001, 80_000), (120_001, 120_000)]
    assert [p.name for p in tmp_path.iterdir()] == ["dups.tsv"]  # the temporary database is gone


def test_too_many_distinct_json_attribute_names(tmp_path):
    entries = [{"path": f"f{i}.tif", "attributes": [{"name": f"key{i}", "value": "x"}]} for i in range(1001)]
    (tmp_path / "wide.json").write_text(json.dumps(entries))
    report = check_file_list(tmp_path / "wide.json")
    assert [(e["line"], e["field"]) for e in report.errors] == [(1001, "key1000")]
    assert "more than 1000" in report.errors[0]["message"] and len(report.columns) == 1000
