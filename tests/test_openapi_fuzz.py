"""A bounded schemathesis pass over ``/openapi.json``: every operation, anonymous and with a bearer token, against
the Flask app (WSGI) over a catalog of the demo studies and two deposits; the only check is that no answer is a 5xx.

The run is derandomized (the same examples every time) with a fixed number of examples per operation and mode, so
it stays within a minute or two on two cores. Response-schema conformance is checked by tests/test_openapi.py, on
answers of every operation. Schemathesis's pytest plugin (``from_fixture``) does not run under this pytest, so each
operation's strategy is drawn by a Hypothesis test of its own inside one pytest test per authentication.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.errors import FailureGroup

from tests.catalog_helpers import stage_sample

MAX_EXAMPLES = 10  # per operation, generation mode and set of pinned path parameters
FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure is reported as drawn, in bounded time
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def fuzz_catalog(make_module_catalog):
    """The app over the demo studies, a released, an embargoed and an open deposit, and a token of their owner;
    ``pinned``: path parameters naming real things, so generated requests also reach past the 404s."""
    made = make_module_catalog(name="fuzz", demo=True, sparql_timeout=3.0, sparql_workers=1)
    services, deposits = made.services, made.services.deposits
    token, owner = made.token("fuzzer")
    released_sub = stage_sample(deposits, owner)
    released = deposits.finalize(released_sub, owner)
    embargoed = deposits.finalize(stage_sample(deposits, owner, release_date="2999-01-01"), owner)
    harvested = "S-BIAD1492"
    file_id = services.archive.public.files.query(released).items[0]["file_id"]
    pinned = [{"accession": a} for a in (harvested, released, embargoed)] + [
        {"accession": released, "file_id": file_id},
        {"sub_id": stage_sample(deposits, owner)},  # open
        {"sub_id": released_sub},  # finalized
    ]
    return {"app": made.app(), "token": token, "pinned": pinned}


def _query(name: str, kind: str = "string") -> dict:
    return {"name": name, "in": "query", "schema": {"type": kind}}


def _header(name: str) -> dict:
    return {"name": name, "in": "header", "schema": {"type": "string"}}


_TABLE = [
    _query("filter[format]"),
    _query("filter[Plate]"),
    _query("filter[path][prefix]"),
    _query("filter[size][gte]"),
    _query("filter[Well][ne]"),
    _header("Accept"),
]
_RECORD = [_header("Accept"), _header("If-None-Match"), _header("If-Modified-Since"), _query("format")]
#: What the routes read but the OpenAPI description leaves out (negotiation and conditional headers, which OpenAPI
#: does not list as parameters, and file-table filters on the sample's own columns): added to the copy fuzzed here,
#: so generated requests reach file-table filters, cursors and negotiation too.
UNDOCUMENTED = {
    ("/search", "get"): [_header("Accept")],
    ("/studies/{accession}/files", "get"): _TABLE,
    ("/studies/{accession}/files.{fmt}", "get"): _TABLE,
    ("/studies/{accession}", "get"): _RECORD,
    ("/studies/{accession}/{subpath}", "get"): _RECORD,
    ("/studies/{accession}/manifest", "get"): [_header("Accept")],
    ("/files/{accession}/{file_id}/download", "get"): [
        _header("Range"),
        _header("If-Range"),
        _header("If-None-Match"),
        _header("If-Match"),
    ],
    ("/stats", "get"): [_header("Accept")],
}


def fuzzed_schema(app):
    """The app's OpenAPI description, with :data:`UNDOCUMENTED` parameters, loaded by schemathesis against ``app``."""
    spec = app.test_client().get("/openapi.json").get_json()
    for (path, method), parameters in UNDOCUMENTED.items():
        operation = spec["paths"][path][method]
        operation["parameters"] = operation.get("parameters", []) + parameters
    schema = schemathesis.openapi.from_dict(spec)
    schema.app = app  # as schemathesis.openapi.from_wsgi does: requests go to the WSGI app
    return schema


def server_error(operation, mode: GenerationMode, headers: dict[str, str], pinned: dict[str, str]) -> str | None:
    """The first request of ``operation`` drawn in ``mode`` (``pinned`` path parameters fixed) that got a 5xx,
    described; None when there was none, or when the schema allows no request of that mode."""

    @FUZZ_SETTINGS
    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=pinned or None))
    def run(case):
        case.call_and_validate(headers=headers, checks=[not_a_server_error])

    try:
        run()
    except Unsatisfiable:  # e.g. no negative value of an unconstrained string
        return None
    except (FailureGroup, Exception) as failure:  # noqa: BLE001 - every failure is collected and reported together
        return f"{operation.label} ({mode.value}, {pinned or 'nothing pinned'}): {failure}"
    return None


def pinnings(operation, pinned: list[dict[str, str]]) -> list[dict[str, str]]:
    """Nothing pinned, then every set of real values whose names are all path parameters of ``operation``."""
    names = {parameter.name for parameter in operation.path_parameters}
    return [{}] + [values for values in pinned if set(values) <= names]


def ends_a_submission(operation) -> bool:
    return operation.method.upper() == "DELETE" or operation.path.endswith("/finalize")


@pytest.mark.parametrize("authenticated", [False, True], ids=["anonymous", "bearer"])
def test_no_server_errors(fuzz_catalog, authenticated):
    headers = {"Authorization": f"Bearer {fuzz_catalog['token']}"} if authenticated else {}
    schema = fuzzed_schema(fuzz_catalog["app"])
    # discarding and finalizing last, so the open submission is still open for the other deposit operations
    operations = sorted((result.ok() for result in schema.get_all_operations()), key=ends_a_submission)
    assert len(operations) > 30
    failures = [
        found
        for operation in operations
        for pinned in pinnings(operation, fuzz_catalog["pinned"])
        for mode in GenerationMode
        if (found := server_error(operation, mode, headers, pinned)) is not None
    ]
    assert not failures, "\n\n".join(failures)
