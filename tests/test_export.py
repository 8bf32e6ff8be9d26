"""Exporting answers: the Markdown of a real answer from the seed index, rendered by a real
Markdown renderer (markdown-it, CommonMark with GFM tables and strikethrough) to check what a
reader sees; documents that try to inject links, HTML or headings; the JSON read back into
answers; safe file names; and `rag ask --format`."""

from __future__ import annotations

import copy
import html
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt

from rag.export import answer_markdown, conversation_json, conversation_markdown, export_filename
from rag.replies import tentative_text
from rag.types import Answer

KURSK = "How many North Korean soldiers have arrived in Kursk?"
BLINKEN = "Who warned North Korea about sending troops?"
UNANSWERABLE = "What is the best recipe for sourdough bread?"


def render(markdown: str) -> str:
    """The HTML a Markdown viewer shows (raw HTML allowed, as in GitHub-style viewers)."""
    return MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"]).render(markdown)


def shown_text(rendered: str) -> str:
    """What a reader sees of rendered HTML: tags removed, entities decoded, spaces collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", rendered)).split())


def one_line(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def kursk(seed_rag) -> dict[str, Any]:
    answer = seed_rag.ask(KURSK).to_json()
    assert not answer["abstained"] and answer["citations"], answer
    return answer


def hostile_answer() -> dict[str, Any]:
    quote = (
        "Click [here](javascript:alert(1)) or ![x](http://evil/x.png) <script>alert(2)</script> "
        "<img src=x onerror=alert(3)> `rm -rf` *bold* \n# Injected heading\n- injected item\n"
        "[ref]: javascript:alert(4)\n| a | b |\n|---|---|\n| c | d |"
    )
    return {
        "question": "# Who?\n<b>bold</b> [q](javascript:alert(5))",
        "answer": f"{quote} [1] and a fake marker [7](javascript:alert(6))",
        "abstained": False,
        "tentative": False,
        "confidence": 0.5,
        "citations": [
            {
                "n": 1,
                "source": "evil`</code><a href=javascript:alert(7)>x</a>`.txt",
                "start": 10,
                "end": 20,
                "page": 4,
                "quote": quote,
                "passage": quote,
                "score": 0.5,
            }
        ],
        "collection": "c<script>`",
        "scope": {"folder": ["a<b>"]},
    }


def test_markdown_of_a_real_answer_shows_each_quote_with_its_file_and_span(kursk: dict[str, Any]) -> None:
    md = answer_markdown(kursk, number=1)
    rendered = render(md)
    seen = shown_text(rendered)
    assert rendered.startswith("<h2>1. How many North Korean soldiers have arrived in Kursk?</h2>")
    for c in kursk["citations"]:
        line = f'[{c["n"]}] "{one_line(c["quote"])}" — file {c["source"]}, characters {c["start"]}–{c["end"]}'
        assert line in seen
        assert f"<code>{c['source']}</code>" in rendered
        assert "page" not in line  # a .txt file has no pages
    body = md.split("Sources:")[0]
    cited = {c["n"] for c in kursk["citations"]}
    assert {int(n) for n in re.findall(r"\[(\d+)\]", body)} == cited  # the answer's markers, kept as [n]
    assert f"Confidence {kursk['confidence']:.2f}" in seen
    assert "Not sure" not in seen and "Not in the documents" not in seen
    assert "<a " not in rendered  # markers are text, linking nowhere


def test_page_is_given_when_the_document_has_pages(kursk: dict[str, Any]) -> None:
    paged = copy.deepcopy(kursk)
    paged["citations"][0]["page"] = 3
    c = paged["citations"][0]
    assert f"file {c['source']}, page 3, characters {c['start']}–{c['end']}" in shown_text(
        render(answer_markdown(paged))
    )


def test_hostile_document_text_cannot_inject_links_html_or_headings() -> None:
    answer = hostile_answer()
    md = answer_markdown(answer, number=2)
    rendered = render(md)
    for tag in ("<a ", "<img", "<script", "<b>", "<h1", "<table", "<em>", "<strong>bold", "<pre"):
        assert tag not in rendered, (tag, rendered)
    assert rendered.count("<h2>") == 1 and rendered.count("<li>") == 1  # only our heading and source line
    assert "\n#" not in md and "\n-  " not in md
    seen = shown_text(rendered)
    # Shown exactly as the document wrote it (on one line), in the answer and in the source line.
    assert seen.count(one_line(answer["citations"][0]["quote"])) == 2
    assert "[7](javascript:alert(6))" in seen  # a marker of no citation stays text
    assert answer["citations"][0]["source"] in seen and "page 4, characters 10–20" in seen
    assert "collection c<script>`" in seen and "searched only in: folder a<b>" in seen
    assert seen.startswith("2. # Who? <b>bold</b> [q](javascript:alert(5))")


def test_a_kept_marker_cannot_become_a_link_or_define_one() -> None:
    answer = hostile_answer()
    answer["answer"] = "[1]: javascript:alert(1) then [1](javascript:alert(2)) and [1][1] and [1] (x)"
    md = answer_markdown(answer)
    rendered = render(md)
    assert "<a " not in rendered
    assert "[1]: javascript:alert(1) then [1](javascript:alert(2)) and [1][1] and [1] (x)" in shown_text(rendered)


@pytest.mark.parametrize(
    "start",
    ["1. item", "2) item", "- item", "+ item", "* item", "> quoted", "    code", "--- ", "=== ", "| a | b |", "<div>"],
)
def test_an_answer_cannot_open_a_block_of_its_own(start: str) -> None:
    answer = {**hostile_answer(), "answer": f"{start} then [1] text", "question": start}
    answer["citations"][0]["quote"] = start
    rendered = render(answer_markdown(answer))
    assert rendered.count("<p>") == 3 and rendered.count("<li>") == 1  # answer, facts, "Sources:"
    for tag in ("<ol", "<blockquote", "<pre", "<hr", "<h1", "<table", "<div"):
        assert tag not in rendered
    assert shown_text(rendered).startswith(f"{start.strip()} {start.strip()} then [1] text")


def test_refused_and_not_sure_answers_are_marked(seed_rag, kursk: dict[str, Any]) -> None:
    refused = seed_rag.ask(UNANSWERABLE).to_json()
    assert refused["abstained"] and not refused["tentative"]
    seen = shown_text(render(answer_markdown(refused)))
    assert "Not in the documents." in seen and refused["answer"] in seen and "Not sure" not in seen

    unsure = copy.deepcopy(kursk)
    unsure.update(abstained=True, tentative=True, confidence=0.31)
    unsure["citations"] = unsure["citations"][:1]
    unsure["citations"][0]["n"] = 1
    unsure["answer"] = tentative_text(unsure["citations"][0]["quote"])
    seen = shown_text(render(answer_markdown(unsure)))
    assert "Not sure — the confidence is too low to answer" in seen and "Not in the documents" not in seen
    assert "Confidence 0.31" in seen and "[1]" in seen


def test_conversation_markdown_numbers_each_answer_under_the_title(seed_rag, kursk: dict[str, Any]) -> None:
    second = seed_rag.ask(BLINKEN).to_json()
    when = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    md = conversation_markdown([kursk, second], title="Kursk <i>notes</i>", exported_at=when)
    rendered = render(md)
    assert rendered.startswith("<h1>Kursk &lt;i&gt;notes&lt;/i&gt;</h1>")
    headings = re.findall(r"<h2>(.*?)</h2>", rendered)
    assert headings == [f"1. {KURSK}", f"2. {BLINKEN}"]
    assert "2026-03-01T12:30:00+00:00" in shown_text(rendered)
    assert conversation_markdown([kursk]).startswith(f"# {answer_markdown(kursk).splitlines()[0][3:]}")


def test_conversation_json_reads_back_into_the_same_answers(seed_rag, kursk: dict[str, Any], tmp_path: Path) -> None:
    answers = [seed_rag.ask(q) for q in (KURSK, BLINKEN, UNANSWERABLE)]
    path = tmp_path / export_filename("Kursk — Blinken", "json")
    path.write_text(conversation_json([a.to_json() for a in answers], title="Kursk — Blinken"), encoding="utf-8")

    data = json.loads(path.read_bytes().decode("utf-8"))
    assert data["title"] == "Kursk — Blinken" and "—" in path.read_text(encoding="utf-8")  # UTF-8, not \u escapes
    assert datetime.fromisoformat(data["exported_at"]).tzinfo is not None
    assert [a["question"] for a in data["answers"]] == [KURSK, BLINKEN, UNANSWERABLE]
    for original, stored in zip(answers, data["answers"], strict=True):
        back = Answer.from_json(stored)
        assert [c.to_json() for c in back.citations] == [c.to_json() for c in original.citations]
        assert back.to_json() == original.to_json()


def test_export_file_names_are_safe() -> None:
    assert export_filename("What did Blinken warn?", "md") == "what-did-blinken-warn.md"
    assert export_filename("Ünïcödé café — 北京", ".json") == "unicode-cafe.json"
    for title in ("../../etc/passwd", "a\\b/c:d", "  ", "北京", "con", "x" * 300, "word " * 60):
        name = export_filename(title, "md")
        assert name.isascii() and "/" not in name and "\\" not in name and ".." not in name
        assert len(name) <= 80 and name.endswith(".md") and not name.startswith(("-", "."))
    assert export_filename("北京", "md") == "conversation.md" and export_filename("CON", "md") == "con-conversation.md"
    assert not export_filename("word " * 60, "md").startswith("word-" * 15 + "w.")  # cut at a word
    with pytest.raises(ValueError, match=r"got '\.\./md'"):
        export_filename("title", "../md")


def test_ask_format_markdown_prints_the_answer_with_its_sources(seed_rag, kursk: dict[str, Any], capsys) -> None:
    from rag.cli import main

    assert main(["ask", KURSK, "--store", str(seed_rag.index.spec), "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"## {KURSK}\n")
    seen = shown_text(render(out))
    for c in kursk["citations"]:
        assert f'[{c["n"]}] "{one_line(c["quote"])}" — file {c["source"]}' in seen


def test_json_and_format_json_print_the_same_object(seed_rag, capsys) -> None:
    from rag.cli import main

    store = str(seed_rag.index.spec)
    assert main(["ask", KURSK, "--store", store, "--json"]) == 0
    old = json.loads(capsys.readouterr().out)
    assert main(["ask", KURSK, "--store", store, "--format", "json"]) == 0
    new = json.loads(capsys.readouterr().out)
    assert main(["ask", KURSK, "--store", store, "--json", "--format", "json"]) == 0
    both = json.loads(capsys.readouterr().out)
    for data in (old, new, both):
        data.pop("timings_ms")
    assert old == new == both and old["citations"]


def test_json_and_another_format_conflict(seed_rag, capsys) -> None:
    from rag.cli import main

    assert main(["ask", KURSK, "--store", str(seed_rag.index.spec), "--json", "--format", "markdown"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip() == "rag ask: error: --json and --format markdown conflict: give one of them"
