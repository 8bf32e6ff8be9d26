"""Chunking: exact offsets, the model window never exceeded, sentence overlap, page boundaries."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from rag.chunk import chunk_document, split_sentences
from rag.config import MODEL_MAX_TOKENS
from rag.types import Chunk, Document, Page


def _pathological_text() -> str:
    rng = random.Random(7)
    vocabulary = [
        "river",
        "mountain",
        "quantum",
        "xylophone",
        "harbour",
        "lantern",
        "meadow",
        "cobalt",
        "unbelievably",
        "antidisestablishmentarianism",
        "1987",
        "Zürich",
    ]
    no_punctuation = " ".join(rng.choice(vocabulary) for _ in range(600))
    return (
        "A short opening sentence. "
        + no_punctuation
        + "\n\nNow a long word: "
        + "x" * 2000  # one word-piece token ([UNK]) for 2,000 characters
        + " and another: "
        + "a," * 1000  # 2,000 characters, one word piece per character
        + " and a mixed one: "
        + ",a" * 500
        + "y" * 1000  # dense start, sparse end
        + " then "
        + "漢" * 2000  # CJK: one word piece per character
        + "\n\nA normal closing sentence. It has two parts."
    )


PATHOLOGICAL = Document("weird.txt", _pathological_text(), "0" * 64)


def _check_offsets(document: Document, chunks: list[Chunk]) -> None:
    assert chunks
    for c in chunks:
        assert document.text[c.start : c.end] == c.text
        assert c.sentences and c.sentences[0][0] == c.start and c.sentences[-1][1] == c.end
        for a, b in c.sentences:
            assert c.start <= a < b <= c.end
            assert c.text[a - c.start : b - c.start] == document.text[a:b]
        assert all(b1 <= a2 for (_, b1), (a2, _) in zip(c.sentences, c.sentences[1:]))


def _window(embedder, chunk: Chunk) -> int:
    return len(embedder.tokenizer(chunk.text, add_special_tokens=True)["input_ids"])


def test_split_sentences_returns_trimmed_spans() -> None:
    text = 'Dr. Smith met J. Doe in the U.S. last May. They talked!  Then? "They left." Fine'
    sentences = [text[a:b] for a, b in split_sentences(text)]

    assert sentences == ["Dr. Smith met J. Doe in the U.S. last May.", "They talked!", "Then?", '"They left."', "Fine"]


@pytest.mark.parametrize("overlap", [0, 1])
def test_offsets_round_trip_on_the_seed_article(embedder, seed_path: Path, overlap: int) -> None:
    text = seed_path.read_text(encoding="utf-8")
    document = Document(seed_path.name, text, "0" * 64)
    chunks = chunk_document(document, embedder.tokenizer, max_tokens=100, overlap_sentences=overlap)

    _check_offsets(document, chunks)
    assert len(chunks) >= 5
    covered = {a for c in chunks for a, _ in c.sentences}
    assert covered == {a for a, _ in split_sentences(text)}  # no sentence is lost


@pytest.mark.parametrize("max_tokens", [200, MODEL_MAX_TOKENS - 2])
@pytest.mark.parametrize("overlap", [0, 1])
def test_pathological_text_never_exceeds_the_model_window(embedder, max_tokens: int, overlap: int) -> None:
    chunks = chunk_document(PATHOLOGICAL, embedder.tokenizer, max_tokens=max_tokens, overlap_sentences=overlap)

    _check_offsets(PATHOLOGICAL, chunks)
    sizes = [_window(embedder, c) for c in chunks]
    assert max(sizes) <= min(max_tokens + 2, MODEL_MAX_TOKENS), sizes
    # Every character of every word is in some chunk: over-long units were cut, not dropped.
    spans = sorted((c.start, c.end) for c in chunks)
    text = PATHOLOGICAL.text
    reach = 0
    for a, b in spans:
        assert not text[reach:a].strip(), f"text lost between {reach} and {a}"
        reach = max(reach, b)
    assert not text[reach:].strip()


def test_a_600_word_sentence_is_cut_into_several_chunks(embedder) -> None:
    sentence = " ".join(["word"] + ["meadow"] * 599)
    document = Document("long.txt", sentence, "0" * 64)
    chunks = chunk_document(document, embedder.tokenizer, max_tokens=200)

    _check_offsets(document, chunks)
    assert len(chunks) == 3  # 600 word pieces in pieces of at most 200
    assert all(_window(embedder, c) <= 202 for c in chunks)
    assert sum(len(c.text.split()) for c in chunks) == 600


def _multi_sentence_document() -> Document:
    sentences = [f"Sentence number {i} talks about the topic of item {i} in some detail." for i in range(40)]
    return Document("many.txt", " ".join(sentences), "0" * 64)


def test_overlap_of_one_sentence_repeats_the_last_sentence(embedder) -> None:
    document = _multi_sentence_document()
    chunks = chunk_document(document, embedder.tokenizer, max_tokens=60, overlap_sentences=1)

    _check_offsets(document, chunks)
    assert len(chunks) >= 4
    for first, second in zip(chunks, chunks[1:]):
        assert first.sentences[-1] == second.sentences[0]
        assert set(first.sentences) & set(second.sentences) == {second.sentences[0]}


def test_overlap_of_zero_shares_nothing(embedder) -> None:
    document = _multi_sentence_document()
    chunks = chunk_document(document, embedder.tokenizer, max_tokens=60, overlap_sentences=0)

    _check_offsets(document, chunks)
    assert len(chunks) >= 4
    for first, second in zip(chunks, chunks[1:]):
        assert first.end < second.start
        assert not set(first.sentences) & set(second.sentences)
    assert sum(len(c.sentences) for c in chunks) == 40


def test_chunks_never_cross_pages(embedder) -> None:
    page_one = "Page one starts here. It is short."
    page_two = "Page two follows. It is short too."
    text = page_one + "\n\n" + page_two
    paged = Document(
        "doc.pdf", text, "0" * 64, pages=(Page(1, 0, len(page_one)), Page(2, len(page_one) + 2, len(text)))
    )
    unpaged = Document("doc.txt", text, "0" * 64)

    chunks = chunk_document(paged, embedder.tokenizer, max_tokens=200, overlap_sentences=1)

    assert len(chunk_document(unpaged, embedder.tokenizer, max_tokens=200)) == 1  # would fit in one
    _check_offsets(paged, chunks)
    assert [(c.page, c.text) for c in chunks] == [(1, page_one), (2, page_two)]


def test_chunks_of_a_real_pdf_stay_on_their_page(embedder, tmp_path: Path, make_pdf) -> None:
    from rag.load import load_document

    pages = [
        " ".join(f"Apple fact {i} is stated on the first page." for i in range(30)),
        " ".join(f"Zebra fact {i} is stated on the second page." for i in range(30)),
    ]
    document = load_document(make_pdf(tmp_path / "two.pdf", pages), "two.pdf")
    chunks = chunk_document(document, embedder.tokenizer, max_tokens=80, overlap_sentences=1)

    _check_offsets(document, chunks)
    assert {c.page for c in chunks} == {1, 2}
    for c in chunks:
        page = document.pages[c.page - 1]
        assert page.start <= c.start and c.end <= page.end
        assert ("Zebra" in c.text) == (c.page == 2) and ("Apple" in c.text) == (c.page == 1)


def test_bad_chunk_parameters_are_refused(embedder) -> None:
    with pytest.raises(ValueError, match="max_tokens must be >= 1, got 0"):
        chunk_document(PATHOLOGICAL, embedder.tokenizer, max_tokens=0)
    with pytest.raises(ValueError, match="overlap_sentences must be >= 0, got -1"):
        chunk_document(PATHOLOGICAL, embedder.tokenizer, max_tokens=10, overlap_sentences=-1)


def _with_headings(*blocks: tuple[str, bool]) -> Document:
    """A document of paragraphs separated by blank lines; `True` marks a heading."""
    text, headings = "", []
    for block, is_heading in blocks:
        text += "\n\n" if text else ""
        if is_heading:
            headings.append((len(text), len(text) + len(block)))
        text += block
    return Document("page.html", text, "0" * 64, headings=tuple(headings))


def test_a_heading_opens_its_chunk_as_context_and_is_never_a_sentence(embedder) -> None:
    document = _with_headings(
        ("The opening paragraph has no heading.", False),
        ("Ferry timetable", True),
        ("Boats leave the north pier at seven. They return at noon.", False),
        ("Lighthouse", True),
        ("Keepers", True),  # a run of headings opens one chunk together
        ("The keeper climbs 212 steps.", False),
        ("Closing heading with nothing after it", True),
    )
    chunks = chunk_document(document, embedder.tokenizer, max_tokens=200, overlap_sentences=1)

    assert [c.text for c in chunks] == [
        "The opening paragraph has no heading.",
        "Ferry timetable\n\nBoats leave the north pier at seven. They return at noon.",
        "Lighthouse\n\nKeepers\n\nThe keeper climbs 212 steps.",
    ]
    quotable = [document.text[a:b] for c in chunks for a, b in c.sentences]
    assert quotable == [
        "The opening paragraph has no heading.",
        "Boats leave the north pier at seven.",
        "They return at noon.",
        "The keeper climbs 212 steps.",
    ]
    for c in chunks:
        assert document.text[c.start : c.end] == c.text
        assert c.start <= c.sentences[0][0] and c.sentences[-1][1] == c.end


def test_a_long_section_opens_with_its_heading_once_and_stays_in_the_window(embedder) -> None:
    body = " ".join(f"Sentence number {i} talks about the harbour." for i in range(60))
    document = _with_headings(("Harbour notes", True), (body, False))
    chunks = chunk_document(document, embedder.tokenizer, max_tokens=60, overlap_sentences=1)

    assert len(chunks) > 3 and chunks[0].text.startswith("Harbour notes\n\nSentence number 0")
    assert all("Harbour notes" not in c.text for c in chunks[1:])
    assert all(_window(embedder, c) <= 62 for c in chunks)  # the budget plus [CLS] and [SEP]
    assert all(document.text[a:b] != "Harbour notes" for c in chunks for a, b in c.sentences)


def test_a_heading_run_over_half_the_budget_is_read_as_sentences(embedder) -> None:
    document = _with_headings(("Harbour " * 40, True), ("The pier is long.", False))
    chunks = chunk_document(document, embedder.tokenizer, max_tokens=60)

    assert document.text[slice(*chunks[0].sentences[0])].startswith("Harbour Harbour")


def test_a_document_of_headings_only_keeps_them_as_sentences(embedder) -> None:
    document = _with_headings(("Bakery", True), ("Opening hours", True))
    chunks = chunk_document(document, embedder.tokenizer, max_tokens=200)

    assert [document.text[a:b] for c in chunks for a, b in c.sentences] == ["Bakery", "Opening hours"]
