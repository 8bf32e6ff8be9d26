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
from eval.metrics import best_threshold
from rag.answer import FEATURES, READER_FEATURES, confidence
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


def test_fit_logistic_with_groups_weighs_each_dataset_the_same() -> None:
    # A dataset given three times over, as a second group, counts as much as once: with each group
    # weighing the same, the fit equals the ungrouped fit of the rows once.
    rng = np.random.default_rng(1)
    x = _bias(rng.normal(size=(120, 3)))
    y = (x @ [0.2, 1.0, -1.0, 0.5] + rng.logistic(size=120) > 0).astype(float)
    tripled = np.vstack([x, x, x, x])
    groups = ["small"] * 120 + ["large"] * 360
    w = fit_logistic(tripled, np.r_[y, y, y, y], groups=groups)
    assert w == pytest.approx(fit_logistic(x, y), abs=1e-7)
    # Without groups, the large dataset decides: a small one with the opposite relation hardly moves it.
    flipped = np.r_[1 - y, y, y, y]
    assert fit_logistic(tripled, flipped)[1] > 0.3
    assert abs(fit_logistic(tripled, flipped, groups=groups)[1]) < fit_logistic(tripled, flipped)[1] / 2


def test_fit_logistic_with_groups_names_a_dataset_without_both_classes() -> None:
    x = _bias(np.array([[0.1], [0.2], [0.3], [0.4]]))
    with pytest.raises(ValueError, match="both classes in 'b', got 2 positive of 2 rows"):
        fit_logistic(x, [0, 1, 1, 1], groups=["a", "a", "b", "b"])
    with pytest.raises(ValueError, match="one dataset per row, got 3 for 4 rows"):
        fit_logistic(x, [0, 1, 0, 1], groups=["a", "a", "b"])


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
    block, metrics, fit = fit_confidence(_rows(300, names), scorer=scorer)
    # Two datasets: none to hold out while choosing between weightings.
    assert fit == {"weighting": "pooled", "leave_one_dataset_out_balanced_accuracy": {}, "threshold_only": []}
    assert block["features"] == list(names) and len(block["weights"]) == len(names)
    assert block["weights"][1] > 1.0  # the informative feature
    assert 0.0 < block["tentative_threshold"] <= block["answer_threshold"] < 1.0
    assert set(metrics) == {"a", "b"} and all(m["auroc"] > 0.8 for m in metrics.values())
    assert all(v == round(v, 4) for v in block["weights"])


def test_fit_confidence_weighs_datasets_alike_when_that_transfers_better() -> None:
    """A large dataset where a feature (cue) predicts the opposite of what it does in two small
    ones: pooled, the large one decides and its weights fail on a small corpus left out; each
    dataset weighing the same, the feature that holds everywhere (top_dense) carries the fit."""
    rng = np.random.default_rng(3)
    rows = []
    for name, n, sign in (("large", 900, 1.0), ("small-a", 100, -1.0), ("small-b", 100, -1.0)):
        for k in range(n):
            answerable = bool(k % 2)
            label = 1.0 if answerable else -1.0
            features = [1.0, rng.normal(0.5 * label, 1.0), *np.zeros(len(FEATURES) - 2)]
            features[FEATURES.index("cue")] = sign * 2.0 * label + rng.normal(0.0, 1.0)
            rows.append(([float(f) for f in features], answerable, name))
    block, metrics, fit = fit_confidence(rows, scorer="heuristic")
    transfer = fit["leave_one_dataset_out_balanced_accuracy"]
    assert set(transfer) == set(cal.WEIGHTINGS)
    assert transfer["per-dataset"]["small-a"] > transfer["pooled"]["small-a"] + 0.1
    assert transfer["per-dataset"]["mean"] > transfer["pooled"]["mean"]
    assert fit["weighting"] == "per-dataset"
    pooled = fit_logistic([r[0] for r in rows], [r[1] for r in rows])
    assert abs(block["weights"][FEATURES.index("cue")]) < abs(pooled[FEATURES.index("cue")]) / 2
    # The scores are what they claim: held out small-a, fitted on the rest each weighing the same.
    rest = [r for r in rows if r[2] != "small-a"]
    w = fit_logistic([r[0] for r in rest], [r[1] for r in rest], groups=[r[2] for r in rest]).tolist()
    conf = [confidence(r[0], w) for r in rest]
    t = best_threshold(conf, [r[1] for r in rest], groups=[r[2] for r in rest])
    held = [r for r in rows if r[2] == "small-a"]
    pos = [confidence(r[0], w) >= t for r in held if r[1]]
    neg = [confidence(r[0], w) < t for r in held if not r[1]]
    assert transfer["per-dataset"]["small-a"] == pytest.approx((np.mean(pos) + np.mean(neg)) / 2, abs=1e-4)


def test_threshold_only_rows_place_the_threshold_not_the_weights() -> None:
    rows = _rows(300, READER_FEATURES)
    # A third set whose answerable questions score lower: it may move the threshold, not the weights.
    rng = np.random.default_rng(5)
    extra = [
        ([1.0, float(rng.normal(0.35 if k % 2 else 0.1, 0.1)), *np.zeros(len(READER_FEATURES) - 2)], bool(k % 2), "c")
        for k in range(60)
    ]
    alone, _, _ = fit_confidence(rows, scorer="reader")
    block, metrics, fit = fit_confidence(rows + extra, scorer="reader", threshold_only=("c",))
    assert block["weights"] == alone["weights"]
    assert block["answer_threshold"] < alone["answer_threshold"]
    assert set(metrics) == {"a", "b", "c"} and fit["threshold_only"] == ["c"]
    with pytest.raises(ValueError, match="every dataset is threshold-only"):
        fit_confidence(extra, scorer="reader", threshold_only=("c",))


def test_write_fitted_replaces_one_block_in_a_file_of_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = FITTED_FILE.read_bytes()
    block, metrics, _ = fit_confidence(_rows(200, FEATURES), scorer="heuristic")
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
