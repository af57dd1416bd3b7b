"""Fast N-Triples writing for streams too large for rdflib (a 1.3 M-file list becomes ~20 M triples).

Only the few term shapes the catalog writes: IRIs and literals (plain or typed). Escaping follows the
N-Triples grammar (ECHAR for literals, UCHAR for characters IRIs may not contain).
"""

from __future__ import annotations

_LITERAL_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r"})
_IRI_FORBIDDEN = set('<>"{}|^`\\ ') | {chr(c) for c in range(0x21)}

XSD_INTEGER = "http://www.w3.org/2001/XMLSchema#integer"
XSD_BOOLEAN = "http://www.w3.org/2001/XMLSchema#boolean"
RDF_TYPE = "<http://www.w3.org/1999/02/22-rdf-syntax-ns#type>"


def iri(value: str) -> str:
    """``<value>`` with characters N-Triples forbids in IRIs written as \\u escapes."""
    if any(ch in _IRI_FORBIDDEN for ch in value):
        value = "".join(f"\\u{ord(ch):04X}" if ch in _IRI_FORBIDDEN else ch for ch in value)
    return f"<{value}>"


def literal(value: str, datatype: str | None = None) -> str:
    """A plain (xsd:string) or typed literal."""
    text = '"' + str(value).translate(_LITERAL_ESCAPES) + '"'
    return f"{text}^^<{datatype}>" if datatype else text


def triple(subject: str, predicate: str, obj: str) -> str:
    """One N-Triples line from already-written terms."""
    return f"{subject} {predicate} {obj} .\n"
