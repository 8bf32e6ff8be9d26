"""Answering end to end with the real model: cited quotes that match the source, abstention, pages."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from conftest import ANSWER_KEYS

from rag.chunk import split_sentences
from rag.config import RagConfig
from rag.pipeline import RAG, BadInput, build_index, validate_question
from rag.types import Answer

KURSK_QUESTION = "How many North Korean soldiers have arrived in Kursk?"
OFF_TOPIC_QUESTION = "What is the best recipe for sourdough bread?"
PDF_QUESTION = "How many cargo ships did the harbour handle in 2023?"
PDF_PAGES = [
    "The Harbour Authority Annual Report. This report describes the year at the harbour. The harbour "
    "master oversees all moorings, pilots and dredging work along the quays.",
    "In 2023 the harbour handled 4,217 cargo ships. The busiest month was August, when the new "
    "container crane entered service.",
]
_MARKER = re.compile(r"\[(\d+)\]")


@pytest.fixture(scope="module")
def rag(tmp_path_factory, embedder, seed_path: Path, make_pdf) -> RAG:
    base = tmp_path_factory.mktemp("pipeline")
    corpus = base / "corpus"
    corpus.mkdir()
    shutil.copy(seed_path, corpus / seed_path.name)
    make_pdf(corpus / "reports" / "harbour.pdf", PDF_PAGES)
    report = build_index([corpus], index_dir=base / "index", embedder=embedder)
    assert sorted(report.stats.added) == [seed_path.name, "reports/harbour.pdf"] and not report.skipped
    opened = RAG.open(base / "index", embedder=embedder)
    yield opened
    opened.index.close()


def _check_answer_shape(answer: Answer, config: RagConfig) -> None:
    """Markers match the citations, and the answer stays within the configured length."""
    assert not answer.abstained and answer.citations
    assert [c.n for c in answer.citations] == list(range(1, len(answer.citations) + 1))
    assert [int(n) for n in _MARKER.findall(answer.text)] == [c.n for c in answer.citations]
    for c in answer.citations:
        assert f"{c.quote} [{c.n}]" in answer.text
    prose = _MARKER.sub("", answer.text)
    assert len(prose.split()) <= config.answer_max_words
    assert 1 <= len(split_sentences(prose)) <= config.answer_max_sentences
    assert len(answer.citations) <= config.answer_max_sentences


def _check_quotes_match_documents(rag: RAG, answer: Answer) -> None:
    for c in answer.citations:
        document = rag.index.document(c.source)
        assert document is not None
        assert document.text[c.start : c.end] == c.quote
        assert document.text[c.passage_start : c.passage_start + len(c.passage)] == c.passage
        assert c.passage_start <= c.start and c.end <= c.passage_start + len(c.passage)


def test_kursk_question_is_answered_with_a_verifiable_citation(rag: RAG, seed_path: Path) -> None:
    answer = rag.ask(KURSK_QUESTION)

    _check_answer_shape(answer, rag.config)
    assert "[1]" in answer.text and "8,000" in answer.text
    cited = [c for c in answer.citations if "8,000" in c.quote]
    assert cited, answer.citations
    seed_text = seed_path.read_text(encoding="utf-8")
    for c in cited:
        assert c.source == seed_path.name and c.page is None
        assert seed_text[c.start : c.end] == c.quote  # the file itself, not only the stored copy
    _check_quotes_match_documents(rag, answer)
    assert rag.config.thresholds()[0] <= answer.confidence <= 1.0


def test_off_topic_question_abstains(rag: RAG) -> None:
    answer = rag.ask(OFF_TOPIC_QUESTION)

    assert answer.abstained is True
    assert answer.citations == () and not _MARKER.search(answer.text)
    assert answer.confidence < rag.config.thresholds()[1]
    assert answer.to_json()["citations"] == []


def test_a_fact_on_pdf_page_two_cites_page_two(rag: RAG) -> None:
    answer = rag.ask(PDF_QUESTION)

    _check_answer_shape(answer, rag.config)
    first = answer.citations[0]
    assert first.source == "reports/harbour.pdf" and first.page == 2
    assert "4,217" in first.quote
    document = rag.index.document(first.source)
    page_two = document.pages[1]
    assert page_two.number == 2 and page_two.start <= first.start < first.end <= page_two.end
    _check_quotes_match_documents(rag, answer)


def test_answer_length_limits_follow_the_config(rag: RAG) -> None:
    config = rag.config.replace(answer_max_words=12, answer_max_sentences=1)
    answer = rag.ask(KURSK_QUESTION, config=config)

    _check_answer_shape(answer, config)
    assert len(answer.citations) == 1 and len(answer.citations[0].quote.split()) <= 12
    _check_quotes_match_documents(rag, answer)


def test_json_contract_and_timings(rag: RAG) -> None:
    answer = rag.ask(KURSK_QUESTION)
    data = json.loads(json.dumps(answer.to_json()))

    assert set(data) == ANSWER_KEYS
    assert data["question"] == KURSK_QUESTION and data["answer"] == answer.text
    assert set(data["timings_ms"]) == {"retrieve", "answer", "total"}
    assert 0 < data["timings_ms"]["retrieve"] <= data["timings_ms"]["total"]
    assert data["timings_ms"]["total"] >= data["timings_ms"]["answer"] >= 0
    for c in data["citations"]:
        assert set(c) == {"n", "source", "start", "end", "page", "quote", "passage", "score"}
    assert len(answer.hits) <= rag.config.top_k


@pytest.mark.parametrize(
    ("question", "message"),
    [
        ("", "question is empty"),
        ("   \n\t  ", "question is empty"),
        ("x" * 2001, "question is 2001 characters, over the limit of 2000"),
        (None, "question must be text, got NoneType"),
    ],
)
def test_bad_questions_are_refused_before_any_work(rag: RAG, question, message: str) -> None:
    with pytest.raises(BadInput, match=re.escape(message)):
        validate_question(question, config=RagConfig())
    calls = rag.embedder.calls
    with pytest.raises(BadInput, match=re.escape(message)):
        rag.ask(question)
    assert rag.embedder.calls == calls


def test_a_question_at_the_limit_is_accepted() -> None:
    assert validate_question("  " + "y" * 1996 + "? ", config=RagConfig()) == "y" * 1996 + "?"


def test_an_empty_corpus_is_refused_and_changes_nothing(rag: RAG, embedder, tmp_path: Path) -> None:
    from rag.pipeline import index_exists

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "blank.txt").write_text("  \n", encoding="utf-8")
    existing = tmp_path / "existing"
    shutil.copytree(rag.index.dir, existing, ignore=shutil.ignore_patterns(".lock"))
    manifest = (existing / "manifest.json").read_bytes()

    for index_dir in (tmp_path / "new", existing):
        with pytest.raises(BadInput, match=r"no readable documents in .*empty \(1 skipped\)"):
            build_index([empty], index_dir=index_dir, embedder=embedder)
    assert not index_exists(tmp_path / "new")
    assert (existing / "manifest.json").read_bytes() == manifest
    reopened = RAG.open(existing, embedder=embedder)
    try:
        assert "8,000" in reopened.ask(KURSK_QUESTION).text
    finally:
        reopened.index.close()
