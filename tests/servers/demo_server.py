"""``bia serve --demo`` started as a user starts it, on a free port over a fresh data folder, for tests that need the
real serving process (its background worker, its real HTTP)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.servers.seaweedfs_server import free_ports

ROOT = Path(__file__).resolve().parent.parent.parent


def start_demo_server(data: Path) -> tuple[subprocess.Popen, int]:
    """The server process (stdout and stderr in one text pipe: kill it when done) and its port."""
    (port,) = free_ports(1)
    env = {**os.environ, "BIA_DATA": str(data)}
    env.pop("BIA_BASE_URL", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--demo", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )
    return server, port
