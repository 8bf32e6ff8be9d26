"""Conversations per user in a real SQLite file: users never see each other's conversations, they
outlive a restart (a new `Conversations` on the same file), keep their order, survive threads
appending at once, and a file that is not ours is refused, never replaced."""

from __future__ import annotations

import re
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from rag.conversations import (
    MAX_TITLE,
    ConversationNotFound,
    Conversations,
    ConversationStoreError,
)
from rag.types import Answer


def answer(question: str, text: str = "An answer [1].") -> dict[str, Any]:
    return {
        "question": question,
        "answer": text,
        "abstained": False,
        "tentative": False,
        "confidence": 0.8,
        "citations": [
            {
                "n": 1,
                "source": "a.txt",
                "start": 0,
                "end": 9,
                "page": None,
                "quote": "An answer",
                "passage": "",
                "score": 0.7,
            }
        ],
        "timings_ms": {},
        "generator": "extractive",
        "sentences": [],
        "scope": None,
        "collection": None,
    }


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "conversations.db"


def test_users_never_see_or_change_each_others_conversations(path: Path) -> None:
    with Conversations(path) as store:
        ana = store.start("ana", "Ana's notes")
        store.append("ana", ana, answer("Ana asks"))
        bob = store.start("bob", "Bob's notes")

        assert [c.id for c in store.list("ana")] == [ana] and [c.id for c in store.list("bob")] == [bob]
        assert store.list("carol") == []
        for call in (
            lambda: store.answers("bob", ana),
            lambda: store.title("bob", ana),
            lambda: store.append("bob", ana, answer("Bob writes into Ana's")),
            lambda: store.delete("bob", ana),
        ):
            with pytest.raises(ConversationNotFound) as caught:
                call()
            # The same message as for an id that never existed: nothing says it belongs to someone.
            assert str(caught.value) == f"no conversation {ana!r}"
        with pytest.raises(ConversationNotFound, match="no conversation 'nope'"):
            store.answers("ana", "nope")
        assert [a["question"] for a in store.answers("ana", ana)] == ["Ana asks"]
        assert store.title("ana", ana) == "Ana's notes"


def test_conversations_outlive_a_restart_in_order(path: Path) -> None:
    store = Conversations(path)
    first = store.start("ana", "First")
    second = store.start("ana", "Second")
    turns = [store.append("ana", first, answer(f"Question {i}")) for i in range(1, 4)]
    store.append("ana", second, answer("Only one"))
    store.close()

    reopened = Conversations(path)  # a server restart
    assert turns == [1, 2, 3]
    listed = reopened.list("ana")
    assert [(c.id, c.title, c.turns) for c in listed] == [(second, "Second", 1), (first, "First", 3)]
    assert all(c.created <= c.updated and c.updated.tzinfo is not None for c in listed)
    assert [a["question"] for a in reopened.answers("ana", first)] == ["Question 1", "Question 2", "Question 3"]
    assert reopened.append("ana", first, answer("Question 4")) == 4
    assert [c.id for c in reopened.list("ana")] == [first, second]  # the one just changed comes first
    reopened.close()


def test_a_real_answer_reads_back_whole(seed_rag, path: Path) -> None:
    real = seed_rag.ask("How many North Korean soldiers have arrived in Kursk?")
    with Conversations(path) as store:
        cid = store.start("ana", real.question)
        store.append("ana", cid, real.to_json())
    with Conversations(path) as store:
        (stored,) = store.answers("ana", cid)
    assert stored == real.to_json()
    assert Answer.from_json(stored).to_json() == real.to_json()


def test_delete_removes_the_conversation_and_its_turns(path: Path) -> None:
    with Conversations(path) as store:
        gone = store.start("ana", "Gone")
        kept = store.start("ana", "Kept")
        for cid in (gone, kept):
            store.append("ana", cid, answer("Q1"))
            store.append("ana", cid, answer("Q2"))
        store.delete("ana", gone)
        assert [c.id for c in store.list("ana")] == [kept]
        with pytest.raises(ConversationNotFound):
            store.answers("ana", gone)
        with pytest.raises(ConversationNotFound):
            store.delete("ana", gone)
        assert len(store.answers("ana", kept)) == 2
    with sqlite3.connect(path) as db:  # no orphaned turns left in the file
        assert db.execute("SELECT COUNT(*) FROM turns WHERE conversation_id = ?", (gone,)).fetchone() == (0,)
        assert db.execute("SELECT COUNT(*) FROM turns").fetchone() == (2,)


def test_delete_user_removes_only_that_users_conversations(path: Path) -> None:
    with Conversations(path) as store:
        for title in ("a", "b", "c"):
            store.append("ana", store.start("ana", title), answer(title))
        bob = store.start("bob", "mine")
        store.append("bob", bob, answer("Bob's"))
        assert store.delete_user("ana") == 3
        assert store.list("ana") == [] and store.delete_user("ana") == 0
        assert [a["question"] for a in store.answers("bob", bob)] == ["Bob's"]
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM turns").fetchone() == (1,)


def test_threads_appending_at_once_lose_nothing(path: Path) -> None:
    store = Conversations(path)
    shared = store.start("ana", "shared")
    own = {t: store.start(f"user{t}", "own") for t in range(8)}
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(20):
                store.append("ana", shared, answer(f"{t}-{i}"))
                store.append(f"user{t}", own[t], answer(f"{t}-{i}"))
                store.list(f"user{t}")
        except BaseException as exc:  # reported below: a thread's exception would otherwise vanish
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    store.close()

    reopened = Conversations(path)
    questions = [a["question"] for a in reopened.answers("ana", shared)]
    assert sorted(questions) == sorted(f"{t}-{i}" for t in range(8) for i in range(20))
    for t in range(8):  # each thread's appends kept its order
        assert [q for q in questions if q.startswith(f"{t}-")] == [f"{t}-{i}" for i in range(20)]
        assert [a["question"] for a in reopened.answers(f"user{t}", own[t])] == [f"{t}-{i}" for i in range(20)]
    assert reopened.list("ana")[0].turns == 160
    reopened.close()


def test_two_stores_on_one_file_lose_nothing(path: Path) -> None:
    """Two `Conversations` on the same file (two server processes) wait for each other's writes."""
    first, second = Conversations(path), Conversations(path)
    cid = first.start("ana", "shared")
    errors: list[BaseException] = []

    def work(store: Conversations, name: str) -> None:
        try:
            for i in range(20):
                store.append("ana", cid, answer(f"{name}-{i}"))
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=work, args=(s, f"{n}{t}")) for t in range(4) for n, s in (("a", first), ("b", second))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    turns = first.answers("ana", cid)
    assert len(turns) == 160 == second.list("ana")[0].turns
    assert len({a["question"] for a in turns}) == 160
    first.close()
    second.close()


def test_titles_are_one_line_and_trimmed(path: Path) -> None:
    with Conversations(path) as store:
        long = store.start("ana", "  word\n" * 100)
        assert store.title("ana", long) == ("word " * 100)[:MAX_TITLE].strip()
        assert len(store.title("ana", long)) <= MAX_TITLE
        assert store.title("ana", store.start("ana", "   ")) == "Conversation"


def test_bad_input_is_refused_with_the_bad_value(path: Path) -> None:
    with Conversations(path) as store:
        cid = store.start("ana", "t")
        with pytest.raises(ValueError, match="user must be a non-empty string, got ''"):
            store.start("", "t")
        with pytest.raises(ValueError, match="Answer.to_json"):
            store.append("ana", cid, {"text": "no question"})
        with pytest.raises(ValueError, match="cannot be stored as JSON"):
            store.append("ana", cid, {**answer("q"), "confidence": float("nan")})
        assert store.answers("ana", cid) == []  # nothing half-written


def test_a_corrupt_file_is_a_clear_error_and_left_as_it_was(path: Path) -> None:
    junk = b"this is not a database\n" * 200
    path.write_bytes(junk)
    with pytest.raises(
        ConversationStoreError, match=re.escape(f"conversations file {path} cannot be used: file is not a database")
    ):
        Conversations(path)
    assert path.read_bytes() == junk


def test_a_newer_schema_or_another_programs_database_is_refused(tmp_path: Path) -> None:
    newer = tmp_path / "newer.db"
    with Conversations(newer):
        pass
    with sqlite3.connect(newer) as db:
        db.execute("PRAGMA user_version = 7")
    with pytest.raises(
        ConversationStoreError, match=r"newer\.db holds conversations of a newer rag \(schema version 7"
    ):
        Conversations(newer)

    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(ConversationStoreError, match=r"other\.db is an SQLite database but not a conversations file"):
        Conversations(other)
    with sqlite3.connect(other) as db:
        assert [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")] == ["invoices"]


def test_a_missing_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConversationStoreError, match=re.escape(f"folder {tmp_path / 'nope'} does not exist")):
        Conversations(tmp_path / "nope" / "c.db")
    assert not (tmp_path / "nope").exists()
