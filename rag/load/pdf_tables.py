"""Tables in a PDF's text layer: found with pdfplumber (ruled tables: cell borders, lines), written
as row sentences (`rag.load.tables.table_text`) where their cells stood, the page's other text
unchanged.

Finding tables parses every character and line of a page in pure Python, many times slower than
pypdf's text extraction (bench/pdf_load.py), so it runs only on pages that draw enough lines or
rectangles to be ruled into a table (`may_hold_table`, counted while pypdf extracts the text): a
page of prose is never handed to pdfplumber.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Sequence
from typing import Any

from rag.load.tables import ROW_SEPARATOR, table_text

# Path operators that draw a table's rules: a rectangle ("re": one per cell when cells are boxed)
# and a line segment ("l").
RULE_OPERATORS = frozenset({b"re", b"l"})
MIN_RULES = 4  # the fewest that can rule two cells
MAX_RULES = 20_000  # more is a chart or a drawing: not worth parsing the page for a table


def may_hold_table(rules: int) -> bool:
    """Whether a page drawing `rules` rectangles and line segments is worth a search for tables.

    Example:
        >>> may_hold_table(0), may_hold_table(12), may_hold_table(1_000_000)
        (False, True, False)
    """
    return MIN_RULES <= rules <= MAX_RULES


class TableFinder:
    """pdfplumber over one PDF's bytes, opened on first use and closed with the `with` block."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pdf: Any = None

    def __enter__(self) -> TableFinder:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pdf is not None:
            self._pdf.close()

    def page_text(self, index: int, text: str) -> str:
        """`text` (pypdf's text of page `index`, 0-based) with each table pdfplumber finds on the page
        written as row sentences in its place. Should pdfplumber fail on the page, `text` as it was:
        its cells are still there, only not as sentences."""
        try:
            if self._pdf is None:
                import pdfplumber

                self._pdf = pdfplumber.open(io.BytesIO(self._data))
            page = self._pdf.pages[index]
            tables = [t for t in page.find_tables() if _tokens(t.extract())]
            if not tables:
                return text
            rows = [t.extract() for t in tables]
            spliced = splice_tables(text, rows)
            return spliced if spliced is not None else _layout_text(page, tables, rows)
        except Exception:  # a parser bug on a hostile page: keep the text we have
            return text


def splice_tables(text: str, tables: Sequence[Sequence[Sequence[str | None]]]) -> str | None:
    """`text` with, for each table (rows of cells), the run of whole lines holding exactly its cells'
    words replaced by its row sentences, set apart by blank lines. None when a table's words are not
    found as whole lines (the text layer mixes them with other text).

    Example:
        >>> page = "Sizes.\\nCountry Population\\nFrance 68 million\\nSource: census."
        >>> print(splice_tables(page, [[["Country", "Population"], ["France", "68 million"]]]))
        Sizes.
        <BLANKLINE>
        Country: France; Population: 68 million
        <BLANKLINE>
        Source: census.
    """
    lines = text.split("\n")
    for rows in tables:
        found = _line_run(lines, Counter(_tokens(rows)))
        if found is None:
            return None
        first, last = found
        lines[first : last + 1] = ["", table_text(rows), ""]
    spliced = "\n".join(lines)
    while "\n\n\n" in spliced:
        spliced = spliced.replace("\n\n\n", ROW_SEPARATOR)
    return spliced.strip()


def _tokens(rows: Sequence[Sequence[str | None]]) -> list[str]:
    return [word for row in rows for cell in row for word in (cell or "").split()]


def _line_run(lines: Sequence[str], words: Counter[str]) -> tuple[int, int] | None:
    """The first (first, last) line indices whose words are exactly `words`, in any order (a cell
    that wraps puts its second line after the row's first lines)."""
    total = sum(words.values())
    for first in range(len(lines)):
        seen: Counter[str] = Counter()
        count = 0
        for last in range(first, len(lines)):
            line_words = lines[last].split()
            if last == first and not line_words:
                break
            seen.update(line_words)
            count += len(line_words)
            if count > total or any(seen[w] > words[w] for w in line_words):
                break
            if count == total:
                return first, last
    return None


def _layout_text(page: Any, tables: Sequence[Any], rows: Sequence[Sequence[Sequence[str | None]]]) -> str:
    """The page as pdfplumber lays it out: its lines of text outside the tables and the tables' row
    sentences, top to bottom."""
    outside = page
    for table in tables:
        outside = outside.outside_bbox(table.bbox)
    blocks: list[tuple[float, str, bool]] = [
        (line["top"], line["text"], False) for line in outside.extract_text_lines()
    ]
    blocks += [(table.bbox[1], table_text(cells), True) for table, cells in zip(tables, rows)]
    parts: list[str] = []
    previous_table = True
    for _, block, is_table in sorted(blocks, key=lambda b: b[0]):
        if parts:
            parts.append(ROW_SEPARATOR if is_table or previous_table else "\n")
        parts.append(block)
        previous_table = is_table
    return "".join(parts)
