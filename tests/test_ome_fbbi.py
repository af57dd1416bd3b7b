"""The reviewed table from OME acquisition modes to FBbi terms: every term it names exists in the ontology with that
label and is not obsolete; every OME acquisition mode of the 2016-06 schema has a row; lookups fold case."""

from __future__ import annotations

import re
from pathlib import Path

from catalog.imaging_methods import acquisition_modes, method_for

FBBI = Path(__file__).parent / "data" / "fbbi" / "fbbi-subset.obo"
#: the AcquisitionMode enumeration of OME schema 2016-06 (ome.xsd)
OME_MODES = {
    "WideField",
    "LaserScanningConfocalMicroscopy",
    "SpinningDiskConfocal",
    "SlitScanConfocal",
    "MultiPhotonMicroscopy",
    "StructuredIllumination",
    "SingleMoleculeImaging",
    "TotalInternalReflection",
    "FluorescenceLifetime",
    "SpectralImaging",
    "FluorescenceCorrelationSpectroscopy",
    "NearFieldScanningOpticalMicroscopy",
    "SecondHarmonicGenerationImaging",
    "PALM",
    "STORM",
    "STED",
    "TIRF",
    "FSM",
    "LCM",
    "Other",
    "BrightField",
    "SweptFieldConfocal",
    "SPIM",
}


def ontology_terms() -> dict[str, dict[str, str]]:
    terms = {}
    for stanza in FBBI.read_text(encoding="utf-8").split("\n\n"):
        fields = dict(re.findall(r"^(id|name|is_obsolete): (.*)$", stanza, flags=re.M))
        if "id" in fields:
            terms[fields["id"]] = fields
    return terms


def test_every_term_of_the_table_is_in_the_ontology_with_its_label():
    terms = ontology_terms()
    table = acquisition_modes()
    assert set(table) == OME_MODES
    for mode, term in table.items():
        if term is None:
            continue
        assert term.id in terms, (mode, term.id)
        assert terms[term.id]["name"] == term.label and terms[term.id].get("is_obsolete") != "true", mode
        assert term.match in ("exact", "close", "broader")


def test_lookups_fold_case_and_spacing_and_never_guess():
    assert method_for("LaserScanningConfocalMicroscopy").iri == "http://purl.obolibrary.org/obo/FBbi_00000252"
    assert method_for("spinning disk confocal").id == "FBbi:00000253"
    assert method_for("Other") is None and method_for("SomethingNew") is None and method_for(None) is None
