"""The chat UI: a thin Gradio layer over `rag.pipeline`. Start it with `rag serve` (or `python app.py`).

Chat with cited answers streamed in, a Sources panel with the quoted passages and a document
viewer, a Documents tab to upload and remove files (and, under `rag serve --watch`, the folder watch's last
sync), an Evaluation tab, and an `ask` API endpoint
that returns the `rag ask --json` object. Answers are quoted sentences by default; under Settings a
language model can write them instead ("local": SmolLM2-135M in this process, or the server's
`rag serve --generator openai/ollama`): its text streams in as a draft, then only the sentences the
cited passages support are kept, the others shown struck through as not supported. The answer scorer
(*Settings → Answer scorer*: the trained reader or the heuristic) picks the quoted sentence and the
confidence; a confidence just under the threshold shows the closest passage marked "Not sure".

    render.py      strings from the core records: escaped answers, source cards, the viewer (no Gradio)
    uploads.py     upload names, checks and status lines (no Gradio)
    settings.py    the Settings' choices and the config a question is asked with (no Gradio)
    evaluation.py  the latest `rag eval` report
    handlers.py    one method per event, over one loaded RAG
    blocks.py      the layout and its events: `build_app(rag)`
    server.py      the queue and the server: `serve(rag, host=..., port=...)`
    static/        the style sheet and the page scripts

Importing `rag.ui` gives the rendering and upload helpers without importing Gradio; the app is
`rag.ui.blocks.build_app` and `rag.ui.server.serve`.

    >>> from gradio_client import Client  # doctest: +SKIP
    >>> Client("http://127.0.0.1:7860/").predict("What did Blinken warn?", api_name="/ask")  # doctest: +SKIP
"""

from __future__ import annotations

from rag.load import format_size
from rag.ui.render import (
    NOT_AN_ANSWER,
    NOT_SUPPORTED,
    NOT_SURE,
    VIEWER_MAX_CHARS,
    abstention_markdown,
    answer_markdown,
    answer_pieces,
    cannot_answer_markdown,
    citation_card,
    document_html,
    document_rows,
    draft_markdown,
    escape_html,
    escape_markdown,
    footer_markdown,
    generated_answer_markdown,
    generator_error_markdown,
    is_fallback,
    nearest_card,
    sources_html,
    stream_steps,
    tentative_markdown,
    viewer_placeholder,
)
from rag.ui.uploads import MAX_FILENAME_CHARS, sanitize_filename, upload_count_problem, upload_problem

__all__ = [
    "MAX_FILENAME_CHARS",
    "NOT_AN_ANSWER",
    "NOT_SUPPORTED",
    "NOT_SURE",
    "VIEWER_MAX_CHARS",
    "abstention_markdown",
    "answer_markdown",
    "answer_pieces",
    "cannot_answer_markdown",
    "citation_card",
    "document_html",
    "document_rows",
    "draft_markdown",
    "escape_html",
    "escape_markdown",
    "footer_markdown",
    "format_size",
    "generated_answer_markdown",
    "generator_error_markdown",
    "is_fallback",
    "nearest_card",
    "sanitize_filename",
    "sources_html",
    "stream_steps",
    "tentative_markdown",
    "upload_count_problem",
    "upload_problem",
    "viewer_placeholder",
]
