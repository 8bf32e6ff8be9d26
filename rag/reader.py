"""The trained reader: how likely a sentence, read in its context, answers a question.

A cross-encoder fine-tuned from all-MiniLM-L6-v2 (`python -m eval.train_reader`, model card in
`rag/models/reader/README.md`). One input per candidate sentence:

    [CLS] question [SEP] previous sentence [unused0] candidate [unused1] next sentence [SEP]

The question has segment id 0, the rest 1; the two marker tokens bracket the candidate, so the
neighbours are read as context, not judged. The output is one logit; its sigmoid is the
probability that the candidate holds the answer. It runs through ONNX Runtime from the int8 file
shipped as package data (no torch at question time).

Example:
    >>> reader = Reader.load()  # doctest: +SKIP
    >>> reader.score("Who won?", [Candidate("", "Ann won the race.", "")])  # doctest: +SKIP
    array([0.97], dtype=float32)
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from rag.numeric import sigmoid

MODEL_DIR = Path(__file__).resolve().parent / "models" / "reader"
ONNX_FILE = "reader.int8.onnx"
# Token budgets (word pieces): question, candidate sentence, and the whole input.
QUESTION_TOKENS = 40
SENTENCE_TOKENS = 56
MAX_TOKENS = 112
CLS, SEP, PAD, MARK_START, MARK_END = 101, 102, 0, 1, 2  # BERT uncased ids; [unused0], [unused1]


@dataclass(frozen=True)
class Candidate:
    """A sentence to judge with the text just before and after it in its document."""

    before: str
    sentence: str
    after: str


class ReaderUnavailable(RuntimeError):
    """The reader's model file is missing (not trained or not installed)."""


def assemble(
    question: Sequence[int],
    before: Sequence[int],
    sentence: Sequence[int],
    after: Sequence[int],
    *,
    max_tokens: int = MAX_TOKENS,
    question_tokens: int = QUESTION_TOKENS,
    sentence_tokens: int = SENTENCE_TOKENS,
) -> tuple[list[int], list[int]]:
    """Input ids and segment ids for one candidate, from word-piece ids without special tokens.

    The question and sentence are cut to their budgets (`question_tokens`, `sentence_tokens`); the
    context takes what is left, split evenly, the previous sentence keeping its end and the next one its start.

    Example:
        >>> ids, types = assemble([7], [8, 9], [10], [11, 12], max_tokens=9)
        >>> ids
        [101, 7, 102, 9, 1, 10, 2, 11, 102]
        >>> types
        [0, 0, 0, 1, 1, 1, 1, 1, 1]
    """
    q = list(question[:question_tokens])
    s = list(sentence[:sentence_tokens])
    room = max(max_tokens - len(q) - len(s) - 5, 0)
    n_after = min(len(after), max(room // 2, room - len(before)))
    n_before = min(len(before), room - n_after)
    head = [CLS, *q, SEP]
    tail = [*(before[len(before) - n_before :] if n_before else []), MARK_START, *s, MARK_END, *after[:n_after], SEP]
    return head + tail, [0] * len(head) + [1] * len(tail)


def pad_batch(rows: Sequence[tuple[list[int], list[int]]]) -> dict[str, np.ndarray]:
    """Stack (ids, segment ids) rows into padded int64 arrays with an attention mask."""
    width = max((len(ids) for ids, _ in rows), default=0)
    ids = np.full((len(rows), width), PAD, dtype=np.int64)
    types = np.zeros((len(rows), width), dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, (row_ids, row_types) in enumerate(rows):
        ids[i, : len(row_ids)] = row_ids
        types[i, : len(row_types)] = row_types
        mask[i, : len(row_ids)] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


class WordPieces:
    """The reader's tokenizer (`tokenizer.json` beside the model): text to word-piece ids."""

    def __init__(self, path: Path) -> None:
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(path))
        self._tok.no_truncation()
        self._tok.no_padding()

    def ids(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self._tok.encode_batch(list(texts), add_special_tokens=False)] if texts else []


def encode_candidates(
    pieces: WordPieces,
    question: str,
    candidates: Sequence[Candidate],
    *,
    max_tokens: int = MAX_TOKENS,
    question_tokens: int = QUESTION_TOKENS,
    sentence_tokens: int = SENTENCE_TOKENS,
) -> list[tuple[list[int], list[int]]]:
    """The model inputs for `candidates` (each distinct text tokenised once)."""
    texts = list(dict.fromkeys([question, *(t for c in candidates for t in (c.before, c.sentence, c.after))]))
    ids = dict(zip(texts, pieces.ids(texts)))
    budgets = {"max_tokens": max_tokens, "question_tokens": question_tokens, "sentence_tokens": sentence_tokens}
    return [assemble(ids[question], ids[c.before], ids[c.sentence], ids[c.after], **budgets) for c in candidates]


class Reader:
    """The reader model loaded once; `score` is thread-safe (ONNX Runtime sessions are)."""

    def __init__(self, session: Any, pieces: WordPieces, meta: dict[str, Any]) -> None:
        self.session = session
        self.pieces = pieces
        self.meta = meta
        self.max_tokens = int(meta.get("max_tokens", MAX_TOKENS))
        # The budgets it was trained with (a model trained on longer questions, e.g. the claim
        # checker's claims, records its own).
        self.question_tokens = int(meta.get("question_tokens", QUESTION_TOKENS))
        self.sentence_tokens = int(meta.get("sentence_tokens", SENTENCE_TOKENS))

    @classmethod
    def load(cls, model_dir: str | os.PathLike[str] | None = None) -> Reader:
        """The reader in `model_dir` (default: the one shipped in the package). Raises
        ReaderUnavailable naming the missing file."""
        return _load(str(Path(model_dir) if model_dir else MODEL_DIR))

    @staticmethod
    def forget_loaded() -> None:
        """Drop the readers loaded so far, so the next `load` reads the files again (training
        writes new ones into a folder that may have been loaded before)."""
        _load.cache_clear()

    def logits(
        self, question: str, candidates: Sequence[Candidate], *, batch_size: int = 32, max_tokens: int = 0
    ) -> np.ndarray:
        """One logit per candidate; `max_tokens` cuts each input shorter than the reader's own length."""
        rows = encode_candidates(
            self.pieces,
            question,
            candidates,
            max_tokens=max_tokens or self.max_tokens,
            question_tokens=self.question_tokens,
            sentence_tokens=self.sentence_tokens,
        )
        return self._run(rows, batch_size)

    def pair_logits(self, pairs: Sequence[tuple[str, Candidate]], *, batch_size: int = 32) -> np.ndarray:
        """One logit per (question, candidate) pair: many questions, each with its own candidate."""
        rows = [
            row
            for question, candidate in pairs
            for row in encode_candidates(
                self.pieces,
                question,
                [candidate],
                max_tokens=self.max_tokens,
                question_tokens=self.question_tokens,
                sentence_tokens=self.sentence_tokens,
            )
        ]
        return self._run(rows, batch_size)

    def _run(self, rows: Sequence[tuple[list[int], list[int]]], batch_size: int) -> np.ndarray:
        """The model's logits for encoded inputs, `batch_size` at a time."""
        out = [
            self.session.run(["logits"], pad_batch(rows[i : i + batch_size]))[0].reshape(-1)
            for i in range(0, len(rows), batch_size)
        ]
        return np.concatenate(out).astype(np.float32) if out else np.zeros(0, dtype=np.float32)

    def score(self, question: str, candidates: Sequence[Candidate], *, batch_size: int = 32) -> np.ndarray:
        """The probability, per candidate, that it answers `question` (same order)."""
        return sigmoid(self.logits(question, candidates, batch_size=batch_size))


@lru_cache(maxsize=4)
def _load(model_dir: str) -> Reader:
    folder = Path(model_dir)
    model, tokenizer = folder / ONNX_FILE, folder / "tokenizer.json"
    for path in (model, tokenizer):
        if not path.is_file():
            raise ReaderUnavailable(
                f"reader model file {path} is missing: train it with "
                "`python -m eval.train_reader` or use --answer-scorer heuristic"
            )
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = min(2, os.cpu_count() or 1)
    session = onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    meta_path = folder / "reader.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    return Reader(session, WordPieces(tokenizer), meta)
