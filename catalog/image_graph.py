"""What image headers put in a study's graph: an ``Image`` node per image (up to a cap) and ``ImageSummary`` nodes.

Every file's headers count in the summaries: one for the study and one per component (dimensions and pixel-size
ranges, formats, pixel types, channels seen). Image nodes, with their channels, instrument and objective, are
written for the first :attr:`ImageGraph.cap` images in file-table order; the others stay in the file table's
``image.*`` columns. Every node written here says ``rembi:readFromHeaders true``, which is how
:func:`replace_update` finds and replaces them when the headers are read again (the depositor's own images are
never touched). IRIs are deterministic: an image's is the study's ``images/`` plus a digest of its file's path and
its index in the file, so reading the same files twice writes the same graph.

Each image's representations (its uploaded file and, from the results of the ``previews`` and ``ome_zarr`` jobs,
its thumbnails, static view and OME-Zarr stores: :mod:`catalog.image_representations`) are fragment nodes of the
image (``…#representation-<name>``), so they are replaced with it; the summaries name up to four representative
images (the first with a thumbnail), whose thumbnails the study's record shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from rdflib import RDF, URIRef

from catalog import identifiers, image_representations, zarr_folders
from catalog.image_columns import channel_label, micrometres
from catalog.rembi_model import RembiModel
from catalog.rembi_rdf import literal_for

#: distinct channel names a summary keeps
MAX_CHANNEL_NAMES = 50
#: distinct formats / pixel types a summary keeps
MAX_VALUES = 20
#: the longest text value taken from a header
MAX_TEXT = 500
READ_FROM_HEADERS = "https://w3id.org/rembi/readFromHeaders"

Triple = tuple[URIRef, URIRef, Any]
_MEASURED = [f"size_{axis}" for axis in "xyzct"] + ["physical_size_x"]
_LOW = {name: f"min_{name}" for name in _MEASURED}
_HIGH = {name: f"max_{name}" for name in _MEASURED}


def dimensionality(series: Mapping[str, Any]) -> str:
    """``2D``, ``3D``, ``2D+time`` or ``3D+time``."""
    kind = "3D" if (series.get("size_z") or 1) > 1 else "2D"
    return kind + "+time" if (series.get("size_t") or 1) > 1 else kind


@dataclass
class Summary:
    """The headers of a set of files taken together."""

    files_read: int = 0
    files_unreadable: int = 0
    image_count: int = 0
    formats: dict[str, None] = field(default_factory=dict)
    pixel_types: dict[str, None] = field(default_factory=dict)
    dimensionalities: dict[str, None] = field(default_factory=dict)
    channel_names: dict[str, None] = field(default_factory=dict)
    extremes: dict[str, float] = field(default_factory=dict)
    #: images with a thumbnail that show what the files hold (at most REPRESENTATIVES)
    representatives: list[str] = field(default_factory=list)

    def add(self, result: Mapping[str, Any]) -> None:
        status = result.get("status")
        if status not in ("ok", "unreadable"):
            return  # unsupported (not an image) or not read: no image file to count
        self.files_read += 1
        if status == "unreadable":
            self.files_unreadable += 1
            return
        _keep(self.formats, result.get("format"), MAX_VALUES)
        for series in result.get("series") or []:
            self.image_count += 1
            _keep(self.pixel_types, series.get("pixel_type"), MAX_VALUES)
            self.dimensionalities[dimensionality(series)] = None
            for channel in series.get("channels") or []:
                _keep(self.channel_names, channel_label(channel), MAX_CHANNEL_NAMES)
            for axis in "xyzct":
                self._extend(f"size_{axis}", series.get(f"size_{axis}"))
            self._extend("physical_size_x", micrometres(series.get("physical_size_x")))

    def _extend(self, name: str, value: Any) -> None:
        if value is None or value.__class__ not in (int, float):
            return
        extremes, low, high = self.extremes, _LOW[name], _HIGH[name]
        if low not in extremes or value < extremes[low]:
            extremes[low] = value
        if high not in extremes or value > extremes[high]:
            extremes[high] = value

    def as_slots(self) -> dict[str, Any]:
        """The summary as ``ImageSummary`` slot values."""
        slots: dict[str, Any] = {
            "files_read": self.files_read,
            "files_unreadable": self.files_unreadable,
            "image_count": self.image_count,
            "image_formats": list(self.formats),
            "pixel_types": list(self.pixel_types),
            "dimensionalities": sorted(self.dimensionalities),
            "channel_names": list(self.channel_names),
            "representative_images": list(self.representatives),
            "read_from_headers": True,
        }
        if self.image_count:
            slots["has_time_series"] = self.extremes.get("max_size_t", 1) > 1
        for name in ("min_size_x", "max_size_x", "min_size_y", "max_size_y", "max_size_z", "max_size_c", "max_size_t"):
            if name in self.extremes:
                slots[name] = int(self.extremes[name])
        for name in ("min_physical_size_x", "max_physical_size_x"):
            if name in self.extremes:
                slots[name] = self.extremes[name]
        return slots


def _keep(values: dict[str, None], value: Any, limit: int) -> None:
    if isinstance(value, str) and value.strip() and len(values) < limit:
        values.setdefault(value.strip()[:MAX_TEXT], None)


class ImageGraph:
    """Collects the image triples of one study while its files' header results are fed in (:meth:`add`)."""

    def __init__(self, model: RembiModel, study: str, cap: int) -> None:
        self.model = model
        self.study = study
        self.cap = cap
        self.triples: list[Triple] = []
        self.images_written = 0
        self.study_summary = Summary()
        self.component_summaries: dict[str, Summary] = {}

    def add(
        self,
        path: str,
        size: int | None,
        result: Mapping[str, Any],
        component: str | None = None,
        derived: Mapping[str, Any] | None = None,
    ) -> None:
        """Count one file's header result in the summaries and, under the cap, describe its images (with their
        representations from ``derived``: job kind → the file's latest result)."""
        self.study_summary.add(result)
        if component:
            self.component_summaries.setdefault(component, Summary()).add(result)
        if result.get("status") != "ok":
            return
        file_iri = identifiers.file_iri(self.study, path, size)
        for series in result.get("series") or []:
            if self.images_written >= self.cap:
                return
            self._image(path, file_iri, result, series, component)
            self._representations(path, file_iri, size, result, series, component, derived or {})
            self.images_written += 1

    def image_iri(self, path: str, index: int) -> str:
        return identifiers.image_iri(self.study, path, index)

    # ---------------------------------------------------------------- triples

    def _slot(self, subject: URIRef, cls: str, slot: str, value: Any) -> None:
        if value is None or value == "" or value == []:
            return
        info = self.model.classes[cls].slots[slot]
        for item in value if isinstance(value, list) else [value]:
            if info.kind in ("object", "iri"):
                self.triples.append((subject, URIRef(info.uri), URIRef(item)))
            else:
                text = item[:MAX_TEXT] if isinstance(item, str) else item
                self.triples.append((subject, URIRef(info.uri), literal_for(text, info.datatype)))

    def _typed(self, subject: URIRef, cls: str) -> None:
        self.triples.append((subject, RDF.type, URIRef(self.model.classes[cls].uri)))

    def _image(
        self, path: str, file_iri: str, result: Mapping[str, Any], series: Mapping[str, Any], component: str | None
    ) -> None:
        index = int(series.get("index") or 0)
        node = URIRef(self.image_iri(path, index))
        self._typed(node, "Image")
        name, shown = series.get("name"), zarr_folders.shown(path)
        title = shown if not name and len(result.get("series") or []) == 1 else f"{shown} [{name or index}]"
        sizes = {axis: series.get(f"size_{axis}") for axis in "xyzct"}
        values = {
            "title": title,
            "image_files": file_iri,
            "image_component": component,
            "image_format": result.get("format"),
            "dimensions": " ".join(f"{axis}={value}" for axis, value in sizes.items() if value is not None),
            **{f"size_{axis}": value for axis, value in sizes.items()},
            "dimension_order": series.get("axes"),
            "pixel_type": series.get("pixel_type"),
            "physical_size_x": micrometres(series.get("physical_size_x")),
            "physical_size_y": micrometres(series.get("physical_size_y")),
            "physical_size_z": micrometres(series.get("physical_size_z")),
            "time_increment": _seconds(series.get("time_increment")),
            "acquisition_date": series.get("acquisition_date"),
            "read_from_headers": True,
        }
        for slot, value in values.items():
            self._slot(node, "Image", slot, value)
        for position, channel in enumerate(series.get("channels") or []):
            self._channel(node, position, channel)
        instrument = series.get("instrument")
        if isinstance(instrument, Mapping):
            self._instrument(node, instrument)

    def _representations(
        self,
        path: str,
        file_iri: str,
        size: int | None,
        result: Mapping[str, Any],
        series: Mapping[str, Any],
        component: str | None,
        derived: Mapping[str, Any],
    ) -> None:
        index = int(series.get("index") or 0)
        image = self.image_iri(path, index)
        made = image_representations.representations(self.study, image, file_iri, result.get("format"), size, index, derived)
        for name, values in made:
            node = URIRef(f"{image}#representation-{name}")
            self._slot(URIRef(image), "Image", "image_representations", str(node))
            self._typed(node, "ImageRepresentation")
            for slot, value in values.items():
                self._slot(node, "ImageRepresentation", slot, value)
        if image_representations.has_thumbnail(derived.get(image_representations.PREVIEW_KIND), index):
            summaries = [self.study_summary] + ([self.component_summaries[component]] if component else [])
            for summary in summaries:
                if len(summary.representatives) < image_representations.REPRESENTATIVES:
                    summary.representatives.append(image)

    def _channel(self, image: URIRef, position: int, channel: Mapping[str, Any]) -> None:
        node = URIRef(f"{image}#channel-{position}")
        self._slot(image, "Image", "image_channels", str(node))
        self._typed(node, "ImageChannel")
        for slot, value in {
            "channel_name": channel.get("name"),
            "fluorophore": channel.get("fluorophore"),
            "excitation_wavelength": _nanometres(channel.get("excitation_wavelength")),
            "emission_wavelength": _nanometres(channel.get("emission_wavelength")),
            "acquisition_mode": channel.get("acquisition_mode"),
            "illumination_type": channel.get("illumination_type"),
            "contrast_method": channel.get("contrast_method"),
        }.items():
            self._slot(node, "ImageChannel", slot, value)

    def _instrument(self, image: URIRef, instrument: Mapping[str, Any]) -> None:
        detector = next(iter(instrument.get("detectors") or []), None) or {}
        described = {
            "manufacturer": instrument.get("microscope_manufacturer"),
            "model": instrument.get("microscope_model"),
            "microscope_type": instrument.get("microscope_type"),
            "detector_model": detector.get("model"),
            "detector_type": detector.get("type"),
        }
        if any(v for v in described.values()):
            node = URIRef(f"{image}#instrument")
            self._slot(image, "Image", "image_instrument", str(node))
            self._typed(node, "Instrument")
            for slot, value in described.items():
                self._slot(node, "Instrument", slot, value)
        objective = instrument.get("objective")
        if isinstance(objective, Mapping) and any(objective.values()):
            node = URIRef(f"{image}#objective")
            self._slot(image, "Image", "image_objective", str(node))
            self._typed(node, "Objective")
            for slot, value in {
                "manufacturer": objective.get("manufacturer"),
                "model": objective.get("model"),
                "lens_na": objective.get("lens_na"),
                "nominal_magnification": objective.get("nominal_magnification"),
                "immersion": objective.get("immersion"),
            }.items():
                self._slot(node, "Objective", slot, value)

    def summaries(self) -> list[Triple]:
        """The summary nodes: the study's, and each component's."""
        owners = [(self.study, "Study", self.study_summary)]
        owners += [(component, "StudyComponent", summary) for component, summary in sorted(self.component_summaries.items())]
        out: list[Triple] = []
        saved, self.triples = self.triples, out
        try:
            for owner, cls, summary in owners:
                if not summary.files_read:
                    continue
                node = URIRef(f"{owner}#image-summary")
                self._slot(URIRef(owner), cls, "image_summary", str(node))
                self._typed(node, "ImageSummary")
                for slot, value in summary.as_slots().items():
                    self._slot(node, "ImageSummary", slot, value)
        finally:
            self.triples = saved
        return out

    def all_triples(self) -> list[Triple]:
        return self.triples + self.summaries()


def _nanometres(quantity: Mapping[str, Any] | None) -> float | None:
    si = (quantity or {}).get("si")
    return float(f"{si * 1e9:.6g}") if isinstance(si, (int, float)) and si > 0 else None


def _seconds(quantity: Mapping[str, Any] | None) -> float | None:
    si = (quantity or {}).get("si")
    return float(f"{si:.6g}") if isinstance(si, (int, float)) and si >= 0 else None


def replace_update(graph: str, triples: list[Triple]) -> str:
    """A SPARQL Update that removes what headers put in ``graph`` before (nodes saying ``readFromHeaders true``,
    their channel, instrument and objective nodes, and the links to them) and inserts ``triples``."""
    g = f"<{graph}>"
    marked = f"?s <{READ_FROM_HEADERS}> true"
    parts = [
        f"DELETE {{ GRAPH {g} {{ ?x ?q ?s }} }} WHERE {{ GRAPH {g} {{ {marked} . ?x ?q ?s }} }}",
        f"DELETE {{ GRAPH {g} {{ ?n ?p ?o }} }} WHERE {{ GRAPH {g} {{ {marked} . ?s ?r ?n . ?n ?p ?o"
        f' FILTER(isIRI(?n) && STRSTARTS(STR(?n), CONCAT(STR(?s), "#"))) }} }}',
        f"DELETE {{ GRAPH {g} {{ ?s ?p ?o }} }} WHERE {{ GRAPH {g} {{ {marked} . ?s ?p ?o }} }}",
    ]
    if triples:
        body = "\n".join(f"{s.n3()} {p.n3()} {o.n3()} ." for s, p, o in triples)
        parts.append(f"INSERT DATA {{ GRAPH {g} {{\n{body}\n}} }}")
    return " ;\n".join(parts)
