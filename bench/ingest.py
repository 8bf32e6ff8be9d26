"""Ingestion throughput on SciFact: the real indexing path against a bare encode and LangChain.

    python -m bench.ingest                          # 1000 documents, torch backend
    python -m bench.ingest --limit 300 --backends torch torch-bf16 onnx onnx-int8
    python -m bench.ingest --rss 300 1000           # peak RSS of indexing at two corpus sizes
    python -m bench.ingest --ndcg torch torch-bf16 onnx-int8   # SciFact nDCG@10 per backend (slow)
    python -m bench.ingest --ndcg onnx-int8@torch   # int8 questions on the torch-built index
    python -m bench.ingest --seed-qa torch onnx-int8           # seed question set per backend

For each backend, in one process and on the same SciFact documents, split into --rounds slices
that go through every method back to back (order reversed every other round, times summed), so
that the machine's changing load falls on all methods alike:
- rag: `rag.pipeline.build_index` of the documents (written as files) into a temporary folder,
  chunks embedded per second of the whole call (loading, chunking, embedding, SQLite, FAISS, BM25);
- bare: the same chunk texts through the encoder alone (sentence-transformers `model.encode` for
  torch; length-sorted batches of 32 through the backend's forward + mean pooling for the others);
- langchain (torch only): `FAISS.from_documents` over the same chunk texts with the tutorial's
  HuggingFaceEmbeddings (eval/baseline.py), and the whole tutorial pipeline (its own splitter,
  1000/200 characters) on the same documents, compared per document.
Model FLOPs are 2 x 22.7M parameters x real tokens (special tokens included, padding not).
Results: bench/results/ingest.json (and ingest-rss.json, ingest-ndcg.json).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

import numpy as np

from bench.common import (
    MODEL_PARAMS,
    ROOT,
    SCIFACT,
    cpu_info,
    peak_flops,
    peak_rss_mb,
    print_table,
    scifact_corpus,
    write_result,
)
from rag.config import EMBED_BACKENDS, EmbedBackend, RagConfig

TARGETS = {"vs_bare": 0.90, "vs_langchain": 1.0, "vs_langchain_chosen_backend": 1.5}
TAG = {"suffix": ""}  # --tag: appended to every result file name


def write_docs(documents: dict[str, str], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in documents.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def index_texts(index_dir: Path) -> list[str]:
    import sqlite3

    db = sqlite3.connect(str(index_dir / "chunks.sqlite"))
    try:
        return [r[0] for r in db.execute("SELECT text FROM chunks WHERE gen_removed IS NULL ORDER BY id")]
    finally:
        db.close()


def bare_encode(embedder: Any, texts: Sequence[str], batch_size: int = 32) -> float:
    """Seconds to encode `texts` with the encoder alone; returns the time."""
    from rag.embed import mean_pool

    if embedder.backend == "torch":
        model = _sentence_transformer()
        model.encode(["warm up"] * 8, show_progress_bar=False)
    started = time.perf_counter()
    if embedder.backend == "torch":
        model.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
    else:
        ordered = sorted(texts, key=len)
        for lo in range(0, len(ordered), batch_size):
            enc = embedder.tokenizer(
                ordered[lo : lo + batch_size], padding=True, truncation=True, max_length=256, return_tensors="np"
            )
            mean_pool(embedder.token_vectors(enc), enc["attention_mask"])
    return time.perf_counter() - started


@lru_cache(maxsize=1)
def _sentence_transformer() -> Any:
    """The same model as sentence-transformers loads it: what a bare `model.encode` means."""
    from sentence_transformers import SentenceTransformer

    from rag.embed import model_path

    model = SentenceTransformer(str(model_path()), device="cpu")
    model.max_seq_length = 256
    return model


def token_count(embedder: Any, texts: Sequence[str]) -> int:
    enc = embedder.tokenizer(list(texts), truncation=True, max_length=256)
    return sum(len(ids) for ids in enc["input_ids"])


def chunk_texts(documents: dict[str, str], tokenizer: Any) -> list[str]:
    """The chunk texts `build_index` makes of `documents` (default chunking), in no set order."""
    from rag.chunk import chunk_document
    from rag.types import Document

    config = RagConfig()
    return [
        c.text
        for name, text in documents.items()
        for c in chunk_document(
            Document(name, text, ""),
            tokenizer,
            max_tokens=config.chunk_tokens,
            overlap_sentences=config.chunk_overlap_sentences,
        )
    ]


def langchain_same_chunks(texts: Sequence[str], embeddings: Any) -> float:
    """Seconds for LangChain's `FAISS.from_documents` over `texts` with the tutorial's embeddings."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from langchain_community.vectorstores import FAISS
        from langchain_community.vectorstores.utils import DistanceStrategy
        from langchain_core.documents import Document
    started = time.perf_counter()
    FAISS.from_documents(
        [Document(page_content=t) for t in texts], embeddings, distance_strategy=DistanceStrategy.MAX_INNER_PRODUCT
    )
    return time.perf_counter() - started


def throughput(limit: int, backends: Sequence[EmbedBackend], rounds: int) -> None:
    """Every method on every backend, interleaved: the documents are split into `rounds` slices and
    each slice goes through all of them back to back (the order reversed every other round), so a
    change in the machine's load falls on all methods alike. Times are summed over the rounds."""
    from eval.baseline import load_embeddings
    from rag.embed import Embedder

    documents = scifact_corpus(limit)
    embedders = {b: Embedder.load(backend=b) for b in backends}
    for e in embedders.values():
        e.encode_queries(["warm up the encoder and its thread pool"] * 8)
    lc_embeddings = load_embeddings() if "torch" in backends else None
    if lc_embeddings is not None:
        lc_embeddings.embed_documents(["warm up the encoder and its thread pool"] * 8)
    acc, load = _interleaved_rounds(documents, backends, embedders, lc_embeddings, rounds)
    peak, how = peak_flops()
    results: list[dict[str, Any]] = []
    for b, a in acc.items():
        results.append(_backend_result(b, a, limit, peak))
        print(json.dumps(results[-1]), flush=True)
    _print_summary(results, limit=limit, rounds=rounds, load=load, peak=peak, how=how)
    write_result(
        "ingest" + TAG["suffix"],
        {
            "limit": limit,
            "rounds": rounds,
            "load_avg_during": load,
            "peak_flops": peak,
            "peak_flops_estimate": how,
            "targets": TARGETS,
            "results": results,
        },
    )


@dataclass(frozen=True)
class _Round:
    """One round's slice of the documents: written as files into `docs_dir`, and its chunk texts."""

    number: int
    part: dict[str, str]
    docs_dir: Path
    texts: list[str]
    work: Path  # the folder the round's indexes go into


def _interleaved_rounds(
    documents: dict[str, str],
    backends: Sequence[EmbedBackend],
    embedders: dict[EmbedBackend, Any],
    lc_embeddings: Any,
    rounds: int,
) -> tuple[dict[EmbedBackend, dict[str, float]], list[float]]:
    """Every method of every backend over each round's slice, the order reversed every other round:
    the times and counts summed per backend, and the load average before and after each round."""
    names = list(documents)
    acc: dict[EmbedBackend, dict[str, float]] = {
        b: {
            "rag_s": 0.0,
            "embed_s": 0.0,
            "chunks": 0,
            "bare_s": 0.0,
            "texts": 0,
            "tokens": 0,
            "lc_s": 0.0,
            "tutorial_s": 0.0,
            "tutorial_chunks": 0,
        }
        for b in backends
    }
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        for round_no in range(rounds):
            part = {n: documents[n] for n in names[round_no::rounds]}
            docs_dir = write_docs(part, Path(tmp) / f"docs-{round_no}")
            texts = chunk_texts(part, next(iter(embedders.values())).tokenizer)
            this = _Round(round_no, part, docs_dir, texts, Path(tmp))
            for b in backends if round_no % 2 == 0 else list(backends)[::-1]:
                steps = ["rag", "bare"] + (["langchain", "tutorial"] if b == "torch" else [])
                for step in steps if round_no % 2 == 0 else steps[::-1]:
                    _time_step(step, acc[b], b, embedders[b], this, lc_embeddings)
            load.append(os.getloadavg()[0])
            print(f"round {round_no + 1}/{rounds} done, load {load[-1]:.2f}", file=sys.stderr, flush=True)
    return acc, load


def _time_step(
    step: str, a: dict[str, float], backend: EmbedBackend, emb: Any, this: _Round, lc_embeddings: Any
) -> None:
    """One method ("rag", "bare", "langchain" or "tutorial") over the round's slice: its time and
    counts added to `a`."""
    from eval.baseline import LangChainBaseline
    from rag.pipeline import build_index

    if step == "rag":
        index_dir = this.work / f"index-{backend}-{this.number}"
        started = time.perf_counter()
        report = build_index(
            [this.docs_dir], index_dir=index_dir, embedder=emb, config=RagConfig(embed_backend=backend)
        )
        a["rag_s"] += time.perf_counter() - started
        a["embed_s"] += report.stats.embed_seconds
        a["chunks"] += report.stats.chunks_embedded
        assert sorted(index_texts(index_dir)) == sorted(this.texts)
    elif step == "bare":
        a["bare_s"] += bare_encode(emb, this.texts)
        a["texts"] += len(this.texts)
        a["tokens"] += token_count(emb, this.texts)
    elif step == "langchain":
        a["lc_s"] += langchain_same_chunks(this.texts, lc_embeddings)
    else:
        started = time.perf_counter()
        a["tutorial_chunks"] += LangChainBaseline.build(this.part, embeddings=lc_embeddings).n_chunks
        a["tutorial_s"] += time.perf_counter() - started


def _backend_result(b: EmbedBackend, a: dict[str, float], limit: int, peak: float) -> dict[str, Any]:
    """One backend's rates from its summed times and counts: chunks per second of each method,
    rag against bare, and the share of the machine's peak FLOP/s."""
    r: dict[str, Any] = {
        "backend": b,
        "documents": limit,
        "chunks": a["chunks"],
        "tokens": a["tokens"],
        "rag_seconds": round(a["rag_s"], 2),
        "rag_embed_seconds": round(a["embed_s"], 2),
        "rag_chunks_per_s": round(a["chunks"] / a["rag_s"], 2),
        "bare_seconds": round(a["bare_s"], 2),
        "bare_chunks_per_s": round(a["texts"] / a["bare_s"], 2),
        "flops_per_chunk": 2 * MODEL_PARAMS * a["tokens"] / max(a["texts"], 1),
    }
    r["rag_vs_bare"] = round(r["rag_chunks_per_s"] / r["bare_chunks_per_s"], 3)
    r["rag_share_of_peak"] = round(r["flops_per_chunk"] * r["rag_chunks_per_s"] / peak, 4)
    r["bare_share_of_peak"] = round(r["flops_per_chunk"] * r["bare_chunks_per_s"] / peak, 4)
    if a["lc_s"]:
        r.update(
            {
                "langchain_seconds": round(a["lc_s"], 2),
                "langchain_chunks_per_s": round(a["texts"] / a["lc_s"], 2),
                "langchain_tutorial_seconds": round(a["tutorial_s"], 2),
                "langchain_tutorial_chunks": a["tutorial_chunks"],
                "langchain_tutorial_docs_per_s": round(limit / a["tutorial_s"], 2),
            }
        )
    return r


def _print_summary(
    results: list[dict[str, Any]], *, limit: int, rounds: int, load: list[float], peak: float, how: str
) -> None:
    """The table of every backend's rates, against bare encoding, LangChain and torch."""
    lc = next((r for r in results if "langchain_chunks_per_s" in r), None)
    torch_rate = next((r["rag_chunks_per_s"] for r in results if r["backend"] == "torch"), None)
    rows = [
        [
            r["backend"],
            r["chunks"],
            r["rag_chunks_per_s"],
            r["bare_chunks_per_s"],
            f"{r['rag_vs_bare']:.2f}x",
            f"{r['rag_chunks_per_s'] / lc['langchain_chunks_per_s']:.2f}x" if lc else "-",
            f"{(limit / r['rag_seconds']) / lc['langchain_tutorial_docs_per_s']:.2f}x" if lc else "-",
            f"{r['rag_chunks_per_s'] / torch_rate:.2f}x" if torch_rate else "-",
            f"{r['flops_per_chunk'] / 1e9:.2f}",
            f"{100 * r['rag_share_of_peak']:.0f}%",
        ]
        for r in results
    ]
    print(
        f"\nSciFact, first {limit} documents in {rounds} interleaved rounds; load average {min(load):.1f}-"
        f"{max(load):.1f}; peak estimate {peak / 1e9:.0f} GFLOP/s = {how}"
    )
    print_table(
        [
            "backend",
            "chunks",
            "rag chunks/s",
            "bare chunks/s",
            "rag / bare (>= 0.90)",
            "rag / langchain, same chunks",
            "rag / langchain tutorial, per doc",
            "vs torch",
            "GFLOP/chunk",
            "rag % of peak",
        ],
        rows,
    )
    if lc:
        print(
            f"LangChain FAISS.from_documents over the same chunk texts: {lc['langchain_chunks_per_s']} chunks/s; "
            f"tutorial pipeline (its own splitter: {lc['langchain_tutorial_chunks']} chunks): "
            f"{lc['langchain_tutorial_docs_per_s']} docs/s"
        )


# ---------------------------------------------------------------------------------------------
# Peak RSS of indexing at two sizes: each size in a fresh child process


def rss_child(limit: int) -> None:
    from rag.embed import Embedder
    from rag.pipeline import build_index

    embedder = Embedder.load()
    with tempfile.TemporaryDirectory(prefix="bench-rss-") as tmp:
        docs = write_docs(scifact_corpus(limit), Path(tmp) / "docs")
        loaded = peak_rss_mb()
        report = build_index([docs], index_dir=Path(tmp) / "index", embedder=embedder)
    print(
        json.dumps(
            {
                "documents": limit,
                "chunks": report.stats.n_chunks,
                "rss_after_model_load_mb": round(loaded),
                "peak_rss_mb": round(peak_rss_mb()),
            }
        )
    )


def rss(sizes: Sequence[int]) -> None:
    rows = []
    for n in sizes:
        out = subprocess.run(
            [sys.executable, "-m", "bench.ingest", "--rss-child", str(n)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    print_table(
        ["documents", "chunks", "RSS after model load (MiB)", "peak RSS (MiB)"],
        [[r["documents"], r["chunks"], r["rss_after_model_load_mb"], r["peak_rss_mb"]] for r in rows],
    )
    write_result("ingest-rss" + TAG["suffix"], {"results": rows})


# ---------------------------------------------------------------------------------------------
# SciFact nDCG@10 per backend (the whole corpus: about 13k chunks per backend)


def ndcg(backends: Sequence[EmbedBackend]) -> None:
    from eval.datasets import load_beir
    from eval.runner import run_beir
    from rag.embed import Embedder

    dataset = load_beir(str(SCIFACT))
    rows, results = [], []
    for backend in backends:
        query_backend, _, index_backend = backend.partition("@")  # "onnx-int8@torch": torch's index
        work = ROOT / ".cache" / "bench" / f"scifact-{index_backend or query_backend}"
        reuse = ROOT / ".cache" / "eval" / "scifact"
        if (
            (index_backend or query_backend) == "torch"
            and not work.exists()
            and (reuse / "index" / "manifest.json").exists()
        ):
            shutil.copytree(reuse, work, ignore=shutil.ignore_patterns(".lock"))  # vectors are torch's: no re-embed
        if index_backend and not (work / "index" / "manifest.json").exists():
            raise SystemExit(f"{backend}: run --ndcg {index_backend} first (its index is reused)")
        embedder = Embedder.load(backend=query_backend)
        started = time.perf_counter()
        report = run_beir(
            dataset,
            config=RagConfig(embed_backend=cast(EmbedBackend, query_backend)),
            embedder=embedder,
            index_dir=work,
        )
        r = {
            "backend": backend,
            **report["retrieval"],
            "index": report["index"],
            "query_latency_ms": report["latency_ms"],
            "seconds": round(time.perf_counter() - started, 1),
        }
        results.append(r)
        print(json.dumps(r), flush=True)
    base = next((r["ndcg@10"] for r in results if r["backend"] == "torch"), None)
    for r in results:
        rows.append(
            [
                r["backend"],
                r["ndcg@10"],
                r["recall@100"],
                f"{r['ndcg@10'] - base:+.4f} (within 0.005)" if base is not None else "-",
                r["index"].get("chunks_per_s", "-"),
                r["query_latency_ms"]["p50"],
            ]
        )
    print_table(["backend", "nDCG@10", "recall@100", "vs torch", "index chunks/s", "query p50 ms"], rows)
    write_result("ingest-ndcg" + TAG["suffix"], {"results": results})


def seed_qa(backends: Sequence[EmbedBackend]) -> None:
    """The seed question set (answers, citations, abstention) per backend: sentence vectors and
    query vectors both come from the backend, so answer quality is checked too, not just ranking."""
    from eval.datasets import load_qa_dataset
    from eval.runner import run_qa
    from rag.embed import Embedder

    dataset = load_qa_dataset(str(ROOT / "eval" / "data" / "seed_qa.jsonl"), str(ROOT / "seeds"))
    rows, results = [], []
    for backend in backends:
        report = run_qa(
            dataset,
            list(dataset.items),
            config=RagConfig(embed_backend=backend),
            embedder=Embedder.load(backend=backend),
        )
        r = {
            "backend": backend,
            "retrieval": report["retrieval"],
            "answer": report["answer"],
            "citations": report["citations"],
            "abstention": report["abstention"],
        }
        results.append(r)
        rows.append(
            [
                backend,
                r["retrieval"]["mrr"],
                r["answer"]["containment"],
                r["citations"]["precision"],
                r["abstention"]["refused_unanswerable"],
                r["abstention"]["auroc"],
            ]
        )
    print_table(["backend", "mrr", "containment", "citation precision", "refused unanswerable", "auroc"], rows)
    write_result("ingest-seed-qa" + TAG["suffix"], {"results": results})


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__.split("\n\n")[0])
    p.add_argument("--limit", type=int, default=1000, help="SciFact documents to index (default: %(default)s)")
    p.add_argument("--backends", nargs="+", default=["torch"], choices=EMBED_BACKENDS)
    p.add_argument("--rounds", type=int, default=4, help="interleaved rounds the documents are split into")
    p.add_argument("--rss", nargs="+", type=int, metavar="N", help="peak RSS of indexing N documents, per N")
    p.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    p.add_argument(
        "--ndcg",
        nargs="+",
        metavar="BACKEND[@INDEX_BACKEND]",
        help="SciFact nDCG@10 of each backend; Q@I asks with Q on the index built with I",
    )
    p.add_argument("--seed-qa", nargs="+", choices=EMBED_BACKENDS, help="seed question set scores of each backend")
    p.add_argument("--tag", default="", help="suffix of the result file names")
    args = p.parse_args(argv)
    TAG["suffix"] = args.tag
    print(
        f"cpu: {cpu_info()['model']}, load average at start: {Path('/proc/loadavg').read_text().split()[:3]}",
        file=sys.stderr,
    )
    if args.rss_child:
        rss_child(args.rss_child)
    elif args.rss:
        rss(args.rss)
    elif args.ndcg:
        ndcg(args.ndcg)
    elif args.seed_qa:
        seed_qa(args.seed_qa)
    else:
        throughput(args.limit, args.backends, args.rounds)
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
