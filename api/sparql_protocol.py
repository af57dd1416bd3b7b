"""What the public SPARQL endpoint checks before a query runs: its form, that it reads only, where SERVICE goes,
how deeply it nests, and which dataset it names.

All of it comes from one linear pass over the text (:func:`scan`): a single compiled regular expression skips,
in C, whitespace, comments, string literals, IRIs, variables, prefixed names and other words, and stops only at
what the checks need (a few keywords, brackets, operators); a keyword inside a string (``"DELETE me"``), a
comment or an IRI never counts, and a ``PREFIX`` or ``SERVICE`` target is read where its keyword stands. A query
that nests deeper, or holds more operators, than the limits is refused as soon as the scan passes them
(pyoxigraph builds its algebra recursively: 5,000 nested groups or 20,000 UNIONs overflow its stack).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

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
    "boolean": [
        "application/sparql-results+json",
        "application/sparql-results+xml",
        "application/json",
        "application/xml",
        "text/xml",
    ],
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


class NotAQuery(CatalogError):
    status = 400
    code = "invalid_query"


class QueryTooComplex(NotAQuery):
    code = "query_too_complex"


class ReadOnly(Forbidden):
    code = "read_only"


class ServiceNotAllowed(Forbidden):
    code = "service_not_allowed"


@dataclass(frozen=True)
class Limits:
    """How deeply a query may nest (``{``, ``(``, ``[``) and how many UNION, OPTIONAL, MINUS and operators
    (``|| && = != < > <= >= + - * / ! ^ | ?``, property paths included) it may hold."""

    max_depth: int = 256
    max_operators: int = 4096


@dataclass
class QueryShape:
    """What one scan found in a query (see :func:`scan`)."""

    #: the first word after the prologue, upper-cased ("" if none)
    keyword: str = ""
    #: SERVICE targets: ("iri", IRI), ("pname", prefix, local) or ("variable", text)
    services: list[tuple[str, ...]] = field(default_factory=list)
    #: INSERT or DELETE followed by DATA, WHERE or ``{`` anywhere
    update: bool = False
    has_from: bool = False
    #: RAND, NOW, UUID, STRUUID or BNODE called
    volatile: bool = False
    depth: int = 0
    operators: int = 0

    @property
    def form(self) -> str:
        """``SELECT``/``CONSTRUCT``/``DESCRIBE``/``ASK``; :class:`ReadOnly` for an update, :class:`NotAQuery` else."""
        if self.keyword in QUERY_FORMS:
            return self.keyword
        if self.keyword in UPDATE_KEYWORDS or self.update:
            raise ReadOnly("this endpoint is read-only: SPARQL Update is not accepted")
        raise NotAQuery("not a SPARQL query: expected SELECT, CONSTRUCT, DESCRIBE or ASK after the prologue")

    #: the query text and where its prologue ends (its prefixes are read only when a SERVICE names one)
    text: str = field(default="", repr=False)
    prologue_end: int = 0

    def prologue(self, base_iri: str | None = None) -> tuple[str | None, dict[str, str]]:
        """The base IRI in force after the prologue and its PREFIX declarations, every IRI resolved as the parser
        resolves it: each ``BASE`` and ``PREFIX`` IRI against the base in force where it stands, starting from
        ``base_iri`` (the endpoint's). A prefix declared twice: the later IRI, as in parsers. A word ``PREFIX…``
        after the prologue declares nothing: the parser fails on it or reads it as a prefixed name."""
        base, prefixes = base_iri, {}
        for m in _PROLOGUE_DECLARATIONS.finditer(self.text, 0, self.prologue_end):
            new_base, declared, name, iri = m.groups()
            if declared:
                prefixes[name or ""] = resolve_iri(iri, base)
            elif new_base is not None:
                base = resolve_iri(new_base, base)
        return base, prefixes

    @property
    def repeatable(self) -> bool:
        """No volatile function and no ``SERVICE`` (another endpoint's data may change at any time)."""
        return not (self.volatile or self.services)


# ---------------------------------------------------------------------- the one scanner

#: whitespace and comments (a comment ends at a CR as well as at a LF, as in the parser)
_BLANK = r"(?:\s+|\#[^\r\n]*)"
#: string literals; a long one left open runs to the end (the parser fails on it), so no opener is scanned twice
_STRINGS = (
    r'"""[^"\\]*+(?:(?:\\[\s\S]|"(?!""))[^"\\]*+)*+(?:"""|\Z)'
    r"|'''[^'\\]*+(?:(?:\\[\s\S]|'(?!''))[^'\\]*+)*+(?:'''|\Z)"
    r'|"[^"\\\n\r]*+(?:\\.[^"\\\n\r]*+)*+"'
    r"|'[^'\\\n\r]*+(?:\\.[^'\\\n\r]*+)*+'"
)
_IRI = r"<([^<>\"{}|^`\\\x00-\x20]*+)>"
#: a prefix name (PN_PREFIX: a letter first, any script) and a prefixed name's local part (PN_LOCAL, escapes kept)
_PN_PREFIX = r"[^\W\d_](?:[\w.-]*[\w-])?"
_PN_LOCAL = r"(?:[\w:%-]+|\\.|\.(?=[\w:%\\-]))*+"
#: pyoxigraph's parser (a PEG) reads these keywords at the start of any word: ``SERVICEex:s {…}`` is
#: ``SERVICE ex:s {…}`` and ``PREFIX:<…>`` declares the empty prefix, so they count wherever a word begins with them
_LEADING_KEYWORDS = r"(?i:SERVICE|PREFIX|BASE|FROM)"
_WORD_KEYWORDS = r"(?i:OPTIONAL|STRUUID|INSERT|DELETE|UNION|MINUS|BNODE|RAND|UUID|NOW)(?![\w:])"
_KEYWORD = rf"{_LEADING_KEYWORDS}|{_WORD_KEYWORDS}"
#: everything the checks need not see, each alternative consuming a whole token (never part of one), the most
#: frequent first
_SKIP = rf"""(?:
    [\s.,;]+
  | [?$]\w+                                              # variable
  | (?!{_KEYWORD})[^\W\d]\w*(?:(?:[.-]+\w+)*:{_PN_LOCAL})?  # word, or prefixed name
  | <[^<>"{{}}|^`\\\x00-\x20,&(\[]*+>                  # IRI (see _TOKEN for the others)
  | {_STRINGS}
  | \#[^\r\n]*                                           # comment
  | :{_PN_LOCAL}                                         # prefixed name with the empty prefix
  | \d+(?:\.\d+)?(?:[eE][+-]?\d+)?                       # number
  | @[A-Za-z]+(?:-[A-Za-z0-9]+)*                        # language tag
  | \^\^                                                 # datatype
  | [^\s\w"'<>\#{{}}()\[\]|&!=+*/^?$:-]                  # other punctuation
)*+"""
_TOKEN = re.compile(
    rf"""{_SKIP}(?:
        (?P<keyword>{_KEYWORD})
      | (?P<iri><[^<>"{{}}|^`\\\x00-\x20]*+>)
      | (?P<open>[{{(\[])
      | (?P<close>[}})\]])
      | (?P<operator>\|\||&&|!=|<=|>=|[=<>+*/|^!?$-])
      | (?P<quote>["'])
      | (?P<end>\Z)
    )""",
    re.VERBOSE,
)
#: what counts inside an IRI holding a comma, ``&`` or a bracket: ``FILTER(?a<(((1)))&&1>?b)`` and
#: ``IF(?a<1-1-1,2>?b, 1, 2)`` are expressions, not IRIs, and their brackets and operators count as well
_INSIDE_IRI = re.compile(r"(?P<open>[(\[])|(?P<close>[)\]])|(?P<operator>&&|!=|<=|>=|[=+*/!?-])")
_PREFIX_DECLARATION = rf"(?i:PREFIX){_BLANK}*+({_PN_PREFIX})?:{_BLANK}*+{_IRI}"
_BASE_DECLARATION = rf"(?i:BASE){_BLANK}*+<[^<>\"{{}}|^`\\\x00-\x20]*+>"
#: the prologue: blanks, comments and declarations only (matched in C, however many prefixes it declares)
_PROLOGUE = re.compile(rf"(?:{_BLANK}|{_PREFIX_DECLARATION}|{_BASE_DECLARATION})*+")
#: each declaration of a prologue with the blanks before it, as (PREFIX, name, IRI) or ("", "", "") for a BASE
#: (and the blanks at its end), so that consecutive matches tile the prologue and none starts inside a comment
_PROLOGUE_DECLARATIONS = re.compile(
    rf"{_BLANK}*+(?:(?i:BASE){_BLANK}*+{_IRI}|(?i:(PREFIX)){_BLANK}*+({_PN_PREFIX})?:{_BLANK}*+{_IRI}|\Z)"
)
_SERVICE_CALL = re.compile(
    rf"{_BLANK}*+(?:SILENT{_BLANK}*+)?(?:{_IRI}|({_PN_PREFIX})?:({_PN_LOCAL})|([?$]\w+)){_BLANK}*+\{{", re.IGNORECASE
)
_FROM_CLAUSE = re.compile(rf"{_BLANK}*+(?:NAMED{_BLANK}*+)?(?:<|(?:{_PN_PREFIX})?:)", re.IGNORECASE)
_UPDATE_FOLLOWS = re.compile(rf"{_BLANK}*+(?:\{{|(?:DATA|WHERE)(?![\w:]))", re.IGNORECASE)
_FIRST_WORD = re.compile(r"[A-Za-z]+")
_VOLATILE = frozenset({"RAND", "NOW", "UUID", "STRUUID", "BNODE"})
_FORM_WORDS = sorted(QUERY_FORMS + UPDATE_KEYWORDS, key=len, reverse=True)


class _Tally:
    """Nesting depth and operator count, refused as soon as either passes its limit."""

    __slots__ = ("deepest", "depth", "limits", "operators")

    def __init__(self, limits: Limits) -> None:
        self.limits, self.depth, self.deepest, self.operators = limits, 0, 0, 0

    def open(self) -> None:
        self.depth += 1
        if self.depth > self.deepest:
            self.deepest = self.depth
            if self.depth > self.limits.max_depth:
                raise QueryTooComplex(
                    f"the query nests deeper than {self.limits.max_depth} levels of {{ }}, ( ) or [ ]",
                    [{"field": "query", "message": f"nesting over {self.limits.max_depth}"}],
                )

    def operator(self) -> None:
        self.operators += 1
        if self.operators > self.limits.max_operators:
            raise QueryTooComplex(
                f"the query holds more than {self.limits.max_operators} UNION, OPTIONAL, MINUS and operators",
                [{"field": "query", "message": f"operators over {self.limits.max_operators}"}],
            )

    def inside_iri(self, iri: str) -> None:
        for m in _INSIDE_IRI.finditer(iri):
            kind = m.lastgroup
            if kind == "open":
                self.open()
            elif kind == "close":
                self.depth -= 1
            else:
                self.operator()


def scan(query: str, limits: Limits = Limits()) -> QueryShape:
    """Everything the checks need, in one linear pass; :class:`QueryTooComplex` as soon as a limit is passed,
    :class:`NotAQuery` for a string literal left open."""
    prologue_end = _PROLOGUE.match(query).end()  # type: ignore[union-attr]  # (it matches the empty string too)
    shape, tally = QueryShape(text=query, prologue_end=prologue_end), _Tally(limits)
    for m in _TOKEN.finditer(query, prologue_end):
        kind = m.lastgroup
        if kind == "open":
            tally.open()
        elif kind == "close":
            tally.depth -= 1
        elif kind == "operator":
            tally.operator()
        elif kind == "keyword":
            _keyword(query, m.end(), m.group(kind).upper(), shape, tally)
        elif kind == "iri":
            tally.inside_iri(m.group(kind))
        elif kind == "quote":
            line = query.count("\n", 0, m.start(kind)) + 1
            raise NotAQuery(f"a string literal opened on line {line} is not closed")
    shape.depth, shape.operators = tally.deepest, tally.operators
    word = _FIRST_WORD.match(query, prologue_end)
    first = word.group(0).upper() if word else ""
    shape.keyword = next((form for form in _FORM_WORDS if first.startswith(form)), first)
    return shape


def _keyword(query: str, at: int, word: str, shape: QueryShape, tally: _Tally) -> None:
    """Note what a keyword ending at ``at`` says about the query."""
    if word in ("UNION", "OPTIONAL", "MINUS"):
        tally.operator()
    elif word == "SERVICE":
        call = _SERVICE_CALL.match(query, at)
        if call:  # else not a SERVICE call (``service:x ?p ?o``): the parser reads it as the triples it is
            iri, prefix, local, variable = call.groups()
            shape.services.append(
                ("iri", iri)
                if iri is not None
                else ("variable", variable)
                if variable is not None
                else ("pname", prefix or "", local)
            )
    elif word == "FROM" and tally.depth == 0:  # a dataset clause stands outside every group (``?s from:p ?o`` does not)
        shape.has_from = shape.has_from or bool(_FROM_CLAUSE.match(query, at))
    elif word in _VOLATILE:
        shape.volatile = True
    elif word in ("INSERT", "DELETE") and _UPDATE_FOLLOWS.match(query, at):
        shape.update = True


# ---------------------------------------------------------------------- the checks, each reading one scan


def resolve_iri(iri: str, base: str | None) -> str:
    """``iri`` resolved against ``base`` (RFC 3987, by the query parser's own resolver); :class:`NotAQuery`
    for a relative IRI with no base, or an IRI the parser refuses."""
    import pyoxigraph as ox

    try:  # (a scanned IRI holds no character that could end it early)
        triple = next(iter(ox.parse(f"<{iri}> <{iri}> <{iri}> .".encode(), ox.RdfFormat.TURTLE, base_iri=base)))
    except SyntaxError as exc:
        raise NotAQuery(f"the IRI <{iri}> cannot be resolved{'' if base else ' (no base IRI)'}: {exc}") from exc
    return triple.subject.value


def _shape(query: str | QueryShape) -> QueryShape:
    return query if isinstance(query, QueryShape) else scan(query)


def result_kind(form: str) -> str:
    return {"SELECT": "solutions", "ASK": "boolean"}.get(form, "graph")


def check_services(query: str | QueryShape, allowed: tuple[str, ...] | list[str], base_iri: str | None = None) -> None:
    """Refuse any ``SERVICE`` whose endpoint is not in ``allowed`` (a variable endpoint is never allowed), each
    target resolved as the query is run: against the query's ``BASE``, itself resolved against ``base_iri``.

    Keywords and ``PREFIX`` declarations count only outside comments, strings and IRIs, so neither can hide a
    ``SERVICE`` nor declare a prefix; a prefix declared twice resolves to the later IRI, as in parsers.
    """
    shape = _shape(query)
    base, prefixes = shape.prologue(base_iri) if shape.services else (base_iri, {})
    for service in shape.services:
        if service[0] == "variable":
            raise ServiceNotAllowed("SERVICE with a variable endpoint is not allowed on this endpoint")
        if service[0] == "iri":
            target = resolve_iri(service[1], base)
        else:
            prefix, local = service[1], service[2]
            if prefix not in prefixes:
                raise NotAQuery(f"SERVICE {prefix}:{local}: the prefix {prefix}: is not declared")
            target = prefixes[prefix] + local
        if target not in allowed:
            raise ServiceNotAllowed(
                f"SERVICE <{target}> is not allowed on this endpoint"
                + (f"; allowed: {', '.join(allowed)}" if allowed else " (no federated endpoints are configured)"),
                [{"field": "query", "value": target, "message": "endpoint not in the allow-list"}],
            )


def dataset(query: str | QueryShape, default: list[str], named: list[str]) -> dict:
    """The dataset a query runs on, as pyoxigraph query options (IRIs as strings).

    The protocol's ``default-graph-uri``/``named-graph-uri`` win over the query's ``FROM``/``FROM NAMED``
    (SPARQL 1.1 Protocol 2.1.4), and name exactly the dataset: only named graphs given means an empty default
    graph, and the other way round. Else the query's own ``FROM`` clauses apply; with neither, the default graph
    is the union of all graphs (the service description's ``sd:UnionDefaultGraph``).
    """
    if default or named:
        return {"default_graph": list(default), "named_graphs": list(named)}
    if _shape(query).has_from:
        return {}
    return {"use_default_graph_as_union": True}


def repeatable(query: str | QueryShape) -> bool:
    """Whether the query's answer depends only on the data it reads: no ``RAND()``, ``NOW()``, ``UUID()``,
    ``STRUUID()`` or ``BNODE()``, and no ``SERVICE`` (another endpoint's data may change at any time)."""
    return _shape(query).repeatable
