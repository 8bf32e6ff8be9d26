"""Questions about a whole document: "What is the article about?", "Summarize this document".

Such a question names no fact to find: searched like any other it matches no passage well and is
refused. When it can mean one document only (the index holds one, or the question's scope does),
the answer is that document's opening: a news article, a report or a paper says first what it is
about. Its first sentences (up to `answer_max_sentences`, within `answer_max_words`) are quoted
and cited like any answer. Over many documents the question is answered as any other: which
document "the article" is, is for the user to say (the scope).

Example:
    >>> asks_for_overview("What is the article about?"), asks_for_overview("Summarise this report.")
    (True, True)
    >>> asks_for_overview("What is the article about Kursk saying?")
    False
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import replace

import numpy as np

from rag.config import RagConfig
from rag.store.base import Store
from rag.types import Answer, Chunk, Citation

_DOC = r"(?:article|document|doc|text|story|report|paper|file|page|piece|post|essay|pdf|news)"
_THIS = r"(?:the|this|that)"
_OVERVIEW = re.compile(
    rf"""^\s*(?:
        (?:what(?:'s|’s|\s+is)|tell\s+me\s+what(?:'s|’s|\s+is)?)\s+{_THIS}\s+{_DOC}\s+(?:is\s+)?(?:all\s+)?about
      | what\s+(?:does|do)\s+{_THIS}\s+{_DOC}\s+(?:say|cover|discuss|describe|report)
      | (?:please\s+|can\s+you\s+|could\s+you\s+)?summari[sz]e(?:\s+(?:it|{_THIS}(?:\s+{_DOC})?))?
      | (?:give\s+me\s+)?(?:an?\s+)?(?:short\s+|brief\s+|quick\s+)?(?:summary|overview|gist)
        (?:\s+of\s+(?:it|{_THIS}(?:\s+{_DOC})?))?
      | what\s+are\s+the\s+main\s+points(?:\s+of\s+{_THIS}\s+{_DOC})?
      | tl;?\s?dr
    )\s*(?:please\s*)?[?.!]*\s*$""",
    re.I | re.X,
)


def asks_for_overview(question: str) -> bool:
    """Whether `question` asks what a document is about, and nothing more."""
    return bool(_OVERVIEW.match(question))


def the_document(index: Store, sources: Collection[str] | None) -> str | None:
    """The one document a question within `sources` (None: the whole index) can mean, or None."""
    if sources is not None:
        return next(iter(sources)) if len(sources) == 1 else None
    documents = index.documents()
    return documents[0].source if len(documents) == 1 else None


def overview(answer: Answer, index: Store, sources: Collection[str] | None, *, config: RagConfig) -> Answer:
    """`answer` replaced by the opening of the one document the question can mean (see the
    module), or unchanged when it can mean several. Its confidence: how close the opening's
    meaning is to the whole document's (`centrality`): a boilerplate first line scores low."""
    source = the_document(index, sources)
    chunks = index.document_chunks(source) if source is not None else []
    if not chunks:
        return answer
    first = min(chunks, key=lambda c: c.start)
    spans = _opening(first, config)
    if not spans:
        return answer
    confidence = centrality(index, chunks, first, len(spans))
    citations = tuple(
        Citation(
            n=n,
            source=first.source,
            start=start,
            end=end,
            page=first.page,
            quote=_sentence(first, (start, end)),
            passage=first.text,
            score=round(confidence, 4),
            passage_start=first.start,
        )
        for n, (start, end) in enumerate(spans, start=1)
    )
    text = " ".join(f"{c.quote} [{c.n}]" for c in citations)
    return replace(
        answer, text=text, abstained=False, tentative=False, confidence=confidence, citations=citations, candidate=text
    )


def centrality(index: Store, chunks: Sequence[Chunk], first: Chunk, n: int) -> float:
    """The cosine, clipped to [0, 1], between the mean vector of the first `n` sentences of
    `first` and the mean of the document's chunk vectors (`chunks`, all of one document)."""
    ids = [c.id for c in chunks]
    document = np.mean(np.stack(list(index.chunk_vectors(ids).values())), axis=0)
    opening = np.mean(index.sentence_vectors([first.id])[first.id][:n], axis=0)
    norms = float(np.linalg.norm(document) * np.linalg.norm(opening))
    return float(np.clip(document @ opening / norms, 0.0, 1.0)) if norms > 0 else 0.0


def _sentence(chunk: Chunk, span: tuple[int, int]) -> str:
    return chunk.text[span[0] - chunk.start : span[1] - chunk.start]


def _opening(chunk: Chunk, config: RagConfig) -> list[tuple[int, int]]:
    """The first sentences of `chunk` (document offsets): the first whatever its length, then more
    up to `answer_max_sentences` while they fit in `answer_max_words`."""
    spans: list[tuple[int, int]] = []
    words = 0
    for span in chunk.sentences[: config.answer_max_sentences]:
        words += len(_sentence(chunk, span).split())
        if spans and words > config.answer_max_words:
            break
        spans.append(span)
    return spans
