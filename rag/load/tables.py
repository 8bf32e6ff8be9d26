"""Tables as text that keeps their meaning: each body row becomes one sentence that repeats the
column headers ("Country: France; Population: 68 million"), so one cell can be retrieved, quoted
and cited with what it means. Shared by the PDF, DOCX and HTML readers.

Rows are separated by a blank line, which `rag.chunk.split_sentences` always treats as a sentence
end: a row is never glued to its neighbour, whatever case its first letter has.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

ROW_SEPARATOR = "\n\n"


def clean_cell(cell: str | None) -> str:
    """A cell's text on one line, whitespace collapsed ("" for a missing cell).

    Example:
        >>> clean_cell(" 68\\n million "), clean_cell(None)
        ('68 million', '')
    """
    return " ".join((cell or "").split())


def row_sentence(headers: Sequence[str], cells: Sequence[str]) -> str:
    """One body row as "Header: cell; Header: cell". Empty cells are left out; a cell under an
    empty header (or beyond the header row) stands alone; a cell equal to its header is not repeated.

    Example:
        >>> row_sentence(["Country", "Population"], ["France", "68 million"])
        'Country: France; Population: 68 million'
        >>> row_sentence(["Name", ""], ["Ada", "note"])
        'Name: Ada; note'
    """
    parts: list[str] = []
    for i, raw in enumerate(cells):
        cell = clean_cell(raw)
        if not cell:
            continue
        header = clean_cell(headers[i]) if i < len(headers) else ""
        parts.append(f"{header}: {cell}" if header and header != cell else cell)
    return "; ".join(parts)


_ROW = re.compile(r"[^:;\n]{1,60}: [^;\n]+(?:; (?:[^:;\n]{1,60}: )?[^;\n]+)+")


def is_row_sentence(text: str) -> bool:
    """Whether `text` reads as a table row written by `row_sentence` (at least two cells, the
    first under its header).

    Example:
        >>> is_row_sentence("Country: France; Population: 68 million"), is_row_sentence("Note: see below.")
        (True, False)
    """
    return _ROW.fullmatch(text.strip()) is not None


def table_text(rows: Sequence[Sequence[str | None]], *, header_rows: int = 1) -> str:
    """The table as row sentences separated by blank lines. The first `header_rows` rows name the
    columns (several header rows are joined per column, "Population 2024"); a table with only a
    header row, or `header_rows=0`, gives each row's cells joined by "; ".

    Example:
        >>> print(table_text([["Country", "Capital"], ["France", "Paris"], ["Japan", "Tokyo"]]))
        Country: France; Capital: Paris
        <BLANKLINE>
        Country: Japan; Capital: Tokyo
    """
    cleaned = [[clean_cell(c) for c in row] for row in rows]
    cleaned = [row for row in cleaned if any(row)]
    if not cleaned:
        return ""
    if header_rows <= 0 or len(cleaned) <= header_rows:
        return ROW_SEPARATOR.join("; ".join(c for c in row if c) for row in cleaned)
    width = max(len(row) for row in cleaned[:header_rows])
    head = cleaned[:header_rows]
    headers = [" ".join(dict.fromkeys(row[i] for row in head if i < len(row) and row[i])) for i in range(width)]
    sentences = [row_sentence(headers, row) for row in cleaned[header_rows:]]
    return ROW_SEPARATOR.join(s for s in sentences if s)
