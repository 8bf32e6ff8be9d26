"""Extractive answers: score the sentences of the top hits, quote the best, cite, or abstain.

A sentence's score mixes three signals:
- `semantic`: cosine between the question and the sentence's contextual vector (from indexing);
- `lexical`: the share of the question's IDF weight (stemmed, stop words removed) the sentence holds,
  which finds the sentence that carries the answer where cosine alone prefers the one that restates
  the topic;
- `cue`: whether the sentence has what the question type asks for (a number for "how many", a
  name for "who", a date for "when").
Confidence is a logistic function of evidence features (see `FEATURES`) whose weights and the
abstention threshold are fitted on calibration data by `rag eval --calibrate`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from rag.config import RagConfig
from rag.lexical import idf, stem_terms
from rag.load.tables import is_row_sentence
from rag.lookup import Asked, asked_name, asked_statement, mentions, named_at, verb_forms
from rag.numeric import sigmoid
from rag.replies import ABSTAIN_TEXT, tentative_text
from rag.retrieve import reciprocal_rank_fusion
from rag.types import Answer, Citation, Hit

if TYPE_CHECKING:
    from rag.store.base import Store

FEATURES = (
    "bias",
    "top_dense",
    "best_semantic",
    "best_lexical",
    "cue",
    "best_score",
    "chunk_coverage",
    "missing_rare",
    "cue_missing",
)
# Confidence features with the reader: the evidence features above (computed on the reader's best
# sentence), its logit, and the best logit from another hit (a second passage agreeing). The reader
# alone separates adversarial unanswerable questions weakly (SQuAD 2.0 calibration AUROC 0.63):
# the fit on calibration rows weighs both.
READER_FEATURES = (*FEATURES, "best_logit", "other_hit_logit")

_NUMBER_WORDS = (
    r"one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|"
    r"hundred|hundreds|thousand|thousands|million|millions|billion|billions|dozen|dozens|half|percent"
)
_NUMBER = re.compile(rf"\d|\b({_NUMBER_WORDS})\b", re.I)
_DATE = re.compile(
    r"\d|\b(january|february|march|april|may|june|july|august|september|october|november|"
    r"december|monday|tuesday|wednesday|thursday|friday|saturday|sunday|today|yesterday|"
    r"century|decade|year|years|ago|since|until|during)\b",
    re.I,
)
_NAME = re.compile(r"(?<=[\w,;:)”\"’] )[A-Z][\w’'-]+")


@dataclass(frozen=True)
class ScoredSentence:
    hit_rank: int
    hit: Hit
    start: int
    end: int
    semantic: float
    lexical: float
    cue: float
    score: float
    logit: float | None = None  # the reader's, when it read this sentence (`score` is then its probability)
    heuristic: float | None = None  # the heuristic score, kept when the reader's replaces `score`
    # For the quote's candidates (`quote_alone`): the reader's logit on the sentence read alone,
    # without its neighbours.
    quote_logit: float | None = None

    @property
    def text(self) -> str:
        """The sentence itself."""
        chunk = self.hit.chunk
        return chunk.text[self.start - chunk.start : self.end - chunk.start]

    @property
    def position(self) -> int:
        """Where the sentence stands among its chunk's sentences (-1: not one of them)."""
        spans = self.hit.chunk.sentences
        return spans.index((self.start, self.end)) if (self.start, self.end) in spans else -1


def question_type(question: str) -> str:
    """'number', 'date', 'name', 'place' or 'other', from the question's wording."""
    q = question.lower()
    if re.search(r"\bhow (many|much|long|far|old|large|big|often)\b|\bwhat (number|percentage|amount)\b", q):
        return "number"
    if re.search(r"\bwhen\b|\bwhat (year|day|date|month|time)\b|\bwhich (year|day|date|month)\b", q):
        return "date"
    if re.search(r"\bwho(m|se)?\b", q):
        return "name"
    if re.search(r"\bwhere\b|\bwhich (country|city|region|place)\b", q):
        return "place"
    return "other"


def _cue(kind: str, sentence: str, question: str) -> float:
    if kind == "number":
        return 1.0 if _NUMBER.search(sentence) else 0.0
    if kind == "date":
        return 1.0 if _DATE.search(sentence) else 0.0
    if kind in ("name", "place"):
        q_words = set(re.findall(r"[\w’'-]+", question.lower()))
        return 1.0 if any(m.group(0).lower() not in q_words for m in _NAME.finditer(sentence)) else 0.0
    return 0.0


@dataclass(frozen=True)
class QuestionTerms:
    """The question's BM25 terms with their IDF over the index."""

    terms: frozenset[str]
    idf: dict[str, float]
    max_idf: float
    kind: str = "other"  # see `question_type`

    @classmethod
    def of(cls, question: str, index: Store) -> QuestionTerms:
        terms = frozenset(stem_terms([question])[0])
        n = max(len(index), 1)
        return cls(terms, index.idf_weights(sorted(terms)), idf(n, 0), question_type(question))

    def coverage(self, terms: set[str]) -> float:
        """Share of the question's IDF weight found among `terms`."""
        total = sum(self.idf.values())
        return sum(self.idf[t] for t in self.terms & terms) / total if total else 0.0

    def missing_rare(self, terms: set[str]) -> float:
        """The highest IDF (as a share of the highest possible) of a question term not in `terms`."""
        return max((self.idf[t] for t in self.terms - terms), default=0.0) / self.max_idf


def score_sentences(
    question: str,
    query_vector: np.ndarray,
    hits: Sequence[Hit],
    index: Store,
    *,
    config: RagConfig,
    terms: QuestionTerms | None = None,
    depth: int | None = None,
) -> list[ScoredSentence]:
    """Every distinct sentence of the top `depth` (default `answer_hits`) hits with its heuristic
    scores, best first."""
    hits = list(hits[: depth or config.answer_hits])
    vectors = index.sentence_vectors([h.chunk.id for h in hits])
    terms = terms or QuestionTerms.of(question, index)
    kind = terms.kind
    seen: set[tuple[str, int]] = set()
    candidates: list[tuple[int, Hit, int, int, float, str]] = []
    for rank, hit in enumerate(hits):
        vecs = vectors.get(hit.chunk.id)
        for k, (a, b) in enumerate(hit.chunk.sentences):
            if (hit.chunk.source, a) in seen:
                continue
            seen.add((hit.chunk.source, a))
            text = hit.chunk.text[a - hit.chunk.start : b - hit.chunk.start]
            if _asks(text):
                continue  # a question answers none: it stays the context of its neighbours
            semantic = float(vecs[k] @ query_vector.reshape(-1)) if vecs is not None and k < len(vecs) else hit.dense
            candidates.append((rank, hit, a, b, semantic, text))
    texts = [c[-1] for c in candidates]
    sentence_terms = stem_terms(texts) if texts else []
    # A chunk that opens with its section's headings (text before its first sentence): their words
    # count for every sentence of the chunk, as the context they are.
    heading_terms = [
        set(t) for t in stem_terms([h.chunk.text[: h.chunk.sentences[0][0] - h.chunk.start] for h in hits])
    ]
    scored = []
    w = config.semantic_weight
    for (rank, hit, a, b, semantic, text), s_terms in zip(candidates, sentence_terms):
        lexical = terms.coverage(set(s_terms) | heading_terms[rank])
        cue = _cue(kind, text, question)
        score = w * semantic + (1 - w) * lexical + config.cue_weight * cue - config.rank_penalty * rank
        scored.append(ScoredSentence(rank, hit, a, b, semantic, lexical, cue, score))
    scored.sort(key=lambda s: -s.score)
    return scored


# A sentence that ends with a question mark (before any closing quote or bracket).
_QUESTION_END = re.compile(r"\?[\s\"'”’»)\]]*$")


def _asks(sentence: str) -> bool:
    """Whether `sentence` is a question. A question is never quoted as an answer: a quiz page or
    a FAQ heading repeats the question asked ("Which country ...?"), and the reader, reading it
    next to the sentence that answers, scored it as if it answered. It is not even read: left
    to rank its passage, it took the reader's place from declarative sentences (news validation
    weeks: containment 0.619 without questions read, 0.610 with; hit@1 0.610 against 0.619).

    Example:
        >>> _asks("Where is Travis Kelce from?"), _asks('He asked: "why?"'), _asks("He won (why?) again.")
        (True, True, False)
    """
    return bool(_QUESTION_END.search(sentence))


def confidence_features(hits: Sequence[Hit], sentences: Sequence[ScoredSentence], terms: QuestionTerms) -> list[float]:
    """The evidence features, in `FEATURES` order, that the confidence is computed from.

    Beyond similarity, two features look for what adversarial unanswerable questions do: ask
    about a rare term that the best passage does not contain.
    """
    best = sentences[0] if sentences else None
    if best is None:
        return [1.0, max((h.dense for h in hits), default=0.0), 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    chunk_terms = set(stem_terms([best.hit.chunk.text])[0])
    # A typed question ("how many", "when", "who") whose best sentence lacks that type of answer.
    cue_missing = 1.0 if terms.kind != "other" and best.cue == 0.0 else 0.0
    return [
        1.0,
        max(h.dense for h in hits),
        best.semantic,
        best.lexical,
        best.cue,
        best.score,
        terms.coverage(chunk_terms),
        terms.missing_rare(chunk_terms),
        cue_missing,
    ]


def confidence(features: Sequence[float], weights: Sequence[float], *, names: Sequence[str] = FEATURES) -> float:
    if len(weights) != len(features):
        raise ValueError(
            f"confidence weights must have {len(features)} values ({', '.join(names)}), got {len(weights)}"
        )
    return sigmoid(float(sum(f * w for f, w in zip(features, weights))))


def _trim_words(text: str, start: int, end: int, q_terms: set[str], max_words: int) -> tuple[int, int]:
    """A window of at most `max_words` words of `text[start:end]`, where the question's terms are densest."""
    words = [(m.start() + start, m.end() + start) for m in re.finditer(r"\S+", text[start:end])]
    if len(words) <= max_words:
        return start, end
    hits = [1 if set(t) & q_terms else 0 for t in stem_terms([text[a:b] for a, b in words])]
    window = sum(hits[:max_words])
    best, best_i = window, 0
    for i in range(1, len(words) - max_words + 1):
        window += hits[i + max_words - 1] - hits[i - 1]
        if window > best:
            best, best_i = window, i
    return words[best_i][0], words[best_i + max_words - 1][1]


def _adjacent(candidate: ScoredSentence, chosen: Sequence[ScoredSentence]) -> bool:
    """Whether `candidate` is the sentence right before or after one already chosen."""
    for s in chosen:
        if s.hit.chunk.source != candidate.hit.chunk.source:
            continue
        spans = candidate.hit.chunk.sentences
        starts = [a for a, _ in spans]
        if candidate.start in starts:
            k = starts.index(candidate.start)
            neighbours = {spans[k - 1][0] if k > 0 else None, spans[k + 1][0] if k + 1 < len(spans) else None}
            if s.start in neighbours:
                return True
        gap = candidate.hit.chunk.text  # neighbours across chunks: nothing but whitespace between them
        lo, hi = (s.end, candidate.start) if s.end <= candidate.start else (candidate.end, s.start)
        if 0 <= hi - lo <= 3 and candidate.hit.chunk.start <= lo and hi <= candidate.hit.chunk.end:
            return not gap[lo - candidate.hit.chunk.start : hi - candidate.hit.chunk.start].strip()
    return False


def reader_features(hits: Sequence[Hit], sentences: Sequence[ScoredSentence], terms: QuestionTerms) -> list[float]:
    """The reader's confidence features, in `READER_FEATURES` order (sentences: read, best first)."""
    base = confidence_features(hits, sentences, terms)
    read = [(s.hit.chunk.id, s.logit) for s in sentences if s.logit is not None]
    if not read:
        return [*base, -10.0, -10.0]
    best_chunk, best = read[0]
    other = max((logit for chunk, logit in read[1:] if chunk != best_chunk), default=-10.0)
    return [*base, float(best), float(other)]


def answer_confidence(
    hits: Sequence[Hit], sentences: Sequence[ScoredSentence], terms: QuestionTerms, *, config: RagConfig
) -> tuple[float, list[float]]:
    """(confidence, features) for the configured answer scorer."""
    if config.answer_scorer == "reader":
        features = reader_features(hits, sentences, terms)
        return confidence(features, config.reader_confidence_weights, names=READER_FEATURES), features
    features = confidence_features(hits, sentences, terms)
    return confidence(features, config.confidence_weights), features


def compose_answer(
    question: str,
    query_vector: np.ndarray,
    hits: Sequence[Hit],
    index: Store,
    *,
    config: RagConfig,
    sentences: Sequence[ScoredSentence] | None = None,
    terms: QuestionTerms | None = None,
    previous: str | None = None,
) -> Answer:
    """Pick up to `answer_max_sentences` sentences (at most `answer_max_words` words in all) and
    cite each; answer when the confidence reaches the configured scorer's threshold, show the best
    sentence marked "not sure" in the band below it, refuse under that. `previous`: the question
    asked before this one in a chat, whose person a "he" or "she" may be (`rag.lookup`).

    `sentences` are the scored candidates, best first (the reader's, from `rag.rerank`); without
    them the heuristic scores the sentences of the top `answer_hits` hits, and its confidence and
    thresholds decide (whatever `config.answer_scorer` says: nothing was read)."""
    terms = terms or QuestionTerms.of(question, index)
    if sentences is None:
        if config.answer_scorer != "heuristic":
            config = config.replace(answer_scorer="heuristic")
        sentences = score_sentences(question, query_vector, hits, index, config=config, terms=terms) if hits else []
    sentences = list(sentences)
    conf, features = answer_confidence(hits, sentences, terms, config=config)
    refusal = Answer(
        question=question,
        text=ABSTAIN_TEXT,
        abstained=True,
        confidence=conf,
        citations=(),
        hits=tuple(hits),
        features=tuple(features),
    )
    if not sentences:
        return refusal
    ordered = quote_order(sentences, config=config)
    name = asked_name(question)
    named = False
    if name is not None:  # "Who is Kurt Campbell?": the sentences naming him (rag.lookup)
        refusal, ordered, named = _about_name(refusal, ordered, name)
    elif (asked := asked_statement(question, previous)) is not None:  # "What did Blinken warn?" (rag.lookup)
        refusal, ordered, named = _about_statement(refusal, ordered, asked, config=config)
    return _by_confidence(refusal, ordered, set(terms.terms), config=config, at_least_tentative=named)


def _about_name(refusal: Answer, ordered: list[ScoredSentence], name: str) -> tuple[Answer, list[ScoredSentence], bool]:
    """For a question asking who or what `name` is: the read sentences naming it first, the
    confidence at least the reader's probability for the best of them, and whether any does
    (see `rag.lookup`)."""
    naming: list[ScoredSentence] = []
    others: list[ScoredSentence] = []
    for s in ordered:
        (naming if s.logit is not None and mentions(s.text, name) else others).append(s)
    if not naming:
        return refusal, ordered, False
    best = max(naming, key=lambda s: s.score)
    lifted = replace(refusal, confidence=max(refusal.confidence, round(best.score, 4)))
    return lifted, [best, *(s for s in naming if s is not best), *others], True


def _about_statement(
    refusal: Answer, ordered: list[ScoredSentence], asked: Asked, *, config: RagConfig
) -> tuple[Answer, list[ScoredSentence], bool]:
    """For a question asking what was said (`rag.lookup.asked_statement`): the sentences that say
    it first, in their order, answered (the confidence at least the answer threshold), and whether
    any does. A sentence says it when it holds every word of the topic (stemmed; without a topic,
    a form of the verb: "warning" for "warn") and, when a speaker is named, names them or opens
    with "he", "she", "they" or "it" after a sentence of its paragraph that does."""
    if asked.topic is not None:
        wanted, verbs = set(stem_terms([asked.topic])[0]), set()
        if not wanted:
            return refusal, ordered, False  # "about it": no word to look for
    else:
        wanted, verbs = set(), {t for terms in stem_terms(list(verb_forms(asked.verb))) for t in terms}
    stating: list[ScoredSentence] = []
    others: list[ScoredSentence] = []
    for s, terms in zip(ordered, stem_terms([s.text for s in ordered])):
        says = (
            wanted <= set(terms)
            and (not verbs or _verb_after_speaker(s.text, verbs, asked.speaker))
            and _said_by(s, asked.speaker)
        )
        (stating if says else others).append(s)
    if not stating:
        return refusal, ordered, False
    answer_at, _ = config.thresholds()
    lifted = replace(refusal, confidence=max(refusal.confidence, answer_at))
    return lifted, [*stating, *others], True


def _verb_after_speaker(text: str, verbs: set[str], speaker: str | None) -> bool:
    """Whether `text` holds one of the verb stems `verbs`, after the speaker's first word where it
    names them: "Blinken reported that ..." says what Blinken reported, "The newspaper also reports
    that Blinken spoke ..." does not."""
    words = list(re.finditer(r"[\w’'-]+", text))
    at = next((w.start() for w, t in zip(words, stem_terms([w.group() for w in words])) if verbs & set(t)), None)
    if at is None:
        return False
    named = None if speaker is None else named_at(text, speaker)
    return named is None or named < at


# A sentence whose subject points back at someone named before it.
_SUBJECT_PRONOUN = re.compile(r"[\"“‘'(]?(?:he|she|they|it)\b", re.I)


def _said_by(s: ScoredSentence, speaker: str | None, *, look_back: int = 3) -> bool:
    """Whether `s` is said by `speaker` (None: the document, which says all of it): it names them,
    or it opens with a subject pronoun and one of the `look_back` sentences before it in its
    paragraph names them."""
    if speaker is None or _names(s.text, speaker):
        return True
    if not _SUBJECT_PRONOUN.match(s.text) or s.position <= 0:
        return False
    chunk = s.hit.chunk
    spans = chunk.sentences[max(0, s.position - look_back) : s.position]
    before = chunk.text[spans[0][0] - chunk.start : s.start - chunk.start]
    return _names(before.rsplit("\n\n", 1)[-1], speaker)


def _names(text: str, speaker: str) -> bool:
    """Whether `text` names `speaker`, or, for a name of capitalised words only, by its last word
    alone, as a person is named again after the first time ("Blinken stated ..." for Antony
    Blinken; not "State" for the Secretary of State)."""
    words = speaker.split()
    surname = len(words) > 1 and all(w[:1].isupper() for w in words)
    return mentions(text, speaker) or (surname and mentions(text, words[-1]))


def quote_order(sentences: Sequence[ScoredSentence], *, config: RagConfig) -> list[ScoredSentence]:
    """The order the quoted sentences are chosen in. Sentences the reader read (best first by its
    probability) are, with `sentence_fusion`, ordered by its order fused with the heuristic's by
    reciprocal rank (`rrf_k`), and with the order of the quote's candidates read again alone (their
    `quote_logit`) where there are any; the confidence stays the reader's best sentence's. A tie
    (the orders swap two sentences) goes to the heuristic's: the reader, reading a sentence with
    its neighbours, can score the one before the answer above the answer itself (the seed
    article's calibration questions: containment 0.78 against 0.72 with ties to the reader).

    Example:
        >>> from rag.types import Chunk
        >>> hit = Hit(Chunk(0, "a.txt", 0, 3, "A b", None, ((0, 3),)), 1.0)
        >>> a = ScoredSentence(0, hit, 0, 1, 0.5, 0.5, 0.0, 0.9, logit=2.0, heuristic=0.1)
        >>> b = ScoredSentence(0, hit, 2, 3, 0.5, 0.5, 0.0, 0.8, logit=1.0, heuristic=0.7)
        >>> c = ScoredSentence(0, hit, 1, 2, 0.5, 0.5, 0.0, 0.1, logit=-2.0, heuristic=0.5)
        >>> [s.start for s in quote_order([a, b, c], config=RagConfig())]
        [2, 0, 1]
        >>> [s.start for s in quote_order([a, b, c], config=RagConfig(sentence_fusion=False))]
        [0, 2, 1]
    """
    by_reader = [(i, s.score) for i, s in enumerate(sentences)]  # read best first
    # The quote's candidates (`quote_alone`) read again alone: a third order, of those only.
    by_alone = sorted(
        ((i, s.quote_logit) for i, s in enumerate(sentences) if s.quote_logit is not None), key=lambda t: -t[1]
    )
    heuristic = [s.heuristic for s in sentences]
    orders = [by_reader, by_alone] if by_alone else [by_reader]
    if config.sentence_fusion and None not in heuristic:
        orders.insert(0, sorted(((i, h) for i, h in enumerate(heuristic) if h is not None), key=lambda t: -t[1]))
    return [sentences[i] for i, _ in reciprocal_rank_fusion(orders, k=config.rrf_k)]


def _by_confidence(
    refusal: Answer,
    sentences: Sequence[ScoredSentence],
    q_terms: set[str],
    *,
    config: RagConfig,
    at_least_tentative: bool = False,
) -> Answer:
    """The answer `refusal.confidence` calls for: the chosen sentences, cited, at or above the
    answer threshold; in the "not sure" band (and below it, `at_least_tentative`: the name the
    question asks about is named there) the best sentence alone, marked as uncertain; below, the
    refusal. `candidate` holds the chosen sentences in all three."""
    conf, best = refusal.confidence, sentences[0]
    citations, parts = _cite(_choose(sentences, config), best, q_terms, config=config)
    text = " ".join(parts)
    answer_at, tentative_at = config.thresholds()
    if conf >= answer_at:
        return replace(refusal, text=text, abstained=False, citations=tuple(citations), candidate=text)
    if conf >= tentative_at or at_least_tentative:
        # the best sentence alone, marked as uncertain; `candidate` stays the full answer
        closest, _ = _cite([best], best, q_terms, config=config)
        return replace(
            refusal, text=tentative_text(closest[0].quote), tentative=True, citations=tuple(closest), candidate=text
        )
    return replace(refusal, candidate=text)


def _choose(sentences: Sequence[ScoredSentence], config: RagConfig) -> list[ScoredSentence]:
    """The answer's sentences: the best, then up to `answer_max_sentences` in all from the next
    candidates that score at least `second_sentence_ratio` of the best's (`_close_to`), share a
    term with the question and (with `adjacent_only`) come right before or after one already chosen."""
    best = sentences[0]
    chosen = [best]
    for s in sentences[1 : config.answer_max_sentences * 4]:
        if len(chosen) >= config.answer_max_sentences:
            break
        if (
            _close_to(s, best, config.second_sentence_ratio)
            and s.lexical > 0
            and (not config.adjacent_only or _adjacent(s, chosen))
        ):
            chosen.append(s)
    return chosen


def _close_to(s: ScoredSentence, best: ScoredSentence, ratio: float) -> bool:
    """Whether `s` scores at least `ratio` of `best`'s score; for sentences the reader read and
    ordered fused with the heuristic (`quote_order`), of its heuristic score as well: the fused
    best need not have the reader's best score, and a sentence only the reader likes (the row of
    another country in a table) is no second sentence."""
    if s.score < ratio * best.score:
        return False
    return s.heuristic is None or best.heuristic is None or s.heuristic >= ratio * best.heuristic


# A sentence opening with a pronoun points back at the sentence before it; "It is believed that",
# "It was shown by" point at nothing.
_ANAPHOR = re.compile(r"[\"“‘'(]?(?:he|she|it|its|it[’']s|they|their|his|her|this|these|those)\b", re.I)
_EXPLETIVE = re.compile(
    r"[\"“‘'(]?it (?:is|was|has been|had been|will be|would be|seems|seemed|appears|appeared)\b", re.I
)


def _with_antecedent(s: ScoredSentence, lo: int, hi: int, chosen: Sequence[ScoredSentence], words_left: int) -> int:
    """`lo` (the quote's start in `s`'s chunk), moved back to the start of the sentence before when
    the quote is `s` whole and opens with a pronoun ("It’s up 20% over the past week."): quoted
    alone it does not say what it speaks of. Only within the chunk and the paragraph, not for a
    table row nor "It is/was ..." (mostly "it is believed that"), when that sentence is not quoted
    already and both fit in `words_left`."""
    chunk = s.hit.chunk
    text = chunk.text
    quote = text[lo:hi]
    if lo != s.start - chunk.start or not _ANAPHOR.match(quote) or _EXPLETIVE.match(quote) or is_row_sentence(quote):
        return lo
    spans = chunk.sentences
    k = s.position
    if k <= 0 or any(c.start == spans[k - 1][0] for c in chosen):
        return lo
    before = spans[k - 1][0] - chunk.start
    between = text[before:lo]
    if "\n\n" in between or is_row_sentence(between) or len(text[before:hi].split()) > words_left:
        return lo  # not across a paragraph break
    return before


def _cite(
    chosen: Sequence[ScoredSentence], best: ScoredSentence, q_terms: set[str], *, config: RagConfig
) -> tuple[list[Citation], list[str]]:
    """Citations and "quote [n]" parts for the chosen sentences: fitted by rank (the best sentence
    is cut to the word limit if it must be; a continuation has to fit whole), read in document order."""
    spans: list[tuple[ScoredSentence, int, int]] = []
    words_left = config.answer_max_words
    for s in chosen:
        chunk = s.hit.chunk
        lo, hi = s.start - chunk.start, s.end - chunk.start
        if not spans:
            lo, hi = _trim_words(chunk.text, lo, hi, q_terms, words_left)
            lo = _with_antecedent(s, lo, hi, chosen, words_left)
        n_words = len(chunk.text[lo:hi].split())
        if spans and n_words > words_left:
            continue
        words_left -= n_words
        spans.append((s, lo, hi))
    spans.sort(key=lambda t: (t[0].hit_rank if t[0].hit.chunk.source != best.hit.chunk.source else -1, t[0].start))
    citations: list[Citation] = []
    parts: list[str] = []
    for s, lo, hi in spans:
        chunk = s.hit.chunk
        quote = chunk.text[lo:hi]
        n = len(citations) + 1
        citations.append(
            Citation(
                n=n,
                source=chunk.source,
                start=chunk.start + lo,
                end=chunk.start + hi,
                page=chunk.page,
                quote=quote,
                passage=chunk.text,
                score=round(s.score, 4),
                passage_start=chunk.start,
            )
        )
        parts.append(f"{quote} [{n}]")
    return citations, parts
