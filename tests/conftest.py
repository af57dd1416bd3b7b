"""Fixtures every test module can use: the real servers the catalog talks to, started on loopback ports."""
from tests.servers.oxigraph_server import oxigraph_pair, oxigraph_server  # noqa: F401
from tests.servers.replay_server import replay_server  # noqa: F401
from tests.servers.seaweedfs_server import seaweedfs_s3  # noqa: F401
