"""The `rag` command run as a user runs it: a subprocess in a temporary folder.

Each command that loads the model costs several seconds, so the index is built once per module and
bad inputs that are refused before the model loads are checked separately (they are fast).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ANSWER_KEYS

KURSK_QUESTION = "How many North Korean soldiers have arrived in Kursk?"


def _assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("rag ") and ": error: " in lines[0]
    for needle in needles:
        assert needle in lines[0]
    assert result.stdout == ""


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, rag_cli, seed_path: Path) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """`rag index corpus --index-dir idx` over the seed article and three unreadable files."""
    work = tmp_path_factory.mktemp("cli")
    corpus = work / "corpus"
    (corpus / "sub").mkdir(parents=True)
    shutil.copy(seed_path, corpus / seed_path.name)
    (corpus / "sub" / "empty.txt").write_bytes(b"")
    (corpus / "image.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (corpus / "data.xyz").write_text("unknown format", encoding="utf-8")
    result = rag_cli(["index", "corpus", "--index-dir", "idx"], cwd=work)
    return work, result


@pytest.mark.slow
def test_index_prints_a_summary_with_the_skipped_files(indexed, seed_path: Path) -> None:
    work, result = indexed

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("indexed into idx: 1 added, 0 changed, 0 removed, 0 unchanged;")
    assert "skipped 3 file(s):" in lines
    assert "  sub/empty.txt: empty file" in lines
    assert any(line.startswith("  image.txt: binary content") for line in lines)
    assert any(line.startswith("  data.xyz: unsupported file type '.xyz'") for line in lines)
    manifest = json.loads((work / "idx" / "manifest.json").read_text(encoding="utf-8"))
    assert list(manifest["documents"]) == [seed_path.name]


@pytest.mark.slow
def test_ask_json_prints_exactly_one_object(indexed, rag_cli, seed_path: Path) -> None:
    work, _ = indexed
    result = rag_cli(["ask", KURSK_QUESTION, "--index-dir", "idx", "--json"], cwd=work)

    assert result.returncode == 0, result.stderr
    assert len(result.stdout.strip().splitlines()) == 1
    data = json.loads(result.stdout)
    assert set(data) == ANSWER_KEYS
    assert data["question"] == KURSK_QUESTION and data["abstained"] is False
    assert "[1]" in data["answer"] and 0.0 <= data["confidence"] <= 1.0
    assert set(data["timings_ms"]) == {"retrieve", "answer", "total"}
    assert all(isinstance(v, (int, float)) and v >= 0 for v in data["timings_ms"].values())
    assert data["citations"]
    text = seed_path.read_text(encoding="utf-8")
    for c in data["citations"]:
        assert set(c) == {"n", "source", "start", "end", "page", "quote", "passage", "score"}
        assert c["source"] == seed_path.name and c["page"] is None
        assert text[c["start"] : c["end"]] == c["quote"] and c["quote"] in c["passage"]
    assert any("8,000" in c["quote"] for c in data["citations"])


@pytest.mark.slow
def test_store_spec_names_the_same_index_as_index_dir(indexed, rag_cli) -> None:
    work, _ = indexed
    by_dir = rag_cli(["ask", KURSK_QUESTION, "--index-dir", "idx", "--json"], cwd=work)
    by_spec = rag_cli(["ask", KURSK_QUESTION, "--store", "faiss:idx", "--json"], cwd=work)

    assert by_dir.returncode == by_spec.returncode == 0, by_spec.stderr
    a, b = json.loads(by_dir.stdout), json.loads(by_spec.stdout)
    assert a["answer"] == b["answer"] and a["citations"] == b["citations"]


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["ask", ""], ["question is empty"]),
        (["ask", "   \t  "], ["question is empty"]),
        (["ask", "x" * 2001], ["question is 2001 characters", "2000"]),
        (["ask", "What happened?", "--top-k", "0"], ["top_k must be >= 1, got 0"]),
        (["ask", "What happened?", "--reader-tokens", "8"], ["reader_tokens must be 0", "got 8"]),
        (["index", "no-such-folder", "--index-dir", "idx"], ["path does not exist: no-such-folder"]),
        (["ask", KURSK_QUESTION], ["no index at index", "rag index"]),
        (["ask", KURSK_QUESTION, "--index-dir", "missing-index", "--json"], ["no index at missing-index"]),
        (["ask", KURSK_QUESTION, "--store", "bogus://x"], ["unknown store 'bogus://x'", "milvus:PATH.db"]),
        (["index", ".", "--store", "milvus:notes"], ["'milvus:notes'", "a file ending in .db"]),
        (["serve", "--store", "milvus://db:0x"], ["'milvus://db:0x' has a bad port"]),
        (["ask", KURSK_QUESTION, "--store", "faiss:"], ["names no folder"]),
        (["ask", KURSK_QUESTION, "--store", "milvus://db:19530/../x"], ["collection '../x'"]),
    ],
    ids=[
        "empty",
        "whitespace",
        "too-long",
        "top-k-0",
        "reader-tokens-8",
        "missing-path",
        "no-index",
        "no-index-dir",
        "unknown-store",
        "lite-not-db",
        "bad-port",
        "faiss-no-folder",
        "collection-traversal",
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path: Path, rag_cli, args: list[str], needles: list[str]) -> None:
    result = rag_cli(args, cwd=tmp_path)

    _assert_one_line_error(result, *needles)
    assert not (tmp_path / "idx").exists() and not (tmp_path / "index").exists()


@pytest.mark.slow
def test_empty_corpus_exits_2_and_leaves_the_index_unchanged(indexed, rag_cli, tmp_path: Path) -> None:
    work, _ = indexed
    shutil.copytree(work / "idx", tmp_path / "idx", ignore=shutil.ignore_patterns(".lock"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "blank.txt").write_bytes(b"")
    before = _snapshot(tmp_path / "idx")

    result = rag_cli(["index", "empty", "--index-dir", "idx"], cwd=tmp_path)

    _assert_one_line_error(result, "no readable documents in empty", "1 skipped")
    assert _snapshot(tmp_path / "idx") == before


@pytest.mark.slow
def test_other_chunking_is_refused_until_rebuild(indexed, rag_cli, tmp_path: Path) -> None:
    work, _ = indexed
    shutil.copytree(work / "idx", tmp_path / "idx", ignore=shutil.ignore_patterns(".lock"))
    shutil.copytree(work / "corpus", tmp_path / "corpus")
    before = _snapshot(tmp_path / "idx")

    refused = rag_cli(["index", "corpus", "--index-dir", "idx", "--chunk-tokens", "100"], cwd=tmp_path)

    _assert_one_line_error(refused, "chunk_tokens=200 (config: 100)", "--rebuild")
    assert _snapshot(tmp_path / "idx") == before

    rebuilt = rag_cli(["index", "corpus", "--index-dir", "idx", "--chunk-tokens", "100", "--rebuild"], cwd=tmp_path)

    assert rebuilt.returncode == 0, rebuilt.stderr
    assert rebuilt.stdout.startswith("indexed into idx: 1 added, 0 changed, 0 removed, 0 unchanged;")
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text(encoding="utf-8"))
    old = json.loads(before["manifest.json"])
    assert manifest["params"]["chunk_tokens"] == 100 and manifest["generation"] == old["generation"] + 1
    assert manifest["n_chunks"] > old["n_chunks"]


def test_an_index_built_with_other_chunking_can_still_be_asked(
    tmp_path: Path, monkeypatch, capsys, embedder, seed_path: Path
) -> None:
    """In-process (the model is already loaded): `rag ask` has no chunking flags, so it must take
    the index's own chunking instead of refusing the index."""
    from rag.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "corpus").mkdir()
    shutil.copy(seed_path, tmp_path / "corpus" / seed_path.name)
    assert main(["index", "corpus", "--index-dir", "idx", "--chunk-tokens", "100", "--chunk-overlap", "0"]) == 0
    assert "1 added" in capsys.readouterr().out

    assert main(["ask", KURSK_QUESTION, "--index-dir", "idx", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert not data["abstained"] and any("8,000" in c["quote"] for c in data["citations"])

    assert main(["ask", KURSK_QUESTION, "--index-dir", "idx"]) == 0
    out = capsys.readouterr().out
    assert "8,000" in out and f"[1] {seed_path.name}, characters " in out and "confidence " in out

    assert main(["ask", "What is the best recipe for sourdough bread?", "--index-dir", "idx"]) == 0
    out = capsys.readouterr().out
    assert "Nearest passages (not an answer):" in out and "[1]" not in out


def test_skipped_file_names_print_on_one_line() -> None:
    from rag.cli import _printable

    assert _printable("a\nb.txt") == "a\\nb.txt"
    assert _printable("naïve ünïcode.md") == "naïve ünïcode.md"


@pytest.mark.parametrize("command", [["ask", "Who won?"], ["serve"]])
def test_the_reader_settings_reach_the_config_of_ask_and_serve(command: list[str]) -> None:
    from rag.cli import _generator_config, _parser
    from rag.config import RagConfig

    args = _parser().parse_args(
        [*command, "--answer-scorer", "reader", "--reader-sentences", "6", "--reader-tokens", "80"]
    )
    config = RagConfig(**_generator_config(args))
    assert (config.answer_scorer, config.reader_sentences, config.reader_tokens) == ("reader", 6, 80)
    defaults = RagConfig(**_generator_config(_parser().parse_args(command)))
    assert (defaults.reader_sentences, defaults.reader_tokens) == (RagConfig().reader_sentences, 0)
    assert defaults.claim_checker is True
    unchecked = RagConfig(**_generator_config(_parser().parse_args([*command, "--no-claim-checker"])))
    assert unchecked.claim_checker is False
