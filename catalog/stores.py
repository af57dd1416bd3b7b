"""Open the file store and the graph store a configuration asks for.

The base modules (:mod:`catalog.file_store`, :mod:`catalog.graph_store`) define the interfaces and know none of
their implementations; this module is the one place that picks an implementation.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from catalog.config import Settings
from catalog.file_store import FileStore
from catalog.file_store_local import LocalFileStore
from catalog.file_store_s3 import S3FileStore
from catalog.graph_store import GraphStore
from catalog.graph_store_embedded import EmbeddedGraphStore
from catalog.graph_store_remote import RemoteGraphStore, RemoteOptions


def open_file_store(settings: Settings) -> FileStore:
    """The S3 store when ``settings.s3_endpoint`` is set (creating its bucket), else ``data_dir/files``."""
    if settings.s3_endpoint:
        store = S3FileStore.from_settings(settings)
        store.ensure_bucket()
        return store
    return LocalFileStore(settings.data_dir / "files")


def open_graph_store(
    location: str | Path, read_only: bool = False, *, settings: Settings | None = None, **options: Any
) -> GraphStore:
    """Open the store at ``location``: a folder (embedded Oxigraph) or an ``http(s)://`` base URL.

    ``read_only`` opens a consistent snapshot that follows the writer's published checkpoints (embedded) —
    the handle for read paths that must never see a half-made change. A remote store takes its endpoint paths and
    time limits from ``settings`` (default: :class:`RemoteOptions`' defaults), ``options`` changing some of them.
    """
    if isinstance(location, str) and location.startswith(("http://", "https://")):
        base = RemoteOptions.from_settings(settings) if settings is not None else RemoteOptions()
        return RemoteGraphStore(location, replace(base, **options))
    return EmbeddedGraphStore(Path(location), read_only=read_only)
