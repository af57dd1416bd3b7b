"""Owner tokens from the command line: ``bia token create|list|revoke``; a revoked token is refused at once by a
server that is already running on the same catalog."""

from __future__ import annotations

import datetime as dt
import re
import time


from api.app import create_app
from api.services import open_services
from catalog.config import Settings
from tests.catalog_helpers import BASE


def create(run, owner: str) -> tuple[str, str]:
    """(id, token) of a new token of ``owner``, as `bia token create` prints them."""
    first, token = run("token", "create", owner).output.strip().splitlines()[-2:]
    token_id = re.search(r"token ([0-9a-f]{12}) for", first).group(1)
    return token_id, token


def listed(run, *args: str) -> dict[str, tuple[str, str]]:
    lines = run("token", "list", *args).output.strip().splitlines()
    assert lines[0].split() == ["ID", "OWNER", "CREATED"]
    return {cols[0]: (cols[1], cols[2]) for cols in (line.split() for line in lines[1:])}


def test_list_shows_id_owner_and_created_but_never_a_token(run):
    jane_id, jane = create(run, "jane")
    bob_id, bob = create(run, "bob")
    output = run("token", "list").output
    assert jane not in output and bob not in output
    rows = listed(run)
    assert rows.keys() == {jane_id, bob_id} and rows[jane_id][0] == "jane" and rows[bob_id][0] == "bob"
    created = dt.datetime.fromisoformat(rows[jane_id][1])
    assert created.utcoffset() == dt.timedelta(0) and abs(time.time() - created.timestamp()) < 120
    assert listed(run, "--owner", "bob").keys() == {bob_id}


def test_a_revoked_token_gets_401_at_once_from_a_running_server(run):
    jane_id, jane = create(run, "jane")
    other_id, other = create(run, "jane")
    settings = Settings.from_env({}, data_dir=run.data, base_url=BASE, sparql_workers=1)
    with open_services(settings) as services:
        app = create_app(settings, services=services)
        client = app.test_client()
        try:
            assert client.get("/me/studies", headers={"Authorization": f"Bearer {jane}"}).status_code == 200
            assert run("token", "revoke", jane_id).output.strip().startswith(f"revoked {jane_id} of jane (created ")
            refused = client.get("/me/studies", headers={"Authorization": f"Bearer {jane}"})
            assert refused.status_code == 401 and refused.get_json()["code"] == "unauthorized"
            assert client.get("/me/studies", headers={"Authorization": f"Bearer {other}"}).status_code == 200
            form = client.post("/my-deposits", data={"token": jane})
            assert form.status_code == 401
        finally:
            app.extensions["bia.sparql"].close()
    assert listed(run).keys() == {other_id}


def test_revoke_every_token_of_an_owner(run):
    jane_ids = {create(run, "jane")[0] for _ in range(3)}
    bob_id, _bob = create(run, "bob")
    output = run("token", "revoke", "--owner", "jane").output
    assert {line.split()[1] for line in output.strip().splitlines()} == jane_ids
    assert listed(run).keys() == {bob_id}


def test_revoke_needs_one_known_id_or_owner(run):
    create(run, "jane")
    for args in ((), ("abc", "--owner", "jane")):
        result = run("token", "revoke", *args, ok=False)
        assert result.exit_code == 2 and "token id or --owner" in result.output
    unknown = run("token", "revoke", "0123456789ab", ok=False)
    assert unknown.exit_code == 2 and "no token with id 0123456789ab" in unknown.output
    malformed = run("token", "revoke", "bia_secret", ok=False)
    assert malformed.exit_code == 2 and "not a token id" in malformed.output
    nobody = run("token", "revoke", "--owner", "nobody", ok=False)
    assert nobody.exit_code == 2 and "no token of 'nobody'" in nobody.output
    assert len(listed(run)) == 1
