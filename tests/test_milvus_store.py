"""The Milvus store against the embedded one: real Milvus Lite in this process (and in killed
children), no mocks.

The seed article and a few hundred SciFact abstracts are indexed into `faiss:DIR` and
`milvus:PATH.db` through `rag.pipeline.build_index`; both must then hold the same chunks (ids,
texts, offsets, vectors), find the same hits and give the same answers, and stay equal through a
changed file, a deleted file, a removal and a rebuild.

Allowed differences, and why: BM25 ties (chunks with exactly the same score) come back in id order
from the Milvus store and in whatever order bm25s's argpartition leaves them from the embedded
one, so lexical rankings are compared as equal scores with the same ids per score; dense cosines
are computed by FAISS in one store and by Milvus Lite in the other, so they are compared within
1e-5 (and answers' confidences, computed from them, within 1e-5).

The kill tests run `rag index --store milvus:PATH.db` in a child process that stops at a named
point of the writer (`rag.store.milvus.checkpoint`) and is killed there with SIGKILL, as
tests/test_crash_safety.py does for the embedded store.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from conftest import KILL_ENV, ROOT, need_shared, run_rag

from bench.common import scifact_corpus
from rag.config import RagConfig
from rag.lexical import idf, stem_terms
from rag.pipeline import RAG, BadInput, build_index, remove_documents
from rag.scope import parse_scope
from rag.store import IndexLocked, IndexNotFound, check_compatible
from rag.store.locate import committed_manifest, open_store, parse_store
from rag.store.manifest import BadStore
from rag.store.milvus import MilvusStore, MilvusWriter, uploads_dir
from rag.store.milvus_schema import NOT_REMOVED, Names, connect, disconnect, load_all

N_SCIFACT = 250
SEED_NAME = "000_a8b8e53ddfe7d5e4.txt"
SEED_QUESTIONS = [json.loads(line)["question"] for line in (ROOT / "eval" / "data" / "seed_qa.jsonl").open() if line]


def _scifact_questions(n: int) -> list[str]:
    path = need_shared() / "scifact" / "queries.jsonl"
    return [json.loads(line)["text"] for line in path.open()][:n]


@dataclass
class Pair:
    """A corpus indexed into both stores."""

    corpus: Path
    faiss: str
    milvus: str


def _write_corpus(root: Path) -> Path:
    corpus = root / "corpus"
    (corpus / "scifact").mkdir(parents=True)
    shutil.copy(ROOT / "seeds" / SEED_NAME, corpus)
    for name, text in scifact_corpus(N_SCIFACT).items():
        (corpus / "scifact" / name).write_text(text, encoding="utf-8")
    return corpus


def _build_both(pair: Pair, embedder, **kwargs) -> tuple:
    return tuple(
        build_index([pair.corpus], index_dir=spec, embedder=embedder, **kwargs) for spec in (pair.faiss, pair.milvus)
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory, embedder) -> Pair:
    need_shared()
    base = tmp_path_factory.mktemp("milvus-pair")
    pair = Pair(_write_corpus(base), f"faiss:{base / 'embedded'}", f"milvus:{base / 'rag.db'}")
    reports = _build_both(pair, embedder)
    assert reports[0].stats.n_chunks == reports[1].stats.n_chunks > N_SCIFACT
    # Copies for the tests that change a store, taken while no process has the Milvus Lite folder open.
    shutil.copytree(base / "embedded", base / "pristine" / "embedded", ignore=shutil.ignore_patterns(".lock"))
    shutil.copytree(base / "rag.db", base / "pristine" / "rag.db", ignore=shutil.ignore_patterns("LOCK"))
    return pair


@pytest.fixture(scope="module")
def stores(built: Pair):
    embedded, milvus = open_store(built.faiss), open_store(built.milvus)
    yield embedded, milvus
    embedded.close()
    milvus.close()


@pytest.fixture()
def fresh_pair(built: Pair, tmp_path: Path) -> Pair:
    """A private copy of the built corpus and both stores, for tests that change them."""
    shutil.copytree(built.corpus, tmp_path / "corpus")
    shutil.copytree(built.corpus.parent / "pristine", tmp_path, dirs_exist_ok=True)
    return Pair(tmp_path / "corpus", f"faiss:{tmp_path / 'embedded'}", f"milvus:{tmp_path / 'rag.db'}")


# ----------------------------------------------------------------------------------------------
# Comparing the stores


def _ids(store) -> list[int]:
    return [int(i) for ids, _ in store.vector_blocks() for i in ids]


def _document_facts(store) -> list[tuple]:
    """documents() without `added_at` (each store was built at its own moment)."""
    return [(d.source, d.sha256, d.n_chunks, d.chars) for d in store.documents()]


def _assert_same_lexical(a: list[tuple[int, float]], b: list[tuple[int, float]]) -> None:
    """Equal scores, and the same ids for each score but the last one (the cut at k may keep
    different members of a tied group)."""
    assert [s for _, s in a] == [s for _, s in b]
    groups_a: dict[float, set[int]] = {}
    groups_b: dict[float, set[int]] = {}
    for (i, s), (j, _) in zip(a, b):
        groups_a.setdefault(s, set()).add(i)
        groups_b.setdefault(s, set()).add(j)
    last = a[-1][1] if a else None
    assert {s: g for s, g in groups_a.items() if s != last} == {s: g for s, g in groups_b.items() if s != last}


def _assert_same_store(embedded, milvus) -> None:
    """Same generation, chunks, vectors, documents and manifest facts."""
    assert milvus.generation == embedded.generation and len(milvus) == len(embedded)
    ids = _ids(embedded)
    assert _ids(milvus) == ids and len(ids) == len(embedded)
    assert milvus.chunks(ids) == embedded.chunks(ids)
    some = ids[:: max(1, len(ids) // 40)]
    for read in ("chunk_vectors", "sentence_vectors"):  # float32 and float16 bytes, stored exactly
        mine, theirs = getattr(milvus, read)(some), getattr(embedded, read)(some)
        assert mine.keys() == theirs.keys() == set(some) and all(np.array_equal(mine[i], theirs[i]) for i in mine)
    assert _document_facts(milvus) == _document_facts(embedded)
    for info in embedded.documents()[:: max(1, len(embedded.documents()) // 10)]:
        assert milvus.document(info.source) == embedded.document(info.source)
        assert milvus.document_chunks(info.source) == embedded.document_chunks(info.source)
    for key in ("generation", "params", "documents", "n_chunks", "n_documents", "normalized", "metric"):
        if key == "documents":
            assert {s: {**d, "added_at": 0} for s, d in milvus.manifest[key].items()} == {
                s: {**d, "added_at": 0} for s, d in embedded.manifest[key].items()
            }
        else:
            assert milvus.manifest[key] == embedded.manifest[key], key
    assert set(embedded.manifest) <= set(milvus.manifest)
    assert milvus.manifest["embed_backends"] == embedded.manifest["embed_backends"]


def _assert_same_searches(embedded, milvus, embedder, questions: list[str]) -> None:
    for q in questions:
        vector = embedder.encode_queries([q])[0]
        dense_e, dense_m = embedded.dense_search(vector, 50), milvus.dense_search(vector, 50)
        assert [i for i, _ in dense_m] == [i for i, _ in dense_e], q
        assert np.allclose([s for _, s in dense_m], [s for _, s in dense_e], atol=1e-5), q
        _assert_same_lexical(embedded.lexical_search(q, 50), milvus.lexical_search(q, 50))
        terms = ["cell", "soldier", "nonexistentterm", "kursk"]
        assert milvus.idf_weights(terms) == embedded.idf_weights(terms)


# ----------------------------------------------------------------------------------------------
# Building: the same index


def test_both_stores_hold_the_same_chunks_vectors_and_documents(stores) -> None:
    embedded, milvus = stores
    _assert_same_store(embedded, milvus)
    assert isinstance(milvus, MilvusStore) and milvus.manifest["store"] == "milvus"
    check_compatible(milvus.manifest, RagConfig(), milvus.spec)  # the manifest checks as the embedded one does
    assert milvus.document("no/such/file.txt") is None and milvus.document_chunks("no/such/file.txt") == []
    blocks = list(milvus.vector_blocks(block_rows=100))
    assert [len(ids) for ids, _ in blocks] == [len(ids) for ids, _ in embedded.vector_blocks(block_rows=100)]
    assert all(v.dtype == np.float32 and v.shape == (len(i), 384) for i, v in blocks)


def test_both_stores_find_the_same_chunks(stores, embedder) -> None:
    embedded, milvus = stores
    _assert_same_searches(embedded, milvus, embedder, SEED_QUESTIONS[:20] + _scifact_questions(30))
    assert milvus.lexical_search("the of and", 10) == [] == embedded.lexical_search("the of and", 10)
    assert milvus.lexical_search("zzzyzzy qqqxqq", 10) == [] == embedded.lexical_search("zzzyzzy qqqxqq", 10)


def test_both_stores_find_the_same_chunks_within_a_scope(stores, embedder) -> None:
    """A scope filters inside each store's search (FAISS selector and bm25s mask; Milvus's filter
    on document keys): one document, twelve, half the corpus; every hit inside, k of them."""
    embedded, milvus = stores
    sources = [d.source for d in embedded.documents()]
    scifact = [s for s in sources if s.startswith("scifact/")]
    scopes = [frozenset({SEED_NAME}), frozenset({scifact[7]}), frozenset(scifact[::20]), frozenset(sources[::2])]
    for scope in scopes:
        in_scope = sum(len(embedded.document_chunks(s)) for s in scope)
        for q in SEED_QUESTIONS[:4] + _scifact_questions(6):
            vector = embedder.encode_queries([q])[0]
            dense_e, dense_m = (
                embedded.dense_search(vector, 20, sources=scope),
                milvus.dense_search(vector, 20, sources=scope),
            )
            assert [i for i, _ in dense_m] == [i for i, _ in dense_e] and len(dense_e) == min(20, in_scope), q
            assert np.allclose([s for _, s in dense_m], [s for _, s in dense_e], atol=1e-5), q
            assert {c.source for c in embedded.chunks([i for i, _ in dense_e]).values()} <= scope
            lexical_e, lexical_m = (
                embedded.lexical_search(q, 20, sources=scope),
                milvus.lexical_search(q, 20, sources=scope),
            )
            _assert_same_lexical(lexical_e, lexical_m)
            assert {c.source for c in embedded.chunks([i for i, _ in lexical_e]).values()} <= scope
    assert milvus.dense_search(vector, 5, sources=frozenset()) == [] == embedded.dense_search(vector, 5, sources=set())


def test_asking_within_a_scope_through_either_store_gives_the_same_answers(built: Pair, embedder) -> None:
    embedded, milvus = RAG.open(built.faiss, embedder=embedder), RAG.open(built.milvus, embedder=embedder)
    try:
        for scope in (parse_scope(folder="scifact"), parse_scope(source=SEED_NAME), parse_scope(source="scifact/1*")):
            for q in SEED_QUESTIONS[:6] + _scifact_questions(6):
                a, b = embedded.ask(q, scope=scope), milvus.ask(q, scope=scope)
                assert [h.chunk.id for h in b.hits] == [h.chunk.id for h in a.hits], (scope, q)
                assert b.text == a.text and b.abstained == a.abstained and abs(b.confidence - a.confidence) < 1e-5
                assert all(scope.matches(h.chunk.source) for h in a.hits), (scope, q)
        # The seed's answer lies outside the SciFact folder: refused within it, by both.
        kursk = SEED_QUESTIONS[0]
        assert embedded.ask(kursk, scope=parse_scope(folder="scifact")).abstained
        assert milvus.ask(kursk, scope=parse_scope(folder="scifact")).abstained
    finally:
        embedded.index.close()
        milvus.index.close()


def test_asking_through_either_store_gives_the_same_hits_and_answers(built: Pair, embedder) -> None:
    embedded, milvus = RAG.open(built.faiss, embedder=embedder), RAG.open(built.milvus, embedder=embedder)
    try:
        answered = 0
        for q in SEED_QUESTIONS + _scifact_questions(20):
            a, b = embedded.ask(q), milvus.ask(q)
            assert [h.chunk.id for h in b.hits] == [h.chunk.id for h in a.hits], q
            assert b.text == a.text and b.abstained == a.abstained, q
            assert [(c.source, c.start, c.end) for c in b.citations] == [
                (c.source, c.start, c.end) for c in a.citations
            ]
            assert abs(b.confidence - a.confidence) < 1e-5, q
            answered += not a.abstained
        # The comparison covers real answers, not only refusals (a third of the seed questions: how many
        # pass the threshold moves by a question or two with the CPU's int8 kernels).
        assert answered >= len(SEED_QUESTIONS) // 3
    finally:
        embedded.index.close()
        milvus.index.close()


# ----------------------------------------------------------------------------------------------
# Updating: the same index after the same updates


def test_a_changed_file_a_deleted_file_a_removal_and_a_rebuild_leave_both_stores_equal(
    fresh_pair: Pair, embedder
) -> None:
    pair = fresh_pair
    files = sorted((pair.corpus / "scifact").iterdir())
    files[0].write_text(files[0].read_text() + " A glacier calved beside the lighthouse keeper's parrot.")
    files[1].unlink()
    a, b = _build_both(pair, embedder)
    assert (b.stats.added, b.stats.changed, b.stats.removed) == (a.stats.added, a.stats.changed, a.stats.removed)
    assert b.stats.changed == [f"scifact/{files[0].name}"] and b.stats.removed == [f"scifact/{files[1].name}"]
    assert (b.stats.n_chunks, b.stats.generation, b.stats.chunks_embedded) == (
        a.stats.n_chunks,
        a.stats.generation,
        a.stats.chunks_embedded,
    )
    _compare(pair, embedder, ["glacier lighthouse keeper parrot", *SEED_QUESTIONS[:5]])

    removed = [
        remove_documents(spec, [f"scifact/{files[2].name}", "not/indexed.txt"], embedder=embedder)
        for spec in (pair.faiss, pair.milvus)
    ]
    assert removed[1].removed == removed[0].removed == [f"scifact/{files[2].name}"]
    assert removed[1].generation == removed[0].generation == 3
    _compare(pair, embedder, ["glacier lighthouse keeper parrot", *SEED_QUESTIONS[5:10]])

    again = _build_both(pair, embedder, remove_missing=False)  # adds the removed file back
    assert again[1].stats.added == again[0].stats.added == [f"scifact/{files[2].name}"]
    _compare(pair, embedder, SEED_QUESTIONS[10:15])
    _assert_no_leftover_rows(pair.milvus)


def test_a_rebuild_retires_everything_and_continues_the_chunk_ids(tmp_path: Path, embedder, copy_seed) -> None:
    corpus = copy_seed(tmp_path / "corpus").parent
    (corpus / "notes.txt").write_text("The lighthouse keeper counted 41 gulls on the pier in May.", encoding="utf-8")
    pair = Pair(corpus, f"faiss:{tmp_path / 'embedded'}", f"milvus:{tmp_path / 'small.db'}")
    _build_both(pair, embedder)
    (corpus / "notes.txt").unlink()
    rebuilt = _build_both(pair, embedder, rebuild=True)
    assert rebuilt[1].stats.added == rebuilt[0].stats.added == [SEED_NAME]
    assert rebuilt[1].stats.generation == rebuilt[0].stats.generation == 2
    _compare(pair, embedder, ["How many gulls did the keeper count?", *SEED_QUESTIONS[:3]])
    embedded = open_store(pair.faiss)
    try:
        assert min(_ids(embedded)) > 1  # new ids after the old ones, in both (compared above)
    finally:
        embedded.close()
    _assert_no_leftover_rows(pair.milvus)


def _compare(pair: Pair, embedder, questions: list[str]) -> None:
    embedded, milvus = open_store(pair.faiss), open_store(pair.milvus)
    try:
        _assert_same_store(embedded, milvus)
        _assert_same_searches(embedded, milvus, embedder, questions)
    finally:
        embedded.close()
        milvus.close()


def _raw_count(client, name: str, flt: str) -> int:
    return int(client.query(name, filter=flt, output_fields=["count(*)"])[0]["count(*)"])


def _row_counts(spec: str) -> dict[str, int]:
    """Rows in the store's collections, whatever their generation: all, and those of the
    committed generation (for chunks)."""
    parsed = parse_store(spec)
    names, manifest = Names.of(parsed), committed_manifest(parsed)
    assert manifest is not None
    client = connect(parsed)
    try:
        load_all(client, names)
        g = manifest["generation"]
        return {
            "generation": g,
            "n_chunks": manifest["n_chunks"],
            "chunks": _raw_count(client, names.chunks, "gen_added >= 0"),
            "docs": _raw_count(client, names.docs, "gen_added >= 0"),
            "n_documents": manifest["n_documents"],
            "uncommitted": sum(_raw_count(client, n, f"gen_added > {g}") for n in names.versioned),
            "retired": sum(_raw_count(client, n, f"gen_removed < {NOT_REMOVED}") for n in names.versioned),
            "df_uncommitted": _raw_count(client, names.df, f"gen_new > {g}"),
            "df_zero": _raw_count(client, names.df, "df_new == 0"),
        }
    finally:
        disconnect(parsed, client)


def _assert_no_leftover_rows(spec: str) -> None:
    counts = _row_counts(spec)
    assert counts["chunks"] == counts["n_chunks"] and counts["docs"] == counts["n_documents"], counts
    assert counts["uncommitted"] == counts["retired"] == counts["df_uncommitted"] == counts["df_zero"] == 0, counts


def test_an_update_with_nothing_readable_changes_nothing(fresh_pair: Pair, embedder, tmp_path: Path) -> None:
    before = committed_manifest(fresh_pair.milvus)
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInput, match="no readable documents"):
        build_index([tmp_path / "empty"], index_dir=fresh_pair.milvus, embedder=embedder)
    after = committed_manifest(fresh_pair.milvus)
    assert after == before
    _assert_no_leftover_rows(fresh_pair.milvus)


def test_a_large_index_gets_hnsw_and_still_finds_the_same_chunks(tmp_path: Path, embedder, copy_seed) -> None:
    """Above `approximate_above` chunks both stores switch to HNSW (on a corpus this small it finds
    what exact search finds)."""
    copy_seed(tmp_path / "corpus")
    config = RagConfig(approximate_above=3)
    specs = (f"faiss:{tmp_path / 'embedded'}", f"milvus:{tmp_path / 'small.db'}")
    for spec in specs:
        build_index([tmp_path / "corpus"], index_dir=spec, embedder=embedder, config=config)
    embedded, milvus = (open_store(s, config=config) for s in specs)
    try:
        assert isinstance(milvus, MilvusStore) and milvus.manifest["faiss_index"] == "HNSW(M=32,IP)"
        assert milvus.client.describe_index(milvus.names.chunks, "vector")["index_type"] == "HNSW"
        _assert_same_searches(embedded, milvus, embedder, SEED_QUESTIONS[:5])
    finally:
        embedded.close()
        milvus.close()


def test_a_store_never_built_has_no_manifest_and_reading_it_creates_nothing(tmp_path: Path) -> None:
    spec = f"milvus:{tmp_path / 'never.db'}"
    assert committed_manifest(spec) is None and not (tmp_path / "never.db").exists()
    with MilvusWriter(parse_store(spec), RagConfig()):
        pass  # creates the collections, commits nothing
    assert committed_manifest(spec) is None
    with pytest.raises(IndexNotFound, match="no index at milvus:"):
        MilvusStore.open(parse_store(spec))
    assert uploads_dir(parse_store(spec)) == tmp_path / "never.uploads"


def test_a_second_writer_in_another_process_is_refused_with_the_holders_pid(fresh_pair: Pair) -> None:
    with MilvusWriter(parse_store(fresh_pair.milvus), RagConfig()):
        result = run_rag(["index", str(fresh_pair.corpus), "--store", fresh_pair.milvus], cwd=ROOT)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rag index: error: another process"), result.stderr
    assert f"(pid {os.getpid()})" in lines[0] and fresh_pair.milvus in lines[0]
    with pytest.raises(IndexLocked):  # the same in one process: the lock is the file's, not the process's
        with (
            MilvusWriter(parse_store(fresh_pair.milvus), RagConfig()),
            MilvusWriter(parse_store(fresh_pair.milvus), RagConfig()),
        ):
            pass


def test_the_server_lock_row_refuses_a_second_writer_until_released_or_lapsed(tmp_path: Path, monkeypatch) -> None:
    """The lease row a server store is locked with, exercised on a Milvus Lite meta collection
    (the same calls a server gets)."""
    from rag.store import milvus_schema

    spec = parse_store(f"milvus:{tmp_path / 'locks.db'}")
    names = Names.of(spec)
    client = connect(spec)
    try:
        milvus_schema.create_small(client, names, names.meta)
        first, second = (milvus_schema.ServerLock(spec, client, names) for _ in range(2))
        first.acquire()
        with pytest.raises(IndexLocked, match=rf"another process \(pid {os.getpid()} on .+\) is writing"):
            second.acquire()
        first.release()
        second.acquire()  # free once released
        monkeypatch.setattr(milvus_schema, "LEASE_SECONDS", -1.0)  # as if its holder died long ago
        second.renew(force=True)
        first.acquire()  # a lapsed lease is taken over
        assert first._holder()["token"] == first.token  # type: ignore[index]
    finally:
        disconnect(spec, client)


# ----------------------------------------------------------------------------------------------
# Bad specs


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["index", "seeds", "--store", "milvus:/nonexistent-dir/x.db"], "milvus:/nonexistent-dir/x.db"),
        (["ask", "--store", "milvus://127.0.0.1:1", "a question"], "http://127.0.0.1:1/rag"),
        (["ask", "--store", "bogus://x", "a question"], "bogus://x"),
    ],
)
def test_a_bad_store_spec_or_an_unreachable_server_is_one_line_and_exit_2(args: list[str], names: str) -> None:
    started = time.monotonic()
    result = run_rag(args, cwd=ROOT, timeout=120)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith(f"rag {args[0]}: error: ") and names in lines[0], lines[0]
    assert time.monotonic() - started < 60  # a few seconds, not a hang (the model loads for `index`)


def test_a_file_where_the_store_should_be_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file.db").write_text("not a store")
    with pytest.raises(BadStore, match="is a file"):
        with MilvusWriter(parse_store(f"milvus:{tmp_path / 'file.db'}"), RagConfig()):
            pass


# ----------------------------------------------------------------------------------------------
# Killed in the middle of an update

STATIONS = [f"Station{chr(65 + i)}{chr(97 + (i * 7) % 26)}" for i in range(24)]
CHANGED = range(0, 5)
DELETED = range(20, 24)
ADDED = ["Northreach", "Southmoor", "Eastwater", "Westfold"]

# Runs in the child. argv: POINT (a `rag.store.milvus.checkpoint` name), N (stop at its N-th
# call), then the `rag` arguments.
HOOK = r"""
import sys, threading
point, nth, args = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
import rag.store.milvus as milvus
milvus.BATCH = 4  # small inserts: the update writes its chunks in several
calls = [0]
def checkpoint(name):
    if name == point:
        calls[0] += 1
        if calls[0] == nth:
            print("PAUSED " + name, flush=True)
            threading.Event().wait()  # until the parent's SIGKILL
milvus.checkpoint = checkpoint
from rag.cli import main
sys.exit(main(args))
"""


def _station(name: str, rain: int) -> str:
    return (
        f"Field log for the {name} weather station. The {name} station recorded {rain:,} millimetres of rain. "
        f"Observers at {name} noted strong winds from the west. The {name} log was filed with the district office.\n"
    )


def _question(name: str) -> str:
    return f"How many millimetres of rain did the {name} station record?"


def _write_old(corpus: Path) -> None:
    corpus.mkdir(parents=True)
    for i, name in enumerate(STATIONS):
        (corpus / f"s{i:02d}.txt").write_text(_station(name, 1000 + 37 * i), encoding="utf-8")


def _make_new(corpus: Path) -> None:
    for i in CHANGED:
        (corpus / f"s{i:02d}.txt").write_text(_station(STATIONS[i], 5000 + 53 * i), encoding="utf-8")
    for i in DELETED:
        (corpus / f"s{i:02d}.txt").unlink()
    for k, name in enumerate(ADDED):
        (corpus / f"a{k}.txt").write_text(_station(name, 7000 + k), encoding="utf-8")


def _state(corpus: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(corpus.glob("*.txt"))}


@dataclass
class Kill:
    name: str
    point: str
    nth: int
    rebuild: bool
    expect: str  # "old" or "new"
    base: Path = Path()
    label: str = ""
    returncode: int | None = None
    stderr: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    second_writer: subprocess.CompletedProcess | None = None
    reader_error: str = ""

    @property
    def corpus(self) -> Path:
        return self.base / "corpus"

    @property
    def spec(self) -> str:
        return f"milvus:{self.base / 'stations.db'}"


KILLS = [
    Kill("update: after the first chunk rows are written", "rows-written", 1, False, "old"),
    Kill("rebuild: after the first chunk rows are written", "rows-written", 2, True, "old"),
    Kill("update: everything written, manifest not yet upserted", "before-commit", 1, False, "old"),
    Kill("update: manifest upserted, old rows not yet deleted", "after-commit", 1, False, "new"),
]
HOLDER = KILLS[0].name  # while it is stopped, a second writer and a reader are tried


@pytest.fixture(scope="module")
def station_base(tmp_path_factory, embedder) -> Path:
    root = tmp_path_factory.mktemp("milvus-kill-base")
    _write_old(root / "corpus")
    report = build_index([root / "corpus"], index_dir=f"milvus:{root / 'stations.db'}", embedder=embedder)
    assert len(report.stats.added) == len(STATIONS)
    return root


@pytest.fixture(scope="module")
def killed(station_base: Path, tmp_path_factory) -> dict[str, Kill]:
    """Every scenario started at once, each killed with SIGKILL at its stop point."""
    kills = [Kill(k.name, k.point, k.nth, k.rebuild, k.expect) for k in KILLS]
    procs: dict[str, subprocess.Popen] = {}
    for k in kills:
        k.base = tmp_path_factory.mktemp("milvus-kill")
        shutil.copytree(station_base / "corpus", k.corpus)
        shutil.copytree(station_base / "stations.db", k.base / "stations.db", ignore=shutil.ignore_patterns("LOCK"))
        _make_new(k.corpus)
        args = ["index", str(k.corpus), "--store", k.spec, *(["--rebuild"] if k.rebuild else [])]
        with open(k.base / "stderr.log", "w") as err:
            procs[k.name] = subprocess.Popen(
                [sys.executable, "-c", HOOK, k.point, str(k.nth), *args],
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env=KILL_ENV,
                cwd=ROOT,
            )
    watchdog = threading.Timer(300, lambda: _kill_all(procs.values()))
    watchdog.start()
    try:
        for k in kills:
            proc = procs[k.name]
            for line in proc.stdout:  # type: ignore[union-attr]
                if line.startswith("PAUSED"):
                    k.label = line.strip()
                    break
            if k.name == HOLDER and k.label:
                _try_while_held(k)
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            k.returncode = proc.wait()
            k.stderr = (k.base / "stderr.log").read_text(errors="replace")[-3000:]
            k.counts = _row_counts(k.spec)
    finally:
        watchdog.cancel()
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return {k.name: k for k in kills}


def _kill_all(procs) -> None:
    for proc in procs:
        proc.kill()


def _try_while_held(k: Kill) -> None:
    """A second `rag index` and a reader in this process, while the child holds the store."""
    k.second_writer = run_rag(["index", str(k.corpus), "--store", k.spec], cwd=ROOT)
    try:
        MilvusStore.open(parse_store(k.spec)).close()
    except BadStore as exc:
        k.reader_error = str(exc)


def _held(spec: str, embedder, states: dict[str, dict[str, str]]) -> str:
    """The store loads, holds exactly one of `states` in its manifest, its chunks and its
    documents, answers from it; returns that state's name."""
    rag = RAG.open(spec, embedder=embedder)
    try:
        store = rag.index
        held = {d.source: d.sha256 for d in store.documents()}
        matches = [name for name, state in states.items() if state == held]
        assert matches, f"a mix: {sorted(set(held) ^ set(states['old']))}"
        for source in set().union(*states.values()):
            document = store.document(source)
            assert (document.sha256 if document else None) == held.get(source), source
            assert bool(store.document_chunks(source)) == (source in held), source
        assert sum(len(store.document_chunks(s)) for s in held) == len(store) == len(_ids(store))
        chunk_terms = [set(stem_terms([c.text])[0]) for c in store.chunks(_ids(store)).values()]
        for term in ("station", "westfold", "rain", "northreach"):  # counted over the generation's chunks
            assert store.idf_weights([term])[term] == idf(len(store), sum(term in t for t in chunk_terms)), term
        for i in (0, 10):  # a changed station and a steady one
            answer = rag.ask(_question(STATIONS[i]))
            text = store.document(f"s{i:02d}.txt").text  # type: ignore[union-attr]
            figure = text.split(" recorded ")[1].split(" ")[0]
            assert not answer.abstained and figure in answer.text, (answer.text, figure)
            assert {h.chunk.source for h in answer.hits} <= set(held)
        return matches[0]
    finally:
        rag.index.close()


@pytest.mark.slow
@pytest.mark.parametrize("name", [k.name for k in KILLS])
def test_sigkill_leaves_the_old_or_the_new_generation_and_a_rerun_completes(
    killed, station_base: Path, embedder, name: str
) -> None:
    k = killed[name]
    assert k.label.startswith("PAUSED"), f"{name}: never reached its stop point:\n{k.stderr}"
    assert k.returncode == -signal.SIGKILL, (k.returncode, k.stderr)
    states = {"old": _state(station_base / "corpus"), "new": _state(k.corpus)}
    # The kill landed where meant: rows of the uncommitted generation, or retired rows left over.
    if k.expect == "old":
        assert k.counts["generation"] == 1 and k.counts["uncommitted"] > 0, k.counts
    else:
        assert k.counts["generation"] == 2 and k.counts["chunks"] > k.counts["n_chunks"], k.counts

    assert _held(k.spec, embedder, states) == k.expect

    report = build_index([k.corpus], index_dir=k.spec, embedder=embedder, rebuild=k.rebuild)
    assert report.stats.generation >= 2
    assert _held(k.spec, embedder, states) == "new"
    _assert_no_leftover_rows(k.spec)


@pytest.mark.slow
def test_while_a_writer_holds_the_store_a_second_writer_and_a_reader_are_refused(killed) -> None:
    k = killed[HOLDER]
    result = k.second_writer
    assert result is not None, f"the first writer never stopped: {k.label!r}\n{k.stderr}"
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "another process (pid" in lines[0] and k.spec in lines[0], result.stderr
    # Milvus Lite opens a store in one process at a time: a reader elsewhere is told so.
    assert "open in another process" in k.reader_error and k.spec in k.reader_error, k.reader_error
