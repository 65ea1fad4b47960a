import pytest
import torch
from torch import nn

from vidpose.models.heads.base import Head
from vidpose.models.pose_model import IMAGENET_MEAN, IMAGENET_STD, PoseModel


class RecordingBackbone(nn.Module):
    out_channels, stride = 3, 4

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.seen = None

    def forward(self, x):
        self.seen = x.detach().clone()
        return nn.functional.avg_pool2d(self.conv(x), 4)


class AllFramesHead(Head):
    frames = "all"

    def __init__(self, pairs=()):
        super().__init__(freeze_backbone=True)
        self._pairs = list(pairs)
        self.proj = nn.Conv2d(3, 2, 1)

    def flow_pairs(self, num_frames, key_index):
        return self._pairs

    def forward(self, features, batch=None, flows=None, initial_heatmaps=None):
        self.flows = flows
        return {"heatmaps": self.proj(features[:, 1]), "features": features}


class ConstantFlow(nn.Module):
    def forward(self, a, b):
        return (b - a)[:, :2]


def test_normalises_and_runs_all_frames_through_a_frozen_backbone():
    backbone, head = RecordingBackbone(), AllFramesHead()
    model = PoseModel(backbone, head, num_frames=3, key_index=1)
    frames = torch.rand(2, 3, 3, 8, 8)
    out = model(frames)
    assert out["features"].shape == (2, 3, 3, 2, 2) and out["heatmaps"].shape == (2, 2, 2, 2)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    assert torch.allclose(backbone.seen, ((frames - mean) / std).flatten(0, 1))
    assert not any(p.requires_grad for p in backbone.parameters())
    model.train()
    assert not backbone.training and head.training
    assert [n for n, _ in model.trainable_parameters()] == ["head.proj.weight", "head.proj.bias"]


def test_flow_pairs_are_computed_on_unnormalised_frames():
    head = AllFramesHead(pairs=[(1, 0), (1, 2)])
    with pytest.raises(ValueError, match="needs optical flow"):
        PoseModel(RecordingBackbone(), head, num_frames=3, key_index=1)
    model = PoseModel(RecordingBackbone(), head, flow=ConstantFlow(), num_frames=3, key_index=1)
    frames = torch.rand(1, 3, 3, 8, 8)
    model(frames)
    assert head.flows.shape == (1, 2, 2, 8, 8)
    assert torch.allclose(head.flows[:, 0], (frames[:, 0] - frames[:, 1])[:, :2])


def test_input_shape_is_checked():
    model = PoseModel(RecordingBackbone(), AllFramesHead(), num_frames=3, key_index=1)
    with pytest.raises(ValueError, match=r"\(B, 3, 3, H, W\)"):
        model(torch.rand(1, 2, 3, 8, 8))
    with pytest.raises(ValueError, match="key_index"):
        PoseModel(RecordingBackbone(), AllFramesHead(), num_frames=3, key_index=3)
