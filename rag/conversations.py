"""Conversations kept per user in one SQLite file, so they outlive a server restart.

A conversation is a title and its turns in order, each turn an answer as its `Answer.to_json()`
object (stored as JSON text; `Answer.from_json` reads it back). Every method takes the user and
reads or changes only that user's rows: a conversation of another user is `ConversationNotFound`,
exactly as one that never existed, so nobody learns that it does.

The file is created with its tables on first use (its folder must exist), in WAL mode, and carries
its schema version (`PRAGMA user_version`): a file written by a newer version, or a file that is not
a conversations database, is refused with `ConversationStoreError` naming it, never replaced.
One `Conversations` is shared by the server's threads (one connection behind a lock; other
processes wait for the file's write lock up to `BUSY_TIMEOUT_S`).

Example:
    >>> import tempfile, os
    >>> store = Conversations(os.path.join(tempfile.mkdtemp(), "chats.db"))
    >>> cid = store.start("ana", "Kursk")
    >>> store.append("ana", cid, {"question": "Who?", "answer": "Them [1]."})
    1
    >>> [c.title for c in store.list("ana")], store.list("bob")
    (['Kursk'], [])
    >>> store.close()
"""

from __future__ import annotations

import builtins
import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
MAX_TITLE = 120
DEFAULT_TITLE = "Conversation"
BUSY_TIMEOUT_S = 10.0

_SCHEMA = """
CREATE TABLE conversations (
    id TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    title TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    turns INTEGER NOT NULL DEFAULT 0,
    seq INTEGER NOT NULL  -- the order of the last change across the file: newest first without ties
);
CREATE INDEX conversations_by_user ON conversations (user, seq);
CREATE TABLE turns (
    conversation_id TEXT NOT NULL REFERENCES conversations (id),
    turn INTEGER NOT NULL,
    answer TEXT NOT NULL,
    PRIMARY KEY (conversation_id, turn)
);
"""
_TABLES = frozenset({"conversations", "turns"})


def beside(users_file: str | os.PathLike[str]) -> Path:
    """Where a server with this users file keeps its conversations: beside it.

    >>> beside("/etc/rag/users.toml").name
    'users.conversations.sqlite'
    """
    return Path(users_file).with_suffix(".conversations.sqlite")


class ConversationStoreError(Exception):
    """The conversations file cannot be used (not SQLite, corrupt, another program's database, a
    newer schema, its folder missing). The message names the file."""


class ConversationNotFound(KeyError):
    """No conversation with this id for this user (it may not exist, or belong to another user)."""

    def __str__(self) -> str:  # KeyError would show the message quoted
        return str(self.args[0]) if self.args else "conversation not found"


@dataclass(frozen=True)
class ConversationInfo:
    """A conversation as listed: `turns` is the number of answers in it; times are UTC."""

    id: str
    title: str
    created: datetime
    updated: datetime
    turns: int


class Conversations:
    """One SQLite file of conversations, shared by the server's threads. Every method takes the
    user and only ever reads or changes that user's rows."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = _connect(self.path)
        try:
            _prepare(self._db, self.path)
        except BaseException:
            self._db.close()
            raise

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Conversations:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, user: str, title: str) -> str:
        """A new, empty conversation of `user`; returns its id. The title is put on one line and
        cut to 120 characters ("Conversation" when empty)."""
        _check_user(user)
        conversation_id = secrets.token_urlsafe(12)
        now = time.time()
        with self._write() as db:
            db.execute(
                "INSERT INTO conversations (id, user, title, created, updated, turns, seq) "
                "VALUES (?, ?, ?, ?, ?, 0, (SELECT IFNULL(MAX(seq), 0) + 1 FROM conversations))",
                (conversation_id, user, _clean_title(title), now, now),
            )
        return conversation_id

    def append(self, user: str, conversation_id: str, answer: Mapping[str, Any]) -> int:
        """Add `answer` (an `Answer.to_json()` object) as the next turn; returns its number (from 1)."""
        text = _answer_json(answer)
        with self._write() as db:
            turns = self._owned(db, user, conversation_id)
            turn = turns + 1
            db.execute(
                "INSERT INTO turns (conversation_id, turn, answer) VALUES (?, ?, ?)", (conversation_id, turn, text)
            )
            db.execute(
                "UPDATE conversations SET turns = ?, updated = ?, "
                "seq = (SELECT IFNULL(MAX(seq), 0) + 1 FROM conversations) WHERE id = ?",
                (turn, time.time(), conversation_id),
            )
        return turn

    def list(self, user: str) -> builtins.list[ConversationInfo]:
        """`user`'s conversations, the most recently changed first."""
        _check_user(user)
        with self._read() as db:
            rows = db.execute(
                "SELECT id, title, created, updated, turns FROM conversations WHERE user = ? ORDER BY seq DESC",
                (user,),
            ).fetchall()
        return [ConversationInfo(i, t, _time(c), _time(u), n) for i, t, c, u, n in rows]

    def answers(self, user: str, conversation_id: str) -> builtins.list[dict[str, Any]]:
        """The answers of one of `user`'s conversations, in the order they were added."""
        with self._read() as db:
            self._owned(db, user, conversation_id)
            rows = db.execute(
                "SELECT turn, answer FROM turns WHERE conversation_id = ? ORDER BY turn", (conversation_id,)
            ).fetchall()
        return [self._loaded(conversation_id, turn, text) for turn, text in rows]

    def title(self, user: str, conversation_id: str) -> str:
        with self._read() as db:
            self._owned(db, user, conversation_id)
            row = db.execute("SELECT title FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
        return str(row[0])

    def delete(self, user: str, conversation_id: str) -> None:
        """Remove one of `user`'s conversations with its turns."""
        with self._write() as db:
            self._owned(db, user, conversation_id)
            db.execute("DELETE FROM turns WHERE conversation_id = ?", (conversation_id,))
            db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))

    def delete_user(self, user: str) -> int:
        """Remove all of `user`'s conversations (when the user is removed); returns how many."""
        _check_user(user)
        with self._write() as db:
            db.execute(
                "DELETE FROM turns WHERE conversation_id IN (SELECT id FROM conversations WHERE user = ?)", (user,)
            )
            return db.execute("DELETE FROM conversations WHERE user = ?", (user,)).rowcount

    def _owned(self, db: sqlite3.Connection, user: str, conversation_id: str) -> int:
        """The number of turns of `conversation_id` if it is `user`'s, else ConversationNotFound."""
        _check_user(user)
        row = db.execute(
            "SELECT turns FROM conversations WHERE id = ? AND user = ?", (str(conversation_id), user)
        ).fetchone()
        if row is None:
            raise ConversationNotFound(f"no conversation {str(conversation_id)[:40]!r}")
        return int(row[0])

    def _loaded(self, conversation_id: str, turn: int, text: str) -> dict[str, Any]:
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise ConversationStoreError(
                f"{self.path}: turn {turn} of conversation {conversation_id} is not a JSON object"
            )
        return data

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """One read transaction: its queries see one state of the file (WAL snapshot), not a
        conversation deleted by another process between the ownership check and the rows."""
        with self._lock, _named(self.path):
            self._db.execute("BEGIN")
            try:
                yield self._db
            finally:
                self._db.execute("COMMIT")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction, holding the file's write lock from its start (BEGIN IMMEDIATE), so
        a turn number read in it is still the last one when its turn is written."""
        with self._lock, _named(self.path):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")


def _connect(path: Path) -> sqlite3.Connection:
    if not path.parent.is_dir():
        raise ConversationStoreError(f"cannot open conversations file {path}: folder {path.parent} does not exist")
    if path.is_dir():
        raise ConversationStoreError(f"cannot open conversations file {path}: it is a folder")
    try:
        # Autocommit: transactions are the explicit BEGIN IMMEDIATE ... COMMIT of `_write`.
        return sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise ConversationStoreError(f"cannot open conversations file {path}: {exc}") from None


def _prepare(db: sqlite3.Connection, path: Path) -> None:
    """Check the file's schema version and tables; create them in a new (empty) file."""
    with _named(path):
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise ConversationStoreError(
                f"{path} holds conversations of a newer rag (schema version {version}; this one reads up to "
                f"{SCHEMA_VERSION}): upgrade rag, or use another file"
            )
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("BEGIN IMMEDIATE")  # another process may be creating the same file
        try:
            _create_or_check(db, path)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


def _create_or_check(db: sqlite3.Connection, path: Path) -> None:
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if version == 0 and not tables:
        for statement in _SCHEMA.split(";"):  # not executescript: it would commit the transaction
            if statement.strip():
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    elif version != SCHEMA_VERSION or not _TABLES <= tables:
        raise ConversationStoreError(
            f"{path} is an SQLite database but not a conversations file (schema version {version}, "
            f"tables {', '.join(sorted(tables)) or 'none'}): use another file"
        )


@contextmanager
def _named(path: Path) -> Iterator[None]:
    """SQLite's own errors (not a database, corrupt, disk full) as ConversationStoreError naming the file."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        raise ConversationStoreError(f"conversations file {path} cannot be used: {exc}") from None


def _check_user(user: str) -> None:
    if not isinstance(user, str) or not user:
        raise ValueError(f"user must be a non-empty string, got {user!r}")


def _clean_title(title: str) -> str:
    return " ".join(str(title).split())[:MAX_TITLE].strip() or DEFAULT_TITLE


def _answer_json(answer: Mapping[str, Any]) -> str:
    """`answer` as JSON text; ValueError when it is not an answer object."""
    if not isinstance(answer, Mapping) or "question" not in answer or "answer" not in answer:
        raise ValueError(f"an answer must be an Answer.to_json() object (with question and answer), got {answer!r:.80}")
    try:
        return json.dumps(dict(answer), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"answer cannot be stored as JSON: {exc}") from None


def _time(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)
