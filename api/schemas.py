"""The marshmallow schemas of the API: query arguments (parsed by ``@blp.arguments``), request bodies and JSON
answers (documented by ``@blp.response``; the views build their answers, and tests/test_openapi.py checks every
real one against these). Bodies that are read raw (uploads, SPARQL, the deposit form) are documented here only."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import fields
from marshmallow.validate import OneOf, Range

from catalog.file_index import OPERATORS
from catalog.search_index import FACET_FIELDS, SORTS

# ---------------------------------------------------------------------- query arguments


def whole_number(name: str, default: int, low: int, high: int, description: str) -> fields.Integer:
    """A whole-number query parameter from ``low`` to ``high``; a bad one is a 400 naming it."""
    return fields.Integer(
        load_default=default,
        validate=Range(low, high, error=f"{name} must be between {low} and {high}"),
        error_messages={"invalid": f"{name} must be a whole number, not {{input!r}}"},
        metadata={"description": description},
    )


class QueryArgs(ma.Schema):
    """Query parameters: others are ignored (negotiation hints, filters), and an empty number is one not sent."""

    class Meta:
        unknown = ma.EXCLUDE

    @ma.pre_load
    def drop_empty_numbers(self, data: Any, **_: Any) -> dict[str, Any]:
        numbers = {field.data_key or name for name, field in self.load_fields.items() if isinstance(field, fields.Integer)}
        return {name: data[name] for name in data if not (name in numbers and data[name] == "")}


class StudyListArgs(QueryArgs):
    limit = whole_number("limit", 50, 1, 1000, "Studies per page")
    offset = whole_number("offset", 0, 0, 10_000_000, "Studies to skip")


class SearchArgs(QueryArgs):
    q = fields.String(
        load_default="",
        metadata={
            "description": 'Words, "phrases", prefix*, field:word (accession, title, '
            "description, keywords, authors, organism, imaging_method, source), OR, -word"
        },
    )
    sort = fields.String(load_default="relevance", metadata={"enum": list(SORTS)})
    limit = whole_number("limit", 20, 0, 200, "Hits per page (0: facets and total only)")
    offset = whole_number("offset", 0, 0, 100_000, "Hits to skip")


#: the facet filters of /search, read from the query string by name (``filter[organism]=…``, repeatable)
SEARCH_FILTERS = [
    {
        "name": f"filter[{facet}]",
        "in": "query",
        "schema": {"type": "array", "items": {"type": "string"}},
        "explode": True,
        "description": f"Only studies with one of these {facet} values",
    }
    for facet in FACET_FIELDS
]


class FileTableArgs(QueryArgs):
    limit = whole_number("limit", 100, 1, 1000, "Rows per page (JSON and HTML; CSV and TSV export the whole table)")
    cursor = fields.String(metadata={"description": "Where the next page starts: the `next` link of the page before"})
    sort = fields.String(metadata={"description": "A column to sort by, descending with a leading `-`"})
    facets = fields.String(
        metadata={"description": "Columns to count values of, comma-separated (default: those with few values)"}
    )
    columns = fields.List(
        fields.String(),
        metadata={"description": "Columns the HTML table shows, repeatable or comma-separated (default: the first seven)"},
    )


#: the column filters of a file table, read from the query string by name
FILE_FILTERS = [
    {
        "name": "filter",
        "in": "query",
        "style": "deepObject",
        "explode": True,
        "schema": {"type": "object", "additionalProperties": {"type": "string"}},
        "description": "filter[COLUMN]=VALUE (repeatable: any of the values), or filter[COLUMN][OP]=VALUE with OP one of "
        + ", ".join(OPERATORS),
    }
]


class SitemapArgs(QueryArgs):
    page = whole_number("page", 1, 1, 100_000, "A page of the sitemap (the sitemap index names them)")


class MetadataArgs(QueryArgs):
    name = fields.String(
        metadata={
            "description": "The file's name; its extension tells the format (default: study.json "
            "for a JSON body, else study.yaml)"
        }
    )
    release_date = fields.String(
        metadata={"format": "date", "description": "When the study is released (default: its own release date, else on finalize)"}
    )


class FileListArgs(QueryArgs):
    component = fields.String(metadata={"description": "The title of the study component the file list belongs to"})


class SparqlArgs(QueryArgs):
    """The SPARQL 1.1 Protocol's parameters; the endpoint reads them itself (sizes and encodings are checked first)."""

    query = fields.String(metadata={"description": "The SPARQL query (none: the service description or the query page)"})
    default_graph_uri = fields.List(fields.String(), data_key="default-graph-uri")
    named_graph_uri = fields.List(fields.String(), data_key="named-graph-uri")
    format = fields.String(metadata={"description": "A result format instead of Accept: json, xml, csv, tsv, turtle, jsonld…"})


# ---------------------------------------------------------------------- request bodies read raw


class SparqlForm(ma.Schema):
    query = fields.String(required=True)
    default_graph_uri = fields.List(fields.String(), data_key="default-graph-uri")
    named_graph_uri = fields.List(fields.String(), data_key="named-graph-uri")
    format = fields.String(metadata={"description": "A result format instead of Accept"})


def _text(description: str, **more: Any) -> fields.String:
    return fields.String(metadata={"description": description, **more})


class DepositForm(ma.Schema):
    token = _text("A deposit token (`bia token create NAME`)")
    title = _text("The study's title")
    description = _text("What the study is about")
    license = _text("A licence identifier, e.g. CC-BY-4.0")
    keywords = _text("Keywords, comma-separated")
    author_name = _text("The submitting author")
    author_orcid = _text("The author's ORCID iD, e.g. https://orcid.org/0000-0002-1825-0097")
    organism = _text("The organism imaged (scientific or common name)")
    biological_entity = _text("What was imaged (default: the organism)")
    imaging_method = _text("An FBbi imaging method, e.g. confocal microscopy")
    step = _text("`fill`: upload and keep the submission open, then show what the files say (the fill-from-files page)")
    release_date = _text("When the study is released", format="date")
    files = fields.List(fields.Raw(metadata={"type": "string", "format": "binary"}), metadata={"description": "The image files"})
    file_list = fields.Raw(metadata={"type": "string", "format": "binary", "description": "A file list (TSV, CSV or JSON)"})


class TokenForm(ma.Schema):
    token = fields.String(required=True, metadata={"description": "A deposit token"})


class FillForm(TokenForm):
    apply = _text("Present: fill the chosen suggestions in (else: show the suggestions)")
    suggestion = fields.List(fields.String(), metadata={"description": "The ids of the chosen suggestions (repeated)"})


# ---------------------------------------------------------------------- answers


class Answer(ma.Schema):
    """A JSON answer: every field named is always sent, unless its metadata says ``optional``."""

    def on_bind_field(self, field_name: str, field_obj: ma.fields.Field) -> None:
        field_obj.required = not field_obj.metadata.get("optional", False)


class Open(Answer):
    """An answer that may carry more fields than those named (file-list columns, new registry fields)."""

    class Meta:
        unknown = ma.INCLUDE


OPTIONAL = {"optional": True}


class FacetValue(Answer):
    value = fields.Raw(allow_none=True)
    count = fields.Integer()


def _facets() -> fields.Dict:
    return fields.Dict(keys=fields.String(), values=fields.List(fields.Nested(FacetValue)))


def _page_link(description: str) -> fields.String:
    return fields.String(allow_none=True, metadata={"description": description})


class Health(Answer):
    status = fields.String()
    studies = fields.Integer()


class ReadyCheck(Answer):
    status = fields.String(metadata={"description": "`ok`, `failed` or `timeout`"})
    seconds = fields.Float(metadata={"description": "How long the check took (or has been waited on)"})
    message = fields.String(metadata={"description": "What failed", **OPTIONAL})


class Ready(Answer):
    status = fields.String(metadata={"description": "`ready`"})
    checks = fields.Dict(
        keys=fields.String(),
        values=fields.Nested(ReadyCheck),
        metadata={
            "description": "Each check by name: `database`, `graph_public`, `graph_private` "
            "(not on a read-only replica), `files`, `sparql_replica` (the node's copy of the "
            "public graph, in remote mode)"
        },
    )


class Growth(Answer):
    month = fields.String()
    released = fields.Integer()
    cumulative = fields.Integer()


def _counts() -> fields.Dict:
    return fields.Dict(keys=fields.String(), values=fields.Integer())


class Stats(Answer):
    studies = fields.Integer()
    by_source = _counts()
    by_imaging_method = _counts()
    by_organism = _counts()
    by_licence = _counts()
    by_file_format = _counts()
    growth = fields.List(fields.Nested(Growth))


class EntryPoints(Answer):
    studies = fields.String()
    search = fields.String()
    sparql = fields.String()
    openapi = fields.String()
    void = fields.String()
    sparql_examples = fields.String()
    stats = fields.String()
    sitemap = fields.String()


class StudySummary(Answer):
    accession = fields.String()
    url = fields.String()
    title = fields.String()
    release_date = fields.String(allow_none=True)
    source = fields.String(allow_none=True)
    files = fields.Integer()
    bytes = fields.Integer()


class StudyList(Answer):
    items = fields.List(fields.Nested(StudySummary))
    total = fields.Integer()
    next = _page_link("The next page")
    previous = _page_link("The page before")


class SearchHit(Answer):
    accession = fields.String()
    url = fields.String()
    title = fields.String()
    score = fields.Float()
    highlights = fields.Dict(keys=fields.String(), values=fields.String(), metadata={"description": "Snippets by field"})
    release_date = fields.String(allow_none=True)
    organisms = fields.List(fields.String())
    imaging_methods = fields.List(fields.String())
    source = fields.String(allow_none=True)
    licence = fields.String(allow_none=True)
    files = fields.Integer()
    dimensionalities = fields.List(
        fields.String(), metadata={"description": "Kinds of image its files' headers show: 2D, 3D, 2D+time, 3D+time"}
    )
    thumbnail = fields.String(allow_none=True, metadata={"description": "A thumbnail of one of its images (128 px), if made"})


class SearchResults(Answer):
    query = fields.String()
    total = fields.Integer()
    items = fields.List(fields.Nested(SearchHit))
    facets = _facets()
    next = _page_link("The next page")
    previous = _page_link("The page before")


class Link(Answer):
    target = fields.String(allow_none=True, metadata={"description": "The linked resource (outgoing links)", **OPTIONAL})
    source = fields.String(allow_none=True, metadata={"description": "The linking study (incoming links)", **OPTIONAL})
    relation = fields.String(allow_none=True)
    resource = fields.String(allow_none=True)
    accession = fields.String(allow_none=True)
    inferred = fields.Boolean()
    evidence = fields.List(fields.String())


class StudyLinks(Answer):
    study = fields.String()
    outgoing = fields.List(fields.Nested(Link))
    incoming = fields.List(fields.Nested(Link))
    transformations = fields.List(fields.Dict(), metadata={"description": "Coordinate transformations of correlative pairs"})


class FileRow(Open):
    """A row of a file table: the file's own fields, then its file list's columns."""

    file_id = fields.String()
    path = fields.String()
    size = fields.Integer(allow_none=True)
    type = fields.String(
        metadata={
            "enum": ["file", "directory"],
            "description": "`directory`: a folder listed as one entry (a Zarr store, a folder of annotations); its "
            "size is the total of what it holds and its download is the folder at the source archive",
        }
    )
    id = fields.String(data_key="@id")
    download = fields.String()


class StoredFile(FileRow):
    stored = fields.Boolean(metadata={"description": "Whether this archive holds the file's bytes"})
    md5 = fields.String(metadata={"description": "When the archive holds the file", **OPTIONAL})
    sha256 = fields.String(metadata={"description": "When the archive holds the file", **OPTIONAL})


class Column(Answer):
    name = fields.String()
    kind = fields.String(metadata={"enum": ["number", "text"]})
    distinct = fields.Integer()


class Totals(Answer):
    files = fields.Integer()
    bytes = fields.Integer()


class FileTable(Answer):
    study = fields.String()
    items = fields.List(fields.Nested(FileRow))
    total = fields.Integer()
    next = _page_link("The next page")
    totals = fields.Nested(Totals)
    columns = fields.List(fields.Nested(Column))
    facets = _facets()


class ImagesArgs(QueryArgs):
    limit = whole_number("limit", 50, 1, 500, "Image files per page")
    cursor = fields.String(metadata={"description": "Where the next page starts: the `next` link of the page before"})
    path = fields.String(metadata={"description": "Only this file (its path in the study): to page through its images"})
    images_from = whole_number("images_from", 0, 0, 1 << 40, "Each file's images are listed from this one on")


class ThumbnailArgs(QueryArgs):
    size = fields.Integer(
        load_default=256,
        validate=OneOf((128, 256, 512, 1024), error="size must be 128, 256, 512 or 1024 (the static view)"),
        error_messages={"invalid": "size must be a whole number, not {input!r}"},
        metadata={"description": "Longest side in pixels: 128, 256 or 512; 1024 is the static view"},
    )


class RenderArgs(QueryArgs):
    z = whole_number("z", 0, 0, 1 << 31, "The plane along z (from 0); the image's size_z bounds it")
    t = whole_number("t", 0, 0, 1 << 31, "The time point (from 0); the image's size_t bounds it")
    c = fields.Integer(
        validate=Range(0, 1 << 31, error="c must be between 0 and the image's size_c - 1"),
        error_messages={"invalid": "c must be a whole number, not {input!r}"},
        metadata={"description": "One channel (from 0), in grey; without it, the first channels in their colours"},
    )
    level = whole_number("level", 0, 0, 64, "The pyramid level (0: full resolution); the image's levels bound it")


class ImageSeriesItem(Open):
    """One image of a file, as its header describes it."""

    id = fields.String(data_key="@id", allow_none=True, metadata={"description": "The image's IRI, when the graph holds it"})
    index = fields.Integer()
    name = fields.String(allow_none=True)
    axes = fields.String(allow_none=True)
    size_x = fields.Integer(allow_none=True)
    size_y = fields.Integer(allow_none=True)
    size_z = fields.Integer(allow_none=True)
    size_c = fields.Integer(allow_none=True)
    size_t = fields.Integer(allow_none=True)
    pixel_type = fields.String(allow_none=True)
    physical_size_x = fields.Float(allow_none=True, metadata={"description": "µm"})
    physical_size_y = fields.Float(allow_none=True, metadata={"description": "µm"})
    physical_size_z = fields.Float(allow_none=True, metadata={"description": "µm"})
    channels = fields.List(fields.String())


class ImageFile(Answer):
    """A file the archive read image headers from, with its images."""

    file = fields.String(metadata={"description": "The file's IRI"})
    path = fields.String()
    status = fields.String(metadata={"description": "ok, unreadable or unsupported"})
    format = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)
    image_count = fields.Integer(metadata={"description": "Images the file holds"})
    images = fields.List(
        fields.Nested(ImageSeriesItem), metadata={"description": "Its images from `images_from` on, at most 100 of them"}
    )
    more_images = fields.String(
        allow_none=True, metadata={"description": "The file's next images (a file holding more than are listed here)"}
    )


class ImageList(Answer):
    study = fields.String()
    items = fields.List(fields.Nested(ImageFile))
    total = fields.Integer(metadata={"description": "Files whose headers were read"})
    next = _page_link("The next page")


class ManifestEntry(Answer):
    url = fields.String()
    path = fields.String()
    size = fields.Integer(allow_none=True)
    md5 = fields.String(allow_none=True)
    sha256 = fields.String(allow_none=True)
    type = fields.String(metadata={"enum": ["file", "directory"], "description": "`directory`: a folder (its URL ends with /)"})


class SparqlExample(Answer):
    id = fields.String()
    title = fields.String()
    query = fields.String()


class Submission(Open):
    id = fields.String()
    owner = fields.String()
    status = fields.String(metadata={"description": "open, finalizing, finalized, discarded, expired…"})
    created_at = fields.String()
    updated_at = fields.String()
    metadata_name = fields.String(allow_none=True)
    release_date = fields.String(allow_none=True)
    file_lists = fields.List(fields.Dict())
    accession = fields.String(allow_none=True)
    report = fields.Dict(allow_none=True, metadata={"description": "The last validation report"})


class SubmissionWithUrl(Submission):
    url = fields.String()


class Submissions(Answer):
    items = fields.List(fields.Nested(Submission))


class StagedFile(Answer):
    path = fields.String()
    size = fields.Integer()
    md5 = fields.String()
    sha256 = fields.String()


class AttachedFileList(Answer):
    name = fields.String()
    component = fields.String(allow_none=True)


class AttachedMetadata(Answer):
    name = fields.String()
    title = fields.String(allow_none=True)
    notes = fields.List(fields.Raw(), metadata={"description": "What the reader noticed (e.g. guessed or missing fields)"})


class FileCounts(Answer):
    staged = fields.Integer()
    staged_bytes = fields.Integer()
    listed = fields.Integer()
    missing = fields.Integer()
    unlisted = fields.Integer()


class ValidationReport(Answer):
    valid = fields.Boolean()
    errors = fields.List(fields.Dict())
    warnings = fields.List(
        fields.Dict(),
        metadata={
            "description": "Never reject the deposit. What the image files' headers say has `source: image_headers`, a `kind`"
            " (`suggestion` for an empty field, `conflict` with what the metadata declares, `unreadable` file, `pending`,"
            " `skipped`, `sampled`), the `field`, the `files`, the header `element`, and for a suggestion its `id`, the"
            " record location it fills (`target`) and the value (`suggested`)"
        },
    )
    files = fields.Nested(FileCounts)
    images = fields.Dict(
        metadata={"optional": True, "description": "Counts of the staged image files checked, read, unreadable, pending"}
    )


class SuggestionIds(ma.Schema):
    ids = fields.List(
        fields.String(),
        required=True,
        metadata={"description": "The `id`s of suggestions of the last validation (warnings of kind `suggestion`)"},
    )


class AppliedSuggestions(Answer):
    applied = fields.List(fields.String(), metadata={"description": "The ids filled into the metadata"})
    skipped = fields.List(fields.Dict(), metadata={"description": "Ids not applied, each with the reason"})


class Finalized(Answer):
    accession = fields.String()
    url = fields.String()
    state = fields.String(allow_none=True)
    release_date = fields.String(allow_none=True)


class OwnStudy(Answer):
    accession = fields.String()
    url = fields.String()
    title = fields.String(allow_none=True)
    state = fields.String()
    release_date = fields.String()
    files = fields.Integer()


class OwnStudies(Answer):
    items = fields.List(fields.Nested(OwnStudy))
