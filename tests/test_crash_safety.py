"""Crash safety under SIGKILL: a killed `rag index` (or removal) leaves exactly the old or exactly the new index.

Each scenario runs the real CLI (`rag.cli.main`) or the UI's removal path (`remove_documents`) in its
own process, on its own copy of a 40-file index. A small hook in that process stops it at a named
point (after the first embedding batch, just before a file is renamed into place, just after the
manifest is committed) and says so on stdout; the test then kills it with SIGKILL. Stopping at the
point instead of sleeping makes every kill land where it is meant to, however fast or loaded the
machine: no cleanup code runs, the lock dies with the process, exactly as in a power cut or OOM kill.

After each kill the folder must load, answer, and hold one of the two expected document sets
(source -> sha256) in the manifest, the chunk store, FAISS and BM25 alike; a rerun completes the
update and leaves no stray files. All scenarios start at once so their model loads overlap.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from conftest import KILL_ENV

from rag.pipeline import RAG, build_index, remove_documents
from rag.store import MANIFEST, Index, read_manifest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
PLACES = [
    "Alderbrook",
    "Basalt Point",
    "Cinderford",
    "Driftwood Bay",
    "Elmstead",
    "Foxglove Ridge",
    "Granite Falls",
    "Hollowmere",
    "Ironbridge",
    "Juniper Flats",
    "Kestrel Moor",
    "Larkspur Hill",
    "Marram Dunes",
    "Nettlecombe",
    "Oakhaven",
    "Pebblecross",
    "Quarry Lane",
    "Ravenscar",
    "Saltmarsh End",
    "Thornbury",
    "Upperwick",
    "Violet Hollow",
    "Willowdene",
    "Yarrowfield",
    "Zephyr Cove",
    "Ashcombe",
    "Bramblegate",
    "Coldharbour",
    "Dunmere",
    "Emberton",
    "Fernhill",
    "Gorsey Bank",
    "Heathercliff",
    "Ivybridge",
    "Juneberry Vale",
    "Kingsfold",
    "Lowmoor",
    "Millstone Edge",
    "Northwold",
    "Orchard Bay",
]
ADDED = ["Pinecrest", "Quillon Heath", "Redwater", "Stonehaven", "Tidewell", "Umberslade"]
MONTHS = ["January", "March", "May", "July", "September", "November"]
CHANGED = range(0, 8)  # files whose rainfall figure changes in the new state
REMOVED = range(36, 40)  # files deleted from the folder in the new state
STEADY = 20  # a file that is the same in both states

# Runs in the child. argv: WHEN ("embed" | "before" | "after" | "gate"), WHAT (a batch number, or the
# first characters of the file name being renamed into place), then "index ARGS..." or "remove DIR SOURCES...".
HOOK = r"""
import os, sys, threading
when, what, command, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]

def stop(label):
    print("PAUSED " + label, flush=True)
    threading.Event().wait()  # until the parent's SIGKILL

if when == "embed":
    import rag.embed
    encode_chunks = rag.embed.Embedder.encode_chunks
    batches = [0]
    def counting(self, chunks, **kwargs):
        outer = kwargs.pop("progress", None)
        def progress(n):
            if outer:
                outer(n)
            batches[0] += 1
            if batches[0] == int(what):
                stop("embed batch %d" % batches[0])
        kwargs["batch_size"] = 8  # small batches: the small update still embeds in several
        return encode_chunks(self, chunks, progress=progress, **kwargs)
    rag.embed.Embedder.encode_chunks = counting
elif when == "gate":  # a plain `rag index` that waits for the parent's word before taking the lock
    import rag.store
    enter = rag.store.IndexWriter.__enter__
    def gated(self):
        print("READY", flush=True)
        sys.stdin.readline()
        return enter(self)
    rag.store.IndexWriter.__enter__ = gated
else:
    real_replace = os.replace
    def replace(src, dst, *a, **k):
        name = os.path.basename(os.fspath(dst))
        if when == "before" and name.startswith(what):
            stop("before renaming into " + name)
        real_replace(src, dst, *a, **k)
        if when == "after" and name.startswith(what):
            stop("after renaming into " + name)
    os.replace = replace

if command == "index":
    from rag.cli import main
    sys.exit(main(["index", *args]))
from rag.embed import Embedder
from rag.pipeline import remove_documents
remove_documents(args[0], args[1:], embedder=Embedder.load())
print("NOT PAUSED: the removal finished", flush=True)
"""


def _station_text(place: str, rain: int, month: str) -> str:
    return (
        f"Field log for the {place} weather station. The {place} station recorded {rain:,} millimetres of "
        f"rain in {month}. Observers at {place} noted strong winds from the west that season. The {place} "
        f"log was filed with the district office by the duty observer. Equipment at {place} was serviced "
        f"twice during the year.\n"
    )


def _question(place: str) -> str:
    return f"How many millimetres of rain did the {place} station record?"


def _old_rain(i: int) -> int:
    return 1100 + 37 * i


def _new_rain(i: int) -> int:
    return 5200 + 53 * i


def _name(i: int) -> str:
    return f"stations/s{i:02d}.txt"


def _write_old(corpus: Path) -> None:
    (corpus / "stations").mkdir(parents=True)
    for i, place in enumerate(PLACES):
        (corpus / _name(i)).write_text(_station_text(place, _old_rain(i), MONTHS[i % 6]), encoding="utf-8")


def _make_new(corpus: Path) -> None:
    """Change 8 files, delete 4, add 6: an update that embeds 14 chunks."""
    for i in CHANGED:
        (corpus / _name(i)).write_text(_station_text(PLACES[i], _new_rain(i), MONTHS[i % 6]), encoding="utf-8")
    for i in REMOVED:
        (corpus / _name(i)).unlink()
    for k, place in enumerate(ADDED):
        (corpus / f"added/a{k}.txt").parent.mkdir(exist_ok=True)
        (corpus / f"added/a{k}.txt").write_text(_station_text(place, 7000 + k, "June"), encoding="utf-8")


def _state(corpus: Path) -> dict[str, str]:
    """source -> sha256 of every file under `corpus`: what an index of it must hold."""
    return {
        p.relative_to(corpus).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(corpus.rglob("*.txt"))
    }


@dataclass
class Scenario:
    name: str
    when: str
    what: str
    command: str  # "index", "rebuild" or "remove"
    expect: str  # the state the kill must leave: "old" or "new"
    evidence: str | None  # a file (name prefix) in the folder that shows the kill landed where meant
    base: Path = Path()
    label: str = ""
    returncode: int | None = None
    listing: list[str] = field(default_factory=list)
    stderr: str = ""
    lock_result: subprocess.CompletedProcess | None = None
    manifest_before_lock: bytes = b""
    manifest_after_lock: bytes = b""

    @property
    def corpus(self) -> Path:
        return self.base / "corpus"

    @property
    def index_dir(self) -> Path:
        return self.base / "index"


SCENARIOS = [
    Scenario("update: embedding", "embed", "1", "index", "old", None),
    Scenario("rebuild: embedding", "embed", "2", "rebuild", "old", None),
    Scenario("update: FAISS file written, not renamed", "before", "vectors-", "index", "old", "vectors-2"),
    Scenario("rebuild: BM25 folder written, not renamed", "before", "bm25-", "rebuild", "old", "bm25-2.tmp"),
    Scenario("update: manifest renamed, old files not yet deleted", "after", MANIFEST, "index", "new", "vectors-1"),
    Scenario("remove: manifest written, not renamed", "before", MANIFEST, "remove", "old", MANIFEST + ".tmp"),
]
REMOVE_SOURCES = [_name(3), _name(REMOVED[0])]
LOCK_HOLDER = "update: embedding"  # while it is stopped, a second `rag index` on its folder must be refused


def _child_args(s: Scenario) -> list[str]:
    if s.command == "remove":
        return ["remove", str(s.index_dir), *REMOVE_SOURCES]
    return ["index", str(s.corpus), "--index-dir", str(s.index_dir), *(["--rebuild"] if s.command == "rebuild" else [])]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, embedder) -> Path:
    """The old generation: 40 one-chunk station logs, indexed once."""
    root = tmp_path_factory.mktemp("crash_base")
    _write_old(root / "corpus")
    report = build_index([root / "corpus"], index_dir=root / "index", embedder=embedder)
    assert len(report.stats.added) == len(PLACES)
    return root


@pytest.fixture(scope="module")
def killed(base: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Scenario]:
    """Every scenario started at once, each killed with SIGKILL at its stop point."""
    scenarios = [replace(s) for s in SCENARIOS]  # the module's list stays a description
    procs: dict[str, subprocess.Popen] = {}
    for s in scenarios:
        s.base = tmp_path_factory.mktemp("crash")
        shutil.copytree(base / "corpus", s.corpus)
        shutil.copytree(base / "index", s.index_dir, ignore=shutil.ignore_patterns(".lock"))
        if s.command != "remove":
            _make_new(s.corpus)
        with open(s.base / "stderr.log", "w") as err:
            procs[s.name] = subprocess.Popen(
                [sys.executable, "-c", HOOK, s.when, s.what, *_child_args(s)],
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env=KILL_ENV,
                cwd=ROOT,
            )
    holder = next(s for s in scenarios if s.name == LOCK_HOLDER)
    # The second writer loads its model alongside the others and waits to be told to take the lock.
    second = subprocess.Popen(
        [sys.executable, "-c", HOOK, "gate", "-", "index", str(holder.corpus), "--index-dir", str(holder.index_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=KILL_ENV,
        cwd=ROOT,
    )
    everyone = [*procs.values(), second]
    watchdog = threading.Timer(240, lambda: [p.kill() for p in everyone])  # a hung child fails the test
    watchdog.start()
    try:
        for s in scenarios:
            proc = procs[s.name]
            for line in proc.stdout:  # type: ignore[union-attr]
                if line.startswith(("PAUSED", "NOT PAUSED")):
                    s.label = line.strip()
                    break
            if s is holder and s.label.startswith("PAUSED"):
                s.manifest_before_lock = (s.index_dir / MANIFEST).read_bytes()
                if second.stdout.readline().startswith("READY"):  # type: ignore[union-attr]
                    second.stdin.write("go\n")  # type: ignore[union-attr]
                    second.stdin.flush()  # type: ignore[union-attr]
                continue  # killed once the second writer has tried
            _kill(s, proc)
        out, err = second.communicate(timeout=200)
        holder.lock_result = subprocess.CompletedProcess(second.args, second.returncode, out, err)
        holder.manifest_after_lock = (holder.index_dir / MANIFEST).read_bytes()
        _kill(holder, procs[LOCK_HOLDER])
    finally:
        watchdog.cancel()
        for proc in everyone:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return {s.name: s for s in scenarios}


def _kill(s: Scenario, proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    s.returncode = proc.wait()
    s.listing = sorted(os.listdir(s.index_dir))
    s.stderr = (s.base / "stderr.log").read_text(errors="replace")[-3000:]


# ----------------------------------------------------------------------------------------------
# Checks


def _expected_states(s: Scenario, base: Path) -> dict[str, dict[str, str]]:
    old = _state(base / "corpus")
    if s.command == "remove":
        new = {k: v for k, v in old.items() if k not in REMOVE_SOURCES}
    else:
        new = _state(s.corpus)
    assert old != new
    return {"old": old, "new": new}


def _check_whole(index_dir: Path, states: dict[str, dict[str, str]], embedder) -> str:
    """The index loads, holds exactly one of `states` everywhere, and answers from it; its name."""
    rag = RAG.open(index_dir, embedder=embedder)
    index = rag.index
    try:
        held = {d.source: d.sha256 for d in index.documents()}
        matches = [name for name, state in states.items() if state == held]
        assert matches, (
            f"the index holds a mix: {len(held)} documents, "
            f"{sorted(set(held) ^ set(states['old']))[:6]} differ from the old set"
        )
        for source in set().union(*states.values()):
            document = index.document(source)
            if source in held:
                assert document is not None and document.sha256 == held[source], source
            else:
                assert document is None, f"{source} is in the chunk store but not in the manifest"
        _check_search_structures(index, held)
        _check_answers(rag, held, matches[0])
        return matches[0]
    finally:
        index.close()


def _check_search_structures(index: Index, held: dict[str, str]) -> None:
    """FAISS, BM25 and the chunk store agree: every indexed id is a chunk of a held document."""
    n = int(index.manifest["n_chunks"])
    assert index.faiss.ntotal == n == len(index.bm25_ids) == sum(d.n_chunks for d in index.documents())
    ids = [int(i) for i in index.bm25_ids]
    if hasattr(index.faiss, "id_map"):
        import faiss

        assert sorted(int(i) for i in faiss.vector_to_array(index.faiss.id_map)) == sorted(ids)
    chunks = index.chunks(ids)
    assert len(chunks) == n, "an indexed chunk id is missing from the chunk store"
    texts = {s: index.document(s).text for s in held}  # type: ignore[union-attr]
    for chunk in chunks.values():
        assert chunk.source in held and texts[chunk.source][chunk.start : chunk.end] == chunk.text


def _check_answers(rag: RAG, held: dict[str, str], state: str) -> None:
    """The steady file answers; a changed file answers with the figure of the version the index holds."""
    for i in (STEADY, CHANGED[0]):
        document = rag.index.document(_name(i))
        assert document is not None
        answer = rag.ask(_question(PLACES[i]))
        assert {h.chunk.source for h in answer.hits} <= set(held)
        assert not answer.abstained and answer.citations, (PLACES[i], answer.text)
        figure = int(document.text.split(" recorded ")[1].split(" ")[0].replace(",", ""))
        assert figure == _old_rain(i) or (state == "new" and figure == _new_rain(i)), figure
        assert f"{figure:,}" in answer.text, (answer.text, figure)
        for c in answer.citations:
            assert rag.index.document(c.source).text[c.start : c.end] == c.quote  # type: ignore[union-attr]


def _leftovers(index_dir: Path) -> set[str]:
    manifest = read_manifest(index_dir)
    keep = {MANIFEST, "chunks.sqlite", "chunks.sqlite-wal", "chunks.sqlite-shm", ".lock", *manifest["files"].values()}  # type: ignore[index]
    return {p.name for p in index_dir.iterdir()} - keep


def _rerun(s: Scenario, embedder) -> None:
    if s.command == "remove":
        remove_documents(s.index_dir, REMOVE_SOURCES, embedder=embedder)
    else:
        build_index([s.corpus], index_dir=s.index_dir, embedder=embedder, rebuild=s.command == "rebuild")


@pytest.mark.parametrize("name", [s.name for s in SCENARIOS])
def test_sigkill_leaves_the_old_or_the_new_index_and_a_rerun_completes(killed, base: Path, embedder, name: str) -> None:
    s = killed[name]
    assert s.label.startswith("PAUSED"), f"{name}: never reached its stop point ({s.label!r}):\n{s.stderr}"
    assert s.returncode == -signal.SIGKILL, (s.returncode, s.stderr)
    assert s.evidence is None or any(e.startswith(s.evidence) for e in s.listing), (s.evidence, s.listing)
    states = _expected_states(s, base)

    assert _check_whole(s.index_dir, states, embedder) == s.expect

    _rerun(s, embedder)

    assert _check_whole(s.index_dir, states, embedder) == "new"
    assert _leftovers(s.index_dir) == set()
    assert read_manifest(s.index_dir)["generation"] >= 2  # type: ignore[index]


def test_a_second_rag_index_on_the_same_folder_is_refused_and_changes_nothing(killed) -> None:
    s = killed[LOCK_HOLDER]
    result = s.lock_result
    assert result is not None, f"the first writer never stopped: {s.label!r}\n{s.stderr}"
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "another process" in lines[0] and "is writing the index" in lines[0] and str(s.index_dir) in lines[0]
    assert s.manifest_after_lock == s.manifest_before_lock != b""
    # What the kill of the first writer then left (the old generation, whole) is checked above.
