"""What the inference API returns: per input frame, per person, keypoints with scores and a track id."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from vidpose.data.keypoints import KeypointLayout
from vidpose.evaluation.writers import PosePrediction

__all__ = ["PersonPose", "VideoPoses"]


@dataclass(frozen=True)
class PersonPose:
    """One person in one frame; coordinates in 0-based image pixels, pixel centres at integers."""

    frame: int  # position of the frame in the input
    image_id: int  # the frame's image id (its position unless the caller named ids)
    track_id: int
    box_xywh: np.ndarray  # (4,) [x, y, w, h] the box the pose was predicted in
    box_score: float
    keypoints: np.ndarray  # (K, 3): x, y, score (heatmap maximum, times the box score when the config says so)

    @property
    def xy(self) -> np.ndarray:
        """Keypoint positions ``(K, 2)`` ``(x, y)``."""
        return self.keypoints[:, :2]

    @property
    def scores(self) -> np.ndarray:
        """Keypoint scores ``(K,)``."""
        return self.keypoints[:, 2]

    def prediction(self) -> PosePrediction:
        """The same person as the evaluation writers' record."""
        return PosePrediction(self.image_id, self.keypoints, self.box_score, self.track_id)


@dataclass
class VideoPoses:
    """The people of every input frame: ``poses[i]`` lists frame ``i``'s people in box order."""

    frames: list[list[PersonPose]]
    layout: KeypointLayout
    image_ids: list[int]
    fps: float | None = None
    name: str = "frames"

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int) -> list[PersonPose]:
        return self.frames[i]

    def __iter__(self) -> Iterator[list[PersonPose]]:
        return iter(self.frames)

    def people(self) -> list[PersonPose]:
        """Every person of every frame, in frame order."""
        return [person for frame in self.frames for person in frame]

    def track_ids(self) -> list[int]:
        """The distinct track ids, sorted."""
        return sorted({person.track_id for person in self.people()})

    def predictions(self) -> list[PosePrediction]:
        """Every person as :class:`~vidpose.evaluation.writers.PosePrediction` (for the PoseTrack writer)."""
        return [person.prediction() for person in self.people()]
