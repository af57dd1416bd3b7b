"""OAI-PMH 2.0 at ``/oai``: harvesters copy the catalog's released studies (``oai_dc`` and ``oai_datacite``).

All six verbs, GET or POST (form-encoded). Errors are the protocol's own (``<error code="badArgument">`` in a 200
answer, as OAI-PMH requires), not the catalog's JSON error shape. Datestamps are UTC to the second
(``YYYY-MM-DDThh:mm:ssZ``; ``from``/``until`` take that or a day). Lists come a page (``BIA_OAI_PAGE_SIZE``) at a
time: the resumption token is stateless and opaque (the request's arguments and the last item sent, which keeps a
harvest consistent while studies change: a study changed meanwhile gets a later datestamp, so it comes later in
the list). Withdrawn studies are deleted records, kept persistently; embargoed studies are never shown. The items
and their sets: :mod:`catalog.oai_records`; ``oai_datacite`` is the DataCite record of
``/studies/{accession}.datacite.xml`` (the kernel-4 ``resource``, unwrapped).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlsplit

from flask import Response, current_app, request
from lxml import etree

from api.citation_records import public_metadata
from api.context import services, settings
from api.openapi import TEXT, Blueprint, errors, formats, responses
from catalog import datacite, identifiers
from catalog.errors import NotFound
from catalog.oai_records import OAI_DC, OaiCatalog, OaiItem, dublin_core, in_set, utc_seconds

blp = Blueprint("oai", __name__, description="OAI-PMH 2.0: harvesting the released studies' metadata")

OAI = "http://www.openarchives.org/OAI/2.0/"
_XSI = "http://www.w3.org/2001/XMLSchema-instance"
GRANULARITY = "YYYY-MM-DDThh:mm:ssZ"
#: verb → (required arguments, optional ones); ``resumptionToken`` is exclusive
VERBS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "Identify": (frozenset(), frozenset()),
    "ListMetadataFormats": (frozenset(), frozenset({"identifier"})),
    "ListSets": (frozenset(), frozenset({"resumptionToken"})),
    "ListIdentifiers": (frozenset({"metadataPrefix"}), frozenset({"from", "until", "set", "resumptionToken"})),
    "ListRecords": (frozenset({"metadataPrefix"}), frozenset({"from", "until", "set", "resumptionToken"})),
    "GetRecord": (frozenset({"identifier", "metadataPrefix"}), frozenset()),
}
#: metadataPrefix → (schema, namespace)
FORMATS = {
    "oai_dc": ("http://www.openarchives.org/OAI/2.0/oai_dc.xsd", OAI_DC),
    "oai_datacite": (datacite.SCHEMA_LOCATION, datacite.NAMESPACE),
}
#: the largest page BIA_OAI_PAGE_SIZE can ask for
MAX_PAGE = 1000


class OaiError(Exception):
    """An OAI-PMH error condition: its code and a message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Window:
    """What a list request selects: a metadata format, a set, a datestamp range (seconds, inclusive)."""

    prefix: str | None
    set: str | None
    start: int | None
    end: int | None
    granularity: str | None

    def selects(self, item: OaiItem) -> bool:
        stamp = int(item.datestamp)
        return (
            (self.start is None or stamp >= self.start)
            and (self.end is None or stamp <= self.end)
            and (self.set is None or in_set(item, self.set))
        )


#: the protocol's arguments (which a verb takes, and which it needs: :data:`VERBS`)
ARGUMENTS = {
    "verb": "Identify, ListMetadataFormats, ListSets, ListIdentifiers, ListRecords or GetRecord",
    "identifier": "a record's identifier (oai:{host}:{accession})",
    "metadataPrefix": "oai_dc or oai_datacite",
    "from": "UTC datestamp (YYYY-MM-DD or YYYY-MM-DDThh:mm:ssZ): records changed since",
    "until": "UTC datestamp, same granularity as from: records changed until",
    "set": "a setSpec (source:…, organism:…, method:… or one of the three)",
    "resumptionToken": "the token of the previous page (alone with the verb)",
}
FORM = {
    "type": "object",
    "properties": {name: {"type": "string", "description": text} for name, text in ARGUMENTS.items()},
}
OAI_ANSWERS = responses(formats(200, "text/xml"), errors(413))
SUMMARY = "OAI-PMH 2.0: Identify, ListMetadataFormats, ListSets, ListIdentifiers, ListRecords, GetRecord"
ANSWER = "An OAI-PMH response (its errors too, as the protocol says: a 200 with <error code=…>)"


@blp.route("/oai", methods=["GET"])
@blp.response(200, TEXT, content_type="text/xml", description=ANSWER)
@blp.doc(
    operationId="oaiPmh",
    summary=SUMMARY,
    parameters=[
        {"name": name, "in": "query", "required": name == "verb", "schema": {"type": "string"}, "description": text}
        for name, text in ARGUMENTS.items()
    ],
    responses=OAI_ANSWERS,
)
def oai() -> Response:
    return answer(request.args)


@blp.route("/oai", methods=["POST"])
@blp.response(200, TEXT, content_type="text/xml", description=ANSWER)
@blp.doc(
    operationId="oaiPmhPost",
    summary=SUMMARY + " (arguments form-encoded)",
    requestBody={"required": True, "content": {"application/x-www-form-urlencoded": {"schema": FORM}}},
    responses=OAI_ANSWERS,
)
def oai_post() -> Response:
    return answer(request.form)


def answer(arguments: Any) -> Response:
    """The OAI-PMH response to a request's arguments (a MultiDict)."""
    root = _envelope()
    request_element = root.find(f"{{{OAI}}}request")
    try:
        verb, args = _arguments(arguments)
        for name, value in [("verb", verb), *sorted(args.items())]:
            request_element.set(name, value)  # type: ignore[union-attr]
        root.append(HANDLERS[verb](args))
    except OaiError as error:
        if error.code in ("badVerb", "badArgument"):
            request_element.attrib.clear()  # type: ignore[union-attr]
        etree.SubElement(root, f"{{{OAI}}}error", code=error.code).text = str(error)
    body = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return Response(body, content_type="text/xml; charset=utf-8")


def _envelope() -> etree._Element:
    root = etree.Element(f"{{{OAI}}}OAI-PMH", nsmap={None: OAI, "xsi": _XSI})  # type: ignore[dict-item]
    root.set(f"{{{_XSI}}}schemaLocation", f"{OAI} http://www.openarchives.org/OAI/2.0/OAI-PMH.xsd")
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    etree.SubElement(root, f"{{{OAI}}}responseDate").text = now
    etree.SubElement(root, f"{{{OAI}}}request").text = base_url()
    return root


def base_url() -> str:
    return f"{settings().base_url.rstrip('/')}/oai"


def _arguments(given: Any) -> tuple[str, dict[str, str]]:
    """The verb and its arguments, each checked: one value each, the verb's own, the required ones present."""
    verbs = given.getlist("verb")
    if len(verbs) != 1 or verbs[0] not in VERBS:
        raise OaiError("badVerb", "verb must be given once, one of " + ", ".join(VERBS))
    verb = verbs[0]
    required, optional = VERBS[verb]
    args: dict[str, str] = {}
    for name, values in given.lists():
        if name == "verb":
            continue
        if name not in required | optional:
            raise OaiError("badArgument", f"{verb} takes no argument {name!r}")
        if len(values) != 1:
            raise OaiError("badArgument", f"{name} is given more than once")
        args[name] = values[0]
    if "resumptionToken" in args and len(args) > 1:
        raise OaiError("badArgument", "resumptionToken is exclusive: send it alone with the verb")
    missing = sorted(required - set(args)) if "resumptionToken" not in args else []
    if missing:
        raise OaiError("badArgument", f"{verb} needs {', '.join(missing)}")
    return verb, args


def catalog() -> OaiCatalog:
    made = current_app.extensions.get("bia.oai")
    if made is None:
        made = current_app.extensions.setdefault("bia.oai", OaiCatalog(services().archive.state, settings().base_url))
    return made


def oai_identifier(accession: str) -> str:
    return f"oai:{urlsplit(settings().base_url).hostname}:{accession}"


def _item_of(identifier: str) -> OaiItem:
    prefix = oai_identifier("")
    item = catalog().item(identifier[len(prefix) :]) if identifier.startswith(prefix) else None
    if item is None:
        raise OaiError("idDoesNotExist", f"no record {identifier}")
    return item


def _sub(parent: etree._Element, name: str, text: str | None = None, **attributes: str) -> etree._Element:
    element = etree.SubElement(parent, f"{{{OAI}}}{name}", attributes)
    if text is not None:
        element.text = text
    return element


def identify(args: dict[str, str]) -> etree._Element:
    element = etree.Element(f"{{{OAI}}}Identify")
    _sub(element, "repositoryName", settings().catalog_name)
    _sub(element, "baseURL", base_url())
    _sub(element, "protocolVersion", "2.0")
    _sub(element, "adminEmail", settings().admin_email)
    _sub(element, "earliestDatestamp", utc_seconds(catalog().earliest()))
    _sub(element, "deletedRecord", "persistent")
    _sub(element, "granularity", GRANULARITY)
    return element


def list_metadata_formats(args: dict[str, str]) -> etree._Element:
    if "identifier" in args:
        _item_of(args["identifier"])
    element = etree.Element(f"{{{OAI}}}ListMetadataFormats")
    for prefix, (schema, namespace) in FORMATS.items():
        fmt = _sub(element, "metadataFormat")
        _sub(fmt, "metadataPrefix", prefix)
        _sub(fmt, "schema", schema)
        _sub(fmt, "metadataNamespace", namespace)
    return element


def list_sets(args: dict[str, str]) -> etree._Element:
    offset = 0
    if "resumptionToken" in args:
        offset = _token(args["resumptionToken"], "ListSets")["o"]
    every = catalog().sets()
    page = every[offset : offset + page_size()]
    element = etree.Element(f"{{{OAI}}}ListSets")
    for spec, name in page:
        entry = _sub(element, "set")
        _sub(entry, "setSpec", spec)
        _sub(entry, "setName", name)
    if offset + len(page) < len(every) or offset:
        following = offset + len(page)
        token = _issue({"v": "ListSets", "o": following}) if following < len(every) else ""
        _sub(element, "resumptionToken", token, completeListSize=str(len(every)), cursor=str(offset))
    return element


def list_identifiers(args: dict[str, str]) -> etree._Element:
    return _list("ListIdentifiers", args)


def list_records(args: dict[str, str]) -> etree._Element:
    return _list("ListRecords", args)


def get_record(args: dict[str, str]) -> etree._Element:
    prefix = _prefix(args["metadataPrefix"])
    item = _item_of(args["identifier"])
    element = etree.Element(f"{{{OAI}}}GetRecord")
    _record(element, item, prefix)
    return element


def _prefix(prefix: str) -> str:
    if prefix not in FORMATS:
        raise OaiError("cannotDisseminateFormat", f"no metadata format {prefix!r}; available: {', '.join(FORMATS)}")
    return prefix


def _list(verb: str, args: dict[str, str]) -> etree._Element:
    """A page of headers (or records) and, when more follow, the token for the next page."""
    if "resumptionToken" in args:
        state = _token(args["resumptionToken"], verb)
        window, after, cursor = _window(state.get("w", {})), tuple(state.get("a", ())), int(state.get("n", 0))
    else:
        window, after, cursor = _window(args), (), 0
    prefix = _prefix(window.prefix or "")
    matching = [item for item in catalog().items() if window.selects(item)]
    if not matching:
        raise OaiError("noRecordsMatch", "no record matches these arguments")
    rest = [item for item in matching if not after or (int(item.datestamp), item.accession) > (after[0], after[1])]
    page = rest[: page_size()]
    element = etree.Element(f"{{{OAI}}}{verb}")
    for item in page:
        if verb == "ListIdentifiers":
            _header(element, item)
        else:
            _record(element, item, prefix)
    if cursor or len(page) < len(rest):
        token = ""
        if len(page) < len(rest):
            last = page[-1]
            state = {"v": verb, "w": _window_args(window), "a": [int(last.datestamp), last.accession], "n": cursor + len(page)}
            token = _issue(state)
        _sub(element, "resumptionToken", token, completeListSize=str(len(matching)), cursor=str(cursor))
    return element


def page_size() -> int:
    return max(1, min(MAX_PAGE, settings().oai_page_size))


def _window(args: dict[str, Any]) -> Window:
    start, start_kind = _datestamp(args.get("from"), "from", end=False)
    end, end_kind = _datestamp(args.get("until"), "until", end=True)
    if start_kind and end_kind and start_kind != end_kind:
        raise OaiError("badArgument", "from and until must have the same granularity")
    if start is not None and end is not None and start > end:
        raise OaiError("badArgument", "from is later than until")
    return Window(args.get("metadataPrefix"), args.get("set"), start, end, start_kind or end_kind)


def _window_args(window: Window) -> dict[str, Any]:
    """A window as the arguments that select it (seconds granularity), for a resumption token."""
    out: dict[str, Any] = {"metadataPrefix": window.prefix}
    if window.set is not None:
        out["set"] = window.set
    if window.start is not None:
        out["from"] = utc_seconds(window.start)
    if window.end is not None:
        out["until"] = utc_seconds(window.end)
    return out


def _datestamp(text: str | None, name: str, *, end: bool) -> tuple[int | None, str | None]:
    """A ``from``/``until`` in seconds since the epoch and its granularity (a day ``until`` covers the whole day)."""
    if text is None:
        return None, None
    for pattern, kind in (("%Y-%m-%dT%H:%M:%SZ", "seconds"), ("%Y-%m-%d", "day")):
        try:
            parsed = dt.datetime.strptime(text, pattern).replace(tzinfo=dt.timezone.utc)
        except ValueError:
            continue
        if len(text) != (20 if kind == "seconds" else 10):
            break  # strptime takes one-digit months and days; the protocol does not
        stamp = int(parsed.timestamp())
        return (stamp + 86399 if end and kind == "day" else stamp), kind
    raise OaiError("badArgument", f"{name} must be a UTC date (YYYY-MM-DD) or time ({GRANULARITY}), not {text!r}")


def _issue(state: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode("utf-8")).decode("ascii").rstrip("=")


def _token(token: str, verb: str) -> dict[str, Any]:
    """The state a resumption token carries, if this repository issued it for ``verb``; else badResumptionToken."""
    try:
        state = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        valid = isinstance(state, dict) and state.get("v") == verb
        if valid and verb != "ListSets":
            after, window = state.get("a"), state.get("w")
            valid = (
                isinstance(after, list)
                and len(after) == 2
                and isinstance(after[0], int)
                and isinstance(after[1], str)
                and isinstance(window, dict)
                and isinstance(state.get("n"), int)
            )
            if valid:
                _window(window)
        elif valid:
            valid = isinstance(state.get("o"), int) and state["o"] >= 0
    except (ValueError, binascii.Error, UnicodeDecodeError, OaiError):
        valid = False
    if not valid:
        raise OaiError("badResumptionToken", "the resumption token is not one this repository issued for " + verb)
    return state


def _header(parent: etree._Element, item: OaiItem) -> etree._Element:
    header = _sub(parent, "header", **({"status": "deleted"} if item.deleted else {}))
    _sub(header, "identifier", oai_identifier(item.accession))
    _sub(header, "datestamp", utc_seconds(item.datestamp))
    for spec in item.sets:
        _sub(header, "setSpec", spec)
    return header


def _record(parent: etree._Element, item: OaiItem, prefix: str) -> None:
    record = _sub(parent, "record")
    _header(record, item)
    if item.deleted:
        return
    try:
        meta = public_metadata(item.accession)
    except NotFound:  # withdrawn since the list was read
        record.find(f"{{{OAI}}}header").set("status", "deleted")  # type: ignore[union-attr]
        return
    landing = identifiers.study_iri(settings().base_url, item.accession)
    body = dublin_core(meta, landing) if prefix == "oai_dc" else datacite.datacite_resource(meta, settings().catalog_name)
    _sub(record, "metadata").append(body)


HANDLERS: dict[str, Callable[[dict[str, str]], etree._Element]] = {
    "Identify": identify,
    "ListMetadataFormats": list_metadata_formats,
    "ListSets": list_sets,
    "ListIdentifiers": list_identifiers,
    "ListRecords": list_records,
    "GetRecord": get_record,
}
