"""PoseModel: backbone + optional flow + head, with the per-method plumbing done once.

``forward(frames, batch)`` takes RGB frames in ``[0, 1]`` as ``(B, T, 3, H, W)`` (the loader
transfers uint8 and converts on the device); the model normalises them itself, so flow
estimators, which want un-normalised images, see the same tensor. Extra images a head names
in ``extra_views`` (batch keys, ``(B, 3, H, W)`` in ``[0, 1]``) share the backbone pass; their
features reach the head as ``batch["extra_features"][name]``.

Flows can come from a :class:`~vidpose.models.flow.cache.FlowCache` set as ``model.flow_cache``:
only in eval mode and only for batches that carry ``batch["flow_cache_keys"]`` (one
``(frame paths (T,), box (4,), flipped)`` per sample), which the evaluator adds for its fixed,
non-augmented crops.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import nn
from torch.profiler import record_function

from vidpose.models.flow.base import pair_flows
from vidpose.models.flow.cache import FlowCache, flow_pair_key
from vidpose.models.heads.base import Head

__all__ = ["PoseModel", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class PoseModel(nn.Module):
    """Runs the backbone on the frames the head asks for, computes the flows it declares, calls it."""

    def __init__(
        self,
        backbone: nn.Module,
        head: Head,
        flow: nn.Module | None = None,
        num_frames: int = 1,
        key_index: int = 0,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        if head.frames not in ("key", "all"):
            raise ValueError(f"{type(head).__name__}.frames must be 'key' or 'all', got {head.frames!r}")
        if not 0 <= key_index < num_frames:
            raise ValueError(f"key_index {key_index} outside a clip of {num_frames} frames")
        self.backbone = backbone
        self.head = head
        self.flow = flow
        self.num_frames = num_frames
        self.key_index = key_index
        self.pairs = list(head.flow_pairs(num_frames, key_index))
        if self.pairs and flow is None:
            raise ValueError(
                f"head {type(head).__name__} needs optical flow for frame pairs {self.pairs}; "
                "set flow to raft_small, raft_large or opencv_dis"
            )
        if head.needs_initial_heatmaps and getattr(backbone, "heatmap_layer", None) is None:
            raise ValueError(
                f"head {type(head).__name__} needs the backbone's single-frame heatmaps; "
                f"{type(backbone).__name__} has no heatmap layer (use a pose HRNet with with_heatmap_layer=true)"
            )
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 1, 3, 1, 1), persistent=False)
        if head.freeze_backbone:
            backbone.requires_grad_(False)
        if flow is not None:
            flow.requires_grad_(False)
        # not a submodule and not in the state dict: set by the evaluator for its fixed crops
        self.flow_cache: FlowCache | None = None

    @property
    def backbone_frozen(self) -> bool:
        """Whether the head declared the backbone frozen."""
        return self.head.freeze_backbone

    def train(self, mode: bool = True) -> "PoseModel":
        """Switch modes; a frozen backbone and the flow estimator always stay in eval mode."""
        super().train(mode)
        if self.backbone_frozen:
            self.backbone.eval()
        if self.flow is not None:
            self.flow.eval()
        return self

    def trainable_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        """Named parameters that receive gradients (frozen parts excluded)."""
        return ((n, p) for n, p in self.named_parameters() if p.requires_grad)

    def _backbone(self, x: torch.Tensor) -> torch.Tensor:
        if self.backbone_frozen:
            with torch.no_grad():
                return self.backbone(x)
        return self.backbone(x)

    def _extra_views(self, frames: torch.Tensor, batch: Mapping[str, torch.Tensor] | None) -> dict[str, torch.Tensor]:
        """The head's ``extra_views`` present in the batch, each ``(B, 3, H, W)`` in [0, 1], normalised."""
        views = {}
        for name in self.head.extra_views:
            if batch is None or name not in batch:
                continue
            view = batch[name]
            expected = (frames.shape[0], *frames.shape[2:])
            if view.dim() != 4 or tuple(view.shape) != expected:
                raise ValueError(f"batch[{name!r}] must be (B, 3, H, W) = {expected} like the frames, got {tuple(view.shape)}")
            views[name] = (view.to(frames.dtype) - self.mean[0].to(frames.dtype)) / self.std[0].to(frames.dtype)
        return views

    def compute_flows(self, frames: torch.Tensor, cache_keys: Sequence[tuple] | None = None) -> torch.Tensor | None:
        """Flows of the head's frame pairs: ``(B, P, 2, H, W)`` in input pixels, or None.

        With ``cache_keys`` (one clip key per sample), a :attr:`flow_cache` and the model in eval
        mode, flows are looked up and stored there; otherwise every flow is computed.
        """
        if not self.pairs:
            return None
        if cache_keys is not None and self.flow_cache is not None and not self.training:
            return self._cached_flows(frames, cache_keys, self.flow_cache)
        with torch.no_grad():
            return pair_flows(self.flow, frames, self.pairs)

    def _cached_flows(self, frames: torch.Tensor, cache_keys: Sequence[tuple], cache: FlowCache) -> torch.Tensor:
        """``(B, P, 2, H, W)`` flows: cache hits copied back, misses computed as one sub-batch and stored."""
        batch = frames.shape[0]
        if len(cache_keys) != batch:
            raise ValueError(f"flow_cache_keys has {len(cache_keys)} entries for a batch of {batch}")
        per_pair = []
        for a, b in self.pairs:
            keys = [flow_pair_key(key, a, b) for key in cache_keys]
            found = [cache.get(key) for key in keys]
            missing = [i for i, flow in enumerate(found) if flow is None]
            if missing:
                # The whole batch when nothing is cached, so a first pass computes exactly
                # what the uncached path computes.
                pick = slice(None) if len(missing) == batch else torch.tensor(missing, device=frames.device)
                with torch.no_grad():
                    computed = self.flow(frames[pick, a].float(), frames[pick, b].float())
                for row, i in enumerate(missing):
                    cache.put(keys[i], computed[row])
                    found[i] = computed[row]
            per_pair.append(torch.stack([flow.to(frames.device) for flow in found]))
        return torch.stack(per_pair, dim=1)

    def forward(
        self,
        frames: torch.Tensor,
        batch: Mapping[str, torch.Tensor] | None = None,
        flows: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """RGB frames in [0, 1] ``(B, T, 3, H, W)`` -> head outputs (``"heatmaps"``: ``(B, K, h, w)``).

        ``flows`` ``(B, P, 2, H, W)`` of the head's pairs replaces the flow estimator: an exported
        graph takes them as an input when its estimator cannot be traced (OpenCV DIS).
        """
        if frames.dim() != 5 or frames.shape[1] != self.num_frames or frames.shape[2] != 3:
            raise ValueError(
                f"expected frames of shape (B, {self.num_frames}, 3, H, W), got {tuple(frames.shape)}"
            )
        if flows is not None and tuple(flows.shape) != (frames.shape[0], len(self.pairs), 2, *frames.shape[-2:]):
            raise ValueError(
                f"flows must be (B, {len(self.pairs)}, 2, H, W) for the head's pairs {self.pairs} and frames "
                f"{tuple(frames.shape)}, got {tuple(flows.shape)}"
            )
        normalised = (frames - self.mean.to(frames.dtype)) / self.std.to(frames.dtype)
        b, t = frames.shape[:2]
        images = normalised[:, self.key_index] if self.head.frames == "key" else normalised.flatten(0, 1)
        views = self._extra_views(frames, batch)
        # One backbone pass over the clip and the extra views (shared BatchNorm statistics).
        # The record_function ranges name the stages in a torch.profiler trace (tools/benchmark.py train).
        with record_function("vidpose::backbone"):
            flat = self._backbone(torch.cat([images, *views.values()]) if views else images)
        if views:
            flat, *view_features = flat.split([images.shape[0], *(v.shape[0] for v in views.values())])
            batch = {**batch, "extra_features": dict(zip(views, view_features))}
        features = flat if self.head.frames == "key" else flat.unflatten(0, (b, t))
        initial = None
        if self.head.needs_initial_heatmaps:
            flat_features = features.flatten(0, 1) if features.dim() == 5 else features
            with torch.set_grad_enabled(torch.is_grad_enabled() and not self.backbone_frozen):
                initial = self.backbone.heatmaps(flat_features)
            if features.dim() == 5:
                initial = initial.unflatten(0, (b, t))
        cache_keys = batch.get("flow_cache_keys") if batch is not None else None
        if flows is None:
            with record_function("vidpose::flow"):
                flows = self.compute_flows(frames, cache_keys)
        with record_function("vidpose::head"):
            return self.head(features, batch, flows=flows, initial_heatmaps=initial)

    def loss(self, outputs: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The head's loss terms."""
        return self.head.loss(outputs, targets)
