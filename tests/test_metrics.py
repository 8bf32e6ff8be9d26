"""Hand-made cases with known answers for `eval.metrics`."""

from __future__ import annotations

import dataclasses
import doctest
import math
import random

import pytest

from eval import metrics
from eval.metrics import (
    EvidenceLocator,
    MetricResult,
    Span,
    abstention_metrics,
    answer_metrics,
    beir_metrics,
    best_threshold,
    citation_precision,
    containment,
    exact_match,
    f1,
    locate,
    normalize_answer,
    percentiles,
    retrieval_metrics,
    threshold_sweep,
)


def test_docstring_examples_hold() -> None:
    failed, attempted = doctest.testmod(metrics)
    assert attempted >= 14
    assert failed == 0


def test_metric_result_is_frozen_and_counts_applicable_questions() -> None:
    result = MetricResult(score=0.5, individual_scores=[1.0, None, 0.0])
    assert result.count == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.score = 1.0  # type: ignore[misc]


# --- SQuAD answers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("The Cat!", "cat"),
        ("  A  quick,\n brown\tfox. ", "quick brown fox"),
        ("the theatre", "theatre"),  # articles only as whole words
        ("An apple a day", "apple day"),
        ("U.S.A.", "usa"),
        ("“legitimate military targets.”", "legitimate military targets"),  # Unicode punctuation too
        ("James O’Brien – Writer", "james obrien writer"),
        ("Afrikaans-speaking, Dyrrachium—one, and/or", "afrikaans speaking dyrrachium one and or"),
        ("", ""),
    ],
)
def test_normalize_answer(raw: str, normalised: str) -> None:
    assert normalize_answer(raw) == normalised


def test_containment_sees_an_answer_before_a_closing_curly_quote() -> None:
    quoted = "He warned: “If these forces engage in combat, they will become legitimate military targets.” [1]"
    assert containment(quoted, ["legitimate military targets"]) == 1.0
    assert containment("Kurt Campbell met O’Brien.", ["James O'Brien"]) == 0.0
    assert containment("Kurt Campbell met James O’Brien.", ["James O'Brien"]) == 1.0
    assert containment("Many families, today mostly Afrikaans-speaking, have French surnames.", ["Afrikaans"]) == 1.0
    assert containment("The treaty of Saint-Clair-sur-Epte.", ["Saint-Clair-sur-Epte"]) == 1.0


def test_exact_match() -> None:
    assert exact_match("The Cat!", ["cat"]) == 1.0
    assert exact_match("cat", ["dog", "a cat"]) == 1.0  # max over golds
    assert exact_match("cats", ["cat"]) == 0.0
    # SQuAD v2 no-answer: no (non-empty) gold matches only the empty prediction.
    assert exact_match("", []) == 1.0
    assert exact_match("cat", []) == 0.0
    assert exact_match("", ["the"]) == 1.0


def test_f1() -> None:
    assert f1("the black cat sat", ["black cat"]) == pytest.approx(0.8)  # P 2/3, R 1
    assert f1("black cat sat", ["dog", "Black cat sat."]) == 1.0
    assert f1("dog", ["cat"]) == 0.0
    assert f1("cat cat", ["cat"]) == pytest.approx(2 / 3)  # repeated tokens count once each
    assert f1("", []) == 1.0
    assert f1("cat", []) == 0.0


def test_containment_is_whole_token_and_max_over_golds() -> None:
    assert containment("It was the black cat.", ["Black Cat"]) == 1.0
    assert containment("cats", ["cat"]) == 0.0
    assert containment("concatenate", ["cat"]) == 0.0
    assert containment("black cat", ["cat black"]) == 0.0  # order matters
    assert containment("a dog", ["cat", "Dog"]) == 1.0


def test_containment_without_gold_is_not_applicable() -> None:
    assert containment("anything", []) is None
    assert containment("anything", ["the", "!"]) is None  # golds that normalise to nothing


def test_a_bare_string_as_golds_is_refused() -> None:
    with pytest.raises(ValueError, match="'cat'"):
        exact_match("cat", "cat")  # type: ignore[arg-type]


def test_answer_metrics_exclude_unanswerable_and_score_abstentions_as_empty() -> None:
    predictions = ["a cat", "the dog ran", "nothing", "I don't know"]
    golds = [["cat"], ["dog ran fast"], [], ["bird"]]
    result = answer_metrics(predictions, golds, [True, True, True, False])
    assert result["containment"].individual_scores == [1.0, 0.0, None, 0.0]
    assert result["containment"].score == pytest.approx(1 / 3)
    assert result["f1"].individual_scores == pytest.approx([1.0, 0.8, None, 0.0])
    assert result["f1"].score == pytest.approx(0.6)
    assert result["exact_match"].individual_scores == [1.0, 0.0, None, 0.0]
    assert result["mean_words"].individual_scores == [2.0, 3.0, 1.0, None]
    assert result["mean_words"].score == 2.0


def test_answer_metrics_default_to_every_question_answered() -> None:
    result = answer_metrics(["cat", "a b c d"], [["cat"], ["x"]])
    assert result["mean_words"].score == 2.5
    assert result["exact_match"].individual_scores == [1.0, 0.0]


def test_answer_metrics_on_nothing_are_zero() -> None:
    result = answer_metrics([], [])
    assert set(result) == {"containment", "f1", "exact_match", "mean_words"}
    assert all(r.score == 0.0 and r.individual_scores == [] for r in result.values())
    only_unanswerable = answer_metrics(["x"], [[]])
    assert only_unanswerable["f1"].score == 0.0
    assert only_unanswerable["f1"].individual_scores == [None]


def test_answer_metrics_refuse_lists_of_different_lengths() -> None:
    with pytest.raises(ValueError, match="predictions=2, golds_list=1"):
        answer_metrics(["a", "b"], [["a"]])


# --- evidence location --------------------------------------------------------------------


def _normalised(text: str) -> str:
    return " ".join(text.split())


def test_locate_matches_across_whitespace_and_points_into_the_original() -> None:
    original = "\n  Intro.\nThe quick\n\n brown\u00a0\tfox jumps.\r\nThe quick brown fox again."
    spans = locate("  The quick brown fox\n", {"doc.txt": original})
    assert len(spans) == 2
    for span in spans:
        assert span.source == "doc.txt"
        assert _normalised(original[span.start : span.end]) == "The quick brown fox"
    assert original[spans[0].start : spans[0].end] == "The quick\n\n brown\u00a0\tfox"
    assert spans[1].start == original.index("The quick brown fox again")


def test_locate_finds_every_occurrence_in_every_document_in_order() -> None:
    documents = {"a": "x aa\n a", "b": "nothing here", "c": "aaa"}
    assert locate("a", documents) == [
        Span("a", 2, 3),
        Span("a", 3, 4),
        Span("a", 6, 7),
        Span("c", 0, 1),
        Span("c", 1, 2),
        Span("c", 2, 3),
    ]
    assert locate("a a", documents) == [Span("a", 3, 7)]  # "aaa" has no space to match
    assert locate("aa", {"c": "aaa"}) == [Span("c", 0, 2), Span("c", 1, 3)]  # overlapping


def test_locate_not_found_or_blank_evidence_is_empty() -> None:
    documents = {"a": "The quick brown fox."}
    assert locate("quick red fox", documents) == []
    assert locate("quickbrown", documents) == []
    assert locate(" \n\u00a0", documents) == []
    assert locate("fox", {}) == []


def test_locate_is_case_and_punctuation_exact() -> None:
    assert locate("the quick", {"a": "The quick"}) == []


def test_evidence_locator_reuses_a_snapshot_of_the_documents() -> None:
    documents = {"a": "one  two three"}
    locator = EvidenceLocator(documents)
    assert locator.locate("two three") == [Span("a", 5, 14)]
    documents["b"] = "two three"
    assert locator.locate("two three") == [Span("a", 5, 14)]
    assert locator.locate("one two") == [Span("a", 0, 8)]


def test_evidence_locator_on_a_large_document_with_many_evidence_strings() -> None:
    rng = random.Random(0)
    words = ["alpha", "beta", "gamma", "delta"]
    text = "".join(rng.choice(words) + rng.choice([" ", "\n", "\u00a0 ", "\t"]) for _ in range(18_000))
    assert len(text) > 100_000
    locator = EvidenceLocator({"big": text})
    for offset in range(0, 100_000, 500):  # 200 evidence strings
        evidence = " ".join(text[offset : offset + 120].split()[1:-1])
        spans = locator.locate(evidence)
        assert spans, evidence
        assert all(_normalised(text[s.start : s.end]) == evidence for s in spans)


def test_span_refuses_a_reversed_range() -> None:
    with pytest.raises(ValueError, match="start=5, end=2"):
        Span("a", 5, 2)


# --- retrieval ----------------------------------------------------------------------------


def test_retrieval_metrics_hand_computed() -> None:
    gold = [Span("a", 10, 20)]
    retrieved = [
        [Span("a", 15, 30), Span("b", 0, 5)],  # relevant at rank 1
        [Span("b", 10, 20), Span("a", 0, 10), Span("a", 19, 25)],  # rank 3 (rank 2 only touches)
        [Span("a", 10, 20)],  # no evidence: not applicable
        [],  # nothing retrieved
        [Span("x", 0, 1)] * 6 + [Span("a", 0, 11)],  # rank 7: beyond hit@5
    ]
    relevant = [gold, gold, [], gold, gold]
    result = retrieval_metrics(retrieved, relevant)
    assert set(result) == {"hit@1", "hit@5", "mrr"}
    assert result["hit@1"].individual_scores == [1.0, 0.0, None, 0.0, 0.0]
    assert result["hit@1"].score == 0.25
    assert result["hit@5"].individual_scores == [1.0, 1.0, None, 0.0, 0.0]
    assert result["hit@5"].score == 0.5
    assert result["mrr"].individual_scores == pytest.approx([1.0, 1 / 3, None, 0.0, 1 / 7])
    assert result["mrr"].score == pytest.approx((1 + 1 / 3 + 1 / 7) / 4)


def test_retrieval_metrics_custom_ks_and_bad_ks() -> None:
    result = retrieval_metrics([[Span("b", 0, 1), Span("a", 0, 1)]], [[Span("a", 0, 1)]], ks=(2, 3))
    assert set(result) == {"hit@2", "hit@3", "mrr"}
    assert result["hit@2"].score == 1.0
    with pytest.raises(ValueError, match="got 0"):
        retrieval_metrics([], [], ks=(0,))


def test_retrieval_metrics_on_nothing_are_zero() -> None:
    result = retrieval_metrics([], [])
    assert all(r.score == 0.0 and r.individual_scores == [] for r in result.values())


# --- citations ----------------------------------------------------------------------------


def test_citation_precision_macro_mean_over_applicable_questions() -> None:
    evidence = [Span("a", 100, 200)]
    citations = [
        [Span("a", 150, 160), Span("b", 0, 10)],  # overlap; quote has gold: 2/2
        [Span("a", 0, 100), Span("a", 199, 210), Span("c", 0, 5)],  # only the 2nd overlaps: 1/3
        [],  # no citations: None
        [Span("a", 0, 5)],  # no evidence, no gold: None
        [Span("a", 0, 5)],  # gold only, not contained: 0
    ]
    quotes = [
        ["irrelevant", "It was the Eiffel Tower."],
        ["nope", "nope", "nope"],
        [],
        ["whatever"],
        ["Eiffel Towers"],
    ]
    relevant = [evidence, evidence, evidence, [], []]
    golds = [["eiffel tower"], ["eiffel tower"], ["eiffel tower"], [], ["Eiffel Tower"]]
    result = citation_precision(citations, quotes, relevant, golds)
    assert result.individual_scores == pytest.approx([1.0, 1 / 3, None, None, 0.0])
    assert result.score == pytest.approx(4 / 9)  # macro, not micro (3/6 = 0.5)


def test_citation_precision_checks_quotes_match_citations() -> None:
    with pytest.raises(ValueError, match="question 0 has 1 citations but 2 quotes"):
        citation_precision([[Span("a", 0, 1)]], [["x", "y"]], [[]], [["x"]])
    assert citation_precision([], [], [], []).score == 0.0


# --- abstention ---------------------------------------------------------------------------


def test_abstention_rates_and_auroc_with_ties() -> None:
    # AUROC pairs (pos, neg): (0.8, 0.4) x2 = 1 each, (0.4, 0.4) x2 = 0.5 each -> 3 / 4.
    result = abstention_metrics(
        abstained=[False, True, True, False],
        answerable=[True, True, False, False],
        confidence=[0.8, 0.4, 0.4, 0.4],
    )
    assert result["answered_answerable"].individual_scores == [1.0, 0.0, None, None]
    assert result["answered_answerable"].score == 0.5
    assert result["refused_unanswerable"].individual_scores == [None, None, 1.0, 0.0]
    assert result["refused_unanswerable"].score == 0.5
    assert result["balanced_accuracy"].score == 0.5
    assert result["balanced_accuracy"].individual_scores == [1.0, 0.0, 1.0, 0.0]
    assert result["auroc"].score == 0.75
    assert result["auroc"].individual_scores == [1.0, 0.5, 0.75, 0.75]


def test_auroc_extremes_and_agreement_with_pairwise_count() -> None:
    assert abstention_metrics([False] * 4, [True, True, False, False], [0.1, 0.2, 0.8, 0.9])["auroc"].score == 0.0
    assert abstention_metrics([False] * 4, [True, True, False, False], [0.5] * 4)["auroc"].score == 0.5
    rng = random.Random(7)
    confidence = [rng.choice([0.1, 0.2, 0.3, 0.5, 0.9]) for _ in range(60)]
    answerable = [rng.random() < 0.5 for _ in range(60)]
    pos = [c for c, a in zip(confidence, answerable) if a]
    neg = [c for c, a in zip(confidence, answerable) if not a]
    pairwise = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))
    auroc = abstention_metrics([False] * 60, answerable, confidence)["auroc"]
    assert auroc.score == pytest.approx(pairwise)
    negatives = [s for s, a in zip(auroc.individual_scores, answerable) if not a]
    assert sum(negatives) / len(negatives) == pytest.approx(pairwise)


def test_abstention_with_one_class_missing() -> None:
    result = abstention_metrics([False, True], [True, True], [0.9, 0.1])
    assert result["auroc"].score == 0.5
    assert result["auroc"].individual_scores == [None, None]
    assert result["refused_unanswerable"].score == 0.0
    assert result["balanced_accuracy"].score == 0.5  # only the answerable rate is defined
    empty = abstention_metrics([], [], [])
    assert empty["balanced_accuracy"].score == 0.0
    assert empty["auroc"].score == 0.5


def test_abstention_refuses_nan_confidence() -> None:
    with pytest.raises(ValueError, match="index 1"):
        abstention_metrics([False, False], [True, False], [0.5, math.nan])


def test_threshold_sweep_abstains_below_the_threshold() -> None:
    rows = threshold_sweep([0.9, 0.5, 0.5, 0.1], [True, True, False, False], [0.0, 0.5, 0.6, 1.0])
    assert [r["threshold"] for r in rows] == [0.0, 0.5, 0.6, 1.0]
    assert [r["answered_answerable"] for r in rows] == [1.0, 1.0, 0.5, 0.0]
    assert [r["refused_unanswerable"] for r in rows] == [0.0, 0.5, 1.0, 1.0]
    assert [r["balanced_accuracy"] for r in rows] == [0.5, 0.75, 0.75, 0.5]
    assert threshold_sweep([], [], [0.5])[0]["balanced_accuracy"] == 0.0


def test_best_threshold_is_the_midpoint_of_the_best_gap() -> None:
    assert best_threshold([0.9, 0.8, 0.3, 0.2], [True, True, False, False]) == pytest.approx(0.55)
    # Order of the inputs does not matter.
    assert best_threshold([0.2, 0.9, 0.3, 0.8], [False, True, False, True]) == pytest.approx(0.55)


def test_best_threshold_plateau_across_a_tied_value() -> None:
    # BA is 0.75 for every t in (0.1, 0.9]: crossing 0.5 drops one of each class.
    assert best_threshold([0.9, 0.5, 0.5, 0.1], [True, True, False, False]) == pytest.approx(0.5)


def test_best_threshold_prefers_the_lowest_of_separate_plateaus() -> None:
    confidence = [0.9, 0.8, 0.5, 0.2, 0.3, 0.6]
    answerable = [True, True, True, False, False, False]
    # BA 5/6 on (0.3, 0.5] and on (0.6, 0.8]; 2/3 in between.
    t = best_threshold(confidence, answerable)
    assert t == pytest.approx(0.4)
    ba = threshold_sweep(confidence, answerable, [t, 0.55, 0.7])
    assert [round(r["balanced_accuracy"], 4) for r in ba] == [0.8333, 0.6667, 0.8333]


def test_best_threshold_degenerate_cases() -> None:
    assert best_threshold([], []) == 0.0
    assert best_threshold([0.3, 0.7], [True, True]) == 0.3  # answer everything
    only_unanswerable = best_threshold([0.3, 0.7], [False, False])
    assert only_unanswerable > 0.7  # abstain on everything
    assert threshold_sweep([0.3, 0.7], [False, False], [only_unanswerable])[0]["refused_unanswerable"] == 1.0
    assert best_threshold([0.4, 0.4], [True, False]) == 0.4  # every t ties


def test_best_threshold_with_groups_weighs_datasets_equally() -> None:
    # Pooled, 0.45 and 0.675 tie (6 of 8 rows right both ways, class for class); by group, b (two
    # rows, separated only above 0.65) weighs as much as a, and only (0.65, 0.7] is best for both.
    confidence = [0.1, 0.2, 0.3, 0.6, 0.7, 0.8, 0.65, 0.9]
    answerable = [False, False, False, True, True, True, False, True]
    groups = ["a"] * 6 + ["b"] * 2
    assert best_threshold(confidence, answerable) == pytest.approx(0.45)
    assert best_threshold(confidence, answerable, groups=groups) == pytest.approx(0.675)
    # One group is the same as none.
    assert best_threshold(confidence, answerable, groups=["x"] * 8) == best_threshold(confidence, answerable)


def test_best_threshold_with_groups_is_the_best_of_every_cut() -> None:
    rng = random.Random(7)
    confidence = [round(rng.random(), 2) for _ in range(300)]
    answerable = [rng.random() < c * 0.8 + 0.1 for c in confidence]
    groups = [rng.choice("abc") if c > 0.3 else "a" for c in confidence]

    def mean_balanced(t: float) -> float:
        return (
            sum(
                threshold_sweep(
                    [c for c, g in zip(confidence, groups) if g == name],
                    [a for a, g in zip(answerable, groups) if g == name],
                    [t],
                )[0]["balanced_accuracy"]
                for name in "abc"
            )
            / 3
        )

    chosen = best_threshold(confidence, answerable, groups=groups)
    candidates = sorted(set(confidence)) + [1.5]
    assert mean_balanced(chosen) == pytest.approx(max(mean_balanced(t) for t in candidates), abs=1e-12)


def test_best_threshold_groups_must_match_the_questions() -> None:
    with pytest.raises(ValueError, match="groups=2"):
        best_threshold([0.1, 0.9, 0.5], [False, True, True], groups=["a", "b"])


# --- BEIR ---------------------------------------------------------------------------------


def test_beir_metrics_against_hand_computed_ndcg() -> None:
    qrels = {
        "q2": {"d3": 1},  # missing from the run: 0
        "q1": {"d1": 1, "d2": 2, "d9": 1},
        "q3": {"d11": 1},
    }
    run = {
        "q1": {"d1": 3.0, "d2": 2.0, "dx": 1.0},
        "q3": {f"d{i}": 20.0 - i for i in range(1, 12)},  # d11 at rank 11: outside ndcg@10
        "q9": {"d1": 1.0},  # not judged: ignored
    }
    result = beir_metrics(run, qrels)
    dcg = 1 / math.log2(2) + 2 / math.log2(3)
    idcg = 2 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    assert result["ndcg@10"].individual_scores == pytest.approx([0.0, dcg / idcg, 0.0])
    assert result["ndcg@10"].score == pytest.approx(dcg / idcg / 3)
    assert result["recall@100"].individual_scores == pytest.approx([0.0, 2 / 3, 1.0])


def test_beir_metrics_break_score_ties_like_trec_eval() -> None:
    assert beir_metrics({"q": {"a": 1.0, "b": 1.0}}, {"q": {"b": 1}})["ndcg@10"].score == 1.0
    assert beir_metrics({"q": {"a": 1.0, "b": 1.0}}, {"q": {"a": 1}})["ndcg@10"].score == pytest.approx(
        1 / math.log2(3)
    )


def test_beir_metrics_on_empty_inputs() -> None:
    assert beir_metrics({}, {"q1": {"d1": 1}})["ndcg@10"].individual_scores == [0.0]
    empty = beir_metrics({"q1": {"d1": 1.0}}, {})
    assert empty["ndcg@10"].score == 0.0 and empty["ndcg@10"].individual_scores == []


# --- cost ---------------------------------------------------------------------------------


def test_percentiles_linear() -> None:
    assert percentiles([5.0, 1.0, 3.0, 2.0, 4.0]) == {"p50": 3.0, "p95": pytest.approx(4.8)}
    assert percentiles([10.0, 20.0], ps=(0, 100, 99.9)) == {"p0": 10.0, "p100": 20.0, "p99.9": pytest.approx(19.99)}
    assert percentiles([]) == {"p50": 0.0, "p95": 0.0}
    with pytest.raises(ValueError, match="101"):
        percentiles([1.0], ps=(101,))
