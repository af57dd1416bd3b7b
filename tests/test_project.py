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
    assert gates == [
        ".venv/bin/pip install -q '.[lint]'",
        ".venv/bin/ruff check .",
        ".venv/bin/ruff format --check .",
        ".venv/bin/mypy",
    ]
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


#: endings that make a backticked name in the Layout table a file's name (``create_app`` or ``bia`` are not)
_FILE_SUFFIXES = (".py", ".yaml", ".yml", ".ttl", ".json", ".jsonld", ".txt", ".html", ".toml", ".cfg")


def _expand_braces(pattern: str) -> list[str]:
    """``data/{valid,invalid}/`` → ``data/valid/``, ``data/invalid/``."""
    found = re.search(r"\{([^{}]*)\}", pattern)
    if not found:
        return [pattern]
    return [
        path
        for choice in found.group(1).split(",")
        for path in _expand_braces(pattern[: found.start()] + choice + pattern[found.end() :])
    ]


def _layout_paths() -> list[str]:
    """Every path README.md's Layout table names, relative to the repository: each row's folder, and each backticked
    name in its description that holds a ``/`` or ends as a file does (relative to the row's folder unless it starts
    with it; braces expanded, ``*`` kept for globbing)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = re.search(r"^## Layout\n(.*?)(?=^## )", readme, re.S | re.M)
    assert section, "README.md has no '## Layout' section"
    rows = [line.strip().strip("|").split("|") for line in section.group(1).splitlines() if line.startswith("|")]
    paths = []
    for folder_cell, description in rows[2:]:  # after the header and its separator
        folder = folder_cell.strip().strip("`")
        paths.append(folder)
        for name in re.findall(r"`([^`]+)`", description):
            if "/" in name or name.endswith(_FILE_SUFFIXES):
                paths.extend(_expand_braces(name if name.startswith(folder) else folder + name))
    return paths


def _exists(path: str) -> bool:
    if "*" in path:
        return any(ROOT.glob(path))
    return (ROOT / path).is_dir() if path.endswith("/") else (ROOT / path).is_file()


def test_readme_layout_names_only_paths_that_exist():
    paths = _layout_paths()
    missing = [path for path in paths if not _exists(path)]
    assert len(paths) > 10 and not missing, f"README.md's Layout table names paths the repository does not hold: {missing}"


def test_readme_layout_names_every_package_folder():
    """Every Python package folder (top level and one below) is in the Layout table, as a row or in its row's text."""
    named = {path.rstrip("/") for path in _layout_paths()}
    packages = {
        init.parent.relative_to(ROOT).as_posix()
        for pattern in ("*/__init__.py", "*/*/__init__.py")
        for init in ROOT.glob(pattern)
        if not init.relative_to(ROOT).parts[0].startswith(".")
    }
    assert {"catalog", "api", "loaders", "linkers"} <= packages
    assert not packages - named, f"README.md's Layout table leaves out {sorted(packages - named)}"
