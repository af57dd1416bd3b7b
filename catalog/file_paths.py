"""The rules a path must follow to be stored: one function for the file store's keys, uploads and validation.

A depositor's path becomes the key ``studies/<accession>/<path>`` in a local folder or an S3 bucket, and later a
file name on the disks of everyone who downloads the study. So, besides being a clean relative POSIX path that fits
the stores' limits, it must not hold characters that hide what it is (control characters, bidirectional overrides:
``evil\\u202egnp.exe`` displays as ``evilexe.png``), and two paths of one study must not name the same file where
names are compared without case or Unicode normalisation (macOS, Windows), nor one be a file where the other
needs a folder.

What is refused, and what is not (an archive takes real data sets from every platform, and gives them back to every
platform):

* refused: control characters, bidirectional formatting characters, and characters drawn like a folder separator
  (fullwidth solidus ``／``, division and fraction slashes…: ``plate1／A01.tif`` would list as a file in a folder);
  ``.``/``..`` and names made only of dots or spaces (Windows cannot name a file so);
* a clash: names equal once case is folded and Unicode normalised (NFC, as macOS and Windows compare), invisible
  characters (zero-width joiners and spaces, soft hyphens, variation selectors: HFS+ ignores several) set aside,
  and trailing dots and spaces set aside (Windows drops them: ``a.tif.`` is ``a.tif`` there);
* allowed: Windows' reserved device names (``CON``, ``AUX``, ``NUL``, ``COM1``…) and its reserved characters
  (``:``, ``?``, ``*``, ``"``, ``<``, ``>``, ``|``): they are common in real data sets (time stamps, ``aux/``
  folders) and only Windows cannot create them; lookalikes that no file system confuses (fullwidth letters) too.
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
#: characters drawn like '/' or '\\' (fraction, division, fullwidth, small and big solidus, set minus)
_SEPARATOR_LOOKALIKE = re.compile("[\u2044\u2215\u2216\u29f8\u29f9\ufe68\uff0f\uff3c]")
#: Default_Ignorable_Code_Point (Unicode DerivedCoreProperties): drawn as nothing, so two names differing only by
#: them look the same (and HFS+ ignores several when it compares names)
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0000-\U000e0fff]"
)


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
    lookalike = _SEPARATOR_LOOKALIKE.search(path)
    if lookalike:
        return f"a character drawn like a folder separator (U+{ord(lookalike.group()):04X}); use '/' between folders"
    if path.startswith("/"):
        return "an absolute path; give it relative to the study's top folder"
    if len(path.encode("utf-8")) > max_bytes:
        return f"more than {max_bytes} bytes"
    for segment in path.split("/"):
        if segment == "":
            return "an empty folder name ('//' or a trailing '/')"
        if segment in (".", ".."):
            return f"a {segment!r} segment"
        if not segment.strip(". "):
            return f"a name made only of dots or spaces ({segment!r})"
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            return f"a file or folder name longer than {MAX_SEGMENT_BYTES} bytes"
    return None


#: changes whenever :func:`clash_key` does (keys stored by an older one are computed again)
CLASH_KEY_VERSION = 2


def clash_key(path: str) -> str:
    """The form under which two paths name the same file on a case-insensitive, normalising file system: case folded
    and NFC (again after folding, which can decompose: ``Ϊ́`` and ``ΐ``), invisible characters removed, and each
    name's trailing dots and spaces removed."""
    folded = unicodedata.normalize("NFC", unicodedata.normalize("NFC", path).casefold())
    folded = _INVISIBLE.sub("", folded)
    return "/".join(segment.rstrip(". ") or segment for segment in folded.split("/"))


def ancestors(key: str) -> list[str]:
    """The folders above a path (or clash key): ``a/b/c`` → ``["a", "a/b"]``."""
    parts = key.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


__all__ = ["CLASH_KEY_VERSION", "MAX_KEY_BYTES", "MAX_PATH_BYTES", "MAX_SEGMENT_BYTES", "ancestors", "clash_key", "path_problem"]
