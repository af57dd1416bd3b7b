"""Identifiers of other resources (catalog/external_ids.py): spellings, checks, the IRI policy, offline use."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from catalog import external_ids as ids

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "kind, written, canonical",
    [
        ("DOI", "https://doi.org/10.1038/s41597-020-00608-w", "10.1038/s41597-020-00608-w"),
        ("DOI", "doi: 10.1038/ s41597", "10.1038/s41597"),
        ("DOI", "https://doi.org/DOI: 10.26508/lsa.202403067", "10.26508/lsa.202403067"),
        ("DOI", "http://dx.doi.org/10.5281/zenodo.1", "10.5281/zenodo.1"),
        ("DOI", "10.1/short-registrant", None),
        ("DOI", "pending", None),
        ("PubMed", "PMID: 22094257", "22094257"),
        ("PubMed", "https://pubmed.ncbi.nlm.nih.gov/456/", "456"),
        ("PubMed", "https://www.ncbi.nlm.nih.gov/pubmed/456", "456"),
        ("PubMed", "pending", None),
        ("ORCID", "0000-0002-1825-0097", "0000-0002-1825-0097"),
        ("ORCID", "http://orcid.org/0000-0001-6857-341x", "0000-0001-6857-341X"),
        ("ORCID", "https://orcid.org/0000000218250097", "0000-0002-1825-0097"),
        ("ORCID", "0000-0002-1825-0096", None),  # wrong check digit
        ("ORCID", "0000-0002-1825-009", None),
        ("ROR", "https://ror.org/02catss52", "02catss52"),
        ("ROR", "02CATSS52", "02catss52"),
        ("ROR", "02catss53", None),  # wrong checksum
        ("EMDB", "EMD-12602", "EMD-12602"),
        ("EMDB", "emd_12602", "EMD-12602"),
        ("EMDB", "12602", "EMD-12602"),
        ("EMDB", "https://www.ebi.ac.uk/emdb/EMD-12602", "EMD-12602"),
        ("EMDB", "https://identifiers.org/emdb:EMD-12602", "EMD-12602"),
        ("EMDB", "PDB 7ABC", None),
        ("EMPIAR", "empiar-10934", "EMPIAR-10934"),
        ("EMPIAR", "https://www.ebi.ac.uk/empiar/EMPIAR-10002/", "EMPIAR-10002"),
        ("EMPIAR", "EMPIAR-STARFILETEST", None),
        ("PDB", "1abc", "1ABC"),
        ("PDB", "https://www.rcsb.org/structure/7ABC", "7ABC"),
        ("PDB", "pdb_00001abc", "1ABC"),
        ("IDR", "IDR0004", "idr0004"),
        ("IDR", "https://identifiers.org/idr:0004", "idr0004"),
        ("IDR", "https://idr.openmicroscopy.org/search/?query=Name:idr0038", "idr0038"),
        ("BioStudies", "s-bsst651", "S-BSST651"),
        ("BioImage Archive", "S-BIAD590", "S-BIAD590"),
        ("BioImage Archive", "S-BSST651", None),
        ("NCBITaxon", "9606", "NCBITaxon:9606"),
        ("NCBITaxon", "NCBI:txid10090", "NCBITaxon:10090"),
        ("NCBITaxon", "http://purl.obolibrary.org/obo/NCBITaxon_9534", "NCBITaxon:9534"),
        ("FBbi", "Fbbi_00000246", "FBbi:00000246"),
        ("FBbi", "http://purl.obolibrary.org/obo/FBbi_00000254", "FBbi:00000254"),
        ("UniProt", "p0dp23", "P0DP23"),
        ("UniProt", "not-an-accession", None),
        ("ENA", "ERP116793", "ERP116793"),
    ],
)
def test_every_kind_reads_the_ways_it_is_written_and_checks_it(kind, written, canonical):
    assert ids.accession(kind, written) == canonical
    if canonical:  # canonical spellings are fixed points
        assert ids.accession(kind, canonical) == canonical


def test_one_iri_per_identifier_and_a_landing_page_beside_it():
    stored = {
        kind: ids.iri(kind, text)
        for kind, text in [
            ("DOI", "doi:10.6019/S-BIAD590"),
            ("PubMed", "PMID 34667155"),
            ("ORCID", "0000-0002-1825-0097"),
            ("ROR", "02catss52"),
            ("EMDB", "https://www.ebi.ac.uk/emdb/EMD-12602"),
            ("EMPIAR", "10934"),
            ("PDB", "7abc"),
            ("IDR", "idr0004"),
            ("BioStudies", "S-BSST651"),
            ("BioImage Archive", "S-BIAD590"),
            ("NCBITaxon", "9606"),
            ("FBbi", "FBbi:00000251"),
            ("UniProt", "P0DP23"),
        ]
    }
    assert stored == {
        "DOI": "https://doi.org/10.6019/S-BIAD590",
        "PubMed": "https://identifiers.org/pubmed:34667155",
        "ORCID": "https://orcid.org/0000-0002-1825-0097",
        "ROR": "https://ror.org/02catss52",
        "EMDB": "https://identifiers.org/emdb:EMD-12602",
        "EMPIAR": "https://identifiers.org/empiar:EMPIAR-10934",
        "PDB": "https://identifiers.org/pdb:7ABC",
        "IDR": "https://identifiers.org/idr:0004",
        "BioStudies": "https://identifiers.org/biostudies:S-BSST651",
        "BioImage Archive": "https://identifiers.org/biostudies:S-BIAD590",
        "NCBITaxon": "http://purl.obolibrary.org/obo/NCBITaxon_9606",
        "FBbi": "http://purl.obolibrary.org/obo/FBbi_00000251",
        "UniProt": "http://purl.uniprot.org/uniprot/P0DP23",
    }
    assert ids.landing_page("EMDB", "EMD-12602") == "https://www.ebi.ac.uk/emdb/EMD-12602"
    assert ids.landing_page("EMPIAR", "EMPIAR-10934") == "https://www.ebi.ac.uk/empiar/EMPIAR-10934"
    assert ids.landing_page("PubMed", "123") == "https://pubmed.ncbi.nlm.nih.gov/123/"
    assert ids.landing_page("IDR", "idr0004") == "https://idr.openmicroscopy.org/search/?query=Name:idr0004"
    assert ids.landing_page("BioImage Archive", "S-BIAD1") == "https://www.ebi.ac.uk/biostudies/bioimages/studies/S-BIAD1"
    assert ids.iri("ORCID", "0000-0002-1825-0096") is None and ids.landing_page("EMDB", "nope") is None


@pytest.mark.parametrize(
    "text, hint, found",
    [
        ("https://www.ebi.ac.uk/empiar/EMPIAR-10002/", None, ("EMPIAR", "EMPIAR-10002")),
        ("https://identifiers.org/emdb:EMD-1234", None, ("EMDB", "EMD-1234")),
        ("https://www.ebi.ac.uk/pdbe/entry/emdb/EMD-1234", None, ("EMDB", "EMD-1234")),
        ("1abc", "PDB", ("PDB", "1ABC")),
        ("https://www.ebi.ac.uk/biostudies/bioimages/studies/S-BIAD1", None, ("BioImage Archive", "S-BIAD1")),
        ("https://www.ebi.ac.uk/biostudies/studies/S-BSST401", None, ("BioStudies", "S-BSST401")),
        ("123", "PubMed ID", ("PubMed", "123")),
        ("10.5281/zenodo.6352550", None, ("DOI", "10.5281/zenodo.6352550")),
        ("ERP116793", "ENA embl", ("ENA", "ERP116793")),
        ("https://idr.openmicroscopy.org/webclient/?project=BBBC024", None, None),
        ("https://github.com/BioImage-Archive/bia-integrator", None, None),
    ],
)
def test_links_are_recognised_whatever_url_they_use(text, hint, found):
    assert ids.recognise(text, hint) == found


def test_mentions_in_free_text_are_canonical():
    text = "Same cells as EMPIAR-10934 (map emd-12602), idr0004-thorpe-rad52, S-BIAD12 and S-BSST651; model PDB 1abc."
    assert sorted(ids.mentions(text)) == sorted(
        [
            ("EMPIAR", "EMPIAR-10934"),
            ("EMDB", "EMD-12602"),
            ("IDR", "idr0004"),
            ("BioImage Archive", "S-BIAD12"),
            ("BioStudies", "S-BSST651"),
            ("PDB", "1ABC"),
        ]
    )


def test_the_table_is_the_pinned_bioregistrys():
    """external_ids.json is what catalog.external_ids_build extracts from the bioregistry pinned in setup.cfg."""
    import configparser
    import json

    from catalog.external_ids_build import build_registry

    stored = json.loads(ids.REGISTRY_FILE.read_text(encoding="utf-8"))
    assert stored == build_registry(), "run: python -m catalog.external_ids_build"
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    assert f"bioregistry=={stored['bioregistry']}" in setup["options.extras_require"]["test"].split()
    for kind in ids.KINDS.values():
        if kind.name == "BioImage Archive":
            continue  # a subset of BioStudies: the Bioregistry's example is no S-BIAD
        example = kind.banana + ids.registry(kind.prefix)["example"]
        assert ids.accession(kind.name, example) is not None, (kind.name, example)
        if kind.stored == "identifiers.org":
            assert str(ids.iri(kind.name, example)).startswith(ids.identifiers_org_namespace(kind.name))


def test_the_table_works_offline_without_the_bioregistry(tmp_path):
    """At run time nothing is fetched and the Bioregistry is not loaded: a fresh process where every socket is
    refused and ``bioregistry`` cannot be imported reads, checks and maps identifiers."""
    script = textwrap.dedent(f"""
        import socket, sys
        sys.path.insert(0, {str(ROOT)!r})
        def refuse(*args, **kwargs):
            raise OSError("network use refused by the test")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse
        sys.modules["bioregistry"] = None  # an import of it fails
        from catalog import external_ids as ids
        print(ids.iri("EMDB", "https://www.ebi.ac.uk/emdb/EMD-12602"), ids.recognise("https://www.rcsb.org/structure/1abc"))
    """)
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": "/proc/no-such-home"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["https://identifiers.org/emdb:EMD-12602", "('PDB',", "'1ABC')"]
