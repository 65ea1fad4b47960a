"""PoseTrack17/18/21 per-video annotation files -> :class:`VideoPoseIndex`.

One JSON file is one video. The format is detected per file: a dict with ``annolist`` is
PoseTrack17, a dict with ``images``/``annotations``/``categories`` is PoseTrack18 (PoseTrack21
uses the same format). Everything is converted to the 17-slot ``POSETRACK`` layout in 0-based
image pixels (PoseTrack coordinates are already 0-based pixel positions; nothing is shifted).

Training visibility: a PT18/PT21 joint is visible iff its third value ``v > 0`` (the rule of
DCPose and mmpose); a joint with coordinates but ``v == 0`` gets no training target and is
counted in ``index.skipped``. poseval instead counts every triplet except ``(0, 0, 0)``; the
evaluator reads the files itself and applies its own rules. Every listed PT17 point is
visible (poseval ignores ``is_visible`` too).

See ``docs/data.md`` for the error/skip policy and the default folder layouts.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from vidpose.data.index import FrameRecord, PersonAnnotation, SkipLog, VideoPoseIndex, VideoRecord
from vidpose.data.keypoints import POSETRACK, POSETRACK_TO_POSEVAL
from vidpose.registry import DATASETS

__all__ = [
    "BOX_FROM_KEYPOINTS_ENLARGE",
    "FAR_OUTSIDE_MARGIN",
    "SKIP_BAD_BOX",
    "SKIP_BAD_HEAD_BOX",
    "SKIP_FAR_OUTSIDE",
    "SKIP_NO_BOX",
    "SKIP_SMALL_IGNORE_REGION",
    "SKIP_UNLABELLED_JOINT",
    "box_from_keypoints",
    "load_json_file",
    "load_posetrack",
    "read_posetrack_file",
    "verify_images_exist",
]

logger = logging.getLogger(__name__)

# PoseTrack18's own `bbox` is the extent of the visible joints scaled by 1.3 about its centre
# (checked on all 14 people of the real sample to 1e-12), and poseval's PT17 -> PT18 converter
# builds boxes the same way; a file without `bbox` gets this box.
BOX_FROM_KEYPOINTS_ENLARGE = 1.3
# A visible joint further outside the frame than this fraction of the frame size is an
# annotation error; real PoseTrack18 joints lie up to a few percent outside (head tops).
FAR_OUTSIDE_MARGIN = 0.5

SKIP_BAD_BOX = "person bbox NaN or with non-positive width/height (person skipped)"
SKIP_NO_BOX = "person without bbox whose visible joints span no area (person skipped)"
SKIP_FAR_OUTSIDE = "visible joint far outside the frame (person skipped)"
SKIP_UNLABELLED_JOINT = (
    "joint with coordinates but visibility 0 (no training target; poseval counts it)"
)
SKIP_BAD_HEAD_BOX = "head box NaN or with non-positive size (head box dropped)"
SKIP_SMALL_IGNORE_REGION = "ignore region with fewer than 3 vertices (region skipped)"

_POSEVAL_SEQUENCE_TYPES = {"mpii": 1, "bonn": 2, "mpiinew": 3}
_REQUIRED_NAMES = tuple(
    n for i, n in enumerate(POSETRACK.joint_names) if i not in POSETRACK.never_annotated
)
_SLOT_OF_POSEVAL_ID = {int(pid): slot for slot, pid in enumerate(POSETRACK_TO_POSEVAL) if pid >= 0}


# --- JSON field checks shared by the annotation readers ------------------------------------


def load_json_file(path: str | Path) -> Any:
    """Parse a JSON file; a corrupt or truncated file is a ValueError naming it and the position."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
            "the file is corrupt or truncated"
        ) from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a UTF-8 JSON file ({exc.reason})") from None


def _show(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def get_field(obj: Any, key: str, where: str) -> Any:
    """``obj[key]`` of a JSON object; a missing key or a non-object is a ValueError at ``where``."""
    if not isinstance(obj, Mapping):
        raise ValueError(f"{where}: expected a JSON object, got {_show(obj)}")
    if key not in obj:
        raise ValueError(f"{where}: missing required field {key!r}")
    return obj[key]


def as_int(value: Any, where: str) -> int:
    """An integer JSON value (booleans and floats are rejected)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{where}: expected an integer, got {_show(value)}")
    return value


def as_bool(value: Any, where: str) -> bool:
    """A boolean JSON value; 0 and 1 are accepted (PoseTrack17 writes flags as numbers)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ValueError(f"{where}: expected true/false (or 0/1), got {_show(value)}")


def as_str(value: Any, where: str) -> str:
    """A non-empty string JSON value."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}: expected a non-empty string, got {_show(value)}")
    return value


def as_list(value: Any, where: str) -> list:
    """A JSON array."""
    if not isinstance(value, list):
        raise ValueError(f"{where}: expected a list, got {_show(value)}")
    return value


def as_number(value: Any, where: str) -> float:
    """A JSON number (NaN allowed: callers decide whether it is an error)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}: expected a number, got {_show(value)}")
    return float(value)


def as_numbers(value: Any, where: str, length: int | None = None) -> np.ndarray:
    """A JSON array of numbers as ``(N,)`` float64, optionally of an exact length."""
    items = as_list(value, where)
    if length is not None and len(items) != length:
        raise ValueError(f"{where}: expected {length} numbers, got {len(items)}")
    if not {type(item) for item in items} <= {int, float}:  # exact types: rejects bool, str, None
        i, item = next((i, v) for i, v in enumerate(items) if type(v) not in (int, float))
        raise ValueError(f"{where}[{i}]: expected a number, got {_show(item)}")
    return np.asarray(items, dtype=np.float64).reshape(len(items))


def _unwrap(value: Any, where: str) -> Any:
    # PoseTrack17 files (converted from Matlab) wrap scalars in one-element lists.
    if isinstance(value, list):
        if len(value) != 1:
            raise ValueError(
                f"{where}: expected one value (or a one-element list), got {len(value)} values"
            )
        return value[0]
    return value


def frame_number(file_name: str, where: str) -> int:
    """Frame number encoded in an image file name (``.../000012.jpg`` -> 12)."""
    stem = os.path.basename(file_name).split(".")[0].split("_")[0]
    if not stem.isdigit():
        raise ValueError(f"{where}: cannot read a frame number from file name {file_name!r}")
    return int(stem)


# --- people ------------------------------------------------------------------------------------


def box_from_keypoints(
    keypoints: np.ndarray, visible: np.ndarray, enlarge: float = BOX_FROM_KEYPOINTS_ENLARGE
) -> np.ndarray | None:
    """``[x, y, w, h]`` float32: the visible ``(K, 2)`` joints' extent scaled about its centre.

    None when fewer than two distinct visible joints leave a zero width or height.
    """
    points = np.asarray(keypoints, dtype=np.float64)[np.asarray(visible) > 0]
    if len(points) == 0:
        return None
    lo, hi = points.min(axis=0), points.max(axis=0)
    size = (hi - lo) * enlarge
    if size[0] <= 0 or size[1] <= 0:
        return None
    centre = (lo + hi) / 2
    return np.array([*(centre - size / 2), *size], dtype=np.float32)


def _valid_xywh(box: np.ndarray) -> bool:
    x, y, w, h = (float(v) for v in box)
    return all(map(math.isfinite, (x, y, w, h))) and w > 0 and h > 0


def _valid_xyxy(box: np.ndarray) -> bool:
    x1, y1, x2, y2 = (float(v) for v in box)
    return all(map(math.isfinite, (x1, y1, x2, y2))) and x2 > x1 and y2 > y1


def _make_person(
    keypoints: np.ndarray,
    visible: np.ndarray,
    bbox_xywh: np.ndarray | None,
    head_box_xyxy: np.ndarray | None,
    track_id: int,
    annotation_id: int | None,
    frame: FrameRecord,
    where: str,
    label: str,
    skipped: SkipLog,
) -> PersonAnnotation | None:
    """Check a converted person ``(17, 2)`` + ``(17,)``; None (counted) for a documented skip."""
    shown = visible > 0
    bad = shown & ~np.isfinite(keypoints).all(axis=1)
    if bad.any():
        slot = int(bad.argmax())
        raise ValueError(
            f"{where}: joint {POSETRACK.joint_names[slot]!r} is marked visible but has "
            f"non-finite coordinates {tuple(keypoints[slot].tolist())}"
        )
    keypoints = np.where(shown[:, None], keypoints, 0.0)
    if frame.width is not None and frame.height is not None and shown.any():
        size = np.array([frame.width, frame.height], dtype=np.float64)
        points = keypoints[shown]
        low, high = -FAR_OUTSIDE_MARGIN * size, (1 + FAR_OUTSIDE_MARGIN) * size
        if (points < low).any() or (points > high).any():
            skipped.add(SKIP_FAR_OUTSIDE, label)
            return None
    if bbox_xywh is None:
        bbox_xywh = box_from_keypoints(keypoints, visible)
        if bbox_xywh is None:
            skipped.add(SKIP_NO_BOX, label)
            return None
    elif not _valid_xywh(bbox_xywh):
        skipped.add(SKIP_BAD_BOX, label)
        return None
    if head_box_xyxy is not None and not _valid_xyxy(head_box_xyxy):
        skipped.add(SKIP_BAD_HEAD_BOX, label)
        head_box_xyxy = None
    return PersonAnnotation(
        track_id=track_id,
        keypoints=keypoints.astype(np.float32),
        visible=visible.astype(np.float32),
        bbox_xywh=np.asarray(bbox_xywh, dtype=np.float32),
        head_box_xyxy=None if head_box_xyxy is None else head_box_xyxy.astype(np.float32),
        annotation_id=annotation_id,
    )


def _polygon(xs: np.ndarray, ys: np.ndarray, label: str, skipped: SkipLog) -> np.ndarray | None:
    if len(xs) < 3:
        skipped.add(SKIP_SMALL_IGNORE_REGION, label)
        return None
    return np.stack([xs, ys], axis=1).astype(np.float32)


def _check_temporal_order(keys: list[int], names: list[str], path: Path, what: str) -> None:
    for i in range(1, len(keys)):
        if keys[i] <= keys[i - 1]:
            raise ValueError(
                f"{path}: frames are not in temporal order: {what} {keys[i - 1]} "
                f"({names[i - 1]}) is followed by {keys[i]} ({names[i]}); vidpose keeps the "
                "file's frame order (poseval pairs frames by position) and requires it to increase"
            )


def _check_single_folder(names: list[str], path: Path) -> None:
    folders = sorted({os.path.dirname(n) for n in names})
    if len(folders) > 1:
        raise ValueError(
            f"{path}: frames come from {len(folders)} folders ({folders[:3]}); "
            "one file must hold one video"
        )


# --- PoseTrack18 / 21 --------------------------------------------------------------------------


def _category_slots(data: Mapping, path: Path) -> np.ndarray:
    """POSETRACK slot of each name in the file's person category keypoint list, ``(N,)`` int."""
    categories = as_list(get_field(data, "categories", str(path)), f"{path}: categories")
    people = [c for c in categories if isinstance(c, Mapping) and c.get("name") == "person"]
    if len(people) != 1:
        raise ValueError(
            f"{path}: categories: expected exactly one category named 'person', found {len(people)}"
        )
    where = f"{path}: categories[person].keypoints"
    names = [
        as_str(n, f"{where}[{i}]")
        for i, n in enumerate(as_list(get_field(people[0], "keypoints", where), where))
    ]
    unknown = [n for n in names if n not in POSETRACK.joint_names]
    if unknown:
        raise ValueError(
            f"{where}: unknown joint names {unknown}; known: {list(POSETRACK.joint_names)}"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"{where}: duplicate joint names in {names}")
    missing = [n for n in _REQUIRED_NAMES if n not in names]
    if missing:
        raise ValueError(
            f"{where}: joints {missing} are missing (all 15 poseval joints must be listed)"
        )
    return np.array([POSETRACK.index(n) for n in names], dtype=np.int64)


def _pt18_ignore_regions(
    image: Mapping, where: str, label: str, skipped: SkipLog
) -> list[np.ndarray]:
    if "ignore_regions_x" not in image and "ignore_regions_y" not in image:
        return []
    xs = as_list(get_field(image, "ignore_regions_x", where), f"{where}.ignore_regions_x")
    ys = as_list(get_field(image, "ignore_regions_y", where), f"{where}.ignore_regions_y")
    if len(xs) != len(ys):
        raise ValueError(
            f"{where}: {len(xs)} ignore_regions_x polygons but {len(ys)} ignore_regions_y polygons"
        )
    regions = []
    for r, (rx, ry) in enumerate(zip(xs, ys)):
        px = as_numbers(rx, f"{where}.ignore_regions_x[{r}]")
        py = as_numbers(ry, f"{where}.ignore_regions_y[{r}]", len(px))
        polygon = _polygon(px, py, label, skipped)
        if polygon is not None:
            regions.append(polygon)
    return regions


def _optional_size(image: Mapping, key: str, where: str) -> int | None:
    if image.get(key) is None:
        return None
    value = as_int(image[key], f"{where}.{key}")
    if value <= 0:
        raise ValueError(f"{where}.{key}: expected a positive integer, got {value}")
    return value


def _read_pt18(data: Mapping, path: Path, skipped: SkipLog) -> VideoRecord:
    slots = _category_slots(data, path)
    images = as_list(get_field(data, "images", str(path)), f"{path}: images")
    annotations = as_list(get_field(data, "annotations", str(path)), f"{path}: annotations")
    if not images:
        raise ValueError(f"{path}: 'images' is empty; a video needs at least one frame")

    frames: list[FrameRecord] = []
    by_id: dict[int, FrameRecord] = {}
    labeled_flags: list[bool | None] = []
    for i, image in enumerate(images):
        where = f"{path}: images[{i}]"
        image_id = as_int(get_field(image, "id", where), f"{where}.id")
        if image_id in by_id:
            raise ValueError(
                f"{where}: duplicate image id {image_id} "
                f"(also images[{by_id[image_id].frame_index}])"
            )
        file_name = as_str(get_field(image, "file_name", where), f"{where}.file_name")
        labeled_flags.append(
            as_bool(image["is_labeled"], f"{where}.is_labeled") if "is_labeled" in image else None
        )
        label = f"{path.name} image {image_id}"
        frame = FrameRecord(
            image_id=image_id,
            file_name=file_name,
            frame_index=i,
            is_labeled=False,
            ignore_regions=_pt18_ignore_regions(image, where, label, skipped),
            width=_optional_size(image, "width", where),
            height=_optional_size(image, "height", where),
        )
        frames.append(frame)
        by_id[image_id] = frame

    names = [f.file_name for f in frames]
    _check_single_folder(names, path)
    if all("frame_id" in image for image in images):
        keys = [
            as_int(image["frame_id"], f"{path}: images[{i}].frame_id")
            for i, image in enumerate(images)
        ]
        _check_temporal_order(keys, names, path, "frame_id")
    else:
        keys = [frame_number(n, f"{path}: images[{i}].file_name") for i, n in enumerate(names)]
        _check_temporal_order(keys, names, path, "frame number")

    unknown_ids: list[int] = []
    for j, ann in enumerate(annotations):
        where = f"{path}: annotations[{j}]"
        image_id = as_int(get_field(ann, "image_id", where), f"{where}.image_id")
        frame = by_id.get(image_id)
        if frame is None:
            unknown_ids.append(image_id)
            continue
        person = _pt18_person(ann, slots, frame, where, path, skipped)
        if person is not None:
            frame.people.append(person)
    if unknown_ids:
        raise ValueError(
            f"{path}: {len(unknown_ids)} annotations reference image ids not listed in 'images' "
            f"(e.g. {sorted(set(unknown_ids))[:3]}); poseval would silently ignore them, "
            "vidpose does not"
        )
    for frame, flag in zip(frames, labeled_flags):
        frame.is_labeled = flag if flag is not None else bool(frame.people)
    return VideoRecord(video_id=path.stem, frames=frames, source_file=str(path))


def _pt18_person(
    ann: Mapping, slots: np.ndarray, frame: FrameRecord, where: str, path: Path, skipped: SkipLog
) -> PersonAnnotation | None:
    track_id = as_int(get_field(ann, "track_id", where), f"{where}.track_id")
    label = f"{path.name} image {frame.image_id} track {track_id}"
    triplets = as_numbers(
        get_field(ann, "keypoints", where), f"{where}.keypoints", 3 * len(slots)
    ).reshape(-1, 3)
    if not np.isfinite(triplets[:, 2]).all():
        raise ValueError(
            f"{where}.keypoints: visibility values must be finite, got {triplets[:, 2].tolist()}"
        )
    keypoints = np.zeros((POSETRACK.num_joints, 2), dtype=np.float64)
    visible = np.zeros(POSETRACK.num_joints, dtype=np.float64)
    keypoints[slots] = triplets[:, :2]
    visible[slots] = triplets[:, 2] > 0
    for slot in np.flatnonzero((visible == 0) & (keypoints != 0).any(axis=1)):
        skipped.add(SKIP_UNLABELLED_JOINT, f"{label} {POSETRACK.joint_names[slot]}")
    bbox = as_numbers(ann["bbox"], f"{where}.bbox", 4) if ann.get("bbox") is not None else None
    head = None
    if ann.get("bbox_head") is not None:
        hx, hy, hw, hh = as_numbers(ann["bbox_head"], f"{where}.bbox_head", 4)
        head = np.array([hx, hy, hx + hw, hy + hh])
    annotation_id = as_int(ann["id"], f"{where}.id") if ann.get("id") is not None else None
    return _make_person(
        keypoints, visible, bbox, head, track_id, annotation_id, frame, where, label, skipped
    )


# --- PoseTrack17 -------------------------------------------------------------------------------


def _pt17_image_id(file_name: str, where: str) -> int:
    # poseval's own id scheme (posetrack18_fname2id): T SSSSSS FFFF with T = 1 mpii, 2 bonn,
    # 3 mpiinew, S the sequence number, F the frame number of the file name.
    folder = os.path.basename(os.path.dirname(file_name))
    tokens = folder.split("_")
    if len(tokens) < 2 or not tokens[0].isdigit() or tokens[1] not in _POSEVAL_SEQUENCE_TYPES:
        raise ValueError(
            f"{where}: cannot derive an image id from folder {folder!r} of {file_name!r}; "
            "PoseTrack17 frames must live in "
            f"'<number>_<{'|'.join(_POSEVAL_SEQUENCE_TYPES)}>[_suffix]/<frame>.jpg'"
        )
    frame = frame_number(file_name, where)
    if frame >= 10000:
        raise ValueError(
            f"{where}: frame number {frame} of {file_name!r} does not fit poseval's "
            "4-digit image ids"
        )
    return _POSEVAL_SEQUENCE_TYPES[tokens[1]] * 10_000_000_000 + int(tokens[0]) * 10_000 + frame


def _pt17_ignore_regions(
    entry: Mapping, where: str, label: str, skipped: SkipLog
) -> list[np.ndarray]:
    regions = []
    for r, region in enumerate(
        as_list(entry.get("ignore_regions") or [], f"{where}.ignore_regions")
    ):
        rwhere = f"{where}.ignore_regions[{r}]"
        points = as_list(get_field(region, "point", rwhere), f"{rwhere}.point")
        xs = np.array(
            [
                as_number(_unwrap(get_field(p, "x", rwhere), rwhere), f"{rwhere}.point.x")
                for p in points
            ]
        )
        ys = np.array(
            [
                as_number(_unwrap(get_field(p, "y", rwhere), rwhere), f"{rwhere}.point.y")
                for p in points
            ]
        )
        polygon = _polygon(xs, ys, label, skipped)
        if polygon is not None:
            regions.append(polygon)
    return regions


def _pt17_person(
    rect: Mapping, frame: FrameRecord, where: str, path: Path, skipped: SkipLog
) -> PersonAnnotation | None:
    track_id = as_int(
        _unwrap(get_field(rect, "track_id", where), f"{where}.track_id"), f"{where}.track_id"
    )
    label = f"{path.name} image {frame.image_id} track {track_id}"
    corners = [k for k in ("x1", "y1", "x2", "y2") if k in rect]
    if corners and len(corners) != 4:
        raise ValueError(f"{where}: head box needs all of x1, y1, x2, y2; found only {corners}")
    head = (
        np.array(
            [
                as_number(_unwrap(rect[k], f"{where}.{k}"), f"{where}.{k}")
                for k in ("x1", "y1", "x2", "y2")
            ]
        )
        if corners
        else None
    )
    keypoints = np.zeros((POSETRACK.num_joints, 2), dtype=np.float64)
    visible = np.zeros(POSETRACK.num_joints, dtype=np.float64)
    points = []
    if rect.get("annopoints"):
        container = _unwrap(rect["annopoints"], f"{where}.annopoints")
        points = as_list(
            get_field(container, "point", f"{where}.annopoints"), f"{where}.annopoints.point"
        )
    for p, point in enumerate(points):
        pwhere = f"{where}.annopoints.point[{p}]"
        joint_id = as_int(_unwrap(get_field(point, "id", pwhere), f"{pwhere}.id"), f"{pwhere}.id")
        if joint_id not in _SLOT_OF_POSEVAL_ID:
            raise ValueError(
                f"{pwhere}.id: unknown PoseTrack17 joint id {joint_id} (expected 0-14)"
            )
        slot = _SLOT_OF_POSEVAL_ID[joint_id]
        if visible[slot]:
            raise ValueError(f"{pwhere}.id: joint id {joint_id} appears twice in this person")
        keypoints[slot, 0] = as_number(
            _unwrap(get_field(point, "x", pwhere), f"{pwhere}.x"), f"{pwhere}.x"
        )
        keypoints[slot, 1] = as_number(
            _unwrap(get_field(point, "y", pwhere), f"{pwhere}.y"), f"{pwhere}.y"
        )
        visible[slot] = 1.0
    return _make_person(
        keypoints, visible, None, head, track_id, None, frame, where, label, skipped
    )


def _read_pt17(data: Mapping, path: Path, skipped: SkipLog) -> VideoRecord:
    annolist = as_list(data["annolist"], f"{path}: annolist")
    if not annolist:
        raise ValueError(f"{path}: 'annolist' is empty; a video needs at least one frame")
    frames: list[FrameRecord] = []
    by_id: dict[int, int] = {}
    for i, entry in enumerate(annolist):
        where = f"{path}: annolist[{i}]"
        image = _unwrap(get_field(entry, "image", where), f"{where}.image")
        file_name = as_str(
            _unwrap(get_field(image, "name", f"{where}.image"), f"{where}.image.name"),
            f"{where}.image.name",
        )
        image_id = _pt17_image_id(file_name, f"{where}.image.name")
        if image_id in by_id:
            raise ValueError(
                f"{where}: frame {file_name!r} duplicates annolist[{by_id[image_id]}] "
                f"(same image id {image_id})"
            )
        by_id[image_id] = i
        label = f"{path.name} image {image_id}"
        frame = FrameRecord(
            image_id=image_id,
            file_name=file_name,
            frame_index=i,
            is_labeled=False,
            ignore_regions=_pt17_ignore_regions(entry, where, label, skipped),
        )
        rects = as_list(entry.get("annorect") or [], f"{where}.annorect")
        for r, rect in enumerate(rects):
            person = _pt17_person(rect, frame, f"{where}.annorect[{r}]", path, skipped)
            if person is not None:
                frame.people.append(person)
        if "is_labeled" in entry:
            frame.is_labeled = as_bool(
                _unwrap(entry["is_labeled"], f"{where}.is_labeled"), f"{where}.is_labeled"
            )
        else:
            frame.is_labeled = bool(rects)
        frames.append(frame)
    names = [f.file_name for f in frames]
    _check_single_folder(names, path)
    _check_temporal_order([f.image_id for f in frames], names, path, "image id")
    return VideoRecord(video_id=path.stem, frames=frames, source_file=str(path))


# --- files and datasets ------------------------------------------------------------------------


def read_posetrack_file(path: str | Path, skipped: SkipLog | None = None) -> VideoRecord:
    """Read one PoseTrack17/18/21 per-video JSON file into a VideoRecord (17 slots, 0-based pixels).

    Documented skips are counted in ``skipped``; without one they are logged as a warning.
    """
    path = Path(path)
    log = skipped if skipped is not None else SkipLog()
    data = load_json_file(path)
    if not isinstance(data, Mapping):
        raise ValueError(
            f"{path}: expected a JSON object with 'annolist' (PoseTrack17) or 'images' "
            f"(PoseTrack18/21), got {_show(data)}"
        )
    if "annolist" in data:
        video = _read_pt17(data, path, log)
    elif "images" in data or "annotations" in data:
        video = _read_pt18(data, path, log)
    else:
        raise ValueError(
            f"{path}: neither 'annolist' (PoseTrack17) nor 'images'/'annotations' "
            f"(PoseTrack18/21) found; keys: {sorted(data)}"
        )
    if skipped is None and log.total():
        logger.warning("%s: %s", path, log.summary())
    return video


def verify_images_exist(index: VideoPoseIndex) -> None:
    """Raise FileNotFoundError naming the frames of ``index`` whose image file is absent."""
    missing = [
        os.path.join(index.image_root, frame.file_name)
        for video in index.videos
        for frame in video.frames
        if not os.path.isfile(os.path.join(index.image_root, frame.file_name))
    ]
    if missing:
        raise FileNotFoundError(
            f"{index.name}: {len(missing)} of {index.num_frames()} frames are missing on disk, "
            f"e.g. {missing[:5]}"
        )


def _check_unique_image_ids(videos: list[VideoRecord]) -> None:
    seen: dict[int, str] = {}
    for video in videos:
        for frame in video.frames:
            other = seen.setdefault(frame.image_id, video.source_file or video.video_id)
            if other != (video.source_file or video.video_id):
                raise ValueError(
                    f"image id {frame.image_id} appears in both {other} and {video.source_file}"
                )


def load_posetrack(
    ann_dir: str | Path, image_root: str | Path, name: str, check_images: bool = False
) -> VideoPoseIndex:
    """Index every ``*.json`` of ``ann_dir`` (sorted by name), one video per file.

    ``image_root`` is the folder the files' frame names are relative to; ``check_images``
    verifies every frame exists on disk (off by default: one stat per frame).
    """
    ann_dir = Path(ann_dir)
    if not ann_dir.is_dir():
        raise FileNotFoundError(f"{name}: annotation folder {ann_dir} does not exist")
    files = sorted(ann_dir.glob("*.json"))
    if not files:
        raise FileNotFoundError(f"{name}: no *.json annotation files in {ann_dir}")
    skipped = SkipLog()
    videos = [read_posetrack_file(f, skipped) for f in files]
    _check_unique_image_ids(videos)
    index = VideoPoseIndex(
        name=name, layout=POSETRACK, image_root=str(image_root), videos=videos, skipped=skipped
    )
    if check_images:
        verify_images_exist(index)
    return index


@DATASETS.register("posetrack18")
def posetrack18(
    root: str,
    split: str,
    ann_dir: str | None = None,
    image_root: str | None = None,
    check_images: bool = False,
) -> VideoPoseIndex:
    """PoseTrack18: ``<root>/annotations/<split>/*.json``, frame names relative to ``<root>``."""
    return load_posetrack(
        ann_dir or os.path.join(root, "annotations", split),
        image_root or root,
        f"posetrack18/{split}",
        check_images,
    )


@DATASETS.register("posetrack21")
def posetrack21(
    root: str,
    split: str,
    ann_dir: str | None = None,
    image_root: str | None = None,
    check_images: bool = False,
) -> VideoPoseIndex:
    """PoseTrack21: ``<root>/posetrack_data/<split>/*.json``, frames relative to ``<root>``."""
    return load_posetrack(
        ann_dir or os.path.join(root, "posetrack_data", split),
        image_root or root,
        f"posetrack21/{split}",
        check_images,
    )


@DATASETS.register("posetrack17")
def posetrack17(
    root: str,
    split: str,
    ann_dir: str | None = None,
    image_root: str | None = None,
    check_images: bool = False,
) -> VideoPoseIndex:
    """PoseTrack17: ``<root>/posetrack_data/annotations/<split>/*.json``; frames there too."""
    data_root = os.path.join(root, "posetrack_data")
    return load_posetrack(
        ann_dir or os.path.join(data_root, "annotations", split),
        image_root or data_root,
        f"posetrack17/{split}",
        check_images,
    )
