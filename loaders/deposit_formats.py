"""The formats depositors write, read for :class:`catalog.deposits.Deposits`.

Study metadata: PageTab JSON or TSV (as the BioImage Archive's submission tool writes it) or a REMBI record in
JSON/YAML (the model in ``schema/rembi.yaml``). File lists: PageTab file-list JSON/TSV, plain TSV/CSV and the
RO-Crate file list TSV.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from catalog.deposits import FileListRow, ParsedMetadata
from catalog.errors import Conflict, ValidationFailed
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

    def rewrite_metadata(self, name: str, data: bytes, record: dict[str, Any]) -> bytes:
        """``record`` as a REMBI document in the format of ``data`` (JSON stays JSON, else YAML); PageTab is not
        written back (:class:`Conflict`: the depositor changes it in their own tool)."""
        import json

        import yaml

        source = (
            None if _looks_like_pagetab_tsv(data[:4096].decode("utf-8-sig", "ignore")) else read_document(data, name, self.limits)
        )
        if source is None or _looks_like_pagetab_json(source.data):
            raise Conflict(
                f"{name} is PageTab: suggestions are filled into REMBI JSON or YAML metadata only; add them to {name} and"
                " attach it again",
                [{"file": name, "field": "metadata", "message": "PageTab metadata is not rewritten"}],
            )
        lower = name.lower()
        if lower.endswith(".json") or (not lower.endswith((".yaml", ".yml")) and data.lstrip()[:1] in (b"{", b"[")):
            return json.dumps(record, ensure_ascii=False, indent=2, default=str).encode("utf-8")
        return yaml.safe_dump(record, sort_keys=False, allow_unicode=True).encode("utf-8")

    def check_file_list(self, path: str, name: str) -> tuple[int, list[dict[str, Any]]]:
        try:
            report = file_lists.check_file_list(path, name=name)
        except file_lists.FileListError as exc:
            return 0, exc.errors or [{"file": name, "message": exc.message}]
        return report.rows, list(report.errors)

    def iter_file_list(self, path: str, name: str) -> Iterator[FileListRow]:
        for row in file_lists.iter_file_list(path, name=name):
            yield FileListRow(
                line=row.line,
                path=row.path,
                size=row.size,
                attributes=dict(row.attributes),
                directory=row.kind == "directory",
            )


def _from_pagetab(loaded) -> ParsedMetadata:
    components = {ref.file_list: ref.component for ref in loaded.file_lists if ref.file_list and ref.component}
    return ParsedMetadata(record=loaded.record, file_list_components=components, notes=list(loaded.unmapped))
