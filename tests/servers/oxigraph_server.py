"""A real ``oxigraph serve`` (from the ``oxigraph`` PyPI package) for the remote graph store mode.

:func:`start_oxigraph` / :func:`stop_oxigraph` are plain functions (benchmarks use them); the fixtures
``oxigraph_server`` (one server) and ``oxigraph_pair`` (public + private, as the catalog's two views need)
start servers on free loopback ports with their data in temporary folders and kill them afterwards.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from tests.servers.seaweedfs_server import free_ports


def oxigraph_binary() -> str:
    """The ``oxigraph`` executable of the oxigraph package."""
    found = str(Path(sys.executable).parent / "oxigraph")
    if not os.access(found, os.X_OK):
        found = shutil.which("oxigraph") or found
    if not os.access(found, os.X_OK):
        raise FileNotFoundError("no `oxigraph` binary: pip install oxigraph==0.5.13")
    return found


@dataclass
class OxigraphServer:
    url: str
    location: Path
    process: subprocess.Popen


def start_oxigraph(location: Path, timeout: float = 30.0, port: int | None = None) -> OxigraphServer:
    """Start ``oxigraph serve`` on a free port (or ``port``: a restart) with its store in ``location``; wait until
    it answers."""
    location.mkdir(parents=True, exist_ok=True)
    if port is None:
        (port,) = free_ports(1)
    log = (location.parent / f"{location.name}.log").open("ab")
    process = subprocess.Popen(
        [oxigraph_binary(), "serve", "--location", str(location), "--bind", f"127.0.0.1:{port}", "--union-default-graph"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"oxigraph serve exited with {process.returncode}; see {log.name}")
        try:
            urllib.request.urlopen(f"{url}/query?query=ASK%7B%7D", timeout=1).read()
            return OxigraphServer(url, location, process)
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"oxigraph serve did not answer on {url} within {timeout} s")


def stop_oxigraph(server: OxigraphServer) -> None:
    if server.process.poll() is None:
        os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait(timeout=10)


def restart_oxigraph(server: OxigraphServer) -> OxigraphServer:
    """Start a stopped server again on its port, over its data (an outage ends)."""
    return start_oxigraph(server.location, port=int(server.url.rsplit(":", 1)[1]))


@pytest.fixture
def oxigraph_server(tmp_path: Path) -> Iterator[OxigraphServer]:
    server = start_oxigraph(tmp_path / "oxigraph")
    try:
        yield server
    finally:
        stop_oxigraph(server)


@pytest.fixture
def oxigraph_pair(tmp_path: Path) -> Iterator[tuple[OxigraphServer, OxigraphServer]]:
    """Two servers: (public, private)."""
    public = start_oxigraph(tmp_path / "oxigraph-public")
    try:
        private = start_oxigraph(tmp_path / "oxigraph-private")
        try:
            yield public, private
        finally:
            stop_oxigraph(private)
    finally:
        stop_oxigraph(public)
