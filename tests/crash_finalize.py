"""Child process of the crash test: stage nothing, just finalize a prepared submission and report.

``python -m tests.crash_finalize DATA_DIR SUBMISSION OWNER`` prints ``ready`` when the archive is open and
the finalize is about to start, then ``done ACCESSION``. The test SIGKILLs it somewhere in between.
"""

from __future__ import annotations

import sys
from pathlib import Path

from api.services import open_services
from tests.catalog_helpers import make_settings


def main(data_dir: str, submission: str, owner: str) -> None:
    settings = make_settings(Path(data_dir).parent)
    with open_services(settings, recover=False) as services:
        print("ready", flush=True)
        accession = services.deposits.finalize(submission, owner)
        print("done", accession, flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
