"""eval.calibrate: the scikit-learn logistic fit against known optima, the "not sure" threshold,
and writing the fitted-numbers file (always into a temporary folder here, never the package's)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from eval import calibrate as cal
from eval.calibrate import fit_confidence, fit_logistic, tentative_threshold, write_fitted
from eval.cli import main as eval_main
from rag.answer import FEATURES, READER_FEATURES
from rag.config import FITTED_ENV, FITTED_FILE, FittedFileError, RagConfig, load_fitted
from rag.numeric import sigmoid

ROOT = Path(__file__).resolve().parents[1]


def _bias(x: np.ndarray) -> np.ndarray:
    return np.hstack([np.ones((len(x), 1)), x])


def test_fit_logistic_finds_the_closed_form_optimum() -> None:
    # One binary feature: without penalty, the class-balanced optimum gives each value of x the
    # balanced share of positives among its rows, p = (pos/n_pos) / (pos/n_pos + neg/n_neg).
    counts = {0.0: (30, 70), 1.0: (80, 20)}  # x: (positives, negatives)
    x = np.array([[v] for v, (p, n) in counts.items() for _ in range(p + n)])
    y = np.array([float(k < p) for v, (p, n) in counts.items() for k in range(p + n)])
    n_pos, n_neg = y.sum(), len(y) - y.sum()
    w = fit_logistic(_bias(x), y, l2=1e-9)
    for v, (p, n) in counts.items():
        expected = (p / n_pos) / (p / n_pos + n / n_neg)
        assert sigmoid(float(w[0] + w[1] * v)) == pytest.approx(expected, abs=1e-7)


def test_fit_logistic_is_the_optimum_of_the_penalised_balanced_loss() -> None:
    # The gradient of mean balanced log loss + l2/2 |w|^2 (bias free) vanishes at the fit, and
    # the loss is higher at any nearby point.
    rng = np.random.default_rng(0)
    x = _bias(rng.normal(size=(400, 4)))
    y = (x @ [0.3, 1.5, -2.0, 0.5, 0.0] + rng.logistic(size=400) > 0).astype(float)
    w = fit_logistic(x, y)
    sample_w = np.where(y > 0, 0.5 / y.sum(), 0.5 / (len(y) - y.sum()))
    penalty = np.r_[0.0, np.full(4, cal.L2)]

    def loss(v: np.ndarray) -> float:
        p = sigmoid(x @ v)
        return float(-(sample_w * (y * np.log(p) + (1 - y) * np.log(1 - p))).sum() + 0.5 * (penalty * v * v).sum())

    grad = x.T @ (sample_w * (sigmoid(x @ w) - y)) + penalty * w
    assert np.abs(grad).max() < 1e-9
    for k in range(5):
        step = np.zeros(5)
        step[k] = 1e-3
        assert loss(w + step) > loss(w) and loss(w - step) > loss(w)


def test_fit_logistic_separates_separable_data() -> None:
    rng = np.random.default_rng(0)
    x = _bias(np.vstack([rng.normal(1.0, 0.3, size=(200, 1)), rng.normal(-1.0, 0.3, size=(100, 1))]))
    y = np.r_[np.ones(200), np.zeros(100)]
    w = fit_logistic(x, y)
    assert w[1] > 1.0
    assert ((sigmoid(x @ w) > 0.5) == (y > 0)).mean() > 0.98


def test_fit_logistic_refuses_what_it_cannot_fit() -> None:
    x = _bias(np.array([[0.1], [0.2], [0.3]]))
    with pytest.raises(ValueError, match="both classes, got 3 positive of 3 rows"):
        fit_logistic(x, [1, 1, 1])
    with pytest.raises(ValueError, match="first column of x must be the bias"):
        fit_logistic(x[:, 1:], [0, 1, 1])


def test_tentative_threshold_reaches_the_coverage_of_answerable_questions() -> None:
    conf = [0.9, 0.6, 0.5, 0.2, 0.4, 0.1]
    answerable = [True, True, False, True, False, False]
    assert tentative_threshold(conf, answerable, ["a"] * 6, 0.7, coverage=0.6) == 0.6  # 2 of 3 from 0.6
    assert tentative_threshold(conf, answerable, ["a"] * 6, 0.7, coverage=0.9) == 0.2  # all 3 need 0.2
    # Datasets weigh alike: b's answerable questions all sit above 0.8, a's need the band down to 0.3.
    two = tentative_threshold(
        [0.9, 0.3, 0.1, 0.85, 0.95, 0.2],
        [True, True, False, True, True, False],
        ["a", "a", "a", "b", "b", "b"],
        0.8,
        coverage=0.9,
    )
    assert two == 0.3


def _rows(n: int, names: tuple[str, ...], *, seed: int = 0) -> list[tuple[list[float], bool, str]]:
    """Synthetic calibration rows whose second feature (top_dense) predicts answerability."""
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n):
        answerable = bool(k % 3)
        features = [1.0, rng.normal(0.6 if answerable else 0.3, 0.15), *rng.normal(0.0, 1.0, len(names) - 2)]
        rows.append(([float(f) for f in features], answerable, "ab"[k % 2]))
    return rows


@pytest.mark.parametrize(("scorer", "names"), [("heuristic", FEATURES), ("reader", READER_FEATURES)])
def test_fit_confidence_gives_a_block_the_config_can_use(scorer: str, names: tuple[str, ...]) -> None:
    block, metrics = fit_confidence(_rows(300, names), scorer=scorer)
    assert block["features"] == list(names) and len(block["weights"]) == len(names)
    assert block["weights"][1] > 1.0  # the informative feature
    assert 0.0 < block["tentative_threshold"] <= block["answer_threshold"] < 1.0
    assert set(metrics) == {"a", "b"} and all(m["auroc"] > 0.8 for m in metrics.values())
    assert all(v == round(v, 4) for v in block["weights"])


def test_write_fitted_replaces_one_block_in_a_file_of_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = FITTED_FILE.read_bytes()
    block, metrics = fit_confidence(_rows(200, FEATURES), scorer="heuristic")
    block["provenance"] = cal.provenance(
        command="rag eval --calibrate",
        fit={"l2": cal.L2},
        metrics=metrics,
        datasets=[{"name": "synthetic", "split": "all", "rows": 200}],
    )
    out = write_fitted("heuristic_confidence", block, path=tmp_path / "sub" / "fitted.json")
    assert out == tmp_path / "sub" / "fitted.json"
    assert [p.name for p in out.parent.iterdir()] == ["fitted.json"]  # no temporary file left behind
    written = json.loads(out.read_text())
    assert written["heuristic_confidence"]["provenance"]["git_commit"] != ""
    assert written["support"] == load_fitted(FITTED_FILE)["support"]  # the other blocks come along
    monkeypatch.setenv(FITTED_ENV, str(out))
    assert RagConfig().abstain_threshold == block["answer_threshold"]
    assert RagConfig().confidence_weights == tuple(block["weights"])
    # A second write to the same file is seen by configs made afterwards.
    write_fitted("heuristic_confidence", {**block, "answer_threshold": 0.123}, path=out)
    assert RagConfig().abstain_threshold == 0.123
    assert FITTED_FILE.read_bytes() == shipped


def test_write_fitted_refuses_a_bad_block_and_leaves_the_file(tmp_path: Path) -> None:
    out = tmp_path / "fitted.json"
    bad = {**load_fitted(FITTED_FILE)["support"], "threshold": math.nan}
    with pytest.raises(FittedFileError, match="support.threshold must be a number within"):
        write_fitted("support", bad, path=out)
    assert not out.exists() and not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match="no block 'supports'"):
        write_fitted("supports", bad, path=out)


def test_rag_eval_calibrate_writes_the_named_file_with_provenance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command's plumbing, with the questions' rows given (asking them takes many minutes)."""
    datasets = [{"name": "synthetic", "split": "calibration", "rows": 300}]
    monkeypatch.setattr(cal, "collect_rows", lambda scorer, **kw: (_rows(300, READER_FEATURES), datasets, 0))
    reports = ROOT / "eval" / "reports"
    before = {p.name: p.stat().st_mtime_ns for p in reports.iterdir()}
    shipped = FITTED_FILE.read_bytes()
    out = tmp_path / "fitted.json"

    assert eval_main(["--calibrate", "--answer-scorer", "reader", "--fitted", str(out), "--dry-run"]) == 0
    assert not out.exists()
    assert eval_main(["--calibrate", "--answer-scorer", "reader", "--fitted", str(out)]) == 0
    block = json.loads(out.read_text())["reader_confidence"]
    assert block["provenance"]["command"] == f"rag eval --calibrate --answer-scorer reader --fitted {out}"
    assert block["provenance"]["datasets"] == datasets
    assert block["provenance"]["fit"]["l2"] == cal.L2 and "scikit-learn" in block["provenance"]["fit"]["versions"]
    config = RagConfig.from_fitted(out, answer_scorer="reader")
    assert config.thresholds() == (block["answer_threshold"], block["tentative_threshold"])
    assert FITTED_FILE.read_bytes() == shipped
    assert {p.name: p.stat().st_mtime_ns for p in reports.iterdir()} == before  # no report rewritten


def test_a_malformed_file_stops_rag_eval_with_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = load_fitted(FITTED_FILE)
    del data["reader_confidence"]["answer_threshold"]
    bad = tmp_path / "fitted.json"
    bad.write_text(json.dumps(data))
    monkeypatch.setenv(FITTED_ENV, str(bad))
    assert eval_main(["--calibrate", "--dry-run"]) == 2
    assert f"{bad}: reader_confidence.answer_threshold is missing" in capsys.readouterr().err
