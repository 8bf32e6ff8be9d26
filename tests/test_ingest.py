"""Chunking and embedding before the store (rag/ingest.py), and the writer taking embedded documents.

The embedder here is the real tokenizer (chunking is real) with seeded random unit vectors: what is
tested is the plumbing, not the model.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from rag.config import MODEL_DIM, RagConfig
from rag.ingest import embed_documents, update_index
from rag.store import Index, IndexWriter, UpdateStats
from rag.types import Chunk, Document, EmbeddedDocument


class _CountingEmbedder:
    backend = "random"

    def __init__(self) -> None:
        from rag.embed import load_tokenizer

        self.tokenizer = load_tokenizer()
        self.rng = np.random.default_rng(0)
        self.calls: list[int] = []  # chunks per encode_chunks call

    def encode_chunks(self, chunks, *, batch_size: int = 32, progress=None):
        def unit(shape):
            x = self.rng.standard_normal(shape).astype(np.float32)
            return x / np.linalg.norm(x, axis=-1, keepdims=True)

        self.calls.append(len(chunks))
        if progress:
            progress(len(chunks))
        return unit((len(chunks), MODEL_DIM)), [unit((len(c.sentences), MODEL_DIM)) for c in chunks]


def _document(source: str, n_sentences: int, topic: str = "harbour") -> Document:
    text = " ".join(f"Sentence {i} says the {topic} held {i * 13} boats in spring." for i in range(n_sentences))
    return Document(source, text, hashlib.sha256(text.encode()).hexdigest())


def test_documents_are_read_and_embedded_one_block_at_a_time() -> None:
    """Nothing may wait for the whole corpus: the first block's documents come out before the
    documents after it are read, and each embedding call is about one block of chunks."""
    config = RagConfig(chunk_tokens=32, chunk_overlap_sentences=0, embed_batch_size=8)  # blocks of >= 256 chunks
    embedder = _CountingEmbedder()
    read: list[str] = []

    def documents():
        for i in range(40):
            read.append(f"d{i:02d}.txt")
            yield _document(f"d{i:02d}.txt", 40)

    stats = UpdateStats()
    stream = embed_documents(documents(), embedder, config=config, current={}, stats=stats)
    first = next(stream)
    assert first.document.source == "d00.txt" and len(read) < 40
    rest = list(stream)
    assert len(read) == 40 and [e.document.source for e in [first, *rest]] == read
    assert len(embedder.calls) > 2 and all(256 <= n < 256 + 40 for n in embedder.calls[:-1])
    assert stats.chunks_embedded == sum(embedder.calls) == sum(len(e.chunks) for e in [first, *rest])
    for embedded in [first, *rest]:
        assert embedded.vectors.shape == (len(embedded.chunks), MODEL_DIM)
        assert [len(v) for v in embedded.sentence_vectors] == [len(c.sentences) for c in embedded.chunks]
        assert all(embedded.document.text[c.start : c.end] == c.text for c in embedded.chunks)


def test_unchanged_and_too_large_documents_are_not_embedded() -> None:
    config = RagConfig(chunk_tokens=32, chunk_overlap_sentences=0, max_chunks_per_document=5)
    same, big, new = _document("same.txt", 3), _document("big.txt", 60), _document("new.txt", 3)
    current = {"same.txt": same.sha256, "big.txt": "an older version"}
    stats = UpdateStats()
    embedder = _CountingEmbedder()

    out = list(embed_documents([same, big, new], embedder, config=config, current=current, stats=stats))

    assert [e.document.source for e in out] == ["new.txt"]
    assert stats.unchanged == ["same.txt", "big.txt"]  # the indexed version of big.txt stays
    assert [s for s, _ in stats.too_large] == ["big.txt"] and "over the limit of 5" in stats.too_large[0][1]
    assert stats.chunks_embedded == sum(embedder.calls) == len(out[0].chunks)


def test_an_embedded_document_needs_a_vector_per_chunk() -> None:
    doc = _document("a.txt", 1)
    chunk = Chunk(-1, "a.txt", 0, len(doc.text), doc.text, None, ((0, len(doc.text)),))
    with pytest.raises(ValueError, match="a.txt: 1 chunks, 2 vectors, 1 sentence-vector arrays"):
        EmbeddedDocument(doc, (chunk,), np.zeros((2, MODEL_DIM), np.float32), (np.zeros((1, MODEL_DIM)),))


def test_the_writer_stores_what_it_is_given(tmp_path) -> None:
    """`IndexWriter.apply` takes embedded documents: it stores their chunks and vectors as given
    and records who made the vectors, without an embedder of its own."""
    config = RagConfig()
    embedder = _CountingEmbedder()
    docs = [_document("a.txt", 4, "harbour"), _document("b.txt", 4, "glacier")]
    embedded = list(embed_documents(docs, embedder, config=config, current={}, stats=UpdateStats()))

    with IndexWriter(tmp_path / "index", config) as writer:
        stats = writer.apply(iter(embedded), [], embed_backend="hand-made")
    assert stats.added == ["a.txt", "b.txt"] and stats.generation == 1
    index = Index.load(tmp_path / "index")
    try:
        assert index.manifest["embed_backends"] == ["hand-made"]
        for item in embedded:
            chunks = index.document_chunks(item.document.source)
            assert [(c.start, c.end, c.text) for c in chunks] == [(c.start, c.end, c.text) for c in item.chunks]
            stored = index.chunk_vectors([c.id for c in chunks])
            assert all(np.array_equal(stored[c.id], v) for c, v in zip(chunks, item.vectors))
            sentences = index.sentence_vectors([c.id for c in chunks])
            assert all(np.allclose(sentences[c.id], v, atol=1e-3) for c, v in zip(chunks, item.sentence_vectors))
    finally:
        index.close()

    with IndexWriter(tmp_path / "index", config) as writer:  # unchanged documents: nothing to write
        stats = update_index(writer, docs, [], embedder=embedder)
    assert stats.unchanged == ["a.txt", "b.txt"] and stats.generation == 1 and stats.chunks_embedded == 0
