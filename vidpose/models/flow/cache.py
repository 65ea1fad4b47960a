"""An opt-in LRU cache of optical flows for evaluation with fixed (non-augmented) crops.

A frozen flow estimator gives the same flow for the same two crops, and evaluation crops are a
pure function of (frame, box): without augmentation, every validation pass recomputes exactly
the flows of the previous one. :class:`FlowCache` keeps them, keyed by
``(frame a path, frame b path, box, flipped)`` where ``box`` is the crop's centre and size in
image pixels and ``flipped`` marks the flip-test pass (mirrored crops have other flows).

Only :class:`~vidpose.engine.evaluator.Evaluator` fills it, and only when its dataset does not
augment; :class:`~vidpose.models.pose_model.PoseModel` ignores it in training mode, so a
training step never reads a flow computed for another crop. Flows are stored on the CPU in
float32 (exact copies), bounded by bytes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

import torch
from torch import Tensor

__all__ = ["FlowCache", "flow_pair_key"]


def flow_pair_key(clip_key: tuple, a: int, b: int) -> tuple:
    """Cache key of the flow from clip frame ``a`` to ``b``; ``clip_key = (frame paths (T,), box (4,), flipped)``."""
    paths, box, flipped = clip_key
    return (paths[a], paths[b], tuple(box), bool(flipped))


class FlowCache:
    """LRU map ``key -> flow (2, H, W) float32`` on the CPU, bounded by ``max_bytes``."""

    def __init__(self, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError(f"FlowCache: max_bytes must be > 0, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self._flows: OrderedDict[Hashable, Tensor] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._flows)

    @property
    def nbytes(self) -> int:
        """Bytes held."""
        return self._bytes

    def get(self, key: Hashable) -> Tensor | None:
        """The flow ``(2, H, W)`` stored under ``key`` (now most recently used), or None."""
        flow = self._flows.get(key)
        if flow is None:
            self.misses += 1
            return None
        self._flows.move_to_end(key)
        self.hits += 1
        return flow

    def put(self, key: Hashable, flow: Tensor) -> None:
        """Store a CPU float32 copy of ``flow (2, H, W)``, evicting the least recently used beyond ``max_bytes``."""
        stored = flow.detach().to("cpu", torch.float32, copy=True)
        size = stored.numel() * stored.element_size()
        if size > self.max_bytes:
            return
        old = self._flows.pop(key, None)
        if old is not None:
            self._bytes -= old.numel() * old.element_size()
        self._flows[key] = stored
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, evicted = self._flows.popitem(last=False)
            self._bytes -= evicted.numel() * evicted.element_size()

    def clear(self) -> None:
        """Drop every flow (the statistics stay)."""
        self._flows.clear()
        self._bytes = 0
