"""The file store in S3-compatible object storage (MinIO, SeaweedFS, AWS) through the ``minio`` client.

How a put stays invisible until verified: the stream is uploaded (multipart when large or of
unknown size; one part in memory at a time) to a temporary key under ``.bia-incoming/``, hashing
on the way. Only if the size and checksums are right is it copied server-side to the real key,
with the checksums as user metadata (``x-amz-meta-md5``, ``x-amz-meta-sha256``); the temporary
object is then removed. The copy is conditional (``If-None-Match: *``), so it fails rather than
overwrites when another writer got to the key first; S3 makes an object visible only when its
PUT, copy or multipart completion succeeds, so a reader never sees a partial object.
A server-side copy duplicates the bytes on most servers: that is the price of verifying first.

minio has no public way to send ``If-None-Match`` on a copy, so :meth:`S3FileStore._copy_if_absent`
uses its request helpers (``_execute`` and the multipart calls) directly; minio is pinned in setup.cfg.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import math
import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import IO, Any, Callable, Iterator
from urllib.parse import quote, urlsplit
from xml.etree import ElementTree

import urllib3
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import MinioException, S3Error
from minio.helpers import DictType

from catalog.config import Settings
from catalog.file_store import (
    DEFAULT_CONTENT_TYPE,
    INCOMING,
    RESERVED_PREFIX,
    FileStore,
    HashingReader,
    InvalidRange,
    ObjectExists,
    ObjectNotFound,
    Progress,
    StorageUnavailable,
    StoredObject,
    check_checksums,
    check_key,
    check_prefix,
    folder_prefix,
    check_range,
    content_disposition,
)

MiB = 1 << 20
MD5_META = "x-amz-meta-md5"
SHA256_META = "x-amz-meta-sha256"
MAX_PARTS = 10_000
#: largest object a single CopyObject may copy (S3's limit); larger ones are copied part by part
MAX_SINGLE_COPY = 5 << 30


class S3FileStore(FileStore):
    """Objects in one bucket of an S3-compatible server."""

    concurrency = 16

    def __init__(
        self,
        client: Minio,
        bucket: str,
        *,
        part_size: int = 16 * MiB,
        parallel_uploads: int = 2,
        max_single_copy: int = MAX_SINGLE_COPY,
        chunk_size: int = MiB,
        public_client: Callable[[str], Minio] | None = None,
        probe_client: Minio | None = None,
    ) -> None:
        self.client = client
        self.bucket = bucket
        #: makes (given the bucket's region) the client that signs download URLs for the address clients reach;
        #: None: they are signed for ``client``'s address
        self._make_public_client = public_client
        self._public_client: Minio | None = None
        #: a client with short time limits and no retries, for :meth:`ping`
        self.probe_client = probe_client
        #: upload part size; a stream of unknown size can hold at most 10 000 parts of it
        self.part_size = part_size
        self.parallel_uploads = parallel_uploads
        self.max_single_copy = max_single_copy
        self.chunk_size = chunk_size

    @classmethod
    def from_settings(cls, settings: Settings) -> "S3FileStore":
        """A store on ``settings.s3_endpoint`` (``host:port`` or an ``http(s)://`` URL); download URLs signed for
        ``settings.s3_public_endpoint`` when it is set."""
        public = settings.s3_public_endpoint

        def public_client(region: str) -> Minio:
            return _client(str(public), settings, region=region)

        wait = settings.ready_timeout
        probe = _client(
            str(settings.s3_endpoint),
            settings,
            http_client=urllib3.PoolManager(timeout=urllib3.Timeout(connect=wait, read=wait), retries=urllib3.Retry(total=0)),
        )
        return cls(
            _client(str(settings.s3_endpoint), settings),
            settings.s3_bucket,
            public_client=public_client if public else None,
            probe_client=probe,
        )

    def __repr__(self) -> str:
        return f"S3FileStore({self.client._base_url.host!r}, {self.bucket!r})"

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Turn client and transport failures into :class:`StorageUnavailable` naming the operation."""
        try:
            yield
        except S3Error as exc:
            raise StorageUnavailable(f"object storage refused to {doing}: {exc.code}: {exc.message}") from exc
        except (MinioException, urllib3.exceptions.HTTPError) as exc:
            raise StorageUnavailable(f"object storage failed to {doing}: {exc}") from exc

    def ping(self) -> None:
        """Whether the bucket answers (a HEAD of it, with the probe client's short time limits); raises
        :class:`StorageUnavailable` when it does not, or does not exist."""
        with self._errors(f"find bucket {self.bucket!r}"):
            if not (self.probe_client or self.client).bucket_exists(self.bucket):
                raise StorageUnavailable(f"object storage has no bucket {self.bucket!r}")

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (checks the credentials on the way)."""
        with self._errors(f"open bucket {self.bucket!r}"):
            if not self.client.bucket_exists(self.bucket):
                try:
                    self.client.make_bucket(self.bucket)
                except S3Error as exc:
                    if exc.code not in (
                        "BucketAlreadyOwnedByYou",
                        "BucketAlreadyExists",
                    ):
                        raise

    # ------------------------------------------------------------------ writing

    def put(
        self,
        key: str,
        stream: IO[bytes],
        *,
        size: int | None = None,
        expected_md5: str | None = None,
        expected_sha256: str | None = None,
        content_type: str | None = None,
        progress: Progress | None = None,
    ) -> StoredObject:
        key = check_key(key)
        expected_md5, expected_sha256 = check_checksums(expected_md5, expected_sha256)
        if self.stat(key) is not None:
            raise ObjectExists(f"an object is already stored at {key!r}")
        reader = HashingReader(stream, size, progress)
        content_type = content_type or DEFAULT_CONTENT_TYPE
        tmp = f"{INCOMING}/{uuid.uuid4().hex}"
        try:
            with self._errors(f"upload {key!r}"):
                self.client.put_object(
                    self.bucket,
                    tmp,
                    reader,  # type: ignore[arg-type]
                    length=-1 if size is None else size,
                    part_size=self._part_size(size),
                    content_type=content_type,
                    num_parallel_uploads=self.parallel_uploads,
                )
            if size is not None:
                reader.drain_check()
            reader.verify(expected_md5, expected_sha256)
            obj = StoredObject(key, reader.count, reader.md5, reader.sha256, content_type)
            self._copy_if_absent(tmp, obj)
            return obj
        finally:
            self._remove_quietly(tmp)

    def _part_size(self, size: int | None) -> int:
        if size is None:
            return self.part_size
        return max(self.part_size, math.ceil(size / MAX_PARTS / MiB) * MiB)

    def move(self, src: str, dst: str) -> StoredObject:
        src, dst = check_key(src), check_key(dst)
        obj = self.stat(src)
        if obj is None:
            raise ObjectNotFound(f"no object at {src!r} to move")
        if self.stat(dst) is not None:
            raise ObjectExists(f"an object is already stored at {dst!r}")
        moved = replace(obj, key=dst)
        self._copy_if_absent(src, moved)
        with self._errors(f"remove {src!r}"):
            self.client.remove_object(self.bucket, src)
        return moved

    def _copy_if_absent(self, src: str, obj: StoredObject) -> None:
        """Server-side copy ``src`` to ``obj.key`` with ``obj``'s metadata, failing if the key exists."""
        meta = {
            MD5_META: obj.md5,
            SHA256_META: obj.sha256,
            "Content-Type": obj.content_type or DEFAULT_CONTENT_TYPE,
        }
        source = quote(f"/{self.bucket}/{src}", safe="/")
        with self._errors(f"copy {src!r} to {obj.key!r}"), self._exists_on_412(obj.key):
            if obj.size <= self.max_single_copy:
                headers: DictType = {
                    **meta,
                    "x-amz-copy-source": source,
                    "x-amz-metadata-directive": "REPLACE",
                    "If-None-Match": "*",
                }
                response = self.client._execute("PUT", self.bucket, obj.key, headers=headers)
                _raise_embedded_error(response.data, obj.key)
                return
            upload_id = self.client._create_multipart_upload(self.bucket, obj.key, dict(meta))
            try:
                parts = []
                for number, offset in enumerate(range(0, obj.size, self.max_single_copy), start=1):
                    last = min(offset + self.max_single_copy, obj.size) - 1
                    copy_headers: DictType = {
                        "x-amz-copy-source": source,
                        "x-amz-copy-source-range": f"bytes={offset}-{last}",
                    }
                    etag, _ = self.client._upload_part_copy(self.bucket, obj.key, upload_id, number, copy_headers)
                    parts.append((number, etag))
                self._complete_if_absent(obj.key, upload_id, parts)
            except BaseException:
                self.client._abort_multipart_upload(self.bucket, obj.key, upload_id)
                raise

    def _complete_if_absent(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> None:
        root = ElementTree.Element("CompleteMultipartUpload")
        for number, etag in parts:
            part = ElementTree.SubElement(root, "Part")
            ElementTree.SubElement(part, "PartNumber").text = str(number)
            ElementTree.SubElement(part, "ETag").text = f'"{etag}"'
        body = ElementTree.tostring(root)
        headers: DictType = {
            "Content-Type": "application/xml",
            "Content-MD5": base64.b64encode(hashlib.md5(body).digest()).decode(),
            "If-None-Match": "*",
        }
        response = self.client._execute(
            "POST",
            self.bucket,
            key,
            body=body,
            headers=headers,
            query_params={"uploadId": upload_id},
        )
        _raise_embedded_error(response.data, key)

    @contextlib.contextmanager
    def _exists_on_412(self, key: str) -> Iterator[None]:
        try:
            yield
        except S3Error as exc:
            if exc.code == "PreconditionFailed" or (exc.response is not None and exc.response.status == 412):
                raise ObjectExists(f"an object is already stored at {key!r}") from None
            raise

    def delete(self, key: str) -> bool:
        key = check_key(key)
        existed = self.stat(key) is not None
        if existed:
            with self._errors(f"remove {key!r}"):
                self.client.remove_object(self.bucket, key)
        return existed

    def folders(self, prefix: str) -> tuple[str, ...]:
        prefix = folder_prefix(prefix)
        with self._errors(f"list the folders under {prefix!r}"):
            names = [
                (item.object_name or "")[len(prefix) :].rstrip("/")
                for item in self.client.list_objects(self.bucket, prefix=prefix or None, recursive=False)
                if item.is_dir
            ]
        return tuple(sorted(n for n in names if n and not n.startswith(RESERVED_PREFIX)))

    def delete_prefix(self, prefix: str) -> int:
        if check_prefix(prefix) == "":
            return super().delete_prefix(prefix)  # refuses
        keys = [obj.key for obj in self.list(prefix, checksums=False)]
        with self._errors(f"remove objects under {prefix!r}"):
            failed = list(self.client.remove_objects(self.bucket, (DeleteObject(k) for k in keys)))
        if failed:
            raise StorageUnavailable(
                f"object storage kept {len(failed)} of {len(keys)} objects under {prefix!r}",
                [{"key": f.name, "message": f"{f.code}: {f.message}"} for f in failed],
            )
        return len(keys)

    def purge_incomplete(self, older_than: timedelta = timedelta(days=1)) -> int:
        cutoff = datetime.now(timezone.utc) - older_than
        removed = 0
        with self._errors("list incomplete uploads"):
            for item in self.client.list_objects(self.bucket, prefix=INCOMING + "/", recursive=True):
                if item.last_modified is not None and item.last_modified < cutoff:
                    self.client.remove_object(self.bucket, item.object_name)
                    removed += 1
        return removed

    def _remove_quietly(self, key: str) -> None:
        with contextlib.suppress(MinioException, urllib3.exceptions.HTTPError):
            self.client.remove_object(self.bucket, key)

    # ------------------------------------------------------------------ reading

    def stat(self, key: str) -> StoredObject | None:
        key = check_key(key)
        try:
            with self._errors(f"look up {key!r}"), self._none_on_404():
                info = self.client.stat_object(self.bucket, key)
                return self._stored(key, info.size or 0, info.metadata, info.etag, info.content_type)
        except _Absent:
            return None

    @staticmethod
    def _stored(key: str, size: int, metadata: Any, etag: str | None, content_type: str | None) -> StoredObject:
        meta = {str(k).lower(): v for k, v in (metadata or {}).items()}
        md5 = meta.get(MD5_META) or meta.get("md5") or ""
        if not md5 and etag and "-" not in etag:
            md5 = etag.strip('"')  # a single-part upload's ETag is its MD5
        sha256 = meta.get(SHA256_META) or meta.get("sha256") or ""
        return StoredObject(key, size, md5, sha256, content_type or meta.get("content-type"))

    @contextlib.contextmanager
    def _none_on_404(self) -> Iterator[None]:
        try:
            yield
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "ResourceNotFound") or (
                exc.response is not None and exc.response.status == 404 and exc.code != "NoSuchBucket"
            ):
                raise _Absent() from None
            raise

    def open_range(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        key = check_key(key)
        check_range(start, end)
        length = 0 if end is None else end - start + 1
        try:
            with self._errors(f"read {key!r}"), self._none_on_404():
                try:
                    response = self.client.get_object(self.bucket, key, offset=start, length=length)
                except S3Error as exc:
                    if exc.code != "InvalidRange" and (exc.response is None or exc.response.status != 416):
                        raise
                    obj = self.stat(key)
                    if obj is not None and obj.size == 0 and start == 0:
                        return iter(())
                    raise InvalidRange(
                        f"byte range starts at {start}, past the end of {key!r} ({obj.size if obj else 0} bytes)"
                    ) from None
        except _Absent:
            raise ObjectNotFound(f"no object at {key!r}") from None
        return self._read(response)

    def _read(self, response: Any) -> Iterator[bytes]:
        try:
            yield from response.stream(self.chunk_size)
        finally:
            response.close()
            response.release_conn()

    def list(self, prefix: str = "", *, checksums: bool = True) -> Iterator[StoredObject]:
        prefix = check_prefix(prefix)
        with self._errors(f"list {prefix!r}"):
            items = self.client.list_objects(
                self.bucket,
                prefix=prefix or None,
                recursive=True,
                include_user_meta=True,
            )
            for item in items:
                key = item.object_name or ""
                if item.is_dir or key.endswith("/") or key.split("/", 1)[0].startswith(RESERVED_PREFIX):
                    continue
                obj = self._stored(key, item.size or 0, item.metadata, item.etag, item.content_type)
                if checksums and not obj.sha256:  # the server's listing lacks user metadata
                    found = self.stat(key)
                    if found is None:
                        continue
                    obj = found
                elif not checksums:
                    obj = StoredObject(key, obj.size, "", "")
                yield obj

    def presigned_get_url(
        self,
        key: str,
        expires: timedelta = timedelta(hours=1),
        filename: str | None = None,
    ) -> str | None:
        key = check_key(key)
        headers: DictType | None = {"response-content-disposition": content_disposition(filename)} if filename else None
        with self._errors(f"sign a URL for {key!r}"):
            return self._signer().presigned_get_object(self.bucket, key, expires=expires, response_headers=headers)

    def _signer(self) -> Minio:
        """The client download URLs are signed with: for the public address when there is one. Signing needs the
        bucket's region (no request when it is configured; else asked once through the internal address)."""
        if self._make_public_client is None:
            return self.client
        if self._public_client is None:
            self._public_client = self._make_public_client(self.client._get_region(self.bucket))
        return self._public_client


def _client(endpoint: str, settings: Settings, **options: Any) -> Minio:
    """A minio client for ``endpoint`` (``host:port``, secure as ``settings.s3_secure`` says, or an ``http(s)://``
    URL) with the credentials and region of ``settings`` (``options`` override)."""
    secure = settings.s3_secure
    if "://" in endpoint:
        parts = urlsplit(endpoint)
        endpoint, secure = parts.netloc, parts.scheme == "https"
    kwargs: dict[str, Any] = {
        "access_key": settings.s3_access_key,
        "secret_key": settings.s3_secret_key,
        "secure": secure,
        "region": settings.s3_region,
        **options,
    }
    return Minio(endpoint, **kwargs)


class _Absent(Exception):
    """Internal: the object does not exist."""


def _raise_embedded_error(body: bytes | None, key: str) -> None:
    """S3 may answer a copy or completion with ``200 OK`` and an ``<Error>`` document."""
    if not body or b"<Error>" not in body:
        return
    root = ElementTree.fromstring(body)
    code = root.findtext("Code") or "InternalError"
    if code == "PreconditionFailed":
        raise ObjectExists(f"an object is already stored at {key!r}")
    raise StorageUnavailable(f"object storage failed to write {key!r}: {code}: {root.findtext('Message') or ''}")


__all__ = ["S3FileStore"]
