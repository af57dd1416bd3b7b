"""File tables: any-column filters, sorting, keyset paging, facets, totals, new columns mid-stream."""

from __future__ import annotations

import base64
import json

import pytest

from catalog.errors import NotFound
from catalog.file_index import FileIndex, Filter, InvalidCursor, InvalidFilter, UnknownColumn, _query_signature, typed

N = 500


def rows():
    for i in range(N):
        row = {
            "path": f"plate{i % 5}/{'ABCDEFGH'[i % 8]}{i % 12:02d}/img{i:04d}.tif",
            "size": 1000 + i,
            "format": "tif",
            "file_id": f"{i:06d}",
            "Plate": str(i % 5),
            "Well": f"{'ABCDEFGH'[i % 8]}{i % 12:02d}",
            "Compound": ["taxol", "DMSO", "nocodazole", ""][i % 4],
            "Concentration": str((i % 7) * 0.5),
        }
        if i >= 300:
            row["Note"] = "late"  # a column that appears mid-stream
        yield row


@pytest.fixture
def index(tmp_path):
    idx = FileIndex(tmp_path / "files")
    assert idx.replace_study("S-BIAD9", rows()) == N
    yield idx
    idx.close()


def test_columns_and_kinds(index):
    cols = {c.name: c for c in index.columns("S-BIAD9")}
    assert list(cols)[:4] == ["path", "size", "format", "file_id"]
    assert cols["Plate"].kind == "number" and cols["Concentration"].kind == "number"
    assert cols["Well"].kind == "text" and cols["file_id"].kind == "text" and cols["Plate"].distinct == 5
    assert "Note" in cols


def test_filters_exact_prefix_range(index):
    page = index.query("S-BIAD9", [Filter("Compound", "eq", "taxol")], limit=1000)
    assert page.total == 125 and all(r["Compound"] == "taxol" for r in page.items)
    assert index.query("S-BIAD9", [Filter("Compound", "eq", "taxol"), Filter("Compound", "eq", "DMSO")]).total == 250
    assert index.query("S-BIAD9", [Filter("Compound", "eq", "")]).total == 125  # empty cells
    assert index.query("S-BIAD9", [Filter("path", "prefix", "plate3/")]).total == 100
    ranged = index.query("S-BIAD9", [Filter("Concentration", "gte", "1.5"), Filter("Concentration", "lt", 2.5)], limit=1000)
    assert ranged.total and all(1.5 <= r["Concentration"] < 2.5 for r in ranged.items)
    assert index.query("S-BIAD9", [Filter("Note", "eq", "late")]).total == 200
    assert index.query("S-BIAD9", [Filter("Plate", "ne", 0)]).total == 400
    assert index.query("S-BIAD9", [Filter("file_id", "eq", "000007")]).items[0]["size"] == 1007


def test_keyset_paging_in_both_directions_covers_every_row_once(index):
    for sort in ([("Compound", False)], [("Compound", True)], [("size", True)], [("Note", False)], []):
        seen, cursor = [], None
        while True:
            page = index.query("S-BIAD9", [Filter("Plate", "lte", 3)], sort=sort, limit=37, cursor=cursor)
            seen.extend(r["file_id"] for r in page.items)
            cursor = page.next_cursor
            if not cursor:
                break
        assert len(seen) == len(set(seen)) == 400, sort
    first = index.query("S-BIAD9", sort=[("size", True)], limit=3).items
    assert [r["size"] for r in first] == [1499, 1498, 1497]


def test_facets_and_totals(index):
    facets = index.facets("S-BIAD9", ["Compound", "Plate"], [Filter("Plate", "eq", 1)])
    assert dict(facets["Plate"]) == {0: 100, 1: 100, 2: 100, 3: 100, 4: 100}  # own filter not applied
    assert sum(n for _, n in facets["Compound"]) == 75  # empty cells are not a facet value
    assert index.totals("S-BIAD9") == {"files": N, "bytes": sum(1000 + i for i in range(N))}
    assert index.totals("S-BIAD9", [Filter("Plate", "eq", "2")])["files"] == 100


def test_a_column_named_twice_is_counted_once(index):
    """Found in the API fuzzing audit: ?facets=path,path,… made one full count per repetition (seconds each on a
    large table, hundreds in one URL)."""
    statements: list[str] = []
    index.facets("S-BIAD9", ["path"])
    index._table("S-BIAD9").db.set_trace_callback(statements.append)
    facets = index.facets("S-BIAD9", ["path", "Well", "path", "path"], [Filter("Plate", "eq", 1)])
    assert list(facets) == ["path", "Well"] and sum(n for _, n in facets["path"]) == 50  # limit 50 of 100 paths
    assert len([s for s in statements if s.lstrip().startswith("SELECT")]) == 2


def test_bad_requests_are_400_and_unknown_studies_404(index):
    for bad, error in [
        (lambda: index.query("S-BIAD9", [Filter("Colour", "eq", "red")]), UnknownColumn),
        (lambda: index.query("S-BIAD9", sort=[("Colour", False)]), UnknownColumn),
        (lambda: index.query("S-BIAD9", cursor="not-a-cursor"), InvalidCursor),
        # a cursor continues the query that issued it, and no other: another sort or filter would page wrongly
        (
            lambda: index.query(
                "S-BIAD9", sort=[("Plate", True)], cursor=index.query("S-BIAD9", sort=[("Plate", False)], limit=2).next_cursor
            ),
            InvalidCursor,
        ),
        (
            lambda: index.query("S-BIAD9", [Filter("Plate", "eq", 1)], cursor=index.query("S-BIAD9", limit=2).next_cursor),
            InvalidCursor,
        ),
        (lambda: index.query("S-BIAD9", [Filter("Plate", "gte", "many")]), InvalidFilter),
        (lambda: index.query("S-BIAD9", [Filter("Plate", "like", "1")]), InvalidFilter),
    ]:
        with pytest.raises(error) as raised:
            bad()
        assert raised.value.status == 400
    with pytest.raises(NotFound):
        index.query("S-NOPE")


@pytest.mark.parametrize(
    "value, rowid, total",
    [
        ([1], 1, 1),
        ({"a": 1}, 1, 1),  # not a cell value: SQLite cannot bind it
        (2**80, 1, 1),
        (1, 2**70, 1),  # past SQLite's integers
        (1, True, 1),
        (1, 1, 2**70),
        (1, 1, -5),
        (float("nan"), 1, 1),
    ],
)
def test_a_forged_cursor_of_the_right_query_is_400_not_a_database_error(index, value, rowid, total):
    """Found by fuzzing the HTTP API: a cursor is plain base64 JSON, so one can be written for any query."""
    sort = [("size", False)]
    forged = base64.urlsafe_b64encode(json.dumps([value, rowid, total, _query_signature("S-BIAD9", [], sort)]).encode())
    with pytest.raises(InvalidCursor):
        index.query("S-BIAD9", sort=sort, cursor=forged.decode().rstrip("="))
    honest = base64.urlsafe_b64encode(json.dumps([1200, 201, N, _query_signature("S-BIAD9", [], sort)]).encode())
    assert index.query("S-BIAD9", sort=sort, limit=1, cursor=honest.decode()).items[0]["size"] == 1201


def test_replace_swaps_the_whole_table_and_delete_removes_it(index):
    index.query("S-BIAD9")  # opened and cached
    index.replace_study("S-BIAD9", ({"path": f"x{i}", "size": i} for i in range(3)))
    assert index.totals("S-BIAD9")["files"] == 3 and [c.name for c in index.columns("S-BIAD9")][:2] == ["path", "size"]
    other = FileIndex(index.directory)  # another process's handle sees the new table too
    assert other.totals("S-BIAD9")["files"] == 3
    index.delete_study("S-BIAD9")
    assert not index.has_study("S-BIAD9") and index.studies() == []


def test_duplicate_paths_are_kept(tmp_path):
    idx = FileIndex(tmp_path / "f")
    assert idx.replace_study("S-X", [{"path": "a.tif", "size": 1}, {"path": "a.tif", "size": 1}]) == 2


def test_typed_values():
    assert typed("12") == 12 and typed("0.5") == 0.5 and typed("-3") == -3
    assert typed("007") == "007" and typed("0.50") == "0.50" and typed("A01") == "A01" and typed("") is None
    assert typed("1e5") == "1e5" and typed("nan") == "nan"


@pytest.mark.parametrize(
    "filters",
    [
        [Filter("Concentration", "gte", 1.5), Filter("Plate", "lte", 1)],
        [Filter("Compound", "eq", "taxol"), Filter("Plate", "ne", 0)],
        [Filter("Concentration", "lt", 1), Filter("Compound", "eq", "DMSO"), Filter("Well", "prefix", "A")],
        [Filter("Plate", "eq", 2), Filter("Plate", "eq", 3)],
    ],
)
def test_counts_over_several_columns_match_the_rows(index, filters):
    rows = list(index.iter_rows("S-BIAD9", filters))
    assert index.query("S-BIAD9", filters, limit=5).total == len(rows)
    assert index.totals("S-BIAD9", filters) == {"files": len(rows), "bytes": sum(r["size"] for r in rows)}
