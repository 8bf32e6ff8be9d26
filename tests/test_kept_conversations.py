"""Conversations people keep, in the UI's handlers over the real seed index: the Markdown and
JSON downloads, saving each turn for the signed-in user, opening a saved conversation after a
restart, and deleting it; and `Access`, which decides what a signed-in user may read and write."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from rag.conversations import Conversations
from rag.types import Answer
from rag.ui.access import Access, Denied, SingleIndex
from rag.ui.history import History
from rag.users import Users

KURSK = "How many North Korean soldiers have arrived in Kursk?"
SHI_FENG = "Who met Chinese diplomats at Ambassador Shi Feng's residence?"


def _as(name: str) -> SimpleNamespace:
    """What Gradio hands a handler for a signed-in request (`gr.Request.username`)."""
    return SimpleNamespace(username=name)


@pytest.fixture
def users(tmp_path: Path) -> Users:
    users = Users(tmp_path / "users.toml")
    users.add("alice", "alice-password-1")
    users.add("bob", "bob-password-22")
    users.grant("alice", "default", "read")
    return users


@pytest.fixture
def turns(seed_rag) -> list[Answer]:
    return [seed_rag.ask(KURSK), seed_rag.ask(SHI_FENG)]


def _file(update: dict) -> Path:
    return Path(update["value"])


def test_downloads_hold_every_answer_with_its_citations(seed_rag, turns: list[Answer]) -> None:
    history = History(Access(SingleIndex(seed_rag)), None)
    md_update, json_update = history.downloads(turns)
    markdown = _file(md_update).read_text(encoding="utf-8")
    for answer in turns:
        for c in answer.citations:
            assert c.quote.splitlines()[0][:40] in markdown.replace("\\", "")
            assert f"{c.start}" in markdown and c.source in markdown.replace("\\", "")
    data = json.loads(_file(json_update).read_text(encoding="utf-8"))
    assert [a["question"] for a in data["answers"]] == [KURSK, SHI_FENG]
    assert data["answers"] == [a.to_json() for a in turns]
    assert history.downloads([])[0]["visible"] is False


def test_old_exports_are_deleted_when_new_ones_are_written(seed_rag, turns: list[Answer]) -> None:
    import os
    import time

    from rag.ui.history import EXPORT_TTL_S

    history = History(Access(SingleIndex(seed_rag)), None)
    old = _file(history.downloads(turns)[0]).parent
    stale = time.time() - EXPORT_TTL_S - 60
    os.utime(old, (stale, stale))
    new = _file(history.downloads(turns[:1])[0]).parent
    assert not old.exists() and new.exists()


def test_without_sign_in_nothing_is_stored(seed_rag, turns: list[Answer], tmp_path: Path) -> None:
    store = Conversations(tmp_path / "c.sqlite")
    history = History(Access(SingleIndex(seed_rag)), store)
    saved, *_ = history.save(None, turns, _as("alice"))
    assert saved is None and history.store is None


def test_turns_are_saved_per_user_and_open_after_a_restart(
    seed_rag, users: Users, turns: list[Answer], tmp_path: Path
) -> None:
    path = tmp_path / "users.conversations.sqlite"
    history = History(Access(SingleIndex(seed_rag), users), Conversations(path))
    saved, picker, *_ = history.save(None, turns[:1], _as("alice"))
    assert saved["saved"] == 1 and picker["value"] == saved["id"]
    saved, *_ = history.save(saved, turns, _as("alice"))
    assert saved["saved"] == 2

    restarted = History(Access(SingleIndex(seed_rag), users), Conversations(path))  # a new server process
    choices = restarted.choices(_as("alice"))["choices"]
    assert [value for _, value in choices] == [saved["id"]] and KURSK[:40] in choices[0][0]
    messages, opened, sources, reopened, status, md_update, _ = restarted.open(saved["id"], _as("alice"))
    assert status == "" and reopened == saved
    assert [a.question for a in opened] == [KURSK, SHI_FENG]
    assert [c.quote for c in opened[0].citations] == [c.quote for c in turns[0].citations]
    assert len(messages) == 4 and "8,000" in messages[1]["content"]
    assert "cite" in sources or "source" in sources
    assert KURSK in _file(md_update).read_text(encoding="utf-8")


def test_another_user_never_sees_opens_or_deletes_a_conversation(
    seed_rag, users: Users, turns: list[Answer], tmp_path: Path
) -> None:
    store = Conversations(tmp_path / "c.sqlite")
    history = History(Access(SingleIndex(seed_rag), users), store)
    saved, *_ = history.save(None, turns, _as("alice"))
    assert history.choices(_as("bob"))["choices"] == []
    *_, status, _, _ = history.open(saved["id"], _as("bob"))
    assert status == "That conversation no longer exists."
    _, _, status = history.delete(saved["id"], None, _as("bob"))
    assert status == "That conversation no longer exists."
    assert len(store.answers("alice", saved["id"])) == 2  # untouched
    picker, after, status = history.delete(saved["id"], saved, _as("alice"))
    assert after is None and status.startswith("Deleted") and picker["choices"] == []
    assert store.list("alice") == []


def test_a_removed_user_saves_and_opens_nothing(seed_rag, users: Users, turns: list[Answer], tmp_path: Path) -> None:
    history = History(Access(SingleIndex(seed_rag), users), Conversations(tmp_path / "c.sqlite"))
    saved, *_ = history.save(None, turns, _as("alice"))
    Users(users.path).remove("alice")  # `rag user remove` in another process
    assert history.save(saved, [*turns, turns[0]], _as("alice"))[0] == saved  # nothing more saved
    *_, status, _, _ = history.open(saved["id"], _as("alice"))
    assert status == "Choose a saved conversation."
    assert history.choices(_as("alice"))["visible"] is False


def test_access_follows_the_users_file(seed_rag, users: Users) -> None:
    access = Access(SingleIndex(seed_rag), users)
    assert access.readable("alice") == ["default"] and access.writable("alice") == []
    assert access.reader("alice", None)[1] is seed_rag
    with pytest.raises(Denied, match="No collection"):
        access.writer("alice", "default")
    with pytest.raises(Denied, match="any collection"):
        access.reader("bob", None)
    with pytest.raises(Denied, match="Sign in first"):
        access.reader(None, None)
    Users(users.path).grant("bob", "default", "write")  # `rag user grant` in another process
    assert access.writer("bob", "default")[1] is seed_rag
    Users(users.path).revoke("alice", "default")
    with pytest.raises(Denied):
        access.reader("alice", "default")
    open_access = Access(SingleIndex(seed_rag))  # no sign-in: everything, for anyone
    assert open_access.writable(None) == ["default"] and open_access.reader(None, "default")[1] is seed_rag
    with pytest.raises(Denied, match="No collection"):
        open_access.reader(None, "../default")


def test_removing_a_user_removes_their_saved_conversations(
    users: Users, turns: list[Answer], capsys: pytest.CaptureFixture[str]
) -> None:
    from rag.cli import main
    from rag.conversations import beside

    with Conversations(beside(users.path)) as kept:
        for name in ("alice", "bob"):
            kept.append(name, kept.start(name, KURSK), turns[0].to_json())
    assert main(["user", "remove", "alice", "--users", str(users.path)]) == 0
    assert "and their 1 saved conversation(s)" in capsys.readouterr().out
    with Conversations(beside(users.path)) as kept:
        assert kept.list("alice") == [] and len(kept.list("bob")) == 1
