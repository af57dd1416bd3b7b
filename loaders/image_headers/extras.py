"""The optional extra that brings the readers of vendor formats (Zeiss CZI, Nikon ND2, Leica LIF).

Each of those readers imports its library when it meets such a file; without it the file comes out
``unsupported``, with a reason that names the extra to install.
"""

from __future__ import annotations

#: the setup.cfg extra holding czifile, nd2 and liffile
VENDOR_EXTRA = "images-vendor"


def missing(package: str, format_name: str) -> str:
    """The reason given for a file whose reader's ``package`` is not installed."""
    return (
        f"{format_name} headers are read with the {package} package, which is not installed: "
        f"install the {VENDOR_EXTRA!r} extra (pip install 'bia-catalog[images,{VENDOR_EXTRA}]')"
    )
