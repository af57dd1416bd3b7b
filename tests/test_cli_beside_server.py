"""The ``bia`` command line beside a running ``bia serve`` on the same catalog folder: read-only commands answer from
the published snapshots, a deposit is handed to the server over HTTP (``--server``), and commands that write are
refused at once with what to do instead (exit status 2, no stack trace)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest
from click.testing import CliRunner

from api.cli import cli
from tests.servers.seaweedfs_server import free_ports

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "tests" / "data" / "images"
DEPOSIT = ROOT / "tests" / "data" / "deposit"
HARVESTED = ROOT / "tests" / "data" / "harvest" / "biostudies" / "S-BIADTEST.json"
#: real image files of tests/data/images (see its SOURCES.txt), deposited under these paths
REAL_FILES = {
    "nuclei/stardist_img2d.tif": IMAGES / "tiff" / "stardist_img2d.tif",
    "cells/skimage_cell.png": IMAGES / "png" / "skimage_cell.png",
    "maps/EMD-3197.map": IMAGES / "mrc" / "EMD-3197.map",
}


class Server:
    """``bia serve`` in a process of its own on a catalog folder, on a free loopback port."""

    def __init__(self, data: Path, port: int) -> None:
        self.port = port
        self.data = data
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("BIA_")} | {"BIA_DATA": str(data)}
        self.log = data.with_name("serve.log")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", "--port", str(self.port)],
            env=self.env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while True:
            try:
                self.get("/health")
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError(f"bia serve did not answer:\n{self.log.read_text()[-3000:]}") from None
                time.sleep(0.3)

    def get(self, path: str, accept: str = "application/json") -> bytes:
        request = urllib.request.Request(self.url + path, headers={"Accept": accept})
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.read()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    """A catalog with one harvested study, served by ``bia serve`` for the whole module."""
    data = tmp_path_factory.mktemp("beside") / "data"
    (port,) = free_ports(1)
    seeded = bia(data, "--base-url", f"http://localhost:{port}", "harvest", "pagetab", str(HARVESTED))
    assert seeded.exit_code == 0, seeded.output
    running = Server(data, port)
    yield running
    running.stop()


def bia(data: Path, *args: str):
    """``bia --data DATA ARGS`` in this process (the server is another process: it holds the folder for real)."""
    env = {name: None for name in os.environ if name.startswith("BIA_")}
    return CliRunner(env=env).invoke(cli, ["--data", str(data), *args], obj={}, catch_exceptions=False)


def test_read_only_commands_answer_beside_the_server(server):
    health = json.loads(server.get("/health"))
    stats = bia(server.data, "stats")
    assert stats.exit_code == 0, stats.output
    assert json.loads(stats.output)["studies"] == health["studies"] >= 1

    study = f"http://localhost:{server.port}/studies/S-BIADTEST"  # the server minted the IRIs under its own URL
    everything = bia(server.data, "export")
    assert everything.exit_code == 0 and f"<{study}>" in everything.output
    one = bia(server.data, "export", "S-BIADTEST", "--format", "turtle")
    assert one.exit_code == 0 and f"<{study}>" in one.output

    found = bia(server.data, "search", "--json", "test", "submission")
    assert found.exit_code == 0, found.output
    assert [hit["accession"] for hit in json.loads(found.output)["hits"]] == ["S-BIADTEST"]
    assert "S-BIADTEST" in bia(server.data, "search").output

    for args in (("jobs",), ("validate", str(DEPOSIT / "study.yaml")), ("headers", str(IMAGES / "png"))):
        done = bia(server.data, *args)
        assert done.exit_code == 0, (args, done.output)


def test_deposit_over_http_lands_and_is_served(server, tmp_path):
    """A token made by the CLI beside the server, then ``bia deposit --server`` of a study with real image files:
    the server stores and serves it (record, file table, downloads byte for byte), and the CLI reads it back."""
    created = bia(server.data, "token", "create", "jane")
    assert created.exit_code == 0, created.output
    token = created.output.strip().splitlines()[-1]
    files = tmp_path / "upload"
    for path, source in REAL_FILES.items():
        (files / path).parent.mkdir(parents=True, exist_ok=True)
        (files / path).write_bytes(source.read_bytes())
    listing = tmp_path / "files.tsv"
    listing.write_text(
        "path\tcontent\n"
        "nuclei/stardist_img2d.tif\tfluorescent nuclei\n"
        "cells/skimage_cell.png\tcell\n"
        "maps/EMD-3197.map\tEM density map\n"
    )
    before = json.loads(server.get("/health"))["studies"]

    deposited = bia(
        server.data,
        "deposit",
        "--server",
        server.url,
        "--token",
        token,
        str(DEPOSIT / "study.yaml"),
        "--file-list",
        str(listing),
        "--files",
        str(files),
    )
    assert deposited.exit_code == 0, deposited.output
    accession = deposited.output.strip().splitlines()[-1]
    assert accession.startswith("S-BIAD") and "deposited 3 file(s)" in deposited.output and "released" in deposited.output

    record = json.loads(server.get(f"/studies/{accession}", accept="application/ld+json"))
    assert record["@id"] == f"http://localhost:{server.port}/studies/{accession}"
    table = json.loads(server.get(f"/studies/{accession}/files"))
    assert sorted(row["path"] for row in table["items"]) == sorted(REAL_FILES)
    for row in table["items"]:
        downloaded = server.get(row["download"].replace(f"http://localhost:{server.port}", ""), accept="*/*")
        assert hashlib.sha256(downloaded).digest() == hashlib.sha256(REAL_FILES[row["path"]].read_bytes()).digest()
    assert json.loads(server.get("/health"))["studies"] == before + 1

    assert f"/studies/{accession}>" in bia(server.data, "export", accession).output  # the CLI reads the new snapshot
    assert json.loads(bia(server.data, "stats").output)["studies"] == before + 1


def test_a_refused_deposit_over_http_keeps_nothing(server):
    token = bia(server.data, "token", "create", "joe").output.strip().splitlines()[-1]
    refused = bia(
        server.data,
        "deposit",
        "--server",
        server.url,
        "--token",
        token,
        str(DEPOSIT / "study.yaml"),
        "--file-list",
        str(DEPOSIT / "files.tsv"),
    )
    assert refused.exit_code == 2
    assert "files.tsv:2: error: field path: listed in a file list but not uploaded (value: plate1/A01.tif)" in refused.output
    request = urllib.request.Request(server.url + "/deposits", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert [sub["status"] for sub in json.loads(answer.read())["items"]] == ["discarded"]

    no_token = bia(server.data, "deposit", "--server", server.url, str(DEPOSIT / "study.yaml"))
    assert no_token.exit_code == 2 and "--token" in no_token.output
    wrong = bia(server.data, "deposit", "--server", server.url, "--token", "bia_nonsense", str(DEPOSIT / "study.yaml"))
    assert wrong.exit_code == 2 and "token" in wrong.output
    (port,) = free_ports(1)
    nobody = bia(server.data, "deposit", "--server", f"http://127.0.0.1:{port}", "--token", token, str(DEPOSIT / "study.yaml"))
    assert nobody.exit_code == 2 and f"cannot reach the catalog server at http://127.0.0.1:{port}" in nobody.output


def test_tab_indented_pagetab_json_is_deposited_over_http(server, tmp_path):
    token = bia(server.data, "token", "create", "ann").output.strip().splitlines()[-1]
    tabbed = tmp_path / "S-BIADTEST.json"
    tabbed.write_text(json.dumps(json.loads(HARVESTED.read_text()), indent="\t"))
    assert "\n\t" in tabbed.read_text()
    done = bia(server.data, "deposit", "--server", server.url, "--token", token, str(tabbed))
    assert done.exit_code == 0, done.output
    accession = done.output.strip().splitlines()[-1]
    assert json.loads(server.get(f"/studies/{accession}", accept="application/ld+json"))["@id"].endswith(accession)


@pytest.mark.parametrize(
    "args, advice",
    [
        (
            ("deposit", str(DEPOSIT / "study.yaml"), "--file-list", str(DEPOSIT / "files.tsv"), "--token", "x"),
            "hand the deposit to the server over HTTP: bia deposit --server {url} --token TOKEN "
            f"{DEPOSIT / 'study.yaml'} --file-list {DEPOSIT / 'files.tsv'}",
        ),
        (("harvest", "pagetab", str(HARVESTED)), "stop the server, run `bia harvest pagetab …` again"),
        (("link",), "the server does this by itself"),
        (("release",), "the server does this by itself"),
        (("reindex",), "stop the server, run `bia reindex` again"),
        (("recover",), "the server does this by itself"),
        (("cleanup",), "the server does this by itself"),
    ],
    ids=["deposit", "harvest", "link", "release", "reindex", "recover", "cleanup"],
)
def test_commands_that_write_say_what_to_do_instead(server, args, advice):
    studies = json.loads(server.get("/health"))["studies"]
    refused = bia(server.data, *args)
    assert refused.exit_code == 2, refused.output
    assert f"-m api.cli serve --port {server.port}) holds the catalog in {server.data} for writing" in refused.output
    assert advice.format(url=f"http://localhost:{server.port}") in refused.output
    assert json.loads(server.get("/health"))["studies"] == studies


def test_the_console_script_refuses_without_a_stack_trace(server):
    done = subprocess.run(
        [str(Path(sys.executable).parent / "bia"), "reindex"],
        env=server.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"error: process {server.process.pid} (") and "-m api.cli serve --port" in done.stderr
    assert json.loads(server.get("/health"))["status"] == "ok"


def _readme_deposit_blocks() -> dict[str, str]:
    """The fenced blocks of README.md's "Deposit a study" section, by language (the first of each)."""
    import re

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Deposit a study\n", 1)[1].split("\n## ", 1)[0]
    blocks: dict[str, str] = {}
    for language, body in re.findall(r"```(\w+)\n(.*?)```", section, re.S):
        blocks.setdefault(language, body)
    return blocks


def test_the_readme_deposit_walkthrough_works_as_written(server, tmp_path):
    """README.md's example records validate, and its curl walkthrough, run as written against a running server
    (only its URL changed), deposits the study and gets the file's bytes back."""
    blocks = _readme_deposit_blocks()
    (tmp_path / "study.yaml").write_text(blocks["yaml"])
    (tmp_path / "files.csv").write_text(blocks["csv"])
    (tmp_path / "study.pagetab.json").write_text(blocks["json"])
    (tmp_path / "tests").symlink_to(ROOT / "tests")  # run "from the repository's folder"
    checked = bia(
        server.data,
        "validate",
        *(str(tmp_path / n) for n in ("study.yaml", "study.pagetab.json")),
        "--file-list",
        str(tmp_path / "files.csv"),
    )
    assert checked.exit_code == 0 and checked.output.count(": valid (") == 3, checked.output

    script = blocks["bash"].replace("http://localhost:5000", server.url)
    env = server.env | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-e", "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("sub-") and '"valid": true' in done.stdout and lines[-2:] == ["200, 524544 bytes", "same bytes"]
    accession = next(line for line in lines if line.startswith("S-BIAD"))
    assert "nuclei/img3d.tif,138925,tif," in done.stdout and f"/files/{accession}/" in done.stdout
