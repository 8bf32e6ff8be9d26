"""Dataset adapters: standard formats (SQuAD v2, ClapNQ, RealTime QA, BEIR, our JSONL) into plain records.

Every loader reads files as they are published and returns frozen records; nothing is copied
or rewritten. `source_hash` lets a report name exactly which bytes were evaluated: for one file
it is the file's sha256 (what `sha256sum` prints); for several files it is the sha256 of the
lines `"<file sha256>  <name relative to the dataset folder>\\n"` sorted by name.

Calibration and reporting never share rows: `split_items` divides a dataset once, thresholds
are chosen on the calibration rows only, and the report rows are the only ones reported.
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import json
import math
import os
import random
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.chunk import split_sentences
from rag.load import SUPPORTED_SUFFIXES, Skipped, find_files, load_documents

# The shared benchmark datasets live beside the checkout (../shared/datasets); RAG_SHARED_DATASETS
# points the harness, the benchmarks and the tests elsewhere.
SHARED_DATASETS = Path(
    os.environ.get("RAG_SHARED_DATASETS") or Path(__file__).resolve().parents[2] / "shared" / "datasets"
)
SPLIT_SALT = "rag-eval-v1"
CLAPNQ_FILES = ("clapnq_dev_answerable.jsonl", "clapnq_dev_unanswerable.jsonl")
_QA_JSONL_KEYS = ("id", "question", "answers", "evidence")
# RealTime QA: a reader is trained on the rows dated before this day; rows from it on are the
# validation weeks (never trained on), the only ones `load_realtimeqa` reads.
NEWS_VALIDATION_FROM = "2023/07/01"
# Training weeks (before NEWS_VALIDATION_FROM) that calibrate the heuristic's confidence on news:
# (start, answerable_until, end) for `load_realtimeqa`.
NEWS_CALIBRATION = ("2022/11/01", "2023/01/31", "2023/03/31")
_NEWS_DATE = re.compile(r"\d{4}/\d{2}/\d{2}")
_QUOTES = "\"'“”‘’«»„‟‹›"


@dataclass(frozen=True)
class QAItem:
    """One question with its reference answers and supporting evidence.

    `answers` empty means the question cannot be answered from the documents (the system
    should abstain). `evidence` holds verbatim substrings of a document that support the answer.

    Example:
        >>> QAItem("q1", "Where is Normandy?", ("France",), ("Normandy is in France.",)).answerable
        True
    """

    id: str
    question: str
    answers: tuple[str, ...]
    evidence: tuple[str, ...]

    @property
    def answerable(self) -> bool:
        return bool(self.answers)


@dataclass(frozen=True)
class QADataset:
    """Documents to index plus the questions asked about them.

    `documents` maps a relative file name (e.g. "Normans.txt") to the document's full text: the
    text `rag.load` reads from the file, which evidence is located in and citations point into.
    `folder`, when set, is where those files are: the evaluation indexes them as they are (a
    dataset without one has its texts written out as files first). `skipped` lists the files
    under `folder` that could not be read, as "name: reason".

    Example:
        >>> ds = QADataset("tiny", {"a.txt": "Paris is in France."}, [], source_hash="0" * 64)
        >>> sorted(ds.documents)
        ['a.txt']
    """

    name: str
    documents: dict[str, str]
    items: list[QAItem]
    source_hash: str
    folder: Path | None = None
    skipped: tuple[str, ...] = ()


@dataclass(frozen=True)
class BeirDataset:
    """A BEIR retrieval benchmark: corpus (id -> (title, text)), queries and graded qrels.

    Example:
        >>> ds = BeirDataset("tiny", {"d1": ("T", "text")}, {"q1": "claim"}, {"q1": {"d1": 1}}, "0" * 64)
        >>> ds.qrels["q1"]["d1"]
        1
    """

    name: str
    corpus: dict[str, tuple[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    source_hash: str


# --- our own JSONL ----------------------------------------------------------------------------


def load_qa_jsonl(path: str | Path) -> list[QAItem]:
    """Read our QA format: one JSON object per line with exactly the keys
    `id`, `question`, `answers` (list of strings, empty = unanswerable) and `evidence`
    (list of strings). Blank lines are skipped; ids must be unique.

    Raises FileNotFoundError for a missing file and ValueError naming the file, the line
    number and the problem for a malformed line.

    Example:
        >>> items = load_qa_jsonl("eval/data/seed_qa.jsonl")  # doctest: +SKIP
        >>> items[0].question  # doctest: +SKIP
        'How many North Korean soldiers arrived in Kursk?'
    """
    path = _existing_file(path)
    items: list[QAItem] = []
    seen: dict[str, int] = {}
    for line_no, where, row in _json_lines(path):
        if not isinstance(row, dict):
            raise ValueError(f"{where}: expected a JSON object, got {type(row).__name__}")
        missing = [key for key in _QA_JSONL_KEYS if key not in row]
        if missing:
            raise ValueError(f"{where}: missing key(s) {', '.join(missing)}")
        unknown = sorted(set(row) - set(_QA_JSONL_KEYS))
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)} (expected {', '.join(_QA_JSONL_KEYS)})")
        for key in ("id", "question"):
            if not isinstance(row[key], str) or not row[key].strip():
                raise ValueError(f"{where}: {key!r} must be a non-empty string, got {row[key]!r}")
        for key in ("answers", "evidence"):
            value = row[key]
            if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
                raise ValueError(f"{where}: {key!r} must be a list of non-empty strings, got {value!r}")
        item_id = row["id"]
        if item_id in seen:
            raise ValueError(f"{where}: duplicate id {item_id!r} (first on line {seen[item_id]})")
        seen[item_id] = line_no
        items.append(QAItem(item_id, row["question"].strip(), tuple(row["answers"]), tuple(row["evidence"])))
    return items


def load_qa_dataset(path: str | Path, documents_dir: str | Path, *, name: str | None = None) -> QADataset:
    """Our JSONL questions (see `load_qa_jsonl`) plus every file under `documents_dir` that
    `rag index` reads (txt, md, html, pdf, docx; `rag.load.find_files` and `load_documents`), as
    the documents: names relative to that folder with forward slashes, texts as the loader reads
    them. Files it cannot read are listed in `skipped`; ValueError when none can be read.

    `name` defaults to the JSONL file's stem.

    Example:
        >>> ds = load_qa_dataset("eval/data/seed_qa.jsonl", "seeds")  # doctest: +SKIP
        >>> ds.name  # doctest: +SKIP
        'seed_qa'
    """
    path = _existing_file(path)
    folder = _existing_dir(documents_dir)
    files, skipped = find_files([folder])
    documents: dict[str, str] = {}
    for loaded in load_documents(files):
        if isinstance(loaded, Skipped):
            skipped.append(loaded)
        else:
            documents[loaded.source] = loaded.text
    if not documents:
        raise ValueError(f"no readable documents under {folder} (supported: {' '.join(SUPPORTED_SUFFIXES)})")
    items = load_qa_jsonl(path)
    hashed = {source: file for file, source in files if source in documents}
    hashed[f"../{path.name}"] = path  # the questions file counts too; '..' keeps the names apart
    reasons = tuple(f"{s.source}: {s.reason}" for s in skipped)
    return QADataset(name or path.stem, documents, items, _hash_files(hashed), folder=folder, skipped=reasons)


# --- SQuAD v2 ---------------------------------------------------------------------------------


def load_squad(path: str | Path, *, name: str | None = None) -> QADataset:
    """Read a SQuAD (v2 or v1.1) JSON file.

    One document per article: file name from the title made filesystem-safe plus `.txt`, text =
    the article's paragraph contexts joined by a blank line. Answers are the distinct answer
    texts in annotation order (empty for `is_impossible`); evidence is the paragraph context that
    holds the answer, or () for unanswerable questions. Questions are stripped of surrounding
    whitespace. `name` defaults to the file's folder name (e.g. "squad2-dev").

    Example:
        >>> ds = load_squad("../shared/datasets/squad2-dev/dev-v2.0.json")  # doctest: +SKIP
        >>> len(ds.documents), len(ds.items)  # doctest: +SKIP
        (16, 6078)
    """
    path = _existing_file(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    articles = data.get("data") if isinstance(data, dict) else None
    if not isinstance(articles, list):
        raise ValueError(f"{path}: expected a SQuAD object with a 'data' list of articles")
    documents: dict[str, str] = {}
    items: list[QAItem] = []
    seen_ids: set[str] = set()
    for a_no, article in enumerate(articles):
        try:
            title = article["title"]
            paragraphs = article["paragraphs"]
            contexts = [paragraph["context"] for paragraph in paragraphs]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{path}: article {a_no} lacks {exc} (needs title, paragraphs[].context)") from None
        file_name = _unique_name(_safe_stem(title), documents, contexts)
        documents[file_name] = "\n\n".join(contexts)
        for paragraph in paragraphs:
            for qa in paragraph.get("qas", []):
                item = _squad_item(qa, paragraph["context"], where=f"{path}: article {title!r}")
                if item.id in seen_ids:
                    raise ValueError(f"{path}: duplicate question id {item.id!r}")
                seen_ids.add(item.id)
                items.append(item)
    return QADataset(name or path.parent.name, documents, items, _hash_files({path.name: path}))


def _squad_item(qa: Any, context: str, *, where: str) -> QAItem:
    try:
        qid, question, answers = str(qa["id"]), qa["question"].strip(), qa["answers"]
        impossible = bool(qa.get("is_impossible", not answers))
        texts = () if impossible else tuple(dict.fromkeys(a["text"] for a in answers))
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(
            f"{where}: malformed question {qa!r:.120} ({type(exc).__name__}: {exc}); needs id, question, answers[].text"
        ) from None
    if not impossible and not texts:
        raise ValueError(f"{where}: question {qid!r} is answerable but has no answers")
    return QAItem(qid, question, texts, (context,) if texts else ())


# --- ClapNQ -----------------------------------------------------------------------------------


def load_clapnq(directory: str | Path, *, name: str | None = None) -> QADataset:
    """Read ClapNQ JSONL files (`clapnq_dev_answerable.jsonl`, `clapnq_dev_unanswerable.jsonl`).

    Documents are the gold passages, one file per distinct passage text named
    `<safe title>_<8 hex of the text's sha256>.txt`; the text is the passage text exactly as
    published (the title lives only in the file name) so evidence sentences are verbatim
    substrings. Answers are `(output[0].answer,)` when non-empty, else (). Evidence is the
    selected sentences of `output[0]` (strings, or indices into the passage's `sentences`),
    or the whole passage text when an answerable row selects none. Unanswerable rows keep their
    passage among the documents: a near-miss passage is what makes them hard.
    `name` defaults to the folder name (e.g. "clapnq-dev").

    Example:
        >>> ds = load_clapnq("../shared/datasets/clapnq-dev")  # doctest: +SKIP
        >>> sum(item.answerable for item in ds.items)  # doctest: +SKIP
        300
    """
    folder = _existing_dir(directory)
    files = [folder / f for f in CLAPNQ_FILES if (folder / f).is_file()]
    if not files:
        raise FileNotFoundError(f"no ClapNQ files ({', '.join(CLAPNQ_FILES)}) in {folder}")
    documents: dict[str, str] = {}
    name_of_text: dict[str, str] = {}
    items: list[QAItem] = []
    seen_ids: set[str] = set()
    for path in files:
        for _, where, row in _json_lines(path):
            item, passages = _clapnq_item(row, where=where)
            if item.id in seen_ids:
                raise ValueError(f"{where}: duplicate id {item.id!r}")
            seen_ids.add(item.id)
            for title, text in passages:
                if text not in name_of_text:
                    file_name = f"{_safe_stem(title)}_{hashlib.sha256(text.encode()).hexdigest()[:8]}.txt"
                    if file_name in documents:  # same title and hash prefix, different text
                        raise ValueError(f"{where}: passage file name {file_name!r} collides")
                    name_of_text[text] = file_name
                    documents[file_name] = text
            items.append(item)
    return QADataset(name or folder.name, documents, items, _hash_files({p.name: p for p in files}))


def _clapnq_item(row: Any, *, where: str) -> tuple[QAItem, list[tuple[str, str]]]:
    try:
        qid, question, passages = str(row["id"]), row["input"].strip(), row["passages"]
        texts = [(p["title"], p["text"]) for p in passages]
        first = row["output"][0] if row["output"] else {}
        answer = (first.get("answer") or "").strip()
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(
            f"{where}: malformed row ({type(exc).__name__}: {exc}); needs id, input, "
            "passages[].title/text, output[].answer"
        ) from None
    if not texts:
        raise ValueError(f"{where}: row {qid!r} has no passages")
    if not answer:
        return QAItem(qid, question, (), ()), texts
    passage = passages[0]
    evidence: list[str] = []
    for selected in first.get("selected_sentences") or []:
        if isinstance(selected, int):  # the format documents indices; the dev files hold texts
            sentences = passage.get("sentences") or []
            if not 0 <= selected < len(sentences):
                raise ValueError(
                    f"{where}: selected sentence index {selected} out of range (passage has {len(sentences)} sentences)"
                )
            selected = sentences[selected]
        sentence = str(selected).strip()
        if not any(sentence in text for _, text in texts):
            raise ValueError(f"{where}: evidence sentence is not in the passage: {sentence[:80]!r}")
        evidence.append(sentence)
    if not evidence:
        evidence.append(passage["text"].strip())
    return QAItem(qid, question, (answer,), tuple(dict.fromkeys(evidence))), texts


# --- RealTime QA ------------------------------------------------------------------------------


def load_realtimeqa(
    path: str | Path,
    *,
    answerable_until: str = "2023/10/31",
    name: str | None = None,
    start: str = NEWS_VALIDATION_FROM,
    end: str | None = None,
) -> QADataset:
    """Read RealTime QA news questions (one JSON object per line: `id`, `date` "YYYY/MM/DD",
    `question`, `answers`, `evidence`, `search_results[].title/text`) as a news QA set.

    Only the validation weeks are read: rows dated from `NEWS_VALIDATION_FROM` on (the rows
    before it train a reader and never appear here). Rows dated up to `answerable_until`
    (inclusive) supply the documents: the evidence passage, named `<id>-evidence.txt`, and each
    search result as `<title>\\n\\n<text>`, named `<id>-result-<k>.txt` (k counts from 1 in
    the published order); empty texts and texts already indexed are skipped, and texts are kept
    exactly as published so evidence is verbatim.

    Answerable items are the rows of that window whose answer (any of `answers`, or the same
    stripped of surrounding curly or straight quotes) occurs, case-insensitively, in one of the
    row's own documents; `answers` holds the published and the unquoted forms, `evidence` the
    sentence holding the answer (per `rag.chunk.split_sentences`) from each such document, up
    to 3. Window rows whose answer occurs in none of their documents are left out.
    Unanswerable items are the rows dated after `answerable_until`: questions about later news
    than any document, answers () and evidence (); a row is left out when its answer occurs as
    a whole word sequence (case-insensitive) in any document, since it might then be answered.
    Item ids are "rtqa-" + row id; a row repeated with the same id, date, question and answers
    is one question (the copy with the most search results is used). `name` defaults to
    "realtimeqa-news".

    On the shared 2022-2023 file (defaults): 1,180 documents, 223 answerable items (of the 390
    questions dated 2023/07/01 to 2023/10/31; 400 rows, ten of them repeats) and 119 unanswerable
    items (of the 210 dated from 2023/11/01: 91 have an answer like "Ohio" or "Taylor Swift" that
    some document happens to hold). Loading takes about 2 s.

    `start` and `end` choose other weeks the same way (rows outside [start, end] are not read):
    the calibration of the heuristic's confidence reads training weeks this way
    (`NEWS_CALIBRATION`), never the validation weeks.

    Raises FileNotFoundError for a missing file and ValueError naming the file and line for a
    malformed row (bad date, missing field, one id on two different questions), or for an
    `answerable_until` that is not a YYYY/MM/DD date on or after `NEWS_VALIDATION_FROM`.

    Example:
        >>> ds = load_realtimeqa("../shared/datasets/realtimeqa-2022-2023/qa.jsonl")  # doctest: +SKIP
        >>> ds.items[0].id  # doctest: +SKIP
        'rtqa-20230707_0'
    """
    path = _existing_file(path)
    first_day, until, last_day = _news_window(start, answerable_until, end)
    rows = _realtimeqa_rows(path, first_day=first_day, last_day=last_day)
    window = [row for row in rows if row["date"] <= until]
    later = [row for row in rows if row["date"] > until]
    documents, texts_of_row = _news_documents(window)
    items = _answerable_news_items(window, texts_of_row) + _unanswerable_news_items(later, documents)
    return QADataset(name or "realtimeqa-news", documents, items, _hash_files({path.name: path}))


def _news_window(start: str, answerable_until: str, end: str | None) -> tuple[str, str, str | None]:
    """`load_realtimeqa`'s days checked: (first day read, last answerable day, last day read or None)."""
    until = _news_date(answerable_until, what="answerable_until")
    first_day = _news_date(start, what="start")
    last_day = _news_date(end, what="end") if end is not None else None
    if until < first_day:
        what = f"NEWS_VALIDATION_FROM ({NEWS_VALIDATION_FROM})" if start == NEWS_VALIDATION_FROM else f"start ({start})"
        raise ValueError(f"answerable_until must not be before {what}, got {answerable_until!r}")
    if last_day is not None and last_day < until:
        raise ValueError(f"end must not be before answerable_until ({answerable_until}), got {end!r}")
    return first_day, until, last_day


def _realtimeqa_rows(path: Path, *, first_day: str, last_day: str | None) -> list[dict[str, Any]]:
    """The rows of `path` dated in [first_day, last_day] (no end when None), in file order; of a row
    repeated with the same id, date, question and answers, the copy with the most search results."""
    rows: dict[str, tuple[int, dict[str, Any]]] = {}
    for line_no, where, raw in _json_lines(path):
        row = _realtimeqa_row(raw, where=where)
        if row["date"] < first_day or (last_day is not None and row["date"] > last_day):
            continue
        if row["id"] in rows:
            first_line, first = rows[row["id"]]
            if any(first[key] != row[key] for key in ("date", "question", "answers")):
                raise ValueError(
                    f"{where}: duplicate id {row['id']!r} (first on line {first_line}) "
                    "with a different date, question or answers"
                )
            if len(row["results"]) <= len(first["results"]):
                continue
        rows[row["id"]] = (line_no, row)
    return [row for _, row in rows.values()]


def _news_documents(rows: list[dict[str, Any]]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """The documents of `rows` (file name -> text: each row's evidence and search results, empty
    and repeated texts skipped) and, per row id, the distinct texts of its own documents."""
    documents: dict[str, str] = {}
    name_of_text: dict[str, str] = {}
    texts_of_row: dict[str, list[str]] = {}
    for row in rows:
        stem = _safe_stem(row["id"])
        candidates = [(f"{stem}-evidence", row["evidence"])]
        candidates += [
            (f"{stem}-result-{k}", f"{title}\n\n{text}" if title.strip() else text)
            for k, (title, text) in enumerate(row["results"], start=1)
            if text.strip()
        ]
        own: list[str] = []
        for doc_stem, text in candidates:
            if not text.strip():
                continue
            if text not in name_of_text:
                file_name = _unique_name(doc_stem, documents, [text])
                name_of_text[text] = file_name
                documents[file_name] = text
            own.append(text)
        texts_of_row[row["id"]] = list(dict.fromkeys(own))
    return documents, texts_of_row


def _answerable_news_items(rows: list[dict[str, Any]], texts_of_row: dict[str, list[str]]) -> list[QAItem]:
    """An item per row whose answer one of its own documents holds, with up to 3 evidence sentences."""
    items: list[QAItem] = []
    for row in rows:
        evidence = [
            sentence
            for text in texts_of_row[row["id"]]
            if (sentence := _sentence_with(row["answers"], text)) is not None
        ]
        if evidence:
            items.append(
                QAItem(f"rtqa-{row['id']}", row["question"], row["answers"], tuple(dict.fromkeys(evidence))[:3])
            )
    return items


def _unanswerable_news_items(rows: list[dict[str, Any]], documents: dict[str, str]) -> list[QAItem]:
    """An unanswerable item per row whose answer no document holds as a whole word sequence."""
    corpus = "\n\n".join(documents.values()).lower()
    return [
        QAItem(f"rtqa-{row['id']}", row["question"], (), ())
        for row in rows
        if not any(_occurs_as_words(answer, corpus) for answer in row["answers"])
    ]


def _realtimeqa_row(row: Any, *, where: str) -> dict[str, Any]:
    try:
        qid, date, question = row["id"], row["date"], row["question"]
        answers, evidence = row["answers"], row.get("evidence") or ""
        results = [(r.get("title") or "", r.get("text") or "") for r in row.get("search_results") or []]
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(
            f"{where}: malformed row ({type(exc).__name__}: {exc}); needs id, date, question, "
            "answers, evidence, search_results[].title/text"
        ) from None
    for key, value in (("id", qid), ("question", question)):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{where}: {key!r} must be a non-empty string, got {value!r}")
    if not isinstance(answers, list) or not answers or not all(isinstance(a, str) and a.strip() for a in answers):
        raise ValueError(f"{where}: 'answers' must be a non-empty list of non-empty strings, got {answers!r}")
    if not isinstance(evidence, str) or not all(isinstance(t, str) for result in results for t in result):
        raise ValueError(f"{where}: 'evidence' and search_results[].title/text must be strings")
    forms = [form for answer in answers for form in (answer.strip(), _unquote(answer))]
    return {
        "id": qid.strip(),
        "date": _news_date(date, what=f"{where}: 'date'"),
        "question": question.strip(),
        "answers": tuple(dict.fromkeys(form for form in forms if form)),
        "evidence": evidence,
        "results": results,
    }


def _news_date(value: Any, *, what: str) -> str:
    """`value` if it is a real date written YYYY/MM/DD (zero-padded, so dates compare as strings)."""
    try:
        if isinstance(value, str) and _NEWS_DATE.fullmatch(value):
            datetime.datetime.strptime(value, "%Y/%m/%d")
            return value
    except ValueError:
        pass
    raise ValueError(f"{what} must be a date written YYYY/MM/DD, got {value!r}")


def _unquote(answer: str) -> str:
    """The answer without the quotes around it: '“Barbie”' -> 'Barbie' (inner quotes stay)."""
    text = answer.strip()
    while len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
        text = text[1:-1].strip()
    return text


def _sentence_with(answers: Iterable[str], text: str) -> str | None:
    """The sentence(s) of `text` around the first case-insensitive occurrence of any answer,
    preferring whole-word occurrences ("Ford" in "Ford said", not in "Stanford")."""
    found: list[re.Match[str]] = []
    for template in (r"(?<!\w){}(?!\w)", "{}"):
        found = [m for answer in answers if (m := re.search(template.format(re.escape(answer)), text, re.IGNORECASE))]
        if found:
            break
    if not found:
        return None
    first = min(found, key=lambda m: (m.start(), -m.end()))
    start, end = first.span()
    covering = [(a, b) for a, b in split_sentences(text) if a < end and b > start]
    if covering:
        start, end = min(start, covering[0][0]), max(end, covering[-1][1])
    return text[start:end]


def _occurs_as_words(answer: str, lowered: str) -> bool:
    """Whether `answer` occurs in the lower-cased text `lowered` as a whole word sequence (any
    run of whitespace between its words, no letter or digit right before or after)."""
    # No look-behind in the pattern: starting with a literal lets the search skip ahead quickly.
    pattern = re.compile(r"\s+".join(re.escape(word) for word in answer.lower().split()) + r"(?!\w)")
    match = pattern.search(lowered)
    while match:
        if not re.match(r"\w", lowered[match.start() - 1 : match.start()]):
            return True
        match = pattern.search(lowered, match.start() + 1)
    return False


# --- BEIR -------------------------------------------------------------------------------------


def load_beir(directory: str | Path, *, name: str | None = None) -> BeirDataset:
    """Read a BEIR folder: `corpus.jsonl` (`_id`, `title`, `text`), `queries.jsonl` (`_id`, `text`)
    and `qrels/test.tsv` (header `query-id corpus-id score`). Only the test qrels are read and
    queries are restricted to those judged there. `name` defaults to the folder name.

    Raises ValueError when a judgement names a query or document that does not exist.

    Example:
        >>> ds = load_beir("../shared/datasets/scifact")  # doctest: +SKIP
        >>> len(ds.corpus), len(ds.queries)  # doctest: +SKIP
        (5183, 300)
    """
    folder = _existing_dir(directory)
    corpus_path = _existing_file(folder / "corpus.jsonl")
    queries_path = _existing_file(folder / "queries.jsonl")
    qrels_path = _existing_file(folder / "qrels" / "test.tsv")
    corpus = {row["_id"]: (row.get("title") or "", row["text"]) for row in _jsonl_rows(corpus_path, ("_id", "text"))}
    all_queries = {row["_id"]: row["text"] for row in _jsonl_rows(queries_path, ("_id", "text"))}
    qrels = _read_qrels(qrels_path)
    missing_queries = sorted(set(qrels) - set(all_queries))
    if missing_queries:
        raise ValueError(
            f"{qrels_path}: judged queries missing from {queries_path.name}: {', '.join(missing_queries[:10])}"
        )
    missing_docs = sorted({d for judged in qrels.values() for d in judged} - set(corpus))
    if missing_docs:
        raise ValueError(
            f"{qrels_path}: judged documents missing from {corpus_path.name}: {', '.join(missing_docs[:10])}"
        )
    queries = {qid: all_queries[qid] for qid in all_queries if qid in qrels}
    paths = {"corpus.jsonl": corpus_path, "queries.jsonl": queries_path, "qrels/test.tsv": qrels_path}
    return BeirDataset(name or folder.name, corpus, queries, qrels, _hash_files(paths))


def _json_lines(path: Path) -> Iterator[tuple[int, str, Any]]:
    """(line number, "PATH, line N" for messages, parsed value) for each non-blank line."""
    for line_no, line in _numbered_lines(path):
        where = f"{path}, line {line_no}"
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        yield line_no, where, value


def _jsonl_rows(path: Path, required: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    for line_no, line in _numbered_lines(path):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}, line {line_no}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict) or any(not isinstance(row.get(k), str) for k in required):
            raise ValueError(f"{path}, line {line_no}: needs string field(s) {', '.join(required)}")
        yield row


def _read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t")
        for line_no, row in enumerate(reader, start=1):
            if not row or (line_no == 1 and row[:1] == ["query-id"]):
                continue
            if len(row) != 3:
                raise ValueError(f"{path}, line {line_no}: expected 3 tab-separated columns, got {row!r}")
            query_id, doc_id, score = row
            try:
                qrels.setdefault(query_id, {})[doc_id] = int(score)
            except ValueError:
                raise ValueError(f"{path}, line {line_no}: score must be an integer, got {score!r}") from None
    return qrels


# --- splitting and sampling -------------------------------------------------------------------


def split_items(
    items: Iterable[QAItem], *, calibration_share: float = 0.5, salt: str = SPLIT_SALT
) -> tuple[list[QAItem], list[QAItem]]:
    """Split items into (calibration, report) rows, deterministically.

    Calibration rows are used to choose thresholds (e.g. the abstention threshold); report rows
    are the only ones whose scores are reported, so a reported score never saw its own tuning.
    Within the answerable and the unanswerable items separately, items are ranked by
    sha256(salt + id) and the first round(share * n) go to calibration: the split depends only
    on the set of ids and the salt (not on input order or run), and the answerable/unanswerable
    mix of each side matches the whole. Both lists keep the input order.

    Example:
        >>> items = [QAItem(str(i), "q?", ("a",) if i % 2 else (), ()) for i in range(12)]
        >>> calibration, report = split_items(items)
        >>> len(calibration), len(report)
        (6, 6)
    """
    if not 0.0 <= calibration_share <= 1.0:
        raise ValueError(f"calibration_share must be within [0, 1], got {calibration_share}")
    items = list(items)
    _check_unique_ids(items)
    calibration_ids: set[str] = set()
    for answerable in (True, False):
        stratum = sorted(
            (item.id for item in items if item.answerable == answerable),
            key=lambda item_id: hashlib.sha256((salt + item_id).encode()).hexdigest(),
        )
        calibration_ids.update(stratum[: math.floor(calibration_share * len(stratum) + 0.5)])
    return (
        [item for item in items if item.id in calibration_ids],
        [item for item in items if item.id not in calibration_ids],
    )


def sample_items(
    items: Iterable[QAItem], *, limit: int, seed: int, unanswerable_share: float | None = None
) -> list[QAItem]:
    """A reproducible sample of at most `limit` items, drawn with `random.Random(seed)`.

    Items are ordered by id before drawing, so the sample depends only on the set of items and
    the seed. With `unanswerable_share`, the sample is stratified: round(limit * share)
    unanswerable items and the rest answerable (ValueError if either group is too small).
    Without it, `limit` is a cap: fewer items than `limit` are all returned. The sample keeps
    the input order.

    Example:
        >>> items = [QAItem(str(i), "q?", ("a",) if i < 6 else (), ()) for i in range(10)]
        >>> sample = sample_items(items, limit=5, seed=0, unanswerable_share=0.4)
        >>> sum(not item.answerable for item in sample)
        2
    """
    if not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be an integer >= 1, got {limit!r}")
    items = list(items)
    _check_unique_ids(items)
    rng = random.Random(seed)
    by_id = sorted(items, key=lambda item: item.id)
    if unanswerable_share is None:
        chosen = rng.sample(by_id, min(limit, len(by_id)))
    else:
        if not 0.0 <= unanswerable_share <= 1.0:
            raise ValueError(f"unanswerable_share must be within [0, 1], got {unanswerable_share}")
        n_unanswerable = math.floor(limit * unanswerable_share + 0.5)
        wanted = {False: n_unanswerable, True: limit - n_unanswerable}
        chosen = []
        for answerable in (True, False):
            stratum = [item for item in by_id if item.answerable == answerable]
            if len(stratum) < wanted[answerable]:
                kind = "answerable" if answerable else "unanswerable"
                raise ValueError(
                    f"need {wanted[answerable]} {kind} items for limit={limit} and "
                    f"unanswerable_share={unanswerable_share}, only {len(stratum)} available"
                )
            chosen.extend(rng.sample(stratum, wanted[answerable]))
    chosen_ids = {item.id for item in chosen}
    return [item for item in items if item.id in chosen_ids]


# --- writing documents ------------------------------------------------------------------------


def write_documents(documents: dict[str, str], folder: str | Path) -> list[Path]:
    """Write each document as a UTF-8 file `folder/<name>` (sub-folders created as needed),
    text byte-for-byte (no newline translation, so offsets stay valid). Returns the paths in the
    order of `documents`. Every name is checked before anything is written: absolute names and
    names that would land outside `folder` (e.g. "../x.txt") raise ValueError.

    Example:
        >>> write_documents({"a.txt": "Paris is in France."}, "/tmp/docs")  # doctest: +SKIP
        [PosixPath('/tmp/docs/a.txt')]
    """
    root = Path(folder).resolve()
    targets: list[tuple[Path, str]] = []
    for doc_name, text in documents.items():
        relative = Path(doc_name)
        target = (root / relative).resolve()
        if (
            not doc_name
            or relative.is_absolute()
            or ".." in relative.parts
            or target == root
            or not target.is_relative_to(root)
        ):
            raise ValueError(f"document name {doc_name!r} would be written outside {root}")
        targets.append((target, text))
    written = []
    for target, text in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        written.append(target)
    return written


# --- helpers ----------------------------------------------------------------------------------


def _existing_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"dataset file not found: {path}")
    return path


def _existing_dir(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {path}")
    return path


def _numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if line.strip():
                yield line_no, line


def _hash_files(paths: dict[str, Path]) -> str:
    digests = {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in paths.items()}
    if len(digests) == 1:
        return next(iter(digests.values()))
    manifest = "".join(f"{digests[name]}  {name}\n" for name in sorted(digests))
    return hashlib.sha256(manifest.encode("utf-8")).hexdigest()


def _safe_stem(title: str, max_chars: int = 80) -> str:
    """ASCII letters, digits, '.', '_' and '-' only; never empty, never a dot-file."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii")
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", ascii_title).strip("._-")[:max_chars].rstrip("._-")
    return stem or "untitled"


def _unique_name(stem: str, taken: dict[str, str], contents: list[str]) -> str:
    file_name = f"{stem}.txt"
    if file_name in taken:  # two titles that differ only in unsafe characters
        digest = hashlib.sha256("\n\n".join(contents).encode()).hexdigest()[:8]
        file_name = f"{stem}_{digest}.txt"
    return file_name


def _check_unique_ids(items: list[QAItem]) -> None:
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise ValueError(f"duplicate item id {item.id!r}")
        seen.add(item.id)
