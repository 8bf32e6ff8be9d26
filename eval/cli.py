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

from rag.config import EMBED_BACKENDS, GENERATORS, MODES, RagConfig

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
                   help="rows to use (default: report for SQuAD and ClapNQ, all for --qa)")
    p.add_argument("--baseline", choices=("langchain",), help="also run the LangChain tutorial pipeline")
    p.add_argument("--mode", choices=MODES, default=d.mode)
    p.add_argument("--top-k", type=int, default=d.top_k)
    p.add_argument("--abstain-threshold", type=float, default=d.abstain_threshold)
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
        config = RagConfig(mode=args.mode, top_k=args.top_k, abstain_threshold=args.abstain_threshold,
                           **_run_settings(args), **({"index_dir": args.index_dir} if args.index_dir else {}))
        if args.calibrate:
            return calibrate(args)
        if args.check:
            return check(args.only)
        if not (args.qa or args.squad or args.clapnq or args.beir):
            raise ValueError("give a dataset: --qa FILE --docs DIR, --squad FILE, --clapnq DIR or --beir DIR "
                             "(or --calibrate / --check)")
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
    from eval.datasets import load_clapnq, load_qa_dataset, load_squad, sample_items, split_items

    if args.qa:
        if not args.docs:
            raise ValueError("--qa needs --docs DIR (the documents the questions are about)")
        dataset = load_qa_dataset(args.qa, args.docs)
    elif args.squad:
        dataset = load_squad(args.squad)
    else:
        dataset = load_clapnq(args.clapnq)
    split = args.split or ("all" if args.qa else "report")
    items = list(dataset.items)
    if split != "all":
        calibration, report = split_items(items)
        items = calibration if split == "calibration" else report
    if args.limit:
        items = sample_items(items, limit=args.limit, seed=args.seed, unanswerable_share=args.unanswerable_share)
    return dataset, items


def _run_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The config fields the run flags set (embedding backend and answer generator)."""
    return {"embed_backend": args.embed_backend, "generator": args.generator, "llm_base_url": args.llm_base_url,
            "llm_model": args.llm_model, "llm_max_new_tokens": args.llm_max_new_tokens}


def evaluate(args: argparse.Namespace, config: RagConfig) -> dict[str, Any]:
    from rag.embed import Embedder

    embedder = Embedder.load(backend=config.embed_backend)
    if args.beir:
        from eval.datasets import load_beir
        from eval.runner import run_beir

        return run_beir(load_beir(args.beir), config=config, embedder=embedder, index_dir=args.index_dir,
                        baseline=args.baseline)
    from eval.runner import run_qa

    dataset, items = load_items(args)
    if not items:
        raise ValueError("no questions selected (check --split and --limit)")
    report = run_qa(dataset, items, config=config, embedder=embedder, index_dir=args.index_dir,
                    baseline=args.baseline)
    report["config"]["selection"] = {"split": args.split or ("all" if args.qa else "report"), "limit": args.limit,
                           "seed": args.seed, "unanswerable_share": args.unanswerable_share}
    return report


def _print_summary(report: dict[str, Any]) -> None:
    base = report.get("baseline", {})
    print(f"{report['dataset']}: {report['n_questions']} questions ({report['n_unanswerable']} unanswerable)")
    for group in ("retrieval", "answer", "citations", "abstention", "latency_ms", "generation", "index"):
        for key, value in report.get(group, {}).items():
            b = base.get(group, {}).get(key)
            print(f"  {group:<11} {key:<22} {value!s:>10}" + (f"   langchain {b}" if b is not None else ""))


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
    import numpy as np

    from eval.datasets import load_clapnq, load_squad, sample_items, split_items
    from eval.metrics import abstention_metrics
    from eval.runner import run_qa
    from rag.answer import FEATURES, confidence
    from rag.embed import Embedder

    embedder = Embedder.load(backend=args.embed_backend)
    config = RagConfig(abstain_threshold=0.0)  # answer everything: we want every question's features
    rows: list[tuple[list[float], bool, str]] = []
    sources = [("squad2-dev", load_squad(SHARED / "squad2-dev" / "dev-v2.0.json"), 1000),
               ("clapnq-dev", load_clapnq(SHARED / "clapnq-dev"), None)]
    for name, dataset, limit in sources:
        calibration, _ = split_items(dataset.items)
        items = sample_items(calibration, limit=limit, seed=args.seed) if limit else calibration
        report = run_qa(dataset, items, config=config, embedder=embedder,
                        index_dir=args.index_dir and Path(args.index_dir) / name)
        for q in report["per_question"]:
            rows.append((q["features"], q["answerable"], name))
        print(f"{name}: {len(items)} calibration questions")
    if args.index_dir:  # keep the rows so feature work can be redone without asking again
        Path(args.index_dir, "calibration_rows.json").write_text(json.dumps(rows))
    x = np.array([r[0] for r in rows])
    y = np.array([r[1] for r in rows], dtype=float)
    # Each dataset weighs the same: duplicate nothing, just fit on the pooled rows.
    w = fit_logistic(x, y)
    conf = [confidence(f, w) for f in x]
    threshold = round(balanced_threshold(conf, [bool(v) for v in y], [r[2] for r in rows]), 4)
    weights = tuple(round(float(v), 4) for v in w)
    summary = {"features": FEATURES, "weights": weights, "threshold": threshold, "n": len(rows)}
    for name in {r[2] for r in rows}:
        mask = [r[2] == name for r in rows]
        c = [conf[i] for i in range(len(rows)) if mask[i]]
        a = [bool(y[i]) for i in range(len(rows)) if mask[i]]
        m = abstention_metrics([v < threshold for v in c], a, c)
        summary[name] = {k: round(v.score, 4) for k, v in m.items()}
    print(json.dumps(summary, indent=1))
    if not args.dry_run:
        write_calibration(weights, threshold)
        (ROOT / "eval" / "reports").mkdir(exist_ok=True)
        (ROOT / "eval" / "reports" / "calibration.json").write_text(json.dumps(summary, indent=1) + "\n")
        print("wrote the weights and threshold into rag/config.py")
    return 0


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


def write_calibration(weights: tuple[float, ...], threshold: float, path: Path = ROOT / "rag" / "config.py") -> None:
    text = path.read_text(encoding="utf-8")
    text, n1 = re.subn(r"abstain_threshold: float = [0-9.eE+-]+", f"abstain_threshold: float = {threshold}", text)
    text, n2 = re.subn(r"confidence_weights: tuple\[float, \.\.\.\] = \([^)]*\)",
                       f"confidence_weights: tuple[float, ...] = {weights!r}", text)
    if n1 != 1 or n2 != 1:
        raise ValueError(f"could not find the calibration fields in {path}")
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
    for name in ("qa", "docs", "squad", "clapnq", "beir"):
        value = getattr(args, name)
        if value:
            value = value.replace("$SHARED", str(SHARED))
            setattr(args, name, str(value if Path(value).is_absolute() else ROOT / value))
    return args
