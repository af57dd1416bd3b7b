"""What the public SPARQL endpoint checks before a query runs: its form, that it reads only, where SERVICE goes.

The checks work on the query text with comments, string literals and IRIs masked out, so a keyword inside a
string (``"DELETE me"``) or an IRI never counts, and a ``SERVICE`` target is read from the original text.
"""
from __future__ import annotations

import re

from catalog.errors import CatalogError, Forbidden

QUERY_FORMS = ("SELECT", "CONSTRUCT", "DESCRIBE", "ASK")
UPDATE_KEYWORDS = ("INSERT", "DELETE", "LOAD", "CLEAR", "DROP", "CREATE", "ADD", "MOVE", "COPY", "WITH")
#: Media types per result kind, preferred first.
RESULT_TYPES = {
    "solutions": [
        "application/sparql-results+json",
        "application/sparql-results+xml",
        "text/csv",
        "text/tab-separated-values",
        "application/json",
    ],
    "graph": ["text/turtle", "application/ld+json", "application/n-triples", "application/rdf+xml", "application/n-quads"],
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


_PROLOGUE = re.compile(r"\s*(?:PREFIX\s+(?:[A-Za-z][\w.-]*)?:\s*<\s*>|BASE\s*<\s*>)", re.IGNORECASE)


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
    return "solutions" if form in ("SELECT", "ASK") else "graph"


def check_services(query: str, allowed: tuple[str, ...] | list[str]) -> None:
    """Refuse any ``SERVICE`` whose endpoint is not in ``allowed`` (a variable endpoint is never allowed)."""
    masked = _masked(query)
    prefixes = {
        m.group(1): m.group(2)
        for m in re.finditer(r"PREFIX\s+([A-Za-z][\w.-]*)?:\s*<([^>]*)>", query, re.IGNORECASE)
    }
    for m in re.finditer(r"\bSERVICE\b\s*(SILENT\b\s*)?", masked, re.IGNORECASE):
        rest = query[m.end() :]
        iri = re.match(r"<([^>]*)>", rest)
        if iri:
            target = iri.group(1)
        else:
            name = re.match(r"([A-Za-z][\w.-]*)?:([\w.-]*)", rest)
            if not name:
                raise ServiceNotAllowed("SERVICE with a variable endpoint is not allowed on this endpoint")
            target = prefixes.get(name.group(1) or "", "") + name.group(2)
        if target not in allowed:
            raise ServiceNotAllowed(
                f"SERVICE <{target}> is not allowed on this endpoint"
                + (f"; allowed: {', '.join(allowed)}" if allowed else " (no federated endpoints are configured)"),
                [{"field": "query", "value": target, "message": "endpoint not in the allow-list"}],
            )


_VOLATILE = re.compile(r"(?<![?$:\w])(?:(?:RAND|NOW|UUID|STRUUID|BNODE)\s*\(|SERVICE\b)", re.IGNORECASE)


def repeatable(query: str) -> bool:
    """Whether the query's answer depends only on the data it reads: no ``RAND()``, ``NOW()``, ``UUID()``,
    ``STRUUID()`` or ``BNODE()``, and no ``SERVICE`` (another endpoint's data may change at any time)."""
    return _VOLATILE.search(_masked(query)) is None
