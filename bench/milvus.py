"""The Milvus store (Milvus Lite, in-process) against the embedded store, within one run.

    python -m bench.milvus                        # scifact, 5k, 100k
    python -m bench.milvus --parts scifact 5k     # some of them

Parts, each in its own process (peak RSS per part), stores cached in .cache/bench/milvus/<part>/:

- `scifact`: SciFact's 5,183 abstracts, embedded once with the default backend and written
  through both writers (`IndexWriter`, `MilvusWriter`): write seconds; nDCG@10 and recall@100 on
  its 300 test queries, searched as `rag eval --beir` searches (hybrid, depth 300, documents ranked
  by their best chunk, ir_measures); `RAG.ask` p50/p95; the project's RRF (`rag.retrieve.search`:
  dense and lexical searches fused in Python) against Milvus's `hybrid_search` with
  `RRFRanker(60)` over the same two fields, for quality (depth 300) and latency (a question's
  50 candidates, top 5); document-frequency lookups, the df collection against TEXT_MATCH counts.
- synthetic sizes (`5k`, `100k` chunks): bench/common.py's seeded corpus and vectors, written
  through both writers; per-stage latency (dense, bm25, fusion, answer, total) per question.

Every latency is measured alternating the two stores question by question, so both see the same
machine load; compare the ratios. Results: bench/results/milvus.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from bench.common import (
    ROOT,
    SCIFACT,
    SyntheticCorpus,
    SyntheticEmbedder,
    peak_rss_mb,
    percentiles,
    print_table,
    scifact_corpus,
    write_result,
)
from bench.query import parse_size
from rag.config import RagConfig

CACHE = ROOT / ".cache" / "bench" / "milvus"
STAGES = ("dense", "bm25", "fusion", "answer", "total")


def stores_for(part: str) -> tuple[str, str]:
    folder = CACHE / part
    return f"faiss:{folder / 'embedded'}", f"milvus:{folder / 'rag.db'}"


# ---------------------------------------------------------------------------------------------
# Building


def write_both(part: str, documents: Callable[[], Any], embedder: Any, config: RagConfig) -> dict[str, Any]:
    """Write the same embedded documents through both writers (reusing stores already built)."""
    from rag.ingest import backend_name, embed_documents
    from rag.store import UpdateStats
    from rag.store.locate import committed_manifest, open_writer

    specs = stores_for(part)
    if all(committed_manifest(s) for s in specs):
        return {"reused": [str(CACHE / part)]}
    shutil.rmtree(CACHE / part, ignore_errors=True)
    (CACHE / part).mkdir(parents=True)
    stats = UpdateStats()
    embedded = list(embed_documents(documents(), embedder, config=config, current={}, stats=stats))
    out: dict[str, Any] = {"documents": len(embedded), "embed_seconds": round(stats.embed_seconds, 1)}
    for spec, label in zip(specs, ("embedded", "milvus")):
        started = time.perf_counter()
        with open_writer(spec, config=config, rebuild=True) as writer:
            written = writer.apply(embedded, [], embed_backend=backend_name(embedder))
        out[f"{label}_write_seconds"] = round(time.perf_counter() - started, 1)
        out["chunks"] = written.n_chunks
    return out


def scifact_documents() -> Any:
    import hashlib

    from rag.types import Document

    for name, text in scifact_corpus().items():
        yield Document(name, text, hashlib.sha256(text.encode("utf-8")).hexdigest())


def build(part: str) -> dict[str, Any]:
    config = RagConfig()
    if part == "scifact":
        from rag.embed import Embedder

        return {"part": part, **write_both(part, scifact_documents, Embedder.load(), config)}
    from rag.chunk import chunk_document

    corpus = SyntheticCorpus(seed=0)
    target = parse_size(part)
    embedder = SyntheticEmbedder(seed=0, topics=max(target // 100, 200))
    sample = [
        len(chunk_document(d, embedder.tokenizer, max_tokens=200, overlap_sentences=1)) for d in corpus.documents(50)
    ]
    n_docs = max(1, round(target / np.mean(sample)))
    return {"part": part, **write_both(part, lambda: corpus.documents(n_docs), embedder, config)}


# ---------------------------------------------------------------------------------------------
# Measuring


def open_both(part: str, config: RagConfig) -> tuple[Any, Any]:
    from rag.store.locate import open_store

    return tuple(open_store(s, config=config) for s in stores_for(part))  # type: ignore[return-value]


def stage_times(store: Any, q: str, vector: np.ndarray, config: RagConfig) -> dict[str, float]:
    """Milliseconds of each stage of one question (as bench/query.py times them)."""
    from rag.answer import compose_answer
    from rag.retrieve import fuse

    k = max(config.top_k, config.answer_hits)
    t0 = time.perf_counter()
    dense = store.dense_search(vector, max(config.candidates, k))
    t1 = time.perf_counter()
    lexical = store.lexical_search(q, max(config.candidates, k))
    t2 = time.perf_counter()
    hits = fuse(store, dense, lexical, vector, config=config, top_k=k)
    t3 = time.perf_counter()
    compose_answer(q, vector, hits, store, config=config)
    t4 = time.perf_counter()
    return {s: (b - a) * 1000 for s, (a, b) in zip(STAGES, ((t0, t1), (t1, t2), (t2, t3), (t3, t4), (t0, t4)))}


def alternate(
    stores: Sequence[Any], qs: Sequence[str], vectors: np.ndarray, config: RagConfig, warmup: int = 5
) -> list[dict[str, Any]]:
    """Per-stage percentiles for each store, the stores taking turns question by question."""
    times: list[dict[str, list[float]]] = [{s: [] for s in STAGES} for _ in stores]
    for i, (q, v) in enumerate(zip(qs, vectors)):
        for store, out in zip(stores, times):
            ms = stage_times(store, q, v, config)
            if i >= warmup:
                for stage, value in ms.items():
                    out[stage].append(value)
    return [{s: percentiles(t[s]) for s in STAGES} for t in times]


def measure_synthetic(part: str, n_queries: int) -> dict[str, Any]:
    config = RagConfig()
    embedded, milvus = open_both(part, config)
    warmup = 5
    qs = SyntheticCorpus(seed=0).queries(n_queries + warmup, n_docs=1000)
    vectors = SyntheticEmbedder(seed=0, topics=max(len(embedded) // 100, 200)).query_vectors(len(qs))
    e, m = alternate((embedded, milvus), qs, vectors, config, warmup=warmup)
    out = {"part": part, "chunks": len(embedded), "queries": n_queries, "embedded": e, "milvus": m}
    out["df_lookup"] = df_lookups(milvus, qs[:20], text_match_terms=2 if len(milvus) > 20_000 else 6)
    out["peak_rss_mb"] = round(peak_rss_mb())
    embedded.close()
    milvus.close()
    return out


def df_lookups(milvus: Any, qs: Sequence[str], *, text_match_terms: int) -> dict[str, Any]:
    """Milliseconds per term to count the chunks holding it: the df collection (one query for a
    question's terms, on a store with an empty cache) against one TEXT_MATCH count query per term."""
    from rag.store.milvus import MilvusStore, term_key
    from rag.store.milvus_schema import live

    fresh = MilvusStore(milvus.store_spec, milvus.client, milvus.manifest, RagConfig())
    terms, started = 0, time.perf_counter()
    for q in qs:
        keys = fresh.lexical_query(q)[0]
        terms += len(set(keys))
    df_ms = (time.perf_counter() - started) * 1000 / max(terms, 1)
    words = [t for q in qs for t in fresh.lexical_query(q)[0]][:text_match_terms]
    started = time.perf_counter()
    for term in words:
        flt = f"TEXT_MATCH(terms, '{term_key(term)}') and {live(milvus.generation)}"
        milvus.client.query(milvus.names.chunks, filter=flt, output_fields=["count(*)"])
    tm_ms = (time.perf_counter() - started) * 1000 / max(len(words), 1)
    return {
        "df_collection_ms_per_term": round(df_ms, 2),
        "text_match_ms_per_term": round(tm_ms, 1),
        "text_match_terms": len(words),
    }


def measure_scifact(depth: int = 100) -> dict[str, Any]:
    from eval.datasets import load_beir
    from eval.metrics import beir_metrics
    from eval.runner import _doc_run as doc_run  # how `rag eval --beir` ranks documents
    from rag.embed import Embedder

    config = RagConfig()
    embedder = Embedder.load()
    embedded, milvus = open_both("scifact", config)
    dataset = load_beir(SCIFACT)
    qids = list(dataset.queries)
    vectors = embedder.encode_queries([dataset.queries[q] for q in qids])
    out: dict[str, Any] = {"part": "scifact", "chunks": len(embedded), "queries": len(qids)}
    runs, hybrid_run, search_ms = quality_runs(embedded, milvus, dataset.queries, qids, vectors, config, depth, doc_run)
    for name, run in (*zip(("embedded", "milvus"), runs), ("milvus_hybrid_search", hybrid_run)):
        scores = beir_metrics(run, dataset.qrels)
        out[name] = {k: round(scores[k].score, 4) for k in ("ndcg@10", "recall@100")}
    out["search_depth_300_ms"] = search_ms
    out["fusion_latency"] = fusion_latency(milvus, [dataset.queries[q] for q in qids], vectors, config)
    out["ask"] = ask_latency((embedded, milvus), embedder, [dataset.queries[q] for q in qids[:100]], config)
    out["df_lookup"] = df_lookups(milvus, [dataset.queries[q] for q in qids[:20]], text_match_terms=6)
    out["peak_rss_mb"] = round(peak_rss_mb())
    embedded.close()
    milvus.close()
    return out


def quality_runs(
    embedded: Any,
    milvus: Any,
    queries: dict[str, str],
    qids: list[str],
    vectors: np.ndarray,
    config: RagConfig,
    depth: int,
    doc_run: Any,
) -> tuple[list[dict[str, dict[str, float]]], dict[str, dict[str, float]], dict[str, Any]]:
    """BEIR runs at depth `depth` (top_k 3 * depth chunks, as `run_beir`) from both stores through
    `rag.retrieve.search`, and from Milvus's hybrid_search; each search's milliseconds."""
    from rag.retrieve import search

    runs: list[dict[str, dict[str, float]]] = [{}, {}]
    hybrid: dict[str, dict[str, float]] = {}
    ms: list[list[float]] = [[], [], []]
    for qid, vector in zip(qids, vectors):
        query = queries[qid]
        for i, store in enumerate((embedded, milvus)):
            t0 = time.perf_counter()
            hits = search(store, query, vector, config=config, top_k=depth * 3)
            ms[i].append((time.perf_counter() - t0) * 1000)
            runs[i][qid] = doc_run(((h.chunk.source, h.score) for h in hits), depth)
        t0 = time.perf_counter()
        fused = hybrid_search(milvus, query, vector, n_candidates=depth * 3, top_k=depth * 3)
        ms[2].append((time.perf_counter() - t0) * 1000)
        sources = {i: c.source for i, c in milvus.chunks([i for i, _ in fused]).items()}
        hybrid[qid] = doc_run(((sources[i], s) for i, s in fused if i in sources), depth)
    labels = ("embedded", "milvus", "milvus_hybrid_search_ids_only")
    return runs, hybrid, {label: percentiles(m) for label, m in zip(labels, ms)}


def hybrid_search(
    milvus: Any, query: str, vector: np.ndarray, *, n_candidates: int, top_k: int
) -> list[tuple[int, float]]:
    """Milvus's own fusion: one `hybrid_search` call, dense and sparse requests over the
    generation's rows, RRFRanker(60). Returns (chunk id, fused score) only: the pipeline would
    still read the hits' chunks, cosines and BM25 scores afterwards."""
    from pymilvus import AnnSearchRequest, RRFRanker

    _, weights = milvus.lexical_query(query)
    requests = [
        AnnSearchRequest(
            [np.asarray(vector, dtype=np.float32).tolist()],
            "vector",
            {"metric_type": "IP"},
            n_candidates,
            expr=milvus.live_filter,
        )
    ]
    if weights:
        requests.append(
            AnnSearchRequest([weights], "sparse", {"metric_type": "IP"}, n_candidates, expr=milvus.live_filter)
        )
    found = milvus.client.hybrid_search(milvus.names.chunks, requests, RRFRanker(60), limit=top_k, output_fields=["id"])
    return [(int(h["id"]), float(h["distance"])) for h in found[0]]


def fusion_latency(milvus: Any, qs: Sequence[str], vectors: np.ndarray, config: RagConfig) -> dict[str, Any]:
    """A question's retrieval (50 candidates, top 5 hits with chunks): the project's RRF
    (`rag.retrieve.search`) against hybrid_search plus reading the hits' chunks, alternating."""
    from rag.retrieve import search

    ms: list[list[float]] = [[], []]
    k = max(config.top_k, config.answer_hits)
    for q, v in zip(qs, vectors):
        t0 = time.perf_counter()
        search(milvus, q, v, config=config, top_k=k)
        t1 = time.perf_counter()
        fused = hybrid_search(milvus, q, v, n_candidates=max(config.candidates, k), top_k=k)
        milvus.chunks([i for i, _ in fused])
        t2 = time.perf_counter()
        ms[0].append((t1 - t0) * 1000)
        ms[1].append((t2 - t1) * 1000)
    return {"project_rrf": percentiles(ms[0]), "hybrid_search_plus_chunks": percentiles(ms[1])}


def ask_latency(stores: Sequence[Any], embedder: Any, qs: Sequence[str], config: RagConfig) -> dict[str, Any]:
    """`RAG.ask` milliseconds through each store, alternating."""
    from rag.pipeline import RAG

    rags = [RAG(store, embedder, config) for store in stores]
    ms: list[list[float]] = [[] for _ in rags]
    for i, q in enumerate(qs):
        for rag, out in zip(rags, ms):
            t0 = time.perf_counter()
            rag.ask(q)
            if i >= 5:
                out.append((time.perf_counter() - t0) * 1000)
    return {label: percentiles(m) for label, m in zip(("embedded", "milvus"), ms)}


# ---------------------------------------------------------------------------------------------


def child(args: list[str]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "bench.milvus", *args], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"bench.milvus {' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(builds: list[dict[str, Any]], results: list[dict[str, Any]]) -> None:
    for r in results:
        if r["part"] == "scifact":
            print(f"\nSciFact ({r['chunks']} chunks, {r['queries']} queries): quality")
            print_table(
                ["store / fusion", "nDCG@10", "recall@100"],
                [[k, r[k]["ndcg@10"], r[k]["recall@100"]] for k in ("embedded", "milvus", "milvus_hybrid_search")],
            )
            a = r["ask"]
            print(f"RAG.ask p50 ms: embedded {a['embedded']['p50']:.1f}, milvus {a['milvus']['p50']:.1f}")
            print(f"fusion p50 ms: {json.dumps(r['fusion_latency'])}")
        else:
            print(f"\n{r['part']} ({r['chunks']} chunks): p50 / p95 ms per stage")
            print_table(
                ["store", *STAGES],
                [
                    [s, *[f"{r[s][st]['p50']:.2f} / {r[s][st]['p95']:.2f}" for st in STAGES]]
                    for s in ("embedded", "milvus")
                ],
            )
        print(f"df lookups: {json.dumps(r['df_lookup'])}")
    print(json.dumps(builds))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.milvus", description=__doc__.split("\n\n")[0])
    p.add_argument("--parts", nargs="+", default=["scifact", "5k", "100k"], help="scifact and synthetic sizes")
    p.add_argument("--queries", type=int, default=200, help="questions per synthetic size (default: %(default)s)")
    p.add_argument("--child", nargs=2, metavar=("WHAT", "PART"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        what, part = args.child
        if what == "build":
            result = build(part)
        else:
            result = measure_scifact() if part == "scifact" else measure_synthetic(part, args.queries)
        print(json.dumps(result))
        return 0
    builds, results = [], []
    for part in args.parts:
        builds.append(child(["--child", "build", part]))
        print(json.dumps(builds[-1]), flush=True)
        results.append(child(["--child", "measure", part, "--queries", str(args.queries)]))
        print(json.dumps(results[-1]), flush=True)
    report(builds, results)
    write_result("milvus", {"config": RagConfig().to_dict(), "builds": builds, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
