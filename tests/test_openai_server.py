"""The `openai` generator against a real OpenAI-compatible HTTP server on loopback (no mock).

llama-cpp-python's server runs SmolLM2-135M-Instruct (see tests/serving_llm.py). Without
llama-cpp-python the tests skip locally with how to install it, and fail under CI=true (CI
installs it from vendor/wheels/: see vendor/README.md and the Makefile).

What the 135M model writes varies; what is checked holds for any reply: the answer is labelled
"openai", every sentence the model wrote is listed with a boolean `supported`, every quote is an
exact span of its document, and the answer either cites retrieved passages for its supported
sentences or falls back to the extractive answer (or abstains) when none is supported.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import skip_or_fail
from serving_llm import LlmServer, llama_cpp_missing
from serving_llm import llm_server as start_llm_server

KURSK_QUESTION = "How many North Korean soldiers have arrived in Kursk?"
MAX_NEW_TOKENS = 96
_MARKER = re.compile(r"\[(\d+)\]")


def _openai_flags(server: LlmServer) -> list[str]:
    """The CLI flags that point the `openai` generator at the llama.cpp server."""
    return [
        "--generator",
        "openai",
        "--llm-base-url",
        server.base_url,
        "--llm-model",
        server.model,
        "--llm-max-new-tokens",
        str(MAX_NEW_TOKENS),
    ]


@pytest.fixture(scope="session")
def llm_server(tmp_path_factory) -> LlmServer:
    reason = llama_cpp_missing()
    if reason:
        skip_or_fail(f"{reason} (the Makefile installs it)")
    log = tmp_path_factory.mktemp("llm-server") / "llama_cpp.server.log"
    try:
        server_cm = start_llm_server(log)
        server = server_cm.__enter__()
    except RuntimeError as exc:  # it exited or never answered: the message carries its log
        pytest.fail(str(exc))
    try:
        yield server
    finally:
        server_cm.__exit__(None, None, None)


@pytest.fixture(scope="module")
def seed_index(tmp_path_factory, embedder, copy_seed) -> Path:
    """The seed article indexed into a temporary folder (in-process, with the session's model)."""
    from rag.pipeline import build_index

    base = tmp_path_factory.mktemp("openai-index")
    copy_seed(base / "corpus")
    report = build_index([base / "corpus"], index_dir=base / "index", embedder=embedder)
    assert report.stats.added and not report.skipped
    return base / "index"


@pytest.fixture(scope="module")
def opened(seed_index: Path, embedder):
    from rag.pipeline import RAG

    rag = RAG.open(seed_index, embedder=embedder)
    yield rag
    rag.index.close()


@pytest.fixture(scope="module")
def extractive(opened):
    """The extractive generator's answer (no model): what an unsupported generation falls back to."""
    answer = opened.ask(KURSK_QUESTION)
    assert not answer.abstained and "8,000" in answer.text, answer.text
    return answer


def _openai_config(server: LlmServer):
    from rag.config import RagConfig

    return RagConfig(
        generator="openai", llm_base_url=server.base_url, llm_model=server.model, llm_max_new_tokens=MAX_NEW_TOKENS
    )


def test_server_speaks_the_openai_protocol(llm_server: LlmServer) -> None:
    """ChatOpenAI as it is, against the server: a reply, and a stream in several pieces."""
    from langchain_openai import ChatOpenAI

    # ChatOpenAI sends max_tokens as `max_completion_tokens`, which llama-cpp-python's server
    # ignores (it generates until the end of text): the limit also goes as `max_tokens`.
    chat = ChatOpenAI(
        base_url=llm_server.base_url,
        model=llm_server.model,
        api_key="not-needed",
        temperature=0,
        max_tokens=32,
        extra_body={"max_tokens": 32},
        timeout=120,
        max_retries=0,
    )
    reply = chat.invoke("What is the capital of France? Answer in one sentence.")
    assert isinstance(reply.content, str) and reply.content.strip(), reply
    assert reply.response_metadata.get("model_name") == llm_server.model, reply.response_metadata
    assert 0 < reply.usage_metadata["output_tokens"] <= 32, reply.usage_metadata

    pieces = [chunk.content for chunk in chat.stream("Name three colours, one per line.")]
    text_pieces = [p for p in pieces if isinstance(p, str) and p]
    assert len(text_pieces) >= 3, pieces
    assert len(text_pieces) <= 32 + 1, len(text_pieces)
    assert "".join(text_pieces).strip()


def _check_answer_json(data: dict, question: str) -> None:
    """The `rag ask --json` contract for a generated answer."""
    assert data["question"] == question
    assert data["generator"] == "openai"
    assert isinstance(data["sentences"], list)
    for sentence in data["sentences"]:
        assert isinstance(sentence["supported"], bool), sentence
        assert isinstance(sentence["text"], str) and isinstance(sentence["citations"], list), sentence
    if data["abstained"]:
        assert not data["citations"], data  # an explicit refusal claims nothing
    elif any(s["supported"] for s in data["sentences"]):
        numbers = {c["n"] for c in data["citations"]}
        assert numbers, data
        assert {int(n) for n in _MARKER.findall(data["answer"])} == numbers, data
        for s in data["sentences"]:
            if s["supported"]:
                assert s["text"] in data["answer"] and s["citations"] and set(s["citations"]) <= numbers, s
            else:
                assert not s["citations"], s  # removed sentences point nowhere


def _check_generated_answer(answer, rag, question: str, extractive) -> dict:
    """What every `openai` answer must satisfy, supported or not; returns its JSON form.

    `extractive` is the extractive generator's answer to the same question: what the answer falls
    back to when the verifier finds no generated sentence supported."""
    from rag.types import Answer

    assert isinstance(answer, Answer)
    assert answer.generator == "openai", answer.generator
    data = json.loads(json.dumps(answer.to_json()))  # as `rag ask --json` prints it
    _check_answer_json(data, question)
    # Every quote is an exact span of its document (generated or not, citations come from the index).
    for c in answer.citations:
        document = rag.index.document(c.source)
        assert document is not None, c.source
        assert document.text[c.start : c.end] == c.quote, c
    if answer.abstained:
        return data
    if any(s.supported for s in answer.sentences):
        # each quote lies inside a passage retrieved for this question
        chunks = [h.chunk for h in answer.hits]
        for c in answer.citations:
            assert any(ch.source == c.source and ch.start <= c.start and c.end <= ch.end for ch in chunks), c
    else:
        # nothing the model wrote was supported: it fell back to the extractive answer, as it is
        assert answer.text == extractive.text and answer.citations == extractive.citations, data
    return data


def test_ask_with_openai_generator_end_to_end(llm_server: LlmServer, opened, extractive) -> None:
    answer = opened.ask(KURSK_QUESTION, config=_openai_config(llm_server))

    assert answer.hits, "the question retrieved nothing from the seed index"
    data = _check_generated_answer(answer, opened, KURSK_QUESTION, extractive)
    # the evidence is strong (the extractive answer does not abstain), so the model was asked
    assert answer.timings_ms.get("generate", 0) > 0 and "verify" in answer.timings_ms, answer.timings_ms
    assert data["sentences"] or answer.abstained, data


def test_ask_stream_yields_text_before_the_answer(llm_server: LlmServer, opened, extractive) -> None:
    from rag.types import Answer

    items = list(opened.ask_stream(KURSK_QUESTION, config=_openai_config(llm_server)))

    assert items and isinstance(items[-1], Answer), items[-1:]
    pieces = items[:-1]
    assert pieces and all(isinstance(p, str) and p for p in pieces), pieces
    answer = items[-1]
    _check_generated_answer(answer, opened, KURSK_QUESTION, extractive)
    # the pieces are the model's draft: every sentence the verifier judged came from it
    draft = " ".join("".join(pieces).split())
    for s in answer.sentences:
        assert " ".join(s.text.split()[:3]) in draft, (s.text, draft)


def test_cli_ask_with_openai_generator(
    llm_server: LlmServer, seed_index: Path, extractive, rag_cli, tmp_path: Path
) -> None:
    result = rag_cli(
        [
            "ask",
            KURSK_QUESTION,
            "--index-dir",
            str(seed_index),
            *_openai_flags(llm_server),
            "--json",
        ],
        cwd=tmp_path,
    )

    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    data = json.loads(lines[0])
    _check_answer_json(data, KURSK_QUESTION)
    seed_text = {p.name: p.read_text(encoding="utf-8") for p in (seed_index.parent / "corpus").iterdir()}
    for c in data["citations"]:
        assert seed_text[c["source"]][c["start"] : c["end"]] == c["quote"], c
    if not data["abstained"] and not any(s["supported"] for s in data["sentences"]):
        assert data["answer"] == extractive.text, data  # fell back to the extractive answer


def test_a_follow_up_is_rewritten_by_the_server_model_before_retrieval(llm_server: LlmServer, opened) -> None:
    """With an OpenAI-compatible model, a follow-up goes to the model for rewriting first; what it
    returns (or `condense_query`'s result when its reply is not a usable question) is the query."""
    from rag.generate import chat_model, rewrite_question

    history = [(KURSK_QUESTION, "Up to 8,000 North Korean soldiers have arrived in the Kursk region. [1]")]
    config = _openai_config(llm_server)
    answer = opened.ask("What about their training?", history=history, config=config)

    assert answer.timings_ms.get("rewrite", 0) > 0, answer.timings_ms
    expected = rewrite_question(chat_model(config), "What about their training?", history)  # greedy: repeatable
    assert answer.query == expected and answer.query.endswith("?"), (answer.query, expected)


def test_rag_eval_runs_with_the_openai_generator(llm_server: LlmServer, embedder, tmp_path: Path) -> None:
    """`rag eval --generator openai`: the harness asks through the server and reports what the
    verifier did (the `generation` group) beside the usual metrics."""
    from eval.cli import main as eval_main

    root = Path(__file__).resolve().parents[1]
    questions = tmp_path / "qa.jsonl"
    rows = [json.loads(line) for line in (root / "eval" / "data" / "seed_qa.jsonl").read_text().splitlines()]
    questions.write_text("".join(json.dumps(r) + "\n" for r in rows if r["id"] in ("seed-001", "seed-029")))
    report_path = tmp_path / "openai.json"

    code = eval_main(
        [
            "--qa",
            str(questions),
            "--docs",
            str(root / "seeds"),
            *_openai_flags(llm_server),
            "--report",
            str(report_path),
        ]
    )

    assert code == 0
    report = json.loads(report_path.read_text())
    assert report["config"]["generator"] == "openai" and report["n_questions"] == 2
    generation = report["generation"]
    assert generation["asked_model"] > 0, generation  # both questions have strong evidence
    assert {"sentences_per_answer", "removed_share", "fallback_extractive", "generate_ms_p50"} <= set(generation)
    assert all("sentences" in q for q in report["per_question"])
    assert 0.0 <= report["answer"]["containment"] <= 1.0
