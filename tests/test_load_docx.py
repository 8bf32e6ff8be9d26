"""Word tables: read where they stand among the paragraphs, one sentence per row naming the columns,
merged cells once, and a question about a cell answered with that row as its citation."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.load import load_document
from rag.pipeline import RAG, build_index

ROWS = [["Country", "Population", "Capital"], ["France", "68 million", "Paris"], ["Japan", "124 million", "Tokyo"]]
FRANCE_ROW = "Country: France; Population: 68 million; Capital: Paris"
JAPAN_ROW = "Country: Japan; Population: 124 million; Capital: Tokyo"


def write_docx_with_table(path: Path, rows: list[list[str]] = ROWS) -> Path:
    """A .docx: a paragraph, a table, a paragraph (python-docx)."""
    import docx

    document = docx.Document()
    document.add_paragraph("Population figures for two countries.")
    table = document.add_table(rows=len(rows), cols=len(rows[0]))
    for r, cells in enumerate(rows):
        for c, text in enumerate(cells):
            table.cell(r, c).text = text
    document.add_paragraph("The next census is due in 2026.")
    path.parent.mkdir(parents=True, exist_ok=True)
    document.save(str(path))
    return path


def test_a_table_stands_between_its_paragraphs_as_row_sentences(tmp_path: Path) -> None:
    doc = load_document(write_docx_with_table(tmp_path / "countries.docx"), "countries.docx")

    assert doc.text == "\n\n".join(
        ["Population figures for two countries.", FRANCE_ROW, JAPAN_ROW, "The next census is due in 2026."]
    )


def test_a_merged_cell_is_read_once(tmp_path: Path) -> None:
    import docx

    document = docx.Document()
    table = document.add_table(rows=3, cols=3)
    for c, text in enumerate(["Region", "Country", "Note"]):
        table.cell(0, c).text = text
    table.cell(1, 0).text, table.cell(1, 1).text = "Europe", "France"
    table.cell(1, 2).text = "Largest by area in the EU"
    table.cell(2, 0).text, table.cell(2, 1).text = "Asia", "Japan"
    merged = table.cell(2, 1).merge(table.cell(2, 2))  # "Japan" spans the Country and Note columns
    assert merged.text == "Japan"
    document.save(str(tmp_path / "merged.docx"))

    text = load_document(tmp_path / "merged.docx", "merged.docx").text

    assert text == "Region: Europe; Country: France; Note: Largest by area in the EU\n\nRegion: Asia; Country: Japan"


@pytest.fixture(scope="module")
def rag(tmp_path_factory: pytest.TempPathFactory, embedder) -> RAG:
    base = tmp_path_factory.mktemp("docx-rag")
    write_docx_with_table(base / "corpus" / "countries.docx")
    (base / "corpus" / "notes.txt").write_text(
        "France is a country in western Europe. Its capital, Paris, lies on the Seine.\n", encoding="utf-8"
    )
    build_index([base / "corpus"], index_dir=base / "index", embedder=embedder)
    opened = RAG.open(base / "index", embedder=embedder)
    yield opened
    opened.index.close()


def test_a_question_about_a_cell_is_cited_to_its_row(rag: RAG) -> None:
    answer = rag.ask("What is the population of France?")

    assert not answer.abstained
    first = answer.citations[0]
    assert first.source == "countries.docx" and first.quote == FRANCE_ROW
    assert rag.index.document("countries.docx").text[first.start : first.end] == FRANCE_ROW


def test_the_row_asked_about_is_the_quote_found(rag: RAG) -> None:
    """Rows are found by what their cells mean, not only by the words of one column. (This one is
    answered less confidently than prose: the calibration was fitted on prose.)"""
    answer = rag.ask("What is the capital of Japan?")

    assert answer.candidate == f"{JAPAN_ROW} [1]"
    assert answer.hits[0].chunk.source == "countries.docx"
