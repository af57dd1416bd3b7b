"""A study's links, both directions, from the link graphs the linker builds (and the study's own cross-references),
with the coordinate transformations of correlative pairs: what ``/studies/{accession}/links`` and the study page
show. Everything is read from the archive's public view."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from rdflib import URIRef

from catalog import identifiers
from catalog.errors import NotFound
from catalog.record_graph import RecordGraph
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
        out.append(
            {
                "target" if side == "linkSource" else "source": _value(r, "other"),
                "relation": _relation_name(model, _value(r, "relation")),
                "resource": model.enum_name("ResourceEnum", resource) if resource else None,
                "accession": _value(r, "accession"),
                "inferred": _value(r, "inferred") == "true",
                "evidence": [e for e in (_value(r, "why") or "").split("\n") if e],
            }
        )
    return out


@dataclass
class _Described:
    """A described graph, read by the model's class and slot names."""

    graph: RecordGraph
    model: RembiModel

    def objects(self, node: Any, class_name: str, slot: str) -> Iterator[Any]:
        return self.graph.objects(node, URIRef(self.model.classes[class_name].slots[slot].uri))

    def one(self, node: Any, class_name: str, slot: str) -> str | None:
        value = next(self.objects(node, class_name, slot), None)
        return str(value) if value is not None else None


#: a transformation's fields read as written
_TRANSFORMATION_TEXTS = (
    "source_coordinate_system",
    "target_coordinate_system",
    "units",
    "registration_software",
    "transform_file",
    "fiducials",
    "transformation_text",
)


def transformations(archive: Any, study: str) -> list[dict[str, Any]]:
    """The coordinate transformations of a study's image correlations (structured, with the original text)."""
    store = archive.public.reads
    rows = store.select(_PREFIXES + f"SELECT ?c WHERE {{ GRAPH <{study}> {{ ?c a rembi:ImageCorrelation }} }} ORDER BY ?c")
    if not rows:
        return []
    described = _Described(describe(store, study, [r["c"]["value"] for r in rows]), archive.model)
    return [_correlation(described, URIRef(row["c"]["value"])) for row in rows]


def _correlation(described: _Described, node: URIRef) -> dict[str, Any]:
    """One image correlation: its texts (those it has) and its transformations (always, maybe none)."""

    def text(slot: str) -> str | None:
        return described.one(node, "ImageCorrelation", slot)

    entry = {
        "correlation": str(node),
        "title": text("title"),
        "alignment": text("spatial_and_temporal_alignment"),
        "fiducials": text("fiducials_used"),
        "text": text("transformation_text"),
    }
    found = [_transformation(described, t) for t in described.objects(node, "ImageCorrelation", "transformations")]
    return {k: v for k, v in entry.items() if v is not None} | {"transformations": found}


def _transformation(described: _Described, node: Any) -> dict[str, Any]:
    """One coordinate transformation: its type, texts, matrix and parameters (those it has)."""
    kind = described.one(node, "CoordinateTransformation", "transformation_type")
    parameters = _parameters(described, node)
    item: dict[str, Any] = {
        "type": described.model.enum_name("TransformationTypeEnum", kind) if kind else None,
        **{key: described.one(node, "CoordinateTransformation", key) for key in _TRANSFORMATION_TEXTS},
        "matrix": _matrix(described, node),
        "parameters": parameters or None,
    }
    return {k: v for k, v in item.items() if v is not None}


def _matrix(described: _Described, node: Any) -> list[list[float]] | None:
    """A transformation's matrix, sized by its declared rows and columns (elements outside them dropped) or else by
    its largest element; None when it has no elements."""

    def number(element: Any, slot: str) -> str:
        return described.one(element, "MatrixElement", slot) or "0"

    elements = [
        (int(number(m, "row")), int(number(m, "column")), float(number(m, "element_value")))
        for m in described.objects(node, "CoordinateTransformation", "matrix")
    ]
    if not elements:
        return None
    rows, columns = (described.one(node, "CoordinateTransformation", slot) for slot in ("matrix_rows", "matrix_columns"))
    n_rows = int(rows) if rows else max(r for r, _, _ in elements) + 1
    n_cols = int(columns) if columns else max(c for _, c, _ in elements) + 1
    matrix = [[0.0] * n_cols for _ in range(n_rows)]
    for r, c, v in elements:
        if r < n_rows and c < n_cols:
            matrix[r][c] = v
    return matrix


def _parameters(described: _Described, node: Any) -> dict[str, str | None]:
    """A transformation's parameters by name (those without a name left out)."""
    parameters = {}
    for p in described.objects(node, "CoordinateTransformation", "parameters"):
        name = described.one(p, "Attribute", "name")
        if name is not None:
            parameters[name] = described.one(p, "Attribute", "value")
    return parameters


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
        outgoing = [
            {
                "target": r["target"],
                "relation": _relation_name(model, r.get("relation")),
                "resource": model.enum_name("ResourceEnum", r.get("resource", "")) or r.get("resource"),
                "accession": r.get("accession"),
                "inferred": False,
                "evidence": ["cross-reference"],
            }
            for r in cross_reference_rows(store, study)
        ]
    correlative = {
        link.get("target") or link.get("source") for link in outgoing + incoming if link["relation"] == "same_specimen_imaged"
    }
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
                {
                    "@type": "rembi:Link",
                    "rembi:linkSource": {"@id": link.get("source", study)},
                    "rembi:linkTarget": {"@id": link.get("target", study)},
                    "rembi:relation": link["relation"],
                    "rembi:inferred": link["inferred"],
                    "rembi:evidence": link["evidence"],
                }
                for link in outgoing + incoming
            ],
        }
    return body
