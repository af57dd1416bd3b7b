"""Child processes of the lifecycle tests; the catalog comes from ``BIA_*`` variables.

``python -m tests.lifecycle_child hold SUBMISSION OWNER``: begin a finalize (accession minted, lease held and
renewed), print ``held ACCESSION``, wait for a line on standard input, then complete it and print ``done``.
``python -m tests.lifecycle_child reopen``: open the catalog as a restarted worker does (recovery included), print
the in-flight rows as ``row ACCESSION STATE ATTEMPTS``.
``python -m tests.lifecycle_child release TODAY``: release due studies, print ``released ACC…``.
``python -m tests.lifecycle_child cut-move ACCESSION TITLE FILES SAVE``: commit a harvested study of FILES files;
die (as kill -9 would) at the update that moves its graph into place, that update written to SAVE unsent: the
parent sends it later, as a server still working on a request from a dead client would carry it out.
"""

from __future__ import annotations

import sys

from api.services import open_services
from catalog.config import Settings


def main(command: str, *args: str) -> None:
    settings = Settings.from_env()
    if command == "hold":
        sub, owner = args
        with open_services(settings, recover=False) as services:
            deposits = services.deposits
            record = deposits._with_release_date(
                deposits.formats.read_metadata("study.yaml", deposits.get(sub, owner)["metadata"].encode()).record,
                deposits.get(sub, owner),
            )
            accession = services.archive.registry.begin_finalize(
                sub, owner, deposits.prefix, record["release_date"], record.get("title")
            )
            with services.archive.registry.holding(accession):
                print("held", accession, flush=True)
                sys.stdin.readline()
                deposits._complete(sub, accession)
            print("done", flush=True)
    elif command == "reopen":
        with open_services(settings) as services:
            for row in services.archive.registry.studies():
                print("row", row.accession, row.state, row.attempts, flush=True)
    elif command == "release":
        with open_services(settings, recover=False) as services:
            print("released", *services.archive.release_due(args[0]), flush=True)
    elif command == "cut-move":
        cut_move(settings, *args)
    else:
        raise SystemExit(f"unknown command {command}")


def cut_move(settings: Settings, accession: str, title: str, files: str, save: str) -> None:
    import os

    from rdflib import Graph, Literal, URIRef
    from rdflib.namespace import DCTERMS

    from catalog.graph_store_remote import RemoteGraphStore
    from catalog.study_files import StudyFile

    def update(store, statement):
        if statement.startswith("MOVE"):
            with open(save, "w", encoding="utf-8") as out:
                out.write(f"{store.update_url}\n{statement}")
            os._exit(9)
        return sent(store, statement)

    sent = RemoteGraphStore.update
    RemoteGraphStore.update = update  # type: ignore[method-assign]
    with open_services(settings, recover=False) as services:
        study = services.archive.study_iri(accession)
        metadata = Graph()
        metadata.add((URIRef(study), DCTERMS.title, Literal(title)))
        services.archive.commit_study(
            accession,
            metadata,
            lambda: [StudyFile(f"f{i}.tif", i) for i in range(int(files))],
            release_date="2020-01-01",
            source="empiar",
            title=title,
        )


if __name__ == "__main__":
    main(*sys.argv[1:])
