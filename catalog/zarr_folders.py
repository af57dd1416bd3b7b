"""Zarr stores uploaded as folders of files (``x.ome.zarr/.zattrs``, ``x.ome.zarr/0/0/0/0``, …): which of a study's
file paths belong to one, and which one file stands for the whole store.

A store is a folder whose name ends with ``.zarr`` (``x.zarr``, ``x.ome.zarr``) and that holds a root metadata
file, its *marker*: ``zarr.json`` (Zarr v3) or, if it has none, ``.zattrs`` (Zarr v2); a store inside another is
part of it. The store stands as one image file through its marker. The header, OME-Zarr and preview jobs are
queued for markers only: a marker's job reads the whole folder (only its metadata objects for headers), and the
files inside a store get no job of their own (a chunk is not an image file). A folder without a marker is a folder
of plain files.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

STORE_SUFFIX = ".zarr"
#: root metadata files, the one preferred first
MARKERS = ("zarr.json", ".zattrs")


def _zarr_folders(path: str) -> Iterator[str]:
    """The folders ``path`` lies in whose names end with ``.zarr``, outermost first."""
    segments = path.split("/")
    for end, segment in enumerate(segments[:-1], start=1):
        if segment.lower().endswith(STORE_SUFFIX) and len(segment) > len(STORE_SUFFIX):
            yield "/".join(segments[:end])


def is_marker(path: str) -> bool:
    """Whether ``path`` can be a store's marker: ``zarr.json`` or ``.zattrs`` right inside a ``.zarr`` folder."""
    folder, _, name = path.rpartition("/")
    last = folder.rpartition("/")[2]
    return name in MARKERS and last.lower().endswith(STORE_SUFFIX) and len(last) > len(STORE_SUFFIX)


def is_store_folder(path: str) -> bool:
    """Whether ``path`` names a Zarr store's folder (``x.zarr``, ``x.ome.zarr``), as a file list lists one entry."""
    name = path.rpartition("/")[2]
    return name.lower().endswith(STORE_SUFFIX) and len(name) > len(STORE_SUFFIX)


def store_named(path: str) -> str | None:
    """The Zarr store folder ``path`` stands for: the folder itself (listed as one entry) or the folder of its
    marker; None for any other path."""
    if is_marker(path):
        return folder_of_marker(path)
    return path if is_store_folder(path) else None


def folder_of_marker(path: str) -> str:
    """The store folder a marker stands for (``x.ome.zarr`` for ``x.ome.zarr/.zattrs``)."""
    return path.rpartition("/")[0]


def shown(path: str) -> str:
    """How a file is named to people: a marker by its store's folder."""
    return folder_of_marker(path) if is_marker(path) else path


def markers(paths: Iterable[str]) -> dict[str, str]:
    """Each store among a study's ``paths`` → its one marker (``zarr.json`` before ``.zattrs``; stores inside
    another store are part of it)."""
    found: dict[str, str] = {}
    for path in paths:
        if is_marker(path):
            folder, name = folder_of_marker(path), path.rpartition("/")[2]
            kept = found.get(folder)
            if kept is None or MARKERS.index(name) < MARKERS.index(kept.rpartition("/")[2]):
                found[folder] = path
    return {folder: marker for folder, marker in found.items() if not any(f in found for f in _zarr_folders(folder))}


def job_paths(paths: Iterable[str], stores: dict[str, str]) -> Iterator[str]:
    """The paths image jobs are queued for, given the study's :func:`markers`: every path outside the stores (a
    ``.zarr`` folder without a marker holds plain files) and each store's marker; the other files of a store are
    left out."""
    for path in paths:
        store = next((folder for folder in _zarr_folders(path) if folder in stores), None)
        if store is None or stores[store] == path:
            yield path


def image_file_keys(files: Any, accession: str, *, folders: bool = False) -> Iterator[str]:
    """The file-store keys (``studies/<acc>/<path>``) of a study's files that image jobs are queued for, from its
    file table ``files`` (read twice, nothing held): each file outside a Zarr folder, and each store's marker.
    Folders listed as one entry (``type`` ``directory``) get no job, except, with ``folders`` (a harvested study's
    files, read at their source), a Zarr store's folder whose marker is not listed: the folder's key then stands for
    its store."""
    stores = markers(str(row["path"]) for row in files.iter_rows(accession))

    def paths() -> Iterator[str]:
        for row in files.iter_rows(accession):
            path = str(row["path"])
            if row.get("type") != "directory":
                yield path
            elif folders and is_store_folder(path) and path not in stores and not any(f in stores for f in _zarr_folders(path)):
                yield path

    return (f"studies/{accession}/{path}" for path in job_paths(paths(), stores))
