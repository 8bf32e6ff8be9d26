"""Checking a generated answer sentence by sentence against the passages it cites.

The model's reply is split into sentences (`rag.chunk.split_sentences`) and each sentence's `[n]`
markers are read (`[1]`, `[1, 2]`, `[1][3]`, at the end of the sentence or, as the local model
writes them, at its start). A marker naming no passage of the prompt is dropped; a sentence left
without a valid marker is unsupported. A cited sentence gets a support score in [0, 1] against
every sentence of each passage it cites, and against every pair of adjacent sentences; the best
is its support, and the best sentence (or pair) becomes its `Citation` quote, with document
offsets, as in the extractive answers. The best quote is then read by the claim checker
(`rag.checker`; a fragment's sentence also by the reader) and the support becomes the combination
of the three (`checked_evidence`). Only sentences whose support reaches
`RagConfig.checker_threshold` (`support_threshold` with `claim_checker` off) are kept; their
markers are renumbered to the answer's citations.
A fragment ("8,000", a name, a sentence cut off: see `is_statement`) is read as the answer to the
question and checked together with it, with weights of its own.

The support score is a logistic function of evidence features (see `SUPPORT_FEATURES`):
- `lexical`: the share of the sentence's IDF weight (stemmed content words) found in the quote;
- `semantic`: cosine between the sentence's embedding and the quote's (sentence vectors from the
  index, a pair's the normalised sum of its two);
- `passage_lexical`: the same share over the whole cited passage (words the passage never uses
  are a sign of invention);
- `number_missing`: 1 when the sentence holds a number that the quote does not;
- `name_missing`: the share of the sentence's capitalised words (names) that the passage lacks;
- `answer_lexical`: for a fragment checked with its question, the share of the fragment's own
  words in the quote (the question's words alone do not make a wrong answer right);
- `name_unquoted`: the share of the sentence's names that the quote lacks (a name the passage
  holds elsewhere, put in the wrong place, is a sign of a wrong relation);
- `key_unaligned`: for a statement, the share of its names and numbers that the quote never has
  next to the same word as the sentence does ("AD 1377" against "AD 1040 ... in 1377": the number
  is quoted, but attached to something else). See `unaligned`.
The weights are fitted by `python -m eval.support`: statements on ClapNQ, fragments on SQuAD 2.0
(eval/reports/support.json); they and the threshold live in rag/fitted.json (`support`) and reach
this module as `RagConfig.support_weights`, `fragment_support_weights` and `support_threshold`.
Word overlap and sentence embeddings see invented content well, but a wrong relation between words
the passage does hold ("the Deputy Secretary is Blinken" from a passage naming both) less well: the
last two features and the claim checker are for that, and the report measures how often it is caught.

Example:
    >>> [(c.text, c.cited) for c in split_claims("Paris is in France [1]. It is big [7].", 2)]
    [('Paris is in France.', (1,)), ('It is big.', ())]
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from rag.checker import checked_text, combine, fragment_logit, load_checker, quote_in_context
from rag.chunk import split_sentences
from rag.config import RagConfig
from rag.lexical import stem_terms, stop_words
from rag.numeric import sigmoid
from rag.replies import ABSTAIN_TEXT, REFUSAL_TEXT
from rag.types import Answer, CheckedSentence, Chunk, Citation, Hit

if TYPE_CHECKING:
    from rag.embed import Embedder
    from rag.store.base import Store

# The support score's features, in the order of the weights in rag/fitted.json (`support`). Statement
# weights are fitted on the calibration half of ClapNQ dev (report-half AUROC 0.977 against unsupported
# sentences: another passage's, or one fact changed); fragment weights (a short answer checked with
# its question, see `best_evidence`) on SQuAD 2.0 dev short answers (against another answer from the
# same paragraph, or another passage), their bias set so that the same support_threshold is best for
# both: report-half AUROC 0.869, weaker than for statements. With the claim checker and the reader
# (`checked_evidence`) the AUROCs are 0.978 and 0.919 (eval/reports/support.json, `checker`).
SUPPORT_FEATURES = (
    "bias",
    "lexical",
    "semantic",
    "passage_lexical",
    "number_missing",
    "name_missing",
    "answer_lexical",
    "name_unquoted",
    "key_unaligned",
)

_NUMBER = r"\d+(?:\s*(?:,|;|and|&)\s*(?:passage\s*)?\d+)*"
MARKER = re.compile(rf"\[\s*(?:passage\s*)?({_NUMBER})\s*\]", re.I)
_MARKERS = re.compile(rf"(?:\s*\[\s*(?:passage\s*)?{_NUMBER}\s*\])+", re.I)
_END_THEN_MARKERS = re.compile(rf"([.!?…]+[\"”’')\]]*)({_MARKERS.pattern})", re.I)
# Shorter sentences are not statements (see `is_statement`); eval/support.py measures sentences this long.
STATEMENT_WORDS = 4
_DIGITS = re.compile(r"\d[\d,.]*\d|\d")
_WORD = re.compile(r"[A-Za-z][\w'’-]*")
_TOKEN = re.compile(r"\w+")


@dataclass(frozen=True)
class Claim:
    """One generated sentence: its text without markers, the passage numbers it cites that exist
    in the prompt (`cited`), and those that do not (`dropped`)."""

    text: str
    cited: tuple[int, ...]
    dropped: tuple[int, ...] = ()


@dataclass(frozen=True)
class Evidence:
    """The best quote for a claim in one passage: `document.text[start:end]` is the quote."""

    hit: Hit
    start: int
    end: int
    features: tuple[float, ...]
    score: float

    @property
    def quote(self) -> str:
        chunk = self.hit.chunk
        return chunk.text[self.start - chunk.start : self.end - chunk.start]


def _numbers(group: str) -> list[int]:
    return [int(n) for n in re.findall(r"\d+", group)]


def _clean(text: str) -> str:
    text = MARKER.sub(" ", text)
    text = " ".join(text.split())
    return re.sub(r"\s+([.,;:!?…])", r"\1", text).strip()


def is_refusal(text: str) -> bool:
    """Whether `text` (markers aside) is the refusal sentence the prompt asks for.

    Example:
        >>> is_refusal("The passages do not answer the question.")
        True
    """

    def norm(s: str) -> str:
        return " ".join(re.findall(r"[a-z0-9]+", MARKER.sub(" ", s.lower())))

    said, refusal = norm(text), norm(REFUSAL_TEXT)
    return bool(said) and said.startswith(refusal) and len(said) <= len(refusal) + 20


def split_claims(text: str, n_passages: int, *, sources: Sequence[str] = ()) -> list[Claim]:
    """The sentences of a generated answer with the passage numbers each one cites.

    Markers at the end of a sentence (before or after its full stop) belong to it; when the text
    starts with a marker (the style the local model is steered into), each marker belongs to the
    sentence it starts. Numbers outside 1..`n_passages` are dropped. A passage's source name copied
    from the prompt ("(notes.txt)") is removed. Repeated sentences are kept once.

    Example:
        >>> [(c.text, c.cited) for c in split_claims("[2] Rome is in Italy. It is old.", 2)]
        [('Rome is in Italy.', (2,)), ('It is old.', ())]
    """
    for source in sources:
        text = re.sub(rf"\(\s*(?:from\s+|source:\s*)?{re.escape(source)}\s*\)", " ", text, flags=re.I)
    if not MARKER.match(text.lstrip()):
        # "It is old. [1] Next." -> "It is old [1]. Next.": the marker stays with its sentence.
        text = _END_THEN_MARKERS.sub(
            lambda m: " " + " ".join(x.group(0) for x in MARKER.finditer(m.group(2))) + m.group(1), text
        )
    claims: list[Claim] = []
    seen: set[str] = set()
    for a, b in split_sentences(text):
        sentence = text[a:b]
        numbers = list(dict.fromkeys(n for m in MARKER.finditer(sentence) for n in _numbers(m.group(1))))
        clean = _clean(sentence)
        key = " ".join(re.findall(r"\w+", clean.lower()))
        if not key or key in seen:
            continue
        seen.add(key)
        claims.append(
            Claim(
                clean,
                tuple(n for n in numbers if 1 <= n <= n_passages),
                tuple(n for n in numbers if not 1 <= n <= n_passages),
            )
        )
    return claims


def is_statement(text: str) -> bool:
    """Whether a generated sentence says something on its own: at least `STATEMENT_WORDS` words
    and closing punctuation. Anything else ("8,000", "The New York Times", a sentence cut off by
    the token limit) is read as an answer to the question, and checked together with it.

    Example:
        >>> is_statement("8,000"), is_statement("Up to 8,000 soldiers arrived in Kursk.")
        (False, True)
    """
    return len(text.split()) >= STATEMENT_WORDS and bool(re.search(r"[.!?…][\"”’')\]]*$", text))


# --- the support score ------------------------------------------------------------------------


def _number_set(text: str) -> set[str]:
    return {m.group(0).replace(",", "").rstrip(".") for m in _DIGITS.finditer(text)}


def _names(text: str) -> set[str]:
    """Capitalised words that are not a sentence's first word: names, mostly."""
    words = list(_WORD.finditer(text))
    out = set()
    for k, m in enumerate(words):
        word = m.group(0)
        if k == 0 or not word[0].isupper():
            continue
        before = text[: m.start()].rstrip()
        if before.endswith((".", "!", "?", ":", '"', "“")):
            continue
        out.add(word.lower().rstrip("'’s"))
    return out


def _share(terms: set[str], found: set[str], idf: Mapping[str, float]) -> float:
    total = sum(idf.get(t, 1.0) for t in terms)
    return sum(idf.get(t, 1.0) for t in terms & found) / total if total else 0.0


def support_score(features: Sequence[float], weights: Sequence[float] | None = None) -> float:
    """The logistic support score in [0, 1] of a feature row (in `SUPPORT_FEATURES` order), under
    `weights` (default: the statement weights, `RagConfig().support_weights`)."""
    if weights is None:
        weights = RagConfig().support_weights
    for name, values in (("support features", features), ("support weights", weights)):
        if len(values) != len(SUPPORT_FEATURES):
            raise ValueError(
                f"{name} must have {len(SUPPORT_FEATURES)} values ({', '.join(SUPPORT_FEATURES)}), got {len(values)}"
            )
    return sigmoid(float(sum(f * w for f, w in zip(features, weights))))


@dataclass(frozen=True)
class Span:
    """A candidate quote in a passage (document offsets) with its support features."""

    start: int
    end: int
    features: tuple[float, ...]


def evidence_spans(
    claims: Sequence[str],
    passages: Sequence[Sequence[Hit]],
    index: Store,
    embedder: Embedder,
    *,
    questions: Sequence[str | None] | None = None,
) -> list[list[list[Span]]]:
    """Every candidate quote for each claim in each of its passages, with its support features.

    `passages[i]` are the hits claim i is checked against; `result[i][j]` lists the spans of
    `passages[i][j]`: each sentence, then each pair of adjacent sentences. A claim with a question
    (`questions[i]`, for fragments: see `is_statement`) is checked as "question claim", and its
    `answer_lexical` feature is the share of the claim's own words in the quote (0 for statements).
    One embedding call for all claims; the passages' sentence vectors come from the index.
    """

    questions = list(questions) if questions is not None else [None] * len(claims)
    if not len(passages) == len(questions) == len(claims):
        raise ValueError(
            f"passages and questions must hold one entry per claim ({len(claims)}), "
            f"got {len(passages)} and {len(questions)}"
        )
    if not claims:
        return []
    checked = _checked_claims(claims, questions, embedder)
    sentences = _passage_sentences({h.chunk.id: h.chunk for hits in passages for h in hits}, index)
    idf = index.idf_weights(sorted(set().union(*(c.terms for c in checked))))
    return [
        [_passage_spans(claim, hit, sentences[hit.chunk.id], idf) for hit in hits]
        for claim, hits in zip(checked, passages)
    ]


@dataclass(frozen=True)
class _CheckedClaim:
    """A claim as the support features see it."""

    terms: set[str]  # the stemmed words of what is checked: the claim, after its question for a fragment
    own: set[str] | None  # a fragment's own stemmed words (`answer_lexical`); None for a statement
    numbers: set[str]
    names: set[str]
    vector: np.ndarray  # the embedding of what is checked
    keys: tuple[tuple[str, str, str], ...]  # a statement's names and numbers with their neighbours (`key_words`)


def _checked_claims(claims: Sequence[str], questions: Sequence[str | None], embedder: Embedder) -> list[_CheckedClaim]:
    """Each claim's words, numbers, names and vector (one embedding call, one stemming call each
    for the checked texts and for the claims alone)."""
    checked = [f"{q} {c}" if q else c for c, q in zip(claims, questions)]
    vectors = embedder.encode_queries(checked)
    checked_terms = [set(t) for t in stem_terms(checked)]
    own_terms = [set(t) for t in stem_terms(list(claims))]
    return [
        _CheckedClaim(
            terms,
            own if question else None,
            _number_set(claim),
            _names(claim),
            vector,
            () if question else key_words(claim),
        )
        for claim, question, terms, own, vector in zip(claims, questions, checked_terms, own_terms, vectors)
    ]


def content_words(text: str) -> list[str]:
    """`text`'s words, lowercased, stop words out (`rag.lexical.stop_words`), in order.

    Example:
        >>> content_words("It was built in 1040 by Bi Sheng.")
        ['built', '1040', 'bi', 'sheng']
    """
    stop = stop_words()
    return [w for w in _TOKEN.findall(text.lower()) if w not in stop]


def key_words(text: str) -> tuple[tuple[str, str, str], ...]:
    """Each word of `text`'s names and numbers (lowercased) with the content word before and after
    it ("" at either end; `content_words`).

    Example:
        >>> key_words("It was built in 1040 by Bi Sheng.")
        (('built', '1040', 'bi'), ('1040', 'bi', 'sheng'), ('bi', 'sheng', ''))
    """
    words = content_words(text)
    keys = {w for name in _names(text) for w in _TOKEN.findall(name)}
    keys |= {w for m in _DIGITS.finditer(text) for w in _TOKEN.findall(m.group(0))}
    return tuple(
        (words[i - 1] if i else "", w, words[i + 1] if i + 1 < len(words) else "")
        for i, w in enumerate(words)
        if w in keys
    )


def unaligned(keys: Sequence[tuple[str, str, str]], quote_words: Sequence[str]) -> float:
    """The share of `keys` (`key_words`) that the quote's content words (`content_words`) never
    have next to the same neighbour, on either side; 0 without keys.

    Example:
        >>> quote = content_words("It was built in 1040 by Bi Sheng, then in 1377.")
        >>> unaligned(key_words("It was built in 1377 by Bi Sheng."), quote)
        0.3333333333333333
    """
    if not keys:
        return 0.0
    pairs = set(zip(quote_words, quote_words[1:]))
    return sum(1 for before, w, after in keys if (before, w) not in pairs and (w, after) not in pairs) / len(keys)


@dataclass(frozen=True)
class _Sentences:
    """A passage's sentences as the support features see them."""

    terms: list[set[str]]  # stemmed content words of each sentence
    words: list[list[str]]  # each sentence's `content_words`
    numbers: list[set[str]]  # numbers of each sentence
    vectors: np.ndarray | None  # sentence vectors from the index; None when it stores none


def _passage_sentences(chunks: Mapping[int, Chunk], index: Store) -> dict[int, _Sentences]:
    """The sentences of each chunk (by id), stemmed in one call, with their vectors from the index."""
    vectors = index.sentence_vectors(list(chunks))
    texts = {cid: [c.text[a - c.start : b - c.start] for a, b in c.sentences] for cid, c in chunks.items()}
    flat = [t for cid in chunks for t in texts[cid]]
    flat_terms = iter(stem_terms(flat) if flat else [])
    return {
        cid: _Sentences(
            [set(next(flat_terms)) for _ in texts[cid]],
            [content_words(t) for t in texts[cid]],
            [_number_set(t) for t in texts[cid]],
            vectors.get(cid),
        )
        for cid in chunks
    }


def _passage_spans(claim: _CheckedClaim, hit: Hit, sentences: _Sentences, idf: Mapping[str, float]) -> list[Span]:
    """The candidate quotes for `claim` in one passage with their features (`SUPPORT_FEATURES`):
    each sentence, then each pair of adjacent sentences."""
    chunk = hit.chunk
    terms, numbers = sentences.terms, sentences.numbers
    passage_lexical = _share(claim.terms, set().union(*terms), idf)
    passage_lower = chunk.text.lower()
    names = claim.names
    name_missing = sum(1 for n in names if n not in passage_lower) / len(names) if names else 0.0
    words = sentences.words
    spans = []
    n = len(terms)
    for first, last in [(k, k) for k in range(n)] + [(k, k + 1) for k in range(n - 1)]:
        span_terms = terms[first] | terms[last]
        quoted = words[first] if first == last else words[first] + words[last]
        quoted_text = " ".join(quoted)
        features = (
            1.0,
            _share(claim.terms, span_terms, idf),
            _semantic(claim.vector, sentences.vectors, first, last, hit),
            passage_lexical,
            1.0 if claim.numbers - (numbers[first] | numbers[last]) else 0.0,
            name_missing,
            _share(claim.own, span_terms, idf) if claim.own is not None else 0.0,
            sum(1 for name in names if " ".join(_TOKEN.findall(name)) not in quoted_text) / len(names)
            if names
            else 0.0,
            unaligned(claim.keys, quoted),
        )
        spans.append(Span(chunk.sentences[first][0], chunk.sentences[last][1], features))
    return spans


def _semantic(vector: np.ndarray, vecs: np.ndarray | None, first: int, last: int, hit: Hit) -> float:
    """Cosine between a claim's vector and sentences `first`..`last` of the passage (a pair's
    vector: the normalised sum of its two)."""
    if vecs is None or last >= len(vecs):  # no sentence vectors stored: the passage's own cosine to the query
        return hit.dense
    v = vecs[first] + vecs[last] if last != first else vecs[first]
    return float(v @ vector) / max(float(np.linalg.norm(v)), 1e-9)


def best_evidence(
    claims: Sequence[str],
    passages: Sequence[Sequence[Hit]],
    index: Store,
    embedder: Embedder,
    *,
    question: str | None = None,
    threshold: float | None = None,
    config: RagConfig | None = None,
) -> list[list[Evidence]]:
    """For each claim, the best quote (a sentence, or two adjacent ones) in each of its passages.

    `result[i][j]` is the evidence for `claims[i]` in `passages[i][j]`. With `question`, a claim
    that is not a statement (`is_statement`) is checked as the answer to it, with
    `config.fragment_support_weights`; statements use `config.support_weights` (`config`: default
    `RagConfig()`). With a `threshold` (on the support score's scale), the best single sentence
    reaching it is preferred to a higher-scoring pair (the shortest quote that supports the claim);
    without, the highest score wins. With `config.claim_checker`, each chosen quote is then read by
    the claim checker and its score becomes the checked support (`rag.checker.combine`), which
    `config.checker_threshold` judges.

    Example:
        >>> ev = best_evidence(["Up to 8,000 soldiers arrived."], [hits[:1]], index, embedder)  # doctest: +SKIP
        >>> ev[0][0].quote, round(ev[0][0].score, 2)  # doctest: +SKIP
        ('US Secretary of State Antony Blinken reported ... coming days.', 0.97)
    """
    config = config or RagConfig()
    questions = [None if question is None or is_statement(c) else question for c in claims]
    out = []
    for q, hits, rows in zip(
        questions, passages, evidence_spans(claims, passages, index, embedder, questions=questions)
    ):
        weights = config.support_weights if q is None else config.fragment_support_weights
        found = []
        for hit, spans in zip(hits, rows):
            score, span = choose_span(spans, len(hit.chunk.sentences), weights, threshold)
            if span is None:  # a passage without sentences (indexed text always has some): no support
                span = Span(hit.chunk.start, hit.chunk.start, (1.0,) + (0.0,) * (len(SUPPORT_FEATURES) - 1))
            found.append(Evidence(hit, span.start, span.end, span.features, score))
        out.append(found)
    return checked_evidence(claims, questions, out, config) if config.claim_checker else out


def choose_span(
    spans: Sequence[Span], n_singles: int, weights: Sequence[float], threshold: float | None
) -> tuple[float, Span | None]:
    """The quote chosen among one passage's `spans` (its `n_singles` sentences first, then pairs)
    and its support score: the best single sentence reaching `threshold`, else the best span;
    (0, None) for a passage without sentences."""
    scored = [(support_score(s.features, weights), s) for s in spans]
    singles = [x for x in scored[:n_singles] if threshold is not None and x[0] >= threshold]
    return max(singles or scored, key=lambda x: x[0], default=(0.0, None))


def checked_evidence(
    claims: Sequence[str], questions: Sequence[str | None], evidence: Sequence[Sequence[Evidence]], config: RagConfig
) -> list[list[Evidence]]:
    """`evidence` (per claim, per passage) with each score replaced by the checked support
    (`rag.checker.combine`): the support score, the claim checker's logit on the quote in its
    context, and for a fragment (a claim with a question) the reader's logit on the sentence that
    holds it, under the config's checker weights for statements or fragments. One checker call
    for all quotes; an empty quote keeps its score."""
    from rag.reader import Reader

    pairs = [
        (checked_text(claim, q), quote_in_context(e.hit, e.start, e.end))
        for claim, q, row in zip(claims, questions, evidence)
        for e in row
        if e.end > e.start
    ]
    logits = iter(load_checker().pair_logits(pairs) if pairs else [])
    reader = Reader.load() if any(q is not None for q in questions) else None
    out = []
    for claim, q, row in zip(claims, questions, evidence):
        weights = config.checker_weights if q is None else config.checker_fragment_weights
        checked = []
        for e in row:
            if e.end <= e.start:
                checked.append(e)
                continue
            read = fragment_logit(q, claim, e.hit, reader) if q is not None and reader is not None else 0.0
            checked.append(dataclasses.replace(e, score=combine(e.score, (float(next(logits)), read), weights)))
        out.append(checked)
    return out


# --- the verified answer ----------------------------------------------------------------------


def verify_answer(
    question: str,
    generated: str,
    hits: Sequence[Hit],
    index: Store,
    embedder: Embedder,
    *,
    config: RagConfig,
    extractive: Answer,
    generator: str,
) -> Answer:
    """The answer made of the generated sentences that their cited passages support.

    `hits` are the passages as numbered in the prompt ([1] is `hits[0]`); `extractive` is
    `rag.answer.compose_answer`'s answer to the same question, used when the model refused (its
    abstention, keeping `candidate`) or when no sentence is supported (the extractive answer,
    which may itself abstain). `Answer.sentences` lists every generated sentence, kept or removed;
    a kept sentence's `citations` are its numbers in `Answer.citations`, a removed one's are ().

    Example:
        >>> a = verify_answer(q, "Up to 8,000 soldiers arrived [1].", hits, index, embedder,  # doctest: +SKIP
        ...                   config=config, extractive=extractive, generator="local")
        >>> a.text, a.sentences[0].supported  # doctest: +SKIP
        ('Up to 8,000 soldiers arrived. [1]', True)
    """
    hits = list(hits)
    claims, refused = _read_reply(generated, hits)
    if refused:
        return _replace(extractive, text=ABSTAIN_TEXT, abstained=True, citations=(), generator=generator, sentences=())
    evidence = _cited_evidence(question, claims, hits, index, embedder, config=config)
    threshold = config.checker_threshold if config.claim_checker else config.support_threshold
    checked, citations = _judge(claims, evidence, threshold)
    parts = [s.text + "".join(f" [{n}]" for n in s.citations) for s in checked if s.supported]
    if not parts:
        return _replace(extractive, generator=generator, sentences=tuple(checked))
    text = " ".join(parts)
    return _replace(
        extractive,
        text=text,
        abstained=False,
        citations=tuple(citations),
        candidate=text,
        generator=generator,
        sentences=tuple(checked),
    )


def _read_reply(generated: str, hits: Sequence[Hit]) -> tuple[list[Claim], bool]:
    """The claims of the model's reply, its refusal sentences left out, and whether the reply is a
    refusal: it says the refusal sentence and cites nothing besides."""
    claims = split_claims(generated, len(hits), sources=sorted({h.chunk.source for h in hits}))
    refusals = [c for c in claims if is_refusal(c.text)]
    claims = [c for c in claims if not is_refusal(c.text)]
    return claims, bool(refusals) and not any(c.cited for c in claims)


def _cited_evidence(
    question: str, claims: Sequence[Claim], hits: Sequence[Hit], index: Store, embedder: Embedder, *, config: RagConfig
) -> list[list[Evidence]]:
    """For each claim, the best quote in each passage it cites (`hits[n - 1]` for its `[n]`);
    [] for a claim that cites none."""
    cited = [c for c in claims if c.cited]
    found = iter(
        best_evidence(
            [c.text for c in cited],
            [[hits[n - 1] for n in c.cited] for c in cited],
            index,
            embedder,
            question=question,
            threshold=config.support_threshold,
            config=config,
        )
    )
    return [next(found) if c.cited else [] for c in claims]


def _judge(
    claims: Sequence[Claim], evidence: Sequence[Sequence[Evidence]], threshold: float
) -> tuple[list[CheckedSentence], list[Citation]]:
    """Each claim judged against its evidence (see `_check`), and the citations of those kept."""
    citations = _Citations()
    checked = [_check(claim, found, threshold, citations) for claim, found in zip(claims, evidence)]
    return checked, citations.citations


class _Citations:
    """The verified answer's citations: one per distinct quote (source and offsets), numbered
    from 1 in the order the kept sentences first cite them."""

    def __init__(self) -> None:
        self.citations: list[Citation] = []
        self._numbers: dict[tuple[str, int, int], int] = {}

    def number(self, evidence: Evidence) -> int:
        """The number of `evidence`'s quote, cited anew when no kept sentence cited it yet."""
        chunk = evidence.hit.chunk
        key = (chunk.source, evidence.start, evidence.end)
        if key not in self._numbers:
            self._numbers[key] = len(self.citations) + 1
            self.citations.append(
                Citation(
                    n=self._numbers[key],
                    source=chunk.source,
                    start=evidence.start,
                    end=evidence.end,
                    page=chunk.page,
                    quote=evidence.quote,
                    passage=chunk.text,
                    score=round(evidence.score, 4),
                    passage_start=chunk.start,
                )
            )
        return self._numbers[key]


def _check(claim: Claim, found: Sequence[Evidence], threshold: float, citations: _Citations) -> CheckedSentence:
    """The claim as judged: supported when its best quote's score reaches `threshold`, citing
    every quote that does (best first); removed, citing nothing, otherwise."""
    support = max((e.score for e in found), default=0.0)
    if support < threshold:
        return CheckedSentence(claim.text, (), False, round(support, 4))
    numbers: list[int] = []
    for e in sorted(found, key=lambda e: -e.score):
        if e.score < threshold:
            continue
        n = citations.number(e)
        if n not in numbers:
            numbers.append(n)
    return CheckedSentence(claim.text, tuple(numbers), True, round(support, 4))


def _replace(answer: Answer, **changes: Any) -> Answer:
    return dataclasses.replace(answer, **changes)
