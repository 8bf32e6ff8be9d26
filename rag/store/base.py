"""What the pipeline needs from an index, whatever holds it: `Store` (read one committed generation)
and `StoreWriter` (apply one update as the next generation).

Two implementations: the embedded store (`rag.store.reader.Index` / `rag.store.writer.IndexWriter`:
FAISS, BM25 files and SQLite in one folder) and the Milvus store (`rag.store.milvus`: one
collection per index, Milvus Lite in-process or a Milvus server). `rag.store.locate` opens either
from a store spec (`faiss:DIR`, `milvus:PATH.db`, `milvus://HOST:PORT/NAME`).

Both keep the same promise: a reader sees exactly one committed generation, so an update in
progress, or one that crashed, is never half visible.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from rag.config import RagConfig
from rag.types import Chunk, Document, EmbeddedDocument

if TYPE_CHECKING:
    from rag.store.manifest import DocumentInfo
    from rag.store.writer import UpdateStats


@runtime_checkable
class Store(Protocol):
    """One committed generation of an index, loaded for searching. Thread-safe for reading."""

    spec: str  # what `rag.store.locate.open_store` reopens it from
    manifest: dict[str, Any]  # generation, params, documents, n_chunks, embed_backend, ...
    generation: int

    def __len__(self) -> int: ...  # chunks in this generation

    def close(self) -> None: ...

    @property
    def uploads_dir(self) -> Path:
        """A local folder where the UI keeps uploaded files of this index."""
        ...

    def dense_search(
        self, vector: np.ndarray, k: int, *, sources: Collection[str] | None = None
    ) -> list[tuple[int, float]]:
        """(chunk id, cosine) best first, at most k. With `sources` (document sources), only the
        chunks of those documents are searched, filtered inside the search: up to k of theirs come
        back however small a share of the index they are. None searches every chunk."""
        ...

    def lexical_search(self, query: str, k: int, *, sources: Collection[str] | None = None) -> list[tuple[int, float]]:
        """(chunk id, BM25 score) best first over `rag.lexical.stem_terms` tokens; chunks sharing no
        term with the query are left out. `sources` as for `dense_search`; the scores (their IDF)
        stay those of the whole generation, so a chunk scores the same in or out of a scope."""
        ...

    def idf_weights(self, terms: Sequence[str]) -> dict[str, float]:
        """`rag.lexical.idf` of each stemmed term over this generation's chunks."""
        ...

    def chunks(self, ids: Sequence[int]) -> dict[int, Chunk]: ...

    def sentence_vectors(self, ids: Sequence[int]) -> dict[int, np.ndarray]: ...

    def chunk_vectors(self, ids: Sequence[int]) -> dict[int, np.ndarray]: ...

    def documents(self) -> list[DocumentInfo]: ...

    def document(self, source: str) -> Document | None: ...

    def document_chunks(self, source: str) -> list[Chunk]: ...

    def vector_blocks(self, *, block_rows: int = ...) -> Iterator[tuple[np.ndarray, np.ndarray]]: ...


@runtime_checkable
class StoreWriter(Protocol):
    """Holds the index's write lock inside a `with` block and applies updates as new generations."""

    config: RagConfig

    def __enter__(self) -> StoreWriter: ...

    def __exit__(self, *exc: object) -> None: ...

    def current_documents(self) -> dict[str, str]:
        """source -> sha256 of the documents in the committed generation ({} when rebuilding)."""
        ...

    def apply(
        self,
        embedded: Iterable[EmbeddedDocument],
        remove: Iterable[str],
        *,
        embed_backend: str,
        stats: UpdateStats | None = None,
        empty_corpus_error: str | None = None,
    ) -> UpdateStats: ...
