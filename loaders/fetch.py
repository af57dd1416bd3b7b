"""A polite HTTP client for harvests: retries with back-off, a minimum interval per host, streamed bodies.

Only the standard library's ``urllib`` is used, so harvesting needs nothing beyond the catalog's own
dependencies. Every failure becomes a :class:`FetchError` naming the URL and what went wrong.
"""

from __future__ import annotations

import email.utils
import shutil
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable

from catalog.errors import CatalogError

USER_AGENT = "bia-catalog-harvester/1.0 (+https://github.com/bia-catalog)"
RETRY_STATUSES = {408, 425, 429, 500, 502, 503, 504}


class FetchError(CatalogError):
    """A source that could not be fetched (after retries)."""

    status = 502
    code = "fetch_failed"


class NotAtSource(FetchError):
    """The source answered 404: the record does not exist there."""

    status = 404
    code = "not_at_source"


class Fetcher:
    """GETs with retries (``attempts``), exponential back-off and at least ``interval`` seconds between two
    requests to the same host."""

    def __init__(
        self,
        *,
        interval: float = 0.5,
        attempts: int = 4,
        timeout: float = 60.0,
        backoff: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = interval
        self.attempts = max(1, attempts)
        self.timeout = timeout
        self.backoff = backoff
        self.sleep = sleep
        self.requests = 0
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def _wait_turn(self, url: str) -> None:
        host = urllib.parse.urlsplit(url).netloc
        with self._lock:
            due = self._last.get(host, 0.0) + self.interval
            now = time.monotonic()
            if due > now:
                self.sleep(due - now)
            self._last[host] = time.monotonic()

    def _open(self, url: str, accept: str):
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise FetchError(f"{url}: only http and https sources can be fetched")
        last_error = ""
        for attempt in range(1, self.attempts + 1):
            self._wait_turn(url)
            self.requests += 1
            request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": accept})
            try:
                return urllib.request.urlopen(request, timeout=self.timeout)  # noqa: S310 - scheme checked above
            except urllib.error.HTTPError as exc:
                if exc.code == 404:
                    raise NotAtSource(f"{url}: not found at the source (HTTP 404)") from None
                if exc.code not in RETRY_STATUSES:
                    raise FetchError(f"{url}: HTTP {exc.code} {exc.reason}") from None
                last_error = f"HTTP {exc.code} {exc.reason}"
                delay = _retry_after(exc.headers.get("Retry-After")) if exc.headers else None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                last_error = str(getattr(exc, "reason", exc))
                delay = None
            if attempt < self.attempts:
                self.sleep(delay if delay is not None else self.backoff * 2 ** (attempt - 1))
        raise FetchError(f"{url}: gave up after {self.attempts} attempt(s): {last_error}")

    def get_bytes(self, url: str, accept: str = "*/*") -> bytes:
        """The body of ``url``."""
        with self._open(url, accept) as response:
            return response.read()

    def download(self, url: str, target: Path, accept: str = "*/*") -> Path:
        """Stream the body of ``url`` into ``target`` (never held in memory); returns ``target``."""
        partial = target.with_name(target.name + ".part")
        with self._open(url, accept) as response, partial.open("wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
        partial.replace(target)
        return target


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (seconds or an HTTP date), capped at 5 minutes."""
    if not value:
        return None
    try:
        return min(300.0, max(0.0, float(value)))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return min(300.0, max(0.0, parsed.timestamp() - time.time())) if parsed else None
