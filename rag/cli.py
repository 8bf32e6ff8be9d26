"""The `rag` command. Heavy libraries are imported inside each sub-command so `rag --help` is instant.

Exit codes: 0 success, 2 bad input (one line on stderr, never a traceback), 1 unexpected failure.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.config import ANSWER_SCORERS, EMBED_BACKENDS, GENERATORS, MODES, RagConfig
from rag.users import DEFAULT_USERS_FILE, READ, WRITE, Users, UsersError

if TYPE_CHECKING:
    import gradio as gr

    from rag.collections import Collections
    from rag.pipeline import RAG
    from rag.scope import Scope
    from rag.types import Answer

DEFAULT_SOURCES = "seeds"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
ASK_FORMATS = ("text", "json", "markdown")


class CliError(Exception):
    """A one-line message for the user; exit code 2."""


def _parser() -> argparse.ArgumentParser:
    defaults = RagConfig()
    parser = argparse.ArgumentParser(
        prog="rag", description="Offline question answering over your documents, with every answer quoted and cited."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("index", help="index files or folders (incremental: only new or changed files are embedded)")
    p.add_argument(
        "paths",
        nargs="*",
        default=[DEFAULT_SOURCES],
        metavar="PATHS",
        help=f"files or folders, searched recursively (default: {DEFAULT_SOURCES}/)",
    )
    _store_flags(p, defaults)
    p.add_argument(
        "--add", action="store_true", help="add to the index without removing documents that are not under PATHS"
    )
    p.add_argument("--rebuild", action="store_true", help="re-embed everything (after changing model or chunking)")
    p.add_argument("--chunk-tokens", type=int, default=defaults.chunk_tokens)
    p.add_argument(
        "--chunk-overlap",
        type=int,
        default=defaults.chunk_overlap_sentences,
        help="sentences shared by consecutive chunks (default: %(default)s)",
    )
    _backend_flag(p, defaults)
    p.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="read, chunk and embed on Ray Data (give it after PATHS): a local Ray without ADDRESS, else "
        "ray://HOST:10001, HOST:PORT or auto (the files must be readable on every node; needs the scale extra)",
    )
    p.add_argument("--ray-workers", type=int, metavar="N", help="embedding actors with --ray (default: Ray's CPUs)")
    p.add_argument(
        "--watch",
        action="store_true",
        help="after indexing, keep running and apply added, changed, removed and renamed files under PATHS "
        "as they settle, one line each (Ctrl-C or SIGTERM stops)",
    )
    _collection_flag(p)

    p = sub.add_parser("ask", help="answer a question from the index")
    p.add_argument("question")
    _store_flags(p, defaults)
    p.add_argument("--top-k", type=int, default=defaults.top_k)
    p.add_argument("--mode", choices=MODES, default=defaults.mode)
    p.add_argument("--json", action="store_true", help="print one JSON object (the same as --format json)")
    p.add_argument(
        "--format",
        choices=ASK_FORMATS,
        help="text: for reading in a terminal (default); json: one JSON object; markdown: the question, "
        "answer and numbered sources as Markdown, to keep or share",
    )
    _collection_flag(p)
    _scope_flags(p)
    _backend_flag(p, defaults)
    _generator_flags(p, defaults)

    p = sub.add_parser("serve", help="start the chat UI")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    _store_flags(p, defaults)
    _backend_flag(p, defaults)
    _generator_flags(p, defaults)
    p.add_argument(
        "--watch",
        nargs="+",
        metavar="PATH",
        help="keep the index in sync with these files or folders while serving (as `rag index PATHS --watch`; "
        "documents uploaded through the UI stay)",
    )
    auth = p.add_mutually_exclusive_group()
    auth.add_argument(
        "--users",
        metavar="FILE",
        help="require sign-in with the users of FILE (`rag user add`); each sees only the collections granted "
        "to them, and their conversations are kept beside FILE",
    )
    auth.add_argument(
        "--no-auth",
        action="store_true",
        help="serve a non-loopback address without sign-in: anyone who can reach it may ask, upload and remove",
    )

    _user_parser(sub)
    p = sub.add_parser("collections", help="list the collections of an index folder: name, documents, chunks")
    _store_flags(p, defaults)

    sub.add_parser("eval", help="evaluate retrieval, answers, citations and refusals (rag eval --help)", add_help=False)
    return parser


def _store_flags(p: argparse.ArgumentParser, defaults: RagConfig) -> None:
    """--store SPEC and its older spelling --index-dir DIR (the same as --store faiss:DIR)."""
    p.add_argument(
        "--store",
        dest="index_dir",
        default=defaults.index_dir,
        metavar="SPEC",
        help="where the index is: faiss:DIR or a folder (default: %(default)s), milvus:PATH.db (Milvus Lite), "
        "milvus://HOST:PORT[/COLLECTION] (a Milvus server; token from $MILVUS_TOKEN)",
    )
    p.add_argument("--index-dir", dest="index_dir", metavar="DIR", help="index folder: the same as --store faiss:DIR")


def _collection_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--collection",
        metavar="NAME",
        help="a named index kept in the index folder's collections/NAME (default: the folder itself; "
        "`rag collections` lists them)",
    )


def _use_collection(args: argparse.Namespace, *, built: bool) -> None:
    """Point `args.index_dir` at the collection `--collection` names (`rag.collections`); with
    `built`, CliError naming it and listing those there are when it is not built."""
    if args.collection is None:
        return
    from rag.collections import DEFAULT, BadCollection, check_collection, collection_dir, require_collection
    from rag.store import IndexError_

    try:
        if built:
            args.index_dir = require_collection(args.index_dir, args.collection)
        elif check_collection(args.collection) != DEFAULT:  # the default is the store itself, of any kind
            args.index_dir = str(collection_dir(args.index_dir, args.collection))
    except (BadCollection, IndexError_) as exc:
        raise CliError(str(exc)) from None


def _scope_flags(p: argparse.ArgumentParser) -> None:
    """--source/--folder/--type/--after/--before: search only some documents (`rag.scope`). Flags of
    one kind are alternatives, different kinds must all hold."""
    g = p.add_argument_group(
        "asking within some documents",
        "search only the documents that pass every filter given (repeat a flag for 'or')",
    )
    g.add_argument(
        "--source",
        action="append",
        metavar="GLOB",
        help="source path relative to the indexed folder: a name or a glob (* within a folder, **/ any "
        "folders: 'reports/*.pdf', '**/notes.md')",
    )
    g.add_argument("--folder", action="append", metavar="DIR", help="documents under this folder (and its subfolders)")
    g.add_argument("--type", action="append", metavar="EXT", help="file type: pdf, docx, html, htm, md, txt")
    dates = (
        "(YYYY-MM-DD, the file's modification date; documents indexed before dates were recorded have "
        "none and are left out: `rag index --rebuild` records them)"
    )
    g.add_argument("--after", metavar="DATE", help=f"modified on or after DATE {dates}")
    g.add_argument("--before", metavar="DATE", help=f"modified on or before DATE {dates}")


def _scope(args: argparse.Namespace) -> Scope:
    """The scope the flags give (everything without them); CliError naming a bad value."""
    from rag.scope import BadScope, parse_scope

    try:
        return parse_scope(
            source=args.source, folder=args.folder, type=args.type, after=args.after, before=args.before, prefix="--"
        )
    except BadScope as exc:
        raise CliError(str(exc)) from None


def _backend_flag(p: argparse.ArgumentParser, defaults: RagConfig) -> None:
    p.add_argument(
        "--embed-backend",
        choices=EMBED_BACKENDS,
        default=defaults.embed_backend,
        help="how the embedding model runs (default: %(default)s; BENCHMARKS.md compares them)",
    )


def _generator_flags(p: argparse.ArgumentParser, defaults: RagConfig) -> None:
    p.add_argument(
        "--answer-scorer",
        choices=ANSWER_SCORERS,
        default=defaults.answer_scorer,
        help="what picks the answer sentence and decides to refuse: reader (the trained "
        "cross-encoder, default) or heuristic (similarity and word overlap, no model call)",
    )
    p.add_argument(
        "--reader-sentences",
        type=int,
        default=defaults.reader_sentences,
        help="with the reader: sentences it reads per question (default: %(default)s; fewer are faster, "
        "BENCHMARKS.md section 5 measures what they cost)",
    )
    p.add_argument(
        "--reader-tokens",
        type=int,
        default=defaults.reader_tokens,
        help="with the reader: word pieces of each sentence and its context it reads (default: "
        "%(default)s, the length it was trained with)",
    )
    p.add_argument(
        "--generator",
        choices=GENERATORS,
        default=defaults.generator,
        help="extractive: quoted sentences, no language model (default); local: SmolLM2-135M in "
        "this process; openai: an OpenAI-compatible server; ollama: an Ollama server",
    )
    p.add_argument(
        "--llm-base-url",
        default=defaults.llm_base_url,
        help="server URL for --generator openai/ollama (e.g. http://127.0.0.1:8080/v1)",
    )
    p.add_argument("--llm-model", default=defaults.llm_model, help="model name for --generator openai/ollama")
    p.add_argument(
        "--llm-max-new-tokens",
        type=int,
        default=defaults.llm_max_new_tokens,
        help="longest generated answer, in tokens (default: %(default)s)",
    )
    p.add_argument(
        "--claim-checker",
        action=argparse.BooleanOptionalAction,
        default=defaults.claim_checker,
        help="check each generated sentence with the trained claim checker as well as the support score "
        "(default: on; eval/reports/support.json measures both)",
    )


def _generator_config(args: argparse.Namespace) -> dict[str, object]:
    return {
        "claim_checker": args.claim_checker,
        "generator": args.generator,
        "llm_base_url": args.llm_base_url,
        "llm_model": args.llm_model,
        "llm_max_new_tokens": args.llm_max_new_tokens,
        "answer_scorer": args.answer_scorer,
        "reader_sentences": args.reader_sentences,
        "reader_tokens": args.reader_tokens,
    }


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["eval"]:  # its own parser: its options would confuse this one
        from eval.cli import main as eval_main

        return eval_main(argv[1:])
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        if args.command == "index":
            return _index(args)
        if args.command == "ask":
            return _ask(args)
        if args.command == "serve":
            return _serve(args)
        if args.command == "user":
            return _user(args)
        if args.command == "collections":
            return _collections(args)
    except CliError as exc:
        print(f"rag {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rag {args.command}: interrupted; the index is as it was before this run", file=sys.stderr)
        return 130
    return 0


def _user_parser(sub: Any) -> None:
    """`rag user ACTION`: the users file `rag serve` signs in against (rag/users.py)."""
    users_file = argparse.ArgumentParser(add_help=False)
    users_file.add_argument(
        "--users", default=DEFAULT_USERS_FILE, metavar="FILE", help="the users file (default: %(default)s)"
    )
    stdin = argparse.ArgumentParser(add_help=False)
    stdin.add_argument(
        "--password-stdin", action="store_true", help="read the password from one line of stdin instead of asking"
    )
    p = sub.add_parser("user", help="manage who may sign in to `rag serve` and the collections each may use")
    actions = p.add_subparsers(dest="user_action", metavar="ACTION", required=True)
    a = actions.add_parser("add", parents=[users_file, stdin], help="add a user (asks for the password twice)")
    a.add_argument("name", metavar="NAME")
    a = actions.add_parser("passwd", parents=[users_file, stdin], help="change a user's password")
    a.add_argument("name", metavar="NAME")
    a = actions.add_parser("remove", parents=[users_file], help="remove a user")
    a.add_argument("name", metavar="NAME")
    a = actions.add_parser("grant", parents=[users_file], help="let a user read, or read and write, a collection")
    a.add_argument("name", metavar="NAME")
    a.add_argument("collection", metavar="COLLECTION")
    level = a.add_mutually_exclusive_group(required=True)
    level.add_argument("--read", dest="level", action="store_const", const=READ)
    level.add_argument("--write", dest="level", action="store_const", const=WRITE, help="read and write")
    a = actions.add_parser("revoke", parents=[users_file], help="take a collection from a user")
    a.add_argument("name", metavar="NAME")
    a.add_argument("collection", metavar="COLLECTION")
    actions.add_parser("list", parents=[users_file], help="the users and their grants (never the password hashes)")


def _user(args: argparse.Namespace) -> int:
    """One change to the users file, one line saying it (or `rag user list`)."""
    try:
        users = Users(args.users)
        action, name = args.user_action, getattr(args, "name", "")
        if action == "add":
            users.add(name, _new_password(args.password_stdin, name))
            print(f"added user {name} to {users.path} (no collections yet: rag user grant {name} COLLECTION --read)")
        elif action == "passwd":
            users.set_password(name, _new_password(args.password_stdin, name))
            print(f"changed the password of {name}")
        elif action == "remove":
            users.remove(name)
            print(f"removed user {name}{_forget_conversations(users.path, name)}")
        elif action == "grant":
            users.grant(name, args.collection, args.level)
            print(f"{name} may now {args.level} {args.collection}")
        elif action == "revoke":
            users.revoke(name, args.collection)
            print(f"{name} may no longer use {args.collection}")
        else:
            _list_users(users)
    except UsersError as exc:
        raise CliError(str(exc)) from None
    except KeyboardInterrupt:
        print("rag user: interrupted; the users file is as it was", file=sys.stderr)
        return 130
    return 0


def _forget_conversations(users_file: Path, name: str) -> str:
    """A removed user's saved conversations go with them: the words saying how many."""
    from rag.conversations import Conversations, ConversationStoreError, beside

    if not beside(users_file).is_file():
        return ""
    try:
        with Conversations(beside(users_file)) as kept:
            n = kept.delete_user(name)
    except ConversationStoreError as exc:
        return f" (their conversations were kept: {exc})"
    return f" and their {n} saved conversation(s)" if n else ""


def _new_password(from_stdin: bool, name: str) -> str:
    """One line of stdin (without its newline), or asked twice on the terminal."""
    import getpass

    if from_stdin:
        line = sys.stdin.readline()
        return line[:-1].removesuffix("\r") if line.endswith("\n") else line
    try:
        password = getpass.getpass(f"New password for {name}: ")
        if getpass.getpass("Repeat it: ") != password:
            raise CliError("the two passwords differ; nothing changed")
    except EOFError:
        raise CliError("no password given (use --password-stdin to pipe one)") from None
    return password


def _list_users(users: Users) -> None:
    names = users.names()
    if not names:
        print(f"no users in {users.path}")
    for name in names:
        user = users.user(name)
        grants = user.grants if user else {}
        print(name + "  " + (", ".join(f"{c} ({grants[c]})" for c in sorted(grants)) or "(no collections)"))


def _config(args: argparse.Namespace, **extra: Any) -> RagConfig:
    try:
        config = RagConfig(index_dir=args.index_dir, **extra)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    from rag.store import IndexError_
    from rag.store.locate import parse_store

    try:
        parse_store(config.index_dir)  # a bad spec is named before any model loads
    except IndexError_ as exc:
        raise CliError(str(exc)) from None
    return config


def _index(args: argparse.Namespace) -> int:
    _use_collection(args, built=False)
    config = _config(
        args,
        chunk_tokens=args.chunk_tokens,
        chunk_overlap_sentences=args.chunk_overlap,
        embed_backend=args.embed_backend,
    )
    for path in args.paths:
        if not Path(path).exists():
            raise CliError(f"path does not exist: {path}")
    if args.ray_workers is not None and args.ray is None:
        raise CliError("--ray-workers needs --ray")
    from rag.embed import Embedder

    if args.watch:  # from here on SIGTERM stops the run as Ctrl-C does
        signal.signal(signal.SIGTERM, _interrupt)
    embedder = Embedder.load(backend=config.embed_backend)
    if args.watch:
        return _watch(args, config, embedder)
    _index_once(args, config, embedder)
    return 0


def _index_once(args: argparse.Namespace, config: RagConfig, embedder: Any) -> None:
    """One `rag index` run: build or update the index, print its summary and what was skipped."""
    from tqdm import tqdm

    from rag.pipeline import BadInput, build_index
    from rag.store import IndexError_

    bar = tqdm(desc="embedding", unit="chunk", disable=None, file=sys.stderr)
    try:
        report = build_index(
            args.paths,
            index_dir=args.index_dir,
            embedder=embedder,
            config=config,
            rebuild=args.rebuild,
            remove_missing=not args.add,
            progress=bar.update,
            ray=args.ray,
            ray_workers=args.ray_workers,
        )
    except (BadInput, IndexError_, FileNotFoundError) as exc:
        raise CliError(str(exc).strip('"')) from None
    finally:
        bar.close()
    s = report.stats
    rate = f", {s.chunks_embedded / s.embed_seconds:.0f} chunks/s" if s.embed_seconds else ""
    where = f"collection {args.collection} ({args.index_dir})" if args.collection else args.index_dir
    print(
        f"indexed into {where}: {len(s.added)} added, {len(s.changed)} changed, "
        f"{len(s.removed)} removed, {len(s.unchanged)} unchanged; {s.chunks_embedded} chunks embedded"
        f"{rate}; {s.n_chunks} chunks in the index ({s.seconds:.1f}s)"
    )
    if report.skipped:
        print(f"skipped {len(report.skipped)} file(s):")
        for item in report.skipped:
            print(f"  {_printable(item.source)}: {item.reason}")
    _print_pages(report.ocr_pages, report.skipped_pages)


def _print_pages(ocr_pages: dict[str, tuple[int, ...]], skipped_pages: dict[str, tuple[tuple[int, str], ...]]) -> None:
    """The index summary's lines for scanned PDF pages: those read by OCR, those left out and why."""
    if ocr_pages:
        print(f"read by OCR (scanned pages without a text layer) in {len(ocr_pages)} file(s):")
        for source, read in ocr_pages.items():
            print(f"  {_printable(source)}: {_pages(read)}")
    if skipped_pages:
        print(f"pages left out of {len(skipped_pages)} indexed file(s):")
        for source, pages in skipped_pages.items():
            by_reason: dict[str, list[int]] = {}
            for number, reason in pages:
                by_reason.setdefault(reason, []).append(number)
            for reason, left_out in by_reason.items():
                print(f"  {_printable(source)}: {_pages(left_out)}: {reason}")


def _pages(numbers: Sequence[int]) -> str:
    """Page numbers as ranges.

    Example:
        >>> _pages([1, 2, 3, 5]), _pages([4])
        ('pages 1-3, 5', 'page 4')
    """
    runs: list[list[int]] = []
    for n in sorted(numbers):
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    text = ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else f"{r[0]}" for r in runs)
    return ("pages " if len(numbers) > 1 else "page ") + text


def _watch(args: argparse.Namespace, config: RagConfig, embedder: Any) -> int:
    """`rag index PATHS --watch`: the index run, then one line per change applied until Ctrl-C or
    SIGTERM. Stopping abandons an update in progress whole (its writer rolls it back)."""
    from rag.store import IndexError_
    from rag.watch import FolderWatch, WatchFailed

    def index_first() -> None:
        try:
            _index_once(args, config, embedder)
        except CliError as exc:
            if not str(exc).startswith("no readable documents"):
                raise
            print(f"{exc}: the index is left as it was", flush=True)
        print(f"watching {', '.join(args.paths)} (Ctrl-C stops)", flush=True)

    watch = FolderWatch(
        args.paths, args.index_dir, embedder=embedder, config=config, on_change=lambda c: print(c.line(), flush=True)
    )
    try:
        watch.run(before=index_first)
    except KeyboardInterrupt:
        print("rag index: stopped; every change printed above is in the index", flush=True)
    except (IndexError_, WatchFailed) as exc:
        raise CliError(str(exc)) from None
    return 0


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM stops a watch or the server as Ctrl-C does."""
    raise KeyboardInterrupt


def _with_index_chunking(config: RagConfig, index_dir: str, *, required: bool = False) -> RagConfig:
    """Chunking belongs to the index (`rag index --chunk-tokens/--chunk-overlap`); `ask` and `serve`
    have no flags for it, so they read with the index's own values (the model is still checked).
    With `required`, a store that holds no committed index is an error here (one manifest read)."""
    from rag.store import IndexError_
    from rag.store.locate import committed_manifest
    from rag.store.manifest import built_chunking

    try:
        manifest = committed_manifest(index_dir)
    except IndexError_ as exc:
        raise CliError(str(exc)) from None
    if manifest is None and required:
        raise CliError(f"no index at {index_dir}: build one first with `rag index --store {index_dir}`")
    chunking = built_chunking(manifest)
    try:
        return config.replace(**chunking) if chunking else config
    except ValueError as exc:
        raise CliError(f"index at {index_dir} has unusable parameters: {exc}") from None


def _printable(text: str) -> str:
    """A file name on one line: control characters (a newline in a name) shown escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _ask(args: argparse.Namespace) -> int:
    _use_collection(args, built=True)
    config = _config(
        args, top_k=args.top_k, mode=args.mode, embed_backend=args.embed_backend, **_generator_config(args)
    )
    from rag.pipeline import BadInput, validate_question

    try:
        validate_question(args.question, config=config)
    except BadInput as exc:
        raise CliError(str(exc)) from None
    scope = _scope(args)
    args.format = _ask_format(args)
    answer = _answer(args, _with_index_chunking(config, args.index_dir), scope)
    if args.format == "json":
        print(json.dumps(answer.to_json(), ensure_ascii=False))
    elif args.format == "markdown":
        from rag.export import answer_markdown

        print(answer_markdown(answer.to_json()), end="")
    else:
        _print_answer(answer)
    return 0


def _ask_format(args: argparse.Namespace) -> str:
    """`--format`, with `--json` as its older spelling of `--format json`."""
    if args.json and args.format not in (None, "json"):
        raise CliError(f"--json and --format {args.format} conflict: give one of them")
    return "json" if args.json else args.format or "text"


def _answer(args: argparse.Namespace, config: RagConfig, scope: Scope) -> Answer:
    """The verified answer to `args.question`, searched within `scope`. A generated draft streams to
    the terminal (stderr, dimmed) as it is written; the verified answer, which keeps only the
    sentences its sources support, is what goes to stdout."""
    from rag.pipeline import RAG, BadInput
    from rag.reader import ReaderUnavailable
    from rag.store import IndexError_
    from rag.types import Answer

    show_draft = config.generator != "extractive" and args.format == "text" and sys.stderr.isatty()
    answer = None
    try:
        rag = RAG.open(args.index_dir, config=config)
        rag.collection = args.collection or "default"  # as the served API names the index folder itself
        for item in rag.ask_stream(args.question, scope=scope):
            if isinstance(item, Answer):
                answer = item
            elif show_draft:
                sys.stderr.write(f"\x1b[2m{item}\x1b[0m")
                sys.stderr.flush()
    except (BadInput, IndexError_, ReaderUnavailable) as exc:
        raise CliError(str(exc)) from None
    except Exception as exc:  # the chat model is missing or its server failed: one line, not a traceback
        from rag.generate import GeneratorError, GeneratorUnavailable, generator_failure

        if isinstance(exc, (GeneratorUnavailable, GeneratorError)):
            raise CliError(generator_failure(exc, config)) from None
        raise
    if show_draft:
        sys.stderr.write("\n\n")
    assert answer is not None
    return answer


def _print_answer(answer: Answer) -> None:
    """The answer for people: its text, the sentences removed as unsupported, the sources, and
    what a refusal or a "not sure" answer rests on."""
    print(answer.text)
    removed = [s.text for s in answer.sentences if not s.supported]
    if removed:
        print(f"\nRemoved, not supported by the sources ({answer.generator} generator):")
        for text in removed:
            print(f"  ✗ {text}")
    if answer.citations:
        print("\nSources:")
        for c in answer.citations:
            page = f", page {c.page}" if c.page is not None else ""
            print(f"  [{c.n}] {c.source}{page}, characters {c.start}-{c.end} (score {c.score:.2f})")
    if answer.tentative:
        print("\n(not sure: the closest passage is shown, the confidence is too low to answer)")
    elif answer.abstained and answer.hits:
        print("\nNearest passages (not an answer):")
        for h in answer.hits[:3]:
            print(f"  - {h.chunk.source}: {h.chunk.text[:100]}…")
    if answer.scope is not None:
        print(f"\nsearched only in: {answer.scope.describe()}")
    print(f"\nconfidence {answer.confidence:.2f} · {answer.timings_ms['total']:.0f} ms")


def _collections(args: argparse.Namespace) -> int:
    """`rag collections`: one line per collection built in the index folder: its name, documents
    and chunks."""
    from rag.collections import BadCollection, collection_names, require_collection
    from rag.store import IndexError_
    from rag.store.locate import committed_manifest

    try:
        names = collection_names(args.index_dir)
        if not names:
            raise CliError(f"no index at {args.index_dir}: build one with `rag index PATHS [--collection NAME]`")
        manifests = {name: committed_manifest(require_collection(args.index_dir, name)) or {} for name in names}
    except (BadCollection, IndexError_) as exc:
        raise CliError(str(exc)) from None
    width = max(len(name) for name in names)
    for name, manifest in manifests.items():
        documents, chunks = len(manifest.get("documents", {})), manifest.get("n_chunks", 0)
        print(f"{name:<{width}}  {documents:>7} documents  {chunks:>9} chunks")
    return 0


def _serve(args: argparse.Namespace) -> int:
    """Load the model and index once, then serve the chat UI (`rag.ui`) on `--host:--port`.

    RAG_MAX_FILE_MB in the environment overrides the upload size limit (`max_file_mb`).
    """
    library = _open_served(args)
    from rag.ui.blocks import build_app

    return _launch(build_app(library, **app_options(args)), library, args)


def app_options(args: argparse.Namespace) -> dict[str, Any]:
    """`build_app`'s options for the served flags `args`: the folder watch, users, conversations."""
    return {
        "watch": getattr(args, "folder_watch", None),
        "users": getattr(args, "users_db", None),
        "conversations": getattr(args, "conversations", None),
    }


def open_served(argv: Sequence[str]) -> tuple[Collections, argparse.Namespace]:
    """What `rag serve ARGV` does before it listens, for app.py: the flags parsed, the index
    checked, the model and index loaded. A problem exits 2 with the line `rag serve` prints."""
    args = _parser().parse_args(["serve", *argv])
    try:
        return _open_served(args), args
    except CliError as exc:
        sys.exit(_serve_error(exc))


def launch_served(demo: gr.Blocks, rag: Collections, args: argparse.Namespace) -> int:
    """Serve `demo` (the UI over `rag`) as `rag serve` does with the flags `args`, for app.py:
    0 when stopped, 2 with `rag serve`'s one-line error when it cannot listen."""
    try:
        return _launch(demo, rag, args)
    except CliError as exc:
        return _serve_error(exc)


def _serve_error(exc: CliError) -> int:
    print(f"rag serve: error: {exc}", file=sys.stderr)
    return 2


def _open_served(args: argparse.Namespace) -> Collections:
    extra: dict[str, object] = {}
    if os.environ.get("RAG_MAX_FILE_MB"):
        try:
            extra["max_file_mb"] = float(os.environ["RAG_MAX_FILE_MB"])
        except ValueError:
            raise CliError(f"RAG_MAX_FILE_MB must be a number, got {os.environ['RAG_MAX_FILE_MB']!r}") from None
    if not 0 < args.port < 65536:
        raise CliError(f"--port must be within 1-65535, got {args.port}")
    for path in args.watch or []:
        if not Path(path).exists():
            raise CliError(f"--watch path does not exist: {path}")
    if args.host not in LOOPBACK and not (args.users or args.no_auth):
        raise CliError(
            f"listening on {args.host}, not loopback, needs sign-in: --users FILE (see `rag user add`), "
            "or --no-auth to let anyone who can reach it ask, upload and remove"
        )
    _open_users(args)
    config = _config(args, embed_backend=args.embed_backend, **_generator_config(args), **extra)
    config = _with_index_chunking(config, args.index_dir, required=True)
    from rag.collections import DEFAULT, BadCollection, Collections
    from rag.reader import ReaderUnavailable
    from rag.store import IndexError_

    try:
        library = Collections.open(args.index_dir, config=config)
        watched = library.get(DEFAULT) if args.watch else None
    except (IndexError_, ReaderUnavailable, BadCollection) as exc:
        raise CliError(str(exc)) from None
    args.folder_watch = _start_watch(args, watched) if watched is not None else None
    return library


def _open_users(args: argparse.Namespace) -> None:
    """`--users FILE`: the users (at least one) and their conversations, beside FILE."""
    args.users_db = args.conversations = None
    if not args.users:
        return
    from rag.conversations import Conversations, beside

    path = Path(args.users)
    if not path.is_file():
        raise CliError(f"--users file not found: {path} (create it with `rag user add NAME --users {path}`)")
    try:
        users = Users(path)
        if not users.names():
            raise CliError(f"no users in {path}: add one with `rag user add NAME --users {path}`")
    except UsersError as exc:
        raise CliError(str(exc)) from None
    args.users_db = users
    args.conversations = Conversations(beside(path))


def _start_watch(args: argparse.Namespace, rag: RAG) -> Any:
    """`rag serve --watch PATHS`: a `rag.watch.FolderWatch` over the served RAG, started in the
    background (it first brings the index in line with PATHS); its changes go to the server log."""
    from rag.watch import FolderWatch, watch_in_background

    watch = FolderWatch(
        args.watch,
        args.index_dir,
        embedder=rag.embedder,
        config=rag.config,
        rag=rag,
        on_change=lambda change: print(f"watch: {change.line()}", flush=True),
    )
    watch_in_background(watch)
    return watch


def _launch(demo: gr.Blocks, rag: Collections, args: argparse.Namespace) -> int:
    from rag.ui.server import launch

    if args.host not in LOOPBACK and not args.users:
        print(
            f"rag serve: warning: listening on {args.host}, not loopback: anyone who can reach this machine "
            f"can ask questions and upload or remove documents",
            file=sys.stderr,
        )
    # SIGTERM (a service manager, `kill`) stops the server as Ctrl-C does, so the process exits
    # normally: the chat's download folder is removed and a folder watch is stopped.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        launch(demo, rag, host=args.host, port=args.port, users=getattr(args, "users_db", None))
    except OSError as exc:  # port taken, address not available
        raise CliError(f"cannot listen on {args.host}:{args.port}: {exc}") from None
    finally:
        if getattr(args, "folder_watch", None) is not None:
            args.folder_watch.stop.set()  # an update in progress is abandoned whole
    return 0


if __name__ == "__main__":
    sys.exit(main())
