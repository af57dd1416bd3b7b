"""CSV and TSV as the catalog writes them (file tables, manifests, the link graph): quoted where a cell needs it
(RFC 4180: a delimiter, a quote or a line break inside) and safe to open in a spreadsheet.

Formula injection (OWASP "CSV Injection"): a spreadsheet runs a cell starting with ``=``, ``+``, ``-``, ``@``, a tab
or a carriage return as a formula, so such a cell is written with a single quote before it (``'=HYPERLINK(…)``),
which spreadsheets show as text. Decision for numbers: a cell that is a plain decimal number (``-3.5``, ``+2``,
``-1e-3``) is left alone. It cannot call anything (a spreadsheet reads it as the number it is), and quoting it
would turn every negative value of a numeric column into text for spreadsheets and for scripts reading the
export. Anything else starting with those characters (``-2+3``, ``-A1``, ``+cmd|…``) is neutralised; column
names are cells like any other.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

#: first characters that make a spreadsheet read a cell as a formula
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_TRIGGERS = "".join(FORMULA_TRIGGERS)
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")


def safe_cell(value: Any) -> Any:
    """A value as a CSV/TSV cell: ``""`` for None, numbers as they are, text a spreadsheet would run as a formula
    with a ``'`` before it."""
    if value is None:
        return ""
    if type(value) in (int, float):
        return value
    text = str(value)
    if text[:1] and text[0] in _TRIGGERS and not _NUMBER.match(text):
        return "'" + text
    return text


def table_text(rows: Iterable[Sequence[Any]], delimiter: str, *, batch: int = 1000) -> Iterator[str]:
    """CSV (``delimiter=","``) or TSV (``"\\t"``) of ``rows`` (the header first), every cell through
    :func:`safe_cell`, in pieces of ``batch`` rows for streaming."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    for count, row in enumerate(rows, 1):
        writer.writerow([safe_cell(value) for value in row])
        if count % batch == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
