"""Sanity checks for the hand-written seed QA sets: eval/data/seed_qa.jsonl (reported on) and
eval/data/seed_calibration.jsonl (confidence fitting only; other questions than the reported ones).

Both are built from the single seed article; answerable rows must be grounded
in it verbatim so SQuAD-style containment scoring and evidence checks work.
No model is needed, so these tests are fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
QA_PATH = ROOT / "eval" / "data" / "seed_qa.jsonl"
CALIBRATION_PATH = ROOT / "eval" / "data" / "seed_calibration.jsonl"
ARTICLE_PATH = ROOT / "seeds" / "000_a8b8e53ddfe7d5e4.txt"

EXPECTED_KEYS = {"id", "question", "answers", "evidence"}
MIN_QUESTIONS = 40
MIN_UNANSWERABLE = 10


def _load_rows(path: Path = QA_PATH) -> list[dict]:
    rows = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:  # pragma: no cover - failure path
                pytest.fail(f"line {lineno} is not valid JSON: {exc}")
    return rows


@pytest.fixture(scope="module", params=[QA_PATH, CALIBRATION_PATH], ids=["report", "calibration"])
def rows(request: pytest.FixtureRequest) -> list[dict]:
    return _load_rows(request.param)


@pytest.fixture(scope="module")
def article() -> str:
    return ARTICLE_PATH.read_text(encoding="utf-8")


def _answerable(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r["answers"]]


def _unanswerable(rows: list[dict]) -> list[dict]:
    return [r for r in rows if not r["answers"]]


def test_files_exist():
    assert QA_PATH.is_file(), QA_PATH
    assert CALIBRATION_PATH.is_file(), CALIBRATION_PATH
    assert ARTICLE_PATH.is_file(), ARTICLE_PATH


def test_schema(rows):
    assert rows, "no rows"
    for r in rows:
        assert isinstance(r, dict)
        assert set(r) == EXPECTED_KEYS, (r.get("id"), sorted(r))
        assert isinstance(r["id"], str) and r["id"], r
        assert isinstance(r["question"], str) and r["question"].strip(), r["id"]
        assert isinstance(r["answers"], list), r["id"]
        assert isinstance(r["evidence"], list), r["id"]
        for a in r["answers"]:
            assert isinstance(a, str) and a.strip(), (r["id"], a)
        for e in r["evidence"]:
            assert isinstance(e, str) and e.strip(), (r["id"], e)


def test_ids_unique(rows):
    ids = [r["id"] for r in rows]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    assert not dupes, dupes


def test_questions_unique(rows):
    qs = [r["question"].strip().lower() for r in rows]
    assert len(qs) == len(set(qs))


def test_counts(rows):
    assert len(rows) >= MIN_QUESTIONS, len(rows)
    assert len(_unanswerable(rows)) >= MIN_UNANSWERABLE, len(_unanswerable(rows))


def test_unanswerable_have_no_evidence(rows):
    for r in _unanswerable(rows):
        assert r["evidence"] == [], r["id"]


def test_answerable_have_answer_and_evidence(rows):
    for r in rows:
        if r["evidence"]:
            assert r["answers"], f"{r['id']}: evidence without answers"
    for r in _answerable(rows):
        assert len(r["answers"]) >= 1, r["id"]
        assert len(r["evidence"]) >= 1, r["id"]


def test_evidence_is_verbatim(rows, article):
    missing = [(r["id"], e) for r in rows for e in r["evidence"] if e not in article]
    assert not missing, missing


def test_answers_grounded_in_article_and_evidence(rows, article):
    article_lower = article.lower()
    problems = []
    for r in _answerable(rows):
        evidence_lower = [e.lower() for e in r["evidence"]]
        for a in r["answers"]:
            if a not in article and a.lower() not in article_lower:
                problems.append((r["id"], a, "not in article"))
            if not any(a.lower() in e for e in evidence_lower):
                problems.append((r["id"], a, "not in evidence"))
    assert not problems, problems


def test_calibration_questions_are_not_the_reported_ones():
    report, calibration = _load_rows(QA_PATH), _load_rows(CALIBRATION_PATH)
    assert not {r["id"] for r in report} & {r["id"] for r in calibration}
    norm = {" ".join(r["question"].lower().split()) for r in report}
    assert not [r["question"] for r in calibration if " ".join(r["question"].lower().split()) in norm]
