"""Keypoint layouts as data: names, flip pairs, skeleton edges and benchmark joint groups.

Three layouts ship with vidpose:

- ``POSETRACK``: the 17-slot PoseTrack18/21 (and COCO-ordered) layout; the ear slots exist
  but are never annotated in PoseTrack.
- ``POSEVAL``: the 15 joints of the official poseval evaluator, in poseval's id order.
- ``JHMDB``: the 15 Sub-JHMDB puppet joints in ``pos_img`` order (0-based).

``POSETRACK_TO_POSEVAL[i]`` is the poseval id of PoseTrack slot ``i`` (-1 for the ears).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "KeypointLayout",
    "POSETRACK",
    "POSEVAL",
    "JHMDB",
    "LAYOUTS",
    "get_layout",
    "POSETRACK_TO_POSEVAL",
    "posetrack_to_poseval",
]


@dataclass(frozen=True)
class KeypointLayout:
    """A named keypoint layout: joint names in slot order plus the structure built on them."""

    name: str
    joint_names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    skeleton: tuple[tuple[int, int], ...]
    groups: dict[str, tuple[int, ...]]
    upper_body: tuple[int, ...]
    lower_body: tuple[int, ...]
    never_annotated: tuple[int, ...] = ()
    joint_weights: tuple[float, ...] = field(default=())

    def __post_init__(self) -> None:
        k = len(self.joint_names)
        if len(set(self.joint_names)) != k:
            raise ValueError(f"layout {self.name!r}: duplicate joint names")
        for a, b in self.flip_pairs + self.skeleton:
            if not (0 <= a < k and 0 <= b < k):
                raise ValueError(f"layout {self.name!r}: joint index out of range in pair ({a}, {b})")
        for group, ids in self.groups.items():
            if any(not 0 <= i < k for i in ids):
                raise ValueError(f"layout {self.name!r}: group {group!r} has an index out of range")
        if self.joint_weights and len(self.joint_weights) != k:
            raise ValueError(f"layout {self.name!r}: joint_weights must have {k} entries")

    @property
    def num_joints(self) -> int:
        """Number of keypoint slots K."""
        return len(self.joint_names)

    def index(self, name: str) -> int:
        """Slot index of a joint name."""
        try:
            return self.joint_names.index(name)
        except ValueError:
            raise KeyError(f"layout {self.name!r} has no joint {name!r}; joints: {list(self.joint_names)}") from None

    def flip_permutation(self) -> np.ndarray:
        """(K,) int array: slot i of a flipped sample takes slot perm[i] of the original."""
        perm = np.arange(self.num_joints)
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm

    def weights(self) -> np.ndarray:
        """(K,) float32 per-joint loss weights (ones unless the layout defines them)."""
        if self.joint_weights:
            return np.asarray(self.joint_weights, dtype=np.float32)
        return np.ones(self.num_joints, dtype=np.float32)


POSETRACK = KeypointLayout(
    name="posetrack",
    joint_names=(
        "nose", "head_bottom", "head_top", "left_ear", "right_ear",
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
        "left_wrist", "right_wrist", "left_hip", "right_hip",
        "left_knee", "right_knee", "left_ankle", "right_ankle",
    ),
    flip_pairs=((3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    skeleton=(
        (0, 1), (0, 2), (1, 5), (1, 6), (5, 7), (7, 9), (6, 8), (8, 10),
        (5, 11), (6, 12), (11, 12), (11, 13), (13, 15), (12, 14), (14, 16),
    ),
    groups={
        "Head": (0, 1, 2),
        "Shoulder": (5, 6),
        "Elbow": (7, 8),
        "Wrist": (9, 10),
        "Hip": (11, 12),
        "Knee": (13, 14),
        "Ankle": (15, 16),
    },
    upper_body=tuple(range(0, 11)),
    lower_body=tuple(range(11, 17)),
    never_annotated=(3, 4),
)

# poseval ids (posetrack_map.md section 2); output name of 12 is "neck".
POSEVAL = KeypointLayout(
    name="poseval",
    joint_names=(
        "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
        "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow",
        "left_wrist", "head_bottom", "nose", "head_top",
    ),
    flip_pairs=((0, 5), (1, 4), (2, 3), (6, 11), (7, 10), (8, 9)),
    skeleton=(
        (0, 1), (1, 2), (3, 4), (4, 5), (2, 3), (6, 7), (7, 8), (9, 10), (10, 11),
        (8, 12), (9, 12), (12, 13), (13, 14), (2, 8), (3, 9),
    ),
    groups={
        "Head": (14, 12, 13),
        "Shoulder": (8, 9),
        "Elbow": (7, 10),
        "Wrist": (6, 11),
        "Hip": (2, 3),
        "Knee": (1, 4),
        "Ankle": (0, 5),
    },
    upper_body=(6, 7, 8, 9, 10, 11, 12, 13, 14),
    lower_body=(0, 1, 2, 3, 4, 5),
)

# Sub-JHMDB pos_img order (jhmdb_pck.md section 1); MMPose calls joint 2 "head".
JHMDB = KeypointLayout(
    name="jhmdb",
    joint_names=(
        "neck", "belly", "face", "right_shoulder", "left_shoulder", "right_hip", "left_hip",
        "right_elbow", "left_elbow", "right_knee", "left_knee", "right_wrist", "left_wrist",
        "right_ankle", "left_ankle",
    ),
    flip_pairs=((3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14)),
    skeleton=(
        (0, 2), (0, 3), (0, 4), (0, 1), (3, 7), (7, 11), (4, 8), (8, 12),
        (1, 5), (1, 6), (5, 9), (9, 13), (6, 10), (10, 14),
    ),
    groups={
        "Head": (2,),
        "Shoulder": (3, 4),
        "Elbow": (7, 8),
        "Wrist": (11, 12),
        "Hip": (5, 6),
        "Knee": (9, 10),
        "Ankle": (13, 14),
    },
    upper_body=(0, 2, 3, 4, 7, 8, 11, 12),
    lower_body=(1, 5, 6, 9, 10, 13, 14),
)

LAYOUTS = {layout.name: layout for layout in (POSETRACK, POSEVAL, JHMDB)}

POSETRACK_TO_POSEVAL = np.array([13, 12, 14, -1, -1, 9, 8, 10, 7, 11, 6, 3, 2, 4, 1, 5, 0], dtype=np.int64)


def get_layout(name: str) -> KeypointLayout:
    """Layout by name (``posetrack``, ``poseval``, ``jhmdb``)."""
    try:
        return LAYOUTS[name]
    except KeyError:
        raise KeyError(f"unknown keypoint layout {name!r}; known: {sorted(LAYOUTS)}") from None


def posetrack_to_poseval(values: np.ndarray) -> np.ndarray:
    """Reorder PoseTrack 17-slot values ``(..., 17, D)`` into poseval's 15 ids ``(..., 15, D)``."""
    values = np.asarray(values)
    if values.shape[-2] != POSETRACK.num_joints:
        raise ValueError(f"expected 17 PoseTrack slots on axis -2, got shape {values.shape}")
    out = np.empty(values.shape[:-2] + (POSEVAL.num_joints,) + values.shape[-1:], dtype=values.dtype)
    for slot, pid in enumerate(POSETRACK_TO_POSEVAL):
        if pid >= 0:
            out[..., pid, :] = values[..., slot, :]
    return out
