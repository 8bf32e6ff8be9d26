"""The reader's training groups: swapped-name questions as groups with no answer."""

from __future__ import annotations

import random

from eval.train_reader import key_spans, news_groups, swap_question


def _row(rid: str, date: str, question: str, evidence: str, answer: str) -> dict:
    return {"id": rid, "date": date, "question": question, "evidence": evidence, "answers": [answer]} | {
        "search_results": []
    }


ROWS = [
    _row(
        "a",
        "2022/11/04",
        "Which company did Elon Musk buy this week?",
        "Elon Musk completed his purchase of Twitter on Friday. The deal closed after months of fighting.",
        "Twitter",
    ),
    _row(
        "b",
        "2022/11/04",
        "Where did Rishi Sunak become prime minister?",
        "Rishi Sunak became prime minister of Britain this week. He replaced Liz Truss.",
        "Britain",
    ),
    _row(
        "c",
        "2022/11/11",
        "How many people attended the summit in Egypt?",
        "About 35,000 people attended the climate summit in Egypt. Talks ran late.",
        "35,000",
    ),
]


def test_a_swapped_question_names_what_its_passage_never_mentions() -> None:
    for _ in range(20):
        swapped = swap_question(
            "Which company did Elon Musk buy this week?",
            "Elon Musk completed his purchase of Twitter on Friday.",
            key_spans(ROWS[1]["evidence"]),
            ROWS[0]["evidence"],
            random.Random(_),
        )
        assert swapped is not None and swapped != ROWS[0]["question"]
        assert "Elon Musk" not in swapped
        assert any(name in swapped for name in ("Sunak", "Britain", "Liz Truss"))
    # Nothing to swap: the question names nothing its answer sentence holds, or the pool is all in the passage.
    rng = random.Random(0)
    assert swap_question("What happened?", "Twitter was sold.", ["Britain"], "Twitter was sold.", rng) is None
    assert swap_question("Did Musk buy it?", "Musk bought it.", ["Musk"], "Musk bought it.", rng) is None


def test_numbers_are_swapped_for_numbers_only() -> None:
    question, gold, rng = "Did 500 people come?", "500 people came.", random.Random(0)
    assert swap_question(question, gold, ["Egypt"], gold, rng) is None
    assert swap_question(question, gold, ["35,000"], gold, rng) == "Did 35,000 people come?"


def test_news_groups_add_swapped_questions_with_no_answer() -> None:
    groups = news_groups(ROWS, random.Random(0), max_negatives=4, limit=None, swap_share=1.0)
    swapped = [g for g in groups if g[0].source == "news-swap"]
    assert swapped, [g[0].source for g in groups]
    originals = {row["id"]: row for row in ROWS}
    for group in swapped:
        original = originals[group[0].group.removesuffix("~swap")]
        assert all(ex.label == 0.0 for ex in group)
        assert group[0].question != original["question"]
        # The sentence that answered the original question comes first: the hardest negative.
        assert original["answers"][0] in group[0].sentence
    # Without a swap share, no swapped groups (the validation weeks are built that way).
    plain = news_groups(ROWS, random.Random(0), max_negatives=4, limit=None)
    assert not [g for g in plain if g[0].source == "news-swap"]
    assert {g[0].source for g in plain} == {"news", "news-other"}
