"""Keyword search over released studies: fielded queries, facets, sorting, paging, highlighted snippets."""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Response, render_template, request

from api.context import services, settings
from api.errors import BadParameter
from api.negotiate import choose
from api.openapi import HTML, Blueprint, errors, formats, responses
from api.records import page_links
from api.schemas import SEARCH_FILTERS, SearchArgs, SearchResults
from catalog import identifiers
from catalog.search_index import FACET_FIELDS

blp = Blueprint("search", __name__, description="Keyword search")
_FILTER = re.compile(r"^filter\[(?P<field>[^\]]*)\](?P<rest>.*)$")


@blp.route("/search", parameters=SEARCH_FILTERS)
@blp.arguments(SearchArgs, location="query")
@blp.response(
    200, SearchResults, description="Hits with highlights, facet counts and paging links (as HTML: the page for people)"
)
@blp.doc(
    operationId="search",
    summary="Search released studies",
    description='q: words, "phrases", prefix*, field:word (accession, title, description, keywords, authors, organism, '
    "imaging_method, source), OR, -word. filter[organism|imaging_method|licence|release_year|source|dimensionality|"
    "time_series]=VALUE (repeatable; dimensionality and time_series come from the image files' headers). "
    "sort=relevance|newest|oldest; limit; offset.",
    responses=responses(formats(200, HTML), errors(400, 406)),
)
def search(args: dict[str, Any]) -> Response:
    q = args["q"]
    filters: dict[str, list[str]] = {}
    for key in request.args:
        match = _FILTER.match(key)
        if match:
            if match.group("rest") not in ("", "[]"):  # filter[organism][] is the array form some clients send
                raise BadParameter(f"{key}: write a facet filter as filter[FACET]=VALUE", [{"field": key}])
            filters.setdefault(match.group("field").lower(), []).extend(request.args.getlist(key))
    limit, offset, sort = args["limit"], args["offset"], args["sort"]
    result = services().archive.public.search.search(
        q, filters=filters, sort=sort, limit=limit, offset=offset, facet_fields=FACET_FIELDS
    )
    base = settings().base_url
    body = {
        "query": q,
        "total": result.total,
        "items": [
            {
                "accession": h.accession,
                "url": identifiers.study_iri(base, h.accession),
                "title": h.title,
                "score": round(h.score, 4),
                "highlights": h.snippets,
                "release_date": h.document.release_date,
                "organisms": h.document.organisms,
                "imaging_methods": h.document.imaging_methods,
                "source": h.document.source,
                "licence": h.document.licence,
                "files": h.document.file_count,
                "dimensionalities": h.document.dimensionalities,
                "thumbnail": h.document.thumbnail,
            }
            for h in result.hits
        ],
        "facets": {name: [{"value": v, "count": n} for v, n in values] for name, values in result.facets.items()},
        **page_links(result.total, max(limit, 1), offset),
    }
    media = choose(["application/json", "text/html"])
    if media == "text/html":
        return Response(
            render_template("search.html", result=body, filters=filters, settings=settings(), sort=sort), mimetype=media
        )
    return Response(json.dumps(body, ensure_ascii=False), mimetype=media)
