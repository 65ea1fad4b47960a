"""Flow estimators run under inference_mode; the evaluation flow cache gives the uncached flows and stays out of training."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vidpose.models.flow.base import FlowEstimator
from vidpose.models.flow.cache import FlowCache, flow_pair_key
from vidpose.models.heads.base import Head
from vidpose.models.pose_model import PoseModel


class CountingFlow(FlowEstimator):
    """A deterministic 'flow' (difference of mean images) that counts the image pairs it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.pairs_seen = 0
        self.inference_mode_seen: list[bool] = []
        self.freeze()

    def estimate(self, image1: torch.Tensor, image2: torch.Tensor) -> torch.Tensor:
        self.pairs_seen += image1.shape[0]
        self.inference_mode_seen.append(torch.is_inference_mode_enabled())
        diff = (image2 - image1).mean(dim=1, keepdim=True)
        return torch.cat([diff, 2 * diff], dim=1) + torch.linspace(0, 1, image1.shape[-1])


class FlowHead(Head):
    """Heatmaps = a 1x1 conv of the features plus the pooled flows, so outputs depend on every flow."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)

    def flow_pairs(self, num_frames: int, key_index: int) -> list[tuple[int, int]]:
        return [(key_index, key_index - 1), (key_index, key_index + 1)]

    def forward(self, features, batch=None, flows=None, initial_heatmaps=None):
        pooled = nn.functional.adaptive_avg_pool2d(flows.flatten(1, 2), features.shape[-2:]).sum(1, keepdim=True)
        return {"heatmaps": self.conv(features) + pooled}

    def loss(self, outputs, targets):
        return {"loss": outputs["heatmaps"].square().mean()}


def _model() -> PoseModel:
    torch.manual_seed(0)
    backbone = nn.Conv2d(3, 3, 4, stride=4)
    return PoseModel(backbone, FlowHead(), flow=CountingFlow(), num_frames=3, key_index=1)


def _clip_keys(names: list[str]) -> list[tuple]:
    return [((f"{n}/0.jpg", f"{n}/1.jpg", f"{n}/2.jpg"), (10.0, 20.0, 30.0, 40.0), False) for n in names]


FRAMES = torch.rand(4, 3, 3, 16, 12, generator=torch.Generator().manual_seed(1))


def test_estimators_run_under_inference_mode_and_return_ordinary_tensors():
    flow = CountingFlow()
    out = flow(FRAMES[:, 0], FRAMES[:, 1])
    assert flow.inference_mode_seen == [True]
    assert not out.is_inference()
    conv = nn.Conv2d(2, 1, 1)
    conv(out).sum().backward()  # an inference tensor could not be saved for this backward
    assert conv.weight.grad is not None


def test_cached_flows_equal_uncached_and_are_computed_once():
    reference = _model().eval()
    expected = reference(FRAMES)["heatmaps"]
    model = _model().eval()
    model.flow_cache = FlowCache(2**20)
    batch = {"flow_cache_keys": _clip_keys(["a", "b", "c", "d"])}
    first = model(FRAMES, batch)["heatmaps"]
    assert torch.equal(first, expected) and model.flow.pairs_seen == 8 and len(model.flow_cache) == 8
    second = model(FRAMES, batch)["heatmaps"]
    assert torch.equal(second, expected) and model.flow.pairs_seen == 8 and model.flow_cache.hits == 8
    # a batch mixing seen and new crops computes only the new ones
    mixed = {"flow_cache_keys": _clip_keys(["a", "e", "c", "f"])}
    third = model(FRAMES, mixed)["heatmaps"]
    assert model.flow.pairs_seen == 12
    assert torch.allclose(third, expected, atol=1e-6)


def test_training_mode_never_reads_or_fills_the_cache():
    model = _model().train()
    model.flow_cache = FlowCache(2**20)
    batch = {"flow_cache_keys": _clip_keys(["a", "b", "c", "d"])}
    model(FRAMES, batch)["heatmaps"].sum().backward()
    model(FRAMES, batch)
    assert len(model.flow_cache) == 0 and model.flow_cache.hits == model.flow_cache.misses == 0
    assert model.flow.pairs_seen == 16


def test_keys_distinguish_pairs_boxes_and_the_flip_pass():
    paths, box = ("v/0.jpg", "v/1.jpg", "v/2.jpg"), (1.0, 2.0, 3.0, 4.0)
    base = flow_pair_key((paths, box, False), 1, 0)
    assert base == ("v/1.jpg", "v/0.jpg", box, False)
    assert base != flow_pair_key((paths, box, False), 1, 2)
    assert base != flow_pair_key((paths, (1.0, 2.0, 3.0, 5.0), False), 1, 0)
    assert base != flow_pair_key((paths, box, True), 1, 0)


def test_cache_is_bounded_in_bytes_least_recently_used_first():
    flow = torch.zeros(2, 4, 4)  # 128 bytes
    cache = FlowCache(3 * 128)
    for key in "abc":
        cache.put(key, flow)
    assert cache.get("a") is not None  # "b" is now the least recently used
    cache.put("d", flow)
    assert cache.nbytes == 3 * 128 and cache.get("b") is None and cache.get("a") is not None
    with pytest.raises(ValueError, match="max_bytes"):
        FlowCache(0)
