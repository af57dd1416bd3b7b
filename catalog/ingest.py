"""The one way a study record enters the catalog, whoever brings it (a deposit's finalize, a harvest, recovery):
validated as REMBI in both views, turned into RDF, and committed with its files through the archive's commit path.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

from catalog.archive import Archive, CommitResult
from catalog.errors import ValidationFailed
from catalog.rembi_rdf import record_to_graph
from catalog.study_files import StudyFile, files_from_record
from catalog.views import PRIVATE, PUBLIC
from catalog.validation import CheckedStudy, check_study_record

#: the files of a study beyond those its record lists inline, as a function called once per pass over them
ListedFiles = Callable[[], Iterable[StudyFile]]


def validated(record: dict[str, Any], base_url: str, *, accession: str | None = None, label: str | None = None) -> CheckedStudy:
    """The record prepared, checked and converted; :class:`ValidationFailed` naming every violation if it is not
    valid REMBI (``label`` names it in the message when it has no accession yet)."""
    checked = check_study_record(record, base_url, accession=accession)
    if not checked.report.conforms:
        name = accession or record.get("accession") or label or "the record"
        raise ValidationFailed(
            f"{name}: not valid REMBI ({len(checked.report.violations)} error(s))",
            [issue.to_dict() for issue in checked.report.violations],
        )
    return checked


def components_by_title(prepared: dict[str, Any]) -> dict[Any, str]:
    """The IRI of each of a prepared study's components, by title (how file lists name them)."""
    return {c.get("title"): c["id"] for c in prepared.get("components") or []}


def ingest(
    archive: Archive,
    checked: CheckedStudy,
    listed: ListedFiles = lambda: (),
    *,
    release_date: str,
    source: str,
    owner: str | None = None,
    content_hash: str | None = None,
    already_registered: bool = False,
) -> CommitResult:
    """Commit a validated study: its metadata graph, the files its record lists inline, then ``listed()`` (a path
    the record lists inline is not repeated). The record's provenance gets the study's next ``record_version``."""
    prepared = with_record_version(checked.record, next_record_version(archive, checked.record["accession"]))
    inline = list(files_from_record(prepared))
    inline_paths = {f.path for f in inline}

    def files() -> Iterator[StudyFile]:
        yield from inline
        for file in listed():
            if file.path not in inline_paths:
                yield file

    return archive.commit_study(
        prepared["accession"],
        record_to_graph({k: v for k, v in prepared.items() if k != "files"}),
        files,
        release_date=release_date,
        owner=owner,
        source=source,
        title=prepared.get("title"),
        already_registered=already_registered,
        content_hash=content_hash,
    )


def next_record_version(archive: Archive, accession: str) -> int:
    """1 for a study the catalog does not hold; else one more than the version of the record it holds (a record
    from before versions were kept counts as version 1)."""
    study = archive.study_iri(accession)
    query = (
        "PREFIX prov: <http://www.w3.org/ns/prov#> PREFIX rembi: <https://w3id.org/rembi/>"
        f" SELECT ?version WHERE {{ GRAPH <{study}> {{ <{study}> ?p ?o"
        f" OPTIONAL {{ <{study}> prov:wasGeneratedBy/rembi:record_version ?version }} }} }} LIMIT 1"
    )
    for name in (PUBLIC, PRIVATE):
        for row in archive.view(name).graph.select(query):
            return int(row["version"]["value"]) + 1 if "version" in row else 2
    return 1


def with_record_version(record: dict[str, Any], version: int) -> dict[str, Any]:
    """``record`` whose provenance (if it has one) says ``version``."""
    if not isinstance(record.get("provenance"), dict):
        return record
    return {**record, "provenance": {**record["provenance"], "record_version": version}}


__all__ = ["ListedFiles", "components_by_title", "ingest", "next_record_version", "validated", "with_record_version"]
