"""Word (.docx) files: paragraphs, then table rows."""

from __future__ import annotations

import io
import zipfile

from rag.load.common import UnreadableFile, format_size, one_line

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

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:
        raise UnreadableFile(f"corrupt .docx ({one_line(str(exc)) or type(exc).__name__})") from None
    blocks = [p.text.strip() for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            blocks.append(" | ".join(cell.text.strip() for cell in row.cells))
    return "\n\n".join(b for b in blocks if b)
