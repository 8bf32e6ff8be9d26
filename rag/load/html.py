"""HTML pages: the visible text, blocks as paragraphs."""

from __future__ import annotations

import re
from dataclasses import dataclass

_DROPPED_TAGS = {"script", "style", "noscript", "template", "head", "svg", "iframe", "object"}
_BLOCK_TAGS = {
    "p",
    "div",
    "br",
    "li",
    "ul",
    "ol",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "tr",
    "table",
    "section",
    "article",
    "header",
    "footer",
    "blockquote",
    "pre",
    "title",
    "dd",
    "dt",
}


def html_text(html: str) -> str:
    """Visible text only: scripts, styles and hidden templates dropped; blocks become paragraphs.

    One iterative walk over the parsed tree: time stays linear and the stack flat however deeply
    the tags nest (a page of 10,000 nested <div>s is hostile input, not a reason to stall).
    """
    from bs4 import BeautifulSoup
    from bs4.element import CData, NavigableString, Tag

    soup = BeautifulSoup(html, "html.parser")
    parts: list[str] = []
    stack: list[object] = [soup]
    while stack:
        node = stack.pop()
        if isinstance(node, _Emit):
            parts.append(node.text)
        elif isinstance(node, Tag):
            if node.name in _DROPPED_TAGS:
                title = node.find("title") if node.name == "head" else None
                title_text = title.get_text(" ", strip=True) if title else ""
                if title_text:
                    parts.append(title_text + "\n\n")
                continue
            if node.name in _BLOCK_TAGS:
                parts.append("\n\n")
                stack.append(_Emit("\n\n"))
            stack.extend(reversed(node.contents))
        elif type(node) in (NavigableString, CData):  # not comments, doctypes, processing instructions
            parts.append(str(node))
    lines = [" ".join(line.split()) for line in "".join(parts).split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


@dataclass(frozen=True)
class _Emit:
    """A closing block tag's paragraph break, waiting on the walk's stack."""

    text: str
