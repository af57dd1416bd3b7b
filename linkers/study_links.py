"""A study's links, both directions, from the link graphs the linker builds (and the study's own cross-references),
with the coordinate transformations of correlative pairs: what ``/studies/{accession}/links`` and the study page
show. Everything is read from the archive's public view."""
from __future__ import annotations

from typing import Any

from rdflib import URIRef

from catalog import identifiers
from catalog.errors import NotFound
from catalog.study_record import describe
from catalog.rembi_model import RembiModel
from linkers.discover import asserted_graph, cross_reference_rows, inferred_graph

_PREFIXES = "PREFIX rembi: <https://w3id.org/rembi/>\nPREFIX dcterms: <http://purl.org/dc/terms/>\n"


def _value(row: dict[str, Any], key: str) -> str | None:
    return row[key]["value"] if key in row else None


def _relation_name(model: RembiModel, iri: str | None) -> str | None:
    if iri is None:
        return None
    return model.enum_name("RelationEnum", iri) or iri


def _links(store, model: RembiModel, graphs: list[str], side: str, study: str) -> list[dict[str, Any]]:
    other = "linkTarget" if side == "linkSource" else "linkSource"
    values = " ".join(f"<{g}>" for g in graphs)
    rows = store.select(
        _PREFIXES
        + f"""SELECT ?link ?other ?relation ?resource ?accession ?inferred (GROUP_CONCAT(?evidence; separator="\\n") AS ?why)
        WHERE {{ VALUES ?g {{ {values} }} GRAPH ?g {{ ?link rembi:{side} <{study}> ; rembi:{other} ?other ; rembi:relation ?relation .
          OPTIONAL {{ ?link rembi:resource ?resource }} OPTIONAL {{ ?link rembi:target_accession ?accession }}
          OPTIONAL {{ ?link rembi:inferred ?inferred }} OPTIONAL {{ ?link rembi:evidence ?evidence }} }} }}
        GROUP BY ?link ?other ?relation ?resource ?accession ?inferred ORDER BY ?other ?relation"""
    )
    out = []
    for r in rows:
        resource = _value(r, "resource")
        out.append({
            "target" if side == "linkSource" else "source": _value(r, "other"),
            "relation": _relation_name(model, _value(r, "relation")),
            "resource": model.enum_name("ResourceEnum", resource) if resource else None,
            "accession": _value(r, "accession"),
            "inferred": _value(r, "inferred") == "true",
            "evidence": [e for e in (_value(r, "why") or "").split("\n") if e],
        })
    return out


def transformations(archive: Any, study: str) -> list[dict[str, Any]]:
    """The coordinate transformations of a study's image correlations (structured, with the original text)."""
    store, model = archive.public.reads, archive.model
    rows = store.select(_PREFIXES + f"SELECT ?c WHERE {{ GRAPH <{study}> {{ ?c a rembi:ImageCorrelation }} }} ORDER BY ?c")
    if not rows:
        return []
    graph = describe(store, study, [r["c"]["value"] for r in rows])
    corr, ct, me = (model.classes[n].slots for n in ("ImageCorrelation", "CoordinateTransformation", "MatrixElement"))

    def one(node, slot_info) -> str | None:
        value = graph.value(node, URIRef(slot_info.uri))
        return str(value) if value is not None else None

    out = []
    for row in rows:
        node = URIRef(row["c"]["value"])
        entry: dict[str, Any] = {"correlation": str(node), "title": one(node, model.classes["ImageCorrelation"].slots["title"]),
                                 "alignment": one(node, corr["spatial_and_temporal_alignment"]),
                                 "fiducials": one(node, corr["fiducials_used"]), "text": one(node, corr["transformation_text"]),
                                 "transformations": []}
        for t in graph.objects(node, URIRef(corr["transformations"].uri)):
            kind = one(t, ct["transformation_type"])
            item: dict[str, Any] = {
                "type": model.enum_name("TransformationTypeEnum", kind) if kind else None,
                **{key: one(t, ct[key]) for key in ("source_coordinate_system", "target_coordinate_system", "units",
                                                     "registration_software", "transform_file", "fiducials", "transformation_text")},
            }
            rows_n, cols_n = one(t, ct["matrix_rows"]), one(t, ct["matrix_columns"])
            elements = [
                (int(one(m, me["row"]) or 0), int(one(m, me["column"]) or 0), float(one(m, me["element_value"]) or 0))
                for m in graph.objects(t, URIRef(ct["matrix"].uri))
            ]
            if elements:
                n_rows = int(rows_n) if rows_n else max(r for r, _, _ in elements) + 1
                n_cols = int(cols_n) if cols_n else max(c for _, c, _ in elements) + 1
                matrix = [[0.0] * n_cols for _ in range(n_rows)]
                for r, c, v in elements:
                    if r < n_rows and c < n_cols:
                        matrix[r][c] = v
                item["matrix"] = matrix
            parameters = {}
            for p in graph.objects(t, URIRef(ct["parameters"].uri)):
                name = graph.value(p, URIRef(model.classes["Attribute"].slots["name"].uri))
                value = graph.value(p, URIRef(model.classes["Attribute"].slots["value"].uri))
                if name is not None:
                    parameters[str(name)] = str(value) if value is not None else None
            if parameters:
                item["parameters"] = parameters
            entry["transformations"].append({k: v for k, v in item.items() if v is not None})
        out.append({k: v for k, v in entry.items() if v not in (None, [])} | {"transformations": entry["transformations"]})
    return out


def study_links(archive: Any, accession: str, jsonld: bool = False) -> dict[str, Any]:
    """``{"outgoing": [...], "incoming": [...], "transformations": [...]}`` of a released study."""
    store, model = archive.public.reads, archive.model
    base = archive.settings.base_url
    study = identifiers.study_iri(base, accession)
    if not store.has_graph(study):
        raise NotFound(f"no released study {accession}")
    graphs = [asserted_graph(base), inferred_graph(base)]
    outgoing, incoming = _links(store, model, graphs, "linkSource", study), _links(store, model, graphs, "linkTarget", study)
    if not outgoing:  # the linker has not run since this study came in: its own cross-references
        outgoing = [{"target": r["target"], "relation": _relation_name(model, r.get("relation")),
                     "resource": model.enum_name("ResourceEnum", r.get("resource", "")) or r.get("resource"),
                     "accession": r.get("accession"), "inferred": False, "evidence": ["cross-reference"]}
                    for r in cross_reference_rows(store, study)]
    correlative = {link.get("target") or link.get("source") for link in outgoing + incoming if link["relation"] == "same_specimen_imaged"}
    transforms = transformations(archive, study) if correlative else []
    for partner in sorted(p for p in correlative if p and p.startswith(f"{base}/studies/") and store.has_graph(p)):
        for entry in transformations(archive, partner):
            transforms.append({**entry, "study": partner})
    body = {"study": study, "outgoing": outgoing, "incoming": incoming, "transformations": transforms}
    if jsonld:
        return {
            "@context": {"@vocab": "http://schema.org/", "rembi": "https://w3id.org/rembi/"},
            "@id": study,
            "isRelatedTo": [{"@id": link["target"]} for link in outgoing] + [{"@id": link["source"]} for link in incoming],
            "rembi:link": [
                {"@type": "rembi:Link", "rembi:linkSource": {"@id": link.get("source", study)},
                 "rembi:linkTarget": {"@id": link.get("target", study)}, "rembi:relation": link["relation"],
                 "rembi:inferred": link["inferred"], "rembi:evidence": link["evidence"]}
                for link in outgoing + incoming
            ],
        }
    return body
