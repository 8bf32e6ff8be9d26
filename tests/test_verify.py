"""The verifier on the seed index with the real embedding model: planted unsupported sentences are
removed, supported ones kept and cited to the exact sentence, bad markers dropped, fallbacks."""

from __future__ import annotations

import json
import re

import pytest

from rag.answer import compose_answer
from rag.checker import combine, load_checker, quote_in_context
from rag.config import RagConfig
from rag.pipeline import RAG
from rag.replies import ABSTAIN_TEXT, REFUSAL_TEXT
from rag.retrieve import search
from rag.types import Answer
from rag.verify import best_evidence, is_refusal, split_claims, support_score, verify_answer

KURSK_QUESTION = "How many North Korean soldiers have arrived in Kursk?"
SUPPORTED = "Up to 8,000 North Korean soldiers have arrived in the Russian border region of Kursk."
PLANTED = "The soldiers are commanded by General Ri Chol-ho, who trained them in Siberia for two years."
NUMBER_CHANGED = "Up to 18,000 North Korean soldiers have arrived in the Russian border region of Kursk."
_MARKER = re.compile(r"\[(\d+)\]")


@pytest.fixture(scope="module")
def rag(seed_rag: RAG) -> RAG:
    return seed_rag


@pytest.fixture(scope="module")
def kursk(rag: RAG):
    """(config, passages as numbered in a prompt, the extractive answer, the number of the passage
    holding the 8,000 sentence)."""
    config = rag.config.replace(generator="local")
    vector = rag.embedder.encode_queries([KURSK_QUESTION])[0]
    hits = search(rag.index, KURSK_QUESTION, vector, config=config, top_k=5)
    extractive = compose_answer(KURSK_QUESTION, vector, hits, rag.index, config=config)
    assert not extractive.abstained and "8,000" in extractive.text
    n = next(k for k, h in enumerate(hits, start=1) if "up to 8,000 North Korean soldiers" in h.chunk.text)
    return config, hits, extractive, n


def _verify(rag: RAG, kursk, generated: str) -> Answer:
    config, hits, extractive, _ = kursk
    return verify_answer(
        KURSK_QUESTION,
        generated,
        hits,
        rag.index,
        rag.embedder,
        config=config,
        extractive=extractive,
        generator="local",
    )


def _check_citations(rag: RAG, answer: Answer, hits) -> None:
    """Markers in the text are exactly the citations, each quote an exact span of a retrieved passage."""
    assert [c.n for c in answer.citations] == list(range(1, len(answer.citations) + 1))
    assert {int(n) for n in _MARKER.findall(answer.text)} == {c.n for c in answer.citations}
    chunks = {(h.chunk.source, h.chunk.start): h.chunk for h in hits}
    for c in answer.citations:
        assert rag.index.document(c.source).text[c.start : c.end] == c.quote
        chunk = chunks[(c.source, c.passage_start)]
        assert chunk.text == c.passage and chunk.start <= c.start < c.end <= chunk.end


def test_a_planted_sentence_is_removed_and_a_supported_one_kept(rag: RAG, kursk) -> None:
    config, hits, _, n = kursk
    answer = _verify(rag, kursk, f"{SUPPORTED} [{n}] {PLANTED} [{n}]")

    assert answer.generator == "local" and not answer.abstained
    assert answer.text == f"{SUPPORTED} [1]"
    assert len(answer.citations) == 1 and "up to 8,000 North Korean soldiers" in answer.citations[0].quote
    _check_citations(rag, answer, hits)
    kept, removed = answer.sentences
    assert (kept.text, kept.citations, kept.supported) == (SUPPORTED, (1,), True)
    assert kept.support >= config.checker_threshold
    assert (removed.text, removed.citations, removed.supported) == (PLANTED, (), False)
    assert removed.support < config.checker_threshold
    data = json.loads(json.dumps(answer.to_json()))
    assert data["generator"] == "local"
    assert data["sentences"][1] == {
        "text": PLANTED,
        "citations": [],
        "supported": False,
        "support": round(removed.support, 4),
    }


def test_the_quote_is_the_one_sentence_that_supports_the_claim(rag: RAG, kursk) -> None:
    _, hits, _, n = kursk
    answer = _verify(
        rag,
        kursk,
        f"Blinken said that of the 10,000 troops that entered Russia, 8,000 were deployed in the Kursk area. [{n}]",
    )

    assert len(answer.citations) == 1
    quote = answer.citations[0].quote
    assert quote.startswith("Blinken stated that of the 10,000 North Korean troops") and quote.count(". ") == 0
    _check_citations(rag, answer, hits)


def test_a_changed_number_scores_below_the_true_sentence(rag: RAG, kursk) -> None:
    config, hits, _, n = kursk
    true, changed = best_evidence([SUPPORTED, NUMBER_CHANGED], [[hits[n - 1]], [hits[n - 1]]], rag.index, rag.embedder)

    assert true[0].score >= config.checker_threshold > changed[0].score
    assert changed[0].features[4] == 1.0  # number_missing
    assert 0.0 <= changed[0].score < true[0].score <= 1.0


def test_support_weights_come_from_the_config(rag: RAG, kursk) -> None:
    config, hits, _, n = kursk
    unchecked = config.replace(claim_checker=False)
    shipped = best_evidence([SUPPORTED], [[hits[n - 1]]], rag.index, rag.embedder, config=unchecked)[0][0]
    assert shipped.score == support_score(shipped.features, RagConfig().support_weights) >= config.support_threshold
    doubtful = unchecked.replace(support_weights=(-20.0, *config.support_weights[1:]))
    lowered = best_evidence([SUPPORTED], [[hits[n - 1]]], rag.index, rag.embedder, config=doubtful)[0][0]
    assert lowered.score < config.support_threshold


def test_the_checker_reads_the_quote_the_support_score_chose(rag: RAG, kursk) -> None:
    config, hits, _, n = kursk
    unchecked = best_evidence(
        [SUPPORTED], [[hits[n - 1]]], rag.index, rag.embedder, config=config.replace(claim_checker=False)
    )
    checked = best_evidence([SUPPORTED], [[hits[n - 1]]], rag.index, rag.embedder, config=config)
    before, after = unchecked[0][0], checked[0][0]
    assert (after.start, after.end, after.features) == (before.start, before.end, before.features)
    logit = float(load_checker().pair_logits([(SUPPORTED, quote_in_context(before.hit, before.start, before.end))])[0])
    assert after.score == combine(before.score, (logit, 0.0), config.checker_weights)


def test_a_wrong_relation_between_words_the_passage_holds_scores_lower(rag: RAG) -> None:
    """Every word of the planted sentence is in the cited passage; only who holds which office is wrong.
    The checker lowers its support below the true sentence's and below what the support score alone
    gives it (at the fitted weights it is still kept: the checker's margin on this long sentence is
    small, see eval/reports/support.json for how often such sentences are caught)."""
    question = "Who is the Deputy Secretary of State?"
    config = rag.config.replace(generator="local")
    vector = rag.embedder.encode_queries([question])[0]
    hits = search(rag.index, question, vector, config=config, top_k=5)
    extractive = compose_answer(question, vector, hits, rag.index, config=config)
    n = next(k for k, h in enumerate(hits, start=1) if "Kurt Campbell, the Deputy Secretary" in h.chunk.text)

    def verified(claim: str, cfg: RagConfig) -> Answer:
        generated = f"{claim} [{n}]"
        return verify_answer(
            question, generated, hits, rag.index, rag.embedder, config=cfg, extractive=extractive, generator="local"
        )

    true = "Kurt Campbell is the Deputy Secretary of State."
    wrong = "Daniel J. Kritenbrink is the Deputy Secretary of State."
    kept = verified(true, config).sentences[0]
    planted, unchecked = verified(wrong, config).sentences[0], verified(wrong, config.replace(claim_checker=False))
    assert kept.supported and kept.support > planted.support
    assert planted.support < unchecked.sentences[0].support


def test_markers_are_renumbered_in_order_of_first_use(rag: RAG, kursk) -> None:
    _, hits, _, n = kursk
    other = next(k for k, h in enumerate(hits, start=1) if "unfounded rumour" in h.chunk.text)
    generated = (
        f"A representative from Pyongyang at the United Nations called it an unfounded rumour [{other}]. "
        f"{SUPPORTED} [{n}][{other}]"
    )
    answer = _verify(rag, kursk, generated)

    assert [s.supported for s in answer.sentences] == [True, True]
    assert answer.sentences[0].citations == (1,)
    assert 2 in answer.sentences[1].citations
    assert answer.text.startswith(
        "A representative from Pyongyang at the United Nations called it an unfounded rumour. [1] "
    )
    _check_citations(rag, answer, hits)


def test_a_citation_to_a_passage_not_in_the_prompt_is_dropped(rag: RAG, kursk) -> None:
    _, hits, extractive, _ = kursk
    claims = split_claims(f"{SUPPORTED} [{len(hits) + 4}]", len(hits))
    assert claims[0].cited == () and claims[0].dropped == (len(hits) + 4,)

    answer = _verify(rag, kursk, f"{SUPPORTED} [{len(hits) + 4}]")
    assert answer.sentences[0].supported is False and answer.sentences[0].citations == ()
    assert answer.text == extractive.text  # nothing supported: the extractive answer


def test_nothing_supported_falls_back_to_the_extractive_answer(rag: RAG, kursk) -> None:
    _, hits, extractive, n = kursk
    answer = _verify(rag, kursk, f"{PLANTED} [{n}] {NUMBER_CHANGED} [{n}] A sentence without any citation.")

    assert (answer.text, answer.citations, answer.abstained) == (extractive.text, extractive.citations, False)
    assert answer.generator == "local" and [s.supported for s in answer.sentences] == [False, False, False]
    _check_citations(rag, answer, hits)


def test_the_refusal_sentence_abstains_keeping_the_candidate(rag: RAG, kursk) -> None:
    _, _, extractive, _ = kursk
    for generated in (REFUSAL_TEXT, f"[1] {REFUSAL_TEXT}", REFUSAL_TEXT.upper().rstrip(".")):
        answer = _verify(rag, kursk, generated)
        assert answer.abstained is True and answer.text == ABSTAIN_TEXT and answer.citations == ()
        assert answer.candidate == extractive.candidate and "8,000" in answer.candidate
        assert answer.generator == "local" and answer.sentences == ()


def test_marker_styles_and_copied_source_names_are_read() -> None:
    text = "[2] (notes.txt) Rome is in Italy. [1, 3] It is old.\nIt has seven hills [Passage 2][4]. It is."
    claims = split_claims(text, 3, sources=["notes.txt"])
    assert [(c.text, c.cited, c.dropped) for c in claims] == [
        ("Rome is in Italy.", (2,), ()),
        ("It is old.", (1, 3), ()),
        ("It has seven hills.", (2,), (4,)),
        ("It is.", (), ()),
    ]
    trailing = split_claims("Rome is in Italy. [2] It is old [1]. Rome is in Italy [3].", 3)
    assert [(c.text, c.cited) for c in trailing] == [("Rome is in Italy.", (2,)), ("It is old.", (1,))]
    assert is_refusal(REFUSAL_TEXT) and not is_refusal(f"{REFUSAL_TEXT[:-1]} because Rome is in Italy and old.")


def test_support_score_is_a_probability() -> None:
    assert (
        support_score([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0])
        < 0.01
        < 0.95
        < support_score([1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    )
    with pytest.raises(ValueError, match=r"support weights must have 9 values \(bias, .*\), got 1"):
        support_score([1.0, 0.5, 0.5, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0], [1.0])


def test_extractive_answers_list_their_quotes_as_sentences(rag: RAG) -> None:
    answer = rag.ask(KURSK_QUESTION)
    data = answer.to_json()

    assert answer.generator == "extractive" and data["generator"] == "extractive"
    assert [(s.text, s.citations, s.supported, s.support) for s in answer.sentences] == [
        (c.quote, (c.n,), True, 1.0) for c in answer.citations
    ]
    assert len(data["sentences"]) == len(answer.citations) >= 1
    assert set(data["timings_ms"]) == {"retrieve", "answer", "total"}


def test_generated_answers_skip_the_model_when_the_evidence_abstains(rag: RAG) -> None:
    config = RagConfig(generator="openai", llm_base_url="http://127.0.0.1:9/v1", llm_model="never-called")
    answer = rag.ask("What is the best recipe for sourdough bread?", config=config)  # no server is reached

    assert answer.abstained is True and answer.generator == "extractive" and answer.sentences == ()
    assert "generate" not in answer.timings_ms
