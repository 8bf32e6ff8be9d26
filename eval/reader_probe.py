"""`python -m eval.reader_probe [MODEL_DIR ...]`: compare readers in two minutes, before a full eval.

For each reader (the shipped one first, then each MODEL_DIR written by `eval.train_reader --out`),
two measurements that need no index and no calibration:
- seed: every sentence of the demo article, in context, scored for each seed question; top-1 = the
  best-scored sentence contains a reference answer (answerable questions), AUROC = the best score
  of answerable against unanswerable questions.
- squad: SQuAD 2.0 *report* rows (never trained on), `--squad-questions` of them (fixed sample);
  each question against the sentences of its own paragraph; top-1 = the best sentence holds the
  answer span, AUROC = the paragraph's best score, answerable against unanswerable.
These rank candidate readers; the report rows of `rag eval --compare-scorers` decide what ships.

Example:
    python -m eval.reader_probe /tmp/reader        # the shipped reader, then the one in /tmp/reader
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from eval.datasets import SHARED_DATASETS, load_squad, split_items
from eval.train_reader import auroc, sentences_in_context
from rag.reader import Candidate, Reader

ROOT = Path(__file__).resolve().parents[1]
# A reference answer: the answer strings (lowercased), or the start offsets of the answer spans.
Answers = list[str] | set[int]
# (question, candidate sentences with their offsets, answerable, answers)
Probe = tuple[str, list[tuple[int, int, Candidate]], bool, Answers]


def seed_probes(seeds: Path, qa_file: Path) -> list[Probe]:
    """Each seed question against every sentence of the seed documents."""
    text = "\n".join(p.read_text(encoding="utf-8") for p in sorted(seeds.iterdir()) if p.is_file())
    candidates = sentences_in_context(text)
    rows = [json.loads(line) for line in qa_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [(r["question"], candidates, bool(r["answers"]), [a.lower() for a in r["answers"]]) for r in rows]


def squad_probes(path: Path, n: int, seed: int = 0) -> list[Probe]:
    """`n` SQuAD 2.0 report-row questions, each against the sentences of its own paragraph."""
    report_ids = {item.id for item in split_items(load_squad(path).items)[1]}
    probes: list[Probe] = []
    for article in json.loads(path.read_text(encoding="utf-8"))["data"]:
        for paragraph in article["paragraphs"]:
            candidates = sentences_in_context(paragraph["context"])
            for qa in paragraph["qas"]:
                if qa["id"] in report_ids:
                    starts = {a["answer_start"] for a in qa["answers"]}
                    probes.append((qa["question"], candidates, not qa.get("is_impossible"), starts))
    random.Random(seed).shuffle(probes)
    return probes[:n]


def holds_answer(candidate: tuple[int, int, Candidate], answers: Answers) -> bool:
    """Whether a sentence holds an answer: one of the answer strings, or an answer span's start.

    Example:
        >>> holds_answer((10, 30, Candidate("", "Paris is in France.", "")), ["france"])
        True
        >>> holds_answer((10, 30, Candidate("", "Paris is in France.", "")), {35})
        False
    """
    start, end, sentence = candidate
    if isinstance(answers, set):
        return any(start <= s < end for s in answers)
    return any(a in sentence.sentence.lower() for a in answers)


def measure(reader: Reader, probes: Sequence[Probe], *, max_tokens: int = 0) -> dict[str, float]:
    """Top-1 over answerable probes and the AUROC of the best score, answerable against not
    (inputs cut to `max_tokens` word pieces; 0: the reader's own length)."""
    top1, answerable_best, unanswerable_best = [], [], []
    for question, candidates, answerable, answers in probes:
        logits = reader.logits(question, [c for _, _, c in candidates], max_tokens=max_tokens)
        if answerable:
            top1.append(holds_answer(candidates[int(np.argmax(logits))], answers))
            answerable_best.append(float(logits.max()))
        else:
            unanswerable_best.append(float(logits.max()))
    return {
        "top1": round(float(np.mean(top1)), 3) if top1 else float("nan"),
        "auroc": round(auroc(answerable_best, unanswerable_best), 3),
        "answerable": len(answerable_best),
        "unanswerable": len(unanswerable_best),
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.reader_probe", description=__doc__.split("\n")[0])
    p.add_argument("models", nargs="*", type=Path, help="reader folders to compare with the shipped one")
    p.add_argument("--squad-questions", type=int, default=400, help="SQuAD report rows sampled (default: 400)")
    p.add_argument("--shared", type=Path, default=SHARED_DATASETS, help="the datasets folder")
    p.add_argument(
        "--reader-tokens",
        type=int,
        nargs="+",
        default=[0],
        help="input lengths to probe each reader at, in word pieces (default: 0, the reader's own)",
    )
    args = p.parse_args(argv)
    sets = {"seed": seed_probes(ROOT / "seeds", ROOT / "eval" / "data" / "seed_qa.jsonl")}
    squad = args.shared / "squad2-dev" / "dev-v2.0.json"
    if squad.is_file() and args.squad_questions > 0:
        sets["squad"] = squad_probes(squad, args.squad_questions)
    else:
        print(f"reader_probe: {squad} not found: seed only", file=sys.stderr)
    for name, folder in [("shipped", None), *((str(m), m) for m in args.models)]:
        reader = Reader.load(folder)
        for tokens in args.reader_tokens:
            results = {set_name: measure(reader, probes, max_tokens=tokens) for set_name, probes in sets.items()}
            print(name if tokens == 0 else f"{name} at {tokens} tokens", json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
