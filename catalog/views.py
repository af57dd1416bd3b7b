"""The two views of a catalog: *public* (released studies only) and *private* (studies under embargo).

Each view has its own graph store (a folder, or a SPARQL server), file index and search index; its rendered
records and search documents are rows of the state database marked with the view's name. A study lives in exactly one of them: in the private view until its release date, then it is moved
to the public one. Every public read path (SPARQL, search, facets, listings, sitemap, exports, files) is built
on the public view only, so it physically cannot see unreleased data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from catalog.config import Settings
from catalog.file_index import FileIndex
from catalog.file_store import FileStore
from catalog.graph_changes import RecordedGraphStore
from catalog.graph_store import GraphStore
from catalog.graph_store_embedded import writer_lock_holder
from catalog.stores import open_graph_store
from catalog.record_index import RecordIndex
from catalog.search_index import SearchIndex
from catalog.state_db import StateDB

PUBLIC, PRIVATE = "public", "private"


@dataclass
class CatalogView:
    """The stores of one visibility."""

    name: str
    graph: GraphStore
    search: SearchIndex
    files: FileIndex
    #: the rendered record of each of the view's studies
    records: RecordIndex
    #: the handle read paths use: a follower of the published snapshots (embedded), so a reader never sees a
    #: graph half-replaced; the store itself where it is already consistent (remote, read-only)
    reader: GraphStore | None = None

    @property
    def reads(self) -> GraphStore:
        return self.reader or self.graph

    def close(self) -> None:
        for part in (self.graph, self.reader, self.search, self.files, self.records):
            close = getattr(part, "close", None)
            if close:
                close()


def _graph_location(settings: Settings, name: str) -> str | Path:
    remote = settings.public_sparql_url if name == PUBLIC else settings.sparql_url
    if settings.sparql_url or settings.public_sparql_url:
        if not (settings.sparql_url and settings.public_sparql_url):
            raise ValueError(
                "a remote graph store needs two SPARQL servers (or datasets): BIA_SPARQL_URL for studies under "
                "embargo and BIA_PUBLIC_SPARQL_URL for released ones"
            )
        return remote  # type: ignore[return-value]
    return settings.data_dir / "graph" / name


def writer_holder(settings: Settings) -> str | None:
    """Who holds the embedded graph stores of the catalog ``settings`` name for writing (``process 1234 (bia serve
    …)``: a running server, or a command that writes), or None: free, or remote stores (no lock to hold)."""
    for name in (PUBLIC, PRIVATE):
        location = _graph_location(settings, name)
        holder = writer_lock_holder(location) if isinstance(location, Path) else None
        if holder:
            return holder
    return None


def open_view(
    settings: Settings, name: str, state: StateDB, read_only: bool = False, file_store: FileStore | None = None
) -> CatalogView:
    """Open (creating if needed) the stores of the ``public`` or ``private`` view (``read_only``: a snapshot
    follower of the graph store, for serving processes beside one writer; ``file_store``: where published file
    tables are shared between nodes)."""
    if name not in (PUBLIC, PRIVATE):
        raise ValueError(f"unknown view {name!r}")
    index_dir = settings.data_dir / "index" / name
    index_dir.mkdir(parents=True, exist_ok=True)
    location = _graph_location(settings, name)
    if isinstance(location, Path):
        location.mkdir(parents=True, exist_ok=True)
    graph = open_graph_store(location, read_only=read_only, settings=settings)
    if name == PUBLIC and not isinstance(location, Path):  # nodes' copies of the public graph follow its writes
        graph = RecordedGraphStore(graph, state, PUBLIC)
    return CatalogView(
        name=name,
        graph=graph,
        # read paths are public; the private view is read by its owners through the writer
        reader=open_graph_store(location, read_only=True)
        if isinstance(location, Path) and not read_only and name == PUBLIC
        else None,
        search=SearchIndex(index_dir / "search", state, name),
        files=FileIndex(index_dir / "files", state, name, file_store),
        records=RecordIndex(state, name),
    )
