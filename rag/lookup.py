"""Questions that ask who or what a name is: "Who is Kurt Campbell?", "What is AUKUS?".

Such a question is short and its words are a name: its vector is far from any passage's, so the
confidence fitted on longer questions refuses it even when the reader picks the sentence that says
who the person is (the seed article: "Who is Kurt Campbell?" refused at 0.10, its sentence read
first with the reader at even odds). A sentence that names the person is the evidence asked for,
so for such a question the sentences naming it are quoted first, and the confidence is at least
the reader's probability for the best of them (`rag.answer.compose_answer`). A name the documents
never mention changes nothing: the question is refused as before.

Example:
    >>> asked_name("Who is Kurt Campbell?"), asked_name("What is the Quad?"), asked_name("Who is he?")
    ('Kurt Campbell', 'Quad', None)
    >>> mentions("at Ambassador Shi Feng’s residence", "Shi Feng"), mentions("Shi Fengshan", "Shi Feng")
    (True, False)
    >>> mentions("Daniel J. Kritenbrink, the senior official", "Daniel Kritenbrink")
    True
"""

from __future__ import annotations

import re

NAME_WORD = r"[A-Z][\w’'.-]*"  # a word of a name: a capital, then letters, apostrophes, dots, hyphens
_PARTICLE = r"(?:of|de|del|der|van|von|al|bin|da|du|la|le)"
_ASKED = re.compile(
    rf"^\s*(?i:who|what)(?:'s|’s|\s+(?i:is|was|are|were))\s+(?:(?i:the)\s+)?({NAME_WORD}(?:\s+(?:{_PARTICLE}\s+)*{NAME_WORD})*)\s*\??\s*$"
)
_PRONOUNS = {"He", "She", "It", "They", "This", "That", "These", "Those", "I", "You", "We"}


def asked_name(question: str) -> str | None:
    """The name `question` asks about when it asks nothing else ("Who is NAME?"), else None."""
    found = _ASKED.match(question)
    if found is None or found.group(1) in _PRONOUNS:
        return None
    return found.group(1)


def mentions(text: str, name: str) -> bool:
    """Whether `text` names `name`: each of its words there, whole and with its capitals (so
    "Daniel Kritenbrink" is named by "Daniel J. Kritenbrink")."""
    return all(re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text) for word in name.split())
