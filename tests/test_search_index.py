"""Keyword search: BM25 ranking, phrases, fielded queries, exclusions, facets, snippets, rebuilds."""

from __future__ import annotations

import pytest

from catalog.search_index import InvalidQuery, SearchIndex, StudyDocument, parse_query

DOCS = [
    StudyDocument(
        "S-BIAD12",
        "Zebrafish embryo <light sheet> imaging",
        "Mitochondria in zebrafish embryos over 48 h.",
        ["development"],
        ["Jane Doe"],
        ["Danio rerio"],
        ["light sheet fluorescence microscopy"],
        "CC0",
        "2023-01-02",
        "BioImage Archive",
    ),
    StudyDocument(
        "S-BIAD120",
        "Mouse brain neurons",
        "Actin in cortical neurons; zebrafish as a control.",
        [],
        ["John Roe"],
        ["Mus musculus"],
        ["confocal microscopy"],
        "CC BY 4.0",
        "2024-05-01",
        "BioImage Archive",
    ),
    StudyDocument(
        "EMPIAR-10002",
        "Cryo-electron tomography of yeast",
        "Kinase complexes in situ.",
        ["kinase"],
        ["Jane Doe"],
        ["Saccharomyces cerevisiae"],
        ["electron tomography"],
        "CC0",
        "2021-01-01",
        "EMPIAR",
    ),
]


@pytest.fixture
def index(tmp_path, state_db):
    idx = SearchIndex(tmp_path / "search", state_db, "public")
    idx.replace_all(DOCS)
    yield idx
    idx.close()


def accessions(result):
    return [h.accession for h in result.hits]


def test_ranking_prefers_title_matches(index):
    result = index.search("zebrafish")
    assert result.total == 2 and accessions(result)[0] == "S-BIAD12"


def test_phrases_fields_prefixes_and_accessions(index):
    assert accessions(index.search('"light sheet"')) == ["S-BIAD12"]
    assert accessions(index.search('organism:"Mus musculus"')) == ["S-BIAD120"]
    assert accessions(index.search("title:zebrafish")) == ["S-BIAD12"]
    assert accessions(index.search("kin*")) == ["EMPIAR-10002"]
    assert accessions(index.search("S-BIAD12")) == ["S-BIAD12"]  # not S-BIAD120
    assert accessions(index.search('accession:"EMPIAR-10002"')) == ["EMPIAR-10002"]
    assert set(accessions(index.search('authors:"Jane Doe"'))) == {"S-BIAD12", "EMPIAR-10002"}


def test_or_and_exclusions(index):
    assert set(accessions(index.search("mouse OR yeast"))) == {"S-BIAD120", "EMPIAR-10002"}
    assert accessions(index.search("zebrafish -mouse")) == ["S-BIAD12"]
    assert set(accessions(index.search("NOT zebrafish"))) == {"EMPIAR-10002"}


def test_facets_filters_sorting_and_paging(index):
    result = index.search("", facet_limit=10)
    assert result.total == 3
    assert dict(result.facets["source"]) == {"BioImage Archive": 2, "EMPIAR": 1}
    assert dict(result.facets["release_year"]) == {"2021": 1, "2023": 1, "2024": 1}
    filtered = index.search("", filters={"licence": ["CC0"], "source": ["EMPIAR"]})
    assert accessions(filtered) == ["EMPIAR-10002"] and filtered.total == 1
    assert accessions(index.search("", sort="newest")) == ["S-BIAD120", "S-BIAD12", "EMPIAR-10002"]
    assert accessions(index.search("", sort="oldest", limit=1, offset=1)) == ["S-BIAD12"]
    assert index.search("", limit=0).hits == []


def test_snippets_are_escaped_and_marked(index):
    hit = index.search("light").hits[0]
    assert hit.snippets["title"] == "Zebrafish embryo &lt;<mark>light</mark> sheet&gt; imaging"


def test_upsert_replaces_and_delete_removes(index):
    index.upsert(StudyDocument("S-BIAD12", "Renamed study", licence="CC0"))
    assert index.search("zebrafish").total == 1 and index.get("S-BIAD12").title == "Renamed study"
    index.delete("S-BIAD12")
    assert index.get("S-BIAD12") is None and index.count() == 2
    assert dict(index.search("").facets["licence"]) == {"CC0": 1, "CC BY 4.0": 1}
    assert index.replace_all(DOCS[:1]) == 1 and index.accessions() == ["S-BIAD12"]


@pytest.mark.parametrize("query", ["foo:bar", '"unbalanced'])
def test_bad_queries_are_400(index, query):
    with pytest.raises(InvalidQuery) as err:
        index.search(query)
    assert err.value.status == 400


def test_bad_sort_and_facet_names(index):
    with pytest.raises(InvalidQuery):
        index.search("", sort="size")
    with pytest.raises(InvalidQuery):
        index.search("", filters={"colour": ["red"]})


def test_parse_query():
    parsed = parse_query('a "b c" -d title:e* OR S-BIAD12')
    assert [[(c.words, c.field, c.prefix) for c in g] for g in parsed.groups] == [
        [(["a"], None, False), (["b", "c"], None, False), (["e"], "title", True)],
        [(["s", "biad12"], None, False)],
    ]
    assert [c.words for c in parsed.excluded] == [["d"]]


def test_other_handles_see_each_commit_at_once(tmp_path, state_db):
    writer, reader = SearchIndex(tmp_path / "s", state_db, "public"), SearchIndex(tmp_path / "s", state_db, "public")
    assert reader.search("zebrafish").total == 0
    writer.upsert(DOCS[0])
    assert reader.search("zebrafish").total == 1 and reader.get("S-BIAD12").title == DOCS[0].title


def test_a_node_with_its_own_folder_follows_the_shared_documents(tmp_path, state_db):
    """Two nodes share the documents (state database) but each has its own tantivy folder: what one writes, deletes
    or replaces, the other finds once it follows; a new node starts complete."""
    first = SearchIndex(tmp_path / "node1", state_db, "public")
    second = SearchIndex(tmp_path / "node2", state_db, "public")
    first.replace_all(DOCS)
    second.follow(force=True)
    assert accessions(second.search("zebrafish")) == ["S-BIAD12", "S-BIAD120"]
    first.delete("S-BIAD120")
    first.upsert(StudyDocument("S-BIAD9", "Zebrafish fins", release_date="2025-01-01"))
    second.follow(force=True)
    assert sorted(accessions(second.search("zebrafish"))) == ["S-BIAD12", "S-BIAD9"]
    assert second.search("", filters={"release_year": ["2025"]}).total == 1
    first.replace_all(DOCS[2:])
    second.follow(force=True)
    assert second.search("").total == 1 and second.count() == 1 and second.accessions() == ["EMPIAR-10002"]
    third = SearchIndex(tmp_path / "node3", state_db, "public")
    assert accessions(third.search("kinase")) == ["EMPIAR-10002"]  # a new node is complete by itself
    assert SearchIndex(tmp_path / "node3-private", state_db, "private").search("").total == 0  # views stay apart


def test_a_local_index_built_from_another_database_is_rebuilt(tmp_path, state_db):
    """A node folder reused with another database (or a lost applied.json) never serves the other catalog's hits."""
    from catalog.state_db import SqliteStateDB
    from catalog.state_schema import ensure_schema

    other = SqliteStateDB(tmp_path / "other.sqlite")
    ensure_schema(other)
    SearchIndex(tmp_path / "node", other, "public").replace_all(DOCS)
    index = SearchIndex(tmp_path / "node", state_db, "public")
    assert index.search("zebrafish").total == 0
    index.upsert(DOCS[2])
    assert accessions(index.search("")) == ["EMPIAR-10002"]


def _clauses(clauses):
    return [(c.words, c.field, c.prefix) for c in clauses]


@pytest.mark.parametrize(
    ("query", "groups", "excluded"),
    [
        ("", [], []),
        ("OR a OR OR b OR", [[(["a"], None, False)], [(["b"], None, False)]], []),  # OR only between clauses; AND is the default
        ("a AND b", [[(["a"], None, False), (["b"], None, False)]], []),
        ("NOT a b", [[(["b"], None, False)]], [(["a"], None, False)]),
        ("NOT *** a b", [[(["b"], None, False)]], [(["a"], None, False)]),  # a token without words passes NOT on
        ("NOT OR a", [], [(["a"], None, False)]),
        ("a NOT", [[(["a"], None, False)]], []),
        ("- a", [[(["a"], None, False)]], []),
        ("NOT - a", [], [(["a"], None, False)]),
        ('-OR title:OR "OR" NOT', [[(["or"], "title", False), (["or"], None, False)]], [(["or"], None, False)]),
        (
            'Author:x keyword:y* METHOD:"z w"',
            [[(["x"], "authors", False), (["y"], "keywords", True), (["z", "w"], "imaging_method", False)]],
            [],
        ),
        ('"abc*" * x* -"p q"', [[(["abc"], None, False), (["x"], None, True)]], [(["p", "q"], None, False)]),
        ("a-b* é日本*", [[(["a", "b"], None, True), (["é日本"], None, True)]], []),
        ("title: nope:***", [[(["title"], None, False)]], []),  # no words: the unknown field is never looked at
        ("x" * 64 + "*", [[(["x" * 64], None, True)]], []),
        (" ".join(["w"] * 63) + " -v", [[(["w"], None, False)] * 63], [(["v"], None, False)]),
    ],
)
def test_parse_query_reads_operators_fields_prefixes_and_exclusions(query, groups, excluded):
    parsed = parse_query(query)
    assert [_clauses(g) for g in parsed.groups] == groups
    assert _clauses(parsed.excluded) == excluded


@pytest.mark.parametrize(
    ("query", "message", "errors"),
    [
        ('a "b', "the query has an unbalanced double quote", []),
        ('title:"', "the query has an unbalanced double quote", []),
        (
            "nope:" + "x" * 65 + "*",
            "a prefix search (word*) takes at most 64 characters before the *",
            [{"field": "q", "value": "x" * 40 + "…", "message": "prefix too long"}],
        ),
        (
            " ".join(["w"] * 70) + " _:x",
            "unknown search field '_'; fields are: accession, title, description, keywords, authors, "
            "organism, imaging_method, source",
            [{"field": "q", "message": "unknown field _"}],
        ),
        (
            " ".join(["w"] * 64) + " -v",
            "the query has 65 words or phrases; at most 64 are searched at once",
            [{"field": "q", "message": "too many terms"}],
        ),
    ],
)
def test_parse_query_names_what_it_cannot_read(query, message, errors):
    with pytest.raises(InvalidQuery) as err:
        parse_query(query)
    assert (err.value.message, err.value.errors, err.value.status) == (message, errors, 400)
