"""The plane browser of an image's page: which plane is shown (``?z=&t=&c=`` on the page's own URL), the plain links
that step through z, t and channels (no JavaScript needed), and how to open the image's OME-Zarr store in napari,
vizarr or neuroglancer."""

from __future__ import annotations

import math
import re
from typing import Any
from urllib.parse import quote, urlencode

from flask import request

from catalog import identifiers
from catalog.errors import NotFound
from catalog.image_columns import latest_results
from catalog.image_representations import store_url, thumbnail_url

#: the longest side the page's picture is drawn from (the level picked is the smallest at least this big)
PAGE_SIDE = 1024


def _arg(name: str, default: int | None, size: int) -> int | None:
    text = request.args.get(name, "")
    if not text.isdigit():
        return default
    return min(int(text), size - 1)


def plane_browser(iri: str) -> dict[str, Any] | None:
    """What the image page shows of the image ``iri``; None when it is not an image with read headers."""
    from api.context import services
    from api.routes_images import image_for_request

    accession = identifiers.accession_of(iri)
    match = re.fullmatch(r".*/studies/[^/]+/images/([0-9A-Za-z]+)", iri)
    if accession is None or match is None:
        return None
    try:
        _view, found = image_for_request(accession, match[1])
    except NotFound:
        return None
    result = latest_results(services().archive.state, accession, [found.file_key]).get(found.file_key) or {}
    series = next((s for s in result.get("series") or [] if int(s.get("index") or 0) == found.series), None)
    if series is None:
        return None
    sizes = {axis: int(series.get(f"size_{axis}") or 1) for axis in "zct"}
    shown = {"z": _arg("z", sizes["z"] // 2, sizes["z"]), "t": _arg("t", 0, sizes["t"]), "c": _arg("c", None, sizes["c"])}
    side = max(int(series.get("size_x") or 1), int(series.get("size_y") or 1))
    levels = int(series.get("pyramid_levels") or 1)
    level = max(0, min(levels - 1, int(math.log2(side / PAGE_SIDE)))) if side > PAGE_SIDE else 0

    def page(**changes: Any) -> str:
        args = {**shown, **changes}
        return f"{iri}?" + urlencode({k: v for k, v in args.items() if v is not None})

    steps = []
    for axis, label in (("z", "plane"), ("t", "time point")):
        if sizes[axis] > 1:
            at = shown[axis] or 0
            steps.append(
                {
                    "axis": axis,
                    "label": label,
                    "at": at,
                    "size": sizes[axis],
                    "previous": page(**{axis: at - 1}) if at > 0 else None,
                    "next": page(**{axis: at + 1}) if at < sizes[axis] - 1 else None,
                    "first": page(**{axis: 0}),
                    "last": page(**{axis: sizes[axis] - 1}),
                }
            )
    channels = []
    if sizes["c"] > 1:
        names = [c.get("name") or c.get("fluorophore") for c in series.get("channels") or []]
        channels.append({"label": "composite", "url": page(c=None), "current": shown["c"] is None})
        for index in range(min(sizes["c"], 64)):
            label = names[index] if index < len(names) and names[index] else f"channel {index}"
            channels.append({"label": label, "url": page(c=index), "current": shown["c"] == index})
    picture = {k: v for k, v in (("z", shown["z"]), ("t", shown["t"]), ("c", shown["c"]), ("level", level)) if v is not None}
    store = store_url(iri)
    return {
        "render": f"{iri}/render.png?" + urlencode(picture),
        "thumbnail": thumbnail_url(iri),
        "shown": shown,
        "steps": steps,
        "channels": channels,
        "store": store,
        "vizarr": f"https://hms-dbmi.github.io/vizarr/?source={quote(store, safe='')}",
        "neuroglancer": f"zarr://{store}",
    }
