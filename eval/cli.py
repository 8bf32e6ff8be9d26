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
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eval.datasets import SHARED_DATASETS as SHARED
from rag.config import ANSWER_SCORERS, EMBED_BACKENDS, GENERATORS, MODES, RagConfig
from rag.store import IndexError_

ROOT = Path(__file__).resolve().parents[1]
CONDITIONS = Path(__file__).resolve().parent / "conditions.yaml"


# The reader's settings `rag eval` can set: (flag, RagConfig field, what it does).
READER_FLAGS = (
    (
        "--rerank-fusion",
        "rerank_fusion",
        "reorder hits by its order fused with the retrieval order (reciprocal rank) instead of its scores alone",
    ),
    ("--reader-sentences", "reader_sentences", "sentences it reads per question"),
    ("--rerank-depth", "rerank_depth", "top hits it reorders, each contributing its best sentence"),
    ("--reader-tokens", "reader_tokens", "word pieces per input it reads (0: the length it was trained with)"),
    (
        "--sentence-fusion",
        "sentence_fusion",
        "quote the sentence first in its order fused with the heuristic's (reciprocal rank) instead of its best alone",
    ),
    (
        "--quote-alone",
        "quote_alone",
        "the best sentences it reads a second time without their neighbours to order the quote (0: none)",
    ),
)


def _parser() -> argparse.ArgumentParser:
    d = RagConfig()
    p = argparse.ArgumentParser(prog="rag eval", description="Evaluate retrieval, answers, citations and refusals.")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--qa", metavar="FILE", help="our JSON-lines question set (needs --docs)")
    src.add_argument("--squad", metavar="FILE", help="SQuAD v2 JSON")
    src.add_argument("--clapnq", metavar="DIR", help="ClapNQ dev folder")
    src.add_argument(
        "--realtimeqa",
        metavar="FILE",
        help="RealTime QA news: validation weeks from 2023/07 (never trained on), indexed with "
        "their search results; later weeks' questions unanswerable",
    )
    src.add_argument("--beir", metavar="DIR", help="BEIR folder (corpus/queries/qrels): retrieval metrics only")
    src.add_argument(
        "--calibrate",
        action="store_true",
        help='fit the answer scorer\'s confidence weights, answer and "not sure" thresholds on the '
        "calibration rows of SQuAD 2.0 dev, ClapNQ and news (and, for the reader's thresholds, the seed "
        "article's calibration questions) and write them, "
        "with their provenance, into the fitted-numbers file (see --fitted)",
    )
    src.add_argument(
        "--check",
        action="store_true",
        help="rerun the conditions in eval/conditions.yaml and fail when a score drops more than its tolerance",
    )
    p.add_argument(
        "--docs",
        metavar="DIR",
        help="documents folder for --qa, indexed as rag index reads it (txt, md, html, pdf, docx)",
    )
    p.add_argument("--report", metavar="OUT.json", help="where to write the report (.json, .md and .png)")
    p.add_argument("--index-dir", help="work folder for the documents and the index (default: a temporary folder)")
    p.add_argument(
        "--store",
        default="faiss",
        metavar="KIND",
        help="the store the index is built in: faiss (default), milvus (Milvus Lite, a file in the work folder) "
        "or milvus://HOST:PORT[/PREFIX] (a Milvus server: one collection per dataset)",
    )
    p.add_argument(
        "--limit",
        type=int,
        help="sample this many questions (with --calibrate: at most this many per dataset, for a quick run)",
    )
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default: %(default)s)")
    p.add_argument("--unanswerable-share", type=float, help="stratify the sample to this share of unanswerables")
    p.add_argument(
        "--split",
        choices=("all", "report", "calibration"),
        help="rows to use (default: report for SQuAD and ClapNQ, all for --qa and --realtimeqa)",
    )
    p.add_argument("--baseline", choices=("langchain",), help="also run the LangChain tutorial pipeline")
    p.add_argument(
        "--compare-scorers",
        action="store_true",
        help="also ask every question with the other answer scorer (reader/heuristic) on the same index",
    )
    p.add_argument("--mode", choices=MODES, default=d.mode)
    p.add_argument("--top-k", type=int, default=d.top_k)
    p.add_argument(
        "--abstain-threshold",
        type=float,
        help="answer from this confidence on (default: the answer scorer's calibrated threshold)",
    )
    p.add_argument(
        "--answer-scorer",
        choices=ANSWER_SCORERS,
        default=d.answer_scorer,
        help="reader (the trained cross-encoder) or heuristic (default: %(default)s); with "
        "--calibrate, the scorer to calibrate",
    )
    for flag, field, text in READER_FLAGS:
        default = getattr(d, field)
        kind: dict[str, Any] = (
            {"action": argparse.BooleanOptionalAction} if isinstance(default, bool) else {"type": type(default)}
        )
        p.add_argument(flag, default=default, help=f"with the reader: {text} (default: %(default)s)", **kind)
    p.add_argument(
        "--embed-backend",
        choices=EMBED_BACKENDS,
        default=d.embed_backend,
        help="how the embedding model runs (default: %(default)s)",
    )
    p.add_argument(
        "--generator",
        choices=GENERATORS,
        default=d.generator,
        help="how answers are written (default: %(default)s; see rag ask --help)",
    )
    p.add_argument("--llm-base-url", default=d.llm_base_url, help="server URL for --generator openai/ollama")
    p.add_argument("--llm-model", default=d.llm_model, help="model name for --generator openai/ollama")
    p.add_argument("--llm-max-new-tokens", type=int, default=d.llm_max_new_tokens)
    p.add_argument(
        "--claim-checker",
        action=argparse.BooleanOptionalAction,
        default=d.claim_checker,
        help="with a --generator: check generated sentences with the trained claim checker too (default: on)",
    )
    p.add_argument("--only", nargs="*", help="with --check: condition names to run (default: the quick ones)")
    p.add_argument(
        "--fitted",
        metavar="FILE.json",
        help="with --calibrate: the fitted-numbers file to write (default: $RAG_FITTED, else the "
        "package's rag/fitted.json); configs read it when $RAG_FITTED names it",
    )
    p.add_argument("--dry-run", action="store_true", help="with --calibrate: print, do not write the fitted file")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = _parser().parse_args(argv)  # the parser's defaults read the fitted-numbers file
        config = RagConfig(
            mode=args.mode,
            top_k=args.top_k,
            **_run_settings(args),
            **({"index_dir": args.index_dir} if args.index_dir else {}),
        )
        if args.abstain_threshold is not None:
            config = config.with_threshold(args.abstain_threshold)
        if args.calibrate:
            from eval.calibrate import calibrate

            calibrate(
                scorer=args.answer_scorer,
                embed_backend=args.embed_backend,
                command=f"rag eval {shlex.join(argv)}",
                seed=args.seed,
                index_dir=args.index_dir,
                limit=args.limit,
                fitted=args.fitted,
                report=args.report,
                dry_run=args.dry_run,
            )
            return 0
        if args.check:
            return check(args.only)
        if not (args.qa or args.squad or args.clapnq or args.realtimeqa or args.beir):
            raise ValueError(
                "give a dataset: --qa FILE --docs DIR, --squad FILE, --clapnq DIR, --realtimeqa FILE "
                "or --beir DIR (or --calibrate / --check)"
            )
        report = evaluate(args, config)
    except (ValueError, FileNotFoundError, IndexError_) as exc:
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
    """The config fields the run flags set (answer scorer and its reranking, embedding backend, answer generator)."""
    return {
        "answer_scorer": args.answer_scorer,
        **{field: getattr(args, field) for _, field, _ in READER_FLAGS},
        "embed_backend": args.embed_backend,
        "generator": args.generator,
        "llm_base_url": args.llm_base_url,
        "llm_model": args.llm_model,
        "llm_max_new_tokens": args.llm_max_new_tokens,
        "claim_checker": args.claim_checker,
    }


def evaluate(args: argparse.Namespace, config: RagConfig) -> dict[str, Any]:
    from eval.runner import eval_store
    from rag.embed import Embedder

    eval_store(Path("."), args.store, "check")  # a bad --store is named before the model loads
    embedder = Embedder.load(backend=config.embed_backend)
    if args.beir:
        from eval.datasets import load_beir
        from eval.runner import run_beir

        return run_beir(
            load_beir(args.beir),
            config=config,
            embedder=embedder,
            index_dir=args.index_dir,
            store=args.store,
            baseline=args.baseline,
            compare_scorers=args.compare_scorers,
        )
    from eval.runner import run_qa

    dataset, items = load_items(args)
    if not items:
        raise ValueError("no questions selected (check --split and --limit)")
    if args.qa:  # the other adapters take their evidence from the documents they make
        _warn_about_inputs(dataset, items)
    report = run_qa(
        dataset,
        items,
        config=config,
        embedder=embedder,
        index_dir=args.index_dir,
        store=args.store,
        baseline=args.baseline,
        compare_scorers=args.compare_scorers,
    )
    report["config"]["selection"] = {
        "split": _default_split(args),
        "limit": args.limit,
        "seed": args.seed,
        "unanswerable_share": args.unanswerable_share,
    }
    return report


def _warn_about_inputs(dataset: Any, items: Sequence[Any], *, limit: int = 20) -> None:
    """On stderr, before the index is built: the documents that could not be read, and each
    question's evidence that is found in none of the documents as read (it would count as having
    no relevant passage)."""
    from eval.runner import unlocated_evidence

    lines = [f"rag eval: skipped {reason}" for reason in dataset.skipped]
    for qid, texts in unlocated_evidence(items, dataset.documents).items():
        lines += [
            f"rag eval: warning: evidence of question {qid} not found in the documents: {t[:120]!r}" for t in texts
        ]
    for line in lines[:limit]:
        print(line, file=sys.stderr)
    if len(lines) > limit:
        print(
            f"rag eval: ... and {len(lines) - limit} more (per question in the report: evidence_unlocated)",
            file=sys.stderr,
        )


def _print_summary(report: dict[str, Any]) -> None:
    base = report.get("baseline", {})
    others = report.get("compare", {})
    print(
        f"{report['dataset']}: {report['n_questions']} questions ({report['n_unanswerable']} unanswerable), "
        f"answer scorer {report['config']['answer_scorer']}"
    )
    for group in ("retrieval", "answer", "citations", "abstention", "latency_ms", "generation", "index"):
        for key, value in report.get(group, {}).items():
            b = base.get(group, {}).get(key)
            o = "".join(
                f"   {name} {r.get(group, {}).get(key)}"
                for name, r in others.items()
                if r.get(group, {}).get(key) is not None
            )
            print(f"  {group:<11} {key:<22} {value!s:>10}" + o + (f"   langchain {b}" if b is not None else ""))


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
            print(
                f"{cond['name']:<12} {metric:<32} {value:>8.4f}  expected {expected} ± {tol}  "
                f"{'ok' if ok else 'DROPPED'}"
            )
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
