"""Index types that scale: exact FAISS up to `approximate_above` chunks, HNSW above it, chosen at
build time, recorded in the manifest, rebuilt from the chunk store when documents are removed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

import rag.store
from rag.config import RagConfig
from rag.pipeline import build_index
from rag.store import FLAT, Index, faiss_kind, new_faiss_index, read_manifest

TOPICS = {"alpha.txt": "glaciers", "beta.txt": "lighthouses", "gamma.txt": "beekeeping"}
# Three documents of two chunks each: six chunks, over this threshold.
SMALL_THRESHOLD = RagConfig(approximate_above=3, hnsw_m=8)


def _topic_text(topic: str, n: int = 12) -> str:
    return " ".join(
        f"Fact {i} about {topic}: the {topic} survey recorded observation number {i * 7} "
        f"in the northern district during season {i}."
        for i in range(n)
    )


def _write(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, topic in files.items():
        (root / name).write_text(_topic_text(topic), encoding="utf-8")
    return root


def _faiss_ids(index: Index) -> set[int]:
    import faiss

    return {int(i) for i in faiss.vector_to_array(index.faiss.id_map)}


def _live_chunks(index_dir: Path, generation: int) -> dict[int, str]:
    db = sqlite3.connect(str(index_dir / rag.store.DB))
    try:
        return dict(
            db.execute(
                "SELECT id, source FROM chunks WHERE gen_added <= ? AND (gen_removed IS NULL OR gen_removed > ?)",
                (generation, generation),
            )
        )
    finally:
        db.close()


def _inner(index: Index):  # the index inside the IndexIDMap2
    import faiss

    return faiss.downcast_index(index.faiss.index)


def _dense_sources(index: Index, embedder, query: str) -> list[str]:
    vector = embedder.encode_queries([query])[0]
    ids = [i for i, _ in index.dense_search(vector, 3)]
    return [c.source for c in (index.chunks(ids)[i] for i in ids)]


def test_faiss_kind_follows_the_threshold():
    config = RagConfig(approximate_above=100, hnsw_m=16)
    assert faiss_kind(100, config) == FLAT
    assert faiss_kind(101, config) == "IndexIDMap2(IndexHNSWFlat,M=16,IP)"
    assert faiss_kind(10**6, RagConfig()) != FLAT  # the default threshold is below a million chunks
    with pytest.raises(ValueError, match="approximate_above must be >= 1, got 0"):
        RagConfig(approximate_above=0)


def test_hnsw_is_chosen_above_the_threshold_and_recorded(tmp_path, embedder):
    import faiss

    corpus = _write(tmp_path / "docs", TOPICS)
    build_index([corpus], index_dir=tmp_path / "exact", embedder=embedder)
    build_index([corpus], index_dir=tmp_path / "hnsw", embedder=embedder, config=SMALL_THRESHOLD)

    assert read_manifest(tmp_path / "exact")["faiss_index"] == FLAT
    manifest = read_manifest(tmp_path / "hnsw")
    assert manifest["n_chunks"] > SMALL_THRESHOLD.approximate_above
    assert manifest["faiss_index"] == "IndexIDMap2(IndexHNSWFlat,M=8,IP)"
    index = Index.load(tmp_path / "hnsw", config=SMALL_THRESHOLD.replace(hnsw_ef_search=77))
    assert isinstance(_inner(index), faiss.IndexHNSWFlat)
    assert _inner(index).hnsw.efSearch == 77  # the search beam comes from the reader's config
    assert _inner(index).metric_type == faiss.METRIC_INNER_PRODUCT
    assert _faiss_ids(index) == set(_live_chunks(tmp_path / "hnsw", index.generation))
    assert _dense_sources(index, embedder, "How many glaciers did the survey record?")[0] == "alpha.txt"
    index.close()


def test_hnsw_survives_an_incremental_update_with_a_removal(tmp_path, embedder):
    docs = tmp_path / "docs"
    index_dir = tmp_path / "index"
    _write(docs, TOPICS)
    build_index([docs], index_dir=index_dir, embedder=embedder, config=SMALL_THRESHOLD)
    first = read_manifest(index_dir)

    (docs / "beta.txt").unlink()  # removed: HNSW cannot remove_ids, so the graph is rebuilt
    _write(docs, {"delta.txt": "volcanoes"})
    report = build_index([docs], index_dir=index_dir, embedder=embedder, config=SMALL_THRESHOLD)
    assert report.stats.removed == ["beta.txt"] and report.stats.added == ["delta.txt"]
    assert report.stats.chunks_embedded == 2  # only the new document; the rest came from the store

    manifest = read_manifest(index_dir)
    assert manifest["generation"] == first["generation"] + 1
    assert manifest["faiss_index"] == first["faiss_index"] != FLAT
    index = Index.load(index_dir, config=SMALL_THRESHOLD)
    live = _live_chunks(index_dir, index.generation)
    assert _faiss_ids(index) == set(live) == {int(i) for i in index.bm25_ids}
    assert "beta.txt" not in set(live.values())
    assert "beta.txt" not in _dense_sources(index, embedder, "Which lighthouses did the survey record?")
    assert _dense_sources(index, embedder, "How many volcanoes did the survey record?")[0] == "delta.txt"
    index.close()
    # The old generation's files are gone; only the committed ones are left.
    assert {p.name for p in index_dir.iterdir() if p.name.startswith(("vectors-", "bm25-"))} == set(
        manifest["files"].values()
    )

    _write(docs, {"epsilon.txt": "orchards"})  # add only: the graph is extended, not rebuilt
    build_index([docs], index_dir=index_dir, embedder=embedder, config=SMALL_THRESHOLD)
    index = Index.load(index_dir, config=SMALL_THRESHOLD)
    assert _faiss_ids(index) == set(_live_chunks(index_dir, index.generation))
    assert _dense_sources(index, embedder, "How many orchards did the survey record?")[0] == "epsilon.txt"
    index.close()


def test_crossing_the_threshold_switches_the_index_kind(tmp_path, embedder):
    docs = tmp_path / "docs"
    index_dir = tmp_path / "index"
    config = RagConfig(approximate_above=5, hnsw_m=8)
    _write(docs, {"alpha.txt": "glaciers", "beta.txt": "lighthouses"})  # four chunks: exact
    build_index([docs], index_dir=index_dir, embedder=embedder, config=config)
    assert read_manifest(index_dir)["faiss_index"] == FLAT

    _write(docs, {"gamma.txt": "beekeeping"})  # six chunks: HNSW, built from the stored vectors
    build_index([docs], index_dir=index_dir, embedder=embedder, config=config)
    assert read_manifest(index_dir)["faiss_index"] != FLAT

    (docs / "gamma.txt").unlink()  # back to four: exact again
    build_index([docs], index_dir=index_dir, embedder=embedder, config=config)
    manifest = read_manifest(index_dir)
    assert manifest["faiss_index"] == FLAT
    index = Index.load(index_dir, config=config)
    assert _faiss_ids(index) == set(_live_chunks(index_dir, index.generation))
    assert index.faiss.ntotal == manifest["n_chunks"] == 4
    index.close()


def _clustered_vectors(n: int, dim: int, *, seed: int, topics: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` seeded unit vectors around `topics` centres (as real embeddings cluster), and the
    centres' generator so queries can be drawn from the same space."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((topics, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)

    def draw(count: int, rng: np.random.Generator) -> np.ndarray:
        x = centres[rng.integers(0, topics, count)] + 0.8 * rng.standard_normal((count, dim)).astype(
            np.float32
        ) / np.sqrt(dim)
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    return draw(n, rng), draw(200, np.random.default_rng(seed + 1))


def tie_tolerant_recall(
    found: np.ndarray, exact_scores: np.ndarray, vectors: np.ndarray, queries: np.ndarray, k: int, eps: float = 1e-5
) -> float:
    """Share of the approximate top-k whose true score reaches the exact k-th score (so a result
    that ties with the k-th neighbour counts as found, whatever its id)."""
    hits = 0
    for q, ids, kth in zip(queries, found, exact_scores[:, k - 1]):
        ids = ids[ids >= 0]
        hits += int(((vectors[ids] @ q) >= kth - eps).sum())
    return hits / (len(queries) * k)


@pytest.mark.slow
def test_hnsw_recall_at_10_against_exact_search():
    import faiss

    config = RagConfig(approximate_above=1)  # the default M, efConstruction and efSearch
    vectors, queries = _clustered_vectors(20_000, 384, seed=7, topics=200)
    ids = np.arange(1000, 1000 + len(vectors), dtype=np.int64)  # ids unlike row numbers, as in the store
    exact = new_faiss_index(FLAT, config)
    approx = new_faiss_index(faiss_kind(len(vectors), config), config)
    for index in (exact, approx):
        index.add_with_ids(vectors, ids)
    exact_scores, exact_ids = exact.search(queries, 10)
    _, approx_ids = approx.search(queries, 10)

    recall = tie_tolerant_recall(approx_ids - 1000, exact_scores, vectors, queries, 10)
    assert recall >= 0.95, f"HNSW recall@10 {recall:.3f} < 0.95 at efSearch={config.hnsw_ef_search}"
    # The comparison itself can fail: a deliberately starved search finds far less.
    faiss.downcast_index(approx.index).hnsw.efSearch = 1
    _, starved = approx.search(queries, 10)
    assert tie_tolerant_recall(starved - 1000, exact_scores, vectors, queries, 10) < recall
    assert tie_tolerant_recall(exact_ids - 1000, exact_scores, vectors, queries, 10) == 1.0
