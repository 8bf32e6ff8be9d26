"""The LangChain tutorial baseline, built once over two hand-written documents with the real model."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from eval.baseline import CHUNK_SIZE, LangChainBaseline

pytestmark = pytest.mark.slow

VOLCANO_SENTENCES = [
    "Mount Etna is an active stratovolcano on the east coast of Sicily, Italy.",
    "It is one of the tallest active volcanoes in Europe, about 3,300 metres high.",
    "Eruptions of Etna have been recorded for at least 2,700 years.",
    "The volcano's fertile soils support vineyards and orchards on its lower slopes.",
    "Lava flows from the 1669 eruption reached the city walls of Catania.",
    "Volcanologists monitor Etna with seismometers, GPS stations and gas sensors.",
]
# Long enough to split into several chunks, so offsets past zero are exercised.
VOLCANO = " ".join(VOLCANO_SENTENCES * 5)
BREAD = (
    "Sourdough bread is leavened by a culture of wild yeast and lactic acid bacteria. "
    "Bakers feed the starter with flour and water every day. "
    "A long cold fermentation gives the loaf its sour taste and open crumb."
)
DOCUMENTS = {"etna.txt": VOLCANO, "kitchen/sourdough.txt": BREAD}


@pytest.fixture(scope="module")
def baseline() -> LangChainBaseline:
    return LangChainBaseline.build(DOCUMENTS, top_k=3)


def test_build_records_chunks_and_time(baseline: LangChainBaseline) -> None:
    assert len(VOLCANO) > 2 * CHUNK_SIZE
    assert baseline.n_chunks >= 4  # several for the volcano, one for the bread
    assert baseline.build_seconds > 0


@pytest.mark.parametrize(
    ("question", "source"),
    [
        ("What makes sourdough bread rise?", "kitchen/sourdough.txt"),
        ("Which volcano erupted near Catania in Sicily?", "etna.txt"),
    ],
)
def test_ask_returns_the_matching_document_first(baseline: LangChainBaseline, question: str, source: str) -> None:
    result = baseline.ask(question)
    assert set(result) == {"question", "answer", "abstained", "confidence", "citations", "timings_ms"}
    assert result["question"] == question and result["abstained"] is False
    citations = result["citations"]
    assert [c["n"] for c in citations] == [1, 2, 3]
    assert citations[0]["source"] == source
    assert result["answer"] == citations[0]["passage"]
    assert result["confidence"] == citations[0]["score"] > 0.3
    scores = [c["score"] for c in citations]
    assert scores == sorted(scores, reverse=True) and all(-1.0 <= s <= 1.0 for s in scores)
    for c in citations:
        assert set(c) == {"n", "source", "start", "end", "page", "quote", "passage", "score"}
        assert DOCUMENTS[c["source"]][c["start"] : c["end"]] == c["passage"] == c["quote"]
        assert c["page"] is None
    assert set(result["timings_ms"]) == {"retrieve", "answer", "total"}


def test_offsets_past_the_first_chunk(baseline: LangChainBaseline) -> None:
    result = baseline.ask("How do volcanologists monitor Etna with seismometers and gas sensors?")
    starts = [c["start"] for c in result["citations"] if c["source"] == "etna.txt"]
    assert any(start > 0 for start in starts)


def test_input_validation(baseline: LangChainBaseline) -> None:
    with pytest.raises(ValueError, match="question must be a non-empty string, got '  '"):
        baseline.ask("  ")
    with pytest.raises(ValueError, match="top_k must be >= 1, got 0"):
        LangChainBaseline.build(DOCUMENTS, top_k=0)
    with pytest.raises(ValueError, match="documents must not be empty"):
        LangChainBaseline.build({})
