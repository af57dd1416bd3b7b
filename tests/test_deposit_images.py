"""What a deposit's image files say, in its validation: suggestions for empty fields and conflicts with what the
depositor wrote (each naming the field, the files and the header element), as warnings that never reject a deposit;
the header reads cached in the job queue; the web form's "fill from files" step without script; the owner's eyes only.

Files are real: OME-TIFFs written here with tifffile from the real pixels of tests/data/images/tiff/stardist_img2d.tif
(with stated pixel sizes, channels and acquisition modes), and the real Nikon NIS-Elements and Zeiss ZEN OME-XML of
tests/data/images/ome-xml (facts in tests/data/images/SOURCES.txt).
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
import yaml

from catalog import jobs
from catalog.deposit_headers import KIND, chosen_files
from catalog.deposit_images import claimed_modes, declared_pixel_sizes
from tests.catalog_helpers import BASE, DATA

IMAGES = Path(__file__).parent / "data" / "images"
NIKON = IMAGES / "ome-xml" / "seq0000xy01c1.ome.xml"  # WideField, "Mono" em 525, Plan Apo 10x NA 0.45, 0.644888 µm
ZEISS = IMAGES / "ome-xml" / "OverViewScan.ome.xml"  # "DAPI" ex 353 em 465, 4.5743626119409 µm, no mode
CONFOCAL = "LaserScanningConfocalMicroscopy"


def ome_tiff(mode: str = CONFOCAL, pixel: float = 0.65, z: float | None = None) -> bytes:
    """An OME-TIFF of two channels (DAPI, GFP) of real nuclei pixels, with the pixel size and acquisition mode given."""
    pixels = tifffile.imread(IMAGES / "tiff" / "stardist_img2d.tif")[:128, :128]
    metadata: dict[str, Any] = {
        "axes": "CYX",
        "PhysicalSizeX": pixel,
        "PhysicalSizeXUnit": "µm",
        "PhysicalSizeY": pixel,
        "PhysicalSizeYUnit": "µm",
        "Channel": {
            "Name": ["DAPI", "GFP"],
            "Fluor": ["DAPI", "EGFP"],
            "AcquisitionMode": [mode, mode],
            "ExcitationWavelength": [405.0, 488.0],
            "EmissionWavelength": [450.0, 510.0],
        },
    }
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.stack([pixels, pixels // 2]), ome=True, photometric="minisblack", metadata=metadata)
    return buffer.getvalue()


def study(**changes: Any) -> dict[str, Any]:
    """The sample study (tests/data/deposit/study.yaml) without file list, changed; ``None`` values drop a field."""
    record = yaml.safe_load((DATA / "study.yaml").read_text())
    record["components"][0].pop("file_list_name")
    for name, value in changes.items():
        for component in record["components"]:
            component.pop(f"component_{name}", None)
            if value is not None:
                component[f"component_{name}"] = [item["title"] for item in value]
        if value is None:
            record.pop(name, None)
        else:
            record[name] = value
    return record


@pytest.fixture(scope="module")
def catalog(make_module_catalog):
    made = make_module_catalog(name="deposit-images", background="off", header_max_bytes=1 << 20)
    app = made.app()
    token, owner = made.token("jane")
    other, _ = made.token("mallory")
    return {"made": made, "client": app.test_client(), "token": token, "owner": owner, "other": other}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def submit(catalog, files: dict[str, bytes], record: dict[str, Any] | str, name: str = "study.yaml") -> str:
    """A submission made over HTTP with ``files`` and ``record``; returns its id."""
    client, headers = catalog["client"], auth(catalog["token"])
    sub = client.post("/deposits", headers=headers).get_json()["id"]
    for path, content in files.items():
        assert client.put(f"/deposits/{sub}/files/{path}", data=content, headers=headers).status_code == 201
    text = record if isinstance(record, str) else yaml.safe_dump(record, sort_keys=False)
    assert client.put(f"/deposits/{sub}/metadata?name={name}", data=text.encode(), headers=headers).status_code == 200
    return sub


def validate(catalog, sub: str) -> dict[str, Any]:
    answer = catalog["client"].post(f"/deposits/{sub}/validate", headers=auth(catalog["token"]))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()


def found(report: dict[str, Any], kind: str, field: str | None = None) -> list[dict[str, Any]]:
    return [
        w
        for w in report["warnings"]
        if w.get("source") == "image_headers" and w["kind"] == kind and (field is None or w["field"] == field)
    ]


def metadata_of(catalog, sub: str) -> dict[str, Any]:
    return yaml.safe_load(catalog["made"].services.archive.registry.submission(sub)["metadata"])


def test_a_deposit_over_http_gets_suggestions_naming_field_files_and_element(catalog):
    files = {"a/one.ome.tif": ome_tiff(), "a/two.ome.tif": ome_tiff(), "nikon/seq0000xy01c1.ome.xml": NIKON.read_bytes()}
    sub = submit(catalog, files, study(image_acquisitions=None, specimens=None))
    report = validate(catalog, sub)
    assert report["valid"], report["errors"]
    assert all(w["severity"] in ("Warning", "Info") for w in report["warnings"] if w.get("source") == "image_headers")
    methods = {w["suggested"]["id"]: w for w in found(report, "suggestion", "imaging_method")}
    assert set(methods) == {"FBbi:00000252", "FBbi:00000306"}  # the table's terms for LSCM and WideField
    confocal = methods["FBbi:00000252"]
    assert confocal["files"] == ["a/one.ome.tif", "a/two.ome.tif"] and confocal["file_count"] == 2
    assert confocal["element"] == "OME/Image/Pixels/Channel/@AcquisitionMode" and confocal["target"] == "/image_acquisitions"
    assert CONFOCAL in confocal["message"] and "a/one.ome.tif" in confocal["message"]
    assert methods["FBbi:00000306"]["files"] == ["nikon/seq0000xy01c1.ome.xml"]
    (pixel,) = found(report, "suggestion", "pixel_size")
    assert pixel["value"] == "pixel size 0.65 × 0.65 µm (x × y)" and pixel["files"] == ["a/one.ome.tif", "a/two.ome.tif"]
    assert pixel["element"].startswith("OME/Image/Pixels/@PhysicalSizeX") and "1 other file(s)" in pixel["message"]
    (objective,) = found(report, "suggestion", "objective")  # the Nikon file's objective, as NIS-Elements wrote it
    assert objective["files"] == ["nikon/seq0000xy01c1.ome.xml"] and "NA 0.45" in objective["value"]
    assert "Plan Apo" in objective["value"] and objective["element"].startswith("OME/Instrument/Objective")
    (channels,) = found(report, "suggestion", "channels")
    assert [c["channel_name"] for c in channels["suggested"]] == ["DAPI", "GFP"]
    assert channels["suggested"][1]["dye"] == "EGFP" and channels["target"] == "/specimens"
    assert {"name": "excitation wavelength", "value": "488 nm"} in channels["suggested"][1]["attributes"]
    assert report["images"]["checked"] == 3 and report["images"]["read"] == 3 and report["images"]["read_now"] == 3

    again = validate(catalog, sub)  # the reads are the queue's results: nothing is read again
    assert again["images"]["read_now"] == 0 and again["warnings"] == report["warnings"]
    queue = jobs.JobQueue(catalog["made"].services.archive.state)
    results = list(queue.results(f"submission:{sub}", KIND))
    queue.close()
    assert len(results) == 3 and all(job.result["status"] == "ok" for job in results)

    chosen = [confocal["id"], pixel["id"], channels["id"]]
    applied = catalog["client"].post(f"/deposits/{sub}/suggestions", json={"ids": chosen}, headers=auth(catalog["token"]))
    in_field_order = [confocal["id"], channels["id"], pixel["id"]]  # a method first: it makes the acquisition
    assert applied.status_code == 200 and applied.get_json() == {"applied": in_field_order, "skipped": []}
    record = metadata_of(catalog, sub)
    acquisition = record["image_acquisitions"][0]
    assert acquisition["imaging_methods"] == [
        {"id": "FBbi:00000252", "label": "single-spot confocal microscopy", "ontology_name": "FBbi"}
    ]
    assert acquisition["acquisition_parameters"] == "pixel size 0.65 × 0.65 µm (x × y)"
    assert record["components"][0]["component_image_acquisitions"] == ["Imaging"]
    assert record["specimens"][0]["specimen_biosamples"] == ["HeLa cells"]
    after = validate(catalog, sub)
    assert after["valid"], after["errors"]
    assert not found(after, "suggestion", "imaging_method") and not found(after, "suggestion", "pixel_size")
    (mixed,) = found(after, "conflict", "imaging_method")  # now the Nikon file's WideField contradicts the declared method
    assert mixed["files"] == ["nikon/seq0000xy01c1.ome.xml"] and mixed["declared"].endswith("(FBbi:00000252)")
    assert [w["field"] for w in found(after, "suggestion")] == ["objective"]


def test_a_declared_widefield_method_against_confocal_files_is_a_conflict_never_applied(catalog):
    widefield = [{"title": "Widefield", "imaging_methods": [{"id": "FBbi:00000306", "label": "wide-field detection"}]}]
    widefield[0]["acquisition_parameters"] = "Pixel size 0.1 µm; 200 ms exposure"
    sub = submit(catalog, {"cells/c1.ome.tif": ome_tiff()}, study(image_acquisitions=widefield))
    report = validate(catalog, sub)
    assert report["valid"], report["errors"]  # a warning, never a rejection
    (conflict,) = found(report, "conflict", "imaging_method")
    assert conflict["files"] == ["cells/c1.ome.tif"] and conflict["element"] == "OME/Image/Pixels/Channel/@AcquisitionMode"
    assert (
        conflict["declared"] == "'wide-field detection' (FBbi:00000306)"
        and conflict["value"] == "single-spot confocal microscopy"
    )
    assert "/image_acquisitions/0/imaging_methods/0" in conflict["message"] and CONFOCAL in conflict["message"]
    (pixels,) = found(report, "conflict", "pixel_size")
    assert "0.1 µm" in pixels["message"] and pixels["value"] == "pixel size 0.65 × 0.65 µm (x × y)"
    assert not found(report, "suggestion", "imaging_method") and not found(report, "suggestion", "pixel_size")
    answer = catalog["client"].post(
        f"/deposits/{sub}/suggestions", json={"ids": [conflict["id"]]}, headers=auth(catalog["token"])
    )
    assert answer.get_json() == {"applied": [], "skipped": [{"id": conflict["id"], "reason": "a conflict is never applied"}]}
    assert metadata_of(catalog, sub)["image_acquisitions"][0]["imaging_methods"][0]["id"] == "FBbi:00000306"

    # what a declared method stands for: a label saying widefield claims WideField; confocal, every confocal mode;
    # fluorescence microscopy (of which both are kinds) claims nothing, so no file contradicts it
    assert claimed_modes("FBbi:00000246", "widefield fluorescence microscopy") == {"WideField"}
    assert claimed_modes("FBbi:00000251", "confocal microscopy") >= {CONFOCAL, "SpinningDiskConfocal"}
    assert claimed_modes("FBbi:00000246", "fluorescence microscopy") == set()
    assert declared_pixel_sizes("voxel size 250 nm x 250 nm x 1 µm; 10 ms") == [0.25, 0.25, 1.0]


@pytest.mark.parametrize(
    "declared, conflicts",
    [
        ({"id": "FBbi:00000251", "label": "confocal microscopy"}, 0),  # the parent of single-spot confocal
        ({"id": "FBbi:00000246", "label": "fluorescence microscopy"}, 0),
        ({"id": "FBbi:00000246", "label": "widefield fluorescence microscopy"}, 1),  # as the depositor wrote it
        ({"id": "FBbi:00000253", "label": "spinning disk confocal microscopy"}, 1),
    ],
)
def test_only_a_method_the_files_contradict_is_a_conflict(catalog, declared, conflicts):
    acquisitions = [{"title": "Confocal", "imaging_methods": [declared]}]
    report = validate(catalog, submit(catalog, {"c.ome.tif": ome_tiff()}, study(image_acquisitions=acquisitions)))
    assert len(found(report, "conflict", "imaging_method")) == conflicts and report["valid"]


def hostile_files() -> dict[str, bytes]:
    real = ome_tiff()
    laughs = b'<?xml version="1.0"?><!DOCTYPE OME [<!ENTITY a "aaaaaaaaaa">' + b"".join(
        b'<!ENTITY %s "%s">' % (chr(98 + i).encode(), (b"&" + chr(97 + i).encode() + b";") * 10) for i in range(9)
    )
    laughs += b']><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06"><Image ID="Image:0" Name="&j;"/></OME>'
    return {
        "bad/truncated.ome.tif": real[:64],  # cut inside its first directory
        "bad/laughs.ome.xml": laughs,  # an entity-expansion bomb
        "bad/huge-description.ome.tif": _with_description(real, 4 << 20),  # past BIA_HEADER_MAX_BYTES (1 MiB here)
        "good.ome.tif": real,
    }


def _with_description(tiff: bytes, size: int) -> bytes:
    pixels = tifffile.imread(io.BytesIO(tiff))
    buffer = io.BytesIO()
    padding = "<!--" + "x" * size + "-->"
    description = tifffile.TiffFile(io.BytesIO(tiff)).pages[0].description.replace("?>", "?>" + padding, 1)
    description = description.replace("µ", "&#181;")  # TIFF strings are ASCII
    tifffile.imwrite(buffer, pixels, description=description, metadata=None)
    return buffer.getvalue()


def test_hostile_files_give_warnings_naming_them_and_never_reject(catalog):
    files = hostile_files()
    sub = submit(catalog, files, study())
    report = validate(catalog, sub)
    assert report["valid"], report["errors"]
    unreadable = {w["file"]: w for w in found(report, "unreadable")}
    assert set(unreadable) == {"bad/truncated.ome.tif", "bad/laughs.ome.xml", "bad/huge-description.ome.tif"}
    for path, warning in unreadable.items():
        assert warning["severity"] == "Warning" and warning["message"].startswith(f"{path}: its headers could not be read")
    assert "bytes" in unreadable["bad/huge-description.ome.tif"]["message"]
    assert found(report, "suggestion", "pixel_size")[0]["files"] == ["good.ome.tif"]  # the good file still counts
    assert report["images"]["unreadable"] == 3
    finalized = catalog["client"].post(f"/deposits/{sub}/finalize", headers=auth(catalog["token"]))
    assert finalized.status_code == 201, finalized.get_data(as_text=True)


def test_the_files_checked_are_capped_and_chosen_evenly_every_time(make_catalog):
    made = make_catalog(deposit_header_files=2, background="off")
    token, owner = made.token()
    deposits = made.services.deposits
    sub = deposits.create(owner)
    for i in range(5):
        deposits.upload(sub, owner, f"img/{i}.ome.tif", io.BytesIO(ome_tiff(pixel=0.5 + i / 10)))
    deposits.upload(sub, owner, "notes.txt", io.BytesIO(b"not an image"))
    deposits.attach_metadata(sub, owner, "study.yaml", yaml.safe_dump(study(image_acquisitions=None)).encode())
    report = deposits.validate(sub, owner)
    assert report["images"]["image_files"] == 5 and report["images"]["checked"] == 2
    (sampled,) = [w for w in report["warnings"] if w.get("kind") == "sampled"]
    assert sampled["severity"] == "Info" and "BIA_DEPOSIT_HEADER_FILES" in sampled["message"]
    rows = list(made.services.archive.registry.staged_files(sub))
    picked, total = chosen_files(lambda: iter(rows), 2)
    assert total == 5 and [r["path"] for r in picked] == ["img/0.ome.tif", "img/2.ome.tif"]
    assert found(report, "suggestion", "pixel_size")[0]["files"] == ["img/0.ome.tif"]  # ties: the first file's value


def test_pagetab_metadata_is_not_rewritten(catalog):
    pagetab = (Path(__file__).parent / "data" / "harvest" / "biostudies" / "S-BIAD1492.json").read_text()
    sub = submit(catalog, {"c.ome.tif": ome_tiff()}, pagetab, name="S-BIAD1492.json")
    report = validate(catalog, sub)
    ids = [w["id"] for w in found(report, "suggestion")]
    answer = catalog["client"].post(f"/deposits/{sub}/suggestions", json={"ids": ids}, headers=auth(catalog["token"]))
    if ids:
        assert answer.status_code == 409 and "PageTab" in answer.get_json()["message"]


def form_fields(catalog, **more: Any) -> dict[str, Any]:
    return {
        "token": catalog["token"],
        "title": "Nuclei, filled from their files",
        "description": "Typed into the form.",
        "license": "CC0-1.0",
        "author_name": "Jane Doe",
        "organism": "Homo sapiens",
        "release_date": "2020-01-01",
        **more,
    }


def test_the_form_fills_from_files_without_script(catalog):
    client = catalog["client"]
    uploads = [(io.BytesIO(ome_tiff()), "cells.ome.tif"), (io.BytesIO(ZEISS.read_bytes()), "OverViewScan.ome.xml")]
    page = client.post(
        "/deposit", data={**form_fields(catalog), "step": "fill", "files": uploads}, content_type="multipart/form-data"
    )
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "<script" not in html, html[:2000]
    assert catalog["token"] not in html  # a secret is never written into a page
    sub = re.search(r'<code id="submission">([^<]+)</code>', html)[1]
    boxes = re.findall(r'name="suggestion" value="(\w+)">\s*<label for="s-\w+"><strong>([\w ]+)</strong>: ([^<]*)</label>', html)
    assert sorted(field for _, field, _ in boxes) == ["channels", "imaging method", "imaging method", "pixel size"], html
    assert "OME/Image/Pixels/Channel/@AcquisitionMode" in html and "cells.ome.tif" in html
    method = next(i for i, _, value in boxes if value == "single-spot confocal microscopy")  # the OME-TIFF's
    pixel = next(i for i, field, _ in boxes if field == "pixel size")

    applied = client.post(f"/deposit/{sub}/fill", data={"token": catalog["token"], "apply": "1", "suggestion": [method, pixel]})
    assert applied.status_code == 303 and applied.headers["Location"].endswith(f"/deposit/{sub}/fill?applied=2&skipped=0")
    back = client.get(applied.headers["Location"].replace(BASE, ""))
    assert back.status_code == 200 and "2 suggestion(s) filled into the metadata" in back.get_data(as_text=True)
    record = metadata_of(catalog, sub)
    assert [m["id"] for m in record["image_acquisitions"][0]["imaging_methods"]] == ["FBbi:00000252"]
    assert record["image_acquisitions"][0]["acquisition_parameters"].startswith("pixel size")

    shown = client.post(f"/deposit/{sub}/fill", data={"token": catalog["token"]}).get_data(as_text=True)
    left = set(re.findall(r'name="suggestion" value="(\w+)"', shown))
    assert method not in left and pixel not in left and len(left) == 1  # the channels, still to choose
    # the Zeiss file's WideField is no longer a suggestion (a method is declared) and not a conflict either: the
    # record declares single-spot confocal, which WideField contradicts
    assert 'class="conflict"' in shown and "OverViewScan.ome.xml" in shown
    mine = client.post("/my-deposits", data={"token": catalog["token"]}).get_data(as_text=True)
    assert f'href="{BASE}/deposit/{sub}/fill"' in mine  # an open submission: back to its page
    deposited = client.post(f"/deposit/{sub}/finalize", data={"token": catalog["token"]})
    assert deposited.status_code == 201 and 'id="accession"' in deposited.get_data(as_text=True)


def test_the_form_shows_conflicts_without_a_box_to_apply_them(catalog):
    client = catalog["client"]
    page = client.post(
        "/deposit",
        data={
            **form_fields(catalog, imaging_method="spinning disk confocal"),
            "step": "fill",
            "files": [(io.BytesIO(ome_tiff()), "c.ome.tif")],
        },
        content_type="multipart/form-data",
    )
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'class="conflict"' in html and "spinning disk confocal microscopy" in html
    assert "imaging method</strong>" not in html.split("<h2>Conflicts")[0]  # no box for it


def test_suggestions_are_visible_only_to_the_submissions_owner(catalog):
    client = catalog["client"]
    sub = submit(catalog, {"private/secret-name.ome.tif": ome_tiff()}, study(image_acquisitions=None))
    report = validate(catalog, sub)
    ids = [w["id"] for w in found(report, "suggestion")]
    assert ids
    other = auth(catalog["other"])
    assert client.post(f"/deposits/{sub}/validate", headers=other).status_code == 404
    assert client.post(f"/deposits/{sub}/suggestions", json={"ids": ids}, headers=other).status_code == 404
    assert client.post(f"/deposits/{sub}/suggestions", json={"ids": ids}).status_code == 401
    for token, status in ((catalog["other"], 404), ("wrong", 401)):
        for action in ("fill", "finalize"):
            page = client.post(f"/deposit/{sub}/{action}", data={"token": token, "apply": "1", "suggestion": ids})
            assert page.status_code == status and "secret-name" not in page.get_data(as_text=True)
    anyone = client.get(f"/deposit/{sub}/fill").get_data(as_text=True)
    assert "secret-name" not in anyone and 'name="suggestion"' not in anyone
    assert "image_acquisitions" not in metadata_of(catalog, sub)  # nothing was applied by the others


def test_bia_deposit_prints_what_the_files_say(run, tmp_path):
    token = run("token", "create", "jane").output.strip().splitlines()[-1]
    folder = tmp_path / "upload"
    (folder / "cells").mkdir(parents=True)
    (folder / "cells" / "c1.ome.tif").write_bytes(ome_tiff())
    metadata = tmp_path / "study.yaml"
    metadata.write_text(yaml.safe_dump(study(image_acquisitions=None)))
    result = run("deposit", str(metadata), "--files", str(folder), "--token", token)
    said = result.output  # stdout and stderr, interleaved
    assert "warning: field imaging_method: no imaging method is declared" in said, said
    assert "OME/Image/Pixels/Channel/@AcquisitionMode" in said and "cells/c1.ome.tif" in said
    assert result.output.strip().splitlines()[-1].startswith("S-BIAD")  # deposited all the same


def test_a_file_claiming_thousands_of_channels_gives_a_bounded_suggestion(catalog):
    pixels = tifffile.imread(IMAGES / "tiff" / "stardist_img2d.tif")[:8, :8]
    buffer = io.BytesIO()
    names = [f"ch{i}" for i in range(2000)]
    tifffile.imwrite(buffer, np.stack([pixels] * 2000), ome=True, metadata={"axes": "CYX", "Channel": {"Name": names}})
    report = validate(catalog, submit(catalog, {"many.ome.tif": buffer.getvalue()}, study(specimens=None)))
    (channels,) = found(report, "suggestion", "channels")
    assert len(channels["suggested"]) == 64 and channels["suggested"][-1]["channel_name"] == "ch63"


def test_a_bad_body_of_suggestions_is_a_400_in_the_error_shape(catalog):
    client, headers = catalog["client"], auth(catalog["token"])
    sub = client.post("/deposits", headers=headers).get_json()["id"]
    for body in (b"{not json", b'{"ids": 3}', b"{}"):
        answer = client.post(f"/deposits/{sub}/suggestions", data=body, content_type="application/json", headers=headers)
        assert answer.status_code == 400 and set(answer.get_json()) == {"code", "status", "message", "errors"}
        assert answer.get_json()["errors"], body


def test_header_jobs_of_closed_submissions_are_forgotten(state_db):
    from catalog.deposit_headers import forget_closed
    from catalog.jobs import JobQueue

    with state_db.transaction(write=True) as conn:
        for sub_id, status in (("s1", "open"), ("s2", "finalizing"), ("s3", "finalized"), ("s4", "discarded")):
            conn.execute(
                "INSERT INTO submissions (id, owner, status, created_at, updated_at) VALUES (?, 'jane', ?, 'now', 'now')",
                (sub_id, status),
            )
    queue = JobQueue(state_db)
    items = [(f"submission:s{n}", f"staging/s{n}/f1", None) for n in (1, 2, 3, 4, 5)] + [
        ("S-BIAD1", "studies/S-BIAD1/a.tif", None)
    ]
    queue.enqueue_many("image_headers", "v1", items)
    assert forget_closed(state_db) == 3  # finalized, discarded, and one whose submission is gone
    with state_db.transaction() as conn:
        left = sorted(row[0] for row in conn.execute("SELECT study FROM jobs"))
    assert left == ["S-BIAD1", "submission:s1", "submission:s2"]
    queue.close()
