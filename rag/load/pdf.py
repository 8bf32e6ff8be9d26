"""PDF files: the text layer, page by page, with each page's character span.

A page without a text layer that shows an image (a scan) is read by OCR (`rag.load.ocr`) when an
engine is installed, else left out with the reason `NO_TEXT_LAYER`; either way its `Page` span
stays in place, so citations keep pointing at the right page. A page that draws ruled tables has
them written as row sentences (`rag.load.pdf_tables`).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Any

from rag.load import ocr
from rag.load.common import UnreadableFile, one_line
from rag.load.pdf_tables import MAX_RULES, TableFinder, may_hold_table
from rag.types import Page

# A rectangle or line-segment operator in a content stream (operands before, whitespace after).
_RULE = re.compile(rb"\s(?:re|l)\s")
_INLINE_IMAGE = re.compile(rb"(?:^|\s)BI\s")


@dataclass(frozen=True)
class PdfText:
    """A PDF's text, its pages' spans in it, the pages read by OCR and the pages left out (with why)."""

    text: str
    pages: tuple[Page, ...]
    ocr_pages: tuple[int, ...] = ()
    skipped_pages: tuple[tuple[int, str], ...] = ()

    def problem(self) -> str:
        """Why nothing could be read, in one line ("" when some text was).

        Example:
            >>> PdfText("", (Page(1, 0, 0),), skipped_pages=((1, ocr.NO_TEXT_LAYER),)).problem()
            'no text layer (scanned?) on its 1 page; install tesseract-ocr to read it'
        """
        if self.text.strip():
            return ""
        if not self.skipped_pages:
            return "no extractable text (its pages are blank or drawings)"
        reasons = dict.fromkeys(reason for _, reason in self.skipped_pages)
        if list(reasons) == [ocr.NO_TEXT_LAYER]:
            n = len(self.skipped_pages)
            return f"{ocr.NO_TEXT_LAYER} on its {n} page{'s' if n > 1 else ''}; {ocr.INSTALL_HINT}"
        number, reason = self.skipped_pages[0]
        return f"no extractable text: page {number}: {reason}"


def pdf_text(data: bytes) -> PdfText:
    """Read a PDF; raises UnreadableFile for an encrypted or corrupt one."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise UnreadableFile("encrypted PDF")
        texts: list[str] = []
        scanned: list[int] = []
        with TableFinder(data) as tables:
            for index, page in enumerate(reader.pages):
                text = (page.extract_text() or "").replace("\r\n", "\n").replace("\r", "\n").strip()
                if not text and _shows_image(page):
                    scanned.append(index)
                elif text and may_hold_table(_rules(page)):
                    text = tables.page_text(index, text)
                texts.append(text)
    except UnreadableFile:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise UnreadableFile(f"corrupt PDF ({one_line(str(exc)) or type(exc).__name__})") from None
    recognised, skipped = _recognise(data, scanned, texts)
    return _joined(texts, recognised, skipped)


def _recognise(data: bytes, scanned: list[int], texts: list[str]) -> tuple[list[int], list[tuple[int, str]]]:
    """OCR the `scanned` pages (0-based) into `texts`; (page numbers read, (page number, reason) left out)."""
    if not scanned:
        return [], []
    engine = ocr.find_engine()
    if engine is None:
        return [], [(i + 1, ocr.NO_TEXT_LAYER) for i in scanned]
    recognised: list[int] = []
    skipped: list[tuple[int, str]] = []
    for index, result in ocr.recognise_pages(data, scanned, engine):
        if isinstance(result, ocr.OcrFailed):
            skipped.append((index + 1, str(result)))
        elif not result.strip():
            skipped.append((index + 1, "OCR found no text in its image"))
        else:
            texts[index] = result
            recognised.append(index + 1)
    return recognised, skipped


def _joined(texts: list[str], recognised: list[int], skipped: list[tuple[int, str]]) -> PdfText:
    """The pages' texts joined by blank lines, with each page's span (an empty page has an empty one)."""
    parts: list[str] = []
    pages: list[Page] = []
    offset = 0
    for number, text in enumerate(texts, start=1):
        if parts:
            parts.append("\n\n")
            offset += 2
        parts.append(text)
        pages.append(Page(number, offset, offset + len(text)))
        offset += len(text)
    return PdfText("".join(parts), tuple(pages), tuple(recognised), tuple(skipped))


def _shows_image(page: Any) -> bool:
    """Whether the page's resources hold an image (directly or in a form it draws), or its content an
    inline image: a page with no text that shows one is a scan; one with neither is blank."""
    return _has_image_xobject(page.get("/Resources"), depth=0) or _INLINE_IMAGE.search(_content(page)) is not None


def _has_image_xobject(resources: Any, *, depth: int) -> bool:
    try:
        xobjects = resources.get_object().get("/XObject") if resources is not None else None
        for ref in (xobjects.get_object() if xobjects is not None else {}).values():
            xobject = ref.get_object()
            subtype = xobject.get("/Subtype")
            if subtype == "/Image":
                return True
            if subtype == "/Form" and depth < 4 and _has_image_xobject(xobject.get("/Resources"), depth=depth + 1):
                return True
    except Exception:  # a damaged resource dictionary: no image found there
        return False
    return False


def _rules(page: Any) -> int:
    """How many rectangles and line segments the page's content draws (counted up to MAX_RULES + 1)."""
    count = 0
    for _ in _RULE.finditer(_content(page)):
        count += 1
        if count > MAX_RULES:
            break
    return count


def _content(page: Any) -> bytes:
    """The page's content stream, decoded ("" when it has none or it cannot be decoded)."""
    try:
        contents = page.get_contents()
        return contents.get_data() if contents is not None else b""
    except Exception:
        return b""
