"""The ``bia`` command line beside a running server: read-only commands open the published snapshots, commands
that write are refused at once while another process holds the catalog's stores, saying what to do instead."""

from __future__ import annotations

from typing import Callable

from api.services import Services, open_services
from catalog.config import Settings
from catalog.errors import CatalogError


class CatalogHeld(CatalogError):
    """A command that writes met a catalog whose stores another process (a running server) holds for writing."""

    status = 409
    code = "catalog_held"


def writable(settings: Settings, command: str, *, by_itself: bool = False, instead: Callable[[], str] | None = None) -> Settings:
    """``settings``, for a command that writes into the catalog; :class:`CatalogHeld` at once while another process,
    such as a running ``bia serve``, holds its embedded stores, saying what to do: ``instead()``, or stop the server
    and run ``bia {command}`` again (``by_itself``: first saying that the server does it in the background)."""
    from catalog.views import writer_holder

    holder = writer_holder(settings)
    if not holder:
        return settings
    if instead is not None:
        advice = instead()
    else:
        advice = f"stop the server, run `bia {command}` again, then start the server again"
        if by_itself:
            advice = (
                f"the server does this by itself (every BIA_MAINTENANCE_INTERVAL, {settings.maintenance_interval:g} s); "
                f"to do it now, {advice}"
            )
    raise CatalogHeld(f"{holder} holds the catalog in {settings.data_dir} for writing (one writer at a time); {advice}")


def server_url(settings: Settings) -> str:
    """Where the catalog's server answers, as far as the CLI can tell: the base URL its IRIs are minted under."""
    from catalog.remembered import minted_base_url

    return minted_base_url(settings) or settings.base_url


def open_read_only(settings: Settings) -> Services:
    """The catalog's public view, opened read-only on its published snapshots (search and file tables follow the
    state database): works beside a running server."""
    return open_services(settings.with_(read_only=True), recover=False, public_only=True)
