"""What lexical matching shares at index and query time: one tokenisation (bm25s's tokenizer, lower
case, English stop words removed, Snowball-stemmed) and one IDF formula (BM25's, as bm25s's default
"lucene" scoring computes it).

The BM25 build (rag/bm25_build.py), BM25 search (rag/retrieve.py) and the answer and verification
stages' term overlap all use these, so a term means the same everywhere. Imports no other rag module.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


def _tokenize(texts: list[str], *, return_ids: bool) -> Any:
    import bm25s

    return bm25s.tokenize(texts, stopwords="en", stemmer=_stemmer(), show_progress=False, return_ids=return_ids)


def stop_words() -> frozenset[str]:
    """The English stop words the tokenisation removes (bm25s's "en" list).

    Example:
        >>> {"the", "in", "of"} <= stop_words()
        True
    """
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


def bm25_tokenize(texts: list[str]) -> Any:
    """The texts as a `bm25s.tokenization.Tokenized` (term ids per text and the vocabulary), what
    a BM25 index is built from."""
    return _tokenize(texts, return_ids=True)


def stem_terms(texts: list[str]) -> list[list[str]]:
    """The BM25 terms of each text (lower case, stop words out, stemmed), for queries and overlap.

    Example:
        >>> stem_terms(["The cats were running", "of the"])
        [['cat', 'were', 'run'], []]
    """
    return _tokenize(texts, return_ids=False)


def idf(n_docs: int, df: int) -> float:
    """BM25 inverse document frequency of a term found in `df` of `n_docs` documents: rarer terms
    weigh more, a term in no document weighs most (bm25s's "lucene" formula).

    Example:
        >>> round(idf(10, 0), 4)
        3.091
        >>> idf(10, 1) > idf(10, 5) > idf(10, 10) > 0
        True
    """
    return math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))
