"""DataCite metadata of every released study (``/studies/{accession}.datacite.xml``, or ``Accept:
application/vnd.datacite.datacite+xml``), valid against the DataCite kernel-4 schema, saying what the graph knows:
creators with ORCID iDs, affiliations with ROR ids, funders and awards, publications, cross-references and
correlative partners, licence, organisms and imaging methods as ontology terms. Embargoed studies have none."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from lxml import etree

from linkers.discover import link_catalog
from loaders.harvest import Harvester
from tests.catalog_helpers import BASE, stage_sample
from tests.test_links import clem_entry, correlative_deposit

XSD = Path(__file__).parent / "data" / "xsd" / "datacite" / "metadata.xsd"
DC = "{http://datacite.org/schema/kernel-4}"
MEDIA = "application/vnd.datacite.datacite+xml"


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(XSD)))


@pytest.fixture(scope="module")
def cited(make_module_catalog):
    """The demo studies, a correlative pair (a deposit with a ROR affiliation and a grant, an EMPIAR CLEM entry naming
    it), an embargoed deposit; linked as ``bia link`` does."""
    made = make_module_catalog(name="datacite", demo=True)
    services = made.services
    token, owner = made.token("jane")
    record = yaml.safe_load(correlative_deposit(made.folder, "10.1038/s41467-021-26251-6"))
    record["authors"][0]["affiliations"] = [{"name": "European Bioinformatics Institute", "ror": "https://ror.org/02catss52"}]
    record["funding"] = [{"funder": "Wellcome Trust", "grant_id": "218298/Z/19/Z"}]
    sub = stage_sample(services.deposits, owner)
    services.deposits.attach_metadata(sub, owner, "study.yaml", yaml.safe_dump(record).encode())
    light = services.deposits.finalize(sub, owner)
    embargoed = services.deposits.finalize(stage_sample(services.deposits, owner, release_date="2999-01-01"), owner)
    assert Harvester(services.archive).run("empiar", [str(clem_entry(made.folder, light))]).failed == []
    link_catalog(services.archive)
    client = made.app().test_client()
    return {"client": client, "services": services, "light": light, "embargoed": embargoed, "token": token}


def datacite(cited, accession: str, schema: etree.XMLSchema) -> etree._Element:
    response = cited["client"].get(f"/studies/{accession}.datacite.xml")
    assert response.status_code == 200 and response.mimetype == MEDIA
    assert response.headers["Link"] == f'<{BASE}/studies/{accession}>; rel="describes"; type="text/html"'
    document = etree.fromstring(response.data)
    assert schema.validate(document), (accession, schema.error_log.last_error)
    return document


def texts(document: etree._Element, path: str) -> list[str]:
    return [element.text for element in document.iterfind(path.replace("dc:", DC))]


def related(document: etree._Element) -> dict[str, tuple[str, str, str | None]]:
    found = [
        (e.text, (e.get("relatedIdentifierType"), e.get("relationType"), e.get("relationTypeInformation")))
        for e in document.iter(f"{DC}relatedIdentifier")
    ]
    assert len(found) == len(set(found))  # each relation once
    return dict(found)


def test_every_released_study_has_valid_datacite_by_suffix_and_by_accept(cited, schema):
    client = cited["client"]
    accessions = cited["services"].archive.public.search.accessions()
    assert len(accessions) >= 9
    for accession in accessions:
        document = datacite(cited, accession, schema)
        assert document.find(f"{DC}resourceType").get("resourceTypeGeneral") == "Dataset"
        by_accept = client.get(f"/studies/{accession}", headers={"Accept": MEDIA})
        assert by_accept.mimetype == MEDIA and by_accept.data == client.get(f"/studies/{accession}.datacite.xml").data
    assert client.get("/studies/idr0038", headers={"Accept": "*/*"}).mimetype == "text/html"  # still the landing page


def test_a_study_with_a_doi_is_identified_by_it_else_by_its_landing_page(cited, schema):
    with_doi = datacite(cited, "S-BIAD1492", schema)
    assert with_doi.find(f"{DC}identifier").get("identifierType") == "DOI"
    assert with_doi.findtext(f"{DC}identifier") == "10.1101/2023.12.07.570699"
    assert texts(with_doi, "dc:alternateIdentifiers/dc:alternateIdentifier") == ["S-BIAD1492", f"{BASE}/studies/S-BIAD1492"]
    without = datacite(cited, "idr0004", schema)
    assert without.find(f"{DC}identifier").get("identifierType") == "URL"
    assert without.findtext(f"{DC}identifier") == f"{BASE}/studies/idr0004"
    assert texts(without, "dc:alternateIdentifiers/dc:alternateIdentifier") == ["idr0004"]


def test_creators_carry_orcid_ids_and_affiliations_ror_ids(cited, schema):
    document = datacite(cited, cited["light"], schema)
    creator = document.find(f"{DC}creators/{DC}creator")
    assert creator.findtext(f"{DC}creatorName") == "Jane Doe"
    assert creator.find(f"{DC}creatorName").get("nameType") == "Personal"
    orcid = creator.find(f"{DC}nameIdentifier")
    assert (orcid.text, orcid.get("nameIdentifierScheme"), orcid.get("schemeURI")) == (
        "https://orcid.org/0000-0002-1825-0097",
        "ORCID",
        "https://orcid.org",
    )
    affiliation = creator.find(f"{DC}affiliation")
    assert affiliation.text == "European Bioinformatics Institute"
    assert affiliation.get("affiliationIdentifier") == "https://ror.org/02catss52"
    assert affiliation.get("affiliationIdentifierScheme") == "ROR"
    organisation = datacite(cited, "S-BIAD1492", schema).find(f"{DC}creators/{DC}creator[4]/{DC}creatorName")
    assert (organisation.text, organisation.get("nameType")) == ("Broad Institute's Imaging Platform", "Organizational")


def test_funders_and_awards(cited, schema):
    reference = datacite(cited, cited["light"], schema).find(f"{DC}fundingReferences/{DC}fundingReference")
    assert reference.findtext(f"{DC}funderName") == "Wellcome Trust"
    assert reference.findtext(f"{DC}awardNumber") == "218298/Z/19/Z"
    demo = datacite(cited, "S-BIADTEST", schema)
    assert set(texts(demo, "dc:fundingReferences/dc:fundingReference/dc:funderName")) == {
        "Test funding body1",
        "Test funding body2",
    }
    statements = [d.text for d in demo.iter(f"{DC}description") if d.get("descriptionType") == "Other"]
    assert statements == ["This work was funded by the EBI"]  # a statement naming no funder is not a funder's name


def test_publications_cross_references_and_correlative_partners_are_related_identifiers(cited, schema):
    harvested = related(datacite(cited, "S-BIAD1492", schema))
    assert harvested["10.1002/cyto.a.20714"] == ("DOI", "IsSupplementTo", None)
    assert harvested["https://identifiers.org/empiar:EMPIAR-11380"][0] == "URL"
    assert not [identifier for identifier in harvested if "orcid.org" in identifier]  # people are not related records
    idr = related(datacite(cited, "idr0038", schema))
    assert idr["30048451"] == ("PMID", "IsSupplementTo", None)
    assert f"{BASE}/studies/idr0038" not in idr  # its link to itself is no relation
    light = related(datacite(cited, cited["light"], schema))
    assert light["10.1038/s41467-021-26251-6"] == ("DOI", "IsSupplementTo", None)
    partner = f"{BASE}/studies/EMPIAR-99999"
    assert light[partner] == ("URL", "Other", "same specimen imaged")
    assert related(datacite(cited, "EMPIAR-99999", schema))[f"{BASE}/studies/{cited['light']}"] == (
        "URL",
        "Other",
        "same specimen imaged",
    )


def test_subjects_are_ontology_terms_with_their_scheme(cited, schema):
    document = datacite(cited, cited["light"], schema)
    subjects = {s.text: (s.get("subjectScheme"), s.get("schemeURI"), s.get("valueURI")) for s in document.iter(f"{DC}subject")}
    assert subjects["Homo sapiens"] == (
        "NCBI Taxonomy",
        "http://purl.obolibrary.org/obo/ncbitaxon.owl",
        "http://purl.obolibrary.org/obo/NCBITaxon_9606",
    )
    assert subjects["confocal microscopy"] == (
        "FBbi",
        "http://purl.obolibrary.org/obo/fbbi.owl",
        "http://purl.obolibrary.org/obo/FBbi_00000251",
    )
    rights = document.find(f"{DC}rightsList/{DC}rights")
    assert (rights.text, rights.get("rightsURI")) == ("CC BY 4.0", "https://creativecommons.org/licenses/by/4.0/")
    dates = {d.get("dateType"): d.text for d in document.iter(f"{DC}date")}
    assert dates["Issued"] == document.findtext(f"{DC}publicationYear") + dates["Issued"][4:]


def test_an_embargoed_study_has_no_datacite_record_even_for_its_owner(cited):
    client, embargoed = cited["client"], cited["embargoed"]
    auth = {"Authorization": f"Bearer {cited['token']}"}
    assert client.get(f"/studies/{embargoed}.datacite.xml").status_code == 404
    assert client.get(f"/studies/{embargoed}.datacite.xml", headers=auth).status_code == 404
    assert client.get(f"/studies/{embargoed}", headers={"Accept": MEDIA, **auth}).status_code == 404
    assert client.get(f"/studies/{embargoed}", headers={"Accept": "application/ld+json", **auth}).status_code == 200
    assert client.get(f"/studies/{cited['light']}/components/x.datacite.xml").status_code in (404, 406)


def test_the_publisher_is_the_resource_a_study_came_from(cited, schema):
    """A deposit's publisher is this archive; a harvested study's, the resource it was harvested from."""
    assert texts(datacite(cited, cited["light"], schema), "dc:publisher") == ["BioImage Archive"]
    assert texts(datacite(cited, "EMPIAR-99999", schema), "dc:publisher") == ["Electron Microscopy Public Image Archive (EMPIAR)"]
    assert texts(datacite(cited, "idr0004", schema), "dc:publisher") == ["Image Data Resource (IDR)"]
