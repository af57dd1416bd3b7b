"""Generate every artefact derived from ``schema/rembi.yaml`` (``bia schema build``).

Outputs, all deterministic so a test can detect drift:

* ``shapes/rembi.shacl.ttl``: SHACL shapes (LinkML ``gen-shacl``);
* ``shapes/rembi-recommended.shacl.ttl``: a warning shape for every ``recommended: true`` slot of a class (gen-shacl
  has none), its message the slot's ``recommended_message`` annotation;
* ``schema/generated/rembi.context.jsonld``: the JSON-LD context (``gen-jsonld-context``);
* ``schema/generated/rembi.schema.json``: JSON Schema of a Study record (``gen-json-schema``), which is how
  LinkML validates instance data; the catalog validates deposits with it without loading LinkML;
* ``schema/generated/rembi.rdfmap.json``: for each class and slot the RDF IRI, the kind of value and, for
  enums, the IRI of each permissible value's ``meaning`` — what :mod:`catalog.rembi_rdf` turns records into
  RDF with — and the words pages show for them: each class's, slot's and permissible value's ``title`` (the
  schema's, else its name in words) and ``description``.

Shapes written by hand (constraints LinkML cannot express in SHACL, e.g. "a publication needs a title or a
DOI") live beside the generated files in ``shapes/rembi-extra.shacl.ttl`` and are never overwritten.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from catalog import resources

SHAPES_NAME = "rembi.shacl.ttl"
RECOMMENDED_SHAPES_NAME = "rembi-recommended.shacl.ttl"
CONTEXT_NAME = "rembi.context.jsonld"
JSON_SCHEMA_NAME = "rembi.schema.json"
RDFMAP_NAME = "rembi.rdfmap.json"

_IRI_TYPES = {"uri", "uriorcurie", "curie"}


def _schema_view(schema: Path):
    from linkml_runtime.utils.schemaview import SchemaView

    return SchemaView(str(schema))


def _shapes(schema: Path) -> str:
    from linkml.generators.shaclgen import ShaclGenerator

    return ShaclGenerator(str(schema), mergeimports=True).serialize()


def _recommended_shapes(view) -> str:
    """Turtle: per class, a node shape ``{Class}Recommended`` whose property shapes warn (never reject) when a
    recommended slot is empty."""
    namespace = view.expand_curie(f"{view.schema.default_prefix}:")
    blocks = []
    for cname in sorted(view.all_classes()):
        slots = sorted((s for s in view.class_induced_slots(cname) if s.recommended), key=lambda s: s.name)
        if not slots:
            continue
        properties = " , ".join(
            f"[\n        sh:path <{view.get_uri(slot, expand=True)}> ; sh:minCount 1 ; sh:severity sh:Warning ;\n"
            f"        sh:message {json.dumps(_recommended_message(cname, slot), ensure_ascii=False)}\n    ]"
            for slot in slots
        )
        blocks.append(
            f"<{namespace}{cname}Recommended> a sh:NodeShape ;\n"
            f"    sh:targetClass <{view.get_uri(view.get_class(cname), expand=True)}> ;\n"
            f"    sh:property {properties} .\n"
        )
    header = (
        "# Generated from schema/rembi.yaml by `bia schema build`; do not edit. Recommended slots\n"
        "# (`recommended: true`) are warnings: they never reject a record.\n"
        "@prefix sh: <http://www.w3.org/ns/shacl#> .\n"
    )
    return "\n".join([header, *blocks])


def _recommended_message(cname: str, slot) -> str:
    """The slot's ``recommended_message`` annotation, else "a {class} should have a {slot}"."""
    if "recommended_message" in slot.annotations:
        return str(slot.annotations["recommended_message"].value)
    return f"a {re.sub(r'(?<=[a-z])(?=[A-Z])', ' ', cname).lower()} should have a {slot.name.replace('_', ' ')}"


def _context(schema: Path, rdf_map: dict[str, Any]) -> str:
    """gen-jsonld-context's output, with IRI-valued slots typed ``@id``.

    LinkML types ``uri``/``uriorcurie`` slots as ``xsd:anyURI`` literals and gives enum slots a nested
    context for ``{text, meaning}`` objects; the catalog stores both as IRIs (an enum value as its
    ``meaning``), so the context says ``"@type": "@id"`` for them and JSON-LD round-trips to the stored RDF.
    """
    from linkml.generators.jsonldcontextgen import ContextGenerator

    context = json.loads(ContextGenerator(str(schema), metadata=False, mergeimports=True).serialize())
    terms = context["@context"]
    for cls in rdf_map["classes"].values():
        for name, slot in cls["slots"].items():
            if slot["kind"] in ("iri", "enum") and isinstance(terms.get(name), dict):
                terms[name] = {"@id": terms[name]["@id"], "@type": "@id"}
    return json.dumps(context, indent=2, sort_keys=True) + "\n"


def _json_schema(schema: Path) -> str:
    from linkml.generators.jsonschemagen import JsonSchemaGenerator

    text = JsonSchemaGenerator(str(schema), top_class="Study", metadata=False, mergeimports=True).serialize()
    return json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


def _rdf_map(schema: Path) -> dict[str, Any]:
    view = _schema_view(schema)
    classes: dict[str, Any] = {}
    for cname in sorted(view.all_classes()):
        cls = view.get_class(cname)
        slots: dict[str, Any] = {}
        identifier = None
        for slot in view.class_induced_slots(cname):
            if slot.identifier:
                identifier = slot.name
                continue
            rng = slot.range or view.schema.default_range or "string"
            entry: dict[str, Any] = {
                "uri": view.expand_curie(view.get_uri(slot, expand=False)),
                "multivalued": bool(slot.multivalued),
                "required": bool(slot.required),
                **_words(slot),
            }
            if rng in view.all_classes():
                entry["kind"] = "object"
                entry["range"] = rng
                target_has_id = any(s.identifier for s in view.class_induced_slots(rng))
                entry["inlined"] = bool(slot.inlined or slot.inlined_as_list) or not target_has_id
            elif rng in view.all_enums():
                entry["kind"] = "enum"
                entry["range"] = rng
            elif rng in _IRI_TYPES:
                entry["kind"] = "iri"
            else:
                typ = view.get_type(rng)
                entry["kind"] = "literal"
                entry["datatype"] = view.expand_curie(typ.uri)
            slots[slot.name] = entry
        classes[cname] = {
            "uri": view.expand_curie(view.get_uri(cls, expand=False)),
            "identifier": identifier,
            "slots": slots,
            **_words(cls),
        }
    enums, values = {}, {}
    for ename in sorted(view.all_enums()):
        permissible = view.get_enum(ename).permissible_values
        enums[ename] = {pv: view.expand_curie(pvdef.meaning) for pv, pvdef in permissible.items()}
        values[ename] = {pv: _words(pvdef, pv, as_written=True) for pv, pvdef in permissible.items()}
    prefixes = {p.prefix_prefix: p.prefix_reference for p in view.schema.prefixes.values()}
    return {
        "schema": view.schema.id,
        "version": view.schema.version,
        "prefixes": prefixes,
        "classes": classes,
        "enums": enums,
        "enum_values": values,
    }


def _words(element: Any, name: str | None = None, as_written: bool = False) -> dict[str, str]:
    """What a page calls an element: its ``title``, else its name in words (``image_acquisitions`` → "Image
    acquisitions", ``SignalChannel`` → "Signal channel"; a permissible value ``as_written``, but for its
    underscores: ``BioImage Archive``, ``related to``), and its ``description``."""
    name = name or element.name
    spaced = name.replace("_", " ") if as_written else re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name).replace("_", " ")
    title = element.title or (spaced if as_written else spaced[:1].upper() + spaced[1:].lower())
    return {"title": title, "description": " ".join((element.description or "").split())}


def generate(schema: Path | None = None) -> dict[Path, str]:
    """Every generated file (path → content), from the schema as it is now."""
    schema = schema or resources.schema_file()
    generated = resources.generated_folder()
    rdf_map = _rdf_map(schema)
    return {
        resources.shapes_folder() / SHAPES_NAME: _shapes(schema),
        resources.shapes_folder() / RECOMMENDED_SHAPES_NAME: _recommended_shapes(_schema_view(schema)),
        generated / CONTEXT_NAME: _context(schema, rdf_map),
        generated / JSON_SCHEMA_NAME: _json_schema(schema),
        generated / RDFMAP_NAME: json.dumps(rdf_map, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
    }


def write(outputs: dict[Path, str]) -> list[Path]:
    """Write the outputs; returns the paths whose content changed."""
    changed = []
    for path, text in outputs.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed


def drift(outputs: dict[Path, str]) -> list[Path]:
    """Generated files that differ from (or are missing next to) what the schema produces now."""
    return [p for p, text in outputs.items() if not p.exists() or p.read_text(encoding="utf-8") != text]
