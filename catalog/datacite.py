"""A study as a DataCite Metadata Schema (kernel 4) ``resource``: what a DOI registration would send.

The one DataCite renderer: ``/studies/{accession}.datacite.xml`` (and ``Accept:
application/vnd.datacite.datacite+xml``) and the OAI-PMH ``oai_datacite`` records both serve it.

Identifier: kernel 4 requires one. A study with a DOI (``rembi:doi``) is identified by it (``identifierType="DOI"``);
one without (registration is out of scope here) by its landing page URL (``identifierType="URL"``). Either way the
accession and the landing page are ``alternateIdentifiers``, so the document is what a registration would send
once a DOI is minted (only ``identifier`` changes).
"""

from __future__ import annotations

import datetime as dt

from lxml import etree

from catalog.study_metadata import Creator, StudyMetadata

NAMESPACE = "http://datacite.org/schema/kernel-4"
SCHEMA_LOCATION = "http://schema.datacite.org/meta/kernel-4/metadata.xsd"
MEDIA_TYPE = "application/vnd.datacite.datacite+xml"
_XSI = "http://www.w3.org/2001/XMLSchema-instance"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"

#: RelationEnum names → DataCite relationType (generic or correlative relations: ``Other``, with the words)
RELATION_TYPES = {
    "supplements_publication": "IsSupplementTo",
    "same_as": "IsIdenticalTo",
    "derived_from": "IsDerivedFrom",
    "source_of": "IsSourceOf",
    "references_map": "References",
}
ORCID = ("ORCID", "https://orcid.org")
ROR = ("ROR", "https://ror.org")
#: DataCite's standard value for a creator nobody named
UNKNOWN = ":unav"


def _sub(parent: etree._Element, name: str, text: str | None = None, **attributes: str | None) -> etree._Element:
    element = etree.SubElement(parent, f"{{{NAMESPACE}}}{name}", {k: v for k, v in attributes.items() if v is not None})
    if text is not None:
        element.text = text
    return element


def datacite_resource(meta: StudyMetadata, catalog_name: str) -> etree._Element:
    """The DataCite ``resource`` element of a study (valid against the kernel-4 schema)."""
    root = etree.Element(f"{{{NAMESPACE}}}resource", nsmap={None: NAMESPACE, "xsi": _XSI})  # type: ignore[dict-item]
    root.set(f"{{{_XSI}}}schemaLocation", f"{NAMESPACE} {SCHEMA_LOCATION}")
    if meta.doi:
        _sub(root, "identifier", meta.doi, identifierType="DOI")
    else:
        _sub(root, "identifier", meta.iri, identifierType="URL")
    creators = _sub(root, "creators")
    for creator in meta.creators or [Creator(UNKNOWN)]:
        _creator(creators, creator)
    _sub(_sub(root, "titles"), "title", meta.title, **{_XML_LANG: "en"})
    _sub(root, "publisher", meta.publisher or catalog_name)
    _sub(root, "publicationYear", (meta.released or "")[:4] or str(dt.date.today().year))
    _sub(root, "resourceType", "Bioimaging study", resourceTypeGeneral="Dataset")
    _subjects(root, meta)
    if meta.released:
        dates = _sub(root, "dates")
        _sub(dates, "date", meta.released, dateType="Issued")
        _sub(dates, "date", meta.released, dateType="Available")
    alternates = _sub(root, "alternateIdentifiers")
    _sub(alternates, "alternateIdentifier", meta.accession, alternateIdentifierType=f"{catalog_name} accession")
    if meta.doi:
        _sub(alternates, "alternateIdentifier", meta.iri, alternateIdentifierType="URL")
    _related(root, meta)
    if meta.files:
        sizes = _sub(root, "sizes")
        _sub(sizes, "size", f"{meta.files} files")
        _sub(sizes, "size", f"{meta.bytes} bytes")
    if meta.licence:
        _sub(_sub(root, "rightsList"), "rights", _licence_name(meta.licence), rightsURI=meta.licence)
    _descriptions(root, meta)
    _funding(root, meta)
    return root


def _creator(parent: etree._Element, creator: Creator) -> None:
    element = _sub(parent, "creator")
    name_type = None if creator.name == UNKNOWN else "Organizational" if creator.organisation else "Personal"
    _sub(element, "creatorName", creator.name, nameType=name_type)
    if creator.orcid:
        scheme, uri = ORCID
        _sub(element, "nameIdentifier", creator.orcid, nameIdentifierScheme=scheme, schemeURI=uri)
    for affiliation in creator.affiliations:
        scheme, uri = ROR
        if affiliation.ror:
            _sub(element, "affiliation", affiliation.name, affiliationIdentifier=affiliation.ror,
                 affiliationIdentifierScheme=scheme, schemeURI=uri)  # fmt: skip
        else:
            _sub(element, "affiliation", affiliation.name)


def _subjects(root: etree._Element, meta: StudyMetadata) -> None:
    if not meta.subjects and not meta.keywords:
        return
    subjects = _sub(root, "subjects")
    for term in meta.subjects:
        scheme, uri = term.scheme or (None, None)
        _sub(subjects, "subject", term.label, subjectScheme=scheme, schemeURI=uri, valueURI=term.iri)
    for keyword in meta.keywords:
        _sub(subjects, "subject", keyword)


def _related(root: etree._Element, meta: StudyMetadata) -> None:
    if not meta.related:
        return
    related = _sub(root, "relatedIdentifiers")
    for item in meta.related:
        relation = RELATION_TYPES.get(item.relation, "Other")
        information = item.relation.replace("_", " ") if relation == "Other" else None
        _sub(related, "relatedIdentifier", item.identifier, relatedIdentifierType=item.kind, relationType=relation,
             relationTypeInformation=information)  # fmt: skip


def _descriptions(root: etree._Element, meta: StudyMetadata) -> None:
    """The abstract, and funding statements that name no funder (DataCite has no field of their own for them)."""
    statements = [f.statement for f in meta.funding if f.statement and not f.funder]
    if not meta.description and not statements:
        return
    descriptions = _sub(root, "descriptions")
    if meta.description:
        _sub(descriptions, "description", meta.description, descriptionType="Abstract")
    for statement in statements:
        _sub(descriptions, "description", statement, descriptionType="Other")


def _funding(root: etree._Element, meta: StudyMetadata) -> None:
    """Each funder named, with its award (a ``fundingReference`` needs the funder's name)."""
    named = [f for f in meta.funding if f.funder]
    if not named:
        return
    references = _sub(root, "fundingReferences")
    for funding in named:
        reference = _sub(references, "fundingReference")
        _sub(reference, "funderName", funding.funder)
        if funding.award:
            _sub(reference, "awardNumber", funding.award)


def _licence_name(uri: str) -> str:
    """A Creative Commons licence's usual name (``CC BY 4.0``), else its URI."""
    parts = [p for p in uri.split("/") if p]
    if "creativecommons.org" in uri and len(parts) >= 4:
        kind = "CC0" if parts[-2] == "zero" else "CC " + parts[-2].upper()
        return f"{kind} {parts[-1]}"
    return uri


def to_bytes(element: etree._Element) -> bytes:
    return etree.tostring(element, xml_declaration=True, encoding="UTF-8", pretty_print=True)
