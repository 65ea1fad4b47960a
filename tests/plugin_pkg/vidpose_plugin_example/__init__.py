"""An out-of-tree package proving external registration: a target generator and a dataset.

It is imported only through ``plugins: [vidpose_plugin_example]`` (or ``load_plugins``); vidpose
never names it.
"""

from __future__ import annotations

import numpy as np

from vidpose.data.index import FrameRecord, PersonAnnotation, VideoPoseIndex, VideoRecord
from vidpose.data.keypoints import POSETRACK
from vidpose.heatmaps.targets import GaussianTarget
from vidpose.registry import DATASETS, TARGETS


@TARGETS.register("plugin_wide_gaussian")
class WideGaussian(GaussianTarget):
    """The standard target with a fixed wide sigma (a stand-in for a lab's own target)."""

    def __init__(self, geometry, width: float = 4.0) -> None:
        super().__init__(geometry, sigma=width)


@DATASETS.register("plugin_one_person")
def one_person(split: str, image_root: str = "/nonexistent") -> VideoPoseIndex:
    """A one-video, one-frame, one-person index."""
    person = PersonAnnotation(
        track_id=0,
        keypoints=np.full((17, 2), 10.0, np.float32),
        visible=np.ones(17, np.float32),
        bbox_xywh=np.array([0, 0, 20, 20], np.float32),
    )
    frame = FrameRecord(image_id=1, file_name="a.jpg", frame_index=0, is_labeled=True, people=[person])
    return VideoPoseIndex(f"plugin/{split}", POSETRACK, image_root, [VideoRecord("v", [frame])])
