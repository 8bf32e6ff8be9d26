"""Asking within some documents (`rag.scope`): parsing and matching, the filter inside each store's
search, the pipeline (citations, refusals, follow-ups), the CLI flags and the chat's handlers.

The corpus: the seed article, 300 SciFact abstracts under scifact/, and three documents made here
with known modification dates: notes/lighthouse.md (a long one, several chunks), reports/q1.pdf and
reports/2023/old.docx. Indexed once for the module with the real embedding model.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, SEED, need_shared, run_rag, skip_or_fail, write_docx, write_pdf

from bench.common import scifact_corpus, synthetic_vectors
from rag.cli import main as rag_main
from rag.config import RagConfig
from rag.pipeline import RAG, EmptyScope, build_index
from rag.retrieve import scope_sources
from rag.scope import BadScope, Scope, escape_glob, parse_scope
from rag.store import Index, faiss_kind, new_faiss_index, read_manifest
from rag.store.subset import HNSW_FILTER_ABOVE, dense_search_within
from rag.types import Answer

N_SCIFACT = 300
SEED_NAME = SEED.name
KURSK = "How many North Korean soldiers have arrived in Kursk?"
LIGHTHOUSE = "notes/lighthouse.md"
PDF = "reports/q1.pdf"
DOCX = "reports/2023/old.docx"
PARTS = ["lamp", "lens", "railing", "fog bell", "stairway", "door", "window", "radio mast"]


def _epoch(day: str) -> float:
    """Noon of `day` in this machine's time zone (the scope compares local dates)."""
    return dt.datetime.fromisoformat(f"{day}T12:00:00").timestamp()


DATES = {LIGHTHOUSE: "2024-03-10", PDF: "2024-06-01", DOCX: "2023-02-01"}


def _lighthouse_text() -> str:
    return "\n\n".join(
        f"In {1950 + i}, Edna Marwick, keeper of the Skerry Point lighthouse, logged {7 + i * 3} winter "
        f"gales and repaired the {PARTS[i % len(PARTS)]} after the storm of {['March', 'October'][i % 2]}. "
        f"Her logbook for {1950 + i} counts {120 + i} ships passing the point and {i % 5 + 1} rescues."
        for i in range(40)
    )


def _write_corpus(root: Path) -> Path:
    corpus = root / "corpus"
    (corpus / "scifact").mkdir(parents=True)
    shutil.copy(SEED, corpus / SEED_NAME)
    for name, text in scifact_corpus(N_SCIFACT).items():
        (corpus / "scifact" / name).write_text(text, encoding="utf-8")
    (corpus / "notes").mkdir()
    (corpus / LIGHTHOUSE).write_text(_lighthouse_text(), encoding="utf-8")
    write_pdf(
        corpus / PDF,
        ["Quarterly report. The Skerry ferry company's revenue rose to 4.2 million euros in the first quarter."],
    )
    write_docx(corpus / DOCX, ["Annual review. The ferry company bought two new boats, the Petrel and the Tern."])
    for source, day in DATES.items():
        os.utime(corpus / source, (_epoch(day), _epoch(day)))
    return corpus


@pytest.fixture(scope="module")
def corpus_index(tmp_path_factory, embedder) -> tuple[Path, Path]:
    need_shared()
    base = tmp_path_factory.mktemp("scope")
    corpus = _write_corpus(base)
    build_index([corpus], index_dir=base / "index", embedder=embedder)
    return corpus, base / "index"


@pytest.fixture(scope="module")
def rag(corpus_index, embedder):
    opened = RAG.open(corpus_index[1], embedder=embedder)
    yield opened
    opened.index.close()


def _scifact_questions(n: int) -> list[str]:
    path = need_shared() / "scifact" / "queries.jsonl"
    return [json.loads(line)["text"] for line in path.open()][:n]


def _seed_questions(n: int) -> list[str]:
    lines = (ROOT / "eval" / "data" / "seed_qa.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["question"] for line in lines if line][:n]


# ----------------------------------------------------------------------------------------------
# Parsing and matching


def test_each_kind_of_filter_selects_its_documents() -> None:
    sources = ["a.txt", "reports/q1.pdf", "reports/2023/old.docx", "reports2/x.pdf", "notes/r[1].md", "notes/r1.md"]

    def picked(**fields) -> list[str]:
        scope = parse_scope(**fields)
        return [s for s in sources if scope.matches(s)]

    assert picked() == sources and parse_scope().everything
    assert picked(source="reports/*.pdf") == ["reports/q1.pdf"]  # `*` stays within a folder
    assert picked(source="**/*.pdf") == ["reports/q1.pdf", "reports2/x.pdf"]
    assert picked(source="*.txt") == ["a.txt"]  # a glob is matched against the whole path
    assert picked(source=["a.txt", "reports/**"]) == ["a.txt", "reports/q1.pdf", "reports/2023/old.docx"]
    assert picked(source="notes/r[0-9].md") == ["notes/r1.md"]
    assert picked(source=escape_glob("notes/r[1].md")) == ["notes/r[1].md"]  # the picker's exact names
    assert picked(folder="reports") == ["reports/q1.pdf", "reports/2023/old.docx"]  # not reports2/
    assert picked(folder="./reports/2023/") == ["reports/2023/old.docx"]
    assert picked(type=["PDF", ".docx"]) == ["reports/q1.pdf", "reports/2023/old.docx", "reports2/x.pdf"]
    assert picked(folder="reports", type="pdf") == ["reports/q1.pdf"]  # different kinds: all must hold


def test_dates_include_both_bounds_and_leave_out_documents_without_one() -> None:
    scope = parse_scope(after="2024-01-01", before="2024-01-31")
    assert scope.matches("a.txt", modified=_epoch("2024-01-01"))
    assert scope.matches("a.txt", modified=_epoch("2024-01-31"))
    assert not scope.matches("a.txt", modified=_epoch("2024-02-01"))
    assert not scope.matches("a.txt", modified=_epoch("2023-12-31"))
    assert not scope.matches("a.txt", modified=None)  # indexed before dates were recorded
    assert parse_scope(type="txt").matches("a.txt", modified=None)  # no date asked: no date needed


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"after": "2024-13-01"}, "--after: not a date (YYYY-MM-DD): '2024-13-01'"),
        ({"before": "yesterday"}, "--before: not a date (YYYY-MM-DD): 'yesterday'"),
        ({"after": "2024-1-5"}, "--after: not a date (YYYY-MM-DD): '2024-1-5'"),
        ({"type": "p df"}, "--type: not a file type (letters and digits, like pdf): 'p df'"),
        ({"folder": "../etc"}, "--folder: not a folder inside the indexed folders: '../etc'"),
        ({"folder": "/"}, "--folder: not a folder inside the indexed folders: '/'"),
        ({"source": " "}, "--source: not a file name or glob: ' '"),
        (
            {"after": "2024-02-01", "before": "2024-01-01"},
            "--after 2024-02-01 is later than --before 2024-01-01: no date is in both",
        ),
    ],
)
def test_bad_values_are_one_line_naming_the_flag_and_the_value(fields: dict, message: str) -> None:
    with pytest.raises(BadScope) as caught:
        parse_scope(**fields, prefix="--")
    assert str(caught.value) == message


def test_json_round_trip_and_bad_json() -> None:
    scope = Scope.from_json({"source": "reports/*.pdf", "folder": ["reports"], "type": "pdf", "after": "2024-01-01"})
    assert scope.to_json() == {
        "source": ["reports/*.pdf"],
        "folder": ["reports"],
        "type": ["pdf"],
        "after": "2024-01-01",
    }
    assert Scope.from_json(scope.to_json()) == scope
    assert Scope.from_json(None).everything and Scope.from_json({"source": None}).everything
    with pytest.raises(BadScope, match=r"^sources: not a scope field \(the fields: source, folder"):
        Scope.from_json({"sources": ["a.txt"]})
    with pytest.raises(BadScope, match=r"^after: not a date \(YYYY-MM-DD\): 20240101$"):
        Scope.from_json({"after": 20240101})
    with pytest.raises(BadScope, match=r"^type: not a string: 7$"):
        Scope.from_json({"type": ["pdf", 7]})


def test_answer_json_echoes_the_scope() -> None:
    answer = Answer(question="q", text="t", abstained=True, confidence=0.0, citations=())
    assert answer.to_json()["scope"] is None
    scoped = Answer(question="q", text="t", abstained=True, confidence=0.0, citations=(), scope=parse_scope(type="pdf"))
    assert scoped.to_json()["scope"] == {"type": ["pdf"]}


# ----------------------------------------------------------------------------------------------
# The filter inside FAISS, for each index type the project builds


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_faiss_search_within_documents_finds_the_exact_top_k_of_any_scope(kind: str) -> None:
    """Seeded clustered vectors, 20 chunk ids per document: a scope of one document, of 1% and of
    half of them gets the same top k as brute force over its chunks (HNSW included: the small scopes
    are searched exactly, the large one through the graph, where it finds what an unscoped HNSW
    search finds: 0.98 of the exact top 10 on these vectors)."""
    import faiss

    n, dim, k = 6000, 384, 10
    vectors = synthetic_vectors(n, dim, seed=3).astype(np.float32)
    ids = np.arange(1, n + 1, dtype=np.int64)
    config = RagConfig(approximate_above=n - 1 if kind == "hnsw" else n)  # the project's HNSW parameters
    index = new_faiss_index(faiss_kind(n, config), config)
    index.add_with_ids(vectors, ids)
    assert isinstance(faiss.downcast_index(index.index), faiss.IndexHNSW) == (kind == "hnsw")
    queries = synthetic_vectors(10, dim, seed=11).astype(np.float32)
    rng = np.random.default_rng(0)
    for share in (1 / 300, 0.01, 0.5):
        documents = rng.choice(n // 20, max(1, round(share * n / 20)), replace=False)
        mask = np.zeros(n + 1, dtype=bool)
        for d in documents:
            mask[1 + d * 20 : 1 + (d + 1) * 20] = True
        allowed = np.flatnonzero(mask)
        for q in queries:
            found = dense_search_within(index, q, k, mask)
            truth = allowed[np.argsort(-(vectors[allowed - 1] @ q))[:k]]
            assert len(found) == k and all(mask[i] for i, _ in found), (kind, share)
            overlap = len({i for i, _ in found} & set(truth.tolist())) / k
            # Exact searches (flat, and HNSW below the threshold) find exactly the brute-force top k.
            exact = kind == "flat" or mask.sum() <= HNSW_FILTER_ABOVE * n
            assert overlap == 1.0 if exact else overlap >= 0.9, (kind, share, overlap)
            assert np.allclose([s for _, s in found], np.sort(vectors[[i - 1 for i, _ in found]] @ q)[::-1], atol=1e-5)


def test_chunk_ranges_come_from_the_manifest_and_else_from_the_chunk_store(tmp_path) -> None:
    """Masks over chunk ids: from the manifest's runs when they hold exactly the live ids; from
    SQLite when a manifest has no runs or runs over ids the generation lacks (a document's ids
    listed when they are not one run)."""
    import sqlite3

    from rag.store.schema import SCHEMA
    from rag.store.subset import ChunkRanges

    db = sqlite3.connect(tmp_path / "chunks.sqlite")
    db.executescript(SCHEMA)
    rows = [(1, "a.txt", None), (2, "a.txt", None), (3, "b.txt", None), (4, "c.txt", None), (5, "b.txt", None)]
    rows.append((6, "a.txt", 1))  # removed by generation 1: not live
    db.executemany(
        'INSERT INTO chunks (id, source, start, "end", text, sentences, vector, sentence_vectors, gen_added, '
        "gen_removed) VALUES (?, ?, 0, 1, 'x', '[]', x'', x'', 1, ?)",
        rows,
    )
    live = np.array([1, 2, 3, 4, 5])

    def masked(documents: dict, sources: set[str]) -> list[int]:
        return np.flatnonzero(ChunkRanges({"documents": documents}, live, db, 1).mask(sources)).tolist()

    no_runs = {s: {"n_chunks": n} for s, n in (("a.txt", 2), ("b.txt", 2), ("c.txt", 1))}
    assert masked(no_runs, {"b.txt"}) == [3, 5] and masked(no_runs, {"a.txt", "c.txt", "gone.txt"}) == [1, 2, 4]
    wrong = {s: {**e, "first_chunk_id": f} for (s, e), f in zip(no_runs.items(), (1, 3, 9))}  # no chunk 9
    assert masked(wrong, {"b.txt"}) == [3, 5] and masked(wrong, {"c.txt"}) == [4]
    db.execute("UPDATE chunks SET source = 'b.txt' WHERE id = 4")
    db.execute("UPDATE chunks SET source = 'c.txt' WHERE id = 5")
    right = {"a.txt": {"first_chunk_id": 1, "n_chunks": 2}, "b.txt": {"first_chunk_id": 3, "n_chunks": 2}}
    right["c.txt"] = {"first_chunk_id": 5, "n_chunks": 1}
    db.execute("DELETE FROM chunks")  # the manifest's runs are used: the chunk store is not read
    assert masked(right, {"b.txt"}) == [3, 4] and masked(right, {"a.txt", "c.txt"}) == [1, 2, 5]
    assert masked(right, set()) == []


# ----------------------------------------------------------------------------------------------
# The embedded store and the pipeline


def test_documents_know_their_modification_date(rag, corpus_index) -> None:
    corpus, _ = corpus_index
    dates = {d.source: d.modified for d in rag.index.documents()}
    assert dates[LIGHTHOUSE] == pytest.approx(_epoch(DATES[LIGHTHOUSE]))
    assert dates[SEED_NAME] == pytest.approx((corpus / SEED_NAME).stat().st_mtime)
    assert rag.index.document(PDF).modified == pytest.approx(_epoch(DATES[PDF]))
    selected = scope_sources(rag.index, parse_scope(after="2023-01-01", before="2024-04-01"))
    assert selected == {LIGHTHOUSE, DOCX}


def test_one_small_document_still_gets_k_hits_of_its_own(rag, embedder) -> None:
    """A document of 10 chunks among ~800: its chunks are not in the global top 50 of an
    unrelated question, yet the scoped search returns k of them, in the exact cosine order."""
    index = rag.index
    own = [c.id for c in index.document_chunks(LIGHTHOUSE)]
    assert len(own) >= 5 and len(index) > 50 * len(own)
    question = _scifact_questions(1)[0]
    vector = embedder.encode_queries([question])[0]
    assert not {i for i, _ in index.dense_search(vector, 50)} & set(own)  # a cut top-k would hold none
    dense = index.dense_search(vector, 5, sources={LIGHTHOUSE})
    vectors = index.chunk_vectors(own)
    exact = sorted(own, key=lambda i: -float(vectors[i] @ vector))[:5]
    assert [i for i, _ in dense] == exact
    lexical = index.lexical_search("keeper gales storm logbook", 5, sources={LIGHTHOUSE})
    assert len(lexical) == 5 and {i for i, _ in lexical} <= set(own)
    # BM25 scores are the whole index's: a chunk scores the same in or out of the scope.
    everywhere = dict(index.lexical_search("keeper gales storm logbook", 50))
    assert all(everywhere[i] == s for i, s in lexical if i in everywhere)

    answer = rag.ask(question, scope=parse_scope(source=LIGHTHOUSE), config=rag.config.replace(top_k=5))
    assert len(answer.hits) == 5 and {h.chunk.source for h in answer.hits} == {LIGHTHOUSE}


def test_scoped_questions_never_cite_outside_their_scope(rag) -> None:
    scifact = sorted(d.source for d in rag.index.documents() if d.source.startswith("scifact/"))
    scopes = [
        parse_scope(folder="scifact"),
        parse_scope(source=scifact[::15]),  # 20 abstracts
        parse_scope(type=["pdf", "docx"]),
        parse_scope(source="notes/*", after="2024-01-01"),
        parse_scope(before="2024-12-31"),  # the three documents made with old dates
    ]
    questions = _seed_questions(4) + _scifact_questions(4) + ["What did the ferry company's revenue rise to?"]
    for scope in scopes:
        allowed = scope_sources(rag.index, scope)
        assert allowed and len(allowed) < len(rag.index.documents())
        for question in questions:
            answer = rag.ask(question, scope=scope)
            assert {h.chunk.source for h in answer.hits} <= allowed, (scope, question)
            assert {c.source for c in answer.citations} <= allowed, (scope, question)
            assert answer.scope == scope and answer.to_json()["scope"] == scope.to_json()


def test_a_question_answered_only_outside_the_scope_is_refused(rag) -> None:
    everywhere = rag.ask(KURSK)
    assert not everywhere.abstained and "8,000" in everywhere.text
    assert {c.source for c in everywhere.citations} == {SEED_NAME}
    for scope in (parse_scope(folder="scifact"), parse_scope(folder="reports"), parse_scope(source=LIGHTHOUSE)):
        answer = rag.ask(KURSK, scope=scope)
        assert answer.abstained and not answer.tentative, scope
        assert "8,000" not in answer.text and SEED_NAME not in {h.chunk.source for h in answer.hits}
    within = rag.ask(KURSK, scope=parse_scope(source=SEED_NAME))
    assert not within.abstained and "8,000" in within.text
    # Answerable inside a scope of two documents.
    ferry = rag.ask("What did the ferry company's revenue rise to?", scope=parse_scope(folder="reports"))
    assert not ferry.abstained and "4.2 million" in ferry.text and ferry.citations[0].source == PDF


def test_a_scope_no_document_is_in_is_a_clear_error_not_a_refusal(rag) -> None:
    for scope, named in ((parse_scope(type="htm"), "type htm"), (parse_scope(folder="notes", type="pdf"), "folder")):
        with pytest.raises(EmptyScope, match=r"^no document in the index matches the scope \(") as caught:
            rag.ask(KURSK, scope=scope)
        assert named in str(caught.value) and "documents are indexed, none in it" in str(caught.value)


def test_an_index_without_dates_opens_and_a_date_filter_leaves_its_documents_out(
    corpus_index, embedder, tmp_path
) -> None:
    """An index written before dates and chunk id runs were recorded (its manifest has neither
    `modified` nor `first_chunk_id`): it opens, scoped searches find what they find in a new index
    (the runs read from the chunk store), its documents have no date, a date filter finds none of
    them; a document indexed afterwards has one."""
    corpus, index_dir = corpus_index
    old = tmp_path / "old-index"
    shutil.copytree(index_dir, old, ignore=shutil.ignore_patterns(".lock"))
    manifest = read_manifest(old)
    for entry in manifest["documents"].values():
        del entry["modified"], entry["first_chunk_id"]
    (old / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    rag = RAG.open(old, embedder=embedder)
    new = Index.load(index_dir)
    try:
        assert all(d.modified is None for d in rag.index.documents())
        assert rag.index.document(PDF).modified is None
        assert not rag.ask(KURSK).abstained  # everything else works as before
        vector = embedder.encode_queries([KURSK])[0]
        for sources in ({SEED_NAME}, {LIGHTHOUSE, PDF}, {d.source for d in new.documents()[::3]}):
            for search, query in ((Index.dense_search, vector), (Index.lexical_search, KURSK)):
                assert search(rag.index, query, 20, sources=sources) == search(new, query, 20, sources=sources)
        with pytest.raises(EmptyScope, match=r"modified on or after 2000-01-01\): \d+ documents are indexed"):
            rag.ask(KURSK, scope=parse_scope(after="2000-01-01"))
    finally:
        rag.index.close()
        new.close()
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "tide.txt").write_text("The spring tide at Skerry Point rose 5.1 metres on 3 April.", encoding="utf-8")
    build_index([extra], index_dir=old, embedder=embedder, remove_missing=False)
    index = Index.load(old)
    try:
        assert scope_sources(index, parse_scope(after="2000-01-01")) == {"tide.txt"}
    finally:
        index.close()


# ----------------------------------------------------------------------------------------------
# The CLI


@pytest.mark.parametrize(
    ("flags", "line"),
    [
        (["--after", "2024-13-01"], "rag ask: error: --after: not a date (YYYY-MM-DD): '2024-13-01'"),
        (["--type", "p df"], "rag ask: error: --type: not a file type (letters and digits, like pdf): 'p df'"),
        (
            ["--after", "2024-02-01", "--before", "2024-01-01"],
            "rag ask: error: --after 2024-02-01 is later than --before 2024-01-01: no date is in both",
        ),
    ],
)
def test_cli_refuses_a_bad_scope_in_one_line_before_loading_anything(flags, line, capsys, tmp_path) -> None:
    assert rag_main(["ask", KURSK, "--index-dir", str(tmp_path / "none"), *flags]) == 2
    err = capsys.readouterr().err
    assert err.strip() == line and err.count("\n") == 1


@pytest.mark.slow
def test_cli_asks_within_the_flags_scope_and_echoes_it(corpus_index, tmp_path) -> None:
    _, index_dir = corpus_index
    done = run_rag(
        ["ask", "What did the ferry company's revenue rise to?", "--json", "--index-dir", str(index_dir)]
        + ["--folder", "reports", "--type", "pdf", "--after", "2024-01-01"],
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["scope"] == {"folder": ["reports"], "type": ["pdf"], "after": "2024-01-01"}
    assert not data["abstained"] and {c["source"] for c in data["citations"]} == {PDF}
    empty = run_rag(["ask", KURSK, "--index-dir", str(index_dir), "--type", "htm"], cwd=tmp_path)
    assert empty.returncode == 2 and empty.stdout == ""
    assert empty.stderr.startswith("rag ask: error: no document in the index matches the scope (type htm): ")
    assert empty.stderr.count("\n") == 1


# ----------------------------------------------------------------------------------------------
# The chat's "Search in" picker, through its handlers


def _respond(demo, question: str, search_in, search_types, messages=(), turns=()) -> tuple:
    respond = next(f.fn for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "respond")
    updates = list(
        respond(question, list(messages), list(turns), "hybrid", 5, 0.466, "extractive", None, search_in, search_types)
    )
    return updates[-1]


def test_the_picker_scopes_every_question_and_its_follow_ups(rag, tmp_path) -> None:
    from rag.ui.blocks import build_app

    demo = build_app(rag, reports_dir=tmp_path)
    picker = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "search-in")
    assert LIGHTHOUSE in [c[0] for c in picker.choices] and picker.value == []
    _, messages, turns, _ = _respond(demo, "Who kept the Skerry Point lighthouse?", [LIGHTHOUSE], [])
    assert not turns[-1].abstained and {c.source for c in turns[-1].citations} == {LIGHTHOUSE}
    # A follow-up is searched with the previous question, and still only in the picked document.
    _, messages, turns, _ = _respond(demo, "What did she repair?", [LIGHTHOUSE], [], messages, turns)
    assert turns[-1].query != turns[-1].question and {h.chunk.source for h in turns[-1].hits} == {LIGHTHOUSE}
    # The seed question inside the picked document is refused, not answered from elsewhere.
    _, messages, turns, _ = _respond(demo, KURSK, [LIGHTHOUSE, PDF], [], messages, turns)
    assert turns[-1].abstained and "8,000" not in messages[-1]["content"]
    # A choice no document is in says so, and blames the choice, not the documents.
    _, messages, after, _ = _respond(demo, KURSK, [LIGHTHOUSE], ["docx"], messages, turns)
    assert messages[-1]["content"].startswith("**Nothing to search:** no document in the index matches the scope")
    assert "Search in" in messages[-1]["content"] and len(after) == len(turns)  # no turn recorded


def test_the_picker_follows_the_index_documents(rag, tmp_path) -> None:
    from rag.ui.handlers import Handlers

    handlers = Handlers(rag, reports_dir=tmp_path)
    documents, types = handlers.scope_choices([LIGHTHOUSE, "gone.txt"], ["pdf", "xlsx"])
    assert documents["value"] == [LIGHTHOUSE] and types["value"] == ["pdf"]
    assert len(documents["choices"]) == len(rag.index.documents())
    assert set(types["choices"]) == {"txt", "md", "pdf", "docx"}
    # Nothing gone: no value sent, so a pick made while the update travelled is not undone.
    documents, types = handlers.scope_choices([LIGHTHOUSE], [])
    assert "value" not in documents and "value" not in types and LIGHTHOUSE in documents["choices"]


def test_the_ask_api_handler_takes_the_scope_fields(rag, tmp_path) -> None:
    import gradio as gr

    from rag.ui.handlers import Handlers

    handlers = Handlers(rag, reports_dir=tmp_path)
    data = handlers.ask("What did the ferry company's revenue rise to?", type="pdf", folder="reports")
    assert data["scope"] == {"folder": ["reports"], "type": ["pdf"]} and data["citations"][0]["source"] == PDF
    with pytest.raises(gr.Error, match=r"after: not a date \(YYYY-MM-DD\): '2024-13-01'"):
        handlers.ask(KURSK, after="2024-13-01")
    with pytest.raises(gr.Error, match=r"no document in the index matches the scope \(type htm\)"):
        handlers.ask(KURSK, type="htm")


@pytest.mark.slow
def test_the_ask_api_over_http_asks_within_a_scope(corpus_index) -> None:
    """`rag serve` on loopback, called as a client would (gradio_client over HTTP)."""
    from gradio_client import Client
    from gradio_client.exceptions import AppError
    from serving import serving

    _, index_dir = corpus_index
    with serving(index_dir) as (url, _):
        client = Client(url, verbose=False, download_files=False)
        ferry = "What did the ferry company's revenue rise to?"
        data = client.predict(ferry, folder="reports", type=["pdf"], after="2024-01-01", api_name="/ask")
        assert data["scope"] == {"folder": ["reports"], "type": ["pdf"], "after": "2024-01-01"}
        assert not data["abstained"] and {c["source"] for c in data["citations"]} == {PDF}
        refused = client.predict(KURSK, source=[LIGHTHOUSE, "scifact/*"], api_name="/ask")
        assert refused["abstained"] and refused["scope"] == {"source": [LIGHTHOUSE, "scifact/*"]}
        assert client.predict(KURSK, api_name="/ask")["scope"] is None
        with pytest.raises(AppError, match=r"after: not a date \(YYYY-MM-DD\): '2024-13-01'"):
            client.predict(KURSK, after="2024-13-01", api_name="/ask")
        with pytest.raises(AppError, match=r"no document in the index matches the scope \(folder nowhere\)"):
            client.predict(KURSK, folder="nowhere", api_name="/ask")


@pytest.mark.slow
@pytest.mark.browser
def test_the_search_in_picker_in_a_browser(tmp_path, embedder) -> None:
    """Debian's Chromium through Playwright against `rag serve` over the seed article and the
    lighthouse log: picking the log refuses the seed's question, clearing the pick answers it."""
    from serving import CHROMIUM, CHROMIUM_ARGS, browser_missing, serving

    if (reason := browser_missing()) is not None:
        skip_or_fail(reason)
    from playwright.sync_api import expect, sync_playwright

    corpus = tmp_path / "corpus"
    (corpus / "notes").mkdir(parents=True)
    shutil.copy(SEED, corpus / SEED_NAME)
    (corpus / LIGHTHOUSE).write_text(_lighthouse_text(), encoding="utf-8")
    build_index([corpus], index_dir=tmp_path / "index", embedder=embedder)
    with serving(tmp_path / "index") as (url, _), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(60_000)
        page.goto(url, wait_until="domcontentloaded")
        picker = page.locator("#search-in")
        picker.locator("input").click()
        page.get_by_role("option", name=LIGHTHOUSE).click()
        expect(picker).to_contain_text(LIGHTHOUSE)
        page.locator("#question textarea").click()  # closes the list

        def ask(question: str, n: int) -> str:
            page.locator("#question textarea").fill(question)
            page.locator("#question textarea").press("Enter")
            page.wait_for_function(
                """n => document.querySelectorAll('#chat [data-testid="bot"]').length === n
                        && !document.querySelector('#question textarea').value
                        && !/Searching the documents/.test(
                            [...document.querySelectorAll('#chat [data-testid="bot"]')].pop().innerText)""",
                arg=n,
            )
            page.wait_for_timeout(500)  # the last streamed update
            return page.locator('#chat [data-testid="bot"]').last.inner_text()

        assert "8,000" not in ask(KURSK, 1)  # only the lighthouse log is searched: refused
        assert "Marwick" in ask("Who kept the Skerry Point lighthouse?", 2)
        expect(page.locator("#sources")).to_contain_text("lighthouse.md")  # cards show file names
        expect(page.locator("#sources")).not_to_contain_text(SEED_NAME)  # the seed article is not searched
        picker.locator(".remove-all").click()  # the picker's "Clear": every document again
        expect(picker).not_to_contain_text(LIGHTHOUSE)
        assert "8,000" in ask(KURSK, 3)
        browser.close()
