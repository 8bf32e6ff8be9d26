"""Serving the UI: the request queue, Gradio's server settings and sign-in. `rag serve` starts it.

With a users file (`rag serve --users users.toml`), every page, API call and file route needs a
signed-in user (Gradio's sign-in page and session cookie; API clients send the same name and
password, e.g. `gradio_client.Client(url, auth=(name, password))`). Passwords are checked against
the file's argon2 hashes; wrong ones are rate-limited per name (`rag.users.SignInLimiter`: a
locked name is answered 429 with the seconds to wait); a user removed from the file is signed
out on their next request.

Example:
    >>> serve(RAG.open("index"), host="127.0.0.1", port=7860)  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import gradio as gr
from fastapi import HTTPException

from rag.pipeline import RAG
from rag.ui.access import Library
from rag.ui.assets import read_asset
from rag.ui.blocks import build_app
from rag.users import Users

QUEUE_SIZE = 64  # requests waiting beyond these are refused
AUTH_MESSAGE = "Sign in with the name and password given to you (`rag user add NAME` on the server)."


def serve(rag: RAG, *, host: str = "127.0.0.1", port: int = 7860, concurrency: int | None = None) -> None:
    """Launch the UI over `rag` on `host:port` and block until interrupted."""
    launch(build_app(rag), rag, host=host, port=port, concurrency=concurrency)


def launch(
    demo: gr.Blocks,
    rag: RAG | Library,
    *,
    host: str = "127.0.0.1",
    port: int = 7860,
    concurrency: int | None = None,
    users: Users | None = None,
) -> None:
    """Launch `demo` (built over `rag`) on `host:port` and block until interrupted. Questions run
    `concurrency` at a time (default: up to 4, by CPU count); further requests wait in the queue.
    Uploads over `rag.config.max_file_mb` are refused by the server before they are read. With
    `users`, everything needs a signed-in user (the same `Users` the app was built with)."""
    limit = concurrency or max(1, min(4, os.cpu_count() or 1))
    demo.queue(default_concurrency_limit=limit, max_size=QUEUE_SIZE)
    max_bytes = int(rag.config.max_file_mb * 1024 * 1024)
    demo.launch(
        server_name=host,
        server_port=port,
        show_error=True,
        footer_links=["api"],
        run_history=False,
        ssr_mode=False,
        mcp_server=False,
        max_file_size=max_bytes,
        css=read_asset("style.css"),
        quiet=False,
        auth=sign_in(users) if users is not None else None,
        auth_message=AUTH_MESSAGE if users is not None else None,
        prevent_thread_lock=users is not None,
    )
    if users is not None:
        demo.app.tokens = LiveSessions(users, demo.app.tokens)
        demo.block_thread()


def sign_in(users: Users) -> Callable[[str, str], bool]:
    """The check Gradio's sign-in route calls: the name's password against its hash; a name
    locked after too many wrong passwords is refused with 429 and the seconds left."""

    def check(username: str, password: str) -> bool:
        wait = users.locked_for(username)
        if wait > 0:
            raise HTTPException(
                status_code=429,
                detail=f"Too many failed sign-ins for this name: try again in {math.ceil(wait)} s.",
                headers={"Retry-After": str(math.ceil(wait))},
            )
        return users.verify(username, password)

    return check


class LiveSessions(dict[str, str]):
    """Gradio's session tokens (token -> user name), answered only while the user is still in the
    users file: removing a user signs them out of every page, API call and file route at once."""

    def __init__(self, users: Users, tokens: dict[str, str] | None = None) -> None:
        super().__init__(tokens or {})
        self.users = users

    def get(self, token: Any, default: Any = None) -> Any:
        name = super().get(token) if token is not None else None
        if name is None or self.users.user(name) is None:
            return default
        return name
