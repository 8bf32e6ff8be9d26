"""Question latency with each answer scorer, in one process (ratios, not absolute times).

    python -m bench.reader_latency --index seeds-index --index .cache/eval/scifact/index

Asks the first 40 questions of the seed set (or SciFact's first 40 claims for an index whose
documents are SciFact abstracts) with the heuristic and the reader reading 12 or 8 sentences of
112 or 96 word pieces; prints p50/p95 per setting. Each setting is run twice, interleaved, so a
change in the machine's load shows as a difference between the two rounds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import ROOT, SCIFACT
from rag.pipeline import RAG

SETTINGS: tuple[dict[str, Any], ...] = (
    {"answer_scorer": "heuristic"},
    {"answer_scorer": "reader", "reader_sentences": 12, "reader_tokens": 112},
    {"answer_scorer": "reader", "reader_sentences": 12, "reader_tokens": 96},
    {"answer_scorer": "reader", "reader_sentences": 8, "reader_tokens": 112},
    {"answer_scorer": "reader", "reader_sentences": 8, "reader_tokens": 96},
)


def questions_for(index: Path) -> list[str]:
    if "scifact" in str(index):
        return [json.loads(line)["text"] for line in (SCIFACT / "queries.jsonl").read_text().splitlines()][:40]
    return [json.loads(line)["question"] for line in (ROOT / "eval/data/seed_qa.jsonl").read_text().splitlines()][:40]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.reader_latency", description=__doc__.split("\n")[0])
    p.add_argument("--index", action="append", required=True, help="an index folder (repeatable)")
    args = p.parse_args(argv)
    for folder in args.index:
        rag = RAG.open(folder)
        questions = questions_for(Path(folder))
        for settings in [*SETTINGS, *SETTINGS]:
            config = rag.config.replace(**settings)
            rag.ask(questions[0], config=config)  # warm-up: loads the reader
            times = []
            for q in questions:
                started = time.perf_counter()
                rag.ask(q, config=config)
                times.append((time.perf_counter() - started) * 1000)
            print(
                f"{folder}: {settings}: p50 {statistics.median(times):.1f} ms, "
                f"p95 {sorted(times)[int(0.95 * len(times)) - 1]:.1f} ms"
            )
        rag.index.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
