"""Names of imaging methods: FBbi's terms with the other names people write, and the methods FBbi has no term for.

One table for the loaders (a depositor's words → an FBbi term: :mod:`loaders.ontology_terms`) and for search
(a query's words → every name of the same method: :func:`method_synonyms`). Each FBbi id and label was checked
against ``fbbi.obo`` (release 2020-11-06, github.com/Imaging-semantics/fbbi); the names FBbi gives as EXACT
synonyms are among the other names.
"""

from __future__ import annotations

import re
from functools import lru_cache

#: FBbi id (digits) → (label as in fbbi.obo, other names people write: FBbi's EXACT synonyms and curated ones).
IMAGING_METHODS: dict[str, tuple[str, tuple[str, ...]]] = {
    "00000240": ("macroscopy", ()),
    "00000241": ("microscopy", ()),
    "00000243": ("bright-field microscopy", ("brightfield microscopy", "bright field", "brightfield")),
    "00000244": ("dark-field microscopy", ("darkfield microscopy",)),
    "00000245": ("differential interference contrast microscopy", ("DIC", "DIC microscopy", "Nomarski")),
    "00000246": (
        "fluorescence microscopy",
        (
            "fluorescent microscopy",
            "epifluorescence microscopy",
            "widefield fluorescence microscopy",
            "wide-field fluorescence microscopy",
        ),
    ),
    "00000247": ("phase contrast microscopy", ("phase-contrast microscopy",)),
    "00000248": ("polarization microscopy", ("polarized light microscopy", "polarised light microscopy")),
    "00000249": ("time lapse microscopy", ("time-lapse microscopy",)),
    "00000251": (
        "confocal microscopy",
        ("confocal", "laser scanning confocal microscopy", "confocal laser scanning microscopy", "CLSM", "LSCM"),
    ),
    "00000252": ("single-spot confocal microscopy", ()),
    "00000253": ("spinning disk confocal microscopy", ("spinning disc confocal microscopy", "spinning disk confocal")),
    "00000254": ("two-photon laser scanning microscopy", ("two-photon microscopy", "2-photon microscopy")),
    "00000255": ("multi-photon microscopy", ("multiphoton microscopy",)),
    "00000256": ("electron microscopy", ("EM",)),
    "00000257": ("scanning electron microscopy (SEM)", ("scanning electron microscopy", "SEM")),
    "00000258": ("transmission electron microscopy (TEM)", ("transmission electron microscopy", "TEM")),
    "00000259": ("atomic force microscopy", ("AFM",)),
    "00000260": ("X-ray microscopy", ()),
    "00000332": ("structured illumination microscopy (SIM)", ("structured illumination microscopy", "SIM")),
    "00000334": (
        "stimulated emission depletion (STED)",
        ("STED microscopy", "stimulated emission depletion microscopy"),
    ),
    "00000335": ("PALM (photoactivation localization microscopy)", ("photoactivated localization microscopy",)),
    "00000336": (
        "STORM (stochastic optical reconstruction microscopy)",
        ("stochastic optical reconstruction microscopy",),
    ),
    "00000345": ("light microscopy", ()),
    "00000365": ("FLIP", ("fluorescence loss in photobleaching",)),
    "00000366": ("FRAP", ("fluorescence recovery after photobleaching",)),
    "00000367": ("FRET", ("fluorescence resonance energy transfer", "Forster resonance energy transfer")),
    "00000368": ("FLIM", ("fluorescence lifetime imaging microscopy", "fluorescence lifetime imaging")),
    "00000369": (
        "SPIM",
        (
            "selective plane illumination microscopy",
            "single plane illumination microscopy",
            "light sheet fluorescence microscopy",
            "light-sheet fluorescence microscopy",
            "light sheet microscopy",
            "LSFM",
        ),
    ),
    "00000370": ("CARS", ("coherent anti-Stokes Raman scattering microscopy",)),
    "00000371": ("OCT", ("optical coherence tomography",)),
    "00000380": ("scanning-transmission electron microscopy", ("scanning transmission electron microscopy", "STEM")),
    "00000392": ("slit-scan confocal microscopy", ()),
    "00000393": ("array-scan confocal microscopy", ()),
    "00000585": (
        "serial block face SEM (SBFSEM)",
        (
            "serial block face scanning electron microscopy",
            "serial block-face scanning electron microscopy",
            "SBF-SEM",
            "SBEM",
        ),
    ),
    "00000603": ("fluorescence polarization microscopy", ()),
    "00000617": (
        "evanescent wave microscopy",
        ("total internal reflection fluorescence microscopy", "TIRF microscopy", "TIRF", "TIRFM"),
    ),
    "00000622": ("high-voltage electron microscopy (HVEM)", ("high-voltage electron microscopy",)),
    "00001002": ("X-ray computed tomography", ("X-ray CT", "CT scan", "CAT scan", "micro-CT", "microCT")),
    "00001003": ("X-ray tomography", ()),
    "00001004": ("tomography", ()),
    "00001005": ("computed tomography", ()),
    "00050000": (
        "focussed ion beam scanning electron microscopy (FIB-SEM)",
        ("focused ion beam scanning electron microscopy", "focussed ion beam scanning electron microscopy", "FIB-SEM"),
    ),
}


#: Methods FBbi has no term for (none in release 2020-11-06, nor in the source of github.com/foundingGIDE/fbbi as of
#: 2026-01-30, which now maintains it): a depositor's words for them get FBbi's generic "imaging method" and are
#: kept beside it as written. Listed here so that search knows their other names. Name → other names people write.
METHODS_WITHOUT_TERM: dict[str, tuple[str, ...]] = {
    "cryo-electron tomography": (
        "cryo-ET",
        "cryoET",
        "cryo electron tomography",
        "electron cryotomography",
        "electron cryo-tomography",
        "cryogenic electron tomography",
    ),
    "electron tomography": ("TEM tomography",),
    "array tomography": (),
    "soft X-ray tomography": ("SXT", "cryo soft X-ray tomography", "cryo-SXT", "soft X-ray microscopy tomography"),
}

_PARENS = re.compile(r"^(?P<outside>[^()]*?)\s*\((?P<inside>[^()]*)\)\s*$")


def name_variants(text: str) -> list[str]:
    """The name, the name without its parenthesis and the parenthesis alone (``Mus musculus (mouse)``)."""
    text = " ".join(text.split())
    found = [text]
    match = _PARENS.match(text)
    if match:
        found += [match["outside"], match["inside"]]
    return [v for v in found if v.strip()]


def words_key(text: str) -> str:
    """The words of a name, lower case, one space apart (``Cryo-ET`` → ``cryo et``): how search compares names."""
    return " ".join(re.findall(r"[^\W_]+", text.casefold()))


@lru_cache(maxsize=1)
def method_synonyms() -> dict[str, tuple[str, ...]]:
    """Every name of an imaging method (as :func:`words_key` writes it) → every name of the same method: its FBbi
    label (with and without its parenthesis) and other names, or a method without a term and its other names."""
    groups = [[v for name in (label, *others) for v in name_variants(name)] for label, others in IMAGING_METHODS.values()]
    groups += [[name, *others] for name, others in METHODS_WITHOUT_TERM.items()]
    synonyms: dict[str, list[str]] = {}
    for group in groups:
        keys = list(dict.fromkeys(words_key(name) for name in group if words_key(name)))
        for key in keys:
            merged = synonyms.setdefault(key, [])
            merged.extend(k for k in keys if k not in merged)
    return {key: tuple(names) for key, names in synonyms.items()}
