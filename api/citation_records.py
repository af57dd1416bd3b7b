"""A released study's citation metadata (:mod:`catalog.study_metadata`) and its DataCite rendering, for the study
routes (``/studies/{accession}.datacite.xml``) and the OAI-PMH records: released studies only, else 404."""

from __future__ import annotations

from flask import Response

from api.context import services, settings
from catalog import datacite, identifiers
from catalog.errors import NotFound
from catalog.study_metadata import StudyMetadata, read_study_metadata

#: relations that hold both ways (a correlative partner names the study, or the study it)
SYMMETRIC = ("same_specimen_imaged", "same_as")


def public_metadata(accession: str) -> StudyMetadata:
    """The metadata of a released study, with its links from the link graph; :class:`NotFound` for any other."""
    from linkers.study_links import study_links

    archive, base = services().archive, settings().base_url
    try:
        iri = identifiers.study_iri(base, accession)
    except ValueError:
        raise NotFound(f"{accession!r} is not an accession") from None
    found = study_links(archive, accession)  # NotFound unless released
    links = found["outgoing"] + [  # a relation that holds both ways counts from the other side too
        {"target": link["source"], "relation": link["relation"]} for link in found["incoming"] if link["relation"] in SYMMETRIC
    ]
    row = archive.registry.study(accession)
    files = (row.file_count, row.total_size) if row is not None else (0, 0)
    meta = read_study_metadata(
        archive.public.reads, iri, accession, catalog_name=settings().catalog_name, links=links, files=files
    )
    if meta is None:
        raise NotFound(f"no released study {accession}")
    if meta.released is None and row is not None:
        meta.released = row.release_date[:10]
    return meta


def datacite_response(accession: str) -> Response:
    """The DataCite XML of a released study."""
    element = datacite.datacite_resource(public_metadata(accession), settings().catalog_name)
    response = Response(datacite.to_bytes(element), mimetype=datacite.MEDIA_TYPE)
    response.headers["Link"] = f'<{identifiers.study_iri(settings().base_url, accession)}>; rel="describes"; type="text/html"'
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
