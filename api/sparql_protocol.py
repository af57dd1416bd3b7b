"""What the public SPARQL endpoint checks before a query runs: its form, that it reads only, where SERVICE goes.

The checks work on the query text with comments, string literals and IRIs masked out, so a keyword inside a
string (``"DELETE me"``) or an IRI never counts, and a ``SERVICE`` target is read from the original text.
"""
from __future__ import annotations

import re

from catalog.errors import CatalogError, Forbidden

QUERY_FORMS = ("SELECT", "CONSTRUCT", "DESCRIBE", "ASK")
UPDATE_KEYWORDS = ("INSERT", "DELETE", "LOAD", "CLEAR", "DROP", "CREATE", "ADD", "MOVE", "COPY", "WITH")
#: Media types per result kind, preferred first (``application/xml``/``text/xml`` and ``application/json`` are
#: the generic types older clients send; pyoxigraph writes the SPARQL results or RDF/XML form for them).
RESULT_TYPES = {
    "solutions": [
        "application/sparql-results+json",
        "application/sparql-results+xml",
        "text/csv",
        "text/tab-separated-values",
        "application/json",
        "application/xml",
        "text/xml",
    ],
    # the SPARQL CSV/TSV formats have no form for a boolean
    "boolean": ["application/sparql-results+json", "application/sparql-results+xml", "application/json", "application/xml", "text/xml"],
    "graph": [
        "text/turtle",
        "application/ld+json",
        "application/n-triples",
        "application/rdf+xml",
        "application/n-quads",
        "application/trig",
        "text/n3",
        "application/xml",
        "text/xml",
    ],
}
_MASK = re.compile(
    r"""(\#[^\n]*)                                  # comment
      |("{3}.*?"{3}|'{3}.*?'{3}|"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')   # string literals
      |(<[^<>"{}|^`\\\s]*>)                         # IRIs
    """,
    re.VERBOSE | re.DOTALL,
)


class NotAQuery(CatalogError):
    status = 400
    code = "invalid_query"


class ReadOnly(Forbidden):
    code = "read_only"


class ServiceNotAllowed(Forbidden):
    code = "service_not_allowed"


def _masked(query: str) -> str:
    """The query with comments, strings and IRIs replaced by spaces of the same length (offsets kept)."""

    def blank(m: re.Match) -> str:
        text = m.group(0)
        if m.group(3):  # keep IRIs' brackets so SERVICE <…> is still recognisable
            return "<" + " " * (len(text) - 2) + ">"
        return " " * len(text)

    return _MASK.sub(blank, query)


#: a prefix name (PN_PREFIX: a letter first, any script) and a prefixed name's local part (PN_LOCAL, escapes kept)
_PN_PREFIX = r"[^\W\d_][\w.-]*"
_PN_LOCAL = r"(?:[\w:%-]|\\.|\.(?=[\w:%\\-]))*"
_PROLOGUE = re.compile(rf"\s*(?:PREFIX\s+(?:{_PN_PREFIX})?:\s*<\s*>|BASE\s*<\s*>)", re.IGNORECASE)
_PREFIX_DECLARATION = re.compile(rf"(?<![\w:?$])PREFIX\s+({_PN_PREFIX})?:\s*<", re.IGNORECASE)
_SERVICE = re.compile(r"(?<![\w:?$])SERVICE\s+(?:SILENT\s*)?|(?<![\w:?$])SERVICE(?=<)", re.IGNORECASE)
_DATASET_CLAUSE = re.compile(r"(?<![\w:?$])FROM\b", re.IGNORECASE)

def query_form(query: str) -> str:
    """``SELECT``/``CONSTRUCT``/``DESCRIBE``/``ASK``; :class:`ReadOnly` for an update, :class:`NotAQuery` else."""
    masked = _masked(query)
    pos = 0
    while m := _PROLOGUE.match(masked, pos):
        pos = m.end()
    word = re.match(r"\s*([A-Za-z]+)", masked[pos:])
    keyword = word.group(1).upper() if word else ""
    if keyword in QUERY_FORMS:
        return keyword
    if keyword in UPDATE_KEYWORDS or re.search(r"(?<![?$\w:])(INSERT|DELETE)\s+(DATA\b|\{|WHERE\b)", masked, re.IGNORECASE):
        raise ReadOnly("this endpoint is read-only: SPARQL Update is not accepted")
    raise NotAQuery("not a SPARQL query: expected SELECT, CONSTRUCT, DESCRIBE or ASK after the prologue")


def result_kind(form: str) -> str:
    return {"SELECT": "solutions", "ASK": "boolean"}.get(form, "graph")


def _iri_at(query: str, masked: str, start: int) -> str:
    """The IRI whose ``<`` is at ``start`` (read from the original text; the masked one keeps the brackets)."""
    end = masked.find(">", start)
    return query[start + 1 : end] if end > start else ""


def check_services(query: str, allowed: tuple[str, ...] | list[str]) -> None:
    """Refuse any ``SERVICE`` whose endpoint is not in ``allowed`` (a variable endpoint is never allowed).

    Keywords and ``PREFIX`` declarations are found in the masked text only, so a comment or a string can neither
    hide a ``SERVICE`` nor declare a prefix; a prefix declared twice resolves to the later IRI, as in parsers.
    """
    masked = _masked(query)
    prefixes = {m.group(1) or "": _iri_at(query, masked, m.end() - 1) for m in _PREFIX_DECLARATION.finditer(masked)}
    for m in _SERVICE.finditer(masked):
        at = m.end()
        if masked.startswith("<", at):
            target = _iri_at(query, masked, at)
        else:
            name = re.match(rf"({_PN_PREFIX})?:({_PN_LOCAL})", masked[at:])
            if not name:
                raise ServiceNotAllowed("SERVICE with a variable endpoint is not allowed on this endpoint")
            if (name.group(1) or "") not in prefixes:
                raise NotAQuery(f"SERVICE {name.group(0)}: the prefix {name.group(1) or ''}: is not declared")
            target = prefixes[name.group(1) or ""] + name.group(2)
        if target not in allowed:
            raise ServiceNotAllowed(
                f"SERVICE <{target}> is not allowed on this endpoint"
                + (f"; allowed: {', '.join(allowed)}" if allowed else " (no federated endpoints are configured)"),
                [{"field": "query", "value": target, "message": "endpoint not in the allow-list"}],
            )


def dataset(query: str, default: list[str], named: list[str]) -> dict:
    """The dataset a query runs on, as pyoxigraph query options (IRIs as strings).

    The protocol's ``default-graph-uri``/``named-graph-uri`` win over the query's ``FROM``/``FROM NAMED``
    (SPARQL 1.1 Protocol 2.1.4), and name exactly the dataset: only named graphs given means an empty default
    graph, and the other way round. Else the query's own ``FROM`` clauses apply; with neither, the default graph
    is the union of all graphs (the service description's ``sd:UnionDefaultGraph``).
    """
    if default or named:
        return {"default_graph": list(default), "named_graphs": list(named)}
    if _DATASET_CLAUSE.search(_masked(query)):
        return {}
    return {"use_default_graph_as_union": True}

_VOLATILE = re.compile(r"(?<![\w:?$])(?:(?:RAND|NOW|UUID|STRUUID|BNODE)\s*\(|SERVICE\b)", re.IGNORECASE)


def repeatable(query: str) -> bool:
    """Whether the query's answer depends only on the data it reads: no ``RAND()``, ``NOW()``, ``UUID()``,
    ``STRUUID()`` or ``BNODE()``, and no ``SERVICE`` (another endpoint's data may change at any time)."""
    return _VOLATILE.search(_masked(query)) is None
