"""PDF files: the text layer, page by page, with each page's character span."""

from __future__ import annotations

import io

from rag.load.common import UnreadableFile, one_line
from rag.types import Page


def pdf_text(data: bytes) -> tuple[str, tuple[Page, ...]]:
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
        raise UnreadableFile(f"corrupt PDF ({one_line(str(exc)) or type(exc).__name__})") from None
    return "".join(parts), tuple(pages)
