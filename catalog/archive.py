"""The archive: stores, registry and the one commit path every study goes through.

A study (deposited or harvested) is committed by :meth:`Archive.commit_study`:

1. the registry records the work in flight (state ``finalizing``): the journal;
2. the study's complete RDF — metadata and every file — is written to a temporary N-Triples file
   (streamed, so a 1.3 M-file list is never in memory) and swapped into the study's named graph of the view
   its release date puts it in (``public`` or ``private``), atomically: **the commit point**;
3. the derived indexes (file table, search) are updated from the same rows and from the stored graph;
4. a copy in the other view (release date changed) is dropped, and the registry records the final state.

A crash after (2) is rolled forward by :meth:`Archive.recover` from the stored graph; a crash before it
leaves the previous version (or nothing) in place. Release dates are applied by :meth:`release_due`, which
moves a study from the private to the public view by the same steps.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from rdflib import Graph

from catalog import identifiers
from catalog.config import Settings
from catalog.errors import NotFound
from catalog.file_store import FileStore, open_file_store
from catalog.registry import EMBARGOED, FAILED, FINALIZING, RELEASED, RELEASING, Registry, StudyRow
from catalog.rembi_model import load_model
from catalog.study_files import FilesSummary, StudyFile, write_file_triples
from catalog.study_record import build_record, rendering_fingerprint
from catalog.study_summary import study_document, study_files
from catalog.views import PRIVATE, PUBLIC, CatalogView, open_view

log = logging.getLogger(__name__)

FilesFactory = Callable[[], Iterable[StudyFile]]
MAX_RECOVERY_ATTEMPTS = 3


def _serialized(method):
    """Run an :class:`Archive` method under the archive's commit lock."""

    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with self._commit_lock:
            return method(self, *args, **kwargs)

    return locked


#: the base URL a catalog's IRIs were minted under, written when the catalog is created
BASE_URL_FILE = "BASE_URL"


def minted_base_url(data_dir: Path) -> str | None:
    """The base URL the catalog in ``data_dir`` mints its IRIs under (None for a new catalog)."""
    try:
        return (Path(data_dir) / BASE_URL_FILE).read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def today_iso() -> str:
    """Today's date in UTC, ``YYYY-MM-DD``."""
    return dt.datetime.now(dt.timezone.utc).date().isoformat()


@dataclass
class CommitResult:
    """What a commit stored."""

    accession: str
    view: str
    triples: int
    files: int
    total_size: int


class Archive:
    """A catalog's stores and lifecycle. Open one per process; close it when done."""

    def __init__(self, settings: Settings, *, recover: bool = True, public_only: bool = False) -> None:
        self.settings = settings
        self.model = load_model()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        minted = minted_base_url(settings.data_dir)
        if minted is None:
            (settings.data_dir / BASE_URL_FILE).write_text(settings.base_url + "\n", encoding="utf-8")
        elif minted != settings.base_url:
            log.warning(
                "this catalog's IRIs were minted under %s but BIA_BASE_URL is %s: records will not dereference; "
                "set BIA_BASE_URL=%s", minted, settings.base_url, minted,
            )
        self.registry = Registry(settings.data_dir / "registry.sqlite")
        self.file_store: FileStore = open_file_store(settings)
        public_only = public_only or settings.read_only
        self.public = open_view(settings, PUBLIC, read_only=settings.read_only)
        self.private: CatalogView | None = None if public_only else open_view(settings, PRIVATE)
        self.tmp_dir = settings.data_dir / "tmp"
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        #: one commit, release or delete at a time in this process (the graph store allows one writer process)
        self._commit_lock = threading.RLock()
        if recover and self.private is not None:
            self.recover()

    def close(self) -> None:
        self.public.close()
        if self.private is not None:
            self.private.close()

    def __enter__(self) -> "Archive":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ helpers

    def study_iri(self, accession: str) -> str:
        return identifiers.study_iri(self.settings.base_url, accession)

    def view(self, name: str) -> CatalogView:
        if name == PUBLIC:
            return self.public
        if self.private is None:
            raise RuntimeError("this archive was opened for the public read path only")
        return self.private

    def view_name_for(self, release_date: str, today: str | None = None) -> str:
        """``public`` if the release date has come, else ``private``."""
        return PUBLIC if release_date <= (today or today_iso()) else PRIVATE

    @contextlib.contextmanager
    def _temp_ntriples(self) -> Iterator[tuple[Path, "os._wrap_close"]]:
        fd, name = tempfile.mkstemp(prefix="study-", suffix=".nt", dir=self.tmp_dir)
        path = Path(name)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
                yield path, out  # type: ignore[misc]
        finally:
            path.unlink(missing_ok=True)

    # ------------------------------------------------------------------ commit

    @_serialized
    def commit_study(
        self,
        accession: str,
        metadata: Graph,
        files: FilesFactory,
        *,
        release_date: str,
        owner: str | None = None,
        source: str = "deposit",
        title: str | None = None,
        already_registered: bool = False,
        content_hash: str | None = None,
    ) -> CommitResult:
        """Store a study whole (metadata graph + files), replacing any previous version, and index it.

        ``files`` is called twice (graph, file table) and must yield the same files each time.
        """
        if not already_registered:
            self.registry.begin_put(accession, owner, release_date, source, title)
        target = self.view(self.view_name_for(release_date))
        study = self.study_iri(accession)

        def produce(out) -> FilesSummary:
            metadata_nt = metadata.serialize(format="nt")
            out.write(metadata_nt)
            summary = write_file_triples(out, study, files(), self.model)
            summary.triples += metadata_nt.count("\n")
            return summary

        # the file table is built beside the live one while the graph loads, and shown once the graph is in
        staged: dict[str, object] = {}

        def build_table() -> None:
            try:
                staged["table"] = target.files.build_study(accession, (f.table_row(study) for f in files()))
            except BaseException as exc:  # noqa: BLE001 - reported after the graph commit
                staged["error"] = exc

        builder = threading.Thread(target=build_table, name="file-table", daemon=True)
        builder.start()
        try:
            summary = target.graph.replace_graph_from(study, produce, tmp_dir=self.tmp_dir)  # the commit point
        except BaseException:
            builder.join()
            if "table" in staged:
                staged["table"].discard()  # type: ignore[attr-defined]
            raise
        builder.join()
        if "table" in staged:
            staged["table"].publish()  # type: ignore[attr-defined]
            target.search.upsert(self._document(target, accession))
            self._render_record(target, accession)
        else:
            log.warning("file table of %s not built (%s); rebuilding it from the graph", accession, staged.get("error"))
            self._index_from(target, accession, None)
        self._drop_elsewhere(accession, keep=target.name)
        self.registry.set_state(
            accession,
            RELEASED if target.name == PUBLIC else EMBARGOED,
            file_count=summary.files,
            total_size=summary.total_size,
            title=title,
            content_hash=content_hash,
        )
        return CommitResult(accession, target.name, summary.triples, summary.files, summary.total_size)

    def _document(self, view: CatalogView, accession: str):
        """The search document of a study in a view (its file counts from the view's file table)."""
        study = self.study_iri(accession)
        return study_document(view.graph, study, accession, self.model, files=view.files.totals(accession))

    def _rebuild_table(self, view: CatalogView, accession: str, files: FilesFactory | None = None):
        """Rebuild a study's file table (from ``files``, else from its stored graph); returns its search document."""
        study = self.study_iri(accession)
        rows = files() if files is not None else study_files(view.graph, study)
        view.files.replace_study(accession, (f.table_row(study) for f in rows))
        return self._document(view, accession)

    def _index_from(self, view: CatalogView, accession: str, files: FilesFactory | None) -> None:
        """Update the view's file table, search entry and rendered record of a study from its stored graph."""
        view.search.upsert(self._rebuild_table(view, accession, files))
        self._render_record(view, accession)

    @property
    def record_fingerprint(self) -> str:
        return rendering_fingerprint(self.settings.base_url, self.settings.catalog_name)

    def _render_record(self, view: CatalogView, accession: str) -> None:
        """Render a study's record from the view's graph into the view's record index (or drop a vanished one)."""
        study = self.study_iri(accession)
        try:
            record = build_record(view.graph, self.settings.base_url, study, catalog_name=self.settings.catalog_name,
                                  holds_files=lambda acc: self.holds_files(acc, view.name))
            body = record.body()
        except NotFound:
            view.records.delete(study)
            return
        except Exception:  # noqa: BLE001 - a rendering fault must not undo a commit; requests build the record
            log.exception("rendering the record of %s failed; it is built per request", accession)
            view.records.delete(study)
            return
        view.records.put(study, body, self.record_fingerprint)

    def holds_files(self, accession: str, view: str = PUBLIC) -> bool:
        """Whether the archive holds the bytes of the study's files (a deposit), not only their list (a harvested
        record whose files are elsewhere): judged by its first listed file."""
        try:
            first = self.view(view).files.query(accession, limit=1).items
        except NotFound:
            return False
        return bool(first) and self.file_store.stat(f"studies/{accession}/{first[0]['path']}") is not None

    @_serialized
    def render_records(self, accessions: Iterable[str], view: str = PUBLIC) -> int:
        """Render the records of some studies of a view again (after a link run changed what they link to)."""
        rendered = 0
        for accession in accessions:
            self._render_record(self.view(view), accession)
            rendered += 1
        return rendered

    def render_stale_records(self, batch: int = 100) -> int:
        """Render again every stored record rendered under another fingerprint (after an upgrade, or a new base
        URL or catalog name), a batch at a time so commits are never held up for long. Returns how many."""
        rendered = 0
        for name in (PUBLIC, PRIVATE) if self.private is not None else (PUBLIC,):
            stale = [a for a in map(identifiers.accession_of, self.view(name).records.stale(self.record_fingerprint)) if a]
            for start in range(0, len(stale), batch):
                rendered += self.render_records(stale[start : start + batch], view=name)
        return rendered

    def _drop_elsewhere(self, accession: str, keep: str) -> None:
        for name in (PUBLIC, PRIVATE):
            if name == keep:
                continue
            view = self.view(name)
            view.graph.drop_graph(self.study_iri(accession))
            view.files.delete_study(accession)
            view.search.delete(accession)
            view.records.delete(self.study_iri(accession))

    @_serialized
    def delete_study(self, accession: str) -> None:
        """Remove a study from every view and the registry (its files stay in the file store)."""
        if self.registry.study(accession) is None:
            raise NotFound(f"no study {accession}")
        self._drop_elsewhere(accession, keep="")
        self.registry.delete_study(accession)

    # ------------------------------------------------------------------ release dates

    def release_due(self, today: str | None = None) -> list[str]:
        """Move every embargoed study whose release date has come to the public view; returns accessions."""
        released = []
        for row in self.registry.due_for_release(today or today_iso()):
            self.registry.set_state(row.accession, RELEASING)
            self._release(row.accession)
            released.append(row.accession)
        return released

    @_serialized
    def _release(self, accession: str) -> None:
        study = self.study_iri(accession)
        private, public = self.view(PRIVATE), self.public
        if private.graph.has_graph(study):
            with self._temp_ntriples() as (path, out):
                out.close()
                private.graph.save_graph(study, path)
                public.graph.replace_graph(study, path, count=False)  # the commit point of a release
        elif not public.graph.has_graph(study):
            raise NotFound(f"{accession} is in no graph store")
        self._index_from(public, accession, None)
        self._drop_elsewhere(accession, keep=PUBLIC)
        self.registry.set_state(accession, RELEASED)

    # ------------------------------------------------------------------ recovery

    @_serialized
    def recover(self, finish_deposit: Callable[[StudyRow], None] | None = None) -> list[str]:
        """Roll forward (or back) every commit or release a crash interrupted. Returns the accessions handled.

        ``finish_deposit`` re-runs an interrupted deposit finalize from its submission (files still staged);
        :class:`catalog.deposits.Deposits` passes it. Without it, such studies are left for the next call.
        """
        handled = []
        for row in self.registry.studies(states=(FINALIZING, RELEASING)):
            attempts = self.registry.bump_attempts(row.accession)
            try:
                if attempts > MAX_RECOVERY_ATTEMPTS:
                    self._give_up(row)
                elif row.state == RELEASING:
                    self._release(row.accession)
                elif row.submission_id is not None:
                    if finish_deposit is None:
                        continue
                    finish_deposit(row)
                else:
                    self._recover_put(row)
                handled.append(row.accession)
            except Exception:  # noqa: BLE001 - keep recovering the others; the attempt is counted
                log.exception("recovery of %s failed (attempt %d)", row.accession, attempts)
        return handled

    def _recover_put(self, row: StudyRow) -> None:
        """A harvested study whose commit was interrupted: keep whichever whole graph exists."""
        study = self.study_iri(row.accession)
        target = self.view(self.view_name_for(row.release_date))
        other = self.view(PRIVATE if target.name == PUBLIC else PUBLIC)
        if not target.graph.has_graph(study) and other.graph.has_graph(study):
            target = other  # the new version never reached its view: the old one stays, where it was
        if not target.graph.has_graph(study):
            self._drop_elsewhere(row.accession, keep="")
            self.registry.delete_study(row.accession)
            return
        self._index_from(target, row.accession, None)
        self._drop_elsewhere(row.accession, keep=target.name)
        self.registry.set_state(row.accession, RELEASED if target.name == PUBLIC else EMBARGOED)

    def _give_up(self, row: StudyRow) -> None:
        log.error("giving up on %s after %d attempts; it stays invisible", row.accession, MAX_RECOVERY_ATTEMPTS)
        self._drop_elsewhere(row.accession, keep="")
        self.registry.set_state(row.accession, FAILED)
        if row.submission_id:
            self.registry.finish_submission(row.submission_id, "failed")

    # ------------------------------------------------------------------ maintenance

    @_serialized
    def reindex(self, progress: Callable[[str], None] | None = None) -> dict[str, int]:
        """Rebuild both views' search indexes, file indexes and rendered records from the graphs. Returns studies
        per view."""
        counts = {}
        for name in (PUBLIC, PRIVATE):
            view = self.view(name)
            wanted = {r.accession for r in self.registry.studies(states=(RELEASED,) if name == PUBLIC else (EMBARGOED,))}
            docs, indexed = [], set()
            for accession in sorted(wanted):
                study = self.study_iri(accession)
                if not view.graph.has_graph(study):
                    continue
                docs.append(self._rebuild_table(view, accession))
                self._render_record(view, accession)
                indexed.add(study)
                if progress:
                    progress(accession)
            view.search.replace_all(docs)
            for iri in set(view.records.iris()) - indexed:
                view.records.delete(iri)
            counts[name] = len(docs)
        return counts

    def export(self, out, fmt: str = "application/n-quads", accession: str | None = None) -> None:
        """Write the public graph (every released study, each in its named graph) or one released study."""
        store = self.public.graph
        if accession is not None:
            study = self.study_iri(accession)
            if not store.has_graph(study):
                raise NotFound(f"no released study {accession}")
            graphs = [study]
        else:
            graphs = sorted(store.graphs())
        for graph in graphs:
            out.write(store.get_graph(graph, format=fmt) if fmt != "application/n-quads" else as_nquads(store, graph))

    def stats(self) -> dict[str, object]:
        """Counts of the public catalog (by source, licence, organism, imaging method) and of the registry."""
        result = self.public.search.search("", limit=0, facet_limit=1000)
        return {
            "released_studies": result.total,
            "registry": self.registry.counts(),
            "facets": {k: dict(v) for k, v in result.facets.items()},
        }


def as_nquads(store, graph: str) -> bytes:
    """A graph's triples as N-Quads lines in that graph."""
    data = store.get_graph(graph, format="application/n-triples").decode("utf-8")
    suffix = f" <{graph}> .\n"
    return "".join(line[: line.rstrip().rfind(".")].rstrip() + suffix for line in data.splitlines() if line.strip()).encode("utf-8")
