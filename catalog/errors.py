"""The catalog's exception hierarchy; the API turns each into one JSON error shape."""

from __future__ import annotations

from typing import Any


class CatalogError(Exception):
    """Base of every error a user of the catalog can cause.

    ``status`` is the HTTP status the API answers with, ``code`` a short machine-readable
    name, ``errors`` a list of details (each a dict naming e.g. ``file``, ``line``, ``node``,
    ``field`` and ``message``).
    """

    status: int = 400
    code: str = "bad_request"
    #: seconds a client should wait before trying again (sent as ``Retry-After``); None: no advice
    retry_after: int | None = None

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = list(errors or [])

    def to_dict(self) -> dict[str, Any]:
        """The one error shape: ``{code, status, message, errors}``."""
        return {"code": self.code, "status": self.status, "message": self.message, "errors": self.errors}


class NotFound(CatalogError):
    status = 404
    code = "not_found"


class Conflict(CatalogError):
    status = 409
    code = "conflict"


class ValidationFailed(CatalogError):
    status = 422
    code = "validation_failed"


class Forbidden(CatalogError):
    status = 403
    code = "forbidden"


class Unauthorized(CatalogError):
    status = 401
    code = "unauthorized"


class PreconditionFailed(CatalogError):
    status = 412
    code = "precondition_failed"


def is_transient(exc: BaseException) -> bool:
    """Whether a failure is an outage (a store or server unreachable, busy or timing out) that retrying later may
    get past, as opposed to something wrong with the work itself."""
    if isinstance(exc, CatalogError):
        return exc.status == 503
    return isinstance(exc, (ConnectionError, TimeoutError))
