"""Who does in-flight work, and what happens when it fails: leases, compare-and-set, outages, finalize failures,
dates, the catalog's remembered identity, abandoned submissions.

The multi-process tests run on two real `oxigraph serve` (the production recipe), where several processes may
open one catalog at once; each child process is ``tests/lifecycle_child.py`` or the ``bia`` command.
"""

from __future__ import annotations

import io
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from rdflib import Graph, Literal, URIRef
from rdflib.namespace import DCTERMS

from api.cli import cli
from api.services import open_services
from catalog.dates import InvalidDate
from catalog.errors import ValidationFailed
from catalog.graph_store import GraphStoreError, GraphStoreUnavailable
from catalog.archive import Archive
from catalog.registry import LeaseLost, Registry
from catalog.study_files import StudyFile
from catalog.remembered import CatalogMismatch
from tests.catalog_helpers import BASE, DATA, listed_paths, make_settings, stage_sample
from tests.servers.oxigraph_server import restart_oxigraph, stop_oxigraph

ROOT = Path(__file__).resolve().parent.parent
BIA = str(Path(sys.executable).parent / "bia")


@pytest.fixture
def remote(tmp_path, oxigraph_pair):
    """A catalog on two oxigraph servers; ``env`` runs children on it."""
    public, private = oxigraph_pair
    settings = make_settings(tmp_path, sparql_url=private.url, public_sparql_url=public.url)
    env = {
        **os.environ,
        "BIA_DATA": str(settings.data_dir),
        "BIA_BASE_URL": BASE,
        "BIA_SPARQL_URL": private.url,
        "BIA_PUBLIC_SPARQL_URL": public.url,
        "PYTHONPATH": str(ROOT),
    }
    opened = {"settings": settings, "env": env, "servers": [public, private]}
    yield opened
    for server in opened["servers"]:  # servers a test restarted (an outage that ended) are not the fixture's
        stop_oxigraph(server)


def _child(env, *args, stdin=None):
    return subprocess.Popen(
        [sys.executable, "-m", "tests.lifecycle_child", *args],
        cwd=ROOT,
        env=env,
        text=True,
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _row(settings, accession):
    return Registry(settings.data_dir / "registry.sqlite").study(accession)


def _held_finalize(remote):
    with open_services(remote["settings"]) as services:
        sub = stage_sample(services.deposits, "jane")
    child = _child(remote["env"], "hold", sub, "jane", stdin=subprocess.PIPE)
    line = child.stdout.readline().split()
    assert line[:1] == ["held"], child.stderr.read()
    return child, sub, line[1]


def _check_released(settings, accession, sub):
    with open_services(settings, recover=False) as services:
        row = services.archive.registry.study(accession)
        assert row.state == "released" and row.attempts == 0 and row.lease_owner is None
        assert services.deposits.get(sub, "jane")["status"] == "finalized"
        assert services.archive.public.graph.has_graph(f"{BASE}/studies/{accession}")
        assert len(list(services.archive.file_store.list(f"studies/{accession}/"))) == len(listed_paths())


def test_commands_and_restarted_workers_beside_a_live_finalize_leave_it_alone(remote):
    child, sub, accession = _held_finalize(remote)
    try:
        before = _row(remote["settings"], accession)
        assert before.state == "finalizing" and before.lease_owner
        stats = subprocess.run([BIA, "stats"], env=remote["env"], capture_output=True, text=True, timeout=120)
        assert stats.returncode == 0, stats.stderr
        recover = subprocess.run([BIA, "recover"], env=remote["env"], capture_output=True, text=True, timeout=120)
        assert recover.returncode == 0 and "recovered 0" in recover.stdout and accession in recover.stdout, recover.stdout
        workers = [_child(remote["env"], "reopen") for _ in range(4)]  # a reload of four workers
        for worker in workers:
            out, err = worker.communicate(timeout=120)
            assert worker.returncode == 0, err
            assert f"row {accession} finalizing 0" in out
        after = _row(remote["settings"], accession)
        assert (after.state, after.attempts, after.lease_owner) == ("finalizing", 0, before.lease_owner)
    finally:
        out, err = child.communicate("go\n", timeout=180)
    assert child.returncode == 0 and "done" in out, err
    _check_released(remote["settings"], accession, sub)


def test_a_finalize_whose_process_died_is_taken_over_at_once(remote):
    child, sub, accession = _held_finalize(remote)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    recover = subprocess.run([BIA, "recover"], env=remote["env"], capture_output=True, text=True, timeout=180)
    assert recover.returncode == 0 and f"recovered 1: {accession}" in recover.stdout, recover.stdout + recover.stderr
    _check_released(remote["settings"], accession, sub)


def test_an_outage_during_a_reload_of_four_workers_never_fails_a_deposit(remote):
    child, sub, accession = _held_finalize(remote)
    child.send_signal(signal.SIGKILL)  # the finalize is cut off...
    child.wait(timeout=30)
    public, private = remote["servers"]
    stop_oxigraph(public)  # ... and both graph servers are down while the workers restart
    stop_oxigraph(private)
    workers = [_child(remote["env"], "reopen") for _ in range(4)]
    for worker in workers:
        out, err = worker.communicate(timeout=180)
        assert worker.returncode == 0, err
    row = _row(remote["settings"], accession)
    assert row.state == "finalizing" and row.attempts == 0, row  # waiting, every attempt given back
    with open_services(remote["settings"], recover=False) as services:
        assert services.deposits.get(sub, "jane")["status"] == "finalizing"
    restarted = [restart_oxigraph(public), restart_oxigraph(private)]  # the outage ends
    try:
        reopened = _child(remote["env"], "reopen")
        out, err = reopened.communicate(timeout=180)
        assert reopened.returncode == 0 and f"row {accession} released 0" in out, err
        _check_released(remote["settings"], accession, sub)
    finally:
        for server in restarted:
            stop_oxigraph(server)


def test_a_commit_whose_work_was_taken_over_never_lands(tmp_path, oxigraph_pair):
    """A harvest's process stalls past its lease (paused, or another host's clock runs ahead): another process
    takes the work over and recovers the study. When the stalled one wakes up it must not commit over that: the
    study stays whole at the version recovery settled, its graph, file table and search entry agreeing."""
    public, private = oxigraph_pair
    settings = make_settings(tmp_path, sparql_url=private.url, public_sparql_url=public.url, lease_seconds=0.5)
    accession, study = "EMPIAR-1", f"{BASE}/studies/EMPIAR-1"

    def metadata(title):
        graph = Graph()
        graph.add((URIRef(study), DCTERMS.title, Literal(title)))
        return graph

    stalled, other = Archive(settings), Archive(settings)
    try:
        stalled.commit_study(
            accession,
            metadata("old"),
            lambda: [StudyFile(f"old{i}.tif", 1) for i in range(3)],
            release_date="2020-01-01",
            source="empiar",
            title="old",
        )
        wake = threading.Event()

        def slow_files():
            for i in range(5):
                if i == 2:
                    wake.wait(60)
                yield StudyFile(f"new{i}.tif", 2)

        outcome: dict = {}

        def commit():
            try:
                stalled.commit_study(accession, metadata("new"), slow_files, release_date="2020-01-01", source="empiar")
            except Exception as exc:  # noqa: BLE001 - looked at below
                outcome["error"] = exc

        stalled.registry._heartbeat.stop()  # its lease is no longer renewed
        worker = threading.Thread(target=commit)
        worker.start()
        time.sleep(1.5)
        assert other.recover() == [accession]
        wake.set()
        worker.join(120)
        assert isinstance(outcome.get("error"), LeaseLost)
        titles = other.public.graph.select(f"SELECT ?t WHERE {{ GRAPH <{study}> {{ <{study}> <{DCTERMS.title}> ?t }} }}")
        assert [t["t"]["value"] for t in titles] == ["old"]
        assert other.public.files.totals(accession)["files"] == 3
        assert [h.title for h in other.public.search.search(f'accession:"{accession}"').hits] == ["old"]
        assert other.registry.study(accession).state == "released"
    finally:
        stalled.close()
        other.close()


def test_a_move_that_lands_after_its_client_died_leaves_the_study_whole(remote):
    """A harvest's process dies as it sends the update that moves its new graph into place; the server carries that
    update out later (a MOVE of 300,000 triples landed 15 s after its client was killed). Recovery, running in
    between, must not settle the study from the graph it reads then: graph, file table, search entry and registry
    all end at the new version, and the late update changes nothing."""
    settings, accession = remote["settings"], "EMPIAR-1"
    study = f"{BASE}/studies/{accession}"
    with open_services(settings) as services:
        old = Graph()
        old.add((URIRef(study), DCTERMS.title, Literal("old")))
        services.archive.commit_study(
            accession,
            old,
            lambda: [StudyFile(f"f{i}.tif", i) for i in range(3)],
            release_date="2020-01-01",
            source="empiar",
            title="old",
        )
    save = settings.data_dir / "late-move.txt"
    child = _child(remote["env"], "cut-move", accession, "new", "5", str(save))
    _out, err = child.communicate(timeout=180)
    assert child.returncode == 9 and save.exists(), err
    with open_services(settings) as services:  # recovery, before the late update
        assert services.archive.registry.study(accession).state == "released"
    url, statement = save.read_text().split("\n", 1)
    requests.post(url, data=statement.encode(), headers={"Content-Type": "application/sparql-update"}, timeout=60)
    with open_services(settings, recover=False) as services:
        archive = services.archive
        titles = archive.public.graph.select(f"SELECT ?t WHERE {{ GRAPH <{study}> {{ <{study}> <{DCTERMS.title}> ?t }} }}")
        assert [t["t"]["value"] for t in titles] == ["new"]
        assert archive.public.files.totals(accession)["files"] == 5
        assert [h.title for h in archive.public.search.search(f'accession:"{accession}"').hits] == ["new"]
        row = archive.registry.study(accession)
        assert (row.state, row.title, row.file_count) == ("released", "new", 5)


def test_a_move_whose_answer_was_lost_is_finished_by_recovery(remote, monkeypatch):
    """The MOVE reaches the server and lands, but its answer is lost (a connection reset): the harvest is past its
    commit point, so it stays in flight (never put back to the old row) and recovery finishes the new version."""
    accession = "EMPIAR-2"
    study = f"{BASE}/studies/{accession}"

    def metadata(title):
        graph = Graph()
        graph.add((URIRef(study), DCTERMS.title, Literal(title)))
        return graph

    with open_services(remote["settings"]) as services:
        archive = services.archive
        archive.commit_study(
            accession,
            metadata("old"),
            lambda: [StudyFile(f"f{i}.tif", i) for i in range(3)],
            release_date="2020-01-01",
            source="empiar",
            title="old",
        )
        store = archive.public.graph.inner  # the remote store, under the recorder of its change feed
        sent = type(store).update

        def answer_lost(statement):
            sent(store, statement)
            if statement.startswith("MOVE"):
                raise GraphStoreUnavailable("the connection was reset")

        monkeypatch.setattr(store, "update", answer_lost)
        with pytest.raises(GraphStoreUnavailable):
            archive.commit_study(
                accession,
                metadata("new"),
                lambda: [StudyFile(f"f{i}.tif", i) for i in range(5)],
                release_date="2020-01-01",
                source="empiar",
                title="new",
            )
        monkeypatch.undo()
        assert archive.registry.study(accession).state == "finalizing"
        assert archive.recover() == [accession]
        row = archive.registry.study(accession)
        assert (row.state, row.title, row.file_count) == ("released", "new", 5)
        assert archive.public.files.totals(accession)["files"] == 5
        assert [h.title for h in archive.public.search.search(f'accession:"{accession}"').hits] == ["new"]


def test_two_recoveries_never_work_on_one_study(remote, monkeypatch):
    """Two processes recover at once (a CLI command opening the catalog beside the server). The first must not claim
    every waiting study before working on the first: those claims would run out unrenewed meanwhile, the second
    process take them over, and both work on one study."""
    settings = make_settings(
        remote["settings"].data_dir.parent,
        sparql_url=remote["settings"].sparql_url,
        public_sparql_url=remote["settings"].public_sparql_url,
        lease_seconds=0.5,
    )
    dead = Registry(settings.data_dir / "registry.sqlite", lease_seconds=0.5)
    for accession in ("EMPIAR-1", "EMPIAR-2"):
        dead.begin_put(accession, None, "2020-01-01", "empiar", "cut off")  # harvests whose process died
    dead.close()
    first, second = Archive(settings), Archive(settings)
    worked: list[str] = []
    slow = first._recover_one

    def slowly(row, finish_deposit):
        worked.append(row.accession)
        if len(worked) == 1:
            time.sleep(1.5)  # three leases long
            worked.extend(second.recover())
        return slow(row, finish_deposit)

    monkeypatch.setattr(first, "_recover_one", slowly)
    try:
        first.recover()
        assert sorted(worked) == ["EMPIAR-1", "EMPIAR-2"], worked  # each once, by one of them
        assert first.registry.studies() == []
    finally:
        first.close()
        second.close()


def test_concurrent_releases_release_each_study_once(remote):
    with open_services(remote["settings"]) as services:
        accessions = []
        for _ in range(4):
            sub = stage_sample(services.deposits, "jane", release_date="2999-01-01")
            accessions.append(services.deposits.finalize(sub, "jane"))
        assert all(services.archive.registry.study(a).state == "embargoed" for a in accessions)
    releasers = [_child(remote["env"], "release", "3000-01-01") for _ in range(3)]
    released: list[str] = []
    for releaser in releasers:
        out, err = releaser.communicate(timeout=300)
        assert releaser.returncode == 0, err
        released.extend(out.split()[1:])
    assert sorted(released) == sorted(accessions)  # each exactly once, by one of them
    with open_services(remote["settings"], recover=False) as services:
        for accession in accessions:
            row = services.archive.registry.study(accession)
            assert row.state == "released" and row.attempts == 0
            assert services.archive.public.graph.has_graph(f"{BASE}/studies/{accession}")
            assert not services.archive.private.graph.has_graph(f"{BASE}/studies/{accession}")


def test_one_process_holds_the_maintenance_lease(tmp_path):
    first = Registry(tmp_path / "registry.sqlite", lease_seconds=60)
    second = Registry(tmp_path / "registry.sqlite", lease_seconds=60)
    assert first.try_lease("maintenance") and first.try_lease("maintenance")
    assert not second.try_lease("maintenance")
    first.close()  # its process would have died: the lease is free at once, not after 60 s
    assert second.try_lease("maintenance")
    second.close()


# ----------------------------------------------------------------------------- finalize failures


@pytest.fixture
def services(make_catalog, tmp_path):
    return make_catalog(folder=tmp_path).services


def test_a_finalize_failing_for_good_reopens_the_submission_with_its_files(services, monkeypatch):
    sub = stage_sample(services.deposits, "jane")
    graph = services.archive.public.graph

    def broken(*args, **kwargs):
        raise GraphStoreError("the store refused the data")

    monkeypatch.setattr(graph, "replace_graph_from", broken)
    with pytest.raises(GraphStoreError):
        services.deposits.finalize(sub, "jane")
    submission = services.deposits.get(sub, "jane")
    assert submission["status"] == "open" and submission["accession"] is None
    assert "finalize failed and was undone" in submission["report"]["errors"][0]["message"]
    assert submission["staged_files"] == len(listed_paths())
    assert list(services.archive.file_store.list("studies/S-BIAD1/")) == []  # moved bytes were put back
    assert services.archive.registry.study("S-BIAD1").state == "failed"  # the accession is burned, never shown
    monkeypatch.undo()
    assert services.deposits.finalize(sub, "jane") == "S-BIAD2"  # fixed: finalized again
    assert services.archive.registry.study("S-BIAD2").state == "released"
    assert len(list(services.archive.file_store.list("studies/S-BIAD2/"))) == len(listed_paths())


def test_a_finalize_cut_off_by_an_outage_is_resumed_by_its_owner(services, monkeypatch):
    sub = stage_sample(services.deposits, "jane")
    graph = services.archive.public.graph

    def down(*args, **kwargs):
        raise GraphStoreUnavailable("the graph store is not answering")

    monkeypatch.setattr(graph, "replace_graph_from", down)
    with pytest.raises(GraphStoreUnavailable):
        services.deposits.finalize(sub, "jane")
    row = services.archive.registry.study("S-BIAD1")
    assert row.state == "finalizing" and row.attempts == 0 and row.lease_owner is None
    assert services.deposits.get(sub, "jane")["status"] == "finalizing"
    monkeypatch.undo()
    assert services.deposits.finalize(sub, "jane") == "S-BIAD1"  # the retry finishes it, same accession
    assert services.archive.registry.study("S-BIAD1").state == "released"
    assert services.deposits.get(sub, "jane")["status"] == "finalized"


def test_a_finalize_given_up_after_its_commit_point_leaves_nothing_shown(services, monkeypatch):
    """The graph took the commit but what follows keeps failing: recovery gives up after its attempts, the
    submission opens again with its files, and nothing of the burned accession stays in the public view."""
    sub = stage_sample(services.deposits, "jane")
    archive = services.archive

    def broken(document):
        raise RuntimeError("the search index is broken")

    monkeypatch.setattr(archive.public.search, "upsert", broken)
    with pytest.raises(RuntimeError):
        services.deposits.finalize(sub, "jane")
    study = f"{BASE}/studies/S-BIAD1"
    assert archive.public.graph.has_graph(study)  # past its commit point
    for _ in range(4):
        archive.recover(services.deposits.finish_interrupted, services.deposits.give_up)
    assert archive.registry.study("S-BIAD1").state == "failed"
    assert services.deposits.get(sub, "jane")["status"] == "open"
    assert not archive.public.graph.has_graph(study) and not archive.private.graph.has_graph(study)
    assert archive.public.files.commit_of("S-BIAD1") is None
    assert study not in archive.public.records.iris()
    monkeypatch.undo()
    assert services.deposits.finalize(sub, "jane") == "S-BIAD2"
    assert archive.public.graph.graphs() == [f"{BASE}/studies/S-BIAD2"]
    assert len(list(archive.file_store.list("studies/S-BIAD2/"))) == len(listed_paths())


# ----------------------------------------------------------------------------- paths the store cannot keep


@pytest.mark.parametrize(
    "path, problem",
    [
        ("a\tb.tif", "control character"),
        ("line\nbreak.tif", "control character"),
        ("x" * 256 + ".tif", "longer than 255 bytes"),
        ("evil\u202egnp.exe", "bidirectional"),
        ("../up.tif", "'..'"),
        ("plate1\uff0fA01.tif", "drawn like a folder separator"),  # fullwidth solidus: a file that lists as a folder
        ("plate1\u2215A01.tif", "drawn like a folder separator"),  # division slash
        ("data/.../x.tif", "only of dots or spaces"),
        ("data/ /x.tif", "only of dots or spaces"),
    ],
)
def test_uploads_refuse_paths_the_file_store_cannot_keep(services, path, problem):
    sub = services.deposits.create("jane")
    with pytest.raises(ValidationFailed, match=problem):
        services.deposits.upload(sub, "jane", path, io.BytesIO(b"x"))


@pytest.mark.parametrize(
    "first, second, problem",
    [
        ("plate1/A01.tif", "plate1/a01.TIF", "same file"),
        ("caf\u00e9.tif", "cafe\u0301.tif", "same file"),  # NFC and NFD
        ("data/raw", "data/raw/1.tif", "needs a folder"),
        ("data/raw/1.tif", "data/raw", "folder is needed"),
        ("\u03aa\u0301.tif", "\u0390.tif", "same file"),  # upper and lower case of one letter: NFC again after folding
        ("plate.tif", "pla\u200dte.tif", "same file"),  # a zero-width joiner: looks the same (HFS+ ignores it)
        ("plate.tif", "plate\u00ad.tif", "same file"),  # a soft hyphen
        ("scan.tif", "scan.tif.", "same file"),  # Windows drops trailing dots...
        ("scan.tif", "Scan.tif ", "same file"),  # ... and spaces
        ("run 1./a.tif", "run 1", "folder is needed"),
    ],
)
def test_uploads_refuse_names_that_clash_on_common_file_systems(services, first, second, problem):
    sub = services.deposits.create("jane")
    services.deposits.upload(sub, "jane", first, io.BytesIO(b"x"))
    with pytest.raises(ValidationFailed, match=problem):
        services.deposits.upload(sub, "jane", second, io.BytesIO(b"y"))
    services.deposits.upload(sub, "jane", first, io.BytesIO(b"z"))  # a re-upload of the same path is fine


@pytest.mark.parametrize("path", ["CON.tif", "aux/readout.tif", "12:30:00.tif", "\uff21\uff22.tif", "\u0627\u200c\u0628.tif"])
def test_uploads_keep_names_only_windows_refuses_or_that_only_look_alike(services, path):
    """Reserved device names and characters of Windows, fullwidth letters and a ZWNJ inside a Persian name are
    kept: real data sets hold them, and no two of them clash."""
    sub = services.deposits.create("jane")
    assert services.deposits.upload(sub, "jane", path, io.BytesIO(b"x"))["path"] == path


def test_clash_keys_stored_by_an_older_rule_are_computed_again(tmp_path):
    """A registry whose staged files carry clash keys of an earlier rule gets them recomputed at open, so an upload
    clashing under the current rule is still refused."""
    with open_services(make_settings(tmp_path)) as services:
        sub = services.deposits.create("jane")
        services.deposits.upload(sub, "jane", "pla\u200dte.tif", io.BytesIO(b"x"))
    db = sqlite3.connect(tmp_path / "data" / "registry.sqlite")
    db.execute("UPDATE staged_files SET fold_key = 'pla\u200dte.tif'")  # as the first rule kept it
    db.execute("PRAGMA user_version = 0")  # the rule's version, as registries from before the meta table kept it
    db.execute("DELETE FROM meta WHERE name = 'clash_key_version'")
    db.commit()
    db.close()
    with open_services(make_settings(tmp_path)) as services:
        with pytest.raises(ValidationFailed, match="same file"):
            services.deposits.upload(sub, "jane", "plate.tif", io.BytesIO(b"y"))


def test_validation_names_listed_paths_that_cannot_be_kept_or_clash(services):
    sub = stage_sample(services.deposits, "jane")
    listing = (
        (DATA / "files.tsv").read_text()
        + "plate1/A01.TIF\t1\tA01\t0\tDMSO\n"
        + "bad\u202egnp.exe\t1\tA01\t0\tDMSO\n"
        + "plate1\uff0fA02.tif\t1\tA02\t0\tDMSO\n"
        + "plate1/A0\u200b1.tif\t1\tA01\t0\tDMSO\n"
    )
    services.deposits.attach_file_list(sub, "jane", "files.tsv", io.BytesIO(listing.encode()))
    report = services.deposits.validate(sub, "jane")
    messages = {(e.get("value"), e["message"].split(":")[0]) for e in report["errors"]}
    assert not report["valid"]
    assert any(value == "plate1/A01.TIF" and "same file" in message for value, message in messages), report["errors"]
    assert any(value == "bad\u202egnp.exe" and "cannot keep" in message for value, message in messages), report["errors"]
    assert any(value == "plate1\uff0fA02.tif" and "cannot keep" in message for value, message in messages), report["errors"]
    assert any(value == "plate1/A0\u200b1.tif" and "same file" in message for value, message in messages), report["errors"]
    assert all(e.get("line") for e in report["errors"] if e.get("field") == "path")
    assert services.archive.registry.studies() == []  # nothing minted


# ----------------------------------------------------------------------------- dates


def test_release_refuses_a_today_that_is_not_a_date(tmp_path):
    data = tmp_path / "data"
    with open_services(make_settings(tmp_path)) as services:
        sub = stage_sample(services.deposits, "jane", release_date="2999-01-01")
        accession = services.deposits.finalize(sub, "jane")
    result = CliRunner().invoke(cli, ["--data", str(data), "--base-url", BASE, "release", "--today", "garbage"], obj={})
    assert result.exit_code == 2 and "--today 'garbage' is not a date" in result.output
    with open_services(make_settings(tmp_path)) as services:
        assert services.archive.registry.study(accession).state == "embargoed"
        with pytest.raises(InvalidDate):
            services.archive.release_due("2999-99-99")
        with pytest.raises(InvalidDate):
            services.archive.commit_study("S-X1", __import__("rdflib").Graph(), list, release_date="soon")
        assert services.archive.registry.study(accession).state == "embargoed"


# ----------------------------------------------------------------------------- the catalog's identity


def test_commands_use_the_base_url_the_catalog_remembers_and_refuse_another(tmp_path):
    data = tmp_path / "data"
    served = "http://localhost:5303"
    with open_services(make_settings(tmp_path, base_url=served)):
        pass  # first served on port 5303
    result = CliRunner(env={"BIA_BASE_URL": None}).invoke(cli, ["--data", str(data), "token", "create", "jane"], obj={})
    token = result.output.strip().splitlines()[-1]
    deposit = CliRunner(env={"BIA_BASE_URL": None}).invoke(
        cli, ["--data", str(data), "deposit", str(DATA / "study.yaml"), "--token", token], obj={}, catch_exceptions=False
    )
    assert deposit.exit_code == 0, deposit.output
    with open_services(make_settings(tmp_path, base_url=served)) as services:
        assert services.archive.public.graph.has_graph(f"{served}/studies/S-BIAD1")
    refused = CliRunner(env={"BIA_BASE_URL": None}).invoke(
        cli,
        ["--data", str(data), "--base-url", "http://localhost:5000", "deposit", str(DATA / "study.yaml"), "--token", token],
        obj={},
    )
    assert refused.exit_code == 2 and f"mints its IRIs under {served}" in refused.output


def test_a_catalog_refuses_to_open_with_other_stores(tmp_path, oxigraph_pair):
    public, private = oxigraph_pair
    remote = make_settings(tmp_path, sparql_url=private.url, public_sparql_url=public.url)
    with open_services(remote):
        pass
    with pytest.raises(CatalogMismatch, match="BIA_SPARQL_URL"):
        open_services(make_settings(tmp_path))  # a shell that forgot the graph servers
    with pytest.raises(CatalogMismatch, match="BIA_S3_ENDPOINT"):
        open_services(
            make_settings(
                tmp_path,
                sparql_url=private.url,
                public_sparql_url=public.url,
                s3_endpoint="127.0.0.1:1",
                s3_access_key="a",
                s3_secret_key="b",
            )
        )
    assert not (tmp_path / "data" / "graph").exists()  # nothing was written into a new local store


def test_a_read_only_command_gives_a_new_catalog_no_identity(tmp_path):
    """`bia stats` run first, without BIA_BASE_URL, must not make a new catalog remember the default base URL: the
    server started next with the real one would be refused for a catalog that minted nothing."""
    data = tmp_path / "data"
    stats = CliRunner(env={"BIA_BASE_URL": None}).invoke(cli, ["--data", str(data), "stats"], obj={})
    assert stats.exit_code == 0, stats.output
    with open_services(make_settings(tmp_path, base_url="https://bia.example.org")) as services:
        assert services.archive.settings.base_url == "https://bia.example.org"


def test_a_store_url_with_a_trailing_slash_is_the_same_store(tmp_path, oxigraph_pair):
    public, private = oxigraph_pair
    with open_services(make_settings(tmp_path, sparql_url=private.url + "/", public_sparql_url=public.url)):
        pass
    with open_services(make_settings(tmp_path, sparql_url=private.url, public_sparql_url=public.url + "/")):
        pass


# ----------------------------------------------------------------------------- abandoned submissions


def test_abandoned_submissions_expire_and_their_bytes_go(tmp_path):
    settings = make_settings(tmp_path, submission_ttl_days=30)
    with open_services(settings) as services:
        old = stage_sample(services.deposits, "jane")
        fresh = stage_sample(services.deposits, "jane")
        db = sqlite3.connect(settings.data_dir / "registry.sqlite")
        db.execute("UPDATE submissions SET updated_at = '2020-01-01T00:00:00+00:00' WHERE id = ?", (old,))
        db.commit()
        db.close()
    result = CliRunner().invoke(cli, ["--data", str(settings.data_dir), "--base-url", BASE, "cleanup"], obj={})
    assert result.exit_code == 0 and f"expired 1 submission(s): {old}" in result.output, result.output
    with open_services(settings) as services:
        assert services.deposits.get(old, "jane")["status"] == "expired"
        assert services.deposits.get(old, "jane")["staged_files"] == 0
        assert list(services.archive.file_store.list(f"staging/{old}/")) == []
        assert list(services.archive.file_store.list(f"submissions/{old}/")) == []
        assert services.deposits.get(fresh, "jane")["staged_files"] == len(listed_paths())
        assert services.maintenance.run_once().expired == []  # the background round finds nothing more


def test_bytes_left_under_closed_submissions_go_at_the_next_clean_up(services):
    """A process stopped after closing a submission but before deleting its bytes: the clean-up finds them."""
    store, registry = services.archive.file_store, services.archive.registry
    discarded = stage_sample(services.deposits, "jane")
    registry.discard_submission(discarded)  # what Deposits.discard does first; its deletes never ran
    finalized = stage_sample(services.deposits, "jane")
    services.deposits.finalize(finalized, "jane")
    store.put(f"submissions/{finalized}/files.tsv", io.BytesIO(b"path\n"))  # a file list its finalize left behind
    still_open = stage_sample(services.deposits, "jane")
    expired, purged = services.maintenance.clean()
    assert expired == [] and purged == len(listed_paths()) + 2  # the discarded one's files and file list, the leftover
    for sub in (discarded, finalized):
        assert list(store.list(f"staging/{sub}/")) == list(store.list(f"submissions/{sub}/")) == []
    assert services.deposits.get(still_open, "jane")["staged_files"] == len(listed_paths())
    assert len(list(store.list(f"staging/{still_open}/"))) == len(listed_paths())
    assert services.maintenance.clean() == ([], 0)


# ----------------------------------------------------------------------------- whose IRIs a record may use


def test_a_deposit_cannot_make_statements_about_another_studys_iris(services):
    import yaml

    record = yaml.safe_load((DATA / "study.yaml").read_text())
    record["components"][0]["id"] = f"{BASE}/studies/S-BIAD1492"
    record["biosamples"][0]["organisms"] = [{"id": f"{BASE}/studies/S-BIAD1492", "label": "a second title"}]
    sub = services.deposits.create("jane")
    services.deposits.attach_metadata(sub, "jane", "study.yaml", yaml.safe_dump(record).encode())
    report = services.deposits.validate(sub, "jane")
    foreign = [e for e in report["errors"] if e.get("value") == f"{BASE}/studies/S-BIAD1492"]
    assert {e["field"] for e in foreign} >= {"/components/0/id", "/biosamples/0/organisms/0/id"}, report["errors"]
    assert all(e.get("line") for e in foreign)
    with pytest.raises(ValidationFailed):
        services.deposits.finalize(sub, "jane")


def test_the_server_answers_while_recovery_runs_in_the_background(tmp_path, monkeypatch):
    import threading
    import time

    from api.app import create_app
    from catalog.dates import today_iso
    from catalog.deposits import Deposits

    settings = make_settings(tmp_path)
    with open_services(settings) as services:
        released = services.deposits.finalize(stage_sample(services.deposits, "jane"), "jane")
        cut_off = stage_sample(services.deposits, "jane")
        in_flight = services.archive.registry.begin_finalize(cut_off, "jane", "S-BIAD", today_iso(), "cut off")
    # closing the catalog is what its process dying would be: the finalize is nobody's now
    gate = threading.Event()
    finish = Deposits.finish_interrupted
    monkeypatch.setattr(Deposits, "finish_interrupted", lambda self, row: (gate.wait(60), finish(self, row)))
    services = open_services(settings, recover=False)
    try:
        client = create_app(settings, services=services).test_client()
        start = time.monotonic()
        assert client.get("/health").status_code == 200
        assert client.get(f"/studies/{released}", headers={"Accept": "application/ld+json"}).status_code == 200
        assert time.monotonic() - start < 5
        deadline = time.monotonic() + 30
        while services.archive.registry.study(in_flight).lease_owner != services.archive.registry.holder:
            assert time.monotonic() < deadline, "the background recovery never took the finalize up"
            time.sleep(0.05)
        assert services.archive.registry.study(in_flight).state == "finalizing"  # being recovered right now
        gate.set()
        while services.archive.registry.study(in_flight).state != "released":
            assert time.monotonic() < deadline + 30
            time.sleep(0.05)
        assert client.get(f"/studies/{in_flight}", headers={"Accept": "application/ld+json"}).status_code == 200
    finally:
        gate.set()
        services.close()
