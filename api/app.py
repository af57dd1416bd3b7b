"""The Flask application factory: ``create_app(settings)`` builds the app; nothing happens at import time."""

from __future__ import annotations

import atexit
from typing import Any

from flask import Flask

from api.body_limits import limit_request_bodies
from api.errors import register_error_handlers
from api.openapi import Api
from api.services import Services, open_services
from catalog.config import Settings

API_TITLE = "BioImage Archive catalog API"
API_VERSION = "1"


def create_app(
    settings: Settings | None = None, *, services: Services | None = None, config: dict[str, Any] | None = None
) -> Flask:
    """An app serving ``settings`` (default: from ``BIA_*`` variables); ``services`` lets tests share an archive."""
    settings = settings or Settings.from_env()
    opened = services or open_services(settings, recover=False)
    settings = settings.with_(base_url=opened.archive.settings.base_url)  # the base URL the catalog remembers
    app = Flask(__name__)
    app.config.update(
        API_TITLE=API_TITLE,
        API_VERSION=API_VERSION,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="/docs",
        OPENAPI_SWAGGER_UI_URL="/static/swagger-ui/",
        JSON_SORT_KEYS=False,
        MAX_CONTENT_LENGTH=settings.max_request_bytes,  # streamed uploads lift it: api/body_limits.py
    )
    app.config.update(config or {})
    app.extensions["bia.settings"] = settings
    app.jinja_env.globals["as_list"] = lambda value: value if isinstance(value, list) else ([] if value is None else [value])
    from api.records import canonical_url, self_url

    app.jinja_env.globals["self_url"] = self_url
    app.jinja_env.globals["canonical_url"] = canonical_url
    _register_link_and_header_rules(app, settings)
    app.extensions["bia.services"] = opened
    if services is None:
        atexit.register(opened.close)
    from api.sparql_workers import QueryRunner

    app.extensions["bia.sparql"] = QueryRunner(opened.archive, settings)
    for view in (opened.archive.public, opened.archive.private):  # this node's search index follows the shared documents
        if view is not None:
            view.search.follow_in_background()
    if not settings.read_only and settings.background != "off":  # replicas and BIA_BACKGROUND=off nodes leave them to others
        opened.maintenance.start()  # recovery, releases, re-rendering, clean-up: in the lease holder only
        opened.start_jobs()  # one job worker thread per serving process (catalog/jobs.py)

    api = Api(app)  # the description, the one error shape, bearer tokens: api/openapi.py
    register_error_handlers(app)  # after Api(): flask-smorest registers its own HTTPException handler
    limit_request_bodies(app, settings.max_request_bytes)
    from api import (
        routes_crate,
        routes_deposits,
        routes_files,
        routes_images,
        routes_oai,
        routes_portal,
        routes_search,
        routes_signposting,
        routes_site,
        routes_sparql,
        routes_studies,
        routes_zarr,
    )

    blueprints = (
        routes_site,
        routes_studies,
        routes_signposting,
        routes_crate,
        routes_files,
        routes_images,
        routes_zarr,
        routes_search,
        routes_sparql,
        routes_deposits,
        routes_oai,
    )
    for module in (*blueprints, routes_portal):
        api.register_blueprint(module.blp)

    @app.after_request
    def vary_on_accept(response):
        response.headers.add("Vary", "Accept")
        return response

    from api.sparql_fast import SparqlFastPath

    app.wsgi_app = app.extensions["bia.sparql_fast"] = SparqlFastPath(app, app.wsgi_app)  # type: ignore[method-assign]
    if settings.sparql_cache_mb > 0:
        from api.sparql_cache import SparqlResultCache

        app.wsgi_app = SparqlResultCache(app.wsgi_app, opened.archive.public.reads.version, settings.sparql_cache_mb << 20)  # type: ignore[method-assign]
        app.extensions["bia.sparql_cache"] = app.wsgi_app
    return app


def _register_link_and_header_rules(app: Flask, settings: Settings) -> None:
    """Pages link only to web IRIs (``|href``, ``is web_iri``) and show pictures only from them (``|src``); every
    answer carries the security headers."""
    from api.html_links import href, is_web_iri, src
    from api.security_headers import SecurityHeaders, csp_nonce

    app.jinja_env.filters["href"] = href
    app.jinja_env.filters["src"] = src
    app.jinja_env.tests["web_iri"] = is_web_iri
    app.jinja_env.globals["csp_nonce"] = csp_nonce
    app.after_request(SecurityHeaders(app.jinja_loader, settings.base_url).apply)
