"""The evaluation harness end to end: report files and keys, calibration helpers, expected scores."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import need_shared
from eval.cli import (balanced_threshold, fit_logistic, main as eval_main, run_conditions, tentative_threshold,
                      write_calibration)
from eval.runner import REPORT_KEYS

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def seed_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("report") / "seed.json"
    code = eval_main(["--qa", str(ROOT / "eval/data/seed_qa.jsonl"), "--docs", str(ROOT / "seeds"),
                      "--report", str(out), "--limit", "20", "--seed", "3"])
    assert code == 0
    return json.loads(out.read_text()), out


def test_report_has_exactly_the_contract_keys(seed_report: tuple[dict, Path]) -> None:
    report, out = seed_report
    expected = set(REPORT_KEYS)
    assert expected <= set(report)
    assert set(report) - expected <= {"baseline"}  # the LangChain column, only with --baseline
    assert report["n_questions"] == 20
    assert set(report["retrieval"]) == {"hit@1", "hit@5", "mrr", "evidence_unlocated"}
    assert report["retrieval"]["evidence_unlocated"] == 0  # every seed evidence string is verbatim
    assert {"containment", "f1", "exact_match", "mean_words"} <= set(report["answer"])
    assert set(report["abstention"]) >= {"refused_unanswerable", "answered_answerable", "auroc"}
    assert set(report["latency_ms"]) == {"p50", "p95"}
    assert report["versions"]["dataset_sha256"] and report["versions"]["git_commit"]
    assert len(report["per_question"]) == 20
    assert report["config"]["mode"] == "hybrid"


def test_report_writes_markdown_and_plot(seed_report: tuple[dict, Path]) -> None:
    _, out = seed_report
    md = out.with_suffix(".md").read_text()
    assert "| retrieval | hit@5 |" in md and "The 10 worst questions" in md
    assert "## Targets" in md and "| retrieval.hit@5 | >= 0.95 |" in md
    png = out.with_suffix(".png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5_000


def test_same_seed_samples_the_same_questions(seed_report: tuple[dict, Path], tmp_path: Path) -> None:
    report, _ = seed_report
    from eval.cli import _parser, load_items

    args = _parser().parse_args(["--qa", str(ROOT / "eval/data/seed_qa.jsonl"), "--docs", str(ROOT / "seeds"),
                                 "--limit", "20", "--seed", "3"])
    _, items = load_items(args)
    assert [i.id for i in items] == [q["id"] for q in report["per_question"]]


def test_eval_without_dataset_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert eval_main([]) == 2
    assert "give a dataset" in capsys.readouterr().err


def test_fit_logistic_separates_separable_data() -> None:
    rng = np.random.default_rng(0)
    pos = rng.normal(1.0, 0.3, size=(200, 1))
    neg = rng.normal(-1.0, 0.3, size=(100, 1))
    x = np.hstack([np.ones((300, 1)), np.vstack([pos, neg])])
    y = np.r_[np.ones(200), np.zeros(100)]
    w = fit_logistic(x, y)
    p = 1 / (1 + np.exp(-x @ w))
    assert w[1] > 1.0
    assert ((p > 0.5) == (y > 0)).mean() > 0.98


def test_balanced_threshold_weighs_datasets_equally() -> None:
    # Dataset a separates at 0.3, dataset b at 0.7; the mean of the two balanced accuracies is
    # flat between them, and the chosen threshold must lie in that range.
    conf = [0.2, 0.4, 0.6, 0.8] + [0.1, 0.2, 0.75, 0.9]
    answerable = [False, True, True, True] + [False, False, True, True]
    groups = ["a"] * 4 + ["b"] * 4
    t = balanced_threshold(conf, answerable, groups)
    assert 0.2 < t <= 0.4 or 0.2 < t <= 0.75


def test_write_calibration_rewrites_only_the_named_defaults(tmp_path: Path) -> None:
    source = (ROOT / "rag" / "config.py").read_text()
    target = tmp_path / "config.py"
    target.write_text(source)
    write_calibration({"confidence_weights": (-1.0, 2.0, 0.5), "abstain_threshold": 0.4321,
                       "reader_abstain_threshold": 0.61, "reader_tentative_threshold": 0.33}, path=target)
    text = target.read_text()
    assert "    abstain_threshold: float = 0.4321" in text
    assert "    reader_abstain_threshold: float = 0.61" in text
    assert "    reader_tentative_threshold: float = 0.33" in text
    assert "    confidence_weights: tuple[float, ...] = (-1.0, 2.0, 0.5)" in text
    assert len(text.splitlines()) == len(source.splitlines())
    changed = [a for a, b in zip(source.splitlines(), text.splitlines()) if a != b]
    assert len(changed) <= 4
    with pytest.raises(ValueError, match="no_such_field"):
        write_calibration({"no_such_field": 0.5}, path=target)


def test_tentative_threshold_reaches_the_coverage_of_answerable_questions() -> None:
    conf = [0.9, 0.6, 0.5, 0.2, 0.4, 0.1]
    answerable = [True, True, False, True, False, False]
    assert tentative_threshold(conf, answerable, ["a"] * 6, 0.7, coverage=0.6) == 0.6  # 2 of 3 from 0.6
    assert tentative_threshold(conf, answerable, ["a"] * 6, 0.7, coverage=0.9) == 0.2  # all 3 need 0.2
    # Datasets weigh alike: b's answerable questions all sit above 0.8, a's need the band down to 0.3.
    two = tentative_threshold([0.9, 0.3, 0.1, 0.85, 0.95, 0.2], [True, True, False, True, True, False],
                              ["a", "a", "a", "b", "b", "b"], 0.8, coverage=0.9)
    assert two == 0.3


@pytest.mark.slow
def test_expected_scores_hold_on_the_quick_conditions() -> None:
    """What CI runs as `rag eval --check`: the seed set and a fixed 100-question SQuAD sample."""
    need_shared()
    import yaml

    conditions = yaml.safe_load((ROOT / "eval" / "conditions.yaml").read_text())["conditions"]
    quick = [c for c in conditions if c.get("quick")]
    assert {c["name"] for c in quick} == {"seed", "squad100"}
    assert run_conditions(quick) == []
