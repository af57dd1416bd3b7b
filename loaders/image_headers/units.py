"""Units of length and time as image formats write them, and their value in metres or seconds.

The names are OME's ``UnitsLength`` / ``UnitsTime`` symbols (which OME-XML, OME-Zarr readers and ome-types use),
the UDUNITS names OME-Zarr (NGFF) axes use, and the spellings ImageJ, TIFF resolution units and MRC headers use.
"""

from __future__ import annotations

from .model import Quantity

_SI_PREFIXES = {
    "y": 1e-24, "z": 1e-21, "a": 1e-18, "f": 1e-15, "p": 1e-12, "n": 1e-9, "µ": 1e-6, "m": 1e-3, "c": 1e-2,
    "d": 1e-1, "": 1.0, "da": 1e1, "h": 1e2, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
    "Z": 1e21, "Y": 1e24,
}  # fmt: skip
_NGFF_PREFIXES = {
    "yocto": 1e-24, "zepto": 1e-21, "atto": 1e-18, "femto": 1e-15, "pico": 1e-12, "nano": 1e-9, "micro": 1e-6,
    "milli": 1e-3, "centi": 1e-2, "deci": 1e-1, "": 1.0, "deca": 1e1, "hecto": 1e2, "kilo": 1e3, "mega": 1e6,
    "giga": 1e9, "tera": 1e12, "peta": 1e15, "exa": 1e18, "zetta": 1e21, "yotta": 1e24,
}  # fmt: skip

#: metres per unit
LENGTH_UNITS: dict[str, float] = {
    **{f"{p}m": f for p, f in _SI_PREFIXES.items()},
    **{f"{p}meter": f for p, f in _NGFF_PREFIXES.items()},
    **{f"{p}metre": f for p, f in _NGFF_PREFIXES.items()},
    "um": 1e-6, "μm": 1e-6, "micron": 1e-6, "microns": 1e-6, "Å": 1e-10, "A": 1e-10, "angstrom": 1e-10,
    "ångström": 1e-10, "thou": 2.54e-5, "li": 5.08e-4, "in": 0.0254, "inch": 0.0254, "ft": 0.3048, "foot": 0.3048,
    "yd": 0.9144, "yard": 0.9144, "mi": 1609.344, "mile": 1609.344, "ua": 1.495978707e11, "ly": 9.4607304725808e15,
    "pc": 3.0856775814913673e16, "pt": 0.0254 / 72, "parsec": 3.0856775814913673e16,
}  # fmt: skip

#: seconds per unit
TIME_UNITS: dict[str, float] = {
    **{f"{p}s": f for p, f in _SI_PREFIXES.items() if p != "c"},
    **{f"{p}second": f for p, f in _NGFF_PREFIXES.items()},
    "sec": 1.0, "us": 1e-6, "μs": 1e-6, "min": 60.0, "minute": 60.0, "h": 3600.0, "hour": 3600.0, "d": 86400.0,
    "day": 86400.0,
}  # fmt: skip


def _normalized(unit: str) -> str:
    unit = unit.strip()
    return unit.replace("\\u00B5", "µ").replace("\\u00b5", "µ").replace("\u03bc", "µ")


def length(value: float | None, unit: str | None) -> Quantity | None:
    """A length as written; ``si`` is None for units that are not lengths (``pixel``, ``reference frame``)."""
    return _quantity(value, unit, LENGTH_UNITS)


def time(value: float | None, unit: str | None) -> Quantity | None:
    """A time as written; ``si`` is None for an unknown unit."""
    return _quantity(value, unit, TIME_UNITS)


def _quantity(value: float | None, unit: str | None, table: dict[str, float]) -> Quantity | None:
    if value is None or unit is None:
        return None
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):  # NaN or infinite: not a measurement
        return None
    written = _normalized(unit)
    factor = table.get(written, table.get(written.lower()))
    return Quantity(value=value, unit=written, si=None if factor is None else value * factor)
