"""Questions about a whole document ("What is the article about?") answered with its opening,
when the index or the scope holds one document; over several, answered as any question."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rag.overview import _byline_kind, asks_for_author, asks_for_conclusion, asks_for_overview
from rag.scope import Scope

LEAD = "US Secretary of State Antony Blinken reported on Thursday that up to 8,000 North Korean soldiers"
SIGNATURE = "Dr. Marwa El-Shinawy – Academic and Writer"  # the seed article's last line
BRIDGE = (
    "By Jane Doe\n\nThe Varnholm bridge reopens in May after two years of repairs. Its new deck carries "
    "trams as well as cars.\nRelated Articles"
)
OTHER = (
    "Page 1 of 3\n\nThe harbour ferry timetable changes in spring. The Gannet ferry carries 40 cars and leaves "
    "every hour from the north pier. Tickets are sold on board and at the pier office."
)


@pytest.mark.parametrize(
    "question",
    [
        "What is the article about?",
        "what's this document about",
        "Tell me what the report is about.",
        "What does the article say?",
        "Summarize the article.",
        "Please summarise this",
        "Give me a short summary of the document",
        "overview?",
        "What are the main points of the paper?",
        "What is the main point of the article?",
        "What's the article's key message?",
        "What is the central argument of this essay?",
        "Tell me about this article",
        "tell me more about the report",
        "TL;DR",
    ],
)
def test_questions_about_the_whole_document_are_recognised(question: str) -> None:
    assert asks_for_overview(question)


@pytest.mark.parametrize(
    "question",
    [
        "What is the article about Kursk saying?",
        "Who wrote the article?",
        "What did Blinken warn?",
        "Summarize what Blinken said about China.",
        "What is the summary judgment in the case?",
        "What is a report?",
        "What is the main point of contention between China and the US?",
        "Tell me about Kurt Campbell",
        "Tell me more about it",  # in a chat, about what the previous question asked (rag.followup)
    ],
)
def test_questions_about_something_in_it_are_not(question: str) -> None:
    assert not asks_for_overview(question)


def test_over_one_document_the_opening_is_quoted_and_cited(seed_rag) -> None:
    searched = seed_rag.ask("What did the article say about China?")  # an ordinary question: searched
    answer = seed_rag.ask("What is the article about?")
    assert not answer.abstained and not answer.tentative
    first = answer.citations[0]
    assert first.quote.startswith(LEAD) and answer.text.startswith(LEAD) and "[1]" in answer.text
    assert first.passage[first.start - first.passage_start : first.end - first.passage_start] == first.quote
    assert len(answer.text.split()) <= seed_rag.config.answer_max_words + 2 * len(answer.citations)
    assert 0.5 < answer.confidence <= 1.0  # a news lead is close to the whole article's meaning
    assert not searched.text.startswith(LEAD) or searched.citations[0].start != 0


def test_over_several_documents_only_a_scope_to_one_makes_it_an_overview(tmp_path: Path, embedder, seed_path) -> None:
    from rag.pipeline import RAG, build_index

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(seed_path, corpus / seed_path.name)
    (corpus / "ferry.txt").write_text(OTHER, encoding="utf-8")
    build_index([corpus], index_dir=tmp_path / "index", embedder=embedder)
    rag = RAG.open(tmp_path / "index", embedder=embedder)
    try:
        unscoped = rag.ask("What is this document about?")
        assert not (unscoped.citations and unscoped.citations[0].quote.startswith("Page 1 of 3"))
        assert not unscoped.text.startswith(LEAD)  # which document is for the user to say
        ferry = rag.ask("What is this document about?", scope=Scope(sources=("ferry.txt",)))
        assert ferry.citations[0].source.endswith("ferry.txt") and ferry.citations[0].start == 0
        assert ferry.citations[0].quote.startswith("Page 1 of 3")
        seed = rag.ask("Summarize the article", scope=Scope(sources=(seed_path.name,)))
        assert seed.text.startswith(LEAD) and 0.0 < seed.confidence <= 1.0
    finally:
        rag.index.close()


@pytest.mark.parametrize(
    ("question", "asks"),
    [
        ("Who wrote the article?", True),
        ("who wrote this", True),
        ("Who is the author of the report?", True),
        ("Who's the author?", True),
        ("What is the author's name?", True),
        ("Who wrote the letter to the UN?", False),  # a fact in the text: searched
        ("Who is the author of the New York Times report?", False),
        ("What does the author think the US wants?", False),
        ("How is the author of the piece described professionally?", True),  # the byline says
        ("What is the author's background?", True),
        ("What does the writer do?", True),
        ("What does the author do to the argument?", False),
        ("How is the author of the New York Times report described?", False),
    ],
)
def test_questions_about_the_author_are_recognised(question: str, asks: bool) -> None:
    assert asks_for_author(question) is asks


@pytest.mark.parametrize(
    ("line", "at_bottom", "kind"),
    [
        ("By Jane Doe", False, "marked"),
        ("Written by J. Doe", True, "marked"),
        (SIGNATURE, True, "signed"),
        ("Jane Doe, Staff Writer", True, "signed"),
        (SIGNATURE, False, None),  # a signature closes a text; at the top it is a title
        ("Related Articles", True, None),
        ("by the way, the bridge reopens", False, None),
        ("Copyright 2024 Reuters", True, None),
        ("John Smith – Reuters", True, None),  # no role: could be anything
        ("The pressing question is whether the United States will succeed.", True, None),
    ],
)
def test_a_byline_is_a_short_marked_or_signed_line(line: str, at_bottom: bool, kind: str | None) -> None:
    assert _byline_kind(line, at_bottom=at_bottom) == kind


def test_over_one_document_who_wrote_it_is_answered_with_its_byline(seed_rag) -> None:
    searched = seed_rag.ask("Who wrote the letter to the UN?")
    assert SIGNATURE not in searched.text
    answer = seed_rag.ask("Who wrote the article?")
    assert not answer.abstained and not answer.tentative
    assert answer.text == f"{SIGNATURE} [1]" and len(answer.citations) == 1
    cited = answer.citations[0]
    assert cited.quote == SIGNATURE and seed_rag.index.documents()[0].source == cited.source
    assert cited.passage[cited.start - cited.passage_start : cited.end - cited.passage_start] == SIGNATURE
    described = seed_rag.ask("How is the author of the piece described professionally?")
    assert not described.abstained and described.text == f"{SIGNATURE} [1]"  # was refused (0.008)


def test_a_byline_only_for_one_document_and_only_where_it_has_one(tmp_path: Path, embedder, seed_path) -> None:
    from rag.pipeline import RAG, build_index

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(seed_path, corpus / seed_path.name)
    (corpus / "bridge.txt").write_text(BRIDGE, encoding="utf-8")
    (corpus / "ferry.txt").write_text(OTHER, encoding="utf-8")
    build_index([corpus], index_dir=tmp_path / "index", embedder=embedder)
    rag = RAG.open(tmp_path / "index", embedder=embedder)
    try:
        unscoped = rag.ask("Who wrote the article?")
        assert "By Jane Doe" not in unscoped.text and SIGNATURE not in unscoped.text
        bridge = rag.ask("Who wrote it?", scope=Scope(sources=("bridge.txt",)))
        assert bridge.text == "By Jane Doe [1]" and bridge.citations[0].start == 0
        assert bridge.confidence > rag.ask("Who wrote it?", scope=Scope(sources=(seed_path.name,))).confidence
        ferry = rag.ask("Who is the author?", scope=Scope(sources=("ferry.txt",)))
        assert not ferry.citations or ferry.citations[0].quote not in ("Page 1 of 3", "By Jane Doe")
    finally:
        rag.index.close()


@pytest.mark.parametrize(
    ("question", "asks"),
    [
        ("What does the author conclude?", True),
        ("What is the conclusion of the article?", True),
        ("What's the author's conclusion?", True),
        ("How does the article end?", True),
        ("What did the court conclude?", False),  # a fact in the text: searched
        ("What does the author conclude about China?", False),
        ("What is the article about?", False),
    ],
)
def test_questions_about_the_conclusion_are_recognised(question: str, asks: bool) -> None:
    assert asks_for_conclusion(question) is asks


def test_over_one_document_its_conclusion_is_its_closing_before_the_signature(seed_rag) -> None:
    answer = seed_rag.ask("What does the author conclude?")
    assert not answer.abstained and not answer.tentative
    assert SIGNATURE not in answer.text
    last = answer.citations[-1]
    assert last.quote.startswith("The pressing question is whether the United States will succeed")
    document = seed_rag.index.document(last.source).text
    assert document[last.end :].strip() == SIGNATURE  # nothing but the signature after it
    assert len(answer.text.split()) <= seed_rag.config.answer_max_words + 2 * len(answer.citations)
    assert 0.3 < answer.confidence <= 1.0
