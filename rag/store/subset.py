"""Searching only some documents of the embedded store (a question's scope, `rag.scope`), inside
the search: FAISS with an `IDSelector`, bm25s with a weight mask, so a scope of one small document
over a large index still gets its k best chunks, never the scope's share of a global top-k.

Which chunks a document has: a writer inserts a document's chunks in one statement under the index
lock, so their ids (SQLite AUTOINCREMENT) are one run; `ChunkRanges` reads each document's first
and last id once per loaded generation (one grouped query: ~50 ms at 100k chunks) and turns a set
of documents into a mask over chunk ids in a few milliseconds. A document whose ids are not one run
(none is written that way) has them listed instead.

How each vector index honours the selector in faiss-cpu 1.15.1 (measured on 100k clustered vectors,
bench/scope.py, BENCHMARKS-style notes in the module's tests):
- `IndexIDMap2(IndexFlatIP)`: exact; non-members are skipped before their inner product is
  computed, so a small scope costs less than an unscoped search.
- `IndexIDMap2(IndexHNSWFlat)`: results are only members, but the graph walk keeps visiting
  non-members and stops after `efSearch` steps, so a scope of 1% of the chunks gets a fraction of
  its k (recall@50 0.29) and one document often nothing. So an HNSW index is searched with the
  selector only when the scope is large (`HNSW_FILTER_ABOVE` of the chunks), with a widened beam,
  and any search that comes back short is redone exactly over the graph's stored vectors with the
  same selector (`IndexHNSWFlat.storage`, an IndexFlat: exact, cost proportional to the index).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Collection
from typing import Any

import numpy as np

from rag.store.schema import LIVE

# An HNSW index is searched through its graph (with the selector) only when the scope holds more
# than this share of the chunks; below it, exactly over the stored vectors.
HNSW_FILTER_ABOVE = 0.2


class ChunkRanges:
    """The chunk ids of each document of one generation, for building masks over chunk ids.

    Example:
        >>> ranges = ChunkRanges(db, generation=3)  # doctest: +SKIP
        >>> ranges.mask({"notes.md"}).nonzero()[0]  # doctest: +SKIP
        array([7, 8, 9])
    """

    def __init__(self, db: sqlite3.Connection, generation: int) -> None:
        self._db = db
        self._generation = generation
        self._lock = threading.Lock()
        self._runs: dict[str, tuple[int, int]] | None = None  # source -> (first id, last id)
        self._scattered: dict[str, np.ndarray] = {}  # source -> its ids, when they are not one run
        self._size = 0  # highest chunk id + 1

    def _load(self) -> dict[str, tuple[int, int]]:
        with self._lock:
            if self._runs is None:
                params = {"gen": self._generation}
                rows = self._db.execute(
                    f"SELECT source, MIN(id), MAX(id), COUNT(*) FROM chunks WHERE {LIVE} GROUP BY source", params
                ).fetchall()
                runs = {}
                for source, first, last, count in rows:
                    runs[source] = (int(first), int(last))
                    if last - first + 1 != count:
                        ids = self._db.execute(
                            f"SELECT id FROM chunks WHERE source = :source AND {LIVE}", {**params, "source": source}
                        ).fetchall()
                        self._scattered[source] = np.array([r[0] for r in ids], dtype=np.int64)
                self._size = max((last for _, last in runs.values()), default=0) + 1
                self._runs = runs
            return self._runs

    def mask(self, sources: Collection[str]) -> np.ndarray:
        """A boolean array over chunk ids (index = id, up to the highest id of the generation): True
        for the chunks of `sources` (sources the generation does not hold are ignored)."""
        runs = self._load()
        mask = np.zeros(self._size, dtype=bool)
        for source in sources:
            run = runs.get(source)
            if run is None:
                continue
            scattered = self._scattered.get(source)
            if scattered is not None:
                mask[scattered] = True
            else:
                mask[run[0] : run[1] + 1] = True
        return mask


def dense_search_within(faiss_index: Any, vector: np.ndarray, k: int, mask: np.ndarray) -> list[tuple[int, float]]:
    """(chunk id, inner product) best first, at most k, among the chunks `mask` (over chunk ids)
    allows, searched inside FAISS with an `IDSelectorBitmap` (see the module docstring for HNSW)."""
    import faiss as faiss_module

    # faiss's SWIG classes declare constructors without the keyword arguments (sel=, efSearch=)
    # its Python wrappers accept, and not every SearchParameters subclass: typed loosely here.
    faiss: Any = faiss_module
    allowed = int(mask.sum())
    if allowed == 0 or faiss_index.ntotal == 0:
        return []
    k = min(k, allowed)
    bits = np.packbits(mask, bitorder="little")  # bit i of byte i // 8: chunk id i; kept alive while FAISS reads it
    selector = faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits))
    query = np.ascontiguousarray(vector.reshape(1, -1), dtype=np.float32)
    inner = faiss.downcast_index(faiss_index.index)
    if not isinstance(inner, faiss.IndexHNSW):
        return _search(faiss_index, query, k, faiss.SearchParameters(sel=selector))
    if allowed > HNSW_FILTER_ABOVE * faiss_index.ntotal:
        ef = max(inner.hnsw.efSearch, 2 * k)
        found = _search(faiss_index, query, k, faiss.SearchParametersHNSW(sel=selector, efSearch=ef))
        if len(found) == k:
            return found
    # A small scope, or the graph walk came back short: exactly, over the graph's stored vectors
    # (rows of the IndexIDMap2, translated to chunk ids for the selector).
    translated = faiss.IDSelectorTranslated(faiss_index.id_map, selector)
    storage = faiss.downcast_index(inner.storage)
    scores, rows = storage.search(query, k, params=faiss.SearchParameters(sel=translated))
    return [(int(faiss_index.id_map.at(int(r))), float(s)) for r, s in zip(rows[0], scores[0]) if r >= 0]


def _search(faiss_index: Any, query: np.ndarray, k: int, params: Any) -> list[tuple[int, float]]:
    scores, ids = faiss_index.search(query, k, params=params)
    return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]


def bm25_weight_mask(mask: np.ndarray, bm25_ids: np.ndarray) -> np.ndarray:
    """bm25s's `weight_mask` for the chunks `mask` allows: 1.0 for each BM25 row (whose chunk id is
    `bm25_ids[row]`) in the mask, 0.0 for the others, whose score it zeroes."""
    inside = bm25_ids < len(mask)
    weights = np.zeros(len(bm25_ids), dtype=np.float32)
    weights[inside] = mask[bm25_ids[inside]]
    return weights
