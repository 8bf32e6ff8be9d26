"""Questions about a name or a topic: who or what a name is ("Who is Kurt Campbell?", "What is
AUKUS?"), and what someone or the document says ("What did Blinken warn?", "What does the author
say about divide and conquer?").

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

A question asking what someone said, or what the document says about a topic, is not a factoid
question either: the reader, trained on those, reads "He issued a warning, ..." 1.6 logits under
even odds for "What did Blinken warn?" and the sentence naming "divide and conquer" 3.4 under for
"What does the author say about divide and conquer?"; both were refused. A sentence that holds the
topic's words (or the verb, said by the one named or by a "he" or "she" right after them) is what
the question asks for (`rag.answer.compose_answer` answers with it).

    >>> asked_statement("What did Blinken warn?")
    Asked(speaker='Blinken', verb='warn', topic=None)
    >>> asked_statement("What does the author say about divide and conquer?")
    Asked(speaker=None, verb='say', topic='divide and conquer')
    >>> asked_statement("What did the New York Times report?").speaker
    'New York Times'
    >>> asked_statement("What did Blinken warn the troops would become?"), asked_statement("What did he say?")
    (None, None)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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


# A rank before a title makes it another office: the Deputy Secretary of State is not the Secretary.
_RANKED = re.compile(r"(?<![\w-])(?i:deputy|vice|assistant|under|associate|acting|lieutenant)\s+$")


# Apostrophes a name may be typed or printed with: "O'Brien" as typed names "O’Brien" as printed.
_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "ʼ": "'", "`": "'", "´": "'"})


def plain_apostrophes(text: str) -> str:
    """`text` with every apostrophe-like character the ASCII one (same length, same offsets)."""
    return text.translate(_APOSTROPHES)


def mentions(text: str, name: str) -> bool:
    """Whether `text` names `name`: each of its words there, whole and with its capitals (so
    "Daniel Kritenbrink" is named by "Daniel J. Kritenbrink"), whatever apostrophes each is written
    with, its first word at least once without a rank before it ("Deputy Secretary of State" does
    not name the Secretary of State).

    Example:
        >>> mentions("Kurt Campbell, the Deputy Secretary of State", "Secretary of State")
        False
        >>> mentions("the Deputy Secretary met the Secretary of State", "Secretary of State")
        True
        >>> mentions("James O’Brien, the senior official", "James O'Brien")
        True
    """
    text, words = plain_apostrophes(text), plain_apostrophes(name).split()
    if not words or not all(_whole_word(word).search(text) for word in words):
        return False
    return any(not _RANKED.search(text[: m.start()]) for m in _whole_word(words[0]).finditer(text))


def named_at(text: str, name: str) -> int | None:
    """Where `text` first has the first word of `name`, whole, whatever apostrophes each is written
    with; None where it has not."""
    words = plain_apostrophes(name).split()
    found = _whole_word(words[0]).search(plain_apostrophes(text)) if words else None
    return None if found is None else found.start()


def _whole_word(word: str) -> re.Pattern[str]:
    """`word` as a whole word: not inside a longer word nor a hyphenated one."""
    return re.compile(rf"(?<![\w-]){re.escape(word)}(?![\w-])")


# The document itself as the one saying: "the author", "the article", "it".
_DOCUMENT = r"(?:the\s+|this\s+)?(?:author|writer|article|report|text|document|piece|story|essay|paper|post|page)|it"
# In the speaker's place, a pronoun of a chat's follow-up: the previous question's person.
_SPEAKER_PRONOUN = r"he|she|they"
# Verbs of saying, with their irregular forms (`verb_forms`).
_IRREGULAR = {
    "say": ("say", "said"),
    "tell": ("tell", "told"),
    "write": ("write", "wrote", "written"),
    "think": ("think", "thought"),
}
_VERBS = (
    "say|tell|warn|report|claim|announce|state|write|argue|reveal|suggest|predict|think|believe|mention|"
    "deny|confirm|promise|urge|note|explain|add|insist|recommend|propose"
)
_STATED = re.compile(
    rf"^\s*(?i:what)\s+(?i:did|does|do|has|have|had)\s+"
    rf"(?:(?P<document>(?i:{_DOCUMENT}|{_SPEAKER_PRONOUN}))|(?:(?i:the)\s+)?(?P<name>{NAME_WORD}(?:\s+(?:{_PARTICLE}\s+)*{NAME_WORD})*))"
    rf"\s+(?P<verb>(?i:{_VERBS}))(?:\s+(?i:us|me))?"
    rf"(?:\s+(?i:about|on|regarding|concerning)\s+(?P<topic>[^?]+?))?\s*\??\s*$"
)
_SAID_ABOUT = re.compile(
    r"""^\s*(?:
        what\s+(?:is|was|are|were)\s+(?:said|written|reported|known)\s+(?:about|on|regarding)
      | (?:please\s+)?tell\s+(?:me|us)\s+(?:more\s+)?about
      | what\s+(?:do|can)\s+(?:you|we)\s+(?:know|learn|tell\s+(?:me|us))\s+about
    )\s+(?P<topic>[^?]+?)\s*[?.!]*\s*$""",
    re.I | re.X,
)


@dataclass(frozen=True)
class Asked:
    """What a question asks was said: by `speaker` (a name; None: the document itself), `verb` (its
    base form), about `topic` (None: whatever it was)."""

    speaker: str | None
    verb: str
    topic: str | None


def asked_statement(question: str, previous: str | None = None) -> Asked | None:
    """What `question` asks someone (or the document) said, when it asks only that: "What did NAME
    VERB?", "What does the author/article VERB about TOPIC?", "What is said about TOPIC?", "Tell me
    about TOPIC"; else None.
    The document with no topic ("What does the article say?") is an overview question
    (`rag.overview`). A pronoun ("What did he say?") is the person the `previous` question of a
    chat asked about ("Who is Antony Blinken?", "What did Blinken report?"), if it named one.

    Example:
        >>> asked_statement("What did he warn?", "Who is Antony Blinken?")
        Asked(speaker='Antony Blinken', verb='warn', topic=None)
        >>> asked_statement("What did he warn?", "How many troops are there?") is None
        True
    """
    about = _SAID_ABOUT.match(question)
    if about is not None:
        topic = about.group("topic")
        # "Tell me about this article": the whole document, an overview question
        return None if re.fullmatch(_DOCUMENT, topic, re.I) else Asked(None, "say", topic)
    found = _STATED.match(question)
    if found is None:
        return None
    name, topic = found.group("name"), found.group("topic")
    if name is None and found.group("document").lower() in ("he", "she", "they"):
        name = _speaker_of(previous)
        if name is None:
            return None
    if (name is None and topic is None) or name in _PRONOUNS:
        return None
    return Asked(name, found.group("verb").lower(), topic)


def _speaker_of(question: str | None) -> str | None:
    """The person a question asked about or asked what they said, if it named one."""
    if question is None:
        return None
    name = asked_name(question)
    if name is not None:
        return name
    asked = asked_statement(question)
    return None if asked is None else asked.speaker


def verb_forms(verb: str) -> tuple[str, ...]:
    """The forms of a verb of saying to look for beyond what stemming finds ("said" for "say")."""
    return _IRREGULAR.get(verb, (verb,))
