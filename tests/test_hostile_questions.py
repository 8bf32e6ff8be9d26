"""Hostile questions: Hypothesis throws arbitrary text at `RAG.ask` and at the UI's `ask` API.

Arbitrary Unicode, control characters, NUL bytes, lone surrogates, 100,000-character strings and
HTML/Markdown payloads. Every call must either return a well-formed answer (the JSON contract
serialises, every citation is a verbatim span of its document) or be refused as bad input with a
one-line message; over HTTP, refused with a clean Gradio error, never a server traceback.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rag.pipeline import RAG, BadInput, build_index
from rag.types import Answer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # bench/ is a folder of scripts beside the package, not installed

from bench.load import check_answer, rag_server  # noqa: E402

PAYLOADS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '"><svg onload=alert(1)>',
    "[click](javascript:alert(1))",
    "![x](javascript:alert(1))",
    "**bold** _it_ `code` # heading | a | b |",
    "$$\\frac{1}{0}$$",
    "{{7*7}} ${7*7} <%= 7*7 %>",
    "'; DROP TABLE chunks; --",
    "%s%s%n%x",
    "../../etc/passwd",
    "\u202eevil\u2066",
    "\x00\x01\x1b[2J\x7f",
    "How many North Korean soldiers <b>are</b> in Kursk?",
    "What did Blinken warn?\x00",
    "\ufeffWho met Chinese diplomats?",
    "\u200b",
    "   ",
    "",
]
LENGTHS = [1, 1999, 2000, 2001, 10_000, 100_000]
any_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=300)  # every code point but surrogates
controls = st.text(st.characters(max_codepoint=0x9F, categories=["Cc"]), max_size=40)
with_surrogates = st.text(st.characters(categories=["Cs", "Ll", "Zs"]), min_size=1, max_size=20)
long_text = st.builds(lambda piece, n: (piece * n)[:n], st.text(min_size=1, max_size=8), st.sampled_from(LENGTHS))
payloads = st.one_of(
    st.sampled_from(PAYLOADS),
    st.builds(lambda p, t: p + t, st.sampled_from(PAYLOADS), any_text),
    st.builds(lambda t, p: t + p, any_text, st.sampled_from(PAYLOADS)),
)
QUESTIONS = st.one_of(any_text, controls, with_surrogates, long_text, payloads)
SENDABLE = st.one_of(any_text, controls, long_text, payloads)  # JSON over HTTP cannot carry a lone surrogate


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory, embedder) -> Path:
    base = tmp_path_factory.mktemp("hostile_questions")
    shutil.copytree(ROOT / "seeds", base / "docs")
    (base / "docs" / "payloads.md").write_text(
        "# Payloads\n\nThe lantern keeper wrote <script>alert('doc')</script> in the log 12 times. "
        "The ferry notice read [click](javascript:alert(1)) on 3 boards.\n",
        encoding="utf-8",
    )
    build_index([base / "docs"], index_dir=base / "index", embedder=embedder)
    return base / "index"


@pytest.fixture(scope="module")
def rag(index_dir: Path, embedder) -> RAG:
    opened = RAG.open(index_dir, embedder=embedder)
    yield opened
    opened.index.close()


def _check_well_formed(rag: RAG, answer: Answer, question: str) -> None:
    data = answer.to_json()
    assert check_answer(data, question) is None, check_answer(data, question)
    assert json.loads(json.dumps(data, allow_nan=False, ensure_ascii=False)) == data
    assert len(data["question"]) <= rag.config.max_question_chars
    for c in answer.citations:
        document = rag.index.document(c.source)
        assert document is not None and document.text[c.start : c.end] == c.quote
        assert document.text[c.passage_start : c.passage_start + len(c.passage)] == c.passage


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(question=QUESTIONS)
def test_ask_answers_well_formed_or_refuses_as_bad_input(rag: RAG, question: str) -> None:
    try:
        answer = rag.ask(question)
    except BadInput as exc:
        message = str(exc)
        assert message and "\n" not in message and "question" in message, message
        return
    _check_well_formed(rag, answer, question)


@pytest.mark.slow
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(question=SENDABLE, history=st.lists(st.tuples(SENDABLE, st.text(max_size=40)), max_size=2))
def test_a_hostile_conversation_history_does_not_break_asking(
    rag: RAG, question: str, history: list[tuple[str, str]]
) -> None:
    try:
        answer = rag.ask(question, history=history)
    except BadInput as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    _check_well_formed(rag, answer, question)


@pytest.mark.parametrize(
    "question, message",
    [
        ("\ud800 How many soldiers?", "not valid Unicode"),
        ("\x00\x00 \t\n", "question is empty"),
        ("x" * 100_000, "100000 characters, over the limit of 2000"),
    ],
)
def test_known_bad_questions_get_their_reason(rag: RAG, question: str, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        rag.ask(question)


# ----------------------------------------------------------------------------------------------
# The same, over HTTP, against `rag serve`


@pytest.fixture(scope="module")
def served(index_dir: Path):
    log = index_dir.parent / "serve.log"
    with rag_server(index_dir, log=log) as running:
        from gradio_client import Client

        yield Client(running.url + "/", verbose=False, download_files=False), log, running.url


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    question=st.one_of(SENDABLE, st.none()),
    top_k=st.one_of(st.none(), st.integers(-3, 10**9), st.sampled_from([2.5, "7", "many", ""])),
    mode=st.one_of(st.none(), st.sampled_from(["dense", "bm25", "hybrid", "fuzzy", "", "<b>x</b>", "HYBRID"])),
)
def test_ask_api_returns_the_contract_or_a_clean_error(served, question, top_k, mode) -> None:
    from gradio_client.exceptions import AppError

    client, _, _ = served
    try:
        data = client.predict(question, top_k, mode, api_name="/ask")
    except AppError as exc:
        message = str(exc)
        assert message.strip() and "\n" not in message.strip(), message
        assert "Traceback" not in message and 'File "' not in message and "Internal Server Error" not in message
        assert any(word in message for word in ("question", "top_k", "mode")), message
        return
    assert check_answer(data, question) is None, (check_answer(data, question), data)


@pytest.mark.slow
@pytest.mark.parametrize(
    "question, top_k, message",
    [
        ('"How many North Korean soldiers have arrived in Kursk?"', "Infinity", "top_k must be a whole number"),
        ('"How many North Korean soldiers have arrived in Kursk?"', "NaN", "top_k must be a whole number"),
        ('"How many North Korean soldiers have arrived in Kursk?"', "1e400", "top_k must be a whole number"),
        ('"\\ud800 soldiers"', "null", "not valid Unicode text"),
    ],
)
def test_ask_api_refuses_what_only_raw_json_can_carry(served, question: str, top_k: str, message: str) -> None:
    """Values the client library will not send but a raw request can: a lone surrogate escaped in
    JSON, and the non-standard numbers Python's JSON parser accepts."""
    import httpx

    _, _, url = served
    # question, top_k, mode, generator, answer_scorer, the scope (source, folder, type, after, before), collection
    body = f'{{"data": [{question}, {top_k}, null, null, null, null, null, null, null, null, null]}}'
    started = (
        httpx.post(f"{url}/gradio_api/call/ask", content=body, headers={"content-type": "application/json"}, timeout=30)
        .raise_for_status()
        .json()
    )
    events = httpx.get(f"{url}/gradio_api/call/ask/{started['event_id']}", timeout=60).text
    assert "event: error" in events and message in events, events


@pytest.mark.slow
def test_the_server_logged_no_traceback(served) -> None:
    """Runs after everything above in this module: nothing sent made the server fail."""
    _, log, _ = served
    text = log.read_text(errors="replace")
    assert "Running on local URL" in text and "Traceback" not in text, text[-3000:]
