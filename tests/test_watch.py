"""Folders that stay in sync (`rag index --watch`, `rag serve --watch`, `rag.watch`): real files in
tmp_path, the real model, real filesystem events; the CLI and the server as real processes."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from serving import ENV, RAG, rag_server

from rag.pipeline import RAG as Rag
from rag.pipeline import build_index
from rag.store import Index
from rag.store.locate import committed_manifest
from rag.watch import ADDED, REMOVED, SKIPPED, Change, FolderWatch, Pending, WatchedPaths

WAIT_S = 180  # generous: the machine is shared; no test asserts a time
LIGHTHOUSE = "The keeper of the Varnholm lighthouse is Edda Strom, who has tended its lamp since 1987."
LIGHTHOUSE_Q = "Who is the keeper of the Varnholm lighthouse?"
KEEPER_CHANGED = "The keeper of the Varnholm lighthouse is Joran Vik, who took over the lamp in 2021."


def wait_for(condition: Callable[[], object], what: str, *, timeout: float = WAIT_S) -> None:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


@contextmanager
def watching(docs: Path, index: Path | str, embedder, **kwargs) -> Iterator[tuple[FolderWatch, list[Change]]]:
    """A FolderWatch over `docs` running in a thread, with the changes it reported so far."""
    changes: list[Change] = []
    watch = FolderWatch([docs], index, embedder=embedder, on_change=changes.append, **kwargs)
    failed: list[BaseException] = []
    listening = threading.Event()

    def run() -> None:
        try:
            watch.run(before=listening.set)
        except BaseException as exc:  # shown by the test, not lost in the thread
            failed.append(exc)
            listening.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    listening.wait(WAIT_S)
    try:
        yield watch, changes
        assert not failed, failed
        assert thread.is_alive(), "the watch stopped on its own"
    finally:
        watch.stop.set()
        thread.join(WAIT_S)
    assert not thread.is_alive()


def lines(changes: list[Change]) -> list[str]:
    return [c.line() for c in changes]


def indexed(index: Path | str) -> dict:
    return (committed_manifest(index) or {}).get("documents", {})


def top_source(index: Path | str, embedder, question: str) -> str:
    rag = Rag.open(index, embedder=embedder)
    try:
        return rag.ask(question).hits[0].chunk.source
    finally:
        rag.index.close()


def seeded(tmp_path: Path, copy_seed, embedder, *, index: str | None = None) -> tuple[Path, str]:
    docs = tmp_path / "docs"
    copy_seed(docs)
    spec = index or str(tmp_path / "index")
    build_index([docs], index_dir=spec, embedder=embedder)
    return docs, spec


# --- the parts, without events ----------------------------------------------------------------


def test_change_lines_name_what_happened() -> None:
    assert Change(ADDED, "notes/a.txt", "3 chunks").line() == "+ notes/a.txt (3 chunks)"
    assert Change(REMOVED, "c.md").line() == "- c.md"
    assert Change(SKIPPED, "bad\nname.exe", "unsupported").line() == "! bad\\nname.exe skipped: unsupported"


def test_sources_are_named_as_rag_index_names_them(tmp_path: Path) -> None:
    docs, single = tmp_path / "docs", tmp_path / "single.md"
    (docs / "sub").mkdir(parents=True)
    (docs / "sub" / "a.txt").write_text("a")
    (docs / ".hidden").mkdir()
    (docs / "outside").symlink_to(tmp_path)
    single.write_text("s")
    paths = WatchedPaths([docs, single])
    assert paths.source_of(docs / "sub" / "a.txt") == (docs, "sub/a.txt")
    assert paths.source_of(single) == (single, "single.md")
    assert paths.source_of(docs / ".hidden" / "x.txt") is None
    assert paths.source_of(docs / "outside" / "single.md") is None  # through a folder link
    assert paths.source_of(tmp_path / "elsewhere.txt") is None
    assert paths.locate("sub/a.txt") == docs / "sub" / "a.txt"
    assert paths.locate("single.md") == single
    assert paths.locate("sub/gone.txt") is None
    link = paths.locate("outside")
    assert not isinstance(link, Path) and link is not None and "symbolic link" in link.reason
    with pytest.raises(FileNotFoundError, match="missing"):
        WatchedPaths([tmp_path / "missing"])


def test_a_burst_waits_until_it_is_over_and_its_files_hold_still(tmp_path: Path) -> None:
    growing, done = tmp_path / "growing.txt", tmp_path / "done.txt"
    growing.write_text("first")
    done.write_text("done")
    pending = Pending(quiet=1.0, max_hold=30.0)
    pending.add(growing, new_folder=False, now=100.0)
    pending.add(done, new_folder=False, now=100.5)
    assert pending.take_settled(101.0) == {}  # the burst is not over
    growing.write_text("first and more")  # no event seen for it (as on some filesystems): the stat catches it
    assert pending.take_settled(101.6) == {}  # still moving: everything waits for it
    assert pending.take_settled(102.7) == {growing: False, done: False}
    assert pending.paths == {}


def test_a_file_still_moving_holds_the_others_no_longer_than_max_hold(tmp_path: Path) -> None:
    growing, done = tmp_path / "growing.txt", tmp_path / "done.txt"
    done.write_text("done")
    growing.write_text("1")
    pending = Pending(quiet=1.0, max_hold=5.0)
    pending.add(growing, new_folder=False, now=0.0)
    pending.add(done, new_folder=False, now=0.0)
    growing.write_text("12")
    assert pending.take_settled(6.0) == {done: False}
    assert list(pending.paths) == [growing]


def test_a_file_gone_before_its_update_is_no_change_and_no_crash(tmp_path: Path, copy_seed, embedder) -> None:
    docs, index = seeded(tmp_path, copy_seed, embedder)
    watch = FolderWatch([docs], index, embedder=embedder)
    report = watch.sync({docs / "vanished.txt": False, docs / "gone-folder": True})
    assert report.changes == ()
    assert list(indexed(index)) == [next(docs.iterdir()).name]
    # Gone between being found and being read: left out silently (its own event brings the removal).
    (docs / "brief.txt").write_text("Here for a moment.")
    files = [(docs / "brief.txt", "brief.txt")]
    (docs / "brief.txt").unlink()
    skipped: list = []
    assert list(watch._readable(files, skipped)) == [] and skipped == []


@pytest.mark.slow
def test_serving_starts_by_catching_up_with_the_folder_and_keeps_the_uploads(
    tmp_path: Path, copy_seed, embedder
) -> None:
    from rag.pipeline import add_uploads

    docs, index = seeded(tmp_path, copy_seed, embedder)
    (docs / "old.txt").write_text("The old harbour master retired in 1999.")
    build_index([docs], index_dir=index, embedder=embedder)
    rag = Rag.open(index, embedder=embedder)
    upload = tmp_path / "upload.md"
    upload.write_text("The upload says the Varnholm ferry leaves at noon.")
    add_uploads(rag, {"upload.md": upload})
    # While nothing was watching: one file went, one came.
    (docs / "old.txt").unlink()
    (docs / "lighthouse.txt").write_text(LIGHTHOUSE)
    changes: list[Change] = []
    report = FolderWatch([docs], index, embedder=embedder, rag=rag, on_change=changes.append).catch_up()
    assert sorted(lines(changes)) == ["+ lighthouse.txt", "- old.txt"]
    assert sorted(indexed(index)) == sorted(["lighthouse.txt", "upload.md", next(docs.glob("*_*.txt")).name])
    assert len(rag.index.documents()) == 3 and report.generation == committed_manifest(index)["generation"]


# --- the loop, with real events -----------------------------------------------------------------


@pytest.mark.slow
def test_added_changed_renamed_and_removed_files_reach_the_answers(tmp_path: Path, copy_seed, embedder) -> None:
    docs, index = seeded(tmp_path, copy_seed, embedder)
    seed_name = next(docs.iterdir()).name
    with watching(docs, index, embedder) as (_, changes):
        (docs / "notes").mkdir()
        (docs / "notes" / "lighthouse.txt").write_text(LIGHTHOUSE)
        (docs / "tool.exe").write_bytes(b"MZ\x90\x00")
        (docs / ".draft.txt").write_text("hidden: never indexed")
        wait_for(lambda: "+ notes/lighthouse.txt (1 chunk)" in lines(changes), "the added file")
        wait_for(
            lambda: any(ln.startswith("! tool.exe skipped: unsupported file type") for ln in lines(changes)), "skip"
        )
        assert top_source(index, embedder, LIGHTHOUSE_Q) == "notes/lighthouse.txt"
        assert ".draft.txt" not in indexed(index) and not any(".draft" in ln for ln in lines(changes))

        (docs / "notes" / "lighthouse.txt").write_text(KEEPER_CHANGED)
        wait_for(lambda: "~ notes/lighthouse.txt (1 chunk)" in lines(changes), "the changed file")
        rag = Rag.open(index, embedder=embedder)
        assert "Joran Vik" in rag.ask(LIGHTHOUSE_Q).hits[0].chunk.text
        assert "Edda" not in rag.index.document("notes/lighthouse.txt").text

        os.rename(docs / "notes" / "lighthouse.txt", docs / "notes" / "beacon.txt")
        wait_for(lambda: "+ notes/beacon.txt (1 chunk)" in lines(changes), "the renamed file")
        assert "- notes/lighthouse.txt" in lines(changes)
        assert top_source(index, embedder, LIGHTHOUSE_Q) == "notes/beacon.txt"
        assert sorted(indexed(index)) == sorted(["notes/beacon.txt", seed_name])

        # A folder moved in from outside: what is under it is added.
        outside = tmp_path / "more"
        outside.mkdir()
        (outside / "tide.md").write_text("The Varnholm tide tables are printed every March.")
        shutil.move(str(outside), str(docs / "more"))
        wait_for(lambda: "+ more/tide.md (1 chunk)" in lines(changes), "the folder moved in")

        shutil.rmtree(docs / "notes")
        wait_for(lambda: "- notes/beacon.txt" in lines(changes), "the removed folder")
        assert sorted(indexed(index)) == sorted(["more/tide.md", seed_name])
        rag = Rag.open(index, embedder=embedder)
        answer = rag.ask(LIGHTHOUSE_Q)
        assert all(h.chunk.source != "notes/beacon.txt" for h in answer.hits)
        assert all(c.source != "notes/beacon.txt" for c in answer.citations)


@pytest.mark.slow
def test_a_burst_of_300_files_is_one_update(tmp_path: Path, copy_seed, embedder) -> None:
    docs, index = seeded(tmp_path, copy_seed, embedder)
    staged = tmp_path / "staged"
    staged.mkdir()
    for i in range(300):
        (staged / f"note-{i:03d}.txt").write_text(f"Note {i}: the crate numbered {i} holds {i * 7} lanterns.")
    generation = committed_manifest(index)["generation"]
    with watching(docs, index, embedder) as (_, changes):
        (docs / "burst").mkdir()
        for path in sorted(staged.iterdir()):
            shutil.copy(path, docs / "burst" / path.name)
        wait_for(lambda: len(indexed(index)) == 301, "the 300 files")
        time.sleep(3 * 1.0)  # were any left for a second update, it would have come by now
    assert committed_manifest(index)["generation"] == generation + 1
    assert sum(ln.startswith("+ burst/") for ln in lines(changes)) == 300


@pytest.mark.slow
def test_files_written_slowly_or_gone_at_once_are_no_crash(tmp_path: Path, copy_seed, embedder) -> None:
    docs, index = seeded(tmp_path, copy_seed, embedder)
    sentences = [f"Entry {k}: the harbour log names the ship Aster {k}." for k in range(8)]
    with watching(docs, index, embedder) as (watch, changes):
        (docs / "flash.txt").write_text("Here and gone.")
        (docs / "flash.txt").unlink()
        with open(docs / "slow.txt", "w") as fh:  # written in pieces, 0.3 s apart
            for sentence in sentences:
                fh.write(sentence + " ")
                fh.flush()
                time.sleep(0.3)
        wait_for(lambda: "slow.txt" in indexed(index), "the slowly written file")
        rag = Rag.open(index, embedder=embedder)
        wait_for(
            lambda: sentences[-1] in (Rag.open(index, embedder=embedder).index.document("slow.txt").text),
            "the whole slowly written file",
        )
        assert rag.index.document("flash.txt") is None
        assert not any("flash.txt" in ln for ln in lines(changes))
        assert watch.status().waiting == ""


@pytest.mark.slow
def test_a_milvus_lite_store_stays_in_sync(tmp_path: Path, copy_seed, embedder) -> None:
    pytest.importorskip("pymilvus", reason="the scale extra is not installed: pip install 'rag[scale]'")
    docs, spec = seeded(tmp_path, copy_seed, embedder, index=f"milvus:{tmp_path / 'watched.db'}")
    with watching(docs, spec, embedder) as (_, changes):
        (docs / "lighthouse.txt").write_text(LIGHTHOUSE)
        wait_for(lambda: "+ lighthouse.txt (1 chunk)" in lines(changes), "the added file")
        assert top_source(spec, embedder, LIGHTHOUSE_Q) == "lighthouse.txt"
        (docs / "lighthouse.txt").unlink()
        wait_for(lambda: "- lighthouse.txt" in lines(changes), "the removal")
    assert "lighthouse.txt" not in indexed(spec)


@pytest.mark.slow
def test_an_index_inside_the_watched_folder_does_not_watch_its_own_writes(tmp_path: Path, copy_seed, embedder) -> None:
    docs = tmp_path / "docs"
    copy_seed(docs)
    index = docs / "index"
    build_index([docs], index_dir=index, embedder=embedder)
    with watching(docs, index, embedder) as (_, changes):
        (docs / "lighthouse.txt").write_text(LIGHTHOUSE)
        wait_for(lambda: "+ lighthouse.txt (1 chunk)" in lines(changes), "the added file")
        generation = committed_manifest(index)["generation"]
        time.sleep(3 * 1.0)  # were its own writes events, updates would follow one another by now
    assert committed_manifest(index)["generation"] == generation
    assert lines(changes) == ["+ lighthouse.txt (1 chunk)"]


@pytest.mark.slow
def test_a_busy_index_is_waited_for_not_a_crash(tmp_path: Path, copy_seed, embedder) -> None:
    from rag.config import RagConfig
    from rag.store import IndexWriter

    docs, index = seeded(tmp_path, copy_seed, embedder)
    with watching(docs, index, embedder) as (watch, changes):
        with IndexWriter(index, RagConfig()):  # another writer holds the index
            (docs / "lighthouse.txt").write_text(LIGHTHOUSE)
            wait_for(lambda: "is writing the index" in watch.status().waiting, "the watch to wait for the index")
            assert changes == []
        wait_for(lambda: "+ lighthouse.txt (1 chunk)" in lines(changes), "the update once the index is free")
        assert watch.status().waiting == ""


@pytest.mark.slow
def test_uploads_and_the_watch_take_turns_and_the_documents_tab_shows_the_sync(
    tmp_path: Path, copy_seed, embedder
) -> None:
    import gradio as gr

    from rag.pipeline import add_uploads
    from rag.ui.handlers import Handlers

    docs, index = seeded(tmp_path, copy_seed, embedder)
    upload = tmp_path / "upload.md"
    upload.write_text("The upload says the Varnholm ferry leaves at noon.")
    rag = Rag.open(index, embedder=embedder)
    with watching(docs, index, embedder, rag=rag) as (watch, changes):
        for i in range(20):
            (docs / f"crate-{i}.txt").write_text(f"Crate {i} holds {i * 3} lanterns.")
        (docs / "tool.exe").write_bytes(b"MZ")
        uploaded = add_uploads(rag, {"upload.md": upload})  # meanwhile: they wait for each other
        wait_for(lambda: sum(ln.startswith("+ crate-") for ln in lines(changes)) == 20, "the 20 files")
        # Renamed behind a served index: its chunks and vectors are taken over, not embedded again.
        vectors = rag.index.chunk_vectors([c.id for c in rag.index.document_chunks("crate-7.txt")])
        os.rename(docs / "crate-7.txt", docs / "crate-seven.txt")
        wait_for(lambda: "+ crate-seven.txt (1 chunk, vectors reused)" in lines(changes), "the renamed file")
        moved = rag.index.chunk_vectors([c.id for c in rag.index.document_chunks("crate-seven.txt")])
        assert [v.tolist() for v in moved.values()] == [v.tolist() for v in vectors.values()]
        assert rag.index.document("crate-7.txt") is None
        assert rag.index.document("crate-seven.txt").text == "Crate 7 holds 21 lanterns."
        [(found, _)] = rag.index.lexical_search("21", 1)  # searchable under its new name
        assert rag.index.chunks([found])[found].source == "crate-seven.txt"
        handlers = Handlers(rag, reports_dir=tmp_path / "reports", watch=watch)
        version, box, table, _, footer, search_in, search_types = handlers.sync_view(-1, None, ["crate-7.txt"], [])
    assert uploaded.outcome == {"upload.md": "added"}
    assert {row[0] for row in table} == set(indexed(index))
    assert len(indexed(index)) == 22 and "upload.md" in indexed(index)
    assert len(rag.index.documents()) == 22  # the served RAG was reloaded
    assert version == watch.status().version and "crate" in box
    assert "tool\\.exe — unsupported file type" in box and "22 documents" in footer
    assert "crate-seven.txt" in search_in["choices"] and search_in["value"] == []  # renamed: the choice left
    assert set(search_types["choices"]) >= {"txt", "md"}
    assert handlers.sync_view(version) == (gr.skip(),) * 7  # nothing new since: nothing is sent


# --- the CLI and the server, as real processes ------------------------------------------------


def _reader(stream) -> queue.Queue[str]:
    out: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            out.put(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    return out


def _wait_line(out: queue.Queue[str], seen: list[str], wanted: Callable[[str], bool], what: str) -> str:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        try:
            line = out.get(timeout=1)
        except queue.Empty:
            continue
        seen.append(line)
        if wanted(line):
            return line
    pytest.fail(f"timed out waiting for {what}; output so far:\n" + "\n".join(seen))


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_rag_index_watch_prints_each_change_and_stops_cleanly(tmp_path: Path, copy_seed, stop: int) -> None:
    docs, index = tmp_path / "docs", tmp_path / "index"
    copy_seed(docs)
    proc = subprocess.Popen(
        [RAG, "index", str(docs), "--index-dir", str(index), "--watch"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**ENV, "PYTHONFAULTHANDLER": "1"},  # SIGABRT dumps every thread's stack (see _stopped)
    )
    try:
        out, seen = _reader(proc.stdout), []
        _wait_line(out, seen, lambda ln: ln.startswith("watching "), "the watch to start")
        (docs / "lighthouse.txt").write_text(LIGHTHOUSE)
        (docs / "notes.bin").write_bytes(b"\x00\x01")
        _wait_line(out, seen, lambda ln: ln == "+ lighthouse.txt (1 chunk)", "the added file's line")
        _wait_line(out, seen, lambda ln: ln.startswith("! notes.bin skipped: unsupported"), "the skip line")
        (docs / "burst").mkdir()
        for i in range(200):  # an update of 200 files: the signal most likely comes while it is embedded
            (docs / "burst" / f"crate-{i:03d}.txt").write_text(f"Crate {i} holds {i * 7} brass lanterns.")
        time.sleep(1.5)
        proc.send_signal(stop)
        assert _stopped(proc) == 0
        _wait_line(out, seen, lambda ln: ln.startswith("rag index: stopped"), "the stop line")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in proc.stderr.read()
    # The update the signal met is committed whole or not at all; the index loads either way.
    before = {"lighthouse.txt", next(docs.glob("*_*.txt")).name}
    assert set(indexed(index)) in (before, before | {f"burst/crate-{i:03d}.txt" for i in range(200)})
    assert len(Index.load(index)) == sum(d["n_chunks"] for d in indexed(index).values())
    assert _unlocked(index / ".lock")


def _stopped(proc: subprocess.Popen[str]) -> int:
    """The exit code of `proc` once it ends; if it does not within WAIT_S, the test fails with the
    stacks where it hangs (faulthandler prints them on SIGABRT)."""
    try:
        return proc.wait(WAIT_S)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        proc.wait(30)
        stacks = proc.stderr.read()[-6000:] if proc.stderr else ""
        pytest.fail(f"still running {WAIT_S} s after the signal; its stacks:\n{stacks}")


def _unlocked(lock: Path) -> bool:
    """Whether nobody holds the index's write lock now."""
    import fcntl

    with open(lock) as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        return True


@pytest.mark.slow
def test_rag_serve_watch_answers_from_a_file_added_after_it_started(tmp_path: Path, copy_seed) -> None:
    from gradio_client import Client

    docs, index = tmp_path / "docs", tmp_path / "index"
    copy_seed(docs)
    subprocess.run([RAG, "index", str(docs), "--index-dir", str(index)], env=dict(ENV), check=True, capture_output=True)
    try:
        server_cm = rag_server(index, log=tmp_path / "serve.log", env=ENV, args=["--watch", str(docs)])
        server = server_cm.__enter__()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        client = Client(server.url + "/", verbose=False, download_files=False)
        (docs / "lighthouse.txt").write_text(LIGHTHOUSE)

        def answered() -> bool:
            data = client.predict(LIGHTHOUSE_Q, api_name="/ask")
            data = json.loads(data) if isinstance(data, str) else data
            return any(c["source"] == "lighthouse.txt" and "Edda Strom" in c["quote"] for c in data["citations"])

        wait_for(answered, "an answer quoting the added file")
        with urllib.request.urlopen(server.url + "/config", timeout=30) as response:
            page = response.read().decode()
        assert "**Watching** " in page  # the Documents tab's Folder sync box
    finally:
        server_cm.__exit__(None, None, None)
    log = (tmp_path / "serve.log").read_text()
    assert "watch: + lighthouse.txt (1 chunk)" in log
    assert "Traceback" not in log


@pytest.mark.slow
@pytest.mark.browser
def test_the_documents_tab_shows_each_sync_in_a_browser(tmp_path: Path, copy_seed) -> None:
    from conftest import ARTIFACTS, skip_or_fail
    from serving import CHROMIUM, CHROMIUM_ARGS, browser_missing

    if (reason := browser_missing()) is not None:
        skip_or_fail(f"{reason}; the Makefile installs it")
    from playwright.sync_api import expect, sync_playwright

    docs, index = tmp_path / "docs", tmp_path / "index"
    copy_seed(docs)
    subprocess.run([RAG, "index", str(docs), "--index-dir", str(index)], env=dict(ENV), check=True, capture_output=True)
    with rag_server(index, log=tmp_path / "serve.log", env=ENV, args=["--watch", str(docs)]) as server:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page()
            page.set_default_timeout(WAIT_S * 1000)
            page.goto(server.url + "/", wait_until="domcontentloaded")
            page.get_by_role("tab", name="Documents").click()
            sync = page.locator("#sync-status")
            expect(sync).to_contain_text(f"Watching {docs}")
            (docs / "lighthouse.txt").write_text(LIGHTHOUSE)
            (docs / "tool.exe").write_bytes(b"MZ")
            expect(sync).to_contain_text("+ lighthouse.txt (1 chunk)")  # the page's timer brought it
            expect(sync).to_contain_text("tool.exe — unsupported file type")
            expect(page.locator("#doc-table")).to_contain_text("lighthouse.txt")
            expect(page.locator("#rag-footer")).to_contain_text("2 documents")
            page.get_by_role("tab", name="Chat").click()
            page.locator("#search-in input").click()  # the "Search in" picker offers it without a reload
            expect(page.get_by_role("option", name="lighthouse.txt")).to_be_visible()
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "folder-sync.png"), full_page=True)
            browser.close()
