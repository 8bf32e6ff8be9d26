"""The default embedding backend (onnx-int8) on a machine that has never exported the model.

The ONNX files are exported once from the model package into `$RAG_CACHE_DIR/onnx` (default
~/.cache/rag); every other test reuses that cache, so this one exports into an empty folder, in a
fresh process, exactly as a user's first `rag ask` does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
TEXTS = [
    "How many North Korean soldiers have arrived in Kursk?",
    "Up to 8,000 North Korean soldiers have arrived in the Russian border region of Kursk.",
]


@pytest.mark.slow
def test_first_use_exports_the_model_and_int8_vectors_match_torch(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    env = {**os.environ, "RAG_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    code = (
        "import sys, numpy as np; from rag.embed import Embedder; "
        "e = Embedder.load(backend='onnx-int8'); assert e.backend == 'onnx-int8', e.backend; "
        f"np.save(sys.argv[1], e.encode_queries({TEXTS!r}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "int8.npy")],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "falls back" not in done.stderr and "using 'torch' instead" not in done.stderr, done.stderr[-2000:]
    exported = sorted(p.name for p in (cache / "onnx").iterdir())
    assert exported == ["all-MiniLM-L6-v2-0.1.0.int8.onnx", "all-MiniLM-L6-v2-0.1.0.onnx"], exported

    from rag.embed import Embedder

    int8 = np.load(tmp_path / "int8.npy")
    reference = Embedder.load(backend="torch").encode_queries(TEXTS)
    cosines = (int8 * reference).sum(axis=1)
    assert int8.shape == (2, 384) and np.allclose(np.linalg.norm(int8, axis=1), 1.0, atol=1e-4)
    assert cosines.min() > 0.98, cosines  # BENCHMARKS.md: pooled cosine to torch 0.990-0.999


def test_a_failed_export_names_the_file_and_the_cause(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rag import embed

    monkeypatch.setenv("RAG_CACHE_DIR", str(tmp_path))
    # A child interpreter that cannot import anything it needs: the export fails, with a message.
    monkeypatch.setattr(sys, "executable", "/bin/false")
    with pytest.raises(
        RuntimeError, match=r"exporting the embedding model to ONNX \(.*all-MiniLM-L6-v2.*\.onnx\) failed"
    ):
        embed.export_onnx("onnx")
    assert not list((tmp_path / "onnx").glob("*.onnx")) and not list((tmp_path / "onnx").glob("*.tmp"))
