"""Questions about a whole document: "What is the article about?", "Summarize this document",
"What does the author conclude?", "Who wrote it?".

Such a question names no fact to find: searched like any other it matches no passage well and is
refused. When it can mean one document only (the index holds one, or the question's scope does),
the answer is that document's opening: a news article, a report or a paper says first what it is
about. Its first sentences (up to `answer_max_sentences`, within `answer_max_words`) are quoted
and cited like any answer. Over many documents the question is answered as any other: which
document "the article" is, is for the user to say (the scope).

"What does the author conclude?" is answered the same way with the document's closing: its last
sentences before any signature. "Who wrote the article?" is such a question too: its answer is the
document's byline, where it has one ("By Jane Doe" near the top or the bottom, or a signature such
as "Dr. Jane Doe – Writer" at the end). Without one the question is searched as any other (and
likely refused: honestly, no author is named).

Example:
    >>> asks_for_overview("What is the article about?"), asks_for_overview("Summarise this report.")
    (True, True)
    >>> asks_for_overview("What is the article about Kursk saying?")
    False
    >>> asks_for_author("Who wrote the article?"), asks_for_author("Who wrote the letter to the UN?")
    (True, False)
    >>> asks_for_conclusion("What does the author conclude?"), asks_for_conclusion("What did the court conclude?")
    (True, False)
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import replace

import numpy as np

from rag.config import RagConfig
from rag.lookup import NAME_WORD
from rag.store.base import Store
from rag.types import Answer, Chunk, Citation

_DOC = r"(?:article|document|doc|text|story|report|paper|file|page|piece|post|essay|pdf|news)"
_THIS = r"(?:the|this|that)"
_GIST = r"(?:point|idea|message|argument|topic|subject|theme|takeaway)"
_OVERVIEW = re.compile(
    rf"""^\s*(?:
        (?:what(?:'s|’s|\s+is)|tell\s+me\s+what(?:'s|’s|\s+is)?)\s+{_THIS}\s+{_DOC}\s+(?:is\s+)?(?:all\s+)?about
      | (?:please\s+)?tell\s+(?:me|us)\s+(?:more\s+)?about\s+{_THIS}\s+{_DOC}
      | what\s+(?:does|do)\s+{_THIS}\s+{_DOC}\s+(?:say|cover|discuss|describe|report)
      | (?:please\s+|can\s+you\s+|could\s+you\s+)?summari[sz]e(?:\s+(?:it|{_THIS}(?:\s+{_DOC})?))?
      | (?:give\s+me\s+)?(?:an?\s+)?(?:short\s+|brief\s+|quick\s+)?(?:summary|overview|gist)
        (?:\s+of\s+(?:it|{_THIS}(?:\s+{_DOC})?))?
      | what(?:'s|’s|\s+is|\s+are)\s+(?:the|{_THIS}\s+{_DOC}(?:'s|’s))\s+(?:main|key|central)\s+{_GIST}s?
        (?:\s+of\s+{_THIS}\s+{_DOC})?
      | tl;?\s?dr
    )\s*(?:please\s*)?[?.!]*\s*$""",
    re.I | re.X,
)


# "What does the author conclude?": the document's closing.
_CONCLUSION = re.compile(
    rf"""^\s*(?:
        what\s+(?:does|did)\s+(?:the\s+(?:author|writer)|{_THIS}\s+{_DOC})\s+conclude
      | what(?:'s|’s|\s+is|\s+are)\s+(?:the|{_THIS}\s+{_DOC}(?:'s|’s)|the\s+(?:author|writer)(?:'s|’s))\s+conclusions?
        (?:\s+of\s+{_THIS}\s+{_DOC})?
      | how\s+does\s+{_THIS}\s+{_DOC}\s+(?:end|conclude)
    )\s*[?.!]*\s*$""",
    re.I | re.X,
)
_AUTHOR = re.compile(
    rf"""^\s*(?:
        who\s+(?:wrote|authored|penned|is\s+the\s+(?:author|writer)\s+of)(?:\s+(?:it|{_THIS}(?:\s+{_DOC})?))?
      | who(?:'s|’s|\s+is)\s+(?:the|its)\s+(?:author|writer)(?:\s+of\s+(?:it|{_THIS}\s+{_DOC}))?
      | (?:what\s+is\s+)?(?:the\s+)?(?:name\s+of\s+the\s+author|author(?:'s|’s)\s+name)
      | how\s+(?:is|was)\s+(?:the|its)\s+(?:author|writer)(?:\s+of\s+(?:it|{_THIS}\s+{_DOC}))?\s+described
        (?:\s+professionally)?
      | what\s+(?:is|was)\s+(?:the|its)\s+(?:author|writer)(?:'s|’s)\s+
        (?:job|profession|occupation|background|title|role|position|affiliation)
      | what\s+(?:does|did)\s+(?:the|its)\s+(?:author|writer)\s+do(?:\s+for\s+a\s+living)?
    )\s*[?.!]*\s*$""",
    re.I | re.X,
)
# A byline marked as one: "By Jane Doe", "Written by J. Doe", "Author: Jane Doe".
_MARKED = re.compile(r"^\W*(?i:by|written\s+by|words\s+by|reported\s+by|author:)\s+\W*[A-Z]")
# A signature at the end: an honorific and a name, or a name, a dash or comma, and a role.
_ROLE = r"(?i:writer|reporter|journalist|correspondent|editor|columnist|author|contributor|academic|professor)"
_SIGNED = re.compile(
    rf"^\W*(?:(?:Dr|Prof|Mr|Mrs|Ms)\.?(?:\s+{NAME_WORD}){{1,4}}(?:\s*[–—|,-].*)?"
    rf"|{NAME_WORD}(?:\s+{NAME_WORD}){{1,3}}\s*[–—|,-]\s*.*\b{_ROLE}s?\b.*)$"
)
BYLINE_WORDS = 12  # a byline is short; a longer line is a sentence of the text
BYLINE_CONFIDENCE = {"marked": 0.9, "signed": 0.75}  # the rule's own, not a fitted probability
_EDGE = 3  # sentences at the top and at the bottom of a document where a byline is looked for


def asks_for_overview(question: str) -> bool:
    """Whether `question` asks what a document is about, and nothing more."""
    return bool(_OVERVIEW.match(question))


def asks_for_conclusion(question: str) -> bool:
    """Whether `question` asks what a document concludes, and nothing more."""
    return bool(_CONCLUSION.match(question))


def asks_for_author(question: str) -> bool:
    """Whether `question` asks who wrote the document, and nothing more."""
    return bool(_AUTHOR.match(question))


def the_document(index: Store, sources: Collection[str] | None) -> str | None:
    """The one document a question within `sources` (None: the whole index) can mean, or None."""
    if sources is not None:
        return next(iter(sources)) if len(sources) == 1 else None
    documents = index.documents()
    return documents[0].source if len(documents) == 1 else None


def _its_chunks(index: Store, sources: Collection[str] | None) -> list[Chunk]:
    """The chunks of the one document a question within `sources` can mean; none when it can mean several."""
    source = the_document(index, sources)
    return list(index.document_chunks(source)) if source is not None else []


def overview(answer: Answer, index: Store, sources: Collection[str] | None, *, config: RagConfig) -> Answer:
    """`answer` replaced by the opening of the one document the question can mean (see the
    module), or unchanged when it can mean several. Its confidence: how close the opening's
    meaning is to the whole document's (`centrality`): a boilerplate first line scores low."""
    chunks = _its_chunks(index, sources)
    if not chunks:
        return answer
    first = min(chunks, key=lambda c: c.start)
    return _quoted(answer, index, chunks, first, _opening(first, config))


def conclusion(answer: Answer, index: Store, sources: Collection[str] | None, *, config: RagConfig) -> Answer:
    """`answer` replaced by the closing sentences of the one document the question can mean (its
    last ones before any signature), or unchanged when it can mean several; the confidence as
    for the opening (`centrality`)."""
    chunks = _its_chunks(index, sources)
    if not chunks:
        return answer
    last = max(chunks, key=lambda c: c.start)
    return _quoted(answer, index, chunks, last, _closing(last, config))


def _quoted(
    answer: Answer, index: Store, chunks: Sequence[Chunk], chunk: Chunk, spans: list[tuple[int, int]]
) -> Answer:
    """`answer` replaced by `spans` (sentences of `chunk`, one of the document's `chunks`) quoted
    and cited, with their `centrality` as its confidence; unchanged without spans."""
    if not spans:
        return answer
    confidence = centrality(index, chunks, chunk, [chunk.sentences.index(span) for span in spans])
    citations = tuple(
        Citation(
            n=n,
            source=chunk.source,
            start=start,
            end=end,
            page=chunk.page,
            quote=_sentence(chunk, (start, end)),
            passage=chunk.text,
            score=round(confidence, 4),
            passage_start=chunk.start,
        )
        for n, (start, end) in enumerate(spans, start=1)
    )
    return _cited(answer, citations, confidence)


def _cited(answer: Answer, citations: tuple[Citation, ...], confidence: float) -> Answer:
    """`answer` replaced by the quotes of `citations`, each marked with its number, at `confidence`."""
    text = " ".join(f"{c.quote} [{c.n}]" for c in citations)
    return replace(
        answer, text=text, abstained=False, tentative=False, confidence=confidence, citations=citations, candidate=text
    )


def centrality(index: Store, chunks: Sequence[Chunk], chunk: Chunk, positions: Sequence[int]) -> float:
    """The cosine, clipped to [0, 1], between the mean vector of the sentences at `positions` of
    `chunk` and the mean of the document's chunk vectors (`chunks`, all of one document)."""
    ids = [c.id for c in chunks]
    document = np.mean(np.stack(list(index.chunk_vectors(ids).values())), axis=0)
    opening = np.mean(index.sentence_vectors([chunk.id])[chunk.id][list(positions)], axis=0)
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


def _closing(chunk: Chunk, config: RagConfig) -> list[tuple[int, int]]:
    """The last sentences of `chunk` before any signature or byline (document offsets, in order):
    the last whatever its length, then more up to `answer_max_sentences` while they fit in
    `answer_max_words`."""
    spans: list[tuple[int, int]] = []
    words = 0
    for span in reversed(chunk.sentences):
        line = _sentence(chunk, span)
        if not spans and (not line.strip() or _byline_kind(line, at_bottom=True) is not None):
            continue  # the signature below the text
        words += len(line.split())
        if spans and (words > config.answer_max_words or len(spans) >= config.answer_max_sentences):
            break
        spans.insert(0, span)
    return spans


def byline(answer: Answer, index: Store, sources: Collection[str] | None) -> Answer:
    """`answer` replaced by the byline of the one document the question can mean, quoted and
    cited, or unchanged when it can mean several or the document has none (see the module)."""
    chunks = sorted(_its_chunks(index, sources), key=lambda c: c.start)
    if not chunks:
        return answer
    edges = [(chunks[0], span, "top") for span in chunks[0].sentences[:_EDGE]]
    edges += [(chunks[-1], span, "bottom") for span in chunks[-1].sentences[-_EDGE:]]
    for chunk, span, where in edges:
        line = _sentence(chunk, span)
        kind = _byline_kind(line, at_bottom=where == "bottom")
        if kind is None:
            continue
        confidence = BYLINE_CONFIDENCE[kind]
        quote = line.strip()
        start = span[0] + line.index(quote)
        citation = Citation(
            n=1,
            source=chunk.source,
            start=start,
            end=start + len(quote),
            page=chunk.page,
            quote=quote,
            passage=chunk.text,
            score=confidence,
            passage_start=chunk.start,
        )
        return _cited(answer, (citation,), confidence)
    return answer


def _byline_kind(line: str, *, at_bottom: bool) -> str | None:
    """What byline `line` is: "marked" ("By Jane Doe"), "signed" ("Dr. Jane Doe – Writer", at the
    bottom only), or None (none)."""
    line = line.strip()
    if not line or len(line.split()) > BYLINE_WORDS or any(ch.isdigit() for ch in line):
        return None
    if _MARKED.match(line):
        return "marked"
    if at_bottom and not line.endswith((".", "?", "!", ":")) and _SIGNED.match(line):
        return "signed"
    return None
