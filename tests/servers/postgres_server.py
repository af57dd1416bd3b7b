"""A real, throw-away PostgreSQL cluster (Debian's ``postgresql`` package) for the shared-state mode.

:func:`start_postgres` runs ``initdb`` and ``pg_ctl`` on a free loopback port with the cluster in a temporary folder;
both refuse to run as root, so as root they run as the ``postgres`` user, which then owns the folder and its log.
The session fixture ``postgres_server`` starts one cluster; ``postgres_url`` gives each test a database URL of its
own (a fresh schema, selected through ``search_path``), so tests never see each other's rows.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from tests.servers.seaweedfs_server import free_ports


def postgres_bin(name: str) -> str:
    """A server program of the newest installed PostgreSQL (``/usr/lib/postgresql/*/bin``), else from PATH."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    path = found[-1] if found else shutil.which(name)
    if not path:
        raise FileNotFoundError(f"no `{name}`: install Debian's postgresql package (apt-get install postgresql)")
    return path


@dataclass
class PostgresServer:
    url: str
    folder: Path
    port: int


def _as_postgres(args: list[str]) -> list[str]:
    """``args`` run as the ``postgres`` user when this process is root (initdb and pg_ctl refuse root)."""
    if os.geteuid() != 0:
        return args
    return ["runuser", "-u", "postgres", "--", *args]


def start_postgres(folder: Path | None = None, timeout: float = 60.0) -> PostgresServer:
    """initdb a cluster in ``folder`` (a new temporary one by default) and start it on a free loopback port."""
    folder = Path(folder or tempfile.mkdtemp(prefix="bia-pg-"))
    data = folder / "data"
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    (port,) = free_ports(1)
    subprocess.run(
        _as_postgres([postgres_bin("initdb"), "-D", str(data), "-U", "bia", "--auth=trust", "-E", "UTF8", "--no-sync"]),
        check=True,
        capture_output=True,
        timeout=timeout,
    )
    options = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={folder} -c fsync=off -c max_connections=200"
    subprocess.run(
        _as_postgres(
            [
                postgres_bin("pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(folder / "server.log"),
                "-o",
                options,
                "-w",
                "-t",
                str(int(timeout)),
                "start",
            ]
        ),
        check=True,
        capture_output=True,
        timeout=timeout + 10,
    )
    return PostgresServer(f"postgresql://bia@127.0.0.1:{port}/postgres", folder, port)


def stop_postgres(server: PostgresServer) -> None:
    subprocess.run(
        _as_postgres([postgres_bin("pg_ctl"), "-D", str(server.folder / "data"), "-m", "immediate", "stop"]),
        capture_output=True,
        timeout=60,
    )
    shutil.rmtree(server.folder, ignore_errors=True)


def fresh_schema_url(server: PostgresServer) -> str:
    """A URL whose connections use a new, empty schema of the server's database."""
    import psycopg

    schema = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return f"{server.url}?options=-csearch_path%3D{schema}"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = start_postgres()
    try:
        yield server
    finally:
        stop_postgres(server)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A database URL of this test's own (an empty schema on the session's server)."""
    return fresh_schema_url(postgres_server)
