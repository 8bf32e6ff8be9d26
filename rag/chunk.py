"""Sentence splitting and token-budgeted chunks with exact character offsets.

Chunks are runs of whole sentences whose word-piece count (measured with the embedding model's own
tokenizer) stays within a budget below the model's window, so the model never truncates a chunk.
A sentence longer than the budget is cut at word boundaries into pieces that fit.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

from rag.types import Chunk, Document


class Tokenizer(Protocol):
    def __call__(self, texts: list[str], *, add_special_tokens: bool = ..., verbose: bool = ...) -> dict: ...


_ABBREVIATIONS = {
    "mr",
    "mrs",
    "ms",
    "dr",
    "prof",
    "st",
    "jr",
    "sr",
    "vs",
    "etc",
    "inc",
    "ltd",
    "co",
    "corp",
    "no",
    "gen",
    "sen",
    "rep",
    "gov",
    "lt",
    "col",
    "capt",
    "sgt",
    "maj",
    "adm",
    "fig",
    "figs",
    "eq",
    "vol",
    "pp",
    "ed",
    "eds",
    "al",
    "approx",
    "dept",
    "est",
    "mt",
    "ft",
    "jan",
    "feb",
    "mar",
    "apr",
    "jun",
    "jul",
    "aug",
    "sep",
    "sept",
    "oct",
    "nov",
    "dec",
    "e.g",
    "i.e",
    "cf",
    "ca",
    "op",
    "rev",
    "hon",
}
# End punctuation, optional closing quotes/brackets, then whitespace.
_END = re.compile(r"[.!?…]+[\"”’')\]]*(?=\s)")
_NEXT_START = re.compile(r"\s+[\"“‘'(\[]?[A-Z0-9À-ÖØ-Þ]")
_WORD_BEFORE = re.compile(r"([\w.]+)$")


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """(start, end) offsets of the sentences in `text[start:end]`, whitespace trimmed.

    Boundaries: end punctuation followed by a capitalised word (not after a known abbreviation or
    a single-letter initial), and line breaks unless the next line continues in lower case.

    Example:
        >>> t = "Dr. Smith met J. Doe. They talked."
        >>> [t[a:b] for a, b in split_sentences(t)]
        ['Dr. Smith met J. Doe.', 'They talked.']
    """
    end = len(text) if end is None else end
    cuts: list[int] = []
    for m in _END.finditer(text, start, end):
        if not _NEXT_START.match(text, m.end()):
            continue
        if m.group(0)[0] == "." and _is_abbreviation(text, m.start()):
            continue
        cuts.append(m.end())
    for m in re.finditer(r"\n", text[start:end]):
        pos = start + m.start()
        nxt = text[pos + 1 : pos + 2]
        if not (nxt.islower() or nxt == ""):  # a wrapped line continues in lower case
            cuts.append(pos)
    spans: list[tuple[int, int]] = []
    prev = start
    for cut in sorted(set(cuts)) + [end]:
        if cut <= prev:
            continue
        a, b = _trim(text, prev, cut)
        if a < b:
            spans.append((a, b))
        prev = cut
    return spans


def _is_abbreviation(text: str, dot: int) -> bool:
    m = _WORD_BEFORE.search(text, max(0, dot - 12), dot)
    if not m:
        return False
    word = m.group(1)
    if len(word) == 1 and word.isupper():  # an initial: "J. Blinken"
        return True
    if "." in word and len(word.replace(".", "")) <= 3:  # "U.S", "e.g"
        return True
    return word.lower() in _ABBREVIATIONS


def _trim(text: str, a: int, b: int) -> tuple[int, int]:
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return a, b


def _split_long(
    text: str, span: tuple[int, int], n_tokens: int, budget: int, tokenizer: Tokenizer
) -> list[tuple[tuple[int, int], int]]:
    """Cut an over-long sentence at word boundaries into pieces of at most `budget` word pieces."""
    a, b = span
    words = [(m.start() + a, m.end() + a) for m in re.finditer(r"\S+", text[a:b])]
    counts = [
        len(ids)
        for ids in tokenizer([text[s:e] for s, e in words], add_special_tokens=False, verbose=False)["input_ids"]
    ]
    pieces: list[tuple[tuple[int, int], int]] = []
    i = 0
    while i < len(words):
        j, total = i, 0
        while j < len(words) and (total + counts[j] <= budget or j == i):
            total += counts[j]
            j += 1
        piece_start, piece_end = words[i][0], words[j - 1][1]
        if total > budget:  # a single "word" longer than the budget: cut it by characters
            # Word pieces are not spread evenly over the characters (",a,a" is one per character,
            # "xxxx" one per hundred), so shrink the cut until the piece really fits.
            while total > budget and piece_end - piece_start > 1:
                piece_end = piece_start + max(1, (piece_end - piece_start) * budget // total)
                total = _count(tokenizer, text[piece_start:piece_end])
            words[i] = (piece_end, words[i][1])
            counts[i] = _count(tokenizer, text[piece_end : words[i][1]])
            j = i if words[i][0] < words[i][1] else i + 1
        pieces.append(((piece_start, piece_end), total))
        i = j
    return pieces


def _count(tokenizer: Tokenizer, text: str) -> int:
    return len(tokenizer([text], add_special_tokens=False, verbose=False)["input_ids"][0])


def chunk_document(
    document: Document, tokenizer: Tokenizer, *, max_tokens: int, overlap_sentences: int = 0
) -> list[Chunk]:
    """Split a document into chunks of whole sentences within `max_tokens` word pieces.

    Chunks never cross a page boundary. A heading (`document.headings`) is the context of its
    section, not a sentence: it starts a new chunk, and is kept in that chunk's text (so
    embedding and BM25 see it) but never in its `sentences` (so it is never quoted); headings
    with nothing after them are left out, and a run of headings longer than half the budget is
    read as ordinary sentences. Returned chunks have `id == -1` (the store assigns ids).

    Example:
        >>> chunks = chunk_document(doc, model.tokenizer, max_tokens=200)  # doctest: +SKIP
        >>> all(doc.text[c.start:c.end] == c.text for c in chunks)  # doctest: +SKIP
        True
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    if overlap_sentences < 0:
        raise ValueError(f"overlap_sentences must be >= 0, got {overlap_sentences}")
    text = document.text
    segments: list[tuple[int, int, int | None]] = [(p.start, p.end, p.number) for p in document.pages] or [
        (0, len(text), None)
    ]
    headings = sorted(document.headings)
    sections = [(page, _sections(text, start, end, headings)) for start, end, page in segments]
    if headings and not any(body for _, parts in sections for _, body in parts):
        # Nothing but headings: they are all the document says, so they are its sentences.
        sections = [(page, _sections(text, start, end, [])) for start, end, page in segments]
    chunks: list[Chunk] = []
    for page, parts in sections:
        parts = [(heads, body) for heads, body in parts if body]
        counts = iter(_counts(tokenizer, text, [span for heads, body in parts for span in heads + body]))
        for heads, body in parts:
            lead = [(span, next(counts)) for span in heads]
            units = [(span, next(counts)) for span in body]
            chunks.extend(
                _chunk_section(text, lead, units, tokenizer, max_tokens, overlap_sentences, document.source, page)
            )
    return chunks


def _sections(
    text: str, start: int, end: int, headings: Sequence[tuple[int, int]]
) -> list[tuple[list[tuple[int, int]], list[tuple[int, int]]]]:
    """`text[start:end]` as (heading spans, sentence spans) sections: each run of headings with
    the sentences up to the next heading. The sentences before the first heading have no heading;
    headings with no sentence after them come last with an empty list."""
    sections: list[tuple[list[tuple[int, int]], list[tuple[int, int]]]] = []
    heads: list[tuple[int, int]] = []
    pos = start
    for a, b in headings:
        a, b = _trim(text, max(a, start), min(b, end))
        if a >= b or a < pos:  # outside this segment, empty, or overlapping the previous heading
            continue
        body = split_sentences(text, pos, a)
        if body:
            sections.append((heads, body))
            heads = []
        heads.append((a, b))
        pos = b
    sections.append((heads, split_sentences(text, pos, end)))
    return sections


def _chunk_section(
    text: str,
    lead: list[tuple[tuple[int, int], int]],
    body: list[tuple[tuple[int, int], int]],
    tokenizer: Tokenizer,
    max_tokens: int,
    overlap: int,
    source: str,
    page: int | None,
) -> list[Chunk]:
    """The chunks of one section, from its headings' and sentences' (span, word pieces): the
    headings open the first chunk, as context."""
    if sum(n for _, n in lead) > max_tokens // 2:  # not a heading but text in a heading's tags
        body, lead = lead + body, []
    budget = max_tokens - sum(n for _, n in lead)  # every piece fits beside the headings in the first chunk
    units: list[tuple[tuple[int, int], int]] = []
    for span, n in body:
        units.extend(_split_long(text, span, n, budget, tokenizer) if n > budget else [(span, n)])
    return _pack(text, units, max_tokens, overlap, source, page, lead=lead)


def _counts(tokenizer: Tokenizer, text: str, spans: Sequence[tuple[int, int]]) -> list[int]:
    if not spans:
        return []
    return [
        len(ids)
        for ids in tokenizer([text[a:b] for a, b in spans], add_special_tokens=False, verbose=False)["input_ids"]
    ]


def _pack(
    text: str,
    units: Sequence[tuple[tuple[int, int], int]],
    budget: int,
    overlap: int,
    source: str,
    page: int | None,
    *,
    lead: Sequence[tuple[tuple[int, int], int]] = (),
) -> list[Chunk]:
    """Runs of whole units within `budget`; the first run opens with the `lead` headings."""
    chunks: list[Chunk] = []
    i = 0
    while i < len(units):
        j, total = i, sum(n for _, n in lead) if i == 0 else 0
        while j < len(units) and total + units[j][1] <= budget:
            total += units[j][1]
            j += 1
        j = max(j, i + 1)
        sentences = tuple(span for span, _ in units[i:j])
        start, end = lead[0][0][0] if i == 0 and lead else sentences[0][0], sentences[-1][1]
        chunks.append(
            Chunk(id=-1, source=source, start=start, end=end, text=text[start:end], page=page, sentences=sentences)
        )
        if j >= len(units):
            break
        i = max(i + 1, j - overlap)
    return chunks
