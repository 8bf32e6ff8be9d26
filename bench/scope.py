"""What asking within some documents costs: scoped searches against unscoped ones at 100k chunks.

    python -m bench.scope                      # the embedded store (exact FAISS at 100k, the default)
    python -m bench.scope --hnsw               # also the same vectors in an HNSW graph (built here),
                                               # with its recall within scopes against brute force
    python -m bench.scope --milvus             # also Milvus Lite

The stores hold about 100k chunks of bench/common.py's seeded synthetic documents (text sampled from
SciFact's word frequencies, clustered vectors), written through the real writers: the embedded one
is bench/query.py's (.cache/bench/synthetic-100k/), the Milvus Lite one bench/milvus.py's
(.cache/bench/milvus/100k/), each built on first use. `--hnsw` builds the default config's HNSW
graph over the embedded store's vectors in this process and searches it as the embedded store would.

Scopes: none, one document (a different one per question), 1% and 50% of the documents (drawn once,
seeded), each given as the document names the chat's picker sends. Each question is asked in the
four scopes one after another, so all see the same machine load. Timed per question, in ms:
`search` (`rag.retrieve.search` as a question runs it: the scope resolved to its documents, the
dense and lexical searches filtered inside, fusion, reading the hits' chunks), then its parts
again: `resolve` (`rag.retrieve.scope_sources`), `dense` and `bm25` (the store's searches of
`candidates` chunks, once the scope's chunk mask is built: the embedded store keeps the last one,
which a question's second search reuses). `first_ms` is the first scoped search of a loaded
index, which also checks each document's chunk id run (once per generation). Checked on every
question: each hit is in its scope, and a scope with at least k chunks gets k.
Results: bench/results/scope.json.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from bench.common import SyntheticCorpus, SyntheticEmbedder, percentiles, print_table, write_result
from rag.config import RagConfig

SCOPES = ("none", "1 document", "1%", "50%")
TIMED = ("search", "resolve", "dense", "bm25")


def scopes_for(sources: Sequence[str], n_questions: int, *, seed: int = 0) -> dict[str, list[list[str] | None]]:
    """For each of `SCOPES`, the documents of each question's scope (None: no scope)."""
    rng = np.random.default_rng(seed)
    one_percent = sorted(rng.choice(sources, max(1, len(sources) // 100), replace=False).tolist())
    half = sorted(rng.choice(sources, len(sources) // 2, replace=False).tolist())
    singles = rng.choice(sources, n_questions).tolist()
    return {
        "none": [None] * n_questions,
        "1 document": [[s] for s in singles],
        "1%": [one_percent] * n_questions,
        "50%": [half] * n_questions,
    }


def measure(store: Any, *, n_questions: int, warmup: int = 5) -> dict[str, Any]:
    """p50/p95 of each of `TIMED` per scope over `n_questions` questions (after `warmup`)."""
    from rag.retrieve import scope_sources, search
    from rag.scope import parse_scope

    config = RagConfig()
    k, n_candidates = config.top_k, config.candidates
    documents = [d.source for d in store.documents()]
    total = n_questions + warmup
    questions = SyntheticCorpus(seed=0).queries(total, n_docs=1000)
    vectors = SyntheticEmbedder(seed=0, topics=max(len(store) // 100, 200)).query_vectors(total)
    scopes = scopes_for(documents, total)
    times: dict[str, dict[str, list[float]]] = {s: {t: [] for t in TIMED} for s in SCOPES}
    first_ms = None
    for i, (q, vector) in enumerate(zip(questions, vectors)):
        for name in SCOPES:
            picked = scopes[name][i]
            scope = parse_scope(source=picked) if picked is not None else None
            t0 = time.perf_counter()
            hits = search(store, q, vector, config=config, top_k=k, sources=scope_sources(store, scope))
            t1 = time.perf_counter()
            sources = scope_sources(store, scope)
            t2 = time.perf_counter()
            dense = store.dense_search(vector, n_candidates, sources=sources)
            t3 = time.perf_counter()
            lexical = store.lexical_search(q, n_candidates, sources=sources)
            t4 = time.perf_counter()
            if first_ms is None and sources is not None:
                first_ms = (t1 - t0) * 1000
            _check(store, name, sources, dense, lexical, hits, k=k)
            if i >= warmup:
                for label, (a, b) in zip(TIMED, ((t0, t1), (t1, t2), (t2, t3), (t3, t4))):
                    times[name][label].append((b - a) * 1000)
    return {
        "chunks": len(store),
        "documents": len(documents),
        "questions": n_questions,
        "first_ms": round(first_ms or 0.0, 1),
        "scopes": {name: {t: percentiles(v) for t, v in times[name].items()} for name in SCOPES},
    }


def _check(store: Any, name: str, sources: Any, dense: list, lexical: list, hits: list, *, k: int) -> None:
    """Every hit is in its scope; a scope of at least k chunks gets k dense hits."""
    if sources is None:
        return
    found = {c.source for c in store.chunks([i for i, _ in dense + lexical]).values()}
    if not found <= sources or not {h.chunk.source for h in hits} <= sources:
        raise AssertionError(f"scope {name}: a hit outside the scope")
    if len(dense) < k and sum(len(store.document_chunks(s)) for s in list(sources)[:1]) >= k:
        raise AssertionError(f"scope {name}: {len(dense)} dense hits, fewer than k = {k}")


def embedded_store() -> Any:
    from bench.query import ensure_index, index_dir_for
    from rag.store import Index

    ensure_index("100k", None)
    return Index.load(index_dir_for("100k", None), config=RagConfig())


def with_hnsw(index: Any) -> float:
    """Replace the loaded embedded index's exact FAISS index with the default config's HNSW graph
    over the same vectors (as an index above `approximate_above` chunks has); the build seconds."""
    from rag.store import faiss_kind, new_faiss_index

    config = RagConfig()
    graph = new_faiss_index(faiss_kind(config.approximate_above + 1, config), config)
    started = time.perf_counter()
    for ids, vectors in index.vector_blocks():
        graph.add_with_ids(vectors, ids)
    index.faiss = graph
    return time.perf_counter() - started


def hnsw_recall(index: Any, *, n_queries: int = 50, k: int = 50) -> dict[str, Any]:
    """Recall@k against brute force over each scope's chunks, on the HNSW graph `with_hnsw` put in
    `index`: of the graph walk with the selector alone (efSearch as loaded), and of
    `dense_search_within` (what the store searches: exact below `HNSW_FILTER_ABOVE`, the walk
    above, exact again when it comes back short); with the unscoped walk's for reference."""
    import faiss as faiss_module

    from rag.store.subset import dense_search_within

    faiss: Any = faiss_module  # typed loosely, as in rag.store.subset: the SWIG stubs lack these classes

    faiss.omp_set_num_threads(1)
    ids, vectors = (np.concatenate(parts) for parts in zip(*index.vector_blocks()))
    size = int(ids.max()) + 1
    queries = SyntheticEmbedder(seed=0, topics=max(len(index) // 100, 200)).query_vectors(n_queries, seed=999)
    runs = {
        s: (e["first_chunk_id"], e["first_chunk_id"] + e["n_chunks"]) for s, e in index.manifest["documents"].items()
    }
    rng = np.random.default_rng(1)
    sources = sorted(runs)
    out: dict[str, Any] = {"k": k, "ef_search": faiss.downcast_index(index.faiss.index).hnsw.efSearch}
    for label, share in (("none", 1.0), ("1 document", 0.0), ("1%", 0.01), ("10%", 0.1), ("20%", 0.2), ("50%", 0.5)):
        walk, store, short = [], [], 0
        for q in queries:
            picked = sources if share == 1.0 else rng.choice(sources, max(1, int(share * len(sources))), replace=False)
            mask = np.zeros(size, dtype=bool)
            for source in picked:
                mask[slice(*runs[source])] = True
            allowed = np.flatnonzero(mask[ids])
            truth = set(ids[allowed[np.argsort(-(vectors[allowed] @ q))[:k]]].tolist())
            bits = np.packbits(mask, bitorder="little")
            params: Any = faiss.SearchParametersHNSW()
            params.sel = faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits))
            params.efSearch = out["ef_search"]
            _, found = index.faiss.search(q.reshape(1, -1), k, params=params)
            got = [int(i) for i in found[0] if i >= 0]
            short += len(got) < len(truth)
            walk.append(len(set(got) & truth) / len(truth))
            store.append(len({i for i, _ in dense_search_within(index.faiss, q, k, mask)} & truth) / len(truth))
        out[label] = {
            "walk": round(float(np.mean(walk)), 3),
            "store": round(float(np.mean(store)), 3),
            "walk_short": short,
        }
    return out


def milvus_store() -> Any:
    from bench.milvus import build, open_both

    build("100k")
    embedded, milvus = open_both("100k", RagConfig())
    embedded.close()
    return milvus


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.scope", description=__doc__.split("\n\n")[0])
    p.add_argument("--queries", type=int, default=200, help="questions per store (default: %(default)s)")
    p.add_argument("--hnsw", action="store_true", help="also search an HNSW graph over the same vectors")
    p.add_argument("--milvus", action="store_true", help="also Milvus Lite (needs the scale extra)")
    args = p.parse_args(argv)
    results: dict[str, Any] = {}
    index = embedded_store()
    results["embedded (exact)"] = measure(index, n_questions=args.queries)
    if args.hnsw:
        build_s = with_hnsw(index)
        results["embedded (HNSW)"] = {"graph_built_s": round(build_s, 1), **measure(index, n_questions=args.queries)}
        results["embedded (HNSW)"]["recall"] = recall = hnsw_recall(index)
        print(json.dumps(recall), flush=True)
    index.close()
    if args.milvus:
        store = milvus_store()
        results["Milvus Lite"] = measure(store, n_questions=args.queries)
        store.close()
    rows = []
    for store_name, r in results.items():
        base = r["scopes"]["none"]["search"]["p50"]
        for name in SCOPES:
            s = r["scopes"][name]
            rows.append(
                [
                    store_name,
                    name,
                    *[f"{s[t]['p50']:.2f} / {s[t]['p95']:.2f}" for t in TIMED],
                    f"{s['search']['p50'] / base:.2f}x",
                ]
            )
    print(f"\np50 / p95 ms per question, {args.queries} questions, ~100k chunks")
    print_table(["store", "scope", *TIMED, "search vs none (p50)"], rows)
    for store_name, r in results.items():
        print(f"{store_name}: {r['chunks']} chunks, {r['documents']} documents, first scoped search {r['first_ms']} ms")
    if "embedded (HNSW)" in results:
        rec = results["embedded (HNSW)"]["recall"]
        print(f"\nHNSW recall@{rec['k']} against brute force over each scope (efSearch {rec['ef_search']})")
        print_table(
            ["scope", "filtered graph walk", "walks short of k", "the store's search"],
            [[name, v["walk"], v["walk_short"], v["store"]] for name, v in rec.items() if isinstance(v, dict)],
        )
    write_result("scope", {"config": RagConfig().to_dict(), "results": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
