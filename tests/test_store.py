"""The on-disk index: manifest, incremental updates, refusing mismatches, crash safety, the lock."""

from __future__ import annotations

import calendar
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import rag.store
from rag.config import MODEL_DIM, MODEL_NAME, RagConfig
from rag.pipeline import RAG, build_index
from rag.retrieve import search
from rag.store import MANIFEST, Index, IndexLocked, IndexMismatch, IndexNotFound, IndexWriter, read_manifest

SEED = Path(__file__).resolve().parents[1] / "seeds" / "000_a8b8e53ddfe7d5e4.txt"
KURSK_QUESTION = "How many North Korean soldiers have arrived in Kursk?"
TOPICS = {
    "alpha.txt": "glaciers",
    "beta.txt": "lighthouses",
    "gamma/delta.txt": "beekeeping",
}


def _topic_text(topic: str, n: int = 12, extra: str = "") -> str:
    sentences = [
        f"Fact {i} about {topic}: the {topic} survey recorded observation number {i * 7} "
        f"in the northern district during season {i}."
        for i in range(n)
    ]
    return " ".join(sentences) + extra


def _write_corpus(root: Path) -> Path:
    for source, topic in TOPICS.items():
        (root / source).parent.mkdir(parents=True, exist_ok=True)
        (root / source).write_text(_topic_text(topic), encoding="utf-8")
    return root


def _sources(hits) -> set[str]:
    return {h.chunk.source for h in hits}


def _all_modes(index: Index, embedder, query: str, top_k: int = 50) -> set[str]:
    vector = embedder.encode_queries([query])[0]
    return set().union(
        *(
            _sources(search(index, query, vector, config=RagConfig(mode=m), top_k=top_k))
            for m in ("dense", "bm25", "hybrid")
        )
    )


def _assert_consistent(index_dir: Path, expected: dict[str, str], config: RagConfig | None = None) -> None:
    """The committed generation holds exactly `expected` (source -> sha256), and FAISS, BM25 and
    the chunk store agree on which chunks exist."""
    index = Index.load(index_dir, config=config)
    try:
        manifest = index.manifest
        assert {s: d["sha256"] for s, d in manifest["documents"].items()} == expected
        faiss_ids = set(int(i) for i in _faiss_ids(index))
        bm25_ids = set(int(i) for i in index.bm25_ids)
        g = index.generation
        db = sqlite3.connect(str(index_dir / rag.store.DB))
        rows = db.execute(
            "SELECT id, source FROM chunks WHERE gen_added <= ? AND (gen_removed IS NULL OR gen_removed > ?)", (g, g)
        ).fetchall()
        docs = db.execute(
            "SELECT source, sha256 FROM documents WHERE gen_added <= ? AND (gen_removed IS NULL OR gen_removed > ?)",
            (g, g),
        ).fetchall()
        db.close()
        assert dict(docs) == expected
        assert faiss_ids == bm25_ids == {r[0] for r in rows}
        assert len(rows) == manifest["n_chunks"] == sum(d["n_chunks"] for d in manifest["documents"].values())
        assert {r[1] for r in rows} == set(expected)
        leftovers = {p.name for p in index_dir.iterdir()} - {
            MANIFEST,
            rag.store.DB,
            ".lock",
            *manifest["files"].values(),
            rag.store.DB + "-wal",
            rag.store.DB + "-shm",
        }
        assert leftovers == set()
    finally:
        index.close()


def _faiss_ids(index: Index) -> np.ndarray:
    import faiss

    return faiss.vector_to_array(index.faiss.id_map)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def built(tmp_path_factory, embedder) -> tuple[Path, Path, float]:
    """A three-file corpus indexed once: (corpus, index_dir, time just before the build)."""
    base = tmp_path_factory.mktemp("store")
    corpus = _write_corpus(base / "corpus")
    started = time.time()
    build_index([corpus], index_dir=base / "index", embedder=embedder)
    return corpus, base / "index", started


@pytest.fixture()
def fresh(built, tmp_path: Path) -> tuple[Path, Path]:
    """A private copy of the built corpus and index, for tests that change them."""
    corpus, index_dir, _ = built
    shutil.copytree(corpus, tmp_path / "corpus")
    shutil.copytree(index_dir, tmp_path / "index", ignore=shutil.ignore_patterns(".lock"))
    return tmp_path / "corpus", tmp_path / "index"


def test_manifest_describes_the_index(built) -> None:
    corpus, index_dir, started = built
    manifest = json.loads((index_dir / MANIFEST).read_text(encoding="utf-8"))

    assert manifest["params"] == {
        "model_name": MODEL_NAME,
        "model_dim": MODEL_DIM,
        "chunk_tokens": 200,
        "chunk_overlap_sentences": 1,
    }
    assert manifest["normalized"] is True and manifest["generation"] == 1
    for package in ("sentence-transformers", "transformers", "torch", "faiss-cpu", "bm25s", "numpy"):
        assert manifest["versions"][package][0].isdigit(), (package, manifest["versions"][package])
    assert set(manifest["documents"]) == set(TOPICS)
    for source, info in manifest["documents"].items():
        assert info["sha256"] == _sha(corpus / source)
        assert info["n_chunks"] >= 2  # each file is long enough for several chunks
        assert info["chars"] == len((corpus / source).read_text(encoding="utf-8"))
    built_at = calendar.timegm(time.strptime(manifest["built_at"], "%Y-%m-%dT%H:%M:%SZ"))
    assert started - 2 <= built_at <= time.time() + 2
    assert (index_dir / manifest["files"]["faiss"]).is_file()
    assert (index_dir / manifest["files"]["bm25"] / "ids.npy").is_file()
    _assert_consistent(index_dir, {s: _sha(corpus / s) for s in TOPICS})


def test_unchanged_rerun_embeds_nothing(fresh, embedder) -> None:
    corpus, index_dir = fresh
    before = (index_dir / MANIFEST).read_bytes()
    calls = embedder.calls

    report = build_index([corpus], index_dir=index_dir, embedder=embedder)

    assert report.stats.chunks_embedded == 0 and embedder.calls == calls
    assert sorted(report.stats.unchanged) == sorted(TOPICS)
    assert not report.stats.changed_anything
    assert (index_dir / MANIFEST).read_bytes() == before  # no new generation


def test_changing_one_file_re_embeds_only_its_chunks_and_deleting_one_removes_it(fresh, embedder) -> None:
    corpus, index_dir = fresh
    old = read_manifest(index_dir)
    (corpus / "beta.txt").write_text(
        _topic_text("lighthouses", n=20, extra=" The keeper owned a parrot."), encoding="utf-8"
    )
    calls = embedder.calls

    report = build_index([corpus], index_dir=index_dir, embedder=embedder)

    new = read_manifest(index_dir)
    assert report.stats.changed == ["beta.txt"] and report.stats.added == []
    assert sorted(report.stats.unchanged) == ["alpha.txt", "gamma/delta.txt"]
    assert report.stats.chunks_embedded == embedder.calls - calls == new["documents"]["beta.txt"]["n_chunks"]
    assert new["documents"]["beta.txt"]["n_chunks"] > old["documents"]["beta.txt"]["n_chunks"]
    for source in ("alpha.txt", "gamma/delta.txt"):
        assert new["documents"][source] == old["documents"][source]  # untouched, same added_at
    index = Index.load(index_dir)
    assert "beta.txt" in _all_modes(index, embedder, "keeper parrot", top_k=1)
    index.close()

    (corpus / "gamma" / "delta.txt").unlink()
    report = build_index([corpus], index_dir=index_dir, embedder=embedder)

    assert report.stats.removed == ["gamma/delta.txt"] and report.stats.chunks_embedded == 0
    index = Index.load(index_dir)
    assert "gamma/delta.txt" not in _all_modes(index, embedder, "beekeeping survey observation")
    assert index.document("gamma/delta.txt") is None
    index.close()
    _assert_consistent(index_dir, {s: _sha(corpus / s) for s in ("alpha.txt", "beta.txt")})


def test_other_chunk_params_or_model_are_refused_until_rebuild(fresh, embedder) -> None:
    corpus, index_dir = fresh
    before = (index_dir / MANIFEST).read_bytes()
    smaller = RagConfig(chunk_tokens=64, chunk_overlap_sentences=0)

    with pytest.raises(IndexMismatch) as excinfo:
        Index.load(index_dir, config=smaller)
    message = str(excinfo.value)
    assert "chunk_tokens=200 (config: 64)" in message and "chunk_overlap_sentences=1 (config: 0)" in message
    assert "--rebuild" in message and str(index_dir) in message
    with pytest.raises(
        IndexMismatch,
        match=r"model_name='sentence-transformers/all-MiniLM-L6-v2' "
        r"\(config: 'acme/other-model'\)",
    ):
        Index.load(index_dir, config=RagConfig(model_name="acme/other-model"))
    with pytest.raises(IndexMismatch, match="chunk_tokens=200"):
        build_index([corpus], index_dir=index_dir, embedder=embedder, config=smaller)
    assert (index_dir / MANIFEST).read_bytes() == before

    # The refused writer must have released its lock: a rebuild in the same process goes ahead.
    report = build_index([corpus], index_dir=index_dir, embedder=embedder, config=smaller, rebuild=True)

    manifest = read_manifest(index_dir)
    assert manifest["params"]["chunk_tokens"] == 64 and manifest["params"]["chunk_overlap_sentences"] == 0
    assert sorted(report.stats.added) == sorted(TOPICS)
    assert report.stats.chunks_embedded == manifest["n_chunks"] > json.loads(before)["n_chunks"]
    Index.load(index_dir, config=smaller).close()
    with pytest.raises(IndexMismatch):
        Index.load(index_dir)
    _assert_consistent(index_dir, {s: _sha(corpus / s) for s in TOPICS}, smaller)


def test_a_documents_chunks_and_every_vector_are_read_through_the_index(fresh, embedder) -> None:
    """`document_chunks` and `vector_blocks` see the loaded generation only: the replaced rows of a
    changed file stay in the chunk store until the next writer, and must not show."""
    corpus, index_dir = fresh
    (corpus / "beta.txt").write_text(_topic_text("lighthouses", n=20), encoding="utf-8")
    build_index([corpus], index_dir=index_dir, embedder=embedder)
    db = sqlite3.connect(str(index_dir / rag.store.DB))
    stored_rows = db.execute("SELECT COUNT(*) FROM chunks WHERE source = 'beta.txt'").fetchone()[0]
    db.close()
    index = Index.load(index_dir)
    try:
        chunks = index.document_chunks("beta.txt")
        text = (corpus / "beta.txt").read_text(encoding="utf-8")
        assert len(chunks) == index.manifest["documents"]["beta.txt"]["n_chunks"] < stored_rows
        assert [c.id for c in chunks] == sorted(c.id for c in chunks)
        assert all(c.source == "beta.txt" and text[c.start : c.end] == c.text for c in chunks)
        assert index.chunks([c.id for c in chunks]) == {c.id: c for c in chunks}
        assert index.document_chunks("missing.txt") == []

        blocks = list(index.vector_blocks(block_rows=4))
        assert [len(ids) for ids, _ in blocks[:-1]] == [4] * (len(blocks) - 1) and len(blocks) > 1
        ids = np.concatenate([ids for ids, _ in blocks])
        vectors = np.concatenate([v for _, v in blocks])
        assert ids.tolist() == sorted(_faiss_ids(index).tolist()) and len(ids) == len(index)
        assert vectors.dtype == np.float32 and vectors.shape == (len(index), MODEL_DIM)
        stored = index.chunk_vectors(ids.tolist())
        assert all(np.array_equal(stored[i], v) for i, v in zip(ids.tolist(), vectors))
    finally:
        index.close()


def test_a_second_writer_is_locked_out(fresh) -> None:
    _, index_dir = fresh
    config = RagConfig()
    with IndexWriter(index_dir, config):
        with pytest.raises(IndexLocked, match=rf"pid {os.getpid()}.*{index_dir}"):
            IndexWriter(index_dir, config).__enter__()
        Index.load(index_dir).close()  # readers are never blocked
    with IndexWriter(index_dir, config):  # released on exit
        pass


def test_asking_an_index_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(IndexNotFound, match="rag index"):
        Index.load(tmp_path / "nothing-here")


# ----------------------------------------------------------------------------------------------
# Crash safety: the old generation stays loadable and answering; the next run completes.


@pytest.fixture(scope="module")
def seed_built(tmp_path_factory, embedder) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("crash")
    corpus = base / "corpus"
    corpus.mkdir()
    shutil.copy(SEED, corpus / SEED.name)
    (corpus / "other.txt").write_text(_topic_text("glaciers"), encoding="utf-8")
    build_index([corpus], index_dir=base / "index", embedder=embedder)
    return corpus, base / "index"


@pytest.fixture()
def seed_fresh(seed_built, tmp_path: Path) -> tuple[Path, Path]:
    corpus, index_dir = seed_built
    shutil.copytree(corpus, tmp_path / "corpus")
    shutil.copytree(index_dir, tmp_path / "index", ignore=shutil.ignore_patterns(".lock"))
    return tmp_path / "corpus", tmp_path / "index"


def _change_corpus(corpus: Path) -> dict[str, str]:
    """The seed now says 9,500 instead of 8,000; other.txt is gone; new.txt appears."""
    seed = corpus / SEED.name
    seed.write_text(seed.read_text(encoding="utf-8").replace("8,000", "9,500"), encoding="utf-8")
    (corpus / "other.txt").unlink()
    (corpus / "new.txt").write_text(_topic_text("volcanoes"), encoding="utf-8")
    return {SEED.name: _sha(seed), "new.txt": _sha(corpus / "new.txt")}


def _ask(index_dir: Path, embedder) -> str:
    rag_ = RAG.open(index_dir, embedder=embedder)
    try:
        answer = rag_.ask(KURSK_QUESTION)
    finally:
        rag_.index.close()
    assert not answer.abstained and answer.citations
    return answer.citations[0].quote


def _boom(*args, **kwargs):
    raise OSError("simulated crash: disk full")


@pytest.mark.parametrize(
    "failure", ["interrupt while embedding", "bm25 write after commit", "manifest write after commit"]
)
def test_a_failed_update_leaves_the_old_index_answering(seed_fresh, embedder, monkeypatch, failure: str) -> None:
    corpus, index_dir = seed_fresh
    old_manifest = (index_dir / MANIFEST).read_bytes()
    old_state = {s: d["sha256"] for s, d in json.loads(old_manifest)["documents"].items()}
    assert "8,000" in _ask(index_dir, embedder)
    expected = _change_corpus(corpus)

    progress = None
    if failure == "interrupt while embedding":

        def progress(n: int) -> None:
            raise KeyboardInterrupt
    elif failure == "bm25 write after commit":
        monkeypatch.setattr(rag.store.files, "write_bm25", _boom)
    else:
        monkeypatch.setattr(rag.store.files, "atomic_write", _boom)
    with pytest.raises((KeyboardInterrupt, OSError)):
        build_index([corpus], index_dir=index_dir, embedder=embedder, progress=progress)
    monkeypatch.undo()

    assert (index_dir / MANIFEST).read_bytes() == old_manifest
    db = sqlite3.connect(str(index_dir / rag.store.DB))
    uncommitted = db.execute("SELECT COUNT(*) FROM chunks WHERE gen_added = 2").fetchone()[0]
    db.close()
    assert (uncommitted > 0) == (failure != "interrupt while embedding")  # the SQLite commit happened
    assert "8,000" in _ask(index_dir, embedder)  # the old generation still loads and answers
    index = Index.load(index_dir)
    assert index.document("other.txt") is not None and index.document("new.txt") is None
    index.close()

    report = build_index([corpus], index_dir=index_dir, embedder=embedder)

    assert report.stats.added == ["new.txt"] and report.stats.changed == [SEED.name]
    assert report.stats.removed == ["other.txt"]
    _assert_consistent(index_dir, expected)
    assert expected != old_state
    quote = _ask(index_dir, embedder)
    assert "9,500" in quote and "8,000" not in quote


@pytest.mark.slow
def test_sigkill_of_rag_index_mid_write_leaves_the_old_index_answering(seed_fresh, embedder) -> None:
    """A real `rag index` process is killed with SIGKILL after the SQLite commit, while it writes
    the BM25 files: no cleanup code runs, the lock dies with the process."""
    corpus, index_dir = seed_fresh
    old_manifest = (index_dir / MANIFEST).read_bytes()
    expected = _change_corpus(corpus)
    for i in range(30):  # a bigger corpus, so the killed run has real work in flight
        (corpus / "bulk" / f"{i:02d}.txt").parent.mkdir(exist_ok=True)
        (corpus / "bulk" / f"{i:02d}.txt").write_text(_topic_text(f"topic{i}", n=8), encoding="utf-8")
    script = (
        "import os, signal, sys\n"
        "import rag.store.files\n"
        "def killed(rows, path):\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "rag.store.files.write_bm25 = killed\n"
        "from rag.cli import main\n"
        "sys.exit(main(['index', sys.argv[1], '--index-dir', sys.argv[2]]))\n"
    )

    proc = subprocess.run(
        [sys.executable, "-c", script, str(corpus), str(index_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ),
    )

    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert (index_dir / MANIFEST).read_bytes() == old_manifest
    assert any(p.name.startswith("vectors-2") for p in index_dir.iterdir())  # it died mid-write
    assert "8,000" in _ask(index_dir, embedder)

    report = build_index([corpus], index_dir=index_dir, embedder=embedder)

    assert len(report.stats.added) == 31 and report.stats.removed == ["other.txt"]
    expected.update({f"bulk/{i:02d}.txt": _sha(corpus / "bulk" / f"{i:02d}.txt") for i in range(30)})
    _assert_consistent(index_dir, expected)
    assert "9,500" in _ask(index_dir, embedder)


def test_a_document_over_the_chunk_limit_is_skipped_and_the_rest_indexed(tmp_path, embedder) -> None:
    from rag.config import RagConfig
    from rag.pipeline import build_index

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "small.txt").write_text("The harbour opened in 1901.", encoding="utf-8")
    (corpus / "big.txt").write_text(" ".join(f"Sentence number {i} is here." for i in range(400)), encoding="utf-8")
    config = RagConfig(chunk_tokens=20, chunk_overlap_sentences=0, max_chunks_per_document=10)
    report = build_index([corpus], index_dir=tmp_path / "index", embedder=embedder, config=config)
    assert report.stats.added == ["small.txt"]
    assert [(s.source, "over the limit of 10" in s.reason) for s in report.skipped] == [("big.txt", True)]
