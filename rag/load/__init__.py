"""Reading files into `Document`s: txt, md, html, pdf, docx.

A file that cannot be read becomes a `Skipped` with a one-line reason; it never stops the batch.
This module finds files and dispatches on their type; each format's reader is its own module
(`rag.load.html`, `rag.load.markdown`, `rag.load.pdf`, `rag.load.docx`), sharing `rag.load.common`.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath

from rag.load.common import UnreadableFile, decode_text, format_size, one_line
from rag.load.docx import MAX_DOCX_UNPACKED_BYTES, docx_text
from rag.load.html import html_document
from rag.load.markdown import markdown_headings
from rag.load.pdf import pdf_text
from rag.types import Document

__all__ = [
    "MAX_DOCX_UNPACKED_BYTES",
    "SUPPORTED_SUFFIXES",
    "Skipped",
    "UnreadableFile",
    "file_size_problem",
    "file_type_problem",
    "find_files",
    "format_size",
    "load_document",
    "load_documents",
]

SUPPORTED_SUFFIXES: tuple[str, ...] = (".txt", ".md", ".html", ".htm", ".pdf", ".docx")


@dataclass(frozen=True)
class Skipped:
    """A file left out of the index and why, in one line."""

    source: str
    reason: str


def find_files(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[tuple[Path, str]], list[Skipped]]:
    """Expand files and folders (recursively) into `(path, source)` pairs, sorted by source.

    `source` is the path relative to the folder it was found under (for a file given directly,
    its name). Hidden files and folders are skipped silently; symlinks are not followed (a link
    could point outside the folder being indexed). A path that does not exist raises
    FileNotFoundError naming it.

    Example:
        >>> files, skipped = find_files(["seeds"])  # doctest: +SKIP
    """
    found: dict[str, Path] = {}
    skipped: list[Skipped] = []
    for raw in paths:
        root = Path(raw)
        if not root.exists() and not root.is_symlink():
            raise FileNotFoundError(f"path does not exist: {raw}")
        if root.is_file() and not root.is_symlink():
            _claim(found, skipped, root.name, root)
            continue
        if root.is_symlink():
            skipped.append(Skipped(root.name, "symbolic link: not followed"))
            continue
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            here = Path(dirpath)
            for d in [d for d in dirnames if (here / d).is_symlink()]:
                skipped.append(Skipped((here / d).relative_to(root).as_posix(), "symbolic link: not followed"))
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and not (here / d).is_symlink())
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                path = here / name
                source = path.relative_to(root).as_posix()
                if path.is_symlink():
                    skipped.append(Skipped(source, "symbolic link: not followed"))
                    continue
                _claim(found, skipped, source, path)
    return [(path, source) for source, path in sorted(found.items())], skipped


def _claim(found: dict[str, Path], skipped: list[Skipped], source: str, path: Path) -> None:
    """Record `path` under `source`, unless another file already has that name (two folders
    given together can both hold `notes.txt`); the second is skipped, not silently dropped."""
    if source in found and found[source].resolve() != path.resolve():
        skipped.append(
            Skipped(source, f"same relative path as {found[source]}; index the folders separately or rename one")
        )
    else:
        found.setdefault(source, path)


def load_document(
    path: Path, source: str, *, max_bytes: int | None = None, indexed_sha256: str | None = None
) -> Document:
    """Read one file into a `Document`, or raise UnreadableFile with a one-line reason.

    A file whose bytes hash to `indexed_sha256` (the version already in the index) is not parsed:
    its Document has that hash and no text, which is all an index update compares (a scanned PDF is
    not recognised again on every `rag index`)."""
    suffix = path.suffix.lower()
    problem = file_type_problem(path.name)
    if problem:
        raise UnreadableFile(problem)
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):  # reading a FIFO or a device would block or never end
            raise UnreadableFile("not a regular file (a pipe, socket or device)")
        problem = file_size_problem(info.st_size, max_bytes)
        if problem:
            raise UnreadableFile(problem)
        with open(path, "rb") as fh:
            data = fh.read() if max_bytes is None else fh.read(max_bytes + 1)
        if max_bytes is not None and len(data) > max_bytes:  # it grew after the size check
            raise UnreadableFile(f"file is over the {format_size(max_bytes)} limit")
    except OSError as exc:
        raise UnreadableFile(f"cannot read file: {exc.strerror or exc}") from None
    if not data.strip():
        raise UnreadableFile("empty file")
    sha256 = hashlib.sha256(data).hexdigest()
    if sha256 == indexed_sha256:  # unchanged since it was indexed: not parsed (nor OCR'd) again
        return Document(source=source, text="", sha256=sha256, modified=info.st_mtime)
    if suffix == ".pdf":
        pdf = pdf_text(data)
        if pdf.problem():
            raise UnreadableFile(pdf.problem())
        return Document(
            source,
            pdf.text,
            sha256,
            pdf.pages,
            ocr_pages=pdf.ocr_pages,
            skipped_pages=pdf.skipped_pages,
            modified=info.st_mtime,
        )
    headings: tuple[tuple[int, int], ...] = ()
    if suffix == ".txt":
        text = decode_text(data)
    elif suffix == ".md":
        text = decode_text(data)
        headings = markdown_headings(text)
    elif suffix in (".html", ".htm"):
        text, headings = html_document(decode_text(data))
    else:
        text = docx_text(data)
    if not text.strip():
        raise UnreadableFile("no extractable text")
    return Document(source=source, text=text, sha256=sha256, headings=headings, modified=info.st_mtime)


def load_documents(
    files: Iterable[tuple[Path, str]], *, max_bytes: int | None = None, indexed: Mapping[str, str] | None = None
) -> Iterator[Document | Skipped]:
    """Load each file in turn, yielding a `Document` or a `Skipped` for each. `indexed` (source ->
    sha256 of the indexed version) spares parsing unchanged files (see `load_document`)."""
    indexed = indexed or {}
    for path, source in files:
        try:
            yield load_document(path, source, max_bytes=max_bytes, indexed_sha256=indexed.get(source))
        except UnreadableFile as exc:
            yield Skipped(source, str(exc))
        except Exception as exc:  # a parser bug or hostile file must not stop the batch
            yield Skipped(source, f"could not be parsed ({type(exc).__name__}: {one_line(str(exc))})")


def file_type_problem(name: str) -> str | None:
    """Why a file named `name` is not read, by its type (its suffix), or None for a supported one.

    Example:
        >>> file_type_problem("notes.MD") is None, file_type_problem("tool.exe")[:28]
        (True, "unsupported file type '.exe'")
    """
    suffix = PurePath(name).suffix.lower()
    if suffix in SUPPORTED_SUFFIXES:
        return None
    return f"unsupported file type {suffix or '(none)'!r}; supported: " + " ".join(SUPPORTED_SUFFIXES)


def file_size_problem(size: int, max_bytes: int | None) -> str | None:
    """Why a file of `size` bytes is not read, when it is over `max_bytes`, or None."""
    if max_bytes is None or size <= max_bytes:
        return None
    return f"file is {format_size(size)}, over the {format_size(max_bytes)} limit"
