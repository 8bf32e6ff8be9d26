"""HTML pages as a reader sees them: the main content only, laid out the way a browser lays it out.

What is left out: scripts, styles and hidden elements; and the page's furniture, recognised by the
structure pages give it: `<nav>`, `<aside>`, `<menu>`, site `<header>`/`<footer>` (not those of an
`<article>`), ARIA roles (navigation, banner, contentinfo, complementary, search), class names of
navigation (Sphinx's `related`, `sphinxsidebar`, `footer`, breadcrumbs, DocBook's `navheader`,
Texinfo's `nav-panel`), heading permalinks ("¶"), and blocks that are mostly links (menus, tables
of contents, "Previous / Next" bars). When the page marks its main content (`<main>`,
role=main), only that is read. A page whose every block is furniture is read whole instead:
a page is never dropped by the filter.

How text is laid out: a line break in the source is a space, as in a browser; `<br>` breaks the
line; block elements (paragraphs, list items, headings, cells of layout tables) are paragraphs
separated by a blank line; `<pre>` keeps its lines. A data table becomes one sentence per row
that repeats the column headers (`rag.load.tables.table_text`), in place. Headings h1-h6 (and the
page's `<title>` when the content has no <h1>) are returned as character spans: `rag.chunk`
keeps them as the context of their section, never as sentences to quote.

Why a walk of our own and not an extractor library (`python -m bench.html_extract`, nine manuals
Debian installs): the walk keeps 99.9% of the content's words and none of the furniture (but on
a page that is only a table of contents, read whole), and every paragraph on one line;
trafilatura loses 2-3% of the content, keeps furniture on Texinfo pages, leaves source line
breaks inside half the paragraphs and loses the sentence of the 10,000-<div> page; resiliparse
keeps DocBook and Texinfo navigation and its time grows with the square of the nesting depth
(2 s at 10,000 nested <div>s, 10 s at 20,000). Neither gives headings as spans or labelled rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from rag.load.tables import table_text

if TYPE_CHECKING:
    from bs4 import BeautifulSoup
    from bs4.element import PageElement, Tag

_DROPPED_TAGS = frozenset(
    {"script", "style", "noscript", "template", "head", "title", "svg", "iframe", "object", "embed",
     "canvas", "button", "select", "input", "textarea", "datalist", "dialog", "map", "audio", "video"}
)  # fmt: skip
_BLOCK_TAGS = frozenset(
    {"p", "div", "li", "ul", "ol", "dl", "dd", "dt", "tr", "td", "th", "table", "thead", "tbody", "tfoot",
     "caption", "section", "article", "main", "header", "footer", "blockquote", "address", "figure",
     "figcaption", "details", "summary", "fieldset", "legend", "form", "hr", "center", "body", "html"}
)  # fmt: skip
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_ARTICLE_TAGS = frozenset({"article", "main", "section"})  # a <header>/<footer> inside one is its own
_FURNITURE_TAGS = frozenset({"nav", "aside", "menu"})
# An <aside> that is a footnote or a note (docutils writes footnotes as <aside role="note">) is content.
_NOTE_ROLES = frozenset({"note", "doc-footnote", "doc-endnotes", "doc-note", "doc-tip", "doc-example"})
_FURNITURE_ROLES = frozenset({"navigation", "banner", "contentinfo", "complementary", "search", "menu", "menubar"})
# Whole class names (not parts: "footnote" or "table-header" are content) that mark navigation.
_FURNITURE_CLASSES = frozenset(
    {"related", "sphinxsidebar", "sphinxsidebarwrapper", "footer", "header", "navheader", "navfooter",
     "nav-panel", "nav", "navbar", "navigation", "breadcrumb", "breadcrumbs", "wy-breadcrumbs", "sidebar",
     "menu", "skip-link", "skiplink", "headerlink", "prev-next-area", "rst-footer-buttons", "cookie-banner",
     "site-header", "site-footer", "toc", "section-toc", "mini-toc", "local-toc"}
)  # fmt: skip
# A block is a menu when links hold most of its text and it has several of them.
_LINK_DENSE_SHARE = 0.7
_LINK_DENSE_MIN_LINKS = 3
_LINK_DENSE_TAGS = frozenset({"ul", "ol", "dl", "div", "p", "table", "section", "td", "tr", "header", "footer"})
# Inside a layout table (one that places blocks on the page, not one of data).
_LAYOUT_INSIDE = ("table", "p", "div", "ul", "ol", "pre", "blockquote", *sorted(_HEADINGS))
_PERMALINK_TEXTS = frozenset({"¶", "#", "§", "🔗"})
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)
_SPACE = re.compile(r"[ \t\n\r\f\v\u00a0\u200b]+")  # what a browser collapses (no-break spaces become spaces)


class HtmlText(NamedTuple):
    """A page's text and the character spans of its headings (`text[a:b]` is a heading)."""

    text: str
    headings: tuple[tuple[int, int], ...] = ()


def html_text(html: str) -> str:
    """The page's main content as text (see `html_document` for headings too).

    Example:
        >>> html_text("<nav><a href='/'>Home</a> » <a href='/docs'>Docs</a></nav>"
        ...           "<p>The ferry\\nleaves at <b>seven</b>.</p><ul><li>Pier one</li></ul>")
        'The ferry leaves at seven.\\n\\nPier one'
    """
    return html_document(html).text


def html_document(html: str) -> HtmlText:
    """The page's main content laid out as a browser would, and its headings' spans.

    One iterative walk over the parsed tree: time stays linear and the stack flat however deeply
    the tags nest (a page of 10,000 nested <div>s is hostile input, not a reason to stall).

    Example:
        >>> page = html_document("<title>Harbour</title><h2>Ferries</h2><p>The ferry leaves at seven.</p>")
        >>> page.text, [page.text[a:b] for a, b in page.headings]
        ('Harbour\\n\\nFerries\\n\\nThe ferry leaves at seven.', ['Harbour', 'Ferries'])
    """
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    main = _main_content(soup) or [soup]
    # When a filter leaves nothing but headings, the next, milder one is tried: a page of links
    # (an index, a table of contents) is read with its links rather than dropped.
    measures = _measure(soup)
    for roots, prune, link_dense in ((main, True, True), (main, True, False), ([soup], False, False)):
        page = _layout(_title_tokens(soup, roots) + _walk(roots, measures, prune=prune, link_dense=link_dense))
        if not _only_headings(page):
            break
    return page


# --- tokens the walk emits and the layout turns into text ---------------------------------------


@dataclass(frozen=True)
class _Break:
    """A line break (1) or a paragraph break (2); adjacent breaks merge into the larger."""

    lines: int


@dataclass(frozen=True)
class _Text:
    text: str
    pre: bool = False  # inside <pre>: whitespace kept as written


@dataclass(frozen=True)
class _Raw:
    """Text written as is, between paragraph breaks (a table's row sentences)."""

    text: str


@dataclass(frozen=True)
class _HeadingStart:
    pass


@dataclass(frozen=True)
class _HeadingEnd:
    pass


_Token = _Break | _Text | _Raw | _HeadingStart | _HeadingEnd
_PARAGRAPH = _Break(2)


@dataclass
class _Layout:
    """Writes tokens out as text, collapsing whitespace outside <pre> as a browser does."""

    parts: list[str] = field(default_factory=list)
    length: int = 0
    pending_break: int = 0
    pending_space: bool = False
    heading_start: int | None = None
    in_heading: bool = False
    headings: list[tuple[int, int]] = field(default_factory=list)

    def write(self, text: str) -> None:
        if self.length:
            sep = "\n" * self.pending_break if self.pending_break else " " if self.pending_space else ""
            self.parts.append(sep)
            self.length += len(sep)
        if self.in_heading and self.heading_start is None:
            self.heading_start = self.length
        self.parts.append(text)
        self.length += len(text)
        self.pending_break, self.pending_space = 0, False

    def text(self, token: _Text) -> None:
        if token.pre:
            lines = token.text.split("\n")
            for i, line in enumerate(lines):
                if i:  # a line end written in the source
                    self.pending_break = min(2, self.pending_break + 1) if self.length else 0
                    self.pending_space = False
                line = line.rstrip() if i < len(lines) - 1 else line
                if line:
                    self.write(line)
            return
        collapsed = _SPACE.sub(" ", token.text)
        if collapsed.startswith(" "):
            self.pending_space = True
        body = collapsed.strip(" ")
        if body:
            self.write(body)
            self.pending_space = collapsed.endswith(" ")

    def heading_end(self) -> None:
        if self.heading_start is not None and self.length > self.heading_start:
            self.headings.append((self.heading_start, self.length))
        self.heading_start, self.in_heading = None, False


def _layout(tokens: Iterable[_Token]) -> HtmlText:
    out = _Layout()
    for token in tokens:
        if isinstance(token, _Break):
            out.pending_break = max(out.pending_break, token.lines)
        elif isinstance(token, _Text):
            out.text(token)
        elif isinstance(token, _Raw):
            out.pending_break = max(out.pending_break, 2)
            out.write(token.text)
            out.pending_break = 2
        elif isinstance(token, _HeadingStart):
            out.in_heading, out.heading_start = True, None
        else:
            out.heading_end()
    return HtmlText("".join(out.parts), tuple(out.headings))


def _only_headings(page: HtmlText) -> bool:
    """Whether nothing but headings (and whitespace) is left: the filter took the whole body."""
    rest, prev = [], 0
    for a, b in page.headings:
        rest.append(page.text[prev:a])
        prev = b
    rest.append(page.text[prev:])
    return not "".join(rest).strip()


# --- the walk -----------------------------------------------------------------------------------


def _walk(
    roots: Sequence[Tag], measures: dict[int, _Measure], *, prune: bool, link_dense: bool = False
) -> list[_Token]:
    """The tokens of the text under `roots`, furniture left out when `prune` (and blocks dense
    with links when `link_dense`)."""
    from bs4.element import CData, NavigableString, Tag

    tokens: list[_Token] = []
    stack: list[PageElement | _Exit] = list(reversed(roots))
    pre_depth = article_depth = 0  # open <pre>s; open <article>, <main>, <section>s
    while stack:
        node = stack.pop()
        if isinstance(node, _Exit):
            tokens.extend(node.tokens)
            pre_depth -= node.pre
            article_depth -= node.article
            continue
        if isinstance(node, Tag):
            name = node.name
            if (
                name in _DROPPED_TAGS
                or _is_hidden(node)
                or (prune and _is_furniture(node, measures if link_dense else None, article_depth))
            ):
                continue
            if name == "br":
                tokens.append(_Break(1))
                continue
            if name == "table" and (rows := _data_table(node, measures)) is not None:
                tokens.extend([_Raw(rows)] if rows else [])
                continue
            enter, leave = _block_tokens(name)
            tokens.extend(enter)
            exit_ = _Exit(leave, pre=name == "pre", article=name in _ARTICLE_TAGS)
            stack.append(exit_)
            pre_depth += exit_.pre
            article_depth += exit_.article
            stack.extend(reversed(node.contents))
        elif type(node) in (NavigableString, CData):  # not comments, doctypes, processing instructions
            tokens.append(_Text(str(node), pre=pre_depth > 0))
    return tokens


@dataclass(frozen=True)
class _Exit:
    """What closing a tag writes, and which open-tag counts it closes, waiting on the walk's stack."""

    tokens: tuple[_Token, ...]
    pre: bool = False
    article: bool = False


def _main_content(soup: BeautifulSoup) -> list[Tag]:
    """The outermost elements marked as the main content (`<main>`, role=main), in page order;
    [] when the page marks none. Iterative, like the walk."""
    from bs4.element import Tag

    found: list[Tag] = []
    stack: list[PageElement] = [soup]
    while stack:
        node = stack.pop()
        if not isinstance(node, Tag):
            continue
        if node.name == "main" or _attribute(node, "role") == "main":
            found.append(node)
        elif node.name not in _DROPPED_TAGS:
            stack.extend(reversed(node.contents))
    return found


def _block_tokens(name: str) -> tuple[tuple[_Token, ...], tuple[_Token, ...]]:
    if name in _HEADINGS:
        return (_PARAGRAPH, _HeadingStart()), (_HeadingEnd(), _PARAGRAPH)
    if name in _BLOCK_TAGS or name == "pre":
        return (_PARAGRAPH,), (_PARAGRAPH,)
    return (), ()


def _title_tokens(soup: BeautifulSoup, roots: Sequence[Tag]) -> list[_Token]:
    """The page's <title> as the first heading (the context of what follows), unless the content
    has a top heading of its own (<h1>): the title then only adds the site's name to it."""
    title = soup.find("title")
    text = _words(title) if title else ""
    if not text or any(root.find("h1") for root in roots):
        return []
    return [_HeadingStart(), _Text(text), _HeadingEnd(), _PARAGRAPH]


def _words(tag: Tag) -> str:
    return " ".join(tag.get_text(" ").split())


# --- what is furniture ---------------------------------------------------------------------------


@dataclass
class _Measure:
    """Visible characters under a tag, those inside links, its number of links, and whether it
    holds a block that makes a table around it a layout table."""

    chars: int = 0
    link_chars: int = 0
    links: int = 0
    blocks: bool = False


def _measure(soup: BeautifulSoup) -> dict[int, _Measure]:
    """Every tag's `_Measure`, in one pass over the tree in reverse document order (each node
    comes after all its descendants there), so it stays linear however deep the nesting."""
    from bs4.element import NavigableString, Tag

    measures: dict[int, _Measure] = {}
    nodes = list(soup.descendants)
    for node in reversed(nodes):
        parent = node.parent
        if parent is None:
            continue
        if isinstance(node, Tag):
            if node.name in _DROPPED_TAGS:
                continue
            mine = measures.setdefault(id(node), _Measure())
            if node.name == "a" and node.get("href") is not None:
                mine.link_chars, mine.links = mine.chars, mine.links + 1
            into = measures.setdefault(id(parent), _Measure())
            into.chars += mine.chars
            into.link_chars += mine.link_chars
            into.links += mine.links
            into.blocks = into.blocks or mine.blocks or node.name in _LAYOUT_INSIDE
        elif type(node) is NavigableString:
            measures.setdefault(id(parent), _Measure()).chars += len("".join(node.split()))
    return measures


def _is_hidden(tag: Tag) -> bool:
    return bool(tag.attrs) and (
        "hidden" in tag.attrs
        or _attribute(tag, "aria-hidden") == "true"
        or bool(_HIDDEN_STYLE.search(_attribute(tag, "style")))
    )


def _is_furniture(tag: Tag, measures: dict[int, _Measure] | None, article_depth: int) -> bool:
    name = tag.name
    if name in _FURNITURE_TAGS:
        return not (name == "aside" and tag.attrs and _is_note(tag))
    if name in ("header", "footer") and not article_depth:
        return True  # the site's banner and footer; an article's own header holds its title
    if tag.attrs and (_attribute(tag, "role") in _FURNITURE_ROLES or _classes(tag) & _FURNITURE_CLASSES):
        return True
    if name == "a" and len(tag.contents) == 1 and _is_text(tag.contents[0]):
        # A heading's permalink ("¶"). Not `tag.string`: it recurses down nested tags.
        return str(tag.contents[0]).strip() in _PERMALINK_TEXTS
    if measures is None:
        return False
    m = measures.get(id(tag), _Measure())
    return name in _LINK_DENSE_TAGS and m.links >= _LINK_DENSE_MIN_LINKS and m.link_chars >= _LINK_DENSE_SHARE * m.chars


def _is_text(node: PageElement) -> bool:
    from bs4.element import NavigableString

    return isinstance(node, NavigableString)


def _is_note(tag: Tag) -> bool:
    return _attribute(tag, "role") in _NOTE_ROLES or any("footnote" in c or "note" in c for c in _classes(tag))


def _attribute(tag: Tag, name: str) -> str:
    value = tag.get(name)
    if isinstance(value, list):
        value = " ".join(value)
    return (value or "").strip().lower()


def _classes(tag: Tag) -> set[str]:
    return {c.lower() for c in _attribute(tag, "class").split()} | {_attribute(tag, "id")} - {""}


# --- tables ------------------------------------------------------------------------------------


def _data_table(table: Tag, measures: dict[int, _Measure]) -> str | None:
    """A data table's row sentences ("" for an empty one), or None for a layout table (one that
    holds blocks, other tables or a single column, or says role=presentation), which is read as
    ordinary blocks instead."""
    if _attribute(table, "role") in ("presentation", "none"):
        return None
    rows = list(_own_rows(table))
    cells = [_children(tr, ("td", "th")) for tr, _ in rows]
    if max((len(r) for r in cells), default=0) < 2:
        return None
    if measures[id(table)].blocks:
        return None
    header_rows = 0
    for (_, in_head), row in zip(rows, cells):
        if not (in_head or (row and all(c.name == "th" for c in row))):
            break
        header_rows += 1
    grid = [_expand(row, measures) for row in cells]
    return table_text(grid, header_rows=header_rows or 1)


def _own_rows(table: Tag) -> Iterator[tuple[Tag, bool]]:
    """The table's rows in order (not those of tables nested in its cells), each with whether it
    is in the table's <thead>."""
    for child in _children(table, ("tr", "thead", "tbody", "tfoot")):
        if child.name == "tr":
            yield child, False
        else:
            yield from ((tr, child.name == "thead") for tr in _children(child, ("tr",)))


def _children(tag: Tag, names: tuple[str, ...]) -> list[Tag]:
    from bs4.element import Tag

    return [c for c in tag.contents if isinstance(c, Tag) and c.name in names]


def _expand(row: Sequence[Tag], measures: dict[int, _Measure]) -> list[str]:
    """A row's cell texts, a cell spanning n columns repeated n times so columns line up."""
    out: list[str] = []
    for cell in row:
        text = " ".join(_layout(_walk([cell], measures, prune=False)).text.split())  # inline tags join as shown
        try:
            span = max(1, min(int(_attribute(cell, "colspan") or 1), 64))
        except ValueError:
            span = 1
        out.extend([text] * span)
    return out
