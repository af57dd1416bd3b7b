"""The demo catalog (``bia serve --demo``): the real public records bundled in ``api/demo/`` harvested, and one study
with real image files deposited through the normal deposit path, so that the demo has files to download, preview
and read as OME-Zarr (its header, preview and OME-Zarr jobs go through the job queue like any deposit's).

Loading is idempotent: a harvested record that did not change is left as it is, and the demo deposit is made once
(a study of the demo's owner with its title is never deposited again).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, IO

import yaml

from catalog.deposits import Upload
from catalog.errors import CatalogError

DEMO = Path(__file__).parent / "demo"
#: the demo deposit: its REMBI record, file lists (one per component) and files (paths relative to ``files/``)
DEPOSIT = DEMO / "deposit"
DEPOSIT_METADATA = "study.yaml"
DEPOSIT_FILE_LISTS = ("nuclei.csv", "histology.csv", "em.csv")
#: the owner the demo deposit is made for (no token is made for it)
DEMO_OWNER = "bia-demo"

#: (harvester kind, folder under ``api/demo``, the files to harvest: all when empty)
HARVESTED = (
    ("pagetab", "biostudies", ("S-BIAD1492.json", "S-BIADTEST.json")),
    ("empiar", "empiar", ()),
    ("idr", "idr", ()),
    ("rocrate", "rocrate", ()),
)


@dataclass
class DemoLoaded:
    """What loading the demo did."""

    loaded: int = 0
    unchanged: int = 0
    #: (item, reason) of each study that could not be loaded
    failed: list[tuple[str, str]] = field(default_factory=list)
    #: the demo deposit's accession
    deposited: str | None = None

    def summary(self) -> str:
        deposit = f"; files of {self.deposited} held here" if self.deposited else ""
        return f"demo studies: {self.loaded} loaded, {self.unchanged} unchanged, {len(self.failed)} failed{deposit}"


def load_demo(services, *, echo: Callable[[str], object] = print) -> DemoLoaded:
    """Harvest the bundled records and make the demo deposit (idempotent); ``echo`` is told of each failure."""
    done = DemoLoaded()
    _harvest(services, done)
    _deposit(services, done)
    for item, reason in done.failed:
        echo(f"demo: {item}: {reason}")
    return done


def _harvest(services, done: DemoLoaded) -> None:
    from loaders.harvest import Harvester

    harvester = Harvester(services.archive)
    for kind, folder, names in HARVESTED:
        if kind == "rocrate":
            items = [str(DEMO / folder)]
        elif names:
            items = [str(DEMO / folder / n) for n in names]
        else:
            items = [str(p) for p in sorted((DEMO / folder).iterdir()) if p.is_file()]
        summary = harvester.run(kind, items)
        done.loaded += len(summary.loaded)
        done.unchanged += len(summary.unchanged)
        done.failed.extend(summary.failed)


def deposit_title() -> str:
    return str(yaml.safe_load((DEPOSIT / DEPOSIT_METADATA).read_text(encoding="utf-8"))["title"])


def _deposit(services, done: DemoLoaded) -> None:
    """The demo deposit, unless the demo's owner has it already."""
    registry = services.archive.registry
    title = deposit_title()
    made = [row for row in registry.studies(owner=DEMO_OWNER) if row.title == title]
    if made:
        done.unchanged += 1
        done.deposited = made[0].accession
        return
    files = DEPOSIT / "files"
    paths = sorted(p for p in files.rglob("*") if p.is_file())
    try:
        with contextlib.ExitStack() as lists:
            outcome = services.deposits.deposit(
                DEMO_OWNER,
                (DEPOSIT_METADATA, (DEPOSIT / DEPOSIT_METADATA).read_bytes()),
                file_lists=[(name, lists.enter_context((DEPOSIT / name).open("rb"))) for name in DEPOSIT_FILE_LISTS],
                uploads=[Upload(p.relative_to(files).as_posix(), _opener(p), p.stat().st_size) for p in paths],
            )
    except CatalogError as exc:
        done.failed.append((str(DEPOSIT), exc.message))
        return
    done.loaded += 1
    done.deposited = outcome.accession


def _opener(path: Path) -> Callable[[], IO[bytes]]:
    return lambda: path.open("rb")
