"""Evaluation metrics: pure functions, no I/O and no model.

Every metric over a batch of questions returns a `MetricResult`: the aggregate `score` and one
entry per question in `individual_scores`, so a report can show which questions fail. An entry
is None where the metric does not apply to that question (an unanswerable question has no
answer F1); the aggregate is the mean over the applicable entries, and 0.0 when there are none.

Inputs are parallel lists, one entry per question, checked for equal length.
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from array import array
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "EvidenceLocator",
    "MetricResult",
    "Span",
    "abstention_metrics",
    "answer_metrics",
    "beir_metrics",
    "best_threshold",
    "citation_precision",
    "containment",
    "exact_match",
    "f1",
    "locate",
    "normalize_answer",
    "percentiles",
    "retrieval_metrics",
    "threshold_sweep",
]


@dataclass(frozen=True)
class MetricResult:
    """An aggregate `score` and the per-question scores it came from (None = not applicable)."""

    score: float
    individual_scores: list[float | None]

    @property
    def count(self) -> int:
        """How many questions the metric applied to (the non-None individual scores)."""
        return sum(s is not None for s in self.individual_scores)


@dataclass(frozen=True)
class Span:
    """`documents[source][start:end]`: a character range of one document."""

    source: str
    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start <= self.end:
            raise ValueError(f"span needs 0 <= start <= end, got start={self.start}, end={self.end}")


def _mean(values: Sequence[float | None]) -> float:
    applicable = [v for v in values if v is not None]
    return math.fsum(applicable) / len(applicable) if applicable else 0.0


def _result(individual: list[float | None]) -> MetricResult:
    return MetricResult(score=_mean(individual), individual_scores=individual)


def _check_same_length(**lists: Sequence[Any]) -> int:
    lengths = {name: len(values) for name, values in lists.items()}
    if len(set(lengths.values())) > 1:
        described = ", ".join(f"{name}={n}" for name, n in lengths.items())
        raise ValueError(f"{' and '.join(lengths)} must have the same length, got {described}")
    return next(iter(lengths.values()), 0)


def _check_golds(golds: Sequence[str]) -> None:
    # A bare string would be iterated as one gold answer per character.
    if isinstance(golds, str):
        raise ValueError(f"golds must be a list of answer strings, got the string {golds!r}")


# --- answers (the official SQuAD v2 evaluation script) ------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def _punctuation(ch: str) -> bool:
    return ch in _PUNCTUATION or unicodedata.category(ch).startswith("P")


def _joiner(ch: str) -> bool:
    """A dash or slash between two words ("Afrikaans-speaking", "Dyrrachium—one", "and/or")."""
    return ch == "/" or unicodedata.category(ch) == "Pd"


def normalize_answer(s: str) -> str:
    """Lower-case, drop punctuation and the articles a/an/the, collapse whitespace.

    As the official SQuAD v2 script, with two departures. Unicode punctuation goes as ASCII does
    (the script drops ASCII only): news text quotes with curly marks, so a sentence ending
    `... legitimate military targets.”` contains the answer "legitimate military targets", and
    `O’Brien` matches `O'Brien`. A dash or slash separates words instead of gluing them: the
    script turns "Afrikaans-speaking" into "afrikaansspeaking", which does not contain "Afrikaans".

    Example:
        >>> normalize_answer("The  Cat!"), normalize_answer("“Targets.” O’Brien, Afrikaans-speaking")
        ('cat', 'targets obrien afrikaans speaking')
    """
    text = "".join(" " if _joiner(ch) else "" if _punctuation(ch) else ch for ch in s.lower())
    return " ".join(_ARTICLES.sub(" ", text).split())


def _squad_golds(golds: Sequence[str]) -> list[str]:
    # As the official script: golds that normalise to nothing are dropped, and a question
    # without golds is compared against the empty answer (SQuAD v2 no-answer).
    _check_golds(golds)
    return [g for g in golds if normalize_answer(g)] or [""]


def exact_match(prediction: str, golds: Sequence[str]) -> float:
    """1.0 when the normalised prediction equals a normalised gold answer, else 0.0.

    With no (non-empty) gold, the official SQuAD v2 rule applies: 1.0 only for an empty prediction.

    Example:
        >>> exact_match("The Cat!", ["cat", "a dog"])
        1.0
    """
    predicted = normalize_answer(prediction)
    return max(float(normalize_answer(g) == predicted) for g in _squad_golds(golds))


def _token_f1(prediction: str, gold: str) -> float:
    predicted, expected = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not predicted or not expected:
        return float(predicted == expected)
    same = sum((Counter(predicted) & Counter(expected)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(expected)
    return 2 * precision * recall / (precision + recall)


def f1(prediction: str, golds: Sequence[str]) -> float:
    """Token-level F1 of the normalised prediction, the best over the gold answers.

    With no (non-empty) gold, the official SQuAD v2 rule applies: 1.0 only for an empty prediction.

    Example:
        >>> round(f1("the black cat sat", ["black cat"]), 3)
        0.8
    """
    return max(_token_f1(prediction, g) for g in _squad_golds(golds))


def containment(prediction: str, golds: Sequence[str]) -> float | None:
    """1.0 when a normalised gold occurs in the normalised prediction as whole tokens, else 0.0.

    Returns None (not applicable) when there is no gold, or every gold normalises to nothing.

    Example:
        >>> containment("It was the black cat.", ["Black Cat"]), containment("cats", ["cat"])
        (1.0, 0.0)
    """
    _check_golds(golds)
    expected = [n for n in map(normalize_answer, golds) if n]
    if not expected:
        return None
    # Normalised text is tokens joined by single spaces, so padding makes this a token match.
    padded = f" {normalize_answer(prediction)} "
    return float(any(f" {gold} " in padded for gold in expected))


def answer_metrics(
    predictions: Sequence[str],
    golds_list: Sequence[Sequence[str]],
    answered: Sequence[bool] | None = None,
) -> dict[str, MetricResult]:
    """Answer quality per question: `containment`, `f1`, `exact_match` and `mean_words`.

    `golds_list[i]` holds the gold answers of question i; an empty list marks it unanswerable.
    `containment`, `f1` and `exact_match` apply to answerable questions only; an answerable
    question that was not answered (`answered[i]` False) scores as the empty prediction, i.e. 0.
    `mean_words` (whitespace words of the prediction) applies to answered questions only.
    `answered` defaults to every question answered.

    Example:
        >>> m = answer_metrics(["a cat", "no idea"], [["cat"], []], [True, False])
        >>> m["f1"].score, m["f1"].individual_scores, m["mean_words"].score
        (1.0, [1.0, None], 2.0)
    """
    if answered is None:
        answered = [True] * len(predictions)
    _check_same_length(predictions=predictions, golds_list=golds_list, answered=answered)
    scores: dict[str, list[float | None]] = {"containment": [], "f1": [], "exact_match": [], "mean_words": []}
    for prediction, golds, was_answered in zip(predictions, golds_list, answered):
        _check_golds(golds)
        scored = prediction if was_answered else ""
        contained = containment(scored, golds)
        answerable = contained is not None
        scores["containment"].append(contained)
        scores["f1"].append(f1(scored, golds) if answerable else None)
        scores["exact_match"].append(exact_match(scored, golds) if answerable else None)
        scores["mean_words"].append(float(len(prediction.split())) if was_answered else None)
    return {name: _result(individual) for name, individual in scores.items()}


# --- evidence location ----------------------------------------------------------------------

# `\s` on str patterns is Unicode whitespace: newlines, tabs, non-breaking and thin spaces.
_WHITESPACE = re.compile(r"\s+")


def _normalise_whitespace(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip(" ")


def _normalise_with_offsets(text: str) -> tuple[str, array[int]]:
    """`text` with each whitespace run as one space, and for each of its characters the offset
    of the original character it came from (a run maps to its first character)."""
    pieces: list[str] = []
    offsets = array("q")
    position = 0
    for run in _WHITESPACE.finditer(text):
        start, end = run.span()
        pieces.append(text[position:start])
        offsets.extend(range(position, start))
        pieces.append(" ")
        offsets.append(start)
        position = end
    pieces.append(text[position:])
    offsets.extend(range(position, len(text)))
    return "".join(pieces), offsets


class EvidenceLocator:
    """Finds evidence strings in a fixed set of documents, whitespace-insensitively.

    Each document is normalised once, on first use, and reused for every evidence string.

    Example:
        >>> locator = EvidenceLocator({"a.txt": "The cat\\n  sat."})
        >>> locator.locate("cat sat")
        [Span(source='a.txt', start=4, end=13)]
    """

    def __init__(self, documents: Mapping[str, str]) -> None:
        self._documents = dict(documents)  # a snapshot: later edits to the caller's dict don't apply
        self._normalised: dict[str, tuple[str, array[int]]] = {}

    def locate(self, evidence: str) -> list[Span]:
        """Every occurrence of `evidence` (overlapping ones included), in document order then by
        offset, as spans of the original text. Blank evidence is found nowhere: []."""
        needle = _normalise_whitespace(evidence)
        if not needle:
            return []
        spans: list[Span] = []
        for source, text in self._documents.items():
            if source not in self._normalised:
                self._normalised[source] = _normalise_with_offsets(text)
            haystack, offsets = self._normalised[source]
            found = haystack.find(needle)
            while found != -1:
                # The needle starts and ends with non-space characters, which map one to one.
                spans.append(Span(source, offsets[found], offsets[found + len(needle) - 1] + 1))
                found = haystack.find(needle, found + 1)
        return spans


def locate(evidence: str, documents: Mapping[str, str]) -> list[Span]:
    """Every occurrence of `evidence` in `documents` (source -> text), whitespace-insensitively.

    Runs of whitespace (newlines and non-breaking spaces included) compare equal to one space
    and the evidence's leading/trailing whitespace is ignored; offsets point into the original
    text. Not found, or blank evidence: []. For many evidence strings over the same documents
    use `EvidenceLocator`, which normalises each document once.

    Example:
        >>> locate("black cat", {"a.txt": "A black\\u00a0cat."})
        [Span(source='a.txt', start=2, end=11)]
    """
    return EvidenceLocator(documents).locate(evidence)


# --- retrieval and citations ------------------------------------------------------------------


def _overlaps(span: Span, others: Sequence[Span]) -> bool:
    return any(span.source == o.source and span.start < o.end and o.start < span.end for o in others)


def retrieval_metrics(
    retrieved: Sequence[Sequence[Span]],
    relevant: Sequence[Sequence[Span]],
    *,
    ks: Sequence[int] = (1, 5),
) -> dict[str, MetricResult]:
    """`hit@k` for each k in `ks`, and `mrr`, per question.

    `retrieved[i]` is question i's ranked spans, best first; `relevant[i]` its evidence spans.
    A retrieved span is relevant when it shares a source with an evidence span and overlaps it
    by at least one character. Questions without evidence spans are not applicable (None).
    MRR is 1/rank of the first relevant span in the whole list (0.0 if there is none).

    Example:
        >>> m = retrieval_metrics([[Span("b", 0, 9), Span("a", 5, 9)]], [[Span("a", 0, 6)]])
        >>> m["hit@1"].score, m["hit@5"].score, m["mrr"].score
        (0.0, 1.0, 0.5)
    """
    for k in ks:
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"ks must hold integers >= 1, got {k!r}")
    _check_same_length(retrieved=retrieved, relevant=relevant)
    scores: dict[str, list[float | None]] = {f"hit@{k}": [] for k in ks}
    scores["mrr"] = []
    for ranked, evidence in zip(retrieved, relevant):
        if not evidence:
            for individual in scores.values():
                individual.append(None)
            continue
        first = next((rank for rank, span in enumerate(ranked, 1) if _overlaps(span, evidence)), None)
        for k in ks:
            scores[f"hit@{k}"].append(float(first is not None and first <= k))
        scores["mrr"].append(1.0 / first if first is not None else 0.0)
    return {name: _result(individual) for name, individual in scores.items()}


def citation_precision(
    citations: Sequence[Sequence[Span]],
    quotes: Sequence[Sequence[str]],
    relevant: Sequence[Sequence[Span]],
    golds: Sequence[Sequence[str]],
) -> MetricResult:
    """Per question, the share of citations that support the answer; the macro mean over questions.

    A citation supports the answer when its span overlaps an evidence span of `relevant[i]`, or
    its quote `quotes[i][j]` contains a gold answer (`containment`). Not applicable (None):
    questions with no citations, and questions with neither evidence spans nor golds (nothing
    to check a citation against). Macro: each applicable question weighs the same.

    Example:
        >>> citation_precision([[Span("a", 0, 5), Span("b", 0, 5)]], [["x", "the Cat sat"]],
        ...                    [[Span("a", 9, 12)]], [["cat"]]).score
        0.5
    """
    _check_same_length(citations=citations, quotes=quotes, relevant=relevant, golds=golds)
    individual: list[float | None] = []
    for i, (cited, quoted, evidence, answers) in enumerate(zip(citations, quotes, relevant, golds)):
        if len(cited) != len(quoted):
            raise ValueError(f"question {i} has {len(cited)} citations but {len(quoted)} quotes")
        _check_golds(answers)
        if not cited or (not evidence and containment("", answers) is None):
            individual.append(None)
            continue
        supported = sum(
            _overlaps(span, evidence) or containment(quote, answers) == 1.0 for span, quote in zip(cited, quoted)
        )
        individual.append(supported / len(cited))
    return _result(individual)


# --- abstention -------------------------------------------------------------------------------


def _check_confidence(confidence: Sequence[float]) -> np.ndarray:
    values = np.asarray(confidence, dtype=float)
    if values.size and np.isnan(values).any():
        raise ValueError(f"confidence must not hold NaN, got NaN at index {int(np.isnan(values).argmax())}")
    return values


def _rates(
    answered_positive: int, refused_negative: int, n_positive: int, n_negative: int
) -> tuple[float, float, float]:
    """answered_answerable, refused_unanswerable, balanced accuracy (mean of the defined rates)."""
    defined = []
    answered_rate = refused_rate = 0.0
    if n_positive:
        answered_rate = answered_positive / n_positive
        defined.append(answered_rate)
    if n_negative:
        refused_rate = refused_negative / n_negative
        defined.append(refused_rate)
    return answered_rate, refused_rate, _mean(defined)


def abstention_metrics(
    abstained: Sequence[bool],
    answerable: Sequence[bool],
    confidence: Sequence[float],
) -> dict[str, MetricResult]:
    """How well abstention separates answerable from unanswerable questions.

    - `refused_unanswerable`: 1.0/0.0 per unanswerable question (None for answerable ones).
    - `answered_answerable`: 1.0/0.0 per answerable question (None for unanswerable ones).
    - `balanced_accuracy`: the mean of the two rates above (only the defined one if a class is
      empty; 0.0 if both are); per question, 1.0 when the abstention decision was right.
    - `auroc`: how well `confidence` ranks answerable (positive) above unanswerable questions,
      ties counting half (Mann-Whitney U / (n_pos * n_neg)). Per question: for an answerable
      one, the share of unanswerable ones it outranks; for an unanswerable one, the share of
      answerable ones that outrank it (either set's mean is the AUROC). With no answerable or
      no unanswerable question nothing can be ranked: the score is 0.5 (chance), entries None.

    Example:
        >>> m = abstention_metrics([False, True, False], [True, False, False], [0.9, 0.2, 0.6])
        >>> m["refused_unanswerable"].score, m["balanced_accuracy"].score, m["auroc"].score
        (0.5, 0.75, 1.0)
    """
    n = _check_same_length(abstained=abstained, answerable=answerable, confidence=confidence)
    scores = _check_confidence(confidence)
    positive = np.asarray(answerable, dtype=bool).reshape(n)
    refused: list[float | None] = [None if a else float(x) for x, a in zip(abstained, answerable)]
    answered: list[float | None] = [float(not x) if a else None for x, a in zip(abstained, answerable)]
    correct: list[float | None] = [float(bool(x) != bool(a)) for x, a in zip(abstained, answerable)]
    n_pos, n_neg = int(positive.sum()), n - int(positive.sum())
    *_, balanced = _rates(sum(1 for x in answered if x), sum(1 for x in refused if x), n_pos, n_neg)
    auroc, auroc_individual = _auroc_by_question(scores, positive)
    return {
        "refused_unanswerable": _result(refused),
        "answered_answerable": _result(answered),
        "balanced_accuracy": MetricResult(score=balanced, individual_scores=correct),
        "auroc": MetricResult(score=auroc, individual_scores=auroc_individual),
    }


def _auroc_by_question(scores: np.ndarray, positive: np.ndarray) -> tuple[float, list[float | None]]:
    """`abstention_metrics`' AUROC of `scores` (answerable where `positive`) and its per-question
    entries; (0.5, all None) unless both classes are present."""
    n = len(positive)
    n_pos, n_neg = int(positive.sum()), n - int(positive.sum())
    individual: list[float | None] = [None] * n
    if not (n_pos and n_neg):
        return 0.5, individual
    pos, neg = np.sort(scores[positive]), np.sort(scores[~positive])
    below = np.searchsorted(neg, scores, side="left")  # unanswerable with lower confidence
    equal_neg = np.searchsorted(neg, scores, side="right") - below
    above = n_pos - np.searchsorted(pos, scores, side="right")  # answerable with higher confidence
    equal_pos = np.searchsorted(pos, scores, side="right") - np.searchsorted(pos, scores, side="left")
    for i in range(n):
        if positive[i]:
            individual[i] = float((below[i] + 0.5 * equal_neg[i]) / n_neg)
        else:
            individual[i] = float((above[i] + 0.5 * equal_pos[i]) / n_pos)
    return _mean([individual[i] for i in range(n) if positive[i]]), individual


def _split_by_class(confidence: Sequence[float], answerable: Sequence[bool]) -> tuple[np.ndarray, np.ndarray]:
    n = _check_same_length(confidence=confidence, answerable=answerable)
    scores = _check_confidence(confidence).reshape(n)
    positive = np.asarray(answerable, dtype=bool).reshape(n)
    return np.sort(scores[positive]), np.sort(scores[~positive])


def threshold_sweep(
    confidence: Sequence[float],
    answerable: Sequence[bool],
    thresholds: Sequence[float],
) -> list[dict[str, float]]:
    """For each threshold t, the rates of the policy "abstain when confidence < t".

    Each row: `threshold`, `answered_answerable`, `refused_unanswerable` (0.0 for an empty
    class) and `balanced_accuracy` (the mean of the defined rates).

    Example:
        >>> threshold_sweep([0.9, 0.4], [True, False], [0.5])
        [{'threshold': 0.5, 'answered_answerable': 1.0, 'refused_unanswerable': 1.0, 'balanced_accuracy': 1.0}]
    """
    pos, neg = _split_by_class(confidence, answerable)
    rows = []
    for t in thresholds:
        if math.isnan(t):
            raise ValueError(f"thresholds must not hold NaN, got {list(thresholds)!r}")
        answered_pos = len(pos) - int(np.searchsorted(pos, t, side="left"))
        refused_neg = int(np.searchsorted(neg, t, side="left"))
        answered_rate, refused_rate, balanced = _rates(answered_pos, refused_neg, len(pos), len(neg))
        rows.append(
            {
                "threshold": float(t),
                "answered_answerable": answered_rate,
                "refused_unanswerable": refused_rate,
                "balanced_accuracy": balanced,
            }
        )
    return rows


def best_threshold(
    confidence: Sequence[float], answerable: Sequence[bool], *, groups: Sequence[str] | None = None
) -> float:
    """The threshold t maximising balanced accuracy of "abstain when confidence < t".

    With `groups` (a dataset name per question), the objective is the mean over groups of each
    group's balanced accuracy, so a large dataset does not decide the threshold alone.

    Balanced accuracy only changes where t crosses a confidence value, so it is flat on each
    interval between consecutive distinct values. The best plateau is a run of adjacent best
    intervals, the lowest run if there are several (prefer answering); the result is the
    midpoint of the confidence values bounding it. A plateau unbounded below is bounded
    by the lowest confidence (which abstains on nothing); one unbounded above by the highest,
    unless that leaves no room, when the next float above it is returned (abstain on all).
    No questions: 0.0. The objective is compared exactly (integers), so ties are exact.

    Example:
        >>> best_threshold([0.9, 0.8, 0.3, 0.2], [True, True, False, False])
        0.55
        >>> best_threshold([0.1, 0.2, 0.3, 0.6, 0.7, 0.8, 0.65, 0.9],
        ...                [False, False, False, True, True, True, False, True],
        ...                groups=["a"] * 6 + ["b"] * 2)  # b, two questions, weighs as much as a
        0.675
    """
    n = _check_same_length(
        confidence=confidence, answerable=answerable, **({"groups": groups} if groups is not None else {})
    )
    scores = _check_confidence(confidence).reshape(n)
    positive = np.asarray(answerable, dtype=bool).reshape(n)
    if not n:
        return 0.0
    values = np.unique(scores)
    # Interval i holds thresholds in (values[i-1], values[i]], with values[-1] = -inf and
    # values[len] = +inf; there, the questions abstained on are those with confidence <= values[i-1].
    cuts = np.concatenate([[-np.inf], values])
    names = np.asarray(groups, dtype=object) if groups is not None else np.zeros(n, dtype=object)
    first, last = _first_best_run(_mean_balanced_accuracy(scores, positive, names, cuts))
    if first == len(values):  # only "abstain on everything" is best
        return math.nextafter(float(values[-1]), math.inf)
    low = values[first - 1] if first > 0 else values[0]
    high = values[last] if last < len(values) else values[-1]
    return float((low + high) / 2)


def _mean_balanced_accuracy(scores: np.ndarray, positive: np.ndarray, names: np.ndarray, cuts: np.ndarray) -> list[int]:
    """Per interval of `best_threshold` (abstaining on confidence <= cuts[i]), the sum over the
    groups `names` of their balanced accuracies times one common integer: the mean of the groups'
    balanced accuracies up to a constant factor, in integers so that ties compare exactly."""
    # Per group, balanced accuracy times its denominator (integers); summed over groups, each
    # scaled to a common denominator, so the mean of the groups' balanced accuracies compares exactly.
    parts: list[tuple[list[int], int]] = []
    for name in sorted(set(names.tolist()), key=str):
        in_group = names == name
        pos, neg = np.sort(scores[in_group & positive]), np.sort(scores[in_group & ~positive])
        answered_pos = len(pos) - np.searchsorted(pos, cuts, side="right")
        refused_neg = np.searchsorted(neg, cuts, side="right")
        if len(pos) and len(neg):
            parts.append(((answered_pos * len(neg) + refused_neg * len(pos)).tolist(), len(pos) * len(neg)))
        else:
            parts.append(((answered_pos if len(pos) else refused_neg).tolist(), len(pos) or len(neg)))
    common = math.lcm(*(d for _, d in parts))
    return [sum(k[i] * (common // d) for k, d in parts) for i in range(len(cuts))]


def _first_best_run(key: list[int]) -> tuple[int, int]:
    """(first, last) index of the lowest run of adjacent entries of `key` equal to its maximum."""
    best = max(key)
    runs: list[tuple[int, int]] = []  # (first, last) interval of each run of best intervals
    for i in (i for i, v in enumerate(key) if v == best):
        if runs and runs[-1][1] == i - 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs[0]


# --- BEIR and cost ----------------------------------------------------------------------------


def beir_metrics(
    run: Mapping[str, Mapping[str, float]], qrels: Mapping[str, Mapping[str, int]]
) -> dict[str, MetricResult]:
    """`ndcg@10` and `recall@100` of a BEIR run, computed by ir_measures (pytrec_eval backend).

    `run` maps query id -> doc id -> score; `qrels` query id -> doc id -> graded relevance.
    Individual scores follow the order of `qrels`; a query missing from the run scores 0.0, and
    run queries without qrels are ignored. Score ties rank the larger doc id first, as trec_eval does.

    Example:
        >>> m = beir_metrics({"q1": {"d1": 2.0, "d2": 1.0}}, {"q1": {"d2": 1}})
        >>> round(m["ndcg@10"].score, 4), m["recall@100"].score
        (0.6309, 1.0)
    """
    import ir_measures  # deferred: only the BEIR evaluation needs it

    names = {"ndcg@10": ir_measures.nDCG @ 10, "recall@100": ir_measures.R @ 100}
    by_query: dict[str, dict[str, float]] = {name: {} for name in names}
    judged = {q: dict(docs) for q, docs in qrels.items()}
    retrieved = {q: dict(docs) for q, docs in run.items() if q in judged}
    if judged and retrieved:
        evaluator = ir_measures.pytrec_eval.evaluator(list(names.values()), judged)
        measure_names = {measure: name for name, measure in names.items()}
        for metric in evaluator.iter_calc(retrieved):
            by_query[measure_names[metric.measure]][metric.query_id] = float(metric.value)
    return {name: _result([by_query[name].get(q, 0.0) for q in judged]) for name in names}


def percentiles(values: Sequence[float], *, ps: Sequence[float] = (50, 95)) -> dict[str, float]:
    """Percentiles of `values` (numpy, linear interpolation), keyed `p50`, `p95`, ...; empty: 0.0.

    Example:
        >>> percentiles([1.0, 2.0, 3.0, 4.0, 5.0])
        {'p50': 3.0, 'p95': 4.8}
    """
    for p in ps:
        if not 0 <= p <= 100:
            raise ValueError(f"ps must be within [0, 100], got {p!r}")
    keys = [f"p{p:g}" for p in ps]
    if len(values) == 0:
        return {key: 0.0 for key in keys}
    found = np.percentile(np.asarray(values, dtype=float), list(ps), method="linear")
    return {key: float(v) for key, v in zip(keys, found)}
