"""Search an index: dense, lexical (BM25) or both fused by reciprocal rank. The searches themselves are
the store's (`rag.store.base.Store`: FAISS and bm25s in the embedded store, Milvus in the Milvus store).

A question asked within some documents (`rag.scope.Scope`) is searched only among their chunks:
`scope_sources` names them from the index's document list, and the store filters inside each
search, so the top hits are the scope's best, never what is left of a global top-k.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

import numpy as np

from rag.config import RagConfig
from rag.scope import Scope
from rag.types import Hit

if TYPE_CHECKING:
    from rag.store.base import Store


def reciprocal_rank_fusion(
    rankings: list[list[tuple[int, float]]], *, k: int = 60, weights: Sequence[float] | None = None
) -> list[tuple[int, float]]:
    """Fuse ranked lists: score(d) = sum over lists of weight / (k + rank), rank from 1; best first.

    Ties keep the order in which ids first appear (dense list first).

    Example:
        >>> reciprocal_rank_fusion([[(1, .9), (2, .8)], [(2, 7.0), (3, 5.0)]], k=60)[0][0]
        2
    """
    weights = [1.0] * len(rankings) if weights is None else list(weights)
    if len(weights) != len(rankings):
        raise ValueError(f"need one weight per ranking ({len(rankings)}), got {len(weights)}")
    scores: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights):
        for rank, (doc, _) in enumerate(ranking, start=1):
            scores[doc] = scores.get(doc, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda kv: -kv[1])


def scope_sources(index: Store, scope: Scope | None) -> frozenset[str] | None:
    """The sources of the index's documents in `scope`; None for no scope or the empty scope
    (every document: the search is not filtered at all).

    Example:
        >>> scope_sources(index, parse_scope(type="pdf"))  # doctest: +SKIP
        frozenset({'reports/q1.pdf'})
    """
    if scope is None or scope.everything:
        return None
    return frozenset(scope.select(index.documents()))


def search(
    index: Store,
    query: str,
    query_vector: np.ndarray | None,
    *,
    config: RagConfig | None = None,
    top_k: int | None = None,
    sources: Collection[str] | None = None,
) -> list[Hit]:
    """The top hits for a query in the configured mode (`dense`, `bm25` or `hybrid`), best first.

    Every hit carries its dense cosine to the query (also for chunks found by BM25 alone) and its
    BM25 score (0 when BM25 did not find it), which the answer stage uses as evidence features.
    With `sources` (from `scope_sources`), only those documents' chunks are searched.
    """
    config = config or RagConfig()
    k = config.top_k if top_k is None else top_k  # not `top_k or ...`: top_k=0 must be refused
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"top_k must be >= 1, got {k!r}")
    n_candidates = max(config.candidates, k)
    dense: list[tuple[int, float]] = []
    if config.mode != "bm25":
        if query_vector is None:
            raise ValueError(f"{config.mode} search needs the question's vector, got None")
        dense = index.dense_search(query_vector, n_candidates, sources=sources)
    lexical = index.lexical_search(query, n_candidates, sources=sources) if config.mode != "dense" else []
    return fuse(index, dense, lexical, query_vector, config=config, top_k=k)


def fuse(
    index: Store,
    dense: list[tuple[int, float]],
    lexical: list[tuple[int, float]],
    query_vector: np.ndarray | None,
    *,
    config: RagConfig,
    top_k: int,
) -> list[Hit]:
    """The top `top_k` hits from the dense and BM25 rankings in the configured mode, with their
    chunks read from the store and each hit's dense cosine and BM25 score filled in."""
    if config.mode == "dense":
        ranked = dense
    elif config.mode == "bm25":
        ranked = lexical
    else:
        ranked = reciprocal_rank_fusion([dense, lexical], k=config.rrf_k, weights=(1.0, config.bm25_weight))
    ranked = ranked[:top_k]
    ids = [i for i, _ in ranked]
    chunks = index.chunks(ids)
    dense_scores = dict(dense)
    missing = [i for i in ids if i not in dense_scores]
    if missing and query_vector is not None:
        vectors = index.chunk_vectors(missing)
        for i, vec in vectors.items():
            dense_scores[i] = float(vec @ query_vector.reshape(-1))
    bm25_scores = dict(lexical)
    return [
        Hit(chunks[i], float(s), dense_scores.get(i, 0.0), bm25_scores.get(i, 0.0)) for i, s in ranked if i in chunks
    ]
