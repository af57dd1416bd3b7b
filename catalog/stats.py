"""The catalog's statistics: one function for ``/stats``, the home page and ``bia stats``."""

from __future__ import annotations

from typing import Any


def catalog_stats(archive: Any, *, registry: bool = False) -> dict[str, Any]:
    """Counts of the released catalog by source, imaging method, organism, licence and file format, and its growth
    by month (every month from the first release to the last, so a chart's time axis is even). ``registry`` adds the
    operator's counts of studies by lifecycle state (embargoed ones included: not for public answers)."""
    public = archive.public
    result = public.search.search("", limit=0, facet_limit=1000)
    formats = public.files.format_counts()
    growth, running = [], 0
    by_month = dict(public.search.release_months())
    months = _months(min(by_month), max(by_month)) if by_month else []
    for month in months if len(months) <= 1200 else sorted(by_month):  # (an odd date a century off: releases only)
        running += by_month.get(month, 0)
        growth.append({"month": month, "released": by_month.get(month, 0), "cumulative": running})
    stats: dict[str, Any] = {
        "studies": result.total,
        "by_source": dict(result.facets.get("source", [])),
        "by_imaging_method": dict(result.facets.get("imaging_method", [])),
        "by_organism": dict(result.facets.get("organism", [])),
        "by_licence": dict(result.facets.get("licence", [])),
        "by_file_format": formats,
        "growth": growth,
    }
    if registry:
        stats["registry"] = archive.registry.counts()
    return stats


def _months(first: str, last: str) -> list[str]:
    """Every ``YYYY-MM`` from ``first`` to ``last``."""
    year, month = int(first[:4]), int(first[5:7])
    months = []
    while f"{year:04d}-{month:02d}" <= last:
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months
