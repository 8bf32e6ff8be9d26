"""Collections: named indexes under one index folder (`rag.collections`), each answering only from
its own documents, and the store's writer never touching them when it updates the folder itself."""

from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import signal
import subprocess
import threading
from pathlib import Path

import pytest
from serving import ENV, RAG

import rag.store.files
from rag.cli import main
from rag.collections import (
    DEFAULT,
    BadCollection,
    Collections,
    check_collection,
    collection_dir,
    collection_names,
)
from rag.config import RagConfig
from rag.pipeline import add_uploads, build_index
from rag.store import IndexNotFound

HARBOUR = {
    "ferries.txt": (
        "The Gannet ferry carries 54 cars between Alderbrook and Basalt Point. "
        "It was built in 1987 at the Cinderford shipyard. "
        "The captain of the Gannet is Mira Holloway, who has sailed the route for twenty years."
    ),
    "market.txt": (
        "The Alderbrook fish market opens at five in the morning. "
        "Its busiest stall sells mackerel and brown crab landed the same night. "
        "The market hall was rebuilt after the storm of 2014."
    ),
}
OBSERVATORY = {
    "telescope.txt": (
        "The Kestrel Moor observatory houses a 40-centimetre reflecting telescope. "
        "The telescope was installed in 2009 by the engineer Tobias Renwick. "
        "Astronomers at the observatory study variable stars in the constellation Cygnus."
    ),
    "visits.txt": (
        "Visitors may tour the Kestrel Moor observatory on clear Friday evenings. "
        "Tickets cost eight pounds and must be booked a week ahead. "
        "The dome is closed to visitors during the winter maintenance in January."
    ),
}
GARDEN = {
    "garden.txt": (
        "The walled garden at Hollowmere grows over two hundred varieties of apple. "
        "Its head gardener, Ada Finch, planted the espaliered pear trees in 1995. "
        "The garden's glasshouse was restored with a lottery grant."
    ),
}
TELESCOPE_QUESTION = "Who installed the telescope at the Kestrel Moor observatory?"
FERRY_QUESTION = "How many cars does the Gannet ferry carry?"


def _corpus(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, embedder) -> Path:
    """One index folder: the default index (garden) and the collections harbour and observatory."""
    base = tmp_path_factory.mktemp("collections")
    index = base / "index"
    build_index([_corpus(base / "garden", GARDEN)], index_dir=index, embedder=embedder)
    for name, files in (("harbour", HARBOUR), ("observatory", OBSERVATORY)):
        build_index([_corpus(base / name, files)], index_dir=collection_dir(index, name), embedder=embedder)
    return index


@pytest.fixture()
def fresh(built: Path, tmp_path: Path) -> Path:
    """A copy of `built` this test may change."""
    shutil.copytree(built, tmp_path / "index", ignore=shutil.ignore_patterns(".lock"))
    return tmp_path / "index"


@pytest.fixture()
def collections(fresh: Path, embedder):
    opened = Collections(fresh, config=RagConfig(), embedder=embedder)
    yield opened
    opened.close()


def test_each_collection_answers_only_from_its_own_documents(collections: Collections) -> None:
    observatory = collections.get("observatory").ask(TELESCOPE_QUESTION)
    assert not observatory.abstained
    assert {c.source for c in observatory.citations} == {"telescope.txt"}
    assert any("Tobias Renwick" in c.quote for c in observatory.citations)
    assert observatory.collection == "observatory"
    assert observatory.to_json()["collection"] == "observatory"

    harbour = collections.get("harbour").ask(TELESCOPE_QUESTION)
    assert {c.source for c in harbour.citations} <= set(HARBOUR)
    assert {h.chunk.source for h in harbour.hits} <= set(HARBOUR)
    assert "Renwick" not in harbour.text and harbour.collection == "harbour"

    ferry = collections.get("harbour").ask(FERRY_QUESTION)
    assert not ferry.abstained and ferry.citations[0].source == "ferries.txt" and "54 cars" in ferry.citations[0].quote
    default = collections.get(DEFAULT).ask(FERRY_QUESTION)
    assert {h.chunk.source for h in default.hits} <= set(GARDEN) and default.collection == DEFAULT


def test_names_lists_the_built_collections_and_ignores_junk(fresh: Path) -> None:
    folder = fresh / "collections"
    (folder / "half-built").mkdir()  # a writer's first files, no manifest yet
    (folder / "half-built" / "chunks.sqlite").write_bytes(b"")
    (folder / "a-file").write_text("not a folder", encoding="utf-8")
    for junk in ("bad name!", ".hidden", DEFAULT, "x" * 65):  # a manifest, but not a collection's name
        shutil.copytree(folder / "harbour", folder / junk)
    (folder / "linked").symlink_to(folder / "harbour", target_is_directory=True)

    assert collection_names(fresh) == [DEFAULT, "harbour", "observatory"]
    assert collection_names(f"faiss:{fresh}") == [DEFAULT, "harbour", "observatory"]
    assert Collections(f"faiss:{fresh}", config=RagConfig(), embedder=object()).index_dir == fresh  # type: ignore[arg-type]
    for junk in ("half-built", "a-file", "linked"):
        with pytest.raises(BadCollection, match=f'no collection "{junk}"'):
            Collections(fresh, config=RagConfig(), embedder=object()).get(junk)  # type: ignore[arg-type]


def test_names_without_a_default_index_or_any_collection(tmp_path: Path) -> None:
    (tmp_path / "only" / "collections" / "one").mkdir(parents=True)
    assert collection_names(tmp_path / "only") == []
    assert collection_names(tmp_path / "missing") == []
    with pytest.raises(IndexNotFound, match="no index at"):
        Collections.open(tmp_path / "only", config=RagConfig())


@pytest.mark.parametrize("name", ["../x", "a/b", "..", "", ".", "/etc", "-a", "_a", "a b", "a\n", "x" * 65, "é"])
def test_a_bad_name_is_refused_naming_it_and_never_resolves_outside(fresh: Path, name: str) -> None:
    with pytest.raises(BadCollection) as caught:
        check_collection(name)
    assert repr(name) in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(BadCollection, match="is not valid"):
        collection_dir(fresh, name)
    with pytest.raises(BadCollection, match="is not valid"):
        Collections(fresh, config=RagConfig(), embedder=object()).get(name)  # type: ignore[arg-type]


def test_a_good_name_stays_a_direct_child_of_collections(tmp_path: Path) -> None:
    for name in ("a", "Team-A_2", "x" * 64, "0"):
        folder = collection_dir(tmp_path, name)
        assert folder.parent == tmp_path / "collections" and folder.name == name
    assert collection_dir(tmp_path, DEFAULT) == tmp_path


def test_milvus_stores_refuse_named_collections() -> None:
    for spec in ("milvus:/data/rag.db", "milvus://db.internal:19530/team"):
        with pytest.raises(BadCollection, match="Milvus store, which holds one index"):
            collection_dir(spec, "team-a")


def test_get_shares_one_embedder_and_returns_the_same_object(collections: Collections, embedder) -> None:
    harbour, observatory = collections.get("harbour"), collections.get("observatory")
    assert collections.get("harbour") is harbour
    assert harbour.embedder is observatory.embedder is collections.get(DEFAULT).embedder is embedder
    assert harbour.index.spec != observatory.index.spec


def test_threads_asking_for_a_collection_at_once_get_one_object(collections: Collections) -> None:
    barrier, got = threading.Barrier(8), []

    def get(name: str) -> None:
        barrier.wait()
        got.append((name, collections.get(name)))

    threads = [threading.Thread(target=get, args=(("harbour", "observatory")[i % 2],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(got) == 8 and all(rag is collections.get(name) for name, rag in got)
    assert collections.get("harbour") is not collections.get("observatory")


def test_a_collection_built_while_open_appears_and_opens(collections: Collections, tmp_path: Path, embedder) -> None:
    assert "late" not in collections.names()
    with pytest.raises(
        BadCollection, match='no collection "late" in .* \\(collections: default, harbour, observatory\\)'
    ):
        collections.get("late")
    corpus = _corpus(tmp_path / "late-docs", OBSERVATORY)
    build_index([corpus], index_dir=collection_dir(collections.index_dir, "late"), embedder=embedder)

    assert collections.names() == [DEFAULT, "harbour", "late", "observatory"]
    answer = collections.get("late").ask(TELESCOPE_QUESTION)
    assert answer.citations and answer.citations[0].source == "telescope.txt" and answer.collection == "late"


def test_create_makes_an_empty_collection_to_upload_into(collections: Collections, tmp_path: Path) -> None:
    created = collections.create("uploads-here")
    assert collections.names() == [DEFAULT, "harbour", "observatory", "uploads-here"]
    assert collections.get("uploads-here") is created and len(created.index) == 0
    empty = created.ask(FERRY_QUESTION)
    assert empty.abstained and not empty.citations and empty.collection == "uploads-here"

    upload = tmp_path / "upload-1" / "ferries.txt"
    _corpus(upload.parent, {"ferries.txt": HARBOUR["ferries.txt"]})
    assert add_uploads(created, {"ferries.txt": upload}).outcome == {"ferries.txt": "added"}
    answer = created.ask(FERRY_QUESTION)
    assert not answer.abstained and answer.citations[0].source == "ferries.txt"
    assert (collections.index_dir / "collections" / "uploads-here" / "uploads" / "ferries.txt").is_file()
    assert collections.get("harbour").ask(FERRY_QUESTION).citations[0].source == "ferries.txt"  # untouched

    with pytest.raises(BadCollection, match='collection "harbour" already exists'):
        collections.create("harbour")
    with pytest.raises(BadCollection, match="is not valid"):
        collections.create("../escape")
    assert not (collections.index_dir / "escape").exists()


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` (the lock aside) -> sha256 of its bytes."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def _boom(*args: object, **kwargs: object) -> None:
    raise OSError("simulated crash: disk full")


def test_updating_the_default_index_leaves_collections_intact(
    fresh: Path, tmp_path: Path, embedder, monkeypatch
) -> None:
    before = _snapshot(fresh / "collections")
    garden = _corpus(tmp_path / "garden", GARDEN)
    (garden / "pond.txt").write_text("The pond at Hollowmere is home to great crested newts.", encoding="utf-8")
    # A crash after the chunk store's commit, while the new generation's files are written: the
    # next writer rolls back the rows and deletes the new generation's stray files.
    monkeypatch.setattr(rag.store.files, "write_bm25", _boom)
    with pytest.raises(OSError, match="simulated crash"):
        build_index([garden], index_dir=fresh, embedder=embedder)
    monkeypatch.undo()
    assert any(p.name.startswith("vectors-2") for p in fresh.iterdir())  # the crashed update's leftovers
    (fresh / "bm25-7.tmp").mkdir()  # and a half-written folder from some older crash

    report = build_index([garden], index_dir=fresh, embedder=embedder)  # recovers, commits, drops generation 1
    assert report.stats.added == ["pond.txt"] and report.stats.generation == 2
    assert not (fresh / "bm25-7.tmp").exists() and not (fresh / "vectors-1.faiss").exists()
    build_index([garden], index_dir=fresh, embedder=embedder, rebuild=True)

    assert _snapshot(fresh / "collections") == before
    assert collection_names(fresh) == [DEFAULT, "harbour", "observatory"]
    opened = Collections(fresh, config=RagConfig(), embedder=embedder)
    try:
        assert opened.get("observatory").ask(TELESCOPE_QUESTION).citations[0].source == "telescope.txt"
    finally:
        opened.close()


# --- the CLI ------------------------------------------------------------------------------------


def test_cli_index_and_ask_a_collection(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    index = tmp_path / "index"
    observatory = _corpus(tmp_path / "observatory", OBSERVATORY)
    harbour = _corpus(tmp_path / "harbour", HARBOUR)
    assert main(["index", str(harbour), "--index-dir", str(index)]) == 0
    assert main(["index", str(observatory), "--index-dir", str(index), "--collection", "sky"]) == 0
    out = capsys.readouterr().out
    assert f"indexed into collection sky ({index / 'collections' / 'sky'}): 2 added" in out

    assert main(["ask", TELESCOPE_QUESTION, "--index-dir", str(index), "--collection", "sky", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["collection"] == "sky" and answer["citations"][0]["source"] == "telescope.txt"
    assert main(["ask", FERRY_QUESTION, "--index-dir", str(index), "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert plain["collection"] == "default" and plain["citations"][0]["source"] == "ferries.txt"

    assert main(["collections", "--index-dir", str(index)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split() for line in lines] == [
        ["default", "2", "documents", "2", "chunks"],
        ["sky", "2", "documents", "2", "chunks"],
    ]

    assert main(["ask", FERRY_QUESTION, "--index-dir", str(index), "--collection", "x"]) == 2
    assert capsys.readouterr().err.strip() == (
        f'rag ask: error: no collection "x" in {index}/ (collections: default, sky)'
    )
    assert main(["index", str(harbour), "--index-dir", str(index), "--collection", "../up"]) == 2
    assert "collection name '../up' is not valid" in capsys.readouterr().err
    assert not (tmp_path / "up").exists() and sorted(os.listdir(index / "collections")) == ["sky"]
    assert main(["index", str(harbour), "--store", f"milvus:{tmp_path / 'm.db'}", "--collection", "a"]) == 2
    assert "Milvus store, which holds one index" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_index_watch_keeps_a_collection_in_sync(tmp_path: Path) -> None:
    docs, index = _corpus(tmp_path / "docs", HARBOUR), tmp_path / "index"
    proc = subprocess.Popen(
        [RAG, "index", str(docs), "--index-dir", str(index), "--collection", "live", "--watch"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(ENV),
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line.rstrip("\n")) for line in proc.stdout or ()], daemon=True).start()
    try:
        _wait_line(lines, lambda line: line.startswith("watching "))
        (docs / "telescope.txt").write_text(OBSERVATORY["telescope.txt"], encoding="utf-8")
        _wait_line(lines, lambda line: line == "+ telescope.txt (1 chunk)")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(180) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert collection_names(index) == ["live"]  # the folder itself holds no index
    indexed = json.loads((index / "collections" / "live" / "manifest.json").read_text(encoding="utf-8"))
    assert sorted(indexed["documents"]) == ["ferries.txt", "market.txt", "telescope.txt"]


def _wait_line(lines: queue.Queue[str], wanted, *, timeout: float = 180) -> str:
    """The first line from `lines` that is `wanted`, within a generous `timeout` (the machine is shared)."""
    seen: list[str] = []
    while True:
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail("timed out; output so far:\n" + "\n".join(seen))
        seen.append(line)
        if wanted(line):
            return line
