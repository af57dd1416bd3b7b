"""The project's own promises: the README's commands, CI, the console script."""
from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent


def _readme_commands() -> list[str]:
    block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    return [line for line in block.splitlines() if line and not line.startswith("#")]


def test_readme_starts_with_two_commands():
    commands = _readme_commands()
    assert len(commands) == 2
    assert "pip install" in commands[0] and "bia " in commands[0]
    assert "pip install" in commands[1] and "pytest" in commands[1]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert _readme_commands()[1] in ci


def test_ci_runs_lint_and_type_gates_with_pinned_tools():
    import configparser

    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    gates = [line for line in lines if line.startswith(".venv/bin/") and "pytest" not in line]
    assert gates == [".venv/bin/pip install -q '.[lint]'", ".venv/bin/ruff check .", ".venv/bin/mypy"]
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    pins = [line.strip() for line in setup["options.extras_require"]["lint"].splitlines() if line.strip()]
    assert {p.split("==")[0] for p in pins} >= {"ruff", "mypy"} and all("==" in p for p in pins)
    assert "[tool.mypy]" in (ROOT / "pyproject.toml").read_text()


def test_bia_help_lists_commands():
    from api.cli import cli

    result = CliRunner().invoke(cli, ["--help"], obj={})
    assert result.exit_code == 0
    for command in ("schema", "validate"):
        assert command in result.output
