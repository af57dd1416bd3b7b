"""Fixtures every test module can use: the real servers the catalog talks to, started on loopback ports, and the
``bia`` command line on a catalog in a temp folder."""
import pytest
from click.testing import CliRunner

from api.cli import cli
from tests.catalog_helpers import BASE

from tests.servers.oxigraph_server import oxigraph_pair, oxigraph_server  # noqa: F401
from tests.servers.replay_server import replay_server  # noqa: F401
from tests.servers.seaweedfs_server import seaweedfs_s3  # noqa: F401


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
