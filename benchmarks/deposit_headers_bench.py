"""What reading image headers adds to a deposit's validation, the first time and again (from the job queue's results).

    python -m benchmarks.deposit_headers_bench [--files 200] [--rounds 3]

Stages ``--files`` OME-TIFFs (written from the real pixels of ``tests/data/images/tiff/stardist_img2d.tif``, each
with a pixel size, two channels and an acquisition mode) in a submission of an embedded catalog in a temp folder,
then times

- the raw baseline: the same staged files read once through a :class:`~loaders.image_headers.pool.HeaderPool` of
  the catalog's size (``read_many``, a warm pool), no queue;
- a first validation (every header read as an ``image_headers`` job, its result stored);
- validations again (every result known: nothing read);
- a validation of the same submission with header reading turned off (``BIA_DEPOSIT_HEADER_FILES=0``): the rest of
  validation, for comparison;

and prints seconds, files/s and the ratio of the first validation's header part to the raw pool read.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path

IMAGES = Path(__file__).resolve().parent.parent / "tests" / "data" / "images"


def ome_tiff(index: int) -> bytes:
    import numpy as np
    import tifffile

    pixels = tifffile.imread(IMAGES / "tiff" / "stardist_img2d.tif")[:128, :128]
    buffer = io.BytesIO()
    metadata = {
        "axes": "CYX",
        "PhysicalSizeX": 0.65 + index % 3 / 100,
        "PhysicalSizeXUnit": "µm",
        "Channel": {"Name": ["DAPI", "GFP"], "AcquisitionMode": ["LaserScanningConfocalMicroscopy"] * 2},
    }
    tifffile.imwrite(buffer, np.stack([pixels, pixels]), ome=True, photometric="minisblack", metadata=metadata)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from api.services import open_services
    from catalog.config import Settings
    from loaders.image_headers.pool import HeaderCaps, HeaderPool

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_env({}, data_dir=Path(tmp) / "data", base_url="http://localhost", background="off")
        services = open_services(settings)
        registry, deposits = services.archive.registry, services.deposits
        owner = registry.owner_of_token(registry.create_token("bench"))
        sub = deposits.create(owner)
        for i in range(args.files):
            deposits.upload(sub, owner, f"plate/{i:04d}.ome.tif", io.BytesIO(ome_tiff(i)))
        deposits.attach_metadata(sub, owner, "study.yaml", b"title: Bench\nlicense: CC0-1.0\nauthors: [{name: A}]\n")
        keys = [services.archive.file_store.root / row["key"] for row in registry.staged_files(sub)]  # type: ignore[attr-defined]

        with HeaderPool(workers=settings.header_workers or None, caps=HeaderCaps.from_settings(settings)) as pool:
            list(pool.read_many(keys[:4]))  # workers started
            start = time.perf_counter()
            raw = list(pool.read_many(keys))
            raw_s = time.perf_counter() - start
        assert all(h.status == "ok" for h in raw)

        start = time.perf_counter()
        first = deposits.validate(sub, owner)
        first_s = time.perf_counter() - start
        assert first["images"]["read_now"] == args.files, first["images"]
        again = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            report = deposits.validate(sub, owner)
            again.append(time.perf_counter() - start)
            assert report["images"]["read_now"] == 0
        deposits.headers.settings = settings.with_(deposit_header_files=0)
        without = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            deposits.validate(sub, owner)
            without.append(time.perf_counter() - start)
        services.close()

    rest = statistics.median(without)
    print(f"files: {args.files} OME-TIFFs staged")
    print(f"raw HeaderPool.read_many (warm pool): {raw_s:.2f} s = {args.files / raw_s:.0f} files/s")
    print(
        f"first validation: {first_s:.2f} s (headers part {first_s - rest:.2f} s = {args.files / (first_s - rest):.0f} files/s)"
    )
    print(f"validation again (results known): median {statistics.median(again):.3f} s")
    print(f"validation without header reading: median {rest:.3f} s")
    print(f"first validation's header part / raw pool read: {(first_s - rest) / raw_s:.2f}x")
    print(f"again - without (looking up {args.files} known results): {statistics.median(again) - rest:.3f} s")


if __name__ == "__main__":
    main()
