"""Validation of REMBI records and graphs, with errors people can act on.

Two views of the same model, which must agree (tests run every example through both):

* :func:`validate_record` — LinkML's view of a JSON/YAML record: the JSON Schema generated from the schema
  (what ``linkml validate`` runs), plus the referential integrity LinkML leaves out (an association must name
  an object that exists in the study);
* :func:`validate_graph` — the shapes' view of the RDF the catalog stores: pySHACL with the generated shapes
  and the hand-written extras in ``shapes/``.

Both return :class:`ValidationIssue` lists; issues of severity ``Warning``/``Info`` never reject a record.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any, Iterable, Iterator
from urllib.parse import unquote

from rdflib import RDF, Graph, Namespace

from catalog import resources
from catalog.rembi_model import ClassInfo, RembiModel, SlotInfo, load_model
from catalog.schema_build import JSON_SCHEMA_NAME, RECOMMENDED_SHAPES_NAME, SHAPES_NAME

SH = Namespace("http://www.w3.org/ns/shacl#")
EXTRA_SHAPES = "rembi-extra.shacl.ttl"


@dataclass(frozen=True)
class ValidationIssue:
    """One problem: where (focus node or record location), which field, the value, what is wrong."""

    focus: str
    path: str | None
    message: str
    value: str | None = None
    severity: str = "Violation"  # Violation | Warning | Info
    source: str = "shacl"  # shacl | linkml

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def __str__(self) -> str:
        where = f"{self.focus} {self.path}" if self.path else self.focus
        value = f" (value: {self.value})" if self.value is not None else ""
        return f"{self.severity}: {where}: {self.message}{value}"


@dataclass
class ValidationReport:
    """All issues found; ``conforms`` is False only if one of them is a violation."""

    issues: list[ValidationIssue] = field(default_factory=list)

    @property
    def conforms(self) -> bool:
        return not self.violations

    @property
    def violations(self) -> list[ValidationIssue]:
        return [i for i in self.issues if i.severity == "Violation"]

    @property
    def warnings(self) -> list[ValidationIssue]:
        return [i for i in self.issues if i.severity != "Violation"]

    def __add__(self, other: "ValidationReport") -> "ValidationReport":
        return ValidationReport(self.issues + other.issues)


# --------------------------------------------------------------------------- shapes (pySHACL)


@lru_cache(maxsize=1)
def shapes_graph() -> Graph:
    """The generated shapes (gen-shacl's and the recommended-slot warnings) plus the hand-written ones (parsed once
    per process)."""
    graph = Graph()
    folder = resources.shapes_folder()
    for name in (SHAPES_NAME, RECOMMENDED_SHAPES_NAME, EXTRA_SHAPES):
        graph.parse(folder / name, format="turtle")
    return graph


def validate_graph(data: Graph) -> ValidationReport:
    """Validate an RDF graph against the shapes; returns every result, violations and warnings."""
    import pyshacl

    _conforms, results, _text = pyshacl.validate(
        data,
        shacl_graph=shapes_graph(),
        inference="none",
        abort_on_first=False,
        allow_warnings=True,
        advanced=False,
    )
    issues = []
    for result in results.subjects(RDF.type, SH.ValidationResult):
        severity = results.value(result, SH.resultSeverity)
        path = results.value(result, SH.resultPath)
        value = results.value(result, SH.value)
        focus = results.value(result, SH.focusNode)
        message = results.value(result, SH.resultMessage)
        issues.append(
            ValidationIssue(
                focus=str(focus),
                path=str(path) if path is not None else None,
                message=str(message) if message is not None else "does not conform",
                value=str(value) if value is not None else None,
                severity=str(severity).rsplit("#", 1)[-1] if severity is not None else "Violation",
                source="shacl",
            )
        )
    issues.sort(key=lambda i: (i.severity != "Violation", i.focus, i.path or "", i.message))
    return ValidationReport(issues)


# --------------------------------------------------------------------------- records (LinkML JSON Schema)


#: what the patterns of IRI-valued slots in schema/rembi.yaml share (a link's scheme: http, https or ftp)
_WEB_IRI_MARK = "([Hh][Tt][Tt][Pp][Ss]?|[Ff][Tt][Pp])://"


@lru_cache(maxsize=1)
def _json_schema() -> dict[str, Any]:
    return json.loads((resources.generated_folder() / JSON_SCHEMA_NAME).read_text(encoding="utf-8"))


@lru_cache(maxsize=None)
def _validator(class_name: str):
    import jsonschema

    schema = _json_schema()
    if class_name != "Study":
        schema = {"$schema": schema["$schema"], "$defs": schema["$defs"], "$ref": f"#/$defs/{class_name}"}
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def _location(path: Iterable[Any]) -> str:
    return "/" + "/".join(str(p) for p in path)


def _message(error: Any) -> str:
    """jsonschema's message, in words where its own would quote a regular expression."""
    if error.validator == "pattern" and _WEB_IRI_MARK in str(error.validator_value):
        curie = " nor an ontology term's CURIE (NCBITaxon:9606)" if ":[0-9]+" in str(error.validator_value) else ""
        return f"{error.instance!r} is not an http, https or ftp IRI{curie} (the catalog's pages link to it)"
    return error.message


def validate_record(record: dict[str, Any], class_name: str = "Study", model: RembiModel | None = None) -> ValidationReport:
    """Validate a JSON/YAML record as LinkML does, plus referential integrity inside a study."""
    issues = []
    for error in sorted(_validator(class_name).iter_errors(record), key=lambda e: list(map(str, e.absolute_path))):
        location = list(error.absolute_path)
        field_name = None
        if error.validator == "required":
            # "'title' is a required property": the field is the missing one
            field_name = error.message.split("'")[1] if "'" in error.message else None
        elif location and isinstance(location[-1], str):
            field_name = location[-1]
            location = location[:-1]
        elif len(location) >= 2 and isinstance(location[-2], str):
            field_name = location[-2]
            location = location[:-2]
        issues.append(
            ValidationIssue(
                focus=_location(location),
                path=field_name,
                message=_message(error),
                value=None if isinstance(error.instance, (dict, list)) else str(error.instance),
                source="linkml",
            )
        )
    if class_name == "Study":
        issues.extend(_dangling_references(record, model or load_model()))
        issues.extend(foreign_ids(record, model or load_model()))
        issues.extend(_bad_orcids(record))
    return ValidationReport(issues)


def _dangling_references(record: dict[str, Any], model: RembiModel) -> list[ValidationIssue]:
    """Associations naming an object that the study does not define."""
    defined = _defined_ids(record, model)
    issues = []
    for slot, owner in _identified_slots(model, model.classes["Study"]):
        for index, obj in enumerate(record.get(slot.name) or []):
            if isinstance(obj, dict):
                issues.extend(_unknown_references(obj, f"/{slot.name}/{index}", owner, defined, model))
    return issues


def _identified_slots(model: RembiModel, cls: ClassInfo) -> Iterator[tuple[SlotInfo, ClassInfo]]:
    """The slots of ``cls`` whose values are objects with an identifier, each with the class of those objects."""
    for slot in cls.slots.values():
        target = model.classes.get(slot.range or "")
        if slot.kind == "object" and target is not None and target.identifier:
            yield slot, target


def _defined_ids(record: dict[str, Any], model: RembiModel) -> dict[str, set[str]]:
    """The (expanded) ids of the objects a study record defines, by class name."""
    defined: dict[str, set[str]] = {}
    for slot, target in _identified_slots(model, model.classes["Study"]):
        for obj in record.get(slot.name) or []:
            if isinstance(obj, dict) and obj.get("id"):
                defined.setdefault(target.name, set()).add(model.expand(str(obj["id"])))
    return defined


def _unknown_references(
    obj: dict[str, Any], focus: str, owner: ClassInfo, defined: dict[str, set[str]], model: RembiModel
) -> list[ValidationIssue]:
    """The references of one object (of class ``owner``, at ``focus``) to objects not in ``defined``."""
    issues = []
    for ref_slot, target in _identified_slots(model, owner):
        if ref_slot.inlined:
            continue
        refs = obj.get(ref_slot.name)
        for ref in refs if isinstance(refs, list) else ([refs] if refs else []):
            if model.expand(str(ref)) not in defined.get(target.name, set()):
                issues.append(
                    ValidationIssue(
                        focus=focus,
                        path=ref_slot.name,
                        value=str(ref),
                        source="linkml",
                        message=f"refers to a {target.name} that the study does not define",
                    )
                )
    return issues


# --------------------------------------------------------------------------- a whole study record file


@dataclass
class CheckedStudy:
    """A study record made ready for storage: the prepared record, its RDF and what validation found."""

    record: dict[str, Any]
    graph: Graph
    report: ValidationReport


def _bad_orcids(record: dict[str, Any]) -> list[ValidationIssue]:
    """ORCID iDs of the right shape whose check digit is wrong (a typo the pattern cannot see)."""
    from catalog import external_ids

    issues = []
    for i, author in enumerate(record.get("authors") or []):
        value = author.get("orcid") if isinstance(author, dict) else None
        if (
            isinstance(value, str)
            and re.fullmatch(r"https://orcid\.org/\d{4}-\d{4}-\d{4}-\d{3}[0-9X]", value)
            and external_ids.orcid(value) is None
        ):
            issues.append(
                ValidationIssue(
                    focus=f"/authors/{i}",
                    path="orcid",
                    value=value,
                    source="linkml",
                    message="this ORCID iD's check digit is wrong: a digit is mistyped",
                )
            )
    return issues


#: classes whose nodes stand for terms of other resources (ontology terms): their IRIs are theirs, not the study's
TERM_CLASSES = frozenset({"OntologyTerm"})


def foreign_ids(prepared: dict[str, Any], model: RembiModel) -> list[ValidationIssue]:
    """Objects of a (prepared) study whose IRIs would make it speak about things it does not own: an object of the
    study with an id outside the study's own IRIs (``{study}/…``, ``{study}#…``), or a term with an id inside this
    catalog's IRIs but outside the study's (a deposit naming ``{base}/studies/S-BIAD1492`` would give that study a
    second title in the public graph)."""
    study = str(prepared.get("id") or "")
    own = (study + "/", study + "#")
    catalog_space = study.rsplit("/studies/", 1)[0] + "/" if "/studies/" in study else study + "/"
    issues: list[ValidationIssue] = []

    def visit(obj: Any, class_name: str, location: str) -> None:
        cls = model.classes.get(class_name)
        if cls is None or not isinstance(obj, dict):
            return
        if cls.identifier and location and obj.get(cls.identifier):
            iri = str(obj[cls.identifier])
            if class_name in TERM_CLASSES:
                bad = iri.startswith(catalog_space) and (not iri.startswith(own) or has_dot_segments(iri))
                why = "a term's id may not name an object of this catalog other than the study's own"
            else:
                bad = not iri.startswith(own) or has_dot_segments(iri)
                why = f"an object's id must lie inside the study's own IRIs ({study}/…, without '.' or '..' segments)"
            if bad:
                issues.append(ValidationIssue(focus=location, path=cls.identifier, message=why, value=iri, source="linkml"))
        for slot in cls.slots.values():
            if slot.kind != "object" or not slot.inlined and slot.range not in model.classes:
                continue
            values = obj.get(slot.name)
            for i, item in enumerate(values if isinstance(values, list) else [values]):
                if isinstance(item, dict):
                    visit(item, slot.range or "", f"{location}/{slot.name}" + (f"/{i}" if isinstance(values, list) else ""))

    visit(prepared, "Study", "")
    return issues


def has_dot_segments(iri: str) -> bool:
    """Whether an IRI's path has ``.`` or ``..`` segments (also percent-encoded): ``{study}/../S-BIAD1492/…`` starts
    with the study's IRI, but every client that follows it (RFC 3986 removes dot segments) reaches another study."""
    path = re.split(r"[?#]", iri.split("://", 1)[-1], maxsplit=1)[0]
    return any(unquote(segment) in (".", "..") for segment in path.split("/")[1:])


def check_study_record(
    data: Any, base_url: str, *, accession: str | None = None, model: RembiModel | None = None
) -> CheckedStudy:
    """Prepare, validate (LinkML view) and convert a study record, then validate its RDF (shapes view).

    ``accession`` overrides the record's own (deposits get theirs at finalize). Structural problems that
    make conversion impossible are reported as violations rather than raised.
    """
    from catalog.rembi_rdf import prepare_study, record_to_graph

    model = model or load_model()
    if not isinstance(data, dict):
        issue = ValidationIssue(focus="/", path=None, message="a study record must be a mapping (JSON object)", source="linkml")
        return CheckedStudy({}, Graph(), ValidationReport([issue]))
    data = dict(data)
    if accession:
        data["accession"] = accession
    if not data.get("accession"):
        issue = ValidationIssue(focus="/", path="accession", message="'accession' is a required property", source="linkml")
        return CheckedStudy(data, Graph(), ValidationReport([issue]))
    try:
        prepared = prepare_study(data, base_url, model)
    except ValueError as exc:
        issue = ValidationIssue(focus="/", path="accession", message=str(exc), value=str(data.get("accession")), source="linkml")
        return CheckedStudy(data, Graph(), ValidationReport([issue]))
    report = validate_record(prepared, "Study", model)
    if report.conforms:
        graph = record_to_graph(prepared, "Study", model=model)
        report = report + validate_graph(graph)
    else:
        graph = Graph()
    return CheckedStudy(prepared, graph, report)
