"""Serving the UI: the request queue and Gradio's server settings. `rag serve` starts it.

Example:
    >>> serve(RAG.open("index"), host="127.0.0.1", port=7860)  # doctest: +SKIP
"""

from __future__ import annotations

import os

import gradio as gr

from rag.pipeline import RAG
from rag.ui.assets import read_asset
from rag.ui.blocks import build_app

QUEUE_SIZE = 64  # requests waiting beyond these are refused


def serve(rag: RAG, *, host: str = "127.0.0.1", port: int = 7860, concurrency: int | None = None) -> None:
    """Launch the UI over `rag` on `host:port` and block until interrupted."""
    launch(build_app(rag), rag, host=host, port=port, concurrency=concurrency)


def launch(
    demo: gr.Blocks, rag: RAG, *, host: str = "127.0.0.1", port: int = 7860, concurrency: int | None = None
) -> None:
    """Launch `demo` (built over `rag`) on `host:port` and block until interrupted. Questions run
    `concurrency` at a time (default: up to 4, by CPU count); further requests wait in the queue.
    Uploads over `rag.config.max_file_mb` are refused by the server before they are read."""
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
    )
