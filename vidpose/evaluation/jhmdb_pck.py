"""Sub-JHMDB PCK, the DeciWatch / HANet rule (spec ``jhmdb_pck.md`` sections 0, 3, 5). Pure numpy.

The rule: for every frame, truncate the person box ``[x1, y1, x2, y2]`` toward zero to
integers and take ``size = max(x2 - x1, y2 - y1)`` (no ``+1``, no clipping). A joint is
correct at threshold ``t`` when the Euclidean pixel distance between prediction and ground
truth is ``<= t * size`` (inclusive; a zero-size box gives threshold 0, so only an exact
prediction counts). Visibility is ignored: all 15 joints of every frame count. Per video,
PCK of a joint is hits / frames; the dataset value is the plain mean over videos, so every
video weighs the same whatever its length. Groups use the anatomical JHMDB indices; ``Avg``
is the mean of all 15 joint values (neck and belly included), not the mean of the groups.

Numerics: vidpose computes distances and thresholds in float64 pixel space. The official
code runs in float32 (after a normalise-by-image-size round trip), so its ratios differ from
these by about 1e-7; compare ratios with an absolute tolerance of 1e-6 and hit counts
exactly. A float32 *normalised* distance (``d / size <= t``) would wrongly reject exact
ties such as ``d = 20``, ``size = 100``, ``t = 0.2``; the pixel-space comparison keeps them.

Options, each recorded in the result's ``protocol``:

- ``split``: which test list the videos come from: ``union`` (the concatenation of the test
  lists of splits 1-3, DeciWatch/HANet; a clip counts once per split in which it is a test
  clip), ``split1``/``split2``/``split3``, or ``unspecified``. ``evaluate_splits`` scores
  splits 1-3 separately and averages them (the per-split protocol of MMPose and LSTM-PM).
- ``frames``: ``all`` (default, every frame; what per-frame models report) or ``windows``,
  the refiners' frame subset (``SlidingWindows``): windows of ``W = N*Q + 1`` frames with
  stride ``S = N*step`` start at ``0, S, 2S, ...`` while ``start <= L - W``; frames after the
  last full window are never scored; a video shorter than ``W`` is padded with all-zero
  frames (GT, prediction and box zero) which are scored and therefore count as hits.
  Only the frame subset is reproduced: the prediction of a real frame is taken as given
  (the caller passes the refiner's stitched output), and a padded frame's prediction is 0.
- ``mask_invisible`` (vidpose extension, NOT the official rule): joints whose ``visible``
  entry is 0 are not scored; a joint's per-video ratio is hits / visible frames, and videos
  in which the joint is never visible are left out of that joint's mean over videos.

Extra, labelled, non-official summaries: the mean of 13 joints (neck and belly dropped), the
mean of the 7 group values, and the literal columns DeciWatch/HANet print (their table
applies Penn Action's index pairs to JHMDB's order, so its group names are wrong; see
``DECIWATCH_PRINTED_COLUMNS``).

Command line::

    python -m vidpose.evaluation.jhmdb_pck --input IN.json --json OUT.json \\
        [--frames all|windows --window-n N --window-q Q --window-step S] \\
        [--protocol-label union|split1|split2|split3|unspecified]
    python -m vidpose.evaluation.jhmdb_pck --split-inputs S1.json S2.json S3.json --json OUT.json

``IN.json`` is ``{"videos": [{"name", "gt": (F,15,2), "pred": (F,15,2), "bbox": (F,4),
"visible": (F,15) optional}]}`` as nested lists (``save_input_json`` writes it). Arrays hold
numbers only: a string (even ``"12.5"``) or a boolean in ``gt``/``pred``/``bbox`` is an error
naming the file, the video and the field (``visible`` may hold booleans); errors in reading the
file name the file. The folder of ``--json`` is created before evaluating.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from vidpose.data.keypoints import JHMDB
from vidpose.evaluation.output import prepare_output_file, write_json_file

__all__ = [
    "AVG_7_GROUPS_KEY",
    "AVG_13_JOINTS_KEY",
    "DECIWATCH_PRINTED_COLUMNS",
    "DECIWATCH_WINDOWS",
    "HANET_WINDOWS",
    "PRINTED_COLUMNS_KEY",
    "SPLIT_LABELS",
    "THRESHOLDS",
    "JhmdbPCKResult",
    "JhmdbSplitsResult",
    "SlidingWindows",
    "VideoHits",
    "box_sizes",
    "evaluate",
    "evaluate_splits",
    "load_input_json",
    "main",
    "save_input_json",
]

NUM_JOINTS = JHMDB.num_joints
THRESHOLDS: tuple[float, ...] = (0.2, 0.1, 0.05)
GROUP_NAMES: tuple[str, ...] = ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle")
TABLE_COLUMNS: tuple[str, ...] = ("Head", "Sho", "Elb", "Wri", "Hip", "Knee", "Ank", "Avg")
_NECK_AND_BELLY = (JHMDB.index("neck"), JHMDB.index("belly"))

# DeciWatch/HANet print these index pairs under these names (spec section 3.4): Penn Action's
# layout applied to JHMDB's order, so e.g. their "Head" is the neck. Only "Knee" and "Mean"
# are anatomically right.
DECIWATCH_PRINTED_COLUMNS: dict[str, tuple[int, ...]] = {
    "Head": (0,),
    "Shoulder": (1, 2),
    "Elbow": (3, 4),
    "Wrist": (5, 6),
    "Hip": (7, 8),
    "Knee": (9, 10),
    "Ankle": (11, 12),
}
PRINTED_COLUMNS_KEY = "deciwatch_printed_columns (mislabelled, see spec)"
AVG_13_JOINTS_KEY = "avg_13_joints (neck and belly dropped; not the official Avg)"
AVG_7_GROUPS_KEY = "avg_7_groups (mean of the group values; not the official Avg)"

SPLIT_LABELS: dict[str, str] = {
    "union": "union of the test lists of splits 1-3 (DeciWatch/HANet)",
    "split1": "split 1 test list",
    "split2": "split 2 test list",
    "split3": "split 3 test list",
    "unspecified": "unspecified (the caller did not say which test list)",
}
_RULE = (
    "Sub-JHMDB PCK, DeciWatch/HANet rule: per-frame box truncated toward zero, "
    "size = max(x2-x1, y2-y1), hit iff pixel distance <= t*size, "
    "per-video ratio then mean over videos, Avg = mean of 15 joints"
)


@dataclass(frozen=True)
class SlidingWindows:
    """The refiners' evaluation windows: ``size = n*q + 1`` frames, ``stride = n*step`` frames."""

    n: int
    q: int
    step: int = 1

    def __post_init__(self) -> None:
        for field_name in ("n", "q", "step"):
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(
                    f"SlidingWindows.{field_name} must be an integer >= 1, got {value!r}"
                )
        if self.stride > self.size:
            # The reference stitching has no value for frames between windows and fails there.
            raise ValueError(
                f"SlidingWindows(n={self.n}, q={self.q}, step={self.step}): stride {self.stride} "
                f"exceeds the window size {self.size}, which would leave unscored gaps between windows"
            )

    @property
    def size(self) -> int:
        """Frames per window W = N*Q + 1."""
        return self.n * self.q + 1

    @property
    def stride(self) -> int:
        """Frames between window starts S = N*step."""
        return self.n * self.step

    def describe(self) -> str:
        """One-line description of the window parameters and their consequences."""
        return (
            f"windows N={self.n}, Q={self.q}, step={self.step} (W={self.size}, stride={self.stride}; "
            "frames after the last full window not scored; shorter videos zero-padded to W, "
            "padded frames scored)"
        )

    def frame_plan(self, num_frames: int) -> tuple[np.ndarray, int]:
        """Scored frames of an ``num_frames``-frame video: ``((S,) int indices, zero frames appended)``."""
        if num_frames < self.size:
            return np.arange(num_frames), self.size - num_frames
        last_start = ((num_frames - self.size) // self.stride) * self.stride
        return np.arange(last_start + self.size), 0


DECIWATCH_WINDOWS = SlidingWindows(n=10, q=1, step=1)
HANET_WINDOWS = SlidingWindows(n=5, q=2, step=1)


@dataclass(frozen=True, eq=False)
class VideoHits:
    """Exact counts of one video: scored frames and per-joint hits for each threshold."""

    name: str
    frames: int
    padded_frames: int
    scored: np.ndarray
    hits: dict[float, np.ndarray]

    def ratios(self, threshold: float) -> np.ndarray:
        """(15,) float64 hits / scored joint-frames (NaN where a joint was never scored)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.hits[threshold] / self.scored

    def to_json(self) -> dict:
        """JSON-ready counts of this video."""
        return {
            "name": self.name,
            "frames": self.frames,
            "padded_frames": self.padded_frames,
            "scored": self.scored.tolist(),
            "hits": {_threshold_key(t): h.tolist() for t, h in self.hits.items()},
        }


@dataclass(frozen=True, eq=False)
class _PCKTable:
    """Per-joint PCK values per threshold plus the summaries derived from them."""

    thresholds: tuple[float, ...]
    per_joint: dict[float, np.ndarray]
    protocol: dict[str, str]

    @property
    def protocol_text(self) -> str:
        """The protocol as one line."""
        return "; ".join(f"{key}: {value}" for key, value in self.protocol.items())

    def groups(self, threshold: float) -> dict[str, float]:
        """Anatomical group values and ``Avg`` (mean of the 15 joints) at one threshold."""
        values = self.per_joint[threshold]
        out = {name: float(values[list(JHMDB.groups[name])].mean()) for name in GROUP_NAMES}
        out["Avg"] = float(values.mean())
        return out

    def avg_13_joints(self, threshold: float) -> float:
        """Mean over the 13 joints without neck and belly (non-official, labelled)."""
        keep = [j for j in range(NUM_JOINTS) if j not in _NECK_AND_BELLY]
        return float(self.per_joint[threshold][keep].mean())

    def avg_7_groups(self, threshold: float) -> float:
        """Mean of the 7 anatomical group values (non-official, labelled)."""
        groups = self.groups(threshold)
        return float(np.mean([groups[name] for name in GROUP_NAMES]))

    def deciwatch_printed_columns(self, threshold: float) -> dict[str, float]:
        """The columns DeciWatch/HANet print, with their (wrong) names, plus their ``Mean``."""
        values = self.per_joint[threshold]
        out = {
            name: float(values[list(ids)].mean()) for name, ids in DECIWATCH_PRINTED_COLUMNS.items()
        }
        out["Mean"] = float(values.mean())
        return out

    def summary_json(self) -> dict:
        """JSON-ready values (fractions in [0, 1]) keyed by threshold strings such as ``"0.2"``."""
        keys = {t: _threshold_key(t) for t in self.thresholds}
        return {
            "per_joint": {keys[t]: self.per_joint[t].tolist() for t in self.thresholds},
            "groups": {keys[t]: self.groups(t) for t in self.thresholds},
            AVG_13_JOINTS_KEY: {keys[t]: self.avg_13_joints(t) for t in self.thresholds},
            AVG_7_GROUPS_KEY: {keys[t]: self.avg_7_groups(t) for t in self.thresholds},
            PRINTED_COLUMNS_KEY: {
                keys[t]: self.deciwatch_printed_columns(t) for t in self.thresholds
            },
            "joint_names": list(JHMDB.joint_names),
            "units": "fraction in [0, 1]",
            "protocol": self.protocol_text,
            "protocol_details": dict(self.protocol),
        }

    def format_table(self) -> str:
        """Table: one row per threshold, columns Head..Ank and Avg in percent, then the protocol."""
        lines = ["PCK   " + "".join(f"{name:>8}" for name in TABLE_COLUMNS)]
        for t in self.thresholds:
            groups = self.groups(t)
            values = [groups[name] for name in GROUP_NAMES] + [groups["Avg"]]
            lines.append(f"@{_threshold_key(t):<5}" + "".join(f"{100.0 * v:8.2f}" for v in values))
        lines.append(f"protocol: {self.protocol_text}")
        return "\n".join(lines)


@dataclass(frozen=True, eq=False)
class JhmdbPCKResult(_PCKTable):
    """PCK of one set of videos: per-joint float64 values per threshold and exact per-video counts."""

    videos: tuple[VideoHits, ...] = ()

    def to_json(self) -> dict:
        """The output JSON: values, labelled extras, protocol and ``hits_per_video``."""
        out = self.summary_json()
        out["hits_per_video"] = [video.to_json() for video in self.videos]
        return out


@dataclass(frozen=True, eq=False)
class JhmdbSplitsResult(_PCKTable):
    """Per-split results and their average (values averaged over the splits, each split equal)."""

    splits: dict[int, JhmdbPCKResult] | None = None

    def to_json(self) -> dict:
        """The output JSON: averaged values plus every split's full result under ``splits``."""
        out = self.summary_json()
        out["splits"] = {f"split{k}": result.to_json() for k, result in (self.splits or {}).items()}
        return out


def box_sizes(bbox: np.ndarray) -> np.ndarray:
    """(F,) float64 reference lengths of ``(F, 4)`` boxes ``[x1, y1, x2, y2]``: corners truncated toward zero, max(w, h)."""
    corners = np.trunc(np.asarray(bbox, dtype=np.float64))
    return np.maximum(corners[:, 2] - corners[:, 0], corners[:, 3] - corners[:, 1])


def evaluate(
    videos: Iterable[Mapping],
    thresholds: Sequence[float] = THRESHOLDS,
    frames: str = "all",
    window: SlidingWindows | None = None,
    split: str = "unspecified",
    mask_invisible: bool = False,
) -> JhmdbPCKResult:
    """Sub-JHMDB PCK of videos ``{name, gt (F,15,2), pred (F,15,2), bbox (F,4), visible (F,15)?}``."""
    thresholds = _checked_thresholds(thresholds)
    if split not in SPLIT_LABELS:
        raise ValueError(f"split must be one of {sorted(SPLIT_LABELS)}, got {split!r}")
    if frames == "all":
        if window is not None:
            raise ValueError(
                "window is only used with frames='windows'; got frames='all' and a window"
            )
    elif frames == "windows":
        if not isinstance(window, SlidingWindows):
            raise ValueError(
                f"frames='windows' needs window=SlidingWindows(n, q, step), got {window!r}"
            )
        if mask_invisible:
            raise ValueError(
                "mask_invisible (a vidpose extension) cannot be combined with the refiners' window mode"
            )
    else:
        raise ValueError(f"frames must be 'all' or 'windows', got {frames!r}")

    counted = [
        _video_hits(video, i, thresholds, window, mask_invisible) for i, video in enumerate(videos)
    ]
    if not counted:
        raise ValueError("no videos to evaluate")
    per_joint = {t: _mean_over_videos(counted, t) for t in thresholds}
    protocol = {
        "rule": _RULE,
        "split": SPLIT_LABELS[split],
        "frames": "all frames" if window is None else window.describe(),
        "visibility": (
            "masked: invisible joints not scored (vidpose extension, NOT the official rule)"
            if mask_invisible
            else "ignored, all 15 joints of every frame scored (official)"
        ),
        "videos": str(len(counted)),
        "numerics": "float64 pixel space (official float32 values differ by ~1e-7)",
    }
    return JhmdbPCKResult(
        thresholds=thresholds, per_joint=per_joint, protocol=protocol, videos=tuple(counted)
    )


def evaluate_splits(
    videos_by_split: Mapping[int, Iterable[Mapping]], **options
) -> JhmdbSplitsResult:
    """Score each split (keys 1, 2, 3) on its own and average the per-joint values over the splits."""
    if "split" in options:
        raise ValueError("evaluate_splits labels each split itself; do not pass split=")
    if not videos_by_split:
        raise ValueError("evaluate_splits needs at least one split")
    unknown = [k for k in videos_by_split if k not in (1, 2, 3)]
    if unknown:
        raise ValueError(f"split keys must be 1, 2 or 3, got {unknown!r}")
    results = {
        k: evaluate(videos_by_split[k], split=f"split{k}", **options)
        for k in sorted(videos_by_split)
    }
    first = next(iter(results.values()))
    per_joint = {
        t: np.mean([r.per_joint[t] for r in results.values()], axis=0) for t in first.thresholds
    }
    keys = ", ".join(str(k) for k in results)
    label = "three-split average" if len(results) == 3 else "average"
    protocol = dict(first.protocol)
    protocol["split"] = (
        f"{label} of splits {keys} (each split scored on its own test list, splits weigh equally)"
    )
    protocol["videos"] = " + ".join(r.protocol["videos"] for r in results.values())
    return JhmdbSplitsResult(
        thresholds=first.thresholds, per_joint=per_joint, protocol=protocol, splits=results
    )


def _threshold_key(threshold: float) -> str:
    return repr(float(threshold))


def _checked_thresholds(thresholds: Sequence[float]) -> tuple[float, ...]:
    values = tuple(float(t) for t in thresholds)
    if not values:
        raise ValueError("thresholds must not be empty")
    if any(not np.isfinite(t) or t < 0 for t in values):
        raise ValueError(f"thresholds must be finite and >= 0, got {values}")
    if len(set(values)) != len(values):
        raise ValueError(f"thresholds must be distinct, got {values}")
    return values


class _VideoArrays(NamedTuple):
    """One video's checked float64 arrays."""

    name: str
    gt: np.ndarray
    pred: np.ndarray
    bbox: np.ndarray
    visible: np.ndarray | None


def _is_number_type(kind: type, allow_bool: bool) -> bool:
    """Whether values of this Python type are numbers (booleans only where allowed)."""
    if issubclass(kind, (bool, np.bool_)):
        return allow_bool
    return issubclass(kind, (int, float, np.integer, np.floating))


def _numeric_values(value: object, where: str, allow_bool: bool) -> np.ndarray:
    """float64 array of a numeric array or nested lists of numbers; strings are rejected.

    numpy would silently read ``"12.5"`` as 12.5 and ``True`` as 1.0.
    """
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "iuf" or (allow_bool and value.dtype.kind == "b"):
            return value.astype(np.float64)
        raise ValueError(f"{where} is not a numeric array (dtype {value.dtype})")
    try:
        items = np.asarray(value, dtype=object)
    except ValueError as error:
        raise ValueError(f"{where} is not a numeric array ({error})") from None
    flat = items.reshape(-1)
    if all(_is_number_type(kind, allow_bool) for kind in set(map(type, flat))):
        return items.astype(np.float64)
    at = next(i for i, v in enumerate(flat) if not _is_number_type(type(v), allow_bool))
    index = [int(i) for i in np.unravel_index(at, items.shape)] if items.ndim else []
    expected = "numbers or booleans" if allow_bool else "numbers (not strings or booleans)"
    raise ValueError(f"{where} has {flat[at]!r} at {index}; expected {expected}")


def _array_field(
    video: Mapping, name: str, field: str, shape_tail: tuple[int, ...], allow_bool: bool = False
) -> np.ndarray:
    if field not in video:
        raise ValueError(f"video {name!r}: missing field {field!r}")
    array = _numeric_values(video[field], f"video {name!r}: field {field!r}", allow_bool)
    if array.ndim != 1 + len(shape_tail) or array.shape[1:] != shape_tail:
        expected = "(F, " + ", ".join(str(d) for d in shape_tail) + ")"
        raise ValueError(
            f"video {name!r}: field {field!r} must have shape {expected}, got {array.shape}"
        )
    if not np.isfinite(array).all():
        frame = int(np.argwhere(~np.isfinite(array))[0][0])
        raise ValueError(
            f"video {name!r}: field {field!r} has a NaN or infinite value at frame {frame}"
        )
    return array


def _checked_video(video: Mapping, position: int) -> _VideoArrays:
    """The arrays of one video after every check that does not depend on the options."""
    if not isinstance(video, Mapping):
        raise TypeError(
            f"video #{position}: expected a mapping with name, gt, pred, bbox; got {type(video).__name__}"
        )
    name = str(video.get("name", f"#{position}"))
    gt = _array_field(video, name, "gt", (NUM_JOINTS, 2))
    pred = _array_field(video, name, "pred", (NUM_JOINTS, 2))
    bbox = _array_field(video, name, "bbox", (4,))
    visible = None
    if video.get("visible") is not None:
        visible = _array_field(video, name, "visible", (NUM_JOINTS,), allow_bool=True)

    num_frames = gt.shape[0]
    if num_frames == 0:
        raise ValueError(f"video {name!r}: has 0 frames")
    for field, array in (("pred", pred), ("bbox", bbox), ("visible", visible)):
        if array is not None and array.shape[0] != num_frames:
            raise ValueError(
                f"video {name!r}: field {field!r} has {array.shape[0]} frames but 'gt' has {num_frames}"
            )

    corners = np.trunc(bbox)
    inverted = (corners[:, 2] < corners[:, 0]) | (corners[:, 3] < corners[:, 1])
    if inverted.any():
        frame = int(np.flatnonzero(inverted)[0])
        raise ValueError(
            f"video {name!r}: field 'bbox' at frame {frame} has x2 < x1 or y2 < y1 after truncation "
            f"({corners[frame].tolist()}): negative box size"
        )
    return _VideoArrays(name, gt, pred, bbox, visible)


def _video_hits(
    video: Mapping,
    position: int,
    thresholds: tuple[float, ...],
    window: SlidingWindows | None,
    mask_invisible: bool,
) -> VideoHits:
    name, gt, pred, bbox, visible = _checked_video(video, position)
    if mask_invisible and visible is None:
        raise ValueError(f"video {name!r}: mask_invisible needs a 'visible' (F, 15) field")
    num_frames = gt.shape[0]
    padded = 0
    if window is not None:
        keep, padded = window.frame_plan(num_frames)
        gt, pred, bbox = (
            np.concatenate([a[keep], np.zeros((padded,) + a.shape[1:])]) for a in (gt, pred, bbox)
        )

    scored_mask = np.ones(gt.shape[:2], dtype=bool)
    if mask_invisible:
        scored_mask = visible > 0
    distance = np.sqrt(((pred - gt) ** 2).sum(axis=-1))
    sizes = box_sizes(bbox)
    hits = {t: ((distance <= t * sizes[:, None]) & scored_mask).sum(axis=0) for t in thresholds}
    return VideoHits(
        name=name,
        frames=int(gt.shape[0]),
        padded_frames=int(padded),
        scored=scored_mask.sum(axis=0),
        hits=hits,
    )


def _mean_over_videos(counted: list[VideoHits], threshold: float) -> np.ndarray:
    ratios = np.stack([video.ratios(threshold) for video in counted])
    never_scored = np.isnan(ratios).all(axis=0)
    if never_scored.any():
        names = [JHMDB.joint_names[j] for j in np.flatnonzero(never_scored)]
        raise ValueError(
            f"joints {names} are not visible in any frame of any video; their PCK is undefined"
        )
    return np.nanmean(ratios, axis=0)


def load_input_json(path: str | Path) -> list[dict]:
    """Videos of an ``IN.json`` file ``{"videos": [{name, gt, pred, bbox, visible?}]}`` (arrays as lists).

    Every video is checked here, so errors name the file as well as the video and field.
    """
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as handle:
            data = json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not valid JSON (truncated or corrupt?): {error}") from None
    if not isinstance(data, dict) or not isinstance(data.get("videos"), list):
        raise ValueError(f"{path}: expected an object with a 'videos' list")
    for i, video in enumerate(data["videos"]):
        if not isinstance(video, dict):
            raise ValueError(f"{path}: videos[{i}] must be an object with name, gt, pred, bbox")
        try:
            _checked_video(video, i)
        except ValueError as error:
            raise ValueError(f"{path}: videos[{i}]: {error}") from None
    return data["videos"]


def save_input_json(path: str | Path, videos: Iterable[Mapping]) -> None:
    """Write videos (arrays ``gt``/``pred`` (F,15,2), ``bbox`` (F,4), ``visible`` (F,15)?) as ``IN.json``."""
    records = []
    for i, video in enumerate(videos):
        record = {"name": str(video.get("name", f"#{i}"))}
        for field in ("gt", "pred", "bbox", "visible"):
            if video.get(field) is not None:
                record[field] = np.asarray(video[field], dtype=np.float64).tolist()
        records.append(record)
    with Path(path).open("w") as handle:
        json.dump({"videos": records}, handle)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m vidpose.evaluation.jhmdb_pck",
        description="Sub-JHMDB PCK with the DeciWatch/HANet rule (per-video ratios, mean over videos).",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--input", type=Path, help="IN.json with {'videos': [{name, gt, pred, bbox}]}"
    )
    source.add_argument(
        "--split-inputs",
        type=Path,
        nargs=3,
        metavar=("SPLIT1", "SPLIT2", "SPLIT3"),
        help="one IN.json per split; reports every split and the three-split average",
    )
    parser.add_argument(
        "--json", type=Path, help="write the results to this JSON file (its folder is created)"
    )
    parser.add_argument("--frames", choices=("all", "windows"), default="all")
    parser.add_argument("--window-n", type=int, help="refiner N (frames between key frames)")
    parser.add_argument("--window-q", type=int, help="refiner Q (window size W = N*Q + 1)")
    parser.add_argument(
        "--window-step", type=int, default=1, help="stride in units of N (stride S = N*step)"
    )
    parser.add_argument(
        "--protocol-label",
        choices=tuple(SPLIT_LABELS),
        default="unspecified",
        help="which test list --input holds (ignored with --split-inputs)",
    )
    parser.add_argument("--thresholds", type=float, nargs="+", default=list(THRESHOLDS))
    parser.add_argument(
        "--mask-invisible",
        action="store_true",
        help="vidpose extension, not official: do not score joints with visible == 0",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: evaluate, print the table, optionally write ``--json``."""
    parser = _parser()
    args = parser.parse_args(argv)
    window = None
    if args.frames == "windows":
        if args.window_n is None or args.window_q is None:
            parser.error("--frames windows needs --window-n and --window-q")
    elif args.window_n is not None or args.window_q is not None:
        parser.error("--window-n/--window-q are only used with --frames windows")
    try:
        out_json = prepare_output_file(args.json) if args.json is not None else None
        if args.frames == "windows":
            window = SlidingWindows(n=args.window_n, q=args.window_q, step=args.window_step)
        options = {
            "thresholds": args.thresholds,
            "frames": args.frames,
            "window": window,
            "mask_invisible": args.mask_invisible,
        }
        if args.input is not None:
            result = evaluate(load_input_json(args.input), split=args.protocol_label, **options)
        else:
            splits = {k + 1: load_input_json(path) for k, path in enumerate(args.split_inputs)}
            result = evaluate_splits(splits, **options)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(result.format_table())
    if out_json is not None:
        try:
            write_json_file(out_json, result.to_json(), indent=1)
        except OSError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
