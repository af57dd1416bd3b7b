"""The formats depositors write, read for :class:`catalog.deposits.Deposits`.

Study metadata: PageTab JSON or TSV (as the BioImage Archive's submission tool writes it) or a REMBI record in
JSON/YAML (the model in ``schema/rembi.yaml``). File lists: PageTab file-list JSON/TSV, plain TSV/CSV and the
RO-Crate file list TSV.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from catalog.deposits import FileListRow, ParsedMetadata
from catalog.errors import ValidationFailed
from catalog.records import DocumentLimits, decode_document, read_document
from loaders import file_lists


def _looks_like_pagetab_json(data: Any) -> bool:
    return isinstance(data, dict) and ("section" in data or ("accno" in data and "attributes" in data and "title" not in data))


def _looks_like_pagetab_tsv(text: str) -> bool:
    first = next((line for line in text.splitlines() if line.strip()), "")
    return first.split("\t", 1)[0].strip().lower() == "submission"


class DefaultFormats:
    """PageTab and REMBI metadata; every file-list format :mod:`loaders.file_lists` reads. Metadata documents are
    read within ``limits`` (size, nesting, values: :func:`catalog.records.read_document`)."""

    def __init__(self, limits: DocumentLimits | None = None) -> None:
        self.limits = limits or DocumentLimits()

    def read_metadata(self, name: str, data: bytes) -> ParsedMetadata:
        from loaders.pagetab import load_pagetab_json

        if _looks_like_pagetab_tsv(data[:4096].decode("utf-8-sig", "ignore")):
            from loaders.pagetab import parse_pagetab_tsv

            text = decode_document(data, name, self.limits)
            return _from_pagetab(load_pagetab_json(parse_pagetab_tsv(text, name=name)))
        source = read_document(data, name, self.limits)
        if _looks_like_pagetab_json(source.data):
            return _from_pagetab(load_pagetab_json(source.data))
        if not isinstance(source.data, dict):
            raise ValidationFailed(
                f"{name}: a study record must be a JSON/YAML mapping", [{"file": name, "line": 1, "message": "not a mapping"}]
            )
        return ParsedMetadata(record=source.data, line_of=source.line_of)

    def check_file_list(self, path: str, name: str) -> tuple[int, list[dict[str, Any]]]:
        try:
            report = file_lists.check_file_list(path, name=name)
        except file_lists.FileListError as exc:
            return 0, exc.errors or [{"file": name, "message": exc.message}]
        return report.rows, list(report.errors)

    def iter_file_list(self, path: str, name: str) -> Iterator[FileListRow]:
        for row in file_lists.iter_file_list(path, name=name):
            if row.kind == "directory":
                continue
            yield FileListRow(line=row.line, path=row.path, size=row.size, attributes=dict(row.attributes))


def _from_pagetab(loaded) -> ParsedMetadata:
    components = {ref.file_list: ref.component for ref in loaded.file_lists if ref.file_list and ref.component}
    return ParsedMetadata(record=loaded.record, file_list_components=components, notes=list(loaded.unmapped))
