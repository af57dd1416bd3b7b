"""The site around the records: home, health, statistics, sitemap, the public dump, vendored assets."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Iterator
from urllib.parse import urlencode
from xml.sax.saxutils import escape

from flask import Response, abort, current_app, render_template, request, send_from_directory

from api.context import services, settings
from api.negotiate import choose
from api.openapi import BINARY, HTML, JSONLD, NOT_MODIFIED, TEXT, Blueprint, errors, formats, responses
from api.records import script_json
from api.readiness import node_readiness
from api.schemas import EntryPoints, Health, Ready, SitemapArgs, Stats
from api.streams import streamed
from catalog import identifiers
from catalog.registry import RELEASED
from catalog.stats import catalog_stats as counts_of

blp = Blueprint("site", __name__, description="Home, health, readiness, statistics, sitemap")
#: what a file sent as it is (flask.send_from_directory) can answer besides the file
STATIC_ANSWERS = {
    206: {"description": "The range asked for", "content": {"*/*": {"schema": BINARY}}},
    304: NOT_MODIFIED,
    **errors(416),
}
SITEMAP_URLS = 50_000


@blp.route("/health")
@blp.response(200, Health)
@blp.doc(
    operationId="getHealth", summary="Liveness: 200 while the app answers (it asks no graph server, database or S3; see /ready)"
)
def health() -> Response:
    archive = services().archive  # the count of released studies is the node's own search index: no store is asked
    return Response(json.dumps({"status": "ok", "studies": archive.public.search.local_count()}), mimetype="application/json")


@blp.route("/ready")
@blp.response(200, Ready)
@blp.doc(
    operationId="getReady",
    summary="Readiness: 200 when the database, both graph servers and the file store answer, each check "
    "with its time; else 503 naming what failed (checks run side by side, BIA_READY_TIMEOUT in all)",
    responses=errors(503),
)
def ready() -> Response:
    readiness = current_app.extensions.get("bia.readiness")
    if readiness is None:
        replica = getattr(current_app.extensions.get("bia.sparql"), "replica", None)
        readiness = current_app.extensions.setdefault(
            "bia.readiness", node_readiness(services(), settings().ready_timeout, replica)
        )
    return Response(json.dumps(readiness.answer()), mimetype="application/json")


STATS_TTL = 300.0


def catalog_stats() -> dict:
    """:func:`catalog.stats.catalog_stats`, cached for a few minutes per app while the number of released studies
    stays the same (file formats are summed over every study's file table)."""
    import time

    archive = services().archive
    version = archive.public.search.count()
    cached = current_app.extensions.get("bia.stats")
    if cached and time.monotonic() - cached[0] < STATS_TTL and cached[1]["studies"] == version:
        return cached[1]
    stats = counts_of(archive)
    current_app.extensions["bia.stats"] = (time.monotonic(), stats)
    return stats


@blp.route("/stats")
@blp.response(200, Stats, description="The counts (as HTML: the statistics page, its growth chart and tables)")
@blp.doc(
    operationId="getStats",
    summary="Counts by source, imaging method, organism, licence, file format; cumulative growth by month",
    responses=responses(formats(200, HTML), errors(406)),
)
def stats() -> Response:
    media = choose(["application/json", "text/html"])
    body = catalog_stats()
    if media == "text/html":
        groups = [
            {**group, "counts": facet_links(body[key], group["facet"])} for key, group in STATS_GROUPS.items() if key in body
        ]
        return Response(
            render_template(
                "stats.html",
                stats=body,
                groups=groups,
                chart=growth_chart(body["growth"]),
                releases=[row for row in body["growth"] if row["released"]],  # months without a release left out
                settings=settings(),
            ),
            mimetype=media,
        )
    return Response(json.dumps(body, ensure_ascii=False), mimetype=media)


#: the counts the statistics page shows, each under its title, and the search facet its values filter by (if any)
STATS_GROUPS: dict[str, dict[str, Any]] = {
    "by_source": {"title": "Sources", "column": "Source", "unit": "Studies", "facet": "source"},
    "by_imaging_method": {"title": "Imaging methods", "column": "Imaging method", "unit": "Studies", "facet": "imaging_method"},
    "by_organism": {"title": "Organisms", "column": "Organism", "unit": "Studies", "facet": "organism"},
    "by_licence": {"title": "Licences", "column": "Licence", "unit": "Studies", "facet": "licence"},
    "by_file_format": {"title": "File formats", "column": "Format", "unit": "Files", "facet": None},
}
#: how many values of each facet the home page lists before "more…"
HOME_FACET_VALUES = 8
HOME_RECENT = 6


def facet_links(counts: dict[str, int], facet: str | None, limit: int | None = None) -> list[dict[str, Any]]:
    """Each value with a count above zero, and the search that finds its studies (``/search?filter[facet]=value``)."""
    base = settings().base_url
    shown = [(value, count) for value, count in counts.items() if count]
    return [
        {
            "value": value,
            "count": count,
            "url": f"{base}/search?{urlencode({f'filter[{facet}]': value})}" if facet else None,
        }
        for value, count in shown[:limit]
    ]


def recent_studies(limit: int = HOME_RECENT) -> list[dict[str, Any]]:
    """The newest released studies: what a scientist scans a list for."""
    result = services().archive.public.search.search("", sort="newest", limit=limit, offset=0, facet_fields=())
    base = settings().base_url
    return [
        {
            "accession": h.accession,
            "url": identifiers.study_iri(base, h.accession),
            "title": h.document.title,
            "organisms": h.document.organisms,
            "imaging_methods": h.document.imaging_methods,
            "files": h.document.file_count,
            "bytes": h.document.total_size,
            "release_date": h.document.release_date,
        }
        for h in result.hits
    ]


def browse_groups(stats: dict[str, Any]) -> list[dict[str, Any]]:
    """The home page's ways in: organisms, imaging methods and sources, each value a link to its search."""
    base = settings().base_url
    groups = []
    for key in ("by_organism", "by_imaging_method", "by_source"):
        group = STATS_GROUPS[key]
        values = facet_links(stats.get(key, {}), group["facet"])
        more = f"{base}/stats" if len(values) > HOME_FACET_VALUES else None
        groups.append({"title": group["title"], "counts": values[:HOME_FACET_VALUES], "more": more})
    return groups


@blp.route("/")
@blp.response(200, TEXT, content_type=HTML, description="The home page")
@blp.doc(
    operationId="getHome",
    summary="Home page (HTML) or the catalog's entry points (JSON)",
    responses=responses(formats(200, "application/json", schema=EntryPoints), errors(406)),
)
def home() -> Response:
    media = choose(["text/html", "application/json"])
    base = settings().base_url
    if media == "application/json":
        links = {
            name: f"{base}{path}"
            for name, path in (
                ("studies", "/studies"),
                ("search", "/search"),
                ("sparql", "/sparql"),
                ("openapi", "/openapi.json"),
                ("void", "/.well-known/void"),
                ("sparql_examples", "/.well-known/sparql-examples"),
                ("stats", "/stats"),
                ("sitemap", "/sitemap.xml"),
            )
        }
        return Response(json.dumps(links), mimetype=media)
    stats = catalog_stats()
    catalog = {  # the DataCatalog every study's includedInDataCatalog names
        "@context": "http://schema.org/",
        "@type": "DataCatalog",
        "@id": f"{base}/#catalog",
        "name": settings().catalog_name,
        "url": f"{base}/",
        "description": f"{settings().catalog_name}: REMBI metadata of {stats['studies']} released bioimaging studies.",
        "measurementTechnique": sorted(stats.get("by_imaging_method", {}))[:50],
    }
    return Response(
        render_template(
            "home.html",
            stats=stats,
            recent=recent_studies(),
            browse=browse_groups(stats),
            settings=settings(),
            catalog_jsonld=script_json(catalog),
        ),
        mimetype=media,
    )


def growth_chart(growth: list[dict], width: int = 600, height: int = 200) -> dict:
    """Points of the cumulative-growth line, drawn as inline SVG (no script, no external asset)."""
    if not growth:
        return {"points": "", "width": width, "height": height, "labels": []}
    top = max(row["cumulative"] for row in growth) or 1
    step = width / max(1, len(growth) - 1)
    points = " ".join(f"{i * step:.1f},{height - row['cumulative'] / top * (height - 10):.1f}" for i, row in enumerate(growth))
    return {
        "points": points,
        "width": width,
        "height": height,
        "top": top,
        "first": growth[0]["month"],
        "last": growth[-1]["month"],
    }


def _lastmods() -> dict[str, str]:
    """Each released study's sitemap ``lastmod``: when its record last changed (else when its entry did)."""
    archive = services().archive
    dates = {r.accession: (r.updated_at or "")[:10] for r in archive.registry.studies(states=(RELEASED,))}
    for iri, changed in archive.public.records.changed().items():
        accession = identifiers.accession_of(iri)
        if accession:
            dates[accession] = dt.datetime.fromtimestamp(changed, dt.timezone.utc).date().isoformat()
    return dates


@blp.route("/sitemap.xml")
@blp.arguments(SitemapArgs, location="query")
@blp.response(200, TEXT, content_type="application/xml", description="A sitemap (or, past 50 000 studies, a sitemap index)")
@blp.doc(
    operationId="getSitemap", summary="Sitemap of study pages (a sitemap index past 50 000 URLs)", responses=errors(400, 404)
)
def sitemap(args: dict[str, Any]) -> Response:
    accessions = services().archive.public.search.accessions()
    base = settings().base_url
    page = request.args.get("page")
    if page is None and len(accessions) > SITEMAP_URLS:
        pages = (len(accessions) + SITEMAP_URLS - 1) // SITEMAP_URLS
        entries = "".join(f"<sitemap><loc>{escape(base)}/sitemap.xml?page={i + 1}</loc></sitemap>" for i in range(pages))
        body = f'<?xml version="1.0" encoding="UTF-8"?>\n<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{entries}</sitemapindex>\n'
        return Response(body, mimetype="application/xml")
    number = args["page"]
    chunk = accessions[(number - 1) * SITEMAP_URLS : number * SITEMAP_URLS]
    if page is not None and not chunk:
        abort(404)

    lastmods, today = _lastmods(), dt.date.today().isoformat()

    def lines() -> Iterator[str]:
        yield '<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n'
        for accession in chunk:
            url = escape(identifiers.study_iri(base, accession))
            yield f"<url><loc>{url}</loc><lastmod>{lastmods.get(accession) or today}</lastmod></url>\n"
        yield "</urlset>\n"

    return Response(streamed(lines(), "the sitemap"), mimetype="application/xml")


#: What crawlers are kept out of: endless filter and query combinations, dumps and deposits. The downloads the
#: records advertise (a study's zip, a file's bytes: ``contentUrl`` and signposting ``item`` links) stay open, so that
#: what a record names is what a crawler may fetch; their query variants do not.
ROBOTS_DISALLOW = [
    "/sparql",
    "/search",
    "/studies/*/files?",
    "/studies/*/download?",
    "/studies/*/manifest",
    "/files/*/download?",
    "/export.nq",
    "/links.",
    "/deposit",
    "/me/",
]


@blp.route("/robots.txt")
@blp.response(200, TEXT, content_type="text/plain")
@blp.doc(operationId="getRobots", summary="robots.txt naming the sitemap")
def robots() -> Response:
    rules = "".join(f"Disallow: {path}\n" for path in ROBOTS_DISALLOW)
    return Response(f"User-agent: *\n{rules}Allow: /\nSitemap: {settings().base_url}/sitemap.xml\n", mimetype="text/plain")


@blp.route("/export.nq")
@blp.response(200, TEXT, content_type="application/n-quads", description="N-Quads, streamed")
@blp.doc(operationId="exportNquads", summary="Every released study as N-Quads (one named graph per study)")
def export() -> Response:
    archive = services().archive

    def chunks() -> Iterator[bytes]:
        from catalog.archive import as_nquads

        store = archive.public.reads
        for graph in store.graphs():  # every study's graph and the link graphs
            yield as_nquads(store, graph)

    return Response(streamed(chunks(), "/export.nq"), mimetype="application/n-quads")


@blp.route("/rembi.context.jsonld")
@blp.response(200, JSONLD, content_type="application/ld+json")
@blp.doc(
    operationId="getRembiContext", summary="The REMBI JSON-LD context generated from the LinkML schema", responses=STATIC_ANSWERS
)
def rembi_context() -> Response:
    from catalog import resources

    return send_from_directory(resources.generated_folder(), "rembi.context.jsonld", mimetype="application/ld+json")


@blp.route("/static/swagger-ui/<path:name>")
@blp.response(200, BINARY, content_type="*/*", description="The asset (JavaScript, CSS, HTML, images)")
@blp.doc(
    operationId="getSwaggerUiAsset",
    summary="Swagger UI assets (vendored from the swagger-ui-bundle package)",
    responses=responses(STATIC_ANSWERS, errors(404)),
)
def swagger_assets(name: str) -> Response:
    import swagger_ui_bundle

    return send_from_directory(swagger_ui_bundle.swagger_ui_path, name)
