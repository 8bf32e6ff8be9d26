"""From loaded documents to an index update: chunk each new or changed document, embed the chunks
in blocks, and hand the store documents ready to write (`EmbeddedDocument`).

Documents are read lazily and embedded a block of chunks at a time, so memory holds one block of
vectors, not a corpus's. The store only writes (`IndexWriter.apply`); what to embed and how is
decided here.

Example:
    >>> with IndexWriter("index", RagConfig()) as writer:  # doctest: +SKIP
    ...     stats = update_index(writer, documents, ["old.txt"], embedder=Embedder.load())
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from rag.chunk import chunk_document
from rag.config import RagConfig
from rag.store import UpdateStats
from rag.store.base import StoreWriter
from rag.types import Chunk, Document, EmbeddedDocument


def update_index(
    writer: StoreWriter,
    documents: Iterable[Document],
    remove: Iterable[str],
    *,
    embedder: Any,
    progress: Callable[[int], None] | None = None,
    empty_corpus_error: str | None = None,
) -> UpdateStats:
    """Add the new or changed `documents` (chunked and embedded here, unchanged ones skipped) and
    remove the sources in `remove`, as one new generation of the writer's index.

    `progress` is called with the number of chunks embedded after each batch. With
    `empty_corpus_error`, an update that finds no document to keep raises EmptyCorpus with that
    message and changes nothing (see `IndexWriter.apply`).
    """
    stats = UpdateStats()
    embedded = embed_documents(
        documents, embedder, config=writer.config, current=writer.current_documents(), stats=stats, progress=progress
    )
    return writer.apply(
        embedded, remove, embed_backend=backend_name(embedder), stats=stats, empty_corpus_error=empty_corpus_error
    )


def embed_documents(
    documents: Iterable[Document],
    embedder: Any,
    *,
    config: RagConfig,
    current: Mapping[str, str],
    stats: UpdateStats,
    progress: Callable[[int], None] | None = None,
) -> Iterator[EmbeddedDocument]:
    """Chunk and embed each document not in `current` (source -> sha256) with that hash, lazily.

    Chunks are embedded once a block of them is pending (at least `max(256, embed_batch_size * 8)`),
    and the block's documents are yielded before the next one is read. Documents over
    `max_chunks_per_document` are left out and listed in `stats.too_large` (an indexed version of
    one stays as it was, counted unchanged); `stats` also counts the unchanged documents, the chunks
    embedded and the seconds spent embedding.
    """
    pending: list[tuple[Document, list[Chunk]]] = []
    pending_chunks = 0
    block = embed_block_size(config)
    for doc in documents:
        if current.get(doc.source) == doc.sha256:
            stats.unchanged.append(doc.source)
            continue
        chunks, too_large = index_chunks(doc, embedder.tokenizer, config)
        if too_large:
            # Skipped like an unreadable file; a version already indexed stays as it was.
            stats.too_large.append((doc.source, too_large))
            if doc.source in current:
                stats.unchanged.append(doc.source)
            continue
        pending.append((doc, chunks))
        pending_chunks += len(chunks)
        if pending_chunks >= block:
            yield from embed_block(pending, embedder, config=config, stats=stats, progress=progress)
            pending, pending_chunks = [], 0
    yield from embed_block(pending, embedder, config=config, stats=stats, progress=progress)


def embed_block_size(config: RagConfig) -> int:
    """Chunks pending before they are embedded together. The int8 encoder quantises activations
    per batch, so a chunk's vector depends on the chunks it is embedded with: `rag.distributed`
    forms the same blocks to write the same vectors.

    Example:
        >>> embed_block_size(RagConfig())
        256
    """
    return max(256, config.embed_batch_size * 8)


def index_chunks(doc: Document, tokenizer: Any, config: RagConfig) -> tuple[list[Chunk], str]:
    """`doc`'s chunks under `config`'s chunking, and why it is left out ("" when it is not): over
    `max_chunks_per_document` chunks. One rule for the single-process and the Ray path."""
    chunks = chunk_document(
        doc, tokenizer, max_tokens=config.chunk_tokens, overlap_sentences=config.chunk_overlap_sentences
    )
    if len(chunks) > config.max_chunks_per_document:
        return chunks, f"makes {len(chunks)} chunks, over the limit of {config.max_chunks_per_document} per document"
    return chunks, ""


def embed_block(
    pending: list[tuple[Document, list[Chunk]]],
    embedder: Any,
    *,
    config: RagConfig,
    stats: UpdateStats,
    progress: Callable[[int], None] | None,
) -> list[EmbeddedDocument]:
    """Embed the chunks of these documents in one call (batched inside), split back per document."""
    chunks = [c for _, cs in pending for c in cs]
    vectors, sentence_vectors = np.zeros((0, config.model_dim), dtype=np.float32), []
    if chunks:
        started = time.perf_counter()
        vectors, sentence_vectors = embedder.encode_chunks(
            chunks, batch_size=config.embed_batch_size, progress=progress
        )
        stats.embed_seconds += time.perf_counter() - started
        stats.chunks_embedded += len(chunks)
    out, k = [], 0
    for doc, cs in pending:
        out.append(EmbeddedDocument(doc, tuple(cs), vectors[k : k + len(cs)], tuple(sentence_vectors[k : k + len(cs)])))
        k += len(cs)
    return out


def backend_name(embedder: Any) -> str:
    """What the manifest records as the encoder backend that made an embedder's vectors.

    Example:
        >>> backend_name(type("Fake", (), {})())
        'Fake'
    """
    return str(getattr(embedder, "backend", type(embedder).__name__))
