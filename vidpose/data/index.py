"""The in-memory annotation index every reader produces and the clip dataset consumes.

A ``VideoPoseIndex`` holds videos -> frames (every frame of the video, labeled or not, in
temporal order) -> people. All coordinates are 0-based image pixels with pixel centres at
integers (readers convert 1-based formats such as Sub-JHMDB's ``pos_img`` on load).
Keypoints are stored in the index's ``layout`` (17 PoseTrack slots, or 15 JHMDB joints).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from vidpose.data.keypoints import KeypointLayout

__all__ = ["PersonAnnotation", "FrameRecord", "VideoRecord", "VideoPoseIndex", "Instance", "SkipLog"]


@dataclass
class PersonAnnotation:
    """One annotated person in one frame."""

    track_id: int
    keypoints: np.ndarray  # (K, 2) float32, image pixels; unannotated joints hold 0
    visible: np.ndarray  # (K,) float32 in {0, 1}: 1 = annotated (labelled position)
    bbox_xywh: np.ndarray  # (4,) float32 person box [x, y, w, h]
    head_box_xyxy: np.ndarray | None = None  # (4,) float32 [x1, y1, x2, y2] (PoseTrack head box)
    annotation_id: int | None = None


@dataclass
class FrameRecord:
    """One frame of a video; ``people`` is empty for unlabeled frames."""

    image_id: int
    file_name: str  # path relative to the index's image_root
    frame_index: int  # 0-based position in the video
    is_labeled: bool
    people: list[PersonAnnotation] = field(default_factory=list)
    ignore_regions: list[np.ndarray] = field(default_factory=list)  # each (N, 2) float32 polygon
    width: int | None = None
    height: int | None = None


@dataclass
class VideoRecord:
    """All frames of one video in temporal order, and the annotation file it came from."""

    video_id: str
    frames: list[FrameRecord]
    source_file: str | None = None

    def __len__(self) -> int:
        return len(self.frames)


class SkipLog:
    """Counts documented skips by reason, with a few examples each, so nothing vanishes silently."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = {}

    def add(self, reason: str, example: str) -> None:
        """Record one skipped item under ``reason``."""
        self.counts[reason] += 1
        examples = self.examples.setdefault(reason, [])
        if len(examples) < 3:
            examples.append(example)

    def total(self) -> int:
        """Number of skipped items."""
        return sum(self.counts.values())

    def summary(self) -> str:
        """One line per reason: count and examples."""
        if not self.counts:
            return "nothing skipped"
        return "; ".join(
            f"{reason}: {n} (e.g. {', '.join(self.examples[reason])})" for reason, n in sorted(self.counts.items())
        )


@dataclass
class Instance:
    """One person box to crop: a training sample or a validation box (GT or detector)."""

    video: int  # index into VideoPoseIndex.videos
    frame: int  # index into VideoRecord.frames (the key frame)
    bbox_xywh: np.ndarray  # (4,) float32
    box_score: float = 1.0
    track_id: int = -1
    person: int = -1  # index into FrameRecord.people when the box is a GT person, else -1


@dataclass
class VideoPoseIndex:
    """Videos -> frames -> people, plus where the images live and what was skipped on load."""

    name: str
    layout: KeypointLayout
    image_root: str
    videos: list[VideoRecord]
    skipped: SkipLog = field(default_factory=SkipLog)

    def num_frames(self) -> int:
        """Total number of frames over all videos."""
        return sum(len(v.frames) for v in self.videos)

    def num_labeled_frames(self) -> int:
        """Number of frames flagged as labeled."""
        return sum(f.is_labeled for v in self.videos for f in v.frames)

    def num_people(self) -> int:
        """Number of person annotations."""
        return sum(len(f.people) for v in self.videos for f in v.frames)

    def find_person(self, video: int, frame: int, track_id: int) -> PersonAnnotation | None:
        """The person with ``track_id`` in a frame, or None."""
        for person in self.videos[video].frames[frame].people:
            if person.track_id == track_id:
                return person
        return None

    def gt_instances(self, min_visible: int = 1) -> list[Instance]:
        """One instance per annotated person with at least ``min_visible`` visible joints."""
        out = []
        for vi, video in enumerate(self.videos):
            for fi, frame in enumerate(video.frames):
                for pi, person in enumerate(frame.people):
                    if int(person.visible.sum()) >= min_visible:
                        out.append(Instance(vi, fi, person.bbox_xywh, 1.0, person.track_id, pi))
        return out

    def describe(self) -> str:
        """Counts of videos, frames, labeled frames and people, and the skip summary."""
        return (
            f"{self.name}: {len(self.videos)} videos, {self.num_frames()} frames "
            f"({self.num_labeled_frames()} labeled), {self.num_people()} people; skipped: {self.skipped.summary()}"
        )
