"""The shape of JSON text, measured without building it: how deep it nests, how many values it holds, the line
each value starts on; and a stream wrapper bounding the shape of a JSON array read piece by piece.

Everything here runs in linear time at C speed (regular expressions, ``bytes.translate``, ``itertools``), so a
hostile document is refused before a parser builds it: Python's ``json`` recurses once per level, PyYAML's
composer too, and ``ijson`` keeps a prefix string per level (a 200 kB file list nested 20,000 deep took 1 GB).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, BinaryIO

_STRING = r'"[^"\\]*(?:\\.[^"\\]*)*"'
_STRINGS = re.compile(_STRING, re.DOTALL)
_SCALARS = re.compile(r'[^\s\[\]{}:,"]+')
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")
_STRUCTURE = re.compile(_STRING + r"|[\[\]{}]", re.DOTALL)
_TOKENS = re.compile(_STRING + r'|[\[\]{}:,]|[^\s\[\]{}:,"]+', re.DOTALL)
#: +1 for an opening bracket, -1 for a closing one, by byte value
_STEP = [0] * 256
_STEP[ord("[")] = _STEP[ord("{")] = 1
_STEP[ord("]")] = _STEP[ord("}")] = -1


@dataclass(frozen=True)
class Shape:
    """How deep a JSON text nests (``[[1]]``: 2) and how many values it has (keys, scalars and containers)."""

    depth: int
    values: int


def measure(text: str) -> Shape:
    """The shape of JSON text (the text is not checked to be JSON; for other text the figures mean little)."""
    without_strings, strings = _STRINGS.subn("", text)
    scalars = _SCALARS.subn("", without_strings)[1]
    brackets = _NOT_BRACKETS.sub("", without_strings).encode("ascii")
    opened = len(brackets) - brackets.count(b"]") - brackets.count(b"}")
    depth = max(accumulate(map(_STEP.__getitem__, brackets), initial=0))
    return Shape(depth=depth, values=strings + scalars + opened)


def line_deeper_than(text: str, limit: int) -> int | None:
    """The line where JSON text first nests deeper than ``limit``."""
    depth = 0
    for match in _STRUCTURE.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > limit:
                return text.count("\n", 0, match.start()) + 1
        elif token in "]}":
            depth -= 1
    return None


def value_lines(text: str) -> dict[str, int]:
    """The line (1-based) where each value of a JSON text starts, by location (``/authors/0/name``; ``/``: the
    top). One pass over the tokens; call it only when a line is wanted."""
    lines: dict[str, int] = {}
    stack: list[list[Any]] = []  # [location, is an object, key (None: a key is expected next) or index]
    line, last = 1, 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        first = token[0]
        if first == ",":
            if stack and not stack[-1][1]:
                stack[-1][2] += 1
            continue
        if first == ":":
            continue
        if first in "]}":
            if stack:
                stack.pop()
            continue
        line += text.count("\n", last, match.start())
        last = match.start()
        top = stack[-1] if stack else None
        if top is not None and top[1] and top[2] is None:
            top[2] = _key(token)
            continue
        location = f"{top[0]}/{top[2]}" if top is not None else ""
        lines[location or "/"] = line
        if top is not None and top[1]:
            top[2] = None
        if first in "[{":
            stack.append([location, first == "{", None if first == "{" else 0])
    return lines


def _key(token: str) -> str:
    try:
        return str(json.loads(token))
    except ValueError:
        return token.strip('"')


# ----------------------------------------------------------------------------- streams

_BYTE_STRINGS = re.compile(_STRING.encode(), re.DOTALL)
_STRING_REST = re.compile(rb'[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_DIGITS_AS_ZEROS = bytes(ord("0") if chr(b).isdigit() and b < 128 else ord(" ") for b in range(256))
_ALL_BUT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


class JsonShapeError(ValueError):
    """What makes a JSON stream too deep, an entry too long or a number too long."""


class BoundedJsonStream:
    """A binary stream of a JSON array passed through unchanged, raising :class:`JsonShapeError` (from ``read``)
    as soon as the text nests deeper than ``max_depth``, an entry of the array runs over ``max_entry_bytes``
    (counted in whole reads: an entry may pass up to one read over), or a number has more than ``max_digits``
    digits (CPython refuses integers of over 4,300 digits, and ijson's C backend then crashes)."""

    def __init__(self, stream: BinaryIO, *, max_depth: int, max_entry_bytes: int, max_digits: int) -> None:
        self._stream = stream
        self._max_depth, self._max_entry, self._max_digits = max_depth, max_entry_bytes, max_digits
        self._long_number = b"0" * (max_digits + 1)
        self._depth = 0
        self._in_string = self._escaped = False
        self._entry_bytes = 0  # bytes read since the text was last back at the array's own level
        self._digits = 0  # digits at the end of the last read (a number may go on in the next)

    def read(self, size: int = -1) -> bytes:
        chunk = self._stream.read(size)
        if chunk:
            self._inspect(chunk)
        return chunk

    def _inspect(self, chunk: bytes) -> None:
        start = 0
        if self._in_string:
            start = self._close_string(chunk)
            if start < 0:  # the whole read is inside one string
                self._grow_entry(len(chunk))
                return
        rest = chunk[start:] if start else chunk
        if b"\\" in rest:
            outside = _BYTE_STRINGS.sub(b"", rest)
            opening = outside.find(b'"')
        else:  # no escapes: quotes alternate, and splitting at them is much faster than a regular expression
            parts = rest.split(b'"')
            outside = b"".join(parts[0::2])
            opening = len(outside) if len(parts) % 2 == 0 else -1
        if opening >= 0:  # a string starts and goes on in the next read
            outside = outside[:opening]
            self._in_string = True
            self._escaped = (len(chunk) - len(chunk.rstrip(b"\\"))) % 2 == 1
        self._check_numbers(outside, continues=opening < 0)
        brackets = outside.translate(None, _ALL_BUT_BRACKETS)
        levels = list(accumulate(map(_STEP.__getitem__, brackets), initial=self._depth))
        if max(levels) > self._max_depth:
            raise JsonShapeError(f"nested deeper than {self._max_depth} levels")
        self._depth = levels[-1]
        if brackets and min(levels) <= 1:
            self._entry_bytes = 0
        else:
            self._grow_entry(len(chunk))

    def _close_string(self, chunk: bytes) -> int:
        """Where the string left open by the last read ends in ``chunk`` (-1: it does not end in it)."""
        begin = 1 if self._escaped else 0
        match = _STRING_REST.match(chunk, begin)
        if match is None:
            rest = chunk[begin:]
            self._escaped = (len(rest) - len(rest.rstrip(b"\\"))) % 2 == 1
            return -1
        self._in_string = self._escaped = False
        self._digits = 0
        return match.end()

    def _check_numbers(self, outside: bytes, *, continues: bool) -> None:
        digits = outside.translate(_DIGITS_AS_ZEROS)  # every digit a 0, anything else a space: searched at C speed
        leading = len(digits) - len(digits.lstrip(b"0"))
        if self._digits + leading > self._max_digits or self._long_number in digits:
            raise JsonShapeError(f"a number with more than {self._max_digits} digits")
        if not continues:
            self._digits = 0
        elif leading == len(digits):
            self._digits += leading
        else:
            self._digits = len(digits) - len(digits.rstrip(b"0"))

    def _grow_entry(self, size: int) -> None:
        self._entry_bytes += size
        if self._entry_bytes > self._max_entry:
            raise JsonShapeError(f"an entry longer than {self._max_entry} bytes")
