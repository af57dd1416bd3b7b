"""Two machines, one catalog: two API nodes (separate processes, ports and ``BIA_DATA``) over one PostgreSQL, two
``oxigraph serve`` and one SeaweedFS, as a site runs them on two machines behind a load balancer.

What one node does, the other serves: accessions minted on both never clash, each node lists, searches and serves
the records, file tables and bytes of studies deposited on the other, a token made anywhere works everywhere,
killing a node loses nothing, and a new node (an empty ``BIA_DATA``) is complete after ``bia reindex``, or by itself.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from tests.catalog_helpers import DATA, file_bytes, listed_paths
from tests.servers.api_node import ApiNode, node_env, start_node

BASE = "https://bia.example.org"


@pytest.fixture
def site(tmp_path, postgres_url, oxigraph_pair, seaweedfs_s3) -> Iterator[dict]:
    """The shared services of a site and the environment every node of it gets."""
    public, private = oxigraph_pair
    shared = {
        "BIA_DATABASE_URL": postgres_url,
        "BIA_SPARQL_URL": private.url,
        "BIA_PUBLIC_SPARQL_URL": public.url,
        "BIA_S3_ENDPOINT": seaweedfs_s3.endpoint,
        "BIA_S3_BUCKET": seaweedfs_s3.new_bucket("site"),
        "BIA_S3_ACCESS_KEY": seaweedfs_s3.access_key,
        "BIA_S3_SECRET_KEY": seaweedfs_s3.secret_key,
        "BIA_MAINTENANCE_INTERVAL": "1",
    }
    nodes: list[ApiNode] = []

    def node(name: str, **variables: str) -> ApiNode:
        started = start_node(node_env(tmp_path / name, BASE, **shared, **variables))
        nodes.append(started)
        return started

    yield {"node": node, "env": lambda name: node_env(tmp_path / name, BASE, **shared)}
    for started in nodes:
        started.kill()


def deposit_over_http(node: ApiNode, token: str, title: str) -> str:
    """The sample study deposited through ``node``'s HTTP API under another title; returns its accession."""
    auth = {"Authorization": f"Bearer {token}"}
    status, created = node.send("POST", "/deposits", headers=auth)
    assert status == 201, created
    sub = created["id"]
    for path in listed_paths():
        content = file_bytes(path)
        md5 = base64.b64encode(hashlib.md5(content).digest()).decode()
        status, body = node.send(
            "PUT", f"/deposits/{sub}/files/{urllib.parse.quote(path)}", content, {**auth, "Content-MD5": md5}
        )
        assert status == 201, body
    status, body = node.send("PUT", f"/deposits/{sub}/file-lists/files.tsv", (DATA / "files.tsv").read_bytes(), auth)
    assert status == 201, body
    metadata = re.sub(r"(?m)^title: .*$", f"title: {title}", (DATA / "study.yaml").read_text(), count=1)
    status, body = node.send("PUT", f"/deposits/{sub}/metadata?name=study.yaml", metadata.encode(), auth)
    assert status == 200, body
    status, body = node.send("POST", f"/deposits/{sub}/finalize", headers=auth)
    assert status == 201, body
    return body["accession"]


def eventually(check, timeout: float = 20.0):
    """``check()``'s value once it is truthy (a node follows the shared state within about a second)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def serves_study(node: ApiNode, accession: str, title_word: str) -> None:
    """Everything a visitor reaches of a released study, from ``node``."""
    record = node.json(f"/studies/{accession}", headers={"Accept": "application/ld+json"})
    assert record["identifier"] == accession or accession in json.dumps(record)
    # listings and searches come from the node's own index, which follows the shared documents within a second
    assert eventually(lambda: accession in {s["accession"] for s in node.json("/studies?limit=100")["items"]})
    assert eventually(lambda: accession in {h["accession"] for h in node.json(f"/search?q={title_word}")["items"]})
    files = node.json(f"/studies/{accession}/files?limit=5")
    assert files["total"] == len(listed_paths()) and len(files["items"]) == 5
    item = files["items"][0]
    status, body, headers = node.get(urllib.parse.urlparse(item["download"]).path, timeout=30)
    if status == 302:  # a presigned S3 URL
        body = urllib.request.urlopen(headers["Location"], timeout=30).read()
    else:
        assert status == 200
    assert body == file_bytes(item["path"])
    assert accession in node.get("/sitemap.xml")[1].decode() or accession in node.get("/sitemap-studies.xml")[1].decode()


def test_two_nodes_share_one_catalog(site):
    first, second = site["node"]("node1"), site["node"]("node2")
    token = first.cli("token", "create", "jane").stdout.strip().splitlines()[-1]
    one = deposit_over_http(first, token, "Zebrafish nodeone")
    two = deposit_over_http(second, token, "Zebrafish nodetwo")  # the token made on node 1 works on node 2
    assert one != two and {one, two} == {"S-BIAD1", "S-BIAD2"}
    serves_study(second, one, "nodeone")
    serves_study(first, two, "nodetwo")
    stats = [node.json("/stats") for node in (first, second)]
    assert stats[0]["studies"] == stats[1]["studies"] == 2

    first.kill()  # kill -9: nothing it did is lost, the other node goes on serving and depositing
    serves_study(second, one, "nodeone")
    three = deposit_over_http(second, token, "Zebrafish nodethree")
    assert three == "S-BIAD3"

    fresh_env = site["env"]("node3")
    done = first.__class__("", fresh_env, first.process, first.log).cli("reindex")
    assert "public" in done.stdout or done.stdout  # it says what it rebuilt
    fresh = site["node"]("node3")
    for accession, word in ((one, "nodeone"), (two, "nodetwo"), (three, "nodethree")):
        serves_study(fresh, accession, word)


def test_a_new_node_is_complete_by_itself(site):
    """Without any command, a node started after studies were deposited lists, searches and serves them."""
    first = site["node"]("node1")
    token = first.cli("token", "create", "jane").stdout.strip().splitlines()[-1]
    accession = deposit_over_http(first, token, "Zebrafish early")
    later = site["node"]("node2")
    assert eventually(lambda: later.json("/health")["studies"] == 1)  # its index fills before anyone searches
    serves_study(later, accession, "early")
    assert later.json("/stats")["studies"] == 1
    assert Path(later.env["BIA_DATA"]).exists()
