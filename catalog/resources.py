"""Where the model's data folders (``schema/``, ``shapes/``) are, in a checkout or an installed copy."""

from __future__ import annotations

import os
import sys
from functools import lru_cache
from pathlib import Path


def _candidates(name: str) -> list[Path]:
    override = os.environ.get(f"BIA_{name.upper()}_DIR")
    found = [Path(override)] if override else []
    found.append(Path(__file__).resolve().parent.parent / name)  # a checkout or an editable install
    found.append(Path(sys.prefix) / "share" / "bia" / name)  # `pip install .` (setup.cfg data_files)
    return found


@lru_cache(maxsize=None)
def data_folder(name: str) -> Path:
    """The first existing folder called ``name`` (``schema`` or ``shapes``)."""
    for path in _candidates(name):
        if path.is_dir():
            return path
    raise FileNotFoundError(f"cannot find the {name}/ folder; looked in: {', '.join(map(str, _candidates(name)))}")


def schema_file() -> Path:
    """The LinkML schema, the single source of truth."""
    return data_folder("schema") / "rembi.yaml"


def generated_folder() -> Path:
    """Artefacts generated from the schema (JSON-LD context, JSON Schema, RDF mapping)."""
    return data_folder("schema") / "generated"


def shapes_folder() -> Path:
    """Generated and hand-written SHACL shapes."""
    return data_folder("shapes")
