"""Degraded-joint sidecar files: which joints of which frames of which person are degraded, and how.

The synthetic ``degraded`` preset (``vidpose/data/synthetic.py``) writes one sidecar per video
next to its annotations, never changing the GT files:

- PoseTrack18: ``<root>/degraded/<split>/<video>.json`` for ``<root>/annotations/<split>/<video>.json``;
- Sub-JHMDB (raw layout): ``<root>/degraded/<class>/<clip>.json`` for
  ``<root>/joint_positions/<class>/<clip>/joint_positions.mat``.

A sidecar is ``{"format": "vidpose.degraded/1", "video", "layout" ("posetrack" | "jhmdb"),
"joint_names", "num_frames", "kinds", "degraded": [entry, ...]}`` with one entry per
(frame, person, kind): ``{"frame_index" (0-based position in the video), "image_id" (PoseTrack
only; Sub-JHMDB ids depend on the split protocol), "track_id", "kind", "joints"}``, ``joints``
being slot indices of the layout (0-based, sorted, unique). A joint is listed only where the GT
annotates it, so the listed (frame, person, joint) triples are a subset of the GT's joints.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidpose.data.index import VideoPoseIndex
from vidpose.data.keypoints import get_layout

__all__ = [
    "FORMAT",
    "KINDS",
    "DegradedEntry",
    "DegradedVideo",
    "jhmdb_sidecar_path",
    "posetrack_sidecar_dir",
    "read_degraded_file",
    "sidecar_path",
    "sidecars_for_index",
    "write_degraded_file",
]

FORMAT = "vidpose.degraded/1"
# The degradation kinds of the synthetic generator (vidpose/data/degradations.py renders them).
KINDS = ("defocus", "noise", "occluder", "motion_burst")


@dataclass(frozen=True)
class DegradedEntry:
    """Joints (layout slots) of one person in one frame hit by one kind of degradation."""

    frame_index: int
    track_id: int
    kind: str
    joints: tuple[int, ...]
    image_id: int | None = None


@dataclass(frozen=True)
class DegradedVideo:
    """One sidecar file: the degraded joints of one video."""

    path: Path
    video: str
    layout: str
    num_frames: int
    entries: tuple[DegradedEntry, ...]

    @property
    def num_joints(self) -> int:
        """K of the layout the joint slots refer to."""
        return get_layout(self.layout).num_joints

    def masks(self, kinds: Collection[str] = KINDS) -> dict[tuple[int, int], np.ndarray]:
        """``(frame_index, track_id) -> (K,) bool``: the joints degraded by one of ``kinds``."""
        out: dict[tuple[int, int], np.ndarray] = {}
        for e in self.entries:
            if e.kind in kinds:
                mask = out.setdefault((e.frame_index, e.track_id), np.zeros(self.num_joints, dtype=bool))
                mask[list(e.joints)] = True
        return out


def posetrack_sidecar_dir(gt_dir: str | Path) -> Path:
    """``<root>/degraded/<split>`` for a PoseTrack GT folder ``<root>/annotations/<split>``."""
    gt_dir = Path(gt_dir)
    return gt_dir.parent.parent / "degraded" / gt_dir.name


def jhmdb_sidecar_path(joints_file: str | Path) -> Path:
    """``<root>/degraded/<class>/<clip>.json`` for ``<root>/joint_positions/<class>/<clip>/joint_positions.mat``."""
    clip_dir = Path(joints_file).parent
    return clip_dir.parent.parent.parent / "degraded" / clip_dir.parent.name / f"{clip_dir.name}.json"


def sidecar_path(source_file: str | Path) -> Path:
    """Where the sidecar of the video annotated in ``source_file`` (PT18 JSON or JHMDB ``.mat``) lives."""
    source_file = Path(source_file)
    if source_file.suffix == ".mat":
        return jhmdb_sidecar_path(source_file)
    return posetrack_sidecar_dir(source_file.parent) / source_file.name


def write_degraded_file(
    path: str | Path, video: str, layout: str, num_frames: int, entries: Iterable[DegradedEntry]
) -> Path:
    """Write one sidecar (module docstring) and return its path."""
    names = list(get_layout(layout).joint_names)
    rows = []
    for e in entries:
        row: dict[str, Any] = {"frame_index": int(e.frame_index)}
        if e.image_id is not None:
            row["image_id"] = int(e.image_id)
        row.update(track_id=int(e.track_id), kind=e.kind, joints=sorted(int(j) for j in e.joints))
        rows.append(row)
    payload = {"format": FORMAT, "video": video, "layout": layout, "joint_names": names,
               "num_frames": int(num_frames), "kinds": list(KINDS), "degraded": rows}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, separators=(",", ":")))
    return path


def _int(value: Any, where: str, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo or (hi is not None and value >= hi):
        bound = f"an integer >= {lo}" if hi is None else f"an integer in [{lo}, {hi})"
        raise ValueError(f"{where}: expected {bound}, got {value!r}")
    return value


def _entry(row: Any, where: str, layout: str, num_frames: int, num_joints: int) -> DegradedEntry:
    if not isinstance(row, Mapping):
        raise ValueError(f"{where}: expected an object with frame_index, track_id, kind, joints")
    for key in ("frame_index", "track_id", "kind", "joints"):
        if key not in row:
            raise ValueError(f"{where}: missing field {key!r}")
    frame = _int(row["frame_index"], f"{where}.frame_index", 0, num_frames)
    track = _int(row["track_id"], f"{where}.track_id", 0)
    if row["kind"] not in KINDS:
        raise ValueError(f"{where}.kind: expected one of {list(KINDS)}, got {row['kind']!r}")
    joints = row["joints"]
    if not isinstance(joints, list) or not joints:
        raise ValueError(f"{where}.joints: expected a non-empty list of joint slots, got {joints!r}")
    slots = tuple(_int(j, f"{where}.joints[{i}]", 0, num_joints) for i, j in enumerate(joints))
    if len(set(slots)) != len(slots):
        raise ValueError(f"{where}.joints: duplicate joint slots in {list(slots)}")
    image_id = None
    if "image_id" in row:
        image_id = _int(row["image_id"], f"{where}.image_id", 0)
    elif layout == "posetrack":
        raise ValueError(f"{where}: missing field 'image_id' (PoseTrack sidecars name the frame's image)")
    return DegradedEntry(frame, track, row["kind"], slots, image_id)


def read_degraded_file(path: str | Path) -> DegradedVideo:
    """Read and check one sidecar; errors name the file and the field."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"degraded-joint sidecar {path} does not exist")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    for key in ("format", "video", "layout", "num_frames", "degraded"):
        if key not in data:
            raise ValueError(f"{path}: missing field {key!r}")
    if data["format"] != FORMAT:
        raise ValueError(f"{path}: format: expected {FORMAT!r}, got {data['format']!r}")
    layout = data["layout"]
    if layout not in ("posetrack", "jhmdb"):
        raise ValueError(f"{path}: layout: expected 'posetrack' or 'jhmdb', got {layout!r}")
    num_frames = _int(data["num_frames"], f"{path}: num_frames", 1)
    if not isinstance(data["degraded"], list):
        raise ValueError(f"{path}: degraded: expected a list of entries")
    num_joints = get_layout(layout).num_joints
    entries = tuple(
        _entry(row, f"{path}: degraded[{i}]", layout, num_frames, num_joints) for i, row in enumerate(data["degraded"])
    )
    return DegradedVideo(path, str(data["video"]), layout, num_frames, entries)


def sidecars_for_index(index: VideoPoseIndex) -> dict[str, DegradedVideo] | None:
    """``video_id -> sidecar`` for every video of ``index``; None when no video has one.

    A set where only some videos have a sidecar is an error naming the missing files: scoring the
    degraded subset of part of a set would pass silently for the whole.
    """
    paths = {v.video_id: sidecar_path(v.source_file) for v in index.videos if v.source_file}
    present = {vid: p for vid, p in paths.items() if p.is_file()}
    if not present:
        return None
    missing = [str(p) for vid, p in paths.items() if vid not in present]
    unsourced = [v.video_id for v in index.videos if not v.source_file]
    if missing or unsourced:
        raise FileNotFoundError(
            f"{index.name}: {len(present)} videos have degraded-joint sidecars but "
            f"{len(missing) + len(unsourced)} do not, e.g. {(missing + unsourced)[:3]}"
        )
    out = {}
    for video in index.videos:
        sidecar = read_degraded_file(present[video.video_id])
        if sidecar.layout != index.layout.name or sidecar.num_frames != len(video.frames):
            raise ValueError(
                f"{sidecar.path}: describes {sidecar.num_frames} frames in layout {sidecar.layout!r}, but video "
                f"{video.video_id} of {index.name} has {len(video.frames)} frames in layout {index.layout.name!r}"
            )
        out[video.video_id] = sidecar
    return out
