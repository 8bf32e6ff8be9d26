"""The read side of the index: `Index`, one committed generation loaded for searching."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rag.config import RagConfig
from rag.lexical import idf, stem_terms
from rag.store import files
from rag.store.manifest import DocumentInfo, IndexNotFound, check_compatible, read_manifest
from rag.store.schema import CHUNK_COLUMNS, DB, LIVE, VECTOR_BLOCK, chunk_from_row, vector_blocks
from rag.store.subset import ChunkRanges, bm25_rows, dense_search_within, top_rows
from rag.types import Chunk, Document, Page

UPLOADS = "uploads"  # files added through the UI, kept inside the index folder


class Index:
    """A loaded generation of the embedded store (`rag.store.base.Store`): FAISS, BM25 and the
    chunk store in one folder. Load once, query many times.

    Example:
        >>> index = Index.load("index", config=RagConfig())  # doctest: +SKIP
        >>> index.chunks([1, 2])  # doctest: +SKIP
    """

    def __init__(
        self, index_dir: Path, manifest: dict[str, Any], faiss_index: Any, bm25: Any, bm25_ids: np.ndarray
    ) -> None:
        self.dir = index_dir
        self.spec = f"faiss:{index_dir}"
        self.manifest = manifest
        self.generation: int = manifest["generation"]
        self.faiss = faiss_index
        self.bm25 = bm25
        self.bm25_ids = bm25_ids
        self._db = sqlite3.connect(str(index_dir / DB), check_same_thread=False)
        self._db.execute("PRAGMA query_only = ON")
        self._ranges = ChunkRanges(manifest, np.sort(bm25_ids), self._db, self.generation)
        self._documents: list[DocumentInfo] | None = None
        self._rows: tuple[np.ndarray, np.ndarray] | None = None  # the last scope mask's BM25 rows

    @classmethod
    def load(cls, index_dir: str | os.PathLike[str], *, config: RagConfig | None = None) -> Index:
        config = config or RagConfig()
        path = Path(index_dir)
        manifest = read_manifest(path)
        if manifest is None:
            raise IndexNotFound(f"no index at {path}: build one with `rag index [PATHS...] --index-dir {path}`")
        check_compatible(manifest, config, path)
        faiss_index = files.read_faiss(path / manifest["files"]["faiss"])
        files.set_ef_search(faiss_index, config.hnsw_ef_search)
        bm25, bm25_ids = files.read_bm25(path / manifest["files"]["bm25"])
        return cls(path, manifest, faiss_index, bm25, bm25_ids)

    def __len__(self) -> int:
        return int(self.manifest["n_chunks"])

    def close(self) -> None:
        self._db.close()

    @property
    def uploads_dir(self) -> Path:
        return self.dir / UPLOADS

    def dense_search(
        self, vector: np.ndarray, k: int, *, sources: Collection[str] | None = None
    ) -> list[tuple[int, float]]:
        """(chunk id, cosine) best first; with `sources`, only among those documents' chunks,
        filtered inside FAISS (`rag.store.subset`): still up to k of theirs."""
        import faiss

        if self.faiss.ntotal == 0:
            return []
        # One question is searched on the calling thread only (the setting is per thread): a second
        # OpenMP thread gains nothing on one query and, on a busy machine, waits for a core: 8 ms a
        # search instead of 0.9 at 1M chunks (BENCHMARKS.md).
        faiss.omp_set_num_threads(1)
        if sources is not None:
            return dense_search_within(self.faiss, vector, k, self._ranges.mask(sources))
        scores, ids = self.faiss.search(
            np.ascontiguousarray(vector.reshape(1, -1), dtype=np.float32), min(k, self.faiss.ntotal)
        )
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def lexical_search(self, query: str, k: int, *, sources: Collection[str] | None = None) -> list[tuple[int, float]]:
        """(chunk id, BM25 score) best first; chunks sharing no term with the query are left out.
        With `sources`, the k best of those documents' chunks (`rag.store.subset.top_rows`),
        scored as in an unscoped search."""
        if sources is None:
            return bm25s_search(self.bm25, self.bm25_ids, query, k)
        mask = self._ranges.mask(sources)
        cached = self._rows
        rows = cached[1] if cached is not None and cached[0] is mask else bm25_rows(mask, self.bm25_ids)
        self._rows = (mask, rows)
        return bm25s_search(self.bm25, self.bm25_ids, query, k, rows=rows)

    def idf_weights(self, terms: Sequence[str]) -> dict[str, float]:
        """BM25 inverse document frequency of each term over the index's chunks (unseen terms get
        the highest weight: they are the rarest)."""
        n = len(self.bm25_ids)
        if self.bm25 is None or n == 0:
            return {t: 1.0 for t in terms}
        vocab = self.bm25.vocab_dict
        indptr = self.bm25.scores["indptr"]
        return {t: idf(n, int(indptr[vocab[t] + 1] - indptr[vocab[t]]) if t in vocab else 0) for t in terms}

    def chunks(self, ids: Sequence[int]) -> dict[int, Chunk]:
        """The chunks with these ids (ids not in the store are left out)."""
        return {
            row[0]: chunk_from_row(row)
            for row in self._select(f"SELECT {CHUNK_COLUMNS} FROM chunks WHERE id IN ({{}})", ids)
        }

    def sentence_vectors(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        dim = int(self.manifest["params"]["model_dim"])
        return {
            row[0]: np.frombuffer(row[1], dtype=np.float16).reshape(-1, dim).astype(np.float32)
            for row in self._select("SELECT id, sentence_vectors FROM chunks WHERE id IN ({})", ids)
        }

    def chunk_vectors(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        return {
            row[0]: np.frombuffer(row[1], dtype=np.float32)
            for row in self._select("SELECT id, vector FROM chunks WHERE id IN ({})", ids)
        }

    def _select(self, sql: str, ids: Sequence[int]) -> list[tuple]:
        ids = [int(i) for i in ids]
        if not ids:
            return []
        return self._db.execute(sql.format(",".join("?" * len(ids))), ids).fetchall()

    def documents(self) -> list[DocumentInfo]:
        """The generation's documents, sorted by source (read from the manifest once: a scoped
        question reads them all)."""
        if self._documents is None:
            self._documents = [DocumentInfo.of(s, info) for s, info in sorted(self.manifest["documents"].items())]
        return list(self._documents)

    def document(self, source: str) -> Document | None:
        row = self._db.execute(
            f"SELECT source, text, sha256, pages FROM documents WHERE source = :source AND {LIVE}",
            {"source": source, "gen": self.generation},
        ).fetchone()
        if row is None:
            return None
        modified = self.manifest["documents"].get(source, {}).get("modified")
        return Document(row[0], row[1], row[2], tuple(Page(*p) for p in json.loads(row[3])), modified=modified)

    def document_chunks(self, source: str) -> list[Chunk]:
        """The chunks of the document `source` in this generation, in document order ([] when the
        index does not hold it).

        Example:
            >>> [c.id for c in index.document_chunks("notes.md")]  # doctest: +SKIP
            [7, 8, 9]
        """
        rows = self._db.execute(
            f"SELECT {CHUNK_COLUMNS} FROM chunks WHERE source = :source AND {LIVE} ORDER BY id",
            {"source": source, "gen": self.generation},
        )
        return [chunk_from_row(row) for row in rows]

    def vector_blocks(self, *, block_rows: int = VECTOR_BLOCK) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every chunk vector of this generation as (chunk ids, float32 vectors) blocks of up to
        `block_rows`, in id order: for rebuilding or measuring a vector index without holding the
        chunk store in memory twice."""
        cursor = self._db.execute(f"SELECT id, vector FROM chunks WHERE {LIVE} ORDER BY id", {"gen": self.generation})
        return vector_blocks(cursor, block_rows)


def bm25s_search(
    bm25: Any, bm25_ids: np.ndarray, query: str, k: int, *, rows: np.ndarray | None = None
) -> list[tuple[int, float]]:
    """Search a bm25s index whose row r holds chunk `bm25_ids[r]`: (chunk id, score) best first,
    rows sharing no term with the query left out; with `rows`, only among those rows."""
    if bm25 is None or not len(bm25_ids):
        return []
    vocab = bm25.vocab_dict
    known = [t for t in stem_terms([query])[0] if t in vocab]
    if not known:
        return []
    if rows is not None:
        return [(int(bm25_ids[r]), s) for r, s in top_rows(bm25.get_scores(known), rows, k)]
    found, scores = bm25.retrieve([known], k=min(k, len(bm25_ids)), show_progress=False, n_threads=1)
    return [(int(bm25_ids[r]), float(s)) for r, s in zip(found[0], scores[0]) if s > 0]
