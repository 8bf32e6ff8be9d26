"""The trained reader: shipped with the package, offline, deterministic, right on the seed article;
its training command end to end on a tiny sample; the ONNX file agrees with the torch model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import need_shared

from rag.config import RagConfig
from rag.reader import MODEL_DIR, ONNX_FILE, Candidate, Reader, ReaderUnavailable, assemble, encode_candidates

ROOT = Path(__file__).resolve().parents[1]
# int8 weights against the float32 torch model: logits within this (measured 0.05-0.1 on 64 pairs).
ONNX_TOLERANCE = 0.35


@pytest.fixture(scope="module")
def reader() -> Reader:
    return Reader.load()


def test_the_reader_ships_as_package_data_with_a_card() -> None:
    model = MODEL_DIR / ONNX_FILE
    assert model.is_file() and model.stat().st_size <= 25 * 2**20
    card = (MODEL_DIR / "README.md").read_text()
    for heading in ("Training data", "Command", "Metrics"):
        assert heading in card
    assert json.loads((MODEL_DIR / "reader.json").read_text())["base_model"].startswith("sentence-transformers")


def test_the_reader_loads_offline_in_a_fresh_process_without_torch() -> None:
    code = (
        "import sys; from rag.reader import Reader, Candidate; r = Reader.load(); "
        "p = r.score('Who won?', [Candidate('', 'Ann won the race.', '')]); "
        "print(float(p[0])); print('torch' in sys.modules)"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    prob, torch_loaded = done.stdout.split()
    assert 0.0 <= float(prob) <= 1.0
    assert torch_loaded == "False"


def test_scores_are_deterministic_and_in_order(reader: Reader) -> None:
    candidates = [
        Candidate("", "The meeting was held in Seoul.", "It lasted two hours."),
        Candidate("The meeting was held in Seoul.", "It lasted two hours.", ""),
    ]
    first = reader.score("How long did the meeting last?", candidates)
    again = reader.score("How long did the meeting last?", list(reversed(candidates)))
    assert first.shape == (2,)
    np.testing.assert_allclose(first, again[::-1], atol=1e-6)


def test_on_the_seed_article_it_ranks_the_sentence_holding_the_answer_first(reader: Reader, seed_path: Path) -> None:
    """All sentences of the article are read for each answerable question of our seed set; the best
    one holds the evidence or an answer for 0.68 of them (the shipped model, measured)."""
    from rag.chunk import split_sentences

    text = seed_path.read_text(encoding="utf-8")
    sentences = [text[a:b] for a, b in split_sentences(text)]
    candidates = [
        Candidate(sentences[k - 1] if k else "", s, sentences[k + 1] if k + 1 < len(sentences) else "")
        for k, s in enumerate(sentences)
    ]
    rows = [json.loads(line) for line in (ROOT / "eval" / "data" / "seed_qa.jsonl").read_text().splitlines()]
    right = []
    for row in (r for r in rows if r["answers"]):
        best = sentences[int(np.argmax(reader.score(row["question"], candidates)))]
        right.append(
            any(e in best or best in e for e in row["evidence"])
            or any(a.lower() in best.lower() for a in row["answers"])
        )
    assert len(right) == 50 and sum(right) / len(right) >= 0.62
    kurt = reader.score("Who is Kurt Campbell?", candidates)
    assert "Kurt Campbell, the Deputy Secretary of State" in sentences[int(np.argmax(kurt))]


def test_a_shorter_input_cuts_the_context_not_the_candidate(reader: Reader) -> None:
    """`max_tokens` (config `reader_tokens`) trims the neighbours first: the candidate and the
    question stay whole, so the answer sentence still wins; the full length is the reader's own."""
    context = " ".join(f"Filler sentence number {k} says nothing at all about the race." for k in range(12))
    candidates = [Candidate(context, "Ann won the race in Oslo.", context), Candidate(context, "It rained.", context)]
    full = reader.logits("Who won the race?", candidates)
    short = reader.logits("Who won the race?", candidates, max_tokens=48)
    assert np.argmax(short) == np.argmax(full) == 0
    assert not np.allclose(short, full)  # the context read is not the same
    np.testing.assert_allclose(reader.logits("Who won the race?", candidates, max_tokens=reader.max_tokens), full)
    rows = encode_candidates(reader.pieces, "Who won the race?", candidates, max_tokens=48)
    assert [len(ids) for ids, _ in rows] == [48, 48]


@pytest.mark.parametrize("bad", [-1, 8, 31, 257])
def test_a_reader_length_it_cannot_read_is_named(bad: int) -> None:
    with pytest.raises(ValueError, match=rf"reader_tokens must be 0 .* got {bad}$"):
        RagConfig(reader_tokens=bad)
    assert RagConfig(reader_tokens=32).reader_tokens == 32


def test_a_missing_model_is_named(tmp_path: Path) -> None:
    with pytest.raises(ReaderUnavailable, match=str(tmp_path / ONNX_FILE)):
        Reader.load(tmp_path)


def test_assemble_keeps_the_question_and_marks_the_candidate() -> None:
    ids, types = assemble(list(range(1000, 1100)), [5] * 50, list(range(2000, 2100)), [6] * 50, max_tokens=112)
    assert len(ids) == 112 and len(types) == 112
    assert ids.count(1) == 1 and ids.count(2) == 1  # the two markers
    assert ids[ids.index(1) + 1] == 2000  # the candidate starts right after its marker


def _train(args: list[str], *, out: Path, work: Path) -> None:
    """Run the training command offline with `args`, writing to `out` and `work`."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    command = [sys.executable, "-m", "eval.train_reader", *args, "--out", str(out), "--work-dir", str(work)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.slow
def test_training_runs_end_to_end_on_a_tiny_sample_and_the_onnx_file_agrees(tmp_path: Path) -> None:
    need_shared()
    out, work = tmp_path / "model", tmp_path / "work"
    _train(["--limit-questions", "3", "--batch-size", "16"], out=out, work=work)
    assert (out / ONNX_FILE).is_file() and (out / "tokenizer.json").is_file() and (out / "README.md").is_file()
    log = [json.loads(line) for line in (work / "training_log.jsonl").read_text().splitlines()]
    assert [e["event"] for e in log][0] == "data" and any(e["event"] == "epoch" for e in log)
    epoch = next(e for e in log if e["event"] == "epoch")
    assert np.isfinite(epoch["loss"]) and 0.0 <= epoch["validation"]["top1"] <= 1.0

    # The ONNX int8 file against the torch weights it was exported from, on fresh pairs.
    import torch

    from eval.train_reader import Example, make_model, tensors
    from rag.reader import WordPieces

    model = make_model(0)
    model.load_state_dict(torch.load(work / "reader.pt"))
    model.eval()
    examples = [
        Example(
            "g",
            "Who leads the agency?",
            "The agency was founded in 1950.",
            "Its director is Maria Lopez.",
            "She took office in May.",
            0.0,
            "test",
        ),
        Example("g", "When was it founded?", "", "The agency was founded in 1950.", "", 0.0, "test"),
    ]
    with torch.no_grad():
        expected = model(**tensors(WordPieces(out / "tokenizer.json"), examples)).numpy()
    got = np.concatenate(
        [Reader.load(out).logits(e.question, [Candidate(e.before, e.sentence, e.after)]) for e in examples]
    )
    assert np.abs(got - expected).max() <= ONNX_TOLERANCE
    assert json.loads((out / "reader.json").read_text())["onnx_vs_torch"]["max_abs_logit_diff"] <= ONNX_TOLERANCE

    # --init continues from those weights: a step at learning rate 0 exports the same reader.
    again = tmp_path / "again"
    args = ["--limit-questions", "2", "--batch-size", "16", "--max-minutes", "0", "--lr", "0"]
    _train(["--init", str(work / "reader.pt"), *args], out=again, work=tmp_path / "work-again")
    assert json.loads((again / "reader.json").read_text())["settings"]["init"] == "reader.pt"
    continued = np.concatenate(
        [Reader.load(again).logits(e.question, [Candidate(e.before, e.sentence, e.after)]) for e in examples]
    )
    assert np.abs(continued - got).max() < 1e-4

    # --export-only reads the weights back from the ONNX file (dequantised) and writes them again,
    # here with layers 0-2's feed-forward outputs in float: the same reader within int8 rounding,
    # the same training runs on record, no new one.
    exported = tmp_path / "exported"
    args = ["--export-only", "--init", str(out / ONNX_FILE), "--float-layers", "0,1,2"]
    _train(args, out=exported, work=tmp_path / "work-export")
    meta = json.loads((exported / "reader.json").read_text())
    assert meta["exported_from"] == ONNX_FILE
    assert meta["stages"] == json.loads((out / "reader.json").read_text())["stages"]
    assert meta["onnx_vs_torch"]["float_layers"] == [0, 1, 2]
    import onnx

    graph = onnx.load(str(exported / ONNX_FILE)).graph
    floats = [n for n in graph.node if n.op_type == "MatMul" and n.name.endswith("/output/dense/MatMul")]
    dequantised = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    assert sorted(n.name.split("/")[3] for n in floats) == ["layer.0", "layer.1", "layer.2"]
    assert all(n.input[1] in dequantised for n in floats)  # int8 weights on disk, float inputs
    assert (exported / ONNX_FILE).stat().st_size < 1.05 * (out / ONNX_FILE).stat().st_size
    reread = np.concatenate(
        [Reader.load(exported).logits(e.question, [Candidate(e.before, e.sentence, e.after)]) for e in examples]
    )
    assert np.abs(reread - got).max() <= ONNX_TOLERANCE
    card = (exported / "README.md").read_text()
    assert "Exported again" in card and "layers 0, 1, 2" in card


def test_training_refuses_bad_settings(tmp_path: Path) -> None:
    from eval.train_reader import main

    assert main(["--sources", "squad,wiki", "--out", str(tmp_path), "--work-dir", str(tmp_path)]) == 2
    assert main(["--epochs", "0", "--out", str(tmp_path), "--work-dir", str(tmp_path)]) == 2
    assert main(["--shared", str(tmp_path / "nowhere"), "--out", str(tmp_path), "--work-dir", str(tmp_path)]) == 2
    assert main(["--export-only", "--out", str(tmp_path), "--work-dir", str(tmp_path)]) == 2  # from what?
    shipped = [
        "--export-only",
        "--init",
        str(MODEL_DIR / ONNX_FILE),
        "--out",
        str(tmp_path),
        "--work-dir",
        str(tmp_path),
    ]
    assert main([*shipped, "--shared", str(tmp_path / "nowhere")]) == 2
    with pytest.raises(SystemExit) as bad:  # argparse: usage and the bad value, exit 2
        main(["--float-layers", "2,7", "--out", str(tmp_path), "--work-dir", str(tmp_path)])
    assert bad.value.code == 2


def test_an_epoch_logs_the_loss_every_50_steps_and_stops_once_time_is_up() -> None:
    import time

    from eval.train_reader import _run_epoch

    class Trainer:
        def __init__(self) -> None:
            self.losses = iter(range(1000))

        def step(self, groups: list) -> float:
            return float(next(self.losses))

    class Bar(list):
        postfix: dict = {}

        def set_postfix(self, **kw: str) -> None:
            self.postfix = kw

    logged: list[dict] = []
    bar = Bar([[]] * 120)
    step, running, stopped = _run_epoch(Trainer(), bar, 10, started=time.time(), max_minutes=60, record=logged.append)
    assert (step, len(running), stopped) == (130, 120, False)
    # Steps count on from the previous epoch's; an entry is the mean of this epoch's last 50 losses.
    assert [(e["step"], e["loss"]) for e in logged] == [(50, 19.5), (100, 64.5)]
    assert bar.postfix == {"loss": "64.500"}

    logged.clear()
    step, running, stopped = _run_epoch(
        Trainer(), Bar([[]] * 120), 0, started=time.time() - 120, max_minutes=1, record=logged.append
    )
    assert (step, running, stopped, logged) == (1, [0.0], True, [])
