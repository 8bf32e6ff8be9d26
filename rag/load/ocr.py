"""Reading scanned PDF pages (an image, no text layer) with Tesseract, offline.

Tesseract is Debian's `tesseract-ocr` with its English model (`tesseract-ocr-eng`; on macOS
`brew install tesseract`): a program, not a Python package, so it may be missing on a user's
machine. `find_engine` says whether it is there; without it, scanned pages are skipped with
`NO_TEXT_LAYER` as their reason. Each page is rendered with pypdfium2 at `RENDER_DPI` and handed to
a `tesseract` child process on standard input, so a page that hangs is killed at its time limit and
one file cannot take more than `FILE_BUDGET_S`: a bad page is reported, never a stalled batch.
(bench/ocr.py compares Tesseract with RapidOCR; the README's "Scanned PDFs and tables" has the figures.)
"""

from __future__ import annotations

import functools
import io
import shutil
import subprocess
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from rag.load.common import one_line

NO_TEXT_LAYER = "no text layer (scanned?)"
INSTALL_HINT = "install tesseract-ocr to read it"
LANGUAGE = "eng"
# 200 dpi read as well as 300 on every test scan, 6.5 pt print included, for 20-40% less CPU (bench/ocr.py).
RENDER_DPI = 200
MAX_PIXELS = 40_000_000  # a huge page is rendered at a lower resolution, not into gigabytes
PAGE_TIMEOUT_S = 60.0  # about 30 times what a dense A4 page takes on one core
FILE_BUDGET_S = 600.0  # then the file's remaining scanned pages are skipped, with that reason


class OcrFailed(Exception):
    """One page could not be recognised; the message is its one-line reason."""


@dataclass(frozen=True)
class OcrEngine:
    """The `tesseract` program at `binary`, reading `language`."""

    binary: str
    language: str = LANGUAGE

    def read(self, image: bytes, *, dpi: int, timeout: float) -> str:
        """The text of one page image (any format Tesseract reads; PGM here), or OcrFailed."""
        try:
            done = subprocess.run(
                [self.binary, "stdin", "stdout", "-l", self.language, "--dpi", str(dpi)],
                input=image,
                capture_output=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise OcrFailed(f"OCR took over {timeout:.0f} s and was stopped") from None
        except OSError as exc:
            raise OcrFailed(f"OCR could not start ({exc.strerror or exc})") from None
        if done.returncode != 0:
            raise OcrFailed(f"OCR failed ({one_line(done.stderr.decode('utf-8', 'replace')) or done.returncode})")
        return done.stdout.decode("utf-8", "replace").replace("\f", "").strip()


@functools.cache
def find_engine() -> OcrEngine | None:
    """Tesseract with its English model when both are installed here, else None (checked once)."""
    binary = shutil.which("tesseract")
    if binary is None:
        return None
    try:
        listed = subprocess.run([binary, "--list-langs"], capture_output=True, timeout=30, text=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return OcrEngine(binary) if LANGUAGE in listed.stdout.split() else None


def recognise_pages(data: bytes, indices: Iterable[int], engine: OcrEngine) -> Iterator[tuple[int, str | OcrFailed]]:
    """(page index, its text or why it was not read) for each 0-based page index of the PDF `data`,
    in order. Pages after the file's time budget is spent are not tried."""
    import pypdfium2

    started = time.monotonic()
    try:
        document = pypdfium2.PdfDocument(data)
    except Exception as exc:  # pypdf read it, pdfium cannot: every page is reported
        failed = OcrFailed(f"page could not be rendered ({type(exc).__name__}: {one_line(str(exc))})")
        yield from ((index, failed) for index in indices)
        return
    try:
        for index in indices:
            left = FILE_BUDGET_S - (time.monotonic() - started)
            if left <= 0:
                yield index, OcrFailed(f"not recognised: this file used up its {FILE_BUDGET_S:.0f} s of OCR")
                continue
            try:
                image, dpi = render_page(document, index)
                yield index, engine.read(image, dpi=dpi, timeout=min(PAGE_TIMEOUT_S, left))
            except OcrFailed as exc:
                yield index, exc
            except Exception as exc:  # pdfium could not render it: report the page, read the rest
                yield index, OcrFailed(f"page could not be rendered ({type(exc).__name__}: {one_line(str(exc))})")
    finally:
        document.close()


def render_page(document: object, index: int) -> tuple[bytes, int]:
    """Page `index` of a pypdfium2 document as a greyscale PGM image, and its resolution: `RENDER_DPI`,
    or less for a page so large that it would exceed `MAX_PIXELS`."""
    page = document[index]  # type: ignore[index]
    width, height = page.get_size()  # in points, 1/72 inch
    scale = min(RENDER_DPI / 72, (MAX_PIXELS / max(width * height, 1.0)) ** 0.5)
    image = page.render(scale=scale, grayscale=True).to_pil()
    out = io.BytesIO()
    image.save(out, format="PPM")  # binary PGM for a greyscale image: no compression to wait for
    return out.getvalue(), max(1, round(scale * 72))
