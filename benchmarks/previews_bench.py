"""Previews (issue 17): thumbnail time per image on one core, and rendered planes through the HTTP route, cached and
uncached, against raw Pillow/tifffile/mrcfile baselines in the same run. Prints figures.

    python -m benchmarks.previews_bench [--rounds 20] [--big]

Inputs are assembled from the real pixels of ``tests/data/images`` (the fluorescence nuclei TIFF, the
quantitative-phase PNG): a 2048² uint16 TIFF (strips, uncompressed), a 2048² 8-bit PNG, a 4096² float32 MRC
micrograph, and a tiled (256², zlib) 4096² two-channel pyramidal OME-TIFF; with ``--big``, a 2 GiB tiled OME-TIFF
(32768² uint16, no pyramid) drawn in a 512 MiB worker.

- **thumbnails**: the previews of one image (a 1024-px view and thumbnails of 128, 256 and 512 px, PNG-encoded),
  in this process (one core), p50/p95 per input; baseline: reading the whole image with the raw library and
  ``PIL.Image.thumbnail`` to 512 px. Targets: p95 ≤ 0.5 s for ≤ 2048² 2-D images, ≤ 3 s for the 4096² micrograph.
- **rendered plane**: ``GET …/render.png?level=3`` (512² from the pyramid) through the Flask test client of a real
  catalog: uncached (the stored PNG removed before each request: drawn in the sandboxed worker) and cached (served
  from the file store); baseline: tifffile reading the same level and Pillow encoding it in this process.
  Targets: p95 ≤ 1 s uncached, ≤ 150 ms cached.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "tests" / "data" / "images"
BASE = "https://archive.example.org"


def _nuclei() -> np.ndarray:
    import tifffile

    return tifffile.imread(IMAGES / "tiff" / "stardist_img2d.tif")


def build_inputs(folder: Path, big: bool) -> dict[str, Path]:
    import mrcfile
    import tifffile
    from PIL import Image

    nuclei = _nuclei()
    made = {}
    made["tiff-2048"] = folder / "nuclei-2048.tif"
    tifffile.imwrite(made["tiff-2048"], np.tile(nuclei, (4, 4)))
    made["png-2048"] = folder / "cell-2048.png"
    cell = np.asarray(Image.open(IMAGES / "png" / "skimage_cell.png"))
    Image.fromarray(np.tile(cell, (4, 4))[:2048, :2048]).save(made["png-2048"])
    made["mrc-4096"] = folder / "micrograph-4096.mrc"
    with mrcfile.new(made["mrc-4096"], overwrite=True) as mrc:
        mrc.set_data(np.tile(nuclei.astype(np.float32), (8, 8)))
    made["pyramid-4096"] = folder / "pyramid-4096.ome.tif"
    plane = np.tile(nuclei, (8, 8))
    data = np.stack([plane, plane.max() - plane])
    with tifffile.TiffWriter(made["pyramid-4096"], bigtiff=True) as tif:
        options: dict[str, Any] = {"tile": (256, 256), "compression": "zlib", "photometric": "minisblack"}
        tif.write(data, subifds=3, metadata={"axes": "CYX"}, **options)
        for level in (2, 4, 8):
            tif.write(data[:, ::level, ::level], subfiletype=1, **options)
    if big:
        made["tiled-2GiB"] = folder / "big.ome.tif"
        tiles = (np.roll(nuclei, 8 * k, axis=1) for k in range(64 * 64))  # 4096 tiles of 512² real pixels
        with tifffile.TiffWriter(made["tiled-2GiB"], bigtiff=True) as tif:
            tif.write(tiles, shape=(32768, 32768), dtype=np.uint16, tile=(512, 512), metadata={"axes": "YX"})
    return made


def _stats(times: list[float]) -> str:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return f"p50 {statistics.median(ordered) * 1000:8.1f} ms  p95 {p95 * 1000:8.1f} ms"


def _timed(call: Callable[[], Any], rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def _raw_thumbnail(path: Path) -> None:
    import mrcfile
    import tifffile
    from PIL import Image

    if path.suffix == ".png":
        image = Image.open(path)
    else:
        data = mrcfile.read(path) if path.suffix == ".mrc" else tifffile.imread(path)
        data = np.asarray(data)[0] if np.asarray(data).ndim == 3 else np.asarray(data)
        low, high = np.percentile(data, (0.5, 99.8))
        image = Image.fromarray(((np.clip(data, low, high) - low) / max(high - low, 1e-9) * 255).astype(np.uint8))
    image.thumbnail((512, 512))
    image.save(io.BytesIO(), format="PNG")


def thumbnails(inputs: dict[str, Path], rounds: int) -> None:
    from loaders.previews.render import previews_of

    fmt = {".tif": "TIFF", ".png": "PNG", ".mrc": "MRC"}
    print("thumbnails (view 1024 px + 128/256/512 px), one core, in process")
    for name, path in inputs.items():
        if name == "tiled-2GiB":
            continue
        kind = fmt[path.suffix]
        ours = _timed(lambda: previews_of(str(path), kind, [0]), rounds)
        raw = _timed(lambda: _raw_thumbnail(path), max(3, rounds // 4))
        ratio = statistics.median(ours) / statistics.median(raw)
        print(f"  {name:14s} ours {_stats(ours)} | raw read+PIL thumbnail {_stats(raw)} | ours/raw {ratio:5.2f}")


def big_input(path: Path) -> None:
    from loaders.previews.pool import PreviewCaps, PreviewPool

    with PreviewPool(workers=1, caps=PreviewCaps(seconds=600, memory_bytes=512 << 20)) as pool:
        start = time.perf_counter()
        made = pool.previews(str(path), "OME-TIFF", 0)
        took = time.perf_counter() - start
    size = path.stat().st_size
    print(
        f"2 GiB input ({size / 2**30:.2f} GiB tiled, no pyramid) in a 512 MiB worker: {made['status']} in {took:.1f} s"
        + (f" ({made.get('reason')})" if made["status"] != "ok" else "")
    )


def _catalog(folder: Path, pyramid: Path):
    """A catalog holding the pyramid in a released study, its headers read and previews made."""
    from api.app import create_app
    from api.services import open_services
    from catalog.config import Settings
    from catalog.image_facts import ImageFacts
    from catalog.jobs import JobQueue, Worker, handlers
    from loaders.image_headers import job as header_job
    from loaders.previews import job as preview_job

    settings = Settings.from_env({}, data_dir=folder / "data", base_url=BASE, preview_workers=1, background="off")
    services = open_services(settings)
    registry = services.archive.registry
    owner = registry.owner_of_token(registry.create_token("bench"))
    sub = services.deposits.create(owner)
    content = pyramid.read_bytes()
    services.deposits.upload(
        sub, owner, "pyramid.ome.tif", io.BytesIO(content), size=len(content), md5=hashlib.md5(content).hexdigest()
    )
    services.deposits.attach_file_list(sub, owner, "files.tsv", io.BytesIO(b"path\tKind\npyramid.ome.tif\tdata\n"))
    services.deposits.attach_metadata(sub, owner, "study.yaml", (ROOT / "tests" / "data" / "deposit" / "study.yaml").read_bytes())
    accession = services.deposits.finalize(sub, owner)
    header_job.register_kind()
    preview_job.register_kind()
    versions = {header_job.KIND: header_job.readers_version(), preview_job.KIND: preview_job.renderer_version()}
    queue = JobQueue.for_settings(services.archive.state, settings)
    worker = Worker(queue, handlers(settings, list(versions)), versions=versions)
    while worker.run_batch():
        pass
    queue.close()
    ImageFacts(services.archive).follow()
    client = create_app(settings, services=services).test_client()
    listing = client.get(f"/studies/{accession}/images").get_json()
    image = listing["items"][0]["images"][0]["@id"].removeprefix(BASE)
    return services, client, accession, image


def rendered_planes(folder: Path, pyramid: Path, rounds: int) -> None:
    import tifffile
    from PIL import Image

    services, client, accession, image = _catalog(folder, pyramid)
    try:
        store = services.archive.file_store
        url = f"{image}/render.png?level=3"
        client.get(url)  # the worker started, the libraries imported
        uncached, cached = [], []
        for _ in range(rounds):
            for obj in list(store.list(f"derived/{accession}/")):
                if "/render/" in obj.key:
                    store.delete(obj.key)
            start = time.perf_counter()
            answer = client.get(url)
            uncached.append(time.perf_counter() - start)
            assert answer.status_code == 200, answer.get_data(as_text=True)
            start = time.perf_counter()
            client.get(url)
            cached.append(time.perf_counter() - start)
        size = Image.open(io.BytesIO(answer.data)).size

        def raw() -> None:
            with tifffile.TiffFile(pyramid) as tif:
                data = tif.series[0].levels[3].asarray()
            Image.fromarray((data[0] >> 8).astype(np.uint8)).save(io.BytesIO(), format="PNG")

        baseline = _timed(raw, rounds)
        print(f"rendered plane {size[0]}x{size[1]} from a 4096² pyramid (level 3), through GET …/render.png")
        print(f"  uncached (sandboxed worker) {_stats(uncached)}")
        print(f"  cached (file store)         {_stats(cached)}")
        print(
            f"  raw tifffile level + PNG    {_stats(baseline)} | uncached/raw {statistics.median(uncached) / statistics.median(baseline):5.2f}"
        )
    finally:
        services.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--big", action="store_true", help="also draw a 2 GiB tiled OME-TIFF in a 512 MiB worker")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="previews-bench-") as tmp:
        folder = Path(tmp)
        inputs = build_inputs(folder, args.big)
        thumbnails(inputs, args.rounds)
        rendered_planes(folder, inputs["pyramid-4096"], args.rounds)
        if args.big:
            big_input(inputs["tiled-2GiB"])


if __name__ == "__main__":
    main()
