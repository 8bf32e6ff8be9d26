"""The Documents tab's side of uploads: safe file names, the checks made before a file is read
(the file types and size limit of `rag.load`, the file count per upload), and the status lines.

Indexing the accepted files is `rag.pipeline.add_uploads`; removing one is `remove_upload`.

Example:
    >>> sanitize_filename("../../etc/passwd.md")
    'passwd.md'
    >>> upload_problem("tool.exe", 10, max_mb=1)[:30]
    "unsupported file type '.exe'; "
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from rag.load import file_size_problem, file_type_problem
from rag.ui.render import escape_markdown

if TYPE_CHECKING:
    from rag.pipeline import UploadReport
    from rag.store import UpdateStats

MAX_FILENAME_CHARS = 120
_VERBS = {"added": "added", "changed": "replaced the earlier version", "unchanged": "already indexed, unchanged"}


def sanitize_filename(name: str) -> str:
    """A safe file name for an upload: the last path part, no traversal, hidden or odd characters.

    Example:
        >>> sanitize_filename("../../etc/passwd.md")
        'passwd.md'
        >>> sanitize_filename("..\\\\notes <1>.TXT")
        'notes _1_.TXT'
    """
    name = unicodedata.normalize("NFC", str(name)).replace("\\", "/").split("/")[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")  # control, format chars
    name = re.sub(r"[^\w.\- ()]", "_", name).strip(" .")
    name = re.sub(r"\s+", " ", name)
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem, suffix = name, ""
    stem = stem.strip(" .") or "upload"
    suffix = suffix.strip()[:16]
    keep = MAX_FILENAME_CHARS - len(suffix) - 1
    return f"{stem[:keep].rstrip(' .')}.{suffix}" if suffix else stem[:MAX_FILENAME_CHARS]


def upload_problem(name: str, size: int, *, max_mb: float) -> str | None:
    """Why an upload named `name` of `size` bytes is refused before it is read, or None: the
    rules `rag index` applies (`rag.load`), and an empty file."""
    problem = file_type_problem(name) or file_size_problem(size, int(max_mb * 1024 * 1024))
    if problem is None and size == 0:
        problem = "empty file"
    return problem


def upload_count_problem(n_files: int, *, limit: int) -> str | None:
    """Why an upload of `n_files` files is refused as a whole, or None when the count is fine."""
    if n_files <= limit:
        return None
    return (
        f"{n_files} files in one upload, over the limit of {limit}; nothing was added. Upload them in "
        "smaller groups, or index a folder with `rag index`."
    )


def screen_uploads(files: Iterable[str | Path], *, max_mb: float) -> tuple[dict[str, Path], list[tuple[str, str]]]:
    """The uploaded `files` (Gradio's temporary paths) split into those to index, by safe name,
    and those refused before reading, as (name, reason), both in upload order."""
    accepted: dict[str, Path] = {}
    refused: list[tuple[str, str]] = []
    for item in files:
        path = Path(item)
        name = sanitize_filename(path.name)
        problem = upload_problem(name, path.stat().st_size, max_mb=max_mb)
        if problem is None and name in accepted:
            problem = "another file in this upload has the same name"
        if problem:
            refused.append((name, problem))
        else:
            accepted[name] = path
    return accepted, refused


def refused_line(name: str, reason: str) -> str:
    return f"✗ **{escape_markdown(name)}** not added: {escape_markdown(reason)}"


def upload_lines(report: UploadReport) -> list[str]:
    """The status lines for an indexed upload: what could not be read, what was added or
    replaced, and the index's size and embedding time."""
    lines = [refused_line(name, reason) for name, reason in report.skipped.items()]
    lines += [f"✓ **{escape_markdown(name)}** {_VERBS[outcome]}" for name, outcome in report.outcome.items()]
    if report.stats is not None:
        stats = report.stats
        lines.append(f"Index: {stats.n_chunks} chunks; {stats.chunks_embedded} embedded in {stats.seconds:.1f}s.")
    return lines


def removal_line(source: str, stats: UpdateStats) -> str:
    """The status line after asking to remove `source`."""
    if source in stats.removed:
        return f"✓ Removed **{escape_markdown(source)}**; {stats.n_chunks} chunks left."
    return f"**{escape_markdown(source)}** is not in the index."


def status_markdown(lines: list[str]) -> str:
    return "\n".join(f"- {line}" for line in lines)
