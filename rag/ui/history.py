"""Conversations people keep: the chat's Markdown and JSON downloads, and (with sign-in) the
signed-in user's saved conversations: each answered turn is saved, a saved conversation opens
back into the chat, and its owner can delete it.

The downloads are written from the session's own answers, so they work without sign-in too; the
store (`rag.conversations`, SQLite beside the users file) is only used for a signed-in user, and
every read or change goes through that user's name.

Example:
    >>> history = History(access, Conversations("conversations.sqlite"))  # doctest: +SKIP
    >>> history.save(None, turns, request)  # after a turn: (saved, picker, markdown file, JSON file)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import secrets
import shutil
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any

import gradio as gr

from rag.conversations import ConversationNotFound, Conversations
from rag.export import conversation_json, conversation_markdown, export_filename
from rag.generate import generator_label
from rag.types import Answer
from rag.ui.access import Access, Denied, request_user
from rag.ui.render import answer_markdown, escape_markdown, generated_answer_markdown, sources_html

log = logging.getLogger(__name__)

Saved = dict[str, Any] | None  # {"id": conversation id, "saved": turns saved}; None: not saved yet
NEW_CHAT = "new chat"
EXPORT_TTL_S = 3600.0  # written exports are deleted after this (Gradio serves its own copy, kept as long)


class History:
    """The conversation events of one app; `store` None: downloads only (no sign-in)."""

    def __init__(self, access: Access, store: Conversations | None) -> None:
        self.access = access
        self.store = store if access.signs_in else None
        self._exports = Path(tempfile.mkdtemp(prefix="rag-exports-"))
        weakref.finalize(self, shutil.rmtree, self._exports, True)  # gone with the app (or at exit)

    # --- downloads -----------------------------------------------------------------------------

    def downloads(self, turns: list[Answer]) -> tuple[Any, Any]:
        """(Markdown button, JSON button) holding this chat's answers, hidden while it has none."""
        if not turns:
            return gr.update(value=None, visible=False), gr.update(value=None, visible=False)
        self._prune()
        answers = [a.to_json() for a in turns]
        title = turns[0].question
        folder = self._exports / secrets.token_hex(8)
        folder.mkdir()
        md = folder / export_filename(title, "md")
        md.write_text(conversation_markdown(answers, title=title), encoding="utf-8")
        js = folder / export_filename(title, "json")
        js.write_text(conversation_json(answers, title=title), encoding="utf-8")
        return gr.update(value=str(md), visible=True), gr.update(value=str(js), visible=True)

    def _prune(self) -> None:
        """Delete the exports written more than EXPORT_TTL_S ago (one folder per download pair)."""
        cutoff = time.time() - EXPORT_TTL_S
        for folder in self._exports.iterdir():
            try:
                if folder.stat().st_mtime < cutoff:
                    shutil.rmtree(folder, ignore_errors=True)
            except OSError:  # pruned by another thread meanwhile
                continue

    # --- saved conversations -------------------------------------------------------------------

    def save(self, saved: Saved, turns: list[Answer], request: gr.Request | None = None) -> tuple[Any, ...]:
        """After a turn: save the answers not saved yet (a new conversation for the first), then
        (saved, picker, Markdown button, JSON button)."""
        downloads = self.downloads(turns)
        user = self._user(request)
        if self.store is None or user is None or not turns:
            return saved, gr.skip(), *downloads
        try:
            if not saved:
                saved = {"id": self.store.start(user, turns[0].question), "saved": 0}
            for answer in turns[saved["saved"] :]:
                self.store.append(user, saved["id"], answer.to_json())
            saved = {"id": saved["id"], "saved": len(turns)}
        except ConversationNotFound:  # deleted in another tab: keep the chat, save it anew next turn
            return None, self._picker(user), *downloads
        return saved, self._picker(user, saved["id"]), *downloads

    def choices(self, request: gr.Request | None = None) -> Any:
        """On page load: the picker of the signed-in user's saved conversations."""
        user = self._user(request)
        if self.store is None or user is None:
            return gr.update(visible=False)
        return self._picker(user)

    def open(self, conversation_id: str | None, request: gr.Request | None = None) -> tuple[Any, ...]:
        """Open a saved conversation into the chat: (chat, turns, sources, saved, status,
        Markdown button, JSON button). Its answers are shown as they were given."""
        user = self._user(request)
        if self.store is None or user is None or not conversation_id or conversation_id == NEW_CHAT:
            return (gr.skip(),) * 4 + ("Choose a saved conversation.", gr.skip(), gr.skip())
        try:
            answers = [Answer.from_json(a) for a in self.store.answers(user, conversation_id)]
        except ConversationNotFound:
            return (gr.skip(),) * 4 + ("That conversation no longer exists.", gr.skip(), gr.skip())
        messages = []
        for turn, answer in enumerate(answers):
            messages.append({"role": "user", "content": escape_markdown(answer.question)})
            messages.append({"role": "assistant", "content": _message(answer, turn)})
        last = sources_html(answers[-1], len(answers) - 1) if answers else sources_html(None, 0)
        saved = {"id": conversation_id, "saved": len(answers)}
        return messages, answers, last, saved, "", *self.downloads(answers)

    def delete(self, conversation_id: str | None, saved: Saved, request: gr.Request | None = None) -> tuple[Any, ...]:
        """Delete the chosen saved conversation: (picker, saved, status). The chat on screen stays;
        if it was that conversation, its next turn starts a new one."""
        user = self._user(request)
        if self.store is None or user is None or not conversation_id or conversation_id == NEW_CHAT:
            return gr.skip(), saved, "Choose a saved conversation to delete."
        try:
            title = self.store.title(user, conversation_id)
            self.store.delete(user, conversation_id)
        except ConversationNotFound:
            return self._picker(user), saved, "That conversation no longer exists."
        if saved and saved.get("id") == conversation_id:
            saved = None
        return self._picker(user), saved, f"Deleted “{escape_markdown(title[:80])}”."

    def new_chat(self) -> tuple[Any, ...]:
        """A cleared chat: not saved yet, nothing to download."""
        return None, *self.downloads([])

    def _picker(self, user: str, value: str | None = None) -> Any:
        assert self.store is not None
        choices = [(f"{c.title[:70]} · {c.updated:%Y-%m-%d %H:%M} · {c.turns}", c.id) for c in self.store.list(user)]
        return gr.update(choices=choices, value=value, visible=True)

    def _user(self, request: gr.Request | None) -> str | None:
        """The signed-in user's name if they may still use the app, else None."""
        username = request_user(request)
        try:
            self.access.user(username)
        except Denied:
            return None
        return username


def _message(answer: Answer, turn: int) -> str:
    if answer.generator != "extractive" and answer.sentences:
        return generated_answer_markdown(answer, turn, label=generator_label(answer.generator, ""))
    return answer_markdown(answer, turn)
