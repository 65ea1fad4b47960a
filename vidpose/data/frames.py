"""Frame decoding: OpenCV to RGB ``(H, W, 3) uint8``, optional LRU cache, optional reduced-size JPEG decoding.

A missing or unreadable frame is an error naming its path; a black frame is never substituted.

Reduced decoding: a JPEG can be decoded at 1/2, 1/4 or 1/8 of its size (libjpeg's DCT scaling,
``cv2.IMREAD_REDUCED_COLOR_*``), which is much faster for large frames that the crop shrinks
anyway. Decoded pixel ``j`` then covers full-resolution pixels ``[f*j, f*j + f)`` (edges), so
its centre is full-resolution pixel ``f*j + (f - 1)/2``: :func:`decoded_to_image_affine` is that
map, and the crop affine is composed with it.
"""

from __future__ import annotations

import os
from collections import OrderedDict

import cv2
import numpy as np

__all__ = ["REDUCTION_FACTORS", "FrameReader", "decode_image", "decoded_to_image_affine"]

REDUCTION_FACTORS = (1, 2, 4, 8)
_REDUCED_FLAGS = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}
_JPEG_SUFFIXES = (".jpg", ".jpeg", ".jpe")
# OpenCV >= 4.10 can decode straight to RGB, which saves a pass over the full frame (~0.5 ms at
# 1920x1080) next to decoding then converting; older versions convert afterwards.
if hasattr(cv2, "IMREAD_COLOR_RGB"):
    _REDUCED_FLAGS = {f: flag & ~cv2.IMREAD_COLOR for f, flag in _REDUCED_FLAGS.items()}
    _RGB_FLAG = cv2.IMREAD_COLOR_RGB
else:
    _RGB_FLAG = 0


def decode_image(path: str, factor: int = 1) -> np.ndarray:
    """Decode the image file at ``path`` to RGB ``(H, W, 3) uint8`` (``factor`` > 1: JPEG reduced by it)."""
    if factor not in _REDUCED_FLAGS:
        raise ValueError(f"reduction factor must be one of {REDUCTION_FACTORS}, got {factor}")
    try:
        # np.fromfile + imdecode instead of imread: imread returns None for every failure,
        # which would hide "missing" behind "corrupt"; this also copes with non-ASCII paths.
        data = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise FileNotFoundError(f"frame not found: {path}") from None
    except OSError as err:
        raise OSError(f"cannot read frame {path}: {err}") from None
    image = cv2.imdecode(data, _REDUCED_FLAGS[factor] | _RGB_FLAG) if data.size else None
    if image is None:
        raise ValueError(f"cannot decode frame {path} ({data.size} bytes): not a readable image")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"frame {path} decoded to shape {image.shape}, expected (H, W, 3)")
    return image if _RGB_FLAG else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def decoded_to_image_affine(factor: int) -> np.ndarray:
    """(2, 3) affine taking pixels of a frame decoded at ``1/factor`` to full-resolution pixels."""
    offset = (factor - 1) / 2.0
    return np.array([[factor, 0.0, offset], [0.0, factor, offset]], dtype=np.float64)


class FrameReader:
    """Reads frames below ``image_root``, optionally through an LRU cache of decoded frames.

    The cache is bounded by ``cache_size`` entries and/or ``cache_bytes`` bytes (0 = no bound of
    that kind; both 0 = no cache) and is private to each process: a DataLoader worker gets a copy
    of the reader with an empty cache (:meth:`__getstate__`), so memory is ``workers x bound``.
    Entries are keyed by ``(path, factor)``: a frame cached at another reduction never serves a
    request, so a sample's pixels never depend on what was read before it.

    ``reduced_decoding=True`` lets :meth:`read` decode JPEGs at 1/2, 1/4 or 1/8 size when the caller
    allows it (``max_downscale``); other formats (by file suffix) are always decoded at full size,
    because OpenCV would decode them fully and resize, which saves nothing.
    """

    def __init__(
        self, image_root: str, cache_size: int = 0, reduced_decoding: bool = False, cache_bytes: int = 0
    ) -> None:
        if cache_size < 0 or cache_bytes < 0:
            raise ValueError(f"cache_size ({cache_size}) and cache_bytes ({cache_bytes}) must be >= 0")
        self.image_root = str(image_root)
        self.cache_size = int(cache_size)
        self.cache_bytes = int(cache_bytes)
        self.reduced_decoding = bool(reduced_decoding)
        self._cache: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self._cached_bytes = 0
        self.decodes = 0  # number of files decoded (cache misses), for tests and statistics
        self.hits = 0
        self.factor_counts = dict.fromkeys(REDUCTION_FACTORS, 0)  # decodes per reduction factor

    @property
    def caching(self) -> bool:
        """Whether decoded frames are kept at all."""
        return bool(self.cache_size or self.cache_bytes)

    @property
    def cached_bytes(self) -> int:
        """Bytes of decoded frames held by this process's cache."""
        return self._cached_bytes

    def __getstate__(self) -> dict:
        # A worker starts with an empty cache: pickling decoded frames to every worker would
        # cost more than decoding them, and each worker fills its own cache anyway.
        state = self.__dict__.copy()
        state["_cache"] = OrderedDict()
        state["_cached_bytes"] = 0
        return state

    def path(self, file_name: str) -> str:
        """Absolute path of a frame given its name relative to ``image_root``."""
        return os.path.join(self.image_root, file_name)

    def read(self, file_name: str, max_downscale: float = 1.0) -> tuple[np.ndarray, int]:
        """RGB frame ``(H', W', 3) uint8`` and its reduction factor ``f`` (``H' ~ H / f``), ``f <= max_downscale``."""
        path = self.path(file_name)
        factor = self.factor(path, max_downscale)
        key = (path, factor)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            self.hits += 1
            return cached, factor
        image = decode_image(path, factor)
        self.decodes += 1
        self.factor_counts[factor] += 1
        if self.caching:
            image.setflags(write=False)  # shared with later readers of the cache
            self._cache[key] = image
            self._cached_bytes += image.nbytes
            self._evict()
        return image, factor

    def _evict(self) -> None:
        # The newest entry stays even when it alone exceeds cache_bytes: the caller holds it anyway.
        while len(self._cache) > 1 and (
            (self.cache_size and len(self._cache) > self.cache_size)
            or (self.cache_bytes and self._cached_bytes > self.cache_bytes)
        ):
            _, old = self._cache.popitem(last=False)
            self._cached_bytes -= old.nbytes

    def factor(self, path: str, max_downscale: float) -> int:
        """Largest reduction ``f`` in (1, 2, 4, 8) with ``f <= max_downscale`` (1 when reduced decoding is off)."""
        # Decided by the file name, so a cache hit costs no file access.
        if not self.reduced_decoding or max_downscale < 2 or not path.lower().endswith(_JPEG_SUFFIXES):
            return 1
        return max(f for f in REDUCTION_FACTORS if f <= max_downscale)
