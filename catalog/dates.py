"""Dates the catalog takes from people, records and the command line: parsed as dates, never compared as text.

A release date decides whether a study is public, so a value that is not a date must be refused, not compared
(``"garbage" > "2026-01-01"`` as text would release every embargoed study).
"""
from __future__ import annotations

import datetime as dt
import re
from typing import Any

from catalog.errors import ValidationFailed

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
#: a date, optionally followed by a time (``2023-05-01T12:00:00Z``), as harvested records write them
_ISO_DATE_TIME = re.compile(r"(\d{4}-\d{2}-\d{2})(?:[T ][0-9:.]+(?:Z|[+-]\d{2}:?\d{2})?)?")


class InvalidDate(ValidationFailed):
    """A value given as a date that is not one."""

    code = "invalid_date"


def today_iso() -> str:
    """Today's date in UTC, ``YYYY-MM-DD``."""
    return dt.datetime.now(dt.timezone.utc).date().isoformat()


def parse_date(value: Any, field: str = "date", *, allow_time: bool = False) -> str:
    """``value`` as an ISO date ``YYYY-MM-DD`` (a real calendar date), or :class:`InvalidDate` naming ``field``.

    ``allow_time``: also take a date followed by a time of day (records from other archives), keeping the date.
    """
    text = str(value).strip() if value is not None else ""
    match = (_ISO_DATE_TIME if allow_time else _ISO_DATE).fullmatch(text)
    try:
        if match is None:
            raise ValueError
        return dt.date.fromisoformat(match.group(1) if allow_time else text).isoformat()
    except ValueError:
        raise InvalidDate(
            f"{field} {text[:40]!r} is not a date (YYYY-MM-DD)",
            [{"field": field, "value": text[:200], "message": "not a date (YYYY-MM-DD)"}],
        ) from None


__all__ = ["InvalidDate", "parse_date", "today_iso"]
