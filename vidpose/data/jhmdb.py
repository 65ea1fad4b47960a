"""Sub-JHMDB (15 puppet joints, ``JHMDB`` layout) -> :class:`VideoPoseIndex`.

Two sources: the raw dataset (``joint_positions``, ``Rename_Images``, ``puppet_mask``,
``sub_splits``) and MMPose's COCO-style JSON (``annotations/Sub{k}_{train,test}.json``).
Both store 1-based Matlab pixel coordinates; the index is 0-based (1 is subtracted on load),
so GT read here and predictions written in index coordinates share one convention. A PCK
writer that reproduces files in the original 1-based convention must add 1 to both.
Every joint of every frame is visible: Sub-JHMDB has no visibility flag.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Mapping
from itertools import pairwise
from pathlib import Path

import numpy as np
import scipy.io

from vidpose.data.index import FrameRecord, PersonAnnotation, SkipLog, VideoPoseIndex, VideoRecord
from vidpose.data.keypoints import JHMDB
from vidpose.data.posetrack import (
    SKIP_BAD_BOX,
    as_bool,
    as_int,
    as_list,
    as_numbers,
    as_str,
    frame_number,
    get_field,
    load_json_file,
    verify_images_exist,
)
from vidpose.registry import DATASETS

__all__ = [
    "IMAGE_ID_STRIDE",
    "JOINT_BOX_MARGIN",
    "PROTOCOLS",
    "SKIP_EMPTY_MASK",
    "SKIP_INCOMPLETE_VIDEO",
    "SKIP_NO_MASK",
    "joint_box",
    "load_jhmdb_coco",
    "load_jhmdb_raw",
    "mask_box",
    "read_jhmdb_clip",
    "read_split_file",
    "split_clips",
]

PROTOCOLS = ("split1", "split2", "split3", "union")
SPLIT_FLAGS = {"train": 1, "val": 2, "test": 2}  # split-file flags; val is the test list
# Margin on each side of the joints' extent, as a fraction of its larger side, for frames
# without a puppet mask (the official box is the mask extent, which this only approximates).
JOINT_BOX_MARGIN = 0.1
# Raw layout image ids: (video position in the index + 1) * 10000 + 1-based frame number.
IMAGE_ID_STRIDE = 10_000

SKIP_NO_MASK = "clip without puppet_mask.mat (boxes from the joints, not the official mask box)"
SKIP_EMPTY_MASK = "frame with an empty or one-pixel puppet mask (box from the joints)"
SKIP_INCOMPLETE_VIDEO = "video with fewer frames in the JSON than its nframes (none invented)"

_COCO_NAME_ALIASES = {"head": "face"}  # MMPose calls JHMDB's face joint "head"
_SPLIT_LINE = re.compile(r"^(\S+)\.avi\s+(\d+)$")


def joint_box(joints: np.ndarray, margin: float = JOINT_BOX_MARGIN) -> np.ndarray | None:
    """``[x, y, w, h]`` float32: the ``(K, 2)`` joints' extent plus ``margin`` x its larger side.

    The margin is added on every side; None when all joints coincide.
    """
    lo, hi = joints.min(axis=0), joints.max(axis=0)
    pad = margin * float(np.max(hi - lo))
    w, h = hi - lo + 2 * pad
    if w <= 0 or h <= 0:
        return None
    return np.array([lo[0] - pad, lo[1] - pad, w, h], dtype=np.float32)


def mask_box(mask: np.ndarray) -> np.ndarray | None:
    """``[x1, y1, x2 - x1, y2 - y1]`` float32: first/last non-zero column and row of ``(H, W)``.

    0-based. Width and height are index differences, so ``max(w, h)`` is the PCK reference
    size of the official box. None for an empty mask or an extent of zero width or height.
    """
    cols = np.flatnonzero(mask.any(axis=0))
    rows = np.flatnonzero(mask.any(axis=1))
    if len(cols) == 0 or cols[-1] == cols[0] or rows[-1] == rows[0]:
        return None
    return np.array([cols[0], rows[0], cols[-1] - cols[0], rows[-1] - rows[0]], dtype=np.float32)


def _person(
    joints: np.ndarray,
    visible: np.ndarray,
    bbox: np.ndarray,
    track_id: int = 0,
    annotation_id: int | None = None,
) -> PersonAnnotation:
    return PersonAnnotation(
        track_id=track_id,
        keypoints=joints.astype(np.float32),
        visible=visible.astype(np.float32),
        bbox_xywh=bbox.astype(np.float32),
        annotation_id=annotation_id,
    )


# --- raw layout --------------------------------------------------------------------------------


def read_split_file(path: str | Path) -> list[tuple[str, int]]:
    """``(clip, flag)`` per line ``<clip>.avi <flag>`` of a split file (flag 1 train, 2 test)."""
    path = Path(path)
    entries: list[tuple[str, int]] = []
    seen: set[str] = set()
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        match = _SPLIT_LINE.match(line.strip())
        if match is None:
            raise ValueError(f"{path}:{number}: expected '<clip>.avi <flag>', got {line!r}")
        clip, flag = match.group(1), int(match.group(2))
        if flag not in (1, 2):
            raise ValueError(f"{path}:{number}: flag must be 1 (train) or 2 (test), got {flag}")
        if clip in seen:
            raise ValueError(f"{path}:{number}: clip {clip!r} is listed twice")
        seen.add(clip)
        entries.append((clip, flag))
    return entries


def split_clips(root: str | Path, protocol: str, split: str) -> list[tuple[str, str, int]]:
    """``(class, clip, k)`` of every clip of ``split`` under ``protocol`` (classes sorted).

    Clips keep their split-file order. ``union`` concatenates splits 1, 2, 3: a clip appears
    once per split whose list has it.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"jhmdb: unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    if split not in SPLIT_FLAGS:
        raise ValueError(f"jhmdb: unknown split {split!r}; expected one of {sorted(SPLIT_FLAGS)}")
    folder = Path(root) / "sub_splits"
    ks = (1, 2, 3) if protocol == "union" else (int(protocol[-1]),)
    clips = []
    for k in ks:
        suffix = f"_test_split_{k}.txt"
        files = sorted(folder.glob(f"*{suffix}"))
        if not files:
            raise FileNotFoundError(f"jhmdb: no '<class>{suffix}' files in {folder}")
        for file in files:
            class_name = file.name[: -len(suffix)]
            wanted = SPLIT_FLAGS[split]
            clips.extend(
                (class_name, clip, k) for clip, flag in read_split_file(file) if flag == wanted
            )
    return clips


def _loadmat_variable(path: Path, variable: str) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        contents = scipy.io.loadmat(str(path))
    except Exception as exc:  # scipy raises several types for corrupt or v7.3 (HDF5) files
        raise ValueError(
            f"{path}: cannot read as a MATLAB v5 file ({type(exc).__name__}: {exc})"
        ) from exc
    if variable not in contents:
        names = sorted(k for k in contents if not k.startswith("__"))
        raise ValueError(f"{path}: variable {variable!r} not found; variables: {names}")
    return np.asarray(contents[variable])


def _png_size(path: Path) -> tuple[int, int]:
    with open(path, "rb") as f:
        header = f.read(24)
    if len(header) < 24 or header[:8] != b"\x89PNG\r\n\x1a\n" or header[12:16] != b"IHDR":
        raise ValueError(f"{path}: not a PNG file")
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def _read_pos_img(joints_file: Path) -> np.ndarray:
    """``(T, 15, 2)`` 0-based joints from ``pos_img`` (2, 15, T), 1-based."""
    pos_img = _loadmat_variable(joints_file, "pos_img").astype(np.float64)
    if pos_img.shape == (2, JHMDB.num_joints):  # Matlab drops the trailing 1 of a 1-frame clip
        pos_img = pos_img[:, :, None]
    if pos_img.ndim != 3 or pos_img.shape[:2] != (2, JHMDB.num_joints) or pos_img.shape[2] == 0:
        raise ValueError(f"{joints_file}: pos_img must be 2 x 15 x T, got shape {pos_img.shape}")
    if pos_img.shape[2] >= IMAGE_ID_STRIDE:
        raise ValueError(f"{joints_file}: {pos_img.shape[2]} frames exceed the image id scheme")
    bad = np.argwhere(~np.isfinite(pos_img).all(axis=0))
    if len(bad):
        joint, t = bad[0]
        raise ValueError(
            f"{joints_file}: pos_img has non-finite values, e.g. joint "
            f"{JHMDB.joint_names[joint]!r} of frame {t + 1}"
        )
    return pos_img.transpose(2, 1, 0) - 1.0


def _mask_boxes(
    mask_file: Path, height: int, width: int, num_frames: int, clip: str, skipped: SkipLog
) -> list[np.ndarray | None]:
    if not mask_file.is_file():
        skipped.add(SKIP_NO_MASK, clip)
        return [None] * num_frames
    masks = _loadmat_variable(mask_file, "part_mask")
    if masks.ndim == 2:
        masks = masks[:, :, None]
    if masks.shape != (height, width, num_frames):
        raise ValueError(
            f"{mask_file}: part_mask must be {height} x {width} x {num_frames} "
            f"(frame size x pos_img frames), got {masks.shape}"
        )
    boxes = [mask_box(masks[:, :, t]) for t in range(num_frames)]
    for t, box in enumerate(boxes):
        if box is None:
            skipped.add(SKIP_EMPTY_MASK, f"{clip} frame {t + 1}")
    return boxes


def read_jhmdb_clip(
    root: str | Path,
    class_name: str,
    clip: str,
    video_id: str,
    image_id_base: int,
    skipped: SkipLog,
) -> VideoRecord:
    """One raw clip: ``pos_img`` (2, 15, T) minus 1, frames ``00001.png``..., one person each.

    The person box is the puppet-mask extent when ``puppet_mask.mat`` exists, else the joints'
    extent grown by ``JOINT_BOX_MARGIN`` (counted in ``skipped``). Frame ``n`` (1-based file
    name) gets image id ``image_id_base + n``.
    """
    root = Path(root)
    joints_file = root / "joint_positions" / class_name / clip / "joint_positions.mat"
    joints = _read_pos_img(joints_file)
    num_frames = len(joints)

    frame_dir = root / "Rename_Images" / class_name / clip
    if not frame_dir.is_dir():
        raise FileNotFoundError(f"jhmdb clip {clip!r}: frame folder {frame_dir} does not exist")
    pngs = sorted(p.name for p in frame_dir.glob("*.png"))
    expected = [f"{n:05d}.png" for n in range(1, num_frames + 1)]
    if pngs != expected:
        raise ValueError(
            f"jhmdb clip {clip!r}: {frame_dir} holds {len(pngs)} PNGs but pos_img has "
            f"{num_frames} frames; expected exactly 00001.png..{num_frames:05d}.png"
        )
    width, height = _png_size(frame_dir / expected[0])
    mask_file = root / "puppet_mask" / class_name / clip / "puppet_mask.mat"
    boxes = _mask_boxes(mask_file, height, width, num_frames, clip, skipped)

    frames = []
    for t in range(num_frames):
        box = boxes[t] if boxes[t] is not None else joint_box(joints[t])
        if box is None:
            raise ValueError(
                f"{joints_file}: all joints of frame {t + 1} coincide; no box possible"
            )
        frames.append(
            FrameRecord(
                image_id=image_id_base + t + 1,
                file_name=f"{class_name}/{clip}/{expected[t]}",
                frame_index=t,
                is_labeled=True,
                people=[_person(joints[t], np.ones(JHMDB.num_joints), box)],
                width=width,
                height=height,
            )
        )
    return VideoRecord(video_id=video_id, frames=frames, source_file=str(joints_file))


def load_jhmdb_raw(
    root: str | Path, split: str = "test", protocol: str = "split1"
) -> VideoPoseIndex:
    """Index the raw clips of ``split`` (train, val = test) under ``protocol`` (split1-3, union).

    Video ids are clip names; under ``union`` they carry the split, ``<clip>@split<k>``.
    Frame names are relative to ``<root>/Rename_Images``, whose PNGs are always checked.
    """
    skipped = SkipLog()
    videos = []
    for position, (class_name, clip, k) in enumerate(split_clips(root, protocol, split)):
        video_id = f"{clip}@split{k}" if protocol == "union" else clip
        base = (position + 1) * IMAGE_ID_STRIDE
        videos.append(read_jhmdb_clip(root, class_name, clip, video_id, base, skipped))
    if not videos:
        raise ValueError(f"jhmdb: no {split} clips under {protocol} in {Path(root) / 'sub_splits'}")
    return VideoPoseIndex(
        name=f"jhmdb/{protocol}/{split}",
        layout=JHMDB,
        image_root=str(Path(root) / "Rename_Images"),
        videos=videos,
        skipped=skipped,
    )


# --- MMPose COCO-style JSON --------------------------------------------------------------------


def _coco_slots(data: Mapping, path: Path) -> np.ndarray:
    """JHMDB slot of each name in the file's person category keypoint list, ``(15,)`` int."""
    categories = as_list(get_field(data, "categories", str(path)), f"{path}: categories")
    people = [c for c in categories if isinstance(c, Mapping) and c.get("name") == "person"]
    if len(people) != 1:
        raise ValueError(
            f"{path}: categories: expected one category named 'person', found {len(people)}"
        )
    where = f"{path}: categories[person].keypoints"
    names = as_list(get_field(people[0], "keypoints", where), where)
    names = [as_str(n, f"{where}[{i}]") for i, n in enumerate(names)]
    canonical = [_COCO_NAME_ALIASES.get(n, n) for n in names]
    unknown = [n for n, c in zip(names, canonical) if c not in JHMDB.joint_names]
    if unknown:
        raise ValueError(
            f"{where}: unknown joint names {unknown}; known: {list(JHMDB.joint_names)}"
        )
    if sorted(canonical) != sorted(JHMDB.joint_names):
        raise ValueError(f"{where}: expected each of the 15 JHMDB joints once, got {names}")
    return np.array([JHMDB.index(c) for c in canonical], dtype=np.int64)


def _optional_int(obj: Mapping, key: str, where: str, default: int | None = None) -> int | None:
    return as_int(obj[key], f"{where}.{key}") if obj.get(key) is not None else default


def _coco_person(
    ann: Mapping, slots: np.ndarray, where: str, label: str, skipped: SkipLog
) -> PersonAnnotation | None:
    keypoints = as_numbers(
        get_field(ann, "keypoints", where), f"{where}.keypoints", 3 * JHMDB.num_joints
    )
    triplets = keypoints.reshape(-1, 3)
    joints = np.zeros((JHMDB.num_joints, 2), dtype=np.float64)
    joints[slots] = triplets[:, :2] - 1.0  # 1-based Matlab pixels -> 0-based
    visible = np.zeros(JHMDB.num_joints, dtype=np.float32)
    visible[slots] = triplets[:, 2] > 0
    bad = (visible > 0) & ~np.isfinite(joints).all(axis=1)
    if bad.any():
        name = JHMDB.joint_names[int(bad.argmax())]
        raise ValueError(f"{where}: joint {name!r} is visible but has non-finite coordinates")
    joints[visible == 0] = 0.0
    if ann.get("bbox") is not None:
        x, y, w, h = as_numbers(ann["bbox"], f"{where}.bbox", 4)
        if not np.isfinite([x, y, w, h]).all() or w <= 0 or h <= 0:
            skipped.add(SKIP_BAD_BOX, label)
            return None
        bbox = np.array([x - 1.0, y - 1.0, w, h])  # MMPose shifts the 1-based corner too
    else:
        bbox = joint_box(joints[visible > 0]) if visible.any() else None
        if bbox is None:
            raise ValueError(f"{where}: no 'bbox' and no visible joints to derive one from")
    track_id = _optional_int(ann, "track_id", where, default=0)
    return _person(joints, visible, bbox, track_id, _optional_int(ann, "id", where))


def _coco_video(
    vid_id: str,
    members: list[tuple[int, FrameRecord]],
    nframes: int | None,
    path: Path,
    skipped: SkipLog,
) -> VideoRecord:
    """The frames of one ``vid_id`` sorted by frame number; they must be consecutive."""
    members = sorted(members, key=lambda m: m[0])
    numbers = [n for n, _ in members]
    folders = sorted({os.path.dirname(f.file_name) for _, f in members})
    if len(folders) != 1:
        raise ValueError(
            f"{path}: vid_id {vid_id} spans folders {folders[:3]}; a video is one folder"
        )
    if any(b != a + 1 for a, b in pairwise(numbers)):
        shown = f"{numbers[:10]}{'...' if len(numbers) > 10 else ''}"
        raise ValueError(
            f"{path}: vid_id {vid_id} ({folders[0]}) has frame numbers {shown}, which are not "
            "consecutive; clips would sample wrong neighbours"
        )
    if nframes is not None and len(members) > nframes:
        raise ValueError(
            f"{path}: vid_id {vid_id} lists {len(members)} frames but nframes is {nframes}"
        )
    if nframes is not None and len(members) < nframes:
        skipped.add(SKIP_INCOMPLETE_VIDEO, f"{folders[0]} ({len(members)} of {nframes})")
    frames = [f for _, f in members]
    for position, frame in enumerate(frames):
        frame.frame_index = position
    return VideoRecord(
        video_id=os.path.basename(folders[0]) or vid_id, frames=frames, source_file=str(path)
    )


def load_jhmdb_coco(
    ann_file: str | Path, image_root: str | Path, name: str, check_images: bool = False
) -> VideoPoseIndex:
    """Index an MMPose COCO-style Sub-JHMDB file; 1-based keypoints and box corners become 0-based.

    Images are grouped into videos by ``vid_id`` (first-appearance order) and sorted by the
    frame number of their file name; only frames present in the file are indexed, and they
    must be consecutive. Video ids are the frames' folder names (the clip names).
    """
    path = Path(ann_file)
    data = load_json_file(path)
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: expected a JSON object with images/annotations/categories")
    slots = _coco_slots(data, path)
    images = as_list(get_field(data, "images", str(path)), f"{path}: images")
    annotations = as_list(get_field(data, "annotations", str(path)), f"{path}: annotations")
    if not images:
        raise ValueError(f"{path}: 'images' is empty")

    skipped = SkipLog()
    by_id: dict[int, FrameRecord] = {}
    labeled: dict[int, bool] = {}
    groups: dict[str, list[tuple[int, FrameRecord]]] = {}
    nframes: dict[str, int] = {}
    for i, image in enumerate(images):
        where = f"{path}: images[{i}]"
        image_id = as_int(get_field(image, "id", where), f"{where}.id")
        if image_id in by_id:
            raise ValueError(f"{where}: duplicate image id {image_id}")
        file_name = as_str(get_field(image, "file_name", where), f"{where}.file_name")
        vid = get_field(image, "vid_id", where)
        vid_id = vid if isinstance(vid, str) else str(as_int(vid, f"{where}.vid_id"))
        by_id[image_id] = FrameRecord(
            image_id=image_id,
            file_name=file_name,
            frame_index=-1,
            is_labeled=False,
            width=_optional_int(image, "width", where),
            height=_optional_int(image, "height", where),
        )
        if "is_labeled" in image:
            labeled[image_id] = as_bool(image["is_labeled"], f"{where}.is_labeled")
        if image.get("nframes") is not None:
            nframes[vid_id] = as_int(image["nframes"], f"{where}.nframes")
        number = frame_number(file_name, f"{where}.file_name")
        groups.setdefault(vid_id, []).append((number, by_id[image_id]))

    unknown_ids = []
    for j, ann in enumerate(annotations):
        where = f"{path}: annotations[{j}]"
        image_id = as_int(get_field(ann, "image_id", where), f"{where}.image_id")
        if image_id not in by_id:
            unknown_ids.append(image_id)
            continue
        person = _coco_person(ann, slots, where, f"{path.name} image {image_id}", skipped)
        if person is not None:
            by_id[image_id].people.append(person)
    if unknown_ids:
        raise ValueError(
            f"{path}: {len(unknown_ids)} annotations reference image ids not listed in 'images' "
            f"(e.g. {sorted(set(unknown_ids))[:3]})"
        )
    for image_id, frame in by_id.items():
        frame.is_labeled = labeled.get(image_id, bool(frame.people))

    videos = [
        _coco_video(v, members, nframes.get(v), path, skipped) for v, members in groups.items()
    ]
    index = VideoPoseIndex(
        name=name, layout=JHMDB, image_root=str(image_root), videos=videos, skipped=skipped
    )
    if check_images:
        verify_images_exist(index)
    return index


@DATASETS.register("jhmdb")
def jhmdb(
    root: str,
    split: str,
    protocol: str = "split1",
    layout_format: str = "raw",
    ann_file: str | None = None,
    image_root: str | None = None,
    check_images: bool = False,
) -> VideoPoseIndex:
    """Sub-JHMDB ``split`` (train / val / test; val = the test list) under ``protocol``.

    ``protocol`` is split1, split2, split3 or union. ``raw`` reads
    ``<root>/{joint_positions,Rename_Images,puppet_mask,sub_splits}`` and always checks the
    frames; ``coco`` reads ``ann_file`` (default ``<root>/annotations/Sub<k>_<train|test>.json``)
    with frame names relative to ``image_root`` (default ``<root>``).
    """
    if split not in SPLIT_FLAGS:
        raise ValueError(f"jhmdb: unknown split {split!r}; expected one of {sorted(SPLIT_FLAGS)}")
    if protocol not in PROTOCOLS:
        raise ValueError(f"jhmdb: unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    if layout_format == "raw":
        if ann_file is not None or image_root is not None:
            raise ValueError(
                "jhmdb: ann_file and image_root apply to layout_format='coco' only; "
                "the raw layout is found under root"
            )
        return load_jhmdb_raw(root, split, protocol)
    if layout_format != "coco":
        raise ValueError(
            f"jhmdb: unknown layout_format {layout_format!r}; expected 'raw' or 'coco'"
        )
    if protocol == "union":
        raise ValueError(
            "jhmdb: the union protocol needs layout_format='raw' "
            "(MMPose's files hold one split each)"
        )
    coco_split = "train" if split == "train" else "test"
    ann_file = ann_file or os.path.join(root, "annotations", f"Sub{protocol[-1]}_{coco_split}.json")
    return load_jhmdb_coco(ann_file, image_root or root, f"jhmdb/{protocol}/{split}", check_images)
