"""Dates the catalog takes from people, records and the command line: parsed as dates, never compared as text.

A release date decides whether a study is public, so a value that is not a date must be refused, not compared
(``"garbage" > "2026-01-01"`` as text would release every embargoed study). Studies are released at the start
of their date in UTC, so a release *time* (records of other archives: ``2026-01-01T23:00:00-05:00``) becomes the
first UTC date that starts at or after it (there ``2026-01-03``): never a day on which the source still
withholds the study. A time without a zone is taken as UTC.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from catalog.errors import ValidationFailed

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
#: a date, optionally followed by a time (``2023-05-01T12:00:00Z``), as harvested records write them
_ISO_DATE_TIME = re.compile(r"(\d{4}-\d{2}-\d{2})(?:[T ]([0-9:.]+)(Z|[+-]\d{2}:?\d{2})?)?", re.ASCII)


class InvalidDate(ValidationFailed):
    """A value given as a date that is not one."""

    code = "invalid_date"


def today_iso() -> str:
    """Today's date in UTC, ``YYYY-MM-DD``."""
    return dt.datetime.now(dt.timezone.utc).date().isoformat()


def parse_date(value: Any, field: str = "date", *, allow_time: bool = False) -> str:
    """``value`` as an ISO date ``YYYY-MM-DD`` (a real calendar date), or :class:`InvalidDate` naming ``field``.

    ``allow_time``: also take a date followed by a time of day and zone (records from other archives): the first
    UTC date starting at or after that moment.
    """
    text = str(value).strip() if value is not None else ""
    match = (_ISO_DATE_TIME if allow_time else _ISO_DATE).fullmatch(text)
    try:
        if match is None:
            raise ValueError
        if allow_time and match.group(2):
            return _first_day_from(match.group(1), match.group(2), match.group(3))
        return dt.date.fromisoformat(match.group(1) if allow_time else text).isoformat()
    except ValueError:
        raise InvalidDate(
            f"{field} {text[:40]!r} is not a date (YYYY-MM-DD)",
            [{"field": field, "value": text[:200], "message": "not a date (YYYY-MM-DD)"}],
        ) from None


def release_date_of(value: Any) -> str | None:
    """A release date or time from another archive's record as the date the catalog releases it on (see
    :func:`parse_date` with ``allow_time``); a value that is no date is given back as text for validation to refuse,
    an empty one as None."""
    text = str(value).strip() if value is not None else ""
    if not text:
        return None
    try:
        return parse_date(text, "release_date", allow_time=True)
    except InvalidDate:
        return text


def _first_day_from(date: str, time: str, zone: str | None) -> str:
    """The first UTC date starting at or after ``date`` ``time`` ``zone`` (ValueError if it is no moment)."""
    zone = "+00:00" if zone in (None, "Z") else zone if ":" in zone else f"{zone[:3]}:{zone[3:]}"
    moment = dt.datetime.fromisoformat(f"{date}T{time}{zone}").astimezone(dt.timezone.utc)
    day = moment.date()
    return (day if moment == dt.datetime.combine(day, dt.time(), dt.timezone.utc) else day + dt.timedelta(days=1)).isoformat()


__all__ = ["InvalidDate", "parse_date", "release_date_of", "today_iso"]
