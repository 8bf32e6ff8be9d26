"""The one entry point the CLI, UI and evaluation call: `build_index` and `ask`.

Example:
    >>> from rag.pipeline import RAG
    >>> rag = RAG.open("index")  # doctest: +SKIP
    >>> rag.ask("How many North Korean soldiers are in Kursk?").text  # doctest: +SKIP
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from rag.answer import QuestionTerms, compose_answer
from rag.config import RagConfig
from rag.embed import Embedder
from rag.followup import Turn, condense_query
from rag.ingest import backend_name, update_index
from rag.load import Skipped, find_files, load_documents
from rag.overview import asks_for_author, asks_for_conclusion, asks_for_overview, byline, conclusion, overview
from rag.reader import Reader
from rag.rerank import read_and_rerank
from rag.retrieve import scope_sources, search
from rag.scope import Scope
from rag.store import EmptyCorpus, UpdateStats
from rag.store.base import Store, StoreWriter
from rag.store.locate import committed_manifest, open_store, open_writer
from rag.types import Answer, CheckedSentence, Document, Hit
from rag.verify import verify_answer

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel


class BadInput(ValueError):
    """Input a user can fix; the message names the bad value."""


class EmptyScope(BadInput):
    """A question asked within documents (`rag.scope.Scope`) of which the index holds none: not a
    refusal (the documents were never searched), the scope is what to change."""


@dataclass
class BuildReport:
    stats: UpdateStats
    skipped: list[Skipped] = field(default_factory=list)
    # source -> the pages read by OCR, and -> the (page, reason) of pages left out, for the files
    # read in this process (scanned PDF pages; not reported for `--ray`, whose workers read the files)
    ocr_pages: dict[str, tuple[int, ...]] = field(default_factory=dict)
    skipped_pages: dict[str, tuple[tuple[int, str], ...]] = field(default_factory=dict)


def validate_question(question: object, *, config: RagConfig) -> str:
    if not isinstance(question, str):
        raise BadInput(f"question must be text, got {type(question).__name__}")
    cleaned = question.replace("\x00", " ").strip()
    if not cleaned:
        raise BadInput("question is empty")
    if len(question) > config.max_question_chars:
        raise BadInput(f"question is {len(question)} characters, over the limit of {config.max_question_chars}")
    try:
        cleaned.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate (or an undecodable argv byte): the tokenizer fails on it
        raise BadInput(
            f"question is not valid Unicode text (a lone surrogate or undecodable byte at character {exc.start})"
        ) from None
    return cleaned


def build_index(
    paths: Iterable[str | os.PathLike[str]],
    *,
    index_dir: str | os.PathLike[str],
    embedder: Embedder,
    config: RagConfig | None = None,
    rebuild: bool = False,
    remove_missing: bool = True,
    remove: Sequence[str] = (),
    progress: Callable[[int], None] | None = None,
    on_skip: Callable[[Skipped], None] | None = None,
    ray: str | None = None,
    ray_workers: int | None = None,
) -> BuildReport:
    """Index the files under `paths` into `index_dir` (a folder or any store spec
    `rag.store.locate.parse_store` takes), re-embedding only new or changed files.

    With `remove_missing`, documents in the index that are no longer found under `paths` are
    removed (the index mirrors the folder); otherwise the files are added to what is there.
    With `ray` (an address: "local", "auto", "ray://HOST:PORT"), the files are read, chunked and
    embedded on Ray by `ray_workers` actors (`rag.distributed`); the index written is the same.
    Raises FileNotFoundError for a path that does not exist and BadInput when nothing readable
    was found (the existing index is left as it was) or Ray cannot be reached.
    """
    config = config or RagConfig()
    paths = list(paths)
    files, skipped = find_files(paths)
    report = BuildReport(UpdateStats(), list(skipped))
    with open_writer(index_dir, config=config, rebuild=rebuild) as writer:
        max_bytes = int(config.max_file_mb * 1024 * 1024)
        documents = _readable(files, max_bytes, report, on_skip, indexed=writer.current_documents())
        to_remove = _to_remove(writer, files, remove, remove_missing=remove_missing)
        empty_corpus_error = "" if remove else _empty_message(paths, report.skipped)
        try:
            if ray is None:
                report.stats = update_index(
                    writer,
                    documents,
                    to_remove,
                    embedder=embedder,
                    progress=progress,
                    empty_corpus_error=empty_corpus_error,
                )
            else:
                report.stats = _update_on_ray(
                    writer,
                    files,
                    to_remove,
                    report,
                    embedder,
                    address=ray,
                    workers=ray_workers,
                    progress=progress,
                    on_skip=on_skip,
                    empty_corpus_error=empty_corpus_error,
                )
        except EmptyCorpus:
            raise BadInput(_empty_message(paths, report.skipped)) from None
    for source, reason in report.stats.too_large:
        _skip(report, Skipped(source, reason), on_skip)
    return report


def _update_on_ray(
    writer: StoreWriter,
    files: list[tuple[Path, str]],
    to_remove: list[str],
    report: BuildReport,
    embedder: Embedder,
    *,
    address: str,
    workers: int | None,
    progress: Callable[[int], None] | None,
    on_skip: Callable[[Skipped], None] | None,
    empty_corpus_error: str,
) -> UpdateStats:
    """`update_index` with the files read, chunked and embedded on Ray by workers loading
    `embedder`'s backend. `rag.distributed` is imported here only: without `ray`, nothing loads Ray."""
    from rag.distributed import RayUnavailable, update_index_on_ray

    try:
        return update_index_on_ray(
            writer,
            files,
            to_remove,
            backend=backend_name(embedder),
            address=address,
            workers=workers,
            max_bytes=int(writer.config.max_file_mb * 1024 * 1024),
            progress=progress,
            on_skip=lambda skipped: _skip(report, skipped, on_skip),
            empty_corpus_error=empty_corpus_error,
        )
    except RayUnavailable as exc:
        raise BadInput(str(exc)) from None


def _readable(
    files: Iterable[tuple[Path, str]],
    max_bytes: int,
    report: BuildReport,
    on_skip: Callable[[Skipped], None] | None,
    *,
    indexed: dict[str, str],
) -> Iterator[Document]:
    """The documents of `files`, loaded as they are asked for (those unchanged since `indexed` are
    not parsed); a file that cannot be read is skipped (see `_skip`), pages read by OCR or left out
    are noted in `report`."""
    for item in load_documents(files, max_bytes=max_bytes, indexed=indexed):
        if isinstance(item, Skipped):
            _skip(report, item, on_skip)
            continue
        if item.ocr_pages:
            report.ocr_pages[item.source] = item.ocr_pages
        if item.skipped_pages:
            report.skipped_pages[item.source] = item.skipped_pages
        yield item


def _skip(report: BuildReport, skipped: Skipped, on_skip: Callable[[Skipped], None] | None) -> None:
    """Record a file that is not indexed in `report`, and pass it to `on_skip`."""
    report.skipped.append(skipped)
    if on_skip:
        on_skip(skipped)


def _to_remove(
    writer: StoreWriter, files: Iterable[tuple[Path, str]], remove: Sequence[str], *, remove_missing: bool
) -> list[str]:
    """The sources to remove, sorted: `remove`, and with `remove_missing` the indexed documents
    that are not among `files`."""
    current = writer.current_documents()
    listed = {source for _, source in files}
    return sorted(set(remove) | ({s for s in current if s not in listed} if remove_missing else set()))


def _empty_message(paths: Iterable[object], skipped: list[Skipped]) -> str:
    where = ", ".join(str(p) for p in paths)
    return f"no readable documents in {where}" + (f" ({len(skipped)} skipped)" if skipped else "")


def rewrites(config: RagConfig) -> bool:
    """Whether follow-ups are rewritten by the chat model. Not by the local SmolLM2-135M: in every
    try it repeated the earlier question or wrote no question (then `condense_query` was used
    anyway, 1.6 s later), so it keeps `condense_query`."""
    return config.rewrite_with_llm and config.generator not in ("extractive", "local")


class RAG:
    """A loaded model and index, shared by every question. Thread-safe for asking; `reload()`
    swaps in a new index generation after an update."""

    def __init__(self, index: Store, embedder: Embedder, config: RagConfig, *, reader: Reader | None = None) -> None:
        self.index = index
        self.embedder = embedder
        self.config = config
        self._reader = reader
        # The collection (`rag.collections`) this index is, carried by its answers; None: a single index.
        self.collection: str | None = None
        self._lock = threading.Lock()
        # One writer of this process at a time (the UI's uploads and removals, a folder watch): they
        # wait for each other here instead of meeting the store's lock (IndexLocked).
        self.write_lock = threading.Lock()

    @property
    def reader(self) -> Reader:
        """The trained reader, loaded on first use (raises ReaderUnavailable when not installed)."""
        if self._reader is None:
            self._reader = Reader.load()
        return self._reader

    @classmethod
    def open(
        cls,
        index_dir: str | os.PathLike[str] | None = None,
        *,
        config: RagConfig | None = None,
        embedder: Embedder | None = None,
        reader: Reader | None = None,
    ) -> RAG:
        """The index at `index_dir` (default `config.index_dir`) with the embedding model, loaded
        unless `embedder` is given, and with the "reader" answer scorer the trained reader (`reader`
        when given): indexes opened with the same models share their memory."""
        config = config or RagConfig()
        index = open_store(index_dir or config.index_dir, config=config)
        if reader is None and config.answer_scorer == "reader":
            reader = Reader.load()
        return cls(index, embedder or Embedder.load(backend=config.embed_backend), config, reader=reader)

    def reload(self) -> None:
        fresh = open_store(self.index.spec, config=self.config)
        with self._lock:
            self.index = fresh

    def ask(
        self,
        question: str,
        *,
        history: Sequence[Turn] = (),
        config: RagConfig | None = None,
        scope: Scope | None = None,
    ) -> Answer:
        """Answer `question` from the index, with citations, or abstain. See `rag.answer`, and
        `rag.generate` / `rag.verify` for `config.generator` other than "extractive". With a
        `scope`, only the documents in it are searched (see `ask_stream`)."""
        for item in self.ask_stream(question, history=history, config=config, scope=scope):
            if isinstance(item, Answer):
                return item
        raise RuntimeError("ask_stream ended without an answer")  # cannot happen: it always ends with one

    def ask_stream(
        self,
        question: str,
        *,
        history: Sequence[Turn] = (),
        config: RagConfig | None = None,
        scope: Scope | None = None,
    ) -> Iterator[str | Answer]:
        """Answer `question` as `ask` does, yielding the generated text pieces as the model writes
        them and the verified `Answer` last (for the extractive generator: only the Answer).

        The pieces are the model's unverified draft: the final answer keeps only its supported
        sentences, with markers renumbered to its citations. With a generator other than
        "extractive" and `rewrite_with_llm`, a follow-up is rewritten by the model into a
        self-contained question before retrieval (`Answer.query`); otherwise `condense_query`.
        When the evidence is too weak for the extractive answer (it abstains), no model is asked.

        With a `scope`, the question (and a follow-up's joined query) is searched only among the
        documents in it, inside the search, so the hits, the confidence and a refusal all come
        from those documents: a question answered only elsewhere is refused. The answer echoes the
        scope (`Answer.scope`). Raises EmptyScope (a BadInput) when no indexed document is in it.
        Raises BadInput for a bad question, and `rag.generate.GeneratorUnavailable` /
        `GeneratorError` when the chat model is not installed or its server fails.

        Example:
            >>> for item in rag.ask_stream("What did Blinken warn?", config=cfg):  # doctest: +SKIP
            ...     print(item if isinstance(item, str) else item.text)
        """

        config = config or self.config
        started = time.perf_counter()
        question = validate_question(question, config=config)
        index = self.index
        scope = None if scope is None or scope.everything else scope
        sources = _sources_in(index, scope)
        timings: dict[str, float] = {}
        model = None if config.generator == "extractive" else self._chat_model(config, timings)
        query = self._standalone_query(question, history, model, config, timings)
        answer, hits = self._extract(
            question,
            query,
            config,
            timings,
            index=index,
            sources=sources,
            generating=model is not None,
            previous=history[-1][0] if history else None,
        )
        answer = replace(answer, scope=scope, collection=self.collection)
        answered = time.perf_counter()
        model_ms = timings.get("rewrite", 0.0) + timings.get("generate", 0.0)
        timings["retrieve"] = (answered - started) * 1000 - model_ms - timings["answer"]
        if model is None or answer.abstained:
            yield _answer_without_model(answer, query, config, timings, total_ms=(answered - started) * 1000)
            return
        # A rewritten follow-up stands on its own; `condense_query`'s joined questions do not read well.
        prompt_question = query if history and rewrites(config) else question
        verified, done = yield from self._write_and_verify(
            model, question, prompt_question, hits, answer, config, timings, since=answered
        )
        timings["total"] = (done - started) * 1000
        yield replace(
            verified,
            hits=answer.hits[: config.top_k],
            query=query,
            timings_ms=timings,
            scope=scope,
            collection=self.collection,
        )

    def _write_and_verify(
        self,
        model: BaseChatModel,
        question: str,
        prompt_question: str,
        hits: Sequence[Hit],
        extractive: Answer,
        config: RagConfig,
        timings: dict[str, float],
        *,
        since: float,
    ) -> Generator[str, None, tuple[Answer, float]]:
        """The model's draft answer to `prompt_question` from the first `generate_passages` hits,
        yielded piece by piece as it is written; returns the answer `verify_answer` makes of it and
        when that was done (`time.perf_counter()`). The writing time (from `since`) is added to
        `timings["generate"]`, the verification's is `timings["verify"]`."""
        from rag.generate import build_messages, stream_tokens

        passages = hits[: config.generate_passages]
        pieces: list[str] = []
        for piece in stream_tokens(model, build_messages(prompt_question, passages, config)):
            pieces.append(piece)
            yield piece
        generated = time.perf_counter()
        verified = verify_answer(
            question,
            "".join(pieces),
            passages,
            self.index,
            self.embedder,
            config=config,
            extractive=extractive,
            generator=config.generator,
        )
        done = time.perf_counter()
        timings["generate"] += (generated - since) * 1000
        timings["verify"] = (done - generated) * 1000
        return verified, done

    @staticmethod
    def _chat_model(config: RagConfig, timings: dict[str, float]) -> BaseChatModel:
        """The chat model (the local one loads on first use: counted as generating)."""
        from rag.generate import chat_model  # langchain_core takes seconds to import: only when generating

        loading = time.perf_counter()
        model = chat_model(config)
        timings["generate"] = (time.perf_counter() - loading) * 1000
        return model

    @staticmethod
    def _standalone_query(
        question: str,
        history: Sequence[Turn],
        model: BaseChatModel | None,
        config: RagConfig,
        timings: dict[str, float],
    ) -> str:
        """What is searched for: the question, made to stand on its own when it is a follow-up."""
        if model is None or not history or not rewrites(config):
            return condense_query(question, history)
        from rag.generate import rewrite_question

        rewriting = time.perf_counter()
        query = rewrite_question(model, question, history)
        timings["rewrite"] = (time.perf_counter() - rewriting) * 1000
        return query

    def _extract(
        self,
        question: str,
        query: str,
        config: RagConfig,
        timings: dict[str, float],
        *,
        index: Store,
        sources: frozenset[str] | None,
        generating: bool,
        previous: str | None = None,
    ) -> tuple[Answer, list[Hit]]:
        """The extractive answer (cited sentences, or an abstention) and the hits it came from
        (`timings["answer"]`: the time after retrieval), searched among the chunks of `sources`
        (None: all). A generated answer is shown the same hits, so both agree on confidence and
        abstention. `previous`: the chat's question before this one (`compose_answer`)."""
        query_vector = self.embedder.encode_queries([query])[0]
        n_hits = max(config.top_k, config.answer_hits)
        depth = max(n_hits, config.rerank_depth) if config.answer_scorer == "reader" else n_hits
        hits = search(
            index,
            query,
            query_vector,
            config=config,
            top_k=max(depth, config.generate_passages) if generating else depth,
            sources=sources,
        )
        retrieved = time.perf_counter()
        terms = QuestionTerms.of(question, index)
        sentences = None
        if config.answer_scorer == "reader":
            hits, read = read_and_rerank(question, query_vector, hits, index, self.reader, config=config, terms=terms)
            sentences = [s for s in read if s.hit_rank < n_hits]
        answer = compose_answer(
            question,
            query_vector,
            hits[:n_hits],
            index,
            config=config,
            sentences=sentences,
            terms=terms,
            previous=previous,
        )
        if asks_for_overview(question):  # "What is the article about?": its opening, if one document is meant
            answer = overview(answer, index, sources, config=config)
        elif asks_for_conclusion(question):  # "What does the author conclude?": its closing, likewise
            answer = conclusion(answer, index, sources, config=config)
        elif asks_for_author(question):  # "Who wrote the article?": its byline, if one document is meant
            answer = byline(answer, index, sources)
        timings["answer"] = (time.perf_counter() - retrieved) * 1000
        return answer, hits


def _sources_in(index: Store, scope: Scope | None) -> frozenset[str] | None:
    """The documents a question within `scope` is searched in (None: all); EmptyScope when the
    index holds none of them."""
    sources = scope_sources(index, scope)
    if sources is not None and not sources:
        assert scope is not None
        n = len(index.documents())
        raise EmptyScope(
            f"no document in the index matches the scope ({scope.describe()}): "
            f"{n} document{'s are' if n != 1 else ' is'} indexed, none in it"
        )
    return sources


def _answer_without_model(
    answer: Answer, query: str, config: RagConfig, timings: dict[str, float], *, total_ms: float
) -> Answer:
    """The extractive answer as `RAG.ask_stream` returns it when no model writes one: its quotes
    are its checked sentences, and no "generate" time is shown (loading a model stays in "total")."""
    sentences = tuple(CheckedSentence(c.quote, (c.n,), True, 1.0) for c in answer.citations)
    timings.pop("generate", None)  # no model was asked
    timings["total"] = total_ms
    return replace(answer, hits=answer.hits[: config.top_k], query=query, timings_ms=timings, sentences=sentences)


def index_exists(index_dir: str | os.PathLike[str]) -> bool:
    """Whether the folder or store spec holds a committed index."""
    return committed_manifest(index_dir) is not None


def remove_documents(
    index_dir: str | os.PathLike[str], sources: Sequence[str], *, embedder: Embedder, config: RagConfig | None = None
) -> UpdateStats:
    """Remove the documents named by `sources` from the index at `index_dir`, as one new generation.

    Sources not in the index are ignored (`stats.removed` lists what went); every other document
    is left as it is. Call `RAG.reload()` afterwards so questions no longer see them.

    Example:
        >>> remove_documents("index", ["notes.md"], embedder=Embedder.load()).removed  # doctest: +SKIP
        ['notes.md']
    """
    if isinstance(sources, str):
        raise TypeError("sources must be a sequence of source names, not one string")
    if not sources:
        raise BadInput("no documents given to remove")
    return build_index(
        [], index_dir=index_dir, embedder=embedder, config=config, remove_missing=False, remove=list(sources)
    ).stats


# --- uploads: files added to and removed from a served index ----------------------------------


@dataclass
class UploadReport:
    """What `add_uploads` did, by file name: `outcome` is "added", "changed" or "unchanged" for
    each file indexed, `skipped` the reason for each file that could not be read; `stats` the
    update's, None when nothing was readable (the index is then as it was)."""

    outcome: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    stats: UpdateStats | None = None


def add_uploads(
    rag: RAG,
    files: dict[str, Path],
    *,
    progress: Callable[[int], None] | None = None,
    on_reload: Callable[[], None] | None = None,
) -> UploadReport:
    """Index uploaded `files` (safe file name -> where the upload is) into `rag`'s index, adding to
    what is there, keep the indexed files in the index's `uploads/` folder, and reload `rag`.

    The files are indexed from a hidden staging folder, so a file that cannot be read is never
    kept. `progress` gets the number of chunks embedded as they are; `on_reload` is called before
    the reload. Raises IndexError_ when another writer holds the index and ValueError for a
    document over the index's limits (nothing is added then).

    Example:
        >>> add_uploads(rag, {"notes.md": Path("/tmp/upload-1/notes.md")}).outcome  # doctest: +SKIP
        {'notes.md': 'added'}
    """
    import shutil
    import uuid

    uploads_dir = rag.index.uploads_dir
    staging = uploads_dir / f".staging-{uuid.uuid4().hex}"  # hidden: never indexed as a folder
    staging.mkdir(parents=True)
    report = UploadReport()
    try:
        for name, path in files.items():
            shutil.copyfile(path, staging / name)
        with rag.write_lock:
            try:
                report.stats = stats = _index_staged(rag, [staging / name for name in files], report, progress)
            except BadInput:
                return report  # nothing readable; the reasons are in `skipped`
            _keep_indexed(files, stats, staging, uploads_dir, report)
            if on_reload:
                on_reload()
            rag.reload()
        return report
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _index_staged(
    rag: RAG, paths: list[Path], report: UploadReport, progress: Callable[[int], None] | None
) -> UpdateStats:
    """Add the staged files at `paths` to `rag`'s index; each skipped file's reason goes into
    `report.skipped`. Raises BadInput when none was readable."""
    return build_index(
        paths,
        index_dir=rag.index.spec,
        embedder=rag.embedder,
        config=rag.config,
        remove_missing=False,
        progress=progress,
        on_skip=lambda s: report.skipped.__setitem__(s.source, s.reason),
    ).stats


def _keep_indexed(
    names: Iterable[str], stats: UpdateStats, staging: Path, uploads_dir: Path, report: UploadReport
) -> None:
    """Move each file that was indexed (not in `report.skipped`) from `staging` into `uploads_dir`,
    and record in `report.outcome` whether the update (`stats`) added, changed or left it unchanged."""
    for name in names:
        if name not in report.skipped:
            os.replace(staging / name, uploads_dir / name)
            report.outcome[name] = (
                "added" if name in stats.added else "changed" if name in stats.changed else "unchanged"
            )


def remove_upload(rag: RAG, source: str) -> UpdateStats:
    """Remove the document `source` from `rag`'s index, delete its file from the index's
    `uploads/` folder if it was uploaded, and reload `rag`. `stats.removed` is empty when it was
    not in the index. Raises BadInput and IndexError_ as `remove_documents` does."""
    with rag.write_lock:
        stats = remove_documents(rag.index.spec, [source], embedder=rag.embedder, config=rag.config)
        if source in stats.removed:
            uploads_dir = rag.index.uploads_dir
            target = uploads_dir / source  # only a file directly in the folder: never outside it
            if target.parent.resolve() == uploads_dir.resolve() and target.is_file() and not target.is_symlink():
                target.unlink()
            rag.reload()
    return stats
