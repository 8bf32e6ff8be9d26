"""Collections: several named indexes under one index folder, served by one process.

Layout of an index folder with collections::

    index/                      the collection "default": the index folder itself, as before
      manifest.json ...         (its generation files, chunk store, uploads/)
      collections/
        team-a/                 the collection "team-a": a complete index folder of its own
        team-b/

A name is a letter or digit followed by up to 63 letters, digits, `_` or `-` ("default" is the
folder itself), so a collection's folder is always a direct child of `collections/`. A collection
exists once an index is committed in its folder (its `manifest.json`): a folder being built, one
without a manifest, a file, a symbolic link or a badly named entry is not a collection. The store
writer only ever deletes its own generation files (`vectors-*`, `bm25-*`, `*.tmp`), so updating
the default index never touches `collections/`.

Collections need a folder store (`faiss:DIR` or a plain folder). A Milvus store
(`milvus:PATH.db`, `milvus://HOST/NAME`) serves only its one index, the collection "default".

Example:
    >>> collections = Collections.open("index", config=RagConfig())  # doctest: +SKIP
    >>> collections.names()  # doctest: +SKIP
    ['default', 'team-a']
    >>> collections.get("team-a").ask("Who signed?").collection  # doctest: +SKIP
    'team-a'
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

from rag.config import RagConfig
from rag.embed import Embedder
from rag.ingest import backend_name
from rag.pipeline import RAG
from rag.reader import Reader
from rag.store import MANIFEST, IndexNotFound, IndexWriter
from rag.store.locate import StoreSpec, committed_manifest, parse_store
from rag.store.manifest import built_chunking

DEFAULT = "default"
FOLDER = "collections"  # inside the index folder: one sub-folder per named collection
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


class BadCollection(ValueError):
    """A collection name that is not valid, or names no collection; one line naming it."""


def check_collection(name: str) -> str:
    """`name` if it is a valid collection name; BadCollection naming it otherwise.

    Example:
        >>> check_collection("team-a")
        'team-a'
        >>> try:  # doctest: +ELLIPSIS
        ...     check_collection("../x")
        ... except BadCollection as exc:
        ...     print(exc)
        collection name '../x' is not valid: use 1-64 letters, ...
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise BadCollection(
            f"collection name {name!r} is not valid: use 1-64 letters, digits, '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def collection_dir(index_dir: str | os.PathLike[str], name: str) -> Path:
    """The folder of the collection `name` in the index folder `index_dir` (a folder or
    `faiss:DIR`): DEFAULT is `index_dir` itself, any other name `index_dir/collections/NAME`.
    BadCollection for a bad name, or for a Milvus store (which has no collection folders).

    Example:
        >>> collection_dir("index", "team-a"), collection_dir("faiss:index", DEFAULT)
        (PosixPath('index/collections/team-a'), PosixPath('index'))
    """
    check_collection(name)
    base = Path(_folder_store(index_dir, name).target)
    return base if name == DEFAULT else base / FOLDER / name


def collection_names(index_dir: str | os.PathLike[str]) -> list[str]:
    """The collections built in `index_dir`: DEFAULT first when the folder itself holds an index,
    then the named ones, sorted. Entries of `collections/` that are not a built index with a valid
    name (no manifest yet, a file, a symbolic link, a bad name) are left out. The server asks this
    on every request, so a folder's index is recognised by its committed manifest file alone (the
    manifest, which lists every document, is not read)."""
    spec = parse_store(index_dir)
    if spec.kind != "faiss":
        return [DEFAULT] if committed_manifest(spec) is not None else []
    names = [DEFAULT] if (Path(spec.target) / MANIFEST).is_file() else []
    folder = Path(spec.target) / FOLDER
    try:
        entries = sorted(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return names
    return names + [e.name for e in entries if _is_collection(e)]


def require_collection(index_dir: str | os.PathLike[str], name: str) -> str:
    """The spec of the built collection `name` (a folder, or the store itself for DEFAULT);
    BadCollection naming it and listing the collections there are when it is not built."""
    check_collection(name)
    names = collection_names(index_dir)
    if name not in names:
        where = str(index_dir).rstrip("/") + "/"
        raise BadCollection(f'no collection "{name}" in {where} (collections: {", ".join(names) or "none"})')
    return os.fspath(index_dir) if name == DEFAULT else str(collection_dir(index_dir, name))


def _is_collection(entry: Path) -> bool:
    return (
        bool(_NAME.fullmatch(entry.name))
        and entry.name != DEFAULT
        and entry.is_dir()
        and not entry.is_symlink()
        and (entry / MANIFEST).is_file()
    )


def _folder_store(index_dir: str | os.PathLike[str], name: str) -> StoreSpec:
    spec = parse_store(index_dir)
    if spec.kind != "faiss":
        raise BadCollection(
            f"collection {name!r}: {spec} is a Milvus store, which holds one index; "
            "collections need a folder store (faiss:DIR or a folder)"
        )
    return spec


def _with_index_chunking(config: RagConfig, spec: str) -> RagConfig:
    """`config` for the index at `spec`: its own chunking (chunking belongs to an index), the
    model still checked when it opens."""
    return config.replace(index_dir=spec, **built_chunking(committed_manifest(spec)))


class Collections:
    """Every collection under one index folder, opened lazily and kept open, sharing one embedder
    (and the answer scorer models) between them so ten collections cost one model's memory.
    Thread-safe: the server's request threads call it concurrently."""

    def __init__(
        self, index_dir: str | os.PathLike[str], *, config: RagConfig, embedder: Embedder | None = None
    ) -> None:
        self._spec = os.fspath(index_dir)
        store = parse_store(self._spec)
        self.index_dir = Path(store.target if store.kind == "faiss" else self._spec)  # the folder, not "faiss:DIR"
        self.config = config
        self.embedder = embedder or Embedder.load(backend=config.embed_backend)
        self._reader = Reader.load() if config.answer_scorer == "reader" else None
        self._open: dict[str, RAG] = {}
        self._lock = threading.Lock()

    @classmethod
    def open(cls, index_dir: str | os.PathLike[str], *, config: RagConfig) -> Collections:
        """The collections of `index_dir`, checked to hold at least one built index before the
        model loads; IndexNotFound otherwise."""
        if not collection_names(index_dir):
            raise IndexNotFound(
                f"no index at {index_dir}: build one with `rag index [PATHS...] --index-dir {index_dir}` "
                "(add --collection NAME for a named collection)"
            )
        return cls(index_dir, config=config)

    def names(self) -> list[str]:
        """The collections built now (the folder is scanned again on each call)."""
        return collection_names(self._spec)

    def get(self, name: str) -> RAG:
        """The collection `name`, opened on first use and the same object afterwards; its answers
        carry `collection=name`. BadCollection for a bad name or one not built."""
        opened = self._open.get(name)
        if opened is not None:
            return opened
        with self._lock:
            if name not in self._open:
                self._open[name] = self._load(require_collection(self._spec, name), name)
            return self._open[name]

    def create(self, name: str) -> RAG:
        """A new, empty collection `name` (an index of no documents, to upload into), opened.
        BadCollection for a bad name or one that exists already."""
        check_collection(name)
        folder = collection_dir(self._spec, name)
        with self._lock:
            if name in collection_names(self._spec):
                raise BadCollection(f'collection "{name}" already exists in {self._spec}')
            config = self.config.replace(index_dir=str(folder))
            with IndexWriter(folder, config) as writer:
                writer.apply([], [], embed_backend=backend_name(self.embedder))
            self._open[name] = self._load(str(folder), name)
            return self._open[name]

    def _load(self, spec: str, name: str) -> RAG:
        rag = RAG.open(
            spec, config=_with_index_chunking(self.config, spec), embedder=self.embedder, reader=self._reader
        )
        rag.collection = name
        return rag

    def close(self) -> None:
        """Close every opened collection's index."""
        with self._lock:
            for rag in self._open.values():
                rag.index.close()
            self._open.clear()
