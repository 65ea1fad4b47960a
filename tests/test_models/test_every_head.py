"""Every registered head runs on every backbone family: forward, loss, backward, all parameters used."""

from __future__ import annotations

import pytest
import torch

from vidpose.heatmaps import Geometry
from vidpose.models.pose_model import PoseModel
from vidpose.registry import BACKBONES, FLOWS, HEADS, TARGETS

INPUT_HW = (64, 64)  # a multiple of 16 (ViT patches) and of 32 (HRNet fusion)
K = 5
BACKBONES_SMALL = {
    "vit_tiny": {"name": "vit_tiny", "embed_dim": 32, "depth": 1, "num_heads": 2},
    "hrnet_tiny": {"name": "hrnet_tiny", "widths": [4, 8, 16, 32]},
}


def fake_batch(num_frames: int, key_index: int, seed: int = 0, extra_views=()) -> dict[str, torch.Tensor]:
    """A collated batch of 2 clips in the Sample contract, frames in [0, 1] as after to_device."""
    g = torch.Generator().manual_seed(seed)
    b = 2
    batch = {
        "frames": torch.rand(b, num_frames, 3, *INPUT_HW, generator=g),
        "keypoints": torch.rand(b, num_frames, K, 2, generator=g) * (INPUT_HW[1] - 8) + 4,
        "visible": torch.ones(b, num_frames, K),
        "clamped": torch.zeros(b, num_frames, dtype=torch.bool),
        "key_index": torch.full((b,), key_index),
    }
    for name in extra_views:  # the head's extra images (B, 3, H, W), e.g. CDPose's second view
        batch[name] = torch.rand(b, 3, *INPUT_HW, generator=g)
    return batch


def choose_num_frames(head_cls) -> int:
    options = head_cls.supported_num_frames
    return 3 if options is None or 3 in options else options[0]


@pytest.mark.parametrize("backbone_name", sorted(BACKBONES_SMALL))
@pytest.mark.parametrize("head_name", HEADS.names())
def test_head_on_backbone(head_name, backbone_name):
    torch.manual_seed(0)
    head_cls = HEADS.get(head_name)
    num_frames = choose_num_frames(head_cls)
    key_index = num_frames // 2
    geometry = Geometry(INPUT_HW, 4, "msra")
    node = dict(BACKBONES_SMALL[backbone_name])
    if head_cls.needs_initial_heatmaps:
        if backbone_name != "hrnet_tiny":
            pytest.skip(f"{head_name} needs single-frame heatmaps, which only a pose HRNet provides")
        node["with_heatmap_layer"] = True
    backbone = BACKBONES.build(node, input_hw=INPUT_HW, num_joints=K)
    head = HEADS.build(
        {"name": head_name, **head_cls.small_config()},
        in_channels=backbone.out_channels, in_stride=backbone.stride, num_joints=K, heatmap_stride=4,
        num_frames=num_frames, key_index=key_index, input_hw=INPUT_HW, heatmap_hw=geometry.heatmap_hw,
    )
    flow = FLOWS.build({"name": "opencv_dis"}) if head.flow_pairs(num_frames, key_index) else None
    model = PoseModel(backbone, head, flow=flow, num_frames=num_frames, key_index=key_index)
    model.train()
    batch = fake_batch(num_frames, key_index, extra_views=head.extra_views)
    outputs = model(batch["frames"], batch)
    assert outputs["heatmaps"].shape == (2, K, *geometry.heatmap_hw)
    target_name = "gaussian" if set(head.targets) <= set(TARGETS.get("gaussian").outputs) else "motion_aware"
    targets = TARGETS.build({"name": target_name}, geometry=geometry)(
        batch["keypoints"], batch["visible"], batch["clamped"], key_index, names=head.targets
    )
    losses = model.loss(outputs, targets)
    assert torch.isfinite(losses["loss"])
    losses["loss"].backward()
    no_grad = [n for n, p in model.trainable_parameters() if p.grad is None]
    assert not no_grad, f"parameters without gradient (DDP would fail): {no_grad[:10]}"
    if head.freeze_backbone:
        assert all(p.grad is None for p in backbone.parameters())
