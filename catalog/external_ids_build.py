"""``python -m catalog.external_ids_build``: write ``catalog/external_ids.json``, what :mod:`catalog.external_ids`
reads of the Bioregistry, from the pinned ``bioregistry`` package (offline: its data ships in the wheel).

Run it after changing the pin or the kinds' prefixes; ``tests/test_external_ids.py`` fails while the file and
the installed Bioregistry disagree.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from importlib.metadata import version
from typing import Any

from catalog.external_ids import KINDS, REGISTRY_FILE


def bioregistry() -> Any:
    """The ``bioregistry`` module. Importing it makes folders in ``pystow``'s homes (``~/.data``, ``~/.config``);
    where none can be made (a user without a home folder), those homes go under the temporary directory."""
    try:
        import bioregistry as module
    except OSError:
        for name in [m for m in sys.modules if m == "bioregistry" or m.startswith("bioregistry.")]:
            del sys.modules[name]  # the half-imported package
        home = os.path.join(tempfile.gettempdir(), "bia-catalog-pystow")
        os.environ["PYSTOW_HOME"], os.environ["PYSTOW_CONFIG_HOME"] = os.path.join(home, "data"), os.path.join(home, "config")
        import bioregistry as module
    return module


def build_registry() -> dict[str, Any]:
    """The Bioregistry's data on the kinds' prefixes, as ``external_ids.json`` holds it."""
    registry = bioregistry()
    prefixes = {}
    for prefix in sorted({kind.prefix for kind in KINDS.values()}):
        resource = registry.get_resource(prefix)
        prefixes[prefix] = {
            "name": resource.get_name(),
            "pattern": resource.get_pattern(),
            "example": resource.get_example(),
            "provider_iri": registry.get_default_iri(prefix, "$1"),
            "identifiers_org_iri": registry.get_identifiers_org_iri(prefix, "$1"),
            "uri_formats": sorted(f for f in resource.get_uri_formats() if f.startswith(("http://", "https://"))),
        }
    return {"made_by": "python -m catalog.external_ids_build", "bioregistry": version("bioregistry"), "prefixes": prefixes}


def main() -> None:
    REGISTRY_FILE.write_text(json.dumps(build_registry(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {REGISTRY_FILE}")


if __name__ == "__main__":
    main()
