"""Runs a question set through the same `RAG.ask` a user gets, and scores it.

`run_qa` builds a fresh index over the dataset's documents (with the real `build_index`), asks every
question, and returns a report dict (see `eval/report.py` for the files written from it).
`run_beir` does the same for retrieval-only BEIR data.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from eval.datasets import BeirDataset, QADataset, QAItem, write_documents
from eval.metrics import (
    EvidenceLocator,
    MetricResult,
    Span,
    abstention_metrics,
    answer_metrics,
    beir_metrics,
    citation_precision,
    percentiles,
    retrieval_metrics,
)
from rag.config import RagConfig
from rag.embed import Embedder
from rag.pipeline import RAG, build_index
from rag.store import library_versions
from rag.store.locate import open_store, parse_store

REPORT_KEYS = (
    "dataset",
    "n_questions",
    "n_unanswerable",
    "retrieval",
    "answer",
    "citations",
    "abstention",
    "latency_ms",
    "index",
    "config",
    "versions",
    "per_question",
)


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).resolve().parent
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def run_versions() -> dict[str, str]:
    """What a report's scores depend on besides the code: the libraries, onnxruntime and the CPU's
    int8 dot-product instructions (the int8 embedder and reader run other kernels without them, so
    two machines can score the same rows a little differently), and the commit."""
    return {**library_versions("onnxruntime"), **cpu(), "git_commit": git_commit()}


def cpu() -> dict[str, str]:
    """The CPU's model name and which int8 dot-product instructions it has (Linux; else "unknown")."""
    try:
        info = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {"cpu": "unknown", "int8_dot_product": "unknown"}
    fields: dict[str, str] = {}
    for line in info.splitlines():  # one block per core: the first says it
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    model, flags = fields.get("model name", "unknown"), set(fields.get("flags", "").split())
    found = [f for f in ("amx_int8", "avx512_vnni", "avx_vnni") if f in flags]
    return {"cpu": model, "int8_dot_product": ", ".join(found) or "none"}


@contextmanager
def _folder(path: str | Path | None) -> Iterator[Path]:
    if path is not None:
        Path(path).mkdir(parents=True, exist_ok=True)
        yield Path(path)
    else:
        with tempfile.TemporaryDirectory(prefix="rag-eval-") as tmp:
            yield Path(tmp)


def eval_store(work: Path, store: str, dataset: str) -> str:
    """The store spec an evaluation builds its index in: `faiss` (the default) a folder in the work
    folder, `milvus` a Milvus Lite file there, and a `milvus://HOST:PORT[/PREFIX]` server a
    collection named after the dataset (`PREFIX_<dataset>`, so runs on different sets never mix).
    A server URI is read by `rag.store.locate.parse_store` (BadStore names what is wrong in it).

    Example:
        >>> eval_store(Path("/w"), "milvus", "SQuAD 2.0")
        'milvus:/w/index.db'
        >>> eval_store(Path("/w"), "milvus://db:19530/team", "SQuAD 2.0")
        'http://db:19530/team_squad_2_0'
    """
    if store == "faiss":
        return str(work / "index")
    if store == "milvus":
        return f"milvus:{work / 'index.db'}"
    if not store.startswith(("milvus://", "http://", "https://")):
        raise ValueError(f"--store must be faiss, milvus or milvus://HOST:PORT[/PREFIX], got {store!r}")
    server = parse_store(store)
    name = re.sub(r"[^a-z0-9]+", "_", dataset.lower()).strip("_")
    return str(replace(server, collection=f"{server.collection}_{name}"))


def build_eval_index(
    documents: dict[str, str],
    *,
    work_dir: Path,
    index_dir: str | Path,
    config: RagConfig,
    embedder: Embedder,
    folder: Path | None = None,
) -> dict[str, float]:
    """Index the documents like a user would: the files in `folder` as they are (PDF, DOCX,
    HTML...), or else the texts written out as files in the work folder; return build cost."""
    docs_dir = folder or work_dir / "docs"
    if folder is None and not docs_dir.exists():
        write_documents(documents, docs_dir)
    bar = tqdm(desc="indexing", unit="chunk", disable=None, leave=False)
    started = time.perf_counter()
    report = build_index([docs_dir], index_dir=index_dir, embedder=embedder, config=config, progress=bar.update)
    seconds = time.perf_counter() - started
    bar.close()
    embedded = report.stats.chunks_embedded
    return {
        "seconds": round(seconds, 2),
        "chunks": report.stats.n_chunks,
        "chunks_per_s": round(embedded / seconds, 1) if embedded and seconds else 0.0,
        "reused": embedded == 0,
    }


def _index_cost(cost: dict[str, Any]) -> dict[str, Any]:
    out = {"seconds": cost["seconds"], "chunks_per_s": cost["chunks_per_s"], "chunks": cost["chunks"]}
    if cost["reused"]:  # an index kept with --index-dir: nothing was embedded, so no throughput
        out["reused_index"] = True
    return out


def _score(items: Sequence[QAItem], results: Sequence[dict[str, Any]], documents: dict[str, str]) -> dict[str, Any]:
    """Metrics over one system's per-question results (each: answer JSON + retrieved spans)."""
    relevant, unlocated = _relevant_spans(items, documents)
    retrieved = [[Span(*s) for s in r["retrieved"]] for r in results]
    cited = [[Span(c["source"], c["start"], c["end"]) for c in r["citations"]] for r in results]
    quotes = [[c["quote"] for c in r["citations"]] for r in results]
    golds = [list(item.answers) for item in items]
    answered = [not r["abstained"] for r in results]
    retrieval = retrieval_metrics(retrieved, relevant, ks=(1, 5))
    # Answer quality is scored on the answer the evidence pointed to, before the abstention
    # decision (which the abstention metrics score); `*_strict` counts abstentions as misses.
    candidates = [_strip_markers(r.get("candidate", r["answer"])) for r in results]
    answer = answer_metrics(candidates, golds, [True] * len(results))
    strict = answer_metrics([c if ok else "" for c, ok in zip(candidates, answered)], golds, answered)
    citations = citation_precision(cited, quotes, relevant, golds)
    abstention = abstention_metrics(
        [r["abstained"] for r in results], [item.answerable for item in items], [r["confidence"] for r in results]
    )
    tentative = [bool(r.get("tentative")) for r in results]
    latency = percentiles([r["timings_ms"]["total"] for r in results], ps=(50, 95))
    generation = generation_metrics(results)
    per_question = _per_question(
        items,
        results,
        candidates=candidates,
        tentative=tentative,
        retrieval=retrieval,
        answer=answer,
        citations=citations,
        with_sentences=bool(generation),
        unlocated=unlocated,
    )
    return {
        "retrieval": {k: round(retrieval[k].score, 4) for k in ("hit@1", "hit@5", "mrr")},
        "answer": {
            **{k: round(answer[k].score, 4) for k in ("containment", "f1", "exact_match", "mean_words")},
            "containment_strict": round(strict["containment"].score, 4),
            "f1_strict": round(strict["f1"].score, 4),
        },
        "citations": {"precision": round(citations.score, 4)},
        "abstention": _abstention_summary(abstention, tentative, items),
        "latency_ms": {k: round(v, 1) for k, v in latency.items()},
        "generation": generation,
        "evidence_unlocated": sum(len(texts) for texts in unlocated.values()),
        "per_question": per_question,
    }


def _relevant_spans(
    items: Sequence[QAItem], documents: dict[str, str]
) -> tuple[list[list[Span]], dict[str, list[str]]]:
    """Per item, the document spans its evidence was found at (whitespace-insensitively, offsets
    exact in the loaded text); and, by question id, the evidence texts found nowhere."""
    locator = EvidenceLocator(documents)
    relevant: list[list[Span]] = []
    unlocated: dict[str, list[str]] = {}
    for item in items:
        spans: list[Span] = []
        for evidence in item.evidence:
            found = locator.locate(evidence)
            if not found:
                unlocated.setdefault(item.id, []).append(evidence)
            spans.extend(found)
        relevant.append(spans)
    return relevant, unlocated


def unlocated_evidence(items: Sequence[QAItem], documents: dict[str, str]) -> dict[str, list[str]]:
    """By question id, the evidence texts of `items` found in none of `documents` (source ->
    the text the loader read), whitespace-insensitively: what `rag eval` warns about.

    Example:
        >>> item = QAItem("q1", "Where?", ("Paris",), ("Paris is  in\\nFrance.", "Lyon is in France."))
        >>> unlocated_evidence([item], {"a.html": "Paris is in France."})
        {'q1': ['Lyon is in France.']}
    """
    return _relevant_spans(items, documents)[1]


def _abstention_summary(
    abstention: dict[str, MetricResult], tentative: Sequence[bool], items: Sequence[QAItem]
) -> dict[str, float]:
    """The abstention scores, and the shares of answerable and of unanswerable questions answered "not sure"."""
    # `refused_unanswerable` counts "not sure" answers as refusals (they assert nothing); the
    # tentative shares say how many of each kind got the closest passage instead of a refusal.
    n_answerable = sum(item.answerable for item in items)
    n_unanswerable = len(items) - n_answerable
    split = {
        "tentative_answerable": sum(t for t, item in zip(tentative, items) if item.answerable) / max(n_answerable, 1),
        "tentative_unanswerable": sum(t for t, item in zip(tentative, items) if not item.answerable)
        / max(n_unanswerable, 1),
    }
    return {
        **{
            k: round(abstention[k].score, 4)
            for k in ("refused_unanswerable", "answered_answerable", "balanced_accuracy", "auroc")
        },
        **{k: round(v, 4) for k, v in split.items()},
    }


def _per_question(
    items: Sequence[QAItem],
    results: Sequence[dict[str, Any]],
    *,
    candidates: Sequence[str],
    tentative: Sequence[bool],
    retrieval: dict[str, MetricResult],
    answer: dict[str, MetricResult],
    citations: MetricResult,
    with_sentences: bool,
    unlocated: dict[str, list[str]],
) -> list[dict[str, Any]]:
    """The report's entry per question: what was asked and answered, and the question's own scores."""
    per_question = []
    for i, (item, r) in enumerate(zip(items, results)):
        per_question.append(
            {
                "id": item.id,
                "question": item.question,
                "answers": list(item.answers),
                "answerable": item.answerable,
                "prediction": r["answer"],
                "candidate": candidates[i],
                "abstained": r["abstained"],
                "tentative": tentative[i],
                "confidence": r["confidence"],
                "features": r.get("features", []),
                "hit@5": retrieval["hit@5"].individual_scores[i],
                "rr": retrieval["mrr"].individual_scores[i],
                "containment": answer["containment"].individual_scores[i],
                "f1": answer["f1"].individual_scores[i],
                "citation_precision": citations.individual_scores[i],
                "evidence_unlocated": unlocated.get(item.id, []),
                "retrieved": [
                    {"source": s[0], "start": s[1], "end": s[2], "text": s[3][:300]} for s in r["retrieved_text"]
                ],
                "latency_ms": round(r["timings_ms"]["total"], 1),
                **({"sentences": r["sentences"]} if with_sentences else {}),
            }
        )
    return per_question


def generation_metrics(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """What verification did to generated answers ({} for extractive runs).

    `asked_model`: share of questions the chat model was asked (the others abstained on the
    evidence first); `sentences_per_answer`: sentences the model wrote per asked question;
    `removed_share`: share of those sentences removed as unsupported by their cited passages;
    `answers_with_removal`: share of asked questions that lost at least one sentence;
    `fallback_extractive`: share of asked questions where no sentence survived and the extractive
    answer was shown instead; `generate_ms_p50`: time to write the draft.
    """
    generated = [r for r in results if r.get("generator", "extractive") != "extractive"]
    if not generated:
        return {}
    asked = [r for r in generated if "generate" in r["timings_ms"]]
    sentences = [s for r in asked for s in r.get("sentences", [])]
    removed = [s for s in sentences if not s["supported"]]
    with_removal = [r for r in asked if any(not s["supported"] for s in r.get("sentences", []))]
    fallback = [
        r
        for r in asked
        if r.get("sentences") and not any(s["supported"] for s in r["sentences"]) and not r["abstained"]
    ]
    out = {
        "asked_model": round(len(asked) / len(results), 4),
        "sentences_per_answer": round(len(sentences) / len(asked), 2) if asked else 0.0,
        "removed_share": round(len(removed) / len(sentences), 4) if sentences else 0.0,
        "answers_with_removal": round(len(with_removal) / len(asked), 4) if asked else 0.0,
        "fallback_extractive": round(len(fallback) / len(asked), 4) if asked else 0.0,
    }
    if asked:
        out["generate_ms_p50"] = round(percentiles([r["timings_ms"]["generate"] for r in asked], ps=(50,))["p50"], 1)
    return out


def _strip_markers(text: str) -> str:
    return re.sub(r"\s*\[\d+\]", "", text)


def _ours(rag: RAG, item: QAItem) -> dict[str, Any]:
    answer = rag.ask(item.question)
    out = answer.to_json()
    out["candidate"] = answer.candidate
    out["features"] = [round(f, 4) for f in answer.features]
    out["retrieved"] = [(h.chunk.source, h.chunk.start, h.chunk.end) for h in answer.hits]
    out["retrieved_text"] = [(h.chunk.source, h.chunk.start, h.chunk.end, h.chunk.text) for h in answer.hits]
    return out


def _baseline(baseline: Any, item: QAItem) -> dict[str, Any]:
    out = baseline.ask(item.question)
    out["retrieved"] = [(c["source"], c["start"], c["end"]) for c in out["citations"]]
    out["retrieved_text"] = [(c["source"], c["start"], c["end"], c["passage"]) for c in out["citations"]]
    out["citations"] = out["citations"][:1]  # the answer is the top chunk: that is its one citation
    return out


def run_qa(
    dataset: QADataset,
    items: Sequence[QAItem],
    *,
    config: RagConfig,
    embedder: Embedder,
    index_dir: str | Path | None = None,
    store: str = "faiss",
    baseline: str | None = None,
    ask: Callable[[RAG, QAItem], dict[str, Any]] = _ours,
    compare_scorers: bool = False,
) -> dict[str, Any]:
    """Index `dataset.documents`, ask `items`, and score. Returns the report dict. With
    `compare_scorers`, the questions are asked again with the other answer scorer on the same
    index, and its scores are kept under `report["compare"][scorer]`."""
    with _folder(index_dir) as work:
        spec = eval_store(work, store, dataset.name)
        cost = build_eval_index(
            dataset.documents, work_dir=work, index_dir=spec, config=config, embedder=embedder, folder=dataset.folder
        )
        rag = RAG(open_store(spec, config=config), embedder, config)
        documents = {d.source: doc.text for d in rag.index.documents() if (doc := rag.index.document(d.source))}
        results = [ask(rag, item) for item in tqdm(items, desc=dataset.name, unit="q", disable=None, leave=False)]
        compared: dict[str, Any] = {}
        if compare_scorers:
            other = "heuristic" if config.answer_scorer == "reader" else "reader"
            rag_other = RAG(rag.index, embedder, config.replace(answer_scorer=other))
            other_results = [
                ask(rag_other, item) for item in tqdm(items, desc=other, unit="q", disable=None, leave=False)
            ]
            compared[other] = {
                k: v
                for k, v in _score(items, other_results, documents).items()
                if k not in ("per_question", "evidence_unlocated")
            }
        rag.index.close()
    scored = _score(items, results, documents)
    report: dict[str, Any] = {
        "dataset": dataset.name,
        "n_questions": len(items),
        "n_unanswerable": sum(not item.answerable for item in items),
        **{k: scored[k] for k in ("retrieval", "answer", "citations", "abstention", "latency_ms")},
        **({"generation": scored["generation"]} if scored["generation"] else {}),
        "index": _index_cost(cost),
        "config": {**config.to_dict(), "store": store},
        "versions": {**run_versions(), "dataset_sha256": dataset.source_hash},
        "per_question": scored["per_question"],
    }
    report["retrieval"]["evidence_unlocated"] = scored["evidence_unlocated"]
    if compared:
        report["compare"] = compared
    if baseline == "langchain":
        report["baseline"] = run_langchain_baseline(dataset, items, documents, top_k=config.top_k)
    return report


def run_langchain_baseline(
    dataset: QADataset, items: Sequence[QAItem], documents: dict[str, str], *, top_k: int
) -> dict[str, Any]:
    from eval.baseline import LangChainBaseline

    started = time.perf_counter()
    system = LangChainBaseline.build(dataset.documents, top_k=top_k)
    seconds = time.perf_counter() - started
    results = [_baseline(system, item) for item in tqdm(items, desc="langchain", unit="q", disable=None, leave=False)]
    scored = _score(items, results, dataset.documents)
    scored.pop("per_question")
    scored["index"] = {
        "seconds": round(seconds, 2),
        "chunks_per_s": round(system.n_chunks / seconds, 1),
        "chunks": system.n_chunks,
    }
    scored["name"] = "langchain: RecursiveCharacterTextSplitter 1000/200 + FAISS, top chunk"
    return scored


# ---------------------------------------------------------------------------------------------
# BEIR (retrieval only)


def beir_documents(dataset: BeirDataset) -> dict[str, str]:
    """One file per corpus document: `<id>.txt` holding the title, a blank line and the text."""
    return {
        f"{doc_id}.txt": (f"{title}\n\n{text}" if title else text) for doc_id, (title, text) in dataset.corpus.items()
    }


def run_beir(
    dataset: BeirDataset,
    *,
    config: RagConfig,
    embedder: Embedder,
    index_dir: str | Path | None = None,
    store: str = "faiss",
    baseline: str | None = None,
    depth: int = 100,
    compare_scorers: bool = False,
) -> dict[str, Any]:
    from rag.reader import Reader
    from rag.rerank import read_and_rerank
    from rag.retrieve import search

    # The reader reorders the top hits, as in `ask`, when it is the configured scorer.
    reader = Reader.load() if config.answer_scorer == "reader" and config.rerank else None
    documents = beir_documents(dataset)
    with _folder(index_dir) as work:
        spec = eval_store(work, store, dataset.name)
        cost = build_eval_index(documents, work_dir=work, index_dir=spec, config=config, embedder=embedder)
        index = open_store(spec, config=config)
        run: dict[str, dict[str, float]] = {}
        fused_run: dict[str, dict[str, float]] = {}  # before the reader reorders (the heuristic scorer's)
        latencies = []
        for qid, query in tqdm(dataset.queries.items(), desc=dataset.name, unit="q", disable=None, leave=False):
            t0 = time.perf_counter()
            vector = embedder.encode_queries([query])[0]
            hits = search(index, query, vector, config=config, top_k=depth * 3)
            if compare_scorers:
                fused_run[qid] = _doc_run(((h.chunk.source, h.score) for h in hits), depth)
            if reader is not None:
                hits = read_and_rerank(query, vector, hits, index, reader, config=config)[0]
            latencies.append((time.perf_counter() - t0) * 1000)
            run[qid] = _doc_run(((h.chunk.source, h.score) for h in hits), depth)
        index.close()
    scores = beir_metrics(run, dataset.qrels)
    report: dict[str, Any] = {
        "dataset": dataset.name,
        "n_questions": len(dataset.queries),
        "n_unanswerable": 0,
        "retrieval": {k: round(scores[k].score, 4) for k in ("ndcg@10", "recall@100")},
        "answer": {},
        "citations": {},
        "abstention": {},
        "latency_ms": {k: round(v, 1) for k, v in percentiles(latencies, ps=(50, 95)).items()},
        "index": _index_cost(cost),
        "config": {**config.to_dict(), "store": store},
        "versions": {**run_versions(), "dataset_sha256": dataset.source_hash},
        "per_question": [
            {
                "id": qid,
                "question": dataset.queries[qid],
                "ndcg@10": scores["ndcg@10"].individual_scores[i],
                "retrieved": [{"source": d, "score": s} for d, s in list(run.get(qid, {}).items())[:5]],
            }
            for i, qid in enumerate(dataset.qrels)
        ],
    }
    if compare_scorers and reader is not None:
        fused = beir_metrics(fused_run, dataset.qrels)
        report["compare"] = {
            "heuristic": {"retrieval": {k: round(fused[k].score, 4) for k in ("ndcg@10", "recall@100")}}
        }
    if baseline == "langchain":
        report["baseline"] = run_beir_langchain(dataset, documents, depth=depth)
    return report


def _doc_run(scored_sources: Any, depth: int) -> dict[str, float]:
    """Chunk hits -> document scores: a document ranks where its best chunk ranks."""
    out: dict[str, float] = {}
    rank = 0
    for source, _ in scored_sources:
        doc_id = source.rsplit("/", 1)[-1].removesuffix(".txt")
        if doc_id not in out:
            out[doc_id] = float(depth * 10 - rank)  # decreasing scores keep the fused order
            rank += 1
            if len(out) >= depth:
                break
    return out


def run_beir_langchain(dataset: BeirDataset, documents: dict[str, str], *, depth: int) -> dict[str, Any]:
    from eval.baseline import LangChainBaseline

    started = time.perf_counter()
    system = LangChainBaseline.build(documents, top_k=depth * 3)
    seconds = time.perf_counter() - started
    run = {}
    for qid, query in tqdm(dataset.queries.items(), desc="langchain", unit="q", disable=None, leave=False):
        out = system.ask(query)
        run[qid] = _doc_run(((c["source"], c["score"]) for c in out["citations"]), depth)
    scores = beir_metrics(run, dataset.qrels)
    return {
        "name": "langchain: RecursiveCharacterTextSplitter 1000/200 + FAISS",
        "retrieval": {k: round(scores[k].score, 4) for k in ("ndcg@10", "recall@100")},
        "index": {
            "seconds": round(seconds, 2),
            "chunks_per_s": round(system.n_chunks / seconds, 1),
            "chunks": system.n_chunks,
        },
    }
