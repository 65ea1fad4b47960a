"""Pictures of the inference API's results: each person's box, track id and skeleton on the frame."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from vidpose.data.keypoints import KeypointLayout
from vidpose.inference.results import PersonPose
from vidpose.viz import draw_skeleton

__all__ = ["track_colour", "draw_people"]


def track_colour(track: int) -> tuple[int, int, int]:
    """An RGB colour per track id (hues 47 degrees apart, so neighbouring ids differ)."""
    hue = (track * 47) % 180
    bgr = cv2.cvtColor(np.uint8([[[hue, 200, 255]]]), cv2.COLOR_HSV2BGR)[0, 0]
    return int(bgr[2]), int(bgr[1]), int(bgr[0])


def draw_people(
    image: np.ndarray, people: Sequence[PersonPose], layout: KeypointLayout, kp_threshold: float = 0.3,
    show_scores: bool = False,
) -> np.ndarray:
    """RGB ``(H, W, 3) uint8`` frame with each person's box, ``id`` and joints scored above ``kp_threshold``."""
    out = np.ascontiguousarray(image.copy())
    thickness = max(1, round(min(out.shape[:2]) / 300))
    for person in people:
        x, y, w, h = (round(float(v)) for v in person.box_xywh)
        colour = track_colour(person.track_id)
        cv2.rectangle(out, (x, y), (x + w, y + h), colour, thickness)
        cv2.putText(out, f"id {person.track_id}", (x + 2, y + 14 * thickness), cv2.FONT_HERSHEY_SIMPLEX,
                    0.45 * thickness, colour, thickness, cv2.LINE_AA)
        out = draw_skeleton(out, person.xy, person.scores, layout, threshold=kp_threshold, show_scores=show_scores)
    return out
