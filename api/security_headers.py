"""Security headers of every answer: ``nosniff`` and no framing everywhere, and a Content-Security-Policy that lets a
page load nothing from elsewhere.

The portal's pages run no script: their policy allows only their own inline stylesheet (by its hash, taken from
the templates when the app is built), images from this site and forms posted here. The Swagger UI page (``/docs``)
runs the bundle served from ``/static/swagger-ui/`` and one inline script marked with a per-request nonce
(:func:`csp_nonce`); nothing else does. Any other answer (JSON, RDF, files) gets a policy that loads nothing and
sandboxes it, so a file a depositor uploaded can never run script on this site.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from urllib.parse import urlsplit

from flask import Response, request
from jinja2 import BaseLoader

#: inline ``<style>`` elements whose text is the same on every rendering (no Jinja inside)
_STYLE = re.compile(r"<style>(.*?)</style>", re.DOTALL)
DENY_FRAMING = "frame-ancestors 'none'"
#: JSON, RDF, files: nothing runs, nothing loads (inline styles only, for a browser's own image and text viewers)
OTHER_POLICY = f"default-src 'none'; style-src 'unsafe-inline'; sandbox; {DENY_FRAMING}"


#: where a request keeps the nonce of its inline scripts (on the request itself: an app context, and so ``g``,
#: can outlive a request, e.g. while a streamed answer is read)
_NONCE = "bia.csp_nonce"


def csp_nonce() -> str:
    """The nonce of this request's inline scripts (made on first use; a page that uses it gets the docs policy)."""
    return request.environ.setdefault(_NONCE, secrets.token_urlsafe(18))


def style_hashes(loader: BaseLoader | None) -> list[str]:
    """CSP sources (``'sha256-…'``) of every static inline ``<style>`` in the templates ``loader`` holds."""
    if loader is None:
        return []
    hashes = set()
    for name in loader.list_templates():
        source = loader.get_source(None, name)[0]  # type: ignore[arg-type]  # FileSystemLoader ignores the env
        for css in _STYLE.findall(source):
            if "{{" not in css and "{%" not in css:
                digest = base64.b64encode(hashlib.sha256(css.encode("utf-8")).digest()).decode("ascii")
                hashes.add(f"'sha256-{digest}'")
    return sorted(hashes)


class SecurityHeaders:
    """The headers of one app's answers; :meth:`apply` is its ``after_request`` hook."""

    def __init__(self, loader: BaseLoader | None, base_url: str) -> None:
        parts = urlsplit(base_url)
        forms = "'self'" + (f" {parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") and parts.netloc else "")
        styles = " ".join(style_hashes(loader)) or "'none'"
        self.page_policy = (
            f"default-src 'none'; style-src {styles}; img-src 'self'; form-action {forms}; base-uri 'none'; {DENY_FRAMING}"
        )

    @staticmethod
    def docs_policy(nonce: str) -> str:
        """Swagger UI: its scripts and stylesheet from this site, the spec fetched from here, nothing else."""
        return (
            f"default-src 'none'; script-src 'self' 'nonce-{nonce}'; style-src 'self'; img-src 'self' data:; "
            f"connect-src 'self'; base-uri 'none'; form-action 'self'; {DENY_FRAMING}"
        )

    def apply(self, response: Response) -> Response:
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        nonce = request.environ.get(_NONCE)
        if nonce:
            policy = self.docs_policy(nonce)
        elif response.mimetype == "text/html":
            policy = self.page_policy
        else:
            policy = OTHER_POLICY
        response.headers.setdefault("Content-Security-Policy", policy)
        return response
