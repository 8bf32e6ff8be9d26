"""Ingest: every supported format from real files on disk, and bad files skipped with a reason."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from rag.load import Skipped, find_files, load_document, load_documents
from rag.types import Document

HTML = """<!doctype html>
<html><head><title>Harbour notes</title>
<style>body { color: red } .secret-style { display: none }</style>
<script>var secretScript = "do not index me";</script>
</head>
<body>
<h1>The harbour</h1>
<p>The ferry leaves at <b>seven</b> every morning.</p>
<script>console.log("inline script text")</script>
<noscript>enable javascript please</noscript>
<ul><li>Pier one</li><li>Pier two</li></ul>
</body></html>
"""


@pytest.fixture()
def corpus(tmp_path: Path, make_pdf, make_docx) -> Path:
    """One file of each supported format, one nested two folders deep."""
    root = tmp_path / "corpus"
    root.mkdir()
    (root / "plain.txt").write_text("Plain text about lighthouses.\r\nSecond line here.\n", encoding="utf-8")
    (root / "notes" / "deep").mkdir(parents=True)
    (root / "notes" / "deep" / "readme.md").write_text("# Heading\n\nMarkdown body about owls.\n", encoding="utf-8")
    (root / "page.html").write_text(HTML, encoding="utf-8")
    make_pdf(root / "notes" / "report.pdf", ["The first page is about apples.", "The second page is about zebras."])
    make_docx(root / "letter.docx", ["Dear reader, the docx speaks of kites.", "A second paragraph of the letter."])
    return root


def _load_all(root: Path) -> tuple[dict[str, Document], list[Skipped]]:
    files, skipped = find_files([root])
    docs: dict[str, Document] = {}
    for item in load_documents(files):
        if isinstance(item, Skipped):
            skipped.append(item)
        else:
            docs[item.source] = item
    return docs, skipped


def test_each_format_is_read_with_relative_forward_slash_sources(corpus: Path) -> None:
    docs, skipped = _load_all(corpus)

    assert skipped == []
    assert set(docs) == {"plain.txt", "notes/deep/readme.md", "page.html", "notes/report.pdf", "letter.docx"}
    assert docs["plain.txt"].text == "Plain text about lighthouses.\nSecond line here.\n"  # CRLF normalised
    assert "Markdown body about owls." in docs["notes/deep/readme.md"].text
    assert "Dear reader, the docx speaks of kites." in docs["letter.docx"].text
    assert "A second paragraph of the letter." in docs["letter.docx"].text
    for source, doc in docs.items():
        assert doc.sha256 == hashlib.sha256((corpus / source).read_bytes()).hexdigest()
        assert doc.pages == () or source.endswith(".pdf")


def test_html_keeps_visible_text_only(corpus: Path) -> None:
    text = load_document(corpus / "page.html", "page.html").text

    for visible in ("The harbour", "The ferry leaves at seven every morning.", "Pier one", "Pier two"):
        assert visible in text
    for hidden in (
        "secretScript",
        "do not index me",
        "inline script text",
        "color: red",
        "secret-style",
        "enable javascript",
        "<p>",
        "<b>",
    ):
        assert hidden not in text


def test_pdf_text_is_kept_per_page_with_page_numbers(corpus: Path) -> None:
    doc = load_document(corpus / "notes" / "report.pdf", "notes/report.pdf")

    assert [p.number for p in doc.pages] == [1, 2]
    first, second = (doc.text[p.start : p.end] for p in doc.pages)
    assert "apples" in first and "zebras" not in first
    assert "zebras" in second and "apples" not in second
    assert doc.pages[0].end <= doc.pages[1].start
    assert doc.page_at(doc.text.index("zebras")) == 2
    assert doc.page_at(doc.text.index("apples")) == 1


def test_content_hash_changes_with_the_bytes(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("Version one of the file.", encoding="utf-8")
    before = load_document(path, "a.txt").sha256
    path.write_text("Version two of the file.", encoding="utf-8")
    after = load_document(path, "a.txt").sha256

    assert before != after
    assert after == hashlib.sha256(b"Version two of the file.").hexdigest()


def test_bad_files_are_skipped_with_one_line_reasons_and_the_rest_loaded(tmp_path: Path, make_pdf) -> None:
    root = tmp_path / "mixed"
    root.mkdir()
    (root / "good.txt").write_text("A perfectly good file about rivers.", encoding="utf-8")
    make_pdf(root / "good.pdf", ["A good PDF about mountains."])
    (root / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00")
    (root / "latin1.txt").write_bytes("caf\u00e9 au lait".encode("latin-1"))
    (root / "empty.txt").write_bytes(b"")
    (root / "corrupt.pdf").write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> garbage without an end")
    (root / "data.xyz").write_text("some text in an unknown format", encoding="utf-8")

    docs, skipped = _load_all(root)
    reasons = {s.source: s.reason for s in skipped}

    assert set(docs) == {"good.txt", "good.pdf"}
    assert set(reasons) == {"binary.txt", "latin1.txt", "empty.txt", "corrupt.pdf", "data.xyz"}
    assert "binary" in reasons["binary.txt"]
    assert "UTF-8" in reasons["latin1.txt"] and "0xe9" in reasons["latin1.txt"]
    assert reasons["empty.txt"] == "empty file"
    assert "corrupt PDF" in reasons["corrupt.pdf"]
    assert "unsupported file type '.xyz'" in reasons["data.xyz"]
    for reason in reasons.values():
        assert reason and "\n" not in reason and len(reason) < 200


def test_hidden_files_are_ignored_and_a_missing_path_is_named(tmp_path: Path) -> None:
    (tmp_path / ".hidden.txt").write_text("secret", encoding="utf-8")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config.txt").write_text("secret", encoding="utf-8")
    (tmp_path / "shown.txt").write_text("shown", encoding="utf-8")

    files, skipped = find_files([tmp_path])

    assert [source for _, source in files] == ["shown.txt"] and skipped == []
    with pytest.raises(FileNotFoundError, match="no-such-folder"):
        find_files([tmp_path / "no-such-folder"])


def test_build_index_indexes_the_readable_files_and_returns_the_skipped(tmp_path: Path, embedder) -> None:
    from rag.pipeline import build_index
    from rag.store import Index

    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "owls.txt").write_text("Owls hunt at night using silent flight.", encoding="utf-8")
    (root / "empty.txt").write_bytes(b"")
    (root / "bad.txt").write_bytes(b"\xff\xfe\xfa broken")

    report = build_index([root], index_dir=tmp_path / "index", embedder=embedder)

    assert report.stats.added == ["sub/owls.txt"]
    assert {(s.source, s.reason.split(" (")[0]) for s in report.skipped} == {
        ("empty.txt", "empty file"),
        ("bad.txt", "not valid UTF-8"),
    }
    index = Index.load(tmp_path / "index")
    assert [d.source for d in index.documents()] == ["sub/owls.txt"]
    index.close()


def test_two_folders_with_the_same_file_name_skip_the_second_with_a_reason(tmp_path):
    from rag.load import find_files

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "notes.txt").write_text(f"Notes from {name}.", encoding="utf-8")
    files, skipped = find_files([tmp_path / "a", tmp_path / "b"])
    assert [source for _, source in files] == ["notes.txt"]
    assert files[0][0] == tmp_path / "a" / "notes.txt"
    assert len(skipped) == 1 and skipped[0].source == "notes.txt"
    assert "same relative path" in skipped[0].reason
