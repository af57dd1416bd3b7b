"""The one rule for links on the portal's pages: only http, https and ftp IRIs (and paths on this site) become an
``href``; any other IRI a record, a SPARQL answer or a depositor holds (``javascript:``, ``data:``, a CURIE…) is
shown as text. Templates never write ``href=`` themselves: ``<a{{ iri|href }}>`` is the only way to make a link."""

from __future__ import annotations

from markupsafe import Markup

#: schemes a page may link to
WEB_SCHEMES = frozenset({"http", "https", "ftp"})


def is_web_iri(value: object) -> bool:
    """Whether ``value`` is an absolute http, https or ftp IRI (what a value in a record may be linked as)."""
    if not isinstance(value, str):
        return False
    scheme, colon, rest = value.partition(":")
    return bool(colon) and scheme.lower() in WEB_SCHEMES and rest.startswith("//") and len(rest) > 2


def is_site_path(value: object) -> bool:
    """Whether ``value`` is a path on this site (``/static/…``): no scheme, no other host."""
    return isinstance(value, str) and value.startswith("/") and not value.startswith(("//", "/\\"))


def src(value: object) -> Markup:
    """`` src="…"`` (escaped) for a picture at a web IRI or a path on this site, nothing for any other value (the
    ``<img>`` then shows its ``alt`` text): ``<img{{ url|src }}>`` is the only way a template sets a source."""
    if is_web_iri(value) or is_site_path(value):
        return Markup(' src="%s"') % value
    return Markup("")


def href(value: object) -> Markup:
    """`` href="…"`` (escaped) for a web IRI or a path on this site, nothing for any other value: an ``<a>``
    without ``href`` is text."""
    if is_web_iri(value) or is_site_path(value):
        return Markup(' href="%s"') % value
    return Markup("")
