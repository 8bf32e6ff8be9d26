"""The shipped reader's weights read back from its int8 ONNX file into the torch model (to continue
training from it), and the int8 layout the export writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from eval.onnx_weights import dequantized_weights, state_dict_from_onnx
from rag.reader import MODEL_DIR, ONNX_FILE, Candidate, Reader

SHIPPED = MODEL_DIR / ONNX_FILE
# The rebuilt torch model against the ONNX reader: logits within this on these pairs (the ONNX
# file rounds the inputs of its MatMuls to int8 at run time, the torch model does not: measured
# 0.06-0.23 here; on 64 news pairs mean 0.24, at most 1.86).
TOLERANCE = 0.5

PAIRS = [
    (
        "Who is Kurt Campbell?",
        Candidate("", "Kurt Campbell is the US Deputy Secretary of State.", "He spoke on Friday."),
    ),
    ("Who is Kurt Campbell?", Candidate("He spoke on Friday.", "The weather in Seoul was mild.", "")),
    ("How many soldiers arrived?", Candidate("", "Up to 8,000 soldiers arrived in Kursk.", "")),
]


@pytest.fixture(scope="module")
def rebuilt() -> tuple[Any, dict[str, Any]]:
    """The torch reader with the shipped ONNX file's weights, and the base model's state dict."""
    from eval.train_reader import make_model

    model = make_model(2)
    base = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(state_dict_from_onnx(SHIPPED, model))
    model.eval()
    return model, base


def test_the_rebuilt_torch_model_scores_like_the_shipped_onnx_reader(rebuilt: tuple[Any, dict[str, Any]]) -> None:
    import torch

    from eval.train_reader import Example, tensors
    from rag.reader import WordPieces

    examples = [Example("g", q, c.before, c.sentence, c.after, 0.0, "test") for q, c in PAIRS]
    with torch.no_grad():
        torch_logits = rebuilt[0](**tensors(WordPieces(MODEL_DIR / "tokenizer.json"), examples)).numpy()
    onnx_logits = np.concatenate([Reader.load().logits(q, [c]) for q, c in PAIRS])
    assert np.abs(torch_logits - onnx_logits).max() <= TOLERANCE
    assert torch_logits[0] > torch_logits[1]  # and it still reads: the answering sentence first


def test_frozen_layers_keep_the_base_model_s_exact_weights_and_trained_ones_are_read(
    rebuilt: tuple[Any, dict[str, Any]],
) -> None:
    state, base = rebuilt[0].state_dict(), rebuilt[1]
    frozen = "encoder.encoder.layer.0.attention.self.query.weight"  # frozen in every training run
    trained = "encoder.encoder.layer.5.output.dense.weight"
    assert bool((state[frozen] == base[frozen]).all())
    assert float((state[trained] - base[trained]).abs().max()) > 1e-3
    assert float((state["head.weight"]).abs().sum()) > 0


def test_every_trained_weight_is_read_back_in_torch_s_shape() -> None:
    weights = dequantized_weights(SHIPPED)
    assert weights["encoder.encoder.layer.5.output.dense.weight"][0].shape == (384, 1536)
    assert weights["encoder.encoder.layer.5.intermediate.dense.weight"][0].shape == (1536, 384)
    assert weights["head.weight"][0].shape == (1, 384) and weights["head.bias"][1] is None  # float: exact


def test_a_file_without_the_weights_is_named(tmp_path: Path) -> None:
    from eval.train_reader import make_model

    empty = tmp_path / "empty.onnx"
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "empty", [x], [y])
    onnx.save(helper.make_model(graph), str(empty))
    with pytest.raises(ValueError, match=r"empty\.onnx.*head\.weight"):
        state_dict_from_onnx(empty, make_model(6))
