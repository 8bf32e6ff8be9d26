"""The trained claim checker: shipped with the package, offline, deterministic; on the seed article it
tells a true claim from the same words in a wrong relation; the verifier uses it; its training
command runs end to end on a tiny sample, never on rows that are reported, and its ONNX file
agrees with the torch model."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import need_shared

from rag.checker import CHECKER_DIR, checked_text, combine, load_checker, quote_in_context
from rag.reader import ONNX_FILE, Candidate
from rag.types import Chunk, Hit

ROOT = Path(__file__).resolve().parents[1]
# int8 weights against the float32 torch model: logits within this (the reader's tolerance).
ONNX_TOLERANCE = 0.35
CAMPBELL = Candidate(
    "",
    "This follows a meeting where Kurt Campbell, the Deputy Secretary of State, Daniel J. Kritenbrink, the senior "
    "official for Asian affairs, and James O'Brien, the senior official for European affairs, engaged in discussions "
    "with Chinese diplomats for several hours at Ambassador Shi Feng's residence in Washington.",
    "",
)


def test_the_checker_ships_as_package_data_with_a_card() -> None:
    model = CHECKER_DIR / ONNX_FILE
    assert model.is_file() and model.stat().st_size <= 25 * 2**20
    card = (CHECKER_DIR / "README.md").read_text()
    for heading in ("Training data", "Command", "Metrics", "Limits"):
        assert heading in card
    meta = json.loads((CHECKER_DIR / "reader.json").read_text())
    assert meta["base_model"].startswith("sentence-transformers") and "sick" not in meta["settings"]["sources"]


def test_the_checker_loads_offline_in_a_fresh_process_without_torch() -> None:
    code = (
        "import sys; from rag.checker import load_checker; from rag.reader import Candidate; "
        "z = load_checker().pair_logits([('Ann won.', Candidate('', 'Ann won the race.', ''))]); "
        "print(float(z[0])); print('torch' in sys.modules)"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    logit, torch_loaded = done.stdout.split()
    assert np.isfinite(float(logit)) and torch_loaded == "False"


def test_a_true_claim_outscores_the_same_words_in_a_wrong_relation() -> None:
    checker = load_checker()
    pairs = [
        ("Kurt Campbell is the Deputy Secretary of State.", CAMPBELL),
        ("Daniel J. Kritenbrink is the Deputy Secretary of State.", CAMPBELL),
        (checked_text("Kurt Campbell", "Who is the Deputy Secretary of State?"), CAMPBELL),
        (checked_text("James O'Brien", "Who is the Deputy Secretary of State?"), CAMPBELL),
    ]
    logits = checker.pair_logits(pairs)
    again = checker.pair_logits(list(reversed(pairs)))[::-1]
    np.testing.assert_allclose(logits, again, atol=1e-5)  # deterministic, order-free
    assert logits[0] > 0 > logits[1]  # who holds the office
    assert logits[2] > 0 and logits[2] > logits[3]  # the answer, against another name of its sentence


def test_the_quote_is_read_with_its_neighbours_from_the_chunk() -> None:
    text = "First one. Second one. Third one."
    chunk = Chunk(0, "a.txt", 100, 100 + len(text), text, None, ((100, 110), (111, 122), (123, 133)))
    hit = Hit(chunk, 0.0)
    assert quote_in_context(hit, 111, 122) == Candidate("First one.", "Second one.", "Third one.")
    assert quote_in_context(hit, 100, 122) == Candidate("", "First one. Second one.", "Third one.")
    assert quote_in_context(hit, 123, 133) == Candidate("Second one.", "Third one.", "")


def test_combine_reads_the_support_as_a_logit_and_names_bad_weights() -> None:
    assert combine(0.5, (0.0, 0.0), (0.0, 1.0, 1.0, 1.0)) == 0.5
    low, high = combine(0.9, (-8.0, 0.0), (0.0, 1.0, 1.0, 0.0)), combine(0.9, (8.0, 0.0), (0.0, 1.0, 1.0, 0.0))
    assert low < 0.01 < 0.99 < high
    assert combine(0.5, (0.0, 3.0), (0.0, 1.0, 0.0, 1.0)) > 0.95  # the reader's logit counts for fragments
    assert combine(1.0, (0.0, 0.0), (0.0, 1.0, 0.0, 0.0)) > 0.99  # a certain support does not overflow
    with pytest.raises(ValueError, match="4 values"):
        combine(0.5, (0.0, 0.0), (1.0, 1.0))


def test_a_fragment_is_read_in_the_sentence_that_holds_it() -> None:
    from rag.checker import ABSENT_LOGIT, fragment_logit
    from rag.reader import Reader

    text = (
        "Blinken said up to 8,000 North Korean soldiers have arrived in Kursk. "
        "A representative from Pyongyang called it an unfounded rumour."
    )
    first, second = (0, text.index(" A ")), (text.index(" A ") + 1, len(text))
    hit = Hit(Chunk(0, "a.txt", 0, len(text), text, None, (first, second)), 0.0)
    question, reader = "How many North Korean soldiers have arrived in Kursk?", Reader.load()
    right, wrong = fragment_logit(question, "8,000", hit, reader), fragment_logit(question, "Pyongyang", hit, reader)
    assert right > 0 > wrong > ABSENT_LOGIT
    assert fragment_logit(question, "Seoul", hit, reader) == ABSENT_LOGIT


def test_data_changes_one_fact_and_keeps_the_claim_otherwise() -> None:
    from eval.train_checker import statement_groups

    text = (
        "The council met in Leeds on Monday. Mayor Ann Lee thanked Tom Ward for the 2019 report on housing. "
        "The vote was held in 2021 and the plan passed."
    )
    groups = statement_groups("g", text, ["Paris", "1999"], random.Random(3), per_passage=2, max_negatives=5)
    assert groups
    for group in groups:
        gold, *negatives = group
        assert gold.label == 1.0 and gold.source == "statement-gold" and negatives
        assert all(n.label == 0.0 for n in negatives)
        for n in negatives:
            kind = n.source.removeprefix("statement-")
            if kind == "other_sentence":
                assert n.question == gold.question and n.sentence != gold.sentence
            else:
                assert n.question != gold.question and n.sentence == gold.sentence
            if kind == "in_passage":  # every word still in the passage
                assert all(w.strip(".,") in text for w in n.question.split())


@pytest.mark.slow
def test_training_never_reads_a_reported_row_and_runs_end_to_end(tmp_path: Path) -> None:
    need_shared()
    from eval.datasets import SHARED_DATASETS
    from eval.train_checker import build_data, held_out_ids, main

    held = held_out_ids(SHARED_DATASETS)
    train, _ = build_data(SHARED_DATASETS, seed=0, max_negatives=3, limit=None, sources=("clapnq", "squad"))
    ids = {g[0].group.split("@")[0].rstrip("+") for g in train}
    assert held["squad"] and held["clapnq"] and not ids & (held["squad"] | held["clapnq"])

    out, work = tmp_path / "model", tmp_path / "work"
    argv = ["--limit", "3", "--batch-size", "16", "--out", str(out), "--work-dir", str(work)]
    assert main(argv) == 0
    assert (out / ONNX_FILE).is_file() and (out / "tokenizer.json").is_file() and (out / "README.md").is_file()
    log = [json.loads(line) for line in (work / "training_log.jsonl").read_text().splitlines()]
    assert log[0]["event"] == "data" and log[-1]["event"] == "exported"
    epoch = next(e for e in log if e["event"] == "epoch")
    assert np.isfinite(epoch["loss"]) and "statement" in epoch["validation"]
    assert json.loads((out / "reader.json").read_text())["onnx_vs_torch"]["max_abs_logit_diff"] <= ONNX_TOLERANCE


def test_training_refuses_bad_settings(tmp_path: Path) -> None:
    from eval.train_checker import main

    assert main(["--sources", "news,wiki", "--out", str(tmp_path), "--work-dir", str(tmp_path)]) == 2
    assert main(["--max-negatives", "0", "--out", str(tmp_path), "--work-dir", str(tmp_path)]) == 2
    assert main(["--shared", str(tmp_path / "nowhere"), "--out", str(tmp_path), "--work-dir", str(tmp_path)]) == 2
