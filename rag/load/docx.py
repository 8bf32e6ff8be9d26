"""Word (.docx) files: paragraphs and tables in the order they stand, each table row as a sentence."""

from __future__ import annotations

import io
import zipfile
from typing import TYPE_CHECKING

from rag.load.common import UnreadableFile, format_size, one_line
from rag.load.tables import table_text

if TYPE_CHECKING:
    from docx.table import Table, _Row

# A .docx whose parts unpack to more than this is refused (zip-bomb guard).
MAX_DOCX_UNPACKED_BYTES = 200 * 1024 * 1024


def docx_text(data: bytes) -> str:
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
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:
        raise UnreadableFile(f"corrupt .docx ({one_line(str(exc)) or type(exc).__name__})") from None
    blocks = [
        block.text.strip() if isinstance(block, Paragraph) else docx_table_text(block)
        for block in document.iter_inner_content()
    ]
    return "\n\n".join(b for b in blocks if b)


def docx_table_text(table: Table) -> str:
    """A table as row sentences (`rag.load.tables.table_text`, its first row naming the columns). A
    cell merged across columns, which python-docx repeats in each column it spans, counts once."""
    return table_text([_row_cells(row) for row in table.rows])


def _row_cells(row: _Row) -> list[str]:
    cells: list[str] = []
    previous = None
    for cell in row.cells:
        cells.append("" if cell._tc is previous else cell.text)
        previous = cell._tc
    return cells
