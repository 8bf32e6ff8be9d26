"""The Gradio layout: a Chat tab (chat, Settings, Sources panel, document viewer), a Documents
tab (upload, table, remove), an Evaluation tab, the footer, and the events wired to `Handlers`.

Example:
    >>> demo = build_app(RAG.open("index"))  # doctest: +SKIP
    >>> demo.launch()  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from rag.config import ANSWER_SCORERS, MODES, RagConfig
from rag.conversations import Conversations
from rag.load import SUPPORTED_SUFFIXES, format_size
from rag.pipeline import RAG
from rag.ui.access import Access, Library, as_library
from rag.ui.assets import read_asset
from rag.ui.evaluation import REPORTS_DIR, eval_report
from rag.ui.handlers import Handlers
from rag.ui.history import History
from rag.ui.render import sources_html, sync_markdown, viewer_placeholder
from rag.ui.settings import file_types, generator_info, scorer_threshold
from rag.users import Users
from rag.watch import FolderWatch

TITLE = "rag · ask your documents"
INTRO = (
    "## Ask your documents\nAnswers quote the documents word for word and cite them; "
    "with a language model (*Settings → Answer generator*) only the sentences the cited "
    "passages support are kept. When the documents do not contain an answer, it says so."
)
EXAMPLES = [  # each answered over the demo article (tests/test_ui.py)
    "How many North Korean soldiers have arrived in Kursk?",
    "What is the article about?",
    "Who is Kurt Campbell?",
    "What did Blinken warn?",
]
SEED_FILE = "000_a8b8e53ddfe7d5e4.txt"  # the demo article (seeds/) that EXAMPLES ask about
SYNC_POLL_S = 2.0  # how often an open page asks for the folder watch's news
WRITES = "index-writes"  # concurrency group: one upload or removal at a time
PRIVATE: dict[str, Any] = {"api_visibility": "private"}  # every event but the `ask` API stays out of the API


@dataclass
class ChatTab:
    chatbot: gr.Chatbot
    question: gr.Textbox
    ask_button: gr.Button
    mode: gr.Radio
    top_k: gr.Slider
    scorer: gr.Radio
    threshold: gr.Slider
    generator: gr.Radio
    sources: gr.HTML
    viewer: gr.HTML
    search_in: gr.Dropdown
    search_types: gr.Dropdown


@dataclass
class KeptTab:
    """The chat's downloads and (signed in) saved conversations."""

    saved: gr.State
    picker: gr.Dropdown
    open_button: gr.Button
    delete_button: gr.Button
    status: gr.Markdown
    markdown: gr.DownloadButton
    json: gr.DownloadButton


@dataclass
class DocumentsTab:
    files: gr.File
    status: gr.Markdown
    table: gr.Dataframe
    to_remove: gr.Dropdown
    remove_button: gr.Button
    sync: gr.Markdown  # the folder watch's last sync and skipped files (`rag serve --watch`)


@dataclass
class EvaluationTab:
    refresh_button: gr.Button
    image: gr.Image
    report: gr.Markdown


def build_app(
    rag: RAG | Library,
    *,
    reports_dir: Path = REPORTS_DIR,
    watch: FolderWatch | None = None,
    users: Users | None = None,
    conversations: Conversations | None = None,
) -> gr.Blocks:
    """The Blocks app over a loaded `RAG` or a library of collections (models and indexes are
    loaded once, by the caller); with `watch` (a `FolderWatch` running over the first collection),
    the Documents tab shows its syncs. With `users`, every event is answered for the signed-in
    user over the collections granted to them (the server's sign-in is `rag.ui.server.launch`'s),
    and their conversations are kept in `conversations`."""
    library = as_library(rag)
    access = Access(library, users)
    handlers = Handlers(library, reports_dir=reports_dir, watch=watch, access=access)
    history = History(access, conversations)
    # Signed in, nothing of any collection goes into the page itself: it is filled for the user on load.
    first = None if access.signs_in else library.get(library.names()[0])
    rows, sources, footer_text = handlers.documents_summary(first)
    # delete_cache: Gradio's own copies of uploads (and of the report image) go after an hour.
    with gr.Blocks(title=TITLE, delete_cache=(3600, 3600)) as demo:
        with gr.Row():
            gr.Markdown(INTRO)
            if access.signs_in:
                gr.Button("Sign out", link="/logout", size="sm", scale=0, min_width=90, elem_id="sign-out")
        collection = _collection_picker(library.names() if not access.signs_in else [])
        turns = gr.State([])
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                chat = _chat_tab(library.config, handlers.generators, sources)
                kept = _kept(signs_in=access.signs_in)
            with gr.Tab("Documents", id="documents"):
                documents = _documents_tab(library.config, rows, sources, watch=watch, filled=not access.signs_in)
            with gr.Tab("Evaluation", id="evaluation"):
                evaluation = _evaluation_tab(reports_dir)
        footer = gr.Markdown(footer_text, elem_id="rag-footer")
        chat_events = _wire_chat(handlers, chat, turns, collection)
        _wire_kept(history, chat, kept, turns, chat_events)
        index_changes = _wire_documents(handlers, documents, footer, collection)  # an upload, a removal
        if watch is not None:
            _wire_sync(handlers, documents, footer, collection, chat)
        refresh_outputs = [documents.table, documents.to_remove, footer, evaluation.report, evaluation.image]
        evaluation.refresh_button.click(handlers.refresh, inputs=[collection], outputs=refresh_outputs, **PRIVATE)
        loaded = demo.load(handlers.collections_view, outputs=[collection], show_progress="hidden", **PRIVATE)
        loaded = loaded.then(
            handlers.refresh, inputs=[collection], outputs=refresh_outputs, show_progress="hidden", **PRIVATE
        )
        loaded.then(history.choices, outputs=[kept.picker], show_progress="hidden", **PRIVATE)
        switched = collection.input(
            handlers.refresh, inputs=[collection], outputs=refresh_outputs, show_progress="hidden", **PRIVATE
        )
        _wire_scope_choices(handlers, chat, collection, [loaded, switched, *index_changes])
        gr.api(handlers.ask, api_name="ask")
    return demo


def _collection_picker(names: list[str]) -> gr.Dropdown:
    """The collection questions, uploads and removals go to; shown when there is a choice."""
    return gr.Dropdown(
        choices=names,
        value=names[0] if names else None,
        label="Collection",
        info="the set of documents to ask, and to upload to or remove from",
        elem_id="collection",
        visible=len(names) > 1,
        interactive=True,
        allow_custom_value=True,  # the choices are the user's, set on page load; `Access` checks every value
    )


def _kept(*, signs_in: bool) -> KeptTab:
    """Downloads of the chat (Markdown, JSON) and, signed in, the saved conversations."""
    saved = gr.State(None)
    with gr.Accordion("Conversations", open=False, elem_id="conversations"):
        with gr.Row():
            markdown = gr.DownloadButton("Download Markdown", visible=False, size="sm", elem_id="download-md")
            json = gr.DownloadButton("Download JSON", visible=False, size="sm", elem_id="download-json")
        with gr.Row(visible=signs_in):
            picker = gr.Dropdown(
                choices=[], value=None, label="Saved conversations", elem_id="saved-conversations", scale=4
            )
            open_button = gr.Button("Open", size="sm", scale=1, elem_id="open-conversation")
            delete_button = gr.Button("Delete", variant="stop", size="sm", scale=1, elem_id="delete-conversation")
        status = gr.Markdown(elem_id="conversation-status")
    return KeptTab(saved, picker, open_button, delete_button, status, markdown, json)


def examples_for(documents: list[str]) -> list[str]:
    """The example questions to offer: those about the demo article, when it is among `documents`
    (questions about a news article would only puzzle someone asking their own files).

    Example:
        >>> examples_for(["notes/" + SEED_FILE]) == EXAMPLES, examples_for(["report.pdf"])
        (True, [])
    """
    return list(EXAMPLES) if any(Path(d).name == SEED_FILE for d in documents) else []


def _chat_tab(defaults: RagConfig, generators: list[str], documents: list[str]) -> ChatTab:
    examples = examples_for(documents)
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            chatbot = gr.Chatbot(
                elem_id="chat",
                height=460,
                label="Chat",
                latex_delimiters=[],
                sanitize_html=True,
                allow_tags=False,
                feedback_options=None,
                buttons=["copy"],
                group_consecutive_messages=False,
                placeholder="Ask a question below" + (", or pick an example." if examples else "."),
            )
            with gr.Row():
                question = gr.Textbox(
                    show_label=False,
                    scale=5,
                    elem_id="question",
                    lines=1,
                    max_length=defaults.max_question_chars,
                    placeholder="Ask a question about your documents",
                )
                ask_button = gr.Button("Ask", variant="primary", scale=1, min_width=80, elem_id="ask")
            search_in, search_types = _scope_pickers(documents)
            if examples:
                gr.Examples([[q] for q in examples], inputs=[question], label="Examples (seed article)")
            with gr.Accordion("Settings", open=False, elem_id="settings"):
                settings = _settings(defaults, generators)
        with gr.Column(scale=2):
            gr.Markdown("### Sources")
            sources = gr.HTML(sources_html(None, 0), elem_id="sources", js_on_load=read_asset("sources.js"))
            gr.Markdown("### Document")
            viewer = gr.HTML(viewer_placeholder(), elem_id="doc-viewer", js_on_load=read_asset("viewer.js"))
    return ChatTab(chatbot, question, ask_button, *settings, sources, viewer, search_in, search_types)


def _scope_pickers(documents: list[str]) -> tuple[gr.Dropdown, gr.Dropdown]:
    """The "Search in" pickers: the documents (and file types) every question is searched in, until
    changed (none chosen: all)."""
    with gr.Row(elem_id="search-in-row"):
        search_in = gr.Dropdown(
            choices=documents,
            value=[],
            multiselect=True,
            label="Search in",
            info="ask within these documents only (none chosen: all documents); holds for follow-ups too",
            elem_id="search-in",
            scale=4,
        )
        search_types = gr.Dropdown(
            choices=file_types(documents),
            value=[],
            multiselect=True,
            label="File type",
            elem_id="search-types",
            scale=1,
        )
    return search_in, search_types


def _settings(defaults: RagConfig, generators: list[str]) -> tuple[gr.Radio, gr.Slider, gr.Radio, gr.Slider, gr.Radio]:
    """The Settings accordion: (mode, top-k, answer scorer, threshold, generator)."""
    mode = gr.Radio(
        list(MODES),
        value=defaults.mode,
        label="Retrieval mode",
        elem_id="mode",
        info="dense: embeddings · bm25: keywords · hybrid: both, fused",
    )
    top_k = gr.Slider(1, 20, value=defaults.top_k, step=1, label="Top-k passages", elem_id="top-k")
    scorer = gr.Radio(
        list(ANSWER_SCORERS),
        value=defaults.answer_scorer,
        label="Answer scorer",
        elem_id="answer-scorer",
        info="what picks the quoted sentence and the confidence · reader: the trained reader "
        "model · heuristic: similarity and word overlap",
    )
    threshold = gr.Slider(
        0.0,
        1.0,
        value=scorer_threshold(defaults, defaults.answer_scorer),
        step=0.01,
        label="Abstention threshold",
        elem_id="threshold",
        info="answer only when the answer scorer's confidence reaches this; a little below "
        'it, the closest passage is shown marked "Not sure" (resets to the scorer\'s '
        "default when the scorer changes)",
    )
    generator = gr.Radio(
        generators,
        value=defaults.generator,
        label="Answer generator",
        elem_id="generator",
        info=generator_info(defaults, generators),
    )
    return mode, top_k, scorer, threshold, generator


def _documents_tab(
    defaults: RagConfig, rows: list[list[object]], sources: list[str], *, watch: FolderWatch | None, filled: bool
) -> DocumentsTab:
    """The Documents tab; `filled`: the folder sync box shows the watch's news from the start (without
    sign-in; signed in, only users who may read the watched collection get it, on the timer)."""
    limit = format_size(int(defaults.max_file_mb * 1024 * 1024))
    sync = gr.Markdown(
        sync_markdown(watch.status()) if watch is not None and filled else "",
        elem_id="sync-status",
        visible=watch is not None,
        label="Folder sync",
    )
    gr.Markdown(
        f"Upload {' '.join(SUPPORTED_SUFFIXES)} files, several at once, up to {limit} "
        f"each. They can be asked about as soon as they are indexed."
    )
    files = gr.File(label="Upload documents", file_count="multiple", type="filepath", elem_id="upload", height=150)
    status = gr.Markdown(elem_id="upload-status")
    table = gr.Dataframe(
        value=rows,
        headers=["Document", "Chunks", "Added"],
        interactive=False,
        elem_id="doc-table",
        label="Indexed documents",
        wrap=True,
    )
    with gr.Row():
        to_remove = gr.Dropdown(
            choices=sources,
            value=None,
            label="Document to remove",
            elem_id="remove-choice",
            scale=4,
            allow_custom_value=True,  # the choices follow the chosen collection; removal checks the name
        )
        remove_button = gr.Button("Remove from index", variant="stop", elem_id="remove", scale=1)
    return DocumentsTab(files, status, table, to_remove, remove_button, sync)


def _evaluation_tab(reports_dir: Path) -> EvaluationTab:
    report_md, image = eval_report(reports_dir)
    gr.Markdown(
        "The latest report written by `rag eval` (eval/reports/latest.md and latest.png); "
        "before any, the report of the demo questions (eval/reports/seed.md)."
    )
    refresh_button = gr.Button("Reload report", size="sm", elem_id="reload-report")
    plot = gr.Image(
        image,
        label="Latest evaluation",
        type="pil",
        format="png",
        interactive=False,
        elem_id="eval-plot",
        height=420,
        visible=image is not None,
        buttons=["download", "fullscreen"],
    )
    report = gr.Markdown(report_md, elem_id="eval-report", max_height=700)
    return EvaluationTab(refresh_button, plot, report)


def _wire_chat(handlers: Handlers, chat: ChatTab, turns: gr.State, collection: gr.Dropdown) -> tuple[Any, Any]:
    """Wire the chat; returns its (question asked, chat cleared) events."""
    settings = [chat.mode, chat.top_k, chat.threshold, chat.generator, chat.scorer, chat.search_in, chat.search_types]
    asked = gr.on(
        [chat.question.submit, chat.ask_button.click],
        handlers.respond,
        inputs=[chat.question, chat.chatbot, turns, *settings, collection],
        outputs=[chat.question, chat.chatbot, turns, chat.sources],
        show_progress="minimal",
        **PRIVATE,
    )
    chat.scorer.change(
        handlers.threshold_for, inputs=[chat.scorer], outputs=[chat.threshold], show_progress="hidden", **PRIVATE
    )
    cleared = chat.chatbot.clear(handlers.clear_chat, outputs=[turns, chat.sources, chat.viewer], **PRIVATE)
    chat.sources.cite(handlers.open_citation, inputs=[turns], outputs=[chat.viewer], show_progress="hidden", **PRIVATE)
    return asked, cleared


def _wire_kept(history: History, chat: ChatTab, kept: KeptTab, turns: gr.State, events: tuple[Any, Any]) -> None:
    """After each answer the chat is saved (signed in) and its downloads renewed; a saved
    conversation opens into the chat or is deleted."""
    asked, cleared = events
    downloads = [kept.markdown, kept.json]
    asked.then(history.save, inputs=[kept.saved, turns], outputs=[kept.saved, kept.picker, *downloads], **PRIVATE)
    cleared.then(history.new_chat, outputs=[kept.saved, *downloads], **PRIVATE)
    kept.open_button.click(
        history.open,
        inputs=[kept.picker],
        outputs=[chat.chatbot, turns, chat.sources, kept.saved, kept.status, *downloads],
        **PRIVATE,
    )
    kept.delete_button.click(
        history.delete, inputs=[kept.picker, kept.saved], outputs=[kept.picker, kept.saved, kept.status], **PRIVATE
    )


def _wire_scope_choices(handlers: Handlers, chat: ChatTab, collection: gr.Dropdown, events: list[Any]) -> None:
    """After the page loads, the collection changes, and after each upload or removal, the
    "Search in" pickers offer the collection's documents again (a removed document leaves the choice)."""
    pickers = [chat.search_in, chat.search_types]
    for event in events:
        event.then(
            handlers.scope_choices,
            inputs=[*pickers, collection],
            outputs=pickers,
            show_progress="hidden",
            **PRIVATE,
        )


def _wire_documents(
    handlers: Handlers, documents: DocumentsTab, footer: gr.Markdown, collection: gr.Dropdown
) -> list[Any]:
    """Wire the Documents tab; returns the events after which the index may hold other documents."""
    index_outputs = [documents.table, documents.to_remove, footer]
    writes: dict[str, Any] = {"show_progress_on": [documents.status], "concurrency_limit": 1, "concurrency_id": WRITES}
    uploaded = documents.files.upload(
        handlers.upload,
        inputs=[documents.files, collection],
        outputs=[documents.files, documents.status, *index_outputs],
        **writes,
        **PRIVATE,
    )
    removed = documents.remove_button.click(
        handlers.remove,
        inputs=[documents.to_remove, collection],
        outputs=[documents.status, *index_outputs],
        **writes,
        **PRIVATE,
    )
    documents.table.select(handlers.pick_row, inputs=[documents.table], outputs=[documents.to_remove], **PRIVATE)
    return [uploaded, removed]


def _wire_sync(
    handlers: Handlers, documents: DocumentsTab, footer: gr.Markdown, collection: gr.Dropdown, chat: ChatTab
) -> None:
    """Every SYNC_POLL_S the page asks whether the folder watch changed anything since it last
    looked (a version number in the page's state); only then are the box, table, footer and the
    "Search in" pickers sent."""
    seen = gr.State(-1)
    timer = gr.Timer(SYNC_POLL_S)
    pickers = [chat.search_in, chat.search_types]
    outputs = [seen, documents.sync, documents.table, documents.to_remove, footer, *pickers]
    timer.tick(
        handlers.sync_view,
        inputs=[seen, collection, *pickers],
        outputs=outputs,
        show_progress="hidden",
        **PRIVATE,
    )
