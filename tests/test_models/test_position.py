"""2-D sin-cos position encoding: layout, values by hand, and errors."""

from __future__ import annotations

import math

import pytest
import torch

from vidpose.models.position import sincos_2d


def test_layout_and_values_by_hand():
    enc = sincos_2d(3, 2, 8)  # 2 frequencies: 1 and 10000^(-1/2) = 0.01
    assert enc.shape == (6, 8) and enc.dtype == torch.float32
    y, x = 2, 1
    token = enc[y * 2 + x]  # row-major
    expected = [math.sin(y), math.sin(0.01 * y), math.cos(y), math.cos(0.01 * y),
                math.sin(x), math.sin(0.01 * x), math.cos(x), math.cos(0.01 * x)]
    assert torch.allclose(token, torch.tensor(expected), atol=1e-7)
    assert torch.equal(enc[0], torch.tensor([0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0]))


def test_tokens_are_distinct_and_errors_name_the_problem():
    enc = sincos_2d(16, 12, 64)
    assert torch.unique(enc, dim=0).shape[0] == 192
    with pytest.raises(ValueError, match="multiple of 4"):
        sincos_2d(4, 3, 6)
    with pytest.raises(ValueError, match="positive"):
        sincos_2d(0, 3, 8)
