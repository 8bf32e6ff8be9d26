"""Unit tests of the UI's rendering, escaping and upload checks (rag/ui/render.py, uploads.py), and of
the chat turn's settings reaching the answer (rag/ui/handlers.py called in process over the real model
and the seed index from tests/conftest.py). No server, no browser."""

from __future__ import annotations

import html
import re
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rag import ui
from rag.types import Answer, Chunk, Citation, Document, Hit, Page

HOSTILE = (
    '<script>window.__pwned=1</script> <img src=x onerror="window.__pwned=2"> '
    '[click](javascript:window.__pwned=3) **bold** `code` $x^2$ <a href="javascript:alert(1)">a</a>'
)
TAGS = re.compile(r"<(?!/?p>)[a-z!/]", re.I)  # any tag but the paragraph markdown always writes


def _markdown():
    markdown_it = pytest.importorskip("markdown_it")
    # html=True: raw HTML passes through, as in a chat renderer that trusts its input; the escaping
    # alone must keep the text literal.
    return markdown_it.MarkdownIt("commonmark", {"html": True})


def _rendered_text(rendered: str) -> str:
    return html.unescape(re.sub(r"</?p>", "", rendered)).strip()


def _citation(n: int, doc: str, quote: str, *, source: str = "a.txt", passage_start: int = 0) -> Citation:
    start = doc.index(quote)
    passage = doc[passage_start:]
    return Citation(
        n=n,
        source=source,
        start=start,
        end=start + len(quote),
        page=None,
        quote=quote,
        passage=passage,
        score=0.71,
        passage_start=passage_start,
    )


def _hit(text: str, *, source: str = "a.txt", start: int = 0, dense: float = 0.31) -> Hit:
    chunk = Chunk(
        id=1,
        source=source,
        start=start,
        end=start + len(text),
        text=text,
        page=None,
        sentences=((start, start + len(text)),),
    )
    return Hit(chunk=chunk, score=0.016, dense=dense)


# --- escaping ---------------------------------------------------------------------------------


def test_escape_markdown_renders_hostile_text_literally_and_without_tags() -> None:
    rendered = _markdown().render(ui.escape_markdown(HOSTILE))
    assert not TAGS.search(rendered), rendered
    assert _rendered_text(rendered) == HOSTILE


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=80))
def test_escape_markdown_round_trips_any_single_line(text: str) -> None:
    text = text.strip()
    rendered = _markdown().render(ui.escape_markdown(text))
    assert not TAGS.search(rendered), rendered
    assert _rendered_text(rendered) == text.strip()


def test_escape_markdown_keeps_entities_intact() -> None:
    # Escaping backslashes after html.escape would turn &#x27; into &\#x27;.
    assert ui.escape_markdown('it\'s <b> & "q"') == 'it\'s &lt;b&gt; &amp; "q"'


def test_escape_html_escapes_quotes_for_attributes() -> None:
    assert ui.escape_html('"><img src=x onerror=alert(1)>') == "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"


# --- answers in the chat ----------------------------------------------------------------------


def _answer(doc: str, quotes: list[str], **kw) -> Answer:
    citations = tuple(_citation(n, doc, q) for n, q in enumerate(quotes, start=1))
    text = " ".join(f"{c.quote} [{c.n}]" for c in citations)
    return Answer(
        question="q?", text=text, abstained=False, confidence=0.8, citations=citations, query=kw.get("query", "q?")
    )


def test_answer_markdown_links_each_marker_to_its_citation() -> None:
    doc = "Alpha is first. Beta has 8,000 soldiers. Gamma is last."
    answer = _answer(doc, ["Beta has 8,000 soldiers.", "Gamma is last."])
    md = ui.answer_markdown(answer, turn=3)
    assert md == ("Beta has 8,000 soldiers\\. [\\[1\\]](#cite-3-1) Gamma is last\\. [\\[2\\]](#cite-3-2)")
    rendered = _markdown().render(md)
    assert re.findall(r'<a href="([^"]+)">\[(\d)\]</a>', rendered) == [("#cite-3-1", "1"), ("#cite-3-2", "2")]


def test_answer_markdown_escapes_a_hostile_quote_but_keeps_the_marker() -> None:
    doc = f"Intro. The banner reads {HOSTILE} today."
    quote = doc[doc.index("The banner") :]
    rendered = _markdown().render(ui.answer_markdown(_answer(doc, [quote]), turn=0))
    assert re.findall(r"<a\b[^>]*>", rendered) == ['<a href="#cite-0-1">']
    assert "<script" not in rendered and "<img" not in rendered and "<strong" not in rendered
    assert HOSTILE in html.unescape(rendered)


def test_quote_containing_bracketed_numbers_is_not_mistaken_for_a_marker() -> None:
    doc = "Earlier work [2] found 40 cases. Nothing else."
    answer = _answer(doc, ["Earlier work [2] found 40 cases."])
    pieces = ui.answer_pieces(answer, 0)
    assert "".join(pieces).count("(#cite-0-") == 1
    assert "".join(pieces).startswith("Earlier work \\[2\\] found")


def test_stream_steps_are_growing_prefixes_ending_with_the_whole_message() -> None:
    doc = " ".join(f"word{i}" for i in range(50)) + "."
    pieces = ui.answer_pieces(_answer(doc, [doc]), 0)
    steps = ui.stream_steps(pieces, steps=8)
    assert 2 <= len(steps) <= 9
    assert steps[-1] == "".join(pieces)
    assert all(b.startswith(a.rstrip()) and len(b) > len(a) for a, b in zip(steps, steps[1:]))
    assert ui.stream_steps([]) == [""]


def test_abstention_says_so_and_never_shows_a_marker() -> None:
    answer = Answer(
        question="Capital of Peru?",
        text="The documents do not contain an answer to this question.",
        abstained=True,
        confidence=0.01,
        citations=(),
        hits=(_hit("Some passage."),),
    )
    md = ui.answer_markdown(answer, turn=0)
    assert md.startswith("> **Not found in the documents.**")
    assert "not* an answer" in md and "#cite-" not in md


# --- sources panel ----------------------------------------------------------------------------


def test_citation_card_highlights_the_quote_inside_the_passage() -> None:
    doc = "Intro sentence. Up to 8,000 soldiers have arrived. Outro <b>bold</b>."
    answer = _answer(doc, ["Up to 8,000 soldiers have arrived."], query="earlier question? how many")
    panel = ui.sources_html(answer, turn=2)
    assert "<mark>Up to 8,000 soldiers have arrived.</mark>" in panel
    assert 'data-turn="2" data-n="1"' in panel
    assert "Outro &lt;b&gt;bold&lt;/b&gt;." in panel and "<b>bold" not in panel
    assert "Retrieval query: <q>earlier question? how many</q>" in panel
    assert ui.NOT_AN_ANSWER not in panel


def test_citation_card_uses_passage_offsets() -> None:
    doc = "Same. Same. Other text here."
    c = Citation(
        n=1, source="dir/a.txt", start=6, end=11, page=4, quote="Same.", passage=doc[6:], score=0.5, passage_start=6
    )
    card = ui.citation_card(c, 0)
    assert "<mark>Same.</mark> Other text here." in card
    assert "page 4" in card and ">a.txt<" in card and "score 0.50" in card


def test_sources_panel_for_an_abstention_labels_nearest_passages_as_not_an_answer() -> None:
    hostile = _hit(HOSTILE, source="evil<img src=x onerror=alert(1)>.md")
    answer = Answer(
        question="q",
        text="The documents do not contain an answer to this question.",
        abstained=True,
        confidence=0.1,
        citations=(),
        hits=(hostile, _hit("Two."), _hit("Three."), _hit("Four.")),
        query="q",
    )
    panel = ui.sources_html(answer, turn=0)
    assert ui.NOT_AN_ANSWER in panel
    assert panel.count('class="rag-card rag-nearest"') == 3
    assert "<mark" not in panel
    assert not re.search(r"<(script|img|a)\b", panel), panel
    assert "similarity 0.31" in panel


def test_empty_sources_panel_invites_a_question() -> None:
    assert "Ask a question" in ui.sources_html(None, 0)


# --- document viewer --------------------------------------------------------------------------


def test_document_viewer_marks_the_span_and_escapes_the_rest() -> None:
    text = "<h1>Title</h1>\nFirst line.\nThe quoted <i>sentence</i>.\nLast."
    start = text.index("The quoted")
    end = text.index("\nLast")
    doc = Document(source="notes/<x>.md", text=text, sha256="0")
    out = ui.document_html(doc, start, end, nonce=7)
    assert '<mark id="rag-cited" class="rag-cited">The quoted &lt;i&gt;sentence&lt;/i&gt;.</mark>' in out
    assert "&lt;h1&gt;Title&lt;/h1&gt;" in out and "notes/&lt;x&gt;.md" in out
    assert 'data-opened="7"' in out
    assert not re.search(r"<(h1|i|x)\b", out)


def test_document_viewer_shows_the_page_and_a_window_of_a_long_document() -> None:
    text = "x" * (ui.VIEWER_MAX_CHARS * 2)
    start = ui.VIEWER_MAX_CHARS + 5
    doc = Document(
        source="big.pdf",
        text=text,
        sha256="0",
        pages=(Page(1, 0, ui.VIEWER_MAX_CHARS), Page(2, ui.VIEWER_MAX_CHARS, len(text))),
    )
    out = ui.document_html(doc, start, start + 10)
    assert "page 2" in out and "Showing characters" in out
    assert len(out) < ui.VIEWER_MAX_CHARS + 2000
    assert out.count("<mark") == 2  # the legend and the span
    assert ui.document_html(Document("a.txt", "short", "0"), 0, 5).count("Showing characters") == 0


# --- uploads ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, safe",
    [
        ("notes.md", "notes.md"),
        ("../../etc/passwd.md", "passwd.md"),
        ("..\\..\\windows\\evil.txt", "evil.txt"),
        (".hidden.md", "hidden.md"),
        ("..", "upload"),
        ("", "upload"),
        ("a\x00b\u202e.md", "ab.md"),
        ('<img src=x onerror="a">.md', "_img src_x onerror__a__.md"),
        ("Résumé 2024 (final).docx", "Résumé 2024 (final).docx"),
        ("report.PDF", "report.PDF"),
    ],
)
def test_sanitize_filename(raw: str, safe: str) -> None:
    assert ui.sanitize_filename(raw) == safe


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_sanitized_names_stay_inside_the_uploads_folder(raw: str) -> None:
    name = ui.sanitize_filename(raw)
    assert name and not name.startswith((".", " ")) and "/" not in name and "\\" not in name
    assert name not in (".", "..") and len(name) <= ui.MAX_FILENAME_CHARS
    assert re.fullmatch(r"[\w.\- ()]+", name), name
    assert ui.sanitize_filename(name) == name


def test_long_names_keep_their_suffix() -> None:
    name = ui.sanitize_filename("a" * 500 + ".docx")
    assert name.endswith(".docx") and len(name) == ui.MAX_FILENAME_CHARS


@pytest.mark.parametrize(
    "name, size, problem",
    [
        ("a.md", 10, None),
        ("a.PDF", 10, None),
        ("a.exe", 10, "unsupported file type '.exe'"),
        ("noext", 10, "unsupported file type '(none)'"),
        ("a.txt", 3 * 1024 * 1024, "file is 3 MB, over the 2 MB limit"),
        ("a.txt", 0, "empty file"),
    ],
)
def test_upload_problem(name: str, size: int, problem: str | None) -> None:
    found = ui.upload_problem(name, size, max_mb=2)
    assert (found is None) if problem is None else (found is not None and found.startswith(problem)), found


def test_uploads_are_refused_for_the_reasons_rag_index_skips_a_file(tmp_path) -> None:
    from rag.load import load_documents

    for name, data in [("tool.exe", b"MZ binary"), ("big.txt", b"x" * 3000)]:
        (tmp_path / name).write_bytes(data)
        [skipped] = load_documents([(tmp_path / name, name)], max_bytes=2048)
        assert ui.upload_problem(name, len(data), max_mb=2048 / (1024 * 1024)) == skipped.reason


def test_document_rows_and_footer() -> None:
    docs = [SimpleNamespace(source="a.md", n_chunks=3, added_at=0.0)]
    rows = ui.document_rows(docs)
    assert rows[0][:2] == ["a.md", 3] and re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", rows[0][2])
    assert "1 document**, **7 chunks" in ui.footer_markdown(1, 7)
    assert "2 documents" in ui.footer_markdown(2, 9) and "all-MiniLM-L6-v2" in ui.footer_markdown(2, 9)
    assert ui.format_size(1536) == "1.5 KB" and ui.format_size(12) == "12 bytes"
    assert ui.format_size(20 * 1024 * 1024) == "20 MB"


def test_the_footer_names_the_embedding_backend() -> None:
    from rag.config import RagConfig

    assert "sentence-transformers" not in ui.footer_markdown(1, 7)
    assert f"({ui.escape_markdown(RagConfig().embed_backend)} backend" in ui.footer_markdown(1, 7)
    assert "(torch backend" in ui.footer_markdown(1, 7, backend="torch")


def test_an_upload_over_the_file_count_limit_is_refused_whole() -> None:
    from rag.config import RagConfig
    from rag.ui import upload_count_problem

    limit = RagConfig().max_files_per_upload
    assert upload_count_problem(limit, limit=limit) is None
    message = upload_count_problem(limit + 1, limit=limit)
    assert message is not None and f"over the limit of {limit}" in message and "nothing was added" in message


# --- tentative answers ("not sure") ----------------------------------------------------------


def _tentative(doc: str, quote: str, *, confidence: float = 0.42) -> Answer:
    from rag.replies import TENTATIVE_PREFIX

    c = _citation(1, doc, quote)
    return Answer(
        question="q?",
        text=f"{TENTATIVE_PREFIX} “{c.quote}” [1]",
        abstained=True,
        tentative=True,
        confidence=confidence,
        citations=(c,),
        hits=(_hit(doc),),
        query="q?",
        candidate=f"{c.quote} [1]",
    )


def test_tentative_answer_is_marked_not_sure_with_its_citation_linked() -> None:
    doc = "Intro. Up to 8,000 soldiers may have arrived. Outro."
    md = ui.answer_markdown(_tentative(doc, "Up to 8,000 soldiers may have arrived."), turn=4)
    assert md.startswith(f"> **⚠ {ui.NOT_SURE}.**")
    assert "Not found in the documents" not in md  # not a refusal ...
    rendered = _markdown().render(md)
    assert rendered.startswith("<blockquote>")  # ... and not set like a confident answer
    assert re.findall(r'<a href="([^"]+)">\[(\d)\]</a>', rendered) == [("#cite-4-1", "1")]
    shown = html.unescape(re.sub(r"<[^>]+>", "", rendered))
    assert "“Up to 8,000 soldiers may have arrived.” [1]" in shown and "Low confidence (0.42)" in shown


def test_tentative_answer_escapes_a_hostile_quote_and_links_only_its_marker() -> None:
    doc = f"Intro. Earlier work [1] said {HOSTILE}\n\n    indented # heading\n- item here."
    quote = doc[doc.index("Earlier") :]
    md = ui.answer_markdown(_tentative(doc, quote), turn=0)
    rendered = _markdown().render(md)
    assert re.findall(r"<a\b[^>]*>", rendered) == ['<a href="#cite-0-1">']  # "[1]" in the quote stays text
    assert not re.search(r"<(?!/?(?:p|em|strong|blockquote)>|a href=\"#cite-0-1\">|/a>)[a-z!/]", rendered), rendered
    assert HOSTILE in html.unescape(rendered) and "Earlier work [1] said" in html.unescape(rendered)


def test_tentative_answer_shows_its_passage_in_the_sources_under_a_not_sure_note() -> None:
    doc = "Intro sentence. Up to 8,000 soldiers may have arrived. Outro <b>bold</b>."
    panel = ui.sources_html(_tentative(doc, "Up to 8,000 soldiers may have arrived."), turn=1)
    assert 'class="rag-tentative" role="note">⚠ Not sure' in panel and "(0.42)" in panel
    assert panel.count('class="rag-card"') == 1 and 'data-turn="1" data-n="1"' in panel
    assert "<mark>Up to 8,000 soldiers may have arrived.</mark>" in panel
    assert "Outro &lt;b&gt;bold&lt;/b&gt;." in panel and "<b>bold" not in panel
    assert ui.NOT_AN_ANSWER not in panel and "rag-nearest" not in panel


def test_a_refusal_is_unchanged_by_the_tentative_rendering() -> None:
    refusal = Answer(
        question="q",
        text="The documents do not contain an answer to this question.",
        abstained=True,
        confidence=0.1,
        citations=(),
        hits=(_hit("One."),),
        query="q",
    )
    assert ui.answer_markdown(refusal, 0) == ui.abstention_markdown(refusal)
    assert ui.NOT_SURE not in ui.answer_markdown(refusal, 0) and "rag-tentative" not in ui.sources_html(refusal, 0)
    assert ui.NOT_AN_ANSWER in ui.sources_html(refusal, 0)


def test_a_tentative_answer_with_a_model_configured_stays_marked_not_sure() -> None:
    doc = "Intro. Up to 8,000 soldiers may have arrived. Outro."
    md = ui.generated_answer_markdown(
        _tentative(doc, "Up to 8,000 soldiers may have arrived."), 0, label="SmolLM2-135M (local)"
    )
    assert md.startswith(f"> **⚠ {ui.NOT_SURE}.**") and "(#cite-0-1)" in md and "was not asked" in md


# --- the answer scorer setting, over the real model and seed index ----------------------------

KURSK = "How many North Korean soldiers have arrived in Kursk?"


def _fn(demo, name: str):
    found = [f.fn for f in demo.fns.values() if getattr(f.fn, "__name__", "") == name or f.api_name == name]
    assert found, [f.api_name for f in demo.fns.values()]
    return found[0]


@pytest.fixture()
def spied(seed_rag, monkeypatch, tmp_path):
    """The app over the seed index, recording each config a question is asked with."""
    from rag.ui.blocks import build_app

    configs: list = []
    real_ask = seed_rag.ask

    def ask(question, **kw):
        configs.append(kw["config"])
        return real_ask(question, **kw)

    monkeypatch.setattr(seed_rag, "ask", ask)
    return build_app(seed_rag, reports_dir=tmp_path), configs


def _turn(demo, scorer: str | None, threshold: float, question: str = KURSK) -> list[tuple]:
    import copy

    respond = _fn(demo, "respond")
    return [copy.deepcopy(u) for u in respond(question, [], [], "hybrid", 5, threshold, "extractive", scorer)]


def test_the_scorer_setting_reaches_the_answer_with_its_own_threshold(spied) -> None:
    from rag.answer import FEATURES, READER_FEATURES
    from rag.config import RagConfig

    demo, configs = spied
    heuristic = _turn(demo, "heuristic", 0.3)
    reader = _turn(demo, "Reader ", 0.6)
    assert [c.answer_scorer for c in configs] == ["heuristic", "reader"]
    # The slider sets the chosen scorer's threshold; the other scorer's stays the default.
    assert (
        configs[0].thresholds()[0] == 0.3
        and configs[0].reader_abstain_threshold == RagConfig().reader_abstain_threshold
    )
    assert configs[1].thresholds()[0] == 0.6 and configs[1].abstain_threshold == RagConfig().abstain_threshold
    # Each answer came from its scorer: the confidence features differ in kind.
    h_answer, r_answer = heuristic[-1][2][-1], reader[-1][2][-1]
    assert len(h_answer.features) == len(FEATURES) and len(r_answer.features) == len(READER_FEATURES)
    assert heuristic[-1][1][-1]["role"] == "assistant" and reader[-1][1][-1]["role"] == "assistant"


def test_the_slider_follows_the_chosen_scorer(spied) -> None:
    from rag.config import RagConfig
    from rag.ui.settings import scorer_threshold

    demo, configs = spied
    radio = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "answer-scorer")
    slider = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "threshold")
    assert radio.value == RagConfig().answer_scorer and list(c[0] for c in radio.choices) == ["reader", "heuristic"]
    assert slider.value == RagConfig().thresholds()[0]
    change = next(f for f in demo.fns.values() if f.inputs == [radio] and f.outputs == [slider])
    for name in ("reader", "heuristic"):
        assert change.fn(name) == RagConfig(answer_scorer=name).thresholds()[0]
    assert scorer_threshold(RagConfig(), "heuristic") != scorer_threshold(RagConfig(), "reader")


def test_a_bad_scorer_is_refused_before_asking(spied) -> None:
    from rag.pipeline import BadInput
    from rag.ui.settings import check_answer_scorer

    demo, configs = spied
    with pytest.warns(UserWarning, match="answer_scorer must be one of reader, heuristic, got 'bm25'"):
        updates = _turn(demo, "bm25", 0.5)
    assert len(updates) == 1 and updates[0][0] == KURSK and configs == []
    with pytest.raises(BadInput, match="answer_scorer must be one of reader, heuristic, got 7"):
        check_answer_scorer(7)


def test_a_confidence_in_the_not_sure_band_shows_a_tentative_turn(spied) -> None:
    demo, configs = spied
    confident = _turn(demo, "reader", 0.0)[-1][2][-1]
    assert not confident.abstained and confident.citations
    if confident.confidence >= 1.0:  # pragma: no cover - a saturated logistic leaves no band above it
        pytest.skip("the reader's confidence is 1.0: no threshold puts it in the not-sure band")
    # Just above this question's confidence: inside the reader's "not sure" band.
    threshold = min(1.0, confident.confidence + 0.05)
    last = _turn(demo, "reader", threshold)[-1]
    answer = last[2][-1]
    assert configs[-1].thresholds()[1] <= answer.confidence < configs[-1].thresholds()[0]
    assert answer.tentative and answer.abstained and len(answer.citations) == 1
    message = last[1][-1]["content"]
    assert message.startswith(f"> **⚠ {ui.NOT_SURE}.**") and "(#cite-0-1)" in message
    assert 'class="rag-tentative"' in last[3] and "<mark>" in last[3] and 'data-n="1"' in last[3]


def _labels(demo) -> list[str]:
    return [str(block.label) for block in demo.blocks.values() if getattr(block, "label", None)]


def test_the_seed_examples_are_offered_only_over_the_seed_article(seed_rag, embedder, tmp_path) -> None:
    """Over the demo article the chat offers questions about it; over someone's own files it
    offers none (questions about a news article they never indexed would only puzzle them)."""
    from rag.pipeline import RAG, build_index
    from rag.ui.blocks import build_app

    assert "Examples (seed article)" in _labels(build_app(seed_rag, reports_dir=tmp_path))
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "lighthouse.md").write_text("# Log\n\nThe keeper lit the lamp at dusk on the ninth of May.\n")
    build_index([corpus], index_dir=tmp_path / "index", embedder=embedder)
    own = RAG.open(tmp_path / "index", embedder=embedder)
    try:
        labels = _labels(build_app(own, reports_dir=tmp_path))
    finally:
        own.index.close()
    assert "Examples (seed article)" not in labels and "Chat" in labels


def test_each_example_question_of_the_demo_article_is_answered(seed_rag) -> None:
    from rag.ui.blocks import EXAMPLES, SEED_FILE, examples_for

    assert examples_for([SEED_FILE]) == EXAMPLES
    for question in EXAMPLES:  # the first thing a new user clicks: an answer, not a refusal
        answer = seed_rag.ask(question)
        assert not answer.abstained and answer.citations, (question, answer.confidence)
