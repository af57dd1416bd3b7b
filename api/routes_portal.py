"""Pages for people that are not renderings of a record: the deposit form (validated by the same checks as every
deposit, each message shown next to its field) and its result."""

from __future__ import annotations

import contextlib
from typing import IO, Any, Callable, ContextManager

import yaml
from flask import Response, redirect, render_template, request
from werkzeug.datastructures import FileStorage

from api.context import services, settings
from api.openapi import HTML, TEXT, Blueprint, errors, responses
from api.schemas import DepositForm, FillForm, TokenForm
from catalog import identifiers
from catalog.deposits import Upload
from catalog.errors import CatalogError, NotFound, Unauthorized, ValidationFailed
from loaders.ontology_terms import imaging_method_term, organism_term

blp = Blueprint("portal", __name__, description="Pages for people: the deposit form")
#: a page for people, also when it tells them what went wrong
PAGE = {"content": {HTML: {"schema": TEXT}}}

#: Where a validation error about a record path is shown on the form.
FIELD_OF_PATH = [
    ("/authors/0/orcid", "author_orcid"),
    ("orcid", "author_orcid"),
    ("/authors", "author_name"),
    ("author", "author_name"),
    ("/title", "title"),
    ("title", "title"),
    ("/description", "description"),
    ("/license", "license"),
    ("release_date", "release_date"),
    ("/biosamples", "organism"),
    ("organism", "organism"),
    ("/image_acquisitions", "imaging_method"),
    ("imaging", "imaging_method"),
]


#: Pattern errors people can act on.
FRIENDLY = {
    "author_orcid": "not an ORCID: write https://orcid.org/ and four groups of four digits, e.g. https://orcid.org/0000-0002-1825-0097",
    "release_date": "not a date: write YYYY-MM-DD",
}


def _licences() -> list[str]:
    return list(services().archive.model.enums["LicenseEnum"])


def _form_page(form: dict[str, Any], errors: dict[str, list[str]], status: int = 200) -> Response:
    """The form, filled in again with what was sent, except the token: a secret is never written into a page."""
    kept = {name: value for name, value in form.items() if name != "token"}
    return Response(
        render_template("deposit.html", form=kept, errors=errors, licences=_licences(), settings=settings()),
        status=status,
        mimetype="text/html",
    )


@blp.route("/deposit", methods=["GET"])
@blp.response(200, TEXT, content_type=HTML)
@blp.doc(operationId="getDepositForm", summary="The deposit form (HTML)")
def deposit_form() -> Response:
    return _form_page({}, {})


def record_from_form(form: dict[str, str], file_list_name: str | None) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """A REMBI study record from the form's fields, and problems found before validation (unknown terms)."""
    errors: dict[str, list[str]] = {}
    record: dict[str, Any] = {
        "title": form.get("title", "").strip(),
        "description": form.get("description", "").strip(),
        "license": form.get("license") or "CC0-1.0",
        "authors": [],
    }
    keywords = [k.strip() for k in form.get("keywords", "").split(",") if k.strip()]
    if keywords:
        record["keywords"] = keywords
    if form.get("author_name", "").strip():
        author: dict[str, Any] = {"name": form["author_name"].strip(), "position": 1, "roles": ["submitter"]}
        if form.get("author_orcid", "").strip():
            author["orcid"] = form["author_orcid"].strip()
        record["authors"].append(author)
    component: dict[str, Any] = {"title": record["title"] or "Images"}
    organism = form.get("organism", "").strip()
    if organism:
        term = organism_term(organism)
        if term is None:
            errors.setdefault("organism", []).append(
                f"{organism!r} is not an organism the catalog knows (try its scientific name)"
            )
        else:
            record["biosamples"] = [
                {
                    "title": "Samples",
                    "biological_entity": form.get("biological_entity", "").strip() or organism,
                    "organisms": [term.as_record()],
                }
            ]
            component["component_biosamples"] = ["Samples"]
    method = form.get("imaging_method", "").strip()
    if method:
        term, _exact = imaging_method_term(method)
        if term is None:
            errors.setdefault("imaging_method", []).append(f"{method!r} is not an FBbi imaging method the catalog knows")
        else:
            record["image_acquisitions"] = [{"title": "Imaging", "imaging_methods": [term.as_record()]}]
            component["component_image_acquisitions"] = ["Imaging"]
    if file_list_name:
        component["file_list_name"] = file_list_name
    record["components"] = [component]
    return record, errors


def _place(error: dict[str, Any]) -> str:
    where = f"{error.get('field', '')} {error.get('focus', '')} {error.get('path', '')}".lower()
    if error.get("file") and error.get("file") != "study.yaml":
        return "file_list" if "listed" in str(error.get("message")) or error.get("line") else "files"
    for needle, field in FIELD_OF_PATH:
        if needle in where:
            return field
    return "general"


@blp.route("/deposit", methods=["POST"])
@blp.response(201, TEXT, content_type=HTML, description="Deposited: the study's accession, state and release date")
@blp.doc(
    operationId="submitDepositForm",
    summary="Submit the deposit form: validate, then finalize (HTML)",
    requestBody={
        "required": True,
        "content": {"multipart/form-data": {"schema": DepositForm}, "application/x-www-form-urlencoded": {"schema": DepositForm}},
    },
    responses=responses(
        {
            200: {"description": "With `step=fill`: the submission is kept open, and its fill-from-files page", **PAGE},
            "4XX": {"description": "Not deposited: the form again, each problem next to its field (401: the token)", **PAGE},
            503: {"description": "A read-only replica: the form again, saying so", **PAGE},
        },
        errors(413),
    ),
)
def deposit_submit() -> Response:
    form = {k: v for k, v in request.form.items()}
    if settings().read_only:
        return _form_page(form, {"general": ["this server is a read-only replica: deposit on the catalog's writer"]}, 503)
    errors: dict[str, list[str]] = {}
    deposits = services().deposits
    try:
        owner = services().archive.registry.owner_of_token(form.get("token", "").strip())
    except Unauthorized:
        return _form_page(form, {"token": ["this token is not valid (ask for one: bia token create NAME)"]}, 401)
    listing = request.files.get("file_list")
    record, errors = record_from_form(form, listing.filename if listing and listing.filename else None)

    def place_errors(report: dict) -> None:
        """Each validation message next to its field; the form's own errors stop the deposit too."""
        for error in report["errors"]:
            place = _place(error)
            message = (
                FRIENDLY.get(place, str(error.get("message")))
                if "does not match" in str(error.get("message"))
                else str(error.get("message"))
            )
            errors.setdefault(place, []).append(
                message + (f" ({error['value']})" if error.get("value") and place in ("file_list", "files") else "")
            )
        if errors:
            raise FormErrors("the form has errors")

    uploads = [Upload(u.filename, _opener(u)) for u in request.files.getlist("files") if u and u.filename]
    if form.get("step") == "fill":
        if errors:
            return _form_page(form, errors, 422)
        try:
            sub_id = deposits.stage(
                owner,
                ("study.yaml", yaml.safe_dump(record, sort_keys=False).encode()),
                file_lists=[(listing.filename, listing.stream)] if listing and listing.filename else [],
                uploads=uploads,
                release_date=form.get("release_date") or None,
            )
        except CatalogError as exc:
            return _form_page(form, _placed(exc), exc.status if 400 <= exc.status < 500 else 422)
        return _fill_page(sub_id, owner)
    try:
        outcome = deposits.deposit(
            owner,
            ("study.yaml", yaml.safe_dump(record, sort_keys=False).encode()),
            file_lists=[(listing.filename, listing.stream)] if listing and listing.filename else [],
            uploads=uploads,
            release_date=form.get("release_date") or None,
            check=place_errors,
        )
    except FormErrors:
        return _form_page(form, errors, 422)
    except CatalogError as exc:
        for place, messages in _placed(exc).items():
            errors.setdefault(place, []).extend(messages)
        return _form_page(form, errors, exc.status if 400 <= exc.status < 500 else 422)
    # stored (201), or kept by an outage and completing by itself (202: sending the form again would deposit twice)
    return _deposited(outcome.accession, 202 if outcome.kept else 201)


def _placed(exc: CatalogError) -> dict[str, list[str]]:
    """An error's messages by the form field each is shown next to."""
    placed: dict[str, list[str]] = {}
    for detail in exc.errors or [{"message": exc.message}]:
        placed.setdefault(_place(detail) if detail.get("field") else "general", []).append(
            str(detail.get("message", exc.message))
        )
    return placed


def _opener(upload: FileStorage) -> Callable[[], ContextManager[IO[bytes]]]:
    """A form upload's stream, opened for the deposit (werkzeug closes it with the request)."""
    return lambda: contextlib.nullcontext(upload.stream)


class FormErrors(CatalogError):
    """The deposit form's own errors (shown next to their fields), which stop a deposit before its finalize."""

    status = 422
    code = "form_errors"


def _deposited(accession: str, status: int) -> Response:
    """The page saying what became of a form deposit: stored (201), or kept and completing by itself (202: an outage
    cut its finalize off; sending the form again would deposit the study twice)."""
    row = services().archive.registry.study(accession)
    return Response(
        render_template(
            "deposited.html",
            accession=accession,
            url=identifiers.study_iri(settings().base_url, accession),
            state=row.state if row else "",
            release_date=row.release_date if row else "",
            files=row.file_count if row else 0,
            settings=settings(),
        ),
        status=status,
        mimetype="text/html",
    )


@blp.route("/my-deposits", methods=["GET"])
@blp.response(200, TEXT, content_type=HTML, description="The form asking for a token")
@blp.doc(operationId="getOwnDepositsForm", summary="Ask for a depositor's token, to list their studies and submissions (HTML)")
def my_deposits() -> Response:
    return _my_deposits()


@blp.route("/my-deposits", methods=["POST"])
@blp.response(200, TEXT, content_type=HTML, description="The depositor's studies and submissions")
@blp.doc(
    operationId="listOwnDeposits",
    summary="A depositor's studies (released and embargoed) and submissions, with their state (HTML)",
    requestBody={
        "required": True,
        "content": {"application/x-www-form-urlencoded": {"schema": TokenForm}, "multipart/form-data": {"schema": TokenForm}},
    },
    responses={401: {"description": "The token is not valid: the form again, saying so", **PAGE}},
)
def my_deposits_post() -> Response:
    return _my_deposits()


def _my_deposits() -> Response:
    studies = submissions = None
    error = None
    if request.method == "POST":
        registry = services().archive.registry
        try:
            owner = registry.owner_of_token(request.form.get("token", "").strip())
            studies = registry.studies(owner=owner)
            submissions = registry.submissions(owner)
        except Unauthorized:
            error = "this token is not valid"
    return Response(
        render_template("mine.html", studies=studies, submissions=submissions, error=error, settings=settings()),
        status=401 if error else 200,
        mimetype="text/html",
    )


# ---------------------------------------------------------------------- fill from files (no script needed)


def _fill_page(sub_id: str, owner: str | None, status: int = 200, **shown: Any) -> Response:
    """The "fill from files" page of a submission: with ``owner`` (a valid token was sent), its suggestions (to tick),
    conflicts and notes from the last validation, run now; without, the form asking for the token."""
    report = services().deposits.validate(sub_id, owner) if owner else None
    found = [w for w in (report or {}).get("warnings", []) if w.get("source") == "image_headers"]
    page = render_template(
        "fill.html",
        sub_id=sub_id,
        report=report,
        suggestions=[w for w in found if w.get("kind") == "suggestion"],
        conflicts=[w for w in found if w.get("kind") == "conflict"],
        notes=[w for w in found if w.get("kind") not in ("suggestion", "conflict")],
        settings=settings(),
        **{"applied": None, "skipped": None, "error": None, **shown},
    )
    return Response(page, status=status, mimetype="text/html")


def _fill_owner(sub_id: str) -> tuple[str | None, Response | None]:
    """The owner the sent token stands for, or the page saying why there is none (a replica, a wrong token, another
    depositor's or an unknown submission: all the same 404, so that nothing tells a submission exists)."""
    if settings().read_only:
        return None, _fill_page(sub_id, None, 503, error="this server is a read-only replica: deposit on the catalog's writer")
    try:
        owner = services().archive.registry.owner_of_token(request.form.get("token", "").strip())
        services().archive.registry.submission(sub_id, owner)
    except Unauthorized:
        return None, _fill_page(sub_id, None, 401, error="this token is not valid")
    except NotFound:
        return None, _fill_page(sub_id, None, 404, error="you have no submission of this id")
    return owner, None


#: what the fill pages answer when they cannot show a submission
FILL_REFUSED = {
    401: {"description": "The token is not valid: the page asks for it again", **PAGE},
    404: {"description": "No submission of this id for this token", **PAGE},
    409: {"description": "The submission is not open any more (or its metadata is PageTab)", **PAGE},
    503: {"description": "A read-only replica", **PAGE},
}
FILL_BODY = {
    "required": True,
    "content": {"application/x-www-form-urlencoded": {"schema": FillForm}, "multipart/form-data": {"schema": FillForm}},
}


@blp.route("/deposit/<string:sub_id>/fill", methods=["GET"])
@blp.response(200, TEXT, content_type=HTML, description="The page asking for the token (and saying what was filled in)")
@blp.doc(operationId="getFillFromFiles", summary="Fill a submission's empty fields from its files: ask for the token (HTML)")
def fill_form(sub_id: str) -> Response:
    applied, skipped = request.args.get("applied", ""), request.args.get("skipped", "")
    return _fill_page(
        sub_id,
        None,
        applied=int(applied) if applied.isdigit() else None,
        skipped=int(skipped) if skipped.isdigit() else None,
    )


@blp.route("/deposit/<string:sub_id>/fill", methods=["POST"])
@blp.response(200, TEXT, content_type=HTML, description="What the files say: suggestions to tick, conflicts, notes")
@blp.doc(
    operationId="fillFromFiles",
    summary="Show what a submission's files say (suggestions, conflicts), or fill the chosen suggestions in (HTML)",
    requestBody=FILL_BODY,
    responses={303: {"description": "Filled in: back to the page, which says how many", **PAGE}, **FILL_REFUSED},
)
def fill_post(sub_id: str) -> Response:
    owner, refused = _fill_owner(sub_id)
    if refused is not None or owner is None:
        return refused  # type: ignore[return-value]
    if "apply" not in request.form:
        return _fill_page(sub_id, owner)
    try:
        done = services().deposits.apply_suggestions(sub_id, owner, request.form.getlist("suggestion"))
    except CatalogError as exc:
        return _fill_page(sub_id, None, exc.status if 400 <= exc.status < 500 else 422, error=exc.message)
    url = f"{settings().base_url}/deposit/{sub_id}/fill?applied={len(done['applied'])}&skipped={len(done['skipped'])}"
    return redirect(url, 303)  # type: ignore[return-value]  # a werkzeug Response, as Flask sends it


@blp.route("/deposit/<string:sub_id>/finalize", methods=["POST"])
@blp.response(201, TEXT, content_type=HTML, description="Deposited: the study's accession, state and release date")
@blp.doc(
    operationId="finalizeFromFillPage",
    summary="Validate and deposit a submission made by the form's fill-from-files step (HTML)",
    requestBody=FILL_BODY,
    responses={422: {"description": "Not valid yet: the page again, with the problems", **PAGE}, **FILL_REFUSED},
)
def fill_finalize(sub_id: str) -> Response:
    owner, refused = _fill_owner(sub_id)
    if refused is not None or owner is None:
        return refused  # type: ignore[return-value]
    try:
        accession = services().deposits.finalize(sub_id, owner)
    except ValidationFailed:
        return _fill_page(sub_id, owner, 422, error="the deposit is not valid yet: see what is still to do below")
    except CatalogError as exc:  # not open any more, or an outage (then sending it again takes the finalize up)
        return _fill_page(sub_id, None, exc.status if 400 <= exc.status < 600 else 422, error=exc.message)
    return _deposited(accession, 201)
