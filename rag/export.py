"""A conversation kept as a file: Markdown for people, JSON for programs.

Pure functions over answers as `Answer.to_json()` objects (what `rag ask --json` prints and
`rag.conversations` stores), so an export needs no index and no model. Questions, answers, quotes
and file names are untrusted (a document can hold anything): in the Markdown each is put on one
line and escaped, so it shows as typed and cannot become a link, an HTML tag, a heading or a list.
Only the answer's own `[n]` citation markers are written as they are (they link nowhere: the
export defines no link references).

Example:
    >>> a = {"question": "Who warned?", "answer": "Blinken warned [1].", "abstained": False,
    ...      "confidence": 0.9, "citations": [{"n": 1, "source": "news.txt", "start": 0, "end": 16,
    ...      "page": None, "quote": "Blinken warned.", "passage": "", "score": 0.8}]}
    >>> print(answer_markdown(a, number=1))
    ## 1. Who warned?
    <BLANKLINE>
    Blinken warned [1].
    <BLANKLINE>
    Confidence 0.90
    <BLANKLINE>
    Sources:
    <BLANKLINE>
    - [1] "Blinken warned." — file `news.txt`, characters 0–16
    <BLANKLINE>
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from rag.scope import BadScope, Scope

NOT_SURE = "Not sure"
NOT_IN_DOCUMENTS = "Not in the documents"
DEFAULT_TITLE = "Conversation"
MAX_FILENAME = 80

# Inline Markdown: emphasis, code, links and images (`[`, `]`, `!`), tables, strikethrough, maths,
# the `==mark==`, `^sup^` and `{attr}` extensions, headings' `#`. `(`, `)`, `:` mean nothing without
# an unescaped `[`/`<` before them, so prose keeps its parentheses and colons unescaped.
_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]#+!|~$=^])")
_ENTITY = re.compile(r"&(?=#?\w+;)")  # only an `&` that would start an entity
# What opens a block at a line's start (`1. item`, `1) item`, `- item`, `--- rule`); `+`, `#`, `*`
# are escaped anyway, `>` and `<` are entities.
_BLOCK_START = re.compile(r"^(\d{1,9}(?=[.)](?:\s|$))|(?=-))")
_MARKER = re.compile(r"\[(\d+)\]")
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}


def escape(text: object) -> str:
    """`text` on one line, shown literally by a Markdown renderer: the punctuation of inline
    Markdown (emphasis, code, links, images, HTML, tables, maths) backslash-escaped, `<` and `>`
    as entities, and what would open a block at the start of a line (a list item's `-` or `1.`).
    The `.`, `-` and `,` of ordinary prose stay as they are, so the file reads well as text.

    Example:
        >>> print(escape("<b>[x](javascript:alert(1))</b>\\n# h"))
        &lt;b&gt;\\[x\\](javascript:alert(1))&lt;/b&gt; \\# h
        >>> print(escape("1. Up to 8,000 soldiers (AT&T): 2.5%"))
        1\\. Up to 8,000 soldiers (AT&T): 2.5%
    """
    one_line = " ".join(str(text).split())
    escaped = _MARKDOWN_SPECIALS.sub(r"\\\1", one_line)
    escaped = _ENTITY.sub("&amp;", escaped).replace("<", "&lt;").replace(">", "&gt;")
    if escaped[:1] in ("(", ":"):  # after a kept `[n]` marker it would make a link or a link definition
        return "\\" + escaped
    return _BLOCK_START.sub(r"\1\\", escaped, count=1)


def code(text: object) -> str:
    """`text` as an inline code span that its own backticks cannot close (a fence longer than
    any run of backticks inside; code spans show HTML and Markdown literally).

    Example:
        >>> print(code("a`b.txt"))
        ``a`b.txt``
    """
    one_line = " ".join(str(text).split())
    fence = "`" * (max((len(run) for run in re.findall(r"`+", one_line)), default=0) + 1)
    pad = " " if one_line.startswith("`") or one_line.endswith("`") else ""
    return f"{fence}{pad}{one_line}{pad}{fence}"


def answer_markdown(answer: Mapping[str, Any], *, number: int | None = None) -> str:
    """One question and its answer as Markdown: a `## N. question` heading, the answer text with
    its `[n]` markers, a "Not sure" or "Not in the documents" line for a tentative or refused
    answer, the confidence (and collection and scope when set), then the numbered sources with
    each quote, file, page and character span. Ends with a newline."""
    heading = f"## {number}. " if number is not None else "## "
    parts = [heading + escape(answer["question"])]
    if answer.get("tentative"):
        parts.append(f"**{NOT_SURE}** — the confidence is too low to answer; the closest passage is shown.")
    elif answer.get("abstained"):
        parts.append(f"**{NOT_IN_DOCUMENTS}.**")
    citations = list(answer.get("citations") or ())
    parts.append(_answer_text(str(answer["answer"]), {int(c["n"]) for c in citations}))
    parts.append(" · ".join(_facts(answer)))
    if citations:
        parts.append("Sources:")
        parts.append("\n".join(_citation_line(c) for c in citations))
    return "\n\n".join(parts) + "\n"


def _answer_text(text: str, cited: set[int]) -> str:
    """The answer escaped, with the markers of its citations kept as `[n]`."""
    pieces, pos = [], 0
    for m in _MARKER.finditer(text):
        if int(m.group(1)) in cited:
            pieces += [_escape_between(text[pos : m.start()]), m.group(0)]
            pos = m.end()
    pieces.append(_escape_between(text[pos:]))
    return "".join(pieces).strip()


def _escape_between(segment: str) -> str:
    """`escape(segment)` keeping one space where the segment began or ended with whitespace, so
    the text reads the same around the markers it sits between."""
    core = escape(segment)
    if not core:
        return " " if segment else ""
    lead = " " if segment[:1].isspace() else ""
    trail = " " if segment[-1:].isspace() else ""
    return f"{lead}{core}{trail}"


def _facts(answer: Mapping[str, Any]) -> list[str]:
    confidence = float(answer.get("confidence") or 0.0)
    facts = [f"Confidence {confidence:.2f}"]
    if answer.get("collection"):
        facts.append(f"collection {code(answer['collection'])}")
    if answer.get("scope"):
        facts.append(f"searched only in: {escape(_scope_words(answer['scope']))}")
    return facts


def _scope_words(scope: Any) -> str:
    """The scope in words (`Scope.describe`); a stored object that is no longer a valid scope is
    shown as its fields rather than failing the export."""
    try:
        return Scope.from_json(scope).describe()
    except BadScope:
        if isinstance(scope, Mapping):
            return ", ".join(f"{k} {v}" for k, v in scope.items())
        return str(scope)


def _citation_line(c: Mapping[str, Any]) -> str:
    """`- [n] "quote" — file `source`, page P, characters start–end` (no page when unpaged)."""
    page = f", page {int(c['page'])}" if c.get("page") is not None else ""
    return (
        f'- [{int(c["n"])}] "{escape(c["quote"])}" — file {code(c["source"])}{page}, '
        f"characters {int(c['start'])}–{int(c['end'])}"
    )


def conversation_markdown(
    answers: Sequence[Mapping[str, Any]], *, title: str | None = None, exported_at: datetime | None = None
) -> str:
    """A whole conversation: `# title`, when it was exported, then each answer numbered from 1.
    The title defaults to the first question."""
    when = _when(exported_at)
    count = f"{len(answers)} question" + ("" if len(answers) == 1 else "s")
    parts = [f"# {escape(_title(answers, title))}", f"*Exported {when} · {count}*"]
    parts += [answer_markdown(a, number=i).rstrip("\n") for i, a in enumerate(answers, start=1)]
    return "\n\n".join(parts) + "\n"


def conversation_json(
    answers: Sequence[Mapping[str, Any]], *, title: str | None = None, exported_at: datetime | None = None
) -> str:
    """`{"title", "exported_at", "answers": [the to_json objects in order]}`, indented, with
    non-ASCII text as it is (write it as UTF-8). Each answer reads back with `Answer.from_json`.
    `exported_at` (default: now) is the time `conversation_markdown` was given for the same export."""
    data = {
        "title": _title(answers, title),
        "exported_at": _when(exported_at),
        "answers": [dict(a) for a in answers],
    }
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def _when(exported_at: datetime | None) -> str:
    """The export time in ISO 8601 (UTC now by default; a naive time is taken as UTC)."""
    when = exported_at or datetime.now(UTC)
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).isoformat(timespec="seconds")


def _title(answers: Sequence[Mapping[str, Any]], title: str | None) -> str:
    if title and title.strip():
        return " ".join(title.split())
    return " ".join(str(answers[0]["question"]).split()) if answers else DEFAULT_TITLE


def export_filename(title: str, ext: str) -> str:
    """A file name for an export of `title`: lowercase ASCII words joined by "-", no path
    separators, at most 80 characters with the extension; "conversation" when nothing is left.

    Example:
        >>> export_filename("What did Blinken warn?", "md")
        'what-did-blinken-warn.md'
        >>> export_filename("../../etc/passwd", ".json")
        'etc-passwd.json'
    """
    suffix = ext.lstrip(".")
    if not re.fullmatch(r"[A-Za-z0-9]{1,10}", suffix):
        raise ValueError(f"file extension must be 1-10 letters or digits, got {ext!r}")
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii")
    stem = "-".join(re.findall(r"[a-z0-9]+", ascii_title.lower()))
    room = MAX_FILENAME - len(suffix) - 1
    if len(stem) > room:
        cut = stem[:room]
        stem = cut.rsplit("-", 1)[0] if "-" in cut and stem[room] != "-" else cut
    stem = stem.strip("-") or "conversation"
    if stem in _WINDOWS_RESERVED:
        stem += "-conversation"
    return f"{stem}.{suffix.lower()}"
