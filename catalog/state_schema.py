"""The tables of the state database (:mod:`catalog.state_db`), in DDL both engines take.

Types are spelled so that PostgreSQL gets what it needs (``BIGINT`` byte counts, ``DOUBLE PRECISION`` lease times,
``BYTEA`` bodies) and SQLite the matching affinity. Columns added after a table first shipped are listed apart:
an older database gains them when it is opened.
"""

from __future__ import annotations

import uuid

from catalog.state_db import SqliteStateDB, StateDB

TABLES = """
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
    token_hash TEXT PRIMARY KEY, owner TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS submissions (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, status TEXT NOT NULL, created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL, metadata TEXT, metadata_name TEXT, release_date TEXT,
    file_lists TEXT NOT NULL DEFAULT '[]', accession TEXT, report TEXT);
CREATE TABLE IF NOT EXISTS staged_files (
    submission_id TEXT NOT NULL, path TEXT NOT NULL, size BIGINT NOT NULL, md5 TEXT NOT NULL,
    sha256 TEXT NOT NULL, PRIMARY KEY (submission_id, path));
CREATE TABLE IF NOT EXISTS studies (
    accession TEXT PRIMARY KEY, owner TEXT, state TEXT NOT NULL, release_date TEXT NOT NULL,
    submission_id TEXT, source TEXT NOT NULL, title TEXT, file_count BIGINT NOT NULL DEFAULT 0,
    total_size BIGINT NOT NULL DEFAULT 0, content_hash TEXT, created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS studies_state ON studies(state, release_date);
CREATE INDEX IF NOT EXISTS studies_owner ON studies(owner);
CREATE TABLE IF NOT EXISTS leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    view TEXT NOT NULL, iri TEXT NOT NULL, fingerprint TEXT NOT NULL, digest TEXT NOT NULL, body BYTEA NOT NULL,
    changed DOUBLE PRECISION NOT NULL, PRIMARY KEY (view, iri));
CREATE TABLE IF NOT EXISTS search_docs (
    view TEXT NOT NULL, accession TEXT NOT NULL, release_date TEXT, doc TEXT, seq BIGINT NOT NULL,
    PRIMARY KEY (view, accession));
CREATE INDEX IF NOT EXISTS search_docs_seq ON search_docs(view, seq);
CREATE TABLE IF NOT EXISTS file_tables (
    view TEXT NOT NULL, accession TEXT NOT NULL, commit_id TEXT, object_key TEXT NOT NULL, digest TEXT NOT NULL,
    files BIGINT NOT NULL, bytes BIGINT NOT NULL, PRIMARY KEY (view, accession));
CREATE INDEX IF NOT EXISTS file_tables_digest ON file_tables(digest);
CREATE TABLE IF NOT EXISTS graph_changes (
    view TEXT NOT NULL, graph TEXT NOT NULL, seq BIGINT NOT NULL, changed DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (view, graph));
CREATE INDEX IF NOT EXISTS graph_changes_seq ON graph_changes(view, seq);
CREATE TABLE IF NOT EXISTS jobs (
    id BIGINT PRIMARY KEY, kind TEXT NOT NULL, study TEXT NOT NULL, file_key TEXT NOT NULL, version TEXT NOT NULL,
    state TEXT NOT NULL, payload TEXT, result TEXT, reason TEXT, attempts INTEGER NOT NULL DEFAULT 0, holder TEXT,
    claim_id TEXT, expires DOUBLE PRECISION, ready DOUBLE PRECISION NOT NULL, created DOUBLE PRECISION NOT NULL,
    updated DOUBLE PRECISION NOT NULL, UNIQUE (study, file_key, kind, version));
CREATE INDEX IF NOT EXISTS jobs_ready ON jobs(kind, state, ready);
CREATE INDEX IF NOT EXISTS jobs_updated ON jobs(kind, updated);
CREATE TABLE IF NOT EXISTS image_facts (study TEXT PRIMARY KEY, changed BIGINT NOT NULL, applied BIGINT);
CREATE TABLE IF NOT EXISTS images (
    study TEXT NOT NULL, image_id TEXT NOT NULL, file_key TEXT NOT NULL, series INTEGER NOT NULL, generation BIGINT NOT NULL,
    PRIMARY KEY (study, image_id));
CREATE TABLE IF NOT EXISTS withdrawn_studies (
    accession TEXT PRIMARY KEY, withdrawn DOUBLE PRECISION NOT NULL, sets TEXT NOT NULL);
"""

#: columns added after the first release, with their definitions (databases made earlier gain them at open)
ADDED_COLUMNS = {
    # where an upload's bytes are; the path's clash key (catalog.file_paths.clash_key)
    "staged_files": {"key": "TEXT", "fold_key": "TEXT"},
    # how many times a submission's content (uploads, file lists, metadata, release date) changed: finalize commits
    # only the content it validated (compare-and-set on it)
    "submissions": {"revision": "INTEGER NOT NULL DEFAULT 0"},
    # the holder of in-flight work and when its lease runs out; the commit's id (the graph store's tag); the row
    # as it was before a harvest began replacing the study (JSON), put back if that commit never happened; the view
    # the commit goes to once it passed its commit point ('' before it; NULL: a row from before this column)
    # a file table's count of files by format (JSON), for the catalog's statistics without fetching the table; the
    # layout it was built with (catalog.file_index.TABLE_LAYOUT; NULL: before layouts were counted), so that tables
    # of an older layout are found and rebuilt in the background
    "file_tables": {"formats": "TEXT", "layout": "INTEGER"},
    "studies": {
        "lease_owner": "TEXT",
        "lease_expires": "DOUBLE PRECISION",
        "commit_id": "TEXT",
        "previous": "TEXT",
        "committing": "TEXT",
    },
}
#: indexes on added columns
ADDED_INDEXES = "CREATE INDEX IF NOT EXISTS staged_clash ON staged_files(submission_id, fold_key)"


def ensure_schema(db: StateDB) -> None:
    """Create what is missing (idempotent; concurrent openers on PostgreSQL wait for each other)."""
    if isinstance(db, SqliteStateDB):
        db.script(TABLES)
    with db.transaction(write=True) as conn:
        if not isinstance(db, SqliteStateDB):
            for statement in filter(str.strip, TABLES.split(";")):
                conn.execute(statement)
        for table, added in ADDED_COLUMNS.items():
            present = _columns(db, conn, table)
            for name, definition in added.items():
                if name not in present:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {definition}")
        conn.execute(ADDED_INDEXES)
        conn.execute("INSERT INTO meta VALUES ('catalog_id', ?) ON CONFLICT(name) DO NOTHING", (uuid.uuid4().hex,))


def catalog_id(db: StateDB) -> str:
    """The random name the database got when it was made: local caches built from another database are dropped."""
    with db.transaction() as conn:
        return str(conn.execute("SELECT value FROM meta WHERE name = 'catalog_id'").fetchone()[0])


def _columns(db: StateDB, conn, table: str) -> set[str]:
    if isinstance(db, SqliteStateDB):
        return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
    return {
        row[0]
        for row in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? AND table_schema = current_schema()",
            (table,),
        )
    }
