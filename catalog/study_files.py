"""A study's files: from file-list rows to RDF (streamed N-Triples) and to file-table rows.

The same function turns a row into both, so the graph and the file index always agree. File IRIs come from
the study, the path and the size (:func:`catalog.identifiers.file_iri`); per-file attributes become
``rembi:Attribute`` nodes under fragment IRIs of the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping, TextIO

from catalog import identifiers
from catalog import ntriples as nt
from catalog.rembi_model import RembiModel, load_model

#: Multi-part extensions recognised before the last suffix.
_COMPOUND_EXTENSIONS = ("ome.tiff", "ome.tif", "ome.zarr", "ome.zarr.zip", "nii.gz", "tar.gz", "mrc.bz2", "tiff.gz")


def file_format(path: str) -> str:
    """The format of a file from its name: ``ome.tiff``, ``czi``, ``zarr``… (empty when there is no extension)."""
    name = path.rstrip("/").rsplit("/", 1)[-1].lower()
    for ext in _COMPOUND_EXTENSIONS:
        if name.endswith("." + ext):
            return ext
    return name.rsplit(".", 1)[-1] if "." in name.strip(".") else ""


@dataclass
class StudyFile:
    """One file of a study, as both the graph and the file table see it."""

    path: str
    size: int | None
    attributes: dict[str, str] = field(default_factory=dict)
    md5: str | None = None
    sha256: str | None = None
    component: str | None = None  # IRI of the study component
    directory: bool = False  # a folder listed as one entry (a Zarr store, a folder of annotations)

    def table_row(self, study: str) -> dict[str, Any]:
        """The row of the study's file table (fixed columns first, then the free-form ones)."""
        row: dict[str, Any] = {
            "path": self.path,
            "size": self.size,
            "format": file_format(self.path),
            "file_id": identifiers.file_iri(study, self.path, self.size).rsplit("/", 1)[-1],
            "type": "directory" if self.directory else "file",
        }
        for key, value in self.attributes.items():
            row[f"{key} (file list)" if key in row else key] = value  # never hidden by a column of the file's own
        return row


@dataclass
class FilesSummary:
    """What writing a study's files produced."""

    files: int = 0
    total_size: int = 0
    triples: int = 0
    columns: list[str] = field(default_factory=list)


class _Terms:
    """Predicate IRIs of the file-related slots, written once."""

    def __init__(self, model: RembiModel) -> None:
        f = model.classes["FileReference"].slots
        a = model.classes["Attribute"].slots
        self.file_type = nt.iri(model.classes["FileReference"].uri)
        self.attribute_type = nt.iri(model.classes["Attribute"].uri)
        self.files = nt.iri(model.classes["Study"].slots["files"].uri)
        self.path = nt.iri(f["path"].uri)
        self.size = nt.iri(f["size_bytes"].uri)
        self.format = nt.iri(f["file_format"].uri)
        self.md5 = nt.iri(f["md5"].uri)
        self.sha256 = nt.iri(f["sha256"].uri)
        self.component = nt.iri(f["file_component"].uri)
        self.attributes = nt.iri(f["attributes"].uri)
        self.is_directory = nt.iri(f["is_directory"].uri)
        self.name = nt.iri(a["name"].uri)
        self.value = nt.iri(a["value"].uri)


def write_file_triples(out: TextIO, study: str, files: Iterable[StudyFile], model: RembiModel | None = None) -> FilesSummary:
    """Stream the triples of every file into ``out`` (N-Triples); nothing is held in memory."""
    terms = _Terms(model or load_model())
    study_term = nt.iri(study)
    summary = FilesSummary()
    columns: dict[str, None] = {}
    for item in files:
        file_iri = identifiers.file_iri(study, item.path, item.size)
        s = nt.iri(file_iri)
        lines = [
            nt.triple(study_term, terms.files, s),
            nt.triple(s, nt.RDF_TYPE, terms.file_type),
            nt.triple(s, terms.path, nt.literal(item.path)),
        ]
        if item.size is not None:
            lines.append(nt.triple(s, terms.size, nt.literal(str(int(item.size)), nt.XSD_INTEGER)))
            summary.total_size += int(item.size)
        fmt = file_format(item.path)
        if fmt:
            lines.append(nt.triple(s, terms.format, nt.literal(fmt)))
        if item.md5:
            lines.append(nt.triple(s, terms.md5, nt.literal(item.md5)))
        if item.sha256:
            lines.append(nt.triple(s, terms.sha256, nt.literal(item.sha256)))
        if item.component:
            lines.append(nt.triple(s, terms.component, nt.iri(item.component)))
        if item.directory:
            lines.append(nt.triple(s, terms.is_directory, nt.literal("true", nt.XSD_BOOLEAN)))
        for name, value in item.attributes.items():
            columns.setdefault(name, None)
            a = nt.iri(identifiers.value_iri(file_iri, "attributes", [name, value]))
            lines.append(nt.triple(s, terms.attributes, a))
            lines.append(nt.triple(a, nt.RDF_TYPE, terms.attribute_type))
            lines.append(nt.triple(a, terms.name, nt.literal(name)))
            lines.append(nt.triple(a, terms.value, nt.literal(value)))
        out.write("".join(lines))
        summary.files += 1
        summary.triples += len(lines)
    summary.columns = list(columns)
    return summary


def files_from_record(record: Mapping[str, Any]) -> Iterator[StudyFile]:
    """The files written inline in a (prepared) study record."""
    for item in record.get("files") or []:
        attributes = {str(a.get("name")): str(a.get("value", "")) for a in item.get("attributes") or [] if a.get("name")}
        yield StudyFile(
            path=item["path"],
            size=item.get("size_bytes"),
            attributes=attributes,
            md5=item.get("md5"),
            sha256=item.get("sha256"),
            component=item.get("file_component"),
            directory=bool(item.get("is_directory")),
        )
