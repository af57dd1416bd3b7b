"""The link graphs as published: the whole of them (``/links.jsonld``) and each link's own description
(``/links/{hash}``), as JSON-LD that is the same RDF as the graphs ``bia link`` wrote.

Every triple of the two link graphs comes out, with its terms as they are: a link's ``rembi:relation`` and
``rembi:resource`` are IRIs, its ``rembi:target_accession`` and evidence literals, and the direct triple
``<source> <relation> <target>`` is written inside the link as a property of its ``linkSource`` node (so the
document's ``@graph`` holds one node per link). Links touching a study of this catalog that is not public (withdrawn,
or under embargo again, since the graphs were last built) are left out, and so is every triple naming it.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from catalog import identifiers
from catalog.graph_store import Binding, GraphStore
from linkers.discover import REMBI, asserted_graph, inferred_graph

RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
XSD = "http://www.w3.org/2001/XMLSchema#"
CONTEXT = {"@vocab": REMBI}
Triple = tuple[dict[str, str], dict[str, str], dict[str, str]]


def link_graph_names(base_url: str) -> list[str]:
    return [asserted_graph(base_url), inferred_graph(base_url)]


def _triples(store: GraphStore, base_url: str, subject: str | None = None) -> list[Triple]:
    """The triples of the link graphs (of one link and its direct triple, if ``subject`` names it)."""
    graphs = " ".join(f"<{g}>" for g in link_graph_names(base_url))
    if subject is None:
        where = "GRAPH ?g { ?s ?p ?o }"
    else:
        where = (
            f"{{ GRAPH ?g {{ ?s ?p ?o }} VALUES ?s {{ <{subject}> }} }} UNION {{ GRAPH ?g {{ <{subject}> "
            f"<{REMBI}linkSource> ?s ; <{REMBI}relation> ?p ; <{REMBI}linkTarget> ?o . ?s ?p ?o }} }}"
        )
    rows: list[Binding] = store.select(f"SELECT DISTINCT ?s ?p ?o WHERE {{ VALUES ?g {{ {graphs} }} {where} }}")
    return [(row["s"], row["p"], row["o"]) for row in rows]


def _hidden(triples: list[Triple], store: GraphStore, base_url: str) -> set[str]:
    """The catalog study IRIs the triples name whose study is not public (a link run has not caught up)."""
    prefix = f"{base_url.rstrip('/')}/studies/"
    named = {t["value"] for triple in triples for t in triple if t["type"] == "uri" and t["value"].startswith(prefix)}
    studies = {iri: _study_of(base_url, iri) for iri in named}
    wanted = {study for study in studies.values() if study}
    if len(wanted) > 32:  # (the whole export: one listing of the graphs rather than one question per study)
        listed = set(store.graphs())
        public = wanted & listed
    else:
        public = {study for study in wanted if store.has_graph(study)}
    return {iri for iri, study in studies.items() if study not in public}


def _study_of(base_url: str, iri: str) -> str | None:
    accession = identifiers.accession_of(iri)
    try:
        return identifiers.study_iri(base_url, accession) if accession else None
    except ValueError:
        return None


def _public(triples: list[Triple], store: GraphStore, base_url: str) -> list[Triple]:
    """``triples`` without those of links touching a hidden study, nor any naming one."""
    hidden = _hidden(triples, store, base_url)
    if not hidden:
        return triples
    ends = {f"{REMBI}linkSource", f"{REMBI}linkTarget"}
    dropped = {s["value"] for s, p, o in triples if p["value"] in ends and o["value"] in hidden}
    return [t for t in triples if t[0]["value"] not in dropped | hidden and t[2]["value"] not in hidden]


def _term(term: dict[str, str]) -> Any:
    if term["type"] in ("uri", "bnode"):
        return {"@id": term["value"] if term["type"] == "uri" else f"_:{term['value']}"}
    datatype = term.get("datatype")
    if datatype == f"{XSD}boolean" and term["value"] in ("true", "false"):
        return term["value"] == "true"
    if "xml:lang" in term:
        return {"@value": term["value"], "@language": term["xml:lang"]}
    if datatype and datatype != f"{XSD}string":
        return {"@value": term["value"], "@type": datatype}
    return term["value"]


def _key(predicate: str) -> str:
    local = predicate[len(REMBI) :]
    return local if predicate.startswith(REMBI) and local and "/" not in local and "#" not in local else predicate


def jsonld(triples: list[Triple]) -> dict[str, Any]:
    """The JSON-LD document of link-graph triples: one node per subject that is no link's direct triple, each
    direct triple inside its link's ``linkSource``."""
    nodes: dict[str, dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
    for s, p, o in triples:
        nodes[s["value"]][p["value"]].append(o)
    links = {s for s, props in nodes.items() if {"value": f"{REMBI}Link", "type": "uri"} in props.get(RDF_TYPE, [])}
    graph, embedded = [], set()
    for iri in sorted(links):
        node, props = _node(iri, nodes[iri]), nodes[iri]
        source, relation, target = (
            props.get(f"{REMBI}{k}", [{}])[0].get("value") for k in ("linkSource", "relation", "linkTarget")
        )
        direct = nodes.get(source or "", {}).get(relation or "", [])
        if source and any(o.get("value") == target for o in direct):
            node["linkSource"] = {"@id": source, relation: {"@id": target}}
            embedded.add((source, relation, target))
        graph.append(node)
    for iri in sorted(set(nodes) - links):  # the direct triples no link names (none, unless written by hand)
        rest = {p: [o for o in objects if (iri, p, o.get("value")) not in embedded] for p, objects in nodes[iri].items()}
        if any(rest.values()):
            graph.append(_node(iri, {p: objects for p, objects in rest.items() if objects}))
    return {"@context": CONTEXT, "@graph": graph}


def _node(iri: str, props: dict[str, list[dict[str, str]]]) -> dict[str, Any]:
    node: dict[str, Any] = {"@id": iri}
    for predicate, objects in sorted(props.items()):
        values = sorted((_term(o) for o in objects), key=str)
        if predicate == RDF_TYPE and all(isinstance(v, dict) and "@id" in v for v in values):
            node["@type"] = [v["@id"] for v in values] if len(values) > 1 else values[0]["@id"]
        else:
            node[_key(predicate)] = values if len(values) > 1 else values[0]
    return node


def link_graph_document(store: GraphStore, base_url: str) -> dict[str, Any]:
    """The whole public link graph as one JSON-LD document."""
    return jsonld(_public(_triples(store, base_url), store, base_url))


def link_document(store: GraphStore, base_url: str, iri: str) -> dict[str, Any] | None:
    """One link's description (its own triples and its direct triple); None if there is no such public link."""
    triples = _public(_triples(store, base_url, iri), store, base_url)
    if not any(s["value"] == iri for s, _, _ in triples):
        return None
    document = jsonld(triples)
    return {"@context": CONTEXT, **document["@graph"][0]}
