"""What every benchmark shares: the machine's description, percentiles, tables, result files and
the seeded synthetic corpus (text and vectors) used for sizes the real model cannot embed in time.

Every figure a script prints is a ratio or a percentile measured within that one run: the machine
is shared, so absolute times move with the load (recorded in each result as `load_avg`).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import resource
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eval.datasets import SHARED_DATASETS
from eval.metrics import percentiles  # noqa: F401  (the benchmarks report latency with it)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
SCIFACT = SHARED_DATASETS / "scifact"
SEED_DIR = ROOT / "seeds"
MODEL_PARAMS = 22_700_000  # all-MiniLM-L6-v2 (~22.7M parameters)


# ---------------------------------------------------------------------------------------------
# The machine


def cpu_info() -> dict[str, Any]:
    """Model name, cores, clock and the vector units /proc/cpuinfo reports."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""

    def field(name: str) -> str:
        return next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith(name)), "")

    flags = set(field("flags").split())
    return {
        "model": field("model name") or platform.processor(),
        "vendor": field("vendor_id"),
        "family": field("cpu family"),
        "cores": os.cpu_count() or 1,
        "mhz": float(field("cpu MHz") or 0.0),
        "vector_units": sorted(
            f for f in flags if f in {"avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16"}
        ),
    }


def peak_flops(info: dict[str, Any] | None = None) -> tuple[float, str]:
    """An estimate of the CPU's peak float32 FLOP/s and how it was made.

    cores x clock x FLOPs per cycle, where FLOPs per cycle is 2 (FMA) x float32 lanes x FMA pipes:
    AVX-512 on AMD Zen 4 runs 512-bit FMAs as two 256-bit halves on its 2 FMA pipes (32/cycle);
    Intel server cores with two 512-bit FMA units do 64; AVX2 with FMA, 2 pipes of 8 lanes: 32.
    """
    info = info or cpu_info()
    units = set(info["vector_units"])
    if "avx512f" in units and info["vendor"] == "AuthenticAMD":
        per_cycle, how = 32, "AVX-512 on Zen 4: 2 FMA pipes x 8 fp32 lanes (512-bit ops double-pumped) x 2"
    elif "avx512f" in units:
        per_cycle, how = 64, "AVX-512: 2 FMA units x 16 fp32 lanes x 2"
    elif {"avx2", "fma"} <= units:
        per_cycle, how = 32, "AVX2: 2 FMA units x 8 fp32 lanes x 2"
    else:
        per_cycle, how = 8, "SSE: 4 fp32 lanes x 2 (no FMA)"
    peak = info["cores"] * info["mhz"] * 1e6 * per_cycle
    return peak, f"{info['cores']} cores x {info['mhz'] / 1000:.2f} GHz x {per_cycle} FLOP/cycle ({how})"


def machine() -> dict[str, Any]:
    from rag.store import library_versions

    return {
        "cpu": cpu_info(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "versions": library_versions(),
    }


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident memory of this process (or its finished children) so far, in MiB."""
    return resource.getrusage(who).ru_maxrss / 1024


# ---------------------------------------------------------------------------------------------
# Numbers and output


def rag_command() -> list[str]:
    """The installed `rag` script next to this interpreter, or `python -m rag.cli`."""
    script = Path(sys.executable).with_name("rag")
    return [str(script)] if script.exists() else [sys.executable, "-m", "rag.cli"]


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Print (and return) a GitHub markdown table."""
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in cells]
    lines.insert(1, "| " + " | ".join("-" * w for w in widths) + " |")
    out = "\n".join(lines)
    print(out, flush=True)
    return out


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def write_result(name: str, payload: dict[str, Any]) -> Path:
    """Write `bench/results/<name>.json` (with the time and the machine) and return its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {
        "benchmark": name,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        **payload,
    }
    path.write_text(json.dumps(payload, indent=1, default=float) + "\n", encoding="utf-8")
    print(f"wrote {path}")
    return path


def scifact_corpus(limit: int | None = None) -> dict[str, str]:
    """SciFact documents as the evaluation writes them (`<id>.txt`: title, blank line, text),
    the first `limit` in corpus order."""
    out: dict[str, str] = {}
    with open(SCIFACT / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            if limit is not None and len(out) >= limit:
                break
            row = json.loads(line)
            title, text = row.get("title", ""), row.get("text", "")
            out[f"{row['_id']}.txt"] = f"{title}\n\n{text}" if title else text
    return out


# ---------------------------------------------------------------------------------------------
# Synthetic corpus: text sampled from SciFact's word frequencies, clustered unit vectors


def synthetic_vectors(n: int, dim: int = 384, *, seed: int = 0, topics: int | None = None) -> np.ndarray:
    """`n` seeded unit vectors in `dim` dimensions, clustered in two levels (topics, then
    subtopics, then points) so that, as with real embeddings, near neighbours are much closer
    than random pairs. The same (n, seed) gives the same vectors."""
    return SyntheticSpace(dim, seed=seed, topics=topics or max(n // 100, 200)).sample(n, seed=seed + 1)


class SyntheticSpace:
    """A seeded two-level cluster structure on the unit sphere; `sample` draws points near it."""

    def __init__(self, dim: int = 384, *, seed: int = 0, topics: int = 10_000) -> None:
        rng = np.random.default_rng(seed)
        top = _unit(rng.standard_normal((max(topics // 50, 20), dim), dtype=np.float32))
        self.centres = _unit(
            top[rng.integers(0, len(top), topics)]
            + 0.7 * rng.standard_normal((topics, dim), dtype=np.float32) / np.sqrt(dim)
        )
        self.dim = dim

    def sample(self, n: int, *, seed: int, topic: np.ndarray | None = None) -> np.ndarray:
        rng = np.random.default_rng(seed)
        topic = rng.integers(0, len(self.centres), n) if topic is None else topic
        noise = 0.8 * rng.standard_normal((n, self.dim), dtype=np.float32) / np.sqrt(self.dim)
        return _unit(self.centres[topic] + noise)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def word_frequencies(limit_docs: int = 2000) -> tuple[list[str], np.ndarray]:
    """Words of the first SciFact documents and their probabilities (the text generator's unigrams)."""
    counts: Counter[str] = Counter()
    for text in scifact_corpus(limit_docs).values():
        counts.update(w.strip(".,;:()[]\"'") for w in text.split())
    words = [w for w, _ in counts.most_common() if w]
    p = np.array([counts[w] for w in words], dtype=np.float64)
    return words, p / p.sum()


class SyntheticCorpus:
    """Seeded synthetic documents: sentences of 10-30 words drawn from SciFact's unigram
    frequencies, `sentences_per_doc` sentences a document (about 10 chunks at the default
    chunking). Document i is the same text on every run."""

    def __init__(self, *, seed: int = 0, sentences_per_doc: int = 30) -> None:
        self.words, self.p = word_frequencies()
        self.seed = seed
        self.sentences_per_doc = sentences_per_doc

    def document(self, i: int) -> str:
        rng = np.random.default_rng([self.seed, i])
        lengths = rng.integers(10, 31, self.sentences_per_doc)
        ids = rng.choice(len(self.words), size=int(lengths.sum()), p=self.p)
        out, k = [], 0
        for n in lengths:
            sentence = " ".join(self.words[j] for j in ids[k : k + n])
            out.append(sentence[:1].upper() + sentence[1:] + ".")
            k += n
        return " ".join(out)

    def documents(self, n: int) -> Iterator[Any]:
        from rag.types import Document

        for i in range(n):
            text = self.document(i)
            yield Document(f"synthetic/{i:07d}.txt", text, hashlib.sha256(text.encode()).hexdigest())

    def queries(self, n: int, *, n_docs: int) -> list[str]:
        """Questions made of 4-8 words of a random sentence of a random document."""
        rng = np.random.default_rng([self.seed, 10**9])
        out = []
        for _ in range(n):
            sentences = self.document(int(rng.integers(0, n_docs))).split(". ")
            words = sentences[int(rng.integers(0, len(sentences)))].rstrip(".").split()
            lo = int(rng.integers(0, max(len(words) - 8, 1)))
            out.append("What " + " ".join(words[lo : lo + int(rng.integers(4, 9))]) + "?")
        return out


class SyntheticEmbedder:
    """Stands in for `rag.embed.Embedder` at sizes the real model cannot embed in the time: the
    real tokenizer (so chunking is real), vectors from a `SyntheticSpace` seeded by each chunk's
    text, and sentence vectors near their chunk's."""

    name = "synthetic"
    dim = 384

    def __init__(self, *, seed: int = 0, topics: int = 10_000) -> None:
        from rag.embed import load_tokenizer

        self.tokenizer = load_tokenizer()
        self.space = SyntheticSpace(self.dim, seed=seed, topics=topics)
        self.calls = 0

    def _seed(self, text: str) -> int:
        return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")

    def encode_chunks(
        self, chunks: Sequence[Any], *, batch_size: int = 32, progress: Any = None
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        vectors = np.empty((len(chunks), self.dim), dtype=np.float32)
        sentences = []
        for k, chunk in enumerate(chunks):
            s = self._seed(chunk.text)
            vectors[k] = self.space.sample(1, seed=s)[0]
            noise = np.random.default_rng(s + 1).standard_normal((len(chunk.sentences), self.dim), dtype=np.float32)
            sentences.append(_unit(vectors[k] + 0.6 * noise / np.sqrt(self.dim)))
        self.calls += len(chunks)
        if progress:
            progress(len(chunks))
        return vectors, sentences

    def query_vectors(self, n: int, *, seed: int = 12345) -> np.ndarray:
        """Query vectors drawn from the same space as the chunks (none equal to a chunk's)."""
        return self.space.sample(n, seed=seed)
