"""The file store contract, run against a local folder and a real SeaweedFS S3 gateway."""

from __future__ import annotations

import hashlib
import io
import os
import threading
from pathlib import Path

import pytest
import requests
from minio.error import S3Error

from catalog.config import Settings
from catalog.errors import CatalogError, NotFound
from catalog.file_store import (
    INCOMING,
    ChecksumMismatch,
    FileStore,
    InvalidChecksum,
    InvalidKey,
    InvalidRange,
    ObjectExists,
    ObjectNotFound,
    SizeMismatch,
    StorageUnavailable,
)
from catalog.file_store_local import LocalFileStore
from catalog.file_store_s3 import S3FileStore
from catalog.stores import open_file_store
from tests.servers.seaweedfs_server import SeaweedFS, seaweedfs_s3  # noqa: F401  (the session fixture)

MiB = 1 << 20
DATA = bytes(range(256)) * 40 + b"tail"  # 10 244 bytes


class PatternStream(io.RawIOBase):
    """``total`` deterministic bytes of unknown length, produced on the fly (never all in memory)."""

    def __init__(self, total: int, fail_after: int | None = None) -> None:
        self.total, self.sent, self.fail_after = total, 0, fail_after
        self.md5, self.sha256 = hashlib.md5(), hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self.fail_after is not None and self.sent >= self.fail_after:
            raise ConnectionResetError("client went away")
        n = min(n if n >= 0 else MiB, 256 * 1024, self.total - self.sent)  # short reads, like a socket
        block = hashlib.sha256(str(self.sent // 4096).encode()).digest() * 128  # 4 KiB
        offset = self.sent % 4096
        chunk = (block[offset:] + block * (n // 4096 + 1))[:n]
        self.sent += len(chunk)
        self.md5.update(chunk)
        self.sha256.update(chunk)
        return chunk


@pytest.fixture
def s3_server(request: pytest.FixtureRequest) -> SeaweedFS:
    """The session's SeaweedFS (started on first use, so local-only runs never start it)."""
    return request.getfixturevalue("seaweedfs_s3")


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> FileStore:
    if request.param == "local":
        return LocalFileStore(tmp_path / "files")
    server: SeaweedFS = request.getfixturevalue("s3_server")
    bucket = server.new_bucket(request.node.name)
    request.addfinalizer(lambda: server.client().remove_bucket(bucket))  # frees its volumes
    # copies above 16 MiB go part by part, so the 40 MiB test exercises the >5 GiB code path
    return S3FileStore(server.client(), bucket, max_single_copy=16 * MiB)


def read_all(store: FileStore, key: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join(store.open_range(key, start, end))


def raw_keys(store: FileStore) -> list[str]:
    """Every key the backend holds, bookkeeping included."""
    if isinstance(store, S3FileStore):
        return sorted(o.object_name for o in store.client.list_objects(store.bucket, recursive=True))
    return sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*") if p.is_file())


def assert_nothing_at(store: FileStore, key: str) -> None:
    assert store.stat(key) is None
    assert [o.key for o in store.list()] == []
    assert [k for k in raw_keys(store) if not k.startswith(".bia-meta/")] == []


def test_put_stat_read_round_trip(store: FileStore) -> None:
    progress: list[int] = []
    stored = store.put(
        "studies/S-BIAD1/images/a b ü.tif",
        io.BytesIO(DATA),
        size=len(DATA),
        content_type="image/tiff",
        progress=progress.append,
    )
    assert stored.size == len(DATA) == sum(progress)
    assert stored.md5 == hashlib.md5(DATA).hexdigest()
    assert stored.sha256 == hashlib.sha256(DATA).hexdigest()
    assert stored.content_type == "image/tiff"
    assert store.stat("studies/S-BIAD1/images/a b ü.tif") == stored
    assert read_all(store, stored.key) == DATA
    assert store.stat("studies/S-BIAD1/images/other.tif") is None


def test_empty_object(store: FileStore) -> None:
    stored = store.put("empty", io.BytesIO(b""), size=0)
    assert (stored.size, stored.md5) == (0, hashlib.md5(b"").hexdigest())
    assert read_all(store, "empty") == b""


@pytest.mark.parametrize("field", ["expected_md5", "expected_sha256"])
def test_wrong_checksum_leaves_nothing(store: FileStore, field: str) -> None:
    wrong = {"expected_md5": "0" * 32, "expected_sha256": "0" * 64}[field]
    with pytest.raises(ChecksumMismatch) as caught:
        store.put("staging/s1/x.bin", io.BytesIO(DATA), **{field: wrong})
    assert caught.value.status == 422
    assert caught.value.errors[0]["field"] == field.removeprefix("expected_")
    assert_nothing_at(store, "staging/s1/x.bin")


def test_right_checksums_accepted_case_insensitively(store: FileStore) -> None:
    stored = store.put(
        "x",
        io.BytesIO(DATA),
        expected_md5=hashlib.md5(DATA).hexdigest().upper(),
        expected_sha256=hashlib.sha256(DATA).hexdigest(),
    )
    assert stored.md5 == hashlib.md5(DATA).hexdigest()
    with pytest.raises(InvalidChecksum):
        store.put("y", io.BytesIO(DATA), expected_md5="not-hex")


@pytest.mark.parametrize("declared", [len(DATA) - 1, len(DATA) + 1])
def test_size_mismatch_leaves_nothing(store: FileStore, declared: int) -> None:
    with pytest.raises(SizeMismatch):
        store.put("sized", io.BytesIO(DATA), size=declared)
    assert_nothing_at(store, "sized")


def test_existing_key_is_never_overwritten(store: FileStore) -> None:
    store.put("k", io.BytesIO(b"first"))
    with pytest.raises(ObjectExists) as caught:
        store.put("k", io.BytesIO(b"second"))
    assert caught.value.status == 409
    assert read_all(store, "k") == b"first"
    assert store.stat("k").sha256 == hashlib.sha256(b"first").hexdigest()


def test_concurrent_puts_to_one_key_one_wins(store: FileStore) -> None:
    """Both writers pass the early existence check; the atomic publish lets exactly one through."""
    barrier = threading.Barrier(2, timeout=30)
    outcomes: list[str] = []

    class Gated(io.BytesIO):
        def read(self, n: int = -1) -> bytes:
            if self.tell() == 0:
                barrier.wait()
            return super().read(n)

    def write(payload: bytes) -> None:
        try:
            store.put("race", Gated(payload))
            outcomes.append("stored")
        except ObjectExists:
            outcomes.append("exists")

    threads = [threading.Thread(target=write, args=(p,)) for p in (b"one", b"two")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["exists", "stored"]
    assert read_all(store, "race") in (b"one", b"two")
    assert store.stat("race").sha256 == hashlib.sha256(read_all(store, "race")).hexdigest()


def test_ranged_reads(store: FileStore) -> None:
    store.put("r", io.BytesIO(DATA))
    size = len(DATA)
    assert read_all(store, "r", 0, 9) == DATA[:10]
    assert read_all(store, "r", 300, 5000) == DATA[300:5001]
    assert read_all(store, "r", size - 1, size - 1) == DATA[-1:]
    assert read_all(store, "r", size - 4) == b"tail"
    assert read_all(store, "r", 10, size + 1000) == DATA[10:]  # end past the object is clamped
    with pytest.raises(InvalidRange) as caught:
        store.open_range("r", size, None)  # raised at call time, before iterating
    assert caught.value.status == 416
    with pytest.raises(InvalidRange):
        store.open_range("r", 5, 4)
    with pytest.raises(ObjectNotFound) as missing:
        store.open_range("absent")
    assert isinstance(missing.value, NotFound) and missing.value.status == 404


def test_large_stream_of_unknown_size(store: FileStore) -> None:
    stream = PatternStream(40 * MiB)
    progress: list[int] = []
    stored = store.put("big/40MiB.bin", stream, progress=progress.append)
    assert stored.size == 40 * MiB == sum(progress)
    assert (stored.md5, stored.sha256) == (
        stream.md5.hexdigest(),
        stream.sha256.hexdigest(),
    )
    assert store.stat("big/40MiB.bin") == stored
    digest, last = hashlib.sha256(), b""
    for chunk in store.open_range("big/40MiB.bin"):
        digest.update(chunk)
        last = (last + chunk)[-100:]
    assert digest.hexdigest() == stored.sha256
    assert read_all(store, "big/40MiB.bin", 40 * MiB - 100) == last
    if isinstance(store, S3FileStore):
        info = store.client.stat_object(store.bucket, "big/40MiB.bin")
        assert "-" in info.etag  # written in parts (copied part by part: 16 MiB max single copy here)


def test_interrupted_put_leaves_nothing(store: FileStore) -> None:
    for key, stream in (
        ("small", PatternStream(MiB, fail_after=512 * 1024)),
        ("multipart", PatternStream(40 * MiB, fail_after=36 * MiB)),
    ):
        with pytest.raises(ConnectionResetError):
            store.put(key, stream)
        assert_nothing_at(store, key)


def test_move(store: FileStore) -> None:
    original = store.put("staging/s1/a.tif", io.BytesIO(DATA), content_type="image/tiff")
    moved = store.move("staging/s1/a.tif", "studies/S-BIAD9/a.tif")
    assert moved.key == "studies/S-BIAD9/a.tif"
    assert (moved.size, moved.md5, moved.sha256, moved.content_type) == (
        original.size,
        original.md5,
        original.sha256,
        "image/tiff",
    )
    assert store.stat("staging/s1/a.tif") is None
    assert store.stat("studies/S-BIAD9/a.tif") == moved
    assert read_all(store, moved.key) == DATA

    store.put("other", io.BytesIO(b"other"))
    with pytest.raises(ObjectExists):
        store.move("other", moved.key)
    assert read_all(store, moved.key) == DATA and read_all(store, "other") == b"other"
    with pytest.raises(ObjectNotFound):
        store.move("absent", "somewhere")


def test_list_and_delete_prefix(store: FileStore) -> None:
    keys = ["a/1", "a/2", "a/b/3", "a-c", "ab/4", "b"]
    for key in keys:
        store.put(key, io.BytesIO(key.encode()))
    listed = list(store.list())
    assert sorted(o.key for o in listed) == sorted(keys)
    for obj in listed:
        assert obj.sha256 == hashlib.sha256(obj.key.encode()).hexdigest() and obj.size == len(obj.key)
    assert sorted(o.key for o in store.list("a/")) == ["a/1", "a/2", "a/b/3"]
    assert sorted(o.key for o in store.list("a")) == [
        "a-c",
        "a/1",
        "a/2",
        "a/b/3",
        "ab/4",
    ]
    assert {o.md5 for o in store.list("a/", checksums=False)} == {""}

    assert store.delete_prefix("a/") == 3
    assert sorted(o.key for o in store.list()) == ["a-c", "ab/4", "b"]
    assert store.delete("b") is True
    assert store.delete("b") is False
    with pytest.raises(InvalidKey):
        store.delete_prefix("")
    assert store.delete_prefix("nothing/") == 0
    assert sorted(o.key for o in store.list()) == ["a-c", "ab/4"]


BAD_KEYS = [
    "",
    "/etc/passwd",
    "../escape",
    "a/../../b",
    "a//b",
    "a/",
    "./a",
    "a/./b",
    "a\x00b",
    "a\\b",
    "line\nbreak",
    ".bia-incoming/x",
    ".bia-meta/x",
    "x" * 256,
]


@pytest.mark.parametrize("key", BAD_KEYS, ids=repr)
def test_invalid_keys_are_refused(store: FileStore, key: str) -> None:
    calls = [
        lambda: store.put(key, io.BytesIO(b"x")),
        lambda: store.stat(key),
        lambda: store.open_range(key),
        lambda: store.delete(key),
        lambda: store.move(key, "fine"),
        lambda: store.move("fine", key),
        lambda: store.presigned_get_url(key),
    ]
    store.put("fine", io.BytesIO(b"x"))
    for call in calls:
        with pytest.raises(InvalidKey) as caught:
            call()
        assert caught.value.status == 400 and isinstance(caught.value, CatalogError)
    with pytest.raises(InvalidKey):
        list(store.list("../"))
    assert [o.key for o in store.list()] == ["fine"]


def test_presigned_url(store: FileStore) -> None:
    store.put("studies/S-BIAD1/im age.tif", io.BytesIO(DATA))
    url = store.presigned_get_url("studies/S-BIAD1/im age.tif")
    if isinstance(store, LocalFileStore):
        assert url is None
        return
    answer = requests.get(url, timeout=30)
    assert answer.status_code == 200 and answer.content == DATA
    named = requests.get(
        store.presigned_get_url("studies/S-BIAD1/im age.tif", filename="cell ü.tif"),
        timeout=30,
    )
    assert named.status_code == 200 and named.content == DATA
    disposition = named.headers["Content-Disposition"]
    assert disposition.startswith("attachment;") and "cell _.tif" in disposition
    assert "filename*=UTF-8''cell%20%C3%BC.tif" in disposition


def test_purge_incomplete_keeps_recent_uploads(store: FileStore) -> None:
    store.put("kept", io.BytesIO(b"x"))
    assert store.purge_incomplete() == 0
    assert store.stat("kept") is not None


def test_folders_are_the_next_key_segment_under_a_prefix(store: FileStore) -> None:
    for key in ("staging/s1/a/x.bin", "staging/s1/y.bin", "staging/s2/z.bin", "staging/loose.bin", "studies/S-1/f"):
        store.put(key, io.BytesIO(b"x"))
    assert store.folders("staging/") == store.folders("staging") == ("s1", "s2")
    assert store.folders("staging/s1/") == ("a",)
    assert store.folders("") == ("staging", "studies")  # the stores' own .bia-… folders are not objects
    assert store.folders("nothing/") == ()


# ---------------------------------------------------------------------- backend specifics


def test_s3_access_keys_are_enforced(s3_server: SeaweedFS) -> None:
    bucket = s3_server.new_bucket("auth")
    s3_server.client().put_object(bucket, "secret", io.BytesIO(b"x"), 1)
    assert requests.get(f"http://{s3_server.endpoint}/{bucket}/secret", timeout=10).status_code == 403
    assert requests.put(f"http://{s3_server.endpoint}/{bucket}/new", data=b"x", timeout=10).status_code == 403
    with pytest.raises(S3Error):
        s3_server.client(secret_key="wrong-secret").stat_object(bucket, "secret")
    settings = Settings(
        s3_endpoint=s3_server.endpoint,
        s3_bucket=bucket,
        s3_access_key=s3_server.access_key,
        s3_secret_key="wrong-secret",
    )
    with pytest.raises(StorageUnavailable) as caught:
        open_file_store(settings)
    assert caught.value.status == 503 and "SignatureDoesNotMatch" in caught.value.message


def test_factory_picks_the_backend(tmp_path: Path, s3_server: SeaweedFS) -> None:
    local = open_file_store(Settings(data_dir=tmp_path))
    assert isinstance(local, LocalFileStore) and local.root == tmp_path / "files"
    bucket = s3_server.new_bucket_name("factory")
    remote = open_file_store(
        Settings(
            data_dir=tmp_path,
            s3_endpoint=f"http://{s3_server.endpoint}",
            s3_bucket=bucket,
            s3_access_key=s3_server.access_key,
            s3_secret_key=s3_server.secret_key,
        )
    )
    assert isinstance(remote, S3FileStore) and s3_server.client().bucket_exists(bucket)
    assert remote.put("k", io.BytesIO(b"v")).size == 1


def test_local_sidecar_lost_or_stale(tmp_path: Path) -> None:
    store = LocalFileStore(tmp_path / "files")
    stored = store.put("a/b.bin", io.BytesIO(DATA))
    (store.root / ".bia-meta/a/b.bin").unlink()
    assert store.stat("a/b.bin") == stored  # recomputed from the bytes
    store.delete("a/b.bin")
    (store.root / ".bia-meta/a").mkdir(parents=True)
    (store.root / ".bia-meta/a/b.bin").write_text('{"ino": 1, "size": 3, "mtime_ns": 1, "md5": "x", "sha256": "y"}')
    again = store.put("a/b.bin", io.BytesIO(b"new"))
    assert again.sha256 == store.stat("a/b.bin").sha256 == hashlib.sha256(b"new").hexdigest()
    assert not os.listdir(store.root / INCOMING)


def test_local_file_and_folder_of_one_name_conflict(tmp_path: Path) -> None:
    store = LocalFileStore(tmp_path / "files")
    store.put("a", io.BytesIO(b"x"))
    with pytest.raises(ObjectExists, match="folder on its path"):
        store.put("a/b", io.BytesIO(b"y"))
    store.put("c/d", io.BytesIO(b"y"))
    with pytest.raises(ObjectExists, match="folder"):
        store.put("c", io.BytesIO(b"z"))
