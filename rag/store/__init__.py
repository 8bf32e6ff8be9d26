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

Modules: `base` (`Store`, `StoreWriter`: what the pipeline needs from any index), `locate` (a store
from its spec: `faiss:DIR`, `milvus:PATH.db`, `milvus://HOST:PORT/NAME`), `manifest` (the manifest,
the config check, the errors), `schema` (the chunk store's tables and which rows a generation
sees), `files` (FAISS and BM25 files, atomic writes), `reader` (`Index`) and `writer`
(`IndexWriter`); `milvus` and `milvus_schema` (the Milvus store, imported only when a Milvus spec
is opened: pymilvus is optional). The names below are the package's public API.
"""

from __future__ import annotations

from rag.store.files import FLAT, atomic_write, faiss_kind, fsync_dir, fsync_file, new_faiss_index, set_ef_search
from rag.store.manifest import (
    FORMAT_VERSION,
    MANIFEST,
    DocumentInfo,
    EmptyCorpus,
    IndexError_,
    IndexLocked,
    IndexMismatch,
    IndexNotFound,
    check_compatible,
    library_versions,
    read_manifest,
)
from rag.store.reader import Index
from rag.store.schema import DB
from rag.store.writer import IndexWriter, UpdateStats

__all__ = [
    "DB",
    "FLAT",
    "FORMAT_VERSION",
    "MANIFEST",
    "DocumentInfo",
    "EmptyCorpus",
    "Index",
    "IndexError_",
    "IndexLocked",
    "IndexMismatch",
    "IndexNotFound",
    "IndexWriter",
    "UpdateStats",
    "atomic_write",
    "check_compatible",
    "faiss_kind",
    "fsync_dir",
    "fsync_file",
    "library_versions",
    "new_faiss_index",
    "read_manifest",
    "set_ef_search",
]
