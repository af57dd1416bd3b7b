"""Hostile and odd input, through the faces that take it: metadata documents (YAML alias bombs, deep nesting, size,
JSON indented with tabs) over HTTP, the web form and the CLI; request-body limits; file lists with numbers too
large for a file table or a JSON shape that would crash or swamp the parser; CSV/TSV exports a spreadsheet would
run as formulas."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from api.cli import cli
from api.tabular import safe_cell
from catalog.records import MAX_DEPTH, read_document
from linkers.discover import asserted_graph
from loaders import file_lists
from tests.catalog_helpers import BASE, DATA, file_bytes

ROOT = Path(__file__).parent.parent
ERROR_KEYS = {"code", "status", "message", "errors"}
PAGETAB = ROOT / "tests" / "data" / "harvest" / "biostudies" / "S-BIADTEST.json"
METADATA_LIMIT = 250_000
REQUEST_LIMIT = 500_000


def alias_bomb(levels: int = 9) -> str:
    """The 'billion laughs' YAML: each level names the one above nine times (9**levels items when walked)."""
    lines = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels):
        name, above = chr(97 + i), chr(96 + i)
        lines.append(f"{name}: &{name} [{', '.join([f'*{above}'] * 9)}]")
    return "\n".join(lines) + "\n"


DEEP_JSON = "[" * 100_000 + "]" * 100_000
DEEP_YAML = "title: deep\nnested:\n" + "".join("  " * i + "- \n" for i in range(1, 300)) + "  " * 300 + "- x\n"
DEEP_FLOW_YAML = "title: deep\nnested: " + "[" * 100_000 + "]" * 100_000 + "\n"


@pytest.fixture(scope="module")
def catalog(make_module_catalog):
    made = make_module_catalog(name="limits", max_metadata_bytes=METADATA_LIMIT, max_request_bytes=REQUEST_LIMIT)
    token, _owner = made.token("jane")
    return {"client": made.app().test_client(), "token": token, "services": made.services, "settings": made.settings}


@pytest.fixture
def client(catalog):
    return catalog["client"]


@pytest.fixture
def auth(catalog):
    return {"Authorization": f"Bearer {catalog['token']}"}


@pytest.fixture
def sub(client, auth):
    return client.post("/deposits", headers=auth).get_json()["id"]


def error_shape(response, status):
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    body = response.get_json()
    assert set(body) == ERROR_KEYS and body["status"] == status
    return body


# ---------------------------------------------------------------------- metadata over HTTP


def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path):
    """Run in a child process whose address space is capped 1 GB above what the app needs: the old reader walked
    the aliases into hundreds of millions of entries; now the PUT is a 400 naming the problem."""
    script = textwrap.dedent(f"""
        import json, resource, sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from api.app import create_app
        from api.services import open_services
        from tests.catalog_helpers import make_settings
        from tests.test_input_limits import alias_bomb
        from pathlib import Path
        services = open_services(make_settings(Path({str(tmp_path)!r})))
        token = services.archive.registry.create_token("jane")
        app = create_app(services.archive.settings, services=services)
        client = app.test_client()
        auth = {{"Authorization": f"Bearer {{token}}"}}
        sub = client.post("/deposits", headers=auth).get_json()["id"]
        with open("/proc/self/status") as status:
            size = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
        resource.setrlimit(resource.RLIMIT_AS, (size + (1 << 30), size + (1 << 30)))
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        bomb = alias_bomb().encode()
        start = time.monotonic()
        response = client.put(f"/deposits/{{sub}}/metadata?name=study.yaml", data=bomb, headers=auth)
        print(json.dumps({{"bytes": len(bomb), "status": response.status_code, "body": response.get_json(),
                          "seconds": time.monotonic() - start,
                          "grew_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before}}))
        app.extensions["bia.sparql"].close()
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["bytes"] < 600
    assert result["status"] == 400, result
    assert result["body"]["code"] == "metadata_too_complex" and "more than 1000000 values" in result["body"]["message"]
    assert result["body"]["errors"][0]["line"] and result["body"]["errors"][0]["file"] == "study.yaml"
    assert result["grew_kb"] < 50_000, result  # refused before anything expanded


@pytest.mark.parametrize(
    "name, document, line",
    [
        ("study.json", DEEP_JSON, 1),
        ("study.yaml", DEEP_YAML, 102),
        ("study.yaml", DEEP_FLOW_YAML, 2),
    ],
)
def test_deep_nesting_is_a_400_naming_file_line_and_problem(client, auth, sub, name, document, line):
    response = client.put(f"/deposits/{sub}/metadata?name={name}", data=document.encode(), headers=auth)
    body = error_shape(response, 400)
    assert body["code"] == "metadata_too_complex"
    assert f"{name}, line {line}: nested too deeply" in body["message"] and f"more than {MAX_DEPTH} levels" in body["message"]
    assert body["errors"][0]["line"] == line


def test_pagetab_tsv_sections_chained_too_deep_are_a_400(client, auth, sub):
    blocks = ["Submission\tS-BIAD9\nTitle\tDeep", "Study\tS0\nTitle\tDeep\nDescription\tx\nLicense\tCC0"]
    blocks += [f"Section\tS{i}\tS{i - 1}\nName\tpart {i}" for i in range(1, 2000)]
    body = error_shape(
        client.put(f"/deposits/{sub}/metadata?name=study.tsv", data="\n\n".join(blocks).encode(), headers=auth), 400
    )
    assert body["code"] == "metadata_too_complex" and "S-BIAD9: nested too deeply" in body["message"]


def test_metadata_over_the_size_limit_is_a_413(client, auth, sub):
    big = b"title: big\ndescription: " + b"x" * METADATA_LIMIT + b"\n"
    body = error_shape(client.put(f"/deposits/{sub}/metadata?name=study.yaml", data=big, headers=auth), 413)
    assert body["code"] == "metadata_too_large" and "BIA_MAX_METADATA_BYTES" in body["message"]
    assert str(METADATA_LIMIT) in body["message"]


def test_a_number_too_long_for_python_is_a_400(client, auth, sub):
    for name, document in (("study.json", '{"title": ' + "9" * 5000 + "}"), ("study.yaml", "title: " + "9" * 5000)):
        body = error_shape(client.put(f"/deposits/{sub}/metadata?name={name}", data=document.encode(), headers=auth), 400)
        assert "number with more than 4300 digits" in body["message"]


def test_pagetab_json_indented_with_tabs_is_read_as_json(client, auth, sub):
    document = json.dumps(json.loads(PAGETAB.read_text()), indent="\t")
    assert "\n\t" in document
    response = client.put(f"/deposits/{sub}/metadata?name=study.json", data=document.encode(), headers=auth)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["title"]


def test_json_errors_are_named_as_json_errors():
    with pytest.raises(Exception) as err:
        read_document(b'{"title": "x",\n "keywords": [}', "study.json")
    assert err.value.errors[0]["line"] == 2 and "not JSON" in err.value.message


# ---------------------------------------------------------------------- request bodies


def test_bodies_over_the_request_limit_are_a_413_in_the_error_shape(client, auth, sub):
    big = b"x" * (REQUEST_LIMIT + 1)
    body = error_shape(client.post(f"/deposits/{sub}/validate", data=big, headers=auth), 413)
    assert "BIA_MAX_REQUEST_BYTES" in body["message"]
    error_shape(client.post("/sparql", data=big, headers={"Content-Type": "application/sparql-query"}), 413)
    error_shape(client.put(f"/deposits/{sub}/metadata", data=big, headers=auth), 413)


def test_chunked_bodies_over_a_limit_are_a_413_not_cut_short(client, auth, sub):
    chunked = {"Transfer-Encoding": "chunked"}
    terminated = {"wsgi.input_terminated": True}
    over_request = b"title: x\n" + b"#" * (REQUEST_LIMIT + 10)  # cut at the limit, it would still be good YAML
    for path, body in (
        (f"/deposits/{sub}/metadata?name=study.yaml", over_request),
        (f"/deposits/{sub}/metadata?name=study.yaml", over_request[: METADATA_LIMIT + 10]),
        ("/sparql", b"SELECT * WHERE { ?s ?p ?o } #" + b"#" * REQUEST_LIMIT),
    ):
        response = client.open(
            path,
            method="PUT" if "deposits" in path else "POST",
            input_stream=io.BytesIO(body),
            headers={**auth, **chunked, "Content-Type": "application/sparql-query"},
            environ_overrides=terminated,
        )
        error_shape(response, 413)
    small = b"title: a study\n"
    response = client.put(
        f"/deposits/{sub}/metadata?name=study.yaml",
        input_stream=io.BytesIO(small),
        headers={**auth, **chunked},
        environ_overrides=terminated,
    )
    assert response.status_code == 200 and response.get_json()["title"] == "a study"


def test_uploads_of_files_and_file_lists_stream_past_the_request_limit(client, auth, sub):
    content = b"y" * (REQUEST_LIMIT * 3)
    assert client.put(f"/deposits/{sub}/files/big.bin", data=content, headers=auth).status_code == 201
    listing = "path\tsize\n" + "".join(f"folder/file{i:06d}.tif\t{i}\n" for i in range(REQUEST_LIMIT // 20))
    assert len(listing) > REQUEST_LIMIT
    assert client.put(f"/deposits/{sub}/file-lists/files.tsv", data=listing.encode(), headers=auth).status_code == 201


def test_the_web_form_keeps_to_the_metadata_limit(client, catalog):
    form = {
        "token": catalog["token"],
        "title": "A study",
        "description": "x" * (METADATA_LIMIT + 10),
        "organism": "Homo sapiens",
        "imaging_method": "confocal microscopy",
        "license": "CC0-1.0",
    }
    page = client.post("/deposit", data=form)
    assert page.status_code == 413 and "BIA_MAX_METADATA_BYTES" in page.get_data(as_text=True)


# ---------------------------------------------------------------------- the CLI


@pytest.fixture
def run(tmp_path):
    def invoke(*args: str):
        return CliRunner().invoke(
            cli,
            ["--data", str(tmp_path / "data"), "--base-url", BASE, *args],
            obj={},
            catch_exceptions=False,
            env={"BIA_MAX_METADATA_BYTES": str(METADATA_LIMIT)},
        )

    return invoke


@pytest.mark.parametrize(
    "name, document, problem",
    [
        ("deep.json", DEEP_JSON, "deep.json, line 1: nested too deeply"),
        ("deep.yaml", DEEP_FLOW_YAML, "deep.yaml, line 2: nested too deeply"),
        ("bomb.yaml", alias_bomb(), "bomb.yaml, line 7: more than 1000000 values"),
        ("big.yaml", "title: big\ndescription: " + "x" * METADATA_LIMIT, "BIA_MAX_METADATA_BYTES"),
    ],
)
def test_bia_validate_names_file_line_and_problem(tmp_path, name, document, problem):
    """``bia validate`` in a child process capped at 2 GB of address space (the old reader walked the bomb's
    aliases until the machine ran out of memory)."""
    path = tmp_path / name
    path.write_text(document)
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", "--data", str(tmp_path / "data"), "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        check=False,
        preexec_fn=_cap_memory,
        env={**os.environ, "BIA_MAX_METADATA_BYTES": str(METADATA_LIMIT)},
    )
    assert done.returncode == 1 and problem in done.stderr and "Traceback" not in done.stderr, done.stderr[-1500:]


def _cap_memory() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def test_bia_validate_reads_tab_indented_pagetab_json(run, tmp_path):
    path = tmp_path / "S-BIADTEST.json"
    path.write_text(json.dumps(json.loads(PAGETAB.read_text()), indent="\t"))
    result = run("validate", str(path))
    assert "not valid JSON or YAML" not in result.output and "valid (" in result.output, result.output


def test_bia_deposit_reads_tab_indented_pagetab_json(run, tmp_path):
    token = run("token", "create", "jane").output.strip().splitlines()[-1]
    path = tmp_path / "S-BIADTEST.json"
    path.write_text(json.dumps(json.loads(PAGETAB.read_text()), indent="\t"))
    result = run("deposit", str(path), "--token", token)
    assert result.output.strip().splitlines()[-1] == "S-BIAD1", result.output


def test_bia_deposit_keeps_to_the_same_limits(run, tmp_path):
    token = run("token", "create", "jane").output.strip().splitlines()[-1]
    path = tmp_path / "deep.json"
    path.write_text(DEEP_JSON)
    result = run("deposit", str(path), "--file-list", str(DATA / "files.tsv"), "--token", token)
    assert result.exit_code == 2 and "deep.json, line 1: nested too deeply" in result.output


# ---------------------------------------------------------------------- file lists


@pytest.mark.parametrize(
    "listing, line, message",
    [
        ("path\tsize\na.tif\t1\nb.tif\t99999999999999999999999999\n", 3, "larger than 9223372036854775807 bytes"),
        ("path\tsize\na.tif\t9223372036854775808\n", 2, "larger than 9223372036854775807 bytes"),
        ("path\tsize\na.tif\t-3\n", 2, "size is negative"),
        ("path\tsize\na.tif\t" + "9" * 5000 + "\n", 2, "larger than 9223372036854775807 bytes"),
    ],
)
def test_sizes_a_file_table_cannot_hold_are_named_at_validate(client, auth, sub, listing, line, message):
    assert client.put(f"/deposits/{sub}/file-lists/files.tsv", data=listing.encode(), headers=auth).status_code == 201
    response = client.post(f"/deposits/{sub}/validate", headers=auth)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    errors = [e for e in response.get_json()["errors"] if e.get("field") == "size"]
    assert errors and errors[0]["line"] == line and message in errors[0]["message"] and errors[0]["file"] == "files.tsv"
    error_shape(client.post(f"/deposits/{sub}/finalize", headers=auth), 422)


@pytest.mark.parametrize(
    "entries, message",
    [
        ('[{"path": "a.tif", "size": 99999999999999999999999999}]', "larger than 9223372036854775807 bytes"),
        ('[{"path": "a.tif", "size": -1}]', "size is negative"),
    ],
)
def test_json_file_list_sizes_are_checked_too(client, auth, sub, entries, message):
    assert client.put(f"/deposits/{sub}/file-lists/files.json", data=entries.encode(), headers=auth).status_code == 201
    errors = client.post(f"/deposits/{sub}/validate", headers=auth).get_json()["errors"]
    assert any(e.get("line") == 1 and message in e["message"] for e in errors), errors


@pytest.mark.parametrize(
    "entries, message",
    [
        (b'[{"path": "a.tif", "attributes": ' + b"[" * 100_000 + b"]" * 100_000 + b"}]", "nested deeper than 100 levels"),
        (b'[{"path": "a.tif"}, {"path": "b.tif", "size": ' + b"9" * 5000 + b"}]", "a number with more than 100 digits"),
        (b'[{"path": "' + b"a" * 3_000_000 + b'"}]', "an entry longer than 1048576 bytes"),
    ],
)
def test_json_file_lists_that_would_crash_or_swamp_the_parser_are_refused(tmp_path, entries, message):
    """Run in a capped child process: ijson kept a prefix per level (20,000 levels took 1 GB) and crashed on
    integers of over 4,300 digits."""
    path = tmp_path / "files.json"
    path.write_bytes(entries)
    script = textwrap.dedent(f"""
        import json, resource, sys
        sys.path.insert(0, {str(ROOT)!r})
        from loaders import file_lists
        resource.setrlimit(resource.RLIMIT_AS, (1 << 31, 1 << 31))
        try:
            report = file_lists.check_file_list({str(path)!r})
            print(json.dumps(report.errors, default=str))
        except file_lists.FileListError as exc:
            print(json.dumps(exc.errors, default=str))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT, check=False)
    assert done.returncode == 0, (done.returncode, done.stderr[-1500:])
    errors = json.loads(done.stdout.strip().splitlines()[-1])
    assert any(message in e["message"] and e["line"] for e in errors), errors


@pytest.mark.parametrize("fmt, line_end", [("tsv", b"\n"), ("csv", b"\r")])
def test_a_line_too_long_for_a_file_list_is_refused_before_it_is_held(fmt, line_end):
    sep = b"\t" if fmt == "tsv" else b","
    listing = line_end.join(
        [b"path" + sep + b"size", b"a.tif" + sep + b"1", b"b.tif" + sep * 2_000_000, b"c.tif" + sep + b"2", b""]
    )
    with pytest.raises(file_lists.FileListError) as err:
        file_lists.check_file_list(io.BytesIO(listing), name=f"files.{fmt}")
    assert err.value.errors[-1]["line"] == 3 and "a line longer than 1048576 bytes" in err.value.message


def test_a_normal_json_file_list_reads_as_before():
    rows = list(
        file_lists.iter_file_list(
            io.BytesIO(
                b'[{"path": "a\\"b[.tif", "size": 12}, {"path": "c.tif", "size": "00012",'
                b' "attributes": [{"name": "n", "value": "]]}{\\\\"}, {"name": "x", "value": -3.5}]}]'
            ),
            name="l.json",
        )
    )
    assert [(r.path, r.size) for r in rows] == [('a"b[.tif', 12), ("c.tif", 12)]
    assert rows[1].attributes == {"n": "]]}{\\", "x": "-3.5"}


# ---------------------------------------------------------------------- CSV / TSV exports

HOSTILE = ['=HYPERLINK("http://evil.example","x")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(1+1)"]


@pytest.fixture(scope="module")
def hostile_study(catalog):
    services = catalog["services"]
    deposits, registry = services.deposits, services.archive.registry
    owner = registry.owner_of_token(catalog["token"])
    sub = deposits.create(owner)
    paths = [f"{value[0]}file{i}.tif" for i, value in enumerate(HOSTILE)]
    lines = ["path\t=Column\tNote\tOffset"]
    for i, path in enumerate(paths):
        content = file_bytes(path)
        deposits.upload(sub, owner, path, io.BytesIO(content), size=len(content), md5=hashlib.md5(content).hexdigest())
        lines.append(f"{path}\t{HOSTILE[i].replace(chr(9), ' ')}\tplain\t{-3.5 * (i + 1)}")
    deposits.attach_file_list(sub, owner, "files.tsv", io.BytesIO(("\n".join(lines) + "\n").encode()))
    deposits.attach_metadata(sub, owner, "study.yaml", (DATA / "study.yaml").read_bytes())
    return deposits.finalize(sub, owner), paths


def _cells(text: str, delimiter: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text), delimiter=delimiter))


@pytest.mark.parametrize("suffix, delimiter", [("csv", ","), ("tsv", "\t")])
def test_file_table_exports_neutralise_formulas(client, hostile_study, suffix, delimiter):
    accession, paths = hostile_study
    rows = _cells(client.get(f"/studies/{accession}/files.{suffix}").get_data(as_text=True), delimiter)
    header, body = rows[0], rows[1:]
    assert "'=Column" in header and "=Column" not in header
    column = header.index("'=Column")
    assert sorted(r[column] for r in body) == sorted("'" + value for value in HOSTILE)
    assert sorted(r[header.index("path")] for r in body) == sorted("'" + p for p in paths)
    assert sorted(r[header.index("Offset")] for r in body) == sorted(str(-3.5 * (i + 1)) for i in range(len(HOSTILE)))
    assert not [cell for row in body for cell in row if cell[:1] in "=+@" or (cell[:1] == "-" and not _number(cell))]


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_the_manifest_neutralises_formulas(client, hostile_study):
    accession, paths = hostile_study
    rows = _cells(client.get(f"/studies/{accession}/manifest").get_data(as_text=True), "\t")
    assert rows[0] == ["url", "path", "size", "md5", "sha256", "type"]
    assert sorted(r[1] for r in rows[1:]) == sorted("'" + p for p in paths)


def test_links_tsv_neutralises_formulas(client, catalog, hostile_study):
    accession, _paths = hostile_study
    archive = catalog["services"].archive
    study = f"{BASE}/studies/{accession}"
    evil = '=HYPERLINK("http://evil.example")'
    link = f"{BASE}/links/evil"
    triples = "".join(
        f"<{link}> <https://w3id.org/rembi/{p}> {o} .\n"
        for p, o in (
            ("linkSource", f"<{study}>"),
            ("linkTarget", "<https://example.org/x>"),
            ("relation", "<https://w3id.org/rembi/related_to>"),
            ("inferred", '"false"'),
            ("evidence", json.dumps(evil)),
        )
    )
    triples += f"<{link}> <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> <https://w3id.org/rembi/Link> .\n"
    archive.public.graph.replace_graph(asserted_graph(BASE), triples)
    rows = _cells(client.get("/links.tsv").get_data(as_text=True), "\t")
    assert rows[0] == ["source", "relation", "target", "inferred", "evidence"]
    assert ["'" + evil] == [r[4] for r in rows[1:] if r[0] == study]


def test_safe_cell_follows_owasp_and_leaves_numbers_alone():
    for value in ("=1+1", "+1+1", "-1+1", "@A1", "\t=1", "\r=1", "-", "+", "-A1"):
        assert safe_cell(value) == "'" + value
    for value in ("-3.5", "+2", "-1e-3", ".5", "plain", "", "a=b", "'=quoted"):
        assert safe_cell(value) == value
    assert safe_cell(-3.5) == -3.5 and safe_cell(None) == "" and safe_cell(12) == 12
