"""What a catalog remembers about itself, so that no process can write into it under another identity.

A catalog's IRIs are minted under one base URL, and its studies live in the stores it was created with. Both are
written when the catalog is first opened: to ``BIA_DATA/CATALOG.json`` in an embedded catalog, to the state
database's ``meta`` table in a site whose state is in PostgreSQL (every node then reads the same memory). Every later open compares: a base URL that
was not given is taken from there (a CLI command run without ``BIA_BASE_URL`` mints under the catalog's own); a
different base URL given, or other stores (a shell that forgot ``BIA_PUBLIC_SPARQL_URL`` or ``BIA_S3_*``), is
refused with a message saying what the catalog uses, instead of writing studies that do not dereference or that
land in a new, empty store.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

from catalog.config import Settings
from catalog.errors import CatalogError
from catalog.state_db import StateDB, open_state_db

CATALOG_FILE = "CATALOG.json"
#: written by catalogs made before ``CATALOG.json``: the base URL alone
BASE_URL_FILE = "BASE_URL"


class CatalogMismatch(CatalogError):
    """The settings name another base URL or other stores than the catalog in ``BIA_DATA`` was made with."""

    status = 500
    code = "catalog_mismatch"


def stores_of(settings: Settings) -> dict[str, Any]:
    """The stores ``settings`` point at, as remembered (no credentials; URLs without a trailing ``/``, which names
    the same server)."""
    graph: Any = "embedded"
    if settings.sparql_url or settings.public_sparql_url:
        graph = {"public": settings.public_sparql_url, "private": settings.sparql_url}
    files: Any = "local"
    if settings.s3_endpoint:
        files = {"s3_endpoint": settings.s3_endpoint, "bucket": settings.s3_bucket}
    return _normal({"graph": graph, "files": files})


def _normal(stores: Any) -> Any:
    """Stores as compared: every URL without its trailing slashes."""
    if isinstance(stores, dict):
        return {key: _normal(value) for key, value in stores.items()}
    return stores.rstrip("/") if isinstance(stores, str) and "/" in stores else stores


def remembered(data_dir: Path) -> dict[str, Any] | None:
    """What the catalog in ``data_dir`` remembers (None for a new catalog)."""
    try:
        return json.loads((Path(data_dir) / CATALOG_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        pass
    try:
        base = (Path(data_dir) / BASE_URL_FILE).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return {"base_url": base} if base else None


def _recalled(data_dir: Path, state: StateDB | None) -> dict[str, Any] | None:
    """What the catalog remembers: from the shared state database if it has one, else from ``data_dir``."""
    if state is None or not state.shared:
        return remembered(data_dir)
    with state.transaction() as db:
        row = db.execute("SELECT value FROM meta WHERE name = 'catalog'").fetchone()
    return json.loads(row[0]) if row else None


def minted_base_url(settings: Settings) -> str | None:
    """The base URL the catalog ``settings`` name mints its IRIs under (None for a new catalog)."""
    if not settings.database_url:
        return (remembered(settings.data_dir) or {}).get("base_url")
    from catalog.state_schema import ensure_schema

    state = open_state_db(settings.database_url, settings.data_dir)
    try:
        ensure_schema(state)
        return (_recalled(settings.data_dir, state) or {}).get("base_url")
    finally:
        state.close()


def resolve(settings: Settings, state: StateDB | None = None) -> Settings:
    """``settings`` as the catalog they name (in ``data_dir``, or in the shared ``state`` database) must be opened
    with: its own base URL unless one was given; :class:`CatalogMismatch` if the given base URL or stores differ. A
    new catalog remembers them now."""
    data_dir = settings.data_dir
    known = _recalled(data_dir, state)
    stores = stores_of(settings)
    if state is not None and state.shared:
        stores = _pinned_to_host(stores, data_dir)
    if known is None or "graph" not in known:  # new, or made before stores were remembered: remember them now
        if known is not None and not settings.is_given("base_url"):
            settings = settings.with_(base_url=known["base_url"])
        _check_base(settings, known)
        if not settings.read_only:  # a read-only open (bia stats, bia export, a replica) mints nothing: it fixes nothing
            _write(data_dir, state, {"base_url": (known or {}).get("base_url", settings.base_url), **stores})
        return settings
    if not settings.is_given("base_url"):
        settings = settings.with_(base_url=known["base_url"])
    _check_base(settings, known)
    for part, shown in (
        ("graph", "graph stores (BIA_SPARQL_URL, BIA_PUBLIC_SPARQL_URL)"),
        ("files", "file store (BIA_S3_ENDPOINT, BIA_S3_BUCKET)"),
    ):
        if _normal(known.get(part)) != stores[part]:
            raise CatalogMismatch(
                f"the catalog in {_where(settings)} keeps its studies in the {shown} {_shown(known.get(part))}, but these "
                f"settings name {_shown(stores[part])}; set the same variables as the processes that made it"
            )
    return settings


def _pinned_to_host(stores: dict[str, Any], data_dir: Path) -> dict[str, Any]:
    """Stores as a shared database remembers them: embedded graphs or local files named by the host and folder that
    hold them, so that a node on another machine (or with another ``BIA_DATA``) is refused instead of writing
    studies no other node can see (graphs and files must then be in SPARQL servers and S3)."""
    here = f"{socket.gethostname()}:{Path(data_dir).resolve()}"
    pinned = dict(stores)
    if pinned["graph"] == "embedded":
        pinned["graph"] = {"embedded_in": here}
    if pinned["files"] == "local":
        pinned["files"] = {"local_in": here}
    return pinned


def _check_base(settings: Settings, known: dict[str, Any] | None) -> None:
    if known is not None and known.get("base_url") and known["base_url"] != settings.base_url:
        raise CatalogMismatch(
            f"the catalog in {_where(settings)} mints its IRIs under {known['base_url']}, but BIA_BASE_URL (or "
            f"--base-url) says {settings.base_url}: its records would not dereference. Unset it, or set it to "
            f"{known['base_url']}"
        )


def _where(settings: Settings) -> str:
    return "the database BIA_DATABASE_URL names" if settings.database_url else str(settings.data_dir)


def _shown(stores: Any) -> str:
    if stores == "embedded":
        return "embedded in BIA_DATA"
    if isinstance(stores, dict) and ("embedded_in" in stores or "local_in" in stores):
        return f"in BIA_DATA of {stores.get('embedded_in') or stores.get('local_in')} (host:folder)"
    if stores == "local":
        return "folder in BIA_DATA"
    return json.dumps(stores, sort_keys=True)


def _write(data_dir: Path, state: StateDB | None, content: dict[str, Any]) -> None:
    if state is not None and state.shared:
        with state.transaction(write=True) as db:
            db.execute(
                "INSERT INTO meta VALUES ('catalog', ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                (json.dumps(content, sort_keys=True),),
            )
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = data_dir / (CATALOG_FILE + ".tmp")
    tmp.write_text(json.dumps(content, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, data_dir / CATALOG_FILE)
    (data_dir / BASE_URL_FILE).write_text(content["base_url"] + "\n", encoding="utf-8")


__all__ = ["CatalogMismatch", "minted_base_url", "remembered", "resolve", "stores_of"]
