"""Stage-1 keypoint sequences for coordinate refiners (HANet): records, files, sources and windows.

A :class:`PoseSequence` is one person followed over time: for Sub-JHMDB the clip's person on
every frame; for PoseTrack one GT track on the labeled frames where it is annotated (frame
gaps are kept in ``frame_indices``). Each row is the stage-1 prediction of that frame made on
that frame's own GT box (exactly the predictions the stage-1 evaluation scores, so the
refiner's "input" metric equals the stage-1 metric), with the GT and the crop the box gives.

Sequence file (``.npz``, :meth:`SequenceSet.save` / :meth:`SequenceSet.load`); S sequences,
R rows in all, sequence ``s`` owns rows ``offsets[s]:offsets[s+1]``:

================  ============  ===========================================================
key               shape         meaning
================  ============  ===========================================================
``format``        ()            ``"vidpose-sequences-1"``
``layout``        ()            keypoint layout name (``jhmdb``, ``posetrack``)
``dataset``       ()            the annotation index the rows come from, e.g. ``jhmdb/split1/test``
``source``        ()            what made the predictions (checkpoint, prediction files, jitter)
``offsets``       (S+1,) int64  row ranges of the sequences
``video_id``      (S,) str      video name
``track_id``      (S,) int64    GT track id (0 for Sub-JHMDB)
``frame_index``   (R,) int64    position in the video
``image_id``      (R,) int64    the frame's image id
``pred``          (R, K, 2)     stage-1 keypoints, image pixels
``pred_crop``     (R, K, 2)     the same in the frame's crop, ``(xy - centre) / size + 0.5``
``score``         (R, K)        stage-1 joint scores
``gt``            (R, K, 2)     GT keypoints, image pixels (0 where not annotated)
``visible``       (R, K)        GT visibility (1 = annotated)
``box``           (R, 4)        the stage-1 person box ``[x, y, w, h]``
``box_score``     (R,)          its score (1 for GT boxes)
``crop_center``   (R, 2)        crop centre, image pixels
``crop_size``     (R, 2)        crop ``(w, h)``: the box enlarged and aspect-corrected
``image_size``    (R, 2)        image ``(w, h)``; 0 where the annotation does not give it
================  ============  ===========================================================

Sources: :func:`sequences_from_predictions` (a model's predictions on the GT instances),
:func:`read_sequence_source` (a ``.npz``, a directory of PoseTrack18 prediction JSONs written by
:mod:`vidpose.evaluation.writers`, or a Sub-JHMDB ``IN.json`` of :mod:`vidpose.evaluation.jhmdb_pck`,
matched to the GT index) and :func:`jittered_gt_sequences` (GT plus seeded noise, for tests).

:class:`SequenceWindowDataset` cuts sequences into windows of ``W = N*Q + 1`` rows (the
official HANet rules): training, one window per row, row ``j`` starting a window at
``j mod (F - W + 1)``; test, windows at ``0, S, 2S, ...`` (``S = N * step``) while
``start <= F - W``, plus one window aligned to the end (``tail``) that only fills rows no
regular window covers; a sequence shorter than W is padded (zeros as the official code,
or ``edge``: last row repeated; padded rows have visibility 0). Coordinates are normalised
by the image size (``image``, the official Sub-JHMDB rule) or by the crop of the window's key
row ``min(start + W // 2, F - 1)`` (``key_crop``, ``(xy - centre) / size + 0.5``).
:func:`stitch_windows` averages overlapping window outputs back into one value per row.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from vidpose.data.index import Instance, SkipLog, VideoPoseIndex
from vidpose.evaluation.writers import PosePrediction
from vidpose.heatmaps.geometry import box_to_center_scale

__all__ = [
    "FORMAT",
    "NORMALIZATIONS",
    "PADDINGS",
    "PoseSequence",
    "SequenceSet",
    "SequenceWindowDataset",
    "Window",
    "jittered_gt_sequences",
    "read_jhmdb_input_json",
    "read_posetrack18_predictions",
    "read_sequence_source",
    "sequences_from_predictions",
    "sequences_from_records",
    "stitch_windows",
]

log = logging.getLogger(__name__)

FORMAT = "vidpose-sequences-1"
NORMALIZATIONS = ("image", "key_crop")
PADDINGS = ("zeros", "edge")
_ROW_FIELDS = (
    "frame_index", "image_id", "pred", "score", "gt", "visible", "box", "box_score",
    "crop_center", "crop_size", "image_size",
)


@dataclass
class PoseSequence:
    """One person's stage-1 predictions, GT and crops over F frames in temporal order (module docstring)."""

    video_id: str
    track_id: int
    frame_index: np.ndarray  # (F,) int64
    image_id: np.ndarray  # (F,) int64
    pred: np.ndarray  # (F, K, 2) float64 image pixels
    score: np.ndarray  # (F, K) float64
    gt: np.ndarray  # (F, K, 2) float64 image pixels
    visible: np.ndarray  # (F, K) float32
    box: np.ndarray  # (F, 4) float64 [x, y, w, h]
    box_score: np.ndarray  # (F,) float64
    crop_center: np.ndarray  # (F, 2) float64
    crop_size: np.ndarray  # (F, 2) float64
    image_size: np.ndarray  # (F, 2) float64 (w, h), 0 = unknown

    def __len__(self) -> int:
        return len(self.frame_index)

    @property
    def name(self) -> str:
        """``<video>/track<id>``, for messages."""
        return f"{self.video_id}/track{self.track_id}"

    def pred_crop(self) -> np.ndarray:
        """``(F, K, 2)`` predictions in each frame's own crop, ``(xy - centre) / size + 0.5``."""
        return (self.pred - self.crop_center[:, None]) / self.crop_size[:, None] + 0.5

    def with_pred(self, pred: np.ndarray) -> PoseSequence:
        """A copy with other ``(F, K, 2)`` image-pixel predictions (e.g. the refined ones)."""
        if pred.shape != self.pred.shape:
            raise ValueError(f"{self.name}: predictions {pred.shape} do not match {self.pred.shape}")
        fields = {name: getattr(self, name) for name in self.__dataclass_fields__}
        return PoseSequence(**{**fields, "pred": np.asarray(pred, dtype=np.float64)})


@dataclass
class SequenceSet:
    """Sequences of one split with where they came from; saved as one ``.npz`` (module docstring)."""

    sequences: list[PoseSequence]
    layout: str
    dataset: str
    source: str

    def save(self, path: str | Path) -> Path:
        """Write the set to ``path`` (``.npz``, compressed; written to a temp file, then renamed)."""
        if not self.sequences:
            raise ValueError(f"{path}: refusing to write an empty sequence set")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        lengths = [len(s) for s in self.sequences]
        arrays: dict[str, np.ndarray] = {
            "format": np.array(FORMAT),
            "layout": np.array(self.layout),
            "dataset": np.array(self.dataset),
            "source": np.array(self.source),
            "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            "video_id": np.array([s.video_id for s in self.sequences]),
            "track_id": np.array([s.track_id for s in self.sequences], dtype=np.int64),
            "pred_crop": np.concatenate([s.pred_crop() for s in self.sequences]),
        }
        for name in _ROW_FIELDS:
            arrays[name] = np.concatenate([getattr(s, name) for s in self.sequences])
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(tmp, **arrays)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> SequenceSet:
        """Read a set written by :meth:`save`; a missing key or a wrong shape raises naming it."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"sequence file {path} does not exist")
        with np.load(path, allow_pickle=False) as data:
            expected = {"format", "layout", "dataset", "source", "offsets", "video_id", "track_id", *_ROW_FIELDS}
            missing = sorted(expected - set(data.files))
            if missing:
                raise ValueError(f"{path}: not a vidpose sequence file, missing {missing}")
            if str(data["format"]) != FORMAT:
                raise ValueError(f"{path}: format {str(data['format'])!r}, expected {FORMAT!r}")
            offsets = data["offsets"]
            rows = {name: data[name] for name in _ROW_FIELDS}
            video_ids, track_ids = data["video_id"], data["track_id"]
            header = (str(data["layout"]), str(data["dataset"]), str(data["source"]))
        total = int(offsets[-1])
        for name, value in rows.items():
            if len(value) != total:
                raise ValueError(f"{path}: {name} has {len(value)} rows, offsets say {total}")
        if len(video_ids) != len(offsets) - 1 or len(track_ids) != len(offsets) - 1:
            raise ValueError(f"{path}: video_id/track_id do not match the {len(offsets) - 1} sequences of offsets")
        sequences = [
            PoseSequence(
                video_id=str(video_ids[s]),
                track_id=int(track_ids[s]),
                **{name: rows[name][offsets[s] : offsets[s + 1]] for name in _ROW_FIELDS},
            )
            for s in range(len(offsets) - 1)
        ]
        return cls(sequences, *header)


def sequences_from_predictions(
    index: VideoPoseIndex,
    instances: Sequence[Instance],
    predictions: Sequence[PosePrediction],
    aspect_ratio: float,
    enlarge: float,
) -> list[PoseSequence]:
    """Predictions on GT instances (``predictions[i]`` of ``instances[i]``) as one sequence per (video, track)."""
    if len(instances) != len(predictions):
        raise ValueError(f"{len(predictions)} predictions for {len(instances)} instances")
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, inst in enumerate(instances):
        if inst.person < 0:
            raise ValueError(
                f"{index.name}: instance {i} is a detector box; stage-1 sequences follow GT tracks "
                "(evaluate with data.val.boxes=gt)"
            )
        groups[(inst.video, inst.track_id)].append(i)
    sequences = []
    for (video_idx, track_id), members in sorted(groups.items()):
        video = index.videos[video_idx]
        members.sort(key=lambda i: instances[i].frame)
        frames = [instances[i].frame for i in members]
        if len(set(frames)) != len(frames):
            raise ValueError(f"{index.name}: {video.video_id} track {track_id} has two instances on one frame")
        rows: dict[str, list] = defaultdict(list)
        for i in members:
            inst, pred = instances[i], predictions[i]
            frame = video.frames[inst.frame]
            person = frame.people[inst.person]
            if pred.image_id != frame.image_id:
                raise ValueError(
                    f"prediction {i} is for image {pred.image_id!r}, its instance is on image {frame.image_id}"
                )
            if pred.keypoints.shape[0] != index.layout.num_joints:
                raise ValueError(
                    f"prediction {i}: {pred.keypoints.shape[0]} joints, "
                    f"layout {index.layout.name!r} has {index.layout.num_joints}"
                )
            center, size = box_to_center_scale(inst.bbox_xywh, aspect_ratio, enlarge)
            rows["frame_index"].append(frame.frame_index)
            rows["image_id"].append(frame.image_id)
            rows["pred"].append(pred.keypoints[:, :2])
            rows["score"].append(pred.keypoints[:, 2])
            rows["gt"].append(person.keypoints)
            rows["visible"].append(person.visible)
            rows["box"].append(inst.bbox_xywh)
            rows["box_score"].append(inst.box_score)
            rows["crop_center"].append(center)
            rows["crop_size"].append(size)
            rows["image_size"].append((frame.width or 0, frame.height or 0))
        sequences.append(_sequence(video.video_id, track_id, rows))
    return sequences


def _sequence(video_id: str, track_id: int, rows: dict[str, list]) -> PoseSequence:
    dtypes = {"frame_index": np.int64, "image_id": np.int64, "visible": np.float32}
    return PoseSequence(
        video_id=video_id,
        track_id=int(track_id),
        **{name: np.asarray(rows[name], dtype=dtypes.get(name, np.float64)) for name in _ROW_FIELDS},
    )


def sequences_from_records(
    index: VideoPoseIndex, predictions: Sequence[PosePrediction], aspect_ratio: float, enlarge: float
) -> tuple[list[PoseSequence], SkipLog]:
    """Sequences from predictions matched to GT people by ``(image_id, track_id)``; unmatched ones are counted.

    Predictions without a track id, with an id no GT person has in that frame, or with a
    repeated (image, track) are skipped and counted; so are GT people without a prediction
    (their frames are then missing from the sequence). No match at all is an error.
    """
    skipped = SkipLog()
    location: dict[Any, tuple[int, int]] = {}
    for vi, video in enumerate(index.videos):
        for fi, frame in enumerate(video.frames):
            location[frame.image_id] = (vi, fi)
    matched: dict[tuple[int, int, int], tuple[Instance, PosePrediction]] = {}
    for p in predictions:
        where = f"image {p.image_id} track {p.track_id}"
        if p.image_id not in location:
            skipped.add("prediction on an image the GT index does not list", where)
            continue
        if p.track_id is None:
            skipped.add("prediction without a track id", where)
            continue
        vi, fi = location[p.image_id]
        people = index.videos[vi].frames[fi].people
        person = next((pi for pi, gt in enumerate(people) if gt.track_id == int(p.track_id)), None)
        if person is None:
            skipped.add("prediction whose track id no GT person of the frame has", where)
            continue
        key = (vi, fi, int(p.track_id))
        if key in matched:
            skipped.add("second prediction for the same (image, track)", where)
            continue
        gt = people[person]
        matched[key] = (Instance(vi, fi, gt.bbox_xywh, 1.0, gt.track_id, person), p)
    for vi, video in enumerate(index.videos):
        for fi, frame in enumerate(video.frames):
            for gt in frame.people:
                if (vi, fi, gt.track_id) not in matched:
                    where = f"{video.video_id} image {frame.image_id} track {gt.track_id}"
                    skipped.add("GT person without a prediction (frame left out)", where)
    if not matched:
        raise ValueError(
            f"{index.name}: no prediction matches a GT person by (image_id, track_id); {skipped.summary()}"
        )
    if skipped.total():
        log.warning("%s: building sequences from predictions: %s", index.name, skipped.summary())
    pairs = list(matched.values())
    instances, records = [i for i, _ in pairs], [p for _, p in pairs]
    return sequences_from_predictions(index, instances, records, aspect_ratio, enlarge), skipped


def read_posetrack18_predictions(directory: str | Path) -> list[PosePrediction]:
    """Predictions of a directory of PoseTrack18 prediction files (``images``, ``annotations`` with ``track_id``)."""
    directory = Path(directory)
    files = sorted(p for p in directory.glob("*.json") if not p.name.startswith("."))
    if not files:
        raise FileNotFoundError(f"prediction directory {directory} holds no *.json files")
    out = []
    for path in files:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        annotations = data.get("annotations") if isinstance(data, dict) else None
        if not isinstance(annotations, list):
            raise ValueError(f"{path}: expected a PoseTrack18 prediction file with an 'annotations' list")
        for i, ann in enumerate(annotations):
            where = f"{path}: annotations[{i}]"
            if not isinstance(ann, dict) or "image_id" not in ann or "keypoints" not in ann:
                raise ValueError(f"{where}: needs 'image_id' and 'keypoints'")
            values = np.asarray(ann["keypoints"], dtype=np.float64)
            if values.size % 3:
                raise ValueError(f"{where}.keypoints: expected (x, y, score) triplets, got {values.size} values")
            track = ann.get("track_id")
            out.append(
                PosePrediction(
                    image_id=ann["image_id"],
                    keypoints=values.reshape(-1, 3),
                    box_score=float(ann.get("score", 1.0)),
                    track_id=None if track is None else int(track),
                )
            )
    return out


def read_jhmdb_input_json(index: VideoPoseIndex, path: str | Path) -> list[PosePrediction]:
    """Predictions of a Sub-JHMDB ``IN.json`` (``{"videos": [{name, pred (F,15,2), ...}]}``); row f = frame f."""
    from vidpose.evaluation.jhmdb_pck import load_input_json

    by_name = {v.video_id: v for v in index.videos}
    out = []
    for video in load_input_json(path):
        name = str(video.get("name"))
        if name not in by_name:
            raise ValueError(f"{path}: video {name!r} is not in {index.name}")
        record = by_name[name]
        pred = np.asarray(video["pred"], dtype=np.float64)
        if pred.ndim != 3 or pred.shape[0] != len(record.frames) or pred.shape[2] != 2:
            raise ValueError(f"{path}: video {name!r} pred must be ({len(record.frames)}, K, 2), got {pred.shape}")
        for frame, xy in zip(record.frames, pred):
            if not frame.people:
                raise ValueError(f"{index.name}: {name} frame {frame.frame_index} has no annotated person")
            keypoints = np.concatenate([xy, np.ones((len(xy), 1))], axis=1)
            out.append(PosePrediction(frame.image_id, keypoints, 1.0, frame.people[0].track_id))
    return out


def read_sequence_source(path: str | Path, index: VideoPoseIndex, aspect_ratio: float, enlarge: float) -> SequenceSet:
    """A ``.npz`` sequence file, a PoseTrack18 prediction directory or a Sub-JHMDB ``IN.json``, matched to ``index``."""
    path = Path(path)
    if path.suffix == ".npz":
        loaded = SequenceSet.load(path)
        if loaded.dataset != index.name:
            raise ValueError(f"{path}: sequences of {loaded.dataset!r}, but the config's split is {index.name!r}")
        if loaded.layout != index.layout.name:
            raise ValueError(f"{path}: layout {loaded.layout!r}, but {index.name} uses {index.layout.name!r}")
        return loaded
    if path.is_dir():
        records = read_posetrack18_predictions(path)
    elif path.suffix == ".json":
        records = read_jhmdb_input_json(index, path)
    else:
        raise ValueError(f"{path}: expected a .npz sequence file, a prediction directory or a Sub-JHMDB IN.json")
    sequences, _ = sequences_from_records(index, records, aspect_ratio, enlarge)
    return SequenceSet(sequences, index.layout.name, index.name, f"predictions {path}")


def jittered_gt_sequences(
    index: VideoPoseIndex,
    aspect_ratio: float,
    enlarge: float,
    sigma: float = 0.05,
    outlier_prob: float = 0.05,
    outlier_sigma: float = 0.25,
    seed: int = 0,
    copies: int = 1,
) -> SequenceSet:
    """GT tracks with seeded Gaussian noise as stage-1 "predictions" (tests and the self-contained demo).

    Each joint moves by N(0, sigma * s) and, with probability ``outlier_prob``, by
    N(0, outlier_sigma * s) instead, where ``s`` is the box's longer side; joints without GT
    are drawn around the box centre. Scores are 1. ``copies`` independent noise draws of every
    track are made (more training data from a small set).
    """
    if copies < 1:
        raise ValueError(f"jittered_gt_sequences: copies must be >= 1, got {copies}")
    rng = np.random.default_rng(seed)
    instances = index.gt_instances(min_visible=0) * copies
    predictions = []
    for inst in instances:
        person = index.videos[inst.video].frames[inst.frame].people[inst.person]
        x, y, w, h = (float(v) for v in inst.bbox_xywh)
        scale = np.where(rng.random(len(person.keypoints)) < outlier_prob, outlier_sigma, sigma) * max(w, h)
        anchor = np.where(person.visible[:, None] > 0, person.keypoints, [x + w / 2, y + h / 2])
        xy = anchor + rng.normal(size=anchor.shape) * scale[:, None]
        frame = index.videos[inst.video].frames[inst.frame]
        keypoints = np.concatenate([xy, np.ones((len(xy), 1))], axis=1)
        predictions.append(PosePrediction(frame.image_id, keypoints, 1.0, inst.track_id))
    per_copy = len(instances) // copies
    sequences = [
        seq
        for c in range(copies)
        for seq in sequences_from_predictions(
            index, instances[c * per_copy : (c + 1) * per_copy], predictions[c * per_copy : (c + 1) * per_copy],
            aspect_ratio, enlarge,
        )
    ]
    source = (
        f"jittered GT: sigma {sigma}, outliers {outlier_prob} x {outlier_sigma} (x box side), "
        f"seed {seed}, {copies} copies"
    )
    return SequenceSet(sequences, index.layout.name, index.name, source)


@dataclass(frozen=True)
class Window:
    """Rows ``start .. start + W - 1`` of sequence ``sequence``; a ``tail`` window only fills uncovered rows."""

    sequence: int
    start: int
    tail: bool = False


class SequenceWindowDataset(Dataset):
    """Windows of ``W = N*Q + 1`` rows of stage-1 sequences, normalised, with GT (module docstring).

    An item holds ``input`` and ``target`` ``(W, K, 2)`` float32 (normalised), ``visible (W, K)``
    (0 on padded rows), ``real (W,)`` bool, ``origin``/``scale`` ``(W, 2)`` with
    ``image_xy = normalised * scale + origin``, and ``sequence``, ``start``, ``tail``.
    """

    def __init__(
        self,
        sequences: Sequence[PoseSequence],
        window: int,
        sample_interval: int,
        train: bool,
        normalize: str = "image",
        pad: str = "zeros",
        test_step: int = 1,
    ) -> None:
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"refiner.sequences.normalize: expected one of {NORMALIZATIONS}, got {normalize!r}")
        if pad not in PADDINGS:
            raise ValueError(f"refiner.sequences.pad: expected one of {PADDINGS}, got {pad!r}")
        if window < 2 or sample_interval < 1 or test_step < 1:
            raise ValueError(
                f"window {window}, sample_interval {sample_interval}, test_step {test_step}: must be >= 2, 1, 1"
            )
        if not sequences:
            raise ValueError("SequenceWindowDataset: no sequences")
        self.sequences = list(sequences)
        self.window, self.sample_interval, self.train = int(window), int(sample_interval), bool(train)
        self.normalize, self.pad, self.stride = normalize, pad, int(sample_interval) * int(test_step)
        if normalize == "image":
            for seq in self.sequences:
                if (seq.image_size <= 0).any():
                    raise ValueError(
                        f"{seq.name}: image size unknown (image_size 0) but refiner.sequences.normalize=image; "
                        "use key_crop or an annotation that gives image sizes"
                    )
        self.windows = [w for s in range(len(self.sequences)) for w in self._windows_of(s)]

    def _windows_of(self, s: int) -> list[Window]:
        length, size = len(self.sequences[s]), self.window
        if length < size:
            return [Window(s, 0)] if not self.train else [Window(s, 0)] * length
        if self.train:
            return [Window(s, j % (length - size + 1)) for j in range(length)]
        starts = list(range(0, length - size + 1, self.stride))
        windows = [Window(s, start) for start in starts]
        if starts[-1] + size < length:
            windows.append(Window(s, length - size, tail=True))
        return windows

    def __len__(self) -> int:
        return len(self.windows)

    def set_epoch(self, epoch: int) -> None:
        """Windows are deterministic; present for the loader's epoch protocol."""

    def normaliser(self, seq: PoseSequence, start: int) -> tuple[np.ndarray, np.ndarray]:
        """``origin``, ``scale`` ``(W, 2)`` of the window at ``start``: ``normalised = (xy - origin) / scale``."""
        rows = np.clip(np.arange(start, start + self.window), 0, len(seq) - 1)
        if self.normalize == "image":
            return np.zeros((self.window, 2)), seq.image_size[rows].astype(np.float64)
        key = min(start + self.window // 2, len(seq) - 1)
        size = seq.crop_size[key]
        origin = seq.crop_center[key] - 0.5 * size
        return np.repeat(origin[None], self.window, 0), np.repeat(size[None], self.window, 0)

    def __getitem__(self, item: int | tuple[int, int]) -> dict[str, Any]:
        """The window ``item`` (or ``(epoch, item)``) as arrays (class docstring)."""
        item = item[1] if isinstance(item, tuple) else item
        win = self.windows[item]
        seq = self.sequences[win.sequence]
        positions = np.arange(win.start, win.start + self.window)
        real = positions < len(seq)
        rows = np.minimum(positions, len(seq) - 1)
        origin, scale = self.normaliser(seq, win.start)
        inp = (seq.pred[rows] - origin[:, None]) / scale[:, None]
        target = (seq.gt[rows] - origin[:, None]) / scale[:, None]
        if self.pad == "zeros":
            inp[~real] = 0.0
            target[~real] = 0.0
        return {
            "input": inp.astype(np.float32),
            "target": target.astype(np.float32),
            "visible": (seq.visible[rows] * real[:, None]).astype(np.float32),
            "real": real,
            "origin": origin.astype(np.float32),
            "scale": scale.astype(np.float32),
            "sequence": win.sequence,
            "start": win.start,
            "tail": win.tail,
        }


def stitch_windows(length: int, windows: Sequence[Window], outputs: Sequence[np.ndarray]) -> np.ndarray:
    """One ``(length, K, 2)`` value per row: the mean over regular windows covering it, else the tail window's."""
    if not windows:
        raise ValueError("stitch_windows: no windows")
    shape = np.asarray(outputs[0]).shape[1:]
    total, count = np.zeros((length, *shape)), np.zeros(length)
    for win, out in zip(windows, outputs):
        if win.tail:
            continue
        rows = np.arange(win.start, min(win.start + len(out), length))
        total[rows] += np.asarray(out)[: len(rows)]
        count[rows] += 1
    for win, out in zip(windows, outputs):
        if win.tail:
            rows = np.arange(win.start, win.start + len(out))
            fill = rows[count[rows] == 0]
            total[fill] = np.asarray(out)[fill - win.start]
            count[fill] = 1
    if (count == 0).any():
        raise ValueError(f"stitch_windows: rows {np.flatnonzero(count == 0)[:5].tolist()} are covered by no window")
    return total / count.reshape(-1, *([1] * len(shape)))
