"""Shared helpers for catalog tests: settings on temp folders, a deposit built from tests/data/deposit."""

from __future__ import annotations

import hashlib
import http.client
import io
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from catalog.config import Settings

DATA = Path(__file__).parent / "data" / "deposit"
BASE = "https://archive.example.org"


def file_bytes(path: str) -> bytes:
    """Deterministic content for a file of the sample screen."""
    return (hashlib.sha256(path.encode()).hexdigest() * 40).encode()


def listed_paths() -> list[str]:
    lines = (DATA / "files.tsv").read_text().splitlines()[1:]
    return [line.split("\t", 1)[0] for line in lines]


def make_settings(tmp_path: Path, **overrides) -> Settings:
    return Settings.from_env({}, **{"data_dir": tmp_path / "data", "base_url": BASE, **overrides})


def stage_sample(deposits, owner: str, *, release_date: str | None = None, skip: tuple[str, ...] = ()) -> str:
    """A submission with the sample metadata, file list and files (minus ``skip``); returns its id."""
    sub = deposits.create(owner)
    for path in listed_paths():
        if path in skip:
            continue
        content = file_bytes(path)
        deposits.upload(sub, owner, path, io.BytesIO(content), size=len(content), md5=hashlib.md5(content).hexdigest())
    with (DATA / "files.tsv").open("rb") as stream:
        deposits.attach_file_list(sub, owner, "files.tsv", stream)
    deposits.attach_metadata(sub, owner, "study.yaml", (DATA / "study.yaml").read_bytes(), release_date=release_date)
    return sub


def deposit_files(services, files: dict[str, bytes], release_date: str | None = None) -> tuple[str, str]:
    """Deposit ``files`` (path → bytes) with the sample study record and a file list naming them; returns the
    accession and the depositor's token."""
    registry = services.archive.registry
    token = registry.create_token("jane")
    owner = registry.owner_of_token(token)
    sub = services.deposits.create(owner)
    for path, content in files.items():
        services.deposits.upload(sub, owner, path, io.BytesIO(content), size=len(content), md5=hashlib.md5(content).hexdigest())
    listing = "path\tKind\n" + "".join(f"{path}\tdata\n" for path in files)
    services.deposits.attach_file_list(sub, owner, "files.tsv", io.BytesIO(listing.encode()))
    services.deposits.attach_metadata(sub, owner, "study.yaml", (DATA / "study.yaml").read_bytes(), release_date=release_date)
    return services.deposits.finalize(sub, owner), token


def run_image_jobs(services, *kinds: str) -> None:
    """Do every queued job of ``kinds`` (image_headers, previews, ome_zarr) at their current versions, then apply
    the headers to the study (the image index), as a server's background duties do."""
    from catalog.image_facts import ImageFacts
    from catalog.jobs import JobQueue, Worker, handlers
    from catalog.jobs import kinds as registered
    from loaders.image_headers import job as header_job
    from loaders.ngff import job as ome_zarr_job
    from loaders.previews import job as preview_job

    for module in (header_job, preview_job, ome_zarr_job):
        module.register_kind()
    versions = {kind: registered()[kind].version for kind in kinds}
    queue = JobQueue.for_settings(services.archive.state, services.archive.settings)
    try:
        worker = Worker(queue, handlers(services.archive.settings, list(versions)), versions=versions)
        while worker.run_batch():
            pass
    finally:
        queue.close()
    ImageFacts(services.archive).follow()


@contextmanager
def serving(app, port: int) -> Iterator[str]:
    """``app`` served over real HTTP on 127.0.0.1:``port`` (a werkzeug server in a thread) while the block runs; its
    base URL."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()


def raw_request(base: str, path: str, headers: dict[str, str] | None = None, method: str = "GET") -> tuple[int, dict, bytes]:
    """A request to the server at ``base`` whose path is sent exactly as given (no client normalisation): status,
    headers, body."""
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        connection.endheaders()
        answer = connection.getresponse()
        return answer.status, dict(answer.getheaders()), answer.read()
    finally:
        connection.close()
