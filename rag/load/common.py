"""What every reader shares: the error a reader raises, size formatting, text decoding."""

from __future__ import annotations


class UnreadableFile(Exception):
    """Raised by a reader: the message is the one-line reason shown to the user."""


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


def one_line(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def decode_text(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise UnreadableFile("binary content (NUL bytes), not text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableFile(f"not valid UTF-8 (invalid byte 0x{data[exc.start]:02x} at offset {exc.start})") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")
