"""The UI server's `ask` API: `rag serve` as a real subprocess, called with gradio_client.

The server runs over a temporary index built by `rag index` from a copy of seeds/, on a free
loopback port. Also here: `rag serve` refusing a missing index, the Evaluation tab's report
loading, and `remove_documents`, the core function the Documents tab removes with.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ANSWER_KEYS
from serving import ENV, RAG, build_seed_index, serving

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]

KURSK = "How many North Korean soldiers have arrived in Kursk?"
CITATION_KEYS = {"n", "source", "start", "end", "page", "quote", "passage", "score"}


@pytest.fixture(scope="module")
def seed_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_seed_index(tmp_path_factory.mktemp("ui_api"), ROOT / "seeds")


@pytest.fixture(scope="module")
def server(seed_index: Path) -> Iterator[tuple[str, int]]:
    with serving(seed_index) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: tuple[str, int]):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from gradio_client import Client

    return Client(server[0], verbose=False, download_files=False)


def _check_contract(data: dict) -> None:
    assert set(data) == ANSWER_KEYS
    assert isinstance(data["answer"], str) and isinstance(data["abstained"], bool)
    assert isinstance(data["tentative"], bool)
    if data["tentative"]:  # "not sure": the closest passage, one citation, no answer asserted
        assert data["abstained"] and len(data["citations"]) == 1
    assert 0.0 <= data["confidence"] <= 1.0
    assert set(data["timings_ms"]) >= {"retrieve", "answer", "total"}
    for n, c in enumerate(data["citations"], start=1):
        assert set(c) == CITATION_KEYS and c["n"] == n
        assert c["quote"] in c["passage"] and f"[{n}]" in data["answer"]
        assert c["end"] - c["start"] == len(c["quote"])


def test_ask_endpoint_returns_the_rag_ask_json_contract(client) -> None:
    data = client.predict(KURSK, api_name="/ask")
    _check_contract(data)
    assert data["question"] == KURSK and not data["abstained"]
    assert data["citations"] and any("8,000" in c["quote"] for c in data["citations"])
    assert "8,000" in data["answer"]


def test_ask_endpoint_matches_the_cli_json(client, seed_index: Path) -> None:
    cli = subprocess.run(
        [RAG, "ask", KURSK, "--json", "--index-dir", str(seed_index)],
        env=ENV,
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    expected = json.loads(cli.stdout)
    got = client.predict(KURSK, api_name="/ask")
    expected.pop("timings_ms"), got.pop("timings_ms")
    assert got == expected


def test_ask_endpoint_takes_top_k_and_mode(client) -> None:
    data = client.predict(KURSK, 2, "bm25", api_name="/ask")
    _check_contract(data)
    assert any("8,000" in c["quote"] for c in data["citations"])
    named = client.predict(question=KURSK, mode="dense", api_name="/ask")
    _check_contract(named)


def test_ask_endpoint_takes_the_answer_scorer(client) -> None:
    heuristic = client.predict(question=KURSK, answer_scorer="heuristic", api_name="/ask")
    _check_contract(heuristic)
    assert not heuristic["abstained"] and not heuristic["tentative"] and "8,000" in heuristic["answer"]
    reader = client.predict(KURSK, None, None, None, " Reader", api_name="/ask")  # positional, any case
    _check_contract(reader)
    assert reader["question"] == KURSK


def test_ask_endpoint_abstains_off_topic(client) -> None:
    data = client.predict("What is the boiling point of liquid nitrogen in Kelvin?", api_name="/ask")
    _check_contract(data)
    assert data["abstained"] and data["citations"] == []
    assert "do not contain" in data["answer"]


@pytest.mark.parametrize(
    "args, message",
    [
        (("",), "question is empty"),
        (("x" * 3000,), "over the limit"),
        ((KURSK, 3, "fuzzy"), "mode must be one of"),
        ((KURSK, 0), "top_k must be >= 1"),
        ((KURSK, 3, "hybrid", None, "bm25"), "answer_scorer must be one of reader, heuristic, got 'bm25'"),
    ],
)
def test_ask_endpoint_reports_bad_input(client, args: tuple, message: str) -> None:
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=message):
        client.predict(*args, api_name="/ask")


def test_only_the_ask_endpoint_is_public(client) -> None:
    api = client.view_api(print_info=False, return_format="dict")
    assert set(api["named_endpoints"]) == {"/ask"}
    assert not api["unnamed_endpoints"]


def test_concurrent_requests_queue_and_all_complete(client) -> None:
    questions = [KURSK, "Who met Chinese diplomats at Ambassador Shi Feng's residence?", "What did Blinken warn?"] * 2
    jobs = [client.submit(q, api_name="/ask") for q in questions]
    results = [job.result(timeout=120) for job in jobs]
    assert [r["question"] for r in results] == questions
    for first, again in zip(results[:3], results[3:]):
        assert first["answer"] == again["answer"]  # answers do not bleed between concurrent requests
    assert "8,000" in results[0]["answer"] and "Shi Feng" in results[1]["answer"]


def test_server_listens_on_loopback_only(server: tuple[str, int]) -> None:
    _, port = server
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))  # no packet is sent; this picks the outward interface
            address = probe.getsockname()[0]
        except OSError:
            address = ""
    if not address or address.startswith("127."):
        pytest.skip("this machine has no non-loopback address to try")
    with pytest.raises(OSError):
        socket.create_connection((address, port), timeout=2).close()


def test_a_server_stopped_with_sigterm_removes_its_download_folder(seed_index: Path, tmp_path: Path) -> None:
    # `serving` stops the server with SIGTERM (as a service manager does), then waits for it.
    with serving(seed_index, env={**ENV, "TMPDIR": str(tmp_path)}):
        assert len(list(tmp_path.glob("rag-exports-*"))) == 1  # the chat's downloads go here
    assert list(tmp_path.glob("rag-exports-*")) == []


def test_serve_without_an_index_exits_2_with_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    result = subprocess.run(
        [RAG, "serve", "--index-dir", str(missing)], env=ENV, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "rag index" in result.stderr and str(missing) in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_rejects_a_bad_upload_limit(tmp_path: Path) -> None:
    result = subprocess.run(
        [RAG, "serve", "--index-dir", str(tmp_path)],
        env={**ENV, "RAG_MAX_FILE_MB": "lots"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "RAG_MAX_FILE_MB must be a number" in result.stderr


def test_evaluation_tab_reads_the_latest_report_else_the_seed_report(tmp_path: Path) -> None:
    from PIL import Image

    from rag.ui.evaluation import eval_report

    text, image = eval_report(tmp_path)
    assert "No evaluation report yet" in text and "rag eval" in text and image is None
    (tmp_path / "seed.md").write_text("# Evaluation: seed_qa\n\nhit@5 1.00\n", encoding="utf-8")
    text, image = eval_report(tmp_path)
    assert "hit@5 1.00" in text and image is None
    (tmp_path / "latest.md").write_text("# Eval\n\nrecall@5 0.93\n", encoding="utf-8")
    Image.new("RGB", (4, 3), "white").save(tmp_path / "latest.png")
    text, image = eval_report(tmp_path)
    assert "recall@5 0.93" in text and image.size == (4, 3)


def test_remove_documents_removes_only_the_named_sources(tmp_path: Path) -> None:
    from rag.config import RagConfig
    from rag.embed import Embedder
    from rag.pipeline import BadInput, build_index, remove_documents
    from rag.store import Index

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("Apples grow on trees in the orchard.\n", encoding="utf-8")
    (docs / "b.md").write_text("Bananas grow in bunches in the tropics.\n", encoding="utf-8")
    embedder, config, index_dir = Embedder.load(), RagConfig(), tmp_path / "index"
    build_index([docs], index_dir=index_dir, embedder=embedder, config=config)

    stats = remove_documents(index_dir, ["a.md", "not-there.md"], embedder=embedder, config=config)
    assert stats.removed == ["a.md"] and stats.chunks_embedded == 0
    index = Index.load(index_dir, config=config)
    assert [d.source for d in index.documents()] == ["b.md"] and index.document("a.md") is None
    assert (docs / "a.md").exists()  # the index forgets the document; the file is the caller's
    with pytest.raises(BadInput):
        remove_documents(index_dir, [], embedder=embedder, config=config)
    assert remove_documents(index_dir, ["b.md"], embedder=embedder, config=config).n_chunks == 0


def test_add_uploads_indexes_keeps_and_reloads_then_remove_upload_deletes(tmp_path: Path, embedder) -> None:
    from rag.pipeline import RAG, add_uploads, build_index, remove_upload
    from rag.store.reader import UPLOADS

    docs, incoming = tmp_path / "docs", tmp_path / "incoming"
    docs.mkdir(), incoming.mkdir()
    (docs / "a.md").write_text("Apples grow on trees in the orchard.\n", encoding="utf-8")
    build_index([docs], index_dir=tmp_path / "index", embedder=embedder)
    rag = RAG.open(tmp_path / "index", embedder=embedder)
    (incoming / "upload-1").write_text(
        "The walrus census counted 4,812 walruses on Brindle Island.\n", encoding="utf-8"
    )
    (incoming / "upload-2").write_bytes(b"%PDF-1.4 truncated")
    reloads: list[bool] = []

    report = add_uploads(
        rag,
        {"walrus.md": incoming / "upload-1", "broken.pdf": incoming / "upload-2"},
        on_reload=lambda: reloads.append(True),
    )
    uploads = tmp_path / "index" / UPLOADS
    assert report.outcome == {"walrus.md": "added"} and set(report.skipped) == {"broken.pdf"}
    assert report.stats is not None and report.stats.added == ["walrus.md"] and reloads == [True]
    assert sorted(p.name for p in uploads.iterdir()) == ["walrus.md"]  # no staging folder, no unreadable file
    assert rag.index.document("walrus.md") is not None and rag.index.document("a.md") is not None  # reloaded
    again = add_uploads(rag, {"walrus.md": incoming / "upload-1"})
    assert again.outcome == {"walrus.md": "unchanged"}
    nothing = add_uploads(rag, {"broken.pdf": incoming / "upload-2"})
    assert nothing.stats is None and nothing.outcome == {} and "broken.pdf" in nothing.skipped

    stats = remove_upload(rag, "walrus.md")
    assert stats.removed == ["walrus.md"] and not (uploads / "walrus.md").exists()
    assert rag.index.document("walrus.md") is None and (incoming / "upload-1").exists()
    assert remove_upload(rag, "walrus.md").removed == []
    rag.index.close()
