"""Fitting the numbers of rag/fitted.json and writing them there, each block with its provenance.

One place for every fitted number `RagConfig` reads:
- `fit_logistic`: the logistic weights (scikit-learn's `LogisticRegression`, class-balanced, a
  small L2 penalty on the weights, bias not penalised) of the answer confidence and of the
  support score (`eval.support`);
- thresholds: the answer threshold is `eval.metrics.best_threshold` (the mean over datasets of
  balanced accuracy), the "not sure" band `tentative_threshold`;
- `write_fitted`: replaces one block of the fitted file atomically (temporary file, fsync,
  rename), with `provenance`: command, git commit, date, datasets and rows, fit settings.

`calibrate` is `rag eval --calibrate`: it asks the calibration questions with the configured
answer scorer, fits its confidence (`fit_confidence`) and writes the scorer's block into the
fitted file `rag.config.fitted_path()` names (the package's rag/fitted.json unless `$RAG_FITTED`
or `--fitted` names another), so a calibration can be tried without touching the shipped numbers.

Example:
    rag eval --calibrate --index-dir .cache/eval-h
    rag eval --calibrate --answer-scorer reader --fitted /tmp/fitted.json --dry-run
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from eval.datasets import SHARED_DATASETS
from rag.config import FITTED_FILE, AnswerScorer, check_fitted, fitted_path, forget_fitted, load_fitted

if TYPE_CHECKING:
    from eval.datasets import QADataset, QAItem

ROOT = Path(__file__).resolve().parents[1]
SHARED = SHARED_DATASETS
REPORTS = ROOT / "eval" / "reports"
# L2 penalty on the weights of the class-balanced mean log loss (each class weighs one half).
L2 = 1e-4
# Calibration questions per dataset unless a limit is given (None: every calibration row).
SQUAD_CALIBRATION_QUESTIONS = 1000
COVERAGE = 0.90
SEEDS = ROOT / "seeds"
SEED_CALIBRATION = ROOT / "eval" / "data" / "seed_calibration.jsonl"
# Sets asked whole: news from the training weeks, and questions about the seed article written for
# calibration (eval/data/seed_qa.jsonl, the reported seed set, asks other questions).
WHOLE_SETS = ("news-calibration", "seed-calibration")
# Datasets that place the thresholds but do not fit the weights. The seed set is one article and 54
# questions: fitted with the weight of a whole corpus, the reader's eleven weights follow it and
# do worse on every other corpus; but no other set is a corpus of one document, where the reader's
# confidence must still say when to answer. The heuristic does not separate answerable from
# unanswerable questions within one article (AUROC 0.61 there), so that set would only move its
# threshold down at the cost of every other corpus's refusals: it is not asked.
THRESHOLD_ONLY: dict[str, tuple[str, ...]] = {"reader": ("seed-calibration",), "heuristic": ()}
BLOCK_OF_SCORER = {"heuristic": "heuristic_confidence", "reader": "reader_confidence"}
THRESHOLD_RULE = "eval.metrics.best_threshold: the best mean over datasets of balanced accuracy"
TENTATIVE_RULE = (
    f"eval.calibrate.tentative_threshold: answers and not-sure answers reach {COVERAGE:.2f} of "
    "answerable questions (mean over datasets)"
)

Row = tuple[Sequence[float], bool, str]  # (features, answerable, dataset name)


def fit_logistic(x: Any, y: Any, *, l2: float = L2, groups: Sequence[str] | None = None) -> np.ndarray:
    """Weights w of p = sigmoid(x @ w), where the first column of x is the bias (all ones), that
    minimise the class-balanced mean log loss (each class weighs one half) plus l2/2 * |w|^2
    over the weights but the bias: scikit-learn's `LogisticRegression` with C = 1/l2 and sample
    weights 0.5/n_class, solved by Newton steps to 1e-10.

    With `groups` (a dataset name per row), each dataset weighs the same, and within it each
    class: sample weights 1 / (2 * n_groups * n_group_class). A corpus of fifty questions then has
    as much say as one of a thousand, as it has in the threshold (`eval.metrics.best_threshold`).

    Example:
        >>> x = np.array([[1.0, -2.0], [1.0, -1.0], [1.0, 1.0], [1.0, 2.0], [1.0, 0.5], [1.0, -0.5]])
        >>> w = fit_logistic(x, [0, 0, 1, 1, 0, 1])
        >>> bool(w[1] > 0)
        True
    """
    from sklearn.linear_model import LogisticRegression

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError(f"x must be a matrix with one row per label, got shape {x.shape} for {len(y)} labels")
    if not np.all(x[:, 0] == 1.0):
        raise ValueError("the first column of x must be the bias (all ones)")
    if l2 <= 0:
        raise ValueError(f"l2 must be > 0, got {l2}")
    sample_w = _balanced_weights(y > 0, list(groups) if groups is not None else ["all"] * len(y))
    model = LogisticRegression(C=1.0 / l2, solver="newton-cholesky", tol=1e-10, max_iter=200)
    model.fit(x[:, 1:], (y > 0).astype(int), sample_weight=sample_w)
    return np.concatenate([model.intercept_, model.coef_[0]])


def _balanced_weights(positive: np.ndarray, groups: Sequence[str]) -> np.ndarray:
    """Sample weights giving every (group, class) the same total weight, summing to one."""
    if len(groups) != len(positive):
        raise ValueError(f"groups must name one dataset per row, got {len(groups)} for {len(positive)} rows")
    names = np.asarray(groups, dtype=object)
    weights = np.zeros(len(positive))
    distinct = sorted(set(groups))
    for name in distinct:
        in_group = names == name
        n_pos = int((positive & in_group).sum())
        if n_pos in (0, int(in_group.sum())):
            where = "" if distinct == ["all"] else f" in {name!r}"
            raise ValueError(f"fitting needs both classes{where}, got {n_pos} positive of {int(in_group.sum())} rows")
        weights[positive & in_group] = 0.5 / len(distinct) / n_pos
        weights[~positive & in_group] = 0.5 / len(distinct) / (int(in_group.sum()) - n_pos)
    return weights


def tentative_threshold(
    confidence: Sequence[float],
    answerable: Sequence[bool],
    groups: Sequence[str],
    answer_at: float,
    *,
    coverage: float = COVERAGE,
) -> float:
    """The highest threshold t <= `answer_at` at which answers and "not sure" answers together
    reach `coverage` of the answerable questions (the mean over datasets, so a large calibration
    set does not decide alone). Below the balanced-accuracy threshold unanswerable questions always
    outnumber answerable ones (class for class), so the band is not "probably right": it is where
    the closest passage is still worth showing, marked as uncertain, instead of a bare refusal.

    Example:
        >>> tentative_threshold([0.9, 0.6, 0.5, 0.2, 0.4, 0.1], [True, True, False, True, False, False],
        ...                     ["a"] * 6, 0.7, coverage=0.6)
        0.6
    """
    names = sorted(set(groups))
    best = answer_at
    for t in sorted({c for c in confidence if c < answer_at}, reverse=True):
        reached = []
        for name in names:
            pos = [confidence[i] for i, g in enumerate(groups) if g == name and answerable[i]]
            reached.append(sum(c >= t for c in pos) / max(len(pos), 1))
        if sum(reached) / len(names) >= coverage:
            return round(t, 4)
        best = t
    return round(best, 4)


WEIGHTINGS = ("pooled", "per-dataset")
WEIGHTING_RULE = (
    "{} (eval.calibrate.transfer_scores: of pooled rows and each dataset weighing the same, the "
    "better mean balanced accuracy on a dataset left out of the fit)"
)


def transfer_scores(rows: Sequence[Row], *, scorer: str) -> dict[str, dict[str, float]]:
    """How each weighting of the fit (`WEIGHTINGS`) does on a corpus it was not fitted on: for
    every dataset, weights and threshold fitted on the others, balanced accuracy on it; the mean
    over datasets as "mean". Pooled rows let the largest dataset decide the weights; per-dataset
    weights (`fit_logistic(groups=...)`) give each the same say. Which transfers better depends on
    the features: the reader's logit separates within every corpus, the heuristic's similarity
    features mostly across corpora. With fewer than three datasets there is nothing to hold out.
    """
    from eval.metrics import abstention_metrics, best_threshold
    from rag.answer import FEATURES, READER_FEATURES, confidence

    names = READER_FEATURES if scorer == "reader" else FEATURES
    datasets = sorted({r[2] for r in rows})
    scores: dict[str, dict[str, float]] = {}
    if len(datasets) < 3:
        return scores
    for weighting in WEIGHTINGS:
        per: dict[str, float] = {}
        for held_out in datasets:
            fit_rows = [r for r in rows if r[2] != held_out]
            w = _fit_weights(fit_rows, weighting).tolist()
            fit_conf = [confidence(r[0], w, names=names) for r in fit_rows]
            threshold = best_threshold(fit_conf, [bool(r[1]) for r in fit_rows], groups=[r[2] for r in fit_rows])
            test = [r for r in rows if r[2] == held_out]
            conf = [confidence(r[0], w, names=names) for r in test]
            m = abstention_metrics([c < threshold for c in conf], [bool(r[1]) for r in test], conf)
            per[held_out] = round(m["balanced_accuracy"].score, 4)
        scores[weighting] = {**per, "mean": round(float(np.mean(list(per.values()))), 4)}
    return scores


def _fit_weights(rows: Sequence[Row], weighting: str) -> np.ndarray:
    """`fit_logistic` on (features, answerable, dataset) rows, weighted as `weighting` (`WEIGHTINGS`) says."""
    groups = [r[2] for r in rows] if weighting == "per-dataset" else None
    return fit_logistic([r[0] for r in rows], [r[1] for r in rows], groups=groups)


def fit_confidence(
    rows: Sequence[Row], *, scorer: str, threshold_only: Sequence[str] = ()
) -> tuple[dict[str, Any], dict[str, dict[str, float]], dict[str, Any]]:
    """The fitted block of `scorer`'s answer confidence (features, weights, answer threshold,
    "not sure" threshold; rounded to 4 places) from (features, answerable, dataset) rows, the
    calibration metrics per dataset at that threshold, and how the fit was weighted: the
    weighting of `WEIGHTINGS` that does best on a corpus it was not fitted on (`transfer_scores`;
    pooled on a tie, or with fewer than three datasets), with those scores. Rows of the datasets
    named in `threshold_only` take part in the thresholds (and the metrics), not in the weights.

    Example:
        >>> block, metrics, fit = fit_confidence(rows, scorer="reader")  # doctest: +SKIP
        >>> fit["weighting"], metrics["squad2-dev"]["auroc"]  # doctest: +SKIP
        ('per-dataset', 0.7241)
    """
    from eval.metrics import abstention_metrics, best_threshold
    from rag.answer import FEATURES, READER_FEATURES, confidence

    if scorer not in BLOCK_OF_SCORER:
        raise ValueError(f"scorer must be one of {', '.join(BLOCK_OF_SCORER)}, got {scorer!r}")
    if not rows:
        raise ValueError("no calibration rows")
    names = READER_FEATURES if scorer == "reader" else FEATURES
    x = np.array([r[0] for r in rows], dtype=np.float64)
    answerable = [bool(r[1]) for r in rows]
    groups = [r[2] for r in rows]
    fit_rows = [r for r in rows if r[2] not in threshold_only]
    if not fit_rows:
        raise ValueError(
            f"no calibration rows to fit the weights on: every dataset is threshold-only ({threshold_only})"
        )
    transfer = transfer_scores(fit_rows, scorer=scorer)
    weighting = max(WEIGHTINGS, key=lambda k: transfer[k]["mean"]) if transfer else "pooled"
    w = _fit_weights(fit_rows, weighting)
    conf = [confidence(f.tolist(), w.tolist(), names=names) for f in x]
    threshold = round(best_threshold(conf, answerable, groups=groups), 4)
    tentative = round(tentative_threshold(conf, answerable, groups, threshold), 4)
    metrics: dict[str, dict[str, float]] = {}
    for name in sorted(set(groups)):
        idx = [i for i, g in enumerate(groups) if g == name]
        c = [conf[i] for i in idx]
        m = abstention_metrics([v < threshold for v in c], [answerable[i] for i in idx], c)
        metrics[name] = {k: round(v.score, 4) for k, v in m.items()}
    block = {
        "features": list(names),
        "weights": [round(float(v), 4) for v in w],
        "answer_threshold": threshold,
        "tentative_threshold": tentative,
    }
    return (
        block,
        metrics,
        {
            "weighting": weighting,
            "leave_one_dataset_out_balanced_accuracy": transfer,
            "threshold_only": sorted(set(threshold_only) & set(groups)),
        },
    )


# --- provenance and the file ----------------------------------------------------------------------


def dataset_file(path: str | Path) -> str:
    """`path` relative to the shared datasets folder when it lies there (how provenance names files).

    Example:
        >>> dataset_file(SHARED / "clapnq-dev")
        'clapnq-dev'
    """
    resolved = Path(path).resolve()
    try:
        return resolved.relative_to(SHARED.resolve()).as_posix()
    except ValueError:
        return str(resolved)


def git_state() -> tuple[str, bool | None]:
    """(HEAD commit, whether the working tree has uncommitted changes) of this checkout; ("unknown", None)
    outside a git checkout."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10, cwd=ROOT)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout if out.returncode == 0 else None

    commit = (git("rev-parse", "HEAD") or "").strip()
    status = git("status", "--porcelain", "--untracked-files=no")
    return commit or "unknown", (bool(status.strip()) if status is not None and commit else None)


def provenance(
    *,
    command: str,
    datasets: Sequence[dict[str, Any]],
    fit: dict[str, Any],
    metrics: dict[str, Any] | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """The provenance of a fitted block: the command, the git commit it ran on (and whether the
    tree was dirty), the date (UTC), the datasets and rows, the fit settings with scikit-learn's
    version, and optionally metrics and a note."""
    import sklearn

    commit, dirty = git_state()
    out: dict[str, Any] = {
        "command": command,
        "git_commit": commit,
        "git_dirty": dirty,
        "date": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        "datasets": list(datasets),
        "fit": {**fit, "versions": {"scikit-learn": sklearn.__version__, "numpy": np.__version__}},
    }
    if metrics is not None:
        out["metrics"] = metrics
    if note:
        out["note"] = note
    return out


def write_fitted(block_name: str, block: dict[str, Any], *, path: str | Path | None = None) -> Path:
    """Replace the block `block_name` of the fitted file at `path` (default: `fitted_path()`) and
    return the path. The other blocks are kept from the file there, or, when it does not exist
    yet, from the package's rag/fitted.json. The result is checked like a read before it is
    written, then written atomically, and configs made afterwards read it.

    Example:
        >>> write_fitted("support", {**load_fitted()["support"], "threshold": 0.7},  # doctest: +SKIP
        ...              path="/tmp/fitted.json")
        PosixPath('/tmp/fitted.json')
    """
    target = Path(path) if path is not None else fitted_path()
    data = load_fitted(target if target.exists() else FITTED_FILE)
    if block_name not in data:
        raise ValueError(
            f"no block {block_name!r} in the fitted file (blocks: "
            f"{', '.join(k for k, v in data.items() if isinstance(v, dict))})"
        )
    data[block_name] = block
    check_fitted(data, source=f"{target} (about to be written)")
    _atomic_write(target, json.dumps(data, indent=1) + "\n")
    forget_fitted()
    return target


def _atomic_write(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, fsync, rename over `path`, fsync the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


# --- rag eval --calibrate -------------------------------------------------------------------------


def reader_training_ids() -> set[str]:
    """The SQuAD question ids the shipped reader was trained on, in any of its training runs
    (rebuilt from each run's recorded seed and settings: the data selection is deterministic), so
    calibration can say how many of its rows the reader saw. A question asked with a swapped name
    counts as its original."""
    from eval.train_reader import build_data, stages_of
    from rag.reader import MODEL_DIR

    meta = json.loads((MODEL_DIR / "reader.json").read_text(encoding="utf-8"))
    ids: set[str] = set()
    for stage in stages_of(meta):
        settings = stage["settings"]
        groups, _ = build_data(
            SHARED,
            seed=stage["seed"],
            max_negatives=settings["max_negatives"],
            limit=settings["limit_questions"],
            sources=settings["sources"],
            squad_questions=settings.get("squad_questions"),
            swap_share=settings.get("swap_share", 0.0),
        )
        ids |= {g[0].group.removesuffix("~swap") for g in groups if g[0].source in ("squad", "squad-swap")}
    return ids


def collect_rows(
    scorer: AnswerScorer,
    *,
    embed_backend: str,
    seed: int = 0,
    index_dir: str | Path | None = None,
    limit: int | None = None,
) -> tuple[list[Row], list[dict[str, Any]], int]:
    """Ask the calibration questions with `scorer` answering everything and return their
    (features, answerable, dataset) rows, a provenance entry per dataset, and how many of the SQuAD
    questions asked the reader trained on.

    Rows: SQuAD 2.0 dev, calibration half, `SQUAD_CALIBRATION_QUESTIONS` sampled (the reader's
    training runs between them saw nearly all of these rows); ClapNQ dev, calibration half, all;
    RealTime QA news from training weeks (`eval.datasets.NEWS_CALIBRATION`, which the reader
    also trained on); for the reader the seed article's calibration questions, which place its
    thresholds only (`THRESHOLD_ONLY`). `limit` caps every dataset (a quick run). With `index_dir`,
    indexes are kept there per dataset and the rows saved as calibration_rows_{scorer}.json, so
    feature work can be redone without asking again.
    """
    from eval.runner import run_qa
    from rag.config import RagConfig
    from rag.embed import Embedder

    embedder = Embedder.load(backend=embed_backend)
    # Answer everything: every question's features are wanted.
    config = RagConfig(answer_scorer=scorer).with_threshold(0.0, tentative=0.0)
    trained = reader_training_ids() if scorer == "reader" else set()
    rows: list[Row] = []
    described: list[dict[str, Any]] = []
    trained_on = 0
    for name, file, dataset, default_limit in _calibration_sources(scorer):
        caps = [c for c in (default_limit, limit) if c is not None]
        cap = min(caps) if caps else None
        items = _calibration_items(name, dataset, cap=cap, seed=seed)
        seen = sum(item.id in trained for item in items)
        trained_on += seen
        report = run_qa(
            dataset, items, config=config, embedder=embedder, index_dir=index_dir and Path(index_dir) / name
        )
        for q in report["per_question"]:
            rows.append((q["features"], q["answerable"], name))
        n_answerable = sum(q["answerable"] for q in report["per_question"])
        described.append(
            {
                "name": name,
                "file": dataset_file(file),
                "split": "all" if name in WHOLE_SETS else "calibration",
                "selection": _selection(name, cap=cap, seed=seed, n_trained=seen),
                "rows": len(items),
                "answerable": n_answerable,
                "unanswerable": len(items) - n_answerable,
                "source_hash": dataset.source_hash,
            }
        )
        print(f"{name}: {len(items)} calibration questions")
    if index_dir:
        Path(index_dir).mkdir(parents=True, exist_ok=True)
        Path(index_dir, f"calibration_rows_{scorer}.json").write_text(json.dumps(rows))
    return rows, described, trained_on


def _calibration_sources(scorer: str) -> list[tuple[str, Path, QADataset, int | None]]:
    """(name, file, dataset, questions sampled unless a smaller limit is given) of each dataset
    `collect_rows` asks with `scorer`: SQuAD 2.0 and ClapNQ calibration halves, news from the
    training weeks, and for the reader the seed article's calibration questions
    (`THRESHOLD_ONLY`)."""
    from eval.datasets import NEWS_CALIBRATION, load_clapnq, load_qa_dataset, load_realtimeqa, load_squad

    squad_file, clapnq_dir = SHARED / "squad2-dev" / "dev-v2.0.json", SHARED / "clapnq-dev"
    start, until, end = NEWS_CALIBRATION
    news_file = SHARED / "realtimeqa-2022-2023" / "qa.jsonl"
    news = load_realtimeqa(news_file, start=start, answerable_until=until, end=end, name="news-calibration")
    sources = [
        ("squad2-dev", squad_file, load_squad(squad_file), SQUAD_CALIBRATION_QUESTIONS),
        ("clapnq-dev", clapnq_dir, load_clapnq(clapnq_dir), None),
        ("news-calibration", news_file, news, None),
    ]
    if "seed-calibration" in THRESHOLD_ONLY[scorer]:
        sources.append(
            (
                "seed-calibration",
                SEED_CALIBRATION,
                load_qa_dataset(SEED_CALIBRATION, SEEDS, name="seed-calibration"),
                None,
            )
        )
    return sources


def _calibration_items(name: str, dataset: QADataset, *, cap: int | None, seed: int) -> list[QAItem]:
    """The questions of `dataset` to ask: its calibration half (every row of the sets kept for
    calibration only, `WHOLE_SETS`), `cap` of them sampled with `seed` when `cap` is set."""
    from eval.datasets import sample_items, split_items

    calibration = list(dataset.items) if name in WHOLE_SETS else split_items(dataset.items)[0]
    return sample_items(calibration, limit=cap, seed=seed) if cap else calibration


def _selection(name: str, *, cap: int | None, seed: int, n_trained: int) -> str:
    """How the questions of dataset `name` were chosen, in words, for its provenance entry."""
    from eval.datasets import NEWS_CALIBRATION

    selection = f"{cap} sampled (seed {seed})" if cap else "all"
    if name == "squad2-dev" and n_trained:
        # The reader's training runs between them saw nearly every SQuAD calibration row (3,039):
        # leaving them out would leave too few; its confidence fit is optimistic on these.
        selection += f"; the reader trained on {n_trained} of them"
    if name == "news-calibration":
        start, until, end = NEWS_CALIBRATION
        selection = (
            f"RealTime QA training weeks {start}-{end}, answerable until {until} (eval.datasets.NEWS_CALIBRATION)"
        ) + ("" if not cap else f", {cap} sampled (seed {seed})")
    if name in THRESHOLD_ONLY["reader"]:
        selection += "; places the thresholds, does not fit the weights (eval.calibrate.THRESHOLD_ONLY)"
    return selection


def calibrate(
    *,
    scorer: AnswerScorer,
    embed_backend: str,
    command: str,
    seed: int = 0,
    index_dir: str | Path | None = None,
    limit: int | None = None,
    fitted: str | Path | None = None,
    report: str | Path | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """`rag eval --calibrate`: fit `scorer`'s confidence weights, answer threshold and "not sure"
    threshold on the calibration rows (`collect_rows`) and, unless `dry_run`, write its block into
    the fitted file `fitted` (default: `fitted_path()`, the package's rag/fitted.json unless
    `$RAG_FITTED` is set). The summary is returned, and written to `report` (default, when the
    package's file is written: eval/reports/calibration.json, or calibration-reader.json)."""
    rows, datasets, trained_on = collect_rows(
        scorer, embed_backend=embed_backend, seed=seed, index_dir=index_dir, limit=limit
    )
    block, metrics, weighting = fit_confidence(rows, scorer=scorer, threshold_only=THRESHOLD_ONLY[scorer])
    summary: dict[str, Any] = {
        "scorer": scorer,
        "features": block["features"],
        "weights": block["weights"],
        "threshold": block["answer_threshold"],
        "tentative_threshold": block["tentative_threshold"],
        "n": len(rows),
        "squad_rows_the_reader_trained_on": trained_on,
        **metrics,
        **weighting,
        "tentative_rule": TENTATIVE_RULE,
    }
    print(json.dumps(summary, indent=1))
    if dry_run:
        return summary
    fit = {
        "method": "scikit-learn LogisticRegression (newton-cholesky), class-balanced sample weights",
        "weighting": WEIGHTING_RULE.format(weighting["weighting"]),
        "leave_one_dataset_out_balanced_accuracy": weighting["leave_one_dataset_out_balanced_accuracy"],
        "threshold_only": weighting["threshold_only"],
        "l2": L2,
        "answer_threshold": THRESHOLD_RULE,
        "tentative_threshold": TENTATIVE_RULE,
    }
    block["provenance"] = provenance(command=command, datasets=datasets, fit=fit, metrics=metrics)
    target = write_fitted(BLOCK_OF_SCORER[scorer], block, path=fitted)
    print(f"wrote {BLOCK_OF_SCORER[scorer]} into {target}")
    if report is None and target.resolve() == FITTED_FILE.resolve():
        report = REPORTS / ("calibration.json" if scorer == "heuristic" else "calibration-reader.json")
    if report is not None:
        Path(report).parent.mkdir(parents=True, exist_ok=True)
        Path(report).write_text(json.dumps(summary, indent=1) + "\n")
        print(f"wrote {report}")
    return summary
