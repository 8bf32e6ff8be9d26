"""Questions asking who or what a name is ("Who is Kurt Campbell?"): answered from the sentences
that name it, with the reader's probability for the best of them; and questions asking what someone
or the document said ("What did Blinken warn?"): answered from the sentences that say it
(rag.lookup, rag.answer)."""

from __future__ import annotations

import pytest

from rag.answer import ScoredSentence, _about_name, _about_statement
from rag.config import RagConfig
from rag.lookup import Asked, asked_name, asked_statement
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


@pytest.mark.parametrize(
    ("question", "asked"),
    [
        ("What did Blinken warn?", Asked("Blinken", "warn", None)),
        ("What did the New York Times report?", Asked("New York Times", "report", None)),
        ("what does the author say about divide and conquer?", Asked(None, "say", "divide and conquer")),
        ("What does the article tell us about AUKUS", Asked(None, "tell", "AUKUS")),
        ("What does it say about Japan?", Asked(None, "say", "Japan")),
        ("What is said about the Quad?", Asked(None, "say", "the Quad")),
        ("Tell me about Kurt Campbell", Asked(None, "say", "Kurt Campbell")),
        ("please tell me more about AUKUS.", Asked(None, "say", "AUKUS")),
        ("What do you know about the Quad?", Asked(None, "say", "the Quad")),
        ("Tell me a joke about China", None),
        ("Tell me about this article", None),  # the whole document: an overview question
        ("What did Antony Blinken say about the troops?", Asked("Antony Blinken", "say", "the troops")),
        ("What does the article say?", None),  # the whole article: an overview question
        ("What did he say?", None),  # a follow-up
        ("What did Blinken warn the troops would become?", None),  # more than what was said
        ("What did the officials discuss?", None),  # no name: searched as asked
        ("Which country did Blinken warn?", None),
    ],
)
def test_a_question_asking_only_what_was_said(question: str, asked: Asked | None) -> None:
    assert asked_statement(question) == asked


@pytest.mark.parametrize(
    ("question", "said"),
    [
        ("What did Blinken warn?", "they will become legitimate military targets"),
        ("What does the author say about divide and conquer?", "excels in the strategy of “divide and conquer,”"),
        ("What did the New York Times report?", "The New York Times reported in an article titled"),
        ("What did Blinken report?", "Antony Blinken reported on Thursday"),  # not "The newspaper reports ... Blinken"
        ("What does the article say about Taiwan?", "the Taiwan issue"),
        ("Tell me about Kurt Campbell", "Kurt Campbell, the Deputy Secretary of State"),  # refused at 0.03
        ("Tell me about AUKUS.", "the AUKUS nuclear partnership"),
    ],
)
def test_what_was_said_is_answered_with_the_sentence_that_says_it(seed_rag, question: str, said: str) -> None:
    answer = seed_rag.ask(question)
    assert not answer.abstained, (answer.confidence, answer.text)
    assert said in answer.citations[0].quote + (answer.citations[1].quote if len(answer.citations) > 1 else "")


@pytest.mark.parametrize(
    "question",
    [
        "What did Kim Jong Un say?",
        "What did Putin say about the troops?",
        "What does the article say about Brazil?",
        "Tell me about Vladimir Putin",
    ],
)
def test_what_the_documents_never_say_is_not_answered(seed_rag, question: str) -> None:
    assert seed_rag.ask(question).abstained


def test_a_he_says_it_for_the_name_before_it_in_its_paragraph_only() -> None:
    text = "Blinken spoke first. He warned them twice.\n\nHe warned again."
    spans = ((0, 20), (21, 42), (44, len(text)))
    chunk = Chunk(0, "a.txt", 0, len(text), text, None, spans)
    first, second, third = (ScoredSentence(0, Hit(chunk, 1.0), a, b, 0.5, 0.5, 0.0, 0.5, logit=0.0) for a, b in spans)
    refusal = Answer(question="What did Blinken warn?", text=ABSTAIN_TEXT, abstained=True, confidence=0.1, citations=())
    config = RagConfig(answer_scorer="reader")
    lifted, order, found = _about_statement(
        refusal, [third, first, second], Asked("Blinken", "warn", None), config=config
    )
    assert found and order == [second, third, first]  # the third is past a paragraph break
    assert lifted.confidence == config.thresholds()[0]
    _, _, found = _about_statement(refusal, [third], Asked("Blinken", "warn", None), config=config)
    assert not found


def test_the_holder_of_a_title_is_not_its_deputy(seed_rag) -> None:
    """ "Kurt Campbell, the Deputy Secretary of State" named "Secretary of State" word for word, and
    the reader read it first: "Who is the Secretary of State?" was answered with Campbell (0.87)."""
    answer = seed_rag.ask("Who is the Secretary of State?")
    assert not answer.abstained and "Antony Blinken" in answer.citations[0].quote
    deputy = seed_rag.ask("Who is the Deputy Secretary of State?")
    assert "Kurt Campbell, the Deputy Secretary of State" in deputy.citations[0].quote


def test_a_name_typed_with_a_straight_apostrophe_names_the_printed_one(seed_rag) -> None:
    """The article prints "James O’Brien"; a user types "O'Brien" (refused at 0.11 before)."""
    answer = seed_rag.ask("Who is James O'Brien?")
    assert (
        not answer.abstained and "James O’Brien, the senior official for European affairs" in answer.citations[0].quote
    )


@pytest.mark.parametrize(
    ("previous", "answered"),
    [
        ("Who is Antony Blinken?", True),
        ("What did Blinken report?", True),
        ("Who is Kurt Campbell?", False),  # the article has him say nothing
    ],
)
def test_a_follow_up_asking_what_he_said_means_the_person_asked_about_before(
    seed_rag, previous: str, answered: bool
) -> None:
    warned = seed_rag.ask("What did he warn?" if answered else "What did he say?", history=[(previous, "...")])
    assert warned.abstained is not answered, (warned.confidence, warned.text)
    if answered:
        assert "legitimate military targets" in " ".join(c.quote for c in warned.citations)
