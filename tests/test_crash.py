"""Kill -9 a finalize at random points: afterwards there is either no study or the whole study."""

from __future__ import annotations

import hashlib
import io
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from api.services import open_services
from tests.catalog_helpers import BASE, DATA, make_settings

ROOT = Path(__file__).resolve().parent.parent
N_FILES = 150


def _stage(deposits, owner: str) -> str:
    """A submission of N_FILES small files (a wider window for the kill than the 6-file sample)."""
    sub = deposits.create(owner)
    lines = ["path\tPlate\tWell"]
    for i in range(N_FILES):
        path = f"plate{i // 50}/w{i:03d}.tif"
        deposits.upload(sub, owner, path, io.BytesIO(f"file {i}".encode() * 100))
        lines.append(f"{path}\t{i // 50}\tw{i:03d}")
    deposits.attach_file_list(sub, owner, "files.tsv", io.BytesIO(("\n".join(lines) + "\n").encode()))
    deposits.attach_metadata(sub, owner, "study.yaml", (DATA / "study.yaml").read_bytes())
    return sub


def _check_invariants(services, sub: str, owner: str) -> str | None:
    """Assert 'no study' or 'whole study' for the submission; returns the accession if there is a study."""
    archive = services.archive
    submission = services.deposits.get(sub, owner)
    rows = [r for r in archive.registry.studies() if r.submission_id == sub]
    if not rows:
        assert submission["status"] == "open" and submission["accession"] is None
        assert submission["staged_files"] == N_FILES
        assert archive.public.search.search("").total == len(archive.public.graph.graphs())
        return None
    (row,) = rows
    assert row.state == "released", row
    study = f"{BASE}/studies/{row.accession}"
    assert archive.public.graph.has_graph(study)
    count = archive.public.graph.select(
        f"SELECT (COUNT(?f) AS ?n) WHERE {{ GRAPH <{study}> {{ <{study}> <https://w3id.org/rembi/files> ?f }} }}"
    )
    assert int(count[0]["n"]["value"]) == N_FILES
    assert archive.public.files.totals(row.accession)["files"] == N_FILES
    assert [h.accession for h in archive.public.search.search(f'accession:"{row.accession}"').hits] == [row.accession]
    stored = list(archive.file_store.list(f"studies/{row.accession}/"))
    assert len(stored) == N_FILES
    for obj in stored[:10]:
        content = b"".join(archive.file_store.open_range(obj.key))
        assert hashlib.sha256(content).hexdigest() == obj.sha256
    assert list(archive.file_store.list(f"staging/{sub}/")) == []
    assert submission["status"] == "finalized"
    return row.accession


def test_kill_during_finalize_leaves_no_study_or_the_whole_study(tmp_path):
    rng = random.Random(20261124)
    settings = make_settings(tmp_path)
    minted: list[str] = []
    outcomes = {"none": 0, "whole": 0}
    for attempt in range(6):
        with open_services(settings) as services:
            owner = "jane"
            sub = _stage(services.deposits, owner)
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.crash_finalize", str(settings.data_dir), sub, owner],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert child.stdout.readline().strip() == "ready", child.stderr.read()
        time.sleep(rng.uniform(0.0, 1.5))
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        with open_services(settings) as services:  # recovery runs here
            accession = _check_invariants(services, sub, "jane")
            if accession is None:
                outcomes["none"] += 1
                accession = services.deposits.finalize(sub, "jane")  # the depositor simply retries
                _check_invariants(services, sub, "jane")
            else:
                outcomes["whole"] += 1
            assert accession not in minted
            minted.append(accession)
    numbers = [int(a.removeprefix("S-BIAD")) for a in minted]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    print("crash outcomes", outcomes)
