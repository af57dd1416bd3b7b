"""Example SPARQL queries for integrators, shown on the query page and published as SHACL SPARQLExecutables."""

from __future__ import annotations

from dataclasses import dataclass

from catalog.external_ids import identifiers_org_namespace

PREFIXES = """PREFIX rembi: <https://w3id.org/rembi/>
PREFIX schema: <http://schema.org/>
PREFIX dcterms: <http://purl.org/dc/terms/>
PREFIX rdfs: <http://www.w3.org/2000/01/rdf-schema#>
PREFIX prov: <http://www.w3.org/ns/prov#>
"""


@dataclass(frozen=True)
class Example:
    id: str
    title: str
    query: str


EXAMPLES = [
    Example(
        "studies-by-organism",
        "Number of released studies per organism",
        PREFIXES
        + """SELECT ?organism (COUNT(DISTINCT ?study) AS ?studies) WHERE {
  GRAPH ?study { ?sample rembi:organism ?term . ?term rdfs:label ?organism . }
} GROUP BY ?organism ORDER BY DESC(?studies)""",
    ),
    Example(
        "studies-by-imaging-method",
        "Studies with their imaging methods (FBbi terms)",
        PREFIXES
        + """SELECT ?study ?title ?method ?label WHERE {
  GRAPH ?study { ?study dcterms:title ?title . ?acquisition rembi:imagingMethod ?method . ?method rdfs:label ?label . }
} ORDER BY ?study LIMIT 100""",
    ),
    Example(
        "study-authors-orcid",
        "Authors with an ORCID and the studies they contributed to",
        PREFIXES
        + """SELECT ?orcid ?name (COUNT(DISTINCT ?study) AS ?studies) WHERE {
  GRAPH ?study { ?study schema:creator ?author . ?author schema:name ?name ; rembi:orcid ?orcid . }
} GROUP BY ?orcid ?name ORDER BY DESC(?studies) LIMIT 100""",
    ),
    Example(
        "emdb-links",
        "BioImage Archive and EMPIAR studies linked to EMDB maps",
        PREFIXES
        + "SELECT ?study ?title ?map WHERE {\n"
        + "  GRAPH ?study { ?study dcterms:title ?title ; rembi:cross_references ?x . ?x rembi:target ?map .\n"
        + f'                 FILTER(STRSTARTS(STR(?map), "{identifiers_org_namespace("EMDB")}")) }}\n'
        + "} ORDER BY ?study",
    ),
    Example(
        "shared-publications",
        "Studies that share a publication DOI",
        PREFIXES
        + """SELECT ?doi (GROUP_CONCAT(DISTINCT STR(?study); separator=" ") AS ?studies) WHERE {
  GRAPH ?study { ?study schema:citation ?publication . ?publication rembi:doi ?doi . }
} GROUP BY ?doi HAVING (COUNT(DISTINCT ?study) > 1)""",
    ),
    Example(
        "correlative-pairs",
        "Correlative imaging: studies that image the same specimen as a dataset in another resource",
        PREFIXES
        + """SELECT ?study ?other ?resource WHERE {
  GRAPH ?study { ?study rembi:cross_references ?x . ?x rembi:relation rembi:sameSpecimenImaged ; rembi:target ?other .
                 OPTIONAL { ?x rembi:resource ?resource } }
}""",
    ),
    Example(
        "largest-studies",
        "The largest released studies by number of files",
        PREFIXES
        + """SELECT ?study ?title (COUNT(?file) AS ?files) WHERE {
  GRAPH ?study { ?study dcterms:title ?title ; rembi:files ?file . }
} GROUP BY ?study ?title ORDER BY DESC(?files) LIMIT 20""",
    ),
]


def examples_turtle(base_url: str) -> str:
    """The examples as SHACL ``SPARQLExecutable`` resources (the SIB sparql-examples convention)."""
    out = [
        "@prefix sh: <http://www.w3.org/ns/shacl#> .",
        "@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .",
        "@prefix schema: <http://schema.org/> .",
        "",
    ]
    for example in EXAMPLES:
        kind = "sh:SPARQLSelectExecutable"
        escaped = example.query.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
        out.append(
            f"<{base_url}/.well-known/sparql-examples#{example.id}> a sh:SPARQLExecutable , {kind} ;\n"
            f'    rdfs:comment "{example.title}"@en ;\n'
            f"    schema:target <{base_url}/sparql> ;\n"
            f'    sh:select """{escaped}""" .\n'
        )
    return "\n".join(out)
