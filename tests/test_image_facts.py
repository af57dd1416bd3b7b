"""What the headers of a study's files say reaches the study: ``image.*`` columns of its file table (filterable,
sortable, facetable), image nodes and summaries in its graph (each image's IRI dereferences as an ImageObject), its
images listing, its search facets; bounded by the node cap; invisible while the study is under embargo.

Real files: a fluorescence nuclei image and an EMDB map (tests/data/images/SOURCES.txt), OME-TIFFs written here from
the real pixels with known pixel sizes and channels, one carrying the real tubhiswt acquisition's OME-XML (2
channels × 20 time points), a truncated TIFF and a text file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from catalog.image_facts import ImageFacts
from catalog.jobs import JobQueue, Worker, handlers
from loaders.image_headers.job import KIND, readers_version, register_kind
from tests.catalog_helpers import deposit_files as deposit

IMAGES = Path(__file__).parent / "data" / "images"
REMBI = "https://w3id.org/rembi/"


def _two_channel(path: Path) -> None:
    image = tifffile.imread(IMAGES / "tiff" / "stardist_img2d.tif")
    meta = {
        "axes": "CYX",
        "Name": "nuclei",
        "PhysicalSizeX": 0.65,
        "PhysicalSizeXUnit": "µm",
        "PhysicalSizeY": 0.65,
        "PhysicalSizeYUnit": "µm",
        "Channel": {"Name": ["DAPI", "inverted"], "Fluor": ["DAPI", "DAPI"]},
    }
    tifffile.imwrite(path, np.stack([image, image.max() - image]), metadata=meta, compression="zlib", photometric="minisblack")


def _timelapse(path: Path) -> None:
    xml = (IMAGES / "ome-xml" / "tubhiswt.ome.xml").read_bytes()
    plane = (tifffile.imread(IMAGES / "tiff" / "stardist_img2d.tif") >> 1).astype(np.uint8)
    with tifffile.TiffWriter(path) as writer:
        for index in range(40):
            writer.write(plane, description=xml if index == 0 else None, metadata=None, compression="zlib")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("image-files")
    _two_channel(folder / "two.ome.tif")
    _timelapse(folder / "tubhiswt_C0.ome.tif")
    nuclei = (IMAGES / "tiff" / "stardist_img2d.tif").read_bytes()
    return {
        "nuclei/img2d.tif": nuclei,
        "nuclei/two.ome.tif": (folder / "two.ome.tif").read_bytes(),
        "timelapse/tubhiswt_C0.ome.tif": (folder / "tubhiswt_C0.ome.tif").read_bytes(),
        "maps/EMD-3197.map": (IMAGES / "mrc" / "EMD-3197.map").read_bytes(),
        "broken/truncated.tif": nuclei[:20],  # cut inside its first IFD
        "notes/readme.txt": b"acquired on the Nikon, see the methods\n",
    }


def read_headers(services) -> None:
    register_kind()
    queue = JobQueue.for_settings(services.archive.state, services.archive.settings)
    try:
        worker = Worker(queue, handlers(services.archive.settings, [KIND]), versions={KIND: readers_version()})
        while worker.run_batch():
            pass
    finally:
        queue.close()


def image_nodes(services, accession: str, view: str = "public") -> list[str]:
    study = services.archive.study_iri(accession)
    rows = services.archive.view(view).graph.select(
        f"SELECT ?s WHERE {{ GRAPH <{study}> {{ ?s a <{REMBI}Image> ; <{REMBI}readFromHeaders> true }} }}"
    )
    return sorted(r["s"]["value"] for r in rows)


@pytest.fixture
def applied(make_catalog, files):
    catalog = make_catalog()
    services = catalog.services
    accession, _token = deposit(services, files)
    read_headers(services)
    facts = ImageFacts(services.archive)
    done = facts.follow()
    assert [a.accession for a in done] == [accession]
    return catalog, accession


def test_file_table_gains_image_columns_filterable_sortable_facetable(applied):
    catalog, accession = applied
    client = catalog.app().test_client()
    table = client.get(f"/studies/{accession}/files?filter[image.size_c][gte]=2&sort=path").get_json()
    assert [row["path"] for row in table["items"]] == ["nuclei/two.ome.tif", "timelapse/tubhiswt_C0.ome.tif"]
    two = table["items"][0]
    assert (two["image.size_x"], two["image.size_y"], two["image.size_c"], two["image.dtype"]) == (512, 512, 2, "uint16")
    assert two["image.physical_size_x"] == pytest.approx(0.65)
    assert (two["image.channels"], two["image.format"], two["image.status"]) == ("DAPI; inverted", "ome-tiff", "ok")
    everything = client.get(f"/studies/{accession}/files?facets=image.status,image.format&sort=-image.size_z").get_json()
    assert everything["items"][0]["path"] == "maps/EMD-3197.map"  # 20 planes: the deepest
    statuses = {f["value"]: f["count"] for f in everything["facets"]["image.status"]}
    assert statuses == {"ok": 4, "unreadable": 1, "unsupported": 1}
    bad = client.get(f"/studies/{accession}/files?filter[image.size_c][gte]=lots")
    assert bad.status_code == 400 or bad.get_json()["total"] == 0


def test_graph_holds_image_nodes_and_summaries_and_each_image_dereferences(applied):
    catalog, accession = applied
    services = catalog.services
    nodes = image_nodes(services, accession)
    assert len(nodes) == 4  # one image per readable file
    client = catalog.app().test_client()
    listing = client.get(f"/studies/{accession}/images").get_json()
    assert listing["total"] == 6 and {item["status"] for item in listing["items"]} == {"ok", "unreadable", "unsupported"}
    timelapse = next(item for item in listing["items"] if item["path"].startswith("timelapse/"))
    (image,) = timelapse["images"]
    assert (image["size_c"], image["size_t"]) == (2, 20) and image["@id"] in nodes
    from catalog.image_index import lookup

    indexed = lookup(services.archive.state, accession, image["@id"].rsplit("/", 1)[-1])
    assert indexed is not None and (indexed.file_key, indexed.series) == (f"studies/{accession}/timelapse/tubhiswt_C0.ome.tif", 0)
    record = client.get(image["@id"].replace(catalog.settings.base_url, ""), headers={"Accept": "application/ld+json"})
    assert record.status_code == 200
    doc = json.dumps(record.get_json())
    assert "ImageObject" in doc and "S Fluor" in doc  # the objective the real OME-XML names
    study = client.get(f"/studies/{accession}", headers={"Accept": "application/ld+json"}).get_json()
    text = json.dumps(study)
    assert "ImageSummary" in text and "2D+time" in text and "3D" in text
    study_iri = services.archive.study_iri(accession)
    per_component = services.archive.public.graph.select(
        f"SELECT ?title ?n WHERE {{ GRAPH <{study_iri}> {{ ?c a <{REMBI}StudyComponent> ; <http://purl.org/dc/terms/title> ?title ;"
        f" <{REMBI}imageSummary> ?s . ?s <{REMBI}filesRead> ?n }} }}"
    )
    assert [(r["title"]["value"], r["n"]["value"]) for r in per_component] == [("Screen plates", "5")]
    truncated = next(item for item in listing["items"] if item["path"].startswith("broken/"))
    assert truncated["status"] == "unreadable" and truncated["reason"] and truncated["images"] == []


def test_search_facets_say_what_the_headers_say(applied):
    catalog, accession = applied
    client = catalog.app().test_client()
    found = client.get("/search?q=&facets=dimensionality,time_series", headers={"Accept": "application/json"}).get_json()
    facets = {name: {v["value"]: v["count"] for v in values} for name, values in found["facets"].items()}
    assert facets["dimensionality"] == {"2D": 1, "2D+time": 1, "3D": 1}
    assert facets["time_series"] == {"yes": 1}
    narrowed = client.get("/search?filter[dimensionality]=2D%2Btime", headers={"Accept": "application/json"}).get_json()
    assert [hit["accession"] for hit in narrowed["items"]] == [accession]
    assert narrowed["items"][0]["dimensionalities"] == ["2D", "2D+time", "3D"]


def test_applying_again_and_recommitting_keep_one_set_of_image_nodes(applied):
    catalog, accession = applied
    services = catalog.services
    study = services.archive.study_iri(accession)
    before = services.archive.public.graph.count(study)
    services.archive.apply_image_headers(accession)
    assert services.archive.public.graph.count(study) == before
    from catalog.image_facts import pending

    assert pending(services.archive.state) == []


def test_image_nodes_are_capped_but_the_summary_counts_every_file(make_catalog, files):
    catalog = make_catalog(image_nodes_max=1)
    services = catalog.services
    accession, _ = deposit(services, files)
    read_headers(services)
    ImageFacts(services.archive).follow()
    assert len(image_nodes(services, accession)) == 1
    study = services.archive.study_iri(accession)
    (row,) = services.archive.public.graph.select(
        f"SELECT ?n WHERE {{ GRAPH <{study}> {{ <{study}> <{REMBI}imageSummary> ?s . ?s <{REMBI}imageCount> ?n }} }}"
    )
    assert int(row["n"]["value"]) == 4
    listing = catalog.app().test_client().get(f"/studies/{accession}/images?limit=2").get_json()
    assert listing["next"] and len(listing["items"]) == 2
    iris = [image["@id"] for page in (listing,) for item in page["items"] for image in item["images"]]
    assert iris.count(None) >= len(iris) - 1  # past the cap: no IRI that would not dereference


def test_embargoed_study_images_are_invisible_until_release(make_catalog, files):
    catalog = make_catalog()
    services = catalog.services
    accession, token = deposit(services, files, release_date="2999-01-01")
    read_headers(services)
    ImageFacts(services.archive).follow()
    assert image_nodes(services, accession, "private") and not image_nodes(services, accession, "public")
    client = catalog.app().test_client()
    for path in (
        f"/studies/{accession}/images",
        f"/studies/{accession}/files?filter[image.size_c][gte]=2",
        f"/studies/{accession}/files?facets=image.format",
    ):
        assert client.get(path).status_code == 404, path
    node = image_nodes(services, accession, "private")[0]
    assert client.get(node.replace(catalog.settings.base_url, ""), headers={"Accept": "application/ld+json"}).status_code == 404
    found = client.get("/search?facets=dimensionality,time_series", headers={"Accept": "application/json"}).get_json()
    assert all(not values for values in found["facets"].values() if values is not None) or found["total"] == 0
    query = f"SELECT (COUNT(*) AS ?n) WHERE {{ ?s <{REMBI}readFromHeaders> true }}"
    answer = client.get("/sparql", query_string={"query": query}, headers={"Accept": "application/sparql-results+json"})
    assert answer.get_json()["results"]["bindings"][0]["n"]["value"] == "0"
    owner = {"Authorization": f"Bearer {token}"}
    mine = client.get(f"/studies/{accession}/images", headers=owner)
    assert mine.status_code == 200 and mine.get_json()["total"] == 6
    services.archive.release_due(today="2999-01-02")
    assert image_nodes(services, accession, "public") and not image_nodes(services, accession, "private")
    released = client.get(f"/studies/{accession}/files?filter[image.size_c][gte]=2").get_json()
    assert released["total"] == 2  # the columns came along: no header is read again
    assert client.get(node.replace(catalog.settings.base_url, ""), headers={"Accept": "application/ld+json"}).status_code == 200


def test_pending_marks_and_the_scan_of_finished_jobs_on_both_engines(state_db):
    from catalog import image_facts
    from catalog.jobs import JobQueue

    queue = JobQueue(state_db)
    queue.enqueue_many(KIND, "v1", [("S-A1", "studies/S-A1/a.tif", None), ("S-B1", "studies/S-B1/b.tif", None)])
    assert image_facts.scan_finished(state_db) == [] and image_facts.pending(state_db) == []
    (job,) = queue.claim([KIND], versions={KIND: "v1"})
    queue.finish(job, {"status": "ok", "format": "tiff", "series": []})
    assert image_facts.scan_finished(state_db) == [job.study]
    ((study, seq, applied),) = image_facts.pending(state_db)
    assert (study, applied) == (job.study, None) and image_facts.has_results(state_db, job.study)
    image_facts._applied(state_db, study, seq)
    assert image_facts.pending(state_db) == [] and image_facts.scan_finished(state_db) == []  # nothing new since
    image_facts.mark(state_db, [study])  # committed again
    assert [p[0] for p in image_facts.pending(state_db)] == [study]
    queue.close()


def test_studies_that_keep_failing_to_apply_wait_behind_the_others(state_db):
    """Twenty-five studies whose application fails (found by a hostile audit: oldest change first, no back-off, so they
    came back first every round and no later study was ever applied), then a good one."""
    from types import SimpleNamespace

    from catalog import image_facts

    poison = [f"S-P{i}" for i in range(25)]
    image_facts.mark(state_db, [*poison, "S-GOOD"])
    tried: list[str] = []

    def apply(accession: str):
        tried.append(accession)
        if accession in poison:
            raise RuntimeError("cannot be applied")
        return None

    follower = ImageFacts(SimpleNamespace(state=state_db, apply_image_headers=apply))  # type: ignore[arg-type]
    follower.follow(limit=20)
    assert tried == poison[:20]
    follower.follow(limit=20)
    assert tried[20:] == [*poison[20:], "S-GOOD"]  # the failed ones wait: none is tried again yet
    assert [p[0] for p in image_facts.pending(state_db)] == [*poison[:20], *poison[20:]]  # behind, still pending
    follower._failed = {a: (0.0, when) for a, (_due, when) in follower._failed.items()}  # their wait is over
    follower.follow(limit=20)
    assert tried[26:] == poison[:20]
