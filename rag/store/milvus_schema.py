"""The Milvus store's collections, how values are encoded in them, the connection and the write lock.

One index `NAME` (the spec's collection, "rag" by default) is four collections:

    NAME        one row per chunk: everything a question needs (id, source, offsets, page, text,
                sentence spans, float16 sentence vectors, the dense vector, the BM25 terms and their
                BM25 weights as a sparse vector, the generation that added and the one that removed
                the row)
    NAME_docs   one row per document version: full text, sha256, pages
    NAME_df     one row per term, keyed by it: how many chunks hold it, in the last generation that
                changed the count and in the one before (`df_at`), so a question reads its terms'
                counts by primary key (1.3 ms in Milvus Lite; a filtered query takes 20 ms)
    NAME_meta   the manifest row (the commit point) and, on a server, the lock row

Long values (a document's text, a chunk's sentence vectors, the manifest) are lists of VARCHAR
pieces of at most 65,535 UTF-8 bytes, Milvus's VARCHAR limit. Milvus wants a vector field in every
collection, so the three small collections carry a two-dimensional zero vector (`_v`).
"""

from __future__ import annotations

import base64
import errno
import fcntl
import hashlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pymilvus import DataType, MilvusClient
from pymilvus.client.types import LoadState

from rag.store.locate import StoreSpec
from rag.store.manifest import BadStore, IndexLocked

NOT_REMOVED = 2**62  # gen_removed of a row no generation has removed yet
MAX_BYTES = 65_535  # Milvus's VARCHAR limit, in UTF-8 bytes
MAX_PIECES = 4_096  # Milvus's ARRAY capacity limit: a value of up to 268 MB
TERM_BYTES = 64  # longer BM25 terms are stored as a hash (`term_key`)
PAGE = 16_384  # the most rows one query or search returns (Milvus's result window)
CONNECT_TIMEOUT = 5.0  # seconds to reach a server (pymilvus's channel-ready wait)
LEASE_SECONDS = 600.0  # a server lock row not renewed for this long is taken over
K1, B = 1.5, 0.75  # BM25 parameters: bm25s's defaults, which rag/bm25_build.py uses
_ZERO = [0.0, 0.0]  # the placeholder vector of the small collections


@dataclass(frozen=True)
class Names:
    """The collection names of one index."""

    chunks: str
    docs: str
    df: str
    meta: str

    @classmethod
    def of(cls, spec: StoreSpec) -> Names:
        c = spec.collection
        return cls(c, f"{c}_docs", f"{c}_df", f"{c}_meta")

    @property
    def versioned(self) -> tuple[str, str]:
        """The collections whose rows carry gen_added and gen_removed."""
        return (self.chunks, self.docs)


def primary_key(names: Names, collection: str) -> str:
    return "id" if collection == names.chunks else "key"


def live(generation: int) -> str:
    """The filter selecting the rows generation `generation` sees.

    Example:
        >>> live(3)
        'gen_added <= 3 and gen_removed > 3'
    """
    return f"gen_added <= {int(generation)} and gen_removed > {int(generation)}"


# ---------------------------------------------------------------------------------------------
# Values


def doc_key(source: str) -> int:
    """A document's source as a 63-bit integer, what rows are filtered by (a source string in a
    filter would need quoting rules that differ between Milvus Lite and a server).

    Example:
        >>> doc_key("a.txt") == doc_key("a.txt") != doc_key("b.txt")
        True
    """
    return int.from_bytes(hashlib.sha256(source.encode("utf-8", "surrogatepass")).digest()[:8], "big") >> 1


def term_key(term: str) -> str:
    """A stemmed term as the index stores it: itself, or for a term over 64 bytes (a long run of
    letters in a hostile file) "_" and 24 hex digits of its sha256, so fields stay within Milvus's
    limits while every count stays exact.

    Example:
        >>> term_key("glacier"), len(term_key("x" * 100))
        ('glacier', 25)
    """
    if len(term.encode("utf-8", "surrogatepass")) <= TERM_BYTES:
        return term
    return "_" + hashlib.sha256(term.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def term_hash(key: str) -> int:
    """The dimension of a term key in the sparse vectors (32 bits of its sha256; a collision only
    merges two terms' weights while finding candidates, never in the rescored result).

    Example:
        >>> term_hash("glacier") == term_hash("glacier") != term_hash("lighthous")
        True
    """
    return int.from_bytes(hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()[:4], "big") % (2**32 - 1)


def bm25_weights(keys: Sequence[str], avg_len: float) -> dict[int, float]:
    """A chunk's sparse vector: for each term, BM25's term-frequency part tf / (tf + k1 (1 - b + b
    len / avg_len)); a query's vector holds each term's idf (times its count), so the inner product
    is the chunk's BM25 score with the length average of when it was written. That is close enough
    to rank candidates; `rag.store.milvus.bm25_scores` then scores them exactly.

    Example:
        >>> round(bm25_weights(["cat", "cat", "run"], 3.0)[term_hash("cat")], 4)
        0.5714
    """
    tf = Counter(keys)
    norm = K1 * ((1 - B) + B * len(keys) / max(avg_len, 1e-9))
    out: dict[int, float] = {}
    for key, n in tf.items():
        dim = term_hash(key)
        out[dim] = out.get(dim, 0.0) + n / (n + norm)
    return out


def terms_field(keys: Sequence[str]) -> list[str]:
    """The term keys a chunk's `terms` field can hold: all of them, unless joined they pass 64 KiB
    (only words of thousands of characters do that), then the first ones that fit.

    Example:
        >>> terms_field(["cat", "run"])
        ['cat', 'run']
    """
    size, out = 0, []
    for key in keys:
        size += len(key.encode("utf-8", "surrogatepass")) + 1
        if size > MAX_BYTES + 1:
            break
        out.append(key)
    return out


def pieces(text: str) -> list[str]:
    """`text` cut into pieces of at most 65,535 UTF-8 bytes, never inside a character.

    Example:
        >>> pieces("abc"), pieces("")
        (['abc'], [])
    """
    data = text.encode("utf-8", "surrogatepass")
    out, start = [], 0
    while start < len(data):
        end = min(start + MAX_BYTES, len(data))
        while end < len(data) and (data[end] & 0xC0) == 0x80:  # a UTF-8 continuation byte
            end -= 1
        out.append(data[start:end].decode("utf-8", "surrogatepass"))
        start = end
    if len(out) > MAX_PIECES:
        raise ValueError(
            f"a value of {len(data):,} bytes is over the Milvus store's limit of {MAX_PIECES * MAX_BYTES:,}"
        )
    return out


def join(parts: Sequence[str] | None) -> str:
    return "".join(parts or ())


def vectors_to_pieces(vectors: np.ndarray) -> list[str]:
    """Float16 sentence vectors as base64 pieces (the embedded store keeps the same float16 bytes).

    Example:
        >>> pieces_to_vectors(vectors_to_pieces(np.ones((2, 3))), 3).shape
        (2, 3)
    """
    return pieces(base64.b64encode(np.ascontiguousarray(vectors, dtype=np.float16).tobytes()).decode("ascii"))


def pieces_to_vectors(parts: Sequence[str], dim: int) -> np.ndarray:
    return np.frombuffer(base64.b64decode(join(parts)), dtype=np.float16).reshape(-1, dim).astype(np.float32)


def flat_pairs(pairs: Sequence[Sequence[int]]) -> list[int]:
    """Sentence spans ((start, end), ...) as one flat list, what an INT64 array field holds."""
    out = [int(v) for pair in pairs for v in pair]
    if len(out) > MAX_PIECES:
        raise ValueError(f"a chunk of {len(pairs)} sentences is over the Milvus store's limit of {MAX_PIECES // 2}")
    return out


def pairs(flat: Sequence[int]) -> tuple[tuple[int, int], ...]:
    """Example:
    >>> pairs([0, 5, 6, 9])
    ((0, 5), (6, 9))
    """
    return tuple((int(flat[i]), int(flat[i + 1])) for i in range(0, len(flat), 2))


# ---------------------------------------------------------------------------------------------
# Collections


def _varchar(schema: Any, name: str, max_length: int = MAX_BYTES, **kwargs: Any) -> None:
    schema.add_field(name, DataType.VARCHAR, max_length=max_length, **kwargs)


def _pieces_field(schema: Any, name: str) -> None:
    schema.add_field(name, DataType.ARRAY, element_type=DataType.VARCHAR, max_length=MAX_BYTES, max_capacity=MAX_PIECES)


def _generations(schema: Any) -> None:
    schema.add_field("gen_added", DataType.INT64)
    schema.add_field("gen_removed", DataType.INT64)


def vector_index_kind(n_chunks: int, approximate_above: int, hnsw_m: int) -> str:
    """The dense index a collection of `n_chunks` live chunks gets, as the embedded store decides
    (`rag.store.files.faiss_kind`): exact up to `approximate_above`, HNSW above.

    Example:
        >>> vector_index_kind(10, 100, 32), vector_index_kind(101, 100, 32)
        ('FLAT(IP)', 'HNSW(M=32,IP)')
    """
    return "FLAT(IP)" if n_chunks <= approximate_above else f"HNSW(M={hnsw_m},IP)"


def add_vector_index(index_params: Any, kind: str, ef_construction: int) -> None:
    if kind.startswith("HNSW"):
        m = int(kind.split("M=")[1].split(",")[0])
        params = {"M": m, "efConstruction": ef_construction}
        index_params.add_index("vector", index_type="HNSW", metric_type="IP", params=params)
    else:
        index_params.add_index("vector", index_type="FLAT", metric_type="IP")


def create_chunks(client: MilvusClient, name: str, dim: int, kind: str, ef_construction: int) -> None:
    s = client.create_schema(auto_id=False, enable_dynamic_field=False)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("doc_key", DataType.INT64)
    _varchar(s, "source")
    for field in ("start", "end", "page", "n_terms"):
        s.add_field(field, DataType.INT64)
    _pieces_field(s, "text")
    s.add_field("sentences", DataType.ARRAY, element_type=DataType.INT64, max_capacity=MAX_PIECES)
    _pieces_field(s, "sentence_vectors")
    s.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    # The chunk's `rag.lexical.stem_terms` joined by spaces (what lexical search rescores from), and
    # their BM25 weights as a sparse vector searched by inner product (`bm25_weights`). The
    # "standard" tokenizer splits the joined terms back into exactly those terms (runs of word
    # characters), so TEXT_MATCH sees the embedded store's terms.
    _varchar(s, "terms", enable_analyzer=True, analyzer_params={"tokenizer": "standard"}, enable_match=True)
    s.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    _generations(s)
    ip = client.prepare_index_params()
    add_vector_index(ip, kind, ef_construction)
    ip.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="IP")
    ip.add_index("doc_key", index_type="INVERTED")
    client.create_collection(name, schema=s, index_params=ip, consistency_level="Strong")


def create_small(client: MilvusClient, names: Names, name: str) -> None:
    """One of the docs, df and meta collections."""
    s = client.create_schema(auto_id=False, enable_dynamic_field=False)
    _varchar(s, "key", max_length=512, is_primary=True)
    if name == names.docs:
        s.add_field("doc_key", DataType.INT64)
        _varchar(s, "source")
        _varchar(s, "sha256", max_length=64)
        _pieces_field(s, "text")
        _pieces_field(s, "pages")
        s.add_field("n_chunks", DataType.INT64)
        s.add_field("added_at", DataType.DOUBLE)
        _generations(s)
    elif name == names.df:
        for field in DF_FIELDS[1:]:
            s.add_field(field, DataType.INT64)
    else:
        _pieces_field(s, "value")
    s.add_field("_v", DataType.FLOAT_VECTOR, dim=len(_ZERO))
    ip = client.prepare_index_params()
    ip.add_index("_v", index_type="FLAT", metric_type="L2")
    if name == names.docs:
        ip.add_index("doc_key", index_type="INVERTED")
    client.create_collection(name, schema=s, index_params=ip, consistency_level="Strong")


DF_FIELDS = ["key", "df_new", "gen_new", "df_old", "gen_old"]  # a df row; key is the term key


def df_at(row: dict[str, Any] | None, generation: int) -> int:
    """How many chunks of `generation` hold a df row's term: the newer count when its generation
    is not after `generation`, else the older one (0 for a term absent from either).

    Example:
        >>> df_at({"df_new": 5, "gen_new": 3, "df_old": 2, "gen_old": 1}, 2)
        2
        >>> df_at(None, 2)
        0
    """
    if row is None:
        return 0
    if int(row["gen_new"]) <= generation:
        return int(row["df_new"])
    return int(row["df_old"]) if int(row["gen_old"]) <= generation else 0


def df_row(key: str, count: int, generation: int, old: dict[str, Any] | None, committed: int) -> dict[str, Any]:
    """The df row giving `key` `count` chunks from `generation` on, keeping the count the
    committed generation sees as the older one."""
    before = df_at(old, committed)
    return {
        "key": key,
        "df_new": count,
        "gen_new": generation,
        "df_old": before,
        "gen_old": committed if before else 0,
        "_v": zero_vector(),
    }


def zero_vector() -> list[float]:
    return list(_ZERO)


def vector_dim(client: MilvusClient, name: str) -> int:
    """The dimension of a chunk collection's dense vectors."""
    for field in client.describe_collection(name)["fields"]:
        if field["name"] == "vector":
            return int(field["params"]["dim"])
    raise BadStore(f"collection {name!r} has no dense vector field: it was not made by rag")


def load_all(client: MilvusClient, names: Names) -> None:
    """Load the collections for searching (a reopened Milvus Lite store starts with them released)."""
    for name in (names.chunks, names.docs, names.df, names.meta):
        ensure_loaded(client, name)


def ensure_loaded(client: MilvusClient, name: str) -> None:
    if client.get_load_state(name).get("state") != LoadState.Loaded:
        client.load_collection(name)


def scan(client: MilvusClient, name: str, flt: str, fields: list[str]) -> Iterator[list[dict[str, Any]]]:
    """Pages of the rows matching `flt` for a caller that changes each page so that it no longer
    matches (retiring, un-retiring): the same query is repeated until it returns nothing."""
    while True:
        rows = client.query(name, filter=flt, output_fields=fields, limit=PAGE)
        if not rows:
            return
        yield rows


# ---------------------------------------------------------------------------------------------
# The manifest row


def read_manifest(client: MilvusClient, names: Names) -> dict[str, Any] | None:
    if not client.has_collection(names.meta):
        return None
    ensure_loaded(client, names.meta)
    rows = client.query(names.meta, filter='key == "manifest"', output_fields=["value"])
    return json.loads(join(rows[0]["value"])) if rows else None


def write_manifest(client: MilvusClient, names: Names, manifest: dict[str, Any]) -> None:
    """The commit: one upsert of one row, which Milvus applies whole or not at all."""
    value = pieces(json.dumps(manifest, ensure_ascii=False))
    client.upsert(names.meta, [{"key": "manifest", "value": value, "_v": zero_vector()}])


# ---------------------------------------------------------------------------------------------
# Connecting

# The in-process Milvus Lite server accepts a keep-alive ping every 5 minutes (gRPC's default) and
# answers pymilvus's every 10 s with "too_many_pings", which gRPC prints to stderr; on loopback no
# keep-alive is needed.
_LOOPBACK = {"grpc.keepalive_time_ms": 3_600_000, "grpc.keepalive_permit_without_calls": False}
_lite_users: dict[str, int] = {}  # Milvus Lite folder -> clients open in this process
_lite_guard = threading.Lock()


def _quiet_logs() -> None:
    """pymilvus logs every failed call with a traceback and Milvus Lite logs a failed start; this
    store raises one-line errors instead, so both are kept to critical messages."""
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
    logging.getLogger("milvus_lite").setLevel(logging.CRITICAL)


def connect(spec: StoreSpec) -> MilvusClient:
    """A client for the store; BadStore (one line naming the spec) when it cannot be reached."""
    _quiet_logs()
    if spec.is_local_file:
        return _connect_lite(spec)
    try:
        return MilvusClient(uri=spec.target, token=os.environ.get("MILVUS_TOKEN", ""), timeout=CONNECT_TIMEOUT)
    except Exception as exc:  # pymilvus raises MilvusException, grpc errors or OSError
        raise BadStore(f"cannot reach the Milvus server of store {spec}: {one_line(exc)}") from None


def lite_path(spec: StoreSpec) -> Path:
    return Path(os.path.abspath(spec.target))


def _connect_lite(spec: StoreSpec) -> MilvusClient:
    path = lite_path(spec)
    if not path.parent.is_dir():
        raise BadStore(f"store {spec}: the folder {path.parent} does not exist")
    if path.exists() and not path.is_dir():
        raise BadStore(f"store {spec}: {path} is a file, not a Milvus Lite store (Milvus Lite keeps one in a folder)")
    with _lite_guard:
        if not _lite_users.get(str(path)) and _held_by_another_process(path):
            raise BadStore(
                f"store {spec} is open in another process: Milvus Lite opens a store in one process at a time "
                "(stop that process, or use a Milvus server)"
            )
        try:
            client = MilvusClient(str(path), timeout=CONNECT_TIMEOUT, grpc_options=_LOOPBACK)
        except Exception as exc:
            raise BadStore(f"cannot open the Milvus Lite store {spec}: {one_line(exc)}") from None
        _lite_users[str(path)] = _lite_users.get(str(path), 0) + 1
    return client


def _held_by_another_process(path: Path) -> bool:
    """Whether Milvus Lite's own lock on the folder is held (by another process: this one holds
    none, `_lite_users` says)."""
    lock = path / "LOCK"
    if not lock.exists():
        return False
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def disconnect(spec: StoreSpec, client: MilvusClient) -> None:
    """Close a client; the last client of a Milvus Lite store in this process also stops its
    in-process server, which frees the folder for another process."""
    client.close()
    if not spec.is_local_file:
        return
    from milvus_lite.server_manager import server_manager_instance

    path = str(lite_path(spec))
    with _lite_guard:
        users = _lite_users.get(path, 0) - 1
        if users > 0:
            _lite_users[path] = users
            return
        _lite_users.pop(path, None)
        server_manager_instance.release_server(path)


def one_line(exc: BaseException) -> str:
    """An exception's message on one line, without pymilvus's "<MilvusException: (code=...)>" wrapper."""
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return " ".join(str(message).split())[:300]


# ---------------------------------------------------------------------------------------------
# The write lock


class LiteLock:
    """Milvus Lite: an flock on PATH.lock beside the store's folder, as the embedded store's `.lock`."""

    def __init__(self, spec: StoreSpec) -> None:
        self.spec = spec
        self.path = lock_path(spec)
        self._fd: int | None = None

    def acquire(self) -> None:
        if not self.path.parent.is_dir():
            raise BadStore(f"store {self.spec}: the folder {self.path.parent} does not exist")
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                holder = _read(self.path)
                raise IndexLocked(
                    f"another process{f' (pid {holder})' if holder else ''} is writing the index at {self.spec}; "
                    "wait for it to finish"
                ) from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def renew(self) -> None:
        pass

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def lock_path(spec: StoreSpec) -> Path:
    """PATH.db -> PATH.lock"""
    path = lite_path(spec)
    return path.with_name(path.name.removesuffix(".db") + ".lock")


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


class ServerLock:
    """A Milvus server: a lease row ("lock") in the meta collection naming the writer (host, pid),
    renewed as the writer writes and taken over when it has not been renewed for LEASE_SECONDS.

    It keeps rag writers that start at different moments from writing at once, and a writer that
    died stops blocking others after the lease. It is advisory, not a fencing lock: Milvus has no
    compare-and-set, so two writers starting within the same few milliseconds could both see the
    row free; the second one's re-read catches that in all but a narrow race.
    """

    def __init__(self, spec: StoreSpec, client: MilvusClient, names: Names) -> None:
        self.spec, self.client, self.names = spec, client, names
        self.token = uuid.uuid4().hex
        self.renewed = 0.0

    def _holder(self) -> dict[str, Any] | None:
        rows = self.client.query(self.names.meta, filter='key == "lock"', output_fields=["value"])
        return json.loads(join(rows[0]["value"])) if rows else None

    def acquire(self) -> None:
        holder = self._holder()
        if holder and holder["token"] != self.token and holder["expires"] > time.time():
            raise IndexLocked(
                f"another process (pid {holder['pid']} on {holder['host']}) is writing the index at {self.spec}; "
                f"wait for it to finish (its lock lapses {LEASE_SECONDS:.0f} s after its last write)"
            )
        self.renew(force=True)
        holder = self._holder()
        if holder is None or holder["token"] != self.token:
            raise IndexLocked(f"another process took the write lock of the index at {self.spec} just now; try again")

    def renew(self, *, force: bool = False) -> None:
        now = time.time()
        if not force and now - self.renewed < LEASE_SECONDS / 4:
            return
        value = {"token": self.token, "pid": os.getpid(), "host": socket.gethostname(), "expires": now + LEASE_SECONDS}
        self.client.upsert(self.names.meta, [{"key": "lock", "value": [json.dumps(value)], "_v": zero_vector()}])
        self.renewed = now

    def release(self) -> None:
        holder = self._holder()
        if holder and holder["token"] == self.token:
            self.client.delete(self.names.meta, filter='key == "lock"')
