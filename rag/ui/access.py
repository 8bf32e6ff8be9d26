"""Who may read and write which collection, decided on every request (no Gradio).

Without a users file (`rag serve` on loopback, or `--no-auth`), everyone may read and write every
collection, as before sign-in existed. With one (`rag serve --users FILE`), a request carries the
signed-in user's name; the users file is re-read when it changes, so a grant removed by
`rag user revoke` (or a user removed) takes effect on that user's next request.

A collection the user may not read is refused with the same words whether it exists or not, so
names cannot be probed.

Example:
    >>> access = Access(SingleIndex(rag))  # doctest: +SKIP
    >>> access.reader(None, None)  # doctest: +SKIP
    ('default', <rag.pipeline.RAG object at ...>)
"""

from __future__ import annotations

from typing import Protocol

from rag.collections import DEFAULT, BadCollection
from rag.config import RagConfig
from rag.pipeline import RAG
from rag.users import User, Users


class Denied(Exception):
    """A request the signed-in user may not make; the message is safe to show them."""


class Library(Protocol):
    """The served collections: `rag.collections.Collections`, or one index (`SingleIndex`)."""

    @property
    def config(self) -> RagConfig: ...

    def names(self) -> list[str]: ...

    def get(self, name: str) -> RAG: ...


class SingleIndex:
    """One loaded index served as the collection "default"."""

    def __init__(self, rag: RAG) -> None:
        self.rag = rag

    @property
    def config(self) -> RagConfig:
        return self.rag.config

    def names(self) -> list[str]:
        return [DEFAULT]

    def get(self, name: str) -> RAG:
        if name != DEFAULT:
            raise BadCollection(f'no collection "{name}" (collections: {DEFAULT})')
        return self.rag


def request_user(request: object) -> str | None:
    """The signed-in user's name on a request (Gradio's `gr.Request.username`); None without
    sign-in, or outside a request."""
    return getattr(request, "username", None)


def as_library(served: RAG | Library) -> Library:
    """`served` as a library of collections: a library as it is, anything else as one index."""
    if callable(getattr(served, "names", None)) and callable(getattr(served, "get", None)):
        return served  # type: ignore[return-value]
    return SingleIndex(served)  # type: ignore[arg-type]


class Access:
    """The served collections as one user may see them. `users` None: no sign-in, all allowed."""

    def __init__(self, library: Library, users: Users | None = None) -> None:
        self.library = library
        self.users = users

    @property
    def signs_in(self) -> bool:
        return self.users is not None

    def user(self, username: str | None) -> User | None:
        """The signed-in user as the users file says now (None without sign-in); Denied when no
        one is signed in or the user was removed since signing in."""
        if self.users is None:
            return None
        if not username:
            raise Denied("Sign in first.")
        user = self.users.user(username)
        if user is None:
            raise Denied(f"The user {username} no longer exists: sign in again.")
        return user

    def readable(self, username: str | None) -> list[str]:
        """The collections `username` may search, in the library's order."""
        names = self.library.names()
        user = self.user(username)
        return names if user is None else user.readable(names)

    def writable(self, username: str | None) -> list[str]:
        """The collections `username` may upload to and remove from."""
        names = self.library.names()
        user = self.user(username)
        return names if user is None else [n for n in names if user.can_write(n)]

    def reader(self, username: str | None, collection: str | None) -> tuple[str, RAG]:
        """(name, RAG) of `collection` for searching (None or "": the first readable one)."""
        return self._open(collection, self.readable(username), "read")

    def writer(self, username: str | None, collection: str | None) -> tuple[str, RAG]:
        """(name, RAG) of `collection` for uploads and removals."""
        return self._open(collection, self.writable(username), "change")

    def _open(self, collection: str | None, allowed: list[str], verb: str) -> tuple[str, RAG]:
        if not collection:
            if not allowed:
                raise Denied(f"You may not {verb} any collection here: ask an administrator for access.")
            collection = allowed[0]
        if not isinstance(collection, str) or collection not in allowed:
            shown = collection if isinstance(collection, str) else repr(collection)
            raise Denied(f'No collection "{shown[:80]}" that you may {verb}. Yours: {", ".join(allowed) or "none"}.')
        return collection, self.library.get(collection)
