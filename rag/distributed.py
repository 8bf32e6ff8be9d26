"""Ingestion on Ray Data (`rag index --ray [ADDRESS]`): the files of one update read, chunked and
embedded by Ray workers, the documents streamed back in file order into the store writer.

Only `rag.pipeline.build_index(..., ray=ADDRESS)` imports this module, and Ray is imported inside
its functions, so without `--ray` nothing loads Ray (and an install without the `scale` extra
gets a one-line error only when it asks for Ray).

The index written is the one the single-process path (`rag.ingest.update_index`) writes: same
chunk ids, texts and vectors. The int8 encoder quantises activations per batch, so a chunk's vector
depends on the chunks embedded with it (measured: up to 0.03 apart), and the chunks must be
embedded in the very blocks `rag.ingest.embed_documents` forms. Those depend on every earlier
document's chunk count, hence three stages:

    files ─▶ read + chunk (tasks) ─▶ group into blocks (one actor, file order) ─▶ embed (actor pool)
          ─▶ this process, block by block in order ─▶ `StoreWriter.apply`

Between stages only plain data travels: file paths, JSON of texts and offsets, numpy arrays. The
workers read the files themselves, so on a cluster the paths must be readable on every node (a
shared file system) and `rag` installed there.

Example:
    >>> with open_writer("faiss:index", config=RagConfig()) as writer:  # doctest: +SKIP
    ...     stats = update_index_on_ray(writer, find_files(["docs"])[0], [], backend="onnx-int8")
"""

from __future__ import annotations

import json
import logging
import os
import socket
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from rag.config import RagConfig
from rag.ingest import embed_block, embed_block_size, index_chunks
from rag.load import Skipped, load_documents
from rag.store import UpdateStats
from rag.store.base import StoreWriter
from rag.types import Chunk, Document, EmbeddedDocument, Page

FILES_PER_TASK = 16  # files one read-and-chunk call handles: small enough to keep every worker busy
# CPUs each embedding actor asks Ray for, and the encoder threads it runs: one actor per CPU. With
# ONNX Runtime's default (a thread per core in every actor) N actors on N cores run N*N threads.
CPUS_PER_ACTOR = 1


class RayUnavailable(ConnectionError):
    """Ray could not be imported, started or reached; the message is one line naming the address."""


def update_index_on_ray(
    writer: StoreWriter,
    files: Sequence[tuple[Path, str]],
    remove: Iterable[str],
    *,
    backend: str,
    address: str = "local",
    workers: int | None = None,
    max_bytes: int | None = None,
    progress: Callable[[int], None] | None = None,
    on_skip: Callable[[Skipped], None] | None = None,
    empty_corpus_error: str | None = None,
) -> UpdateStats:
    """What `rag.ingest.update_index` does, with the files (`find_files`' pairs, in its order)
    read, chunked and embedded on Ray at `address` by `workers` actors (default: one per CPU Ray
    reports), each loading the `backend` encoder once. Files that cannot be read go to `on_skip`;
    `progress` gets the chunks embedded, a block at a time. Raises RayUnavailable (one line) when
    Ray cannot be reached or started."""
    stats = UpdateStats()
    with ray_session(address, workers) as n_workers:
        embedded = embed_files(
            files,
            writer.current_documents(),
            config=writer.config,
            backend=backend,
            workers=n_workers,
            max_bytes=max_bytes,
            stats=stats,
            progress=progress,
            on_skip=on_skip,
        )
        return writer.apply(embedded, remove, embed_backend=backend, stats=stats, empty_corpus_error=empty_corpus_error)


@contextmanager
def ray_session(address: str = "local", workers: int | None = None) -> Iterator[int]:
    """Connect to Ray for one update and yield the number of embedding actors to run.

    "local" starts Ray in this machine with `workers` CPUs (default: all of them); any other
    address goes to `ray.init(address=...)` ("auto", "HOST:PORT", "ray://HOST:10001"). A session
    already open in this process is used as it is and left open; one started here is shut down.
    """
    if workers is not None and workers < 1:
        raise RayUnavailable(f"Ray workers must be >= 1, got {workers}")
    ray = _import_ray()
    started = not ray.is_initialized()
    if started:
        _connect(ray, address, workers)
    try:
        with warnings.catch_warnings():
            # A small update gives the pool fewer blocks than actors, and Ray Data says so: expected.
            warnings.filterwarnings("ignore", "The minimum number of concurrent actors", UserWarning)
            yield workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    finally:
        if started:
            ray.shutdown()


def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # Ray Data is the `data` extra: checked here, not at the first map_batches
    except ImportError:
        raise RayUnavailable("Ray ingestion needs Ray Data: pip install 'rag[scale]'") from None
    return ray


def _connect(ray: Any, address: str, workers: int | None) -> None:
    """`ray.init` for `address`, quiet (no dashboard, no worker logs); RayUnavailable when it fails.
    A remote address is checked with a plain TCP connection first: Ray itself waits 30 s or more
    on a port nobody answers."""
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    if address == "local":
        options["num_cpus"] = workers or os.cpu_count() or 1
        # Ray runs its workers at nice 15; the single-process path runs at the command's own
        # priority, and so should the same work done by a local Ray for the same command.
        options["_system_config"] = {"worker_niceness": 0}
    else:
        _check_reachable(address)
    try:
        ray.init(address=address, **options)
    except Exception as exc:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise RayUnavailable(f"cannot connect to Ray at {address}: {first_line}") from None


def _check_reachable(address: str) -> None:
    """Raise RayUnavailable unless something listens at `address` ("auto" is left to Ray: it
    looks for a cluster started on this machine, and says so quickly when there is none).

    Example:
        >>> _check_reachable("ray://127.0.0.1:1")
        Traceback (most recent call last):
        ...
        rag.distributed.RayUnavailable: cannot reach Ray at ray://127.0.0.1:1: Connection refused
    """
    if address == "auto":
        return
    parts = urlsplit(address if "://" in address else f"gcs://{address}")
    try:
        port = parts.port or (10001 if parts.scheme == "ray" else 6379)
    except ValueError:
        raise RayUnavailable(f"bad Ray address {address!r}: give ray://HOST:PORT, HOST:PORT or auto") from None
    if not parts.hostname:
        raise RayUnavailable(f"bad Ray address {address!r}: give ray://HOST:PORT, HOST:PORT or auto")
    try:
        socket.create_connection((parts.hostname, port), timeout=5).close()
    except OSError as exc:
        hint = " (--ray takes an address: put PATHS before it)" if os.path.exists(address) else ""
        raise RayUnavailable(f"cannot reach Ray at {address}: {exc.strerror or exc}{hint}") from None


def embed_files(
    files: Sequence[tuple[Path, str]],
    current: Mapping[str, str],
    *,
    config: RagConfig,
    backend: str,
    workers: int,
    stats: UpdateStats,
    max_bytes: int | None = None,
    progress: Callable[[int], None] | None = None,
    on_skip: Callable[[Skipped], None] | None = None,
) -> Iterator[EmbeddedDocument]:
    """What `rag.ingest.embed_documents` yields for `files` (and counts in `stats`), computed on the
    Ray session open in this process: the documents in file order, a block at a time as Ray
    finishes them, so memory holds a few blocks, not the corpus. `current` maps each indexed
    source to its sha256; a file that cannot be read goes to `on_skip`. `stats.embed_seconds` sums
    the actors' encoding time, so with several actors it can exceed the time the update took."""
    dataset = _dataset(files, current, config=config, backend=backend, workers=workers, max_bytes=max_bytes)
    seen = 0
    for block in _in_sequence(dataset.iter_rows()):
        events = json.loads(block["events"])
        seen += len(events)
        yield from _block_documents(events, block, stats=stats, progress=progress, on_skip=on_skip)
    if seen != len(files):  # a lost block (a restarted grouping actor) must not pass as a short corpus
        raise RuntimeError(f"Ray returned {seen} of {len(files)} files; nothing was written")


def _dataset(
    files: Sequence[tuple[Path, str]],
    current: Mapping[str, str],
    *,
    config: RagConfig,
    backend: str,
    workers: int,
    max_bytes: int | None,
) -> Any:
    """The three-stage Ray Data pipeline over `files`, one row per file plus an end marker.

    The read and grouping stages ask for no CPU: they are light, and the embedding actors (one CPU
    each) may hold all of them; were they to wait for a CPU, nothing would run."""
    import ray.data

    rows = [{"i": i, "path": str(p), "source": s, "indexed": current.get(s, "")} for i, (p, s) in enumerate(files)]
    rows.append({"i": len(files), "path": "", "source": "", "indexed": ""})  # the end marker
    dataset: Any = ray.data.from_items(rows)  # Ray's stubs do not take a keyword-only UDF
    context = dataset.context  # this dataset's copy: the process-wide settings are left alone
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # e.g. "progress bars disabled"
    dataset = dataset.map_batches(
        _read_and_chunk,
        batch_size=FILES_PER_TASK,
        fn_kwargs={"config": config, "max_bytes": max_bytes},
        compute=ray.data.TaskPoolStrategy(size=workers),
        num_cpus=0,
    )
    with warnings.catch_warnings():  # max_restarts has no named parameter (yet) in Ray 2.60
        warnings.simplefilter("ignore", DeprecationWarning)
        dataset = dataset.map_batches(
            _BlockGrouper,
            fn_constructor_args=(len(files), embed_block_size(config)),
            batch_size=None,
            compute=ray.data.ActorPoolStrategy(size=1),
            num_cpus=0,
            max_restarts=0,  # its state is the grouping so far: a restarted one would lose blocks
        )
    return dataset.map_batches(
        _BlockEmbedder,
        fn_constructor_args=(backend, config),
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=CPUS_PER_ACTOR,
    )


# --- stage 1 (Ray tasks): read and chunk -------------------------------------------------------


def _read_and_chunk(batch: dict[str, np.ndarray], *, config: RagConfig, max_bytes: int | None) -> dict[str, Any]:
    """Load and chunk each file of the batch; each becomes an event saying what the update does
    with it, decided as `rag.ingest.embed_documents` decides (see `_file_event`)."""
    from rag.embed import load_tokenizer

    tokenizer = load_tokenizer()
    events = [
        _file_event(int(i), str(path), str(source), str(indexed), tokenizer, config, max_bytes)
        for i, path, source, indexed in zip(batch["i"], batch["path"], batch["source"], batch["indexed"])
    ]
    return {
        "i": np.array([e["i"] for e in events], dtype=np.int64),
        "n_chunks": np.array([len(e.get("chunks", ())) for e in events], dtype=np.int64),
        "event": np.array([json.dumps(e) for e in events], dtype=object),
    }


def _file_event(
    i: int, path: str, source: str, indexed: str, tokenizer: Any, config: RagConfig, max_bytes: int | None
) -> dict[str, Any]:
    """File `i` as plain data: kind "skipped" (unreadable, with its reason), "unchanged" (the
    indexed version has its sha256), "too_large" (with its reason), "new" (its document and
    chunks, to embed), or "end" for the end marker. `indexed` is the indexed version's sha256."""
    if not path:
        return {"i": i, "kind": "end"}
    event: dict[str, Any] = {"i": i, "source": source, "indexed": bool(indexed)}
    item = next(
        load_documents([(Path(path), source)], max_bytes=max_bytes, indexed={source: indexed} if indexed else None)
    )
    if isinstance(item, Skipped):
        return {**event, "kind": "skipped", "reason": item.reason}
    if item.sha256 == indexed:
        return {**event, "kind": "unchanged"}
    chunks, too_large = index_chunks(item, tokenizer, config)
    if too_large:
        return {**event, "kind": "too_large", "reason": too_large}
    return {
        **event,
        "kind": "new",
        "text": item.text,
        "sha256": item.sha256,
        "modified": item.modified,
        "pages": [[p.number, p.start, p.end] for p in item.pages],
        "headings": [[a, b] for a, b in item.headings],
        "chunks": [[c.start, c.end, c.page, c.sentences] for c in chunks],
    }


def _document(event: Mapping[str, Any]) -> tuple[Document, tuple[Chunk, ...]]:
    """The document and chunks of a "new" event, as `load_document` and `chunk_document` made them."""
    doc = Document(
        event["source"],
        event["text"],
        event["sha256"],
        tuple(Page(*p) for p in event["pages"]),
        headings=tuple((a, b) for a, b in event["headings"]),
        modified=event["modified"],
    )
    chunks = tuple(
        Chunk(-1, doc.source, start, end, doc.text[start:end], page, tuple((a, b) for a, b in sentences))
        for start, end, page, sentences in event["chunks"]
    )
    return doc, chunks


# --- stage 2 (one actor): group into blocks ----------------------------------------------------


class _BlockGrouper:
    """Takes the file events in file order, whatever order Ray delivers them in, and groups them
    into the blocks `rag.ingest.embed_documents` embeds together: a block ends once the chunks of
    its "new" documents reach `block_chunks`, the last one at the end marker (file `total`). Each
    block keeps the other events of its files, so this process sees everything in file order."""

    def __init__(self, total: int, block_chunks: int) -> None:
        self.total, self.block_chunks = total, block_chunks
        self.next = 0  # the file whose event is needed next
        self.waiting: dict[int, tuple[int, str]] = {}  # events that came before their turn
        self.pending: list[str] = []
        self.pending_chunks = 0
        self.blocks_sent = 0

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for i, n_chunks, event in zip(batch["i"], batch["n_chunks"], batch["event"]):
            self.waiting[int(i)] = (int(n_chunks), str(event))
        blocks: list[str] = []
        while self.next in self.waiting:
            n_chunks, event = self.waiting.pop(self.next)
            if self.next < self.total:
                self.pending.append(event)
                self.pending_chunks += n_chunks
            if self.pending_chunks >= self.block_chunks or self.next == self.total:
                blocks.append("[" + ",".join(self.pending) + "]")
                self.pending, self.pending_chunks = [], 0
            self.next += 1
        seq = np.arange(self.blocks_sent, self.blocks_sent + len(blocks), dtype=np.int64)
        self.blocks_sent += len(blocks)
        return {"seq": seq, "events": np.array(blocks, dtype=object)}


# --- stage 3 (the actor pool): embed -----------------------------------------------------------


class _BlockEmbedder:
    """One embedding actor: loads the encoder once, then embeds one block per call with
    `rag.ingest.embed_block`, the single-process path's own call."""

    def __init__(self, backend: str, config: RagConfig) -> None:
        from rag.embed import Embedder

        self.embedder = Embedder.load(backend=backend, threads=CPUS_PER_ACTOR)
        if self.embedder.backend != backend:  # vectors of another encoder must not be labelled `backend`
            raise RuntimeError(f"a Ray worker could not load the {backend} encoder (got {self.embedder.backend})")
        self.config = config

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        embedded = [self._embed(str(events)) for events in batch["events"]]
        return {
            "seq": batch["seq"],
            "events": batch["events"],
            "vectors": _object_array([e[0] for e in embedded]),
            "sentence_vectors": _object_array([e[1] for e in embedded]),
            "seconds": np.array([e[2] for e in embedded], dtype=np.float64),
        }

    def _embed(self, events: str) -> tuple[np.ndarray, np.ndarray, float]:
        """The block's chunk vectors (n_chunks, dim), its sentence vectors one after another
        (n_sentences, dim), and the seconds spent embedding."""
        pending = [_document(e) for e in json.loads(events) if e["kind"] == "new"]
        stats = UpdateStats()
        done = embed_block(
            [(d, list(c)) for d, c in pending], self.embedder, config=self.config, stats=stats, progress=None
        )
        dim = self.config.model_dim
        vectors = np.concatenate([e.vectors for e in done] or [np.zeros((0, dim), np.float32)])
        sentences = np.concatenate([s for e in done for s in e.sentence_vectors] or [np.zeros((0, dim), np.float32)])
        return vectors.astype(np.float32), sentences.astype(np.float32), stats.embed_seconds


def _object_array(arrays: list[np.ndarray]) -> np.ndarray:
    """A column of arrays of different lengths (numpy would stack equal ones into one array)."""
    column = np.empty(len(arrays), dtype=object)
    column[:] = arrays
    return column


# --- back in this process ----------------------------------------------------------------------


def _in_sequence(blocks: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    """The blocks in the order the grouping actor made them (Ray keeps it with `preserve_order`;
    this holds any that come early, so the store never depends on that)."""
    waiting: dict[int, Mapping[str, Any]] = {}
    expected = 0
    for block in blocks:
        waiting[int(block["seq"])] = block
        while expected in waiting:
            yield waiting.pop(expected)
            expected += 1
    if waiting:
        raise RuntimeError(f"Ray returned blocks {sorted(waiting)} without block {expected}")


def _block_documents(
    events: list[dict[str, Any]],
    block: Mapping[str, Any],
    *,
    stats: UpdateStats,
    progress: Callable[[int], None] | None,
    on_skip: Callable[[Skipped], None] | None,
) -> Iterator[EmbeddedDocument]:
    """One block's embedded documents, in file order, with its other files counted in `stats` (or
    passed to `on_skip`) as `rag.ingest.embed_documents` counts them."""
    vectors, sentence_vectors = np.asarray(block["vectors"]), np.asarray(block["sentence_vectors"])
    if len(vectors):
        stats.chunks_embedded += len(vectors)
        stats.embed_seconds += float(block["seconds"])
        if progress:
            progress(len(vectors))
    k = s = 0
    for event in events:
        kind, source = event["kind"], event["source"]
        if kind == "skipped" and on_skip:
            on_skip(Skipped(source, event["reason"]))
        elif kind == "too_large":
            stats.too_large.append((source, event["reason"]))
        if kind == "unchanged" or (kind == "too_large" and event["indexed"]):
            stats.unchanged.append(source)
        if kind != "new":
            continue
        doc, chunks = _document(event)
        bounds = s + np.cumsum([0, *(len(c.sentences) for c in chunks)])
        per_chunk = tuple(sentence_vectors[a:b] for a, b in zip(bounds[:-1], bounds[1:]))
        yield EmbeddedDocument(doc, chunks, vectors[k : k + len(chunks)], per_chunk)
        k, s = k + len(chunks), int(bounds[-1])
