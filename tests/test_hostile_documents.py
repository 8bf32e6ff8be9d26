"""Hostile documents: a generated fuzz folder indexed by a real `rag index`, watched for crashes, leaks and memory.

The folder mixes ordinary files, each holding one fact a question can find, with files built to
break an indexer: empty, binary, invalid UTF-8, 50 MB, a truncated PDF, a PDF with no text layer,
10,000 nested HTML tags, a .docx zip bomb, a FIFO, odd names and symbolic links leading out of
the folder. Every hostile file must be skipped with a one-line reason (or, when it holds readable
text, indexed); every ordinary file must be indexed and answerable; nothing outside the folder may
be read; the indexing process must stay under a memory bound.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path, PurePosixPath

import pytest
from conftest import ARTIFACTS, rag_command, write_docx, write_pdf

from rag.config import RagConfig
from rag.load import Skipped, find_files, load_documents
from rag.pipeline import RAG
from rag.store import Index

ROOT = Path(__file__).resolve().parents[1]
ARTIFACT = ARTIFACTS / "hostile_index.json"
SECRET = "OUTSIDE-SECRET-7f3a"  # in files outside the folder, reachable only through symlinks
RSS_LIMIT_MB = 3 * 1024
MIB = 1024 * 1024

# source -> (question, the figure the answer must quote)
FACTS = {
    "notes/harbour.txt": ("How many ships did the harbour pilot board in 2023?", "4,217"),
    "guide.md": ("How many tours does the museum guide lead every week?", "38"),
    "page.html": ("How many loaves does the bakery sell each morning?", "640"),
    "report.pdf": ("How many apples did the orchard harvest in autumn?", "9,310"),
    "letter.docx": ("How many concerts did the choir give last winter?", "27"),
    "unicode.txt": ("How many crêpes did the Zürich café serve at the fête?", "1,985"),
    "nested.html": ("How many brass keys does the nested vault hold?", "77"),
    "a\nb.txt": ("How many times a minute does the newline lighthouse flash?", "14"),
}
# hostile source -> words its skip reason must contain
SKIPS = {
    "empty.txt": "empty file",
    "blank.md": "empty file",
    "binary.txt": "binary content",
    "latin1.txt": "not valid UTF-8",
    "huge.txt": "over the 20 MB limit",
    "truncated.pdf": "corrupt PDF",
    "scanned.pdf": "no extractable text",
    "bomb.docx": "zip bomb",
    "fake.docx": "corrupt .docx",
    "pipe.txt": "not a regular file",
    "program.exe": "unsupported file type",
    "link-out.txt": "symbolic link: not followed",
    "link-passwd.txt": "symbolic link: not followed",
    "link-dir": "symbolic link: not followed",
}


def make_fuzz_corpus(base: Path) -> Path:
    """The fuzz folder under `base/corpus`, with its link targets in `base/outside`."""
    outside, corpus = base / "outside", base / "corpus"
    (outside / "dir").mkdir(parents=True)
    (outside / "secret.txt").write_text(f"The {SECRET} vault code is 1234.\n", encoding="utf-8")
    (outside / "dir" / "also.txt").write_text(f"Another {SECRET} file.\n", encoding="utf-8")
    (corpus / "notes").mkdir(parents=True)

    # Ordinary files, one fact each.
    (corpus / "notes/harbour.txt").write_text(
        "Harbour log. The harbour pilot boarded 4,217 ships in 2023. Fog closed the port twice.\n", encoding="utf-8"
    )
    (corpus / "guide.md").write_text("# Museum\n\nThe museum guide leads 38 tours every week.\n", encoding="utf-8")
    (corpus / "page.html").write_text(
        "<html><head><title>Bakery</title><script>var x = 'hidden';</script></head><body>"
        "<p>The bakery sells 640 loaves each morning.</p></body></html>",
        encoding="utf-8",
    )
    write_pdf(corpus / "report.pdf", ["The orchard harvested 9,310 apples in autumn.", "Pears came later."])
    write_docx(corpus / "letter.docx", ["The choir gave 27 concerts last winter.", "Rehearsals ran late."])
    (corpus / "unicode.txt").write_text(
        "שלום 👋 \u200b The Zürich café served 1,985 crêpes at the fête. 日本語のテキスト. e\u0301\n", encoding="utf-8"
    )
    depth = 10_000
    (corpus / "nested.html").write_text(
        "<html><body>"
        + "<div>" * depth
        + "The nested vault holds 77 brass keys."
        + "</div>" * depth
        + "</body></html>",
        encoding="utf-8",
    )
    (corpus / "a\nb.txt").write_text("The newline lighthouse flashes 14 times a minute.\n", encoding="utf-8")
    (corpus / "long-line.md").write_text(" ".join(f"word{i}" for i in range(2500)), encoding="utf-8")

    # Hostile files.
    (corpus / "empty.txt").write_bytes(b"")
    (corpus / "blank.md").write_text("   \n\n\t\n", encoding="utf-8")
    (corpus / "binary.txt").write_bytes(bytes(range(256)) * 64)
    (corpus / "latin1.txt").write_bytes("Café crème brûlée, façade.\n".encode("latin-1"))
    with open(corpus / "huge.txt", "wb") as fh:  # 50 MB, sparse: quick to make, never read
        fh.write(b"The start of a very large text file.\n")
        fh.truncate(50 * MIB)
    pdf = write_pdf(base / "whole.pdf", ["The truncated report says nothing useful."] * 3).read_bytes()
    (corpus / "truncated.pdf").write_bytes(pdf[: len(pdf) // 2])
    from fpdf import FPDF

    scan = FPDF()
    scan.add_page()
    scan.rect(20, 20, 120, 80, style="F")  # a drawing, no text layer
    scan.output(str(corpus / "scanned.pdf"))
    with zipfile.ZipFile(corpus / "bomb.docx", "w", zipfile.ZIP_DEFLATED, compresslevel=9) as bomb:
        bomb.writestr("[Content_Types].xml", "<Types/>")
        with bomb.open("word/document.xml", "w", force_zip64=True) as member:
            zeros = b"\0" * MIB
            for _ in range(300):  # declares 300 MB, compresses to ~300 KB
                member.write(zeros)
    (corpus / "fake.docx").write_text("Not a zip archive at all.\n", encoding="utf-8")
    os.mkfifo(corpus / "pipe.txt")  # reading it would block for ever
    (corpus / "program.exe").write_bytes(b"MZ\x90\x00" + b"\x00" * 64)
    (corpus / "..evil.txt").write_text(f"Hidden {SECRET} dot-dot file.\n", encoding="utf-8")
    os.symlink(outside / "secret.txt", corpus / "link-out.txt")
    os.symlink("/etc/passwd", corpus / "link-passwd.txt")
    os.symlink(outside / "dir", corpus / "link-dir")
    return corpus


# Peak RSS comes from wait4() in a small launcher process. Measured straight from pytest it would
# be wrong: Linux starts a child's ru_maxrss at the high-water mark of the process it was forked
# (or vforked) from, and pytest holds the model, so every child would look at least that big.
MEASURE = r"""
import json, os, subprocess, sys
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
with open(sys.argv[1], "w") as fh:
    json.dump({"exit_code": os.waitstatus_to_exitcode(status), "maxrss_kb": usage.ru_maxrss}, fh)
"""


def _run_measured(args: list[str], *, name: str, timeout: float) -> tuple[int, str, str, float, float]:
    """Run a command; (exit code, stdout, stderr, peak RSS in MB of that process, seconds).
    Its output is kept in conftest.ARTIFACTS/`name`.stdout and .stderr."""
    base = ARTIFACT.parent
    base.mkdir(parents=True, exist_ok=True)
    paths = {part: base / f"{name}.{part}" for part in ("stdout", "stderr", "rusage")}
    paths["rusage"].unlink(missing_ok=True)
    started = time.perf_counter()
    with open(paths["stdout"], "w") as out, open(paths["stderr"], "w") as err:
        subprocess.run(
            [sys.executable, "-c", MEASURE, str(paths["rusage"]), *args],
            stdout=out,
            stderr=err,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
            timeout=timeout,
        )
    seconds = time.perf_counter() - started
    usage = json.loads(paths["rusage"].read_text())
    return (
        usage["exit_code"],
        paths["stdout"].read_text(encoding="utf-8", errors="replace"),
        paths["stderr"].read_text(encoding="utf-8", errors="replace"),
        usage["maxrss_kb"] / 1024,
        seconds,
    )


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_fuzz_corpus(tmp_path_factory.mktemp("hostile"))


@pytest.fixture(scope="module")
def indexed(corpus: Path) -> dict:
    """`rag index` over the fuzz folder, as a user runs it, with its peak memory."""
    index_dir = corpus.parent / "index"
    rc, out, err, rss_mb, seconds = _run_measured(
        [*rag_command(), "index", str(corpus), "--index-dir", str(index_dir)], name="hostile_index", timeout=300
    )
    ARTIFACT.write_text(
        json.dumps(
            {
                "peak_rss_mb": round(rss_mb, 1),
                "seconds": round(seconds, 1),
                "files": len(os.listdir(corpus)),
                "exit_code": rc,
            },
            indent=1,
        )
        + "\n"
    )
    return {"rc": rc, "out": out, "err": err, "rss_mb": rss_mb, "index_dir": index_dir}


def _skipped_lines(stdout: str) -> dict[str, str]:
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("skipped "))
    entries = lines[start + 1 :]
    assert entries and all(e.startswith("  ") for e in entries), entries
    assert lines[start] == f"skipped {len(entries)} file(s):"
    return dict(e[2:].split(": ", 1) for e in entries)


def test_every_hostile_file_is_skipped_with_a_one_line_reason(corpus: Path) -> None:
    files, skipped = find_files([corpus])
    items = list(load_documents(files, max_bytes=int(RagConfig().max_file_mb * MIB)))
    skipped += [item for item in items if isinstance(item, Skipped)]
    reasons = {s.source: s.reason for s in skipped}

    assert set(reasons) == set(SKIPS), set(reasons) ^ set(SKIPS)
    for source, needle in SKIPS.items():
        assert needle in reasons[source], (source, reasons[source])
    for reason in reasons.values():
        assert reason.strip() and "\n" not in reason and "\r" not in reason and len(reason) < 300, reason
    loaded = {item.source for item in items if not isinstance(item, Skipped)}
    assert loaded == set(FACTS) | {"long-line.md"}  # "..evil.txt" is hidden: ignored like any dot-file


@pytest.mark.slow
def test_rag_index_survives_the_fuzz_folder_within_the_memory_bound(indexed: dict) -> None:
    assert indexed["rc"] == 0, indexed["err"][-3000:]
    assert "Traceback" not in indexed["err"]
    assert indexed["out"].startswith(f"indexed into {indexed['index_dir']}: {len(FACTS) + 1} added,")
    reasons = _skipped_lines(indexed["out"])
    assert set(reasons) == set(SKIPS)
    for source, needle in SKIPS.items():
        assert needle in reasons[source], (source, reasons[source])
    assert 0 < indexed["rss_mb"] < RSS_LIMIT_MB, f"peak RSS {indexed['rss_mb']:.0f} MB"


@pytest.mark.slow
def test_every_ordinary_file_is_indexed_and_answerable(indexed: dict, embedder) -> None:
    rag = RAG.open(indexed["index_dir"], embedder=embedder)
    try:
        held = {d.source for d in rag.index.documents()}
        assert held == set(FACTS) | {"long-line.md"}
        for source, (question, figure) in FACTS.items():
            answer = rag.ask(question)
            assert not answer.abstained and answer.citations, (source, answer.text)
            assert answer.citations[0].source == source and figure in answer.text, (source, answer.text)
            for c in answer.citations:
                assert rag.index.document(c.source).text[c.start : c.end] == c.quote  # type: ignore[union-attr]
    finally:
        rag.index.close()


@pytest.mark.slow
def test_nothing_outside_the_folder_or_hidden_is_indexed(indexed: dict) -> None:
    index = Index.load(indexed["index_dir"])
    try:
        for info in index.documents():
            path = PurePosixPath(info.source)
            assert not path.is_absolute() and ".." not in path.parts and not path.name.startswith(".")
            document = index.document(info.source)
            assert document is not None and SECRET not in document.text
        rows = index.chunks([int(i) for i in index.bm25_ids])
        assert rows and all(SECRET not in c.text for c in rows.values())
    finally:
        index.close()


def test_peak_memory_is_measured_for_the_child_alone() -> None:
    """A child that holds 200 MB measures about 200 MB, though this process holds the model."""
    rc, out, _, rss_mb, _ = _run_measured(
        [sys.executable, "-c", "b = bytearray(200 * 1024 * 1024); print(len(b))"], name="rss_probe", timeout=60
    )
    assert rc == 0 and out.strip() == str(200 * MIB)
    assert 200 <= rss_mb < 260, rss_mb
