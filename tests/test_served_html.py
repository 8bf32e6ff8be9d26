"""No document can inject markup: script, event-handler and javascript: payloads in the text and the
names of indexed documents come out of every rendering surface escaped.

Documents of every format carry `<script>`, `<img onerror>`, `javascript:` links, `"><svg onload>`
and friends inside the very sentence that answers a question, each with a unique marker, and two
file names are payloads themselves (folder indexing keeps names as they are; only uploads are
renamed). The answers are rendered (answer markdown, source cards, nearest passages, document
viewer, documents table) first through `rag.ui` with real answers, then as served by a running
`rag serve`, driven over Gradio's queue protocol the way the browser drives it, and every HTML
fragment is parsed: only the UI's own tags and attributes may appear, never `<script`.
"""

from __future__ import annotations

import re
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import write_docx, write_pdf

from rag import ui
from rag.pipeline import RAG, build_index

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # bench/ is a folder of scripts beside the package, not installed

from bench.load import BrowserSession, rag_server  # noqa: E402

# source -> (question, figure in the answer, marker in the answering sentence)
DOCS = {
    "tower.txt": ("How many messages does the Vexmoor signal tower transmit every day?", "451", "XSS1"),
    "ferry.html": ("How many cars does the Quillmark ferry carry on each crossing?", "88", "XSS2"),
    "mill.pdf": ("How many sacks of flour does the Brackenfield mill grind a week?", "615", "XSS3"),
    "choir.docx": ("How many songs did the Ostrava choir sing at the gala?", "23", "XSS4"),
    "<img src=x onerror=alert('N1')>.txt": ("How many hours a day does the Ketterly lantern burn?", "19", "XSS5"),
    "\"><svg onload=alert('N2')>.md": ("How many plum trees does the Pellow orchard grow?", "733", "XSS6"),
}
TEXTS = {
    "tower.txt": "The Vexmoor signal tower <script>alert('XSS1')</script> transmits 451 messages every day.\n",
    "ferry.html": "<html><body><p>The Quillmark ferry &lt;img src=x onerror=alert('XSS2')&gt; carries 88 cars on each "
    "crossing.</p><script>alert('never-indexed')</script></body></html>",
    "mill.pdf": "The Brackenfield mill \"><svg onload=alert('XSS3')> grinds 615 sacks of flour a week.",
    "choir.docx": "The Ostrava choir [tickets](javascript:alert('XSS4')) sang 23 songs at the gala.",
    "<img src=x onerror=alert('N1')>.txt": "The Ketterly lantern <a href=\"javascript:alert('XSS5')\">burns</a> "
    "for 19 hours a day.\n",
    "\"><svg onload=alert('N2')>.md": "The Pellow orchard <iframe src=javascript:alert('XSS6')></iframe> grows "
    "733 plum trees.\n",
}
LINK_ONLY = {"choir.docx"}  # its payload is a Markdown link: no "<" to escape
OFF_TOPIC = "What is the airspeed velocity of an unladen swallow?"
UPLOAD_NAME = "<script>alert('N3')<script>.md"
UPLOAD_TEXT = "The Dunmore beacon <script>alert('XSS7')</script> shines on 41 nights a year.\n"
UPLOAD_QUESTION = "On how many nights a year does the Dunmore beacon shine?"
# What the UI itself writes; anything else in served HTML came from a document.
UI_TAGS = {"div", "span", "button", "mark", "q", "p", "b"}
UI_ATTRIBUTES = {"class", "id", "type", "title", "role", "data-turn", "data-n", "data-hit", "data-opened"}


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    handle_startendtag = handle_starttag


def assert_inert_html(html: str) -> None:
    """`html` holds only the UI's own tags and attributes: no script, no handler, no URL."""
    assert "<script" not in html.lower()
    parser = _Tags()
    parser.feed(html)
    parser.close()
    for tag, attrs in parser.tags:
        assert tag in UI_TAGS, (tag, html[:400])
        for name, _ in attrs:
            assert name in UI_ATTRIBUTES, (tag, name, html[:400])


def assert_inert_markdown(markdown: str) -> None:
    """Chat markdown: no raw tag at all (documents' "<" arrive as &lt;), and the only links are
    the UI's own citation markers."""
    assert "<" not in markdown, markdown[:400]
    for target in re.findall(r"(?<!\\)\]\(([^)]*)\)", markdown):
        assert target.startswith("#cite-"), (target, markdown[:400])


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory, embedder) -> Path:
    base = tmp_path_factory.mktemp("served_html")
    docs = base / "docs"
    docs.mkdir()
    for source, text in TEXTS.items():
        if source.endswith(".pdf"):
            write_pdf(docs / source, [text])
        elif source.endswith(".docx"):
            write_docx(docs / source, [text])
        else:
            (docs / source).write_text(text, encoding="utf-8")
    report = build_index([docs], index_dir=base / "index", embedder=embedder)
    assert sorted(report.stats.added) == sorted(DOCS) and not report.skipped
    return base / "index"


@pytest.fixture(scope="module")
def rag(index_dir: Path, embedder) -> RAG:
    opened = RAG.open(index_dir, embedder=embedder)
    yield opened
    opened.index.close()


@pytest.mark.parametrize("source", list(DOCS))
def test_answers_quoting_a_payload_render_escaped(rag: RAG, source: str) -> None:
    question, figure, marker = DOCS[source]
    answer = rag.ask(question)
    assert not answer.abstained and answer.citations[0].source == source, answer.text
    assert figure in answer.text and marker in answer.citations[0].quote  # the payload is in the quote

    markdown = ui.answer_markdown(answer, 0)
    assert_inert_markdown(markdown)
    assert marker in markdown
    panel = ui.sources_html(answer, 0)
    assert_inert_html(panel)
    c = answer.citations[0]
    assert marker in panel and ("&lt;" in panel or source in LINK_ONLY)  # the escaped form is what shows
    viewer = ui.document_html(rag.index.document(c.source), c.start, c.end)  # type: ignore[arg-type]
    assert_inert_html(viewer)
    assert marker in viewer and 'id="rag-cited"' in viewer


def test_nearest_passages_and_the_document_list_render_escaped(rag: RAG) -> None:
    answer = rag.ask(OFF_TOPIC)
    assert answer.abstained and answer.hits
    assert_inert_markdown(ui.abstention_markdown(answer))
    panel = ui.sources_html(answer, 0)
    assert_inert_html(panel)
    assert ui.NOT_AN_ANSWER in panel and re.search(r"XSS\d", panel)
    for hit in answer.hits:
        document = rag.index.document(hit.chunk.source)
        assert document is not None
        assert_inert_html(ui.document_html(document, hit.chunk.start, hit.chunk.end))
    rows = ui.document_rows(rag.index.documents())
    assert {r[0] for r in rows} == set(DOCS)  # names are data: the table shows them as text
    assert_inert_markdown(ui.footer_markdown(len(rows), len(rag.index)))


# ----------------------------------------------------------------------------------------------
# As served


@pytest.fixture(scope="module")
def url(index_dir: Path):
    with rag_server(index_dir) as running:
        yield running.url


def _chat(url: str, question: str) -> tuple[BrowserSession, list[str], str, list[str]]:
    """Ask in a fresh tab: (the tab, the chat messages' markdown, the Sources panel, raw messages)."""
    tab = BrowserSession(url)
    settings = ["hybrid", 5, 0.464, "extractive", "heuristic", [], [], None]  # all documents and types; collection
    outputs, raw = tab.call("question", "submit", [question, [], None, *settings])
    messages = [part["text"] for m in outputs[1] for part in m["content"] if part.get("type") == "text"]
    return tab, messages, outputs[-1], raw


@pytest.mark.slow
@pytest.mark.parametrize("source", list(DOCS))
def test_served_chat_sources_and_viewer_carry_no_markup(url: str, source: str) -> None:
    question, figure, marker = DOCS[source]
    tab, messages, panel, raw = _chat(url, question)
    try:
        assert len(messages) == 2 and figure in messages[1] and marker in messages[1], messages
        for markdown in messages:
            assert_inert_markdown(markdown)
        assert_inert_html(panel)
        assert marker in panel
        (viewer,), raw_viewer = tab.call("sources", "cite", [None], event_data={"turn": 0, "n": 1})
        assert_inert_html(viewer)
        assert marker in viewer and 'id="rag-cited"' in viewer
        served = "".join(raw + raw_viewer)
        assert "<script" not in served.lower()
        assert "&lt;" in served or source in LINK_ONLY
    finally:
        tab.close()


@pytest.mark.slow
def test_served_nearest_passages_and_documents_table_carry_no_markup(url: str) -> None:
    tab, messages, panel, raw = _chat(url, OFF_TOPIC)
    try:
        for markdown in messages:
            assert_inert_markdown(markdown)
        assert_inert_html(panel)
        assert ui.NOT_AN_ANSWER in panel and re.search(r"XSS\d", panel)
        for k in range(3):
            (viewer,), more = tab.call("sources", "cite", [None], event_data={"turn": 0, "hit": k})
            assert_inert_html(viewer)
            raw += more
        (table, _, footer, *_), more = tab.call("reload-report", "click", [None])  # as the page load fills it
        raw += more
        assert tab.component("doc-table")["props"]["datatype"] == "str"  # cells are shown as text, not HTML
        assert {row[0] for row in table["data"]} >= set(DOCS)
        assert_inert_markdown(footer)
    finally:
        tab.close()
    assert "<script" not in "".join(raw).lower()


@pytest.mark.slow
def test_a_hostile_upload_is_renamed_and_its_text_served_escaped(url: str, tmp_path: Path) -> None:
    upload = tmp_path / UPLOAD_NAME
    upload.write_text(UPLOAD_TEXT, encoding="utf-8")
    tab = BrowserSession(url)
    try:
        status = tab.upload_documents([upload])  # Gradio's upload route and the UI both clean the name
        assert_inert_markdown(status)
        assert "added" in status and "N3" in status, status
    finally:
        tab.close()
    tab, messages, panel, raw = _chat(url, UPLOAD_QUESTION)
    try:
        assert "41" in messages[1] and "XSS7" in messages[1], messages
        for markdown in messages:
            assert_inert_markdown(markdown)
        assert_inert_html(panel)
        assert "N3" in panel and "&lt;script&gt;" in panel
        (viewer,), more = tab.call("sources", "cite", [None], event_data={"turn": 0, "n": 1})
        assert_inert_html(viewer)
        assert "XSS7" in viewer
    finally:
        tab.close()
    assert "<script" not in "".join(raw + more).lower()


@pytest.mark.parametrize(
    "html",
    [
        "<div><img src=x onerror=alert(1)></div>",
        '<span onclick="x()">a</span>',
        '<a href="javascript:alert(1)">x</a>',
        "<SCRIPT>alert(1)</SCRIPT>",
        "<svg onload=alert(1)>",
        '<mark style="background:url(x)">a</mark>',
    ],
)
def test_the_html_check_catches_injected_markup(html: str) -> None:
    with pytest.raises(AssertionError):
        assert_inert_html(html)


@pytest.mark.parametrize("markdown", ["[x](javascript:alert(1))", "<b>bold</b>", "![i](http://x/y.png)"])
def test_the_markdown_check_catches_injected_markup(markdown: str) -> None:
    with pytest.raises(AssertionError):
        assert_inert_markdown(markdown)
