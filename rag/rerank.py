"""Read the candidate sentences with the trained reader, and reorder the hits by what it found.

The heuristic sentence score (`rag.answer.score_sentences`, cheap: stored vectors and word
overlap) prefilters; the reader (`rag.reader`, a cross-encoder: about 20 ms a sentence on 2 cores) reads the
few that matter: the best sentence of each of the top `rerank_depth` hits, then the next best
overall up to `reader_sentences`. A hit's reader score is its best sentence's; hits the reader
read are ordered by it (with `rerank_fusion`, by its order fused with the retrieval order), the
others keep their fused order after them. Each read sentence keeps its heuristic score
(`heuristic`, with the rank penalty of its hit's new place) for `rag.answer.quote_order`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from rag.answer import QuestionTerms, ScoredSentence, score_sentences
from rag.config import RagConfig
from rag.load.tables import is_row_sentence
from rag.numeric import sigmoid
from rag.reader import Candidate, Reader
from rag.types import Hit

if TYPE_CHECKING:
    from rag.store.base import Store


def prefilter(sentences: Sequence[ScoredSentence], *, config: RagConfig) -> list[ScoredSentence]:
    """The sentences worth reading: each top hit's best, then the best of the rest (best first).

    Example:
        >>> from rag.types import Chunk
        >>> hit = Hit(Chunk(0, "a.txt", 0, 3, "A b", None, ((0, 3),)), 1.0)
        >>> s = ScoredSentence(0, hit, 0, 3, 0.5, 0.5, 0.0, 0.5)
        >>> len(prefilter([s], config=RagConfig()))
        1
    """
    chosen: list[ScoredSentence] = []
    seen_hits: set[int] = set()
    for s in sentences:  # best first
        if s.hit_rank < config.rerank_depth and s.hit_rank not in seen_hits:
            seen_hits.add(s.hit_rank)
            chosen.append(s)
    for s in sentences:
        if len(chosen) >= config.reader_sentences:
            break
        if s not in chosen:
            chosen.append(s)
    return chosen[: max(config.reader_sentences, len(seen_hits))]


def in_context(s: ScoredSentence) -> Candidate:
    """The sentence with the sentences before and after it in its chunk; a table row without the
    rows beside it: the reader, reading a row next to the one that answers, scores it as if it
    answered (the row above the one asked about quoted instead)."""
    chunk = s.hit.chunk
    spans = chunk.sentences
    k = s.position

    def text(i: int) -> str:
        if k < 0 or not 0 <= i < len(spans):
            return ""
        a, b = spans[i]
        return chunk.text[a - chunk.start : b - chunk.start]

    sentence = s.text
    before, after = text(k - 1), text(k + 1)
    if is_row_sentence(sentence):
        before, after = ("" if is_row_sentence(t) else t for t in (before, after))
    return Candidate(before, sentence, after)


def read_sentences(
    question: str, sentences: Sequence[ScoredSentence], reader: Reader, *, config: RagConfig
) -> list[ScoredSentence]:
    """The prefiltered sentences with `score` = the reader's probability and `logit` set, best first."""
    chosen = prefilter(sentences, config=config)
    if not chosen:
        return []
    contexts = [in_context(s) for s in chosen]
    logits = reader.logits(question, contexts, max_tokens=config.reader_tokens)
    quote_logits: dict[int, float] = {}
    if config.quote_alone:
        again = _quote_candidates([float(z) for z in logits], [s.score for s in chosen], config.quote_alone)
        # Read alone in a batch of their own: short inputs, padded only to each other's length.
        alone = reader.logits(question, [Candidate("", contexts[i].sentence, "") for i in again])
        quote_logits = {i: float(z) for i, z in zip(again, alone)}
    probs = sigmoid(logits)
    read = [
        replace(s, score=float(p), logit=float(z), heuristic=s.score, quote_logit=quote_logits.get(i))
        for i, (s, p, z) in enumerate(zip(chosen, probs, logits))
    ]
    read.sort(key=lambda s: (-s.score, s.hit_rank))
    return read


def _quote_candidates(logits: Sequence[float], heuristic: Sequence[float], k: int) -> list[int]:
    """Positions of the `k` best by the reader's logits and the `k` best by the heuristic score.

    Example:
        >>> _quote_candidates([0.1, 2.0, -1.0, 0.5], [0.9, 0.1, 0.8, 0.2], 1)
        [0, 1]
    """
    by_reader = sorted(range(len(logits)), key=lambda i: -logits[i])[:k]
    by_heuristic = sorted(range(len(heuristic)), key=lambda i: -heuristic[i])[:k]
    return sorted(set(by_reader) | set(by_heuristic))


def rerank_hits(
    hits: Sequence[Hit], read: Sequence[ScoredSentence], *, config: RagConfig
) -> tuple[list[Hit], list[ScoredSentence]]:
    """Hits reordered by their best read sentence (the top `rerank_depth` only; the rest keep
    their places after them), and the sentences with `hit_rank` renumbered to the new order."""
    if not config.rerank or not read:
        return list(hits), list(read)
    best: dict[int, float] = {}
    for s in read:
        if s.hit_rank < config.rerank_depth:
            best[s.hit_rank] = max(best.get(s.hit_rank, 0.0), s.score)
    depth = min(config.rerank_depth, len(hits))
    if config.rerank_fusion:
        # The reader's order and the retrieval order, fused by reciprocal rank (no weight to fit).
        by_reader = {old: k for k, old in enumerate(sorted(best, key=lambda r: (-best[r], r)))}
        key = {r: 1 / (config.rrf_k + r) + (1 / (config.rrf_k + by_reader[r]) if r in by_reader else 0.0) for r in best}
    else:
        key = best
    top = sorted(range(depth), key=lambda r: (-key.get(r, -1.0), r))
    order = top + list(range(len(top), len(hits)))
    new_rank = {old: new for new, old in enumerate(order)}
    # `score` keeps ordering the hits: the read ones above every fused score, in their new order.
    lift = max((h.score for h in hits), default=0.0) + 1.0
    reranked = [replace(hits[old], score=lift + key[old]) if old in key else hits[old] for old in order]
    return reranked, [_moved(s, new_rank[s.hit_rank], reranked[new_rank[s.hit_rank]], config=config) for s in read]


def _moved(s: ScoredSentence, rank: int, hit: Hit, *, config: RagConfig) -> ScoredSentence:
    """`s` from a hit now at `rank`: its heuristic score takes the rank penalty of the new place."""
    heuristic = None if s.heuristic is None else s.heuristic + config.rank_penalty * (s.hit_rank - rank)
    return replace(s, hit_rank=rank, hit=hit, heuristic=heuristic)


def read_and_rerank(
    question: str,
    query_vector: np.ndarray,
    hits: Sequence[Hit],
    index: Store,
    reader: Reader,
    *,
    config: RagConfig,
    terms: QuestionTerms | None = None,
) -> tuple[list[Hit], list[ScoredSentence]]:
    """The hits reordered by the reader and the sentences it read (best first): the one path the
    pipeline and the retrieval benchmarks share."""
    if not hits:
        return [], []
    depth = max(config.answer_hits, config.rerank_depth)
    heuristic = score_sentences(question, query_vector, hits, index, config=config, terms=terms, depth=depth)
    return rerank_hits(hits, read_sentences(question, heuristic, reader, config=config), config=config)
