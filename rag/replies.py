"""The fixed texts the system answers with, in one place (a leaf: imports nothing of the project).

`ABSTAIN_TEXT` is what a person reads when the documents do not answer; `REFUSAL_TEXT` is the
sentence the chat model is told to write in that case (`rag.verify` recognises it and turns it
into `ABSTAIN_TEXT`); a "not sure" answer starts with `TENTATIVE_PREFIX`.
"""

from __future__ import annotations

ABSTAIN_TEXT = "The documents do not contain an answer to this question."
REFUSAL_TEXT = "The passages do not answer the question."
TENTATIVE_PREFIX = "Not sure: the closest passage says"


def tentative_text(quote: str) -> str:
    """The "not sure" answer showing the closest sentence as citation [1].

    Example:
        >>> tentative_text("Blinken warned Pyongyang.")
        'Not sure: the closest passage says “Blinken warned Pyongyang.” [1]'
    """
    return f"{TENTATIVE_PREFIX} “{quote}” [1]"
