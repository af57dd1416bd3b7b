"""A deposit handed to a running server over its HTTP API (``bia deposit --server URL``): the same sequence as a
local deposit (a submission, metadata, file lists, uploads, validation, finalize), each step a request of
``api/routes_deposits.py``; on any error the submission is discarded, so nothing is kept."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable
from urllib.parse import quote

import requests

from catalog.errors import CatalogError

#: media types of file lists and metadata documents, by their name's extension
_MEDIA = {
    ".tsv": "text/tab-separated-values",
    ".csv": "text/csv",
    ".json": "application/json",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
}
#: seconds to connect, and to wait for the next bytes of an answer (a finalize of a large study takes a while)
TIMEOUT = (10.0, 600.0)


class ServerRefused(CatalogError):
    """The server answered a step with an error (its ``{code, status, message, errors}`` carried over), or could not
    be reached."""

    code = "server_refused"


@dataclass
class Finalized:
    """What the server made of a deposit: the accession, its URL, its state and release date, and the report."""

    accession: str
    url: str
    state: str | None
    release_date: str | None
    report: dict[str, Any] = field(default_factory=dict)
    files: int = 0


class _Counted:
    """A file read in chunks for a streamed upload, hashed (MD5) and counted on the way."""

    def __init__(self, stream: IO[bytes], size: int, progress: Callable[[int], object] | None) -> None:
        self.stream, self.size, self.progress = stream, size, progress
        self.md5 = hashlib.md5(usedforsecurity=False)

    def __len__(self) -> int:  # requests sends it as the Content-Length
        return self.size

    def read(self, n: int = -1) -> bytes:
        chunk = self.stream.read(n if n and n > 0 else 1 << 20)
        self.md5.update(chunk)
        if self.progress is not None and chunk:
            self.progress(len(chunk))
        return chunk


class DepositClient:
    """The deposit API of the server at ``server`` (its base URL), with the owner's bearer ``token``."""

    def __init__(self, server: str, token: str, session: requests.Session | None = None) -> None:
        self.server = server.rstrip("/")
        self.session = session or requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.session.headers["Accept"] = "application/json"

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        url = self.server + path
        try:
            answer = self.session.request(method, url, timeout=TIMEOUT, **kwargs)
        except requests.RequestException as exc:
            reason = re.search(r"\[Errno -?\d+\] ([^\"')]+)", str(exc))
            raise ServerRefused(
                f"cannot reach the catalog server at {self.server}: {reason.group(1) if reason else type(exc).__name__} "
                "(is it running, and is this its URL?)"
            ) from exc
        if answer.status_code >= 400:
            raise _refusal(answer, method, url)
        return answer.json() if answer.content else None

    def deposit(
        self,
        metadata: Path,
        *,
        file_lists: list[Path],
        uploads: list[tuple[str, Path]],
        release_date: str | None = None,
        check: Callable[[dict[str, Any]], None] | None = None,
        progress: Callable[[int], object] | None = None,
    ) -> Finalized:
        """Deposit ``metadata`` with its ``file_lists`` and ``uploads`` (path in the study, local file); ``check``
        sees the validation report before finalize. A refusal discards the submission and is raised (a failed
        validation: :class:`ServerRefused` with the report's errors)."""
        sub = self._call("POST", "/deposits")["id"]
        try:
            params = {"name": metadata.name, **({"release_date": release_date} if release_date else {})}
            self._put(f"/deposits/{sub}/metadata", metadata, params=params)
            for listing in file_lists:
                self._put(f"/deposits/{sub}/file-lists/{quote(listing.name, safe='')}", listing)
            for path, local in uploads:
                self._upload(sub, path, local, progress)
            report = self._call("POST", f"/deposits/{sub}/validate")
            if check is not None:
                check(report)
            if not report["valid"]:
                raise ServerRefused(f"the deposit is not valid ({len(report['errors'])} error(s))", report["errors"])
            done = self._call("POST", f"/deposits/{sub}/finalize")
        except ServerRefused as exc:
            left = self._discard(sub)
            if left.get("status") == "finalizing":  # cut off by an outage: the server completes it
                raise ServerRefused(
                    f"{exc.message}; the deposit is kept as {left.get('accession')} and completes on the server when "
                    "its stores answer again",
                    exc.errors,
                ) from exc
            raise
        except BaseException:
            self._discard(sub)
            raise
        return Finalized(done["accession"], done["url"], done.get("state"), done.get("release_date"), report, files=len(uploads))

    def _put(self, path: str, local: Path, params: dict[str, str] | None = None) -> Any:
        media = _MEDIA.get(local.suffix.lower(), "application/octet-stream")
        with local.open("rb") as stream:
            return self._call("PUT", path, data=stream, params=params, headers={"Content-Type": media})

    def _upload(self, sub: str, path: str, local: Path, progress: Callable[[int], object] | None) -> None:
        with local.open("rb") as stream:
            body = _Counted(stream, local.stat().st_size, progress)
            stored = self._call(
                "PUT",
                f"/deposits/{sub}/files/{quote(path)}",
                data=body,
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(body.size)},
            )
        if stored.get("md5") != body.md5.hexdigest() or stored.get("size") != body.size:
            raise ServerRefused(
                f"{local}: the server stored other bytes than were sent (size {stored.get('size')}, md5 {stored.get('md5')})",
                [{"file": str(local), "message": "upload corrupted on the way; deposit again"}],
            )

    def _discard(self, sub: str) -> dict[str, Any]:
        """Discard the submission if it is still open; what is left of it (a finalize cut off by an outage is kept
        and completes on the server; ``{}`` when it is gone or the server cannot say)."""
        try:
            self.session.delete(f"{self.server}/deposits/{sub}", timeout=TIMEOUT)
            left = self.session.get(f"{self.server}/deposits/{sub}", timeout=TIMEOUT)
            return left.json() if left.status_code == 200 else {}
        except (requests.RequestException, ValueError):
            return {}  # the server expires open submissions by itself (BIA_SUBMISSION_TTL_DAYS)


def _refusal(answer: requests.Response, method: str, url: str) -> ServerRefused:
    """The server's error shape as a :class:`ServerRefused` (an answer that is not one: its status and text)."""
    try:
        body = answer.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "message" in body:
        error = ServerRefused(str(body["message"]), list(body.get("errors") or []))
    else:
        error = ServerRefused(f"{method} {url}: HTTP {answer.status_code}: {answer.text[:300]}")
    error.status = answer.status_code
    return error
