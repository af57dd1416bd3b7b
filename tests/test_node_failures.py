"""How a node behaves when what it serves from fails (issue 15): a hung graph server costs a read its short timeout
and a 503, not a request thread for ten minutes, and leaves /health answering; /ready says which store does not
answer; a stream that breaks after it started is cut off visibly; presigned download URLs carry the address clients
reach; the endpoint paths of a remote SPARQL server are settings. Real servers throughout: ``oxigraph serve``
(behind a proxy that can hang or rewrite paths), SeaweedFS, the app served over HTTP."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

import pytest
import requests
from werkzeug.serving import make_server

from catalog.config import Settings
from catalog.graph_store import GraphStoreTimeout
from catalog.graph_store_remote import RemoteGraphStore, RemoteOptions
from catalog.stores import open_graph_store
from loaders.harvest import Harvester
from tests.catalog_helpers import BASE, stage_sample
from tests.servers.seaweedfs_server import free_ports

TESTS = Path(__file__).parent
G1 = "https://archive.example.org/studies/S-T1"
ERROR_KEYS = {"code", "status", "message", "errors"}
FUSEKI_ROUTES = {"/ds/sparql": "/query", "/ds/update": "/update", "/ds/data": "/store"}


def nt(n: int, tag: str = "v") -> str:
    return "".join(f'<https://x.org/s/{i}> <https://x.org/p> "{tag}{i}" .\n' for i in range(n))


def serve(app) -> tuple[str, object]:
    """The app served by werkzeug's threaded server (as ``bia serve`` does) from a thread; returns its URL and the
    server (``.shutdown()`` it)."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.port}", server


def error_body(response: requests.Response, status: int) -> dict:
    assert response.status_code == status, response.text[:500]
    body = response.json()
    assert set(body) == ERROR_KEYS and body["status"] == status
    return body


# ---------------------------------------------------------------------- the remote store's time limits


def test_a_hung_server_costs_a_read_its_timeout_then_calls_fail_at_once_until_it_answers(oxigraph_server, http_proxy):
    proxy = http_proxy(oxigraph_server.url)
    store = RemoteGraphStore(proxy.url, RemoteOptions(connect_timeout=1, read_timeout=1, retry_seconds=2))
    store.replace_graph(G1, nt(3))
    proxy.hang()
    started = time.monotonic()
    with pytest.raises(GraphStoreTimeout, match="did not answer within 1 s"):
        store.select("SELECT * WHERE { ?s ?p ?o }")
    assert time.monotonic() - started < 10  # not the 600 s every call used to wait
    asked = len(proxy.requests)
    with pytest.raises(GraphStoreTimeout, match="asked again in") as refused:
        store.ask("ASK { ?s ?p ?o }")
    assert refused.value.status == 503 and refused.value.retry_after >= 1
    assert len(proxy.requests) == asked  # failed at once: the hung server was not asked
    proxy.recover()
    time.sleep(2.1)
    assert store.ask("ASK { ?s ?p ?o }") and store.count(G1) == 3  # tried again, and it answers


def test_a_slow_query_on_a_server_that_answers_stops_no_other_call(oxigraph_server):
    store = RemoteGraphStore(oxigraph_server.url, RemoteOptions(connect_timeout=2, read_timeout=1, retry_seconds=60))
    store.replace_graph(G1, nt(300))
    heavy = "SELECT (COUNT(*) AS ?n) WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i . ?j ?k ?l }"
    with pytest.raises(GraphStoreTimeout):
        store.select(heavy)
    assert store.count(G1) == 300  # the server answers ASK {}: it is slow on one query, not hung


def test_writes_keep_a_long_timeout_and_reads_a_short_one():
    settings = Settings.from_env(
        {
            "BIA_SPARQL_CONNECT_TIMEOUT": "2",
            "BIA_SPARQL_READ_TIMEOUT": "7",
            "BIA_SPARQL_WRITE_TIMEOUT": "900",
            "BIA_SPARQL_RETRY_SECONDS": "0",
        }
    )
    store = open_graph_store("http://127.0.0.1:9/ds", settings=settings)
    assert isinstance(store, RemoteGraphStore)
    assert store.options == RemoteOptions(connect_timeout=2, read_timeout=7, write_timeout=900, retry_seconds=0)
    defaults = Settings.from_env({})
    assert (defaults.sparql_connect_timeout, defaults.sparql_read_timeout, defaults.sparql_write_timeout) == (5, 30, 600)


# ---------------------------------------------------------------------- endpoint paths


def test_endpoint_paths_are_settings_used_by_every_call(oxigraph_server, http_proxy):
    """A server with Fuseki's layout (``/ds/sparql``, ``/ds/update``, ``/ds/data``): here ``oxigraph serve``
    behind a proxy that answers those paths only."""
    proxy = http_proxy(oxigraph_server.url, routes=FUSEKI_ROUTES)
    settings = Settings.from_env(
        {"BIA_SPARQL_QUERY_PATH": "/sparql", "BIA_SPARQL_UPDATE_PATH": "update", "BIA_SPARQL_STORE_PATH": "/data"}
    )
    store = open_graph_store(f"{proxy.url}/ds/", settings=settings)
    assert isinstance(store, RemoteGraphStore)
    assert (store.query_url, store.update_url, store.store_url) == (
        f"{proxy.url}/ds/sparql",
        f"{proxy.url}/ds/update",
        f"{proxy.url}/ds/data",
    )
    assert store.replace_graph(G1, nt(4)) == 4  # upload (data), move (update), count (sparql)
    assert store.graphs() == [G1] and store.has_graph(G1)
    assert b"v3" in store.get_graph(G1)
    body, media = store.query_raw("SELECT ?o WHERE { ?s ?p ?o }", "text/csv")
    assert media == "text/csv" and body.count(b"v") == 4
    store.drop_graph(G1)
    assert not store.has_graph(G1)
    assert set(proxy.requests) == set(FUSEKI_ROUTES)  # nothing asked at oxigraph's own paths
    default = open_graph_store(oxigraph_server.url)
    assert isinstance(default, RemoteGraphStore) and default.query_url == f"{oxigraph_server.url}/query"


def test_a_catalog_and_its_sparql_endpoint_use_the_endpoint_paths(oxigraph_pair, http_proxy, make_catalog):
    public, private = (http_proxy(server.url, routes=FUSEKI_ROUTES) for server in oxigraph_pair)
    made = make_catalog(
        sparql_url=f"{private.url}/ds",
        public_sparql_url=f"{public.url}/ds",
        sparql_query_path="/sparql",
        sparql_update_path="/update",
        sparql_store_path="/data",
    )
    assert Harvester(made.services.archive).run("idr", [str(TESTS / "data" / "idr" / "idr0038-study.txt")]).loaded
    client = made.app().test_client()
    query = "SELECT (COUNT(DISTINCT ?g) AS ?n) WHERE { GRAPH ?g { ?s ?p ?o } }"
    answer = client.get("/sparql", query_string={"query": query}, headers={"Accept": "application/sparql-results+json"})
    assert answer.status_code == 200 and int(answer.get_json()["results"]["bindings"][0]["n"]["value"]) >= 1
    assert client.get("/ready").get_json()["status"] == "ready"
    assert set(public.requests) <= set(FUSEKI_ROUTES) and set(private.requests) <= set(FUSEKI_ROUTES)
    assert "/ds/data" in public.requests and "/ds/sparql" in public.requests


# ---------------------------------------------------------------------- a hung graph server under the app


@pytest.fixture
def hung_catalog(oxigraph_pair, http_proxy, make_catalog):
    """A catalog on two ``oxigraph serve`` behind proxies that can hang, with short time limits, served."""
    public, private = (http_proxy(server.url) for server in oxigraph_pair)
    made = make_catalog(
        sparql_url=private.url,
        public_sparql_url=public.url,
        sparql_connect_timeout=1.0,
        sparql_read_timeout=2.0,
        sparql_timeout=2.0,
        sparql_retry_seconds=60.0,
        ready_timeout=1.0,
        sparql_cache_mb=0,
    )
    harvester = Harvester(made.services.archive)
    assert harvester.run("idr", [str(TESTS / "data" / "idr" / "idr0038-study.txt")]).loaded
    assert harvester.run("empiar", [str(TESTS / "data" / "empiar" / "10934.xml")]).loaded
    made.services.follow()
    url, server = serve(made.app())
    yield url, public, private
    public.recover()
    private.recover()
    server.shutdown()


def test_a_hung_graph_server_leaves_health_answering_and_reads_get_503(hung_catalog):
    url, public, private = hung_catalog
    assert requests.get(f"{url}/ready", timeout=10).json()["status"] == "ready"
    public.hang()
    private.hang()
    reads = {
        "sparql": f"{url}/sparql?" + urllib.parse.urlencode({"query": "ASK { ?s ?p ?o }"}),
        "links": f"{url}/links.jsonld",
        "void": f"{url}/.well-known/void",
    }
    answers: dict[str, requests.Response] = {}

    def read(name: str) -> None:
        answers[name] = requests.get(reads[name], headers={"Accept": "application/json, text/turtle"}, timeout=30)

    threads = [threading.Thread(target=read, args=(name,)) for name in reads]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    health = requests.get(f"{url}/health", timeout=5)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    # public SPARQL runs on the node's replica of the public graph once it has caught up (it may have): only the
    # other reads must wait on the hung server
    early = {name for name, answer in answers.items() if not (name == "sparql" and answer.status_code == 200)}
    assert not early, f"{early} answered before /health: they did not wait on the hung server"
    assert requests.get(f"{url}/studies", headers={"Accept": "application/json"}, timeout=5).json()["total"] == 2
    for thread in threads:
        thread.join(30)
    assert set(answers) == set(reads)  # every read answered within its timeout, not 600 s
    for name, answer in answers.items():
        if name == "sparql" and answer.status_code == 200:
            continue  # answered by the replica
        assert error_body(answer, 503)["code"] in ("graph_store_timeout", "query_timeout"), name
    asked = len(public.requests)
    again = requests.get(reads["links"], timeout=5)  # the hung server is not asked again for a while
    assert error_body(again, 503)["code"] == "graph_store_timeout" and int(again.headers["Retry-After"]) >= 1
    assert len(public.requests) == asked


def test_ready_names_the_graph_server_that_does_not_answer(hung_catalog):
    url, public, private = hung_catalog
    body = requests.get(f"{url}/ready", timeout=10).json()
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"database", "graph_public", "graph_private", "files", "sparql_replica"}
    public.hang()
    answer = requests.get(f"{url}/ready", timeout=10)
    body = error_body(answer, 503)
    assert body["code"] == "not_ready" and "graph_public" in body["message"] and "graph_private" not in body["message"]
    checks = {check["check"]: check for check in body["errors"]}
    assert checks["graph_public"]["status"] == "timeout" and checks["graph_private"]["status"] == "ok"
    assert checks["database"]["status"] == "ok" and checks["files"]["status"] == "ok"
    assert answer.headers["Retry-After"]


# ---------------------------------------------------------------------- readiness


def test_ready_checks_each_store_side_by_side(make_catalog):
    made = make_catalog()
    client = made.app().test_client()
    body = client.get("/ready").get_json()
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"database", "graph_public", "graph_private", "files"}
    assert all(check["status"] == "ok" and isinstance(check["seconds"], float) for check in body["checks"].values())
    assert not [p for p in (made.settings.data_dir / "files").iterdir() if p.name.startswith(".bia-ready-")]


def test_ready_fails_on_a_missing_bucket(make_catalog, seaweedfs_s3):
    bucket = seaweedfs_s3.new_bucket("ready")
    made = make_catalog(
        s3_endpoint=seaweedfs_s3.endpoint,
        s3_bucket=bucket,
        s3_access_key=seaweedfs_s3.access_key,
        s3_secret_key=seaweedfs_s3.secret_key,
    )
    client = made.app().test_client()
    assert client.get("/ready").get_json()["checks"]["files"]["status"] == "ok"
    seaweedfs_s3.client().remove_bucket(bucket)
    answer = client.get("/ready")
    assert answer.status_code == 503
    body = answer.get_json()
    assert "files" in body["message"] and bucket in body["message"]
    assert {check["check"]: check["status"] for check in body["errors"]}["files"] == "failed"


# ---------------------------------------------------------------------- streams cut off visibly


def test_a_zip_whose_file_ends_short_is_cut_off_and_logged(make_catalog, caplog):
    """An object that yields fewer bytes than recorded (an S3 answer cut short): the zip is not ended as if
    complete (it used to be: a valid zip holding a truncated file)."""
    made = make_catalog()
    token, owner = made.token()
    accession = made.services.deposits.finalize(stage_sample(made.services.deposits, owner), owner)
    store = made.services.archive.file_store
    whole = store.open_range
    rows = list(made.services.archive.public.files.iter_rows(accession))
    last = f"studies/{accession}/{rows[-1]['path']}"  # the zip has sent the other files when it comes to this one

    def short(key: str, *args, **kwargs):
        if key != last:
            return whole(key, *args, **kwargs)
        return iter([b"".join(whole(key, *args, **kwargs))[:-1]])

    store.open_range = short  # type: ignore[method-assign]
    url, server = serve(made.app())
    try:
        with caplog.at_level(logging.ERROR, logger="api.streams"):
            answer = requests.get(f"{url}/studies/{accession}/download", stream=True, timeout=30)
            assert answer.status_code == 200
            with pytest.raises(requests.exceptions.ChunkedEncodingError):
                answer.content
            with pytest.raises(requests.exceptions.ChunkedEncodingError):  # fewer bytes than its Content-Length
                requests.get(f"{url}/files/{accession}/{rows[-1]['file_id']}/download", timeout=30).content
        assert f"streaming the zip of {accession} broke off" in caplog.text
        assert f"{last} ended after" in caplog.text
        store.open_range = whole  # type: ignore[method-assign]
        complete = requests.get(f"{url}/studies/{accession}/download", timeout=30)
        assert zipfile.ZipFile(io.BytesIO(complete.content)).testzip() is None
    finally:
        server.shutdown()


def test_an_export_cut_by_a_hung_graph_server_is_aborted_under_gunicorn(tmp_path, oxigraph_pair, http_proxy, make_catalog):
    """The production server (gunicorn, gthread) over a public graph server that hangs part-way through
    ``/export.nq``: the client sees a broken transfer, not a complete 200."""
    public, private = (http_proxy(server.url) for server in oxigraph_pair)
    made = make_catalog(folder=tmp_path, sparql_url=private.url, public_sparql_url=public.url)
    harvester = Harvester(made.services.archive)
    assert harvester.run("idr", [str(TESTS / "data" / "idr" / "idr0038-study.txt")]).loaded
    assert harvester.run("empiar", [str(TESTS / "data" / "empiar" / "10934.xml")]).loaded
    made.services.close()
    (port,) = free_ports(1)
    env = {
        **os.environ,
        "BIA_DATA": str(made.settings.data_dir),
        "BIA_BASE_URL": BASE,
        "BIA_SPARQL_URL": private.url,
        "BIA_PUBLIC_SPARQL_URL": public.url,
        "BIA_SPARQL_CONNECT_TIMEOUT": "1",
        "BIA_SPARQL_READ_TIMEOUT": "2",
        "BIA_MAINTENANCE_INTERVAL": "3600",
    }
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "--worker-class",
            "gthread",
            "--threads",
            "4",
            "--bind",
            f"127.0.0.1:{port}",
            "api.app:create_app()",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=TESTS.parent,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_for(base, server)
        _wait_until_quiet(public)
        whole = requests.get(f"{base}/export.nq", timeout=30)
        assert whole.status_code == 200 and whole.content.count(b"\n") > 10
        public.hang(after=3)  # the list of graphs, then the first graph (ASK, GET); the second never comes
        answer = requests.get(f"{base}/export.nq", stream=True, timeout=30)
        assert answer.status_code == 200
        received = bytearray()
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            for chunk in answer.iter_content(1 << 16):
                received += chunk
        assert 0 < len(received) < len(whole.content)
    finally:
        public.recover()
        os.killpg(server.pid, 9)
        output = server.communicate(timeout=10)[0].decode()
    assert "streaming /export.nq broke off" in output


def _wait_for(base: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{base}/health", timeout=2).read()
            return
        except OSError:
            assert server.poll() is None, server.stdout.read().decode()  # type: ignore[union-attr]
            time.sleep(0.3)
    raise AssertionError("gunicorn did not answer")


def _wait_until_quiet(proxy, seconds: float = 1.0) -> None:
    """Until the server's background duties have stopped asking the graph server (for ``seconds``)."""
    seen = -1
    while seen != len(proxy.requests):
        seen = len(proxy.requests)
        time.sleep(seconds)


# ---------------------------------------------------------------------- presigned URLs for the public address


def _s3_settings(seaweedfs_s3, tmp_path: Path, **changes) -> Settings:
    return Settings.from_env(
        {},
        data_dir=tmp_path,
        s3_endpoint=seaweedfs_s3.endpoint,
        s3_bucket=seaweedfs_s3.new_bucket("public"),
        s3_access_key=seaweedfs_s3.access_key,
        s3_secret_key=seaweedfs_s3.secret_key,
        **changes,
    )


def test_download_urls_are_signed_for_the_public_endpoint(seaweedfs_s3, tmp_path):
    from catalog.file_store_s3 import S3FileStore

    port = seaweedfs_s3.endpoint.rsplit(":", 1)[1]
    settings = _s3_settings(seaweedfs_s3, tmp_path, s3_public_endpoint=f"http://localhost:{port}")
    store = S3FileStore.from_settings(settings)
    store.put("studies/S-X1/a.txt", io.BytesIO(b"public bytes"), size=12)
    url = store.presigned_get_url("studies/S-X1/a.txt", filename="a.txt")
    assert url is not None and url.startswith(f"http://localhost:{port}/")
    assert urllib.request.urlopen(url, timeout=10).read() == b"public bytes"
    internal = S3FileStore.from_settings(settings.with_(s3_public_endpoint=None)).presigned_get_url("studies/S-X1/a.txt")
    assert internal is not None and internal.startswith(f"http://{seaweedfs_s3.endpoint}/")


def test_signing_for_the_public_endpoint_needs_no_request_when_the_region_is_set(seaweedfs_s3, tmp_path):
    from catalog.file_store_s3 import S3FileStore

    settings = _s3_settings(seaweedfs_s3, tmp_path, s3_region="us-east-1", s3_public_endpoint="https://files.example.org")
    url = S3FileStore.from_settings(settings).presigned_get_url("studies/S-X1/a.txt")
    assert url is not None and url.startswith("https://files.example.org/") and "X-Amz-Signature=" in url


def test_the_api_redirects_downloads_to_the_public_endpoint(seaweedfs_s3, make_catalog):
    port = seaweedfs_s3.endpoint.rsplit(":", 1)[1]
    made = make_catalog(
        s3_endpoint=seaweedfs_s3.endpoint,
        s3_bucket=seaweedfs_s3.new_bucket("redirect"),
        s3_access_key=seaweedfs_s3.access_key,
        s3_secret_key=seaweedfs_s3.secret_key,
        s3_public_endpoint=f"localhost:{port}",
    )
    token, owner = made.token()
    accession = made.services.deposits.finalize(stage_sample(made.services.deposits, owner), owner)
    client = made.app().test_client()
    item = client.get(f"/studies/{accession}/files?limit=1").get_json()["items"][0]
    answer = client.get(item["download"].replace(BASE, ""))
    assert answer.status_code == 302 and answer.headers["Location"].startswith(f"http://localhost:{port}/")
    held = urllib.request.urlopen(answer.headers["Location"], timeout=10).read()
    assert json.dumps(held.decode())  # the bytes of the file, fetched at the public address
    assert len(held) == item["size"]
