"""The write side of the index: `IndexWriter` holds the lock and applies one update as one new
generation.

An update of generation G writes G+1's rows in one SQLite transaction, then `vectors-<G+1>.faiss`
and `bm25-<G+1>/` beside G's files, and commits by atomically replacing `manifest.json`. A crash or
Ctrl-C at any point leaves G loadable; the next writer rolls back what was left half-done.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rag.config import RagConfig
from rag.store import files
from rag.store.manifest import (
    EmptyCorpus,
    IndexLocked,
    check_compatible,
    committed_documents,
    document_entry,
    new_manifest,
    read_manifest,
    write_manifest,
)
from rag.store.schema import DB, LIVE, SCHEMA, vector_blocks
from rag.types import EmbeddedDocument


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


@dataclass
class _Update:
    """What one `IndexWriter.apply` builds up before it commits."""

    generation: int
    current: dict[str, str]  # source -> sha256 of the committed generation
    documents: dict[str, dict[str, Any]]  # the new generation's manifest entries
    stats: UpdateStats
    removed_ids: list[int] = field(default_factory=list)  # chunks the new generation no longer has
    chunks_added: int = 0


class IndexWriter:
    """Holds the index lock and applies one update as one new generation.

    Use as a context manager: `with IndexWriter(dir, config) as w: w.apply(documents, remove, ...)`,
    or through `rag.ingest.update_index`, which chunks and embeds the documents first.
    """

    def __init__(self, index_dir: str | os.PathLike[str], config: RagConfig, *, rebuild: bool = False) -> None:
        self.dir = Path(index_dir)
        self.config = config
        self.rebuild = rebuild
        self._lock_fd: int | None = None

    def __enter__(self) -> IndexWriter:
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                holder = _read_pid(self.dir / ".lock")
                raise IndexLocked(
                    f"another process{f' (pid {holder})' if holder else ''} is writing the index "
                    f"at {self.dir}; wait for it to finish"
                ) from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd
        self._db: sqlite3.Connection | None = None
        try:
            self.manifest = read_manifest(self.dir)
            if self.manifest is not None and not self.rebuild:
                check_compatible(self.manifest, self.config, self.dir)
            self.generation = self.manifest["generation"] if self.manifest else 0
            self._db = sqlite3.connect(str(self.dir / DB))
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.executescript(SCHEMA)
            self._recover()
        except BaseException:
            # `with` never calls __exit__ when __enter__ raises: release the lock here, or this
            # process keeps it and its next writer (a retry with --rebuild) fails with IndexLocked.
            self.__exit__()
            raise
        return self

    @property
    def db(self) -> sqlite3.Connection:
        """The open database (between entering and leaving the `with` block)."""
        if self._db is None:
            raise RuntimeError(f"the index writer for {self.dir} is not open: use it in a `with` block")
        return self._db

    def __exit__(self, *exc: object) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
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
        files.remove_stray_files(self.dir, set(self.manifest["files"].values()) if self.manifest else set())

    def current_documents(self) -> dict[str, str]:
        """source -> sha256 of the documents in the committed generation."""
        return committed_documents(self.manifest, rebuild=self.rebuild)

    def apply(
        self,
        documents: Iterable[EmbeddedDocument],
        remove: Iterable[str],
        *,
        embed_backend: str,
        stats: UpdateStats | None = None,
        empty_corpus_error: str | None = None,
    ) -> UpdateStats:
        """Add (or replace) `documents` and remove the sources in `remove`, as one generation.

        `documents` are chunked and embedded already (`rag.ingest.embed_documents`) and consumed
        lazily, so a stream of them keeps memory flat; `embed_backend` names what made their
        vectors (recorded in the manifest). Counts go into `stats` (a new one by default) beside
        what the caller counted there. Nothing is visible to readers until the manifest is
        replaced at the very end. With `empty_corpus_error`, an update in which nothing was added,
        changed or counted unchanged raises EmptyCorpus with that message and changes nothing.
        """
        started = time.perf_counter()
        stats = UpdateStats() if stats is None else stats
        update = _Update(
            self.generation + 1,
            self.current_documents(),
            {} if self.manifest is None or self.rebuild else dict(self.manifest["documents"]),
            stats,
        )
        with self.db:  # one transaction; invisible to readers until the manifest names the new generation
            self._remove_sources(update, remove)
            for document in documents:
                self._add_document(update, document)
            if empty_corpus_error and not (stats.added or stats.changed or stats.unchanged):
                raise EmptyCorpus(empty_corpus_error)  # rolls the transaction back
        if stats.changed_anything or self.manifest is None or self.rebuild:
            self._commit(update, embed_backend)
        else:  # nothing to write: the committed generation stays
            stats.n_chunks, stats.generation = int(self.manifest["n_chunks"]), self.generation
        stats.seconds = time.perf_counter() - started
        return stats

    def _remove_sources(self, update: _Update, remove: Iterable[str]) -> None:
        """Retire the sources in `remove` (and, for a rebuild, every source)."""
        if self.rebuild:
            for (source,) in self.db.execute("SELECT DISTINCT source FROM chunks WHERE gen_removed IS NULL").fetchall():
                self._retire(update, source)
        for source in remove:
            if source in update.current:
                self._retire(update, source)
                update.stats.removed.append(source)

    def _retire(self, update: _Update, source: str) -> None:
        """Mark the current rows of `source` as removed by the new generation."""
        update.removed_ids.extend(
            r[0] for r in self.db.execute("SELECT id FROM chunks WHERE source = ? AND gen_removed IS NULL", (source,))
        )
        self.db.execute(
            "UPDATE chunks SET gen_removed = ? WHERE source = ? AND gen_removed IS NULL", (update.generation, source)
        )
        self.db.execute(
            "UPDATE documents SET gen_removed = ? WHERE source = ? AND gen_removed IS NULL", (update.generation, source)
        )
        update.documents.pop(source, None)

    def _add_document(self, update: _Update, embedded: EmbeddedDocument) -> None:
        """Insert a document and its chunks as rows of the new generation, replacing its old version."""
        doc, chunks, g = embedded.document, embedded.chunks, update.generation
        (update.stats.changed if doc.source in update.current else update.stats.added).append(doc.source)
        if doc.source in update.current:
            self._retire(update, doc.source)
        self.db.executemany(
            'INSERT INTO chunks (source, start, "end", page, text, sentences, vector, sentence_vectors, gen_added) '
            "VALUES (?,?,?,?,?,?,?,?,?)",
            (
                (
                    c.source,
                    c.start,
                    c.end,
                    c.page,
                    c.text,
                    json.dumps(c.sentences),
                    vector.astype(np.float32).tobytes(),
                    sentence_vectors.astype(np.float16).tobytes(),
                    g,
                )
                for c, vector, sentence_vectors in zip(chunks, embedded.vectors, embedded.sentence_vectors)
            ),
        )
        now = time.time()
        self.db.execute(
            "INSERT INTO documents (source, sha256, text, pages, n_chunks, added_at, gen_added) VALUES (?,?,?,?,?,?,?)",
            (
                doc.source,
                doc.sha256,
                doc.text,
                json.dumps([[p.number, p.start, p.end] for p in doc.pages]),
                len(chunks),
                now,
                g,
            ),
        )
        last_id = int(self.db.execute("SELECT COALESCE(MAX(id), 0) FROM chunks").fetchone()[0])
        update.documents[doc.source] = document_entry(doc, len(chunks), now, first_chunk_id=last_id - len(chunks) + 1)
        update.chunks_added += len(chunks)

    def _commit(self, update: _Update, embed_backend: str) -> None:
        """Write the new generation's FAISS and BM25 files, then its manifest (the commit point);
        then delete the old generation's files, unreachable now."""
        g = update.generation
        n_chunks = int(self.db.execute(f"SELECT COUNT(*) FROM chunks WHERE {LIVE}", {"gen": g}).fetchone()[0])
        faiss_file, faiss_kind = self._write_faiss(g, n_chunks, update.removed_ids)
        bm25_file = self._write_bm25(g)
        # Which encoder backends made the vectors (rag/embed.py), kept across incremental updates.
        backends = set() if self.manifest is None or self.rebuild else set(self.manifest.get("embed_backends", []))
        if update.chunks_added:
            backends.add(embed_backend)
        manifest = new_manifest(
            g,
            self.config,
            faiss_index=faiss_kind,
            faiss_file=faiss_file,
            bm25_file=bm25_file,
            n_chunks=n_chunks,
            documents=update.documents,
            embed_backends=backends,
        )
        write_manifest(self.dir, manifest)
        old = self.manifest
        self.manifest, self.generation, self.rebuild = manifest, g, False
        if old:
            files.remove_files(self.dir, old["files"].values())
        update.stats.n_chunks, update.stats.generation = n_chunks, g

    def _write_faiss(self, gen: int, n_chunks: int, removed_ids: list[int]) -> tuple[str, str]:
        """Write generation `gen`'s vector index; returns (file name, index description).

        Up to `approximate_above` live chunks the index is exact (IndexFlatIP), above it an HNSW
        graph. The previous generation's index is updated in place when it is of the kind wanted
        and can apply the change (HNSW cannot remove vectors); otherwise the index is rebuilt from
        the vectors in the chunk store, streamed in blocks so memory holds one copy of the index.
        """
        kind = files.faiss_kind(n_chunks, self.config)
        previous = None if self.manifest is None or self.rebuild else self.manifest
        if (
            previous is not None
            and previous.get("faiss_index", files.FLAT) == kind
            and not (removed_ids and kind != files.FLAT)
        ):
            index = files.read_faiss(self.dir / previous["files"]["faiss"])
            if removed_ids:
                index.remove_ids(np.asarray(removed_ids, dtype=np.int64))
            rows = self.db.execute("SELECT id, vector FROM chunks WHERE gen_added = ? ORDER BY id", (gen,))
        else:
            index = files.new_faiss_index(kind, self.config)
            rows = self.db.execute(f"SELECT id, vector FROM chunks WHERE {LIVE} ORDER BY id", {"gen": gen})
        name = files.vectors_name(gen)
        files.write_faiss(index, vector_blocks(rows), self.dir / name)
        return name, kind

    def _write_bm25(self, gen: int) -> str:
        """Write generation `gen`'s BM25 index from its live chunks, in id order; returns its folder name."""
        name = files.bm25_name(gen)
        files.write_bm25(
            self.db.execute(f"SELECT id, text FROM chunks WHERE {LIVE} ORDER BY id", {"gen": gen}), self.dir / name
        )
        return name


def _read_pid(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""
