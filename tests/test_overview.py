"""Questions about a whole document ("What is the article about?") answered with its opening,
when the index or the scope holds one document; over several, answered as any question."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rag.overview import asks_for_overview
from rag.scope import Scope

LEAD = "US Secretary of State Antony Blinken reported on Thursday that up to 8,000 North Korean soldiers"
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
