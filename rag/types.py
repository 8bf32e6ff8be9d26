"""The records that flow between stages. Small, frozen, plain."""

from __future__ import annotations

from dataclasses import KW_ONLY, asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from rag.scope import Scope


@dataclass(frozen=True)
class Page:
    """A page of a paged document (PDF): `text[start:end]` of the document is the page."""

    number: int  # 1-based, as a reader counts
    start: int
    end: int


@dataclass(frozen=True)
class Document:
    """One file's extracted text.

    `source` is the path relative to the ingested root, with forward slashes.
    `sha256` is the hash of the file's bytes (what incremental indexing compares).
    `ocr_pages` are the page numbers whose text was recognised by OCR (scans without a text layer);
    `skipped_pages` the (page number, reason) of pages left out (a scan with no OCR engine installed).
    `headings` are the (start, end) spans of the text's headings (HTML h1-h6 and <title>,
    Markdown `#` lines): the chunker keeps each as the context of its section, never as a
    sentence to quote. Read when chunking; the stores keep the chunks it shaped, not the spans.
    `modified` is the file's modification time (epoch seconds) when it was read; None when unknown
    (text not read from a file, or a document indexed before the time was recorded).
    """

    source: str
    text: str
    sha256: str
    pages: tuple[Page, ...] = ()
    _: KW_ONLY  # what readers add beyond the text: by name only, so a new field cannot take another's place
    ocr_pages: tuple[int, ...] = ()
    skipped_pages: tuple[tuple[int, str], ...] = ()
    headings: tuple[tuple[int, int], ...] = ()
    modified: float | None = None

    def page_at(self, offset: int) -> int | None:
        """The page number holding character `offset`, or None for unpaged documents."""
        for page in self.pages:
            if page.start <= offset < page.end:
                return page.number
        return self.pages[-1].number if self.pages and offset >= self.pages[-1].end else None


@dataclass(frozen=True)
class Chunk:
    """Whole sentences of one document. `document.text[start:end] == text`.

    `sentences` holds (start, end) offsets into the document text, one pair per sentence.
    """

    id: int
    source: str
    start: int
    end: int
    text: str
    page: int | None
    sentences: tuple[tuple[int, int], ...]


@dataclass(frozen=True, eq=False)  # compared by identity: arrays have no single truth value
class EmbeddedDocument:
    """A document ready for the index: its chunks (ids not assigned yet) and their vectors.

    `vectors[i]` is the L2-normalised vector of `chunks[i]` (`vectors` is float32, (n_chunks, dim));
    `sentence_vectors[i]` holds one vector per sentence of `chunks[i]` ((n_sentences, dim)).
    """

    document: Document
    chunks: tuple[Chunk, ...]
    vectors: np.ndarray
    sentence_vectors: tuple[np.ndarray, ...]

    def __post_init__(self) -> None:
        if not len(self.chunks) == len(self.vectors) == len(self.sentence_vectors):
            raise ValueError(
                f"need one vector and one sentence-vector array per chunk of {self.document.source}: "
                f"{len(self.chunks)} chunks, {len(self.vectors)} vectors, "
                f"{len(self.sentence_vectors)} sentence-vector arrays"
            )


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk. `score` orders hits (best first); `dense` is the cosine to the query."""

    chunk: Chunk
    score: float
    dense: float = 0.0
    bm25: float = 0.0


@dataclass(frozen=True)
class Citation:
    """One quoted sentence: `document.text[start:end] == quote`; `passage` is its chunk."""

    n: int
    source: str
    start: int
    end: int
    page: int | None
    quote: str
    passage: str
    score: float
    passage_start: int = 0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("passage_start")
        return data


@dataclass(frozen=True)
class CheckedSentence:
    """One sentence of an answer as the verifier judged it (see `rag.verify`).

    `text` is the sentence without its `[n]` markers. `citations` are its numbers in
    `Answer.citations` when it is shown (`supported`), and () when it was removed: the numbers
    the model wrote point into the prompt's passages, not into the answer's citations.
    `support` is the support score in [0, 1] (1.0 for an extractive quote, which is its own source).

    Example:
        >>> CheckedSentence("Paris is in France.", (1,), True, 0.93).supported
        True
    """

    text: str
    citations: tuple[int, ...]
    supported: bool
    support: float

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "citations": list(self.citations),
            "supported": self.supported,
            "support": round(self.support, 4),
        }


@dataclass(frozen=True)
class Answer:
    """What `ask` returns: the answer text with `[n]` markers and the citations they point to.

    `generator` names what was run to write the answer: "extractive", or the chat model backend
    ("local", "openai", "ollama"); "extractive" too when a model was configured but the evidence
    was too weak to ask it (the answer abstains). For a generated answer, `sentences` lists every
    sentence the model wrote, kept (supported) or removed; when none was supported, `text` is the
    extractive answer (or an abstention) while `generator` still names the model; when the model
    refused, the answer abstains with no sentences. For an extractive answer, `sentences` holds
    each quote (supported, support 1.0).
    """

    question: str
    text: str
    abstained: bool
    confidence: float
    citations: tuple[Citation, ...]
    hits: tuple[Hit, ...] = ()
    query: str = ""  # the retrieval query actually used (differs from `question` for follow-ups)
    timings_ms: dict[str, float] = field(default_factory=dict)
    features: tuple[float, ...] = ()  # the evidence features the confidence came from
    # The extractive answer the evidence pointed to, kept when abstaining (for evaluation and
    # for showing "nearest passages"); equal to `text` when not abstaining.
    candidate: str = ""
    generator: str = "extractive"
    sentences: tuple[CheckedSentence, ...] = ()
    # Confidence in the "not sure" band: `text` shows the closest passage marked as uncertain,
    # with its citation; `abstained` stays True (the system does not assert an answer).
    tentative: bool = False
    # The documents the question was searched in (`rag.scope`); None: all of them.
    scope: Scope | None = None
    # The collection (named index, `rag.collections`) it was asked of; None: a single index.
    collection: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The `rag ask --json` contract (its keys: `ANSWER_JSON_KEYS`)."""
        return {
            "question": self.question,
            "answer": self.text,
            "abstained": self.abstained,
            "tentative": self.tentative,
            "confidence": round(self.confidence, 4),
            "citations": [c.to_json() for c in self.citations],
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
            "generator": self.generator,
            "sentences": [s.to_json() for s in self.sentences],
            "scope": self.scope.to_json() if self.scope is not None else None,
            "collection": self.collection,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Answer:
        """The answer a `to_json()` object describes, for a conversation read back from storage:
        its text, confidence, citations and sentences (hits and features are not kept).

        >>> a = Answer("Q?", "A [1].", False, 0.9, (Citation(1, "a.txt", 0, 2, None, "A.", "A. B.", 0.8),))
        >>> Answer.from_json(a.to_json()).citations[0].quote
        'A.'
        """
        from rag.scope import Scope

        citations = tuple(Citation(**{k: c[k] for k in _CITATION_KEYS}) for c in data.get("citations") or ())
        sentences = tuple(
            CheckedSentence(s["text"], tuple(s["citations"]), bool(s["supported"]), float(s["support"]))
            for s in data.get("sentences") or ()
        )
        scope = data.get("scope")
        return cls(
            question=str(data["question"]),
            text=str(data["answer"]),
            abstained=bool(data["abstained"]),
            confidence=float(data["confidence"]),
            citations=citations,
            timings_ms=dict(data.get("timings_ms") or {}),
            candidate=str(data["answer"]),
            generator=str(data.get("generator") or "extractive"),
            sentences=sentences,
            tentative=bool(data.get("tentative")),
            scope=Scope.from_json(scope) if scope else None,
            collection=data.get("collection"),
        )


_CITATION_KEYS = tuple(f.name for f in fields(Citation) if f.name != "passage_start")  # as to_json writes


# The keys of `Answer.to_json()`: what `rag ask --json` and the `ask` API return for a question.
ANSWER_JSON_KEYS = frozenset(Answer(question="", text="", abstained=True, confidence=0.0, citations=()).to_json())
