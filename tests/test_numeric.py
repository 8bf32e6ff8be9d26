"""`rag.numeric.sigmoid`: the one logistic function the scores share."""

from __future__ import annotations

import math

import numpy as np

from rag.numeric import sigmoid


def test_sigmoid_of_a_float_is_a_float_and_never_overflows() -> None:
    assert sigmoid(0.0) == 0.5
    assert isinstance(sigmoid(1.5), float)
    assert sigmoid(1.5) == 1.0 / (1.0 + math.exp(-1.5))
    assert sigmoid(-1e6) == 1.0 / (1.0 + math.exp(50.0)) > 0.0  # clipped at -50, no OverflowError
    assert sigmoid(1e6) == 1.0


def test_sigmoid_of_an_array_is_elementwise_and_keeps_numpy_scalars_numpy() -> None:
    z = np.array([-1e6, -2.0, 0.0, 2.0, 1e6])
    out = sigmoid(z)
    assert out.shape == z.shape
    assert np.allclose(
        out, [1.0 / (1.0 + math.exp(50.0)), 1.0 / (1.0 + math.exp(2.0)), 0.5, 1.0 / (1.0 + math.exp(-2.0)), 1.0]
    )
    assert np.all(np.diff(out) > 0)
    scalar = sigmoid(np.float64(2.0))
    assert isinstance(scalar, np.floating) and scalar == out[3]
