"""File tables, file metadata and downloads (single files with Range, whole studies as a streamed zip, manifests)."""

from __future__ import annotations

import io
import itertools
import json
import re
import zipfile
from typing import Any, Iterator
from urllib.parse import urlencode

from flask import Response, redirect, render_template, request
from werkzeug.wrappers import Response as BaseResponse

from api.context import services, settings
from api.errors import BadParameter
from api.negotiate import choose
from api.object_responses import object_response
from api.openapi import BINARY, HTML, NOT_MODIFIED, Blueprint, errors, formats, path_choice, responses
from api.records import request_owner, self_url
from api.source_files import source_file_url
from api.schemas import FILE_FILTERS, FileTable, FileTableArgs, ManifestEntry, StoredFile
from api.signposting import collection_link
from api.streams import checked_size, streamed
from api.tabular import table_text
from catalog import identifiers
from catalog.errors import NotFound
from catalog.file_index import OPERATORS, Column, FileIndex, Filter
from catalog.file_store import content_disposition
from catalog.image_representations import shown_thumbnails
from catalog.views import PRIVATE, PUBLIC

blp = Blueprint("files", __name__, description="File tables, downloads and manifests")
_FILTER = re.compile(r"^filter\[(?P<column>.+?)\](?:\[(?P<op>[a-z]+)\])?$")
FACET_MAX_DISTINCT = 200
#: the order of a file table nobody asked to sort
DEFAULT_SORT = (("path", False),)
#: columns the HTML table shows until the reader chooses (they fit a 1280-pixel screen with a thumbnail)
SHOWN_BY_DEFAULT = 7
TABLE_TYPES = ["application/json", "text/csv", "text/tab-separated-values", "text/html"]


def file_index_for(accession: str) -> FileIndex:
    """The public file table, or the embargoed one for its owner."""
    archive = services().archive
    if archive.public.files.has_study(accession):
        return archive.public.files
    owner = request_owner()
    row = archive.registry.study(accession)
    if (
        owner
        and row is not None
        and row.owner == owner
        and archive.private is not None
        and archive.private.files.has_study(accession)
    ):
        return archive.private.files
    raise NotFound(f"no released study {accession}")


def _holds_files(accession: str, index: FileIndex) -> bool:
    """Whether the archive holds the bytes of the study whose file table is ``index`` (public, or its owner's)."""
    archive = services().archive
    return archive.holds_files(accession, PUBLIC if index is archive.public.files else PRIVATE)


def parse_filters() -> list[Filter]:
    filters: list[Filter] = []
    for key in request.args:
        match = _FILTER.match(key)
        if not match:
            continue
        op = match.group("op") or "eq"
        if op not in OPERATORS:
            raise BadParameter(f"unknown filter operator {op!r} in {key}; use one of {', '.join(OPERATORS)}", [{"field": key}])
        # a blank value (an empty field of the HTML form) is no filter
        filters.extend(Filter(match.group("column"), op, value) for value in request.args.getlist(key) if value != "")
    return filters


def parse_sort(raw: str | None) -> list[tuple[str, bool]]:
    """``sort=COLUMN`` or ``-COLUMN``; without one, by path (a stable order the reader can follow)."""
    if not raw:
        return list(DEFAULT_SORT)
    return [(raw[1:], True)] if raw.startswith("-") else [(raw, False)]


def shown_columns(columns: list[Column], wanted: list[str] | None) -> list[str]:
    """The columns the HTML table shows: those asked for (``columns=``, repeatable or comma-separated) in table
    order, else the first :data:`SHOWN_BY_DEFAULT` (``type`` only in a table that lists folders); ``file_id`` is
    never shown (the rows link to the files)."""
    names = [c.name for c in columns if c.name != "file_id"]
    asked = [name for raw in wanted or [] for name in raw.split(",") if name]
    if not asked:
        return [name for name in names if name not in _uniform(columns)][:SHOWN_BY_DEFAULT]
    unknown = [name for name in asked if name not in names]
    if unknown:
        raise BadParameter(
            f"no column {unknown[0]!r} in this file table; columns are: {', '.join(names)}", [{"field": "columns"}]
        )
    return [name for name in names if name in asked]


def _uniform(columns: list[Column]) -> set[str]:
    """The ``type`` column when every row is a file: not shown nor faceted unless asked for."""
    return {c.name for c in columns if c.name == "type" and c.distinct <= 1}


def _download_url(accession: str, file_id: str) -> str:
    return f"{settings().base_url}/files/{accession}/{file_id}/download"


def _decorate(accession: str, row: dict[str, Any]) -> dict[str, Any]:
    study = identifiers.study_iri(settings().base_url, accession)
    # the file's own identifiers win over file-list columns of the same name
    return {**row, "@id": f"{study}/files/{row.get('file_id')}", "download": _download_url(accession, row["file_id"])}


TABLE_DESCRIPTION = (
    "filter[COLUMN]=VALUE (repeatable: any of the values), filter[COLUMN][prefix|gte|lte|gt|lt|ne]=VALUE, "
    "sort=COLUMN or sort=-COLUMN (default: path), limit, cursor (from `next`), facets=COL1,COL2, columns=COL "
    "(the columns the HTML table shows). CSV/TSV export the whole filtered table, every column."
)
TABLE_ANSWERS = responses(formats(200, HTML, "text/csv", "text/tab-separated-values"), errors(400, 404, 406))


@blp.route("/studies/<string:accession>/files", parameters=FILE_FILTERS)
@blp.arguments(FileTableArgs, location="query")
@blp.response(
    200,
    FileTable,
    description="A page of the table with totals, columns and facets (JSON, HTML), or the whole filtered table (CSV, TSV)",
)
@blp.doc(
    operationId="getFileTable",
    summary="A study's file table: filter, sort, page, facets, totals; JSON, CSV or TSV",
    description=TABLE_DESCRIPTION,
    responses=TABLE_ANSWERS,
)
def file_table(args: dict[str, Any], accession: str) -> Response:
    return _file_table(args, accession, None)


@blp.route(
    "/studies/<string:accession>/files.<string:fmt>", parameters=[path_choice("fmt", "json", "csv", "tsv", "html"), *FILE_FILTERS]
)
@blp.arguments(FileTableArgs, location="query")
@blp.response(200, FileTable, description="The file table as the suffix says: json, csv, tsv or html")
@blp.doc(
    operationId="getFileTableAs",
    summary="A study's file table in the format its suffix names (json, csv, tsv, html)",
    description=TABLE_DESCRIPTION,
    responses=TABLE_ANSWERS,
)
def file_table_as(args: dict[str, Any], accession: str, fmt: str) -> Response:
    return _file_table(args, accession, fmt)


def _file_table(args: dict[str, Any], accession: str, fmt: str | None) -> Response:
    name = accession
    index = file_index_for(name)
    media = choose(TABLE_TYPES, fmt)
    filters, sort = parse_filters(), parse_sort(args.get("sort"))
    columns = index.columns(name)
    shown = shown_columns(columns, args.get("columns"))  # a column that is not there is a 400 in every format
    if media in ("text/csv", "text/tab-separated-values"):
        index.query(name, filters, sort, limit=1)  # a bad filter or sort is a 400 now, not a broken stream later
        return _export(index, name, filters, sort, [c.name for c in columns], "," if media == "text/csv" else "\t", media)
    page = index.query(name, filters, sort, limit=args["limit"], cursor=args.get("cursor"))
    wanted = args.get("facets")
    facet_columns = (
        [c for c in wanted.split(",") if c]
        if wanted is not None
        else [
            c.name
            for c in columns
            if c.distinct <= FACET_MAX_DISTINCT and c.name not in ("path", "file_id", "size", *_uniform(columns))
        ]
    )
    body = {
        "study": identifiers.study_iri(settings().base_url, name),
        "items": [_decorate(name, row) for row in page.items],
        "total": page.total,
        "next": self_url(cursor=page.next_cursor) if page.next_cursor else None,
        "totals": index.totals(name, filters),
        "columns": [{"name": c.name, "kind": c.kind, "distinct": c.distinct} for c in columns],
        "facets": {
            col: [{"value": v, "count": n} for v, n in values]
            for col, values in index.facets(name, facet_columns, filters).items()
        },
    }
    if media == "text/html":
        return _table_page(index, name, body, shown, filters)
    return Response(json.dumps(body, ensure_ascii=False), mimetype=media)


def _table_page(index: FileIndex, accession: str, body: dict[str, Any], shown: list[str], filters: list[Filter]) -> Response:
    """The table for people: the chosen columns, thumbnails of image files, counts of the filter and of the whole."""
    held = _holds_files(accession, index)
    rows: list[dict[str, Any]] = body["items"]
    thumbnails = shown_thumbnails(services().archive.file_store, str(body["study"]), rows) if held else {}
    # a harvested study's download links redirect to its source archive (when its file server is known)
    downloads = held or (
        _harvested(accession) and bool(rows) and source_file_url(settings(), accession, rows[0]["path"]) is not None
    )
    filtered = {f.column for f in filters}
    page = render_template(
        "files.html",
        table=body,
        accession=accession,
        settings=settings(),
        args=request.args,
        held=downloads,
        thumbnails=thumbnails,
        shown=shown,
        # a filter on a column not shown keeps its field in the form
        fields=[c["name"] for c in body["columns"] if c["name"] in shown or c["name"] in filtered],
        whole=index.totals(accession) if filters else body["totals"],
        sort=request.args.get("sort") or "path",
        kept=_operator_filters(),
    )
    return Response(page, mimetype="text/html")


def _operator_filters() -> list[tuple[str, str]]:
    """The ``filter[COLUMN][OP]`` parameters of this request (the form has fields for equality only; it keeps these)."""
    return [
        (key, value)
        for key in request.args
        if (match := _FILTER.match(key)) and match.group("op")
        for value in request.args.getlist(key)
    ]


def _export(
    index: FileIndex,
    accession: str,
    filters: list[Filter],
    sort: list[tuple[str, bool]],
    columns: list[str],
    delimiter: str,
    media: str,
) -> Response:
    def rows() -> Iterator[list[Any]]:
        yield [*columns, "download"]
        for row in index.iter_rows(accession, filters, sort=sort):
            yield [row.get(c) for c in columns] + [_download_url(accession, row["file_id"])]

    extension = "csv" if delimiter == "," else "tsv"
    return Response(
        streamed(table_text(rows(), delimiter), f"the file table of {accession}"),
        mimetype=media,
        headers={"Content-Disposition": content_disposition(f"{accession}-files.{extension}")},
    )


def _file_row(accession: str, file_id: str) -> dict[str, Any]:
    row = file_index_for(accession).get(accession, file_id)
    if row is None:
        raise NotFound(f"no file {file_id} in {accession}")
    return row


@blp.route("/files/<string:accession>/<string:file_id>")
@blp.response(200, StoredFile)
@blp.doc(operationId="getFile", summary="One file's metadata (path, size, format, checksums, attributes)", responses=errors(404))
def file_metadata(accession: str, file_id: str) -> Response:
    row = _decorate(accession, _file_row(accession, file_id))
    stored = services().archive.file_store.stat(f"studies/{accession}/{row['path']}")
    if stored is not None:
        row.update(md5=stored.md5, sha256=stored.sha256, stored=True)
    else:
        row["stored"] = False
    return Response(json.dumps(row, ensure_ascii=False), mimetype="application/json")


@blp.route("/files/<string:accession>/<string:file_id>/download")
@blp.response(
    200,
    BINARY,
    content_type="*/*",
    description="The file's bytes, in its own media type (Range, If-Range, If-Match, If-None-Match supported)",
)
@blp.doc(
    operationId="downloadFile",
    summary="Download one file: the bytes (Range supported), or a redirect to a presigned S3 URL or, for a "
    "harvested study, to the file at its source archive",
    responses=responses(
        {
            206: {"description": "The range asked for (`Content-Range`)", "content": {"*/*": {"schema": BINARY}}},
            302: {
                "description": "Where to fetch the bytes (`Location`): a presigned S3 URL, or the file at the archive a "
                "harvested study came from (BioStudies, EMPIAR: `BIA_HEADER_SOURCES`)"
            },
            304: NOT_MODIFIED,
        },
        errors(404, 412, 416),
    ),
)
def download_file(accession: str, file_id: str) -> BaseResponse:
    row = _file_row(accession, file_id)
    key = f"studies/{accession}/{row['path']}"
    store = services().archive.file_store
    stored = store.stat(key)
    if stored is None and row.get("type") == "directory" and not _harvested(accession):
        # a deposited folder listed as one entry: its files are held one by one, listed in the table
        return redirect(
            f"{settings().base_url}/studies/{accession}/files?{urlencode({'filter[path][prefix]': row['path'] + '/'})}", 303
        )
    if stored is None:
        return _at_source(accession, row)
    filename = row["path"].rsplit("/", 1)[-1]
    response = object_response(key, stored, name=row["path"], filename=filename)
    response.headers["Link"] = collection_link(accession)  # FAIR signposting: the way back to the landing page
    return response


def _harvested(accession: str) -> bool:
    """Whether the study is a harvested record (its files are held by the archive it came from), not a deposit."""
    row = services().archive.registry.study(accession)
    return row is not None and row.source != "deposit"


def _at_source(accession: str, row: dict[str, Any]) -> BaseResponse:
    """A file whose bytes this archive does not hold: a redirect to it at the archive a harvested study came from
    (:mod:`api.source_files`), else 404."""
    url = _source_url(accession, row) if _harvested(accession) else None
    if url is None:
        where = "not held by this archive" + (" nor located at its source" if _harvested(accession) else "")
        raise NotFound(f"{row['path']} is listed by {accession} but its bytes are {where}")
    return redirect(url, code=302)


def _source_url(accession: str, row: dict[str, Any]) -> str | None:
    """A harvested study's file at its source archive; a folder's URL ends with ``/`` (a listing to recurse into)."""
    url = source_file_url(settings(), accession, row["path"])
    return f"{url}/" if url and row.get("type") == "directory" else url


class _Sink(io.RawIOBase):
    """A write-only stream collecting what ``zipfile`` writes, for streaming it out."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.position = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.chunks.append(bytes(data))
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def take(self) -> bytes:
        out = b"".join(self.chunks)
        self.chunks.clear()
        return out


@blp.route("/studies/<string:accession>/download")
@blp.response(200, BINARY, content_type="application/zip", description="A zip of every file the archive holds, streamed")
@blp.doc(operationId="downloadStudy", summary="The whole study (every stored file) as a streamed zip", responses=errors(404))
def download_study(accession: str) -> Response:
    index = file_index_for(accession)
    store = services().archive.file_store
    if not _holds_files(accession, index):
        raise NotFound(
            f"the files of {accession} are listed here but not held by this archive (a harvested record); "
            "download them from the resource the record came from"
        )

    def generate() -> Iterator[bytes]:
        sink = _Sink()
        with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
            for row in index.iter_rows(accession):
                key = f"studies/{accession}/{row['path']}"
                stored = store.stat(key)
                if stored is None:
                    continue
                with archive.open(f"{accession}/{row['path']}", "w", force_zip64=True) as member:
                    for chunk in checked_size(store.open_range(key), stored.size, key):
                        member.write(chunk)
                        if sink.position and len(sink.chunks) > 16:
                            yield sink.take()
                yield sink.take()
        yield sink.take()

    return Response(
        streamed(generate(), f"the zip of {accession}"),
        mimetype="application/zip",
        headers={"Content-Disposition": content_disposition(f"{accession}.zip"), "Link": collection_link(accession)},
    )


@blp.route("/studies/<string:accession>/manifest")
@blp.response(
    200,
    {"type": "string", "description": "url, path, size, md5, sha256, type columns"},
    content_type="text/tab-separated-values",
    description="A line per file (TSV), or a list of them (JSON)",
)
@blp.doc(
    operationId="getManifest",
    summary="Download URLs with sizes and checksums of every file (TSV or JSON), for bulk download tools; a harvested "
    "study's URLs are its files at its source archive (no checksums)",
    responses=responses(formats(200, "application/json", schema={"type": "array", "items": ManifestEntry}), errors(404, 406)),
)
def manifest(accession: str) -> Response:
    index = file_index_for(accession)
    store = services().archive.file_store
    media = choose(["text/tab-separated-values", "application/json"])

    harvested = _harvested(accession)

    def entries() -> Iterator[dict[str, Any]]:
        for row in index.iter_rows(accession):
            if row.get("type") == "directory" and not harvested:
                continue  # a deposited folder's files are listed one by one
            # a harvested study's file: where its source archive serves it (no checksums are known here)
            stored = None if harvested else store.stat(f"studies/{accession}/{row['path']}")
            yield {
                "url": _source_url(accession, row) if harvested else _download_url(accession, row["file_id"]),
                "path": row["path"],
                "size": row.get("size"),
                "md5": stored.md5 if stored else None,
                "sha256": stored.sha256 if stored else None,
                "type": row.get("type") or "file",
            }

    if media == "application/json":
        return Response(json.dumps(list(entries())), mimetype=media)

    columns = ("url", "path", "size", "md5", "sha256", "type")
    rows = itertools.chain([columns], ([e[k] for k in columns] for e in entries()))
    return Response(streamed(table_text(rows, "\t"), f"the manifest of {accession}"), mimetype=media)
