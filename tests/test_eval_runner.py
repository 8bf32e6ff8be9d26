"""The evaluation harness end to end: report files and keys, calibration helpers, expected scores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import need_shared

from eval.calibrate import L2, fit_confidence, provenance, write_fitted
from eval.cli import main as eval_main
from eval.cli import run_conditions
from eval.runner import REPORT_KEYS
from rag.config import FITTED_FILE, RagConfig

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def seed_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("report") / "seed.json"
    code = eval_main(
        [
            "--qa",
            str(ROOT / "eval/data/seed_qa.jsonl"),
            "--docs",
            str(ROOT / "seeds"),
            "--report",
            str(out),
            "--limit",
            "20",
            "--seed",
            "3",
        ]
    )
    assert code == 0
    return json.loads(out.read_text()), out


def test_report_has_exactly_the_contract_keys(seed_report: tuple[dict, Path]) -> None:
    report, out = seed_report
    expected = set(REPORT_KEYS)
    assert expected <= set(report)
    assert set(report) - expected <= {"baseline"}  # the LangChain column, only with --baseline
    assert report["n_questions"] == 20
    assert set(report["retrieval"]) == {"hit@1", "hit@5", "mrr", "evidence_unlocated"}
    assert report["retrieval"]["evidence_unlocated"] == 0  # every seed evidence string is verbatim
    assert {"containment", "f1", "exact_match", "mean_words"} <= set(report["answer"])
    assert set(report["abstention"]) >= {"refused_unanswerable", "answered_answerable", "auroc"}
    assert set(report["latency_ms"]) == {"p50", "p95"}
    assert report["versions"]["dataset_sha256"] and report["versions"]["git_commit"]
    # int8 models run other kernels without int8 dot-product instructions: the report names the CPU
    assert report["versions"]["onnxruntime"][0].isdigit() and report["versions"]["cpu"]
    assert report["versions"]["int8_dot_product"]
    assert len(report["per_question"]) == 20
    assert report["config"]["mode"] == "hybrid"


def test_report_writes_markdown_and_plot(seed_report: tuple[dict, Path]) -> None:
    _, out = seed_report
    md = out.with_suffix(".md").read_text()
    assert "| retrieval | hit@5 |" in md and "The 10 worst questions" in md
    assert "(int8 dot product: " in md
    assert "## Targets" in md and "| retrieval.hit@5 | >= 0.95 |" in md
    png = out.with_suffix(".png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5_000


def test_same_seed_samples_the_same_questions(seed_report: tuple[dict, Path], tmp_path: Path) -> None:
    report, _ = seed_report
    from eval.cli import _parser, load_items

    args = _parser().parse_args(
        ["--qa", str(ROOT / "eval/data/seed_qa.jsonl"), "--docs", str(ROOT / "seeds"), "--limit", "20", "--seed", "3"]
    )
    _, items = load_items(args)
    assert [i.id for i in items] == [q["id"] for q in report["per_question"]]


def test_eval_without_dataset_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert eval_main([]) == 2
    assert "give a dataset" in capsys.readouterr().err


def test_calibrating_on_the_seed_sample_writes_a_file_configs_read(
    seed_report: tuple[dict, Path], tmp_path: Path
) -> None:
    """The real features of 20 seed questions (7 unanswerable), fitted and written to a file of
    its own: a config made from that file answers from the fitted threshold."""
    report, _ = seed_report
    scorer = report["config"]["answer_scorer"]
    other = {"reader": "heuristic", "heuristic": "reader"}[scorer]
    rows = [(q["features"], q["answerable"], "seed") for q in report["per_question"]]
    shipped = FITTED_FILE.read_bytes()
    block, metrics, _ = fit_confidence(rows, scorer=scorer)
    assert metrics["seed"]["auroc"] > 0.7  # in-sample: the fit must order the rows it saw
    block["provenance"] = provenance(
        command="rag eval --calibrate", fit={"l2": L2}, datasets=[{"name": "seed", "split": "all", "rows": len(rows)}]
    )
    out = write_fitted(f"{scorer}_confidence", block, path=tmp_path / "fitted.json")
    config = RagConfig.from_fitted(out).replace(answer_scorer=scorer)
    weights = {"reader": "reader_confidence_weights", "heuristic": "confidence_weights"}
    assert getattr(config, weights[scorer]) == tuple(block["weights"])
    assert config.thresholds() == (block["answer_threshold"], block["tentative_threshold"])
    assert getattr(config, weights[other]) == getattr(RagConfig(), weights[other])  # other blocks kept
    assert FITTED_FILE.read_bytes() == shipped


@pytest.mark.slow
def test_expected_scores_hold_on_the_quick_conditions() -> None:
    """What CI runs as `rag eval --check`: the seed set and a fixed 100-question SQuAD sample."""
    need_shared()
    import yaml

    conditions = yaml.safe_load((ROOT / "eval" / "conditions.yaml").read_text())["conditions"]
    quick = [c for c in conditions if c.get("quick")]
    assert {c["name"] for c in quick} == {"seed", "squad100"}
    assert run_conditions(quick) == []


def test_eval_indexes_html_pdf_and_docx_as_they_are_and_locates_evidence_in_each(
    tmp_path: Path, make_pdf, make_docx, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "fleet.html").write_text(
        "<html><head><title>Ferry fleet</title></head><body>"
        "<nav><a href='/'>Home</a> &raquo; <a href='/fleet'>Fleet</a></nav>"
        "<p>The harbour runs three\n    ferries from the <em>north</em>\n    pier.</p>"
        "<table><tr><th>Ferry</th><th>Cars carried</th></tr><tr><td>Osprey</td><td>88</td></tr>"
        "<tr><td>Gannet</td><td>54</td></tr></table></body></html>",
        encoding="utf-8",
    )
    make_pdf(
        docs / "report.pdf",
        ["The Harbour Authority Annual Report.", "In 2023 the harbour handled 4,217 cargo ships. August was busiest."],
    )
    make_docx(docs / "letter.docx", ["Dear reader,", "The choir gave 27 concerts last winter."])
    rows = [
        (
            "html-text",
            "How many ferries does the harbour run?",
            "three",
            "The harbour runs three ferries from the north pier.",
        ),
        ("html-table", "How many cars does the Gannet ferry carry?", "54", "Ferry: Gannet; Cars carried: 54"),
        (
            "pdf",
            "How many cargo ships did the harbour handle in 2023?",
            "4,217",
            "In 2023 the harbour\nhandled 4,217 cargo ships.",
        ),
        ("docx", "How many concerts did the choir give last winter?", "27", "The choir gave 27 concerts last winter."),
        ("lost", "What colour is the lighthouse?", "red", "The lighthouse is painted red."),
    ]
    qa = tmp_path / "qa.jsonl"
    qa.write_text(
        "".join(json.dumps({"id": i, "question": q, "answers": [a], "evidence": [e]}) + "\n" for i, q, a, e in rows),
        encoding="utf-8",
    )
    out = tmp_path / "report.json"

    assert eval_main(["--qa", str(qa), "--docs", str(docs), "--report", str(out)]) == 0

    report = json.loads(out.read_text())
    per = {q["id"]: q for q in report["per_question"]}
    for qid, source in (
        ("html-text", "fleet.html"),
        ("html-table", "fleet.html"),
        ("pdf", "report.pdf"),
        ("docx", "letter.docx"),
    ):
        # The original files were indexed (a PDF written out as text would be unreadable), the
        # evidence was found in the text each was read as, and the answer came from it.
        assert per[qid]["evidence_unlocated"] == [], qid
        assert per[qid]["hit@5"] == 1.0 and per[qid]["retrieved"][0]["source"] == source, qid
        assert per[qid]["containment"] == 1.0, (qid, per[qid]["candidate"])
    assert per["lost"]["evidence_unlocated"] == ["The lighthouse is painted red."]
    assert report["retrieval"]["evidence_unlocated"] == 1
    assert (
        "evidence of question lost not found in the documents: 'The lighthouse is painted red.'"
        in capsys.readouterr().err
    )
    assert "lost" in out.with_suffix(".md").read_text()


def test_eval_names_a_folder_without_readable_documents(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "tool.exe").write_bytes(b"MZ")
    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps({"id": "q", "question": "Why?", "answers": [], "evidence": []}) + "\n", encoding="utf-8")

    assert eval_main(["--qa", str(qa), "--docs", str(tmp_path / "docs")]) == 2
    assert "no readable documents under" in capsys.readouterr().err


def test_the_reader_flags_set_their_config_fields() -> None:
    from eval.cli import _parser, _run_settings

    args = _parser().parse_args(
        [
            "--qa",
            "q.jsonl",
            "--no-sentence-fusion",
            "--no-rerank-fusion",
            "--reader-sentences",
            "6",
            "--rerank-depth",
            "4",
            "--reader-tokens",
            "80",
            "--no-claim-checker",
        ]
    )
    config = RagConfig(**_run_settings(args))
    assert config.claim_checker is False
    assert (
        config.sentence_fusion,
        config.rerank_fusion,
        config.reader_sentences,
        config.rerank_depth,
        config.reader_tokens,
    ) == (False, False, 6, 4, 80)
    defaults = RagConfig(**_run_settings(_parser().parse_args(["--qa", "q.jsonl"])))
    assert (defaults.sentence_fusion, defaults.reader_sentences, defaults.claim_checker) == (
        RagConfig().sentence_fusion,
        RagConfig().reader_sentences,
        True,
    )
