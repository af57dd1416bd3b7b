"""The rules a path must follow to be stored: one function for the file store's keys, uploads and validation.

A depositor's path becomes the key ``studies/<accession>/<path>`` in a local folder or an S3 bucket, and later a
file name on the disks of everyone who downloads the study. So, besides being a clean relative POSIX path that fits
the stores' limits, it must not hold characters that hide what it is (control characters, bidirectional overrides:
``evil\\u202egnp.exe`` displays as ``evilexe.png``), and two paths of one study must not name the same file where
names are compared without case or Unicode normalisation (macOS, Windows), nor one be a file where the other
needs a folder.
"""
from __future__ import annotations

import re
import unicodedata

#: the longest key the stores take, and the longest path segment (file or folder name) file systems take
MAX_KEY_BYTES = 1024
MAX_SEGMENT_BYTES = 255
#: the longest depositor path: what is left of a key under ``studies/<accession>/``
MAX_PATH_BYTES = 960
#: C0 and C1 control characters and DEL (tab, newline and carriage return included)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: bidirectional formatting characters (Unicode TR9): marks, embeddings, overrides and isolates
_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def path_problem(path: str, *, max_bytes: int = MAX_KEY_BYTES) -> str | None:
    """What is wrong with ``path`` as a stored path (None: nothing)."""
    if not isinstance(path, str) or not path:
        return "an empty path"
    if "\x00" in path:
        return "a NUL character"
    if "\\" in path:
        return "a backslash; use '/' between folders"
    control = _CONTROL.search(path)
    if control:
        return f"a control character (U+{ord(control.group()):04X})"
    bidi = _BIDI.search(path)
    if bidi:
        return f"a bidirectional formatting character (U+{ord(bidi.group()):04X}) that can disguise the name"
    if path.startswith("/"):
        return "an absolute path; give it relative to the study's top folder"
    if len(path.encode("utf-8")) > max_bytes:
        return f"more than {max_bytes} bytes"
    for segment in path.split("/"):
        if segment == "":
            return "an empty folder name ('//' or a trailing '/')"
        if segment in (".", ".."):
            return f"a {segment!r} segment"
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            return f"a file or folder name longer than {MAX_SEGMENT_BYTES} bytes"
    return None


def clash_key(path: str) -> str:
    """The form under which two paths name the same file on a case-insensitive, normalising file system."""
    return unicodedata.normalize("NFC", path).casefold()


def ancestors(key: str) -> list[str]:
    """The folders above a path (or clash key): ``a/b/c`` → ``["a", "a/b"]``."""
    parts = key.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


__all__ = ["MAX_KEY_BYTES", "MAX_PATH_BYTES", "MAX_SEGMENT_BYTES", "ancestors", "clash_key", "path_problem"]
