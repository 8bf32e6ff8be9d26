"""PDF reading beyond the text layer: scanned pages read by OCR (Tesseract) or reported when no
engine is installed, and ruled tables written as row sentences that can be asked about and cited.

Every PDF is made here with fpdf2; a "scanned" page is an image of text drawn with Pillow at a
scanner's resolution (Pillow's bundled font, slightly skewed), the page's only content.
"""

from __future__ import annotations

import io
import stat
from collections.abc import Sequence
from pathlib import Path

import pytest
from conftest import skip_or_fail, write_pdf

from rag.load import Skipped, load_document, load_documents
from rag.load import ocr as ocr_module
from rag.load.ocr import NO_TEXT_LAYER, OcrEngine, find_engine
from rag.pipeline import RAG, build_index

HARBOUR = "The Harbour Authority annual report. The harbour master oversees all moorings and pilots."
CARGO = "In 2023 the harbour handled 4,217 cargo ships. The busiest month was August."
CARGO_QUESTION = "How many cargo ships did the harbour handle in 2023?"
TABLE = [["Country", "Population", "Capital"], ["France", "68 million", "Paris"], ["Japan", "124 million", "Tokyo"]]
FRANCE_ROW = "Country: France; Population: 68 million; Capital: Paris"
BEFORE_TABLE = "Population figures. The table below lists countries and their populations."
AFTER_TABLE = "Figures are estimates for 2024. The next census is due in 2026."


def scanned_image(text: str, *, dpi: int = 200) -> bytes:
    """An A4 page image of `text`, as a scanner would give it: grey paper, 11 pt type, skewed 0.4 degrees."""
    from PIL import Image, ImageDraw, ImageFont

    width, height = int(8.27 * dpi), int(11.69 * dpi)
    font = ImageFont.load_default(size=round(11 * dpi / 72))
    image = Image.new("L", (width, height), 240)
    draw = ImageDraw.Draw(image)
    lines, line = [], ""
    for word in text.split():
        if line and draw.textlength(f"{line} {word}", font=font) > width * 0.76:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    for i, row in enumerate([*lines, line]):
        draw.text((int(width * 0.12), int(height * 0.1) + i * int(font.size * 1.5)), row, fill=30, font=font)
    image = image.rotate(0.4, resample=Image.Resampling.BICUBIC, fillcolor=240)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def write_scanned_pdf(path: Path, pages: Sequence[tuple[str, str]]) -> Path:
    """A PDF of ("text", ...) pages (a text layer) and ("scan", ...) pages (only an image of the text)."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    for kind, text in pages:
        pdf.add_page()
        if kind == "scan":
            pdf.image(io.BytesIO(scanned_image(text)), x=0, y=0, w=210, h=297)
        else:
            pdf.multi_cell(0, 8, text)
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))
    return path


def write_table_pdf(path: Path, rows: Sequence[Sequence[str]] = TABLE) -> Path:
    """A PDF page with a paragraph, a ruled table (fpdf2 draws each cell's border) and a paragraph."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    pdf.add_page()
    pdf.multi_cell(0, 8, BEFORE_TABLE)
    with pdf.table() as table:
        for cells in rows:
            row = table.row()
            for cell in cells:
                row.cell(cell)
    pdf.multi_cell(0, 8, AFTER_TABLE)
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))
    return path


@pytest.fixture(scope="module")
def engine() -> OcrEngine:
    """Tesseract, which `make test` installs (apt, as root); missing, the OCR tests skip (fail under CI)."""
    found = find_engine()
    if found is None:
        skip_or_fail("tesseract with its English model not found: apt-get install tesseract-ocr tesseract-ocr-eng")
    return found


@pytest.fixture
def no_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine without an OCR engine (the engine lookup finds none)."""
    monkeypatch.setattr(ocr_module, "find_engine", lambda: None)


def fake_tesseract(tmp_path: Path, script: str) -> OcrEngine:
    """An OCR engine whose program is the shell `script`: one that hangs or fails like a broken install."""
    program = tmp_path / "tesseract"
    program.write_text("#!/bin/sh\n" + script + "\n", encoding="utf-8")
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    return OcrEngine(str(program))


@pytest.fixture(scope="module")
def rag(tmp_path_factory: pytest.TempPathFactory, embedder, engine: OcrEngine) -> RAG:
    """An index of a scanned PDF (two image-only pages) and a PDF holding a table."""
    base = tmp_path_factory.mktemp("pdf-rag")
    write_scanned_pdf(base / "corpus" / "scans" / "harbour.pdf", [("scan", HARBOUR), ("scan", CARGO)])
    write_table_pdf(base / "corpus" / "countries.pdf")
    report = build_index([base / "corpus"], index_dir=base / "index", embedder=embedder)
    assert sorted(report.stats.added) == ["countries.pdf", "scans/harbour.pdf"] and not report.skipped
    assert report.ocr_pages == {"scans/harbour.pdf": (1, 2)} and report.skipped_pages == {}
    opened = RAG.open(base / "index", embedder=embedder)
    yield opened
    opened.index.close()


def test_a_text_pdf_reads_as_its_text_layer(tmp_path: Path) -> None:
    from pypdf import PdfReader

    path = write_pdf(tmp_path / "report.pdf", ["The first page is about apples.", "The second page is about zebras."])

    doc = load_document(path, "report.pdf")

    layer = [page.extract_text().strip() for page in PdfReader(path).pages]
    assert doc.text == "\n\n".join(layer)
    assert [doc.text[p.start : p.end] for p in doc.pages] == layer
    assert doc.ocr_pages == () and doc.skipped_pages == ()


def test_a_fact_on_a_scanned_page_is_answered_and_cited_to_its_page(rag: RAG) -> None:
    answer = rag.ask(CARGO_QUESTION)

    assert not answer.abstained
    first = answer.citations[0]
    assert first.source == "scans/harbour.pdf" and first.page == 2 and "4,217" in first.quote
    document = rag.index.document(first.source)
    assert document.text[first.start : first.end] == first.quote
    page_two = document.pages[1]
    assert page_two.number == 2 and page_two.start <= first.start < first.end <= page_two.end


def test_a_scanned_pdf_without_an_ocr_engine_is_skipped_with_its_reason(tmp_path: Path, no_engine) -> None:
    path = write_scanned_pdf(tmp_path / "scan.pdf", [("scan", HARBOUR), ("scan", CARGO)])

    [item] = load_documents([(path, "scan.pdf")])

    assert isinstance(item, Skipped)
    assert item.reason.startswith(NO_TEXT_LAYER) and "2 pages" in item.reason and "tesseract" in item.reason
    assert "\n" not in item.reason


def test_a_mixed_pdf_without_an_engine_keeps_its_text_pages_and_reports_the_scanned_one(
    tmp_path: Path, no_engine
) -> None:
    path = write_scanned_pdf(
        tmp_path / "mixed.pdf", [("text", HARBOUR), ("scan", CARGO), ("text", "Pears came later.")]
    )

    doc = load_document(path, "mixed.pdf")

    assert [p.number for p in doc.pages] == [1, 2, 3]
    assert doc.text[doc.pages[0].start : doc.pages[0].end] == HARBOUR
    assert doc.pages[1].start == doc.pages[1].end  # the scanned page holds no text, but keeps its place
    assert doc.text[doc.pages[2].start : doc.pages[2].end] == "Pears came later."
    assert doc.skipped_pages == ((2, NO_TEXT_LAYER),) and doc.ocr_pages == ()


def test_a_mixed_pdf_with_an_engine_reads_its_scanned_page(tmp_path: Path, engine: OcrEngine) -> None:
    path = write_scanned_pdf(tmp_path / "mixed.pdf", [("text", HARBOUR), ("scan", CARGO)])

    doc = load_document(path, "mixed.pdf")

    assert doc.ocr_pages == (2,) and doc.skipped_pages == ()
    assert doc.text[doc.pages[0].start : doc.pages[0].end] == HARBOUR
    page_two = doc.text[doc.pages[1].start : doc.pages[1].end]
    assert "4,217 cargo ships" in page_two and "August" in page_two


def test_a_blank_page_is_neither_read_nor_reported(tmp_path: Path, no_engine) -> None:
    path = write_pdf(tmp_path / "blank.pdf", [HARBOUR, ""])

    doc = load_document(path, "blank.pdf")

    assert doc.text.strip() == HARBOUR and doc.skipped_pages == () and doc.ocr_pages == ()
    assert doc.pages[1].start == doc.pages[1].end


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        ("exec sleep 30", "OCR took over 1 s and was stopped"),
        ("echo 'Error opening data file eng.traineddata' >&2; exit 1", "OCR failed (Error opening data file"),
    ],
)
def test_an_ocr_page_that_hangs_or_fails_is_reported_and_the_rest_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str, reason: str
) -> None:
    monkeypatch.setattr(ocr_module, "find_engine", lambda: fake_tesseract(tmp_path, script))
    monkeypatch.setattr(ocr_module, "PAGE_TIMEOUT_S", 1.0)
    mixed = write_scanned_pdf(tmp_path / "mixed.pdf", [("text", HARBOUR), ("scan", CARGO)])
    scan = write_scanned_pdf(tmp_path / "scan.pdf", [("scan", CARGO)])

    doc, skipped = load_documents([(mixed, "mixed.pdf"), (scan, "scan.pdf")])

    assert doc.text.strip() == HARBOUR and [(n, r[: len(reason)]) for n, r in doc.skipped_pages] == [(2, reason)]
    assert isinstance(skipped, Skipped) and skipped.reason.startswith(f"no extractable text: page 1: {reason}")


def test_a_file_over_its_ocr_budget_reports_the_pages_left(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ocr_module, "find_engine", lambda: fake_tesseract(tmp_path, "exit 1"))  # never run
    monkeypatch.setattr(ocr_module, "FILE_BUDGET_S", 0.0)
    path = write_scanned_pdf(tmp_path / "mixed.pdf", [("text", HARBOUR), ("scan", CARGO)])

    doc = load_document(path, "mixed.pdf")

    assert doc.ocr_pages == () and doc.skipped_pages == ((2, "not recognised: this file used up its 0 s of OCR"),)


def test_index_summary_lists_pages_read_by_ocr_and_pages_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, engine: OcrEngine
) -> None:
    from rag.cli import main

    monkeypatch.chdir(tmp_path)
    write_scanned_pdf(tmp_path / "corpus" / "scan.pdf", [("scan", HARBOUR), ("scan", CARGO)])
    write_scanned_pdf(tmp_path / "corpus" / "mixed.pdf", [("text", HARBOUR), ("scan", CARGO)])
    assert main(["index", "corpus", "--index-dir", "idx"]) == 0
    out = capsys.readouterr().out
    assert "2 added" in out
    assert "read by OCR (scanned pages without a text layer) in 2 file(s):" in out
    assert "  scan.pdf: pages 1-2" in out and "  mixed.pdf: page 2" in out

    (tmp_path / "corpus" / "later.pdf").write_bytes((tmp_path / "corpus" / "mixed.pdf").read_bytes())
    monkeypatch.setattr(ocr_module, "find_engine", lambda: None)
    assert main(["index", "corpus", "--index-dir", "idx"]) == 0
    out = capsys.readouterr().out
    assert "1 added" in out and "2 unchanged" in out and "read by OCR" not in out  # unchanged files: not read again
    assert f"pages left out of 1 indexed file(s):\n  later.pdf: page 2: {NO_TEXT_LAYER}" in out


def test_a_table_is_written_as_row_sentences_where_it_stands(tmp_path: Path) -> None:
    doc = load_document(write_table_pdf(tmp_path / "countries.pdf"), "countries.pdf")

    assert doc.text == "\n\n".join(
        [BEFORE_TABLE, FRANCE_ROW, "Country: Japan; Population: 124 million; Capital: Tokyo", AFTER_TABLE]
    )


def test_a_table_beside_other_text_is_laid_out_top_to_bottom(tmp_path: Path) -> None:
    """Text to the right of a table shares its lines in the text layer: the page is laid out again."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    pdf.add_page()
    pdf.multi_cell(0, 8, BEFORE_TABLE)
    top = pdf.get_y()
    with pdf.table(width=90, align="LEFT") as table:
        for cells in TABLE[:2]:
            row = table.row()
            for cell in cells:
                row.cell(cell)
    pdf.set_xy(120, top + 2)
    pdf.cell(60, 8, "Margin note: sources vary.")
    pdf.set_xy(10, top + 40)
    pdf.multi_cell(0, 8, AFTER_TABLE)
    pdf.output(str(tmp_path / "side.pdf"))

    doc = load_document(tmp_path / "side.pdf", "side.pdf")

    assert doc.text.startswith(BEFORE_TABLE) and doc.text.endswith(AFTER_TABLE)
    assert "\n\n" + FRANCE_ROW + "\n\n" in doc.text and "Margin note: sources vary." in doc.text


def test_a_question_about_a_table_cell_is_answered_and_cited_to_its_row(rag: RAG) -> None:
    answer = rag.ask("What is the population of France?")

    assert not answer.abstained
    first = answer.citations[0]
    assert first.source == "countries.pdf" and first.quote == FRANCE_ROW and first.page == 1
    assert rag.index.document("countries.pdf").text[first.start : first.end] == FRANCE_ROW


def test_prose_pages_are_not_searched_for_tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Table finding (pdfplumber) is many times slower than the text layer: prose never pays for it.
    And where it fails on a page, the page keeps its text layer."""
    import pdfplumber

    opened: list[object] = []

    def broken_open(*args, **kwargs):
        opened.append(args)
        raise RuntimeError("pdfplumber failed on this PDF")

    monkeypatch.setattr(pdfplumber, "open", broken_open)
    prose = write_pdf(tmp_path / "prose.pdf", [HARBOUR + " " + CARGO] * 3)

    assert load_document(prose, "prose.pdf").text.count("4,217") == 3 and opened == []
    table_page = load_document(write_table_pdf(tmp_path / "t.pdf"), "t.pdf").text
    assert len(opened) == 1 and "Country Population Capital\nFrance 68 million Paris" in table_page
