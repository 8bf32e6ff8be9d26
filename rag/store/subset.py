"""Searching only some documents of the embedded store (a question's scope, `rag.scope`), inside
the search: FAISS with an `IDSelector`, BM25's top k chosen among the allowed rows only
(`top_rows`), so a scope of one small document over a large index still gets its k best chunks,
never the scope's share of a global top-k.

Which chunks a document has: a writer inserts a document's chunks together under the index lock,
so their ids are one run, recorded in the manifest (`first_chunk_id`, `n_chunks`); `ChunkRanges`
checks the runs against the generation's chunk ids once per loaded generation (about a
millisecond at 100k chunks) and turns a set of documents into a mask over chunk ids in a few
milliseconds.

How each vector index the project builds honours the selector in faiss-cpu 1.15.1 (measured on
bench/common.py's 100k seeded clustered vectors with the default config, single-threaded, by
`python -m bench.scope --hnsw`; tests/test_scope.py checks each index type against brute force):
- `IndexIDMap2(IndexFlatIP)`: exact; rows outside the selector are skipped before their inner
  product, so one document costs 0.6 ms against 18 ms unscoped, and half the chunks 1.4 times
  the unscoped search.
- `IndexIDMap2(IndexHNSWFlat)`: only members come back, but the graph walk also spends its
  `efSearch` steps on non-members: within one document it found 3% of the exact top 50 and came
  back short every time; within 1% of the documents 74%, short on 45 of 50 questions. From a
  tenth of the documents on, the filtered walk finds nearly what an unscoped one finds (recall@50
  0.95 at 10%, 0.98 at 50%, 0.99 unscoped). So an HNSW index is searched through its graph only
  for scopes above `HNSW_FILTER_ABOVE` of the chunks, and smaller scopes, or a walk that comes back
  short, exactly over the graph's stored vectors with the same selector (`storage`, an IndexFlat):
  recall 1.0 there.
The project builds no other index type (no IVF).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import numpy as np

from rag.store.schema import LIVE

# An HNSW index is searched through its graph (with the selector) only when the scope holds more
# than this share of the chunks; below it, exactly over the stored vectors.
HNSW_FILTER_ABOVE = 0.2


class ChunkRanges:
    """The chunk ids of each document of one loaded generation, for masks over chunk ids.

    The runs come from the manifest (`first_chunk_id` and `n_chunks` of each document), checked
    against the generation's live chunk ids (`live_ids`, sorted: the BM25 rows' ids); an index
    written before runs were recorded, or whose runs do not check, has them read from the chunk
    store instead, once (one grouped query over every chunk row: seconds at 100k chunks).

    Example:
        >>> ranges = ChunkRanges(index.manifest, index.bm25_ids, db, generation=3)  # doctest: +SKIP
        >>> ranges.mask({"notes.md"}).nonzero()[0]  # doctest: +SKIP
        array([7, 8, 9])
    """

    def __init__(self, manifest: dict[str, Any], live_ids: np.ndarray, db: sqlite3.Connection, generation: int) -> None:
        self._documents: dict[str, dict[str, Any]] = manifest["documents"]
        self._live_ids = live_ids
        self._db = db
        self._generation = generation
        self._lock = threading.Lock()
        self._runs: _Runs | None = None
        self._scattered: dict[str, np.ndarray] = {}  # source -> its ids, when they are not one run
        self._size = int(live_ids.max()) + 1 if len(live_ids) else 1  # highest chunk id + 1
        self._last: tuple[Collection[str], np.ndarray] | None = None  # the last mask asked for

    def _load(self) -> _Runs:
        with self._lock:
            if self._runs is None:
                self._runs = self._recorded_runs() or self._read_runs()
            return self._runs

    def _recorded_runs(self) -> _Runs | None:
        """The manifest's runs, if every document has one and they hold exactly the live ids."""
        entries = list(self._documents.items())
        if not all(isinstance(e.get("first_chunk_id"), int) for _, e in entries):
            return None
        firsts = np.array([e["first_chunk_id"] for _, e in entries], dtype=np.int64)
        ends = firsts + np.array([e["n_chunks"] for _, e in entries], dtype=np.int64)
        held = np.searchsorted(self._live_ids, ends) - np.searchsorted(self._live_ids, firsts)
        if int((ends - firsts).sum()) != len(self._live_ids) or not np.array_equal(held, ends - firsts):
            return None
        return _Runs({source: i for i, (source, _) in enumerate(entries)}, firsts, ends)

    def _read_runs(self) -> _Runs:
        params = {"gen": self._generation}
        rows = self._db.execute(
            f"SELECT source, MIN(id), MAX(id), COUNT(*) FROM chunks WHERE {LIVE} GROUP BY source", params
        ).fetchall()
        firsts, ends = np.zeros(len(rows), dtype=np.int64), np.zeros(len(rows), dtype=np.int64)
        for i, (source, first, last, count) in enumerate(rows):
            if last - first + 1 == count:
                firsts[i], ends[i] = first, last + 1
            else:  # not one run (no writer makes those): listed, and an empty run
                ids = self._db.execute(
                    f"SELECT id FROM chunks WHERE source = :source AND {LIVE}", {**params, "source": source}
                ).fetchall()
                self._scattered[source] = np.array([r[0] for r in ids], dtype=np.int64)
        return _Runs({row[0]: i for i, row in enumerate(rows)}, firsts, ends)

    def mask(self, sources: Collection[str]) -> np.ndarray:
        """A boolean array over chunk ids (index = id, up to the highest id of the generation): True
        for the chunks of `sources` (sources the generation does not hold are ignored). The last
        mask is kept: a question's dense and lexical searches ask for the same one."""
        last = self._last
        if last is not None and (last[0] is sources or last[0] == sources):
            return last[1]
        runs = self._load()
        picked = np.fromiter((runs.position[s] for s in sources if s in runs.position), dtype=np.int64)
        firsts, ends = runs.firsts[picked], runs.ends[picked]
        filled = ends > firsts
        # +1 where a run starts, -1 where it ends; the running sum is 1 inside runs. Runs are
        # disjoint and not empty, so no index repeats within one assignment.
        steps = np.zeros(self._size + 1, dtype=np.int32)
        steps[firsts[filled]] += 1
        steps[ends[filled]] -= 1
        mask = np.cumsum(steps[:-1]) > 0
        if self._scattered:
            for source in self._scattered.keys() & set(sources):
                mask[self._scattered[source]] = True
        self._last = (sources, mask)
        return mask


@dataclass(frozen=True)
class _Runs:
    """Each document's chunk id run: `position[source]` indexes `firsts` and `ends` (one past the
    last id; equal to the first for a document listed in `ChunkRanges._scattered` instead)."""

    position: dict[str, int]
    firsts: np.ndarray
    ends: np.ndarray


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


def bm25_rows(mask: np.ndarray, bm25_ids: np.ndarray) -> np.ndarray:
    """The BM25 rows (row r holds chunk `bm25_ids[r]`) of the chunks `mask` allows, ascending."""
    return np.flatnonzero(mask[bm25_ids])


def top_rows(scores: np.ndarray, rows: np.ndarray, k: int) -> list[tuple[int, float]]:
    """(row, score) of the k best-scoring `rows` scoring above 0, best first (ties by row).

    This is bm25s's weight mask done the cheap way: bm25s would zero the other rows' scores and
    select among all of them (2.5 times the unscoped search at 100k chunks, the selection slowed
    by the zeros); selecting among the allowed rows' scores alone gives the same k.

    Example:
        >>> top_rows(np.array([0.0, 3.0, 1.0, 2.0]), np.array([0, 2, 3]), 2)
        [(3, 2.0), (2, 1.0)]
    """
    picked = scores[rows]
    n = min(k, len(rows))
    if n == 0:
        return []
    best = np.argpartition(-picked, n - 1)[:n] if n < len(rows) else np.arange(len(rows))
    best = best[np.lexsort((rows[best], -picked[best]))]
    return [(int(rows[i]), float(picked[i])) for i in best if picked[i] > 0]
