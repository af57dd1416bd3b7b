"""gunicorn's settings for serving the catalog; the Docker image's command is

    gunicorn --config python:api.gunicorn_conf 'api.app:create_app()'

Listens on 0.0.0.0:5000 with one worker process of ``threads`` threads (embedded stores allow one process; with
remote stores set ``WEB_CONCURRENCY`` for more). Any setting can be changed without editing this file through
``GUNICORN_CMD_ARGS`` (e.g. ``--bind 127.0.0.1:8000``). The server refuses to start without ``BIA_BASE_URL``:
every IRI the catalog mints is under it for good, and a default (``http://localhost:5000``) would be wrong
everywhere but on a developer's machine.
"""

from __future__ import annotations

import os
from typing import Any

bind = ["0.0.0.0:5000"]
workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
#: SPARQL queries stop at BIA_SPARQL_TIMEOUT; downloads stream in their thread without blocking the heartbeat
timeout = 120
graceful_timeout = 30
accesslog = "-"
#: no runtime control socket (``gunicornc``): a container is managed by restarting it
control_socket_disable = True
#: heartbeat files on a RAM disk: container filesystems can stall the workers' fchmod (gunicorn FAQ)
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None


def base_url_problem(value: str | None) -> str | None:
    """Why ``BIA_BASE_URL`` cannot be served under, or None when it is an http(s) URL."""
    if not value:
        return (
            "BIA_BASE_URL is not set: set it to the public URL the catalog is reached at (e.g. "
            "-e BIA_BASE_URL=https://bia.example.org); every IRI the catalog mints is under it, for good"
        )
    if not value.startswith(("http://", "https://")) or len(value.split("://", 1)[1].strip("/")) == 0:
        return f"BIA_BASE_URL={value!r} is not an http(s) URL such as https://bia.example.org"
    return None


def workers_problem(count: int) -> str | None:
    """Why ``count`` worker processes cannot serve the catalog the ``BIA_*`` variables describe, or None: the
    embedded graph stores take one writer process (the second worker would fail to boot, and gunicorn stop)."""
    from catalog.config import Settings

    settings = Settings.from_env()
    if count > 1 and not (settings.sparql_url or settings.public_sparql_url) and not settings.read_only:
        return (
            f"{count} worker processes cannot share the embedded graph stores in BIA_DATA (one process writes "
            "them): serve with one worker (its threads answer requests side by side), or put the graphs in SPARQL "
            "servers (BIA_SPARQL_URL, BIA_PUBLIC_SPARQL_URL), or run read-only replicas (BIA_READ_ONLY=1) beside "
            "one writer"
        )
    return None


def on_starting(server: Any) -> None:
    """Refuse to start (gunicorn prints the error and exits 1) without a usable ``BIA_BASE_URL``, or with more worker
    processes than the stores allow."""
    problem = base_url_problem(os.environ.get("BIA_BASE_URL")) or workers_problem(server.cfg.workers)
    if problem:
        raise RuntimeError(problem)
