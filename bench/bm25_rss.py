"""Peak RSS and time of the BM25 build: bm25s in memory (the old `IndexWriter._write_bm25`) against
the streamed build (rag/bm25_build.py). Run each measurement in its own process:

    python -m bench.bm25_rss build 100k .cache/bench/bm25-rss-100k   # whole index, real IndexWriter
    python -m bench.bm25_rss build 100k .cache/bench/bm25-rss-100k-old --old   # ... with the old BM25 step
    python -m bench.bm25_rss bm25 old .cache/bench/bm25-rss-100k     # BM25 alone from chunks.sqlite
    python -m bench.bm25_rss bm25 new .cache/bench/bm25-rss-100k

`build` writes synthetic documents (bench/common.py, as `bench.query` does) through the real
IndexWriter into a new folder and reports the peak RSS before the BM25 step and at the end, and
the time of the FAISS and BM25 steps. `bm25` reads the live chunks of an existing index's
chunks.sqlite (opened read-only and immutable, so any index can be used, the bench caches
included), builds BM25 only, into .cache/bench/bm25-rss-out-<which>/ (deleted afterwards), and
prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sqlite3
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import ROOT


def _peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def old_bm25(rows: list[tuple[int, str]], out_dir: Path) -> tuple[np.ndarray, Any]:
    """What `IndexWriter._write_bm25` did before rag/bm25_build.py: every text at once into bm25s."""
    import bm25s

    from rag.lexical import bm25_tokenize

    ids = np.asarray([r[0] for r in rows], dtype=np.int64)
    retriever = None
    if len(rows):
        retriever = bm25s.BM25()
        retriever.index(bm25_tokenize([r[1] for r in rows]), show_progress=False)
        retriever.save(str(out_dir), show_progress=False)
    np.save(out_dir / "ids.npy", ids, allow_pickle=False)
    return ids, retriever


def _old_write_bm25(rows: Iterable[tuple[int, str]], path: Path) -> None:
    """The old BM25 step of `IndexWriter`, in place of `rag.store.files.write_bm25` (same folder handling)."""
    import os

    from rag.store import fsync_file

    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    old_bm25(list(rows), tmp)
    for f in tmp.iterdir():
        fsync_file(f)
    os.replace(tmp, path)


def build(size: str, index_dir: Path, *, old: bool = False) -> dict[str, Any]:
    from bench.query import build_synthetic
    from rag.store import files

    if index_dir.exists():
        raise SystemExit(f"{index_dir} exists: measure a fresh build")
    steps: dict[str, Any] = {}

    def timed(name: str, method: Any) -> Any:
        def wrapper(*args: Any) -> Any:
            steps[f"peak_mb_before_{name}"] = _peak_mb()
            t0 = time.perf_counter()
            out = method(*args)
            steps[f"{name}_seconds"] = round(time.perf_counter() - t0, 1)
            steps[f"peak_mb_after_{name}"] = _peak_mb()
            return out

        return wrapper

    files.write_faiss = timed("faiss", files.write_faiss)
    files.write_bm25 = timed("bm25", _old_write_bm25 if old else files.write_bm25)
    out = build_synthetic(size, index_dir)
    return {"mode": "build-old" if old else "build", **out, **steps, "peak_mb": _peak_mb()}


def bm25_only(which: str, index_dir: Path) -> dict[str, Any]:
    import bm25s  # noqa: F401  (imported before the baseline, as in the indexing process)

    from rag.bm25_build import build_bm25
    from rag.lexical import bm25_tokenize
    from rag.store import MANIFEST

    bm25_tokenize(["warm"])  # the stemmer loaded before the baseline

    manifest = json.loads((index_dir / MANIFEST).read_text())
    gen = manifest["generation"]
    db = sqlite3.connect(f"file:{index_dir / 'chunks.sqlite'}?immutable=1", uri=True)
    sql = (
        "SELECT id, text FROM chunks WHERE gen_added <= ? AND (gen_removed IS NULL OR gen_removed > ?) ORDER BY id",
        (gen, gen),
    )
    out_dir = ROOT / ".cache" / "bench" / f"bm25-rss-out-{which}"
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir()
    baseline = _rss_mb()
    t0 = time.perf_counter()
    try:
        if which == "old":
            ids, retriever = old_bm25(db.execute(*sql).fetchall(), out_dir)
            n, nnz, vocab = len(ids), len(retriever.scores["data"]), len(retriever.vocab_dict) - 1
        else:
            built = build_bm25(db.execute(*sql), out_dir)
            np.save(out_dir / "ids.npy", built.ids, allow_pickle=False)
            n, nnz, vocab = len(built.ids), built.nnz, built.n_vocab
        seconds = round(time.perf_counter() - t0, 1)
        size_mb = round(sum(f.stat().st_size for f in out_dir.iterdir()) / 2**20, 1)
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    return {
        "mode": f"bm25-{which}",
        "index": str(index_dir),
        "chunks": n,
        "vocab": vocab,
        "nnz": nnz,
        "bm25_seconds": seconds,
        "baseline_rss_mb": baseline,
        "peak_mb": _peak_mb(),
        "files_mb": size_mb,
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="a whole synthetic index through IndexWriter")
    b.add_argument("size", help="chunks, such as 100k or 1m")
    b.add_argument("index_dir", type=Path)
    b.add_argument("--old", action="store_true", help="with the old in-memory BM25 step")
    m = sub.add_parser("bm25", help="BM25 alone from an existing index's chunks.sqlite")
    m.add_argument("which", choices=("old", "new"))
    m.add_argument("index_dir", type=Path)
    args = p.parse_args(argv)
    result = (
        build(args.size, args.index_dir, old=args.old) if args.cmd == "build" else bm25_only(args.which, args.index_dir)
    )
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
