"""Child processes of the lifecycle tests; the catalog comes from ``BIA_*`` variables.

``python -m tests.lifecycle_child hold SUBMISSION OWNER``: begin a finalize (accession minted, lease held and
renewed), print ``held ACCESSION``, wait for a line on standard input, then complete it and print ``done``.
``python -m tests.lifecycle_child reopen``: open the catalog as a restarted worker does (recovery included), print
the in-flight rows as ``row ACCESSION STATE ATTEMPTS``.
``python -m tests.lifecycle_child release TODAY``: release due studies, print ``released ACC…``.
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
            accession = services.archive.registry.begin_finalize(sub, owner, deposits.prefix, record["release_date"], record.get("title"))
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
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main(*sys.argv[1:])
