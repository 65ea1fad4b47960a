"""Pictures the trainer logs: predicted skeletons (and GT where known) on validation crops."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vidpose.evaluation.writers import PosePrediction
from vidpose.heatmaps.geometry import apply_affine
from vidpose.viz import draw_skeleton, hstack_padded

__all__ = ["prediction_picture"]


def prediction_picture(evaluator, predictions: Sequence[PosePrediction], max_people: int = 8) -> np.ndarray:
    """Key-frame crops of the first validation instances: GT in white, prediction in colour; ``(H, W', 3)``."""
    tiles = []
    dataset = evaluator.dataset
    for i in range(min(max_people, len(predictions))):
        sample = dataset[i]
        key = int(sample["key_index"])
        crop = sample["frames"][key]
        pred = predictions[i].keypoints
        xy_input = apply_affine(sample["affine"], pred[:, :2])
        tile = draw_skeleton(crop, sample["keypoints"][key], sample["visible"][key], evaluator.layout,
                             threshold=0.5, colour=(255, 255, 255))
        tiles.append(draw_skeleton(tile, xy_input, pred[:, 2], evaluator.layout, threshold=0.0))
    return hstack_padded(tiles)
