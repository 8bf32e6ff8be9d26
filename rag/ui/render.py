"""Rendering for the chat UI: escaping, answer markdown, source cards, the document viewer, the
documents table and footer.

Plain functions from the core records to strings; no Gradio import, so they test fast. Document
text is untrusted: everything taken from a document or a file name goes through `escape_html`
(inside HTML) or `escape_markdown` (inside Chatbot markdown) before it is shown.

Example:
    >>> print(escape_markdown("<b>[x](javascript:alert(1))</b>"))
    &lt;b&gt;\\[x\\]\\(javascript\\:alert\\(1\\)\\)&lt;/b&gt;
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterable, Sequence
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from rag.config import RagConfig
from rag.pipeline import EmptyScope
from rag.reader import ReaderUnavailable
from rag.types import Answer, Citation, Document, Hit

if TYPE_CHECKING:
    from rag.store import DocumentInfo
    from rag.watch import SyncStatus

MODEL_LABEL = "all-MiniLM-L6-v2"
NOT_AN_ANSWER = "Nearest passages — not an answer"
# The label of a tentative answer (confidence in the "not sure" band), in the chat and the Sources panel.
NOT_SURE = "Not sure"
# A document longer than this is shown as a window around the cited span, not whole.
VIEWER_MAX_CHARS = 400_000

_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+\-.!|~$:=])")


def escape_html(text: object) -> str:
    """`text` safe to put inside HTML element content or a quoted attribute."""
    return html.escape(str(text), quote=True)


def escape_markdown(text: str) -> str:
    """`text` that a Markdown renderer shows literally: no links, emphasis, HTML or LaTeX.

    HTML special characters become entities and every Markdown punctuation character is
    backslash-escaped, so `<img onerror=...>` and `[x](javascript:...)` display as typed.
    """
    # Backslashes first: escaping after html.escape would break the entities it writes.
    return html.escape(_MARKDOWN_SPECIALS.sub(r"\\\1", text), quote=False)


def citation_href(turn: int, n: int) -> str:
    """The anchor a citation marker links to; the page script opens the document on click."""
    return f"#cite-{int(turn)}-{int(n)}"


def marker_markdown(turn: int, n: int) -> str:
    return f"[\\[{int(n)}\\]]({citation_href(turn, n)})"


def answer_pieces(answer: Answer, turn: int) -> list[str]:
    """The answer as Markdown pieces (escaped words and citation-marker links), in order.

    Joined they are the whole message; a prefix of them is a well-formed partial message, which
    is how the chat streams an answer. A quote is found in `answer.text` followed by its `[n]`;
    text around the quotes (none, with the extractive composer) is kept, escaped.
    """
    pieces: list[str] = []
    text, pos = answer.text, 0
    for c in answer.citations:
        marker = f"[{c.n}]"
        at = text.find(f"{c.quote} {marker}", pos)
        if at < 0:
            at = text.find(marker, pos)
            if at < 0:
                continue
            quote, end = text[pos:at], at + len(marker)
        else:
            quote, end = text[pos:at] + c.quote, at + len(c.quote) + 1 + len(marker)
        pieces.extend(escape_markdown(w) + " " for w in quote.split())
        pieces.append(marker_markdown(turn, c.n) + " ")
        pos = end
    pieces.extend(escape_markdown(w) + " " for w in text[pos:].split())
    if pieces:
        pieces[-1] = pieces[-1].rstrip()
    return pieces


def answer_markdown(answer: Answer, turn: int) -> str:
    """The chat message for `answer`: cited sentences with linked markers, a tentative answer
    marked as not sure, or an abstention."""
    if answer.tentative:
        return tentative_markdown(answer, turn)
    if answer.abstained:
        return abstention_markdown(answer)
    return "".join(answer_pieces(answer, turn))


def tentative_markdown(answer: Answer, turn: int) -> str:
    """A tentative answer (confidence in the "not sure" band), set apart as a quote block headed
    **⚠ Not sure**: the closest passage's sentence, quoted and escaped, with its linked marker,
    and a line saying it may not answer the question. It reads neither as an answer nor as a refusal.

    The quote is taken from the citation, not found in `answer.text`: a quote holding "[1]"
    itself must not be mistaken for the marker.
    """
    if answer.citations:
        c = answer.citations[0]
        said = f"The closest passage says “{escape_markdown(_one_line(c.quote))}” {marker_markdown(turn, c.n)}"
    else:  # not what rag.answer writes; show the text, escaped, without links
        said = escape_markdown(_one_line(answer.text))
    return (
        f"> **⚠ {NOT_SURE}.** {said}\n>\n"
        f"> *Low confidence ({answer.confidence:.2f}): this passage may not answer the question. "
        "Check the source before relying on it.*"
    )


def abstention_markdown(answer: Answer) -> str:
    """An abstention, set apart as a quote block so it never reads like an answer."""
    nearest = (
        "\n>\n> The nearest passages are listed under **Sources**; they are *not* an answer." if answer.hits else ""
    )
    return f"> **Not found in the documents.** {escape_markdown(answer.text)}{nearest}"


def stream_steps(pieces: Sequence[str], *, steps: int = 12) -> list[str]:
    """Growing prefixes of `pieces` (about `steps` of them, the last the whole message)."""
    if not pieces:
        return [""]
    stride = max(1, -(-len(pieces) // steps))
    return ["".join(pieces[:i]) for i in range(stride, len(pieces) + stride, stride)][:-1] + ["".join(pieces)]


# ----------------------------------------------------------------------------------------------
# Generated answers (RagConfig.generator other than "extractive")
#
# Model output is untrusted like document text: it is escaped as a whole, whitespace collapsed (so
# it cannot open a list, heading, code block or table either), and the only links are the UI's own
# citation markers, made from `answer.citations`, never from anything the model wrote.

NOT_SUPPORTED = "⚠ not supported by the sources"
_MARKER = re.compile(r"\[(\d{1,4})\]")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def draft_markdown(text: str, label: str) -> str:
    """The chat message while a model writes: its text so far, escaped, and a note that it is an
    unverified draft (every sentence is checked against its sources before it is kept)."""
    note = f"*Draft by {escape_markdown(label)}, not yet checked: verifying each sentence against its sources…*"
    draft = _one_line(text)
    if not draft:
        return (
            f"*{escape_markdown(label)} is writing an answer from the retrieved passages; each sentence "
            "will be verified against the passage it cites…*"
        )
    return f"{escape_markdown(draft)}\n\n{note}"


def _with_markers(text: str, turn: int, numbers: set[int]) -> str:
    """`text` escaped, each `[n]` whose n is a citation turned into its marker link."""
    out, pos = [], 0
    for match in _MARKER.finditer(text):
        n = int(match.group(1))
        if n not in numbers:
            continue
        out.append(escape_markdown(text[pos : match.start()]))
        out.append(marker_markdown(turn, n))
        pos = match.end()
    out.append(escape_markdown(text[pos:]))
    return "".join(out)


def removed_sentences_markdown(answer: Answer) -> str:
    """One list item per sentence the verifier removed: struck through and marked unsupported.
    Any `[n]` marker left in them (the prompt's passage numbers) is dropped: it is not a citation."""
    items = []
    for sentence in answer.sentences:
        if sentence.supported:
            continue
        text = _one_line(re.sub(r"\s*\[\d{1,4}\]", "", sentence.text))
        if text:
            items.append(f"- ~~{escape_markdown(text)}~~ *{NOT_SUPPORTED}*")
    return "\n".join(items)


def is_fallback(answer: Answer) -> bool:
    """A generated answer none of whose sentences was supported: `answer.text` is then the
    extractive answer (or an abstention), not the model's."""
    return answer.generator != "extractive" and not any(s.supported for s in answer.sentences)


def verification_line(answer: Answer, label: str) -> str:
    """Which generator wrote the answer and how many of its sentences were verified or removed."""
    sentences = answer.sentences
    kept = sum(1 for s in sentences if s.supported)
    removed = len(sentences) - kept
    who = escape_markdown(label)  # no bold inside the italic line: some renderers then show neither
    if not sentences:
        if answer.abstained:
            return f"*{who} found no answer in the passages.*"
        return f"*⚠ {who} wrote no usable sentence; the answer above quotes the documents instead.*"
    if kept == 0:
        shown = "no answer is given" if answer.abstained else "the answer above quotes the documents instead"
        return (
            f"*⚠ Written by {who}: none of its {len(sentences)} sentence{'s' if len(sentences) != 1 else ''} "
            f"was supported by the passage it cites; all were removed, and {shown}.*"
        )
    removed_part = f", {removed} removed as not supported" if removed else ", none removed"
    return (
        f"*✓ Written by {who}: {kept} of {len(sentences)} sentence{'s' if len(sentences) != 1 else ''} "
        f"verified against the passages they cite{removed_part}.*"
    )


def generated_answer_markdown(answer: Answer, turn: int, *, label: str) -> str:
    """The final chat message for a generated answer.

    The verified sentences (`answer.text`) with linked `[n]` markers; the removed sentences
    struck through, each marked as not supported; a line naming the generator with the counts.
    When nothing was supported the extractive answer or the abstention is shown as for the
    extractive generator, with the removed sentences and the line after it. When the evidence was
    too weak to ask the model at all (`answer.generator` is "extractive"), the abstention is shown
    with a line saying so.
    """
    if answer.generator == "extractive":
        note = (
            f"\n\n*{escape_markdown(label)} was not asked: the retrieved passages are too weak to answer from.*"
            if answer.abstained
            else ""
        )
        return answer_markdown(answer, turn) + note
    if answer.tentative:
        body = tentative_markdown(answer, turn)
    elif answer.abstained:
        body = abstention_markdown(answer)
    elif is_fallback(answer):
        body = "".join(answer_pieces(answer, turn))
    else:
        body = _with_markers(_one_line(answer.text), turn, {c.n for c in answer.citations})
    parts = [body]
    removed = removed_sentences_markdown(answer)
    if removed:
        parts.append(removed)
    parts.append(verification_line(answer, label))
    return "\n\n".join(parts)


def generator_error_markdown(message: str) -> str:
    """A failed generator in the chat: `message` (`rag.generate.generator_failure`'s line: what failed
    and why), escaped, and what to do."""
    return (
        f"> **{escape_markdown(_one_line(message))}**\n>\n"
        "> Choose **extractive** under *Settings → Answer generator* to get answers quoted from the "
        "documents without a language model, or try again."
    )


def cannot_answer_markdown(exc: BaseException) -> str:
    """A question that could not be answered (bad input, the reader model missing, no document in
    "Search in"), for the chat."""
    if isinstance(exc, EmptyScope):  # nothing was searched: the choice is what to change, not the documents
        return f"**Nothing to search:** {escape_markdown(str(exc))}. Change or clear **Search in** below the question."
    hint = (
        " Choose **heuristic** under *Settings → Answer scorer* to answer without it."
        if isinstance(exc, ReaderUnavailable)
        else ""
    )
    return f"**Cannot answer:** {escape_markdown(str(exc))}{hint}"


# ----------------------------------------------------------------------------------------------
# Sources panel


def _highlight(text: str, start: int, end: int, *, mark_attrs: str = "") -> str:
    start, end = max(0, min(start, len(text))), max(0, min(end, len(text)))
    if end <= start:
        return escape_html(text)
    return (
        escape_html(text[:start])
        + f"<mark{mark_attrs}>"
        + escape_html(text[start:end])
        + "</mark>"
        + escape_html(text[end:])
    )


def _quote_span(c: Citation) -> tuple[int, int]:
    """Offsets of the quote inside the passage."""
    a, b = c.start - c.passage_start, c.end - c.passage_start
    if c.passage[a:b] == c.quote:
        return a, b
    found = c.passage.find(c.quote)
    return (found, found + len(c.quote)) if found >= 0 else (0, 0)


def _meta(source: str, page: int | None, score: float, *, score_label: str = "score") -> str:
    page_part = f' · <span class="rag-page">page {int(page)}</span>' if page is not None else ""
    return (
        f'<span class="rag-file">{escape_html(PurePosixPath(source).name)}</span>{page_part}'
        f' · <span class="rag-score">{score_label} {score:.2f}</span>'
    )


def citation_card(c: Citation, turn: int) -> str:
    a, b = _quote_span(c)
    return (
        f'<button type="button" class="rag-card" data-turn="{int(turn)}" data-n="{int(c.n)}" '
        f'title="Open {escape_html(c.source)} at the quoted sentence">'
        f'<span class="rag-card-head"><span class="rag-n">[{int(c.n)}]</span> '
        f"{_meta(c.source, c.page, c.score)}</span>"
        f'<span class="rag-passage">{_highlight(c.passage, a, b)}</span></button>'
    )


def _hit_score(hit: Hit) -> tuple[float, str]:
    # A fused (RRF) score is near 0.02 for every hit; the cosine says more about how close it is.
    return (hit.dense, "similarity") if hit.dense else (hit.score, "score")


def nearest_card(hit: Hit, turn: int, k: int) -> str:
    score, label = _hit_score(hit)
    return (
        f'<button type="button" class="rag-card rag-nearest" data-turn="{int(turn)}" data-hit="{int(k)}" '
        f'title="Open {escape_html(hit.chunk.source)} at this passage">'
        f'<span class="rag-card-head">{_meta(hit.chunk.source, hit.chunk.page, score, score_label=label)}</span>'
        f'<span class="rag-passage">{escape_html(hit.chunk.text)}</span></button>'
    )


def sources_html(answer: Answer | None, turn: int, *, nearest: int = 3) -> str:
    """The Sources panel for `answer`: the retrieval query, then one card per citation (under a
    "not sure" note for a tentative answer), or the nearest passages under a heading that says
    they are not an answer."""
    if answer is None:
        return (
            '<div class="rag-sources rag-empty">Ask a question: the passages each answer quotes '
            "appear here. Click a card or a <b>[n]</b> marker to open the document.</div>"
        )
    query = f'<div class="rag-query">Retrieval query: <q>{escape_html(answer.query or answer.question)}</q></div>'
    if answer.tentative and answer.citations:
        cards = "".join(citation_card(c, turn) for c in answer.citations)
        note = (
            f'<div class="rag-tentative" role="note">⚠ {NOT_SURE}: the closest passage, quoted with low '
            f"confidence ({answer.confidence:.2f}); it may not answer the question.</div>"
        )
        return f'<div class="rag-sources">{query}{note}{cards}</div>'
    if not answer.abstained:
        cards = "".join(citation_card(c, turn) for c in answer.citations)
        return f'<div class="rag-sources">{query}{cards}</div>'
    hits = answer.hits[:nearest]
    if not hits:
        return f'<div class="rag-sources">{query}<p class="rag-abstain">No passages found.</p></div>'
    cards = "".join(nearest_card(h, turn, k) for k, h in enumerate(hits))
    return (
        f'<div class="rag-sources">{query}<div class="rag-abstain" role="note">{NOT_AN_ANSWER}: '
        f"the documents do not answer this question; these are only the closest matches.</div>{cards}</div>"
    )


# ----------------------------------------------------------------------------------------------
# Document viewer


def document_html(
    document: Document, start: int, end: int, *, label: str = "quoted sentence", nonce: int | None = None
) -> str:
    """The whole document, escaped, with `text[start:end]` in `<mark id="rag-cited">`.

    A document over `VIEWER_MAX_CHARS` is shown as a window around the span, with a note.
    `nonce` makes two openings of the same span differ, so the viewer scrolls again.
    """
    text = document.text
    lo, hi = 0, len(text)
    if len(text) > VIEWER_MAX_CHARS:
        half = VIEWER_MAX_CHARS // 2
        lo = max(0, min(start - half, len(text) - VIEWER_MAX_CHARS))
        hi = min(len(text), lo + VIEWER_MAX_CHARS)
    page = document.page_at(start)
    head = (
        f'<div class="rag-doc-head"><span class="rag-file">{escape_html(document.source)}</span>'
        + (f" · page {int(page)}" if page is not None else "")
        + f' · {len(text):,} characters · <span class="rag-legend"><mark>highlighted</mark>: {escape_html(label)}'
        f"</span></div>"
    )
    note = (
        f'<div class="rag-doc-note">Showing characters {lo:,}–{hi:,} of {len(text):,}.</div>'
        if (lo, hi) != (0, len(text))
        else ""
    )
    body = _highlight(text[lo:hi], start - lo, end - lo, mark_attrs=' id="rag-cited" class="rag-cited"')
    stamp = f' data-opened="{int(nonce)}"' if nonce is not None else ""
    return f'<div class="rag-doc"{stamp}>{head}{note}<div class="rag-doc-text">{body}</div></div>'


def viewer_placeholder(message: str = "Click a citation marker or a source card to open its document here.") -> str:
    return f'<div class="rag-doc rag-empty">{escape_html(message)}</div>'


def pending_sources(message: str) -> str:
    """The Sources panel while an answer is being found or written."""
    return f'<div class="rag-sources rag-empty">{escape_html(message)}</div>'


# ----------------------------------------------------------------------------------------------
# The documents table and the footer


def document_rows(documents: Iterable[DocumentInfo]) -> list[list[object]]:
    """Rows for the documents table: name, chunks, added (local time), from `Index.documents()`."""
    return [[d.source, int(d.n_chunks), time.strftime("%Y-%m-%d %H:%M", time.localtime(d.added_at))] for d in documents]


def footer_markdown(n_documents: int, n_chunks: int, *, backend: str | None = None) -> str:
    """The footer: the embedding model and the backend it runs on (`RagConfig.embed_backend` when
    not given), and the index's size."""
    backend = backend or RagConfig().embed_backend
    docs = f"{n_documents} document{'s' if n_documents != 1 else ''}"
    return (
        f"Model: **{MODEL_LABEL}** ({escape_markdown(backend)} backend, runs locally, offline) · "
        f"Index: **{docs}**, **{n_chunks} chunks**"
    )


# ----------------------------------------------------------------------------------------------
# The folder watch (`rag serve --watch PATHS`)

SYNC_SHOWN = 12  # changes and skipped files listed; the rest are counted


def sync_markdown(status: SyncStatus) -> str:
    """The Documents tab's "Folder sync" box: the watched paths, the last update that changed the
    index (when, and what it added, changed and removed), the files skipped and why, and what
    the watch is waiting for.

    Example:
        >>> from rag.watch import ADDED, Change, SyncReport, SyncStatus
        >>> report = SyncReport(0.0, (Change(ADDED, "a.md", "3 chunks"),))
        >>> status = SyncStatus(("docs",), 1, report, (("x.exe", "unsupported"),))
        >>> print(sync_markdown(status))  # doctest: +ELLIPSIS +NORMALIZE_WHITESPACE
        **Watching** docs
        Last sync ...: \\+ a\\.md \\(3 chunks\\)
        Skipped: x\\.exe — unsupported
    """
    lines = ["**Watching** " + ", ".join(escape_markdown(p) for p in status.paths)]
    if status.last is None:
        lines.append("No change since the server started.")
    else:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(status.last.finished_at))
        changed = [c for c in status.last.changes if c.kind != "skipped"]
        lines.append(f"Last sync {when}: " + _listed([escape_markdown(c.line()) for c in changed]))
    if status.skipped:
        lines.append(
            "Skipped: " + _listed([f"{escape_markdown(s)} — {escape_markdown(reason)}" for s, reason in status.skipped])
        )
    if status.waiting:
        lines.append(f"⚠ {escape_markdown(status.waiting)}")
    return "  \n".join(lines)


def _listed(items: Sequence[str]) -> str:
    shown = "; ".join(items[:SYNC_SHOWN])
    return shown + (f"; and {len(items) - SYNC_SHOWN} more" if len(items) > SYNC_SHOWN else "")
