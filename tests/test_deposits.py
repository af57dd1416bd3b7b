"""Deposits end to end, on the embedded stores and on oxigraph serve + SeaweedFS: staging, validation, finalize, accessions, embargo, release."""

from __future__ import annotations

import hashlib
import io
import threading

import pytest

from catalog.errors import CatalogError, Conflict, Unauthorized, ValidationFailed
from catalog.file_index import Filter
from catalog.stats import catalog_stats
from tests.catalog_helpers import BASE, DATA, file_bytes, listed_paths, stage_sample

FUTURE = "2999-01-01"


@pytest.fixture(params=["embedded", "remote+s3"])
def services(request, tmp_path):
    """The catalog on its embedded stores, and as a site runs it at scale: two `oxigraph serve` instances,
    SeaweedFS S3 and its state in PostgreSQL."""
    overrides = {}
    if request.param == "remote+s3":
        public, private = request.getfixturevalue("oxigraph_pair")
        s3 = request.getfixturevalue("seaweedfs_s3")
        overrides = dict(
            sparql_url=private.url,
            public_sparql_url=public.url,
            s3_endpoint=s3.endpoint,
            s3_bucket=s3.new_bucket("deposits"),
            s3_access_key=s3.access_key,
            s3_secret_key=s3.secret_key,
            database_url=request.getfixturevalue("postgres_url"),
        )
    make_catalog = request.getfixturevalue("make_catalog")  # after the servers, so closed before they stop
    return make_catalog(folder=tmp_path, **overrides).services


@pytest.fixture
def owner(services):
    token = services.archive.registry.create_token("jane")
    return services.archive.registry.owner_of_token(token)


def test_tokens(services):
    token = services.archive.registry.create_token("alice")
    assert token.startswith("bia_") and services.archive.registry.owner_of_token(token) == "alice"
    with pytest.raises(Unauthorized):
        services.archive.registry.owner_of_token("bia_wrong")
    with pytest.raises(Unauthorized):
        services.archive.registry.owner_of_token(None)


def test_finalize_stores_the_whole_study(services, owner):
    deposits, archive = services.deposits, services.archive
    sub = stage_sample(deposits, owner)
    report = deposits.validate(sub, owner)
    assert report["valid"], report["errors"]
    assert report["files"]["staged"] == 6 and report["files"]["missing"] == 0

    accession = deposits.finalize(sub, owner)
    assert accession == "S-BIAD1"
    study = f"{BASE}/studies/{accession}"

    # files moved to permanent storage, with their checksums
    for path in listed_paths():
        stored = archive.file_store.stat(f"studies/{accession}/{path}")
        assert stored is not None and stored.sha256 == hashlib.sha256(file_bytes(path)).hexdigest()
    assert list(archive.file_store.list(f"staging/{sub}/")) == []

    # the graph: metadata, files with attributes, associations
    graph = archive.public.graph
    assert graph.has_graph(study)
    assert graph.ask(
        f"PREFIX rembi: <https://w3id.org/rembi/> PREFIX schema: <http://schema.org/>"
        f" ASK {{ GRAPH <{study}> {{ <{study}> rembi:files ?f . ?f rembi:path 'plate1/A02.tif' ; rembi:attributes ?a ."
        f" ?a schema:name 'Compound' ; schema:value 'taxol' . ?f rembi:component ?c . ?c rembi:biosample ?b }} }}"
    )
    # the derived indexes
    hits = archive.public.search.search("nuclear morphology")
    assert [h.accession for h in hits.hits] == [accession]
    page = archive.public.files.query(accession, filters=[Filter("Compound", "eq", "taxol")], sort=[("Concentration", False)])
    assert [row["path"] for row in page.items] == ["plate1/A02.tif", "plate2/A02.tif"]
    assert page.total == 2

    row = archive.registry.study(accession)
    assert row.state == "released" and row.file_count == 6 and row.owner == "jane"
    assert deposits.get(sub, owner)["status"] == "finalized"
    with pytest.raises(Conflict):
        deposits.finalize(sub, owner)


def test_accessions_are_never_reused(services, owner):
    first = services.deposits.finalize(stage_sample(services.deposits, owner), owner)
    bad = stage_sample(services.deposits, owner, skip=("plate2/B01.tif",))
    with pytest.raises(ValidationFailed):
        services.deposits.finalize(bad, owner)
    second = services.deposits.finalize(stage_sample(services.deposits, owner), owner)
    assert (first, second) == ("S-BIAD1", "S-BIAD2")


def test_minting_skips_accessions_harvested_records_hold_and_harvests_never_replace_deposits(services, owner, tmp_path):
    from loaders.harvest import Harvester

    registry = services.archive.registry
    registry.begin_put("S-BIAD1", None, "2020-01-01", "pagetab", "a harvested study")  # as a harvest of S-BIAD1 would
    registry.finish("S-BIAD1", "released")
    first = services.deposits.finalize(stage_sample(services.deposits, owner), owner)
    assert first == "S-BIAD2"
    record = (DATA.parent / "harvest" / "biostudies" / "S-BIADTEST.json").read_text().replace("S-BIADTEST", first)
    (tmp_path / "clash.json").write_text(record)
    summary = Harvester(services.archive, metadata_only=True).run("pagetab", [str(tmp_path / "clash.json")])
    assert summary.loaded == [] and "a harvest never replaces it" in dict(summary.failed)[first]
    assert registry.study(first).source == "deposit" and registry.study(first).owner == owner


def test_a_failed_or_late_upload_never_touches_the_staged_copy(services, owner):
    deposits = services.deposits
    sub = stage_sample(deposits, owner)
    path = listed_paths()[0]
    with pytest.raises(CatalogError):  # a re-upload with a wrong checksum
        deposits.upload(sub, owner, path, io.BytesIO(b"other bytes"), md5="0" * 32)
    assert deposits.validate(sub, owner)["valid"]

    class SlowBody(io.BytesIO):  # an upload still arriving when the finalize begins
        def read(self, *args):
            finalized.wait(30)
            return super().read(*args)

    finalized = threading.Event()
    late: dict = {}

    def upload_late():
        try:
            deposits.upload(sub, owner, path, SlowBody(b"replacement"))
        except CatalogError as exc:
            late["error"] = exc

    thread = threading.Thread(target=upload_late)
    thread.start()
    accession = deposits.finalize(sub, owner)
    finalized.set()
    thread.join(30)
    assert isinstance(late.get("error"), Conflict)
    stored = services.archive.file_store.stat(f"studies/{accession}/{path}")
    assert stored is not None and stored.md5 == hashlib.md5(file_bytes(path)).hexdigest()
    with pytest.raises(Conflict):
        deposits.discard(sub, owner)  # a finalized submission is not discarded
    assert deposits.validate(sub, owner)["valid"]  # it shows the report it was finalized with
    with pytest.raises(ValidationFailed, match="YYYY-MM-DD"):
        deposits.set_release_date(deposits.create(owner), owner, "20300101")


def test_a_finalize_commits_only_what_it_validated(services, owner, monkeypatch):
    """A file list attached between a finalize's validation and its accession (two requests racing) refuses the
    finalize: its paths were never checked. Nothing is minted; validated again, the list's errors show."""
    deposits, registry = services.deposits, services.archive.registry
    sub = stage_sample(deposits, owner)
    begin = registry.begin_finalize
    bad_list = (DATA / "files.tsv").read_text() + "evil\u202egnp.exe\t1\tA01\t0\tDMSO\n"

    def racing_attach(*args, **kwargs):
        monkeypatch.setattr(registry, "begin_finalize", begin)
        deposits.attach_file_list(sub, owner, "files.tsv", io.BytesIO(bad_list.encode()))
        return begin(*args, **kwargs)

    monkeypatch.setattr(registry, "begin_finalize", racing_attach)
    with pytest.raises(Conflict, match="changed while it was being validated"):
        deposits.finalize(sub, owner)
    assert registry.study("S-BIAD1") is None and deposits.get(sub, owner)["status"] == "open"
    report = deposits.validate(sub, owner)
    assert not report["valid"] and any("bidirectional" in e["message"] for e in report["errors"])


def test_a_finalize_racing_a_discard_says_the_submission_was_discarded(services, owner, monkeypatch):
    """The depositor discards the submission while its finalize is checking it: the finalize is refused as a conflict
    naming what happened, not a 404 naming a file list's storage key."""
    deposits = services.deposits
    sub = stage_sample(deposits, owner)
    check = deposits.formats.check_file_list

    def discarded_meanwhile(*args, **kwargs):
        monkeypatch.setattr(deposits.formats, "check_file_list", check)
        deposits.discard(sub, owner)
        return check(*args, **kwargs)

    monkeypatch.setattr(deposits.formats, "check_file_list", discarded_meanwhile)
    with pytest.raises(Conflict, match="was discarded while it was being checked"):
        deposits.finalize(sub, owner)


def test_a_file_list_refused_late_never_changes_the_list_in_place(services, owner, monkeypatch):
    """Attaching a list under a name again never writes over the bytes the submission names (a finalize that began
    meanwhile reads those); a refused attach leaves no bytes behind."""
    deposits, store = services.deposits, services.archive.file_store
    sub = stage_sample(deposits, owner)
    listing = (DATA / "files.tsv").read_bytes()
    deposits.attach_file_list(sub, owner, "files.tsv", io.BytesIO(listing))
    (entry,) = services.archive.registry.submission(sub)["file_lists"]
    before = set(o.key for o in store.list(f"submissions/{sub}/"))

    def finalize_began(*args, **kwargs):
        raise Conflict(f"submission {sub} is finalizing")

    monkeypatch.setattr(services.archive.registry, "update_submission", finalize_began)
    with pytest.raises(Conflict):
        deposits.attach_file_list(sub, owner, "files.tsv", io.BytesIO(b"path\nother.tif\n"))
    assert b"".join(store.open_range(entry["key"])) == listing
    assert set(o.key for o in store.list(f"submissions/{sub}/")) == before


def test_missing_and_unlisted_files_are_reported(services, owner):
    deposits = services.deposits
    sub = stage_sample(deposits, owner, skip=("plate2/B01.tif",))
    deposits.upload(sub, owner, "extra/notes.txt", io.BytesIO(b"hello"))
    report = deposits.validate(sub, owner)
    assert not report["valid"]
    missing = [e for e in report["errors"] if e.get("value") == "plate2/B01.tif"]
    assert missing and missing[0]["file"] == "files.tsv" and missing[0]["line"] == 7
    assert any(w.get("value") == "extra/notes.txt" for w in report["warnings"])
    with pytest.raises(ValidationFailed) as failure:
        deposits.finalize(sub, owner)
    assert failure.value.status == 422
    assert services.archive.registry.studies() == []  # nothing minted


def test_listed_sizes_and_md5s_are_checked_against_the_uploaded_bytes(services, owner):
    deposits = services.deposits
    sub = stage_sample(deposits, owner)
    lines = (DATA / "files.tsv").read_text().splitlines()
    rows = [lines[0] + "\tsize\tmd5"]
    for i, line in enumerate(lines[1:]):
        content = file_bytes(line.split("\t")[0])
        size = len(content) + (1 if i == 0 else 0)
        md5 = hashlib.md5(content).hexdigest() if i != 1 else "0" * 32
        rows.append(f"{line}\t{size}\t{md5}")
    deposits.attach_file_list(sub, owner, "files.tsv", io.BytesIO(("\n".join(rows) + "\n").encode()))
    report = deposits.validate(sub, owner)
    wrong = {(e["line"], e["field"]) for e in report["errors"] if e.get("file") == "files.tsv"}
    assert wrong == {(2, "size"), (3, "md5")}, report["errors"]


def test_invalid_metadata_names_file_line_and_field(services, owner):
    deposits = services.deposits
    sub = deposits.create(owner)
    text = (DATA / "study.yaml").read_text().replace("https://orcid.org/0000-0002-1825-0097", "0000-bad")
    deposits.attach_metadata(sub, owner, "study.yaml", text.encode())
    report = deposits.validate(sub, owner)
    orcid = next(e for e in report["errors"] if "orcid" in (e.get("field") or ""))
    assert orcid["file"] == "study.yaml" and orcid["line"] == 8 and orcid["field"] == "/authors/0/orcid"


def test_upload_checksum_mismatch_stores_nothing(services, owner):
    deposits = services.deposits
    sub = deposits.create(owner)
    with pytest.raises(CatalogError):
        deposits.upload(sub, owner, "a.tif", io.BytesIO(b"data"), md5="0" * 32)
    assert deposits.get(sub, owner)["staged_files"] == 0
    with pytest.raises(CatalogError):
        deposits.upload(sub, owner, "../escape.tif", io.BytesIO(b"data"))


def test_other_owners_cannot_touch_a_submission(services, owner):
    sub = services.deposits.create(owner)
    with pytest.raises(CatalogError) as denied:
        services.deposits.get(sub, "mallory")
    assert denied.value.status == 404


def test_embargoed_study_is_invisible_on_the_public_path_until_released(services, owner):
    deposits, archive = services.deposits, services.archive
    accession = deposits.finalize(stage_sample(deposits, owner, release_date=FUTURE), owner)
    study = f"{BASE}/studies/{accession}"
    public = archive.public

    assert archive.registry.study(accession).state == "embargoed"
    assert not public.graph.has_graph(study)
    assert public.graph.count() == 0
    assert not public.graph.ask("ASK { ?s ?p ?o }")
    assert not public.graph.ask("ASK { GRAPH ?g { ?s ?p ?o } }")
    assert public.search.search("").total == 0 and public.search.search("nuclear").total == 0
    assert not public.files.has_study(accession)
    out = io.BytesIO()
    archive.export(out)
    assert out.getvalue() == b""
    assert catalog_stats(archive)["studies"] == 0
    # the owner's view has it
    assert archive.private.graph.has_graph(study)
    assert archive.private.search.search("nuclear").total == 1

    assert archive.release_due("2998-12-31") == []
    assert archive.release_due(FUTURE) == [accession]
    assert public.graph.has_graph(study) and not archive.private.graph.has_graph(study)
    assert public.search.search("nuclear").total == 1
    assert public.files.totals(accession)["files"] == 6
    assert archive.registry.study(accession).state == "released"


def test_concurrent_finalizes_get_distinct_accessions(services, owner):
    subs = [stage_sample(services.deposits, owner) for _ in range(4)]
    results, errors = [], []

    def run(sub):
        try:
            results.append(services.deposits.finalize(sub, owner))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in subs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(results) == ["S-BIAD1", "S-BIAD2", "S-BIAD3", "S-BIAD4"]
    assert len(services.archive.public.graph.graphs()) == 4


def test_reindex_rebuilds_indexes_from_the_graph(services, owner):
    archive = services.archive
    accession = services.deposits.finalize(stage_sample(services.deposits, owner), owner)
    archive.public.search.delete(accession)
    archive.public.files.delete_study(accession)
    assert archive.reindex() == {"public": 1, "private": 0}
    assert archive.public.search.search("HeLa").total == 1
    assert archive.public.files.totals(accession)["files"] == 6
    facets = archive.public.files.facets(accession, ["Compound"])
    assert dict(facets["Compound"]) == {"nocodazole": 2, "taxol": 2, "DMSO": 2}


def test_export_writes_released_studies_as_nquads(services, owner):
    accession = services.deposits.finalize(stage_sample(services.deposits, owner), owner)
    out = io.BytesIO()
    services.archive.export(out)
    lines = out.getvalue().decode().splitlines()
    assert lines and all(line.endswith(f"<{BASE}/studies/{accession}> .") for line in lines)
    import rdflib

    dataset = rdflib.Dataset()
    dataset.parse(data=out.getvalue(), format="nquads")
    assert len(dataset) == len(lines)
