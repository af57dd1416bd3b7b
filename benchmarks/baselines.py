"""Raw baselines the benchmarks compare against, measured in a child process so their memory is their own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

_BULK_LOAD = """
import sys, time
import pyoxigraph
store = pyoxigraph.Store(sys.argv[2])
start = time.perf_counter()
store.bulk_load(path=sys.argv[1], format=pyoxigraph.RdfFormat.N_TRIPLES, to_graph=pyoxigraph.NamedNode(sys.argv[3]))
store.flush()
hwm = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
print(time.perf_counter() - start, hwm / 1024)
"""


def raw_bulk_load(ntriples: Path, store_dir: Path, graph: str) -> tuple[float, float]:
    """(seconds, peak RSS MiB) of pyoxigraph bulk-loading ``ntriples`` into ``graph`` of a fresh store."""
    child = subprocess.run(
        [sys.executable, "-c", _BULK_LOAD, str(ntriples), str(store_dir), graph], capture_output=True, text=True, check=True
    )
    seconds, rss = (float(x) for x in child.stdout.split())
    return seconds, rss
