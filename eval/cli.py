"""`rag eval`: score the pipeline on a question set, calibrate abstention, or check expected scores.

Examples:
    rag eval --qa eval/data/seed_qa.jsonl --docs seeds --report eval/reports/seed.json --baseline langchain
    rag eval --squad ../shared/datasets/squad2-dev/dev-v2.0.json --limit 1000 --unanswerable-share 0.4 \
        --report eval/reports/squad.json
    rag eval --calibrate
    rag eval --check
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any, Sequence

from rag.config import ANSWER_SCORERS, EMBED_BACKENDS, GENERATORS, MODES, RagConfig

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
CONDITIONS = Path(__file__).resolve().parent / "conditions.yaml"


def _parser() -> argparse.ArgumentParser:
    d = RagConfig()
    p = argparse.ArgumentParser(prog="rag eval", description="Evaluate retrieval, answers, citations and refusals.")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--qa", metavar="FILE", help="our JSON-lines question set (needs --docs)")
    src.add_argument("--squad", metavar="FILE", help="SQuAD v2 JSON")
    src.add_argument("--clapnq", metavar="DIR", help="ClapNQ dev folder")
    src.add_argument("--realtimeqa", metavar="FILE",
                     help="RealTime QA news: validation weeks from 2023/07 (never trained on), indexed with "
                          "their search results; later weeks' questions unanswerable")
    src.add_argument("--beir", metavar="DIR", help="BEIR folder (corpus/queries/qrels): retrieval metrics only")
    src.add_argument("--calibrate", action="store_true",
                     help="fit the confidence weights and abstention threshold on the calibration rows of "
                          "SQuAD 2.0 dev and ClapNQ and write them into rag/config.py")
    src.add_argument("--check", action="store_true", help="rerun the conditions in eval/conditions.yaml and "
                                                          "fail when a score drops more than its tolerance")
    p.add_argument("--docs", metavar="DIR", help="documents folder for --qa")
    p.add_argument("--report", metavar="OUT.json", help="where to write the report (.json, .md and .png)")
    p.add_argument("--index-dir", help="index folder to build in (default: a temporary folder)")
    p.add_argument("--limit", type=int, help="sample this many questions")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default: %(default)s)")
    p.add_argument("--unanswerable-share", type=float, help="stratify the sample to this share of unanswerables")
    p.add_argument("--split", choices=("all", "report", "calibration"),
                   help="rows to use (default: report for SQuAD and ClapNQ, all for --qa and --realtimeqa)")
    p.add_argument("--baseline", choices=("langchain",), help="also run the LangChain tutorial pipeline")
    p.add_argument("--compare-scorers", action="store_true",
                   help="also ask every question with the other answer scorer (reader/heuristic) on the same index")
    p.add_argument("--mode", choices=MODES, default=d.mode)
    p.add_argument("--top-k", type=int, default=d.top_k)
    p.add_argument("--abstain-threshold", type=float,
                   help="answer from this confidence on (default: the answer scorer's calibrated threshold)")
    p.add_argument("--answer-scorer", choices=ANSWER_SCORERS, default=d.answer_scorer,
                   help="reader (the trained cross-encoder) or heuristic (default: %(default)s); with "
                        "--calibrate, the scorer to calibrate")
    p.add_argument("--embed-backend", choices=EMBED_BACKENDS, default=d.embed_backend,
                   help="how the embedding model runs (default: %(default)s)")
    p.add_argument("--generator", choices=GENERATORS, default=d.generator,
                   help="how answers are written (default: %(default)s; see rag ask --help)")
    p.add_argument("--llm-base-url", default=d.llm_base_url, help="server URL for --generator openai/ollama")
    p.add_argument("--llm-model", default=d.llm_model, help="model name for --generator openai/ollama")
    p.add_argument("--llm-max-new-tokens", type=int, default=d.llm_max_new_tokens)
    p.add_argument("--only", nargs="*", help="with --check: condition names to run (default: the quick ones)")
    p.add_argument("--dry-run", action="store_true", help="with --calibrate: print, do not write rag/config.py")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = RagConfig(mode=args.mode, top_k=args.top_k,
                           **_run_settings(args), **({"index_dir": args.index_dir} if args.index_dir else {}))
        if args.abstain_threshold is not None:
            config = config.with_threshold(args.abstain_threshold)
        if args.calibrate:
            return calibrate(args)
        if args.check:
            return check(args.only)
        if not (args.qa or args.squad or args.clapnq or args.realtimeqa or args.beir):
            raise ValueError("give a dataset: --qa FILE --docs DIR, --squad FILE, --clapnq DIR, --realtimeqa FILE "
                             "or --beir DIR (or --calibrate / --check)")
        report = evaluate(args, config)
    except (ValueError, FileNotFoundError) as exc:
        print(f"rag eval: error: {exc}", file=sys.stderr)
        return 2
    _print_summary(report)
    if args.report:
        from eval.report import write_report

        paths = write_report(report, args.report)
        print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def load_items(args: argparse.Namespace) -> tuple[Any, list[Any]]:
    from eval.datasets import load_clapnq, load_qa_dataset, load_realtimeqa, load_squad, sample_items, split_items

    if args.qa:
        if not args.docs:
            raise ValueError("--qa needs --docs DIR (the documents the questions are about)")
        dataset = load_qa_dataset(args.qa, args.docs)
    elif args.squad:
        dataset = load_squad(args.squad)
    elif args.realtimeqa:
        dataset = load_realtimeqa(args.realtimeqa)
    else:
        dataset = load_clapnq(args.clapnq)
    split = _default_split(args)
    items = list(dataset.items)
    if split != "all":
        calibration, report = split_items(items)
        items = calibration if split == "calibration" else report
    if args.limit:
        items = sample_items(items, limit=args.limit, seed=args.seed, unanswerable_share=args.unanswerable_share)
    return dataset, items


def _default_split(args: argparse.Namespace) -> str:
    """`--split`, else "all" for datasets without a calibration half (--qa, and --realtimeqa whose rows
    are all validation weeks) and "report" for SQuAD and ClapNQ."""
    return args.split or ("all" if args.qa or args.realtimeqa else "report")


def _run_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The config fields the run flags set (embedding backend and answer generator)."""
    return {"answer_scorer": args.answer_scorer,
            "embed_backend": args.embed_backend, "generator": args.generator, "llm_base_url": args.llm_base_url,
            "llm_model": args.llm_model, "llm_max_new_tokens": args.llm_max_new_tokens}


def evaluate(args: argparse.Namespace, config: RagConfig) -> dict[str, Any]:
    from rag.embed import Embedder

    embedder = Embedder.load(backend=config.embed_backend)
    if args.beir:
        from eval.datasets import load_beir
        from eval.runner import run_beir

        return run_beir(load_beir(args.beir), config=config, embedder=embedder, index_dir=args.index_dir,
                        baseline=args.baseline, compare_scorers=args.compare_scorers)
    from eval.runner import run_qa

    dataset, items = load_items(args)
    if not items:
        raise ValueError("no questions selected (check --split and --limit)")
    report = run_qa(dataset, items, config=config, embedder=embedder, index_dir=args.index_dir,
                    baseline=args.baseline, compare_scorers=args.compare_scorers)
    report["config"]["selection"] = {"split": _default_split(args), "limit": args.limit,
                           "seed": args.seed, "unanswerable_share": args.unanswerable_share}
    return report


def _print_summary(report: dict[str, Any]) -> None:
    base = report.get("baseline", {})
    others = report.get("compare", {})
    print(f"{report['dataset']}: {report['n_questions']} questions ({report['n_unanswerable']} unanswerable), "
          f"answer scorer {report['config']['answer_scorer']}")
    for group in ("retrieval", "answer", "citations", "abstention", "latency_ms", "generation", "index"):
        for key, value in report.get(group, {}).items():
            b = base.get(group, {}).get(key)
            o = "".join(f"   {name} {r.get(group, {}).get(key)}" for name, r in others.items()
                        if r.get(group, {}).get(key) is not None)
            print(f"  {group:<11} {key:<22} {value!s:>10}" + o + (f"   langchain {b}" if b is not None else ""))


# ---------------------------------------------------------------------------------------------
# Calibration


def fit_logistic(x: Any, y: Any, *, l2: float = 1e-4, steps: int = 50) -> Any:
    """Weights w (the first column of x is the bias) of p = sigmoid(x @ w), fitted by Newton's
    method on the class-balanced log loss with a small L2 penalty (bias not penalised)."""
    import numpy as np

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    pos, neg = max(y.sum(), 1.0), max(len(y) - y.sum(), 1.0)
    sample_w = np.where(y > 0, 0.5 / pos, 0.5 / neg)
    penalty = np.full(x.shape[1], l2)
    penalty[0] = 0.0
    w = np.zeros(x.shape[1])
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -50, 50)))
        grad = x.T @ (sample_w * (p - y)) + penalty * w
        hess = (x * (sample_w * p * (1 - p))[:, None]).T @ x + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def calibrate(args: argparse.Namespace) -> int:
    """Fit the configured answer scorer's confidence weights, answer threshold and "not sure"
    threshold on calibration rows (SQuAD 2.0: 1,000 sampled, never a row the reader trained on;
    ClapNQ: all; for the heuristic also RealTime QA news from training weeks, `NEWS_CALIBRATION`,
    which the reader trained on) and write them into rag/config.py."""
    import numpy as np

    from eval.datasets import NEWS_CALIBRATION, load_clapnq, load_realtimeqa, load_squad, sample_items, split_items
    from eval.metrics import abstention_metrics
    from eval.runner import run_qa
    from rag.answer import FEATURES, READER_FEATURES, confidence
    from rag.embed import Embedder

    scorer = args.answer_scorer
    names = READER_FEATURES if scorer == "reader" else FEATURES
    embedder = Embedder.load(backend=args.embed_backend)
    # Answer everything: every question's features are wanted.
    config = RagConfig(answer_scorer=scorer).with_threshold(0.0, tentative=0.0)
    trained = reader_training_ids() if scorer == "reader" else set()
    rows: list[tuple[list[float], bool, str]] = []
    sources = [("squad2-dev", load_squad(SHARED / "squad2-dev" / "dev-v2.0.json"), 1000),
               ("clapnq-dev", load_clapnq(SHARED / "clapnq-dev"), None)]
    if scorer == "heuristic":  # news training weeks: all calibration rows (the reader trained on them)
        start, until, end = NEWS_CALIBRATION
        sources.append(("news-calibration", load_realtimeqa(SHARED / "realtimeqa-2022-2023" / "qa.jsonl", start=start,
                                                            answerable_until=until, end=end,
                                                            name="news-calibration"), None))
    for name, dataset, limit in sources:
        calibration = split_items(dataset.items)[0] if name != "news-calibration" else list(dataset.items)
        if name == "squad2-dev":
            calibration = [item for item in calibration if item.id not in trained]
        items = sample_items(calibration, limit=limit, seed=args.seed) if limit else calibration
        report = run_qa(dataset, items, config=config, embedder=embedder,
                        index_dir=args.index_dir and Path(args.index_dir) / name)
        for q in report["per_question"]:
            rows.append((q["features"], q["answerable"], name))
        print(f"{name}: {len(items)} calibration questions")
    if args.index_dir:  # keep the rows so feature work can be redone without asking again
        Path(args.index_dir, f"calibration_rows_{scorer}.json").write_text(json.dumps(rows))
    x = np.array([r[0] for r in rows])
    y = np.array([r[1] for r in rows], dtype=float)
    # Each dataset weighs the same: duplicate nothing, just fit on the pooled rows.
    w = fit_logistic(x, y)
    conf = [confidence(f, w, names=names) for f in x]
    groups = [r[2] for r in rows]
    threshold = round(balanced_threshold(conf, [bool(v) for v in y], groups), 4)
    tentative = round(tentative_threshold(conf, [bool(v) for v in y], groups, threshold), 4)
    weights = tuple(round(float(v), 4) for v in w)
    summary: dict[str, Any] = {"scorer": scorer, "features": names, "weights": weights, "threshold": threshold,
                               "tentative_threshold": tentative, "n": len(rows),
                               "squad_rows_left_out_as_reader_training": len(trained)}
    for name in sorted(set(groups)):
        mask = [g == name for g in groups]
        c = [conf[i] for i in range(len(rows)) if mask[i]]
        a = [bool(y[i]) for i in range(len(rows)) if mask[i]]
        m = abstention_metrics([v < threshold for v in c], a, c)
        summary[name] = {k: round(v.score, 4) for k, v in m.items()}
    print(json.dumps(summary, indent=1))
    if not args.dry_run:
        fields = {"reader_confidence_weights": weights, "reader_abstain_threshold": threshold,
                  "reader_tentative_threshold": tentative} if scorer == "reader" else \
            {"confidence_weights": weights, "abstain_threshold": threshold, "tentative_threshold": tentative}
        write_calibration(fields)
        (ROOT / "eval" / "reports").mkdir(exist_ok=True)
        out = ROOT / "eval" / "reports" / ("calibration.json" if scorer == "heuristic" else "calibration-reader.json")
        out.write_text(json.dumps(summary, indent=1) + "\n")
        print(f"wrote {', '.join(fields)} into rag/config.py")
    return 0


def reader_training_ids() -> set[str]:
    """The SQuAD question ids the shipped reader was trained on (rebuilt from its recorded
    settings: the data selection is deterministic), so calibration never reuses them."""
    from eval.train_reader import build_data
    from rag.reader import MODEL_DIR

    meta = json.loads((MODEL_DIR / "reader.json").read_text(encoding="utf-8"))
    settings = meta["settings"]
    groups, _ = build_data(SHARED, seed=meta["seed"], max_negatives=settings["max_negatives"],
                           limit=settings["limit_questions"], sources=settings["sources"],
                           squad_questions=settings.get("squad_questions"))
    return {g[0].group for g in groups if g[0].source == "squad"}


def tentative_threshold(confidence: Sequence[float], answerable: Sequence[bool], groups: Sequence[str],
                        answer_at: float, *, coverage: float = 0.90) -> float:
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


def balanced_threshold(confidence: Sequence[float], answerable: Sequence[bool], groups: Sequence[str]) -> float:
    """The threshold that maximises the mean over datasets of each one's balanced accuracy, so a
    large calibration set does not decide the threshold alone. Ties: the middle of the best run."""
    from eval.metrics import threshold_sweep

    grid = [i / 1000 for i in range(1001)]
    names = sorted(set(groups))
    total = [0.0] * len(grid)
    for name in names:
        idx = [i for i, g in enumerate(groups) if g == name]
        sweep = threshold_sweep([confidence[i] for i in idx], [answerable[i] for i in idx], grid)
        for j, row in enumerate(sweep):
            total[j] += row["balanced_accuracy"] / len(names)
    best = max(total)
    run = [grid[j] for j, v in enumerate(total) if v >= best - 1e-12]
    return run[len(run) // 2]


def write_calibration(fields: dict[str, Any], path: Path = ROOT / "rag" / "config.py") -> None:
    """Rewrite the default of each named `RagConfig` field (a float or a tuple of floats)."""
    text = path.read_text(encoding="utf-8")
    for name, value in fields.items():
        kind = r"tuple\[float, \.\.\.\] = \([^)]*\)" if isinstance(value, tuple) else r"float = [0-9.eE+-]+"
        annotation = "tuple[float, ...]" if isinstance(value, tuple) else "float"
        text, n = re.subn(rf"(?m)^(    {name}): {kind}", lambda m: f"{m.group(1)}: {annotation} = {value!r}", text)
        if n != 1:
            raise ValueError(f"could not find the field {name} in {path}")
    path.write_text(text, encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# Expected scores


def check(only: Sequence[str] | None = None) -> int:
    """Rerun conditions and compare each expected score within its tolerance. Exit 1 on a drop."""
    import yaml

    conditions = yaml.safe_load(CONDITIONS.read_text(encoding="utf-8"))["conditions"]
    chosen = [c for c in conditions if (c["name"] in only if only else c.get("quick"))]
    if not chosen:
        print(f"rag eval --check: no conditions match {only}", file=sys.stderr)
        return 2
    failures = run_conditions(chosen)
    return 1 if failures else 0


def run_conditions(conditions: Sequence[dict[str, Any]]) -> list[str]:
    failures: list[str] = []
    for cond in conditions:
        args = _parser().parse_args([str(a) for a in cond["args"]])
        config = RagConfig(mode=args.mode, top_k=args.top_k, **_run_settings(args))
        report = evaluate(_resolve(args), config)
        for metric, spec in cond["expect"].items():
            group, key = metric.split(".", 1)
            value = report[group][key]
            expected, tol = spec["value"], spec.get("tolerance", 0.02)
            higher = spec.get("higher_is_better", True)
            ok = value >= expected - tol if higher else value <= expected + tol
            print(f"{cond['name']:<12} {metric:<32} {value:>8.4f}  expected {expected} ± {tol}  "
                  f"{'ok' if ok else 'DROPPED'}")
            if not ok:
                failures.append(f"{cond['name']} {metric}")
    return failures


def _resolve(args: argparse.Namespace) -> argparse.Namespace:
    """Condition paths are relative to the repository root; `$SHARED` names the datasets folder."""
    for name in ("qa", "docs", "squad", "clapnq", "realtimeqa", "beir"):
        value = getattr(args, name)
        if value:
            value = value.replace("$SHARED", str(SHARED))
            setattr(args, name, str(value if Path(value).is_absolute() else ROOT / value))
    return args
