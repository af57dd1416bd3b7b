"""Harvest runs: read or fetch source records, load them into REMBI, validate, commit; skip unchanged ones.

``bia harvest KIND ITEM…`` drives :class:`Harvester`. An item is a local file or folder, a URL, or an
identifier at the source (``S-BIAD590`` at BioStudies, ``EMPIAR-10934`` at EMPIAR, ``idr0004-thorpe-rad52`` in
the IDR metadata repository). Each loaded record is committed through :meth:`catalog.archive.Archive.commit_study`
(the study's named graph is replaced atomically, the indexes follow), with the hash of what was loaded, so a
second run skips records whose source has not changed and the stored graph stays identical. A record that
fails (fetch, parse, validation, file list) is reported with its reason and leaves the catalog unchanged.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import json
import os
import re
import tempfile
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from catalog.archive import Archive
from catalog.dates import parse_date, today_iso
from catalog.errors import CatalogError, ValidationFailed
from catalog.registry import EMBARGOED, RELEASED
from catalog.ingest import components_by_title, ingest, validated
from catalog.study_files import StudyFile
from loaders import file_lists as file_list_reader
from loaders.fetch import Fetcher, FetchError
from loaders.loaded import LoadedRecord

KINDS = ("pagetab", "empiar", "idr", "legacy", "rocrate")
LOADER_VERSION = "1"

log = logging.getLogger(__name__)


class HarvestError(CatalogError):
    """An item that cannot be harvested (unknown kind, nothing at that path or identifier)."""

    status = 422
    code = "harvest_failed"


@dataclass
class Fetched:
    """A source record made local: the file (or folder) to load and where its file lists are."""

    label: str
    path: Path
    source_url: str | None
    file_list: Callable[[str], Path | None]


@dataclass
class HarvestSummary:
    """What a run did: accessions loaded or unchanged, items that failed with the reason, and the warnings of the
    records loaded (what their source lacks or holds in doubt, as the loaders name it)."""

    loaded: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "loaded": self.loaded,
            "unchanged": self.unchanged,
            "failed": [{"item": item, "reason": reason} for item, reason in self.failed],
            "warnings": [{"item": item, "warning": warning} for item, warning in self.warnings],
        }


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


# ----------------------------------------------------------------------------- loading one record


def load_records(kind: str, path: Path, *, source_url: str | None, harvested_at: str) -> list[LoadedRecord | CatalogError]:
    """Every REMBI record in a local source file or folder of ``kind`` (a legacy collection's unreadable records
    as their errors)."""
    if kind == "pagetab":
        from loaders.pagetab import load_pagetab_json, load_pagetab_tsv

        # a published record is kept whole: an association to a missing section becomes a noted attribute, and
        # what the archive's own record lacks is filled as the archive shows it (noted)
        read = load_pagetab_tsv if path.suffix.lower() in (".tsv", ".txt") else load_pagetab_json
        return [read(path, unresolved_associations="drop", published=True, source_url=source_url, harvested_at=harvested_at)]
    if kind == "empiar":
        from loaders.empiar import load_empiar

        return [load_empiar(path, source_url=source_url, harvested_at=harvested_at)]
    if kind == "idr":
        from loaders.idr import load_idr_study

        return [load_idr_study(path, source_url=source_url, harvested_at=harvested_at)]
    if kind == "rocrate":
        from loaders.rocrate import load_rocrate

        return [load_rocrate(path, source_url=source_url, harvested_at=harvested_at)]
    if kind == "legacy":
        from loaders.legacy import load_legacy_collection

        return list(load_legacy_collection(path, harvested_at=harvested_at))
    raise HarvestError(f"unknown harvest kind {kind!r} (one of {', '.join(KINDS)})")


def _without_harvest_time(record: dict[str, Any]) -> dict[str, Any]:
    copy = dict(record)
    if isinstance(copy.get("provenance"), dict):
        copy["provenance"] = {k: v for k, v in copy["provenance"].items() if k != "harvested_at"}
    return copy


def content_hash(record: dict[str, Any], file_lists: list[Path]) -> str:
    """A hash of what a harvest loaded (record without its harvest time, file lists' bytes, loader version)."""
    digest = hashlib.sha256(LOADER_VERSION.encode())
    digest.update(json.dumps(_without_harvest_time(record), sort_keys=True, default=str).encode())
    for path in file_lists:
        with path.open("rb") as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


# ----------------------------------------------------------------------------- the run


class Harvester:
    """Harvests of one archive. ``fetcher`` is used for identifiers and URLs (none needed for local files)."""

    def __init__(self, archive: Archive, fetcher: Fetcher | None = None, *, metadata_only: bool = False) -> None:
        """``metadata_only`` loads records whose file lists are not at hand (their file tables stay empty)."""
        self.metadata_only = metadata_only
        self.archive = archive
        settings = archive.settings
        self.settings = settings
        self.fetcher = fetcher or Fetcher(interval=settings.harvest_interval, attempts=settings.harvest_attempts)

    def run(self, kind: str, items: list[str], progress: Callable[[str], object] | None = None) -> HarvestSummary:
        """Harvest every item; one failing item never stops the others."""
        if kind not in KINDS:
            raise HarvestError(f"unknown harvest kind {kind!r} (one of {', '.join(KINDS)})")
        summary = HarvestSummary()
        with tempfile.TemporaryDirectory(dir=self.archive.tmp_dir, prefix="harvest-") as tmp:
            for item in items:
                try:
                    fetched = self._localise(kind, item, Path(tmp))
                    records = load_records(kind, fetched.path, source_url=fetched.source_url, harvested_at=now_iso())
                except CatalogError as exc:
                    summary.failed.append((item, _reason(exc)))
                    continue
                except Exception as exc:  # noqa: BLE001 - a record the loaders do not cope with stops only itself
                    log.exception("harvesting %s failed", item)
                    summary.failed.append(
                        (item, f"could not be read ({type(exc).__name__}: {exc}); this is a loader fault, logged")
                    )
                    continue
                for loaded in records:
                    if isinstance(loaded, CatalogError):  # one record of a collection that could not be read
                        summary.failed.append((getattr(loaded, "where", item), _reason(loaded)))
                        continue
                    label = str(loaded.record.get("accession") or item)
                    try:
                        outcome = self._commit(loaded, fetched, Path(tmp))
                    except CatalogError as exc:
                        summary.failed.append((label, _reason(exc)))
                        continue
                    except Exception as exc:  # noqa: BLE001 - nothing was committed; the other records go on
                        log.exception("committing %s failed", label)
                        summary.failed.append((label, f"could not be committed ({type(exc).__name__}: {exc}); logged"))
                        continue
                    (summary.loaded if outcome == "loaded" else summary.unchanged).append(label)
                    summary.warnings += [(label, warning) for warning in loaded.warnings]
                if progress:
                    progress(item)
        return summary

    # ------------------------------------------------------------------ where a record comes from

    def _localise(self, kind: str, item: str, tmp: Path) -> Fetched:
        local = Path(item)
        if local.exists():
            folder = local if local.is_dir() else local.parent
            return Fetched(item, local, None, lambda name: _beside(folder, name))
        if re.match(r"^https?://", item):
            return self._fetch_url(item, tmp)
        if "/" in item or os.sep in item or re.search(r"\.(json|tsv|txt|xml|ya?ml|csv)$", item, re.I):
            raise HarvestError(f"{item}: no such file")
        if kind == "pagetab":
            return self._fetch_biostudies(item, tmp)
        if kind == "empiar":
            number = item.upper().removeprefix("EMPIAR-")
            if not number.isdigit():
                raise HarvestError(f"{item}: not a file, a URL or an EMPIAR identifier (EMPIAR-10934)")
            url = f"{self.settings.empiar_url.rstrip('/')}/entry/{number}/"
            return self._fetch_url(url, tmp, name=f"EMPIAR-{number}.json")
        if kind == "idr":
            match = re.match(r"^(idr\d{4})(-[\w-]+)?$", item)
            if not match or not match.group(2):
                raise HarvestError(f"{item}: not a file, a URL or an IDR study folder name (idr0004-thorpe-rad52)")
            url = f"{self.settings.idr_url.rstrip('/')}/{item}/{match.group(1)}-study.txt"
            return self._fetch_url(url, tmp)
        raise HarvestError(f"{item}: no such file or folder ({kind} records are read from local files)")

    def _fetch_url(self, url: str, tmp: Path, name: str | None = None) -> Fetched:
        target = tmp / (name or Path(urllib.parse.urlsplit(url).path).name or "record")
        self.fetcher.download(url, target)
        base = url.rsplit("/", 1)[0]

        def file_list(list_name: str) -> Path | None:
            return self.fetcher.download(f"{base}/{urllib.parse.quote(list_name)}", tmp / Path(list_name).name)

        return Fetched(url, target, url, file_list)

    def _fetch_biostudies(self, accession: str, tmp: Path) -> Fetched:
        if not re.match(r"^S-[A-Z][A-Z0-9]*$", accession):
            raise HarvestError(f"{accession}: not a file, a URL or a BioStudies accession (S-BIAD590)")
        api = self.settings.biostudies_url.rstrip("/")
        url = f"{api}/studies/{accession}"
        target = tmp / f"{accession}.json"
        self.fetcher.download(url, target, accept="application/json")
        files_base: list[str] = []

        def file_list(list_name: str) -> Path | None:
            if not files_base:
                files_base.append(self._biostudies_files_base(accession, api))
            name = list_name if Path(list_name).suffix else list_name + ".json"
            local = tmp / f"{accession}-{Path(name).name}"
            return self.fetcher.download(f"{files_base[0]}/{urllib.parse.quote(name)}", local)

        return Fetched(accession, target, url, file_list)

    def _biostudies_files_base(self, accession: str, api: str) -> str:
        if self.settings.biostudies_files_url:
            return f"{self.settings.biostudies_files_url.rstrip('/')}/{accession}/Files"
        info = json.loads(self.fetcher.get_bytes(f"{api}/studies/{accession}/info", accept="application/json"))
        link = info.get("httpLink") if isinstance(info, dict) else None
        if not link:
            raise FetchError(f"{api}/studies/{accession}/info: no httpLink to find the study's file lists")
        return f"{link.rstrip('/')}/Files"

    # ------------------------------------------------------------------ committing one record

    def _commit(self, loaded: LoadedRecord, fetched: Fetched, tmp: Path) -> str:
        record = loaded.record
        accession = str(record.get("accession") or "")
        lists = []
        for ref in loaded.file_lists:
            path = None if self.metadata_only else fetched.file_list(ref.file_list)
            if path is None and self.metadata_only:
                continue
            if path is None:
                raise HarvestError(f"{accession}: file list {ref.file_list!r} not found beside {fetched.label}")
            lists.append((ref, path))
        digest = content_hash(record, [path for _, path in lists])
        previous = self.archive.registry.study(accession) if accession else None
        if previous is not None and previous.content_hash == digest and previous.state in (RELEASED, EMBARGOED):
            return "unchanged"
        if previous is not None and previous.source == "deposit":
            raise HarvestError(f"{accession}: a deposited study has this accession; a harvest never replaces it")
        checked = validated(record, self.settings.base_url, label=fetched.label)
        for ref, path in lists:
            report = file_list_reader.check_file_list(path, name=ref.file_list)
            if report.errors:
                raise ValidationFailed(
                    f"{accession}: file list {ref.file_list} has {len(report.errors)} error(s)", list(report.errors)
                )
        components = components_by_title(checked.record)

        def listed() -> Iterator[StudyFile]:
            """Every file-list row (streamed: a path listed twice is one file in the graph)."""
            for ref, path in lists:
                component = components.get(ref.component) if ref.component else None
                by_value = ref.component_by_value or {}
                for row in file_list_reader.iter_file_list(path, name=ref.file_list):
                    if ref.component_column:
                        component = components.get(by_value.get(str(row.attributes.get(ref.component_column, ""))))
                    yield StudyFile(
                        path=row.path,
                        size=row.size,
                        attributes=dict(row.attributes),
                        component=component,
                        directory=row.kind == "directory",
                    )

        ingest(
            self.archive,
            checked,
            listed,
            release_date=_release_date(checked.record),
            source=_source_name(checked.record),
            content_hash=digest,
        )
        return "loaded"


def _beside(folder: Path, name: str) -> Path | None:
    """A file list named in a record, looked for beside it (with or without its extension)."""
    for candidate in (folder / name, folder / f"{name}.json", folder / f"{name}.tsv", folder / Path(name).name):
        if candidate.is_file():
            return candidate
    return None


def _release_date(record: dict[str, Any]) -> str:
    """A harvested study's release date (today when its source gives none)."""
    return parse_date(record.get("release_date") or today_iso(), "release_date", allow_time=True)


def _source_name(record: dict[str, Any]) -> str:
    provenance = record.get("provenance") or {}
    return str(provenance.get("loader") or provenance.get("source_resource") or "harvest")


def _reason(exc: CatalogError) -> str:
    details = "; ".join(
        " ".join(str(d[k]) for k in ("file", "line", "node", "focus", "field", "path", "message") if d.get(k) not in (None, ""))
        for d in exc.errors[:5]
    )
    return exc.message + (f" — {details}" if details else "")
