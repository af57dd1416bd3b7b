"""Organism names to NCBITaxon terms and imaging-method names to FBbi terms: a small curated table.

Only the terms common in bioimaging deposits are listed, each checked against its ontology: the FBbi IDs
against ``fbbi.obo`` (release 2020-11-06, github.com/Imaging-semantics/fbbi), the NCBITaxon IDs against
NCBI Taxonomy. Matching is case-insensitive, ignores punctuation and spacing, tries a name without and
inside its parentheses (``Mus musculus (mouse)``) and, for imaging methods, tolerates the suffix variants
``microscopy`` / ``microscope`` / ``imaging`` (``Fluorescence imaging`` → fluorescence microscopy).
Terms given explicitly by a depositor (an ``Ontology Term ID`` / ``NCBI taxon ID``) always win over a lookup.
The imaging-method names are kept in :mod:`catalog.method_names`, which search reads too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from catalog import external_ids
from catalog.method_names import IMAGING_METHODS as _IMAGING_METHODS
from catalog.method_names import name_variants as _variants


@dataclass(frozen=True)
class Term:
    """An ontology term: its CURIE (or full IRI), label and ontology name."""

    id: str
    label: str
    ontology: str

    def as_record(self) -> dict[str, str]:
        """The term as a REMBI ``OntologyTerm`` record."""
        return {"id": self.id, "label": self.label, "ontology_name": self.ontology}


#: The root of FBbi's imaging methods: used when a depositor's method is not in the table
#: (the depositor's text is kept beside it), so that an acquisition always has a method.
GENERIC_IMAGING_METHOD = Term("FBbi:00000222", "imaging method", "FBbi")

#: NCBITaxon id → (scientific name, other names people write).
_ORGANISMS: dict[int, tuple[str, tuple[str, ...]]] = {
    9606: ("Homo sapiens", ("human", "humans", "man")),
    10090: ("Mus musculus", ("mouse", "house mouse", "mice")),
    10116: ("Rattus norvegicus", ("rat", "norway rat", "brown rat")),
    7955: ("Danio rerio", ("zebrafish", "zebra fish")),
    7227: ("Drosophila melanogaster", ("fruit fly", "fruitfly", "drosophila")),
    6239: ("Caenorhabditis elegans", ("c. elegans", "c elegans", "nematode", "worm")),
    4932: ("Saccharomyces cerevisiae", ("baker's yeast", "budding yeast", "s. cerevisiae", "yeast")),
    4896: ("Schizosaccharomyces pombe", ("fission yeast", "s. pombe")),
    3702: ("Arabidopsis thaliana", ("thale cress", "arabidopsis", "mouse-ear cress")),
    562: ("Escherichia coli", ("e. coli", "e coli")),
    8355: ("Xenopus laevis", ("african clawed frog", "xenopus")),
    9031: ("Gallus gallus", ("chicken",)),
    44689: ("Dictyostelium discoideum", ("dictyostelium", "slime mold", "slime mould")),
    5833: ("Plasmodium falciparum", ("malaria parasite",)),
    2697049: (
        "Severe acute respiratory syndrome coronavirus 2",
        ("sars-cov-2", "sars cov 2", "2019-ncov", "covid-19 virus"),
    ),
    9534: ("Chlorocebus aethiops", ("african green monkey", "grivet", "green monkey")),
    3847: ("Glycine max", ("soybean", "soya bean")),
    3055: ("Chlamydomonas reinhardtii", ("chlamydomonas",)),
    5476: ("Candida albicans", ()),
    8090: ("Oryzias latipes", ("medaka", "japanese medaka")),
    4577: ("Zea mays", ("maize", "corn")),
    4530: ("Oryza sativa", ("rice", "asian rice")),
    3218: ("Physcomitrium patens", ("physcomitrella patens", "spreading earthmoss")),
    4097: ("Nicotiana tabacum", ("tobacco", "common tobacco")),
}

_SUFFIX = re.compile(r"\s+(microscopy|microscope|imaging)$")


def normalise(text: str) -> str:
    """Lower case, punctuation to spaces, single spaces: the key names are matched by."""
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text.casefold()).split())


@lru_cache(maxsize=1)
def _organism_index() -> dict[str, Term]:
    index: dict[str, Term] = {}
    for taxon, (name, others) in _ORGANISMS.items():
        term = Term(f"NCBITaxon:{taxon}", name, "NCBITaxon")
        for key in (name, *others):
            index.setdefault(normalise(key), term)
    return index


@lru_cache(maxsize=1)
def _method_indexes() -> tuple[dict[str, Term], dict[str, Term]]:
    exact: dict[str, Term] = {}
    stems: dict[str, list[Term]] = {}
    for digits, (label, others) in _IMAGING_METHODS.items():
        term = Term(f"FBbi:{digits}", label, "FBbi")
        for name in (label, *others):
            for variant in _variants(name):
                key = normalise(variant)
                exact.setdefault(key, term)
                stem = _SUFFIX.sub("", key)
                if stem != key and term not in stems.setdefault(stem, []):
                    stems[stem].append(term)
    unique_stems = {stem: terms[0] for stem, terms in stems.items() if len(terms) == 1 and stem not in exact}
    return exact, unique_stems


@lru_cache(maxsize=1)
def _terms_by_id() -> dict[str, Term]:
    terms = {t.id: t for t in _organism_index().values()}
    terms.update({t.id: t for t in _method_indexes()[0].values()})
    terms[GENERIC_IMAGING_METHOD.id] = GENERIC_IMAGING_METHOD
    return terms


def organism_term(name: str) -> Term | None:
    """The NCBITaxon term of an organism name (scientific or common), or None."""
    index = _organism_index()
    for variant in _variants(name):
        term = index.get(normalise(variant))
        if term:
            return term
    return None


def imaging_method_term(name: str) -> tuple[Term | None, bool]:
    """The FBbi term of an imaging method name and whether it matched exactly (else by a suffix variant)."""
    exact, stems = _method_indexes()
    variants = [normalise(v) for v in _variants(name)]
    for key in variants:
        if key in exact:
            return exact[key], True
    for key in variants:
        stem = _SUFFIX.sub("", key)
        term = exact.get(stem) or stems.get(stem)
        if term:
            return term, False
    return None, False


def term_by_id(curie: str) -> Term | None:
    """The table's term for a CURIE such as ``FBbi:00000251`` or ``NCBITaxon:9606``, if listed."""
    return _terms_by_id().get(curie)


_OBO_ID = re.compile(r"^(?:https?://purl\.obolibrary\.org/obo/)?([A-Za-z][A-Za-z0-9]*)[_:](\d+)$")


def term_curie(text: str) -> str | None:
    """A CURIE (``FBbi:00000251``) or a full IRI for an ontology term id as written; None if it is neither.
    FBbi and NCBITaxon ids are spelled as :mod:`catalog.external_ids` spells them."""
    text = text.strip()
    known = external_ids.fbbi(text) or external_ids.ncbitaxon(text) if _OBO_ID.match(text) else None
    if known:
        return known
    match = _OBO_ID.match(text)
    if match:
        return f"{match.group(1)}:{match.group(2)}"
    if re.match(r"^https?://\S+$", text):
        return text
    return None


def ontology_of(term_id: str, written: str | None = None) -> str:
    """The short ontology name of a term id (FBbi, NCBITaxon, EDAM…), else what the depositor wrote."""
    if ":" in term_id and not term_id.startswith("http"):
        return term_id.split(":", 1)[0]
    if "edamontology.org" in term_id:
        return "EDAM"
    match = re.search(r"/obo/([A-Za-z]+)_", term_id)
    if match:
        return match.group(1)
    return written or "unknown"
