"""The trained claim checker: how likely a quote, read in its context, supports a claim.

A cross-encoder fine-tuned from all-MiniLM-L6-v2 (`python -m eval.train_checker`, model card in
`rag/models/checker/README.md`), the reader's shape (`rag.reader.Reader` runs it) with the claim in
the question's place:

    [CLS] claim [SEP] previous sentence [unused0] quote [unused1] next sentence [SEP]

A claim is a generated sentence, or a short answer read after its question (`checked_text`).
`rag.verify` chooses each claim's best quote with its feature-based support score, then asks the
checker about that quote and combines the two (`combine`, weights fitted by `python -m eval.support`):
the features see invented words, the checker sees a wrong relation between words the passage does
hold ("the Deputy Secretary is Blinken" from a passage naming both). A fragment is also judged by the
reader (`rag.reader`): how likely the sentence that holds it answers the question (`fragment_logit`),
which catches another answer taken from the same passage.

Example:
    >>> checker = load_checker()  # doctest: +SKIP
    >>> checker.pair_logits([("Ann won.", Candidate("", "Ann won the race.", ""))])  # doctest: +SKIP
    array([4.1], dtype=float32)
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

from rag.numeric import sigmoid
from rag.reader import Candidate, Reader
from rag.types import Hit

CHECKER_DIR = Path(__file__).resolve().parent / "models" / "checker"
# The combination's inputs, in the order of its weights (rag/fitted.json, `checker`); `reader_logit`
# is 0 for a statement.
CHECKER_FEATURES = ("bias", "support_logit", "checker_logit", "reader_logit")
# The reader's logit for a fragment that no sentence of the passage holds.
ABSENT_LOGIT = -10.0
_WORDS = re.compile(r"\w+")


def load_checker() -> Reader:
    """The checker shipped with the package (loaded once). Raises `rag.reader.ReaderUnavailable`
    naming the missing file."""
    return Reader.load(CHECKER_DIR)


def checked_text(claim: str, question: str | None) -> str:
    """What the checker reads as the claim: a fragment after its question, a statement alone.

    Example:
        >>> checked_text("8,000", "How many troops arrived?"), checked_text("Troops arrived.", None)
        ('How many troops arrived? 8,000', 'Troops arrived.')
    """
    return f"{question} {claim}" if question else claim


def quote_in_context(hit: Hit, start: int, end: int) -> Candidate:
    """The quote `start`..`end` (document offsets, whole sentences of `hit`'s chunk) with the
    sentence before and after it in the chunk as context."""
    chunk = hit.chunk

    def text(a: int, b: int) -> str:
        return chunk.text[a - chunk.start : b - chunk.start]

    before = [s for s in chunk.sentences if s[1] <= start]
    after = [s for s in chunk.sentences if s[0] >= end]
    return Candidate(
        text(*before[-1]) if before else "",
        text(start, end),
        text(*after[0]) if after else "",
    )


def holds(sentence: str, fragment: str) -> bool:
    """Whether every word of `fragment` occurs in `sentence` (case-insensitive).

    Example:
        >>> holds("Up to 8,000 soldiers arrived in Kursk.", "8,000 soldiers")
        True
    """
    words = set(_WORDS.findall(sentence.lower()))
    wanted = _WORDS.findall(fragment.lower())
    return bool(wanted) and all(w in words for w in wanted)


def fragment_logit(question: str, fragment: str, hit: Hit, reader: Reader) -> float:
    """The reader's best logit, for `question`, over the sentences of `hit`'s chunk that hold
    `fragment` (each read in its context); `ABSENT_LOGIT` when none does."""
    chunk = hit.chunk
    holding = [(a, b) for a, b in chunk.sentences if holds(chunk.text[a - chunk.start : b - chunk.start], fragment)]
    if not holding:
        return ABSENT_LOGIT
    return float(reader.logits(question, [quote_in_context(hit, a, b) for a, b in holding]).max())


def combine(support: float, logits: Sequence[float], weights: Sequence[float]) -> float:
    """The checked support in [0, 1]: a logistic over the feature-based `support` (as a logit),
    the checker's logit and the reader's (`logits`), under `weights` (`CHECKER_FEATURES` order).

    Example:
        >>> round(combine(0.5, (2.0, 0.0), (0.0, 1.0, 1.0, 1.0)), 3)
        0.881
    """
    if len(weights) != len(CHECKER_FEATURES):
        raise ValueError(
            f"checker weights must have {len(CHECKER_FEATURES)} values ({', '.join(CHECKER_FEATURES)}), "
            f"got {len(weights)}"
        )
    p = min(max(support, 1e-6), 1 - 1e-6)
    inputs = (1.0, math.log(p / (1 - p)), *logits)
    return float(sigmoid(float(sum(w * x for w, x in zip(weights, inputs)))))
