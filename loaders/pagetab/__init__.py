"""BioStudies PageTab (as the BioImage Archive uses it) to a REMBI study record.

A PageTab submission is an envelope (accession, ``Title``/``ReleaseDate``/``DOI`` attributes) around a root
``Study`` section whose subsections are the REMBI objects of the BioImages templates (v4, v5, MIFA): authors
and their organisations, publications, funding, biosamples, specimens, image acquisitions, correlations,
analyses, annotations and study components that point at the others by title under ``Associations``. The
Default template and legacy layouts (REMBI sections nested inside a component, as in IDR imports) are read
too. :func:`load_pagetab_json` returns the record (a nested dict shaped like ``schema/rembi.yaml``'s
``Study``, references written as titles) ready for :func:`catalog.validation.check_study_record`, the file
lists the sections name, and notes of everything kept only as a generic attribute or left out.

The package is cut by concern: :mod:`.reading` (the JSON model), :mod:`.tsv` (the TSV form), :mod:`.sections`
(what sections and attributes are in REMBI), :mod:`.study` (the study's fields), :mod:`.people` (authors,
organisations, publications, funding), :mod:`.objects` and :mod:`.terms` (REMBI objects and their ontology
terms), :mod:`.components` (components and associations), :mod:`.attachments` (links, files, unmapped
sections) and :mod:`.loader` (the pass that calls them).

Decisions the archive would make, applied here:

* a missing licence becomes ``default_license`` (CC0-1.0, the licence BioImages templates propose, so that
  older studies without one stay loadable; a policy of this catalog: pass ``default_license=None`` to
  require one), with a note; a licence text that is not one of ``LicenseEnum`` is NOT guessed: it is kept
  as an attribute and noted, and validation then reports the study as having no licence;
* identifiers are read with :mod:`catalog.external_ids`: DOIs lose their resolver prefixes and spaces; ORCIDs
  become ``https://orcid.org/…`` IRIs and are checked (check digit), ROR ids too (checksum); links to other
  resources get the one IRI the catalog stores for them; malformed ones, ``pending`` PubMed IDs and invalid
  e-mails are left out with a note; the literal text ``None`` (written by some conversion scripts) counts as
  no value;
* an imaging method not in :mod:`loaders.ontology_terms` becomes FBbi's root "imaging method" term, its
  text kept as an ``Imaging method`` attribute of the acquisition; an unknown organism is kept as an
  ``Organism`` attribute of the biosample;
* a specimen gets its biosamples from the associations it appears in (``Associations`` pair them);
* an association naming a section that does not exist is kept as written, so validation reports it against
  the component and field (what a deposit needs); harvesters of released studies may pass
  ``unresolved_associations="drop"`` to keep the study loadable (the name is then kept as a component
  attribute and noted);
* a record the archive published (``published=True``, what harvests pass) loads even where the archive's
  own records lack what a deposit must give: an author without a name is named by their e-mail (else their
  affiliation), an object without a required text (an Image analysis with only a title) takes its title;
  each is noted. Deposits are read as written, for validation to report.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from loaders.loaded import DEFAULT_LICENCE, LoadedRecord
from loaders.pagetab.loader import LOADER_NAME, LOADER_VERSION, convert
from loaders.pagetab.objects import parse_matrix
from loaders.pagetab.reading import PageTabError, read_pagetab_document
from loaders.pagetab.state import Conversion, Options
from loaders.pagetab.tsv import parse_pagetab_tsv

__all__ = [
    "LOADER_NAME",
    "LOADER_VERSION",
    "PageTabError",
    "load_pagetab_json",
    "load_pagetab_tsv",
    "parse_matrix",
    "parse_pagetab_tsv",
]


def load_pagetab_json(
    doc: dict[str, Any] | str | os.PathLike[str],
    *,
    source_url: str | None = None,
    harvested_at: str | None = None,
    unresolved_associations: Literal["report", "drop"] = "report",
    default_license: str | None = DEFAULT_LICENCE,
    published: bool = False,
) -> LoadedRecord:
    """A REMBI study record from a PageTab submission (a parsed JSON dict, JSON text or a file path).

    ``harvested_at`` is written as given (pass it for harvests; loading the same input twice gives the same
    record). ``unresolved_associations``, ``default_license`` and ``published``: see
    :class:`loaders.pagetab.state.Options`.
    """
    if unresolved_associations not in ("report", "drop"):
        raise ValueError(f"unresolved_associations must be 'report' or 'drop', not {unresolved_associations!r}")
    data, name = read_pagetab_document(doc)
    options = Options(unresolved_associations, default_license, published)
    return convert(Conversion(data, name, options), source_url, harvested_at)


def load_pagetab_tsv(text_or_path: str | os.PathLike[str], **options: Any) -> LoadedRecord:
    """A REMBI study record from PageTab TSV text or a file path (options as :func:`load_pagetab_json`)."""
    if isinstance(text_or_path, str) and ("\t" in text_or_path or "\n" in text_or_path):
        text, name = text_or_path, "PageTab TSV"
    else:
        path = Path(text_or_path)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise PageTabError(
                f"{path}: cannot read the PageTab TSV ({exc})", [{"file": str(path), "message": str(exc)}]
            ) from exc
        name = path.name
    return load_pagetab_json(parse_pagetab_tsv(text, name=name), **options)
