"""Ray Data ingestion (`rag index --ray`, rag/distributed.py) writes the index the single-process
path writes: same documents, chunk ids and texts, vectors within 1e-5, the same files skipped for
the same reasons, the same incremental bookkeeping.

Real local Ray, one session for the module (`ray.init(num_cpus=2)`; `build_index(ray="local")`
uses the session it finds open), and the real encoder; no mocks.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.load import free_port
from rag.config import RagConfig
from rag.ingest import embed_block_size
from rag.pipeline import BuildReport, build_index
from rag.store import Index
from tests.conftest import ROOT, need_shared, run_rag, skip_or_fail

# Ray Data copies its settings object, whose setter warns about settings nobody here uses.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")

SCIFACT_DOCS = 150  # about 380 chunks: two embedding blocks, so the grouping crosses a block boundary


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray for the whole module (starting one costs seconds), shut down at its end."""
    try:
        import ray
    except ImportError:
        skip_or_fail("Ray is not installed: pip install 'rag[scale]'", module=True)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _write_corpus(folder: Path, n_scifact: int) -> Path:
    """The seeds, `n_scifact` SciFact abstracts as .txt files, and two files that cannot be read."""
    shutil.copytree(ROOT / "seeds", folder)
    rows = (json.loads(line) for line in (need_shared() / "scifact" / "corpus.jsonl").open(encoding="utf-8"))
    for _, row in zip(range(n_scifact), rows):
        (folder / "scifact" / f"{row['_id']}.txt").parent.mkdir(exist_ok=True)
        (folder / "scifact" / f"{row['_id']}.txt").write_text(f"{row['title']}\n\n{row['text']}", encoding="utf-8")
    (folder / "broken.txt").write_bytes(b"\xff\xfe not UTF-8")
    (folder / "tool.exe").write_bytes(b"MZ")
    return folder


def _contents(index_dir: Path) -> tuple[dict[str, list[tuple[int, str]]], np.ndarray, np.ndarray]:
    """What an index holds: each document's (chunk id, text) pairs, and all chunk ids and vectors."""
    index = Index.load(index_dir)
    try:
        chunks = {d.source: [(c.id, c.text) for c in index.document_chunks(d.source)] for d in index.documents()}
        blocks = list(index.vector_blocks())
        return chunks, np.concatenate([ids for ids, _ in blocks]), np.concatenate([v for _, v in blocks])
    finally:
        index.close()


def _assert_same_index(plain: Path, on_ray: Path) -> None:
    chunks, ids, vectors = _contents(plain)
    ray_chunks, ray_ids, ray_vectors = _contents(on_ray)
    assert sorted(ray_chunks) == sorted(chunks)
    assert ray_chunks == chunks  # same chunk ids and texts, document by document
    assert np.array_equal(ray_ids, ids)
    assert np.abs(ray_vectors - vectors).max() <= 1e-5


@pytest.fixture(scope="module")
def built(tmp_path_factory, embedder, ray_session) -> dict[str, tuple[Path, BuildReport]]:
    """The seeds and SciFact abstracts indexed once without Ray and once with it."""
    base = tmp_path_factory.mktemp("ray-ingest")
    corpus = _write_corpus(base / "corpus", SCIFACT_DOCS)
    out = {}
    for name, ray in (("plain", None), ("ray", "local")):
        index_dir = base / name
        progress: list[int] = []
        report = build_index(
            [corpus], index_dir=f"faiss:{index_dir}", embedder=embedder, ray=ray, progress=progress.append
        )
        assert sum(progress) == report.stats.chunks_embedded
        out[name] = (index_dir, report)
    return out


def test_ray_writes_the_index_the_single_process_path_writes(built) -> None:
    (plain_dir, plain), (ray_dir, on_ray) = built["plain"], built["ray"]
    assert on_ray.stats.chunks_embedded == plain.stats.chunks_embedded > embed_block_size(RagConfig())
    assert on_ray.stats.added == plain.stats.added and len(plain.stats.added) > SCIFACT_DOCS
    assert on_ray.stats.n_chunks == plain.stats.n_chunks
    assert on_ray.stats.embed_seconds > 0
    _assert_same_index(plain_dir, ray_dir)
    plain_index, ray_index = Index.load(plain_dir), Index.load(ray_dir)
    try:
        ids = [int(i) for i in _contents(plain_dir)[1][:50]]
        sentences, ray_sentences = plain_index.sentence_vectors(ids), ray_index.sentence_vectors(ids)
        assert all(np.abs(sentences[i] - ray_sentences[i]).max() <= 1e-3 for i in ids)  # stored as float16
        assert ray_index.manifest["embed_backends"] == plain_index.manifest["embed_backends"]
    finally:
        plain_index.close()
        ray_index.close()


def test_unreadable_files_are_skipped_with_the_reasons_of_the_single_process_path(built) -> None:
    plain, on_ray = built["plain"][1], built["ray"][1]
    assert on_ray.skipped == plain.skipped
    reasons = {s.source: s.reason for s in on_ray.skipped}
    assert reasons["broken.txt"].startswith("not valid UTF-8")
    assert reasons["tool.exe"].startswith("unsupported file type '.exe'")


def test_an_incremental_run_on_ray_embeds_only_the_changed_file(tmp_path, embedder, ray_session) -> None:
    corpus = _write_corpus(tmp_path / "corpus", 12)
    index_dirs = {name: tmp_path / name for name in ("plain", "ray")}
    first = {
        name: build_index([corpus], index_dir=index_dirs[name], embedder=embedder, ray=ray)
        for name, ray in (("plain", None), ("ray", "local"))
    }
    changed = sorted((corpus / "scifact").iterdir())[3]
    changed.write_text(changed.read_text(encoding="utf-8") + "\n\nA sentence added for the second run.")
    first_ray_ids = set(_contents(index_dirs["ray"])[1].tolist())
    reports = {
        name: build_index([corpus], index_dir=index_dirs[name], embedder=embedder, ray=ray)
        for name, ray in (("plain", None), ("ray", "local"))
    }
    stats, plain = reports["ray"].stats, reports["plain"].stats
    source = f"scifact/{changed.name}"
    assert stats.changed == [source] and not stats.added
    assert stats.unchanged == plain.unchanged and len(stats.unchanged) == len(first["ray"].stats.added) - 1
    chunks = _contents(index_dirs["ray"])[0][source]
    assert stats.chunks_embedded == plain.chunks_embedded == len(chunks)
    assert chunks[-1][1].endswith("A sentence added for the second run.")
    assert not {i for i, _ in chunks} & first_ray_ids  # its chunks are new rows
    _assert_same_index(index_dirs["plain"], index_dirs["ray"])


def test_documents_over_the_chunk_limit_are_counted_as_the_single_process_path_counts_them(
    tmp_path, embedder, ray_session
) -> None:
    corpus = _write_corpus(tmp_path / "corpus", 6)
    config = RagConfig(max_chunks_per_document=3)
    reports = {
        ray: build_index([corpus], index_dir=tmp_path / str(ray), embedder=embedder, config=config, ray=ray)
        for ray in (None, "local")
    }
    plain, on_ray = reports[None], reports["local"]
    assert on_ray.stats.too_large == plain.stats.too_large and plain.stats.too_large
    assert on_ray.skipped == plain.skipped
    _assert_same_index(tmp_path / "None", tmp_path / "local")


def test_rag_index_ray_uses_the_open_session(tmp_path, ray_session, capsys) -> None:
    from rag.cli import main

    shutil.copytree(ROOT / "seeds", tmp_path / "corpus")
    assert (
        main(["index", str(tmp_path / "corpus"), "--store", f"faiss:{tmp_path / 'idx'}", "--ray", "--ray-workers", "1"])
        == 0
    )
    assert "1 added" in capsys.readouterr().out
    assert ray_session.is_initialized()  # a session the command did not start stays open


@pytest.mark.slow
@pytest.mark.parametrize("address", ["ray://127.0.0.1:{port}", "127.0.0.1:{port}"])
def test_a_bad_ray_address_exits_2_with_one_line(tmp_path, address: str) -> None:
    address = address.format(port=free_port())  # nothing listens there
    done = run_rag(
        ["index", str(ROOT / "seeds"), "--store", f"faiss:{tmp_path / 'idx'}", "--ray", address],
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rag index: error: cannot ") and address in lines[0], done.stderr
    assert not (tmp_path / "idx" / "manifest.json").exists()


@pytest.mark.slow
def test_without_ray_nothing_imports_ray(tmp_path) -> None:
    argv = ["index", str(ROOT / "seeds"), "--store", f"faiss:{tmp_path / 'idx'}"]
    script = (
        f"import sys; from rag.cli import main; code = main({argv!r}); "
        "print(code, sorted(m for m in sys.modules if m == 'ray' or m.startswith(('ray.', 'rag.distributed'))))"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "0 []"
