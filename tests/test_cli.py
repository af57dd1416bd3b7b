"""The ``bia`` command line contract: tokens, deposits, validate, export, reindex, release, stats."""

from __future__ import annotations

import json
import time
import shutil

import pytest
import rdflib

from catalog.registry import Registry
from tests.catalog_helpers import BASE, DATA, file_bytes, listed_paths, make_settings

FUTURE = "2999-01-01"


@pytest.fixture
def files_dir(tmp_path):
    folder = tmp_path / "upload"
    for path in listed_paths():
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(file_bytes(path))
    return folder


@pytest.fixture
def token(run):
    return run("token", "create", "jane").output.strip().splitlines()[-1]


def test_token_create_prints_the_token_last(run, token):
    assert token.startswith("bia_")
    assert Registry(run.data / "registry.sqlite").owner_of_token(token) == "jane"


def test_deposit_prints_the_accession_last_and_stores_the_study(run, token, files_dir):
    result = run(
        "deposit", str(DATA / "study.yaml"), "--file-list", str(DATA / "files.tsv"), "--files", str(files_dir), "--token", token
    )
    assert result.output.strip().splitlines()[-1] == "S-BIAD1"
    second = run(
        "deposit", str(DATA / "study.yaml"), "--file-list", str(DATA / "files.tsv"), "--files", str(files_dir), "--token", token
    )
    assert second.output.strip().splitlines()[-1] == "S-BIAD2"

    exported = run("export", "--format", "nquads").output
    dataset = rdflib.Dataset()
    dataset.parse(data=exported, format="nquads")
    exported = {str(g.identifier) for g in dataset.graphs() if len(g)}
    assert {g for g in exported if "/studies/" in g} == {f"{BASE}/studies/S-BIAD1", f"{BASE}/studies/S-BIAD2"}
    assert exported - {f"{BASE}/studies/S-BIAD1", f"{BASE}/studies/S-BIAD2"} <= {
        f"{BASE}/graphs/links/asserted",
        f"{BASE}/graphs/links/inferred",
    }
    turtle = run("export", "--format", "turtle", "S-BIAD1").output
    assert len(rdflib.Graph().parse(data=turtle, format="turtle")) > 50

    stats = json.loads(run("stats").output)
    assert stats["studies"] == 2
    assert run("reindex").output.strip() == "public: 2 studies, private: 0 studies"


def test_release_date_option_embargoes_until_release(run, token, files_dir):
    result = run(
        "deposit",
        str(DATA / "study.yaml"),
        "--file-list",
        str(DATA / "files.tsv"),
        "--files",
        str(files_dir),
        "--release-date",
        FUTURE,
        "--token",
        token,
    )
    accession = result.output.strip().splitlines()[-1]
    assert "under embargo until 2999-01-01" in result.output
    assert run("export").output == ""
    failed = run("export", accession, ok=False)
    assert failed.exit_code == 2 and f"no released study {accession}" in failed.output
    assert json.loads(run("stats").output)["studies"] == 0
    assert run("release", "--today", FUTURE).output.strip() == f"released 1 study: {accession}"
    assert json.loads(run("stats").output)["studies"] == 1


def test_release_date_in_the_metadata_is_honoured(run, token, tmp_path, files_dir):
    metadata = tmp_path / "study.yaml"
    metadata.write_text((DATA / "study.yaml").read_text() + f"release_date: {FUTURE}\n")
    result = run("deposit", str(metadata), "--file-list", str(DATA / "files.tsv"), "--files", str(files_dir), "--token", token)
    assert "under embargo until 2999-01-01" in result.output


def test_invalid_deposit_exits_non_zero_and_stores_nothing(run, token, tmp_path, files_dir):
    shutil.rmtree(files_dir / "plate2")  # three listed files never uploaded
    bad = run(
        "deposit",
        str(DATA / "study.yaml"),
        "--file-list",
        str(DATA / "files.tsv"),
        "--files",
        str(files_dir),
        "--token",
        token,
        ok=False,
    )
    assert bad.exit_code == 2
    assert "files.tsv:5" in bad.output and "plate2/A01.tif" in bad.output and "not uploaded" in bad.output

    metadata = tmp_path / "study.yaml"
    metadata.write_text((DATA / "study.yaml").read_text().replace("CC-BY-4.0", "all rights reserved"))
    bad_licence = run("deposit", str(metadata), "--token", token, ok=False)
    assert bad_licence.exit_code == 2 and "license" in bad_licence.output and str(metadata) in bad_licence.output

    no_token = run("deposit", str(DATA / "study.yaml"), ok=False)
    assert no_token.exit_code == 2 and "token" in no_token.output.lower()

    registry = Registry(run.data / "registry.sqlite")
    assert registry.studies() == []
    assert not any((run.data / "files").rglob("*.tif")) if (run.data / "files").exists() else True
    good = run("deposit", str(DATA / "study.yaml"), "--token", token)
    assert good.output.strip().splitlines()[-1] == "S-BIAD1"  # nothing was minted by the failures


def test_validate_names_file_line_and_field(run, tmp_path):
    ok = run("validate", str(DATA / "study.yaml"), "--file-list", str(DATA / "files.tsv"))
    assert "valid" in ok.output
    metadata = tmp_path / "study.yaml"
    metadata.write_text((DATA / "study.yaml").read_text().replace("https://orcid.org/0000-0002-1825-0097", "0000-bad"))
    bad = run("validate", str(metadata), ok=False)
    assert bad.exit_code == 1
    assert f"{metadata}:8" in bad.output and "/authors/0/orcid" in bad.output
    assert not (run.data / "registry.sqlite").exists()


def test_serve_demo_answers_over_real_http(tmp_path):
    """`bia serve --demo` on a fresh folder: loads the bundled studies and serves them on a real port."""
    import time
    import urllib.request

    from tests.servers.demo_server import start_demo_server

    server, port = start_demo_server(tmp_path / "data")
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).read())
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(server.stdout.read() if server.poll() is not None else "no answer")
                time.sleep(0.3)
        assert health["studies"] >= 6
        request = urllib.request.Request(f"http://127.0.0.1:{port}/studies/S-BIAD1492", headers={"Accept": "application/ld+json"})
        record = json.loads(urllib.request.urlopen(request, timeout=10).read())
        assert record["@id"] == f"http://localhost:{port}/studies/S-BIAD1492"
        query = urllib.parse.urlencode({"query": "SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }"})
        answer = urllib.request.urlopen(
            urllib.request.Request(f"http://127.0.0.1:{port}/sparql?{query}", headers={"Accept": "text/csv"}), timeout=30
        )
        assert int(answer.read().decode().split()[1]) > 100
    finally:
        server.kill()
        server.wait(10)


def test_bia_worker_does_the_background_duties_and_api_nodes_can_leave_them(run, tmp_path):
    """`bia worker --once` runs a round of duties (here: a due release) while it holds the maintenance lease, and is
    refused while another process holds it; an app with BIA_BACKGROUND=off starts no duties of its own."""
    from api.app import create_app
    from api.services import open_services
    from catalog.maintenance import LEASE
    from tests.catalog_helpers import stage_sample

    settings = make_settings(tmp_path)
    with open_services(settings) as services:
        owner = services.archive.registry.owner_of_token(services.archive.registry.create_token("jane"))
        accession = services.deposits.finalize(stage_sample(services.deposits, owner, release_date="2999-01-01"), owner)
        with services.archive.registry._connect(immediate=True) as db:
            db.execute("UPDATE studies SET release_date = '2000-01-01' WHERE accession = ?", (accession,))
        app = create_app(settings.with_(background="off"), services=services)
        try:
            assert services.maintenance._thread is None  # this node leaves the duties to workers
        finally:
            app.extensions["bia.sparql"].close()
        with services.archive.registry._connect(immediate=True) as db:  # a live worker on another machine holds them
            db.execute("INSERT INTO leases VALUES (?, ?, ?)", (LEASE, "elsewhere:1:1:ab", time.time() + 60))
    refused = run("worker", "--once", ok=False)
    assert refused.exit_code != 0 and "maintenance lease" in refused.output
    with open_services(settings) as services, services.archive.registry._connect(immediate=True) as db:
        db.execute("UPDATE leases SET expires = 0")  # that worker died: its lease ran out
    done = run("worker", "--once")
    assert "released 1" in done.output
    assert json.loads(run("stats").output)["registry"] == {"released": 1}
