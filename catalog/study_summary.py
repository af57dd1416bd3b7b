"""What the search index and listings need to know about a study, read from its graph by SPARQL.

One code path for every caller: a commit, a release and ``bia reindex`` all summarise a study from the graph
store it lives in, so the derived indexes can always be rebuilt from the record of truth.
"""

from __future__ import annotations

from typing import Any, Iterator

from catalog.graph_store import GraphStore
from catalog.image_representations import thumbnail_url
from catalog.rembi_model import RembiModel, load_model
from catalog.search_index import StudyDocument
from catalog.study_files import StudyFile

_P = {
    "dcterms": "http://purl.org/dc/terms/",
    "schema": "http://schema.org/",
    "rembi": "https://w3id.org/rembi/",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
    "prov": "http://www.w3.org/ns/prov#",
}
PREFIXES = "".join(f"PREFIX {k}: <{v}>\n" for k, v in _P.items())


#: FBbi's generic root: the term a depositor's imaging method gets when no FBbi term matched their words.
FBBI_GENERIC = "http://purl.obolibrary.org/obo/FBbi_00000222"
_IMAGING_METHODS = "SELECT ?b ?o ?label WHERE {{ {g} {{ ?b rembi:imagingMethod ?o . ?o rdfs:label ?label }} }}"
#: The method as written, for the nodes given (VALUES first: the planner follows the written order, so only their
#: attributes are read, never those of a study's files).
_METHODS_AS_WRITTEN = """SELECT ?b ?text WHERE {{ {g} {{ VALUES ?b {{ {nodes} }} ?b rembi:attributes ?a .
  ?a schema:name ?n ; schema:value ?text . FILTER(LCASE(STR(?n)) IN ("imaging method", "imaging method (as written)")) }} }}"""


def imaging_methods(store: GraphStore, g: str) -> list[str]:
    """Imaging methods by label; where the term is FBbi's generic root, the depositor's words (kept as an
    "Imaging method" attribute of the acquisition) name the method instead."""
    found = [(r["b"], r["o"]["value"], r["label"]["value"]) for r in store.select(PREFIXES + _IMAGING_METHODS.format(g=g))]
    generic = {b["value"]: b for b, term, _label in found if term == FBBI_GENERIC and b["type"] == "uri"}
    written: dict[str, str] = {}
    if generic:
        nodes = " ".join(f"<{iri}>" for iri in sorted(generic))
        for row in store.select(PREFIXES + _METHODS_AS_WRITTEN.format(g=g, nodes=nodes)):
            written.setdefault(row["b"]["value"], row["text"]["value"])
    return sorted({written.get(b["value"], label) if term == FBBI_GENERIC else label for b, term, label in found})


def _values(store: GraphStore, query: str) -> list[str]:
    return [b["v"]["value"] for b in store.select(PREFIXES + query) if "v" in b]


def study_document(
    store: GraphStore,
    study_iri: str,
    accession: str,
    model: RembiModel | None = None,
    files: dict[str, int] | None = None,
) -> StudyDocument:
    """The search document of one study, from its named graph.

    ``files`` (``{"files": n, "bytes": total}``, e.g. from the file index) saves summing a huge study's files
    by SPARQL, which takes seconds per 100 k files.
    """
    model = model or load_model()
    g = f"GRAPH <{study_iri}>"
    s = f"<{study_iri}>"
    rows = store.select(
        PREFIXES + f"SELECT ?title ?description ?license ?released ?source WHERE {{ {g} {{ {s} dcterms:title ?title ."
        f" OPTIONAL {{ {s} dcterms:description ?description }} OPTIONAL {{ {s} dcterms:license ?license }}"
        f" OPTIONAL {{ {s} dcterms:available ?released }}"
        f" OPTIONAL {{ {s} prov:wasGeneratedBy/rembi:source_resource ?source }} }} }} LIMIT 1"
    )
    first: dict[str, Any] = rows[0] if rows else {}

    def val(name: str) -> str | None:
        return first[name]["value"] if name in first else None

    licence_iri = val("license")
    source_iri = val("source")
    if files is not None:
        n, total = files["files"], files["bytes"]
    else:
        counts = store.select(
            PREFIXES + f"SELECT (COUNT(?f) AS ?n) (SUM(?size) AS ?bytes) WHERE {{ {g} {{ {s} rembi:files ?f ."
            " OPTIONAL { ?f schema:contentSize ?size } } }"
        )
        n = int(counts[0]["n"]["value"]) if counts and "n" in counts[0] else 0
        total = int(float(counts[0]["bytes"]["value"])) if counts and "bytes" in counts[0] else 0
    return StudyDocument(
        accession=accession,
        title=val("title") or accession,
        description=val("description") or "",
        keywords=_values(store, f"SELECT ?v WHERE {{ {g} {{ {s} schema:keywords ?v }} }}"),
        authors=_values(
            store,
            f"SELECT ?v WHERE {{ {g} {{ {s} schema:creator ?a . ?a schema:name ?v . OPTIONAL {{ ?a schema:position ?p }} }} }} ORDER BY ?p",
        ),
        organisms=sorted(set(_values(store, f"SELECT ?v WHERE {{ {g} {{ ?b rembi:organism ?o . ?o rdfs:label ?v }} }}"))),
        imaging_methods=imaging_methods(store, g),
        licence=(model.enum_name("LicenseEnum", licence_iri) or licence_iri) if licence_iri else None,
        release_date=(val("released") or "")[:10] or None,
        source=(model.enum_name("ResourceEnum", source_iri) if source_iri else None) or "BioImage Archive",
        file_count=n,
        total_size=total,
        dimensionalities=sorted(
            set(_values(store, f"SELECT ?v WHERE {{ {g} {{ {s} rembi:imageSummary/rembi:dimensionality ?v }} }}"))
        ),
        time_series=_time_series(store, g, s),
        thumbnail=_thumbnail(store, g, s),
    )


def _thumbnail(store: GraphStore, g: str, s: str) -> str | None:
    """The thumbnail of the study's first representative image (see :mod:`catalog.image_representations`)."""
    found = _values(store, f"SELECT ?v WHERE {{ {g} {{ {s} rembi:imageSummary/rembi:representativeImage ?v }} }}")
    return thumbnail_url(sorted(found)[0], 128) if found else None


def _time_series(store: GraphStore, g: str, s: str) -> bool | None:
    """Whether the headers of the study's image files show a time series (None: no headers read)."""
    found = _values(store, f"SELECT ?v WHERE {{ {g} {{ {s} rembi:imageSummary/rembi:hasTimeSeries ?v }} }}")
    return found[0] in ("true", "1") if found else None


def study_files(store: GraphStore, study_iri: str) -> Iterator[StudyFile]:
    """Every file of a study with its attributes, read back from the graph (for rebuilding the file table)."""
    g = f"GRAPH <{study_iri}>"
    rows = store.select(
        PREFIXES + f"SELECT ?f ?path ?size ?md5 ?sha ?comp ?dir ?name ?value WHERE {{ {g} {{ <{study_iri}> rembi:files ?f ."
        " ?f rembi:path ?path . OPTIONAL { ?f schema:contentSize ?size } OPTIONAL { ?f rembi:md5 ?md5 }"
        " OPTIONAL { ?f rembi:sha256 ?sha } OPTIONAL { ?f rembi:component ?comp } OPTIONAL { ?f rembi:isDirectory ?dir }"
        " OPTIONAL { ?f rembi:attributes ?a . ?a schema:name ?name . ?a schema:value ?value } } } ORDER BY ?f"
    )
    current: StudyFile | None = None
    current_iri = None
    for row in rows:
        iri = row["f"]["value"]
        if iri != current_iri:
            if current is not None:
                yield current
            current_iri = iri
            current = StudyFile(
                path=row["path"]["value"],
                size=int(row["size"]["value"]) if "size" in row else None,
                md5=row["md5"]["value"] if "md5" in row else None,
                sha256=row["sha"]["value"] if "sha" in row else None,
                component=row["comp"]["value"] if "comp" in row else None,
                directory="dir" in row and row["dir"]["value"] in ("true", "1"),
            )
        if "name" in row and current is not None:
            current.attributes[row["name"]["value"]] = row["value"]["value"] if "value" in row else ""
    if current is not None:
        yield current
