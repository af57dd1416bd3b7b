"""Image-level REMBI: an image's size, pixel type, physical pixel sizes, channels, instrument and objective (the
model's OME-mapped slots) are stored, dereference at the image's own IRI in every format, are typed schema.org
``ImageObject`` (width and height in pixels, encoding format) in the JSON-LD, answer SPARQL, and stay behind the
embargo like every other object of a study."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from catalog.ingest import ingest, validated
from catalog.records import read_record
from tests.catalog_helpers import BASE

EXAMPLE = Path(__file__).parent / "data" / "examples" / "valid" / "Study-complete.yaml"
REMBI = "https://w3id.org/rembi/"


@pytest.fixture(scope="module")
def images(make_module_catalog):
    made = make_module_catalog(name="images")
    record = read_record(EXAMPLE).data
    embargoed = copy.deepcopy(record)
    embargoed["accession"] = "S-BIADTEST3"
    for study, release_date in ((record, "2024-06-01"), (embargoed, "2999-01-01")):
        ingest(made.services.archive, validated(study, BASE), release_date=release_date, source="test")
    app = made.app()
    return app.test_client()


def image_path(client, accession: str) -> str:
    record = client.get(f"/studies/{accession}", headers={"Accept": "application/ld+json"}).get_json()
    text = str(record)
    start = text.index(f"{BASE}/studies/{accession}/images/")
    return text[start : text.index("'", start)].split("#")[0].removeprefix(BASE)


def test_an_image_dereferences_with_what_its_headers_say(images):
    path = image_path(images, "S-BIADTEST2")
    answer = images.get(path, headers={"Accept": "application/ld+json"})
    assert answer.status_code == 200
    body = answer.get_data(as_text=True)
    for expected in ("ImageObject", "Hoechst 33342", "Plan Apo 40x", "LaserScanningConfocalMicroscopy", "OME-TIFF", "E37"):
        assert expected in body, expected
    turtle = images.get(path, headers={"Accept": "text/turtle"}).get_data(as_text=True)
    assert "sizeX" in turtle and "2048" in turtle and "lensNA" in turtle and "0.95" in turtle


def test_images_answer_sparql_by_their_header_fields(images):
    query = (
        f"PREFIX rembi: <{REMBI}> SELECT ?image ?c ?na WHERE {{ ?image a rembi:Image ; rembi:sizeC ?c ;"
        " rembi:objective/rembi:lensNA ?na FILTER(?c >= 1) }"
    )
    answer = images.get("/sparql", query_string={"query": query}, headers={"Accept": "application/sparql-results+json"})
    rows = answer.get_json()["results"]["bindings"]
    assert [(r["c"]["value"], r["na"]["value"]) for r in rows] == [("1", "0.95")]  # the embargoed copy is not public


def test_an_embargoed_study_s_images_stay_hidden(images):
    embargoed = image_path(images, "S-BIADTEST2").replace("S-BIADTEST2", "S-BIADTEST3")
    assert images.get(embargoed, headers={"Accept": "application/ld+json"}).status_code == 404
    assert images.get(embargoed, headers={"Accept": "text/turtle"}).status_code == 404
