"""The reader's int8 ONNX weights: written for export, read back to continue training.

`quantize_dynamic` (onnxruntime) turns a MatMul into a `MatMulInteger` whose input is quantised
per tensor to uint8 at run time. The feed-forward output layers take GELU outputs, whose few large
values make that rounding coarse, most of all in the first three layers. Measured on the shipped
reader against its float weights, on 250 news validation questions (1,800 sentences; never
trained on): mean |logit difference| 0.259 with every MatMul on int8 inputs, 0.168 with layers
0-2's in float (the float model's best sentence kept in 0.952 of questions against 0.932), 0.163
with all six, at 1.09 and 1.21 times the reading time. `int8_weights_for` keeps the chosen ones
(`python -m eval.train_reader --float-layers 0,1,2`) in float but stores their weights as int8
anyway (per output column, read back by a `DequantizeLinear`): the file stays 22 MB. Closer to
the float model is not better end to end: the shipped reader exported so and recalibrated
answered more seed questions (0.72 against 0.60) but refused fewer (0.83 against 0.89) and quoted
worse (citation precision 0.886 against 0.932), with SQuAD 2.0 and ClapNQ refusal 0.01 lower; the
shipped file keeps every MatMul on int8 inputs, the default.

`eval.train_reader` keeps its float weights (`reader.pt`) in its work folder only; the package
ships the ONNX export. `state_dict_from_onnx` rebuilds a state dict from that export:

- every float initializer named like a parameter (biases, LayerNorm weights, the head's bias) is
  taken as it is;
- every weight quantised per channel (for a `MatMulInteger`, or read by a `DequantizeLinear` for a
  float MatMul) is dequantised, ``(q - zero_point) * scale`` per output column, and transposed
  back to torch's (out, in);
- a weight whose int8 copy rounds the model's own weight (every value within half a step: a
  layer training left frozen, `--freeze-layers`) is left as the model has it, the base model's
  exact value; so are the embeddings (always frozen, stored per tensor) and the unused pooler.

The rebuilt weights carry the int8 rounding of the trained layers (continuing to train smooths
it out).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np

# Node names (torch.onnx.export's) of the MatMuls that read GELU outputs, by layer.
FEED_FORWARD_OUT = re.compile(r"/layer\.(\d+)/output/dense/MatMul$")


def float_matmuls(path: Path, layers: Collection[int]) -> list[str]:
    """The feed-forward output MatMuls of `layers` in the float ONNX reader at `path` (to keep in
    float: `quantize_dynamic(..., nodes_to_exclude=...)`, then `int8_weights_for`)."""
    import onnx

    names = []
    for node in onnx.load(str(path)).graph.node:
        m = FEED_FORWARD_OUT.search(node.name) if node.op_type == "MatMul" else None
        if m and int(m.group(1)) in layers:
            names.append(node.name)
    return names


def int8_weights_for(path: Path, nodes: Collection[str]) -> None:
    """Rewrite the ONNX model at `path` in place: each float MatMul of `nodes` gets its weight
    from an int8 copy (symmetric, a scale per output column) through a `DequantizeLinear`."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    initializers = {i.name: i for i in graph.initializer}
    readers = []
    for node in graph.node:
        if node.name not in nodes or node.input[1] not in initializers:
            continue
        name = node.input[1]
        weight = numpy_helper.to_array(initializers[name]).astype(np.float32)  # (in, out)
        scale = np.abs(weight).max(axis=0) / 127.0
        scale[scale == 0] = 1.0
        q = np.clip(np.round(weight / scale), -127, 127).astype(np.int8)
        graph.initializer.remove(initializers[name])
        graph.initializer.extend(
            [
                numpy_helper.from_array(q, name + "_quantized"),
                numpy_helper.from_array(scale.astype(np.float32), name + "_scale"),
                numpy_helper.from_array(np.zeros(q.shape[1], np.int8), name + "_zero_point"),
            ]
        )
        readers.append(
            helper.make_node(
                "DequantizeLinear",
                [name + "_quantized", name + "_scale", name + "_zero_point"],
                [name],
                name=node.name + "_weight",
                axis=1,
            )
        )
    for node in reversed(readers):
        graph.node.insert(0, node)
    onnx.save(model, str(path))


def _parameter_name(node_name: str, weight_name: str) -> str:
    """The torch parameter a MatMul node's weight came from.

    Example:
        >>> _parameter_name("/encoder/encoder/layer.3/attention/self/query/MatMul_quant", "onnx::MatMul_946_quantized")
        'encoder.encoder.layer.3.attention.self.query.weight'
        >>> _parameter_name("/encoder/encoder/layer.3/output/dense/MatMul", "onnx::MatMul_963")
        'encoder.encoder.layer.3.output.dense.weight'
        >>> _parameter_name("/head/Gemm_MatMul_quant", "head.weight_Transposed_quantized")
        'head.weight'
    """
    if weight_name.endswith("_Transposed_quantized"):
        return weight_name.removesuffix("_Transposed_quantized")
    return node_name.strip("/").removesuffix("_quant").removesuffix("/MatMul").replace("/", ".") + ".weight"


def _dequantized(arrays: dict[str, np.ndarray], name: str) -> tuple[np.ndarray, np.ndarray]:
    """The float weight stored as `name` (int8) with its `_scale` and `_zero_point` beside it,
    and its rounding step (the scale, per output column)."""
    base = name.removesuffix("_quantized")
    zero = arrays[base + "_zero_point"].astype(np.float32)
    scale = arrays[base + "_scale"].astype(np.float32)
    return (arrays[name].astype(np.float32) - zero) * scale, scale


def dequantized_weights(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """Every weight of the ONNX model at `path` as a float32 torch-shaped array with its rounding
    step, by parameter name: float initializers as they are (no step), int8 MatMul weights
    dequantised (their step: the scale of each output column, now a row)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    arrays = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    weights: dict[str, tuple[np.ndarray, np.ndarray | None]] = {
        name: (a.astype(np.float32), None) for name, a in arrays.items() if a.dtype == np.float32 and "." in name
    }
    stored = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in arrays}
    for node in graph.node:
        if node.op_type == "MatMulInteger" and node.input[1] in arrays:
            weight, step = _dequantized(arrays, node.input[1])
        elif node.op_type == "MatMul" and node.input[1] in stored:
            weight, step = _dequantized(arrays, stored[node.input[1]])
        else:
            continue
        weights[_parameter_name(node.name, node.input[1])] = (weight.T.copy(), step[:, None])
    return weights


def state_dict_from_onnx(path: Path, model: Any) -> dict[str, Any]:
    """`model`'s state dict with its weights replaced by those of the ONNX reader at `path`
    (`dequantized_weights`), but where the int8 copy only rounds the model's own weight. Raises
    ValueError naming the trainable parameters the file lacks or holds in another shape."""
    import torch

    found = dequantized_weights(path)
    state = model.state_dict()
    # The pooler is never run (the head reads the last layer's [CLS]): not in the export.
    trainable = [n for n, p in model.named_parameters() if p.requires_grad and not n.startswith("encoder.pooler.")]
    wrong = [n for n in state if n in found and tuple(found[n][0].shape) != tuple(state[n].shape)]
    missing = [n for n in trainable if n not in found] + wrong
    if missing:
        raise ValueError(f"{path}: no weight of the right shape for {', '.join(missing[:5])}")
    for name, (weight, step) in found.items():
        if name not in state:
            continue
        own = state[name].numpy()
        if step is None or not np.all(np.abs(weight - own) <= 0.501 * step):
            state[name] = torch.from_numpy(weight)
    return state
