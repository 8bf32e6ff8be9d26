"""A memory-bounded BM25 build that writes the same index as `bm25s.BM25().index(...).save(...)`.

bm25s indexes a whole corpus at once: every text, every document's token list and three arrays of
all (term, document, score) entries live in memory together (5 GB at 1M chunks, BENCHMARKS.md).
Here the rows are read in blocks and memory holds one block plus the vocabulary, not the corpus:

1. Each block is tokenized exactly as before (`rag.lexical.bm25_tokenize`: bm25s's tokenizer,
   English stop words, Snowball stemmer) and reduced to (term, tf) per document, which is spilled to
   `.npy` files in a `spill/` folder inside `out_dir`; document frequencies and lengths are counted.
2. The vocabulary gets bm25s's term ids (see `_bm25s_vocab`), the idf and the column pointers
   (`indptr`) follow from the document frequencies, and the CSC `data`/`indices` arrays are filled
   through `np.lib.format.open_memmap`, block by block, by counting sort: each block's entries are
   sorted by term (stable, so documents stay ascending within a column) and written at each
   column's next free slot.

Same k1, b, scoring ("lucene"), float32 arithmetic, vocabulary and files (`data.csc.index.npy`,
`indices.csc.index.npy`, `indptr.csc.index.npy`, `vocab.index.json`, `params.index.json`), so
`bm25s.BM25.load` and `rag.retrieve.bm25_search` read the result unchanged
(tests/test_bm25_build.py checks it against bm25s itself).
"""

from __future__ import annotations

import itertools
import json
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.lexical import bm25_tokenize, idf

DATA = "data.csc.index.npy"
INDICES = "indices.csc.index.npy"
INDPTR = "indptr.csc.index.npy"
VOCAB = "vocab.index.json"
PARAMS = "params.index.json"
SPILL = "spill"
BLOCK_ROWS = 20_000


@dataclass
class Bm25Build:
    ids: np.ndarray  # the row id of each BM25 document, in index order (int64)
    n_vocab: int  # terms, not counting bm25s's empty token
    nnz: int  # stored (term, document) scores
    n_blocks: int


def build_bm25(
    rows: Iterable[tuple[int, str]],
    out_dir: str | Path,
    *,
    block_rows: int | None = None,
    tokenize: Callable[[list[str]], Any] | None = None,
    k1: float = 1.5,
    b: float = 0.75,
    method: str = "lucene",
) -> Bm25Build:
    """Index `rows` ((id, text), in the order BM25 documents should have) into `out_dir`.

    Writes bm25s's files into `out_dir` (which must exist) unless `rows` is empty, in which case
    nothing is written and `ids` is empty. Rows are read `block_rows` at a time (default
    `BLOCK_ROWS`: 100-200 MB of working memory at 200-token chunks). `tokenize` is
    `rag.lexical.bm25_tokenize` by default and must return a `bm25s.tokenization.Tokenized`
    (ids, vocab) for a list of texts.
    """
    block_rows = BLOCK_ROWS if block_rows is None else block_rows
    if method != "lucene":
        raise ValueError(f"only bm25s's default scoring, 'lucene', is implemented, not {method!r}")
    if block_rows < 1:
        raise ValueError(f"block_rows must be >= 1, got {block_rows}")
    tokenize = bm25_tokenize if tokenize is None else tokenize
    out = Path(out_dir)
    spill = out / SPILL
    shutil.rmtree(spill, ignore_errors=True)
    spill.mkdir()
    try:
        ids, stems, df, total_len, n_blocks = _count(rows, spill, block_rows, tokenize)
        n_docs = len(ids)
        if n_docs == 0:
            return Bm25Build(ids, 0, 0, 0)
        vocab_dict, final_of = _bm25s_vocab(stems)
        n_vocab = len(stems)
        df_final = np.zeros(n_vocab, dtype=np.int64)
        df_final[final_of] = df
        # bm25s: np.array([len(doc) for doc in corpus]).mean(), a float64 (the sum is exact)
        avg_len = np.float64(total_len) / n_docs
        # bm25s's _score_idf_lucene with math.log on Python floats, stored as float32
        idfs = np.array([idf(n_docs, d) for d in df_final.tolist()], dtype=np.float32)
        indptr = np.zeros(n_vocab + 1, dtype=np.int64)
        np.cumsum(df_final, out=indptr[1:])
        nnz = int(indptr[-1])
        _fill(out, spill, n_blocks, final_of, idfs, indptr, avg_len, k1, b)
        np.save(out / INDPTR, indptr, allow_pickle=False)
        _write_meta(out, vocab_dict, n_docs, k1, b, method)
        return Bm25Build(ids, n_vocab, nnz, n_blocks)
    finally:
        shutil.rmtree(spill, ignore_errors=True)


def _count(
    rows: Iterable[tuple[int, str]], spill: Path, block_rows: int, tokenize: Callable[[list[str]], Any]
) -> tuple[np.ndarray, list[str], np.ndarray, int, int]:
    """Pass 1: tokenize block by block, spill (term, tf) per document, count document frequencies.

    Terms get provisional ids in order of first appearance in the token stream (the order in
    which bm25s's tokenizer first meets each stem). Returns the row ids, the stems by provisional
    id, their document frequencies, the total token count and the number of blocks.
    """
    it = iter(rows)
    global_id: dict[str, int] = {}
    df = np.zeros(0, dtype=np.int64)
    id_blocks: list[np.ndarray] = []
    total_len = 0
    while (block := _read_block(it, block_rows, tokenize)) is not None:
        ids, lengths, flat, local_vocab = block
        del block
        id_blocks.append(ids)
        terms, tf, n_terms = _document_terms(lengths, flat, _provisional_ids(flat, local_vocab, global_id))
        del flat
        if len(global_id) > len(df):
            df = np.concatenate([df, np.zeros(len(global_id) - len(df), dtype=np.int64)])
        df += np.bincount(terms, minlength=len(df))
        total_len += int(lengths.sum())
        _spill_block(spill, len(id_blocks) - 1, terms, tf, n_terms, lengths)
    ids = np.concatenate(id_blocks) if id_blocks else np.zeros(0, dtype=np.int64)
    return ids, list(global_id), df, total_len, len(id_blocks)


def _read_block(
    rows: Iterator[tuple[int, str]], block_rows: int, tokenize: Callable[[list[str]], Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, int]] | None:
    """The next `block_rows` rows tokenized: their ids, each document's token count, all their
    block-local term ids in one array, and the block's vocabulary (stem -> local id); None when no
    row is left. The texts are let go once tokenized."""
    block = list(itertools.islice(rows, block_rows))
    if not block:
        return None
    ids = np.fromiter((r[0] for r in block), dtype=np.int64, count=len(block))
    tokenized = tokenize([r[1] for r in block])
    del block
    doc_ids, local_vocab = tokenized.ids, tokenized.vocab
    lengths = np.fromiter((len(d) for d in doc_ids), dtype=np.int64, count=len(doc_ids))
    flat = np.fromiter(itertools.chain.from_iterable(doc_ids), dtype=np.int64, count=int(lengths.sum()))
    return ids, lengths, flat, local_vocab


def _provisional_ids(flat: np.ndarray, local_vocab: dict[str, int], global_id: dict[str, int]) -> np.ndarray:
    """Block-local term id -> provisional global id; the block's new stems are added to
    `global_id`, numbered in order of first appearance in `flat`."""
    local_stem = [""] * len(local_vocab)
    for stem, i in local_vocab.items():
        local_stem[i] = stem
    to_global = np.zeros(len(local_vocab), dtype=np.int64)
    if len(flat):
        seen, first = np.unique(flat, return_index=True)
        for local in seen[np.argsort(first, kind="stable")].tolist():
            stem = local_stem[local]
            g = global_id.get(stem)
            if g is None:
                g = global_id[stem] = len(global_id)
            to_global[local] = g
    return to_global


def _document_terms(
    lengths: np.ndarray, flat: np.ndarray, to_global: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The block's distinct (document, term) pairs, sorted by document, then term: the term of
    each (provisional id, int32), its count in the document (int64) and the number of pairs per
    document (int32)."""
    doc_of = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    keys, tf = np.unique((doc_of << 32) | to_global[flat], return_counts=True)
    del doc_of
    terms = (keys & 0xFFFFFFFF).astype(np.int32)
    n_terms = np.bincount(keys >> 32, minlength=len(lengths)).astype(np.int32)
    return terms, tf, n_terms


def _spill_block(
    spill: Path, blk: int, terms: np.ndarray, tf: np.ndarray, n_terms: np.ndarray, lengths: np.ndarray
) -> None:
    """Block `blk`'s entries written to `spill` (int32 arrays) for pass 2 (`_score_block`)."""
    for name, array in (
        ("terms", terms),
        ("tf", tf.astype(np.int32)),
        ("nterms", n_terms),
        ("lengths", lengths.astype(np.int32)),
    ):
        np.save(spill / f"{blk}.{name}.npy", array, allow_pickle=False)


def _bm25s_vocab(stems: list[str]) -> tuple[dict[str, int], np.ndarray]:
    """bm25s's term ids: `bm25s.tokenize` numbers the stems in the iteration order of
    `set(stems of the unique words, in order of first appearance)`. A set built by inserting the
    same distinct strings in the same order (duplicates change nothing) iterates in the same order
    within one process, so the ids equal those bm25s would give this corpus (string hashing is
    randomised per process, so no two processes agree on them anyway). bm25s then adds the empty
    token "" after the others. Returns the vocabulary and the final id of each provisional id."""
    vocab_dict = {stem: i for i, stem in enumerate(set(stems))}
    final_of = np.fromiter((vocab_dict[s] for s in stems), dtype=np.int64, count=len(stems))
    if "" not in vocab_dict:
        vocab_dict[""] = max(vocab_dict.values()) + 1 if vocab_dict else 0
    return vocab_dict, final_of


def _fill(
    out: Path,
    spill: Path,
    n_blocks: int,
    final_of: np.ndarray,
    idfs: np.ndarray,
    indptr: np.ndarray,
    avg_len: np.float64,
    k1: float,
    b: float,
) -> None:
    """Pass 2: score each block's entries and write them at their columns' next free slots."""
    nnz = int(indptr[-1])
    if nnz == 0:  # a memory map cannot be empty
        np.save(out / DATA, np.zeros(0, dtype=np.float32), allow_pickle=False)
        np.save(out / INDICES, np.zeros(0, dtype=np.int32), allow_pickle=False)
        return
    data = np.lib.format.open_memmap(out / DATA, mode="w+", dtype=np.float32, shape=(nnz,))
    indices = np.lib.format.open_memmap(out / INDICES, mode="w+", dtype=np.int32, shape=(nnz,))
    heads = indptr[:-1].copy()
    first_doc = 0
    for blk in range(n_blocks):
        terms, local_doc, scores, n_docs = _score_block(spill, blk, final_of, idfs, avg_len, k1, b)
        _place(terms, local_doc, scores, first_doc, heads, data, indices)
        first_doc += n_docs
        del terms, local_doc, scores
    if not np.array_equal(heads, indptr[1:]):
        raise AssertionError("BM25 build: column counts of pass 2 differ from pass 1")
    data.flush()
    indices.flush()
    del data, indices


def _score_block(
    spill: Path, blk: int, final_of: np.ndarray, idfs: np.ndarray, avg_len: np.float64, k1: float, b: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Block `blk`'s entries read back from the spill: their final term ids, block-local document
    numbers and BM25 scores (float32, as bm25s computes them), and the block's document count."""
    terms = final_of[np.load(spill / f"{blk}.terms.npy")]
    tf = np.load(spill / f"{blk}.tf.npy").astype(np.float32)
    n_terms = np.load(spill / f"{blk}.nterms.npy")
    lengths = np.load(spill / f"{blk}.lengths.npy")
    local_doc = np.repeat(np.arange(len(n_terms), dtype=np.int32), n_terms)
    # bm25s (_score_tfc_lucene, per document, then idf * tfc stored as float32): with NumPy 2
    # the float64 length term makes the sum float64; NumPy 1's value-based casting added the
    # float64 scalar to the float32 tf in float32. result_type reproduces either.
    norm = k1 * ((1 - b) + b * lengths[local_doc] / avg_len)
    norm = norm.astype(np.result_type(avg_len, tf), copy=False)
    scores = (idfs[terms] * (tf / (norm + tf))).astype(np.float32)
    return terms, local_doc, scores, len(n_terms)


def _place(
    terms: np.ndarray,
    local_doc: np.ndarray,
    scores: np.ndarray,
    first_doc: int,
    heads: np.ndarray,
    data: np.ndarray,
    indices: np.ndarray,
) -> None:
    """Write a block's entries at their columns' next free slots (`heads`, advanced past them) by
    counting sort: entries sorted by term, stably, so documents stay ascending within a column."""
    order = np.argsort(terms, kind="stable")  # documents stay ascending within a term
    sorted_terms = terms[order]
    starts = (
        np.flatnonzero(np.r_[True, sorted_terms[1:] != sorted_terms[:-1]])
        if len(order)
        else np.zeros(0, dtype=np.int64)
    )
    counts = np.diff(np.r_[starts, len(order)])
    group_terms = sorted_terms[starts]
    pos = heads[sorted_terms] + (np.arange(len(order)) - np.repeat(starts, counts))
    data[pos] = scores[order]
    indices[pos] = local_doc[order] + first_doc
    heads[group_terms] += counts


def _write_meta(out: Path, vocab_dict: dict[str, int], n_docs: int, k1: float, b: float, method: str) -> None:
    """The vocabulary and parameters exactly as `bm25s.BM25.save` writes them."""
    import bm25s
    from bm25s.utils import json_functions

    retriever = bm25s.BM25(k1=k1, b=b, method=method)
    with open(out / VOCAB, "w", encoding="utf-8") as f:
        f.write(json_functions.dumps(vocab_dict, ensure_ascii=False))
    params = dict(
        k1=retriever.k1,
        b=retriever.b,
        delta=retriever.delta,
        method=retriever.method,
        idf_method=retriever.idf_method,
        dtype=retriever.dtype,
        int_dtype=retriever.int_dtype,
        num_docs=n_docs,
        version=bm25s.__version__,
        backend=retriever.backend,
    )
    with open(out / PARAMS, "w") as f:
        json.dump(params, f, indent=4)
