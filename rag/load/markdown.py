"""Markdown files: the text as written, and where its headings are.

The text is not rendered (what is shown and cited is the file itself); only the headings are
found, so the chunker keeps each as the context of its section instead of quoting it.
"""

from __future__ import annotations

import re

_ATX = re.compile(r"^ {0,3}#{1,6}(?:[ \t]+\S.*)?$")  # "# Title", "## Title ##"; not "#hashtag"
_SETEXT_UNDERLINE = re.compile(r"^ {0,3}(?:=+|-{3,})[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def markdown_headings(text: str) -> tuple[tuple[int, int], ...]:
    """(start, end) spans of the ATX (`# Title`) and setext (`Title` over `=====`) headings of
    `text`, outside fenced code blocks; a span covers the heading's whole line(s), marks included.

    Example:
        >>> t = "# Ferries\\n\\nThe ferry leaves at seven.\\n\\nTimes\\n=====\\n\\n```\\n# not a heading\\n```\\n"
        >>> [t[a:b] for a, b in markdown_headings(t)]
        ['# Ferries', 'Times\\n=====']
    """
    spans: list[tuple[int, int]] = []
    fence = ""
    offset = 0
    after_blank = True  # the previous line was blank (or there was none)
    candidate: int | None = None  # where the previous line starts, if it could be a setext heading's text
    for line in text.split("\n"):
        start, offset = offset, offset + len(line) + 1
        opened = _FENCE.match(line)
        if fence or opened:
            closes = bool(fence and opened and opened.group(1)[0] == fence[0] and len(opened.group(1)) >= len(fence))
            fence = "" if closes else fence or (opened.group(1) if opened else "")
            after_blank, candidate = False, None
            continue
        end = start + len(line.rstrip())
        if _ATX.match(line):
            spans.append((start + len(line) - len(line.lstrip()), end))
            after_blank, candidate = False, None
        elif candidate is not None and _SETEXT_UNDERLINE.match(line):
            spans.append((candidate, end))
            after_blank, candidate = False, None
        else:
            lead = len(line) - len(line.lstrip())
            plain = lead < 4 and not line.lstrip().startswith(("- ", "* ", "+ ", ">", "|"))
            candidate = start + lead if line.strip() and after_blank and plain else None
            after_blank = not line.strip()
    return tuple(spans)
