"""The reader comparison: real shipped reader, real seed article and questions."""

from __future__ import annotations

import json

import pytest

from eval.reader_probe import ROOT, main, measure, seed_probes
from rag.reader import MODEL_DIR, Reader


def test_the_shipped_reader_finds_most_seed_answers_and_ranks_answerable_questions_higher() -> None:
    probes = seed_probes(ROOT / "seeds", ROOT / "eval" / "data" / "seed_qa.jsonl")
    result = measure(Reader.load(), probes)
    assert (result["answerable"], result["unanswerable"]) == (50, 18)
    assert result["top1"] > 0.6 and result["auroc"] > 0.55, result


@pytest.mark.slow
def test_the_command_prints_one_line_per_reader_and_length(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(MODEL_DIR), "--squad-questions", "0", "--reader-tokens", "64"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(" {", 1)[0] for line in lines] == ["shipped at 64 tokens", f"{MODEL_DIR} at 64 tokens"]
    shipped, again = (json.loads("{" + line.split(" {", 1)[1]) for line in lines)
    assert shipped == again and set(shipped) == {"seed"}  # the same model scores the same
