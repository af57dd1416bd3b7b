"""Fixtures every test module can use: the real servers the catalog talks to, started on loopback ports, a factory of
catalogs in temp folders, and the ``bia`` command line on a catalog in a temp folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from click.testing import CliRunner
from flask import Flask

from api.app import create_app
from api.cli import cli, load_demo
from api.services import Services, open_services
from catalog.config import Settings
from catalog.state_db import PostgresStateDB, SqliteStateDB, StateDB
from catalog.state_schema import ensure_schema
from tests.catalog_helpers import BASE, make_settings

from tests.servers.http_proxy import http_proxy  # noqa: F401
from tests.servers.oxigraph_server import oxigraph_pair, oxigraph_server  # noqa: F401
from tests.servers.postgres_server import postgres_server, postgres_url  # noqa: F401
from tests.servers.range_server import range_server  # noqa: F401
from tests.servers.replay_server import replay_server  # noqa: F401
from tests.servers.seaweedfs_server import seaweedfs_s3  # noqa: F401


class Catalog:
    """A catalog in a folder of its own: its settings, its open services and the apps made over it, closed together."""

    def __init__(self, folder: Path, *, demo: bool = False, **overrides: Any) -> None:
        self.folder = folder
        self.settings: Settings = make_settings(folder, **overrides)
        self.services: Services = open_services(self.settings)
        self._apps: list[Flask] = []
        if demo:
            load_demo(self.services)

    def app(self, settings: Settings | None = None, **changes: Any) -> Flask:
        """The web app over this catalog, with ``settings`` (default: the catalog's) changed by ``changes``."""
        settings = settings or self.settings
        made = create_app(settings.with_(**changes) if changes else settings, services=self.services)
        self._apps.append(made)
        return made

    def token(self, name: str = "jane") -> tuple[str, str]:
        """A new API token of ``name`` and the owner it stands for."""
        registry = self.services.archive.registry
        token = registry.create_token(name)
        return token, registry.owner_of_token(token)

    def close(self) -> None:
        for made in self._apps:
            made.extensions["bia.sparql"].close()
        self.services.close()


MakeCatalog = Callable[..., Catalog]


def _catalogs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MakeCatalog]:
    made: list[Catalog] = []

    def make(*, demo: bool = False, folder: Path | None = None, name: str = "catalog", **overrides: Any) -> Catalog:
        made.append(Catalog(folder or tmp_path_factory.mktemp(name), demo=demo, **overrides))
        return made[-1]

    yield make
    for catalog in reversed(made):
        catalog.close()


@pytest.fixture
def make_catalog(tmp_path_factory) -> Iterator[MakeCatalog]:
    """``make_catalog(demo=False, folder=None, name="catalog", **settings_overrides)``: a :class:`Catalog` (in a new
    temp folder unless ``folder`` is given; with the bundled demo studies if ``demo``), closed after the test."""
    yield from _catalogs(tmp_path_factory)


@pytest.fixture(scope="module")
def make_module_catalog(tmp_path_factory) -> Iterator[MakeCatalog]:
    """:func:`make_catalog` for module-scoped fixtures: its catalogs are closed after the module."""
    yield from _catalogs(tmp_path_factory)


@pytest.fixture
def run(tmp_path):
    """Invoke ``bia`` on a catalog in a temp folder; returns the click Result."""
    data = tmp_path / "data"

    def invoke(*args: str, ok: bool = True):
        result = CliRunner().invoke(cli, ["--data", str(data), "--base-url", BASE, *args], obj={}, catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    invoke.data = data
    return invoke


@pytest.fixture(params=["sqlite", "postgresql"])
def state_db(request, tmp_path) -> Iterator[StateDB]:
    """A state database of each engine: SQLite in a temp folder, PostgreSQL in a fresh schema of a real server."""
    db: StateDB
    if request.param == "sqlite":
        db = SqliteStateDB(tmp_path / "state.sqlite")
    else:
        db = PostgresStateDB(request.getfixturevalue("postgres_url"))
    ensure_schema(db)
    yield db
    db.close()
