"""Retrieval: dense, BM25 and hybrid search on a small hand-made corpus; reciprocal-rank fusion."""

from __future__ import annotations

import pytest

from rag.config import RagConfig
from rag.retrieve import reciprocal_rank_fusion, search

DOCUMENTS = {
    "bees.txt": "Honeybees collect nectar from flowers and turn it into honey inside the hive. "
    "A colony can hold tens of thousands of workers.",
    "volcano.txt": "Mount Etna is an active stratovolcano on the east coast of Sicily. "
    "Its eruptions have been recorded for thousands of years.",
    "bread.txt": "Sourdough is leavened by a starter of wild yeast and lactic acid bacteria. "
    "Bakers feed the starter with flour and water.",
    "chess.txt": "The Sicilian Defence is a chess opening that begins with the moves e4 c5. "
    "Grandmaster Quillfeather annotated it in catalogue entry ZX-4471.",
    "space/rover.txt": "The rover landed in Jezero crater on Mars to search for signs of ancient microbial "
    "life. It carries a small helicopter.",
    "ships.md": "# Shipping\n\nContainer ships carry most of the world's traded goods across the oceans. "
    "The largest vessels hold more than twenty thousand containers.",
}


@pytest.fixture(scope="module")
def index(tmp_path_factory, embedder):
    from rag.pipeline import build_index
    from rag.store import Index

    root = tmp_path_factory.mktemp("retrieve") / "corpus"
    for source, text in DOCUMENTS.items():
        (root / source).parent.mkdir(parents=True, exist_ok=True)
        (root / source).write_text(text, encoding="utf-8")
    index_dir = root.parent / "index"
    build_index([root], index_dir=index_dir, embedder=embedder)
    loaded = Index.load(index_dir)
    assert len(loaded) == len(DOCUMENTS)  # one chunk per document
    yield loaded
    loaded.close()


def _search(index, embedder, query: str, mode: str, top_k: int = 3):
    vector = embedder.encode_queries([query])[0]
    return search(index, query, vector, config=RagConfig(mode=mode), top_k=top_k)


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
@pytest.mark.parametrize(
    ("query", "source"),
    [
        ("Which volcano erupts in Sicily?", "volcano.txt"),
        ("catalogue entry ZX-4471 by Quillfeather", "chess.txt"),
        ("How do bakers feed a sourdough starter?", "bread.txt"),
        ("How many containers do the largest ships hold?", "ships.md"),
    ],
)
def test_each_mode_returns_the_right_chunk_first(index, embedder, mode: str, query: str, source: str) -> None:
    hits = _search(index, embedder, query, mode)

    assert hits and hits[0].chunk.source == source
    assert hits[0].chunk.text == DOCUMENTS[source][hits[0].chunk.start : hits[0].chunk.end]
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_dense_finds_a_paraphrase_that_bm25_cannot(index, embedder) -> None:
    query = "robot vehicle exploring the red planet"  # no word in common with the rover document

    assert _search(index, embedder, query, "bm25") == []
    dense = _search(index, embedder, query, "dense")
    hybrid = _search(index, embedder, query, "hybrid")
    assert dense[0].chunk.source == hybrid[0].chunk.source == "space/rover.txt"
    assert dense[0].dense == pytest.approx(dense[0].score)
    assert 0.2 < dense[0].dense <= 1.0


def test_hits_carry_both_scores(index, embedder) -> None:
    query = "Which volcano erupts in Sicily?"
    lexical = _search(index, embedder, query, "bm25")
    hybrid = _search(index, embedder, query, "hybrid")

    # BM25 hits get their cosine filled in; hybrid hits keep their BM25 score.
    assert lexical[0].bm25 == pytest.approx(lexical[0].score) and lexical[0].bm25 > 0
    assert 0.2 < lexical[0].dense <= 1.0
    assert hybrid[0].bm25 == pytest.approx(lexical[0].bm25)
    assert hybrid[0].score == pytest.approx(2 / 61)  # ranked first by both retrievers


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_top_k_is_honoured(index, embedder, mode: str) -> None:
    query = "Which volcano erupts in Sicily?"
    for k in (1, 2, 4):
        hits = _search(index, embedder, query, mode, top_k=k)
        assert len(hits) == k
        assert len({h.chunk.id for h in hits}) == k
    assert len(_search(index, embedder, query, mode, top_k=50)) == len(DOCUMENTS)
    vector = embedder.encode_queries([query])[0]
    assert len(search(index, query, vector, config=RagConfig(mode=mode, top_k=2))) == 2  # from config


def test_top_k_caps_bm25_hits(index, embedder) -> None:
    query = "thousands of years of honey, yeast, ships and Sicily"
    everything = _search(index, embedder, query, "bm25", top_k=10)

    assert len(everything) >= 3
    assert [h.chunk.id for h in _search(index, embedder, query, "bm25", top_k=2)] == [
        h.chunk.id for h in everything[:2]
    ]


@pytest.mark.parametrize("bad", [0, -1, -20])
def test_bad_top_k_raises_naming_the_value(index, embedder, bad: int) -> None:
    vector = embedder.encode_queries(["bees"])[0]
    with pytest.raises(ValueError, match=rf"top_k must be >= 1, got {bad}\b"):
        search(index, "bees", vector, config=RagConfig(), top_k=bad)
    with pytest.raises(ValueError, match=rf"top_k must be >= 1, got {bad}\b"):
        RagConfig(top_k=bad)


def test_reciprocal_rank_fusion_on_hand_made_lists() -> None:
    dense = [(1, 0.9), (2, 0.8), (3, 0.7)]
    lexical = [(3, 9.0), (1, 8.0), (4, 1.0)]

    fused = reciprocal_rank_fusion([dense, lexical], k=60)

    assert [doc for doc, _ in fused] == [1, 3, 2, 4]
    assert dict(fused) == pytest.approx({1: 1 / 61 + 1 / 62, 3: 1 / 63 + 1 / 61, 2: 1 / 62, 4: 1 / 63})


def test_reciprocal_rank_fusion_k_and_ties() -> None:
    # With k=0 one first place (1/1) equals two second places (1/2 + 1/2): ties keep the order in
    # which ids first appear.
    fused = reciprocal_rank_fusion([[(7, 1.0), (8, 0.5)], [(9, 3.0), (8, 2.0)], [(7, 1.0)]], k=0)
    assert fused == [(7, pytest.approx(2.0)), (8, pytest.approx(1.0)), (9, pytest.approx(1.0))]
    assert reciprocal_rank_fusion([[(5, 0.1)], [(6, 0.2)]], k=60) == [(5, 1 / 61), (6, 1 / 61)]
    assert reciprocal_rank_fusion([[], []]) == []


def test_weighted_fusion_lets_one_ranking_dominate() -> None:
    from rag.retrieve import reciprocal_rank_fusion

    dense = [(1, 0.9), (2, 0.8)]
    lexical = [(2, 9.0), (1, 3.0)]
    assert reciprocal_rank_fusion([dense, lexical], k=60, weights=(1.0, 0.5))[0][0] == 1
    assert reciprocal_rank_fusion([dense, lexical], k=60, weights=(0.5, 1.0))[0][0] == 2
    with pytest.raises(ValueError, match="one weight per ranking"):
        reciprocal_rank_fusion([dense, lexical], weights=(1.0,))
