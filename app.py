"""The chat UI: a thin Gradio layer over `rag.pipeline`. Start it with `rag serve` (or `python app.py`).

Chat with cited answers streamed in, a Sources panel with the quoted passages and a document
viewer, a Documents tab to upload and remove files, an Evaluation tab, and an `ask` API endpoint
that returns the `rag ask --json` object. Answers are quoted sentences by default; under Settings a
language model can write them instead ("local": SmolLM2-135M in this process, or the server's
`rag serve --generator openai/ollama`): its text streams in as a draft, then only the sentences the
cited passages support are kept, the others shown struck through as not supported. The answer scorer
(*Settings → Answer scorer*: the trained reader or the heuristic) picks the quoted sentence and the
confidence; a confidence just under the threshold shows the closest passage marked "Not sure".

    >>> from gradio_client import Client  # doctest: +SKIP
    >>> Client("http://127.0.0.1:7860/").predict("What did Blinken warn?", api_name="/ask")  # doctest: +SKIP

Retrieval, answering and indexing all happen in `rag.pipeline`; rendering and escaping in `rag.ui`.
"""
from __future__ import annotations

import os

# Offline: no usage analytics, no model-hub calls. Set before gradio or transformers are imported.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import logging  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Iterator  # noqa: E402

import gradio as gr  # noqa: E402

from rag import ui  # noqa: E402
from rag.config import ANSWER_SCORERS, GENERATORS, MODES, RagConfig  # noqa: E402
from rag.pipeline import RAG, BadInput, build_index, remove_documents, validate_question  # noqa: E402
from rag.reader import ReaderUnavailable  # noqa: E402
from rag.store import IndexError_  # noqa: E402
from rag.types import Answer  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent
REPORTS_DIR = REPO_ROOT / "eval" / "reports"
UPLOADS = "uploads"  # under the index folder, so an index and its uploaded files travel together
EXAMPLES = [
    "How many North Korean soldiers have arrived in Kursk?",
    "What did Blinken warn?",
    "Who met Chinese diplomats at Ambassador Shi Feng's residence?",
]
STREAM_DELAY_S = 0.03
WRITES = "index-writes"  # concurrency group: one upload or removal at a time
LOCAL_GENERATORS = ("extractive", "local")  # always offered; "openai"/"ollama" only when `rag serve` set one up
log = logging.getLogger("rag.app")

# Clicks on a source card, or on an [n] marker in the chat, open the document in the viewer.
# Markers are links to "#cite-<turn>-<n>"; one capturing listener on the page turns them into
# this component's "cite" event (the link itself never navigates).
SOURCES_JS = """
const openCitation = (data) => trigger('cite', data);
element.addEventListener('click', (event) => {
  const card = event.target.closest('.rag-card');
  if (!card) return;
  const data = {turn: Number(card.dataset.turn)};
  if (card.dataset.n !== undefined) data.n = Number(card.dataset.n);
  if (card.dataset.hit !== undefined) data.hit = Number(card.dataset.hit);
  openCitation(data);
});
window.__ragOpenCitation = openCitation;
// Scroll each card's passage so its highlighted sentence shows.
watch('value', () => {
  for (const box of element.querySelectorAll('.rag-passage')) {
    const mark = box.querySelector('mark');
    if (mark) box.scrollTop = Math.max(0, mark.offsetTop - 24);
  }
});
if (!window.__ragMarkerListener) {
  window.__ragMarkerListener = true;
  document.addEventListener('click', (event) => {
    const link = event.target.closest ? event.target.closest('a[href^="#cite-"]') : null;
    if (!link) return;
    const match = /^#cite-(\\d+)-(\\d+)$/.exec(link.getAttribute('href') || '');
    if (!match) return;
    event.preventDefault();
    event.stopPropagation();
    window.__ragOpenCitation({turn: Number(match[1]), n: Number(match[2])});
  }, true);
}
"""

VIEWER_JS = """
watch('value', () => {
  const mark = element.querySelector('#rag-cited');
  if (mark) mark.scrollIntoView({block: 'center', inline: 'nearest'});
});
"""

CSS = """
#sources .rag-sources, #doc-viewer .rag-doc { font-size: 0.92rem; }
.rag-empty { color: var(--body-text-color-subdued); padding: 0.75rem; border: 1px dashed var(--border-color-primary);
  border-radius: 8px; }
.rag-query { margin-bottom: 0.6rem; color: var(--body-text-color-subdued); }
.rag-query q { color: var(--body-text-color); font-style: italic; }
.rag-card { display: block; width: 100%; text-align: left; cursor: pointer; margin: 0 0 0.6rem 0;
  padding: 0.6rem 0.75rem; border: 1px solid var(--border-color-primary); border-radius: 8px;
  background: var(--block-background-fill); color: var(--body-text-color); font: inherit; }
.rag-card:hover, .rag-card:focus { border-color: var(--color-accent); outline: none; }
.rag-card-head { display: block; font-weight: 600; margin-bottom: 0.35rem; }
.rag-n { color: var(--color-accent); }
.rag-score, .rag-page { font-weight: 400; color: var(--body-text-color-subdued); }
.rag-passage { display: block; position: relative; white-space: pre-wrap; line-height: 1.45; max-height: 14em;
  overflow: auto; }
.rag-passage mark, .rag-doc mark, .rag-legend mark { background: #ffe58a; color: #1f1f1f; padding: 0 1px; }
.rag-nearest { border-style: dashed; opacity: 0.85; }
.rag-abstain { margin: 0 0 0.6rem 0; padding: 0.5rem 0.75rem; border-radius: 8px; background: #fff4e5;
  color: #7a4b00; border: 1px solid #f5c27a; font-weight: 600; }
.rag-tentative { margin: 0 0 0.6rem 0; padding: 0.5rem 0.75rem; border-radius: 8px; background: #eef3ff;
  color: #1f3b7a; border: 1px dashed #7a9bf5; font-weight: 600; }
.rag-doc-head { padding: 0.4rem 0; border-bottom: 1px solid var(--border-color-primary); margin-bottom: 0.5rem;
  font-weight: 600; }
.rag-doc-note { color: var(--body-text-color-subdued); margin-bottom: 0.5rem; }
.rag-doc-text { white-space: pre-wrap; line-height: 1.5; max-height: 420px; overflow: auto; padding-right: 0.4rem; }
.rag-doc mark.rag-cited { outline: 2px solid #e0a800; }
#doc-viewer { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 0 0.75rem 0.5rem; }
#chat a[href^="#cite-"] { display: inline-block; padding: 0 0.3em; border-radius: 4px; font-weight: 600;
  font-size: 0.85em; text-decoration: none; background: var(--color-accent-soft); color: var(--color-accent); }
#chat a[href^="#cite-"]:hover { background: var(--color-accent); color: white; }
#chat del { color: var(--body-text-color-subdued); text-decoration-color: #c0392b; }
#rag-footer { text-align: center; color: var(--body-text-color-subdued); font-size: 0.85rem; }
"""


def _index_summary(rag: RAG) -> tuple[list[list[Any]], list[str], str]:
    documents = rag.index.documents()
    return (ui.document_rows(documents), [d.source for d in documents],
            ui.footer_markdown(len(documents), len(rag.index)))


def _status(lines: list[str]) -> str:
    return "\n".join(f"- {line}" for line in lines)


def build_app(rag: RAG, *, reports_dir: Path = REPORTS_DIR) -> gr.Blocks:
    """The Blocks app over a loaded `RAG` (model and index are loaded once, by the caller)."""
    defaults = rag.config
    uploads_dir = Path(rag.index.dir) / UPLOADS

    # --- chat ----------------------------------------------------------------------------------
    generators = generator_choices(defaults)

    def respond(message: str, messages: list[dict], turns: list[Answer], mode: str, top_k: float,
                threshold: float, generator: str | None = None,
                answer_scorer: str | None = None) -> Iterator[tuple[Any, ...]]:
        question = (message or "").strip()
        try:
            config = defaults.replace(
                mode=mode, top_k=int(top_k), generator=check_generator(generator or defaults.generator, generators),
                answer_scorer=check_answer_scorer(answer_scorer or defaults.answer_scorer),
            ).with_threshold(float(threshold))  # the chosen scorer's threshold, its "not sure" band below it
            question = validate_question(question, config=config)
        except (BadInput, ValueError) as exc:
            gr.Warning(str(exc))
            yield message, messages, turns, gr.skip()
            return
        messages = list(messages or []) + [
            {"role": "user", "content": ui.escape_markdown(question)},
            {"role": "assistant", "content": "*Searching the documents…*"}]
        yield "", messages, turns, '<div class="rag-sources rag-empty">Searching…</div>'
        history = [(a.question, a.text) for a in turns]
        if config.generator != "extractive":
            yield from respond_generated(rag, question, messages=messages, turns=turns, history=history,
                                         config=config)
            return
        try:
            answer = rag.ask(question, history=history, config=config)
        except (BadInput, ReaderUnavailable) as exc:
            messages[-1] = {"role": "assistant", "content": cannot_answer_markdown(exc)}
            yield "", messages, turns, ui.sources_html(None, 0)
            return
        turn = len(turns)
        turns = list(turns) + [answer]
        if answer.abstained:  # a refusal, or a tentative answer marked "not sure": shown whole
            steps = [ui.answer_markdown(answer, turn)]
        else:
            steps = ui.stream_steps(ui.answer_pieces(answer, turn))
        for k, partial in enumerate(steps):
            messages[-1] = {"role": "assistant", "content": partial}
            last = k == len(steps) - 1
            yield "", messages, turns if last else gr.skip(), ui.sources_html(answer, turn) if last else gr.skip()
            if not last:
                time.sleep(STREAM_DELAY_S)

    def open_citation(turns: list[Answer], evt: gr.EventData) -> str:
        # The page script sends {"turn", "n"} for a citation or {"turn", "hit"} for a nearest passage.
        data = evt._data if isinstance(getattr(evt, "_data", None), dict) else {}
        turn = _int(data.get("turn"))
        if not 0 <= turn < len(turns):
            return ui.viewer_placeholder("That answer is no longer in this chat.")
        answer = turns[turn]
        if data.get("n") is not None:
            cited = [c for c in answer.citations if c.n == _int(data["n"])]
            if not cited:
                return ui.viewer_placeholder("No such citation.")
            c = cited[0]
            source, start, end, quote, label = c.source, c.start, c.end, c.quote, "quoted sentence"
        else:
            k = _int(data.get("hit"))
            if not 0 <= k < len(answer.hits):
                return ui.viewer_placeholder("No such passage.")
            chunk = answer.hits[k].chunk
            source, start, end, quote, label = (chunk.source, chunk.start, chunk.end, chunk.text,
                                                "nearest passage (not an answer)")
        document = rag.index.document(source)
        if document is None:
            return ui.viewer_placeholder(f"{source} is no longer in the index.")
        if document.text[start:end] != quote:  # the document changed since the answer
            found = document.text.find(quote)
            start, end = (found, found + len(quote)) if found >= 0 else (0, 0)
        return ui.document_html(document, start, end, label=label, nonce=time.time_ns())

    # --- documents -----------------------------------------------------------------------------
    def upload(files: list[str] | None, progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:
        lines: list[str] = []
        accepted: dict[str, Path] = {}
        files = list(files or [])
        too_many = ui.upload_count_problem(len(files), limit=defaults.max_files_per_upload)
        if too_many:
            rows, sources, footer = _index_summary(rag)
            return None, _status([f"✗ {too_many}"]), rows, gr.update(choices=sources, value=None), footer
        for item in files:
            path = Path(item)
            name = ui.sanitize_filename(path.name)
            problem = ui.upload_problem(name, path.stat().st_size, max_mb=defaults.max_file_mb)
            if problem is None and name in accepted:
                problem = "another file in this upload has the same name"
            if problem:
                lines.append(f"✗ **{ui.escape_markdown(name)}** not added: {ui.escape_markdown(problem)}")
            else:
                accepted[name] = path
        if accepted:
            lines += _index_uploads(accepted, progress)
        if not lines:
            lines = ["Choose one or more files to upload."]
        rows, sources, footer = _index_summary(rag)
        return None, _status(lines), rows, gr.update(choices=sources, value=None), footer

    def _index_uploads(accepted: dict[str, Path], progress: gr.Progress) -> list[str]:
        staging = uploads_dir / f".staging-{uuid.uuid4().hex}"  # hidden: never indexed as a folder
        staging.mkdir(parents=True)
        lines: list[str] = []
        skipped: dict[str, str] = {}
        done = 0

        def on_progress(n: int) -> None:
            nonlocal done
            done += n
            progress((done, None), desc="Embedding", unit="chunks")

        try:
            progress(0, desc=f"Reading {len(accepted)} file(s)")
            for name, path in accepted.items():
                shutil.copyfile(path, staging / name)
            try:
                report = build_index([staging / name for name in accepted], index_dir=rag.index.dir,
                                     embedder=rag.embedder, config=defaults, remove_missing=False,
                                     progress=on_progress, on_skip=lambda s: skipped.__setitem__(s.source, s.reason))
            except BadInput:
                report = None  # nothing readable; the reasons are in `skipped`
            except (IndexError_, ValueError) as exc:  # index locked by `rag index`; a document too large
                return [f"✗ Nothing added: {ui.escape_markdown(str(exc))}"]
            for name, reason in skipped.items():
                lines.append(f"✗ **{ui.escape_markdown(name)}** not added: {ui.escape_markdown(reason)}")
            if report is not None:
                stats = report.stats
                for name in accepted:
                    if name in skipped:
                        continue
                    os.replace(staging / name, uploads_dir / name)
                    verb = ("added" if name in stats.added else "replaced the earlier version"
                            if name in stats.changed else "already indexed, unchanged")
                    lines.append(f"✓ **{ui.escape_markdown(name)}** {verb}")
                progress(1.0, desc="Reloading the index")
                rag.reload()
                lines.append(f"Index: {stats.n_chunks} chunks; {stats.chunks_embedded} embedded in "
                             f"{stats.seconds:.1f}s.")
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return lines

    def remove(source: str | None) -> tuple[Any, ...]:
        if not source:
            lines = ["Choose a document to remove."]
        else:
            try:
                stats = remove_documents(rag.index.dir, [source], embedder=rag.embedder, config=defaults)
            except (BadInput, IndexError_) as exc:
                stats, lines = None, [f"✗ {ui.escape_markdown(str(exc))}"]
            if stats is not None:
                if source in stats.removed:
                    _delete_upload(uploads_dir, source)
                    rag.reload()
                    lines = [f"✓ Removed **{ui.escape_markdown(source)}**; {stats.n_chunks} chunks left."]
                else:
                    lines = [f"**{ui.escape_markdown(source)}** is not in the index."]
        rows, sources, footer = _index_summary(rag)
        return _status(lines), rows, gr.update(choices=sources, value=None), footer

    def pick_row(rows: Any, evt: gr.SelectData) -> Any:
        row = evt.row_value if getattr(evt, "row_value", None) else None
        return gr.update(value=row[0]) if row else gr.skip()

    def refresh() -> tuple[Any, ...]:
        rows, sources, footer = _index_summary(rag)
        report_md, image = _eval_report(reports_dir)
        return (rows, gr.update(choices=sources, value=None), footer, report_md,
                gr.update(value=image, visible=image is not None))

    # --- API -----------------------------------------------------------------------------------
    def ask(question: str, top_k: int | None = None, mode: str | None = None,
            generator: str | None = None, answer_scorer: str | None = None) -> dict:
        """Answer `question` from the index: the JSON object `rag ask --json` prints. `generator`:
        "extractive" (quoted sentences), "local" (SmolLM2-135M, every sentence verified), or the
        server's configured "openai"/"ollama"; default: the server's. `answer_scorer`: "reader"
        (the trained reader) or "heuristic", with that scorer's threshold; default: the server's.
        A confidence in the scorer's "not sure" band gives `"tentative": true` (and `"abstained": true`)."""
        try:
            changes: dict[str, Any] = {}
            if top_k is not None:
                changes["top_k"] = _whole_number(top_k, "top_k")
            if mode:
                changes["mode"] = mode
            if generator:
                changes["generator"] = check_generator(generator, generators)
            if answer_scorer:
                changes["answer_scorer"] = check_answer_scorer(answer_scorer)
            config = defaults.replace(**changes)
        except (BadInput, ValueError, TypeError) as exc:
            raise gr.Error(str(exc), print_exception=False) from None  # bad input is no server fault
        try:
            return rag.ask(question, config=config).to_json()
        except (BadInput, ValueError, TypeError) as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        except ReaderUnavailable as exc:
            raise gr.Error(f"{exc} Ask with answer_scorer=heuristic.", print_exception=False) from None
        except Exception as exc:  # the generator failed (server unreachable, model missing)
            if config.generator == "extractive":
                raise
            log.warning("generator %s failed: %r", config.generator, exc)
            label = ui.generator_label(config.generator, config.llm_model)
            raise gr.Error(f"Could not write an answer with {label}: {str(exc) or type(exc).__name__}. "
                           f"Ask with generator=extractive for an answer quoted from the documents.",
                           print_exception=False) from None

    # --- layout --------------------------------------------------------------------------------
    rows, sources_list, footer_text = _index_summary(rag)
    # delete_cache: Gradio's own copies of uploads (and of the report image) go after an hour.
    with gr.Blocks(title="rag · ask your documents", delete_cache=(3600, 3600)) as demo:
        gr.Markdown("## Ask your documents\nAnswers quote the documents word for word and cite them; "
                    "with a language model (*Settings → Answer generator*) only the sentences the cited "
                    "passages support are kept. When the documents do not contain an answer, it says so.")
        turns = gr.State([])
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=3):
                        chatbot = gr.Chatbot(elem_id="chat", height=460, label="Chat", latex_delimiters=[],
                                             sanitize_html=True, allow_tags=False, feedback_options=None,
                                             buttons=["copy"], group_consecutive_messages=False,
                                             placeholder="Ask a question below, or pick an example.")
                        with gr.Row():
                            question = gr.Textbox(show_label=False, scale=5, elem_id="question", lines=1,
                                                  max_length=defaults.max_question_chars,
                                                  placeholder="Ask a question about your documents")
                            ask_button = gr.Button("Ask", variant="primary", scale=1, min_width=80, elem_id="ask")
                        gr.Examples([[q] for q in EXAMPLES], inputs=[question], label="Examples (seed article)")
                        with gr.Accordion("Settings", open=False, elem_id="settings"):
                            mode = gr.Radio(list(MODES), value=defaults.mode, label="Retrieval mode", elem_id="mode",
                                            info="dense: embeddings · bm25: keywords · hybrid: both, fused")
                            top_k = gr.Slider(1, 20, value=defaults.top_k, step=1, label="Top-k passages",
                                              elem_id="top-k")
                            scorer = gr.Radio(list(ANSWER_SCORERS), value=defaults.answer_scorer,
                                              label="Answer scorer", elem_id="answer-scorer",
                                              info="what picks the quoted sentence and the confidence · reader: "
                                                   "the trained reader model · heuristic: similarity and word "
                                                   "overlap")
                            threshold = gr.Slider(0.0, 1.0, value=scorer_threshold(defaults, defaults.answer_scorer),
                                                  step=0.01, label="Abstention threshold", elem_id="threshold",
                                                  info="answer only when the answer scorer's confidence reaches "
                                                       "this; a little below it, the closest passage is shown "
                                                       "marked \"Not sure\" (resets to the scorer's default when "
                                                       "the scorer changes)")
                            generator = gr.Radio(generators, value=defaults.generator, label="Answer generator",
                                                 elem_id="generator", info=generator_info(defaults, generators))
                    with gr.Column(scale=2):
                        gr.Markdown("### Sources")
                        sources = gr.HTML(ui.sources_html(None, 0), elem_id="sources", js_on_load=SOURCES_JS)
                        gr.Markdown("### Document")
                        viewer = gr.HTML(ui.viewer_placeholder(), elem_id="doc-viewer", js_on_load=VIEWER_JS)
            with gr.Tab("Documents", id="documents"):
                limit = ui.format_size(int(defaults.max_file_mb * 1024 * 1024))
                gr.Markdown(f"Upload {' '.join(ui.SUPPORTED_SUFFIXES)} files, several at once, up to {limit} "
                            f"each. They can be asked about as soon as they are indexed.")
                files = gr.File(label="Upload documents", file_count="multiple", type="filepath",
                                elem_id="upload", height=150)
                upload_status = gr.Markdown(elem_id="upload-status")
                table = gr.Dataframe(value=rows, headers=["Document", "Chunks", "Added"], interactive=False,
                                     elem_id="doc-table", label="Indexed documents", wrap=True)
                with gr.Row():
                    to_remove = gr.Dropdown(choices=sources_list, value=None, label="Document to remove",
                                            elem_id="remove-choice", scale=4)
                    remove_button = gr.Button("Remove from index", variant="stop", elem_id="remove", scale=1)
            with gr.Tab("Evaluation", id="evaluation"):
                report_md, image = _eval_report(reports_dir)
                gr.Markdown("The latest report written by `rag eval` (eval/reports/latest.md and latest.png).")
                refresh_button = gr.Button("Reload report", size="sm")
                eval_image = gr.Image(image, label="Latest evaluation", type="pil", format="png", interactive=False,
                                      elem_id="eval-plot", height=420, visible=image is not None,
                                      buttons=["download", "fullscreen"])
                eval_md = gr.Markdown(report_md, elem_id="eval-report", max_height=700)
        footer = gr.Markdown(footer_text, elem_id="rag-footer")

        private = {"api_visibility": "private"}
        gr.on([question.submit, ask_button.click], respond,
              inputs=[question, chatbot, turns, mode, top_k, threshold, generator, scorer],
              outputs=[question, chatbot, turns, sources], show_progress="minimal", **private)
        scorer.change(lambda name: scorer_threshold(defaults, name), inputs=[scorer], outputs=[threshold],
                      show_progress="hidden", **private)
        chatbot.clear(lambda: ([], ui.sources_html(None, 0), ui.viewer_placeholder()),
                      outputs=[turns, sources, viewer], **private)
        sources.cite(open_citation, inputs=[turns], outputs=[viewer], show_progress="hidden", **private)
        files.upload(upload, inputs=[files], outputs=[files, upload_status, table, to_remove, footer],
                     show_progress_on=[upload_status], concurrency_limit=1, concurrency_id=WRITES, **private)
        remove_button.click(remove, inputs=[to_remove], outputs=[upload_status, table, to_remove, footer],
                            show_progress_on=[upload_status], concurrency_limit=1, concurrency_id=WRITES,
                            **private)
        table.select(pick_row, inputs=[table], outputs=[to_remove], **private)
        refresh_outputs = [table, to_remove, footer, eval_md, eval_image]
        refresh_button.click(refresh, outputs=refresh_outputs, **private)
        demo.load(refresh, outputs=refresh_outputs, show_progress="hidden", **private)
        gr.api(ask, api_name="ask")
    return demo


def generator_choices(defaults: RagConfig) -> list[str]:
    """The generators the UI offers: extractive and local always, plus the server's own when
    `rag serve --generator openai/ollama` configured one (it needs its URL and model)."""
    extra = [defaults.generator] if defaults.generator not in LOCAL_GENERATORS else []
    return [*LOCAL_GENERATORS, *extra]


def check_generator(value: object, allowed: list[str]) -> str:
    """`value` if it is one of the `allowed` generators, else BadInput naming them."""
    if isinstance(value, str) and value.strip().lower() in allowed:
        return value.strip().lower()
    hint = "" if value not in GENERATORS else " (this server was not started with it: see `rag serve --generator`)"
    raise BadInput(f"generator must be one of {', '.join(allowed)}, got {value!r}{hint}")


def check_answer_scorer(value: object) -> str:
    """`value` if it names an answer scorer (any case, spaces around), else BadInput naming them."""
    if isinstance(value, str) and value.strip().lower() in ANSWER_SCORERS:
        return value.strip().lower()
    raise BadInput(f"answer_scorer must be one of {', '.join(ANSWER_SCORERS)}, got {value!r}")


def scorer_threshold(defaults: RagConfig, scorer: str) -> float:
    """The threshold the Settings slider shows for `scorer`: the server's configured one for it
    (`RagConfig().thresholds()[0]` unless `rag serve` changed it); the defaults' for an unknown name."""
    try:
        return defaults.replace(answer_scorer=check_answer_scorer(scorer)).thresholds()[0]
    except BadInput:
        return defaults.thresholds()[0]


def cannot_answer_markdown(exc: BaseException) -> str:
    """A question that could not be answered (bad input, the reader model missing), for the chat."""
    hint = (" Choose **heuristic** under *Settings → Answer scorer* to answer without it."
            if isinstance(exc, ReaderUnavailable) else "")
    return f"**Cannot answer:** {ui.escape_markdown(str(exc))}{hint}"


def generator_info(defaults: RagConfig, allowed: list[str]) -> str:
    parts = ["extractive: quotes sentences from the documents, no language model",
             "local: SmolLM2-135M writes the answer on this machine, and every sentence is verified against "
             "the passage it cites (unsupported sentences are removed and marked)"]
    for name in allowed:
        if name not in LOCAL_GENERATORS:
            parts.append(f"{name}: {defaults.llm_model} at {defaults.llm_base_url or 'the default URL'}, "
                         "verified the same way")
    return " · ".join(parts)


def respond_generated(rag: RAG, question: str, *, messages: list[dict], turns: list[Answer],
                      history: list[tuple[str, str]], config: RagConfig) -> Iterator[tuple[Any, ...]]:
    """The chat turn for a generated answer, as (question box, chat, turns, sources) updates.

    The model's text streams in as an escaped draft marked as being verified; the verified answer
    then replaces it. A failing generator leaves a message in the chat instead of the answer.
    """
    label = ui.generator_label(config.generator, config.llm_model)
    turn = len(turns)
    draft, answer = "", None
    messages[-1] = {"role": "assistant", "content": ui.draft_markdown("", label)}
    waiting = '<div class="rag-sources rag-empty">Writing and verifying an answer… its sources appear here.</div>'
    yield "", messages, gr.skip(), waiting
    try:
        for item in rag.ask_stream(question, history=history, config=config):
            if isinstance(item, str):
                if not item:
                    continue
                draft += item
                messages[-1] = {"role": "assistant", "content": ui.draft_markdown(draft, label)}
                yield "", messages, gr.skip(), gr.skip()
            else:
                answer = item
        if answer is None:
            raise RuntimeError("the generator ended without an answer")
    except (BadInput, ReaderUnavailable) as exc:
        messages[-1] = {"role": "assistant", "content": cannot_answer_markdown(exc)}
        yield "", messages, gr.skip(), ui.sources_html(None, 0)
        return
    except Exception as exc:  # server unreachable, model missing, a timeout: say so, keep the app working
        log.warning("generator %s failed: %r", config.generator, exc, exc_info=True)
        messages[-1] = {"role": "assistant", "content": ui.generator_error_markdown(label, exc)}
        yield "", messages, gr.skip(), ui.sources_html(None, 0)
        return
    messages[-1] = {"role": "assistant", "content": ui.generated_answer_markdown(answer, turn, label=label)}
    yield "", messages, list(turns) + [answer], ui.sources_html(answer, turn)


def _whole_number(value: object, name: str) -> int:
    """An API argument as an int: 7, 7.0 and "7" pass; "many", 2.5, NaN and Infinity (which raw JSON
    can carry) are BadInput naming the argument, not an OverflowError from the server."""
    try:
        number = float(value) if isinstance(value, str) else value
        if isinstance(number, bool) or not isinstance(number, (int, float)) or number != int(number):
            raise ValueError(value)
        return int(number)
    except (TypeError, ValueError, OverflowError):
        raise BadInput(f"{name} must be a whole number, got {value!r}") from None


def _int(value: object) -> int:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return -1


def _delete_upload(uploads_dir: Path, source: str) -> None:
    """Delete an uploaded file once its document is removed (only a file directly in `uploads_dir`)."""
    target = uploads_dir / source
    if target.parent.resolve() == uploads_dir.resolve() and target.is_file() and not target.is_symlink():
        target.unlink()


def _eval_report(reports_dir: Path) -> tuple[str, Any]:
    md, png = reports_dir / "latest.md", reports_dir / "latest.png"
    if not md.is_file():
        return ("**No evaluation report yet.** Run `rag eval` to write one to "
                f"`{reports_dir}/latest.md`, then reload."), None
    image = None
    if png.is_file():
        from PIL import Image

        with Image.open(png) as img:
            image = img.copy()
    return md.read_text(encoding="utf-8", errors="replace"), image


def serve(rag: RAG, *, host: str = "127.0.0.1", port: int = 7860, concurrency: int | None = None) -> None:
    """Launch the UI on `host:port` and block until interrupted. Questions run `concurrency` at a
    time (default: up to 4, by CPU count); further requests wait in the queue."""
    demo = build_app(rag)
    limit = concurrency or max(1, min(4, os.cpu_count() or 1))
    demo.queue(default_concurrency_limit=limit, max_size=64)
    max_bytes = int(rag.config.max_file_mb * 1024 * 1024)
    demo.launch(server_name=host, server_port=port, show_error=True, footer_links=["api"], run_history=False,
                ssr_mode=False, mcp_server=False, max_file_size=max_bytes, css=CSS, quiet=False)


if __name__ == "__main__":
    from rag.cli import main

    sys.exit(main(["serve", *sys.argv[1:]]))
