"""The logistic function, shared by every score that is a logistic over features.

A leaf module (numpy only), so records, answering and the harness can all import it.
"""

from __future__ import annotations

import math
from typing import overload

import numpy as np


@overload
def sigmoid(z: float) -> float: ...


@overload
def sigmoid(z: np.ndarray) -> np.ndarray: ...


def sigmoid(z: float | np.ndarray) -> float | np.ndarray:
    """1 / (1 + exp(-z)), with z clipped to [-50, 50] so exp never overflows: a float for a Python
    float, an array (or numpy scalar) for a numpy input.

    Example:
        >>> sigmoid(0.0), round(sigmoid(2.0), 4), sigmoid(np.array([-1000.0, 1000.0])).round(4).tolist()
        (0.5, 0.8808, [0.0, 1.0])
    """
    if isinstance(z, (np.ndarray, np.generic)):
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0)))
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))
