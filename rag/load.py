"""Reading files into `Document`s: txt, md, html, pdf, docx.

A file that cannot be read becomes a `Skipped` with a one-line reason; it never stops the batch.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePath

from rag.types import Document, Page

SUPPORTED_SUFFIXES: tuple[str, ...] = (".txt", ".md", ".html", ".htm", ".pdf", ".docx")
# A .docx whose parts unpack to more than this is refused (zip-bomb guard).
MAX_DOCX_UNPACKED_BYTES = 200 * 1024 * 1024


@dataclass(frozen=True)
class Skipped:
    """A file left out of the index and why, in one line."""

    source: str
    reason: str


class UnreadableFile(Exception):
    """Raised by a reader: the message is the one-line reason shown to the user."""


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


def load_document(path: Path, source: str, *, max_bytes: int | None = None) -> Document:
    """Read one file into a `Document`, or raise UnreadableFile with a one-line reason."""
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
    pages: tuple[Page, ...] = ()
    if suffix in (".txt", ".md"):
        text = _decode_text(data)
    elif suffix in (".html", ".htm"):
        text = _html_text(_decode_text(data))
    elif suffix == ".pdf":
        text, pages = _pdf_text(data)
    else:
        text = _docx_text(data)
    if not text.strip():
        raise UnreadableFile(
            "no extractable text" + (" (a scanned PDF without a text layer?)" if suffix == ".pdf" else "")
        )
    return Document(source=source, text=text, sha256=hashlib.sha256(data).hexdigest(), pages=pages)


def load_documents(files: Iterable[tuple[Path, str]], *, max_bytes: int | None = None) -> Iterator[Document | Skipped]:
    """Load each file in turn, yielding a `Document` or a `Skipped` for each."""
    for path, source in files:
        try:
            yield load_document(path, source, max_bytes=max_bytes)
        except UnreadableFile as exc:
            yield Skipped(source, str(exc))
        except Exception as exc:  # a parser bug or hostile file must not stop the batch
            yield Skipped(source, f"could not be parsed ({type(exc).__name__}: {_one_line(str(exc))})")


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


def format_size(n_bytes: int) -> str:
    """Bytes for people, in the units `max_file_mb` is set in (1024-based), so a 20 MB limit reads
    "20 MB", not "21 MB".

    Example:
        >>> format_size(20 * 1024 * 1024), format_size(1536), format_size(12)
        ('20 MB', '1.5 KB', '12 bytes')
    """
    for unit, size in (("MB", 1024 * 1024), ("KB", 1024)):
        if n_bytes >= size:
            return f"{n_bytes / size:.1f}".removesuffix(".0") + f" {unit}"
    return f"{n_bytes} bytes"


def _one_line(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _decode_text(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise UnreadableFile("binary content (NUL bytes), not text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableFile(f"not valid UTF-8 (invalid byte 0x{data[exc.start]:02x} at offset {exc.start})") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


_DROPPED_TAGS = {"script", "style", "noscript", "template", "head", "svg", "iframe", "object"}
_BLOCK_TAGS = {
    "p",
    "div",
    "br",
    "li",
    "ul",
    "ol",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "tr",
    "table",
    "section",
    "article",
    "header",
    "footer",
    "blockquote",
    "pre",
    "title",
    "dd",
    "dt",
}


def _html_text(html: str) -> str:
    """Visible text only: scripts, styles and hidden templates dropped; blocks become paragraphs.

    One iterative walk over the parsed tree: time stays linear and the stack flat however deeply
    the tags nest (a page of 10,000 nested <div>s is hostile input, not a reason to stall).
    """
    from bs4 import BeautifulSoup
    from bs4.element import CData, NavigableString, Tag

    soup = BeautifulSoup(html, "html.parser")
    parts: list[str] = []
    stack: list[object] = [soup]
    while stack:
        node = stack.pop()
        if isinstance(node, _Emit):
            parts.append(node.text)
        elif isinstance(node, Tag):
            if node.name in _DROPPED_TAGS:
                title = node.find("title") if node.name == "head" else None
                title_text = title.get_text(" ", strip=True) if title else ""
                if title_text:
                    parts.append(title_text + "\n\n")
                continue
            if node.name in _BLOCK_TAGS:
                parts.append("\n\n")
                stack.append(_Emit("\n\n"))
            stack.extend(reversed(node.contents))
        elif type(node) in (NavigableString, CData):  # not comments, doctypes, processing instructions
            parts.append(str(node))
    lines = [" ".join(line.split()) for line in "".join(parts).split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


@dataclass(frozen=True)
class _Emit:
    """A closing block tag's paragraph break, waiting on the walk's stack."""

    text: str


def _pdf_text(data: bytes) -> tuple[str, tuple[Page, ...]]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise UnreadableFile("encrypted PDF")
        parts: list[str] = []
        pages: list[Page] = []
        offset = 0
        for number, page in enumerate(reader.pages, start=1):
            page_text = (page.extract_text() or "").replace("\r\n", "\n").replace("\r", "\n").strip()
            if parts:
                parts.append("\n\n")
                offset += 2
            parts.append(page_text)
            pages.append(Page(number, offset, offset + len(page_text)))
            offset += len(page_text)
    except UnreadableFile:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise UnreadableFile(f"corrupt PDF ({_one_line(str(exc)) or type(exc).__name__})") from None
    return "".join(parts), tuple(pages)


def _docx_text(data: bytes) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
            if unpacked > MAX_DOCX_UNPACKED_BYTES:
                raise UnreadableFile(
                    f"docx unpacks to {format_size(unpacked)}, over the "
                    f"{format_size(MAX_DOCX_UNPACKED_BYTES)} limit (zip bomb?)"
                )
    except zipfile.BadZipFile:
        raise UnreadableFile("corrupt .docx (not a zip archive)") from None
    import docx

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:
        raise UnreadableFile(f"corrupt .docx ({_one_line(str(exc)) or type(exc).__name__})") from None
    blocks = [p.text.strip() for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            blocks.append(" | ".join(cell.text.strip() for cell in row.cells))
    return "\n\n".join(b for b in blocks if b)
