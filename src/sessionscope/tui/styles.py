"""Locate the Textual CSS shipped with the package.

In a wheel the top-level ``styles/`` folder is installed as ``sessionscope/styles``; in a source
checkout (editable install) it sits at the repository root.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent.parent


def styles_dir() -> Path:
    installed = _PACKAGE_DIR / "styles"
    if installed.is_dir():
        return installed
    checkout = _PACKAGE_DIR.parent.parent / "styles"
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError("sessionscope's styles folder is missing from this installation")


def stylesheet(name: str) -> Path:
    return styles_dir() / name
