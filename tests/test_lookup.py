"""Questions asking who or what a name is ("Who is Kurt Campbell?"): answered from the sentences
that name it, with the reader's probability for the best of them (rag.lookup, rag.answer)."""

from __future__ import annotations

import pytest

from rag.answer import ScoredSentence, _about_name
from rag.lookup import asked_name
from rag.replies import ABSTAIN_TEXT
from rag.types import Answer, Chunk, Hit


@pytest.mark.parametrize(
    ("question", "name"),
    [
        ("Who is Kurt Campbell?", "Kurt Campbell"),
        ("who's Kurt Campbell", "Kurt Campbell"),
        ("Who was Shi Feng?", "Shi Feng"),
        ("What is AUKUS?", "AUKUS"),
        ("What is the Quad?", "Quad"),
        ("Who is Ursula von der Leyen?", "Ursula von der Leyen"),
        ("Who is he?", None),
        ("Who is the Deputy Secretary of State who took part in the meeting?", None),  # more than a name
        ("What is the article about?", None),
        ("Who wrote the article?", None),
        ("What is a good recipe for bread?", None),
    ],
)
def test_a_question_asking_only_who_a_name_is(question: str, name: str | None) -> None:
    assert asked_name(question) == name


TEXT = "Kurt Campbell met them. The talks lasted hours. Campbell is the Deputy Secretary."


def _sentence(start: int, end: int, score: float, logit: float | None) -> ScoredSentence:
    chunk = Chunk(0, "a.txt", 0, len(TEXT), TEXT, None, ((0, 23), (24, 47), (48, len(TEXT))))
    return ScoredSentence(0, Hit(chunk, 1.0), start, end, 0.5, 0.5, 0.0, score, logit=logit)


def test_the_sentences_naming_it_come_first_and_lift_the_confidence_to_the_best_ones() -> None:
    refusal = Answer(question="Who is Kurt Campbell?", text=ABSTAIN_TEXT, abstained=True, confidence=0.1, citations=())
    talks, met, deputy = _sentence(24, 47, 0.7, 0.8), _sentence(0, 23, 0.6, 0.4), _sentence(48, len(TEXT), 0.9, None)
    lifted, order, named = _about_name(refusal, [talks, deputy, met], "Kurt Campbell")
    assert named and order == [met, talks, deputy]  # "Campbell" alone does not name Kurt Campbell; unread: no say
    assert lifted.confidence == 0.6
    same, unchanged, named = _about_name(refusal, [talks, met], "Shi Feng")
    assert same is refusal and unchanged == [talks, met] and not named
    higher = Answer(question="q", text=ABSTAIN_TEXT, abstained=True, confidence=0.8, citations=())
    assert _about_name(higher, [met], "Kurt Campbell")[0].confidence == 0.8  # never lowered


def test_who_is_a_person_the_article_names_is_answered_with_that_sentence(seed_rag) -> None:
    answer = seed_rag.ask("Who is Kurt Campbell?")
    assert not answer.abstained and not answer.tentative, answer.confidence
    quote = answer.citations[0].quote
    assert "Kurt Campbell, the Deputy Secretary of State" in quote and quote in answer.text
    cited = answer.citations[0]
    assert cited.passage[cited.start - cited.passage_start : cited.end - cited.passage_start] == quote


def test_a_name_the_article_mentions_in_passing_is_shown_as_not_sure_not_refused(seed_rag) -> None:
    answer = seed_rag.ask("Who is Shi Feng?")  # named once: "at Ambassador Shi Feng’s residence"
    assert answer.abstained and answer.tentative and "Shi Feng" in answer.citations[0].quote
    assert answer.text.startswith("Not sure")


def test_who_is_a_person_the_article_never_names_is_still_refused(seed_rag) -> None:
    answer = seed_rag.ask("Who is Edda Strom?")
    assert answer.abstained and not answer.tentative
