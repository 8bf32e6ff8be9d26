"""`rag serve --store milvus:PATH.db`: the chat server answers from a Milvus Lite store as it does from
the embedded one (a real server on loopback, called over HTTP with gradio_client)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from serving import ENV, RAG, rag_server

pytestmark = pytest.mark.slow

KURSK = "How many North Korean soldiers have arrived in Kursk?"


def test_serve_answers_from_a_milvus_lite_store(tmp_path: Path, seed_path: Path) -> None:
    pytest.importorskip("pymilvus", reason="the scale extra is not installed: pip install 'rag[scale]'")
    from gradio_client import Client

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / seed_path.name).write_bytes(seed_path.read_bytes())
    spec = f"milvus:{tmp_path / 'seed.db'}"
    subprocess.run(
        [RAG, "index", str(tmp_path / "docs"), "--store", spec], env=dict(ENV), check=True, capture_output=True
    )
    try:
        server_cm = rag_server(spec, log=tmp_path / "serve.log", env=ENV, timeout=180)
        server = server_cm.__enter__()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        data = Client(server.url + "/", verbose=False, download_files=False).predict(KURSK, api_name="/ask")
    finally:
        server_cm.__exit__(None, None, None)
    data = json.loads(data) if isinstance(data, str) else data
    text = seed_path.read_text(encoding="utf-8")
    assert data["abstained"] is False and "[1]" in data["answer"]
    assert any("8,000" in c["quote"] for c in data["citations"])
    assert all(text[c["start"] : c["end"]] == c["quote"] for c in data["citations"])
