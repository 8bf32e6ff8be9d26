"""Reader scoring in the pipeline: which sentences it reads, how hits are reordered, and the
"not sure" band between an answer and a refusal."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from rag.answer import QuestionTerms, ScoredSentence, compose_answer, quote_order
from rag.config import RagConfig
from rag.replies import TENTATIVE_PREFIX
from rag.rerank import in_context, prefilter, rerank_hits
from rag.types import Chunk, Hit


def _hit(cid: int, text: str, score: float) -> Hit:
    sentences, start = [], 0
    for part in text.split("|"):
        sentences.append((start, start + len(part)))
        start += len(part) + 1
    return Hit(Chunk(cid, f"d{cid}.txt", 0, len(text), text, None, tuple(sentences)), score)


def _sentence(rank: int, hit: Hit, k: int, score: float) -> ScoredSentence:
    a, b = hit.chunk.sentences[k]
    return ScoredSentence(rank, hit, a, b, score, score, 0.0, score)


def test_prefilter_reads_each_top_hit_then_the_best_of_the_rest() -> None:
    hits = [_hit(i, "A a.|B b.|C c.", 1.0 - i / 10) for i in range(4)]
    ranked = sorted(
        [_sentence(r, h, k, 0.9 - r * 0.01 - k * 0.1) for r, h in enumerate(hits) for k in range(3)],
        key=lambda s: -s.score,
    )
    config = RagConfig(rerank_depth=3, reader_sentences=5)
    chosen = prefilter(ranked, config=config)
    assert len(chosen) == 5
    assert {s.hit_rank for s in chosen[:3]} == {0, 1, 2}  # one per top hit first
    assert all(s.start == 0 for s in chosen[:3])  # each hit's best sentence
    assert len({(s.hit_rank, s.start) for s in chosen}) == 5  # no sentence twice


def test_in_context_takes_the_neighbouring_sentences_of_the_chunk() -> None:
    hit = _hit(0, "First one.|Second one.|Third one.", 1.0)
    candidate = in_context(_sentence(0, hit, 1, 0.5))
    assert (candidate.before, candidate.sentence, candidate.after) == ("First one.", "Second one.", "Third one.")
    first = in_context(_sentence(0, hit, 0, 0.5))
    assert first.before == "" and first.after == "Second one."


def test_a_table_row_is_read_without_the_rows_beside_it() -> None:
    hit = _hit(0, "Ferries of the harbour.|Ferry: Osprey; Cars: 88|Ferry: Gannet; Cars: 54|Fares rise in May.", 1.0)
    osprey, gannet = in_context(_sentence(0, hit, 1, 0.5)), in_context(_sentence(0, hit, 2, 0.5))
    assert (osprey.before, osprey.sentence, osprey.after) == ("Ferries of the harbour.", "Ferry: Osprey; Cars: 88", "")
    assert (gannet.before, gannet.after) == ("", "Fares rise in May.")
    prose = in_context(_sentence(0, hit, 3, 0.5))
    assert prose.before == "Ferry: Gannet; Cars: 54"  # a sentence of prose keeps its neighbours


def _five_hits_three_read() -> tuple[list[Hit], list[ScoredSentence]]:
    """Five hits in retrieval order; the reader read hits 0-2 and puts hit 2 first, hit 0 last."""
    hits = [_hit(i, "A a.|B b.", 0.05 - i / 100) for i in range(5)]
    read = [_sentence(0, hits[0], 0, 0.2), _sentence(2, hits[2], 1, 0.9), _sentence(1, hits[1], 0, 0.6)]
    return hits, read


def test_rerank_orders_the_top_hits_by_their_best_read_sentence_and_keeps_the_rest() -> None:
    hits, read = _five_hits_three_read()
    reranked, sentences = rerank_hits(hits, read, config=RagConfig(rerank_depth=3, rerank_fusion=False))
    assert [h.chunk.id for h in reranked] == [2, 1, 0, 3, 4]
    assert [h.score for h in reranked] == sorted((h.score for h in reranked), reverse=True)
    assert {s.hit.chunk.id: s.hit_rank for s in sentences} == {2: 0, 1: 1, 0: 2}
    unchanged, _ = rerank_hits(hits, read, config=RagConfig(rerank_depth=3, rerank=False))
    assert [h.chunk.id for h in unchanged] == [0, 1, 2, 3, 4]


def test_rerank_fusion_weighs_the_retrieval_order_as_much_as_the_readers() -> None:
    hits, read = _five_hits_three_read()  # hit 3 was not read
    fused, sentences = rerank_hits(hits, read, config=RagConfig(rerank_depth=4, rerank_fusion=True))
    # Hits 0 and 2 tie (first in one order, third in the other) and keep their retrieval order;
    # hit 1, second in both, comes next (1/61 + 1/61 < 1/60 + 1/62); the unread hit 3 follows.
    assert [h.chunk.id for h in fused] == [0, 2, 1, 3, 4]
    assert [h.score for h in fused] == sorted((h.score for h in fused), reverse=True)
    assert {s.hit.chunk.id: s.hit_rank for s in sentences} == {0: 0, 2: 1, 1: 2}
    # The reader alone would have put hit 0 last of the three.
    alone, _ = rerank_hits(hits, read, config=RagConfig(rerank_depth=4, rerank_fusion=False))
    assert [h.chunk.id for h in alone][:3] == [2, 1, 0]


def test_a_moved_hit_takes_the_rank_penalty_of_its_new_place_in_the_heuristic_score() -> None:
    hits, read = _five_hits_three_read()
    read = [replace(s, heuristic=0.5) for s in read]
    config = RagConfig(rerank_depth=3, rerank_fusion=False, rank_penalty=0.02)
    _, sentences = rerank_hits(hits, read, config=config)
    moved = {s.hit.chunk.id: s.heuristic for s in sentences}  # hit 2 went up two places, hit 0 down two
    assert moved == pytest.approx({2: 0.54, 1: 0.5, 0: 0.46})


def test_the_quote_follows_the_fused_order_and_the_confidence_the_readers_best() -> None:
    hit = _hit(0, "One sentence here.|Another sentence there.|A third one.", 0.9)
    # The reader puts sentence 0 first; the heuristic puts sentence 1 first and sentence 0 last.
    read = [
        replace(_sentence(0, hit, 0, 0.9), logit=2.2, heuristic=0.1),
        replace(_sentence(0, hit, 1, 0.8), logit=1.4, heuristic=0.7),
        replace(_sentence(0, hit, 2, 0.2), logit=-1.4, heuristic=0.5),
    ]
    quoted = {}
    confidences = set()
    for fusion in (True, False):
        config = RagConfig(
            answer_scorer="reader", sentence_fusion=fusion, reader_abstain_threshold=0.0, answer_max_sentences=1
        )
        terms = QuestionTerms(frozenset({"sentenc"}), {"sentenc": 1.0}, 1.0)
        answer = compose_answer(
            "Which sentence?", np.zeros(384), [hit], None, config=config, sentences=read, terms=terms
        )  # type: ignore[arg-type]
        quoted[fusion] = answer.citations[0].quote
        confidences.add(answer.confidence)
    assert quoted == {True: "Another sentence there.", False: "One sentence here."}
    assert len(confidences) == 1  # the confidence reads the reader's best sentence either way


def test_the_not_sure_band_shows_the_closest_passage_marked_and_cited(seed_rag) -> None:
    config = seed_rag.config.replace(
        answer_scorer="reader", reader_abstain_threshold=0.999, reader_tentative_threshold=0.0
    )
    answer = seed_rag.ask("What are the troops trained in?", config=config)
    assert answer.tentative and answer.abstained
    assert answer.text.startswith(TENTATIVE_PREFIX)
    assert len(answer.citations) == 1 and answer.citations[0].quote in answer.text
    data = answer.to_json()
    assert data["tentative"] is True and data["abstained"] is True
    refused = seed_rag.ask("What are the troops trained in?", config=config.replace(reader_tentative_threshold=0.999))
    assert refused.abstained and not refused.tentative and not refused.citations


@pytest.mark.parametrize(
    ("scorer", "reading"),
    [("reader", []), ("reader", ["--reader-sentences", "6", "--reader-tokens", "80"]), ("heuristic", [])],
)
def test_both_scorers_answer_through_the_cli(rag_cli, seed_rag, tmp_path, scorer: str, reading: list[str]) -> None:
    done = rag_cli(
        [
            "ask",
            "How many North Korean soldiers are in Kursk?",
            "--index-dir",
            str(seed_rag.index.dir),
            "--answer-scorer",
            scorer,
            *reading,
            "--json",
        ],
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert "tentative" in data and "8,000" in data["answer"] + "".join(c["quote"] for c in data["citations"])


def test_a_bad_answer_scorer_is_named() -> None:
    with pytest.raises(ValueError, match="answer_scorer must be one of reader, heuristic, got 'oracle'"):
        RagConfig(answer_scorer="oracle")  # type: ignore[arg-type]


def test_the_order_of_sentences_read_alone_is_a_third_say_in_the_quote() -> None:
    hit = _hit(0, "Row one.|Row two.|Row three.", 0.9)
    # The heuristic puts row one first, the reader in context row two: a tie, to the heuristic.
    read = [
        replace(_sentence(0, hit, 1, 0.9), logit=2.2, heuristic=0.5, quote_logit=1.5),
        replace(_sentence(0, hit, 0, 0.3), logit=-0.8, heuristic=0.6, quote_logit=-1.0),
        replace(_sentence(0, hit, 2, 0.2), logit=-1.4, heuristic=0.1),
    ]
    unread = [replace(s, quote_logit=None) for s in read]
    assert [s.start for s in quote_order(unread, config=RagConfig())] == [0, 9, 18]
    # Read alone, row two comes first again: it wins.
    assert [s.start for s in quote_order(read, config=RagConfig())] == [9, 0, 18]
    assert [s.start for s in quote_order(read, config=RagConfig(sentence_fusion=False))] == [9, 0, 18]


def test_the_table_row_asked_about_is_quoted_not_the_row_above_it(tmp_path, embedder) -> None:
    """Read beside the row that answers, the row above it scored higher: a row is read without the
    rows beside it (and, with `quote_alone`, the quote's candidates read again alone)."""
    from rag.pipeline import RAG, build_index
    from rag.reader import Reader
    from rag.rerank import read_and_rerank

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "fleet.html").write_text(
        "<html><body><p>The harbour runs three ferries from the north pier.</p>"
        "<table><tr><th>Ferry</th><th>Cars carried</th></tr><tr><td>Osprey</td><td>88</td></tr>"
        "<tr><td>Gannet</td><td>54</td></tr></table></body></html>",
        encoding="utf-8",
    )
    build_index([docs], index_dir=tmp_path / "index", embedder=embedder)
    rag = RAG.open(tmp_path / "index", embedder=embedder)
    question = "How many cars does the Gannet ferry carry?"
    try:
        config = rag.config.replace(answer_scorer="reader")
        answer = rag.ask(question, config=config)
        assert "Gannet" in answer.citations[0].quote and "Osprey" not in answer.citations[0].quote
        vector = embedder.encode_queries([question])[0]
        for k in (0, 1):
            _, read = read_and_rerank(
                question, vector, list(answer.hits), rag.index, Reader.load(), config=config.replace(quote_alone=k)
            )
            assert 0 < len(read) and sum(s.quote_logit is not None for s in read) <= 2 * k
    finally:
        rag.index.close()
