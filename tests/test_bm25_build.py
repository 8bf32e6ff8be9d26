"""The streamed BM25 build (rag/bm25_build.py) against bm25s's own in-memory `BM25().index`.

Both indexes are built in this process from the same texts with the same tokenizer, saved, loaded
with `bm25s.BM25.load` (as `rag.store.Index.load` does) and compared: vocabulary, every term's
column, the full score vector of many queries and the top-k ids of `rag.retrieve.bm25_search`.
Block sizes are small so that every corpus spans several blocks.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import skip_or_fail

from eval.datasets import SHARED_DATASETS
from rag.bm25_build import SPILL, build_bm25
from rag.lexical import bm25_tokenize, stem_terms
from rag.store.reader import bm25s_search

SCIFACT = SHARED_DATASETS / "scifact"
FILES = ("data.csc.index.npy", "indices.csc.index.npy", "indptr.csc.index.npy", "vocab.index.json", "params.index.json")

HAND = [
    "The cat sat on the mat. The cat was happy.",
    "The cat sat on the mat. The cat was happy.",  # a duplicate
    "the and of a an",  # nothing left after stop words
    "",
    "Cats running, cat runs; the runner ran quickly and RAN again.",
    "Café naïve résumé Straße STRASSE façade",
    "日本語のテキスト と 中文文本 and Ωμέγα αλφα",
    "emoji 🙂🙂 smile smiles smiling 😀 smile",
    "COVID-19 cases rose in 2024; covid 19 vaccines, snake_case and x1 y2 z3",
    "a",
    "of the",  # two empty documents in a row, so some small blocks have no terms at all
    "mat " * 50 + "cat " * 3 + "dog",
    "Dogs and cats: a mat, a hat, a bat.",
    "Photosynthesis converts light energy into chemical energy in chloroplasts.",
    "The mitochondria is the powerhouse of the cell; mitochondrial DNA is maternally inherited.",
    "Cafe naive resume strasse facade",
    "The cat sat on the mat. The cat was happy.",
]
HAND_QUERIES = [
    "cat",
    "cats on mats",
    "café",
    "strasse",
    "straße",
    "日本語のテキスト",
    "smile 🙂",
    "covid 19",
    "energy chloroplasts",
    "mitochondria dna",
    "running runner",
    "mat dog",
    "zzz unknown",
    "the of",
    "x1 y2",
    "powerhouse cell maternally",
]


def _reference(texts: list[str], out: Path) -> Path:
    import bm25s

    out.mkdir()
    retriever = bm25s.BM25()
    retriever.index(bm25_tokenize(texts), show_progress=False)
    retriever.save(str(out), show_progress=False)
    return out


def _streamed(texts: list[str], out: Path, block_rows: int) -> Path:
    out.mkdir()
    built = build_bm25(((i * 7 + 3, t) for i, t in enumerate(texts)), out, block_rows=block_rows)
    assert built.ids.dtype == np.int64 and built.ids.tolist() == [i * 7 + 3 for i in range(len(texts))]
    assert built.n_blocks == -(-len(texts) // block_rows)
    assert not (out / SPILL).exists()
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    return out


def _load(path: Path):
    import bm25s

    return bm25s.BM25.load(str(path), mmap=False, show_progress=False)


def _columns(retriever) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """term -> (document rows, scores) of its column, independent of the term ids."""
    s = retriever.scores
    out = {}
    for term, j in retriever.vocab_dict.items():
        if j + 1 < len(s["indptr"]):
            a, b = s["indptr"][j], s["indptr"][j + 1]
            out[term] = (np.asarray(s["indices"][a:b]), np.asarray(s["data"][a:b]))
    return out


def _assert_equivalent(ref_dir: Path, new_dir: Path, n_docs: int, queries: list[str], k: int = 10) -> None:
    ref, new = _load(ref_dir), _load(new_dir)
    assert json.loads((new_dir / "params.index.json").read_text()) == json.loads(
        (ref_dir / "params.index.json").read_text()
    )
    assert new.scores["num_docs"] == ref.scores["num_docs"] == n_docs
    for key in ("data", "indices", "indptr"):
        assert new.scores[key].dtype == ref.scores[key].dtype, key
    assert set(new.vocab_dict) == set(ref.vocab_dict)
    ref_cols, new_cols = _columns(ref), _columns(new)
    assert ref_cols.keys() == new_cols.keys()
    for term, (rows, data) in ref_cols.items():
        np.testing.assert_array_equal(new_cols[term][0], rows, err_msg=term)
        np.testing.assert_allclose(new_cols[term][1], data, rtol=1e-6, err_msg=term)

    ids = np.arange(n_docs, dtype=np.int64) * 7 + 3
    checked = 0
    for query, tokens in zip(queries, stem_terms(queries)):
        known = [t for t in tokens if t in ref.vocab_dict]
        if known:
            np.testing.assert_allclose(
                new.get_scores(known), ref.get_scores(known), rtol=1e-6, atol=1e-7, err_msg=query
            )
            checked += 1
        got = bm25s_search(new, ids, query, k)
        want = bm25s_search(ref, ids, query, k)
        np.testing.assert_allclose([s for _, s in got], [s for _, s in want], rtol=1e-6, err_msg=query)
        # The same ids with the same scores, allowing ties at the cut-off to be chosen differently.
        floor = want[-1][1] + 1e-5 if len(want) == k else 0.0
        inside = {i: s for i, s in want if s > floor}
        assert {i for i, s in got if s > floor} == inside.keys(), query
        assert [dict(got)[i] for i in inside] == pytest.approx(list(inside.values()), rel=1e-6), query
    assert checked >= min(len(queries), 10) // 2


@pytest.mark.parametrize("block_rows", [1, 2, 3, 5, 1000])
def test_hand_corpus_equals_bm25s(tmp_path: Path, block_rows: int) -> None:
    ref = _reference(HAND, tmp_path / "ref")
    new = _streamed(HAND, tmp_path / "new", block_rows)
    _assert_equivalent(ref, new, len(HAND), HAND_QUERIES + HAND)


def test_files_are_byte_identical_to_bm25s(tmp_path: Path) -> None:
    """Within one process even the term ids match bm25s's (they follow Python's set order of the
    stems, so they differ between processes for bm25s itself)."""
    ref = _reference(HAND, tmp_path / "ref")
    new = _streamed(HAND, tmp_path / "new", 4)
    for name in FILES:
        assert (new / name).read_bytes() == (ref / name).read_bytes(), name


@pytest.fixture(scope="module")
def scifact() -> tuple[list[str], list[str]]:
    if not (SCIFACT / "corpus.jsonl").is_file():
        skip_or_fail(f"SciFact not found at {SCIFACT}")
    with open(SCIFACT / "corpus.jsonl", encoding="utf-8") as fh:
        docs = [json.loads(line) for line in fh]
    with open(SCIFACT / "queries.jsonl", encoding="utf-8") as fh:
        queries = [json.loads(line)["text"] for line in fh]
    return [f"{d['title']}\n{d['text']}" for d in docs[:3000]], queries[:400]


@pytest.mark.slow
def test_scifact_equals_bm25s(tmp_path: Path, scifact: tuple[list[str], list[str]]) -> None:
    texts, queries = scifact
    ref = _reference(texts, tmp_path / "ref")
    new = _streamed(texts, tmp_path / "new", 470)  # 7 blocks, the last one short
    _assert_equivalent(ref, new, len(texts), queries, k=100)


def test_rows_are_read_one_block_at_a_time(tmp_path: Path) -> None:
    pulled = 0
    behind: list[int] = []

    def rows():
        nonlocal pulled
        for i, text in enumerate(HAND * 3):
            pulled += 1
            yield i, text

    def tokenize(texts: list[str]):
        behind.append(pulled)
        return bm25_tokenize(texts)

    (tmp_path / "out").mkdir()
    build_bm25(rows(), tmp_path / "out", block_rows=4, tokenize=tokenize)
    assert behind == [min(4 * (i + 1), len(HAND) * 3) for i in range(len(behind))]


def test_empty_corpus_writes_nothing(tmp_path: Path) -> None:
    built = build_bm25(iter(()), tmp_path, block_rows=3)
    assert built.ids.dtype == np.int64 and len(built.ids) == 0
    assert list(tmp_path.iterdir()) == []


def test_corpus_of_stop_words_only_loads_and_finds_nothing(tmp_path: Path) -> None:
    """bm25s's own index() raises on it (max() of an empty vocabulary); the streamed build writes an
    index with only bm25s's empty token, which loads and matches nothing."""
    texts = ["the and of", "", "a an the"]
    built = build_bm25(enumerate(texts), tmp_path, block_rows=2)
    assert (built.n_vocab, built.nnz) == (0, 0)
    retriever = _load(tmp_path)
    assert retriever.vocab_dict == {"": 0} and retriever.scores["num_docs"] == 3
    assert bm25s_search(retriever, built.ids, "the cat", 5) == []


def test_only_lucene_scoring(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="lucene"):
        build_bm25(enumerate(HAND), tmp_path, method="bm25+")


class _RandomEmbedder:
    """The real tokenizer (chunking is real) and seeded random unit vectors: BM25 needs no model."""

    backend = "random"

    def __init__(self) -> None:
        from rag.embed import load_tokenizer

        self.tokenizer = load_tokenizer()
        self.rng = np.random.default_rng(0)

    def encode_chunks(self, chunks, *, batch_size: int = 32, progress=None):
        from rag.config import MODEL_DIM

        def unit(shape):
            x = self.rng.standard_normal(shape).astype(np.float32)
            return x / np.linalg.norm(x, axis=-1, keepdims=True)

        return unit((len(chunks), MODEL_DIM)), [unit((len(c.sentences), MODEL_DIM)) for c in chunks]


def _document(source: str, text: str):
    import hashlib

    from rag.types import Document

    return Document(source, text, hashlib.sha256(text.encode()).hexdigest())


def test_index_writer_bm25_equals_bm25s_across_generations(tmp_path: Path, monkeypatch) -> None:
    """Through the real IndexWriter (small blocks), over two generations: the committed BM25 covers
    exactly the live chunks, in id order, and scores as bm25s does on their texts."""
    import sqlite3

    import rag.bm25_build
    from rag.config import RagConfig
    from rag.ingest import update_index
    from rag.store import DB, Index, IndexWriter

    blocks: list[int] = []
    real_build = rag.bm25_build.build_bm25

    def build(*args, **kwargs):
        built = real_build(*args, **kwargs)
        blocks.append(built.n_blocks)
        return built

    monkeypatch.setattr(rag.bm25_build, "BLOCK_ROWS", 2)
    monkeypatch.setattr(rag.bm25_build, "build_bm25", build)
    docs = {f"d{i}.txt": " ".join(HAND[i : i + 6]) + f" Document number {i}." for i in range(0, len(HAND), 2)}
    docs["stop.txt"] = "The and of. A an the."
    index_dir = tmp_path / "index"
    for generation, (add, remove) in enumerate([(sorted(docs), []), (["new.txt"], ["d0.txt", "d4.txt"])], 1):
        if add == ["new.txt"]:
            docs["new.txt"] = "Mitochondria and chloroplasts convert energy; cats sit on mats."
        with IndexWriter(index_dir, RagConfig()) as writer:
            update_index(writer, [_document(s, docs[s]) for s in add], remove, embedder=_RandomEmbedder())
        index = Index.load(index_dir)
        try:
            assert index.generation == generation
            db = sqlite3.connect(str(index_dir / DB))
            rows = db.execute(
                "SELECT id, text FROM chunks WHERE gen_added <= ? AND (gen_removed IS NULL OR "
                "gen_removed > ?) ORDER BY id",
                (generation, generation),
            ).fetchall()
            db.close()
            assert index.bm25_ids.tolist() == [r[0] for r in rows]
            assert blocks[-1] == -(-len(rows) // 2) >= 3
            ref = _reference([r[1] for r in rows], tmp_path / f"ref-{generation}")
            _assert_equivalent(
                ref,
                index_dir / index.manifest["files"]["bm25"],
                len(rows),
                HAND_QUERIES + ["document number 2", "mitochondria cats"],
            )
            assert not [p for p in index_dir.iterdir() if p.name.endswith(".tmp")]
        finally:
            index.close()


def test_index_of_stop_words_only_builds(tmp_path: Path) -> None:
    """bm25s's index() raised on it, failing the whole `rag index`; now the index commits and BM25
    finds nothing."""
    from rag.config import RagConfig
    from rag.ingest import update_index
    from rag.retrieve import search
    from rag.store import Index, IndexWriter

    with IndexWriter(tmp_path / "index", RagConfig()) as writer:
        update_index(writer, [_document("stop.txt", "The and of. A an the.")], [], embedder=_RandomEmbedder())
    index = Index.load(tmp_path / "index")
    try:
        assert len(index.bm25_ids) == len(index) == 1
        assert search(index, "the cat", None, config=RagConfig(mode="bm25")) == []
    finally:
        index.close()
