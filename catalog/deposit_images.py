"""What a deposit's image files say, set against what the depositor wrote: suggestions for empty fields and conflicts.

Four fields of the depositor's REMBI record are compared with the headers of the staged files
(:mod:`catalog.deposit_headers`): the imaging method (an image acquisition's ``imaging_methods``; OME
``Channel/@AcquisitionMode`` through the reviewed table :mod:`catalog.imaging_methods`), the channels (a specimen's
``signal_channels``), the objective (an acquisition's ``imaging_instrument``) and the pixel size (an acquisition's
``acquisition_parameters``). A field the record leaves empty gets a **suggestion** (the value, the files and the
header element it comes from, and where in the record it would go); a field the record fills with something the
files contradict gets a **conflict** (both values, the files, the element). Conflicts are never applied. Every finding
is a warning: a deposit is never rejected for what its files say, nor for files whose headers cannot be read.

When files disagree among themselves, the value most of the checked files give is suggested, and the message says
how many say something else.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from catalog.imaging_methods import MethodTerm, acquisition_modes, method_for

#: files named in one finding at most (the count says how many there are)
MAX_FILES_NAMED = 10
#: unreadable files reported one by one at most
MAX_UNREADABLE = 20
#: longest text taken from a header (names, models)
MAX_TEXT = 200
#: channels of a file taken at most (a file may claim thousands)
MAX_CHANNELS = 64
#: relative difference under which a declared pixel size agrees with the files'
PIXEL_TOLERANCE = 0.02
#: the fields, in the order suggestions are applied (an imaging method makes the acquisition the others fill)
FIELDS = ("imaging_method", "channels", "objective", "pixel_size")

_OME = ("ome-tiff", "ome-xml", "ome-zarr")
_PIXEL_ELEMENT = {
    "ome-tiff": "OME/Image/Pixels/@PhysicalSizeX, @PhysicalSizeY, @PhysicalSizeZ",
    "ome-xml": "OME/Image/Pixels/@PhysicalSizeX, @PhysicalSizeY, @PhysicalSizeZ",
    "ome-zarr": "multiscales/coordinateTransformations/scale (or OME/Image/Pixels/@PhysicalSizeX)",
    "tiff": "TIFF XResolution, YResolution, ResolutionUnit (or ImageJ, LSM or SVS metadata)",
    "mrc": "MRC header cella / mx, my, mz",
    "png": "PNG pHYs",
    "jpeg": "JPEG JFIF density",
}
_MODE_ELEMENT = "OME/Image/Pixels/Channel/@AcquisitionMode"
_OBJECTIVE_ELEMENT = "OME/Instrument/Objective/@Model, @LensNA, @NominalMagnification, @Immersion"
_LENGTH = re.compile(
    r"(\d+(?:\.\d+)?(?:[eE]-?\d+)?)\s*(nm|µm|μm|um|microns?|micrometres?|micrometers?|mm|Å|angstroms?)(?![a-z])", re.I
)
_MAGNIFICATION = re.compile(r"(?<![\d.])(\d{1,3}(?:\.\d+)?)\s*[x×](?![a-z])", re.I)
_NA = re.compile(r"(?:\bNA\s*=?\s*|/\s*)(\d?\.\d+|\d(?:\.\d+)?)", re.I)
_TO_MICRONS = {"nm": 1e-3, "mm": 1e3, "å": 1e-4, "angstrom": 1e-4, "angstroms": 1e-4}


@dataclass(frozen=True)
class Finding:
    """One thing the files say about a field: a ``suggestion``, a ``conflict``, an ``unreadable`` file, or a note on
    the reading (``pending``, ``skipped``, ``sampled``). ``files`` holds every file it is about; a report names the
    first :data:`MAX_FILES_NAMED` and counts them all."""

    kind: str
    field: str
    message: str
    files: tuple[str, ...] = ()
    file_count: int = 0
    element: str = ""
    #: the files' value as text, and as it would go into the record (suggestions)
    shown: str = ""
    value: Any = None
    declared: str | None = None
    #: where in the record a suggestion goes (None: it cannot go anywhere yet; the message says why)
    target: str | None = None

    @property
    def id(self) -> str:
        """A stable name of the finding (the same record and files give the same id)."""
        text = json.dumps([self.kind, self.field, self.target, self.value, self.shown], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def applicable(self) -> bool:
        return self.kind == "suggestion" and self.target is not None

    def to_warning(self) -> dict[str, Any]:
        """The finding in the validation report's shape (always a warning)."""
        warning: dict[str, Any] = {
            "severity": "Warning" if self.kind in ("suggestion", "conflict", "unreadable") else "Info",
            "source": "image_headers",
            "kind": self.kind,
            "id": self.id,
            "field": self.field,
            "message": self.message,
            "files": list(self.files[:MAX_FILES_NAMED]),
            "file_count": self.file_count,
        }
        if self.kind == "unreadable" and self.files:
            warning["file"] = self.files[0]
        for name, value in (("element", self.element), ("value", self.shown), ("declared", self.declared)):
            if value:
                warning[name] = value
        if self.kind == "suggestion":
            warning["target"] = self.target
            warning["suggested"] = self.value
        return warning


def _suggestion(field: str, message: str, files: list[str], element: str, shown: str, value: Any, target: str | None) -> Finding:
    return Finding("suggestion", field, message, tuple(files), len(files), element, shown, value, None, target)


def _conflict(field: str, message: str, files: list[str], element: str, shown: str, declared: str | None) -> Finding:
    return Finding("conflict", field, message, tuple(files), len(files), element, shown, None, declared)


# ----------------------------------------------------------------------------------------------- reading headers


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    text = " ".join(str(value).split())
    return text[:MAX_TEXT] or None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value else None


def _si(quantity: Any) -> float | None:
    return _number(quantity.get("si")) if isinstance(quantity, dict) else None


def _series(headers: dict[str, Any]) -> list[dict[str, Any]]:
    if headers.get("status") != "ok" or not isinstance(headers.get("series"), list):
        return []
    return [s for s in headers["series"] if isinstance(s, dict)]


def _round(value: float) -> float:
    return float(f"{value:.6g}")


def _files_phrase(files: list[str]) -> str:
    named = ", ".join(files[:MAX_FILES_NAMED])
    more = f" and {len(files) - MAX_FILES_NAMED} more" if len(files) > MAX_FILES_NAMED else ""
    return f"{len(files)} file(s): {named}{more}"


class _Tally:
    """Values seen per file, in file order: the most common one and the files that give it."""

    def __init__(self) -> None:
        self.files: dict[Any, list[str]] = {}
        self.formats: dict[Any, list[str]] = {}

    def add(self, key: Any, path: str, fmt: str | None) -> None:
        self.files.setdefault(key, []).append(path)
        self.formats.setdefault(key, []).append(fmt or "")

    def top(self) -> tuple[Any, list[str], list[str], int] | None:
        """(value, its files, their formats, how many files give another value)."""
        if not self.files:
            return None
        key = max(self.files, key=lambda k: len(self.files[k]))  # first seen wins a tie
        others = sum(len(v) for k, v in self.files.items() if k != key)
        return key, self.files[key], self.formats[key], others


def _disagree(others: int) -> str:
    return f"; {others} other file(s) say something else" if others else ""


# ----------------------------------------------------------------------------------------------- the record


def _list(record: dict[str, Any], name: str) -> list[dict[str, Any]]:
    value = record.get(name)
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _declared_methods(record: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(location, id, label) of every imaging method the record declares."""
    found = []
    for i, acq in enumerate(_list(record, "image_acquisitions")):
        for j, term in enumerate(_list(acq, "imaging_methods")):
            found.append(
                (f"/image_acquisitions/{i}/imaging_methods/{j}", str(term.get("id") or ""), str(term.get("label") or ""))
            )
    return found


def _curie(term_id: str) -> str:
    match = re.match(r"^(?:https?://purl\.obolibrary\.org/obo/)?FBbi[_:](\d+)$", term_id.strip(), re.I)
    return f"FBbi:{match.group(1)}" if match else term_id.strip()


def _phrase(mode: str) -> str:
    """An OME mode name as words: ``WideField`` → ``wide field``."""
    return " ".join(re.findall(r"[A-Z]+(?![a-z])|[A-Z][a-z]+", mode)).lower()


def _words(text: str) -> str:
    return " " + " ".join(re.sub(r"[^0-9a-z]+", " ", text.casefold()).split()) + " "


def claimed_modes(term_id: str, label: str) -> set[str]:
    """The OME acquisition modes a declared imaging method stands for: the modes the reviewed table maps to its term
    (not as a broader term), the modes its label names (``widefield fluorescence microscopy``: WideField), and
    every confocal mode for a label saying confocal and no more precise kind. Empty: a method no acquisition mode contradicts (e.g.
    fluorescence microscopy, of which wide-field and confocal are both kinds)."""
    table = acquisition_modes()
    claimed = {mode for mode, term in table.items() if term is not None and term.id == term_id and term.match != "broader"}
    labels = [label] + [term.label for term in table.values() if term is not None and term.id == term_id]
    for text in labels:
        words = _words(text)
        squashed = words.replace(" ", "")
        for mode in table:
            phrase = _phrase(mode)
            if mode == "Other" or not phrase:
                continue
            if f" {phrase} " in words or (" " in phrase and phrase.replace(" ", "") in squashed):
                claimed.add(mode)
    if not claimed and any(" confocal " in _words(text) for text in labels):  # confocal, of no kind more precise
        claimed = {mode for mode in table if "Confocal" in mode}
    return claimed


# ----------------------------------------------------------------------------------------------- findings


def findings(record: dict[str, Any], headers: dict[str, dict[str, Any]]) -> list[Finding]:
    """Suggestions and conflicts for the record from the files' headers (``path → ImageHeaders`` dicts, in path
    order), and one finding per unreadable file."""
    record = record if isinstance(record, dict) else {}
    found: list[Finding] = []
    found += _method_findings(record, headers)
    found += _channel_findings(record, headers)
    found += _objective_findings(record, headers, any(f.field == "imaging_method" and f.applicable for f in found))
    found += _pixel_findings(record, headers, any(f.field == "imaging_method" and f.applicable for f in found))
    unreadable = [(p, h) for p, h in headers.items() if h.get("status") == "unreadable"]
    for path, head in unreadable[:MAX_UNREADABLE]:
        reason = _text(head.get("reason")) or "no reason given"
        found.append(
            Finding(
                "unreadable",
                "headers",
                f"{path}: its headers could not be read ({reason}); nothing is suggested from it",
                (path,),
                1,
            )
        )
    if len(unreadable) > MAX_UNREADABLE:
        rest = [p for p, _ in unreadable[MAX_UNREADABLE:]]
        found.append(Finding("unreadable", "headers", f"… and {len(rest)} more unreadable files", tuple(rest[:10]), len(rest)))
    return found


def _acquisition_target(record: dict[str, Any], slot: str, method_coming: bool) -> tuple[str | None, str]:
    if _list(record, "image_acquisitions"):
        return f"/image_acquisitions/0/{slot}", ""
    if method_coming:
        return f"/image_acquisitions/0/{slot}", " (it goes into the image acquisition the suggested imaging method makes)"
    return None, " (the record has no image acquisition to hold it: add one with its imaging method first)"


def _method_findings(record: dict[str, Any], headers: dict[str, dict[str, Any]]) -> list[Finding]:
    modes: dict[str, list[str]] = {}
    for path, head in headers.items():
        seen = {
            _text(c.get("acquisition_mode"))
            for s in _series(head)
            for c in s.get("channels") or []
            if isinstance(c, dict) and _text(c.get("acquisition_mode"))
        }
        for mode in sorted(m for m in seen if m):
            modes.setdefault(mode, []).append(path)
    terms: dict[str, tuple[MethodTerm, list[str], list[str]]] = {}
    for mode, files in modes.items():
        term = method_for(mode)
        if term is not None:
            known = terms.setdefault(term.id, (term, [], []))
            known[1].append(mode)
            known[2].extend(f for f in files if f not in known[2])
    declared = _declared_methods(record)
    found = []
    for term, term_modes, files in terms.values():
        value = {"id": term.id, "label": term.label, "ontology_name": "FBbi"}
        said = f"{', '.join(term_modes)} ({_MODE_ELEMENT}) in {_files_phrase(files)}"
        if not declared:
            target = "/image_acquisitions/0/imaging_methods" if _list(record, "image_acquisitions") else "/image_acquisitions"
            message = (
                f"no imaging method is declared; the files' OME metadata say {said}: FBbi term {term.id} "
                f"'{term.label}' ({term.match} match in the reviewed table schema/ome_acquisition_modes.tsv)"
            )
            found.append(_suggestion("imaging_method", message, files, _MODE_ELEMENT, term.label, value, target))
            continue
        conflict = _method_conflict(declared, term, set(term_modes))
        if conflict:
            where, text = conflict
            message = f"{where} declares {text}, but the files' OME metadata say {said} (FBbi {term.id} '{term.label}')"
            found.append(_conflict("imaging_method", message, files, _MODE_ELEMENT, term.label, text))
    return found


def _method_conflict(declared: list[tuple[str, str, str]], term: MethodTerm, modes: set[str]) -> tuple[str, str] | None:
    """The declared method the files' modes contradict (its location and text), or None if any declared method
    agrees with them or none says anything a mode could contradict."""
    against = None
    for where, term_id, label in declared:
        claimed = claimed_modes(_curie(term_id), label)
        if _curie(term_id) == term.id or claimed & modes:
            return None
        if claimed and against is None:
            against = (where, f"'{label or term_id}' ({term_id})" if label else term_id)
    return against


def _channels_of(head: dict[str, Any]) -> tuple[tuple[Any, ...], ...]:
    for series in _series(head):
        channels = [c for c in series.get("channels") or [] if isinstance(c, dict)][:MAX_CHANNELS]
        described = tuple(
            (
                _text(c.get("name")),
                _text(c.get("fluorophore")),
                _nm(c.get("excitation_wavelength")),
                _nm(c.get("emission_wavelength")),
            )
            for c in channels
        )
        if any(any(v is not None for v in ch) for ch in described):
            return described
    return ()


def _nm(quantity: Any) -> float | None:
    si = _si(quantity)
    return round(si * 1e9, 1) if si is not None and 0 < si < 1e-3 else None


def _channel_record(index: int, channel: tuple[Any, ...]) -> dict[str, Any]:
    name, fluor, excitation, emission = channel
    made: dict[str, Any] = {"channel_name": name or fluor or f"Channel {index}"}
    if fluor:
        made["dye"] = fluor
    attributes = [
        {"name": label, "value": f"{value:g} nm"}
        for label, value in (("excitation wavelength", excitation), ("emission wavelength", emission))
        if value is not None
    ]
    if attributes:
        made["attributes"] = attributes
    return made


def _channel_text(channel: dict[str, Any]) -> str:
    extra = [channel.get("dye")] + [f"{a['name'].split()[0][:2]} {a['value']}" for a in channel.get("attributes", [])]
    inside = ", ".join(str(e) for e in extra if e)
    return channel["channel_name"] + (f" ({inside})" if inside else "")


def _channel_element(formats: Iterable[str], channels: tuple[tuple[Any, ...], ...]) -> str:
    if not any(f in _OME for f in formats):
        return "omero/channels/label (OME-Zarr) or the file's channel names"
    parts = [
        attribute
        for attribute, i in (("@Name", 0), ("@Fluor", 1), ("@ExcitationWavelength", 2), ("@EmissionWavelength", 3))
        if any(ch[i] is not None for ch in channels)
    ]
    return "OME/Image/Pixels/Channel/" + ", ".join(parts)


def _channel_findings(record: dict[str, Any], headers: dict[str, dict[str, Any]]) -> list[Finding]:
    tally = _Tally()
    for path, head in headers.items():
        channels = _channels_of(head)
        if channels:
            tally.add(channels, path, head.get("format"))
    top = tally.top()
    if top is None:
        return []
    channels, files, formats, others = top
    value = [_channel_record(i, ch) for i, ch in enumerate(channels)]
    shown = "; ".join(_channel_text(c) for c in value)
    element = _channel_element(formats, channels)
    specimens = _list(record, "specimens")
    declared = [(i, j, c) for i, s in enumerate(specimens) for j, c in enumerate(_list(s, "signal_channels"))]
    if not declared:
        if specimens:
            target, why = "/specimens/0/signal_channels", ""
        elif _list(record, "biosamples"):
            target, why = "/specimens", " (in a new specimen prepared from the first biosample)"
        else:
            target, why = None, " (a specimen holds channels, and it needs a biosample: add one first)"
        message = f"no signal channels are declared; the files ({element}) say {shown}, in {_files_phrase(files)}{_disagree(others)}{why}"
        return [_suggestion("channels", message, files, element, shown, value, target)]
    found = []
    by_name = {(ch[0] or "").casefold(): ch for ch in channels if ch[0]}
    for i, j, chan in declared:
        header = by_name.get(str(chan.get("channel_name") or "").casefold())
        dye = _text(chan.get("dye"))
        if header is not None and dye and header[1] and dye.casefold() != header[1].casefold():
            where = f"/specimens/{i}/signal_channels/{j}/dye"
            message = (
                f"{where} declares the dye {dye!r} for channel {header[0]!r}, but the files (OME/Image/Pixels/Channel/@Fluor) "
                f"say {header[1]!r}, in {_files_phrase(files)}"
            )
            found.append(_conflict("channels", message, files, "OME/Image/Pixels/Channel/@Fluor", header[1], dye))
    return found


def _objective_of(head: dict[str, Any]) -> tuple[Any, ...] | None:
    for series in _series(head):
        instrument = series.get("instrument")
        instrument = instrument if isinstance(instrument, dict) else {}
        objective = instrument.get("objective")
        if not isinstance(objective, dict):
            continue
        described = (
            _text(objective.get("manufacturer")),
            _text(objective.get("model")),
            _number(objective.get("nominal_magnification")),
            _number(objective.get("lens_na")),
            _text(objective.get("immersion")),
            _text(" ".join(t for t in (instrument.get("microscope_manufacturer"), instrument.get("microscope_model")) if t)),
        )
        if described[1] or described[2] or described[3]:
            return described
    return None


def _objective_text(objective: tuple[Any, ...]) -> str:
    maker, model, magnification, na, immersion, microscope = objective
    parts = [" ".join(t for t in (maker, model) if t)]
    if magnification and not re.search(rf"(?<![\d.]){magnification:g}\s*[x×]", parts[0], re.I):
        parts.append(f"{magnification:g}×")
    if na:
        parts.append(f"NA {na:g}")
    if immersion:
        parts.append(f"{immersion} immersion")
    text = "objective " + ", ".join(p for p in parts if p)
    return f"{microscope}; {text}" if microscope else text


def _objective_findings(record: dict[str, Any], headers: dict[str, dict[str, Any]], method_coming: bool) -> list[Finding]:
    tally = _Tally()
    for path, head in headers.items():
        objective = _objective_of(head)
        if objective:
            tally.add(objective, path, head.get("format"))
    top = tally.top()
    if top is None:
        return []
    objective, files, _formats, others = top
    shown = _objective_text(objective)
    written = [(i, _text(a.get("imaging_instrument"))) for i, a in enumerate(_list(record, "image_acquisitions"))]
    declared = [(i, text) for i, text in written if text]
    if not declared:
        target, why = _acquisition_target(record, "imaging_instrument", method_coming)
        message = f"no imaging instrument is declared; the files ({_OBJECTIVE_ELEMENT}) say {shown}, in {_files_phrase(files)}{_disagree(others)}{why}"
        return [_suggestion("objective", message, files, _OBJECTIVE_ELEMENT, shown, shown, target)]
    found = []
    for i, text in declared:
        problem = _objective_conflict(text, objective)
        if problem:
            where = f"/image_acquisitions/{i}/imaging_instrument"
            message = f"{where} says {problem[0]}, but the files ({problem[1]}) say {problem[2]}, in {_files_phrase(files)}"
            found.append(_conflict("objective", message, files, problem[1], shown, text))
    return found


def _objective_conflict(text: str, objective: tuple[Any, ...]) -> tuple[str, str, str] | None:
    """(what the text says, the element, what the files say) when the text's magnification or NA contradicts them."""
    _maker, _model, magnification, na, _immersion, _microscope = objective
    written = [float(m) for m in _MAGNIFICATION.findall(text)]
    if magnification and written and all(abs(w - magnification) > 0.5 for w in written):
        said = " or ".join(f"{w:g}×" for w in written)
        return said, "OME/Instrument/Objective/@NominalMagnification", f"{magnification:g}×"
    apertures = [float(a) for a in _NA.findall(text) if 0 < float(a) < 2]
    if na and apertures and all(abs(a - na) > 0.005 for a in apertures):
        said = " or ".join(f"NA {a:g}" for a in apertures)
        return said, "OME/Instrument/Objective/@LensNA", f"NA {na:g}"
    return None


def _pixel_size_of(head: dict[str, Any]) -> tuple[float, float, float | None] | None:
    for series in _series(head):
        x, y, z = (_si(series.get(f"physical_size_{axis}")) for axis in "xyz")
        if x and x > 0:
            return _round(x * 1e6), _round((y or x) * 1e6), _round(z * 1e6) if z and z > 0 else None
    return None


def _pixel_text(size: tuple[float, float, float | None]) -> str:
    x, y, z = size
    return f"pixel size {x:g} × {y:g} × {z:g} µm (x × y × z)" if z else f"pixel size {x:g} × {y:g} µm (x × y)"


def declared_pixel_sizes(text: str) -> list[float]:
    """The lengths (in µm) a text gives in its sentences about pixels or voxels."""
    sizes = []
    for part in re.split(r"[;\n]|\.\s", text):
        if re.search(r"pixel|voxel", part, re.I):
            for number, unit in _LENGTH.findall(part):
                key = unit.lower().rstrip("s") if unit.lower().startswith("angstrom") else unit.lower()
                sizes.append(float(number) * _TO_MICRONS.get(key, 1.0))
    return sizes


def _pixel_findings(record: dict[str, Any], headers: dict[str, dict[str, Any]], method_coming: bool) -> list[Finding]:
    tally = _Tally()
    for path, head in headers.items():
        size = _pixel_size_of(head)
        if size:
            tally.add(size, path, head.get("format"))
    top = tally.top()
    if top is None:
        return []
    size, files, formats, others = top
    shown = _pixel_text(size)
    element = "; ".join(dict.fromkeys(_PIXEL_ELEMENT.get(f, f"the {f} header") for f in formats))
    declared = []
    for i, acq in enumerate(_list(record, "image_acquisitions")):
        text = str(acq.get("acquisition_parameters") or "")
        sizes = declared_pixel_sizes(text)
        if sizes:
            declared.append((i, text, sizes))
    if not declared:
        target, why = _acquisition_target(record, "acquisition_parameters", method_coming)
        message = (
            f"no pixel size is declared; the files ({element}) say {shown}, in {_files_phrase(files)}{_disagree(others)}{why}"
        )
        return [_suggestion("pixel_size", message, files, element, shown, shown, target)]
    found = []
    for i, text, sizes in declared:
        if all(abs(s - size[0]) > PIXEL_TOLERANCE * size[0] for s in sizes):
            where = f"/image_acquisitions/{i}/acquisition_parameters"
            said = " or ".join(f"{s:g} µm" for s in sizes)
            message = f"{where} gives the pixel size {said}, but the files ({element}) say {shown}, in {_files_phrase(files)}"
            found.append(_conflict("pixel_size", message, files, element, shown, _text(text)))
    return found


# ----------------------------------------------------------------------------------------------- applying


@dataclass
class Applied:
    """What applying chosen suggestions did: the new record, the ids applied and those skipped with the reason."""

    record: dict[str, Any]
    applied: list[str]
    skipped: list[dict[str, str]]


def apply(record: dict[str, Any], offered: list[Finding], chosen: Iterable[str]) -> Applied:
    """The record with the chosen suggestions filled in (conflicts are never applied); ids not offered (any more)
    are skipped with the reason."""
    record = copy.deepcopy(record) if isinstance(record, dict) else {}
    wanted = list(dict.fromkeys(chosen))
    by_id = {f.id: f for f in offered}
    result = Applied(record, [], [])
    for ident in wanted:
        finding = by_id.get(ident)
        if finding is None or finding.kind != "suggestion":
            why = "a conflict is never applied" if finding else "not offered for this record and these files (any more)"
            result.skipped.append({"id": ident, "reason": why})
    picked = sorted(
        (by_id[i] for i in wanted if i in by_id and by_id[i].kind == "suggestion"), key=lambda f: FIELDS.index(f.field)
    )
    for finding in picked:
        problem = _APPLY[finding.field](record, finding) if finding.target else "it has no place in the record yet"
        if problem:
            result.skipped.append({"id": finding.id, "reason": problem})
        else:
            result.applied.append(finding.id)
    return result


def _first_acquisition(record: dict[str, Any]) -> dict[str, Any] | None:
    acquisitions = _list(record, "image_acquisitions")
    return acquisitions[0] if acquisitions else None


def _link_components(record: dict[str, Any], slot: str, title: str) -> None:
    for component in _list(record, "components"):
        if not component.get(slot):
            component[slot] = [title]


def _apply_method(record: dict[str, Any], finding: Finding) -> str | None:
    acquisition = _first_acquisition(record)
    if acquisition is None:
        record["image_acquisitions"] = [{"title": "Imaging", "imaging_methods": [dict(finding.value)]}]
        _link_components(record, "component_image_acquisitions", "Imaging")
        return None
    methods = acquisition.setdefault("imaging_methods", [])
    if not isinstance(methods, list):
        return "the acquisition's imaging_methods is not a list"
    if all(_curie(str(m.get("id", ""))) != finding.value["id"] for m in methods if isinstance(m, dict)):
        methods.append(dict(finding.value))
    return None


def _apply_channels(record: dict[str, Any], finding: Finding) -> str | None:
    specimens = _list(record, "specimens")
    if specimens:
        if specimens[0].get("signal_channels"):
            return "the specimen declares channels already"
        specimens[0]["signal_channels"] = copy.deepcopy(finding.value)
        return None
    biosamples = _list(record, "biosamples")
    if not biosamples:
        return "a specimen needs a biosample: add one first"
    made = {
        "title": "Specimen",
        "specimen_biosamples": [biosamples[0].get("id") or biosamples[0].get("title")],
        "signal_channels": copy.deepcopy(finding.value),
    }
    record["specimens"] = [made]
    _link_components(record, "component_specimens", "Specimen")
    return None


def _apply_text(slot: str, join: bool) -> Callable[[dict[str, Any], Finding], str | None]:
    def fill(record: dict[str, Any], finding: Finding) -> str | None:
        acquisition = _first_acquisition(record)
        if acquisition is None:
            return "the record has no image acquisition (apply an imaging method too)"
        written = str(acquisition.get(slot) or "").strip()
        if written and not join:
            return f"the acquisition's {slot} is filled already"
        acquisition[slot] = f"{written.rstrip(';. ')}; {finding.value}" if written else str(finding.value)
        return None

    return fill


_APPLY: dict[str, Callable[[dict[str, Any], Finding], str | None]] = {
    "imaging_method": _apply_method,
    "channels": _apply_channels,
    "objective": _apply_text("imaging_instrument", join=False),
    "pixel_size": _apply_text("acquisition_parameters", join=True),
}


def counts(found: list[Finding]) -> dict[str, int]:
    tally = Counter(f.kind for f in found)
    return {kind: tally.get(kind, 0) for kind in ("suggestion", "conflict", "unreadable")}
