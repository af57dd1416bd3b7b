"""The duplicate-path check of :func:`loaders.file_lists.check_file_list`: paths seen so far kept on disk."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from typing import Any

from loaders.file_lists.rows import problem


class DuplicateFinder:
    """Paths seen so far, on disk: bulk inserts into a temporary SQLite table, one ``GROUP BY`` at the end."""

    _BATCH = 50_000

    def __init__(self, tmp_dir: str | os.PathLike | None) -> None:
        self._tmp_dir = tmp_dir
        self._batch: list[tuple[str, int]] = []

    def __enter__(self) -> DuplicateFinder:
        self._folder = tempfile.TemporaryDirectory(dir=self._tmp_dir, prefix="file-list-")
        self._db = sqlite3.connect(os.path.join(self._folder.name, "paths.sqlite"))
        self._db.executescript(
            "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; CREATE TABLE seen (path TEXT NOT NULL, line INTEGER NOT NULL);"
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self._db.close()
        self._folder.cleanup()

    def add(self, path: str, line: int) -> None:
        self._batch.append((path, line))
        if len(self._batch) >= self._BATCH:
            self._flush()

    def _flush(self) -> None:
        self._db.executemany("INSERT INTO seen VALUES (?, ?)", self._batch)
        self._batch.clear()

    def problems(self, label: str, limit: int) -> tuple[list[dict[str, Any]], int]:
        """(the first ``limit`` duplicate rows as problems, in line order; how many rows repeat a path)."""
        self._flush()
        db = self._db
        db.execute("CREATE TABLE repeated AS SELECT path, min(line) AS first, count(*) AS n FROM seen GROUP BY path HAVING n > 1")
        count = db.execute("SELECT coalesce(sum(n - 1), 0) FROM repeated").fetchone()[0]
        if not count:
            return [], 0
        rows = db.execute(
            "SELECT s.line, s.path, r.first FROM seen AS s JOIN repeated AS r ON r.path = s.path"
            " WHERE s.line > r.first ORDER BY s.line LIMIT ?",
            (limit,),
        )
        found = []
        for line, path, first in rows:
            found_problem = problem(label, line, "path", f"duplicate path {path!r}, first on line {first}", path)
            found.append(found_problem | {"other_line": first})
        return found, count
