"""`python -m eval.support`: measure the support score of `rag.verify` and choose its threshold.

Data: ClapNQ dev, answerable rows (written answers grounded in a gold Wikipedia passage). The
gold passages of all 600 rows are indexed with the real `build_index`, so sentence vectors and
IDF weights are those the verifier reads at run time. Each answer sentence that is a statement
(`rag.verify.is_statement`: 4 words or more, closing punctuation) makes one positive and up to
three negatives:

- positive: the sentence against the chunks of its gold passage;
- `retrieved` negative: the same sentence against the best-ranked chunk that is not from its
  gold passage (hybrid search with the question: a passage on the same topic);
- `swapped` negative: the sentence with one fact changed (a number, else a name, that the gold
  passage holds, replaced by one from another passage that it does not) against its gold chunks,
  the way a model gets one detail wrong while copying the rest;
- `in_passage` negative (reported, not fitted on): the same, but the replacement comes from the
  gold passage itself, so every word is in the passage and only the relation is wrong ("the
  Deputy Secretary is Blinken" from a passage naming both). Word overlap and sentence embeddings
  cannot see this well; its numbers show the limit of the score.

Fragments (a short answer such as "8,000" or a name, checked together with its question: see
`rag.verify.best_evidence`) are measured on SQuAD 2.0 dev (all 16 articles indexed, 800 answerable
questions sampled): positive, the question and its answer against the chunks of its paragraph
holding the answer; `retrieved`, the same against the best-ranked chunk without the answer;
`wrong_answer`, the question with the answer of another question on the same paragraph.

Rows are split in two halves with `eval.datasets.split_items` (by question). On the calibration
half the logistic weights (`rag.verify.SUPPORT_FEATURES`) are fitted (`eval.calibrate.fit_logistic`),
one set for statements (`RagConfig.support_weights`) and one for fragments
(`RagConfig.fragment_support_weights`), and the threshold chosen on the
statements (balanced accuracy, `eval.metrics.best_threshold`); the fragment weights' bias is moved
so that their own best threshold falls on the same value; on the report half AUROC, precision and
recall at the threshold are reported, for the fitted weights and for the shipped ones (`RagConfig`'s,
from rag/fitted.json). The table is printed, the report written to eval/reports/support.json, and
the fitted weights and threshold, with their provenance, written as the `support` block of the
fitted-numbers file (`eval.calibrate.write_fitted`; `--fitted` names another file, `--dry-run` skips it).

The claim checker (`rag.checker`) is measured on the same units (`checker_results`): for each
claim and passage, the quote the fitted support score chooses is read by the checker, and, for a
fragment, the sentence holding it by the reader (`rag.checker.fragment_logit`); a logistic over the
support score's logit and those logits is fitted per form on the calibration half (a wrong relation,
`in_passage`, now among the negatives fitted on), with the threshold keeping `KEEP` (90%) of the
supported statements there and the fragment bias moved so that it keeps 90% of theirs too. The
checker trained on the calibration halves' rows (`eval.train_checker` holds out only the report
halves) and the reader on most SQuAD calibration questions, so the weights are fitted where their
logits are optimistic; the report half is clean (SQuAD questions the reader saw are left out of it).
Reported beside it: the support score alone at thresholds keeping the same share. Written as the
`checker` block.

Example:
    python -m eval.support --index-dir .cache/eval-support
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from eval.datasets import SHARED_DATASETS
from rag.numeric import sigmoid

if TYPE_CHECKING:
    from rag.reader import Reader
    from rag.types import Hit
    from rag.verify import Evidence

ROOT = Path(__file__).resolve().parents[1]
SHARED = SHARED_DATASETS
REPORT = ROOT / "eval" / "reports" / "support.json"
FRAGMENT_SAMPLE = 800
# Negative kinds per form, and those the weights are fitted on (the others are only reported).
KINDS = {"statement": ("retrieved", "swapped", "in_passage"), "fragment": ("retrieved", "wrong_answer")}
FITTED_KINDS = {"statement": ("gold", "retrieved", "swapped"), "fragment": ("gold", "retrieved", "wrong_answer")}
_NUMBER = re.compile(r"\d[\d,.]*\d|\d")
_NAME = re.compile(r"(?<=[a-z,;] )[A-Z][a-z]+")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m eval.support", description=__doc__.split("\n")[0])
    p.add_argument("--clapnq", default=str(SHARED / "clapnq-dev"), help="ClapNQ dev folder (default: %(default)s)")
    p.add_argument(
        "--squad",
        default=str(SHARED / "squad2-dev" / "dev-v2.0.json"),
        help="SQuAD 2.0 dev JSON (default: %(default)s)",
    )
    p.add_argument("--index-dir", help="index folder to build in, kept for reruns (default: a temporary folder)")
    p.add_argument("--report", default=str(REPORT), help="where to write the JSON report (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed for the swapped facts (default: %(default)s)")
    p.add_argument(
        "--fitted",
        metavar="FILE.json",
        help="the fitted-numbers file to write the support block into (default: $RAG_FITTED, else the "
        "package's rag/fitted.json)",
    )
    p.add_argument("--dry-run", action="store_true", help="measure and report, do not write the fitted file")
    return p


def _swap(
    sentence: str, passage: str, donors: Sequence[str], rng: random.Random, *, from_passage: bool = False
) -> str | None:
    """`sentence` with one number (else one name) that `passage` holds replaced by one from a donor
    passage that `passage` does not hold (`from_passage`: by another one of the passage's own, not
    in the sentence); None when the sentence has neither."""
    for pattern in (_NUMBER, _NAME):
        own = [m for m in pattern.finditer(sentence) if m.group(0) in passage]
        if not own:
            continue
        target = own[0]
        for donor in rng.sample(list(donors), min(20, len(donors))):
            options = sorted({m.group(0) for m in pattern.finditer(donor)} - {target.group(0)})
            options = [o for o in options if (o not in sentence if from_passage else o not in passage)]
            if options:
                return sentence[: target.start()] + rng.choice(options) + sentence[target.end() :]
    return None


def statement_units(dataset: Any, index: Any, embedder: Any, *, seed: int) -> list[dict[str, Any]]:
    """The (sentence, passages, label, kind, half) rows to score, from ClapNQ's answerable items."""
    from eval.datasets import split_items
    from rag.chunk import split_sentences
    from rag.config import RagConfig
    from rag.retrieve import search
    from rag.types import Hit
    from rag.verify import is_statement

    answerable = [item for item in dataset.items if item.answerable]
    calibration, _ = split_items(answerable)
    half_of = {item.id: "calibration" for item in calibration}
    source_of = {text: name for name, text in dataset.documents.items()}
    texts = list(dataset.documents.values())
    rng = random.Random(seed)
    config = RagConfig()
    vectors = embedder.encode_queries([item.question for item in answerable])
    units: list[dict[str, Any]] = []
    for item, vector in zip(answerable, vectors):
        gold_text = next((t for t in texts if all(e in t for e in item.evidence)), None)
        if gold_text is None:
            continue
        gold = source_of[gold_text]
        gold_hits = [Hit(c, 0.0) for c in index.document_chunks(gold)]
        other = next(
            (h for h in search(index, item.question, vector, config=config, top_k=10) if h.chunk.source != gold), None
        )
        half = half_of.get(item.id, "report")
        answer = item.answers[0]
        for a, b in split_sentences(answer):
            sentence = answer[a:b]
            if not is_statement(sentence):  # fragments are checked with their question: not measured here
                continue
            base = {"id": item.id, "half": half, "form": "statement"}
            units.append({**base, "sentence": sentence, "hits": gold_hits, "label": 1, "kind": "gold"})
            if other is not None:
                units.append({**base, "sentence": sentence, "hits": [other], "label": 0, "kind": "retrieved"})
            swapped = _swap(sentence, gold_text, [t for t in rng.sample(texts, 40) if t != gold_text], rng)
            if swapped is not None:
                units.append({**base, "sentence": swapped, "hits": gold_hits, "label": 0, "kind": "swapped"})
            shuffled = _swap(sentence, gold_text, [gold_text], rng, from_passage=True)
            if shuffled is not None:
                units.append({**base, "sentence": shuffled, "hits": gold_hits, "label": 0, "kind": "in_passage"})
    return units


def fragment_units(dataset: Any, index: Any, embedder: Any, *, seed: int) -> list[dict[str, Any]]:
    """The (question and answer, passages, label, kind, half) rows to score, from SQuAD answerable items."""
    from eval.datasets import sample_items, split_items
    from rag.config import RagConfig
    from rag.retrieve import search
    from rag.types import Hit

    answerable = [item for item in dataset.items if item.answerable]
    answers_of: dict[str, list[str]] = {}
    for item in answerable:
        answers_of.setdefault(item.evidence[0], []).append(item.answers[0])
    items = sample_items(answerable, limit=FRAGMENT_SAMPLE, seed=seed)
    calibration, _ = split_items(items)
    half_of = {item.id: "calibration" for item in calibration}
    rng = random.Random(seed)
    config = RagConfig()
    chunks_of = {name: index.document_chunks(name) for name in dataset.documents}
    vectors = embedder.encode_queries([item.question for item in items])
    units: list[dict[str, Any]] = []
    for item, vector in zip(items, vectors):
        answer, context = item.answers[0], item.evidence[0]
        name = next(n for n, text in dataset.documents.items() if context in text)
        start = dataset.documents[name].find(context)
        gold = [
            Hit(c, 0.0)
            for c in chunks_of[name]
            if c.start < start + len(context) and start < c.end and answer in c.text
        ]
        if not gold:
            continue
        base = {"id": item.id, "half": half_of.get(item.id, "report"), "form": "fragment"}
        base["question"] = item.question
        units.append({**base, "sentence": answer, "hits": gold, "label": 1, "kind": "gold"})
        other = next(
            (h for h in search(index, item.question, vector, config=config, top_k=10) if answer not in h.chunk.text),
            None,
        )
        if other is not None:
            units.append({**base, "sentence": answer, "hits": [other], "label": 0, "kind": "retrieved"})
        wrong = sorted(
            {a for a in answers_of[context] if a not in answer and answer not in a and a not in item.answers}
        )
        if wrong:
            units.append({**base, "sentence": rng.choice(wrong), "hits": gold, "label": 0, "kind": "wrong_answer"})
    return units


def _best_rows(spans: list[list[Any]], weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per unit, the features and score of its best span (over all its passages) under `weights`."""

    rows, scores = [], []
    for per_passage in spans:
        feats = np.array([s.features for spans_j in per_passage for s in spans_j], dtype=np.float64)
        if not len(feats):
            feats = np.zeros((1, len(weights)))
            feats[0, 0] = 1.0
        z = feats @ weights
        k = int(np.argmax(z))
        rows.append(feats[k])
        scores.append(sigmoid(z[k]))
    return np.array(rows), np.array(scores)


def fit_weights(spans: list[list[Any]], labels: np.ndarray, start: Sequence[float], *, rounds: int = 6) -> np.ndarray:
    """Logistic weights fitted on the best span of each unit, re-choosing the best spans with the
    new weights each round (the score of a claim is its best span's)."""
    from eval.calibrate import fit_logistic

    weights = np.asarray(start, dtype=np.float64)
    for _ in range(rounds):
        rows, _ = _best_rows(spans, weights)
        fitted = fit_logistic(rows, labels)
        if np.abs(fitted - weights).max() < 1e-3:
            return fitted
        weights = fitted
    return weights


def _auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    from eval.metrics import abstention_metrics

    return abstention_metrics([False] * len(labels), labels.astype(bool).tolist(), scores.tolist())["auroc"].score


def metrics(
    scores: np.ndarray, labels: np.ndarray, kinds: np.ndarray, threshold: float, *, form: str
) -> dict[str, Any]:
    """AUROC, and precision / recall / balanced accuracy of "supported when score >= threshold",
    over the rows of the kinds fitted on, and per negative kind (each against all positives)."""
    per_kind = {}
    for kind in KINDS[form]:
        mask = (labels == 1) | (kinds == kind)
        neg = kinds == kind
        per_kind[kind] = {
            "n": int(neg.sum()),
            "auroc": round(_auroc(scores[mask], labels[mask]), 4),
            "unsupported_caught": round(float((scores[neg] < threshold).mean()) if neg.any() else 0.0, 4),
        }
    fitted = np.isin(kinds, FITTED_KINDS[form])
    scores, labels = scores[fitted], labels[fitted]
    kept = scores >= threshold
    pos = labels == 1
    out: dict[str, Any] = {
        "n_positive": int(pos.sum()),
        "n_negative": int((~pos).sum()),
        "auroc": round(_auroc(scores, labels), 4),
    }
    tp = int((kept & pos).sum())
    out["precision"] = round(tp / max(int(kept.sum()), 1), 4)
    out["recall"] = round(tp / max(int(pos.sum()), 1), 4)
    out["unsupported_caught"] = round(float((~kept[~pos]).mean()) if (~pos).any() else 0.0, 4)
    out["balanced_accuracy"] = round((out["recall"] + out["unsupported_caught"]) / 2, 4)
    return {**out, **per_kind}


def _indexed(documents: dict[str, str], work: Path, embedder: Any, config: Any) -> tuple[Any, dict[str, Any]]:
    from eval.runner import build_eval_index
    from rag.store import Index

    work.mkdir(parents=True, exist_ok=True)
    cost = build_eval_index(documents, work_dir=work, index_dir=work / "index", config=config, embedder=embedder)
    return Index.load(work / "index", config=config), {"seconds": cost["seconds"], "chunks": cost["chunks"]}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Make and score the units of both forms, fit each form's weights and the threshold on the
    calibration half, and measure the fitted and the shipped weights: the report (see the module
    docstring)."""
    from eval.datasets import load_clapnq, load_squad
    from rag.config import RagConfig
    from rag.embed import Embedder
    from rag.store import library_versions
    from rag.verify import SUPPORT_FEATURES

    started = time.perf_counter()
    embedder = Embedder.load()
    config = RagConfig()
    datasets = {"statement": load_clapnq(args.clapnq), "fragment": load_squad(args.squad)}
    units, spans, indexes = _units_and_spans(datasets, embedder, config, index_dir=args.index_dir, seed=args.seed)
    scored = time.perf_counter()
    columns = _Columns.of(units)
    shipped = {"statement": config.support_weights, "fragment": config.fragment_support_weights}
    fitted, best = _fit_forms(list(datasets), spans, columns, shipped)
    results: dict[str, Any] = {"best_threshold_per_form": {f: round(t, 4) for f, t in best.items()}}
    for name, weights in (("fitted", fitted), ("shipped", shipped)):
        scores, results[name] = _measure(weights, spans, columns, list(datasets))
        if name == "fitted":  # how the threshold trades kept supported claims for caught unsupported ones
            results["threshold_sweep_report"] = _threshold_sweep(scores, columns)
    results["reader_fragments"] = reader_fragment_results(units, scores_of=results, fitted=fitted, spans=spans)
    results["checker"] = checker_results(units, spans, columns, fitted, best["statement"], shipped=config)
    return {
        "datasets": {form: {"name": d.name, "source_hash": d.source_hash} for form, d in datasets.items()},
        "units": _unit_counts(columns, list(datasets)),
        "features": list(SUPPORT_FEATURES),
        "fitted_on": {form: list(kinds_) for form, kinds_ in FITTED_KINDS.items()},
        **results,
        "index": indexes,
        "seconds": {
            "indexing_and_features": round(scored - started, 1),
            "total": round(time.perf_counter() - started, 1),
        },
        "versions": library_versions(),
    }


def _units_and_spans(
    datasets: dict[str, Any], embedder: Any, config: Any, *, index_dir: str | None, seed: int
) -> tuple[list[dict[str, Any]], list[Any], dict[str, Any]]:
    """Each form's units (`statement_units`, `fragment_units`) with their evidence spans, every
    dataset indexed into `index_dir` (default: a temporary folder); and the indexing cost per form."""
    import tempfile

    from rag.verify import evidence_spans

    makers = {"statement": statement_units, "fragment": fragment_units}
    units: list[dict[str, Any]] = []
    spans: list[Any] = []
    indexes: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="rag-support-") as tmp:
        root = Path(index_dir) if index_dir else Path(tmp)
        for form, dataset in datasets.items():
            index, indexes[form] = _indexed(dataset.documents, root / dataset.name, embedder, config)
            try:
                made = makers[form](dataset, index, embedder, seed=seed)
                spans += evidence_spans(
                    [u["sentence"] for u in made],
                    [u["hits"] for u in made],
                    index,
                    embedder,
                    questions=[u.get("question") for u in made],
                )
                units += made
            finally:
                index.close()
    return units, spans, indexes


@dataclass(frozen=True)
class _Columns:
    """The units' labels, kinds, forms and halves as arrays, and whether each is of a kind fitted on."""

    labels: np.ndarray
    kinds: np.ndarray
    forms: np.ndarray
    cal: np.ndarray
    fitted_kind: np.ndarray

    @classmethod
    def of(cls, units: list[dict[str, Any]]) -> _Columns:
        return cls(
            labels=np.array([u["label"] for u in units]),
            kinds=np.array([u["kind"] for u in units]),
            forms=np.array([u["form"] for u in units]),
            cal=np.array([u["half"] == "calibration" for u in units]),
            fitted_kind=np.array([u["kind"] in FITTED_KINDS[u["form"]] for u in units]),
        )

    @property
    def fit_rows(self) -> np.ndarray:
        """The rows the weights and the threshold are fitted on: calibration half, kinds fitted on."""
        return self.cal & self.fitted_kind


def _fit_forms(
    forms: Sequence[str], spans: list[Any], columns: _Columns, shipped: dict[str, Any]
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Per form, the weights fitted on its calibration rows (starting from the `shipped` ones) and
    their best threshold; the fragment bias moved so that the statements' threshold serves both."""
    from eval.metrics import best_threshold

    fitted: dict[str, np.ndarray] = {}
    best: dict[str, float] = {}
    for form in forms:
        rows = columns.fit_rows & (columns.forms == form)
        fitted[form] = fit_weights([s for s, r in zip(spans, rows) if r], columns.labels[rows], shipped[form])
        _, scores = _best_rows([s for s, r in zip(spans, rows) if r], fitted[form])
        best[form] = best_threshold(scores.tolist(), (columns.labels[rows] == 1).tolist())
    # One threshold serves both forms (`RagConfig.support_threshold`, the statements' best): the
    # fragment bias is moved so that the fragments' own best threshold lands on it.
    logit = lambda p: float(np.log(p / (1.0 - p)))  # noqa: E731
    fitted["fragment"][0] += logit(best["statement"]) - logit(best["fragment"])
    return fitted, best


def _measure(
    weights: dict[str, Any], spans: list[Any], columns: _Columns, forms: Sequence[str]
) -> tuple[np.ndarray, dict[str, Any]]:
    """Every unit's score under `weights` (one set per form), and the report entry: the threshold
    chosen on the statements' calibration rows, and per form the weights and each half's `metrics`."""
    from eval.metrics import best_threshold

    scores = np.zeros(len(columns.labels))
    for form in forms:
        mask = columns.forms == form
        _, scores[mask] = _best_rows([s for s, m in zip(spans, mask) if m], np.asarray(weights[form], float))
    statement_rows = columns.fit_rows & (columns.forms == "statement")
    threshold = best_threshold(scores[statement_rows].tolist(), (columns.labels[statement_rows] == 1).tolist())
    entry: dict[str, Any] = {"threshold": round(threshold, 4)}
    for form in forms:
        entry[form] = {"weights": [round(float(w), 4) for w in weights[form]]}
        for half, rows in (("calibration", columns.cal), ("report", ~columns.cal)):
            m = rows & (columns.forms == form)
            entry[form][half] = metrics(scores[m], columns.labels[m], columns.kinds[m], threshold, form=form)
    return scores, entry


def _threshold_sweep(scores: np.ndarray, columns: _Columns) -> list[dict[str, float]]:
    """Recall and unsupported caught over the report half's rows of the kinds fitted on, both forms,
    at thresholds 0.2 to 0.9."""
    report_fit = ~columns.cal & columns.fitted_kind
    labels = columns.labels
    return [
        {
            "threshold": t,
            "recall": round(float((scores[report_fit & (labels == 1)] >= t).mean()), 4),
            "unsupported_caught": round(float((scores[report_fit & (labels == 0)] < t).mean()), 4),
        }
        for t in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    ]


def _unit_counts(columns: _Columns, forms: Sequence[str]) -> dict[str, Any]:
    """Units per form, half and kind ("gold": the positives)."""
    return {
        form: {
            half: {
                kind: int(
                    ((columns.kinds == kind) & (columns.forms == form) & (columns.cal == (half == "calibration"))).sum()
                )
                for kind in ("gold", *KINDS[form])
            }
            for half in ("calibration", "report")
        }
        for form in forms
    }


def fragment_evidence(question: str, fragment: str, hits: Sequence[Hit], reader: Reader) -> list[Evidence]:
    """For a short answer (a name, a number) to `question`: in each passage, the best sentence that
    holds the fragment's words, scored by the reader as an answer to the question (score 0 and an
    empty quote when no sentence holds it). An answer copied from a sentence that answers another
    question of the same passage should score low: the reader reads the sentence against the question.
    Measured by `python -m eval.support` against the support score (at 90% of supported fragments
    kept, another answer of the same passage is caught 0.49 of the time, the support score 0.50):
    not better, so `rag.verify` does not use it."""
    from rag.answer import ScoredSentence
    from rag.checker import holds
    from rag.rerank import in_context
    from rag.verify import Evidence

    out: list[Evidence] = []
    for hit in hits:
        chunk = hit.chunk
        spans = [(a, b) for a, b in chunk.sentences if holds(chunk.text[a - chunk.start : b - chunk.start], fragment)]
        if not spans:
            out.append(Evidence(hit, chunk.start, chunk.start, (), 0.0))
            continue
        candidates = [in_context(ScoredSentence(0, hit, a, b, 0.0, 0.0, 0.0, 0.0)) for a, b in spans]
        scores = reader.score(question, candidates)
        k = int(np.argmax(scores))
        out.append(Evidence(hit, spans[k][0], spans[k][1], (), float(scores[k])))
    return out


def kept_threshold(scores: np.ndarray, *, keep: float = 0.90) -> float:
    """The highest threshold that keeps at least `keep` of the supported rows (`scores` of positives).

    Example:
        >>> kept_threshold(np.array([0.1, 0.5, 0.6, 0.7, 0.8, 0.9, 0.9, 0.95, 0.97, 0.99]))
        0.5
    """
    ordered = np.sort(scores)
    return float(ordered[int(np.floor((1.0 - keep) * len(ordered) + 1e-9))]) if len(ordered) else 0.5


def reader_fragment_results(
    units: list[dict[str, Any]], *, scores_of: dict[str, Any], fitted: dict[str, Any], spans: list[Any]
) -> dict[str, Any]:
    """Fragments judged by the reader (`fragment_evidence`) against the fitted support
    score, both at the threshold that keeps 90% of supported fragments on the calibration half,
    on the report half. SQuAD questions the reader was trained on are left out of both halves."""
    from eval.calibrate import reader_training_ids
    from rag.reader import Reader

    trained = reader_training_ids()
    reader = Reader.load()
    rows = [i for i, u in enumerate(units) if u["form"] == "fragment" and u["id"] not in trained]
    labels = np.array([units[i]["label"] for i in rows])
    kinds = np.array([units[i]["kind"] for i in rows])
    cal = np.array([units[i]["half"] == "calibration" for i in rows])
    by_reader = np.array(
        [
            max(
                (
                    e.score
                    for e in fragment_evidence(units[i]["question"], units[i]["sentence"], units[i]["hits"], reader)
                ),
                default=0.0,
            )
            for i in rows
        ]
    )
    _, by_support = _best_rows([spans[i] for i in rows], np.asarray(fitted["fragment"], float))
    out: dict[str, Any] = {
        "rows_left_out_as_reader_training": len(
            {units[i]["id"] for i in range(len(units)) if units[i]["form"] == "fragment"} & trained
        )
    }
    for name, scores in (("reader", by_reader), ("support_score", by_support)):
        threshold = kept_threshold(scores[cal & (labels == 1)])
        report = ~cal
        entry = {
            "threshold_keeping_0.90": round(threshold, 4),
            "auroc_report": round(_auroc(scores[report], labels[report]), 4),
            "kept_report": round(float((scores[report & (labels == 1)] >= threshold).mean()), 4),
        }
        for kind in KINDS["fragment"]:
            neg = report & (kinds == kind)
            entry[f"{kind}_caught_report"] = round(float((scores[neg] < threshold).mean()) if neg.any() else 0.0, 4)
            entry[f"{kind}_n_report"] = int(neg.sum())
        out[name] = entry
    return out


# The kinds the checker's combination is fitted on: a wrong relation (`in_passage`) is what it is for.
CHECKER_KINDS = {"statement": ("gold", "retrieved", "swapped", "in_passage"), "fragment": FITTED_KINDS["fragment"]}
KEEP = 0.90  # the share of supported claims the checked threshold keeps (calibration half)


@dataclass(frozen=True)
class _Row:
    """One passage's input to the checker's combination (`rag.checker.CHECKER_FEATURES`)."""

    features: tuple[float, ...]


def checked_inputs(
    units: list[dict[str, Any]], spans: list[Any], weights: dict[str, Any], threshold: float
) -> list[list[list[_Row]]]:
    """Per unit, per passage: the (bias, support logit, checker logit, reader logit) of the quote
    `rag.verify` would choose there under the support `weights` (the best single sentence reaching
    `threshold`, else the best span): `rag.verify.checked_evidence`' inputs."""
    from rag.checker import checked_text, fragment_logit, load_checker, quote_in_context
    from rag.reader import Reader
    from rag.verify import choose_span

    reader = Reader.load()
    chosen: list[list[tuple[float, float]]] = []
    pairs = []
    for unit, per_passage in zip(units, spans):
        w = weights["statement" if unit["form"] == "statement" else "fragment"]
        row = []
        for hit, passage_spans in zip(unit["hits"], per_passage):
            score, span = choose_span(passage_spans, len(hit.chunk.sentences), w, threshold)
            assert span is not None  # indexed passages always have sentences
            question = unit.get("question")
            read = fragment_logit(question, unit["sentence"], hit, reader) if question else 0.0
            row.append((score, read))
            pairs.append((checked_text(unit["sentence"], question), quote_in_context(hit, span.start, span.end)))
        chosen.append(row)
    logits = iter(load_checker().pair_logits(pairs))
    return [
        [[_Row((1.0, _logit(min(max(score, 1e-6), 1 - 1e-6)), float(next(logits)), read))] for score, read in row]
        for row in chosen
    ]


def _logit(p: float) -> float:
    return float(np.log(p / (1.0 - p)))


def checker_results(
    units: list[dict[str, Any]],
    spans: list[Any],
    columns: _Columns,
    fitted: dict[str, Any],
    support_threshold: float,
    *,
    shipped: Any,
) -> dict[str, Any]:
    """The claim checker combined with the fitted support score: its weights per form, fitted on
    the calibration half's rows of `CHECKER_KINDS`; the threshold keeping `KEEP` of the supported
    statements there (the fragment bias moved so that the same threshold keeps `KEEP` of theirs);
    each half's `metrics` at that threshold; and the same for the support score alone at its own
    threshold keeping `KEEP`, and for the shipped checker weights."""
    from eval.calibrate import reader_training_ids

    # The reader reads fragments, so SQuAD questions it was trained on are left out of the report
    # half. The calibration half keeps them (most of SQuAD's calibration questions trained the
    # reader, and the checker was trained on both calibration halves): the weights are fitted where
    # the two models' logits are optimistic, and measured where they never trained.
    trained = reader_training_ids()
    keep = [
        i for i, u in enumerate(units) if not (u["form"] == "fragment" and u["half"] == "report" and u["id"] in trained)
    ]
    left_out = len(units) - len(keep)
    units, spans = [units[i] for i in keep], [spans[i] for i in keep]
    columns = _Columns.of(units)
    rows = checked_inputs(units, spans, fitted, support_threshold)
    fit_rows = columns.cal & np.array([u["kind"] in CHECKER_KINDS[u["form"]] for u in units])
    weights: dict[str, np.ndarray] = {}
    for form in ("statement", "fragment"):
        mask = fit_rows & (columns.forms == form)
        start = (0.0, 1.0, 1.0, 1.0 if form == "fragment" else 0.0)
        weights[form] = fit_weights([r for r, m in zip(rows, mask) if m], columns.labels[mask], start)
    scores = {form: _best_rows(rows, weights[form])[1] for form in ("statement", "fragment")}
    kept = {
        form: kept_threshold(scores[form][columns.cal & (columns.forms == form) & (columns.labels == 1)], keep=KEEP)
        for form in ("statement", "fragment")
    }
    weights["fragment"][0] += _logit(kept["statement"]) - _logit(kept["fragment"])
    threshold = kept["statement"]
    out: dict[str, Any] = {
        "keep": KEEP,
        "fitted_on": {f: list(k) for f, k in CHECKER_KINDS.items()},
        "report_fragment_units_left_out_as_reader_training": left_out,
        "units": _unit_counts(columns, ["statement", "fragment"]),
    }
    out["fitted"] = _checked_entry(rows, weights, threshold, columns)
    shipped_weights = {"statement": shipped.checker_weights, "fragment": shipped.checker_fragment_weights}
    out["shipped"] = _checked_entry(rows, shipped_weights, shipped.checker_threshold, columns)
    # The support score alone, each form at its own threshold keeping KEEP of its supported claims.
    alone = np.zeros(len(units))
    for form in ("statement", "fragment"):
        mask = columns.forms == form
        alone[mask] = _best_rows([s for s, m in zip(spans, mask) if m], np.asarray(fitted[form], float))[1]
    out["support_alone"] = {}
    for form in ("statement", "fragment"):
        rows_of = columns.forms == form
        t_alone = kept_threshold(alone[columns.cal & rows_of & (columns.labels == 1)], keep=KEEP)
        out["support_alone"][form] = {"threshold": round(t_alone, 4)} | {
            half: metrics(alone[m], columns.labels[m], columns.kinds[m], t_alone, form=form)
            for half, m in (("calibration", columns.cal & rows_of), ("report", ~columns.cal & rows_of))
        }
    return out


def _checked_entry(
    rows: list[list[list[_Row]]], weights: dict[str, Any], threshold: float, columns: _Columns
) -> dict[str, Any]:
    """The checked scores under `weights` per form: the weights, the threshold and each half's `metrics`."""
    entry: dict[str, Any] = {"threshold": round(float(threshold), 4)}
    for form in ("statement", "fragment"):
        mask = columns.forms == form
        _, scores = _best_rows([r for r, m in zip(rows, mask) if m], np.asarray(weights[form], float))
        entry[form] = {"weights": [round(float(w), 4) for w in weights[form]]}
        cal = columns.cal[mask]
        for half, m in (("calibration", cal), ("report", ~cal)):
            entry[form][half] = metrics(
                scores[m], columns.labels[mask][m], columns.kinds[mask][m], threshold, form=form
            )
    return entry


def table(report: dict[str, Any]) -> str:
    lines = [
        "Support score (weights and threshold chosen on the calibration half; AUROC, precision, recall and "
        "caught over the kinds fitted on)"
    ]
    for form in ("statement", "fragment"):
        kinds = KINDS[form]
        lines.append(
            f"\n{form}s ({report['datasets'][form]['name']}): "
            + " | ".join(f"{k}" for k in kinds)
            + " columns are AUROC/caught against that kind alone"
        )
        lines.append(
            f"{'weights':<8} {'half':<12} {'threshold':>9} {'AUROC':>6} {'precision':>9} {'recall':>6} "
            f"{'caught':>6} | " + " | ".join(f"{k:<13}" for k in kinds)
        )
        for name in ("fitted", "shipped"):
            for half in ("calibration", "report"):
                r = report[name][form][half]
                lines.append(
                    f"{name:<8} {half:<12} {report[name]['threshold']:>9.3f} {r['auroc']:>6.3f} "
                    f"{r['precision']:>9.3f} {r['recall']:>6.3f} {r['unsupported_caught']:>6.3f} | "
                    + " | ".join(f"{r[k]['auroc']:.3f}/{r[k]['unsupported_caught']:.3f}".ljust(13) for k in kinds)
                )
        lines.append(f"rows: {report['units'][form]}")
        lines.append(f"fitted weights ({', '.join(report['features'])}): {report['fitted'][form]['weights']}")
    if "reader_fragments" in report:
        lines.append(
            "\nfragments, reader vs support score, threshold keeping 0.90 of supported (calibration half), "
            "report half: " + json.dumps(report["reader_fragments"])
        )
    if "checker" in report:
        lines.append(
            f"\nclaim checker + support score, threshold keeping {report['checker']['keep']} of supported "
            "statements (calibration half); caught per negative kind, report half"
        )
        for name in ("fitted", "shipped", "support_alone"):
            entry = report["checker"][name]
            for form in ("statement", "fragment"):
                r = entry[form]["report"]
                threshold = entry.get("threshold", entry[form].get("threshold", 0.0))
                lines.append(
                    f"{name:<13} {form:<9} threshold {threshold:.3f} AUROC {r['auroc']:.3f} "
                    f"kept {r['recall']:.3f} | "
                    + " | ".join(f"{k} {r[k]['unsupported_caught']:.3f}" for k in KINDS[form])
                )
    sweep = report["threshold_sweep_report"]
    lines.append(
        "\nthreshold sweep, report half, both forms (recall / caught): "
        + ", ".join(f"{r['threshold']:.1f}: {r['recall']:.3f}/{r['unsupported_caught']:.3f}" for r in sweep)
    )
    return "\n".join(lines)


def fitted_block(report: dict[str, Any], args: argparse.Namespace, *, command: str) -> dict[str, Any]:
    """The `support` block of the fitted-numbers file from a report of `run` with `args`: the
    fitted weights per form, the threshold, and their provenance (the calibration rows fitted on)."""
    from eval.calibrate import L2, dataset_file, provenance

    datasets = []
    for form, file, selection in (
        (
            "statement",
            args.clapnq,
            "answer sentences of answerable rows: gold passage (positive), best "
            "retrieved other passage and one fact swapped (negatives)",
        ),
        (
            "fragment",
            args.squad,
            f"{FRAGMENT_SAMPLE} answerable sampled (seed {args.seed}): answer with its "
            "question against its paragraph (positive), another passage and another "
            "answer of the same paragraph (negatives)",
        ),
    ):
        counts = report["units"][form]["calibration"]
        positive = counts["gold"]
        negative = sum(counts[kind] for kind in FITTED_KINDS[form] if kind != "gold")
        datasets.append(
            {
                "name": report["datasets"][form]["name"],
                "file": dataset_file(file),
                "split": "calibration",
                "form": form,
                "selection": selection,
                "rows": positive + negative,
                "positive": positive,
                "negative": negative,
                "source_hash": report["datasets"][form]["source_hash"],
            }
        )
    metrics = {
        f"{form}_report_half": {
            k: report["fitted"][form]["report"][k] for k in ("auroc", "precision", "recall", "unsupported_caught")
        }
        for form in ("statement", "fragment")
    }
    fit = {
        "method": "scikit-learn LogisticRegression (newton-cholesky), class-balanced sample weights, on each "
        "claim's best span, refitted until the best spans settle (eval.support.fit_weights)",
        "l2": L2,
        "fitted_on": report["fitted_on"],
        "threshold": "eval.metrics.best_threshold on the statements; the fragment bias moved so that their own "
        "best threshold falls on it",
    }
    return {
        "features": list(report["features"]),
        "statement_weights": report["fitted"]["statement"]["weights"],
        "fragment_weights": report["fitted"]["fragment"]["weights"],
        "threshold": report["fitted"]["threshold"],
        "provenance": provenance(command=command, datasets=datasets, fit=fit, metrics=metrics),
    }


def checker_block(report: dict[str, Any], support: dict[str, Any], *, command: str) -> dict[str, Any]:
    """The `checker` block of the fitted-numbers file from a report of `run`: the combination's
    weights per form and its threshold, with their provenance (the support block's datasets, the
    rows of `CHECKER_KINDS` on their calibration half)."""
    from eval.calibrate import L2, provenance
    from rag.checker import CHECKER_FEATURES

    fitted = report["checker"]["fitted"]
    datasets = [
        {
            **d,
            "selection": d["selection"]
            + (", and one fact swapped for another of the same passage (negative)" if d["form"] == "statement" else ""),
        }
        for d in support["provenance"]["datasets"]
    ]
    for d in datasets:
        counts = report["checker"]["units"][d["form"]]["calibration"]
        d["positive"] = counts["gold"]
        d["negative"] = sum(counts[k] for k in CHECKER_KINDS[d["form"]] if k != "gold")
        d["rows"] = d["positive"] + d["negative"]
    fit = {
        "method": "scikit-learn LogisticRegression (newton-cholesky), class-balanced sample weights, over the "
        "support score's logit and the claim checker's logit on the quote the support score chooses, each claim's "
        "best passage (eval.support.checker_results)",
        "l2": L2,
        "fitted_on": report["checker"]["fitted_on"],
        "threshold": f"the highest keeping {KEEP} of the supported statements; the fragment bias moved so that the "
        f"same threshold keeps {KEEP} of the supported fragments",
    }
    metrics = {
        f"{form}_report_half": {k: fitted[form]["report"][k] for k in ("auroc", "recall", "unsupported_caught")}
        | {f"{k}_caught": fitted[form]["report"][k]["unsupported_caught"] for k in KINDS[form]}
        for form in ("statement", "fragment")
    }
    return {
        "features": list(CHECKER_FEATURES),
        "statement_weights": fitted["statement"]["weights"],
        "fragment_weights": fitted["fragment"]["weights"],
        "threshold": fitted["threshold"],
        "provenance": provenance(command=command, datasets=datasets, fit=fit, metrics=metrics),
    }


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    report = run(args)
    out = Path(args.report)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(table(report))
    print(f"wrote {out}")
    if not args.dry_run:
        from eval.calibrate import write_fitted

        command = f"python -m eval.support {shlex.join(argv)}".rstrip()
        block = fitted_block(report, args, command=command)
        print(f"wrote support into {write_fitted('support', block, path=args.fitted)}")
        checker = checker_block(report, block, command=command)
        print(f"wrote checker into {write_fitted('checker', checker, path=args.fitted)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
