"""Writes a report three ways: OUT.json (machine), OUT.md (a person), OUT.png (refusal trade-off)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from eval.metrics import threshold_sweep

# The bar each dataset's reporting rows must clear (group, metric, comparison, value).
_BALANCED = ("abstention", "balanced_accuracy", ">=")
TARGETS: dict[str, list[tuple[str, str, str, float]]] = {
    "seed_qa": [
        ("retrieval", "hit@5", ">=", 0.95),
        ("answer", "containment", ">=", 0.85),
        ("citations", "precision", ">=", 0.92),
        ("abstention", "refused_unanswerable", ">=", 0.85),
        ("abstention", "answered_answerable", ">=", 0.90),
    ],
    "squad2-dev": [
        ("answer", "containment", ">=", 0.82),
        ("answer", "mean_words", "<=", 40.0),
        (*_BALANCED, 0.72),
        ("abstention", "auroc", ">=", 0.80),
    ],
    "clapnq-dev": [("retrieval", "hit@1", ">=", 0.92), (*_BALANCED, 0.86)],
    "scifact": [("retrieval", "ndcg@10", ">=", 0.72)],
}


def _rows(report: dict[str, Any]) -> list[tuple[str, str, Any, Any, Any]]:
    """(group, metric, ours, the other answer scorer's, the baseline's)."""
    base = report.get("baseline", {})
    other: dict[str, Any] = next(iter(report.get("compare", {}).values()), {})
    rows = []
    for group in ("retrieval", "answer", "citations", "abstention", "latency_ms", "generation", "index"):
        for key, value in report.get(group, {}).items():
            rows.append((group, key, value, other.get(group, {}).get(key, ""), base.get(group, {}).get(key, "")))
    return rows


def _thresholds(report: dict[str, Any]) -> tuple[str, float, float]:
    """(answer scorer, answer threshold, "not sure" threshold) of the run's config."""
    from rag.config import RagConfig

    known: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v
        for k, v in report["config"].items()
        if k in RagConfig.__dataclass_fields__
    }
    config = RagConfig(**known)
    return (config.answer_scorer, *config.thresholds())


def markdown(report: dict[str, Any]) -> str:
    scorer, answer_at, tentative_at = _thresholds(report)
    lines = [
        f"# Evaluation: {report['dataset']}",
        "",
        f"{report['n_questions']} questions ({report['n_unanswerable']} unanswerable); "
        f"mode `{report['config']['mode']}`, top_k {report['config']['top_k']}, "
        f'answer scorer `{scorer}`, answer from confidence {answer_at}, "not sure" from {tentative_at}; '
        f"commit `{report['versions']['git_commit'][:10]}`"
        + (
            f"; CPU {report['versions']['cpu']} (int8 dot product: {report['versions']['int8_dot_product']})."
            if "cpu" in report["versions"]
            else "."
        ),
        "",
    ]
    has_base = "baseline" in report
    other = next(iter(report.get("compare", {})), None)
    lines.append(
        f"| group | metric | ours ({scorer}) |"
        + (f" {other} scorer |" if other else "")
        + (" langchain baseline |" if has_base else "")
    )
    lines.append("|---|---|---|" + ("---|" if other else "") + ("---|" if has_base else ""))
    for group, key, ours, alt, base in _rows(report):
        lines.append(
            f"| {group} | {key} | {_fmt(ours)} |"
            + (f" {_fmt(alt)} |" if other else "")
            + (f" {_fmt(base)} |" if has_base else "")
        )
    if report["retrieval"].get("evidence_unlocated"):
        ids = [q["id"] for q in report["per_question"] if q.get("evidence_unlocated")]
        lines += [
            "",
            f"{report['retrieval']['evidence_unlocated']} evidence string(s) could not be located "
            "in the documents as read (whitespace aside); their questions count as having no relevant "
            f"chunk: {', '.join(ids[:20])}" + (f" and {len(ids) - 20} more" if len(ids) > 20 else "") + ".",
        ]
    targets = TARGETS.get(report["dataset"], [])
    if targets:
        lines += ["", "## Targets", "", "| metric | target | measured | met |", "|---|---|---|---|"]
        for group, key, op, target in targets:
            value = report[group].get(key)
            if value is None:
                continue
            met = value >= target if op == ">=" else value <= target
            lines.append(
                f"| {group}.{key} | {op} {target} | {_fmt(value)} | "
                f"{'yes' if met else 'no, by ' + _fmt(round(abs(value - target), 4))} |"
            )
    worst = _worst(report["per_question"])
    if worst:
        lines += ["", "## The 10 worst questions", ""]
        for q in worst:
            lines.append(f"### {q['id']}: {_md(q['question'])}")
            gold = "; ".join(q.get("answers") or []) or "(unanswerable)"
            lines.append(f"- gold: {_md(gold)}")
            if "prediction" in q:
                lines.append(
                    f"- answer ({'abstained' if q['abstained'] else 'answered'}, confidence "
                    f"{q['confidence']:.2f}): {_md(q['prediction'])}"
                )
            for r in q.get("retrieved", [])[:3]:
                text = r.get("text", "")
                lines.append(f"- retrieved `{r['source']}`" + (f": {_md(text[:200])}…" if text else ""))
            lines.append("")
    return "\n".join(lines) + "\n"


def _worst(per_question: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def badness(q: dict[str, Any]) -> float:
        if "ndcg@10" in q:
            return -(q["ndcg@10"] or 0.0)
        if not q["answerable"]:
            return q["confidence"] if not q["abstained"] else -1.0
        return -((q.get("containment") or 0.0) + (q.get("hit@5") or 0.0) + (q.get("f1") or 0.0))

    return sorted(per_question, key=badness, reverse=True)[:10]


def _md(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per = report["per_question"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    if per and "confidence" in per[0] and any(not q["answerable"] for q in per):
        conf = [q["confidence"] for q in per]
        answerable = [q["answerable"] for q in per]
        thresholds = [i / 100 for i in range(101)]
        sweep = threshold_sweep(conf, answerable, thresholds)
        ax.plot(thresholds, [r["answered_answerable"] for r in sweep], label="answered answerable")
        ax.plot(thresholds, [r["refused_unanswerable"] for r in sweep], label="refused unanswerable")
        ax.plot(thresholds, [r["balanced_accuracy"] for r in sweep], "--", label="balanced accuracy")
        answer_at = _thresholds(report)[1]
        ax.axvline(answer_at, color="k", lw=1, ls=":", label=f"configured threshold {answer_at:.2f}")
        ax.set_xlabel("abstain when confidence is below")
        ax.set_ylabel("share of questions")
        ax.legend(loc="lower left", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no unanswerable questions: no refusal trade-off to plot", ha="center", va="center")
        ax.set_axis_off()
    ax.set_title(f"Refusal trade-off: {report['dataset']} ({report['n_questions']} questions)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(report: dict[str, Any], out: str | Path, *, latest: bool = True) -> list[Path]:
    """Write OUT.json, OUT.md and OUT.png beside each other, and copy them to latest.* in the same
    folder (the UI's Evaluation tab shows eval/reports/latest.*)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    json_path, md_path, png_path = out.with_suffix(".json"), out.with_suffix(".md"), out.with_suffix(".png")
    json_path.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    md_path.write_text(markdown(report), encoding="utf-8")
    plot(report, png_path)
    if latest:
        for p in (json_path, md_path, png_path):
            target = out.parent / ("latest" + p.suffix)
            if p.resolve() != target.resolve():
                shutil.copyfile(p, target)
    return [json_path, md_path, png_path]
