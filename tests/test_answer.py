"""The answer stage: question types, sentence choice, confidence, follow-up queries."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from rag.answer import FEATURES, compose_answer, confidence, question_type
from rag.config import RagConfig
from rag.pipeline import RAG, build_index, condense_query
from rag.replies import ABSTAIN_TEXT
from rag.retrieve import search


@pytest.mark.parametrize(
    "question, kind",
    [
        ("How many soldiers arrived?", "number"),
        ("When did the meeting happen?", "date"),
        ("What year was it founded?", "date"),
        ("Who met the diplomats?", "name"),
        ("Where did the talks take place?", "place"),
        ("Why is China concerned?", "other"),
    ],
)
def test_question_type(question: str, kind: str) -> None:
    assert question_type(question) == kind


def test_confidence_is_a_probability_and_checks_the_weight_count() -> None:
    features = [1.0] + [0.5] * (len(FEATURES) - 1)
    assert 0.0 < confidence(features, [0.0] * len(FEATURES)) == pytest.approx(0.5)
    assert confidence(features, [10.0] * len(FEATURES)) > 0.99
    with pytest.raises(ValueError, match=f"must have {len(FEATURES)} values"):
        confidence(features, [1.0, 2.0])


def test_default_weights_match_the_features() -> None:
    assert len(RagConfig().confidence_weights) == len(FEATURES)


def test_follow_up_is_searched_with_the_previous_question() -> None:
    history = [("What do US officials say about North Korean troops?", "…")]
    assert condense_query("What about China?", history).startswith("What do US officials say")
    assert condense_query("What about China?", []) == "What about China?"
    standalone = "Which newspaper reported that American officials talked with Chinese diplomats in Washington?"
    assert condense_query(standalone, history) == standalone


@pytest.fixture(scope="module")
def seed_rag(tmp_path_factory, embedder, seed_path: Path) -> RAG:
    base = tmp_path_factory.mktemp("answer")
    (base / "docs").mkdir()
    shutil.copy(seed_path, base / "docs" / seed_path.name)
    build_index([base / "docs"], index_dir=base / "index", embedder=embedder)
    opened = RAG.open(base / "index", embedder=embedder)
    yield opened
    opened.index.close()


QUESTIONS = (
    "How many North Korean soldiers have arrived in Kursk?",
    "Who attended the meeting with Chinese diplomats?",
    "What is Russia training the troops in?",
    "Why does the US turn to China?",
    "What did the New York Times report?",
    "What does the alliance between Russia and North Korea mean for China?",
)


def _pairs(rag: RAG, config: RagConfig) -> list[str]:
    """The text between the two quotes of each two-sentence answer."""
    gaps = []
    for question in QUESTIONS:
        answer = rag.ask(question, config=config)
        assert 1 <= len(answer.citations) <= 2
        assert sum(len(c.quote.split()) for c in answer.citations) <= config.answer_max_words
        if len(answer.citations) == 2:
            first, second = answer.citations
            assert first.source == second.source and first.end <= second.start
            gaps.append(rag.index.document(first.source).text[first.end : second.start])
    return gaps


def test_a_second_sentence_only_continues_the_first(seed_rag: RAG) -> None:
    loose = seed_rag.config.with_threshold(0.0).replace(second_sentence_ratio=0.0, adjacent_only=False)
    assert any(gap.strip() for gap in _pairs(seed_rag, loose))  # without the rule, distant sentences join
    assert all(not gap.strip() for gap in _pairs(seed_rag, loose.replace(adjacent_only=True)))


def test_abstention_keeps_the_candidate_but_cites_nothing(seed_rag: RAG) -> None:
    answer = seed_rag.ask(
        "How many North Korean soldiers have arrived in Kursk?",
        config=seed_rag.config.with_threshold(1.0, tentative=1.0),
    )
    assert answer.abstained and answer.text == ABSTAIN_TEXT and answer.citations == ()
    assert "8,000" in answer.candidate
    assert answer.hits  # the nearest passages stay available to show, labelled as not an answer


def test_without_read_sentences_the_heuristic_decides(seed_rag: RAG) -> None:
    """`compose_answer` called on hits alone (nothing read) answers as the heuristic would, with
    its confidence and thresholds, whatever scorer the config names."""
    question = "How many North Korean soldiers have arrived in Kursk?"
    vector = seed_rag.embedder.encode_queries([question])[0]
    hits = search(seed_rag.index, question, vector, config=seed_rag.config, top_k=5)
    reader = seed_rag.config.replace(answer_scorer="reader")
    by_default = compose_answer(question, vector, hits, seed_rag.index, config=reader)
    heuristic = seed_rag.config.replace(answer_scorer="heuristic")
    assert by_default == compose_answer(question, vector, hits, seed_rag.index, config=heuristic)
    assert not by_default.abstained and "8,000" in by_default.text


def test_follow_up_retrieval_uses_the_history(seed_rag: RAG) -> None:
    first = "What are US officials talking to China about?"
    answer = seed_rag.ask("What about its stance?", history=[(first, "…")])
    assert answer.query.startswith(first)


@contextmanager
def _corpus(tmp_path: Path, embedder, files: dict[str, str]) -> Iterator[RAG]:
    """`files` (name -> text) indexed in `tmp_path` and opened."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in files.items():
        (docs / name).write_text(text, encoding="utf-8")
    build_index([docs], index_dir=tmp_path / "index", embedder=embedder)
    rag = RAG.open(tmp_path / "index", embedder=embedder)
    try:
        yield rag
    finally:
        rag.index.close()


def test_a_question_in_the_documents_is_not_quoted_as_its_answer(tmp_path: Path, embedder) -> None:
    """A quiz page repeats the question word for word; the answer quotes the sentence that answers."""
    quiz = (
        "This week's news quiz.\n\n"
        "Scotland’s Orkney islands are considering proposals to become a territory of which country? "
        "Test your knowledge of the week's news with our quiz. New questions every Friday.\n"
    )
    orkney = (
        "Orkney could leave the UK and become a territory of Norway under new proposals to explore "
        "alternative forms of governance. The islands were under Norwegian and Danish control until 1472. "
        "The council will debate the report next week.\n"
    )
    with _corpus(tmp_path, embedder, {"quiz.txt": quiz, "orkney.txt": orkney}) as rag:
        question = "Scotland’s Orkney islands are considering proposals to become a territory of which country?"
        answer = rag.ask(question, config=rag.config.with_threshold(0.0))
        assert answer.citations and "?" not in answer.text.replace("[1]", "")
        assert answer.citations[0].source == "orkney.txt" and "Norway" in answer.citations[0].quote


def test_a_quote_opening_with_a_pronoun_brings_the_sentence_it_points_back_to(tmp_path: Path, embedder) -> None:
    """ "It’s up 20% over the past week." alone does not say what is: the sentence before it does."""
    markets = (
        "Stocks were flat on Friday as traders waited for the jobs report. "
        "Bitcoin rallied again as investors returned to digital assets after the summer lull. "
        "It’s up 20% over the past week. "
        "Oil prices fell for a third day on worries about demand in China.\n"
    )
    proofs = (
        "There is a prize of one million dollars for resolving the problem.\n\n"
        "It was shown by Ladner that if P is not NP then problems of intermediate difficulty exist.\n"
    )
    with _corpus(tmp_path, embedder, {"markets.txt": markets, "proofs.txt": proofs}) as rag:
        loose = rag.config.with_threshold(0.0)
        first = rag.ask("Which cryptocurrency saw a 20% jump over the past week?", config=loose).citations[0]
        assert first.quote.startswith("Bitcoin rallied") and first.quote.endswith("over the past week.")
        assert "Stocks" not in first.quote  # one sentence back, no more
        # "It was shown" points at nothing, and a new paragraph starts a new subject
        answer = rag.ask("Who showed that problems of intermediate difficulty exist?", config=loose)
        assert answer.citations[0].quote.startswith("It was shown by Ladner")
