"""Every image file a deposit holds has its headers read by the job queue, in the sandbox, once per reader version:
committing the study queues a job per file, a worker reads them, and committing the same files again reads nothing
twice."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

from catalog.jobs import JobQueue, Worker, handlers
from loaders.image_headers.job import KIND, readers_version, register_kind
from tests.catalog_helpers import DATA

IMAGES = Path(__file__).parent / "data" / "images"
FILES = {"nuclei/img2d.tif": IMAGES / "tiff" / "stardist_img2d.tif", "maps/EMD-3197.map": IMAGES / "mrc" / "EMD-3197.map"}


def deposit_images(services) -> str:
    registry = services.archive.registry
    owner = registry.owner_of_token(registry.create_token("jane"))
    sub = services.deposits.create(owner)
    for path, source in FILES.items():
        content = source.read_bytes()
        services.deposits.upload(sub, owner, path, io.BytesIO(content), size=len(content), md5=hashlib.md5(content).hexdigest())
    listing = "path\tKind\n" + "".join(f"{path}\timage\n" for path in FILES)
    services.deposits.attach_file_list(sub, owner, "files.tsv", io.BytesIO(listing.encode()))
    services.deposits.attach_metadata(sub, owner, "study.yaml", (DATA / "study.yaml").read_bytes())
    return services.deposits.finalize(sub, owner)


def test_a_deposit_s_images_get_their_headers_read_once(make_catalog):
    register_kind()
    services = make_catalog().services
    accession = deposit_images(services)
    queue = JobQueue.for_settings(services.archive.state, services.archive.settings)
    try:
        assert queue.counts()[KIND]["queued"] == len(FILES)
        worker = Worker(queue, handlers(services.archive.settings, [KIND]), versions={KIND: readers_version()})
        while worker.run_batch():
            pass
        done = {job.file_key.removeprefix(f"studies/{accession}/"): job.result for job in queue.results(accession, KIND)}
        assert set(done) == set(FILES) and queue.counts()[KIND].get("failed", 0) == 0
        tiff, mrc = done["nuclei/img2d.tif"], done["maps/EMD-3197.map"]
        assert tiff["status"] == "ok" and (tiff["series"][0]["size_x"], tiff["series"][0]["size_y"]) == (512, 512)
        assert tiff["series"][0]["pixel_type"] == "uint16"
        assert mrc["status"] == "ok" and mrc["series"][0]["size_z"] == 20
        assert queue.enqueue_many(KIND, readers_version(), ((accession, f"studies/{accession}/{p}", None) for p in FILES)) == 0
    finally:
        queue.close()
