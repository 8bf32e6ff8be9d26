"""What the UI does on each event: one method per Gradio event, over one loaded `RAG`.

The methods take and return component values (`rag.ui.blocks` wires them to the layout); the
answering, indexing and removing are `rag.pipeline`'s, the strings `rag.ui.render`'s.

Example:
    >>> handlers = Handlers(RAG.open("index"), reports_dir=REPORTS_DIR)  # doctest: +SKIP
    >>> handlers.ask("What did Blinken warn?")["citations"][0]["source"]  # doctest: +SKIP
    '000_a8b8e53ddfe7d5e4.txt'
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import gradio as gr

from rag.collections import DEFAULT
from rag.config import RagConfig
from rag.generate import generator_failure, generator_label
from rag.pipeline import RAG, BadInput, add_uploads, remove_upload, validate_question
from rag.reader import ReaderUnavailable
from rag.scope import Scope
from rag.store import IndexError_
from rag.types import Answer, Document
from rag.ui.access import Access, Denied, Library, SingleIndex, as_library, request_user
from rag.ui.evaluation import eval_report
from rag.ui.render import (
    answer_markdown,
    answer_pieces,
    cannot_answer_markdown,
    document_html,
    document_rows,
    draft_markdown,
    escape_markdown,
    footer_markdown,
    generated_answer_markdown,
    generator_error_markdown,
    pending_sources,
    sources_html,
    stream_steps,
    sync_markdown,
    viewer_placeholder,
)
from rag.ui.settings import (
    api_config,
    api_scope,
    chat_config,
    chat_scope,
    file_types,
    generator_choices,
    scorer_threshold,
)
from rag.ui.uploads import (
    refused_line,
    removal_line,
    screen_uploads,
    status_markdown,
    upload_count_problem,
    upload_lines,
)
from rag.watch import FolderWatch

STREAM_DELAY_S = 0.03
log = logging.getLogger(__name__)

Turns = list[Answer]
ChatUpdate = tuple[Any, ...]  # (question box, chat messages, turns, Sources panel)


class Handlers:
    """The event handlers of one app. The served collections (`rag`: one index, or a library of
    collections) are shared by every session; a session's own state (its chat, the answers its
    citations point into) comes in and goes out as component values. With `access` signing in,
    every event is answered for the signed-in user (`gr.Request.username`) and only over the
    collections they may read (or write, for uploads and removals)."""

    def __init__(
        self,
        rag: RAG | Library,
        *,
        reports_dir: Path,
        watch: FolderWatch | None = None,
        access: Access | None = None,
    ) -> None:
        library = as_library(rag)
        self.access = access or Access(library)
        self.rag = library.rag if isinstance(library, SingleIndex) else None  # the one index, when one is served
        self.defaults: RagConfig = library.config
        self.generators = generator_choices(self.defaults)
        self.reports_dir = reports_dir
        self.watch = watch

    # --- chat ----------------------------------------------------------------------------------

    def respond(
        self,
        message: str,
        messages: list[dict],
        turns: Turns,
        mode: str,
        top_k: float,
        threshold: float,
        generator: str | None = None,
        answer_scorer: str | None = None,
        search_in: list[str] | None = None,
        search_types: list[str] | None = None,
        collection: str | None = None,
        request: gr.Request | None = None,
    ) -> Iterator[ChatUpdate]:
        """One chat turn with the Settings' values, streamed as updates, searched within the
        documents and file types chosen under "Search in" (all when none is chosen; the choice
        holds for every question, follow-ups included, until it is changed). Bad settings or a
        bad question leave the question typed, with a warning. `collection`: the collection picked
        (None: the first the user may read)."""
        question = (message or "").strip()
        try:
            _, rag = self.access.reader(request_user(request), collection)
            scope = chat_scope(search_in, search_types)
            config = chat_config(
                self.defaults,
                self.generators,
                mode=mode,
                top_k=top_k,
                threshold=threshold,
                generator=generator,
                answer_scorer=answer_scorer,
            )
            question = validate_question(question, config=config)
        except (BadInput, ValueError, Denied) as exc:
            gr.Warning(str(exc))
            yield message, messages, turns, gr.skip()
            return
        messages = list(messages or []) + [
            {"role": "user", "content": escape_markdown(question)},
            {"role": "assistant", "content": "*Searching the documents…*"},
        ]
        yield "", messages, turns, pending_sources("Searching…")
        history = [(a.question, a.text) for a in turns]
        turn = self._generated_turn if config.generator != "extractive" else self._quoted_turn
        yield from turn(question, rag=rag, messages=messages, turns=turns, history=history, config=config, scope=scope)

    def _quoted_turn(
        self,
        question: str,
        *,
        rag: RAG,
        messages: list[dict],
        turns: Turns,
        history: list[tuple[str, str]],
        config: RagConfig,
        scope: Scope,
    ) -> Iterator[ChatUpdate]:
        """An extractive answer, its words streamed in (a refusal or a "not sure" answer shown whole)."""
        try:
            answer = rag.ask(question, history=history, config=config, scope=scope)
        except (BadInput, ReaderUnavailable) as exc:
            messages[-1] = {"role": "assistant", "content": cannot_answer_markdown(exc)}
            yield "", messages, turns, sources_html(None, 0)
            return
        turn = len(turns)
        turns = list(turns) + [answer]
        if answer.abstained:
            steps = [answer_markdown(answer, turn)]
        else:
            steps = stream_steps(answer_pieces(answer, turn))
        for k, partial in enumerate(steps):
            messages[-1] = {"role": "assistant", "content": partial}
            last = k == len(steps) - 1
            yield "", messages, turns if last else gr.skip(), sources_html(answer, turn) if last else gr.skip()
            if not last:
                time.sleep(STREAM_DELAY_S)

    def _generated_turn(
        self,
        question: str,
        *,
        rag: RAG,
        messages: list[dict],
        turns: Turns,
        history: list[tuple[str, str]],
        config: RagConfig,
        scope: Scope,
    ) -> Iterator[ChatUpdate]:
        """A generated answer: the model's text streams in as an escaped draft marked as being
        verified; the verified answer then replaces it. A failing generator leaves a message in
        the chat instead of the answer, and the app keeps working."""
        label = generator_label(config.generator, config.llm_model)
        messages[-1] = {"role": "assistant", "content": draft_markdown("", label)}
        yield "", messages, gr.skip(), pending_sources("Writing and verifying an answer… its sources appear here.")
        draft, answer = "", None
        try:
            for item in rag.ask_stream(question, history=history, config=config, scope=scope):
                if not isinstance(item, str):
                    answer = item
                elif item:
                    draft += item
                    messages[-1] = {"role": "assistant", "content": draft_markdown(draft, label)}
                    yield "", messages, gr.skip(), gr.skip()
            if answer is None:
                raise RuntimeError("the generator ended without an answer")
        except (BadInput, ReaderUnavailable) as exc:
            messages[-1] = {"role": "assistant", "content": cannot_answer_markdown(exc)}
            yield "", messages, gr.skip(), sources_html(None, 0)
            return
        except Exception as exc:  # server unreachable, model missing, a timeout: say so, keep the app working
            log.warning("generator %s failed: %r", config.generator, exc, exc_info=True)
            messages[-1] = {"role": "assistant", "content": generator_error_markdown(generator_failure(exc, config))}
            yield "", messages, gr.skip(), sources_html(None, 0)
            return
        turn = len(turns)
        messages[-1] = {"role": "assistant", "content": generated_answer_markdown(answer, turn, label=label)}
        yield "", messages, list(turns) + [answer], sources_html(answer, turn)

    def threshold_for(self, scorer: str) -> float:
        """The Settings slider's value when the answer scorer changes: that scorer's threshold."""
        return scorer_threshold(self.defaults, scorer)

    def clear_chat(self) -> tuple[Turns, str, str]:
        """A cleared chat empties the turns, the Sources panel and the document viewer."""
        return [], sources_html(None, 0), viewer_placeholder()

    def open_citation(self, turns: Turns, evt: gr.EventData, request: gr.Request | None = None) -> str:
        """The document viewer for a click on an [n] marker or a source card, at the quoted
        sentence (or the nearest passage). The page script sends {"turn", "n"} for a citation or
        {"turn", "hit"} for a nearest passage."""
        data = evt._data if isinstance(getattr(evt, "_data", None), dict) else {}
        turn = _int(data.get("turn"))
        if not 0 <= turn < len(turns):
            return viewer_placeholder("That answer is no longer in this chat.")
        span = _clicked_span(turns[turn], data)
        if isinstance(span, str):
            return viewer_placeholder(span)
        try:  # asked again: a grant removed since the answer closes its documents too
            _, rag = self.access.reader(request_user(request), turns[turn].collection)
        except Denied as exc:
            return viewer_placeholder(str(exc))
        document = rag.index.document(span.source)
        if document is None:
            return viewer_placeholder(f"{span.source} is no longer in the index.")
        start, end = _locate(document, span)
        return document_html(document, start, end, label=span.label, nonce=time.time_ns())

    # --- documents -----------------------------------------------------------------------------

    def upload(
        self,
        files: list[str] | None,
        collection: str | None = None,
        progress: gr.Progress = gr.Progress(),  # noqa: B008  (Gradio injects the tracker through this default)
        request: gr.Request | None = None,
    ) -> tuple[Any, ...]:
        """Check and index uploaded files into `collection`: (file box, status, table, remove choice, footer)."""
        files = list(files or [])
        try:
            _, rag = self.access.writer(request_user(request), collection)
        except Denied as exc:
            return None, status_markdown([f"✗ {escape_markdown(str(exc))}"]), *self._view_or_skip(collection, request)
        too_many = upload_count_problem(len(files), limit=self.defaults.max_files_per_upload)
        if too_many:
            return None, status_markdown([f"✗ {too_many}"]), *self.documents_view(rag)
        accepted, refused = screen_uploads(files, max_mb=self.defaults.max_file_mb)
        lines = [refused_line(name, reason) for name, reason in refused]
        if accepted:
            lines += self._index_uploads(rag, accepted, progress)
        return None, status_markdown(lines or ["Choose one or more files to upload."]), *self.documents_view(rag)

    def _index_uploads(self, rag: RAG, accepted: dict[str, Path], progress: gr.Progress) -> list[str]:
        done = 0

        def embedded(n: int) -> None:
            nonlocal done
            done += n
            progress((done, None), desc="Embedding", unit="chunks")

        progress(0, desc=f"Reading {len(accepted)} file(s)")
        try:
            report = add_uploads(
                rag, accepted, progress=embedded, on_reload=lambda: progress(1.0, desc="Reloading the index")
            )
        except (IndexError_, ValueError) as exc:  # index locked by `rag index`; a document too large
            return [f"✗ Nothing added: {escape_markdown(str(exc))}"]
        return upload_lines(report)

    def remove(
        self, source: str | None, collection: str | None = None, request: gr.Request | None = None
    ) -> tuple[Any, ...]:
        """Remove the chosen document from `collection`: (status, table, remove choice, footer)."""
        try:
            _, rag = self.access.writer(request_user(request), collection)
        except Denied as exc:
            return status_markdown([f"✗ {escape_markdown(str(exc))}"]), *self._view_or_skip(collection, request)
        if not source:
            lines = ["Choose a document to remove."]
        else:
            try:
                lines = [removal_line(source, remove_upload(rag, source))]
            except (BadInput, IndexError_) as exc:
                lines = [f"✗ {escape_markdown(str(exc))}"]
        return status_markdown(lines), *self.documents_view(rag)

    def sync_view(
        self,
        seen: int,
        collection: str | None = None,
        search_in: list[str] | None = None,
        search_types: list[str] | None = None,
        request: gr.Request | None = None,
    ) -> tuple[Any, ...]:
        """On the Documents tab's timer: (seen version, sync box, table, remove choice, footer,
        "Search in" documents, file types), all skipped unless the folder watch changed something
        since this page last looked; then the pickers offer the documents as they are now (the
        choices made kept where still indexed). The watch keeps the first collection (the index
        `rag serve` was started on) in sync; its news goes only to users who may read it."""
        nothing = (gr.skip(),) * 7
        if self.watch is None:
            return nothing
        status = self.watch.status()
        if status.version == seen:
            return nothing
        username = request_user(request)
        try:
            _, watched = self.access.reader(username, DEFAULT)
            _, shown = self.access.reader(username, collection)
        except Denied:
            return nothing
        if shown is not watched:  # another collection is on screen: its table and pickers stay
            return status.version, sync_markdown(status), *(gr.skip(),) * 5
        pickers = self.scope_choices(search_in, search_types, collection, request)
        return status.version, sync_markdown(status), *self.documents_view(watched), *pickers

    def pick_row(self, rows: Any, evt: gr.SelectData) -> Any:
        """A click on a table row picks its document to remove."""
        row = evt.row_value if getattr(evt, "row_value", None) else None
        return gr.update(value=row[0]) if row else gr.skip()

    def refresh(self, collection: str | None = None, request: gr.Request | None = None) -> tuple[Any, ...]:
        """On page load and "Reload report": (table, remove choice, footer, report, report image)."""
        report_md, image = eval_report(self.reports_dir)
        return (
            *self._view_or_skip(collection, request, empty=True),
            report_md,
            gr.update(value=image, visible=image is not None),
        )

    def collections_view(self, request: gr.Request | None = None) -> Any:
        """On page load: the collection picker with the collections the user may read (shown
        when there is a choice), the first chosen."""
        try:
            names = self.access.readable(request_user(request))
        except Denied:
            names = []
        return gr.update(choices=names, value=names[0] if names else None, visible=len(names) > 1)

    def documents_summary(self, rag: RAG | None = None) -> tuple[list[list[Any]], list[str], str]:
        """The documents of `rag` (default: the single index served) as table rows and names, and the footer."""
        rag = rag or self.rag
        if rag is None:
            return [], [], ""
        documents = rag.index.documents()
        backend = getattr(rag.embedder, "backend", None) or self.defaults.embed_backend
        return (
            document_rows(documents),
            [d.source for d in documents],
            footer_markdown(len(documents), len(rag.index), backend=backend),
        )

    def scope_choices(
        self,
        search_in: list[str] | None,
        search_types: list[str] | None,
        collection: str | None = None,
        request: gr.Request | None = None,
    ) -> tuple[Any, Any]:
        """Updates for the "Search in" pickers (documents, file types) after the index changed: the
        collection's documents and their types, the choices made kept where still indexed. A value is
        sent only when a choice left the index: these updates answer the page load and uploads, and
        one sent back unchanged would undo a pick made while it was on its way."""
        try:
            _, rag = self.access.reader(request_user(request), collection)
            sources = [d.source for d in rag.index.documents()]
        except Denied:
            sources = []
        types = file_types(sources)
        return _picker_update(sources, search_in), _picker_update(types, search_types)

    def documents_view(self, rag: RAG | None = None) -> tuple[Any, ...]:
        """Updates for (table, remove choice, footer) after the index changed."""
        rows, sources, footer = self.documents_summary(rag)
        return rows, gr.update(choices=sources, value=None), footer

    def _view_or_skip(self, collection: str | None, request: gr.Request | None, *, empty: bool = False) -> tuple:
        """The documents view of `collection` if the user may read it; else nothing (or an empty
        view, on page load)."""
        try:
            _, rag = self.access.reader(request_user(request), collection)
        except Denied:
            return ([], gr.update(choices=[], value=None), "") if empty else (gr.skip(),) * 3
        return self.documents_view(rag)

    # --- API -----------------------------------------------------------------------------------

    def ask(
        self,
        question: str,
        top_k: int | None = None,
        mode: str | None = None,
        generator: str | None = None,
        answer_scorer: str | None = None,
        source: list[str] | str | None = None,
        folder: list[str] | str | None = None,
        type: list[str] | str | None = None,  # as `rag ask --type`
        after: str | None = None,
        before: str | None = None,
        collection: str | None = None,
        request: gr.Request | None = None,
    ) -> dict:
        """Answer `question` from the index: the JSON object `rag ask --json` prints. `generator`:
        "extractive" (quoted sentences), "local" (SmolLM2-135M, every sentence verified), or the
        server's configured "openai"/"ollama"; default: the server's. `answer_scorer`: "reader"
        (the trained reader) or "heuristic", with that scorer's threshold; default: the server's.
        A confidence in the scorer's "not sure" band gives `"tentative": true` (and `"abstained": true`).
        `source`, `folder`, `type`, `after`, `before`: search only some documents, as `rag ask`'s
        flags of those names (`rag.scope`; dates YYYY-MM-DD, documents without a recorded date are
        left out by a date); the answer's `"scope"` echoes them. A scope no document is in is an
        error naming it, not a refusal. `collection`: the collection to ask (default: the first the
        signed-in user may read); one they may not read is an error, whether it exists or not."""
        try:
            _, rag = self.access.reader(request_user(request), collection)
            config = api_config(
                self.defaults, self.generators, top_k=top_k, mode=mode, generator=generator, answer_scorer=answer_scorer
            )
            scope = api_scope(source, folder, type, after, before)
        except (BadInput, ValueError, TypeError, Denied) as exc:
            raise gr.Error(str(exc), print_exception=False) from None  # bad input is no server fault
        try:
            return rag.ask(question, config=config, scope=scope).to_json()
        except (BadInput, ValueError, TypeError) as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        except ReaderUnavailable as exc:
            raise gr.Error(f"{exc} Ask with answer_scorer=heuristic.", print_exception=False) from None
        except Exception as exc:  # the generator failed (server unreachable, model missing)
            if config.generator == "extractive":
                raise
            log.warning("generator %s failed: %r", config.generator, exc)
            raise gr.Error(
                f"{generator_failure(exc, config)}. Ask with generator=extractive for an answer "
                "quoted from the documents.",
                print_exception=False,
            ) from None


class _Span(NamedTuple):
    """What a click in the chat or the Sources panel opens: a span of a document."""

    source: str
    start: int
    end: int
    text: str
    label: str


def _clicked_span(answer: Answer, data: dict) -> _Span | str:
    """The span a click points at: citation `data["n"]`'s quote or nearest passage `data["hit"]`,
    or why there is none."""
    if data.get("n") is not None:
        cited = [c for c in answer.citations if c.n == _int(data["n"])]
        if not cited:
            return "No such citation."
        c = cited[0]
        return _Span(c.source, c.start, c.end, c.quote, "quoted sentence")
    k = _int(data.get("hit"))
    if not 0 <= k < len(answer.hits):
        return "No such passage."
    chunk = answer.hits[k].chunk
    return _Span(chunk.source, chunk.start, chunk.end, chunk.text, "nearest passage (not an answer)")


def _locate(document: Document, span: _Span) -> tuple[int, int]:
    """The span's offsets in `document`, found again by its text if the document changed since."""
    if document.text[span.start : span.end] == span.text:
        return span.start, span.end
    found = document.text.find(span.text)
    return (found, found + len(span.text)) if found >= 0 else (0, 0)


def _int(value: object) -> int:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return -1


def _picker_update(choices: list[str], chosen: list[str] | None) -> Any:
    """A multiselect picker offering `choices`; its value is set only if some of `chosen` is gone."""
    offered = set(choices)
    kept = [c for c in chosen or [] if c in offered]
    if len(kept) == len(chosen or []):
        return gr.update(choices=choices)
    return gr.update(choices=choices, value=kept)
