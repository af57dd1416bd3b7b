"""A detached RO-Crate of the GIDE cross-archive search profile (BioImage Archive, IDR, SSBD) → a REMBI study record.

The profile (``tests/data/rocrate/gide/profile.md``): the root ``Dataset`` (an absolute URL) with ``name``,
``description``, ``datePublished``, ``license``, ``author`` (``Person``/``Organization``), one ``publisher``,
``about`` (``Taxon``, ``BioSample``, ``DefinedTerm``), ``measurementMethod`` (``LabProtocol``, FBbi ``DefinedTerm``),
and optionally ``identifier``, ``keywords``, ``funder`` (``Grant``), ``seeAlso`` (``ScholarlyArticle``), ``size``
(``QuantitativeValue`` file count and bytes) and ``thumbnailUrl``.

Mapping: taxa become the organisms of the biosamples whose ``taxonomicRange`` names them (a taxon no biosample
names goes to the only biosample, else to a biosample of its own); each ``LabProtocol`` whose technique is an FBbi
term, and each FBbi term no protocol uses, becomes an image acquisition; other protocols and ``about`` terms are
kept as attributes. Reading is lenient where the intent is clear (a missing ``Taxon``, a protocol with no
technique, ``QuantitiveValue``, an identifier that is not an accession); each such gap is a warning naming the
entity and the property.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any, Callable

from catalog import external_ids, identifiers
from catalog.dates import release_date_of
from catalog.gide_crate import BYTES_UNIT, COUNT_UNIT, SOURCE_BYTES, SOURCE_COUNT, SOURCE_THUMBNAILS
from catalog.gide_profile import check as profile_gaps
from catalog.gide_profile import types_of
from loaders.enums import licence_name
from loaders.loaded import Draft, LoadedRecord, link_reference, provenance, year
from loaders.ontology_terms import GENERIC_IMAGING_METHOD, imaging_method_term, organism_term, term_by_id, term_curie

LOADER_NAME = "bia-catalog GIDE RO-Crate loader"
LOADER_VERSION = "1"
#: the publisher's host → the REMBI resource a study comes from
SOURCES = {"idr.openmicroscopy.org": "IDR", "www.ebi.ac.uk": "BioImage Archive", "ebi.ac.uk": "BioImage Archive"}
#: the ``size`` units the profile names → the study attribute each is kept in (which the crate writer reads back)
SIZE_UNITS = {COUNT_UNIT: SOURCE_COUNT, BYTES_UNIT: SOURCE_BYTES}
SOURCE_PAGE = "source page"


def items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value] if value not in (None, "", {}) else []


def text(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("@value")
    if isinstance(value, list):
        value = "; ".join(str(v) for v in value if v)
    return str(value).strip() if value not in (None, "") and str(value).strip() else None


def is_detached(root_id: str) -> bool:
    """Whether a crate's root is a web page (a detached crate), not ``./``."""
    return bool(re.match(r"^https?://", root_id))


class GideCrate:
    """One detached crate's entities by ``@id``, read into one REMBI record."""

    def __init__(self, name: str, doc: dict[str, Any], nodes: dict[str, dict[str, Any]], root: dict[str, Any]) -> None:
        self.name = name
        self.doc = doc
        self.nodes = nodes
        self.root = root
        self.root_id = str(root["@id"])
        self.draft = Draft()
        self.record = self.draft.record
        self.attributes: list[dict[str, str]] = []

    def resolve(self, value: Any) -> list[dict[str, Any]]:
        found = []
        for item in items(value):
            if isinstance(item, dict):
                found.append(self.nodes.get(item["@id"], item) if "@id" in item else item)
            elif item:
                found.append(self.nodes.get(str(item), {"@id": str(item)}))
        return found

    def warn(self, entity: str, prop: str, message: str) -> None:
        self.draft.warn(f"{self.name}: {entity} {prop}: {message}")

    def load(self, source_url: str | None, harvested_at: str | None, fail: Callable[..., Exception]) -> LoadedRecord:
        for gap in profile_gaps(self.doc):  # what the crate misses of the profile: read leniently, and said
            self.draft.warn(f"{self.name}: {gap} (the GIDE profile requires it)")
        accession = self._study(fail)
        self._authors()
        self._publisher()
        organisms = self._taxa()
        self._biosamples(organisms)
        self._methods()
        self._articles_and_grants()
        self._size_and_thumbnails()
        ref = link_reference(self.root_id, label="the study at its source")
        if ref:
            self.draft.add_cross_reference(ref)
        self.attributes.append({"name": SOURCE_PAGE, "value": self.root_id})
        self.record["attributes"] = self.attributes
        self.record["provenance"] = provenance(
            self.source, LOADER_NAME, LOADER_VERSION, accession=accession, source_url=source_url, harvested_at=harvested_at
        )
        return self.draft.loaded()

    # ------------------------------------------------------------------ the study

    def _study(self, fail: Callable[..., Exception]) -> str:
        root, rid = self.root, self.root_id
        title = text(root.get("name"))
        if not title:
            raise fail(f"{rid} has no name", node=rid, field="name")
        description = text(root.get("description"))
        if not description:
            self.warn(rid, "description", "missing; the title stands in")
        self.record.update(title=title, description=description or title)
        published = text(root.get("datePublished"))
        if published:
            self.record["release_date"] = release_date_of(published)
        self._licence(fail)
        keywords = [k.strip() for k in items(root.get("keywords")) if isinstance(k, str) and k.strip()]
        if isinstance(root.get("keywords"), str):
            keywords = [k.strip() for k in root["keywords"].split(",") if k.strip()]
        if keywords:
            self.record["keywords"] = list(dict.fromkeys(keywords))
        accession = self._accession()
        self.record["accession"] = accession
        return accession

    def _licence(self, fail: Callable[..., Exception]) -> None:
        licences = self.resolve(self.root.get("license"))
        if not licences:
            raise fail(f"{self.root_id} has no license", node=self.root_id, field="license")
        written = [w for w in (text(licences[0].get(k)) for k in ("@id", "url", "identifier", "name")) if w]
        named = next((licence_name(w) for w in written if licence_name(w)), None)
        if not named:
            shown = written[0] if written else "(none)"
            raise fail(f"licence {shown!r} is not one the catalog knows", node=self.root_id, field="license")
        self.record["license"] = named

    def _accession(self) -> str:
        """The publisher's identifier; one that is not an accession here gets the publisher's host name before it."""
        written = text(self.root.get("identifier"))
        if not written:
            written = urllib.parse.unquote(urllib.parse.urlsplit(self.root_id).path.rstrip("/").rsplit("/", 1)[-1])
            self.warn(self.root_id, "identifier", f"missing; {written!r} read from the @id")
        try:
            return identifiers.check_accession(written)
        except ValueError:
            host = urllib.parse.urlsplit(self.root_id).hostname or "crate"
            prefix = host.removeprefix("www.").split(".")[0]
            accession = f"{prefix}-" + re.sub(r"[^A-Za-z0-9]+", "-", written).strip("-")
            self.warn(self.root_id, "identifier", f"{written!r} is not an accession here; stored as {accession!r}")
            return identifiers.check_accession(accession)

    # ------------------------------------------------------------------ people

    def _authors(self) -> None:
        authors = self.resolve(self.root.get("author"))
        for number, person in enumerate(authors, 1):
            ref = str(person.get("@id", ""))
            who = text(person.get("name"))
            if not who:
                self.warn(ref or f"author {number}", "name", "missing; author left out")
                continue
            affiliations = [
                self.draft.organisation(
                    text(org.get("name")) or str(org.get("@id")),
                    ror=org.get("@id") if "ror.org/" in str(org.get("@id", "")) else None,
                    address=text(org.get("address")),
                    where=f"{self.name}: ",
                )
                for org in self.resolve(person.get("affiliation"))
                if text(org.get("name")) or "://" in str(org.get("@id", ""))
            ]
            if not affiliations and text(person.get("address")):  # IDR writes the affiliation as an address
                affiliations = [self.draft.organisation(str(text(person.get("address"))), where=f"{self.name}: ")]
            email = text(person.get("email"))
            self.draft.author(
                who,
                orcid=ref if "orcid.org/" in ref else None,
                email=email,
                affiliations=affiliations,
                where=f"{self.name}: ",
                number=number,
            )
        self.record.setdefault("authors", [])

    def _publisher(self) -> None:
        publishers = self.resolve(self.root.get("publisher"))
        publisher = publishers[0] if publishers else {}
        host = urllib.parse.urlsplit(str(publisher.get("@id") or self.root_id)).hostname or ""
        self.source = SOURCES.get(host, "Other")
        name = text(publisher.get("name"))
        if name:
            self.attributes.append({"name": "publisher", "value": name})

    # ------------------------------------------------------------------ what was imaged

    def _taxa(self) -> dict[str, dict[str, str]]:
        """Taxon @id → its REMBI organism, for every ``Taxon`` the root is ``about`` or a biosample names."""
        found: dict[str, dict[str, str]] = {}
        about = self.resolve(self.root.get("about"))
        samples = [n for n in about if "BioSample" in types_of(n)]
        taxa = [n for n in about if "Taxon" in types_of(n)]
        taxa += [t for s in samples for t in self.resolve(s.get("taxonomicRange")) if t not in taxa]
        for taxon in taxa:
            organism = self._organism(taxon)
            if organism:
                found[str(taxon.get("@id"))] = organism
        return found

    def _organism(self, taxon: dict[str, Any]) -> dict[str, str] | None:
        tid = str(taxon.get("@id", ""))
        label = text(taxon.get("scientificName")) or text(taxon.get("name"))
        curie = external_ids.ncbitaxon(tid) if tid else None
        term = (term_by_id(curie) if curie else None) or (organism_term(label) if label else None)
        if not (curie or term):
            self.warn(tid, "@id", f"not an NCBITaxon id, and {label!r} is not an organism the catalog knows; left out")
            return None
        return {"id": curie or term.id, "label": label or (term.label if term else str(curie)), "ontology_name": "NCBITaxon"}  # type: ignore[union-attr]

    def _biosamples(self, organisms: dict[str, dict[str, str]]) -> None:
        about = self.resolve(self.root.get("about"))
        placed: set[str] = set()
        biosamples = []
        for node in (n for n in about if "BioSample" in types_of(n)):
            sid = str(node.get("@id"))
            title = text(node.get("name")) or sid.lstrip("#")
            sample: dict[str, Any] = {"title": title, "biological_entity": text(node.get("description")) or title}
            ranged = [str(t.get("@id")) for t in self.resolve(node.get("taxonomicRange"))]
            sample["organisms"] = [organisms[t] for t in ranged if t in organisms]
            placed |= set(ranged)
            lines = [f"{text(t.get('name')) or t.get('@id')} <{t.get('@id')}>" for t in self.resolve(node.get("hasCellLine"))]
            if lines:
                sample["attributes"] = [{"name": "cell line", "value": "; ".join(lines)}]
            biosamples.append(sample)
        loose = [o for tid, o in organisms.items() if tid not in placed]
        if loose and len(biosamples) == 1:
            biosamples[0]["organisms"] += loose
        elif loose:
            biosamples += [{"title": o["label"], "biological_entity": o["label"], "organisms": [o]} for o in loose]
        for sample in biosamples:
            if not sample["organisms"]:
                del sample["organisms"]
        self._unique_titles(biosamples)
        if biosamples:
            self.record["biosamples"] = biosamples
        terms = [n for n in about if "DefinedTerm" in types_of(n)]
        if terms:
            self.attributes.append(
                {"name": "subject", "value": "; ".join(f"{text(t.get('name')) or t['@id']} <{t['@id']}>" for t in terms)}
            )

    @staticmethod
    def _unique_titles(objects: list[dict[str, Any]]) -> None:
        """REMBI objects are named by title within a study: a repeated title gets its number."""
        seen: dict[str, int] = {}
        for obj in objects:
            seen[obj["title"]] = seen.get(obj["title"], 0) + 1
            if seen[obj["title"]] > 1:
                obj["title"] = f"{obj['title']} ({seen[obj['title']]})"

    # ------------------------------------------------------------------ how it was imaged

    def _methods(self) -> None:
        methods = self.resolve(self.root.get("measurementMethod"))
        acquisitions: list[dict[str, Any]] = []
        used: set[str] = set()
        other = []
        for node in (n for n in methods if "LabProtocol" in types_of(n)):
            techniques = self.resolve(node.get("measurementTechnique"))
            terms = [t for t in (self._fbbi(t) for t in techniques) if t]
            used |= {str(t.get("@id")) for t in techniques}
            name = text(node.get("name")) or str(node.get("@id")).lstrip("#")
            if not terms and not techniques:
                found, _ = imaging_method_term(name)
                if found:
                    terms = [found.as_record()]
                    self.warn(str(node.get("@id")), "measurementTechnique", f"empty; imaging method read from its name {name!r}")
            if not terms:
                other.append(f"{name}: {text(node.get('description')) or name}")
                continue
            acquisition: dict[str, Any] = {
                "title": name,
                "imaging_methods": terms,
                "acquisition_parameters": text(node.get("description")) or name,
            }
            if text(node.get("labEquipment")):
                acquisition["imaging_instrument"] = text(node.get("labEquipment"))
            acquisitions.append(acquisition)
        for node in (n for n in methods if "DefinedTerm" in types_of(n) and str(n.get("@id")) not in used):
            term = self._fbbi(node)
            if term:
                acquisitions.append({"title": term["label"], "imaging_methods": [term], "acquisition_parameters": term["label"]})
        if not acquisitions:
            acquisitions.append(
                {
                    "title": "Imaging",
                    "imaging_methods": [GENERIC_IMAGING_METHOD.as_record()],
                    "acquisition_parameters": "not stated",
                }
            )
            self.warn(self.root_id, "measurementMethod", "no FBbi imaging method; the generic 'imaging method' stands in")
        self._unique_titles(acquisitions)
        self.record["image_acquisitions"] = acquisitions
        if other:
            self.attributes.append({"name": "protocols", "value": "\n".join(other)})

    def _fbbi(self, node: dict[str, Any]) -> dict[str, str] | None:
        curie = term_curie(str(node.get("@id", "")))
        if not curie or not curie.startswith("FBbi:"):
            return None
        known = term_by_id(curie)
        return {"id": curie, "label": text(node.get("name")) or (known.label if known else curie), "ontology_name": "FBbi"}

    # ------------------------------------------------------------------ articles, grants, size

    def _articles_and_grants(self) -> None:
        for article in self.resolve(self.root.get("seeAlso")) + self.resolve(self.root.get("citation")):
            aid = str(article.get("@id", ""))
            doi = external_ids.doi(aid) if aid else None
            if "ScholarlyArticle" in types_of(article) or doi:
                self.draft.publication(
                    text(article.get("name")) or (f"doi:{doi}" if doi else None),
                    doi=doi,
                    year_=year(text(article.get("datePublished"))),
                    where=f"{self.name}: ",
                )
            else:
                self.draft.add_cross_reference(link_reference(aid) if "://" in aid else None)
        for grant in self.resolve(self.root.get("funder")):
            self.draft.add_funding(text(grant.get("name")), text(grant.get("identifier")))

    def _size_and_thumbnails(self) -> None:
        for value in self.resolve(self.root.get("size")):
            unit = text(value.get("unitCode"))
            amount = text(value.get("value"))
            if unit in SIZE_UNITS and amount:
                self.attributes.append({"name": SIZE_UNITS[unit], "value": amount})
        thumbnails = [t for t in (text(u) for u in items(self.root.get("thumbnailUrl"))) if t]
        if thumbnails:
            self.attributes.append({"name": SOURCE_THUMBNAILS, "value": " ".join(thumbnails)})
