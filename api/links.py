"""A study's cross-resource links, both directions, read from the public graph by SPARQL."""
from __future__ import annotations

from typing import Any

from api.app import services, settings
from catalog import identifiers
from catalog.errors import NotFound

_PREFIXES = "PREFIX rembi: <https://w3id.org/rembi/>\nPREFIX dcterms: <http://purl.org/dc/terms/>\n"


def _value(row: dict[str, Any], key: str) -> str | None:
    return row[key]["value"] if key in row else None


def study_links(accession: str, jsonld: bool = False) -> dict[str, Any]:
    """``{"outgoing": [...], "incoming": [...]}``; each link names its relation, target, resource and label."""
    store = services().archive.public.graph
    study = identifiers.study_iri(settings().base_url, accession)
    if not store.has_graph(study):
        raise NotFound(f"no released study {accession}")
    outgoing = store.select(
        _PREFIXES
        + f"""SELECT ?target ?relation ?resource ?accession ?label WHERE {{ GRAPH <{study}> {{
        <{study}> rembi:cross_references ?x . ?x rembi:target ?target .
        OPTIONAL {{ ?x rembi:relation ?relation }} OPTIONAL {{ ?x rembi:resource ?resource }}
        OPTIONAL {{ ?x rembi:target_accession ?accession }} OPTIONAL {{ ?x rembi:label ?label }} }} }} ORDER BY ?target"""
    )
    incoming = store.select(
        _PREFIXES
        + f"""SELECT ?source ?relation ?label WHERE {{ GRAPH ?source {{
        ?source rembi:cross_references ?x .
        {{ ?x rembi:target_accession "{accession}" }} UNION {{ ?x rembi:target <{study}> }}
        OPTIONAL {{ ?x rembi:relation ?relation }} OPTIONAL {{ ?x rembi:label ?label }} }}
        FILTER(?source != <{study}>) }} ORDER BY ?source"""
    )
    out = {
        "study": study,
        "outgoing": [
            {"target": _value(r, "target"), "relation": _value(r, "relation"), "resource": _value(r, "resource"),
             "accession": _value(r, "accession"), "label": _value(r, "label")}
            for r in outgoing
        ],
        "incoming": [{"source": _value(r, "source"), "relation": _value(r, "relation"), "label": _value(r, "label")} for r in incoming],
    }
    if jsonld:
        return {
            "@context": {"@vocab": "https://w3id.org/rembi/", "schema": "http://schema.org/"},
            "@id": study,
            "schema:isRelatedTo": [{"@id": link["target"]} for link in out["outgoing"]]
            + [{"@id": link["source"]} for link in out["incoming"]],
        }
    return out
