"""A small in-memory triple set for building records: the part of rdflib's ``Graph`` API records use, without
its store machinery (events, contexts), which costs ~18 µs a triple."""

from __future__ import annotations

from typing import Any, Iterator


Triple = tuple[Any, Any, Any]


class RecordGraph:
    """Triples indexed by subject, then predicate (each object once, in insertion order)."""

    def __init__(self) -> None:
        self._spo: dict[Any, dict[Any, dict[Any, None]]] = {}
        self._size = 0

    def add(self, triple: Triple) -> "RecordGraph":
        s, p, o = triple
        objects = self._spo.setdefault(s, {}).setdefault(p, {})
        if o not in objects:
            objects[o] = None
            self._size += 1
        return self

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[Triple]:
        for s, predicates in self._spo.items():
            for p, objects in predicates.items():
                for o in objects:
                    yield s, p, o

    def triples(self, pattern: Triple) -> Iterator[Triple]:
        s, p, o = pattern
        subjects = [s] if s is not None else list(self._spo)
        for subject in subjects:
            predicates = self._spo.get(subject, {})
            for predicate in [p] if p is not None else list(predicates):
                for obj in predicates.get(predicate, {}):
                    if o is None or obj == o:
                        yield subject, predicate, obj

    def objects(self, subject: Any = None, predicate: Any = None) -> Iterator[Any]:
        for _s, _p, o in self.triples((subject, predicate, None)):
            yield o

    def subjects(self) -> Iterator[Any]:
        yield from self._spo

    def value(self, subject: Any, predicate: Any) -> Any:
        return next(self.objects(subject, predicate), None)
