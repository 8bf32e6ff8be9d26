"""Follow-up questions are joined to the previous question only when they need it (rag.followup)."""

from __future__ import annotations

import pytest

from rag.followup import condense_query, needs_context
from rag.pipeline import RAG

PREVIOUS = "What did Blinken warn?"
HISTORY = [(PREVIOUS, "That North Korean troops fighting for Russia will be legitimate military targets. [1]")]

SELF_CONTAINED = [
    "Who is Kurt Campbell?",
    "What is the article about?",
    "Which newspaper reported the meeting with Chinese diplomats?",
    "Where is Kursk?",
    "How many North Korean soldiers are in Kursk?",
    "What did Blinken say about his meeting?",  # a name before the pronoun
    "Does North Korea deny it?",  # documented choice: a name comes first
    'What is "trench clearing" and who does it?',  # a quoted name comes first
    "Which newspaper reported that American officials talked with Chinese diplomats?",  # "that": a conjunction
    "Is it true that North Korea sent troops?",  # expletive "it"
    "How long does it take to reach Kursk from the border?",  # expletive "it"
    "Are there North Korean troops in Kursk?",  # existential "there"
    "Tell me more about Kurt Campbell",
]

FOLLOW_UPS = [
    "What about China?",
    "How about South Korea?",
    "And South Korea?",
    "and the drones?",
    "What did he warn?",
    "When did they arrive?",
    "Why?",
    "How so?",
    "Who else?",
    "Anything else?",
    "Tell me more",
    "More details",
    "Why is that?",
    "Is that true?",
    "What did that mean?",
    "Who said that?",
    "What is it?",
    "Is it true?",
    "How long did it take?",
    "How many soldiers does it have?",
    "Who else is there?",
    "Is the same true for China?",
    "What did he say about China?",  # the name comes after the pronoun
    "What's their training?",
    "Did these troops fight?",
]


@pytest.mark.parametrize("question", SELF_CONTAINED)
def test_an_unrelated_question_is_searched_alone(question: str) -> None:
    assert not needs_context(question)
    assert condense_query(question, HISTORY) == question


@pytest.mark.parametrize("question", FOLLOW_UPS)
def test_a_follow_up_is_searched_with_the_previous_question(question: str) -> None:
    assert needs_context(question)
    assert condense_query(question, HISTORY) == f"{PREVIOUS} {question}"


@pytest.mark.parametrize("question", FOLLOW_UPS[:4] + SELF_CONTAINED[:2])
def test_without_history_the_question_is_unchanged(question: str) -> None:
    assert condense_query(question) == question
    assert condense_query(question, []) == question


def test_the_last_question_is_joined_and_an_empty_one_is_not() -> None:
    history = [("Who is Kurt Campbell?", "..."), (PREVIOUS, "...")]
    assert condense_query("Why?", history) == f"{PREVIOUS} Why?"
    assert condense_query("Why?", [("  ", "...")]) == "Why?"


def test_pipeline_names_stay_importable() -> None:
    from rag import pipeline

    assert pipeline.condense_query is condense_query
    assert pipeline.Turn == tuple[str, str]


def test_the_pipeline_searches_an_unrelated_question_alone_and_a_follow_up_with_context(seed_rag: RAG) -> None:
    first = seed_rag.ask(PREVIOUS)
    history = [(PREVIOUS, first.text)]
    unrelated = seed_rag.ask("Who is Kurt Campbell?", history=history)
    assert unrelated.query == "Who is Kurt Campbell?"
    follow_up = seed_rag.ask("When did they arrive?", history=history)
    assert PREVIOUS in follow_up.query and follow_up.query.endswith("When did they arrive?")
