"""Deterministic IRIs for studies and everything inside them.

A study's IRI is ``{base}/studies/{accession}``; it also names the study's graph. Objects inside a study get
``{study}/{collection}/{key}``, where ``key`` is a short hash of the accession, the class and a natural key
(the PageTab section accno, the title, or a file's path and size), so loading the same record twice mints the
same IRIs. Value objects without an identifier (authors, grants, attributes…) get fragment IRIs
``{owner}#{slot}-{hash}`` that dereference to the page of the record they belong to.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

COLLECTIONS = {
    "StudyComponent": "components",
    "BioSample": "biosamples",
    "Specimen": "specimens",
    "ImageAcquisition": "acquisitions",
    "ImageCorrelation": "correlations",
    "ImageAnalysis": "analyses",
    "AnnotationMethod": "annotation-methods",
    "FileReference": "files",
    "Image": "images",
}

_ACCESSION = re.compile(r"^[A-Za-z][A-Za-z0-9]*([-_.][A-Za-z0-9]+)*$")


def digest(*parts: Any, length: int = 16) -> str:
    """A short, stable hex digest of the parts."""
    text = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def check_accession(accession: str) -> str:
    """The accession if it is well formed (letters and digits, separated by single '-', '_' or '.'), else ValueError."""
    if not _ACCESSION.match(accession or ""):
        raise ValueError(f"not a valid accession: {accession!r} (expected e.g. S-BIAD123, EMPIAR-10002 or idr0004)")
    return accession


def study_iri(base_url: str, accession: str) -> str:
    """``{base}/studies/{accession}``."""
    return f"{base_url.rstrip('/')}/studies/{check_accession(accession)}"


def accession_of(iri: str) -> str | None:
    """The accession in a study (or sub-object) IRI, if it has the ``/studies/{acc}`` form."""
    match = re.search(r"/studies/([^/#?]+)", iri)
    return match.group(1) if match else None


def object_iri(study: str, class_name: str, natural_key: Any) -> str:
    """The IRI of an identified object (component, sample, file…) of a study."""
    return f"{study}/{COLLECTIONS[class_name]}/{digest(study.rsplit('/', 1)[-1], class_name, natural_key)}"


def file_iri(study: str, path: str, size: int | None) -> str:
    """A file's IRI, from its path and size."""
    return object_iri(study, "FileReference", [path, size])


def value_iri(owner: str, slot: str, content: Any) -> str:
    """A fragment IRI for a value object (author, grant, attribute…) from its content."""
    base = owner.split("#", 1)[0]
    return f"{base}#{slot}-{digest(owner, slot, content, length=12)}"


def image_iri(study: str, path: str, index: int) -> str:
    """The IRI of the ``index``-th image the headers found in a study's file: what every image route, job and
    derived file names images by."""
    return object_iri(study, "Image", ["headers", path, index])


def image_id(accession: str, path: str, index: int) -> str:
    """The last segment of :func:`image_iri` (it depends on the accession, not on the catalog's base URL)."""
    return image_iri(study_iri("https://example.org", accession), path, index).rsplit("/", 1)[-1]
