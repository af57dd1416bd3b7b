"""Where the files of a harvested study are served: by the archive the record came from, not by this catalog.

A harvested record lists its files (paths, sizes, file-list columns) but this catalog holds none of their bytes. So a
download of such a file answers a redirect to the file at its source archive, the manifest lists that URL, and the
study page links to the study's own page there. A file's URL is made as the header readers make it
(:func:`loaders.image_headers.remote.file_url`): the source's base URL from ``BIA_HEADER_SOURCES`` (by default
BioStudies' ``https://ftp.ebi.ac.uk/biostudies/fire/{relpath}/Files/`` and EMPIAR's
``https://ftp.ebi.ac.uk/empiar/world_availability/{number}/``) with the file's path appended, never a URL written in
the record. Studies whose source has no configured file server (IDR: its images are served through OMERO, not as
files by path) have no file URL; their page links to the record at the source.
"""

from __future__ import annotations

from typing import Any

from catalog.config import Settings
from loaders.image_headers.remote import NotLocated, file_url, source_of

#: the study pages of the archives whose records are harvested, by the source :func:`source_of` names
STUDY_PAGES = {
    "biostudies": "https://www.ebi.ac.uk/biostudies/studies/{accession}",
    "empiar": "https://www.ebi.ac.uk/empiar/{accession}/",
}
#: the archive's name, as a link to its files reads ("the files at EMPIAR")
SOURCE_NAMES = {"biostudies": "BioStudies", "empiar": "EMPIAR"}


def source_file_url(settings: Settings, accession: str, path: str) -> str | None:
    """The URL of a harvested study's file at its source archive; None when its source has no file server
    configured or the path cannot be placed below it."""
    source = source_of(accession)
    if source is None:
        return None
    try:
        return file_url(settings.header_sources, source, accession, path)
    except NotLocated:
        return None


def source_page(accession: str, tree: dict[str, Any]) -> tuple[str, str] | None:
    """The page of a harvested study at the archive it came from, and that archive's name: the record's own
    provenance URL when it has one, else the archive's study page made from the accession; None if unknown."""
    provenance = tree.get("prov:wasGeneratedBy") or {}
    provenance = provenance[0] if isinstance(provenance, list) and provenance else provenance
    written = provenance.get("rembi:source_url") if isinstance(provenance, dict) else None
    url = written.get("@id") if isinstance(written, dict) else written
    source = source_of(accession)
    name = SOURCE_NAMES.get(source or "") or _resource_name(provenance)
    if isinstance(url, str) and url.startswith(("https://", "http://")):
        return url, name
    if source in STUDY_PAGES:
        return STUDY_PAGES[source].format(accession=accession), name
    return None


def _resource_name(provenance: Any) -> str:
    """The name of the source resource a provenance node names (``…/registry/idr`` → ``IDR``)."""
    resource = provenance.get("rembi:source_resource") if isinstance(provenance, dict) else None
    iri = resource.get("@id") if isinstance(resource, dict) else resource
    tail = str(iri or "").rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    return {"idr": "IDR", "empiar": "EMPIAR", "BioImageArchive": "the BioImage Archive"}.get(tail, "its source archive")
