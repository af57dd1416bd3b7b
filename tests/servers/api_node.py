"""An API node as a site runs it: gunicorn serving ``api.app:create_app()`` in a process of its own, configured only
by ``BIA_*`` variables, with a ``BIA_DATA`` folder of its own (node-local caches), on a free loopback port.

Used by the two-node tests and the load benchmark: several nodes over one PostgreSQL, two ``oxigraph serve`` and one
S3 server, as on several machines.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.servers.seaweedfs_server import free_ports

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ApiNode:
    """A running node: its URL, its environment and its gunicorn master."""

    url: str
    env: dict[str, str]
    process: subprocess.Popen
    log: Path
    extra: dict[str, Any] = field(default_factory=dict)

    def get(self, path: str, headers: dict[str, str] | None = None, timeout: float = 30.0) -> tuple[int, bytes, Any]:
        """(status, body, headers) of a GET (an HTTP error is an answer too)."""
        request = urllib.request.Request(self.url + path, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                return answer.status, answer.read(), answer.headers
        except urllib.error.HTTPError as error:
            return error.code, error.read(), error.headers

    def json(self, path: str, **kwargs: Any) -> Any:
        status, body, _ = self.get(path, **kwargs)
        assert status == 200, (path, status, body[:500])
        return json.loads(body)

    def send(
        self, method: str, path: str, data: bytes | None = None, headers: dict[str, str] | None = None, timeout: float = 120.0
    ) -> tuple[int, Any]:
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                body = answer.read()
                return answer.status, json.loads(body) if body else None
        except urllib.error.HTTPError as error:
            body = error.read()
            return error.code, json.loads(body) if body.startswith(b"{") else body

    def kill(self) -> None:
        """kill -9 the master and its workers (their own process group)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run ``bia`` with this node's environment."""
        done = subprocess.run(
            [str(Path(sys.executable).parent / "bia"), *args], env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=600
        )
        if check and done.returncode != 0:
            raise AssertionError(f"bia {' '.join(args)} failed ({done.returncode}): {done.stdout}\n{done.stderr}")
        return done


def node_env(data_dir: Path, base_url: str, **variables: str) -> dict[str, str]:
    """The environment of a node: this Python's, plus ``BIA_DATA``, ``BIA_BASE_URL`` and ``variables``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIA_")}
    env.update({"BIA_DATA": str(data_dir), "BIA_BASE_URL": base_url, **variables})
    return env


def start_node(env: dict[str, str], *, workers: int = 2, threads: int = 4, timeout: float = 90.0) -> ApiNode:
    """Start gunicorn on a free port with ``env``; wait until ``/health`` answers."""
    (port,) = free_ports(1)
    log = Path(env["BIA_DATA"]).with_name(Path(env["BIA_DATA"]).name + f"-{port}.log")
    Path(env["BIA_DATA"]).mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "--config",
            "python:api.gunicorn_conf",
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--bind",
            f"127.0.0.1:{port}",
            "--access-logfile",
            "/dev/null",
            "api.app:create_app()",
        ],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        start_new_session=True,
    )
    node = ApiNode(f"http://127.0.0.1:{port}", env, process, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the node exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if node.get("/health", timeout=2)[0] == 200:
                return node
        except OSError:
            pass
        time.sleep(0.3)
    node.kill()
    raise RuntimeError(f"the node did not answer within {timeout} s:\n{log.read_text()[-3000:]}")
