"""What a request is served with: the app's settings, services and SPARQL runner, read from the current app.

Routes and the modules they call import these accessors, never :mod:`api.app` (which imports the routes)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import current_app

from api.services import Services
from catalog.config import Settings

if TYPE_CHECKING:
    from api.sparql_workers import QueryRunner


def settings() -> Settings:
    """The settings the app serves (its base URL the one the catalog remembers)."""
    return current_app.extensions["bia.settings"]


def services() -> Services:
    """The open archive, deposits and background duties of the app."""
    return current_app.extensions["bia.services"]


def sparql_runner() -> "QueryRunner":
    """The pool of workers that run SPARQL queries for the app."""
    return current_app.extensions["bia.sparql"]
