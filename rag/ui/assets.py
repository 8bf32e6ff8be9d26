"""The UI's style sheet and page scripts, package data under rag/ui/static/.

Example:
    >>> "rag-card" in read_asset("style.css")
    True
"""

from __future__ import annotations

from importlib.resources import files


def read_asset(name: str) -> str:
    """The text of `static/<name>` (style.css, sources.js, viewer.js)."""
    return (files(__package__) / "static" / name).read_text(encoding="utf-8")
