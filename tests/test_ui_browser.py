"""The chat UI in a real browser: Playwright driving Debian's headless Chromium against `rag serve`.

One server (a temporary index over a copy of seeds/, uploads limited to 50 KB) and one browser for
the module; each test opens a fresh page, so chats do not leak between tests. Screenshots go to
conftest.ARTIFACTS (outside the checkout).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from conftest import ARTIFACTS, skip_or_fail
from serving import ENV, browser_missing, build_seed_index, chromium, serving

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
MAX_UPLOAD_MB = "0.05"  # 50 KB, so the oversized upload below is refused
TIMEOUT_MS = 30_000


if (_reason := browser_missing()) is not None:
    skip_or_fail(f"{_reason}; the Makefile installs it", module=True)
from playwright.sync_api import Browser, Page, expect  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = {**ENV, "RAG_MAX_FILE_MB": MAX_UPLOAD_MB}
    index_dir = build_seed_index(tmp_path_factory.mktemp("ui_browser"), ROOT / "seeds", env=env)
    with serving(index_dir, env=env) as (url, _):
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture()
def page(browser: Browser, server: str) -> Iterator[Page]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    off_host: list[str] = []
    page.on(
        "request",
        lambda r: (
            off_host.append(r.url)
            if urlparse(r.url).hostname not in ("127.0.0.1", "localhost", None) and r.url.startswith("http")
            else None
        ),
    )
    page.goto(server, wait_until="domcontentloaded")
    page.locator("#question textarea").wait_for()
    yield page
    context.close()
    assert not off_host, f"the UI made requests off this machine: {off_host}"


def ask(page: Page, question: str) -> None:
    """Type `question`, send it, and wait for its answer to finish (the Sources panel is final)."""
    bots = page.locator('#chat [data-testid="bot"]').count()
    box = page.locator("#question textarea")
    box.fill(question)
    box.press("Enter")
    # The Sources panel is final when it shows this question's retrieval query (after the first
    # question a query from the previous turn is already there).
    page.wait_for_function(
        """([n, q]) => document.querySelectorAll('#chat [data-testid="bot"]').length === n + 1
                && document.querySelector('#sources .rag-query')
                && document.querySelector('#sources .rag-query').innerText.includes(q)
                && !document.querySelector('#question textarea').value""",
        arg=[bots, question],
    )


def documents_in_footer(page: Page) -> int:
    match = re.search(r"(\d+) documents?,", page.locator("#rag-footer").inner_text())
    assert match, page.locator("#rag-footer").inner_text()
    return int(match.group(1))


def remove_document(page: Page, name: str) -> None:
    page.get_by_role("tab", name="Documents").click()
    page.locator("#doc-table").get_by_text(name).filter(visible=True).first.click()  # picks the row to remove
    expect(page.locator("#remove-choice input")).to_have_value(name)
    page.locator("#remove").click()
    expect(page.locator("#upload-status")).to_contain_text(f"Removed {name}")
    expect(page.locator("#doc-table")).not_to_contain_text(name)


def last_bot_message(page: Page) -> str:
    return page.locator('#chat [data-testid="bot"]').last.inner_text()


def upload(page: Page, *files: tuple[str, bytes]) -> str:
    """Upload `(name, data)` files at once on the Documents tab; the status or error toast that follows."""
    page.get_by_role("tab", name="Documents").click()
    before = page.locator("#upload-status").inner_text()
    page.locator("#upload input[type=file]").set_input_files(
        [{"name": name, "mimeType": "application/octet-stream", "buffer": data} for name, data in files]
    )
    page.wait_for_function(  # a finished upload writes ✓/✗ lines; the size limit shows a toast
        """before => { const s = document.querySelector('#upload-status');
                       const toast = document.querySelector('.toast-body');
                       return (s && /[✓✗]/.test(s.innerText) && s.innerText !== before) || toast; }""",
        arg=before,
    )
    toasts = " ".join(t.inner_text() for t in page.locator(".toast-body").all())
    return f"{page.locator('#upload-status').inner_text()} {toasts}".strip()


def in_viewport(page: Page, selector: str) -> bool:
    return page.locator(selector).evaluate(
        """el => { const r = el.getBoundingClientRect();
                   const box = el.closest('.rag-doc-text').getBoundingClientRect();
                   return r.height > 0 && r.top >= 0 && r.bottom <= window.innerHeight
                          && r.top >= box.top - 1 && r.bottom <= box.bottom + 1; }"""
    )


def test_cited_answer_opens_the_document_at_the_quote(page: Page) -> None:
    page.evaluate("""() => {  // record each length the answer bubble shows while it streams in
        window.__lengths = new Set();
        new MutationObserver(() => {
            const bots = document.querySelectorAll('#chat [data-testid="bot"]');
            if (bots.length) window.__lengths.add(bots[bots.length - 1].innerText.length);
        }).observe(document.querySelector('#chat'), {subtree: true, childList: true, characterData: true});
    }""")
    ask(page, "How many North Korean soldiers have arrived in Kursk?")
    assert page.evaluate("() => window.__lengths.size") >= 4, "the answer was not streamed"
    expect(page.locator('#chat [data-testid="bot"]').last).to_contain_text("[1]")
    assert "8,000" in last_bot_message(page)
    card = page.locator("#sources .rag-card").first
    expect(card).to_contain_text("[1]")
    expect(card.locator("mark")).to_contain_text("8,000")
    expect(page.locator("#sources .rag-abstain")).to_have_count(0)
    page.screenshot(path=str(ARTIFACTS / "chat.png"), full_page=True)

    page.locator('#chat a[href^="#cite-"]').first.click()
    cited = page.locator("#doc-viewer mark#rag-cited")
    expect(cited).to_contain_text("8,000")
    page.wait_for_function(
        "() => { const m = document.querySelector('#doc-viewer mark#rag-cited');"
        " const r = m.getBoundingClientRect(); return r.top >= 0 && r.bottom <= innerHeight; }"
    )
    assert in_viewport(page, "#doc-viewer mark#rag-cited")
    assert "#cite" not in page.url, "a citation link navigated"
    page.screenshot(path=str(ARTIFACTS / "chat-document.png"), full_page=True)


def test_clicking_a_card_scrolls_the_viewer_to_a_quote_deep_in_the_document(page: Page) -> None:
    ask(page, "Who met Chinese diplomats at Ambassador Shi Feng's residence?")
    card = page.locator("#sources .rag-card").first
    expect(card.locator("mark")).to_contain_text("Shi Feng")
    card.click()
    expect(page.locator("#doc-viewer mark#rag-cited")).to_contain_text("Shi Feng")
    # The quote sits a third of the way into the document, below the viewer's first screen.
    page.wait_for_function(
        "() => document.querySelector('#doc-viewer mark#rag-cited') &&"
        " document.querySelector('#doc-viewer mark#rag-cited').getBoundingClientRect().top"
        " < innerHeight"
    )
    assert in_viewport(page, "#doc-viewer mark#rag-cited")


def test_off_topic_question_abstains_and_labels_passages_as_not_an_answer(page: Page) -> None:
    ask(page, "What is the boiling point of liquid nitrogen in Kelvin?")
    message = last_bot_message(page)
    assert "Not found in the documents" in message and "do not contain" in message
    assert "[1]" not in message
    expect(page.locator("#sources .rag-abstain")).to_contain_text("not an answer")
    expect(page.locator("#sources .rag-card.rag-nearest").first).to_be_visible()
    expect(page.locator("#sources .rag-card mark")).to_have_count(0)
    page.screenshot(path=str(ARTIFACTS / "abstention.png"), full_page=True)


def test_follow_up_is_searched_with_the_previous_question(page: Page) -> None:
    first = "What are US officials doing about the North Korean troops?"
    ask(page, first)
    ask(page, "What about China?")
    query = page.locator("#sources .rag-query").inner_text()
    assert "US officials" in query and "North Korean troops" in query and "What about China?" in query
    assert len(page.locator('#chat [data-testid="bot"]').all()) == 2


def test_uploaded_document_is_answerable_until_removed(page: Page) -> None:
    documents = documents_in_footer(page)
    fact = b"# Field notes\n\nThe quokka sanctuary on Rottnest Island opened its new visitor centre in 1987.\n"
    status = upload(page, ("quokka notes.md", fact), ("broken.pdf", b"%PDF-1.4 this is not really a PDF"))
    assert re.search(r"✓ quokka notes\.md added", status), status
    assert re.search(r"✗ broken\.pdf not added: (corrupt PDF|could not be parsed)", status), status
    expect(page.locator("#doc-table")).not_to_contain_text("broken.pdf")
    expect(page.locator("#doc-table")).to_contain_text("quokka notes.md")
    assert documents_in_footer(page) == documents + 1
    page.wait_for_timeout(400)  # let the finished event settle before the picture
    page.screenshot(path=str(ARTIFACTS / "documents.png"), full_page=True)

    page.get_by_role("tab", name="Chat").click()
    question = "When did the quokka sanctuary open the new visitor centre?"
    ask(page, question)
    assert "1987" in last_bot_message(page)
    expect(page.locator("#sources .rag-card").first).to_contain_text("quokka notes.md")

    remove_document(page, "quokka notes.md")
    assert documents_in_footer(page) == documents
    page.get_by_role("tab", name="Chat").click()
    ask(page, question)
    assert "Not found in the documents" in last_bot_message(page)
    assert "quokka notes.md" not in page.locator("#sources").inner_text()


def test_hostile_document_is_shown_as_text_and_runs_nothing(page: Page) -> None:
    payload = (
        "The otter festival banner reads <script>window.__pwned=1</script> in large letters. "
        'The otter festival poster shows <img src=x onerror="window.__pwned=2"> beside the stage. '
        "The otter festival ticket link is [click](javascript:window.__pwned=3) for guests.\n"
    )
    status = upload(page, ('otter<img src=x onerror="window.__pwned=4">.md', payload.encode()))
    assert "added" in status, status
    assert "<img" not in page.locator("#doc-table").inner_html()

    page.get_by_role("tab", name="Chat").click()
    for question in (
        "What does the otter festival banner read?",
        "What does the otter festival poster show?",
        "What is the otter festival ticket link?",
    ):
        ask(page, question)
        page.locator("#sources .rag-card").first.click()
        expect(page.locator("#doc-viewer mark#rag-cited")).to_contain_text("otter festival")
    chat, sources, viewer = (page.locator(s).inner_text() for s in ("#chat", "#sources", "#doc-viewer"))
    for literal in (
        "<script>window.__pwned=1</script>",
        '<img src=x onerror="window.__pwned=2">',
        "[click](javascript:window.__pwned=3)",
    ):
        assert literal in chat, literal
        assert literal in sources, literal
        assert literal in viewer, literal
    assert page.evaluate("() => window.__pwned") is None
    page.screenshot(path=str(ARTIFACTS / "hostile.png"), full_page=True)
    assert (
        page.locator(
            "a[href^='javascript' i], #chat img, #sources img, #doc-viewer img, "
            "#chat script, #sources script, #doc-viewer script"
        ).count()
        == 0
    )
    page.get_by_role("tab", name="Documents").click()
    name = (
        page.locator("#doc-table")
        .get_by_text(re.compile(r"^otter.*\.md$"))
        .filter(visible=True)
        .first.inner_text()
        .strip()
    )
    assert name.endswith(".md") and not set('<>"/') & set(name), name
    remove_document(page, name)
    assert page.evaluate("() => window.__pwned") is None


def test_oversized_and_unsupported_uploads_are_refused_with_a_message(page: Page) -> None:
    footer = page.locator('#rag-footer [data-testid="markdown"]')
    before = footer.inner_text()
    status = upload(page, ("huge.md", b"The walrus census counted many walruses. " * 2000))  # 84 KB > 50 KB
    assert re.search(r"maximum allowed size|over the .* limit", status), status
    page.reload(wait_until="domcontentloaded")
    status = upload(page, ("tool.exe", b"MZ" + b"\0" * 64))
    assert "tool.exe" in status and "unsupported file type '.exe'" in status, status
    expect(page.locator("#doc-table")).not_to_contain_text("huge.md")
    expect(page.locator("#doc-table")).not_to_contain_text("tool.exe")
    assert footer.inner_text() == before


def test_first_screen_shows_examples_settings_footer_and_evaluation(page: Page) -> None:
    expect(page.get_by_text("What is the article about?")).to_be_visible()
    page.get_by_text("Who is Kurt Campbell?").click()
    expect(page.locator("#question textarea")).to_have_value("Who is Kurt Campbell?")
    footer = page.locator('#rag-footer [data-testid="markdown"]')
    expect(footer).to_contain_text("all-MiniLM-L6-v2 (onnx-int8 backend")  # the configured backend
    expect(footer).to_contain_text(re.compile(r"\d+ documents?, \d+ chunks"))
    page.get_by_role("tab", name="Evaluation").click()
    # latest.md after a `rag eval` run, else the committed seed.md: either is a report with its table.
    expect(page.locator("#eval-report")).to_contain_text(re.compile(r"Evaluation: \S+"))
    expect(page.locator("#eval-report table").first).to_be_visible()


def test_settings_are_passed_to_the_question(page: Page) -> None:
    question = "Which US official reported that North Korean soldiers had arrived near Ukraine?"
    page.locator("#settings").get_by_text("Settings").click()
    expect(page.get_by_text("Retrieval mode")).to_be_visible()
    threshold = page.locator("#threshold input[type=number]")
    threshold.fill("1")
    threshold.blur()
    ask(page, question)
    # No confidence reaches 1: a refusal, or at most the closest passage marked "Not sure".
    assert re.match(r"(Not found in the documents|⚠ Not sure)", last_bot_message(page).strip())
    threshold.fill("0")
    threshold.blur()
    page.locator("#mode").get_by_label("bm25", exact=True).check()
    ask(page, question)
    assert "Blinken" in last_bot_message(page) and "[1]" in last_bot_message(page)


def test_switching_the_answer_scorer_resets_the_threshold_and_answers_with_it(page: Page) -> None:
    from rag.config import RagConfig

    page.locator("#settings").get_by_text("Settings").click()
    threshold = page.locator("#threshold input[type=number]")
    expect(page.locator("#answer-scorer").get_by_label(RagConfig().answer_scorer, exact=True)).to_be_checked()
    expect(threshold).to_have_value(str(RagConfig().thresholds()[0]))
    page.locator("#answer-scorer").get_by_label("reader", exact=True).check()
    expect(threshold).to_have_value(str(RagConfig(answer_scorer="reader").thresholds()[0]))
    page.locator("#answer-scorer").get_by_label("heuristic", exact=True).check()
    expect(threshold).to_have_value(str(RagConfig(answer_scorer="heuristic").thresholds()[0]))
    ask(page, "How many North Korean soldiers have arrived in Kursk?")
    assert "8,000" in last_bot_message(page) and "[1]" in last_bot_message(page)
    expect(page.locator("#sources .rag-card mark").first).to_contain_text("8,000")
