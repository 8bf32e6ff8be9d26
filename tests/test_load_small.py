"""`python -m bench.load` against a real `rag serve`: 4 users for 15 seconds, with an upload and a
removal through the UI in the middle, and not one error. (The 16-user, 60-second run is recorded
in RELIABILITY.md.) Also: the tool refuses anything but loopback, and its answer check bites."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # bench/ is a folder of scripts beside the package, not installed

from bench.load import NotLoopback, check_answer, check_loopback, main, rag_server  # noqa: E402
from rag.pipeline import build_index  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, embedder):
    base = tmp_path_factory.mktemp("load")
    shutil.copytree(ROOT / "seeds", base / "seeds")
    build_index([base / "seeds"], index_dir=base / "index", embedder=embedder)
    with rag_server(base / "index") as running:
        yield running.url, base


@pytest.mark.slow
def test_four_users_for_fifteen_seconds_with_an_update_see_no_error(server) -> None:
    url, base = server
    out = base / "load.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench.load", "--users", "4", "--seconds", "15", "--url", url, "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert out.exists(), result.stderr[-3000:]
    report = json.loads(out.read_text())

    assert report["errors"] == 0, report["error_samples"]
    assert report["answered"] >= 4 and report["requests"] == report["answered"]
    assert report["n_wrong_answers"] == 0, report["wrong_answers"]
    update = report["update"]
    assert update["error"] is None and update["update_finished"], update
    assert update["stale_answers_after_update"] == []
    assert update["added_question_answered"] and update["removed_question_abstains"], update
    assert update["asked_after_update"] > 0
    assert report["latency_ms"]["p50"] <= report["latency_ms"]["p95"] <= report["latency_ms"]["p99"]
    assert report["passed"] and result.returncode == 0, result.stdout + result.stderr
    assert "0 errors" in result.stdout and "PASSED" in result.stdout
    # The run leaves the index holding what it held: both of its documents are gone again.
    assert report["documents_before"] == report["documents_after"] == ["000_a8b8e53ddfe7d5e4.txt"]
    assert not [p for p in (base / "index" / "uploads").glob("bench-*")]


@pytest.mark.parametrize(
    "url",
    ["http://10.0.0.7:7860", "http://8.8.8.8/", "ftp://127.0.0.1:21", "http://[2001:db8::1]:7860", "127.0.0.1:7860"],
)
def test_only_loopback_urls_are_accepted(url: str, capsys) -> None:
    with pytest.raises(NotLoopback):
        check_loopback(url)
    assert main(["--url", url, "--users", "1", "--seconds", "1"]) == 2
    assert "error" in capsys.readouterr().err


@pytest.mark.parametrize("url", ["http://127.0.0.1:7860/", "http://localhost:7860", "http://[::1]:7860"])
def test_loopback_urls_are_accepted(url: str) -> None:
    try:
        assert check_loopback(url) == url.rstrip("/")
    except NotLoopback as exc:
        if "cannot resolve" not in str(exc):  # a machine without an IPv6 loopback
            raise


def test_the_answer_check_catches_a_broken_contract() -> None:
    good = {
        "question": "Q?",
        "answer": "It is so. [1]",
        "abstained": False,
        "tentative": False,
        "confidence": 0.8,
        "citations": [
            {
                "n": 1,
                "source": "a.txt",
                "start": 3,
                "end": 12,
                "page": None,
                "quote": "It is so.",
                "passage": "x. It is so.",
                "score": 0.7,
            }
        ],
        "timings_ms": {"total": 1.0},
        "generator": "extractive",
        "sentences": [{"text": "It is so.", "citations": [1], "supported": True, "support": 1.0}],
        "scope": None,
        "collection": None,
    }
    assert check_answer(good, "Q?") is None
    assert check_answer({**good, "confidence": 1.5}, "Q?")
    assert check_answer({**good, "abstained": True}, "Q?")
    assert check_answer({**good, "abstained": True, "tentative": True}, "Q?") is None  # "not sure": one citation
    assert check_answer({**good, "tentative": True}, "Q?")
    assert check_answer({k: v for k, v in good.items() if k != "timings_ms"}, "Q?")
    assert check_answer({**good, "citations": [{**good["citations"][0], "quote": "not there"}]}, "Q?")
    assert check_answer(good, "another question")
    assert check_answer("a string", "Q?")
