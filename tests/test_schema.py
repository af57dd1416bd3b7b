"""The REMBI schema, its generated artefacts and the examples that pin its constraints down."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from rdflib import RDF, Graph, URIRef
from rdflib.collection import Collection

from catalog import resources, schema_build
from catalog.records import read_record
from catalog.rembi_model import load_model
from catalog.validation import SH, check_study_record, shapes_graph

EXAMPLES = Path(__file__).parent / "data" / "examples"
VALID = sorted((EXAMPLES / "valid").glob("*.yaml"))
INVALID = sorted((EXAMPLES / "invalid").glob("*.yaml"))
BASE = "https://archive.example.org"

#: For each invalid example: the field the LinkML view must name and the RDF path the shapes must name.
EXPECTED_FAILURE = {
    "Study-missing-author.yaml": ("authors", "http://schema.org/creator"),
    "Study-license-not-in-enum.yaml": ("license", "http://purl.org/dc/terms/license"),
    "Specimen-missing-biosample.yaml": ("specimen_biosamples", "https://w3id.org/rembi/preparedFrom"),
    "Publication-missing-title-and-doi.yaml": ("publications", None),
    "Author-malformed-orcid.yaml": ("orcid", "https://w3id.org/rembi/orcid"),
    "Publication-malformed-doi.yaml": ("doi", "https://w3id.org/rembi/doi"),
    "Study-release-date-not-a-date.yaml": ("release_date", "http://purl.org/dc/terms/available"),
    "StudyComponent-unknown-biosample.yaml": ("component_biosamples", "https://w3id.org/rembi/biosample"),
    "StudyComponent-foreign-id.yaml": ("id", "http://schema.org/hasPart"),
    "StudyComponent-dot-segment-id.yaml": ("id", "http://schema.org/hasPart"),
    "CrossReference-target-not-a-web-iri.yaml": ("target", "https://w3id.org/rembi/target"),
}


def test_generated_files_match_the_schema():
    stale = schema_build.drift(schema_build.generate())
    assert stale == [], f"run `bia schema build`: {stale}"


def test_linkml_lint_is_clean():
    from linkml.linter.cli import main as lint_main

    folder = resources.data_folder("schema")
    result = CliRunner().invoke(lint_main, [str(folder / "rembi.yaml"), "--config", str(folder / "linkml-lint.yaml")])
    assert result.exit_code == 0, result.output
    assert "No problems found" in result.output


def test_shapes_are_valid_shacl():
    import pyshacl

    conforms, _results, text = pyshacl.validate(Graph(), shacl_graph=shapes_graph(), meta_shacl=True)
    assert conforms, text


def test_every_class_has_a_valid_example():
    seen: set[str] = set()
    for path in VALID:
        checked = check_study_record(read_record(path).data, BASE)
        seen.update(str(o) for o in checked.graph.objects(None, RDF.type))
    # Links are not part of a study record: `bia link` derives them; tests/test_links.py validates its graphs.
    missing = {c.name for c in load_model().classes.values() if c.uri not in seen} - {"Link"}
    assert not missing, f"classes without a valid example: {sorted(missing)}"


def test_every_hard_constraint_has_an_invalid_example():
    assert {p.name for p in INVALID} == set(EXPECTED_FAILURE)


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_valid_example_passes_linkml_and_shacl(path):
    from linkml.validator import validate as linkml_validate

    checked = check_study_record(read_record(path).data, BASE)
    assert checked.report.conforms, "\n".join(map(str, checked.report.violations))
    assert len(checked.graph) > 0
    # LinkML's own validator agrees with the catalog's fast path on the same prepared record
    report = linkml_validate(checked.record, str(resources.schema_file()), "Study")
    assert [r.message for r in report.results if r.severity.value == "ERROR"] == []


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_invalid_example_fails_linkml_and_shacl(path):
    from catalog.rembi_rdf import prepare_study, record_to_graph
    from catalog.validation import validate_graph, validate_record

    source = read_record(path)
    prepared = prepare_study(source.data, BASE)
    linkml_field, shacl_path = EXPECTED_FAILURE[path.name]

    linkml_report = validate_record(prepared)
    assert not linkml_report.conforms
    issue = next(i for i in linkml_report.violations if i.path == linkml_field)
    assert issue.focus.startswith("/") and issue.message
    assert source.line_of(issue.focus.rstrip("/") + "/" + issue.path) is not None

    shacl_report = validate_graph(record_to_graph(prepared))
    assert not shacl_report.conforms
    for violation in shacl_report.violations:
        assert violation.focus.startswith(BASE), violation  # names the focus node
        assert violation.message
    if shacl_path:
        assert shacl_path in {v.path for v in shacl_report.violations}, shacl_report.violations


def test_warnings_do_not_reject():
    checked = check_study_record(read_record(EXAMPLES / "valid" / "Publication-doi-only.yaml").data, BASE)
    assert checked.report.conforms
    assert {w.severity for w in checked.report.warnings} == {"Warning"}
    assert any("funder" in (w.path or "") for w in checked.report.warnings)


def test_recommended_slots_are_warnings_generated_from_the_schema():
    """Each ``recommended: true`` slot of the schema is one generated warning shape saying its annotation's message;
    a record without the slot gets that warning and still conforms."""
    from linkml_runtime.utils.schemaview import SchemaView

    view = SchemaView(str(resources.schema_file()))
    expected = {
        (view.get_uri(view.get_class(c), expand=True), view.get_uri(s, expand=True), s.annotations["recommended_message"].value)
        for c in view.all_classes()
        for s in view.class_induced_slots(c)
        if s.recommended
    }
    generated = Graph().parse(
        data=schema_build.generate()[resources.shapes_folder() / schema_build.RECOMMENDED_SHAPES_NAME], format="turtle"
    )
    found = {
        (str(generated.value(node, SH.targetClass)), str(generated.value(prop, SH.path)), str(generated.value(prop, SH.message)))
        for node, prop in generated.subject_objects(SH.property)
        if generated.value(prop, SH.severity) == SH.Warning and generated.value(prop, SH.minCount).toPython() == 1
    }
    assert len(expected) == 5 and found == expected  # description, keywords, biological entity, preparation, funder
    assert {m for _, _, m in expected} <= {str(m) for m in shapes_graph().objects(None, SH.message)}
    record = dict(read_record(EXAMPLES / "valid" / "Study-minimal.yaml").data)
    record.pop("description", None)
    checked = check_study_record(record, BASE)
    assert checked.report.conforms
    assert "a study should have a description" in [w.message for w in checked.report.warnings]


def test_enum_values_are_stored_as_the_iris_the_shapes_accept():
    model = load_model()
    shapes = shapes_graph()
    for cls in model.classes.values():
        for slot in cls.slots.values():
            if slot.kind != "enum":
                continue
            allowed = set()
            for prop in shapes.subjects(SH.path, URIRef(slot.uri)):
                listed = shapes.value(prop, SH["in"])
                if listed is not None:
                    allowed.update(str(v) for v in Collection(shapes, listed))
            assert allowed == set(model.enums[slot.range].values()), (cls.name, slot.name)


def test_stored_enum_value_is_the_meaning_iri():
    checked = check_study_record(read_record(EXAMPLES / "valid" / "Study-complete.yaml").data, BASE)
    licence = checked.graph.value(URIRef(f"{BASE}/studies/S-BIADTEST2"), URIRef("http://purl.org/dc/terms/license"))
    assert licence == URIRef("https://creativecommons.org/licenses/by/4.0/")


def test_jsonld_context_agrees_with_the_rdf_mapping():
    context = json.loads((resources.generated_folder() / schema_build.CONTEXT_NAME).read_text())["@context"]
    model = load_model()

    def expand(term: str) -> str:
        prefix, _, local = term.partition(":")
        if prefix in context and isinstance(context[prefix], dict) and context[prefix].get("@prefix"):
            return context[prefix]["@id"] + local
        if prefix in context and isinstance(context[prefix], str):
            return context[prefix] + local
        return context["@vocab"] + term if ":" not in term else term

    for cls in model.classes.values():
        for name, slot in cls.slots.items():
            entry = context[name]
            assert expand(entry["@id"]) == slot.uri, name
            if slot.kind in ("iri", "enum") or (slot.kind == "object"):
                assert entry.get("@type") == "@id", name


def test_deterministic_identifiers():
    data = read_record(EXAMPLES / "valid" / "Study-complete.yaml").data
    first = check_study_record(data, BASE).graph
    second = check_study_record(data, BASE).graph
    assert set(first) == set(second)
    assert not any(t for t in first if any(type(x).__name__ == "BNode" for x in t))


def test_cli_validate_names_file_line_and_field():
    from api.cli import cli

    runner = CliRunner()
    bad = EXAMPLES / "invalid" / "Author-malformed-orcid.yaml"
    result = runner.invoke(cli, ["validate", str(bad)], obj={})
    assert result.exit_code == 1
    assert f"{bad}:8:" in result.output and "/authors/0/orcid" in result.output
    good = runner.invoke(cli, ["validate", *map(str, VALID)], obj={})
    assert good.exit_code == 0, good.output


def test_cli_reports_unparsable_file(tmp_path):
    from api.cli import cli

    broken = tmp_path / "broken.yaml"
    broken.write_text("title: [unclosed\nlicense: CC0-1.0\n")
    result = CliRunner().invoke(cli, ["validate", str(broken)], obj={})
    assert result.exit_code == 1
    assert str(broken) in result.output and "line" in result.output


def test_references_to_objects_the_study_does_not_define_are_each_named():
    """Every association (a list or a single value) naming an object the study does not define is one violation, in
    slot order; ids match once expanded (a CURIE meets its IRI); entries that are not objects, or objects without an id,
    define nothing and are not checked."""
    from catalog.validation import validate_record

    study = f"{BASE}/studies/S-BIADREF1"
    record = {
        "id": study,
        "biosamples": [{"id": f"{study}/biosample/hela"}, "not an object", {"title": "no id"}, {"id": "rembi:curie-sample"}],
        "specimens": [
            {
                "id": f"{study}/specimen/fixed",
                "specimen_biosamples": [
                    f"{study}/biosample/hela",
                    "https://w3id.org/rembi/curie-sample",
                    f"{study}/biosample/mouse",
                ],
            }
        ],
        "components": [
            "not an object",
            {
                "id": f"{study}/component/one",
                "component_biosamples": f"{study}/biosample/ghost",
                "component_specimens": [f"{study}/specimen/fixed"],
                "component_image_acquisitions": [],
            },
        ],
        "files": [
            {"id": f"{study}/file/a", "file_component": f"{study}/component/one"},
            {"id": f"{study}/file/b", "file_component": f"{study}/component/two"},
        ],
        "images": [{"id": f"{study}/image/1", "image_component": "", "image_files": [f"{study}/file/a", f"{study}/file/c"]}],
    }
    found = [i.to_dict() for i in validate_record(record).issues if "does not define" in i.message]
    assert found == [
        {
            "focus": "/components/1",
            "path": "component_biosamples",
            "value": f"{study}/biosample/ghost",
            "message": "refers to a BioSample that the study does not define",
            "severity": "Violation",
            "source": "linkml",
        },
        {
            "focus": "/files/1",
            "path": "file_component",
            "value": f"{study}/component/two",
            "message": "refers to a StudyComponent that the study does not define",
            "severity": "Violation",
            "source": "linkml",
        },
        {
            "focus": "/images/0",
            "path": "image_files",
            "value": f"{study}/file/c",
            "message": "refers to a FileReference that the study does not define",
            "severity": "Violation",
            "source": "linkml",
        },
        {
            "focus": "/specimens/0",
            "path": "specimen_biosamples",
            "value": f"{study}/biosample/mouse",
            "message": "refers to a BioSample that the study does not define",
            "severity": "Violation",
            "source": "linkml",
        },
    ]
