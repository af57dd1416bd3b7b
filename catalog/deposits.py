"""The deposit lifecycle: submission → staged uploads → file lists → metadata → validation → finalize.

Finalize mints the accession (never reused), moves staged files to permanent storage under the accession,
and commits the study through :meth:`catalog.archive.Archive.commit_study`. It is all or nothing: a crash
at any point leaves either no study (nothing visible; the accession is burned but never shown) or, after
recovery rolls the finalize forward from what is still staged, the whole study.

Parsing formats (PageTab, REMBI JSON/YAML, file-list TSV/CSV/JSON) belongs to ``loaders/``; the layer above
(the CLI and the HTTP API) passes a :class:`DepositFormats` with those readers in.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import logging
import os
import re
import sqlite3
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import IO, Any, Callable, ContextManager, Iterable, Iterator, Protocol

from catalog import deposit_images
from catalog.archive import Archive, CommitResult
from catalog.dates import InvalidDate, parse_date, today_iso
from catalog.deposit_headers import DepositHeaders
from catalog.deposit_images import Finding
from catalog.errors import CatalogError, Conflict, NotFound, ValidationFailed, is_transient
from catalog.file_paths import MAX_PATH_BYTES, clash_key, path_problem
from catalog.registry import LeaseLost, StudyRow
from catalog.state_db import SqliteStateDB
from catalog.ingest import components_by_title, ingest, validated
from catalog.study_files import StudyFile
from catalog.validation import ValidationIssue, check_study_record


# ----------------------------------------------------------------------------- what the format readers give


@dataclass
class ParsedMetadata:
    """A study record read from a depositor's metadata file."""

    record: dict[str, Any]
    #: file-list name (as written in the metadata) → title of the component it belongs to
    file_list_components: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: maps a record location (``/authors/0/orcid``) to a line of the metadata file, when known
    line_of: Callable[[str], int | None] = lambda location: None


@dataclass
class FileListRow:
    """One row of a file list."""

    line: int
    path: str
    size: int | None
    attributes: dict[str, str]
    #: a folder listed as one entry: its attributes are the folder's, its files are the uploads below it
    directory: bool = False


@dataclass
class Upload:
    """A file to upload in a deposit: its path in the study and how to open its bytes."""

    path: str
    open: Callable[[], ContextManager[IO[bytes]]]
    size: int | None = None


@dataclass
class Deposited:
    """What became of a whole deposit: its accession, the validation report, and whether the study is stored or
    only kept (an outage cut its finalize off; it completes by itself, and sending it again would deposit twice)."""

    accession: str
    report: dict[str, Any]
    kept: bool = False
    reason: str | None = None


class DepositFormats(Protocol):
    """Readers of the formats depositors use (implemented in ``loaders/``)."""

    def read_metadata(self, name: str, data: bytes) -> ParsedMetadata: ...

    def check_file_list(self, path: str, name: str) -> tuple[int, list[dict[str, Any]]]:
        """(row count, problems as dicts with file/line/field/message)."""

    def iter_file_list(self, path: str, name: str) -> Iterator[FileListRow]: ...

    def rewrite_metadata(self, name: str, data: bytes, record: dict[str, Any]) -> bytes:
        """``record`` written in the format of the metadata document ``data`` (:class:`Conflict` for a format that
        cannot be written back)."""


# ----------------------------------------------------------------------------- the lifecycle


def _clean_path(path: str) -> str:
    """A depositor's relative POSIX path (``./`` stripped) if the file store can keep it, else ValidationFailed."""
    clean = path[2:] if path.startswith("./") else path
    problem = path_problem(clean, max_bytes=MAX_PATH_BYTES)
    if problem:
        raise ValidationFailed(
            f"invalid file path {path[:200]!r}: it has {problem}",
            [{"field": "path", "value": path[:200], "message": f"the file store cannot keep this path: it has {problem}"}],
        )
    return clean


class Deposits:
    """Submissions of one archive."""

    def __init__(self, archive: Archive, formats: DepositFormats) -> None:
        self.archive = archive
        self.registry = archive.registry
        self.formats = formats
        self.prefix = archive.settings.accession_prefix
        #: reads the staged image files' headers for validation (through the job queue)
        self.headers = DepositHeaders(archive.state, archive.settings)

    def close(self) -> None:
        self.headers.close()

    # ------------------------------------------------------------------ a deposit in one call

    def deposit(
        self,
        owner: str,
        metadata: tuple[str, bytes],
        *,
        file_lists: Iterable[tuple[str, IO[bytes]]] = (),
        uploads: Iterable[Upload] = (),
        release_date: str | None = None,
        check: Callable[[dict[str, Any]], None] | None = None,
        progress: Callable[[int], object] | None = None,
    ) -> Deposited:
        """The whole deposit sequence (the CLI and the web form use it): a submission, its uploads, file lists and
        metadata, validation, finalize. On any error nothing is kept (the submission is discarded) and the error is
        raised — :class:`ValidationFailed` with the report's errors when validation fails —, except when an outage
        cut the finalize off after the accession was minted: then the result says it is kept. ``check`` sees the
        report before finalize and may raise to stop it (e.g. a form's own errors)."""
        sub_id = self.create(owner)
        try:
            self._put(sub_id, owner, metadata, file_lists, uploads, release_date, progress)
            report = self.validate(sub_id, owner)
            if check is not None:
                check(report)
            if not report["valid"]:
                raise ValidationFailed(f"the deposit is not valid ({len(report['errors'])} error(s))", report["errors"])
            accession = self.finalize(sub_id, owner)
        except CatalogError as exc:
            self.discard(sub_id, owner, only_if_open=True)
            left = self.get(sub_id, owner)
            if left["status"] == "finalizing" and is_transient(exc):
                return Deposited(left["accession"], left.get("report") or {}, kept=True, reason=exc.message)
            raise
        except BaseException:
            self.discard(sub_id, owner, only_if_open=True)
            raise
        return Deposited(accession, report)

    def stage(
        self,
        owner: str,
        metadata: tuple[str, bytes],
        *,
        file_lists: Iterable[tuple[str, IO[bytes]]] = (),
        uploads: Iterable[Upload] = (),
        release_date: str | None = None,
    ) -> str:
        """A new open submission holding the uploads, file lists and metadata (the web form's "fill from files" step,
        before validate and finalize); on any error nothing is kept and the error is raised."""
        sub_id = self.create(owner)
        try:
            self._put(sub_id, owner, metadata, file_lists, uploads, release_date, None)
        except BaseException:
            self.discard(sub_id, owner, only_if_open=True)
            raise
        return sub_id

    def _put(
        self,
        sub_id: str,
        owner: str,
        metadata: tuple[str, bytes],
        file_lists: Iterable[tuple[str, IO[bytes]]],
        uploads: Iterable[Upload],
        release_date: str | None,
        progress: Callable[[int], object] | None,
    ) -> None:
        for upload in uploads:
            with upload.open() as stream:
                self.upload(sub_id, owner, upload.path, stream, size=upload.size, progress=progress)
        for name, stream in file_lists:
            self.attach_file_list(sub_id, owner, name, stream)
        self.attach_metadata(sub_id, owner, metadata[0], metadata[1], release_date=release_date)

    # ------------------------------------------------------------------ building a submission

    def create(self, owner: str) -> str:
        """A new open submission for ``owner``; returns its id."""
        return self.registry.create_submission(owner)

    def get(self, sub_id: str, owner: str | None = None) -> dict[str, Any]:
        sub = self.registry.submission(sub_id, owner)
        sub["staged_files"], sub["staged_bytes"] = self.registry.staged_count(sub_id)
        return sub

    def upload(
        self,
        sub_id: str,
        owner: str,
        path: str,
        stream: IO[bytes],
        *,
        size: int | None = None,
        md5: str | None = None,
        sha256: str | None = None,
        progress: Callable[[int], object] | None = None,
    ) -> dict[str, Any]:
        """Stage one file (checksums computed on the way and checked against the declared ones)."""
        sub = self.registry.submission(sub_id, owner)
        if sub["status"] != "open":
            raise Conflict(f"submission {sub_id} is {sub['status']}")
        path = _clean_path(path)
        # each upload lands under a key of its own: a failed or late one never touches the copy already staged
        key = f"staging/{sub_id}/uploads/{uuid.uuid4().hex}"
        store = self.archive.file_store
        stored = store.put(key, stream, size=size, expected_md5=md5, expected_sha256=sha256, progress=progress)
        try:
            replaced = self.registry.stage_file(sub_id, path, stored.size, stored.md5, stored.sha256, key)
        except BaseException:  # the submission closed (finalize began) while the bytes were arriving
            store.delete(key)
            raise
        if replaced is not None:  # a re-upload: the earlier copy goes only now
            store.delete(self._staged_key(sub_id, replaced))
        return {"path": path, "size": stored.size, "md5": stored.md5, "sha256": stored.sha256}

    def attach_file_list(
        self, sub_id: str, owner: str, name: str, stream: IO[bytes], component: str | None = None
    ) -> dict[str, Any]:
        """Store a file list in the submission (checked at validate); returns its entry."""
        sub = self.registry.submission(sub_id, owner)
        if sub["status"] != "open":
            raise Conflict(f"submission {sub_id} is {sub['status']}")
        name = PurePosixPath(name).name or "file-list.tsv"
        replaced = [fl for fl in sub["file_lists"] if fl["name"] == name]
        lists = [fl for fl in sub["file_lists"] if fl["name"] != name]
        # each attach lands under a key of its own: the bytes a validation read are never changed under a finalize
        key = f"submissions/{sub_id}/file-lists/{uuid.uuid4().hex}-{name}"
        store = self.archive.file_store
        store.put(key, stream)
        entry = {"name": name, "key": key, "component": component}
        lists.append(entry)
        try:
            self.registry.update_submission(sub_id, file_lists=lists)
        except BaseException:  # the submission closed (finalize began) while the list was arriving
            store.delete(key)
            raise
        for old in replaced:  # a list attached again under its name: the earlier copy goes only now
            store.delete(old["key"])
        return entry

    def attach_metadata(self, sub_id: str, owner: str, name: str, data: bytes, release_date: str | None = None) -> dict[str, Any]:
        """Store the study metadata (PageTab JSON/TSV or REMBI JSON/YAML); parsing errors are raised now."""
        self.registry.submission(sub_id, owner)
        parsed = self.formats.read_metadata(name, data)  # raises a CatalogError naming file, line, field
        fields: dict[str, Any] = {"metadata": data.decode("utf-8"), "metadata_name": name}
        if release_date is not None:
            fields["release_date"] = parse_date(release_date, "release_date")
        self.registry.update_submission(sub_id, **fields)
        return {"name": name, "title": parsed.record.get("title"), "notes": parsed.notes}

    def discard(self, sub_id: str, owner: str, *, only_if_open: bool = False) -> None:
        """Delete an open submission's staged files and file lists; :class:`Conflict` for one being finalized or
        finalized (``only_if_open``: leave those alone quietly, as cleanup after a failed CLI or form deposit)."""
        sub = self.registry.submission(sub_id, owner)
        if sub["status"] == "discarded" or (only_if_open and sub["status"] != "open"):
            return
        if sub["status"] != "open":
            raise Conflict(
                f"submission {sub_id} is {sub['status']}"
                + (f" as {sub['accession']}" if sub.get("accession") else "")
                + "; only an open submission can be discarded"
            )
        self.registry.discard_submission(sub_id)  # first, so a finalize beginning meanwhile keeps its files
        self.archive.file_store.delete_prefix(f"staging/{sub_id}/")
        self.archive.file_store.delete_prefix(f"submissions/{sub_id}/")

    def expire_abandoned(self, ttl_days: float) -> list[str]:
        """Expire open submissions unchanged for ``ttl_days`` (and failed ones) and remove their staged bytes;
        returns their ids. Idempotent; safe beside live uploads (an upload that arrives first keeps one open)."""
        cutoff = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=ttl_days)).replace(microsecond=0).isoformat()
        expired = []
        for sub in self.registry.submissions_to_clean(cutoff):
            if self.registry.expire_submission(sub["id"], sub["updated_at"]):
                self.archive.file_store.delete_prefix(f"staging/{sub['id']}/")
                self.archive.file_store.delete_prefix(f"submissions/{sub['id']}/")
                expired.append(sub["id"])
        return expired

    def set_release_date(self, sub_id: str, owner: str, release_date: str) -> None:
        self.registry.submission(sub_id, owner)
        self.registry.update_submission(sub_id, release_date=parse_date(release_date, "release_date"))

    @staticmethod
    def _staged_key(sub_id: str, staged: dict[str, Any]) -> str:
        """Where a staged file's bytes are: its upload's own key (older registries: under its path)."""
        return staged.get("key") or f"staging/{sub_id}/{staged['path']}"

    # ------------------------------------------------------------------ validation

    def validate(self, sub_id: str, owner: str | None = None) -> dict[str, Any]:
        """Check everything finalize needs; returns ``{valid, errors, warnings, files}`` and stores it. A submission
        no longer open (finalized, discarded) answers with the report it was last checked with."""
        return self._validate(self.registry.submission(sub_id, owner))

    def _validate(self, sub: dict[str, Any]) -> dict[str, Any]:
        """:meth:`validate` of the submission as read in ``sub``; a submission discarded or expired while it was being
        checked (its file lists gone under the check) is a :class:`Conflict` saying so."""
        if sub["status"] != "open":
            if sub.get("report"):
                return sub["report"]
            raise Conflict(f"submission {sub['id']} is {sub['status']}; it has no report to show")
        try:
            return self._check(sub)
        except NotFound:
            now = self.registry.submission(sub["id"])["status"]
            if now != "open":
                raise Conflict(f"submission {sub['id']} was {now} while it was being checked") from None
            raise

    def _check(self, sub: dict[str, Any]) -> dict[str, Any]:
        sub_id = sub["id"]
        errors: list[dict[str, Any]] = []
        warnings: list[dict[str, Any]] = []
        checked, parsed = None, None
        name = sub["metadata_name"] or "metadata"
        if not sub["metadata"]:
            errors.append({"file": None, "field": "metadata", "message": "no study metadata attached"})
        else:
            try:
                parsed = self.formats.read_metadata(name, sub["metadata"].encode("utf-8"))
            except CatalogError as exc:
                errors.extend(exc.errors or [{"file": name, "message": exc.message}])
        if parsed is not None:
            try:
                record = self._with_release_date(parsed.record, sub)
            except InvalidDate as exc:
                errors.extend({**e, "file": name} for e in exc.errors)
            else:
                checked = check_study_record(record, self.archive.settings.base_url, accession=f"{self.prefix}0")
                for issue in checked.report.issues:
                    (errors if issue.severity == "Violation" else warnings).append(_issue_dict(issue, name, parsed))
        listed = 0
        for entry in sub["file_lists"]:
            with self._local_copy(entry["key"]) as local:
                rows, problems = self.formats.check_file_list(local, entry["name"])
            listed += rows
            errors.extend(problems)
        missing, unlisted, contradicted, path_errors = self._cross_check(sub)
        errors.extend(path_errors[:100])
        errors.extend(contradicted[:100])
        for path, where in missing[:100]:
            errors.append({**where, "field": "path", "value": path, "message": "listed in a file list but not uploaded"})
        if len(missing) > 100:
            errors.append({"field": "path", "message": f"… and {len(missing) - 100} more listed files not uploaded"})
        for path in unlisted[:100]:
            warnings.append(
                {"field": "path", "value": path, "message": "uploaded but not in any file list (it is kept, without attributes)"}
            )
        images, image_counts = self.image_findings(sub, parsed.record if parsed is not None else {})
        warnings.extend(finding.to_warning() for finding in images)
        staged, staged_bytes = self.registry.staged_count(sub_id)
        report = {
            "valid": not errors,
            "errors": errors,
            "warnings": warnings,
            "files": {
                "staged": staged,
                "staged_bytes": staged_bytes,
                "listed": listed,
                "missing": len(missing),
                "unlisted": len(unlisted),
            },
            "images": image_counts,
        }
        if sub["status"] == "open":
            self.registry.update_submission(sub_id, report=report)
        return report

    def image_findings(self, sub: dict[str, Any], record: dict[str, Any], *, wait: bool = True) -> tuple[list[Finding], dict]:
        """What the staged image files' headers say against the depositor's ``record`` (suggestions, conflicts,
        unreadable files: :mod:`catalog.deposit_images`), and counts of what was read. Never raises for what the files
        hold; ``wait``: read the files not read yet (else only what earlier reads found)."""
        settings = self.archive.settings
        try:
            read = self.headers.read(sub["id"], lambda: self.registry.staged_files(sub["id"]), wait=wait)
        except Exception as exc:  # noqa: BLE001 - a deposit is never refused for what its files' headers do
            logging.getLogger(__name__).exception("reading the headers of submission %s failed", sub["id"])
            return [Finding("unreadable", "headers", f"the image files' headers could not be read: {exc}")], {}
        if read is None:
            return [], {"readers": "not installed"}
        found = deposit_images.findings(record, read.headers)
        if read.pending and wait:
            message = (
                f"the headers of {len(read.pending)} file(s) were not read within {settings.deposit_header_seconds:g} s"
                " (BIA_DEPOSIT_HEADER_SECONDS): validate again to see what they say"
            )
            found.append(Finding("pending", "headers", message, tuple(read.pending[:10]), len(read.pending)))
        skipped = sorted({str(h.get("reason")) for h in read.headers.values() if h.get("status") == "skipped"})
        if skipped:
            found.append(Finding("skipped", "headers", f"the image files' headers were not read: {'; '.join(skipped)}"))
        if read.candidates > read.chosen:
            message = (
                f"headers of {read.chosen} of the {read.candidates} image files were checked, spread over their paths"
                " (BIA_DEPOSIT_HEADER_FILES)"
            )
            found.append(Finding("sampled", "headers", message, (), read.chosen))
        return found, {**read.summary(settings.deposit_header_files), **deposit_images.counts(found)}

    def apply_suggestions(self, sub_id: str, owner: str, ids: Iterable[str]) -> dict[str, Any]:
        """Fill the chosen suggestions of the last validation into the submission's metadata (REMBI JSON or YAML),
        through :meth:`attach_metadata`; returns the ids applied and those skipped with the reason. Conflicts are never
        applied; the headers are not read again (only what validation read counts)."""
        sub = self.registry.submission(sub_id, owner)
        if sub["status"] != "open":
            raise Conflict(f"submission {sub_id} is {sub['status']}; suggestions go into an open submission only")
        name = sub["metadata_name"] or "study.yaml"
        data = (sub["metadata"] or "{}").encode("utf-8")
        parsed = self.formats.read_metadata(name, data)
        offered, _counts = self.image_findings(sub, parsed.record, wait=False)
        done = deposit_images.apply(parsed.record, offered, ids)
        if done.applied:
            self.attach_metadata(sub_id, owner, name, self.formats.rewrite_metadata(name, data, done.record))
        return {"applied": done.applied, "skipped": done.skipped}

    def _with_release_date(self, record: dict[str, Any], sub: dict[str, Any]) -> dict[str, Any]:
        """The record with the submission's release date (else its own, else today), parsed (InvalidDate if not)."""
        record = dict(record)
        if sub.get("release_date"):
            record["release_date"] = sub["release_date"]
        record["release_date"] = parse_date(record.get("release_date") or today_iso(), "release_date")
        record.setdefault(
            "provenance",
            {"source_resource": "BioImage Archive", "loader": "deposit", "loader_version": self.archive.model.version},
        )
        return record

    def _cross_check(
        self, sub: dict[str, Any]
    ) -> tuple[list[tuple[str, dict[str, Any]]], list[str], list[dict[str, Any]], list[dict[str, Any]]]:
        """(listed but not staged, staged but not listed, listed sizes or MD5s the uploaded bytes contradict, listed
        paths the file store cannot keep or that clash with another), using an on-disk table of listed paths."""
        with tempfile.TemporaryDirectory(dir=self.archive.tmp_dir) as tmp:
            db = sqlite3.connect(f"{tmp}/listed.sqlite")
            db.execute(
                "CREATE TABLE listed (path TEXT PRIMARY KEY, file TEXT, line INTEGER, size INTEGER, md5 TEXT, fold TEXT,"
                " dir INTEGER)"
            )
            bad: list[dict[str, Any]] = []
            for entry in sub["file_lists"]:
                with self._local_copy(entry["key"]) as local:
                    try:
                        rows = (
                            (
                                r.path,
                                entry["name"],
                                r.line,
                                r.size,  # a folder's: the total of what is uploaded below it
                                None if r.directory else _listed_md5(r.attributes),
                                clash_key(r.path),
                                int(r.directory),
                            )
                            for r in self.formats.iter_file_list(local, entry["name"])
                            if _storable(r, entry["name"], bad)
                        )
                        # a path listed again keeps its first row; listed as a folder and as a file, it is marked 2
                        db.executemany(
                            "INSERT INTO listed VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(path) DO UPDATE"
                            " SET dir = CASE WHEN dir = excluded.dir THEN dir ELSE 2 END",
                            rows,
                        )
                    except CatalogError:
                        pass  # reported by check_file_list
            db.execute("CREATE INDEX listed_fold ON listed(fold)")
            db.commit()
            db.execute("ATTACH DATABASE ? AS reg", (str(self._staged_copy(sub["id"], tmp)),))
            bad.extend(
                {
                    "file": file,
                    "line": line,
                    "field": "path",
                    "value": path,
                    "message": "is listed both as a folder and as a file",
                }
                for path, file, line in db.execute(
                    "SELECT path, file, line FROM listed WHERE dir = 2 ORDER BY file, line LIMIT 100"
                )
            )
            bad.extend(_listed_clashes(db, sub["id"]))
            missing = [
                (path, {"file": file, "line": line})
                for path, file, line in db.execute(
                    "SELECT l.path, l.file, l.line FROM listed l LEFT JOIN reg.staged_files s"
                    " ON s.submission_id = :sub AND s.path = l.path WHERE s.path IS NULL AND (l.dir = 0 OR NOT EXISTS ("
                    "SELECT 1 FROM reg.staged_files d WHERE d.submission_id = :sub AND d.path > l.path || '/'"
                    " AND d.path < l.path || '0')) ORDER BY l.file, l.line LIMIT 1001",
                    {"sub": sub["id"]},
                )
            ]
            any_folder = db.execute("SELECT 1 FROM listed WHERE dir = 1 LIMIT 1").fetchone() is not None

            def is_folder(path: str) -> bool:
                return db.execute("SELECT 1 FROM listed WHERE path = ? AND dir = 1", (path,)).fetchone() is not None

            unlisted = [
                path
                for (path,) in db.execute(
                    "SELECT s.path FROM reg.staged_files s LEFT JOIN listed l ON l.path = s.path"
                    " WHERE s.submission_id = ? AND l.path IS NULL ORDER BY s.path",
                    (sub["id"],),
                )
                if not any_folder or _listed_folder(path, is_folder) is None
            ]
            contradicted = _folder_sizes(db, sub["id"])
            for path, file, line, size, md5, got_size, got_md5 in db.execute(
                "SELECT l.path, l.file, l.line, l.size, l.md5, s.size, s.md5 FROM listed l JOIN reg.staged_files s"
                " ON s.submission_id = ? AND s.path = l.path WHERE l.dir = 0 AND (l.size IS NOT NULL AND l.size != s.size)"
                " OR (l.md5 IS NOT NULL AND l.md5 != s.md5) ORDER BY l.file, l.line LIMIT 101",
                (sub["id"],),
            ):
                where = {"file": file, "line": line, "value": path}
                if size is not None and size != got_size:
                    contradicted.append(
                        {**where, "field": "size", "message": f"listed as {size} bytes, but the uploaded file has {got_size}"}
                    )
                if md5 is not None and md5 != got_md5:
                    contradicted.append(
                        {**where, "field": "md5", "message": f"listed MD5 {md5}, but the uploaded file's is {got_md5}"}
                    )
            db.close()
        return missing, unlisted, contradicted, bad

    # ------------------------------------------------------------------ finalize

    def finalize(self, sub_id: str, owner: str) -> str:
        """Validate, mint the accession and commit the study; returns the accession. Every check that can fail runs
        before the accession is minted. A finalize an outage or a crash cut off is taken up again by its owner
        calling this once more (or by recovery); one that fails for good reopens the submission, files unmoved."""
        sub = self.registry.submission(sub_id, owner)
        if sub["status"] == "finalizing" and sub["accession"]:
            return self._resume(sub_id, sub["accession"])
        if sub["status"] != "open":
            raise Conflict(f"submission {sub_id} is {sub['status']}" + (f" as {sub['accession']}" if sub["accession"] else ""))
        report = self._validate(sub)
        if not report["valid"]:
            raise ValidationFailed(f"submission {sub_id} is not valid ({len(report['errors'])} error(s))", report["errors"])
        parsed = self.formats.read_metadata(sub["metadata_name"] or "metadata", sub["metadata"].encode("utf-8"))
        record = self._with_release_date(parsed.record, sub)
        # only the revision validated above is finalized: an upload or a file list arriving meanwhile refuses it
        accession = self.registry.begin_finalize(
            sub_id, owner, self.prefix, record["release_date"], record.get("title"), revision=sub["revision"]
        )
        self._complete(sub_id, accession)
        return accession

    def _resume(self, sub_id: str, accession: str) -> str:
        """Take up a finalize nobody holds any more (cut off by an outage or a crash), as recovery would."""
        row = self.registry.claim(accession)
        if row is None:
            raise Conflict(f"submission {sub_id} is being finalized as {accession}; try again shortly")
        self.archive.take_up(row, self.finish_interrupted)
        return accession

    def finish_interrupted(self, row: StudyRow) -> None:
        """Recovery hook: roll an interrupted finalize forward from what is still staged."""
        self._complete(row.submission_id, row.accession)  # type: ignore[arg-type]

    def give_up(self, row: StudyRow) -> None:
        """Recovery hook: a finalize that failed too often; its submission opens again, its files put back."""
        self._reopen(row.submission_id, row.accession, f"the finalize failed {row.attempts} times")  # type: ignore[arg-type]

    def _complete(self, sub_id: str, accession: str) -> CommitResult:
        """Move the staged files under the accession and commit the study (the finalize held by this process)."""
        sub = self.registry.submission(sub_id)
        try:
            result = self._commit(sub, accession)
        except BaseException as exc:
            self._after_failed_finalize(sub_id, accession, exc)
            raise
        self.archive.file_store.delete_prefix(f"submissions/{sub_id}/")
        return result

    def _commit(self, sub: dict[str, Any], accession: str) -> CommitResult:
        parsed = self.formats.read_metadata(sub["metadata_name"] or "metadata", sub["metadata"].encode("utf-8"))
        record = self._with_release_date(parsed.record, sub)
        # deposited when its finalize began (the same time however often an interrupted finalize is taken up)
        record["provenance"] = {**record["provenance"], "harvested_at": sub["updated_at"]}
        # valid at validate; this fails only if the schema changed in between
        checked = validated(record, self.archive.settings.base_url, accession=accession)
        self._move_staged_files(sub["id"], accession)
        components = components_by_title(checked.record)
        list_components = dict(parsed.file_list_components)
        for comp in checked.record.get("components") or []:
            if comp.get("file_list_name"):
                list_components.setdefault(comp["file_list_name"], comp.get("title"))
        return ingest(
            self.archive,
            checked,
            lambda: self._study_files(sub, components, list_components),
            release_date=record["release_date"],
            owner=sub["owner"],
            source="deposit",
            already_registered=True,
        )

    def _after_failed_finalize(self, sub_id: str, accession: str, exc: BaseException) -> None:
        """An outage (or an interruption) leaves the finalize in flight, free for its owner or recovery to take up
        at once; any other failure before the commit point reopens the submission with the reason."""
        try:
            row = self.registry.study(accession)
            if row is None or row.lease_owner != self.registry.holder:
                return  # let go already (after its commit point), or taken over
            if is_transient(exc) or not isinstance(exc, Exception) or self.archive.committed(row):
                self.registry.let_go(accession, count_attempt=False)
            else:
                self._reopen(sub_id, accession, str(getattr(exc, "message", exc)))
        except (LeaseLost, CatalogError):
            logging.getLogger(__name__).exception("could not record the failed finalize of %s", accession)

    def _reopen(self, sub_id: str, accession: str, reason: str) -> None:
        """Withdraw whatever of the study a commit may have stored (a finalize given up after its commit point, or on
        stores that cannot tell), put the moved files back into staging and open the submission again (its
        accession is never used)."""
        self.archive.withdraw(accession)
        self._move_back(sub_id, accession)
        report = {
            "valid": False,
            "errors": [{"field": "finalize", "value": accession, "message": f"finalize failed and was undone: {reason}"}],
            "warnings": [],
        }
        self.registry.fail_finalize(accession, sub_id, report)

    def _move_staged_files(self, sub_id: str, accession: str) -> None:
        """Move every staged file under the accession; idempotent, so recovery can repeat it."""
        store = self.archive.file_store

        def move(staged: dict[str, Any]) -> None:
            src = self._staged_key(sub_id, staged)
            dst = f"studies/{accession}/{staged['path']}"
            done = store.stat(dst)
            if done is not None and done.sha256 == staged["sha256"]:
                store.delete(src)
                return
            store.move(src, dst)

        self._each_staged(sub_id, move)

    def _move_back(self, sub_id: str, accession: str) -> None:
        """Undo :meth:`_move_staged_files` (idempotent): files moved under the accession go back to staging."""
        store = self.archive.file_store

        def back(staged: dict[str, Any]) -> None:
            src = self._staged_key(sub_id, staged)
            dst = f"studies/{accession}/{staged['path']}"
            if store.stat(src) is None and store.stat(dst) is not None:
                store.move(dst, src)

        self._each_staged(sub_id, back)

    def _each_staged(self, sub_id: str, action: Callable[[dict[str, Any]], None]) -> None:
        """Run ``action`` on every staged file, several at a time (moves are server-side copies on S3)."""
        with ThreadPoolExecutor(max_workers=self.archive.file_store.concurrency) as pool:
            for batch in _batches(self.registry.staged_files(sub_id), 1000):
                list(pool.map(action, batch))

    def _study_files(
        self, sub: dict[str, Any], components: dict[Any, str], list_components: dict[str, str]
    ) -> Iterator[StudyFile]:
        """The study's files beyond those its record lists inline: file-list rows joined with staged checksums, then
        unlisted uploads."""
        only_component = next(iter(components.values())) if len(components) == 1 else None
        listed: set[str] = set()
        folders: dict[str, str | None] = {}  # folders listed as one entry → their component
        with tempfile.TemporaryDirectory(dir=self.archive.tmp_dir) as tmp:
            db = sqlite3.connect(self._staged_copy(sub["id"], tmp))
            lookup = "SELECT size, md5, sha256 FROM staged_files WHERE submission_id = ? AND path = ?"
            try:
                for entry in sub["file_lists"]:
                    component = (
                        components.get(entry.get("component") or list_components.get(entry["name"]) or "") or only_component
                    )
                    with self._local_copy(entry["key"]) as local:
                        for row in self.formats.iter_file_list(local, entry["name"]):
                            if row.path in listed:
                                continue
                            listed.add(row.path)
                            if row.directory:  # its size left blank: the files below it are listed with theirs
                                folders[row.path] = component
                                yield StudyFile(
                                    path=row.path, size=None, attributes=row.attributes, component=component, directory=True
                                )
                                continue
                            staged = db.execute(lookup, (sub["id"], row.path)).fetchone()
                            yield StudyFile(
                                path=row.path,
                                size=staged[0] if staged else row.size,
                                attributes=row.attributes,
                                md5=staged[1] if staged else None,
                                sha256=staged[2] if staged else None,
                                component=component,
                            )
                for staged in db.execute(
                    "SELECT path, size, md5, sha256 FROM staged_files WHERE submission_id = ? ORDER BY path", (sub["id"],)
                ):
                    if staged[0] not in listed:
                        folder = _listed_folder(staged[0], folders.__contains__) if folders else None
                        yield StudyFile(
                            path=staged[0],
                            size=staged[1],
                            md5=staged[2],
                            sha256=staged[3],
                            component=(folders[folder] if folder is not None else None) or only_component,
                        )
            finally:
                db.close()

    def _staged_copy(self, sub_id: str, folder: str) -> str:
        """A local SQLite database holding the submission's staged files (table ``staged_files``, indexed as in the
        registry), so that file lists of a million rows are joined against them on disk: the embedded registry file
        itself, or a copy in ``folder`` when the state is in a database server."""
        if isinstance(self.registry.db, SqliteStateDB):
            return str(self.registry.db.path)
        path = os.path.join(folder, "staged.sqlite")
        db = sqlite3.connect(path)
        try:
            db.execute(
                "CREATE TABLE staged_files (submission_id TEXT, path TEXT, size INTEGER, md5 TEXT, sha256 TEXT,"
                " fold_key TEXT, PRIMARY KEY (submission_id, path))"
            )
            db.executemany(
                "INSERT INTO staged_files VALUES (?, ?, ?, ?, ?, ?)",
                (
                    (sub_id, r["path"], r["size"], r["md5"], r["sha256"], r["fold_key"])
                    for r in self.registry.staged_files(sub_id)
                ),
            )
            db.execute("CREATE INDEX staged_clash ON staged_files(submission_id, fold_key)")
            db.commit()
        finally:
            db.close()
        return path

    # ------------------------------------------------------------------ file store access

    @contextlib.contextmanager
    def _local_copy(self, key: str) -> Iterator[str]:
        """A local path holding the object's bytes (the file store may be S3); removed afterwards."""
        handle = tempfile.NamedTemporaryFile(dir=self.archive.tmp_dir, delete=False, suffix="-" + key.rsplit("/", 1)[-1])
        try:
            with handle:
                for chunk in self.archive.file_store.open_range(key):
                    handle.write(chunk)
            yield handle.name
        finally:
            os.unlink(handle.name)


def _folder_sizes(db: sqlite3.Connection, sub_id: str, limit: int = 100) -> list[dict[str, Any]]:
    """Listed folders whose stated size is not the total of the files uploaded below them."""
    found = db.execute(
        "SELECT l.path, l.file, l.line, l.size, (SELECT TOTAL(s.size) FROM reg.staged_files s WHERE s.submission_id = ?"
        " AND s.path > l.path || '/' AND s.path < l.path || '0') AS got FROM listed l WHERE l.dir = 1 AND l.size IS NOT NULL"
        " AND l.size != got ORDER BY l.file, l.line LIMIT ?",
        (sub_id, limit),
    )
    return [
        {
            "file": file,
            "line": line,
            "value": path,
            "field": "size",
            "message": f"listed as {size} bytes, but the files uploaded below it hold {int(got)}",
        }
        for path, file, line, size, got in found
    ]


def _listed_folder(path: str, is_folder: Callable[[str], bool]) -> str | None:
    """The innermost folder holding ``path`` that a file list lists as one entry (``is_folder``), if any."""
    parts = path.split("/")
    for end in range(len(parts) - 1, 0, -1):
        folder = "/".join(parts[:end])
        if is_folder(folder):
            return folder
    return None


def _storable(row: FileListRow, file: str, problems: list[dict[str, Any]]) -> bool:
    """Whether the file store can keep a listed path (else a problem naming its line is added)."""
    problem = path_problem(row.path, max_bytes=MAX_PATH_BYTES)
    if problem and len(problems) < 101:
        problems.append(
            {
                "file": file,
                "line": row.line,
                "field": "path",
                "value": row.path[:200],
                "message": f"the file store cannot keep this path: it has {problem}",
            }
        )
    return problem is None


#: pairs of listed (and staged) paths that would clash on disk: the same name once case and Unicode normalisation
#: are set aside, or a file where another path needs a folder
_CLASHES = (
    (
        "SELECT a.path, a.file, a.line, b.path FROM listed a JOIN listed b ON a.fold = b.fold AND a.path > b.path",
        "names the same file on case-insensitive or Unicode-normalising file systems as",
    ),
    (
        "SELECT a.path, a.file, a.line, s.path FROM listed a JOIN reg.staged_files s ON s.submission_id = :sub"
        " AND s.fold_key = a.fold AND s.path != a.path",
        "names the same file on case-insensitive or Unicode-normalising file systems as the uploaded",
    ),
    (
        "SELECT a.path, a.file, a.line, b.path FROM listed a CROSS JOIN listed b ON a.dir = 0 AND b.fold > a.fold || '/'"
        " AND b.fold < a.fold || '0'",
        "is a file where a folder is needed for",
    ),
    # CROSS JOIN keeps the written order: the outer table scanned once, the inner one searched by index range
    (
        "SELECT a.path, a.file, a.line, s.path FROM listed a CROSS JOIN reg.staged_files s ON a.dir = 0"
        " AND s.submission_id = :sub AND s.fold_key > a.fold || '/' AND s.fold_key < a.fold || '0'",
        "is a file where a folder is needed for the uploaded",
    ),
    (
        "SELECT a.path, a.file, a.line, s.path FROM reg.staged_files s CROSS JOIN listed a ON s.submission_id = :sub"
        " AND a.fold > s.fold_key || '/' AND a.fold < s.fold_key || '0'",
        "needs a folder where there is an uploaded file:",
    ),
    (
        "SELECT a.path, a.file, a.line, s.path FROM listed a JOIN reg.staged_files s ON a.dir = 1"
        " AND s.submission_id = :sub AND s.fold_key = a.fold",
        "is listed as a folder, but it was uploaded as a file:",
    ),
)


def _listed_clashes(db: sqlite3.Connection, sub_id: str, limit: int = 100) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for query, how in _CLASHES:
        for path, file, line, other in db.execute(query + f" LIMIT {limit - len(found)}", {"sub": sub_id}):
            found.append({"file": file, "line": line, "field": "path", "value": path, "message": f"{how} {other!r}"})
        if len(found) >= limit:
            break
    return found


def _listed_md5(columns: dict[str, str]) -> str | None:
    """The MD5 a file-list row states (an ``md5``/``md5sum``/``checksum`` column of 32 hex digits), lower case."""
    for name, value in columns.items():
        if name.strip().lower().replace(" ", "_") in ("md5", "md5sum", "md5_checksum", "checksum", "checksum_md5"):
            text = str(value or "").strip().lower()
            return text if re.fullmatch(r"[0-9a-f]{32}", text) else None
    return None


def _issue_dict(issue: ValidationIssue, name: str, parsed: ParsedMetadata) -> dict[str, Any]:
    detail = issue.to_dict()
    detail["file"] = name
    if issue.source == "linkml":
        location = issue.focus.rstrip("/") + ("/" + issue.path if issue.path else "")
        detail["field"] = location
        line = parsed.line_of(location)
        if line:
            detail["line"] = line
    else:
        detail["node"] = issue.focus
        detail["field"] = issue.path
    return detail


def _batches(items, size: int):
    """Lists of ``size`` items from an iterable (``itertools.batched`` before Python 3.12)."""
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch
