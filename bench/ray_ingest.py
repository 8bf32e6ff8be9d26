"""Ingestion throughput on Ray Data (`rag index --ray`) against the single-process path, on the same
SciFact abstracts, as ratios measured within one run.

    python -m bench.ray_ingest                   # 2,000 abstracts in 2 interleaved rounds
    python -m bench.ray_ingest --limit 500 --rounds 1

Methods, every round's slice of the documents through each of them back to back (the order
reversed every other round, times summed, so the machine's changing load falls on all alike):
- plain: `rag.pipeline.build_index` without Ray (ONNX Runtime on every core, in this process);
- plain-1t: the same with the encoder on one thread, as each Ray actor runs it: what of Ray's
  result comes from the encoder's threading rather than from Ray;
- ray-1, ray-2: a local Ray started with 1 or 2 CPUs (`rag.distributed.ray_session`, timed apart
  as "Ray start"), then `build_index(ray="local")`: 1 or 2 embedding actors, one encoder thread
  each, their start (loading the encoder) counted in the indexing time.
Each Ray index is checked against the plain one: chunk texts in id order, vectors within 1e-5.
The seed article alone (7 chunks) through each method shows the fixed cost of a run.
Results: bench/results/ray-ingest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import ROOT, cpu_info, print_table, scifact_corpus, write_result
from bench.ingest import index_texts, write_docs

METHODS = ("plain", "plain-1t", "ray-1", "ray-2")


def run_method(method: str, docs: Path, index_dir: Path, embedders: dict[str, Any]) -> dict[str, float]:
    """Index `docs` into `index_dir` with `method`: seconds (Ray's start apart), chunks embedded."""
    from rag.distributed import ray_session
    from rag.pipeline import build_index

    workers = int(method.removeprefix("ray-")) if method.startswith("ray-") else None
    embedder = embedders["plain-1t" if method == "plain-1t" else "plain"]
    with ExitStack() as stack:
        started = time.perf_counter()
        if workers:
            stack.enter_context(ray_session("local", workers))
        ready = time.perf_counter()
        report = build_index(
            [docs], index_dir=index_dir, embedder=embedder, ray="local" if workers else None, ray_workers=workers
        )
        done = time.perf_counter()
    return {
        "start_seconds": ready - started,
        "seconds": done - ready,
        "chunks": report.stats.chunks_embedded,
        "embed_seconds": report.stats.embed_seconds,
    }


def max_vector_difference(plain_dir: Path, ray_dir: Path) -> float:
    """The largest difference between the two indexes' vectors; raises when their chunk texts
    (in id order) differ: the benchmark must compare the same work."""
    from rag.store import Index

    if index_texts(plain_dir) != index_texts(ray_dir):
        raise AssertionError(f"{ray_dir} holds other chunks than {plain_dir}")
    plain, on_ray = Index.load(plain_dir), Index.load(ray_dir)
    try:
        return max(float(np.abs(a - b).max()) for (_, a), (_, b) in zip(plain.vector_blocks(), on_ray.vector_blocks()))
    finally:
        plain.close()
        on_ray.close()


def throughput(limit: int, rounds: int) -> dict[str, Any]:
    """Every method over each round's slice of the first `limit` abstracts, interleaved; then each
    over the seed article alone. Returns the summed times and counts per method."""
    from rag.embed import Embedder

    embedders = {"plain": Embedder.load(), "plain-1t": Embedder.load(threads=1)}
    for embedder in embedders.values():
        embedder.encode_queries(["warm up the encoder and its thread pool"] * 8)
    documents = scifact_corpus(limit)
    names = list(documents)
    acc = {m: {"start_seconds": 0.0, "seconds": 0.0, "chunks": 0, "embed_seconds": 0.0} for m in METHODS}
    diff, load = 0.0, [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="bench-ray-ingest-") as tmp:
        for r in range(rounds):
            docs = write_docs({n: documents[n] for n in names[r::rounds]}, Path(tmp) / f"docs-{r}")
            for method in METHODS if r % 2 == 0 else METHODS[::-1]:
                for key, value in run_method(method, docs, Path(tmp) / f"{method}-{r}", embedders).items():
                    acc[method][key] += value
            diff = max(
                [diff] + [max_vector_difference(Path(tmp) / f"plain-{r}", Path(tmp) / f"{m}-{r}") for m in METHODS[1:]]
            )
            load.append(os.getloadavg()[0])
            print(f"round {r + 1}/{rounds} done, load {load[-1]:.2f}", file=sys.stderr, flush=True)
        seed = {m: run_method(m, ROOT / "seeds", Path(tmp) / f"seed-{m}", embedders) for m in METHODS}
    return {
        "limit": limit,
        "rounds": rounds,
        "load_avg_during": load,
        "max_vector_difference": diff,
        "methods": acc,
        "seed": seed,
    }


def summarise(run: dict[str, Any]) -> list[dict[str, Any]]:
    """Per method: chunks per second of indexing, with and without Ray's start, against plain."""
    plain_rate = run["methods"]["plain"]["chunks"] / run["methods"]["plain"]["seconds"]
    rows = []
    for method, a in run["methods"].items():
        rate = a["chunks"] / a["seconds"]
        with_start = a["chunks"] / (a["seconds"] + a["start_seconds"])
        seed = run["seed"][method]
        rows.append(
            {
                "method": method,
                "chunks": a["chunks"],
                "seconds": round(a["seconds"], 1),
                "chunks_per_s": round(rate, 1),
                "vs_plain": round(rate / plain_rate, 2),
                "ray_start_seconds": round(a["start_seconds"], 1),
                "chunks_per_s_with_start": round(with_start, 1),
                "vs_plain_with_start": round(with_start / plain_rate, 2),
                "seed_seconds": round(seed["seconds"] + seed["start_seconds"], 1),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ray_ingest", description=__doc__.split("\n\n")[0])
    p.add_argument("--limit", type=int, default=2000, help="SciFact abstracts to index (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds the abstracts are split into")
    args = p.parse_args(argv)
    print(f"cpu: {cpu_info()['model']}, load average at start: {os.getloadavg()}", file=sys.stderr)
    run = throughput(args.limit, args.rounds)
    rows = summarise(run)
    for row in rows:
        print(json.dumps(row), flush=True)
    load = run["load_avg_during"]
    print(
        f"\nSciFact, first {args.limit} abstracts in {args.rounds} interleaved rounds; load average "
        f"{min(load):.1f}-{max(load):.1f}; largest vector difference to plain {run['max_vector_difference']:.1e}"
    )
    print_table(
        [
            "method",
            "chunks",
            "indexing s",
            "chunks/s",
            "vs plain",
            "Ray start s",
            "chunks/s with start",
            "vs plain with start",
            "seed alone s",
        ],
        [list(r.values())[:9] for r in rows],
    )
    write_result("ray-ingest", {**run, "results": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
