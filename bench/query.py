"""Query latency per stage at four corpus sizes, and HNSW recall against exact search.

    python -m bench.query                                   # seed, scifact, 100k
    python -m bench.query --sizes 1m                        # by hand: builds a 1M-chunk index once
    python -m bench.query --scifact-index .cache/eval/scifact/index

Sizes: `seed` (the committed seed article), `scifact` (SciFact's 5,183 abstracts, an existing index
reused with --scifact-index or built into .cache/bench/), and synthetic sizes such as `100k` and
`1m` (chunks): SYNTHETIC text sampled from SciFact's word frequencies and SYNTHETIC seeded
clustered vectors (bench/common.py), written through the real `IndexWriter` (chunking, SQLite,
FAISS, BM25) into .cache/bench/synthetic-<size>/ and reused on later runs. The synthetic sizes use
the default config, so 100k gets the exact index and 1m the HNSW one (`approximate_above`).

Stages, each timed per question after warm-up: `embed` (the real model on the question text),
`dense` (FAISS), `bm25`, `fusion` (RRF plus reading the hits' chunks: `rag.retrieve.fuse`),
`answer` (`rag.answer.compose_answer`) and `total` (their sum). For seed and SciFact `ask` is also
the measured `RAG.ask` wall time. At synthetic sizes the dense query vector is drawn from the
synthetic space (the real model's vector would match nothing there).
Each size runs in its own process, so peak RSS is per size. Results: bench/results/query.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import (
    ROOT,
    SCIFACT,
    SEED_DIR,
    SyntheticCorpus,
    SyntheticEmbedder,
    peak_rss_mb,
    percentiles,
    print_table,
    scifact_corpus,
    write_result,
)
from rag.config import RagConfig

STAGES = ("embed", "dense", "bm25", "fusion", "answer", "total")
TARGETS = {
    "total_p50_ms_seed_scifact": 50,
    "dense_p50_ms_1m": 5,
    "recall_at_10": 0.95,
    "bm25_p50_ms_1m": 30,
    "rss_gb_1m": 4,
}
CACHE = ROOT / ".cache" / "bench"


def parse_size(size: str) -> int:
    s = size.lower()
    return int(float(s[:-1]) * (1_000_000 if s.endswith("m") else 1_000)) if s[-1] in "km" else int(s)


def current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# ---------------------------------------------------------------------------------------------
# Building the indexes


def build_synthetic(size: str, index_dir: Path) -> dict[str, Any]:
    """Write about `size` chunks of synthetic documents through the real IndexWriter."""
    from rag.chunk import chunk_document
    from rag.ingest import update_index
    from rag.store import IndexWriter

    target = parse_size(size)
    corpus = SyntheticCorpus(seed=0)
    embedder = SyntheticEmbedder(seed=0, topics=max(target // 100, 200))
    sample = [
        len(chunk_document(d, embedder.tokenizer, max_tokens=200, overlap_sentences=1)) for d in corpus.documents(50)
    ]
    n_docs = max(1, round(target / np.mean(sample)))
    started = time.perf_counter()
    with IndexWriter(index_dir, RagConfig(), rebuild=True) as writer:
        stats = update_index(writer, corpus.documents(n_docs), [], embedder=embedder)
    return {
        "size": size,
        "documents": n_docs,
        "chunks": stats.n_chunks,
        "build_seconds": round(time.perf_counter() - started, 1),
        "build_peak_rss_mb": round(peak_rss_mb()),
    }


def build_scifact(index_dir: Path) -> dict[str, Any]:
    import tempfile

    from bench.ingest import write_docs
    from rag.embed import Embedder
    from rag.pipeline import build_index

    with tempfile.TemporaryDirectory(prefix="bench-scifact-") as tmp:
        docs = write_docs(scifact_corpus(), Path(tmp) / "docs")
        started = time.perf_counter()
        report = build_index([docs], index_dir=index_dir, embedder=Embedder.load())
    return {
        "size": "scifact",
        "chunks": report.stats.n_chunks,
        "build_seconds": round(time.perf_counter() - started, 1),
    }


def index_dir_for(size: str, scifact_index: str | None) -> Path:
    if size == "seed":
        return CACHE / "seed"
    if size == "scifact":
        return Path(scifact_index) if scifact_index else CACHE / "scifact" / "index"
    return CACHE / f"synthetic-{size.lower()}"


def ensure_index(size: str, scifact_index: str | None) -> dict[str, Any]:
    from rag.store import read_manifest

    index_dir = index_dir_for(size, scifact_index)
    if read_manifest(index_dir) is not None:
        return {"size": size, "reused": str(index_dir)}
    if size == "seed":
        from rag.embed import Embedder
        from rag.pipeline import build_index

        build_index([SEED_DIR], index_dir=index_dir, embedder=Embedder.load())
        return {"size": size, "built": str(index_dir)}
    if size == "scifact":
        return build_scifact(index_dir)
    return build_synthetic(size, index_dir)


# ---------------------------------------------------------------------------------------------
# Measuring


def questions(size: str, n: int) -> list[str]:
    if size == "seed":
        lines = (ROOT / "eval" / "data" / "seed_qa.jsonl").read_text().splitlines()
        qs = [json.loads(line)["question"] for line in lines if line]
    elif size == "scifact":
        qs = [json.loads(line)["text"] for line in (SCIFACT / "queries.jsonl").read_text().splitlines() if line]
    else:
        return SyntheticCorpus(seed=0).queries(n, n_docs=1000)
    return [qs[i % len(qs)] for i in range(n)]


def measure(size: str, index_dir: Path, n_queries: int, warmup: int = 5) -> dict[str, Any]:
    """Latency percentiles per stage over `n_queries` questions after `warmup` ones on the index at
    `index_dir`, with its load time and memory; for seed and SciFact also `RAG.ask`'s."""
    from rag.embed import Embedder
    from rag.pipeline import RAG
    from rag.store import Index

    config = RagConfig()
    embedder = Embedder.load()
    before = current_rss_mb()
    started = time.perf_counter()
    index = Index.load(index_dir, config=config)
    load_s = time.perf_counter() - started
    index_rss = current_rss_mb() - before
    synthetic = size not in ("seed", "scifact")
    qs = questions(size, n_queries + warmup)
    synthetic_vectors = (
        SyntheticEmbedder(seed=0, topics=max(len(index) // 100, 200)).query_vectors(len(qs)) if synthetic else None
    )
    times = _stage_times(index, embedder, config, qs, synthetic_vectors, warmup=warmup)
    out: dict[str, Any] = {
        "size": size,
        "synthetic": synthetic,
        "chunks": len(index),
        "faiss_index": index.manifest.get("faiss_index"),
        "queries": n_queries,
        "index_load_s": round(load_s, 2),
        "index_rss_mb": round(index_rss),
        **{s: percentiles(v) for s, v in times.items()},
    }
    if not synthetic:
        out["ask"] = percentiles(_ask_times(RAG(index, embedder, config), qs)[warmup:])
    out["peak_rss_mb"] = round(peak_rss_mb())
    index.close()
    return out


def _stage_times(
    index: Any, embedder: Any, config: RagConfig, qs: Sequence[str], synthetic_vectors: Any, *, warmup: int
) -> dict[str, list[float]]:
    """Milliseconds of each of `STAGES` per question of `qs` but the first `warmup`; the dense
    query vector is `synthetic_vectors[i]` when given (the model's is still computed and timed)."""
    from rag.answer import compose_answer
    from rag.retrieve import fuse

    k = max(config.top_k, config.answer_hits)
    n_candidates = max(config.candidates, k)
    times: dict[str, list[float]] = {s: [] for s in STAGES}
    for i, q in enumerate(qs):
        t0 = time.perf_counter()
        vector = embedder.encode_queries([q])[0]
        t1 = time.perf_counter()
        if synthetic_vectors is not None:
            vector = synthetic_vectors[i]
        dense = index.dense_search(vector, n_candidates)
        t2 = time.perf_counter()
        lexical = index.lexical_search(q, n_candidates)
        t3 = time.perf_counter()
        hits = fuse(index, dense, lexical, vector, config=config, top_k=k)
        t4 = time.perf_counter()
        compose_answer(q, vector, hits, index, config=config)
        t5 = time.perf_counter()
        if i >= warmup:
            for stage, (a, b) in zip(STAGES, ((t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5), (t0, t5))):
                times[stage].append((b - a) * 1000)
    return times


def _ask_times(rag: Any, qs: Sequence[str]) -> list[float]:
    """Milliseconds of `rag.ask` per question of `qs`."""
    asks = []
    for q in qs:
        t0 = time.perf_counter()
        rag.ask(q)
        asks.append((time.perf_counter() - t0) * 1000)
    return asks


def hnsw_recall(
    index_dir: Path, *, n_queries: int = 200, ef_values: Sequence[int] = (16, 32, 64, 128, 256, 512, 1024)
) -> dict[str, Any]:
    """Recall@10 (tie-tolerant) and single-query search p50 of HNSW against exact search on the
    index's own stored vectors, for each efSearch; the HNSW graph is the index's own when it has
    one, else built here with the default config."""
    import faiss

    from rag.store import FLAT, Index, faiss_kind, new_faiss_index, set_ef_search

    config = RagConfig()
    index = Index.load(index_dir, config=config)
    n = len(index)
    vectors = np.empty((n, config.model_dim), dtype=np.float32)
    ids = np.empty(n, dtype=np.int64)
    k = 0
    for block_ids, block in index.vector_blocks():
        ids[k : k + len(block_ids)], vectors[k : k + len(block_ids)] = block_ids, block
        k += len(block_ids)
    exact = faiss.IndexFlatIP(config.model_dim)
    exact.add(vectors)
    queries = SyntheticEmbedder(seed=0, topics=max(n // 100, 200)).query_vectors(n_queries, seed=999)
    exact_scores, _ = exact.search(queries, 10)
    del exact
    built = 0.0
    if index.manifest.get("faiss_index", FLAT) != FLAT:
        approx = index.faiss
    else:
        approx = new_faiss_index(faiss_kind(config.approximate_above + 1, config), config)
        started = time.perf_counter()
        approx.add_with_ids(vectors, ids)
        built = time.perf_counter() - started
    position = {int(c): i for i, c in enumerate(ids)}
    faiss.omp_set_num_threads(1)  # as rag.retrieve.dense_search searches
    rows = []
    for ef in ef_values:
        set_ef_search(approx, ef)
        hits, lat = 0, []
        for q, kth in zip(queries, exact_scores[:, 9]):
            t0 = time.perf_counter()
            _, found = approx.search(q.reshape(1, -1), 10)
            lat.append((time.perf_counter() - t0) * 1000)
            rows_found = [position[int(c)] for c in found[0] if c >= 0]
            hits += int(((vectors[rows_found] @ q) >= kth - 1e-5).sum())
        rows.append({"ef_search": ef, "recall@10": round(hits / (10 * len(queries)), 4), **percentiles(lat)})
    index.close()
    return {
        "chunks": n,
        "hnsw_M": config.hnsw_m,
        "ef_construction": config.hnsw_ef_construction,
        "graph_built_here_s": round(built, 1),
        "sweep": rows,
    }


# ---------------------------------------------------------------------------------------------


def child(args: list[str]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "bench.query", *args], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"bench.query {' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.query", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--sizes",
        nargs="+",
        default=["seed", "scifact", "100k"],
        help="seed, scifact and synthetic chunk counts such as 100k or 1m (default: %(default)s)",
    )
    p.add_argument("--scifact-index", help="an existing SciFact index folder to reuse (read only)")
    p.add_argument("--queries", type=int, default=200, help="questions per size (default: %(default)s)")
    p.add_argument("--no-recall", action="store_true", help="skip the HNSW recall sweep at synthetic sizes")
    p.add_argument("--tag", default="", help="suffix of the result file: bench/results/query<tag>.json")
    p.add_argument("--child", nargs=2, metavar=("WHAT", "SIZE"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        what, size = args.child
        index_dir = index_dir_for(size, args.scifact_index)
        result = {
            "build": lambda: ensure_index(size, args.scifact_index),
            "measure": lambda: measure(size, index_dir, args.queries),
            "recall": lambda: hnsw_recall(index_dir),
        }[what]()
        print(json.dumps(result))
        return 0
    extra = ["--queries", str(args.queries)] + (["--scifact-index", args.scifact_index] if args.scifact_index else [])
    results, builds, recalls = [], [], {}
    for size in args.sizes:
        builds.append(child(["--child", "build", size, *extra]))
        print(json.dumps(builds[-1]), flush=True)
        results.append(child(["--child", "measure", size, *extra]))
        print(json.dumps(results[-1]), flush=True)
        if results[-1]["synthetic"] and not args.no_recall:
            recalls[size] = child(["--child", "recall", size, *extra])
            print(json.dumps(recalls[size]), flush=True)
    rows = []
    for r in results:
        label = f"{r['size']} (synthetic text + vectors)" if r["synthetic"] else r["size"]
        rows.append(
            [
                label,
                r["chunks"],
                r["faiss_index"].replace("IndexIDMap2(", "").rstrip(")"),
                *[f"{r[s]['p50']:.2f} / {r[s]['p95']:.2f}" for s in STAGES],
                f"{r['ask']['p50']:.1f} / {r['ask']['p95']:.1f}" if "ask" in r else "-",
                r["peak_rss_mb"],
            ]
        )
    print(f"\np50 / p95 ms per stage, {args.queries} questions per size")
    print_table(["corpus", "chunks", "faiss", *STAGES, "RAG.ask", "peak RSS MiB"], rows)
    for size, rec in recalls.items():
        print(
            f"\nHNSW vs exact, {size} ({rec['chunks']} chunks, M={rec['hnsw_M']}, efConstruction="
            f"{rec['ef_construction']}), single-query search"
        )
        print_table(
            ["efSearch", "recall@10 (>= 0.95)", "p50 ms", "p95 ms"],
            [[s["ef_search"], s["recall@10"], s["p50"], s["p95"]] for s in rec["sweep"]],
        )
    write_result(
        f"query{args.tag}",
        {
            "targets": TARGETS,
            "config": RagConfig().to_dict(),
            "builds": builds,
            "results": results,
            "hnsw_recall": recalls,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
