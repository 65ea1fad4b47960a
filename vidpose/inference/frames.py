"""Frame inputs of the inference API: an array sequence, a video file or a folder of images.

Each becomes one unlabelled video whose frames the clip dataset reads by name: arrays and
decoded videos stay in memory (:class:`ArrayFrames` serves the ``FrameReader.read``
interface), a folder is read from disk by the configuration's own ``FrameReader`` exactly as
evaluation reads a data set. Frames are RGB ``(H, W, 3) uint8``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Union

import cv2
import numpy as np

from vidpose.data.frames import decode_image

__all__ = ["IMAGE_SUFFIXES", "ArrayFrames", "FolderFrames", "FrameInput", "open_frames", "read_video"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def _check_frame(frame: object, where: str) -> np.ndarray:
    """``frame`` as an RGB ``(H, W, 3) uint8`` array, or a ValueError naming ``where``."""
    array = np.asarray(frame)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3 or 0 in array.shape:
        raise ValueError(f"{where}: expected an RGB frame (H, W, 3) uint8, got shape {array.shape} {array.dtype}")
    return array


class ArrayFrames:
    """Frames held in memory; ``read`` is the ``FrameReader.read`` interface the clip dataset calls."""

    image_root = ""

    def __init__(
        self, frames: np.ndarray | Sequence[np.ndarray], name: str = "frames", fps: float | None = None
    ) -> None:
        self.frames = [_check_frame(f, f"{name}[{i}]") for i, f in enumerate(frames)]
        if not self.frames:
            raise ValueError(f"{name}: no frames (expected N >= 1 RGB frames (H, W, 3) uint8)")
        self.name, self.fps = name, fps
        self.names = [f"{i:06d}" for i in range(len(self.frames))]

    def __len__(self) -> int:
        return len(self.frames)

    def image(self, i: int) -> np.ndarray:
        """Frame ``i`` ``(H, W, 3) uint8`` RGB."""
        return self.frames[i]

    def size_hw(self, i: int) -> tuple[int, int]:
        """``(H, W)`` of frame ``i``."""
        return self.frames[i].shape[:2]

    def read(self, file_name: str, max_downscale: float = 1.0) -> tuple[np.ndarray, int]:
        """The frame named ``file_name`` (its index) at full size: reduction factor 1."""
        return self.frames[int(file_name)], 1


def read_video(path: str | os.PathLike, max_frames: int | None = None) -> ArrayFrames:
    """Decode a video file (anything OpenCV reads) into memory: ``H x W x 3`` bytes per frame."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"video {path} does not exist")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise ValueError(
            f"video {path} has no decodable frame: OpenCV cannot open it ({os.path.getsize(path)} bytes; an empty or "
            "truncated file, or a format it cannot read)"
        )
    fps = float(capture.get(cv2.CAP_PROP_FPS)) or None
    frames: list[np.ndarray] = []
    while max_frames is None or len(frames) < max_frames:
        ok, bgr = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    capture.release()
    if not frames:
        raise ValueError(f"video {path} has no decodable frame (empty, or a codec OpenCV cannot decode)")
    return ArrayFrames(frames, name=Path(path).stem, fps=fps)


class FolderFrames:
    """The image files of a folder in name order, read from disk (``image_root``) when needed."""

    def __init__(self, folder: str | os.PathLike, fps: float | None = None, max_frames: int | None = None) -> None:
        root = Path(folder)
        if not root.is_dir():
            raise FileNotFoundError(f"frame folder {folder} does not exist")
        self.names = sorted(p.name for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:max_frames]
        if not self.names:
            raise ValueError(f"frame folder {folder} holds no {'/'.join(IMAGE_SUFFIXES)} images")
        self.image_root, self.name, self.fps = str(root), root.resolve().name, fps
        self._first_hw = self.image(0).shape[:2]

    def __len__(self) -> int:
        return len(self.names)

    def image(self, i: int) -> np.ndarray:
        """Frame ``i`` ``(H, W, 3) uint8`` RGB, decoded from its file."""
        return decode_image(os.path.join(self.image_root, self.names[i]))

    def size_hw(self, i: int) -> tuple[int, int]:
        """``(H, W)``: the first frame's (one video's frames share a size; decoding all to check costs a pass)."""
        return self._first_hw


#: what :func:`open_frames` accepts
FrameInput = Union[np.ndarray, Sequence[np.ndarray], str, os.PathLike, ArrayFrames, FolderFrames]


def open_frames(
    frames: FrameInput,
    fps: float | None = None,
    max_frames: int | None = None,
) -> ArrayFrames | FolderFrames:
    """The frame source of an array ``(N, H, W, 3)``/list of frames, a video path or a frame folder.

    ``fps`` overrides the video's frame rate; ``max_frames`` keeps only the first N frames. A
    source this function returned is passed through unchanged.
    """
    if isinstance(frames, (ArrayFrames, FolderFrames)):
        return frames
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    if isinstance(frames, (str, os.PathLike)):
        path = Path(frames)
        if path.is_dir():
            return FolderFrames(path, fps, max_frames)
        if not path.exists():
            raise FileNotFoundError(f"frames: {path} does not exist (expected a video file or a folder of images)")
        source = read_video(path, max_frames)
        source.fps = fps or source.fps
        return source
    if isinstance(frames, np.ndarray) and frames.ndim != 4:
        raise ValueError(f"frames: expected an array (N, H, W, 3) uint8 RGB, got shape {frames.shape}")
    return ArrayFrames(frames[:max_frames], fps=fps)
