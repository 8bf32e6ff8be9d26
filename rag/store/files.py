"""The files of one index generation, and how every file of the index is written safely.

`vectors-<gen>.faiss` is an IndexIDMap2 over inner-product search whose ids are chunk ids: exact
(IndexFlatIP) up to `approximate_above` chunks, HNSW above it (`faiss_kind`, recorded in the
manifest as `faiss_index`). `bm25-<gen>/` holds bm25s's arrays (no pickle, rag/bm25_build.py) and
`ids.npy`, the chunk id of each BM25 row. Each is written beside its final name (`.tmp`), fsynced and
renamed into place, so a crash never leaves a half-written file under a name a manifest points to.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from rag import bm25_build
from rag.config import RagConfig

FLAT = "IndexIDMap2(IndexFlatIP)"
TMP = ".tmp"  # suffix of a file or folder being written
_GENERATION_PREFIXES = ("vectors-", "bm25-")


def faiss_kind(n_chunks: int, config: RagConfig) -> str:
    """The vector index an index of `n_chunks` chunks gets: exact up to `approximate_above`, HNSW
    above (the string is what the manifest records as `faiss_index`).

    Example:
        >>> faiss_kind(10, RagConfig())
        'IndexIDMap2(IndexFlatIP)'
        >>> faiss_kind(11, RagConfig(approximate_above=10, hnsw_m=16))
        'IndexIDMap2(IndexHNSWFlat,M=16,IP)'
    """
    if n_chunks <= config.approximate_above:
        return FLAT
    return f"IndexIDMap2(IndexHNSWFlat,M={config.hnsw_m},IP)"


def new_faiss_index(kind: str, config: RagConfig) -> Any:
    """An empty index of the kind `faiss_kind` names, for inner product over `model_dim` vectors."""
    import faiss

    if kind == FLAT:
        return faiss.IndexIDMap2(faiss.IndexFlatIP(config.model_dim))
    m = int(kind.split("M=")[1].split(",")[0])
    hnsw = faiss.IndexHNSWFlat(config.model_dim, m, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = config.hnsw_ef_construction
    hnsw.hnsw.efSearch = config.hnsw_ef_search
    return faiss.IndexIDMap2(hnsw)


def set_ef_search(faiss_index: Any, ef_search: int) -> None:
    """Set the HNSW search beam width of a loaded index (does nothing for an exact index)."""
    import faiss

    inner = faiss.downcast_index(faiss_index.index) if hasattr(faiss_index, "index") else faiss_index
    if isinstance(inner, faiss.IndexHNSW):
        inner.hnsw.efSearch = ef_search


def vectors_name(generation: int) -> str:
    """The file name of a generation's FAISS index.

    Example:
        >>> vectors_name(3)
        'vectors-3.faiss'
    """
    return f"vectors-{generation}.faiss"


def bm25_name(generation: int) -> str:
    """The folder name of a generation's BM25 index.

    Example:
        >>> bm25_name(3)
        'bm25-3'
    """
    return f"bm25-{generation}"


def read_faiss(path: Path) -> Any:
    import faiss

    return faiss.read_index(str(path))


def write_faiss(faiss_index: Any, blocks: Iterable[tuple[np.ndarray, np.ndarray]], path: Path) -> None:
    """Add the (chunk ids, vectors) `blocks` to `faiss_index` and write it to `path` atomically.

    The blocks are consumed one at a time, so memory holds the index and one block.
    """
    import faiss

    for ids, vectors in blocks:
        faiss_index.add_with_ids(np.ascontiguousarray(vectors), ids)
    tmp = path.with_name(path.name + TMP)
    faiss.write_index(faiss_index, str(tmp))
    fsync_file(tmp)
    os.replace(tmp, path)


def read_bm25(path: Path) -> tuple[Any, np.ndarray]:
    """A BM25 folder as (the bm25s index, or None when it holds no rows; the chunk id of each row)."""
    import bm25s

    ids = np.load(path / "ids.npy", allow_pickle=False)
    bm25 = bm25s.BM25.load(str(path), mmap=False, show_progress=False) if len(ids) else None
    return bm25, ids


def write_bm25(rows: Iterable[tuple[int, str]], path: Path) -> None:
    """Write the BM25 index of `rows` ((chunk id, text), in BM25 row order) as the folder `path`,
    streaming them in blocks (rag/bm25_build.py: memory holds one block and the vocabulary, not
    every text and token). Built in `path` + `.tmp`, every file fsynced, then renamed into place."""
    tmp = path.with_name(path.name + TMP)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    built = bm25_build.build_bm25(rows, tmp)  # writes bm25s's files unless there are no rows
    np.save(tmp / "ids.npy", built.ids, allow_pickle=False)
    for f in tmp.iterdir():
        fsync_file(f)
    os.replace(tmp, path)


def remove_files(index_dir: Path, names: Iterable[str]) -> None:
    """Delete these files or folders of `index_dir` (those missing are ignored)."""
    for name in names:
        target = index_dir / name
        shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)


def remove_stray_files(index_dir: Path, keep: Collection[str]) -> None:
    """Delete the generation files and half-written `.tmp` files not in `keep`: what a writer that
    died before or after its commit left behind."""
    remove_files(
        index_dir,
        [
            entry.name
            for entry in index_dir.iterdir()
            if entry.name not in keep and (entry.name.startswith(_GENERATION_PREFIXES) or entry.name.endswith(TMP))
        ],
    )


def fsync_file(path: Path) -> None:
    """Flush a written file's data to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries (a rename into it) to the disk: the same call, on the folder."""
    fsync_file(path)


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary file, fsync, rename over `path`, fsync the folder."""
    tmp = path.with_name(path.name + TMP)
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
