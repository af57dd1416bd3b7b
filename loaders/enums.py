"""The schema's enums as the loaders match text against them: licences, relations, annotation types.

Every table here is derived from ``schema/rembi.yaml`` (through :func:`catalog.rembi_model.load_model`), so a
value added to an enum is read by every loader without another edit: a licence by its name (``CC-BY-4.0``),
by the words people write (``Creative Commons Attribution 4.0 International (CC BY 4.0)``) or by its IRI; a
relation or an annotation type by its name written with spaces (``same specimen imaged``, ``segmentation mask``).
"""

from __future__ import annotations

import re
from functools import lru_cache

from catalog.rembi_model import load_model

#: Words of licence names reduced to the letters of their SPDX-like ids (``Attribution`` → ``by``).
_LICENCE_WORDS = [
    (r"creative\s*commons", "cc"),
    (r"attribution", "by"),
    (r"non-?commercial", "nc"),
    (r"share-?alike", "sa"),
    (r"no-?deriv(?:ative)?s?", "nd"),
    (r"zero", "0"),
    (r"licen[cs]e|international|unported|generic|universal|public\s*domain\s*dedication", ""),
    (r"\bv(?=\d)", ""),  # "v1.0"
]
#: Short forms written without the version their licence has only one of.
LICENCE_ALIASES = {"cc0": "CC0-1.0"}
_CC_URL = re.compile(r"creativecommons\.org/(licenses/[a-z\-]+|publicdomain/zero)/(\d\.\d)", re.IGNORECASE)
_SPDX_URL = re.compile(r"spdx\.org/licenses/([\w.+-]+?)(?:\.html|\.json)?/?$")


def _spaced(names: list[str]) -> dict[str, str]:
    return {name.replace("_", " "): name for name in names}


def relations() -> dict[str, str]:
    """``RelationEnum`` names by the way they are written in text (``same specimen imaged`` → ``same_specimen_imaged``)."""
    return _spaced(list(load_model().enums["RelationEnum"]))


def annotation_types() -> dict[str, str]:
    """``AnnotationTypeEnum`` names by the way they are written (``segmentation mask`` → ``segmentation_mask``)."""
    return _spaced(list(load_model().enums["AnnotationTypeEnum"]))


def _compact(text: str) -> str:
    """A licence text reduced to letters, digits and dots, its words as their short forms."""
    compact = text.casefold()
    for pattern, replacement in _LICENCE_WORDS:
        compact = re.sub(pattern, replacement, compact)
    compact = re.sub(r"[^a-z0-9.]+", "", compact)
    return f"cc{compact}" if compact.startswith("by") else compact


@lru_cache(maxsize=1)
def _licence_index() -> tuple[dict[str, str], dict[str, str]]:
    """(compact name → licence, IRI → licence) over ``LicenseEnum``."""
    values = load_model().enums["LicenseEnum"]
    by_name = {_compact(name): name for name in values} | LICENCE_ALIASES
    by_iri = {iri.rstrip("/"): name for name, iri in values.items()}
    return by_name, by_iri


def licence_name(text: str) -> str | None:
    """The ``LicenseEnum`` name of a licence written as its name, as text (``CC BY 4.0``, ``CC0``) or as a URL;
    None if it is none of them (a licence is never guessed)."""
    by_name, by_iri = _licence_index()
    spdx = _SPDX_URL.search(text.strip())
    if spdx:  # an SPDX identifier IRI: the enum names are SPDX ids
        return spdx.group(1) if spdx.group(1) in by_name.values() else None
    url = _CC_URL.search(text)
    if url:
        return by_iri.get(f"https://creativecommons.org/{url.group(1).lower()}/{url.group(2)}")
    # "Creative Commons Attribution 4.0 International (CC BY 4.0)": the whole, the name, or the bracketed short form
    for piece in [text, re.sub(r"\(.*?\)", " ", text), *re.findall(r"\((.*?)\)", text)]:
        compact = _compact(piece)
        found = by_name.get(compact) or by_name.get(f"{compact}.0")
        if found:
            return found
    return None
