"""Which chat questions lean on the previous one, and the retrieval query for them.

A question is a follow-up, and is searched together with the previous question, only when it
needs it; its length alone does not count. It needs it when it is:

- an ellipsis: it opens with "What about", "How about" or "And", or is made only of question
  and filler words ("Why?", "How so?", "Who else?", "Tell me more", "More details");
- or it holds a pointer back (it/its/they/them/their/he/him/his/she/her/this/these/those,
  "the same", "that" as a demonstrative, "there" ending the question) with no candidate
  antecedent before it in the question itself. A candidate is a capitalised word that is not
  the first word of a sentence, or a word in double quotes; so "Does North Korea deny it?"
  stands on its own. A common noun is no candidate ("How many soldiers does it have?").

"that" is a demonstrative when only question words and auxiliaries come before it ("Is that
true?", "What did that mean?") or it ends the question ("Who said that?"); otherwise it is a
conjunction ("Which paper reported that ..."). An expletive "it" points at nothing: "it" before
"(is) true/possible/likely/known/clear/the case that/whether/to" or before "take/seem/appear"
with a later "to/that" clause ("How long does it take to reach Kursk?").

    >>> needs_context("Who is Kurt Campbell?"), needs_context("What is the article about?")
    (False, False)
    >>> needs_context("What about China?"), needs_context("Why?"), needs_context("Tell me more")
    (True, True, True)
    >>> needs_context("What did he warn?"), needs_context("How many soldiers does it have?")
    (True, True)
    >>> needs_context("What did Blinken say about his meeting?"), needs_context("Does North Korea deny it?")
    (False, False)
    >>> needs_context('What is "trench clearing" and who does it?'), needs_context("What is the same for China?")
    (False, True)
    >>> needs_context("Is that true?"), needs_context("Which newspaper reported that China met US officials?")
    (True, False)
    >>> needs_context("Is it true that North Korea sent troops?"), needs_context("How long did it take?")
    (False, True)
    >>> needs_context("Who else is there?"), needs_context("Are there troops in Kursk?")
    (True, False)
"""

from __future__ import annotations

import re
from collections.abc import Sequence

Turn = tuple[str, str]  # (user question, assistant answer)

_OPENER = re.compile(r"^\W*(?:(?:what|how)\s+about|and)\b", re.I)
_QUESTION_WORDS = {"what", "why", "how", "when", "where", "who", "whom", "whose", "which"}
_AUXILIARIES = {
    "is",
    "was",
    "are",
    "were",
    "do",
    "does",
    "did",
    "can",
    "could",
    "will",
    "would",
    "should",
    "has",
    "have",
    "had",
    "and",
    "but",
    "so",
}
# Words a fragment like "Why not?", "Who else?" or "Tell me more" is made of.
_FRAGMENT = _QUESTION_WORDS | {
    "and",
    "but",
    "so",
    "else",
    "not",
    "more",
    "details",
    "detail",
    "really",
    "exactly",
    "then",
    "come",
    "many",
    "much",
    "long",
    "often",
    "tell",
    "me",
    "us",
    "any",
    "anything",
    "anyone",
    "other",
    "others",
    "please",
    "ok",
    "okay",
    "since",
    "until",
}
_POINTERS = {
    "it",
    "its",
    "itself",
    "they",
    "them",
    "their",
    "theirs",
    "themselves",
    "he",
    "him",
    "his",
    "himself",
    "she",
    "her",
    "hers",
    "herself",
    "this",
    "these",
    "those",
}
_EXPLETIVE_IT = re.compile(
    r"\bit\b(?=(?:\s+(?:is|was|be)|['’]s)?\s+(?:true|false|possible|likely|unlikely|known|clear|the\s+case)\s+"
    r"(?:that|whether|to|if)\b|\s+(?:takes?|took|seems?|seemed|appears?|appeared)\b.*\b(?:to|that)\s+\w)",
    re.I,
)
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?")
_QUOTED = re.compile(r'"[^"]+"|“[^”]+”')


def needs_context(question: str) -> bool:
    """Whether `question` leans on an earlier turn (an ellipsis, or a pointer with nothing before
    it in the question to point at). The rules are in the module docstring."""
    if _OPENER.search(question):
        return True
    text = _EXPLETIVE_IT.sub(" ", question)
    quoted = [m.span() for m in _QUOTED.finditer(text)]
    words = list(_WORD.finditer(text))
    bases = [re.split(r"['’]", m.group())[0].lower() for m in words]
    if bases and all(b in _FRAGMENT for b in bases):
        return True
    for i, (match, base) in enumerate(zip(words, bases)):
        if any(start <= match.start() < end for start, end in quoted):
            return False  # a quoted name: what follows may point at it
        if _is_pointer(bases, i):
            return True
        sentence_start = i == 0 or re.search(r"[.!?:;]", text[words[i - 1].end() : match.start()])
        if match.group()[0].isupper() and not sentence_start and base not in _FRAGMENT | {"i"}:
            return False  # a name comes first: a later pronoun may refer to it
    return False


def _is_pointer(bases: list[str], i: int) -> bool:
    word, last = bases[i], i == len(bases) - 1
    if word in _POINTERS:
        return True
    if word == "same":
        return i > 0 and bases[i - 1] == "the"
    if word == "that":
        return last or all(b in _QUESTION_WORDS | _AUXILIARIES for b in bases[:i])
    return word == "there" and last and i > 0


def condense_query(question: str, history: Sequence[Turn] = ()) -> str:
    """The retrieval query for a question asked after `history` ((question, answer) pairs).

    A follow-up (`needs_context`) is searched together with the previous question, so retrieval
    sees the conversation's topic; a self-contained question is searched as it is.

    Example:
        >>> previous = [("What did Blinken warn?", "...")]
        >>> condense_query("What about China?", previous)
        'What did Blinken warn? What about China?'
        >>> condense_query("Who is Kurt Campbell?", previous)
        'Who is Kurt Campbell?'
        >>> condense_query("What about China?")
        'What about China?'
    """
    if not history or not needs_context(question):
        return question
    previous = history[-1][0].strip()
    return f"{previous} {question}" if previous else question
