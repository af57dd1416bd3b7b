"""The archive: stores, registry and the one commit path every study goes through.

A study (deposited or harvested) is committed by :meth:`Archive.commit_study`:

1. the registry records the work in flight (state ``finalizing``) under this process's lease, with a commit id;
2. the study's complete RDF — metadata and every file — is generated (streamed, so a 1.3 M-file list is never in
   memory) and bulk-loaded into the study's named graph of the view its release date puts it in (``public`` or
   ``private``), while its file table is built beside the live one; once both are ready the graph replacement is
   committed under the commit id: **the commit point**;
3. the file table built for that commit is published, the search entry and the rendered record are updated;
4. a copy in the other view (release date changed) is dropped, and the registry records the final state.

A crash before (2) leaves the previous version in place (the embedded graph store undoes an uncommitted
replacement in milliseconds at its next open, whatever the study's size); recovery then puts the registry row back.
A crash after it is rolled forward by :meth:`Archive.recover` from what was committed: the file table already built
for the commit is published, the rest derived again. Recovery takes over only work whose lease expired or whose
holder died, so it never fights a live commit. Release dates are applied by :meth:`release_due`, which moves a
study from the private to the public view the same way.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from rdflib import Graph

from catalog import identifiers, image_facts, oai_records, remembered
from catalog.config import Settings
from catalog.dates import parse_date, today_iso
from catalog.errors import NotFound, is_transient
from catalog.file_index import Filter, UnknownColumn
from catalog.file_store import FileStore
from catalog.image_columns import with_image_columns
from catalog.state_db import open_state_db
from catalog.stores import open_file_store
from catalog.registry import EMBARGOED, FAILED, RELEASED, RELEASING, InFlight, LeaseLost, Registry, StudyRow
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


#: re-exported for callers that knew them here
minted_base_url = remembered.minted_base_url
__all__ = ["Archive", "CommitResult", "minted_base_url", "today_iso"]


@dataclass(frozen=True)
class Change:
    """A study changed: ``committed`` (a new version in ``view``), ``released`` (moved to the public view) or
    ``withdrawn`` (in no view any more)."""

    accession: str
    view: str | None
    kind: str


#: what subscribes to an archive's changes
Listener = Callable[[Change], None]


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

    def __init__(self, settings: Settings, *, public_only: bool = False) -> None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        #: the state database (SQLite in ``data_dir``, or the site's PostgreSQL)
        self.state = open_state_db(settings.database_url, settings.data_dir)
        self.registry = Registry(self.state, lease_seconds=settings.lease_seconds)  # creates the tables
        #: the settings, with the base URL the catalog remembers (other stores or base URLs are refused)
        self.settings = settings = remembered.resolve(settings, self.state)
        self.model = load_model()
        self.file_store: FileStore = open_file_store(settings)
        public_only = public_only or settings.read_only
        self.public = open_view(settings, PUBLIC, self.state, read_only=settings.read_only, file_store=self.file_store)
        self.private: CatalogView | None = (
            None if public_only else open_view(settings, PRIVATE, self.state, file_store=self.file_store)
        )
        self.tmp_dir = settings.data_dir / "tmp"
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        #: one commit, release or delete at a time in this process (the graph store allows one writer process)
        self._commit_lock = threading.RLock()
        self._listeners: list[Listener] = []

    def close(self) -> None:
        self.registry.close()
        self.public.close()
        if self.private is not None:
            self.private.close()
        self.state.close()

    def __enter__(self) -> "Archive":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ changes

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener`` after every change this process makes to a study (once committed, never before). Other
        processes' changes are counted in the registry (:meth:`Registry.changes`) for followers such as the linker."""
        self._listeners.append(listener)

    def _changed(self, change: Change) -> None:
        for listener in list(self._listeners):
            try:
                listener(change)
            except Exception:  # noqa: BLE001 - a follower's fault never undoes a change; it catches up later
                log.exception("a listener failed on %s", change)

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
        """``public`` if the release date has come, else ``private`` (both parsed as dates)."""
        released = parse_date(release_date, "release_date") <= parse_date(today or today_iso(), "today")
        return PUBLIC if released else PRIVATE

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

        ``files`` is called twice (graph, file table) and must yield the same files each time. With
        ``already_registered`` the study's row is in flight and held by this process (a finalize, or recovery).
        """
        release_date = parse_date(release_date, "release_date")
        row = (
            self.registry.study(accession)
            if already_registered
            else self._begin_put(accession, owner, release_date, source, title)
        )
        if row is None or row.commit_id is None:
            raise NotFound(f"{accession} is not in flight")
        with self.registry.holding(accession):
            try:
                summary, target = self._commit(row, metadata, files)
            except BaseException as exc:
                self._after_failed_commit(row, exc)
                raise
            self.registry.finish(
                accession,
                RELEASED if target.name == PUBLIC else EMBARGOED,
                file_count=summary.files,
                total_size=summary.total_size,
                title=title,
                content_hash=content_hash,
            )
        self._changed(Change(accession, target.name, "committed"))
        return CommitResult(accession, target.name, summary.triples, summary.files, summary.total_size)

    def _begin_put(self, accession: str, owner: str | None, release_date: str, source: str, title: str | None) -> StudyRow | None:
        """Record a harvest's in-flight load (first recovering an earlier one of the same study a crash cut off)."""
        try:
            self.registry.begin_put(accession, owner, release_date, source, title)
        except InFlight as exc:
            if not exc.expired:
                raise
            self.recover()
            self.registry.begin_put(accession, owner, release_date, source, title)
        return self.registry.study(accession)

    def _commit(self, row: StudyRow, metadata: Graph, files: FilesFactory) -> tuple[FilesSummary, CatalogView]:
        """Load the graph and build the file table of ``row``'s commit, commit both, then derive the rest."""
        accession, commit = row.accession, row.commit_id
        target = self.view(self.view_name_for(row.release_date))
        study = self.study_iri(accession)

        def produce(out) -> FilesSummary:
            metadata_nt = metadata.serialize(format="nt")
            out.write(metadata_nt)
            summary = write_file_triples(out, study, files(), self.model)
            summary.triples += metadata_nt.count("\n")
            return summary

        # the file table is built beside the live one while the graph loads, and kept under the commit's id
        staged: dict[str, object] = {}

        def build_table() -> None:
            try:
                rows = with_image_columns(self.state, accession, (f.table_row(study) for f in files()))
                staged["table"] = target.files.build_study(accession, rows, commit=commit)
            except BaseException as exc:  # noqa: BLE001 - the table is then rebuilt from the committed graph
                staged["error"] = exc

        def before_commit() -> None:
            builder.join()
            # a commit whose work was taken over never lands; past this point it goes ahead (recovery completes it)
            self.registry.confirm_held(accession, committing=target.name)

        builder = threading.Thread(target=build_table, name="file-table", daemon=True)
        builder.start()
        try:
            summary = target.graph.replace_graph_from(
                study, produce, tmp_dir=self.tmp_dir, tag=commit, before_commit=before_commit
            )  # the commit point
        except BaseException:
            builder.join()
            target.files.discard_staged(accession)
            raise
        if "error" in staged:
            log.warning("file table of %s not built (%s); rebuilding it from the graph", accession, staged["error"])
        self._finish_commit(target, accession, commit, staged.get("table"))
        return summary, target

    def _finish_commit(self, view: CatalogView, accession: str, commit: str | None, table=None) -> None:
        """Everything after a commit point, from what was committed: publish the file table built for the commit
        (else build it from the graph), update the search entry and the rendered record, drop the other view's copy."""
        table = table or (view.files.ready_table(accession, commit) if commit else None)
        if table is not None:
            table.publish()
        elif commit is None or view.files.commit_of(accession) != commit:
            self._rebuild_table(view, accession, commit=commit)
        view.files.discard_staged(accession)
        view.search.upsert(self._document(view, accession))
        self._render_record(view, accession)
        self._drop_elsewhere(accession, keep=view.name)

    def committed(self, row: StudyRow) -> CatalogView | None | bool:
        """Where the commit of an in-flight row was committed (its view), ``False`` if it never was, ``None`` if
        the stores cannot tell. Stores that keep commit tags answer from the tag; on others a commit that passed its
        commit point (the registry says so) counts as committed, its replacement completed by
        :meth:`GraphStore.settle` if it was cut off (a row from before commit points were recorded: cannot tell)."""
        study = self.study_iri(row.accession)
        views = [self.view(name) for name in (PUBLIC, PRIVATE)]
        if all(view.graph.keeps_tags for view in views):
            return next((view for view in views if row.commit_id and view.graph.committed_tag(study) == row.commit_id), False)
        if row.committing is None:
            return None
        return self.view(row.committing) if row.committing else False

    def _after_failed_commit(self, row: StudyRow, exc: BaseException) -> None:
        """A commit failed in this process: a harvest that never reached its commit point leaves the study as it was;
        anything else stays in flight, free for its owner or recovery to take up (an outage costs no attempt). Work
        taken over by another process is theirs: nothing to record."""
        if isinstance(exc, LeaseLost):
            return
        try:
            row = self.registry.study(row.accession) or row  # as it is now: the commit point may have been recorded
            if row.submission_id is None and self.committed(row) is False:
                self.view(PUBLIC).files.discard_staged(row.accession)
                self.view(PRIVATE).files.discard_staged(row.accession)
                self.registry.abandon(row)
            elif row.submission_id is None or self.committed(row):
                self.registry.let_go(row.accession, count_attempt=not is_transient(exc))
        except Exception:  # noqa: BLE001 - the row stays in flight; recovery takes it up when its lease runs out
            log.exception("could not record the failed commit of %s", row.accession)

    def _document(self, view: CatalogView, accession: str):
        """The search document of a study in a view (its file counts from the view's file table)."""
        study = self.study_iri(accession)
        return study_document(view.graph, study, accession, self.model, files=view.files.totals(accession))

    def _rebuild_table(self, view: CatalogView, accession: str, files: FilesFactory | None = None, commit: str | None = None):
        """Rebuild a study's file table (from ``files``, else from its stored graph); returns its search document."""
        study = self.study_iri(accession)
        rows = files() if files is not None else study_files(view.graph, study)
        table_rows = with_image_columns(self.state, accession, (f.table_row(study) for f in rows))
        view.files.replace_study(accession, table_rows, commit=commit)
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
            record = build_record(
                view.graph,
                self.settings.base_url,
                study,
                catalog_name=self.settings.catalog_name,
                holds_files=lambda acc: self.holds_files(acc, view.name),
            )
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
        record whose files are elsewhere): judged by its first listed file (not a folder listed as one entry)."""
        files = self.view(view).files
        try:
            try:
                first = files.query(accession, [Filter("type", "ne", "directory")], limit=1).items
            except UnknownColumn:  # a table from before folders were listed (rebuilt in the background)
                first = files.query(accession, limit=1).items
        except NotFound:
            return False
        return bool(first) and self.file_store.stat(f"studies/{accession}/{first[0]['path']}") is not None

    @_serialized
    def apply_image_headers(self, accession: str) -> "image_facts.Applied | None":
        """Bring a committed study up to date with its files' header results (file-table columns, image nodes and
        summaries in its graph, search entry, record); None when the study is in no view."""
        row = self.registry.study(accession)
        if row is None or row.state not in (RELEASED, EMBARGOED):
            return None
        view = self.view(PUBLIC if row.state == RELEASED else PRIVATE)
        if not view.files.has_study(accession):
            return None
        applied = image_facts.apply_to_view(self, view, accession)
        view.search.upsert(self._document(view, accession))
        self._render_record(view, accession)
        return applied

    @_serialized
    def render_records(self, accessions: Iterable[str], view: str = PUBLIC) -> int:
        """Render the records of some studies of a view again (after a link run changed what they link to)."""
        rendered = 0
        for accession in accessions:
            self._render_record(self.view(view), accession)
            rendered += 1
        return rendered

    def upgrade_file_tables(self, seconds: float = 5.0) -> int:
        """Rebuild the file tables built with an older layout (after an upgrade: see
        :meth:`catalog.file_index.FileIndex.upgrade`), for about ``seconds`` (at least one table), so that other
        duties are not held up; each replaces only the table it was read from. How many were rebuilt."""
        upgraded, until = 0, time.monotonic() + seconds
        for name in (PUBLIC, PRIVATE) if self.private is not None else (PUBLIC,):
            files = self.view(name).files
            for accession in files.outdated():
                upgraded += files.upgrade(accession)
                if time.monotonic() > until:
                    return upgraded
        return upgraded

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
        """Drop the study from every view but ``keep``; a released study leaving the public view (withdrawn, or
        embargoed again by a new version) leaves a deleted record for harvesters (:mod:`catalog.oai_records`)."""
        released = self.public.search.get(accession) if keep != PUBLIC else None
        if released is not None:
            oai_records.record_withdrawal(self.state, released, time.time())
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
        self.withdraw(accession)
        self.registry.delete_study(accession)

    @_serialized
    def withdraw(self, accession: str) -> None:
        """Remove a study from every view (graph, file table, search entry, rendered record); idempotent. Work
        undone after its commit point (a finalize given up) must not stay visible. A released study leaves a
        deleted record for harvesters (:mod:`catalog.oai_records`)."""
        self._drop_elsewhere(accession, keep="")
        self.registry.record_change()
        self._changed(Change(accession, None, "withdrawn"))

    # ------------------------------------------------------------------ release dates

    def release_due(self, today: str | None = None) -> list[str]:
        """Move every embargoed study whose release date has come to the public view; returns accessions. Each
        release is claimed first (compare-and-set), so concurrent callers never release one study twice; a failed
        one stays in flight for recovery."""
        today = parse_date(today, "today") if today is not None else today_iso()
        released = []
        for row in self.registry.due_for_release(today):
            if not self.registry.claim_release(row.accession):
                continue  # another process took it
            with self.registry.holding(row.accession):
                try:
                    self._release(row.accession)
                except Exception as exc:  # noqa: BLE001 - the others go on; recovery takes this one up
                    log.exception("releasing %s failed", row.accession)
                    self._let_go(row.accession, exc)
                    continue
            released.append(row.accession)
        return released

    @_serialized
    def _release(self, accession: str) -> None:
        """Move a study held by this process (state ``releasing``) to the public view; idempotent."""
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
        self.registry.finish(accession, RELEASED)
        self._changed(Change(accession, PUBLIC, "released"))

    def _let_go(self, accession: str, exc: BaseException) -> None:
        """Stop holding failed work (if this process still holds it), so that it can be taken up again."""
        try:
            self.registry.let_go(accession, count_attempt=not is_transient(exc))
        except LeaseLost:
            pass  # completed otherwise (e.g. a finalize reopened) or taken over
        except Exception:  # noqa: BLE001 - its lease then simply runs out
            log.exception("could not let go of %s", accession)

    # ------------------------------------------------------------------ recovery

    def recover(
        self,
        finish_deposit: Callable[[StudyRow], None] | None = None,
        give_up_deposit: Callable[[StudyRow], None] | None = None,
    ) -> list[str]:
        """Take over every commit, release or finalize whose lease expired or whose holder died, and roll it forward
        (or, for a harvest that never reached its commit point, back). Returns the accessions handled.

        ``finish_deposit`` completes an interrupted deposit finalize from its submission (files still staged) and
        ``give_up_deposit`` reopens one that failed too often; :class:`catalog.deposits.Deposits` passes both.
        Without them, such studies are left for a caller that has them. An outage (a store unreachable) costs no
        attempt: the work waits and is taken up again.
        """
        handled = []
        for row in self.registry.claim_expired():
            with self.registry.holding(row.accession):
                try:
                    if self._recover_one(row, finish_deposit):
                        handled.append(row.accession)
                except Exception as exc:  # noqa: BLE001 - keep recovering the others
                    log.exception("recovery of %s failed (attempt %d)", row.accession, row.attempts)
                    if is_transient(exc) or row.attempts < MAX_RECOVERY_ATTEMPTS:
                        self._let_go(row.accession, exc)
                    else:
                        self._give_up(row, give_up_deposit)
        return handled

    def take_up(self, row: StudyRow, finish_deposit: Callable[[StudyRow], None] | None = None) -> None:
        """Roll forward one piece of in-flight work this process just claimed (its owner retrying); errors are
        raised to the caller, and the work is let go again for a later try."""
        with self.registry.holding(row.accession):
            try:
                self._recover_one(row, finish_deposit)
            except BaseException as exc:
                current = self.registry.study(row.accession)
                if current is not None and current.lease_owner == self.registry.holder:
                    self._let_go(row.accession, exc)
                raise

    @_serialized
    def _recover_one(self, row: StudyRow, finish_deposit: Callable[[StudyRow], None] | None) -> bool:
        """Roll one claimed row forward or back; False if it must wait for a caller that can finish it."""
        if row.state == RELEASING:
            self._release(row.accession)
            return True
        where = self.committed(row)
        if isinstance(where, CatalogView):  # the graph holds the commit: finish what came after it
            if row.commit_id:
                where.graph.settle(self.study_iri(row.accession), row.commit_id)  # a remote move cut off: done now
            self._finish_commit(where, row.accession, row.commit_id)
            totals = where.files.totals(row.accession)
            self.registry.finish(
                row.accession,
                RELEASED if where.name == PUBLIC else EMBARGOED,
                file_count=totals.get("files", 0),
                total_size=totals.get("bytes", 0),
            )
            self._changed(Change(row.accession, where.name, "committed"))
        elif row.submission_id is not None:
            if finish_deposit is None:
                self.registry.let_go(row.accession, count_attempt=False)
                return False
            self.registry.new_commit(row.accession)
            finish_deposit(self.registry.study(row.accession))  # type: ignore[arg-type]
        elif where is False:  # a harvest cut off before its commit point: the study stays as it was
            for name in (PUBLIC, PRIVATE):
                self.view(name).files.discard_staged(row.accession)
            self.registry.abandon(row)
        else:
            self._recover_put(row)
        return True

    def _recover_put(self, row: StudyRow) -> None:
        """A harvested study whose commit was interrupted on stores that cannot say whether it was committed: keep
        whichever whole graph exists and derive the rest from it again."""
        study = self.study_iri(row.accession)
        target = self.view(self.view_name_for(row.release_date))
        other = self.view(PRIVATE if target.name == PUBLIC else PUBLIC)
        if not target.graph.has_graph(study) and other.graph.has_graph(study):
            target = other  # the new version never reached its view: the old one stays, where it was
        if not target.graph.has_graph(study):
            self._drop_elsewhere(row.accession, keep="")
            self.registry.abandon(row.__class__(**{**row.__dict__, "previous": None}))
            return
        self._finish_commit(target, row.accession, None)
        totals = target.files.totals(row.accession)
        self.registry.finish(
            row.accession,
            RELEASED if target.name == PUBLIC else EMBARGOED,
            file_count=totals.get("files", 0),
            total_size=totals.get("bytes", 0),
        )
        self._changed(Change(row.accession, target.name, "committed"))

    def _give_up(self, row: StudyRow, give_up_deposit: Callable[[StudyRow], None] | None) -> None:
        log.error("giving up on %s after %d attempts", row.accession, row.attempts)
        try:
            if row.submission_id is not None and row.state != RELEASING and give_up_deposit is not None:
                give_up_deposit(row)  # the submission opens again; nothing is shown
                return
            self._drop_elsewhere(row.accession, keep="")
            self.registry.finish(row.accession, FAILED)
        except Exception:  # noqa: BLE001 - tried again at the next round
            log.exception("could not give up on %s", row.accession)

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


def as_nquads(store, graph: str) -> bytes:
    """A graph's triples as N-Quads lines in that graph."""
    data = store.get_graph(graph, format="application/n-triples").decode("utf-8")
    suffix = f" <{graph}> .\n"
    return "".join(line[: line.rstrip().rfind(".")].rstrip() + suffix for line in data.splitlines() if line.strip()).encode(
        "utf-8"
    )
