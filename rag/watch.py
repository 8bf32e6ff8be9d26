"""Keeping an index in sync with folders: filesystem events (`watchfiles`) become index updates.

`FolderWatch.run` waits for changes under the watched paths, gathers a burst of them (a copy of a
thousand files is one update), waits until each changed file's size and modification time hold
still, and applies only the files that changed, through the same incremental path as `rag index`
(`rag.ingest.embed_documents` into `StoreWriter.apply`: one new generation, committed last, so an
update that is interrupted leaves the previous one whole). The rules are `rag index`'s: hidden files
and folders are ignored, symbolic links are not followed, unsupported, unreadable and oversized
files are skipped with their reason, and a file's `source` is its path relative to the watched
folder (`rag.load.find_files`). A rename is a removal and an addition; behind `rag serve`, whose
index is loaded, the renamed file's chunks and vectors are taken over instead of embedded again.

This module is the loop and the update; the parts it builds on have their own modules, whose names
it re-exports: which path is which source (`rag.watch_paths`), when a burst of events has settled
(`rag.watch_pending`), and the records it reports (`rag.watch_records`).

Example:
    >>> watch = FolderWatch(["notes"], "index", embedder=Embedder.load(), on_change=print)  # doctest: +SKIP
    >>> watch.run()  # doctest: +SKIP
    + meeting.md (3 chunks)
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from rag.config import RagConfig
from rag.ingest import backend_name, embed_documents
from rag.load import Skipped, find_files, load_documents
from rag.pipeline import RAG, BadInput, BuildReport, build_index
from rag.store import IndexLocked, UpdateStats
from rag.store.locate import committed_manifest, open_writer, parse_store
from rag.types import Document, EmbeddedDocument
from rag.watch_paths import WatchedPaths
from rag.watch_pending import MAX_HOLD_SECONDS, QUIET_SECONDS, Pending, file_signature
from rag.watch_records import ADDED, CHANGED, REMOVED, SKIPPED, Change, SyncReport, SyncStatus

__all__ = [
    "ADDED",
    "CHANGED",
    "MAX_HOLD_SECONDS",
    "QUIET_SECONDS",
    "REMOVED",
    "RETRY_SECONDS",
    "SKIPPED",
    "STEP_MS",
    "TICK_MS",
    "Change",
    "FolderWatch",
    "Pending",
    "StopWatching",
    "SyncReport",
    "SyncStatus",
    "WatchFailed",
    "WatchedPaths",
    "watch_in_background",
]

RETRY_SECONDS = 2.0  # the index is being written by someone else: try again after this
TICK_MS = 500  # the event wait wakes this often to see what has settled
STEP_MS = 200  # watchfiles' own grouping step (events within it come together)
log = logging.getLogger(__name__)


class StopWatching(Exception):
    """Raised inside an update when the watch is asked to stop: the update is abandoned (rolled
    back by the store writer) and the loop ends."""


class WatchFailed(Exception):
    """The system's file watcher failed; the message says what to do."""


class FolderWatch:
    """Keeps the index at `index` (a folder or store spec) in sync with `paths`.

    `on_change` gets every change and skip an update makes, as it commits; `rag` (a served `RAG`),
    when given, is reloaded after each update that changed the index, and its `write_lock` keeps
    this watch and the UI's uploads from writing at the same time. Thread-safe: `status()` may be
    read from another thread while `run` goes on.
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]],
        index: str | os.PathLike[str],
        *,
        embedder: Any,
        config: RagConfig | None = None,
        on_change: Callable[[Change], None] | None = None,
        rag: RAG | None = None,
        quiet: float = QUIET_SECONDS,
        max_hold: float = MAX_HOLD_SECONDS,
    ) -> None:
        self.paths = WatchedPaths(paths)
        self.given = tuple(str(p) for p in paths)
        self.index = str(index)
        self.embedder = embedder
        self.config = config or RagConfig()
        self.on_change = on_change
        self.rag = rag
        self.pending = Pending(quiet=quiet, max_hold=max_hold)
        self.own_files = _store_files(self.index)
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._version = 0
        self._last: SyncReport | None = None
        self._skipped: dict[str, str] = {}
        self._waiting = ""

    # --- status ---------------------------------------------------------------------------------

    def status(self) -> SyncStatus:
        with self._lock:
            return SyncStatus(
                self.given, self._version, self._last, tuple(sorted(self._skipped.items())), self._waiting
            )

    def _record(self, report: SyncReport | None, sources: Iterable[str] = (), *, waiting: str = "") -> None:
        with self._lock:
            if report is None and waiting == self._waiting:
                return
            for source in sources:
                self._skipped.pop(source, None)
            if report is not None:
                self._skipped.update((c.source, c.detail) for c in report.changes if c.kind == SKIPPED)
                if report.changed_anything:
                    self._last = report
            self._waiting = waiting
            self._version += 1

    # --- the loop -------------------------------------------------------------------------------

    def run(self, *, before: Callable[[], object] | None = None) -> None:
        """Watch until `stop` is set (or KeyboardInterrupt), applying each settled burst as one
        update. `before` runs once the watcher is listening (the initial index run), so nothing
        changed while it runs is missed. An update interrupted by `stop` is abandoned whole."""
        events = self._events()
        self._take(self._next(events) or set())
        try:
            if before is not None:
                before()
            self._loop(events)
        except StopWatching:
            pass  # the update in progress was rolled back by its writer

    def _next(self, events: Iterator[set[tuple[Any, str]]]) -> set[tuple[Any, str]] | None:
        """The next set of events, None when the watch ended; WatchFailed when the system's
        watcher cannot go on (too many folders for inotify, a watched folder unmounted)."""
        from watchfiles._rust_notify import WatchfilesRustInternalError

        try:
            return next(events)
        except StopIteration:
            return None
        except (OSError, WatchfilesRustInternalError) as exc:
            raise WatchFailed(
                f"cannot watch {', '.join(self.given)}: {exc} (too many folders? raise fs.inotify.max_user_watches, "
                "or set WATCHFILES_FORCE_POLLING=1)"
            ) from None

    def _loop(self, events: Iterator[set[tuple[Any, str]]]) -> None:
        retry_at = 0.0
        while (raw := self._next(events)) is not None:
            self._take(raw)
            now = time.monotonic()
            ready = self.pending.take_settled(now) if now >= retry_at else {}
            if not ready:
                continue
            try:
                self.sync(ready)
            except IndexLocked as exc:
                self.pending.put_back(ready, time.monotonic())
                retry_at = time.monotonic() + RETRY_SECONDS
                self._record(None, waiting=f"waiting to write the index: {exc}")
            if self.stop.is_set():
                return

    def _events(self) -> Iterator[set[tuple[Any, str]]]:
        """Sets of (watchfiles.Change, path) under the watched folders, an empty one every TICK_MS
        at least. A watched file is not watched through its inode (an editor saving by rename
        replaces it, and the watch would follow the old one): its stat is compared each tick."""
        from watchfiles import Change as Event
        from watchfiles import watch

        folders = [str(root) for root in self.paths.roots if root in self.paths.folders]
        files = {root: file_signature(root) for root in self.paths.roots if root not in self.paths.folders}
        ticks = (
            watch(
                *folders,
                watch_filter=None,
                debounce=60_000,
                step=STEP_MS,
                rust_timeout=TICK_MS,
                yield_on_timeout=True,
                stop_event=self.stop,
                raise_interrupt=True,
            )
            if folders
            else _ticks(self.stop)
        )
        for raw in ticks:
            for root, seen in files.items():
                now = file_signature(root)
                if now != seen:
                    files[root] = now
                    raw = raw | {(Event.modified, str(root))}
            yield raw

    def _take(self, raw: set[tuple[Any, str]]) -> None:
        """Note the events of one wait in `pending`; a modification of a folder is no change."""
        from watchfiles import Change as Event

        now = time.monotonic()
        for event, name in raw:
            path = Path(name)
            if path in self.paths.folders and not path.is_dir():
                self._record(None, waiting=f"{path} is gone: changes there are not seen until the watch is restarted")
            if self.paths.source_of(path) is None or any(path.is_relative_to(p) for p in self.own_files):
                continue  # outside, hidden, or the index's own files (an index kept inside a watched folder)
            folder = path.is_dir() and not path.is_symlink()
            if folder and event == Event.modified:
                continue
            self.pending.add(path, new_folder=folder, now=now)

    # --- one update -----------------------------------------------------------------------------

    def sync(self, paths: dict[Path, bool]) -> SyncReport:
        """Apply what changed at `paths` (path -> whether a folder appeared there) as one update,
        reload the served RAG, and report each change. Raises IndexLocked when another writer holds
        the index (nothing is applied) and StopWatching when stopped meanwhile (nothing is applied)."""
        sources, skipped = self._sources(paths)
        lock = self.rag.write_lock if self.rag is not None else threading.Lock()
        with lock:
            report = self._apply(sources, skipped)
            if self.rag is not None and report.changed_anything:
                self.rag.reload()
        self._publish(report, sources)
        return report

    def _publish(self, report: SyncReport, sources: Iterable[str] = ()) -> None:
        self._record(report, sources)
        if self.on_change is not None:
            for change in report.changes:
                self.on_change(change)

    def _sources(self, paths: dict[Path, bool]) -> tuple[set[str], list[Skipped]]:
        """The sources to bring up to date for these changed paths: each path's own, everything under
        a folder that appeared, and (a folder that went) the indexed ones under it (see `_apply`)."""
        sources: set[str] = set()
        skipped: list[Skipped] = []
        for path, new_folder in paths.items():
            found = self.paths.source_of(path)
            if found is None:
                continue
            _, source = found
            sources.add(source)
            if new_folder and path.is_dir():
                under, skips = self.paths.expand(path, source)
                sources.update(under)
                skipped += skips
        return sources, skipped

    def _apply(self, sources: set[str], skipped: list[Skipped]) -> SyncReport:
        stats = UpdateStats()
        chunks: dict[str, int] = {}
        if not sources:
            return _report(stats, chunks, skipped)
        reused: list[EmbeddedDocument] = []
        with open_writer(self.index, config=self.config) as writer:
            current = writer.current_documents()
            files, remove = self._targets(sources, current, skipped)
            documents = self._reusing(self._readable(files, skipped), {current[s]: s for s in remove}, current, reused)
            embedded = embed_documents(
                documents,
                self.embedder,
                config=writer.config,
                current=current,
                stats=stats,
                progress=self._check_stop,
            )
            # `reused` is complete once every document was read, which is when `embedded` ends.
            updates = _counted(itertools.chain(embedded, reused), chunks)
            writer.apply(updates, remove, embed_backend=backend_name(self.embedder), stats=stats)
        skipped += [Skipped(source, reason) for source, reason in stats.too_large]
        return _report(stats, chunks, skipped, reused={e.document.source for e in reused})

    def _reusing(
        self,
        documents: Iterable[Document],
        removed: dict[str, str],
        current: dict[str, str],
        reused: list[EmbeddedDocument],
    ) -> Iterator[Document]:
        """`documents`, less those that are renamed files (a new source with the bytes of a source
        this update removes, `removed`: sha256 -> source) whose chunks and vectors the served index
        holds: those go into `reused` as they are, not embedded again."""
        for doc in documents:
            old = removed.get(doc.sha256) if doc.source not in current else None
            item = self._indexed_as(doc, old) if old is not None else None
            if item is None:
                yield doc
            else:
                reused.append(item)

    def _indexed_as(self, doc: Document, old: str) -> EmbeddedDocument | None:
        """`doc` with the chunks and vectors the served index holds for `old` (the same bytes under
        another name), or None without a served index or when it does not hold them."""
        store = self.rag.index if self.rag is not None else None
        if store is None or store.manifest.get("documents", {}).get(old, {}).get("sha256") != doc.sha256:
            return None
        chunks = store.document_chunks(old)
        ids = [c.id for c in chunks]
        vectors, sentences = store.chunk_vectors(ids), store.sentence_vectors(ids)
        if not chunks or any(i not in vectors or i not in sentences for i in ids):
            return None
        return EmbeddedDocument(
            doc,
            tuple(replace(c, source=doc.source) for c in chunks),
            np.stack([vectors[i] for i in ids]).astype(np.float32),
            tuple(sentences[i] for i in ids),
        )

    def _targets(
        self, sources: set[str], current: dict[str, str], skipped: list[Skipped]
    ) -> tuple[list[tuple[Path, str]], list[str]]:
        """(files to read, indexed sources to remove) for the changed `sources`: each is read where
        a watched path holds it, removed from the index where none does; the indexed documents
        under a source that is no longer a file (a folder that went) are looked at too."""
        located = {source: self.paths.locate(source) for source in sources}
        folders = {source for source, where in located.items() if not isinstance(where, Path)}
        for source in current:
            parts = source.split("/")
            if source not in located and any("/".join(parts[:k]) in folders for k in range(1, len(parts))):
                located[source] = self.paths.locate(source)
        files, remove = [], []
        for source, where in sorted(located.items()):
            if isinstance(where, Path):
                files.append((where, source))
                continue
            if isinstance(where, Skipped):
                skipped.append(where)
            if source in current:
                remove.append(source)
        return files, remove

    def _readable(self, files: list[tuple[Path, str]], skipped: list[Skipped]) -> Iterator[Document]:
        """The documents of `files`; one that cannot be read is skipped with its reason, unless it
        is gone (deleted or moved away since its event: its own event brings the removal)."""
        for (path, _), item in zip(files, load_documents(files, max_bytes=int(self.config.max_file_mb * 1024 * 1024))):
            if isinstance(item, Skipped):
                if os.path.lexists(path):
                    skipped.append(item)
            else:
                yield item
            self._check_stop()

    def _check_stop(self, _: int = 0) -> None:
        if self.stop.is_set():
            raise StopWatching

    # --- the first run --------------------------------------------------------------------------

    def catch_up(self) -> SyncReport:
        """`sync_all`, waiting while another process writes the index (the watch's status says so).
        Raises StopWatching when stopped meanwhile."""
        while True:
            try:
                return self.sync_all()
            except IndexLocked as exc:
                self._record(None, waiting=f"waiting to write the index: {exc}")
                if self.stop.wait(RETRY_SECONDS):
                    raise StopWatching from None

    def sync_all(self) -> SyncReport:
        """Bring the index in line with the watched paths as `rag index PATHS` does, except that the
        documents uploaded through the UI of the served RAG (in its `uploads_dir`) stay. Used when
        `rag serve --watch` starts. Raises IndexLocked when another process writes the index."""
        lock = self.rag.write_lock if self.rag is not None else threading.Lock()
        with lock:  # what is indexed and uploaded is read under the lock an upload takes
            files, skipped = find_files(self.paths.roots)
            remove = self._gone({source for _, source in files})
            try:
                built = build_index(
                    self.paths.roots,
                    index_dir=self.index,
                    embedder=self.embedder,
                    config=self.config,
                    remove_missing=False,
                    remove=remove,
                    progress=self._check_stop,
                )
            except BadInput as exc:  # nothing readable under the paths: the index stays as it was
                report = SyncReport(time.time(), tuple(Change(SKIPPED, s.source, s.reason) for s in skipped))
                self._publish(report)
                self._record(None, waiting=f"{exc}; the index is left as it was")
                return report
            if self.rag is not None and built.stats.changed_anything:
                self.rag.reload()
        report = _built_report(built)
        self._publish(report)
        return report

    def _gone(self, found: set[str]) -> list[str]:
        """The indexed sources no watched path holds now (`found` are those it holds), less the
        documents uploaded through the UI of the served RAG: what `sync_all` removes."""
        uploads = self.rag.index.uploads_dir if self.rag is not None else None
        keep = {p.name for p in uploads.iterdir()} if uploads is not None and uploads.is_dir() else set()
        indexed = set((committed_manifest(self.index) or {}).get("documents", {}))
        return sorted(indexed - found - keep)


def watch_in_background(watch: FolderWatch) -> threading.Thread:
    """Run `watch` in a daemon thread, after bringing the index in line with its paths
    (`catch_up`, keeping the documents uploaded through the UI). Set `watch.stop` to end it; a
    failure is logged and shown in its status, never raised into the server."""

    def run() -> None:
        try:
            watch.run(before=watch.catch_up)
        except Exception as exc:  # the watch stops; the server and its index keep working
            log.exception("the folder watch stopped")
            watch._record(None, waiting=f"the folder watch stopped: {type(exc).__name__}: {exc}")

    thread = threading.Thread(target=run, name="rag-watch", daemon=True)
    thread.start()
    return thread


def _store_files(index: str) -> list[Path]:
    """The local files a store writes (its folder; a Milvus Lite store's folder, lock and uploads),
    so that an index kept inside a watched folder does not watch its own writes.

    Example:
        >>> [p.name for p in _store_files("milvus:/data/rag.db")]
        ['rag.db', 'rag.lock', 'rag.uploads']
    """
    spec = parse_store(index)
    if spec.kind == "faiss":
        return [Path(os.path.abspath(spec.target))]
    if not spec.is_local_file:
        return []
    db = Path(os.path.abspath(spec.target))
    return [db, db.with_suffix(".lock"), db.with_suffix(".uploads")]


def _ticks(stop: threading.Event) -> Iterator[set[tuple[Any, str]]]:
    """An empty set every TICK_MS until `stop` is set (when no folder is watched)."""
    while not stop.wait(TICK_MS / 1000):
        yield set()


def _counted(embedded: Iterable[EmbeddedDocument], chunks: dict[str, int]) -> Iterator[EmbeddedDocument]:
    """`embedded`, noting each document's chunk count in `chunks` as it passes."""
    for item in embedded:
        chunks[item.document.source] = len(item.chunks)
        yield item


def _built_report(built: BuildReport) -> SyncReport:
    """The report of a whole `build_index` run (`sync_all`): its changes without chunk counts."""
    s = built.stats
    changes = [Change(ADDED, x) for x in s.added] + [Change(CHANGED, x) for x in s.changed]
    changes += [Change(REMOVED, x) for x in s.removed]
    changes += [Change(SKIPPED, x.source, x.reason) for x in built.skipped]
    return SyncReport(time.time(), tuple(changes), s.n_chunks, s.generation)


def _report(
    stats: UpdateStats, chunks: dict[str, int], skipped: list[Skipped], *, reused: Collection[str] = ()
) -> SyncReport:
    def counted(source: str) -> str:
        n = chunks.get(source, 0)
        return f"{n} chunk{'s' if n != 1 else ''}" + (", vectors reused" if source in reused else "")

    changes = [Change(ADDED, s, counted(s)) for s in stats.added]
    changes += [Change(CHANGED, s, counted(s)) for s in stats.changed]
    changes += [Change(REMOVED, s) for s in stats.removed]
    seen: set[str] = set()
    for item in skipped:
        if item.source not in seen:
            seen.add(item.source)
            changes.append(Change(SKIPPED, item.source, item.reason))
    return SyncReport(time.time(), tuple(changes), stats.n_chunks, stats.generation)
