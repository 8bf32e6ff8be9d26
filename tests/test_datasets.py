"""Dataset adapters: hand-made fixtures in tmp_path, then the real shared datasets."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from conftest import need_shared

from eval.datasets import (
    NEWS_VALIDATION_FROM,
    QAItem,
    load_beir,
    load_clapnq,
    load_qa_dataset,
    load_qa_jsonl,
    load_realtimeqa,
    load_squad,
    sample_items,
    split_items,
    write_documents,
)


@pytest.fixture(scope="module")
def shared() -> Path:
    """The shared datasets folder; absent is a skip locally and a failure in CI."""
    return need_shared()


def _items(n_answerable: int, n_unanswerable: int) -> list[QAItem]:
    return [QAItem(f"a{i}", f"question a{i}?", (f"answer {i}",), (f"evidence {i}",)) for i in range(n_answerable)] + [
        QAItem(f"u{i}", f"question u{i}?", (), ()) for i in range(n_unanswerable)
    ]


def _write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


# --- our JSONL --------------------------------------------------------------------------------


def test_load_qa_jsonl_reads_rows_and_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "qa.jsonl"
    path.write_text(
        json.dumps(
            {"id": "q1", "question": " Where is Paris? ", "answers": ["France"], "evidence": ["Paris is in France."]}
        )
        + "\n\n"
        + json.dumps({"id": "q2", "question": "Who won in 2050?", "answers": [], "evidence": []})
        + "\n",
        encoding="utf-8",
    )
    items = load_qa_jsonl(path)
    assert items == [
        QAItem("q1", "Where is Paris?", ("France",), ("Paris is in France.",)),
        QAItem("q2", "Who won in 2050?", (), ()),
    ]
    assert [item.answerable for item in items] == [True, False]


@pytest.mark.parametrize(
    ("bad_line", "problem"),
    [
        ('{"id": "q2", "question": "Why?", "answers": []', "not valid JSON"),
        ('["q2", "Why?"]', "expected a JSON object"),
        ('{"id": "q2", "question": "Why?", "answers": []}', "missing key(s) evidence"),
        ('{"id": "q2", "question": "Why?", "answers": "yes", "evidence": []}', "'answers' must be a list"),
        ('{"id": "", "question": "Why?", "answers": [], "evidence": []}', "'id' must be a non-empty string"),
        ('{"id": "q2", "question": "Why?", "answer": [], "answers": [], "evidence": []}', "unknown key(s) answer"),
        ('{"id": "q1", "question": "Why?", "answers": [], "evidence": []}', "duplicate id 'q1' (first on line 1)"),
    ],
)
def test_load_qa_jsonl_names_file_and_line_of_a_malformed_row(tmp_path: Path, bad_line: str, problem: str) -> None:
    path = tmp_path / "qa.jsonl"
    good = json.dumps({"id": "q1", "question": "Where?", "answers": ["here"], "evidence": ["here"]})
    path.write_text(f"{good}\n{good.replace('q1', 'q0')}\n{bad_line}\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 3") as info:
        load_qa_jsonl(path)
    assert str(path) in str(info.value)
    assert problem in str(info.value)


def test_load_qa_jsonl_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        load_qa_jsonl(tmp_path / "nope.jsonl")


def test_load_qa_dataset_reads_documents_and_hashes_both(tmp_path: Path) -> None:
    (tmp_path / "docs" / "sub").mkdir(parents=True)
    (tmp_path / "docs" / "a.txt").write_text("Paris is in France.", encoding="utf-8")
    (tmp_path / "docs" / "sub" / "b.md").write_text("Rome is in Italy.", encoding="utf-8")
    (tmp_path / "docs" / "skip.bin").write_bytes(b"\0")
    qa = _write_jsonl(
        tmp_path / "seed_qa.jsonl",
        [{"id": "q1", "question": "Where is Rome?", "answers": ["Italy"], "evidence": ["Rome is in Italy."]}],
    )
    dataset = load_qa_dataset(qa, tmp_path / "docs")
    assert dataset.name == "seed_qa"
    assert dataset.documents == {"a.txt": "Paris is in France.", "sub/b.md": "Rome is in Italy."}
    assert dataset.folder == tmp_path / "docs"
    assert dataset.skipped == ("skip.bin: unsupported file type '.bin'; supported: .txt .md .html .htm .pdf .docx",)
    before = dataset.source_hash
    (tmp_path / "docs" / "a.txt").write_text("Paris is in France!", encoding="utf-8")
    assert load_qa_dataset(qa, tmp_path / "docs").source_hash != before


def test_load_qa_dataset_reads_every_format_rag_index_reads(tmp_path: Path, make_pdf, make_docx) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "page.html").write_text(
        "<html><body><nav><a href='/'>Home</a></nav><p>The ferry leaves at\n<b>seven</b>.</p></body></html>",
        encoding="utf-8",
    )
    make_pdf(docs / "report.pdf", ["The orchard harvested 9,310 apples."])
    make_docx(docs / "letter.docx", ["The choir gave 27 concerts."])
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    qa = _write_jsonl(tmp_path / "qa.jsonl", [{"id": "q", "question": "When?", "answers": [], "evidence": []}])

    dataset = load_qa_dataset(qa, docs)

    assert dataset.documents["page.html"] == "The ferry leaves at seven."  # as shown: no menu, no source line break
    assert "9,310 apples" in dataset.documents["report.pdf"]
    assert dataset.documents["letter.docx"] == "The choir gave 27 concerts."
    assert [line.split(":")[0] for line in dataset.skipped] == ["broken.pdf"]


def test_load_qa_dataset_without_a_readable_document_names_the_folder(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "empty.txt").write_text("", encoding="utf-8")
    qa = _write_jsonl(tmp_path / "qa.jsonl", [{"id": "q", "question": "When?", "answers": [], "evidence": []}])

    with pytest.raises(ValueError, match=r"no readable documents under .*docs \(supported: \.txt"):
        load_qa_dataset(qa, tmp_path / "docs")


# --- SQuAD ------------------------------------------------------------------------------------

SQUAD_FIXTURE = {
    "version": "v2.0",
    "data": [
        {
            "title": "Paris/France: a city?",
            "paragraphs": [
                {
                    "context": "Paris is the capital of France.",
                    "qas": [
                        {
                            "id": "s1",
                            "question": "What is the capital of France? ",
                            "is_impossible": False,
                            "answers": [
                                {"text": "Paris", "answer_start": 0},
                                {"text": "Paris", "answer_start": 0},
                                {"text": "Paris is", "answer_start": 0},
                            ],
                        },
                        {
                            "id": "s2",
                            "question": "What is the capital of Mars?",
                            "is_impossible": True,
                            "answers": [],
                            "plausible_answers": [{"text": "Paris", "answer_start": 0}],
                        },
                    ],
                },
                {
                    "context": "It lies on the Seine.",
                    "qas": [
                        {
                            "id": "s3",
                            "question": "Which river?",
                            "is_impossible": False,
                            "answers": [{"text": "the Seine", "answer_start": 12}],
                        }
                    ],
                },
            ],
        },
        {"title": "Rome", "paragraphs": [{"context": "Rome is in Italy.", "qas": []}]},
    ],
}


def test_load_squad_fixture(tmp_path: Path) -> None:
    path = tmp_path / "tiny-squad" / "dev.json"
    path.parent.mkdir()
    path.write_text(json.dumps(SQUAD_FIXTURE), encoding="utf-8")
    dataset = load_squad(path)
    assert dataset.name == "tiny-squad"
    assert dataset.documents == {
        "Paris_France_a_city.txt": "Paris is the capital of France.\n\nIt lies on the Seine.",
        "Rome.txt": "Rome is in Italy.",
    }
    assert dataset.items == [
        QAItem("s1", "What is the capital of France?", ("Paris", "Paris is"), ("Paris is the capital of France.",)),
        QAItem("s2", "What is the capital of Mars?", (), ()),
        QAItem("s3", "Which river?", ("the Seine",), ("It lies on the Seine.",)),
    ]
    assert dataset.source_hash == hashlib.sha256(path.read_bytes()).hexdigest()


def test_load_squad_rejects_a_file_without_articles(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"version": "v2.0"}', encoding="utf-8")
    with pytest.raises(ValueError, match="bad.json.*'data' list"):
        load_squad(path)


def test_load_squad_names_a_malformed_question(tmp_path: Path) -> None:
    broken = json.loads(json.dumps(SQUAD_FIXTURE))
    del broken["data"][0]["paragraphs"][0]["qas"][0]["question"]
    path = _write_jsonl(tmp_path / "bad.json", [broken])
    with pytest.raises(ValueError, match="Paris/France.*malformed question"):
        load_squad(path)


# --- ClapNQ -----------------------------------------------------------------------------------


def _clapnq_row(qid: str, title: str, sentences: list[str], answer: str, selected: list[object]) -> dict:
    return {
        "id": qid,
        "input": f"question {qid}",
        "passages": [{"title": title, "text": " ".join(sentences) + " ", "sentences": sentences}],
        "output": [{"answer": answer, "selected_sentences": selected, "meta": {}}],
    }


def test_load_clapnq_fixture(tmp_path: Path) -> None:
    shared_sentences = ["Bread rises because of yeast .", "Ovens are hot ."]
    _write_jsonl(
        tmp_path / "clapnq_dev_answerable.jsonl",
        [
            _clapnq_row("1", "Bread", shared_sentences, "Yeast makes it rise.", ["Bread rises because of yeast ."]),
            _clapnq_row("2", "Bread", shared_sentences, "Ovens are hot.", [1]),  # an index, as the spec says
            _clapnq_row("3", "Cats: A/B", ["Cats purr ."], "They purr.", []),  # no sentence -> whole passage
        ],
    )
    _write_jsonl(
        tmp_path / "clapnq_dev_unanswerable.jsonl",
        [
            _clapnq_row("4", "Dogs", ["Dogs bark ."], "", []),
        ],
    )
    dataset = load_clapnq(tmp_path)
    assert dataset.name == tmp_path.name
    assert len(dataset.documents) == 3  # the shared passage is stored once
    names = sorted(dataset.documents)
    assert names[0].startswith("Bread_") and names[1].startswith("Cats_A_B_") and names[2].startswith("Dogs_")
    assert all(len(name.rsplit("_", 1)[1]) == len("12345678.txt") for name in names)
    by_id = {item.id: item for item in dataset.items}
    assert by_id["1"] == QAItem("1", "question 1", ("Yeast makes it rise.",), ("Bread rises because of yeast .",))
    assert by_id["2"].evidence == ("Ovens are hot .",)
    assert by_id["3"].evidence == ("Cats purr .",)
    assert by_id["4"] == QAItem("4", "question 4", (), ())
    assert "Dogs bark . " in dataset.documents.values()  # unanswerable rows keep their passage


def test_load_clapnq_rejects_evidence_outside_the_passage(tmp_path: Path) -> None:
    _write_jsonl(
        tmp_path / "clapnq_dev_answerable.jsonl",
        [_clapnq_row("1", "Bread", ["Bread rises ."], "It rises.", ["Cakes rise ."])],
    )
    with pytest.raises(ValueError, match="line 1: evidence sentence is not in the passage"):
        load_clapnq(tmp_path)


def test_load_clapnq_missing_folder_or_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no-such-dir"):
        load_clapnq(tmp_path / "no-such-dir")
    with pytest.raises(FileNotFoundError, match="no ClapNQ files"):
        load_clapnq(tmp_path)


# --- BEIR -------------------------------------------------------------------------------------


def _write_beir(root: Path, qrels: str) -> Path:
    (root / "qrels").mkdir(parents=True)
    _write_jsonl(
        root / "corpus.jsonl", [{"_id": "d1", "title": "T1", "text": "one"}, {"_id": "d2", "title": "", "text": "two"}]
    )
    _write_jsonl(root / "queries.jsonl", [{"_id": "q1", "text": "first"}, {"_id": "q2", "text": "second"}])
    (root / "qrels" / "test.tsv").write_text(qrels, encoding="utf-8")
    return root


def test_load_beir_fixture_keeps_only_judged_queries(tmp_path: Path) -> None:
    dataset = load_beir(_write_beir(tmp_path / "tiny", "query-id\tcorpus-id\tscore\nq2\td1\t1\nq2\td2\t2\n"))
    assert dataset.name == "tiny"
    assert dataset.corpus == {"d1": ("T1", "one"), "d2": ("", "two")}
    assert dataset.queries == {"q2": "second"}
    assert dataset.qrels == {"q2": {"d1": 1, "d2": 2}}
    assert len(dataset.source_hash) == 64


def test_load_beir_rejects_judgements_of_unknown_ids(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="judged documents missing.*d9"):
        load_beir(_write_beir(tmp_path / "a", "query-id\tcorpus-id\tscore\nq1\td9\t1\n"))
    with pytest.raises(ValueError, match="judged queries missing.*q9"):
        load_beir(_write_beir(tmp_path / "b", "query-id\tcorpus-id\tscore\nq9\td1\t1\n"))
    with pytest.raises(ValueError, match="line 2: score must be an integer"):
        load_beir(_write_beir(tmp_path / "c", "query-id\tcorpus-id\tscore\nq1\td1\thigh\n"))


# --- RealTime QA ------------------------------------------------------------------------------


def _rtqa_row(qid: str, date: str, answer: str, evidence: str, results: list[tuple[str, str]]) -> dict:
    return {
        "id": qid,
        "date": date,
        "source": "CNN",
        "question": f" question {qid}? ",
        "answers": [answer],
        "choices": [answer, "other"],
        "evidence": evidence,
        "evidence_has_answer": False,
        "search_results": [{"title": t, "text": x, "has_answer": False} for t, x in results],
    }


RTQA_ROWS = [
    # Before the validation weeks: a reader trains on it, so neither its question nor its passages appear.
    _rtqa_row("20230630_0", "2023/06/30", "Barbie", "Barbie premiered in June.", []),
    # In the window; the quoted answer occurs unquoted (any case) in its evidence and a search result.
    _rtqa_row(
        "20230804_0",
        "2023/08/04",
        "“Barbie”",
        "The film Barbie opened this week. Critics liked it.",
        [
            ("Box office", "Last weekend BARBIE led the box office. Others trailed."),
            ("Empty", "  "),
            ("Weather", "Rain is expected on Friday."),
        ],
    ),
    # The last answerable day; its answer is nowhere, so it is no item, but its passages are indexed
    # (the search result repeats one of the row above and is stored once).
    _rtqa_row(
        "20231031_0",
        "2023/10/31",
        "Oslo",
        "Ministers met in Bergen on Tuesday.",
        [("Weather", "Rain is expected on Friday.")],
    ),
    # Later news: unanswerable, unless its (quoted) answer happens to be in a document.
    _rtqa_row("20231110_0", "2023/11/10", "‘Tuesday’", "The vote is on Tuesday.", [("Vote", "Tuesday vote.")]),
]


def test_load_realtimeqa_selects_validation_weeks(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "qa.jsonl", RTQA_ROWS)
    dataset = load_realtimeqa(path)
    assert dataset.name == "realtimeqa-news"
    assert dataset.source_hash == hashlib.sha256(path.read_bytes()).hexdigest()
    assert dataset.documents == {
        "20230804_0-evidence.txt": "The film Barbie opened this week. Critics liked it.",
        "20230804_0-result-1.txt": "Box office\n\nLast weekend BARBIE led the box office. Others trailed.",
        "20230804_0-result-3.txt": "Weather\n\nRain is expected on Friday.",
        "20231031_0-evidence.txt": "Ministers met in Bergen on Tuesday.",
    }
    # "Tuesday" (the later row's answer, unquoted) is in a document: that row might be answered, so it is left out.
    assert dataset.items == [
        QAItem(
            "rtqa-20230804_0",
            "question 20230804_0?",
            ("“Barbie”", "Barbie"),
            ("The film Barbie opened this week.", "Last weekend BARBIE led the box office."),
        ),
    ]

    # One day earlier, the 2023/10/31 row is later news: its passages leave the index, so both
    # later rows become unanswerable items (their answers are in no document).
    dataset = load_realtimeqa(path, answerable_until="2023/10/30", name="news")
    assert dataset.name == "news"
    assert sorted(dataset.documents) == [
        "20230804_0-evidence.txt",
        "20230804_0-result-1.txt",
        "20230804_0-result-3.txt",
    ]
    assert [(item.id, item.answers, item.evidence) for item in dataset.items] == [
        (
            "rtqa-20230804_0",
            ("“Barbie”", "Barbie"),
            ("The film Barbie opened this week.", "Last weekend BARBIE led the box office."),
        ),
        ("rtqa-20231031_0", (), ()),
        ("rtqa-20231110_0", (), ()),
    ]


def test_load_realtimeqa_coincidence_needs_whole_words_and_repeats_are_one_question(tmp_path: Path) -> None:
    rows = [
        _rtqa_row("20230804_0", "2023/08/04", "Ford", "Stanford and Oxford met.", []),
        _rtqa_row("20231110_0", "2023/11/10", "Ford", "Ford said no.", []),
        _rtqa_row("20231110_1", "2023/11/10", "met", "Nothing.", []),
    ]
    path = _write_jsonl(tmp_path / "qa.jsonl", rows + rows[:1])  # the first row published twice
    dataset = load_realtimeqa(path)
    # "Ford" occurs only inside "Stanford": answerable for its own row (substring), not a
    # coincidence for the later one; "met" is a whole word there, so that later row is left out.
    assert [(item.id, item.evidence) for item in dataset.items] == [
        ("rtqa-20230804_0", ("Stanford and Oxford met.",)),
        ("rtqa-20231110_0", ()),
    ]


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        ({"date": "2023-08-04"}, "line 2: 'date' must be a date written YYYY/MM/DD, got '2023-08-04'"),
        ({"date": "2023/02/30"}, "line 2: 'date' must be a date written YYYY/MM/DD"),
        ({"answers": []}, "line 2: 'answers' must be a non-empty list"),
        ({"question": None}, "line 2: 'question' must be a non-empty string"),
        ({"question": "another question?"}, "line 2: duplicate id '20230804_0' (first on line 1)"),
    ],
)
def test_load_realtimeqa_names_file_and_line_of_a_malformed_row(tmp_path: Path, bad: dict, problem: str) -> None:
    row = _rtqa_row("20230804_0", "2023/08/04", "Barbie", "Barbie opened.", [])
    path = _write_jsonl(tmp_path / "qa.jsonl", [row, {**row, **bad}])
    with pytest.raises(ValueError) as info:
        load_realtimeqa(path)
    assert str(path) in str(info.value) and problem in str(info.value)


def test_load_realtimeqa_reads_other_weeks_between_start_and_end(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "qa.jsonl", RTQA_ROWS)
    # Training weeks only: the June row answers itself; rows after `end` are not read at all.
    dataset = load_realtimeqa(path, start="2023/06/01", answerable_until="2023/07/31", end="2023/08/31")
    assert sorted(dataset.documents) == ["20230630_0-evidence.txt"]
    assert [(item.id, item.answerable) for item in dataset.items] == [("rtqa-20230630_0", True)]
    with pytest.raises(ValueError, match="answerable_until must not be before start"):
        load_realtimeqa(path, start="2023/06/01", answerable_until="2023/05/31")
    with pytest.raises(ValueError, match="end must not be before answerable_until"):
        load_realtimeqa(path, start="2023/06/01", answerable_until="2023/07/31", end="2023/07/01")


def test_load_realtimeqa_rejects_a_bad_answerable_until_and_a_missing_file(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "qa.jsonl", RTQA_ROWS)
    for bad in ("2023-10-31", "2023/13/01", "2023/9/1", ""):
        with pytest.raises(ValueError, match=f"answerable_until must be a date written YYYY/MM/DD, got '{bad}'"):
            load_realtimeqa(path, answerable_until=bad)
    with pytest.raises(ValueError, match="answerable_until must not be before NEWS_VALIDATION_FROM"):
        load_realtimeqa(path, answerable_until="2023/06/30")
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        load_realtimeqa(tmp_path / "nope.jsonl")


# --- split and sample -------------------------------------------------------------------------


def test_split_is_deterministic_disjoint_complete_and_order_independent() -> None:
    items = _items(60, 40)
    calibration, report = split_items(items)
    assert {i.id for i in calibration}.isdisjoint({i.id for i in report})
    assert {i.id for i in calibration} | {i.id for i in report} == {i.id for i in items}
    assert sum(not i.answerable for i in calibration) == sum(not i.answerable for i in report) == 20
    again = split_items(list(reversed(items)))
    assert {i.id for i in again[0]} == {i.id for i in calibration}
    assert [i.id for i in calibration] == sorted((i.id for i in calibration), key=[i.id for i in items].index)
    other_salt = split_items(items, salt="another")
    assert {i.id for i in other_salt[0]} != {i.id for i in calibration}


def test_split_share_and_validation() -> None:
    calibration, report = split_items(_items(10, 10), calibration_share=0.3)
    assert (len(calibration), len(report)) == (6, 14)
    with pytest.raises(ValueError, match="calibration_share must be within \\[0, 1\\], got 1.5"):
        split_items(_items(2, 2), calibration_share=1.5)
    with pytest.raises(ValueError, match="duplicate item id 'a0'"):
        split_items(_items(1, 0) * 2)


def test_sample_is_reproducible_stratified_and_order_independent() -> None:
    items = _items(60, 40)
    sample = sample_items(items, limit=10, seed=7, unanswerable_share=0.4)
    assert len(sample) == 10 and sum(not i.answerable for i in sample) == 4
    assert sample == sample_items(items, limit=10, seed=7, unanswerable_share=0.4)
    assert {i.id for i in sample} == {i.id for i in sample_items(items[::-1], limit=10, seed=7, unanswerable_share=0.4)}
    assert {i.id for i in sample} != {i.id for i in sample_items(items, limit=10, seed=8, unanswerable_share=0.4)}
    plain = sample_items(items, limit=10, seed=7)
    assert len(plain) == 10 and plain == sample_items(items, limit=10, seed=7)
    assert sample_items(items, limit=500, seed=7) == items


def test_sample_validation() -> None:
    with pytest.raises(ValueError, match="limit must be an integer >= 1, got 0"):
        sample_items(_items(3, 3), limit=0, seed=0)
    with pytest.raises(ValueError, match="need 4 unanswerable items .* only 3 available"):
        sample_items(_items(10, 3), limit=10, seed=0, unanswerable_share=0.4)
    with pytest.raises(ValueError, match="unanswerable_share must be within \\[0, 1\\], got -0.1"):
        sample_items(_items(3, 3), limit=2, seed=0, unanswerable_share=-0.1)


# --- write_documents --------------------------------------------------------------------------


def test_write_documents_round_trips_text_exactly(tmp_path: Path) -> None:
    documents = {"a.txt": "line one\r\nline two\n", "sub/b.txt": "café – ünïcode"}
    paths = write_documents(documents, tmp_path / "out")
    assert paths == [(tmp_path / "out" / "a.txt").resolve(), (tmp_path / "out" / "sub" / "b.txt").resolve()]
    assert [p.read_bytes().decode("utf-8") for p in paths] == list(documents.values())


@pytest.mark.parametrize("name", ["../x.txt", "sub/../../x.txt", "/etc/x.txt", "", "."])
def test_write_documents_refuses_names_outside_the_folder(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="outside"):
        write_documents({"ok.txt": "fine", name: "escape"}, tmp_path / "out")
    assert not (tmp_path / "x.txt").exists()
    assert not (tmp_path / "out" / "ok.txt").exists()  # nothing is written when one name is bad


# --- the real shared datasets -----------------------------------------------------------------


def _assert_evidence_is_verbatim(dataset_items: list[QAItem], documents: dict[str, str]) -> None:
    texts = list(documents.values())
    missing = [
        (item.id, evidence[:60])
        for item in dataset_items
        for evidence in item.evidence
        if not any(evidence in text for text in texts)
    ]
    assert missing == []


def test_real_squad(shared: Path) -> None:
    dataset = load_squad(shared / "squad2-dev" / "dev-v2.0.json")
    assert dataset.name == "squad2-dev"
    assert len(dataset.documents) == 16 and "Normans.txt" in dataset.documents
    assert len(dataset.items) == 6078
    assert sum(not item.answerable for item in dataset.items) == 3168
    assert all(bool(item.evidence) == item.answerable for item in dataset.items)
    _assert_evidence_is_verbatim(dataset.items, dataset.documents)
    assert dataset.source_hash == hashlib.sha256((shared / "squad2-dev" / "dev-v2.0.json").read_bytes()).hexdigest()


def test_real_clapnq(shared: Path) -> None:
    dataset = load_clapnq(shared / "clapnq-dev")
    assert dataset.name == "clapnq-dev"
    assert len(dataset.items) == 600
    assert sum(item.answerable for item in dataset.items) == 300
    assert all(bool(item.evidence) == item.answerable for item in dataset.items)
    assert len(dataset.documents) == 597  # three passages serve two questions each
    _assert_evidence_is_verbatim(dataset.items, dataset.documents)


def _unquoted(answer: str) -> str:
    text = answer.strip()
    while len(text) >= 2 and text[0] in "\"'“”‘’" and text[-1] in "\"'“”‘’":
        text = text[1:-1].strip()
    return text


def test_real_realtimeqa(shared: Path) -> None:
    path = shared / "realtimeqa-2022-2023" / "qa.jsonl"
    dataset = load_realtimeqa(path)
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    dates: dict[str, set[str]] = {}
    for row in rows:
        dates.setdefault(row["id"], set()).add(row["date"])
    answerable = [item for item in dataset.items if item.answerable]
    unanswerable = [item for item in dataset.items if not item.answerable]
    assert (len(dataset.documents), len(answerable), len(unanswerable)) == (1180, 223, 119)
    assert len(answerable) > 100 and len(unanswerable) > 100
    # Nothing a reader was trained on: every question and every passage is from the validation weeks.
    assert all(min(dates[item.id.removeprefix("rtqa-")]) >= NEWS_VALIDATION_FROM for item in dataset.items)
    assert all(NEWS_VALIDATION_FROM <= min(dates[name.split("-")[0]]) <= "2023/10/31" for name in dataset.documents)
    assert all(min(dates[item.id.removeprefix("rtqa-")]) > "2023/10/31" for item in unanswerable)
    _assert_evidence_is_verbatim(answerable, dataset.documents)
    assert all(1 <= len(item.evidence) <= 3 for item in answerable)
    assert all(
        any(answer.lower() in evidence.lower() for answer in item.answers)
        for item in answerable
        for evidence in item.evidence
    )
    # An unanswerable question's answer is in no document, not even by coincidence.
    lowered = [text.lower() for text in dataset.documents.values()]
    answers_of = {f"rtqa-{row['id']}": row["answers"] for row in rows}
    coincidences = []
    for item in unanswerable:
        for answer in {form for a in answers_of[item.id] for form in (a.strip(), _unquoted(a))}:
            pattern = re.compile(r"\s+".join(map(re.escape, answer.lower().split())) + r"(?!\w)")
            if any(_whole_word_match(pattern, text) for text in lowered):
                coincidences.append((item.id, answer))
    assert coincidences == []


def _whole_word_match(pattern: re.Pattern[str], text: str) -> bool:
    """A match of `pattern` not preceded by a word character (a leading look-behind in the pattern
    would make the search ten times slower: it starts with a literal, so it can skip ahead)."""
    match = pattern.search(text)
    while match:
        if not re.match(r"\w", text[match.start() - 1 : match.start()]):
            return True
        match = pattern.search(text, match.start() + 1)
    return False


def test_real_scifact(shared: Path) -> None:
    dataset = load_beir(shared / "scifact")
    assert len(dataset.corpus) == 5183
    assert len(dataset.queries) == 300 and set(dataset.queries) == set(dataset.qrels)
    assert sum(len(judged) for judged in dataset.qrels.values()) == 339


def test_real_split_and_sample(shared: Path) -> None:
    items = load_squad(shared / "squad2-dev" / "dev-v2.0.json").items
    calibration, report = split_items(items)
    assert {i.id for i in calibration}.isdisjoint({i.id for i in report})
    assert len(calibration) + len(report) == len(items)
    assert split_items(items) == (calibration, report)
    sample = sample_items(items, limit=1000, seed=13, unanswerable_share=0.4)
    assert sum(item.answerable for item in sample) == 600
    assert sample == sample_items(items, limit=1000, seed=13, unanswerable_share=0.4)
