"""Open a store from its spec: the one place that knows which store a string names.

Specs:

    faiss:DIR, or a bare DIR     the embedded store in a folder (the default)
    milvus:PATH.db               Milvus Lite, in-process, one file (`pip install 'rag[scale]'`)
    milvus://HOST:PORT[/NAME]    a Milvus server or cluster (token from $MILVUS_TOKEN); NAME is
    http(s)://HOST:PORT[/NAME]   the collection, "rag" by default

Example:
    >>> parse_store("index")
    StoreSpec(kind='faiss', target='index', collection='')
    >>> parse_store("milvus:/data/rag.db")
    StoreSpec(kind='milvus', target='/data/rag.db', collection='rag')
    >>> parse_store("milvus://db.internal:19530/team")
    StoreSpec(kind='milvus', target='http://db.internal:19530', collection='team')
"""

from __future__ import annotations

import importlib
import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from rag.config import RagConfig
from rag.store.base import Store, StoreWriter
from rag.store.manifest import BadStore, read_manifest
from rag.store.reader import Index
from rag.store.writer import IndexWriter

DEFAULT_COLLECTION = "rag"
_COLLECTION = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")


@dataclass(frozen=True)
class StoreSpec:
    kind: str  # "faiss" or "milvus"
    target: str  # the folder, the Milvus Lite file, or the server's http(s) URI
    collection: str  # the Milvus collection ("" for faiss)

    def __str__(self) -> str:
        if self.kind == "faiss":
            return f"faiss:{self.target}"
        if self.target.startswith(("http://", "https://")):
            return f"{self.target}/{self.collection}"
        return f"milvus:{self.target}"

    @property
    def is_local_file(self) -> bool:
        """Milvus Lite: one file opened in this process."""
        return self.kind == "milvus" and not self.target.startswith(("http://", "https://"))


def parse_store(spec: str | os.PathLike[str]) -> StoreSpec:
    """The store a spec names; BadStore (one line naming the spec) when it names none."""
    text = os.fspath(spec)
    if not text.strip():
        raise BadStore("store spec is empty: give faiss:DIR, milvus:PATH.db or milvus://HOST:PORT")
    if text.startswith("faiss:"):
        return _faiss(text, text[len("faiss:") :])
    if text.startswith(("milvus://", "http://", "https://")):
        return _server(text)
    if text.startswith("milvus:"):
        return _lite(text, text[len("milvus:") :])
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text):
        raise BadStore(f"unknown store {text!r}: give faiss:DIR, milvus:PATH.db or milvus://HOST:PORT")
    return _faiss(text, text)


def _faiss(spec: str, folder: str) -> StoreSpec:
    if not folder:
        raise BadStore(f"store {spec!r} names no folder: give faiss:DIR")
    return StoreSpec("faiss", folder, "")


def _lite(spec: str, path: str) -> StoreSpec:
    if not path.endswith(".db") or path == ".db":
        raise BadStore(f"store {spec!r}: a Milvus Lite store is a file ending in .db (milvus:PATH.db)")
    return StoreSpec("milvus", path, DEFAULT_COLLECTION)


def _server(spec: str) -> StoreSpec:
    parts = urlsplit(spec)
    scheme = "http" if parts.scheme == "milvus" else parts.scheme
    try:
        port = parts.port
    except ValueError:
        raise BadStore(f"store {spec!r} has a bad port") from None
    if not parts.hostname:
        raise BadStore(f"store {spec!r} names no host: give milvus://HOST:PORT")
    collection = parts.path.strip("/") or DEFAULT_COLLECTION
    if not _COLLECTION.fullmatch(collection):
        raise BadStore(
            f"store {spec!r}: collection {collection!r} must be letters, digits and underscores, not starting "
            "with a digit"
        )
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return StoreSpec("milvus", f"{scheme}://{host}:{port or 19530}", collection)


def open_store(spec: str | os.PathLike[str] | StoreSpec, *, config: RagConfig | None = None) -> Store:
    """The committed generation of the store `spec` names, loaded for searching."""
    config = config or RagConfig()
    parsed = spec if isinstance(spec, StoreSpec) else parse_store(spec)
    if parsed.kind == "faiss":
        return Index.load(parsed.target, config=config)
    return _milvus().MilvusStore.open(parsed, config=config)


def open_writer(spec: str | os.PathLike[str] | StoreSpec, *, config: RagConfig, rebuild: bool = False) -> StoreWriter:
    """A writer for the store `spec` names; use it in a `with` block."""
    parsed = spec if isinstance(spec, StoreSpec) else parse_store(spec)
    if parsed.kind == "faiss":
        return IndexWriter(parsed.target, config, rebuild=rebuild)
    return _milvus().MilvusWriter(parsed, config, rebuild=rebuild)


def committed_manifest(spec: str | os.PathLike[str] | StoreSpec) -> dict[str, Any] | None:
    """The manifest of the store's committed generation, None for a folder or collection never built."""
    parsed = spec if isinstance(spec, StoreSpec) else parse_store(spec)
    if parsed.kind == "faiss":
        return read_manifest(parsed.target)
    return _milvus().committed_manifest(parsed)


def _milvus() -> Any:
    """rag.store.milvus, imported only when a Milvus store is used (pymilvus is optional)."""
    try:
        import pymilvus  # noqa: F401
    except ImportError:
        raise BadStore("Milvus stores need pymilvus and milvus-lite: pip install 'rag[scale]'") from None
    return importlib.import_module("rag.store.milvus")
