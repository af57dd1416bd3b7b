"""What PageTab sections are in REMBI: section types, the record slots their attributes fill, the keys read.

Section types are compared with CamelCase split, without case, spacing or a plural ``s``
(``Study Components`` = ``StudyComponent`` = ``study component``); attribute keys as
:func:`loaders.pagetab.reading.key` writes them.
"""

from __future__ import annotations

import re
from typing import Any

from loaders.pagetab.reading import key, section_type

_KINDS = {
    "study component": "component",
    "biosample": "biosample",
    "specimen": "specimen",
    "image acquisition": "acquisition",
    "image correlation": "correlation",
    "image analysis": "analysis",
    "annotations": "annotation",
    "annotation": "annotation",
    "annotation method": "annotation",
    "author": "author",
    "organisation": "organisation",
    "organization": "organisation",
    "publication": "publication",
    "funding": "funding",
    "associations": "associations",
    "association": "associations",
    "organism": "organism",
    "imaging method": "imaging method",
    "version": "version",
}

#: Study fields some records write on the submission rather than on its Study section
SECTION_FIELDS_ON_ENVELOPE = {"description", "abstract", "keywords", "keyword", "license", "licence"}

#: REMBI object kind → (its class in the schema, record slot of Study, component association slot).
OBJECT_SLOTS = {
    "biosample": ("BioSample", "biosamples", "component_biosamples"),
    "specimen": ("Specimen", "specimens", "component_specimens"),
    "acquisition": ("ImageAcquisition", "image_acquisitions", "component_image_acquisitions"),
    "correlation": ("ImageCorrelation", "image_correlations", "component_image_correlations"),
    "analysis": ("ImageAnalysis", "image_analyses", "component_image_analyses"),
    "annotation": ("AnnotationMethod", "annotation_methods", "component_annotation_methods"),
}
ASSOCIATION_KEYS = {
    "biosample": "biosample",
    "specimen": "specimen",
    "image acquisition": "acquisition",
    "image correlation": "correlation",
    "image analysis": "analysis",
    "annotation": "annotation",
    "annotations": "annotation",
    "annotation method": "annotation",
}
#: Plain text attributes per kind: attribute key → record slot (lists for multivalued slots).
TEXT_SLOTS: dict[str, dict[str, Any]] = {
    "biosample": {
        "title": "title",
        "description": "description",
        "biological entity": "biological_entity",
        "intrinsic variable": ["intrinsic_variables"],
        "intrinsic variables": ["intrinsic_variables"],
        "extrinsic variable": ["extrinsic_variables"],
        "extrinsic variables": ["extrinsic_variables"],
        "experimental variable": ["experimental_variables"],
        "experimental variables": ["experimental_variables"],
    },
    "specimen": {
        "title": "title",
        "sample preparation protocol": "sample_preparation",
        "sample preparation": "sample_preparation",
        "growth protocol": "growth_protocol",
    },
    "acquisition": {
        "title": "title",
        "imaging instrument": "imaging_instrument",
        "image acquisition parameters": "acquisition_parameters",
        "acquisition parameters": "acquisition_parameters",
    },
    "correlation": {
        "title": "title",
        "spatial and temporal alignment": "spatial_and_temporal_alignment",
        "fiducials used": "fiducials_used",
    },
    "analysis": {
        "title": "title",
        "image analysis overview": "analysis_overview",
        "analysis overview": "analysis_overview",
    },
    "annotation": {
        "title": "title",
        "annotation overview": "annotation_overview",
        "annotation method": "annotation_method",
        "annotation criteria": "annotation_criteria",
        "annotation coverage": "annotation_coverage",
        "annotation confidence level": "annotation_confidence",
        "annotation confidence": "annotation_confidence",
    },
    "component": {"title": "title", "name": "title", "description": "description"},
}
STUDY_KEYS = {
    "title",
    "releasedate",
    "keywords",
    "keyword",
    "description",
    "license",
    "licence",
    "acknowledgements",
    "doi",
    "funding statement",
    "idr accession number",
}
#: Attribute keys of REMBI objects read other than as text (terms, matrices, file lists, channels).
OBJECT_KEYS = {
    "organism",
    "imaging method",
    "imaging methods",
    "transformation matrix",
    "transformation",
    "transformations",
    "annotation type",
    "annotation types",
    "file list",
    "signal/contrast mechanism",
    "contrast method",
    "channel content",
    "channel biological entity",
    "channel name",
}
AUTHOR_KEYS = {
    "name",
    "e mail",
    "email",
    "orcid",
    "orcid id",
    "role",
    "roles",
    "affiliation",
    "affiliations",
    "organisation",
    "organization",
}
ORGANISATION_KEYS = {"name", "address", "country", "rorid", "ror", "ror id"}
PUBLICATION_KEYS = {"title", "authors", "author", "year", "doi", "pubmed id", "pmid", "pubmed"}
FUNDER_KEYS = ("agency", "funder", "funding body")
GRANT_KEYS = ("grant id", "grant", "grant identifier", "grant number")
CHANNEL_SLOTS = {
    "signal/contrast mechanism": "contrast_method",
    "contrast method": "contrast_method",
    "channel content": "dye",
    "channel biological entity": "channel_biological_entity",
    "channel name": "channel_name",
}
ORGANISM_KEYS = ("scientific name", "common name", "ncbi taxon id", "ontology term id", "taxon id", "ncbitaxon")
IMAGING_METHOD_KEYS = ("ontology value", "value", "name", "ontology term id", "term id", "ontology name")
#: The order of a record's fields (records read the same way whatever the order of their source).
STUDY_ORDER = (
    "accession",
    "title",
    "description",
    "keywords",
    "license",
    "release_date",
    "doi",
    "authors",
    "publications",
    "funding",
    "acknowledgements",
    "cross_references",
    "provenance",
    "components",
    "biosamples",
    "specimens",
    "image_acquisitions",
    "image_correlations",
    "image_analyses",
    "annotation_methods",
    "files",
    "attributes",
)


def _kind_key(name: str) -> str:
    """A section type reduced for lookup: CamelCase split, case, spacing and a plural ``s`` set aside."""
    reduced = key(re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name)).replace(" ", "")
    return reduced[:-1] if reduced.endswith("s") else reduced


_KIND_INDEX = {_kind_key(name): kind for name, kind in _KINDS.items()} | {_kind_key("image analyses"): "analysis"}


def kind_of(section: dict[str, Any]) -> str | None:
    """The REMBI kind of a PageTab section (None: a section type no REMBI slot holds)."""
    return _KIND_INDEX.get(_kind_key(section_type(section)))
