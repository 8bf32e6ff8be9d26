"""The Milvus store: one index in Milvus (Milvus Lite in-process, or a Milvus server), read and
written with the same results as the embedded store (`rag.store.reader.Index`, `IndexWriter`).

Specs: `milvus:PATH.db` (Milvus Lite: a folder PATH.db opened in this process, by one process at a
time) and `milvus://HOST:PORT/NAME` (a server; token from $MILVUS_TOKEN). The collections are
described in `rag.store.milvus_schema`: every chunk is one row of the collection NAME holding all a
question needs, so answering reads no local file.

Search. Dense: the FLOAT_VECTOR field, inner product, FLAT up to `approximate_above` live chunks and
HNSW above (as the embedded store). Lexical: each chunk row holds its `rag.lexical.stem_terms` and
their BM25 term-frequency weights as a sparse vector; a question's sparse vector holds each term's
idf, so Milvus's inner-product search over the generation's rows finds the candidates (4 per hit
wanted, at least k + 100), and each candidate is then scored exactly as bm25s scores it (lucene
BM25, k1 1.5, b 0.75, float32) from its stored terms and the generation's statistics: chunk count
and total term count from the manifest, document frequencies from the NAME_df collection.

Why not Milvus's BM25 function: Milvus Lite 3.2.2 computes its IDF and average length per segment,
counting deleted rows, so after an update the changed document's new chunks, alone in a small
segment, score on another scale; one fell out of the top 200 candidates for a question it matches
(tests/test_milvus_store.py caught it). Why not TEXT_MATCH counts for document frequencies: Milvus
Lite evaluates TEXT_MATCH by tokenizing every row in Python, 0.4 s per term at 5k chunks and 20 s at
100k, where a primary-key read of NAME_df takes 0.3 ms (BENCHMARKS.md, "Milvus store"). The
`terms` field keeps the "standard" analyzer with TEXT_MATCH enabled, for filters.

Generations. Chunk and document rows carry `gen_added` and `gen_removed` (NOT_REMOVED while
current), and every search and query a reader makes is filtered to its generation G (`gen_added <=
G and gen_removed > G`). A NAME_df row holds a term's count in the last generation that changed it
(`gen_new`) and the one before, so a reader at G takes the newer count only when gen_new <= G. The
manifest row of NAME_meta names the committed generation. An update of G:

1. retires the rows of replaced and removed documents by upserting them with gen_removed = G+1;
2. inserts the new chunk and document rows (gen_added = G+1) in batches of 512 as the documents
   stream in, then gives every term whose count changed its G+1 count (gen_new = G+1, G's count
   kept as the older one);
3. commits: upserts the manifest row naming G+1 (one row, applied whole or not at all);
4. deletes the rows no reader of G+1 sees (gen_removed <= G+1, terms counted 0) and flushes.

What a crash leaves. Killed (SIGKILL, OOM, Ctrl-C) in 1 or 2: the manifest still names G, the rows
of G+1 are invisible to G (gen_added > G, gen_new > G) and the retired rows still visible
(gen_removed = G+1 > G): readers see G, whole. The next writer's `__enter__` repairs before anything
else: it deletes the rows with gen_added > G, un-retires the rows with G < gen_removed < NOT_REMOVED
(upserting gen_removed back to NOT_REMOVED), deletes the rows with gen_removed <= G, and puts df
rows with gen_new > G back to their older count (deleting those of terms new in G+1). Killed in 4:
readers see G+1, whole (the rows left over are invisible to it); the next writer deletes them. An
exception inside `apply` (EmptyCorpus, a failed call, KeyboardInterrupt) runs the same repair at
once, as the embedded store rolls its transaction back. What a killed process wrote is in Milvus
Lite's write-ahead log, replayed on the next open. A power cut or an OS crash is another matter:
Milvus Lite 3.2.2 does not fsync its log on every write (its default), so the last writes before
the flush at the end of an update may be lost, not necessarily in order; the embedded store fsyncs
every file before its manifest. A server keeps its own log. A reader that opened G before an update
loses the replaced documents' rows in step 4: reopen it (`RAG.reload`).

Chunk ids continue from the highest id ever committed (`next_chunk_id` in the manifest), so a
sequence of updates gives the same ids as the embedded store's AUTOINCREMENT.

Write lock. Milvus Lite: an flock on PATH.lock beside the folder (as the embedded `.lock`), and
Milvus Lite itself lets one process open the folder. A server: a lease row in NAME_meta
(`rag.store.milvus_schema.ServerLock` says what it guarantees).

Uploads (`uploads_dir`): Milvus Lite `PATH.db` keeps them in the folder `PATH.uploads/` beside it; a
server store in `$RAG_CACHE_DIR/uploads/<host>_<port>_<collection>/` (RAG_CACHE_DIR defaults to
~/.cache/rag): the files added through the UI stay on the machine that added them.
"""

from __future__ import annotations

import functools
import json
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar
from urllib.parse import urlsplit

import numpy as np
from pymilvus import MilvusClient, MilvusException

from rag.config import RagConfig
from rag.lexical import idf, stem_terms
from rag.store.locate import StoreSpec
from rag.store.manifest import (
    BadStore,
    DocumentInfo,
    EmptyCorpus,
    IndexNotFound,
    check_compatible,
    committed_documents,
    document_entry,
    library_versions,
    new_manifest,
)
from rag.store.milvus_schema import (
    DF_FIELDS,
    K1,
    NOT_REMOVED,
    PAGE,
    B,
    LiteLock,
    Names,
    ServerLock,
    add_vector_index,
    bm25_weights,
    connect,
    create_chunks,
    create_small,
    df_at,
    df_row,
    disconnect,
    doc_key,
    ensure_loaded,
    flat_pairs,
    join,
    lite_path,
    live,
    load_all,
    one_line,
    pairs,
    pieces,
    pieces_to_vectors,
    primary_key,
    read_manifest,
    scan,
    term_hash,
    term_key,
    terms_field,
    vector_dim,
    vector_index_kind,
    vectors_to_pieces,
    write_manifest,
    zero_vector,
)
from rag.store.schema import VECTOR_BLOCK
from rag.store.writer import UpdateStats
from rag.types import Chunk, Document, EmbeddedDocument, Page

BATCH = 512  # chunk rows (or document rows) per insert
DOC_BATCH_BYTES = 16 * 1024 * 1024  # document text per insert, within a server's message limit
CANDIDATES = 4  # lexical candidates fetched from Milvus's BM25 per hit wanted (at least k + 100)
CHUNK_FIELDS = ["id", "source", "start", "end", "page", "text", "sentences"]


def checkpoint(point: str) -> None:
    """A named point of an update ("rows-written" after each insert of chunk rows, "before-commit",
    "after-commit"). Does nothing; tests/test_milvus_store.py replaces it in a child process to
    stop the writer there and kill it."""


def store_error(spec: StoreSpec | str, exc: BaseException) -> BadStore:
    """A failed Milvus call as the one-line error the CLI prints."""
    return BadStore(f"store {spec}: {one_line(exc)}")


# ---------------------------------------------------------------------------------------------
# Reading

P = ParamSpec("P")
R = TypeVar("R")


def _reported(method: Callable[Concatenate[MilvusStore, P], R]) -> Callable[Concatenate[MilvusStore, P], R]:
    """A failed Milvus call while answering (a server gone away) as a one-line BadStore."""

    @functools.wraps(method)
    def call(self: MilvusStore, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except MilvusException as exc:
            raise store_error(self.spec, exc) from None

    return call


class MilvusStore:
    """One committed generation of a Milvus store (`rag.store.base.Store`). Thread-safe for reading.

    Example:
        >>> store = MilvusStore.open(parse_store("milvus:index.db"))  # doctest: +SKIP
        >>> store.dense_search(vector, 5)  # doctest: +SKIP
    """

    def __init__(self, spec: StoreSpec, client: MilvusClient, manifest: dict[str, Any], config: RagConfig) -> None:
        self.store_spec = spec
        self.spec = str(spec)
        self.client = client
        self.names = Names.of(spec)
        self.manifest = manifest
        self.generation: int = int(manifest["generation"])
        self._live = live(self.generation)
        self._dim = int(manifest["params"]["model_dim"])
        self._hnsw = str(manifest.get("faiss_index", "")).startswith("HNSW")
        self._ef = config.hnsw_ef_search
        self._df: dict[str, int] = {}  # document frequency of each term key asked about so far
        self._documents: list[DocumentInfo] | None = None
        self._open = True

    @classmethod
    def open(cls, spec: StoreSpec, *, config: RagConfig | None = None) -> MilvusStore:
        """The committed generation; IndexNotFound when none was committed, IndexMismatch when it
        was built with another model or chunking, BadStore when the store cannot be reached."""
        config = config or RagConfig()
        if spec.is_local_file and not os.path.exists(spec.target):  # reading never creates a store
            raise IndexNotFound(_not_found(spec))
        client = connect(spec)
        try:
            names = Names.of(spec)
            manifest = read_manifest(client, names)
            if manifest is None:
                raise IndexNotFound(_not_found(spec))
            check_compatible(manifest, config, str(spec))
            load_all(client, names)
        except MilvusException as exc:
            disconnect(spec, client)
            raise store_error(spec, exc) from None
        except BaseException:
            disconnect(spec, client)
            raise
        return cls(spec, client, manifest, config)

    def __len__(self) -> int:
        return int(self.manifest["n_chunks"])

    @property
    def live_filter(self) -> str:
        """The filter every search and query of this generation carries."""
        return self._live

    def close(self) -> None:
        if self._open:
            self._open = False
            disconnect(self.store_spec, self.client)

    @property
    def uploads_dir(self) -> Path:
        return uploads_dir(self.store_spec)

    @_reported
    def dense_search(
        self, vector: np.ndarray, k: int, *, sources: Collection[str] | None = None
    ) -> list[tuple[int, float]]:
        """(chunk id, cosine) best first; with `sources`, only among those documents' chunks (the
        search's filter: still up to k of theirs)."""
        if len(self) == 0 or k < 1 or (sources is not None and not sources):
            return []
        params: dict[str, Any] = {"metric_type": "IP"}
        if self._hnsw:
            params["params"] = {"ef": max(self._ef, k)}
        found = self.client.search(
            self.names.chunks,
            data=[np.asarray(vector, dtype=np.float32).reshape(-1).tolist()],
            anns_field="vector",
            limit=min(k, len(self), PAGE),
            filter=self.scope_filter(sources),
            output_fields=["id", "source"],
            search_params=params,
        )
        return [(int(hit["id"]), float(hit["distance"])) for hit in _within(found[0], sources)]

    @_reported
    def lexical_search(self, query: str, k: int, *, sources: Collection[str] | None = None) -> list[tuple[int, float]]:
        """(chunk id, BM25 score) best first, scored as the embedded store's bm25s scores; chunks
        sharing no term with the query are left out. `sources` as for `dense_search`: the
        candidates are searched among those documents' chunks, scored with the whole generation's
        statistics."""
        known, weights = self.lexical_query(query)
        if not known or k < 1 or (sources is not None and not sources):
            return []
        n = len(self)
        found = self.client.search(
            self.names.chunks,
            data=[weights],
            anns_field="sparse",
            limit=min(n, PAGE, max(k * CANDIDATES, k + 100)),
            filter=self.scope_filter(sources),
            output_fields=["terms", "source"],
            search_params={"metric_type": "IP"},
        )
        rows = [(int(hit["id"]), str(hit["entity"]["terms"])) for hit in _within(found[0], sources)]
        return bm25_scores(known, rows, self._frequencies(known), n, int(self.manifest["n_terms"]))[:k]

    def scope_filter(self, sources: Collection[str] | None) -> str:
        """The filter of a search of this generation over the chunks of `sources` (None: all): the
        generation's and the documents' keys, written out (Milvus Lite 3.2.2 takes no filter
        parameters), as the shorter of `in` the scope and `not in` the rest.

        Example:
            >>> store.scope_filter({"a.txt"})  # doctest: +SKIP
            'gen_added <= 3 and gen_removed > 3 and doc_key in [3719024651243301830]'
        """
        if sources is None:
            return self._live
        inside = {doc_key(s) for s in sources}
        if len(inside) <= len(self.manifest["documents"]) // 2:
            return f"{self._live} and doc_key in [{','.join(map(str, sorted(inside)))}]"
        outside = {doc_key(d.source) for d in self.documents()} - inside
        return f"{self._live} and doc_key not in [{','.join(map(str, sorted(outside)))}]"

    def lexical_query(self, query: str) -> tuple[list[str], dict[int, float]]:
        """The query's term keys found in this generation (in query order, repeats kept, as bm25s
        reads them) and its sparse vector: each term's idf, times its count."""
        keys = [term_key(t) for t in stem_terms([query])[0]]
        if not keys or len(self) == 0:
            return [], {}
        df = self._frequencies(keys)
        known = [t for t in keys if df[t] > 0]  # bm25s drops terms outside its vocabulary
        weights: dict[int, float] = {}
        for t in known:
            weights[term_hash(t)] = weights.get(term_hash(t), 0.0) + idf(len(self), df[t])
        return known, weights

    @_reported
    def idf_weights(self, terms: Sequence[str]) -> dict[str, float]:
        """BM25 inverse document frequency of each term over this generation's chunks."""
        n = len(self)
        if n == 0:
            return {t: 1.0 for t in terms}
        df = self._frequencies([term_key(t) for t in terms])
        return {t: idf(n, df[term_key(t)]) for t in terms}

    def _frequencies(self, keys: Sequence[str]) -> dict[str, int]:
        """Document frequency of each term key in this generation, read by primary key (cached: a
        generation never changes)."""
        missing = sorted({k for k in keys if k not in self._df})
        for i in range(0, len(missing), 1000):
            batch = missing[i : i + 1000]
            rows = {r["key"]: r for r in self.client.get(self.names.df, ids=batch, output_fields=DF_FIELDS)}
            self._df.update({k: df_at(rows.get(k), self.generation) for k in batch})
        return {k: self._df[k] for k in keys}

    @_reported
    def chunks(self, ids: Sequence[int]) -> dict[int, Chunk]:
        """The chunks with these ids (ids not in the store are left out)."""
        return {int(r["id"]): chunk_from_row(r) for r in self._rows(ids, CHUNK_FIELDS)}

    @_reported
    def sentence_vectors(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        return {
            int(r["id"]): pieces_to_vectors(r["sentence_vectors"], self._dim)
            for r in self._rows(ids, ["id", "sentence_vectors"])
        }

    @_reported
    def chunk_vectors(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        return {int(r["id"]): np.asarray(r["vector"], dtype=np.float32) for r in self._rows(ids, ["id", "vector"])}

    def _rows(self, ids: Sequence[int], fields: list[str]) -> list[dict[str, Any]]:
        wanted = sorted({int(i) for i in ids})
        rows: list[dict[str, Any]] = []
        for i in range(0, len(wanted), 1000):
            rows.extend(self.client.get(self.names.chunks, ids=wanted[i : i + 1000], output_fields=fields))
        return rows

    def documents(self) -> list[DocumentInfo]:
        """The generation's documents, sorted by source (read from the manifest once)."""
        if self._documents is None:
            self._documents = [DocumentInfo.of(s, info) for s, info in sorted(self.manifest["documents"].items())]
        return list(self._documents)

    @_reported
    def document(self, source: str) -> Document | None:
        rows = self.client.query(
            self.names.docs,
            filter=f"doc_key == {doc_key(source)} and {self._live}",
            output_fields=["source", "text", "sha256", "pages"],
        )
        for row in rows:
            if row["source"] == source:
                pages = tuple(Page(*p) for p in json.loads(join(row["pages"]) or "[]"))
                modified = self.manifest["documents"].get(source, {}).get("modified")
                return Document(source, join(row["text"]), row["sha256"], pages, modified=modified)
        return None

    @_reported
    def document_chunks(self, source: str) -> list[Chunk]:
        """The chunks of the document `source` in this generation, in document order ([] when the
        store does not hold it)."""
        rows = self.client.query(
            self.names.chunks, filter=f"doc_key == {doc_key(source)} and {self._live}", output_fields=CHUNK_FIELDS
        )
        return sorted((chunk_from_row(r) for r in rows if r["source"] == source), key=lambda c: c.id)

    def vector_blocks(self, *, block_rows: int = VECTOR_BLOCK) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every chunk vector of this generation as (chunk ids, float32 vectors) blocks of
        `block_rows` (the last one smaller), in id order, as the embedded store yields them."""
        pending: list[dict[str, Any]] = []
        step = min(PAGE, max(1, block_rows))
        for low in range(1, int(self.manifest.get("next_chunk_id", 1)), step):
            window = f"id >= {low} and id < {low + step} and {self._live}"
            pending.extend(
                sorted(self.client.query(self.names.chunks, filter=window, output_fields=["id", "vector"]), key=_id)
            )
            while len(pending) >= block_rows:
                yield _block(pending[:block_rows])
                pending = pending[block_rows:]
        if pending:
            yield _block(pending)


def _within(hits: Iterable[Mapping[str, Any]], sources: Collection[str] | None) -> list[Mapping[str, Any]]:
    """The search hits whose chunk belongs to `sources` (all for None): a document key is a 63-bit
    hash of the source, so the filter alone could, once in 2**63, let another document through."""
    if sources is None:
        return list(hits)
    return [hit for hit in hits if hit["entity"]["source"] in sources]


def _id(row: Mapping[str, Any]) -> int:
    return int(row["id"])


def _block(rows: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    ids = np.fromiter((int(r["id"]) for r in rows), dtype=np.int64, count=len(rows))
    return ids, np.asarray([r["vector"] for r in rows], dtype=np.float32).reshape(len(rows), -1)


def chunk_from_row(row: Mapping[str, Any]) -> Chunk:
    """A `Chunk` from a row with `CHUNK_FIELDS` (page 0 stands for no page)."""
    page = int(row["page"])
    return Chunk(
        int(row["id"]),
        str(row["source"]),
        int(row["start"]),
        int(row["end"]),
        join(row["text"]),
        page or None,
        pairs(row["sentences"]),
    )


def bm25_scores(
    query: Sequence[str], rows: Iterable[tuple[int, str]], df: Mapping[str, int], n_docs: int, total_terms: int
) -> list[tuple[int, float]]:
    """(id, score) of each row (id, space-joined terms) scoring above 0 for the query terms, best
    first (ties by id), computed as bm25s computes lucene BM25 (rag/bm25_build.py): per term
    float32(idf32 * tf / (tf + k1 * (1 - b + b * len / avg_len))), summed in float32 in query order.

    Example:
        >>> bm25_scores(["cat"], [(1, "cat run"), (2, "dog")], {"cat": 1}, 2, 3)[0][0]
        1
    """
    avg_len = np.float64(total_terms) / n_docs
    idfs = {t: float(np.float32(idf(n_docs, df[t]))) for t in set(query)}
    out = []
    for cid, text in rows:
        terms = text.split()
        tf = Counter(terms)
        norm = K1 * ((1 - B) + B * len(terms) / avg_len)
        score = np.float32(0.0)
        for t in query:
            if tf[t]:
                score = np.float32(score + np.float32(idfs[t] * (tf[t] / (norm + tf[t]))))
        if score > 0:
            out.append((cid, float(score)))
    return sorted(out, key=lambda item: (-item[1], item[0]))


def uploads_dir(spec: StoreSpec) -> Path:
    """Where the UI keeps a store's uploaded files: PATH.uploads/ beside a Milvus Lite PATH.db;
    $RAG_CACHE_DIR/uploads/<host>_<port>_<collection>/ for a server.

    Example:
        >>> uploads_dir(StoreSpec("milvus", "/data/rag.db", "rag")).name
        'rag.uploads'
        >>> uploads_dir(StoreSpec("milvus", "http://db.internal:19530", "team")).name
        'db.internal_19530_team'
    """
    if spec.is_local_file:
        path = lite_path(spec)
        return path.with_name(path.name.removesuffix(".db") + ".uploads")
    parts = urlsplit(spec.target)
    host = re.sub(r"[^A-Za-z0-9._-]", "_", parts.hostname or "")
    root = Path(os.environ.get("RAG_CACHE_DIR") or Path.home() / ".cache" / "rag")
    return root / "uploads" / f"{host}_{parts.port}_{spec.collection}"


def _not_found(spec: StoreSpec) -> str:
    return f"no index at {spec}: build one with `rag index [PATHS...] --store {spec}`"


def committed_manifest(spec: StoreSpec) -> dict[str, Any] | None:
    """The manifest of the store's committed generation; None when none was committed (or, for
    Milvus Lite, when the store's folder does not exist: reading never creates one)."""
    if spec.is_local_file and not os.path.exists(spec.target):
        return None
    client = connect(spec)
    try:
        return read_manifest(client, Names.of(spec))
    except MilvusException as exc:
        raise store_error(spec, exc) from None
    finally:
        disconnect(spec, client)


def milvus_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("pymilvus", "milvus-lite"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


# ---------------------------------------------------------------------------------------------
# Writing


@dataclass
class _Update:
    """What one `MilvusWriter.apply` builds up before it commits."""

    generation: int
    current: dict[str, str]  # source -> sha256 of the committed generation
    documents: dict[str, dict[str, Any]]  # the new generation's manifest entries
    stats: UpdateStats
    next_id: int  # the id the next chunk gets
    n_terms: int  # terms in the new generation's chunks (BM25's average length)
    counting: bool  # False for a rebuild or a first build: nothing is carried over
    df_delta: Counter[str] = field(default_factory=Counter)  # term key -> chunks gained (or lost)
    rows: list[dict[str, Any]] = field(default_factory=list)  # chunk rows not inserted yet
    doc_rows: list[dict[str, Any]] = field(default_factory=list)  # document rows not inserted yet
    doc_bytes: int = 0  # text in `doc_rows`
    chunks_added: int = 0


class MilvusWriter:
    """Holds the store's write lock and applies one update as one new generation
    (`rag.store.base.StoreWriter`). Use as a context manager, as `IndexWriter`."""

    def __init__(self, spec: StoreSpec, config: RagConfig, *, rebuild: bool = False) -> None:
        self.spec = spec
        self.config = config
        self.rebuild = rebuild
        self.names = Names.of(spec)
        self.manifest: dict[str, Any] | None = None
        self.generation = 0
        self._client: MilvusClient | None = None
        self._lock: LiteLock | ServerLock | None = None

    @property
    def client(self) -> MilvusClient:
        if self._client is None:
            raise RuntimeError(f"the writer of {self.spec} is not open: use it in a `with` block")
        return self._client

    def __enter__(self) -> MilvusWriter:
        try:
            if self.spec.is_local_file:
                self._lock = LiteLock(self.spec)
                self._lock.acquire()
            self._client = connect(self.spec)
            self._open()
        except MilvusException as exc:
            self.__exit__()
            raise store_error(self.spec, exc) from None
        except BaseException:
            # `with` never calls __exit__ when __enter__ raises: release the lock here.
            self.__exit__()
            raise
        return self

    def _open(self) -> None:
        """Create what is missing, take a server's lock, read the manifest and repair."""
        if not self.client.has_collection(self.names.meta):
            create_small(self.client, self.names, self.names.meta)
        ensure_loaded(self.client, self.names.meta)
        if not self.spec.is_local_file:
            self._lock = ServerLock(self.spec, self.client, self.names)
            self._lock.acquire()
        self.manifest = read_manifest(self.client, self.names)
        if self.manifest is not None and not self.rebuild:
            check_compatible(self.manifest, self.config, str(self.spec))
        self.generation = int(self.manifest["generation"]) if self.manifest else 0
        self._create_collections()
        load_all(self.client, self.names)
        self._repair()

    def _create_collections(self) -> None:
        """The chunk, docs and df collections, made afresh when the chunk collection holds vectors
        of another size (after a model change, which only `--rebuild` accepts: that one rebuild
        drops the old generation before the new one is committed)."""
        names, client, dim = self.names, self.client, self.config.model_dim
        if client.has_collection(names.chunks) and vector_dim(client, names.chunks) != dim:
            for name in (*names.versioned, names.df):
                client.drop_collection(name)
        if not client.has_collection(names.chunks):
            kind = vector_index_kind(0, self.config.approximate_above, self.config.hnsw_m)
            create_chunks(client, names.chunks, dim, kind, self.config.hnsw_ef_construction)
        for name in (names.docs, names.df):
            if not client.has_collection(name):
                create_small(client, names, name)

    def __exit__(self, *exc: object) -> None:
        lock, client = self._lock, self._client
        self._lock = self._client = None
        try:
            if isinstance(lock, ServerLock):
                lock.release()
        finally:
            if client is not None:
                disconnect(self.spec, client)
            if isinstance(lock, LiteLock):  # after the folder is free for the next process
                lock.release()

    def _repair(self) -> None:
        """Roll back rows of a generation that never committed; delete rows no reader sees."""
        g = self.generation
        for name in self.names.versioned:
            key = primary_key(self.names, name)
            self.client.delete(name, filter=f"gen_added > {g}")
            for page in scan(self.client, name, f"gen_removed > {g} and gen_removed < {NOT_REMOVED}", [key]):
                self._set_removed(name, key, [r[key] for r in page], NOT_REMOVED)
            self.client.delete(name, filter=f"gen_removed <= {g}")
        for page in scan(self.client, self.names.df, f"gen_new > {g}", DF_FIELDS):
            new = [r["key"] for r in page if not r["df_old"]]  # terms the lost generation brought
            if new:
                self.client.delete(self.names.df, ids=new)
            back = [
                {**r, "df_new": r["df_old"], "gen_new": r["gen_old"], "_v": zero_vector()} for r in page if r["df_old"]
            ]
            if back:
                self.client.upsert(self.names.df, back)
        self.client.delete(self.names.df, filter=f"df_new == 0 and gen_new <= {g}")

    def _roll_back(self) -> None:
        """Repair after a failed update; when the store has become unreachable the next writer's
        `__enter__` repairs instead, and the update's own error is the one reported."""
        try:
            self._repair()
        except MilvusException:
            pass

    def _set_removed(self, name: str, key: str, keys: Sequence[Any], generation: int) -> None:
        for i in range(0, len(keys), BATCH * 4):
            rows = [{key: k, "gen_removed": generation} for k in keys[i : i + BATCH * 4]]
            self.client.upsert(name, rows, partial_update=True)

    def current_documents(self) -> dict[str, str]:
        """source -> sha256 of the documents in the committed generation ({} when rebuilding)."""
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
        """Add (or replace) `documents` and remove the sources in `remove`, as one generation,
        exactly as `IndexWriter.apply` does (the same stats, ids, EmptyCorpus rule); nothing is
        visible to readers until the manifest row is upserted at the end."""
        started = time.perf_counter()
        stats = UpdateStats() if stats is None else stats
        update = self._new_update(stats)
        try:
            self._remove_sources(update, remove)
            for document in documents:
                self._add_document(update, document)
            self._insert_rows(update)
            if empty_corpus_error and not (stats.added or stats.changed or stats.unchanged):
                raise EmptyCorpus(empty_corpus_error)
            if stats.changed_anything or self.manifest is None or self.rebuild:
                self._commit(update, embed_backend)
            else:  # nothing to write: the committed generation stays
                stats.n_chunks, stats.generation = int(self.manifest["n_chunks"]), self.generation
        except BaseException as exc:
            self._roll_back()  # as a rolled-back transaction: nothing of the new generation stays
            if isinstance(exc, MilvusException):
                raise store_error(self.spec, exc) from None
            raise
        stats.seconds = time.perf_counter() - started
        return stats

    def _new_update(self, stats: UpdateStats) -> _Update:
        m = self.manifest
        fresh = m is None or self.rebuild
        return _Update(
            generation=self.generation + 1,
            current=self.current_documents(),
            documents={} if m is None or self.rebuild else dict(m["documents"]),
            stats=stats,
            next_id=int(m.get("next_chunk_id", 1)) if m else 1,
            n_terms=0 if m is None or fresh else int(m["n_terms"]),
            counting=not fresh,
        )

    def _remove_sources(self, update: _Update, remove: Iterable[str]) -> None:
        """Retire the sources in `remove` (and, for a rebuild, everything)."""
        if self.rebuild:
            for name in self.names.versioned:
                key = primary_key(self.names, name)
                flt = f"gen_removed == {NOT_REMOVED} and gen_added <= {self.generation}"
                for page in scan(self.client, name, flt, [key]):
                    self._set_removed(name, key, [r[key] for r in page], update.generation)
        for source in remove:
            if source in update.current:
                self._retire(update, source)
                update.stats.removed.append(source)

    def _retire(self, update: _Update, source: str) -> None:
        """Mark the current rows of `source` as removed by the new generation, counting the terms
        they take away."""
        flt = f"doc_key == {doc_key(source)} and gen_removed == {NOT_REMOVED}"
        fields = ["id", "source", "n_terms", "terms"] if update.counting else ["id", "source"]
        for page in scan(self.client, self.names.chunks, flt, fields):
            rows = [r for r in page if r["source"] == source]
            if not rows:  # only another source with the same 63-bit key is left
                break
            self._set_removed(self.names.chunks, "id", [r["id"] for r in rows], update.generation)
            if update.counting:
                update.n_terms -= sum(int(r["n_terms"]) for r in rows)
                for r in rows:
                    update.df_delta.subtract(set(str(r["terms"]).split()))
        docs = self.client.query(self.names.docs, filter=flt, output_fields=["key", "source"])
        self._set_removed(self.names.docs, "key", [r["key"] for r in docs if r["source"] == source], update.generation)
        update.documents.pop(source, None)

    def _add_document(self, update: _Update, embedded: EmbeddedDocument) -> None:
        """Queue a document's chunk rows (inserted BATCH at a time), insert its document row, and
        retire its old version."""
        doc, g = embedded.document, update.generation
        (update.stats.changed if doc.source in update.current else update.stats.added).append(doc.source)
        if doc.source in update.current:
            self._retire(update, doc.source)
        key = doc_key(doc.source)
        texts = [c.text for c in embedded.chunks]
        terms = [terms_field([term_key(t) for t in ts]) for ts in stem_terms(texts)] if texts else []
        avg_len = self._reference_length(update, terms)
        first_id = update.next_id
        for chunk, vector, sentence_vectors, keys in zip(
            embedded.chunks, embedded.vectors, embedded.sentence_vectors, terms
        ):
            row = _chunk_row(update.next_id, key, chunk, vector, sentence_vectors, keys, g)
            update.rows.append({**row, "sparse": bm25_weights(keys, avg_len)})
            update.next_id += 1
            update.n_terms += len(keys)
            update.df_delta.update(set(keys))
            if len(update.rows) >= BATCH:
                self._insert_rows(update)
        now = time.time()
        update.doc_rows.append(_document_row(key, doc, len(embedded.chunks), now, g))
        update.doc_bytes += len(doc.text)
        update.documents[doc.source] = document_entry(doc, len(embedded.chunks), now, first_chunk_id=first_id)
        update.chunks_added += len(embedded.chunks)
        if len(update.doc_rows) >= BATCH or update.doc_bytes >= DOC_BATCH_BYTES:
            self._insert_rows(update)

    def _reference_length(self, update: _Update, terms: Sequence[Sequence[str]]) -> float:
        """The average chunk length the new chunks' BM25 weights are written with: the committed
        generation's for an update, the running average of this build's chunks for a build."""
        m = self.manifest
        if update.counting and m and int(m["n_chunks"]):
            return int(m["n_terms"]) / int(m["n_chunks"])
        chunks = update.chunks_added + len(terms)
        return (update.n_terms + sum(len(t) for t in terms)) / chunks if chunks else 1.0

    def _insert_rows(self, update: _Update) -> None:
        """Insert the queued chunk and document rows (invisible until the commit)."""
        if not (update.rows or update.doc_rows):
            return
        if update.doc_rows:
            self.client.insert(self.names.docs, update.doc_rows)
            update.doc_rows, update.doc_bytes = [], 0
        if update.rows:
            self.client.insert(self.names.chunks, update.rows)
            update.rows = []
        if self._lock is not None:
            self._lock.renew()
        checkpoint("rows-written")

    def _commit(self, update: _Update, embed_backend: str) -> None:
        """Write the new document frequencies, then the manifest row (the commit point); then
        delete the rows no reader of the new generation sees."""
        g = update.generation
        self._write_frequencies(update)
        n_chunks = self._count(self.names.chunks, live(g))
        kind = vector_index_kind(n_chunks, self.config.approximate_above, self.config.hnsw_m)
        self._switch_vector_index(kind)
        backends = set(self.manifest.get("embed_backends", [])) if self.manifest and update.counting else set()
        if update.chunks_added:
            backends.add(embed_backend)
        manifest = new_manifest(
            g,
            self.config,
            faiss_index=kind,
            faiss_file="",
            bm25_file="",
            n_chunks=n_chunks,
            documents=update.documents,
            embed_backends=backends,
        )
        manifest["files"] = {"chunks": self.names.chunks, "documents": self.names.docs, "df": self.names.df}
        manifest.update(store="milvus", next_chunk_id=update.next_id, n_terms=update.n_terms)
        manifest["versions"] = {**library_versions(), **milvus_versions()}
        checkpoint("before-commit")
        write_manifest(self.client, self.names, manifest)
        checkpoint("after-commit")
        self.manifest, self.generation, self.rebuild = manifest, g, False
        for name in self.names.versioned:
            self.client.delete(name, filter=f"gen_removed <= {g}")
        self.client.delete(self.names.df, filter=f"df_new == 0 and gen_new <= {g}")
        for name in (*self.names.versioned, self.names.df):
            self.client.flush(name)  # readers search sealed segments, not a replayed log
        update.stats.n_chunks, update.stats.generation = n_chunks, g

    def _count(self, name: str, flt: str) -> int:
        return int(self.client.query(name, filter=flt, output_fields=["count(*)"])[0]["count(*)"])

    def _write_frequencies(self, update: _Update) -> None:
        """Give every term whose chunk count changed a row with the new count (the committed
        generation's kept as the older one). A build counts afresh: every term row is rewritten."""
        g, committed = update.generation, self.generation
        if not update.counting:
            fresh = {t: n for t, n in update.df_delta.items() if n > 0}
            for page in scan(self.client, self.names.df, f"gen_new <= {committed}", DF_FIELDS):
                self._upsert([df_row(r["key"], fresh.pop(r["key"], 0), g, r, committed) for r in page])
            self._upsert([df_row(t, n, g, None, committed) for t, n in sorted(fresh.items())])
            return
        changed = sorted(t for t, d in update.df_delta.items() if d)
        for i in range(0, len(changed), 1000):
            batch = changed[i : i + 1000]
            old = {r["key"]: r for r in self.client.get(self.names.df, ids=batch, output_fields=DF_FIELDS)}
            self._upsert(
                [df_row(t, df_at(old.get(t), committed) + update.df_delta[t], g, old.get(t), committed) for t in batch]
            )

    def _upsert(self, rows: Sequence[dict[str, Any]]) -> None:
        for i in range(0, len(rows), BATCH * 4):
            self.client.upsert(self.names.df, list(rows[i : i + BATCH * 4]))

    def _switch_vector_index(self, kind: str) -> None:
        """Give the chunk collection the dense index `kind` names when it has the other one."""
        name = self.names.chunks
        have = str(self.client.describe_index(name, "vector").get("index_type", ""))
        if have == kind.split("(")[0]:
            return
        self.client.release_collection(name)
        self.client.drop_index(name, "vector")
        params = self.client.prepare_index_params()
        add_vector_index(params, kind, self.config.hnsw_ef_construction)
        self.client.create_index(name, params)
        self.client.load_collection(name)


def _chunk_row(
    cid: int, key: int, chunk: Chunk, vector: np.ndarray, sentence_vectors: np.ndarray, terms: list[str], g: int
) -> dict[str, Any]:
    return {
        "id": cid,
        "doc_key": key,
        "source": chunk.source,
        "start": chunk.start,
        "end": chunk.end,
        "page": chunk.page or 0,
        "n_terms": len(terms),
        "text": pieces(chunk.text),
        "sentences": flat_pairs(chunk.sentences),
        "sentence_vectors": vectors_to_pieces(sentence_vectors),
        "vector": np.asarray(vector, dtype=np.float32).tolist(),
        "terms": " ".join(terms),
        "gen_added": g,
        "gen_removed": NOT_REMOVED,
    }


def _document_row(key: int, doc: Document, n_chunks: int, now: float, g: int) -> dict[str, Any]:
    return {
        "key": f"{key}:{g}",
        "doc_key": key,
        "source": doc.source,
        "sha256": doc.sha256,
        "text": pieces(doc.text),
        "pages": pieces(json.dumps([[p.number, p.start, p.end] for p in doc.pages])),
        "n_chunks": n_chunks,
        "added_at": now,
        "gen_added": g,
        "gen_removed": NOT_REMOVED,
        "_v": zero_vector(),
    }
