"""Runtime configuration read from ``BIA_*`` environment variables.

Nothing here runs at import time: call :func:`Settings.from_env` (the CLI and the app
factory do) and pass the result down.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping


def _bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _choice(*allowed: str) -> Callable[[str], str]:
    def convert(value: str) -> str:
        value = value.strip().lower()
        if value not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return value

    return convert


#: the source archives' public file servers (issue 16): BioStudies (and so the BioImage Archive) and EMPIAR
DEFAULT_HEADER_SOURCES: tuple[tuple[str, str], ...] = (
    ("biostudies", "https://ftp.ebi.ac.uk/biostudies/fire/{relpath}/Files/"),
    ("empiar", "https://ftp.ebi.ac.uk/empiar/world_availability/{number}/"),
)


def parse_header_sources(text: str) -> tuple[tuple[str, str], ...]:
    """``name=https://host/base/,name=…`` (commas or white space between entries) → ``((name, url), …)``; each URL
    http(s) with a host. ``none`` (or only blanks): no source."""
    from urllib.parse import urlsplit

    found: list[tuple[str, str]] = []
    for entry in re.split(r"[\s,]+", text.strip()):
        if not entry or entry.lower() == "none":
            continue
        name, sep, url = entry.partition("=")
        parts = urlsplit(url)
        if not sep or not re.fullmatch(r"[a-z][a-z0-9_-]*", name) or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{entry!r} is not name=http(s)://host/base/ (e.g. biostudies=https://ftp.ebi.ac.uk/…)")
        found.append((name, url))
    return tuple(found)


@dataclass(frozen=True)
class Settings:
    """Everything a catalog needs to know about where it keeps things."""

    #: folder holding the embedded graph store, the local file store and the indexes
    data_dir: Path = Path("./bia-data")
    #: PostgreSQL holding the catalog's state (``postgresql://user:pass@host:5432/bia``), shared by every API node;
    #: unset: SQLite in ``data_dir`` (one host)
    database_url: str | None = None
    #: base of every IRI the catalog mints, e.g. ``https://www.example.org/bia``
    base_url: str = "http://localhost:5000"
    #: prefix of minted accessions
    accession_prefix: str = "S-BIAD"
    #: a SPARQL 1.1 server (query/update/graph store) to use instead of the embedded store;
    #: its query, update and GSP URLs are derived as ``{url}/query``, ``{url}/update``, ``{url}/store``
    sparql_url: str | None = None
    #: a second SPARQL server (or dataset) holding only released studies: the public read path
    public_sparql_url: str | None = None
    #: S3-compatible object storage for files; local folder under ``data_dir`` when unset
    s3_endpoint: str | None = None
    s3_bucket: str = "bia"
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    s3_secure: bool = False
    s3_region: str | None = None
    #: seconds a public SPARQL query may run
    sparql_timeout: float = 30.0
    #: largest SPARQL result (bytes) the endpoint returns; larger ones are refused (add a LIMIT)
    sparql_max_bytes: int = 50_000_000
    #: query worker processes of the embedded SPARQL endpoint (killed and replaced at the time limit)
    sparql_workers: int = 2
    #: public SPARQL queries on a copy of the public graph kept in ``data_dir/replica`` (``auto``: when the public
    #: store is a remote server, whose queries cannot be stopped at the time limit; ``off``: sent to that server)
    sparql_replica: str = "auto"
    #: MiB of answers to repeated public SPARQL GETs kept per process until the next snapshot (0: none)
    sparql_cache_mb: int = 64
    #: largest SPARQL query text (bytes, UTF-8) the endpoint reads; a larger one is refused (413) unread
    sparql_max_query_bytes: int = 1 << 20
    #: deepest nesting of ``{ }``, ``( )`` and ``[ ]`` a SPARQL query may have (deeper: 400)
    sparql_max_depth: int = 256
    #: most UNION, OPTIONAL, MINUS and operators (``|| && = < + * / !``…, property paths too) a query may hold
    sparql_max_operators: int = 4096
    #: SPARQL queries one client (address) may have running or waiting at once, per process; more get 429
    #: (0: one less than the query workers, at least 1)
    sparql_max_per_client: int = 0
    #: reverse proxies in front of the app that append to ``X-Forwarded-For``: a client's address is the entry
    #: that many from the end (0: the connection's address; the header is ignored)
    trusted_proxies: int = 0
    #: serve the public view only, from read-only handles that follow the writer's snapshots: lets several
    #: worker processes serve one embedded catalog while a single writer (CLI, harvests) changes it
    read_only: bool = False
    #: name of the catalog in pages and in the schema.org DataCatalog
    catalog_name: str = "BioImage Archive catalog"
    #: SERVICE endpoints a public SPARQL query may call (empty: none)
    sparql_service_allowlist: tuple[str, ...] = field(default_factory=tuple)
    #: the BioStudies API (``{url}/studies/{accession}`` and ``/info``) harvests fetch from
    biostudies_url: str = "https://www.ebi.ac.uk/biostudies/api/v1"
    #: where BioStudies file lists are fetched from (``{url}/{accession}/Files/{name}``); default: the
    #: ``httpLink`` the study's ``/info`` gives
    biostudies_files_url: str | None = None
    #: the EMPIAR REST API (``{url}/entry/{id}``)
    empiar_url: str = "https://www.ebi.ac.uk/empiar/api"
    #: folder of IDR study files (``{url}/{idrNNNN-name}/{idrNNNN}-study.txt``)
    idr_url: str = "https://raw.githubusercontent.com/IDR/idr-metadata/master"
    #: seconds between two requests to the same host during a harvest (politeness)
    harvest_interval: float = 0.5
    #: attempts per request before a harvest gives up on a record
    harvest_attempts: int = 4
    #: seconds a lease on in-flight work lasts unless its holder renews it (a crashed holder's work is taken over
    #: after this; on the same host at once)
    lease_seconds: float = 60.0
    #: seconds between two rounds of background duties (recovery, releases, clean-up) in the serving process
    #: that holds the maintenance lease
    maintenance_interval: float = 30.0
    #: whether serving processes take part in background duties (``auto``: the one holding the maintenance lease does
    #: them) or leave them to ``bia worker`` processes (``off``)
    background: str = "auto"
    #: attempts a job (catalog.jobs: e.g. reading an image's header) gets before it is marked failed with its reason
    #: (an outage costs no attempt)
    job_attempts: int = 3
    #: seconds a job that failed waits before it is tried again
    job_retry_seconds: float = 10.0
    #: seconds an idle job worker waits before it looks for new jobs again
    job_poll_seconds: float = 2.0
    #: days an open submission may go unchanged before it expires and its staged bytes are removed
    submission_ttl_days: float = 30.0
    #: largest study metadata document (PageTab, REMBI JSON/YAML) deposits, the web form and ``bia validate`` read
    max_metadata_bytes: int = 16 * 1024 * 1024
    #: largest request body of any endpoint but the streamed uploads of files and file lists (larger: a 413)
    max_request_bytes: int = 64 * 1024 * 1024
    # node failure behaviour (issue 15)
    #: seconds to wait for a remote SPARQL server to accept a connection
    sparql_connect_timeout: float = 5.0
    #: seconds a read of a remote SPARQL server (query, graph download) may wait for the next bytes before it
    #: fails with 503: a hung server then holds a request thread this long at most
    sparql_read_timeout: float = 30.0
    #: seconds a write to a remote SPARQL server (update, graph upload, bulk copy) may wait for an answer
    sparql_write_timeout: float = 600.0
    #: seconds a remote SPARQL server that timed out is not asked again (calls fail at once with 503 meanwhile,
    #: then one call tries it); 0: ask every time
    sparql_retry_seconds: float = 10.0
    #: paths of the query, update and Graph Store Protocol endpoints under a remote store's URL (Fuseki:
    #: ``/sparql`` or ``/query``, ``/update``, ``/data``)
    sparql_query_path: str = "/query"
    sparql_update_path: str = "/update"
    sparql_store_path: str = "/store"
    #: the S3 address clients reach (``host:port`` or an ``http(s)://`` URL) when it is not the one the catalog
    #: uses: presigned download URLs are signed for it (the signature covers the host)
    s3_public_endpoint: str | None = None
    #: seconds ``/ready`` waits for all its checks together (database, graph servers, file store)
    ready_timeout: float = 3.0
    # image headers (issue 16)
    #: bytes a header read may take from one file (a larger OME-XML or header is refused: the file is unreadable)
    header_max_bytes: int = 32 << 20
    #: seconds a header read may run before its sandboxed worker is killed (the file is unreadable)
    header_timeout: float = 10.0
    #: MiB of address space of a header-reading worker process (RLIMIT_AS); 0: no cap
    header_max_memory_mb: int = 1024
    #: header-reading worker processes (0: one per core)
    header_workers: int = 0
    # OME-Zarr of images (issue 17: loaders.ngff)
    #: seconds one file's OME-Zarr may take to make (reference, convert or unpack) before its worker is killed
    ome_zarr_timeout: float = 3600.0
    #: MiB of address space of a converting worker process (RLIMIT_AS); 0: no cap
    ome_zarr_max_memory_mb: int = 1024
    #: converting worker processes
    ome_zarr_workers: int = 1
    #: pixels an image may claim at most to be converted or referenced (a larger claim fails its job)
    ome_zarr_max_pixels: int = 1 << 34
    #: bytes an uploaded ``.ome.zarr.zip`` may unpack to at most
    ome_zarr_max_unpacked_bytes: int = 64 << 30
    #: bytes of a file held in S3 or at a harvested study's source the converter copies into its temporary folder at
    #: most (a larger file fails its job and says so)
    ome_zarr_max_source_bytes: int = 16 << 30
    #: bytes of one chunk of a harvested file's virtual store the server fetches from the file's source archive for a
    #: request at most (a larger chunk is a 413: read it through the reference document, ``…/ome.zarr.json``)
    ome_zarr_max_proxy_bytes: int = 64 << 20
    #: image nodes a study's graph gets from its files' headers at most (the rest are in its file table)
    image_nodes_max: int = 1000
    #: where the files of harvested studies are read from (``bia harvest --headers``, ``bia reindex --headers``):
    #: source name → base URL template (``{relpath}``: BioStudies' ``S-BIAD/590/S-BIAD590``, ``{accession}``,
    #: ``{number}``), the file's path appended; only these hosts are ever asked (``name=url,name=url``; empty: none)
    header_sources: tuple[tuple[str, str], ...] = field(default_factory=lambda: DEFAULT_HEADER_SOURCES)
    #: seconds one HTTP Range request of a remote header read may take (connecting, waiting, reading)
    header_request_timeout: float = 5.0
    #: staged image files whose headers one deposit validation reads at most (chosen evenly over the paths)
    deposit_header_files: int = 200
    #: seconds one deposit validation waits for header reads; files still unread then are named, never rejected
    deposit_header_seconds: float = 30.0
    #: seconds a preview (thumbnails and view of one file's images, or one rendered plane) may take in its worker
    preview_timeout: float = 60.0
    #: address space of a preview worker, MiB (files of any size render by chunked reads within it)
    preview_max_memory_mb: int = 512
    #: preview worker processes (0: one per core)
    preview_workers: int = 0
    #: bytes drawing one image (or one plane) may fetch by HTTP Range requests from a file held in S3 or by a source
    #: archive (past it, the preview fails and says so)
    preview_max_source_bytes: int = 2 << 30
    #: records (or headers) per OAI-PMH list response; a resumption token asks for the next page (``/oai``)
    oai_page_size: int = 100
    #: the address OAI-PMH ``Identify`` names as the repository's administrator
    admin_email: str = "admin@example.org"
    #: names of the fields set explicitly (environment or overrides); None: those that differ from the defaults
    given: frozenset[str] | None = field(default=None, compare=False, repr=False)

    #: field name: (environment variable, converter from its text)
    ENV: ClassVar[dict[str, tuple[str, Callable[[str], Any]]]] = {
        "data_dir": ("BIA_DATA", Path),
        "database_url": ("BIA_DATABASE_URL", str),
        "base_url": ("BIA_BASE_URL", str),
        "accession_prefix": ("BIA_ACCESSION_PREFIX", str),
        "sparql_url": ("BIA_SPARQL_URL", str),
        "public_sparql_url": ("BIA_PUBLIC_SPARQL_URL", str),
        "s3_endpoint": ("BIA_S3_ENDPOINT", str),
        "s3_bucket": ("BIA_S3_BUCKET", str),
        "s3_access_key": ("BIA_S3_ACCESS_KEY", str),
        "s3_secret_key": ("BIA_S3_SECRET_KEY", str),
        "s3_secure": ("BIA_S3_SECURE", _bool),
        "s3_region": ("BIA_S3_REGION", str),
        "sparql_timeout": ("BIA_SPARQL_TIMEOUT", float),
        "sparql_max_bytes": ("BIA_SPARQL_MAX_BYTES", int),
        "sparql_workers": ("BIA_SPARQL_WORKERS", int),
        "sparql_cache_mb": ("BIA_SPARQL_CACHE_MB", int),
        "sparql_replica": ("BIA_SPARQL_REPLICA", _choice("auto", "off")),
        "sparql_max_query_bytes": ("BIA_SPARQL_MAX_QUERY_BYTES", int),
        "sparql_max_depth": ("BIA_SPARQL_MAX_DEPTH", int),
        "sparql_max_operators": ("BIA_SPARQL_MAX_OPERATORS", int),
        "sparql_max_per_client": ("BIA_SPARQL_MAX_PER_CLIENT", int),
        "trusted_proxies": ("BIA_TRUSTED_PROXIES", int),
        "catalog_name": ("BIA_CATALOG_NAME", str),
        "read_only": ("BIA_READ_ONLY", _bool),
        "biostudies_url": ("BIA_BIOSTUDIES_URL", str),
        "biostudies_files_url": ("BIA_BIOSTUDIES_FILES_URL", str),
        "empiar_url": ("BIA_EMPIAR_URL", str),
        "idr_url": ("BIA_IDR_URL", str),
        "harvest_interval": ("BIA_HARVEST_INTERVAL", float),
        "harvest_attempts": ("BIA_HARVEST_ATTEMPTS", int),
        "lease_seconds": ("BIA_LEASE_SECONDS", float),
        "maintenance_interval": ("BIA_MAINTENANCE_INTERVAL", float),
        "submission_ttl_days": ("BIA_SUBMISSION_TTL_DAYS", float),
        "job_attempts": ("BIA_JOB_ATTEMPTS", int),
        "job_retry_seconds": ("BIA_JOB_RETRY_SECONDS", float),
        "job_poll_seconds": ("BIA_JOB_POLL_SECONDS", float),
        "background": ("BIA_BACKGROUND", _choice("auto", "off")),
        "max_metadata_bytes": ("BIA_MAX_METADATA_BYTES", int),
        "max_request_bytes": ("BIA_MAX_REQUEST_BYTES", int),
        "sparql_service_allowlist": (
            "BIA_SPARQL_SERVICE_ALLOWLIST",
            lambda v: tuple(u for u in re.split(r"[\s,]+", v) if u),
        ),
        # node failure behaviour (issue 15)
        "sparql_connect_timeout": ("BIA_SPARQL_CONNECT_TIMEOUT", float),
        "sparql_read_timeout": ("BIA_SPARQL_READ_TIMEOUT", float),
        "sparql_write_timeout": ("BIA_SPARQL_WRITE_TIMEOUT", float),
        "sparql_retry_seconds": ("BIA_SPARQL_RETRY_SECONDS", float),
        "sparql_query_path": ("BIA_SPARQL_QUERY_PATH", str),
        "sparql_update_path": ("BIA_SPARQL_UPDATE_PATH", str),
        "sparql_store_path": ("BIA_SPARQL_STORE_PATH", str),
        "s3_public_endpoint": ("BIA_S3_PUBLIC_ENDPOINT", str),
        "ready_timeout": ("BIA_READY_TIMEOUT", float),
        # image headers (issue 16)
        "header_max_bytes": ("BIA_HEADER_MAX_BYTES", int),
        "header_timeout": ("BIA_HEADER_TIMEOUT", float),
        "header_max_memory_mb": ("BIA_HEADER_MAX_MEMORY_MB", int),
        "header_workers": ("BIA_HEADER_WORKERS", int),
        "ome_zarr_timeout": ("BIA_OME_ZARR_TIMEOUT", float),
        "ome_zarr_max_memory_mb": ("BIA_OME_ZARR_MAX_MEMORY_MB", int),
        "ome_zarr_workers": ("BIA_OME_ZARR_WORKERS", int),
        "ome_zarr_max_pixels": ("BIA_OME_ZARR_MAX_PIXELS", int),
        "ome_zarr_max_unpacked_bytes": ("BIA_OME_ZARR_MAX_UNPACKED_BYTES", int),
        "ome_zarr_max_source_bytes": ("BIA_OME_ZARR_MAX_SOURCE_BYTES", int),
        "ome_zarr_max_proxy_bytes": ("BIA_OME_ZARR_MAX_PROXY_BYTES", int),
        "image_nodes_max": ("BIA_IMAGE_NODES_MAX", int),
        "header_sources": ("BIA_HEADER_SOURCES", parse_header_sources),
        "header_request_timeout": ("BIA_HEADER_REQUEST_TIMEOUT", float),
        "deposit_header_files": ("BIA_DEPOSIT_HEADER_FILES", int),
        "deposit_header_seconds": ("BIA_DEPOSIT_HEADER_SECONDS", float),
        "preview_timeout": ("BIA_PREVIEW_TIMEOUT", float),
        "preview_max_memory_mb": ("BIA_PREVIEW_MAX_MEMORY_MB", int),
        "preview_workers": ("BIA_PREVIEW_WORKERS", int),
        "preview_max_source_bytes": ("BIA_PREVIEW_MAX_SOURCE_BYTES", int),
        # harvesting by others (issue 19)
        "oai_page_size": ("BIA_OAI_PAGE_SIZE", int),
        "admin_email": ("BIA_ADMIN_EMAIL", str),
    }

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        """Settings from ``BIA_*`` variables; explicit keyword overrides win."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, (var, convert) in cls.ENV.items():
            raw = environ.get(var)
            if raw not in (None, ""):
                try:
                    values[name] = convert(raw)
                except ValueError as exc:
                    raise ValueError(f"environment variable {var}={raw!r}: {exc}") from exc
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "data_dir" in values:
            values["data_dir"] = Path(values["data_dir"])
        given = frozenset(values)
        values["base_url"] = str(values.get("base_url", cls.base_url)).rstrip("/")
        return cls(**values, given=given)

    def with_(self, **changes: Any) -> "Settings":
        """A copy with some fields changed (they count as given)."""
        given = None if self.given is None else self.given | set(changes)
        return replace(self, **changes, given=given)

    def is_given(self, name: str) -> bool:
        """Whether the field was set explicitly rather than left at its default."""
        if self.given is not None:
            return name in self.given
        return getattr(self, name) != getattr(type(self), name, None)


__all__ = ["Settings"]
