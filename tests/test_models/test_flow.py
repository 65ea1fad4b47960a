"""Flow estimators: RAFT wrapper (construction, padding/upscaling, checkpoints), DIS, resampling."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from vidpose.models.flow.base import FlowEstimator, resample_flow
from vidpose.models.flow.opencv import OpenCVDISFlow
from vidpose.models.flow.raft import RAFTFlow, upscale_factor
from vidpose.registry import FLOWS


def _raft(variant: str = "raft_small", updates: int = 2) -> RAFTFlow:
    return FLOWS.build({"name": variant, "random_init": True, "num_flow_updates": updates})


class _RecordingRAFT(nn.Module):
    """Stands in for torchvision RAFT: records its inputs and returns a chosen flow."""

    def __init__(self, make_flow):
        super().__init__()
        self.make_flow = make_flow
        self.inputs: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, image1, image2, num_flow_updates=12):
        self.inputs.append((image1, image2))
        return [torch.zeros_like(image1[:, :2]), self.make_flow(image1)]


# --- RAFT construction --------------------------------------------------------------------------


def test_raft_without_checkpoint_or_random_init_is_a_clear_error():
    with pytest.raises(ValueError, match="checkpoint is null.*random_init=true"):
        FLOWS.build({"name": "raft_small"})


def test_raft_with_both_checkpoint_and_random_init_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="either checkpoint or random_init"):
        FLOWS.build(
            {"name": "raft_small", "checkpoint": str(tmp_path / "x.pth"), "random_init": True}
        )


def test_random_init_logs_a_loud_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="vidpose.models.flow.raft"):
        _raft()
    assert any("RANDOM WEIGHTS" in r.getMessage() for r in caplog.records)


def test_missing_checkpoint_file_names_the_path(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        FLOWS.build({"name": "raft_small", "checkpoint": str(missing)})


def test_checkpoint_with_wrong_keys_names_them(tmp_path):
    path = tmp_path / "wrong.pth"
    torch.save({"encoder.foo.weight": torch.zeros(3)}, path)
    with pytest.raises(ValueError) as info:
        FLOWS.build({"name": "raft_small", "checkpoint": str(path)})
    message = str(info.value)
    assert "unexpected keys 1: encoder.foo.weight" in message
    assert "missing keys 106: context_encoder.conv.bias" in message  # raft_small has 106 tensors
    assert "wrong.pth" in message


def test_checkpoint_with_wrong_shape_names_the_key(tmp_path):
    torch.manual_seed(0)
    state = _raft().model.state_dict()
    state["feature_encoder.convnormrelu.0.bias"] = torch.zeros(5)
    path = tmp_path / "shape.pth"
    torch.save(state, path)
    with pytest.raises(
        ValueError, match=r"shape mismatches 1: feature_encoder\.convnormrelu\.0\.bias \(5,\)"
    ):
        FLOWS.build({"name": "raft_small", "checkpoint": str(path)})


def test_non_state_dict_checkpoint_is_rejected(tmp_path):
    path = tmp_path / "wrapped.pth"
    torch.save({"model": {"a": torch.zeros(1)}, "epoch": 3}, path)
    with pytest.raises(ValueError, match="flat torchvision RAFT state dict"):
        FLOWS.build({"name": "raft_small", "checkpoint": str(path)})


def test_matching_checkpoint_loads_every_tensor(tmp_path):
    torch.manual_seed(1)
    source = _raft().model.state_dict()
    path = tmp_path / "raft_small.pth"
    torch.save(source, path)
    torch.manual_seed(2)  # different random init, so equality proves the load
    loaded = FLOWS.build({"name": "raft_small", "checkpoint": str(path)}).model.state_dict()
    assert set(loaded) == set(source)
    assert all(torch.equal(loaded[k], source[k]) for k in source)


# --- RAFT forward -------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["raft_small", "raft_large"])
def test_raft_on_128_pair_returns_flow_shape(variant):
    torch.manual_seed(0)
    model = _raft(variant)
    images = torch.rand(2, 3, 128, 128)
    flow = model(images, images.flip(-1))
    assert flow.shape == (2, 2, 128, 128)
    assert flow.dtype == torch.float32 and torch.isfinite(flow).all()


def test_small_input_goes_through_upscale_path_with_real_raft():
    model = _raft()
    images = torch.rand(1, 3, 64, 48)
    assert model(images, images).shape == (1, 2, 64, 48)


def test_upscale_factor_follows_the_128_rule():
    # f = ceil(128 / min(H, W)): 48 -> 3 (144), 96 -> 2 (192), 128 needs nothing.
    assert upscale_factor(64, 48) == 3
    assert upscale_factor(128, 96) == 2
    assert upscale_factor(128, 300) == 1


def test_small_input_is_upscaled_then_pooled_and_divided():
    model = _raft()
    # RAFT reports a constant (6, -3) px at the upscaled resolution; 64x48 uses f = 3, so the
    # flow in input pixels is (2, -1).
    fake = _RecordingRAFT(
        lambda im: torch.stack((torch.full_like(im[:, 0], 6.0), torch.full_like(im[:, 0], -3.0)), 1)
    )
    model.model = fake
    flow = model(torch.rand(2, 3, 64, 48), torch.rand(2, 3, 64, 48))
    first, second = fake.inputs[0]
    assert first.shape == second.shape == (2, 3, 192, 144)  # 3x, already a multiple of 8
    assert first.min() >= -1.0 and first.max() <= 1.0
    assert flow.shape == (2, 2, 64, 48)
    assert torch.allclose(flow[:, 0], torch.full((2, 64, 48), 2.0))
    assert torch.allclose(flow[:, 1], torch.full((2, 64, 48), -1.0))


def test_odd_sizes_are_padded_to_multiples_of_8_and_cropped_back():
    model = _raft()
    # The fake returns the first image's red/green channels as "flow": after replicate padding
    # and cropping, each output pixel must be its own input pixel mapped to [-1, 1].
    fake = _RecordingRAFT(lambda im: im[:, :2].clone())
    model.model = fake
    image1 = torch.rand(1, 3, 130, 133)
    flow = model(image1, torch.rand(1, 3, 130, 133))
    assert fake.inputs[0][0].shape == (1, 3, 136, 136)
    assert flow.shape == (1, 2, 130, 133)
    assert torch.allclose(flow, image1[:, :2] * 2 - 1, atol=1e-6)


def test_raft_is_frozen_and_stays_in_eval():
    model = _raft()
    model.train()
    assert not model.training
    assert all(not m.training for m in model.modules())
    assert not any(p.requires_grad for p in model.parameters())


def test_flow_is_usable_by_trainable_layers():
    model = _raft()
    images = torch.rand(1, 3, 128, 128)
    flow = model(images, images)
    assert not flow.requires_grad and not flow.is_inference()
    conv = nn.Conv2d(2, 1, 1)
    conv(flow).sum().backward()  # an inference tensor would fail here
    assert conv.weight.grad is not None


def test_images_outside_unit_range_are_rejected():
    model = OpenCVDISFlow()
    normalised = torch.randn(1, 3, 32, 32) * 2
    with pytest.raises(ValueError, match=r"RGB in \[0, 1\]"):
        model(normalised, normalised)


def test_nan_images_are_rejected():
    image = torch.rand(1, 3, 16, 16)
    image[0, 0, 3, 3] = float("nan")
    with pytest.raises(ValueError, match="nan"):
        OpenCVDISFlow()(image, image)


def test_mismatched_image_shapes_are_rejected():
    with pytest.raises(ValueError, match="differ in shape"):
        OpenCVDISFlow()(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 30))


# --- OpenCV DIS ---------------------------------------------------------------------------------


def _textured_pair(shift_xy: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(0)
    noise = (rng.random((96, 80)) * 255).astype(np.uint8)
    texture = cv2.normalize(cv2.GaussianBlur(noise, (0, 0), 1.5), None, 0, 255, cv2.NORM_MINMAX)
    dx, dy = shift_xy
    # moved[y, x] = texture[y - dy, x - dx]: the point at p in the first image is at p + (dx, dy).
    moved = np.roll(texture, (dy, dx), axis=(0, 1))

    def to_rgb(gray: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(gray).float().div(255).expand(3, -1, -1)[None].contiguous()

    return to_rgb(texture), to_rgb(moved)


@pytest.mark.parametrize("preset", ["ultrafast", "fast", "medium"])
def test_dis_recovers_a_known_translation(preset):
    first, second = _textured_pair((3, -2))
    flow = FLOWS.build({"name": "opencv_dis", "preset": preset})(first, second)
    assert flow.shape == (1, 2, 96, 80) and flow.dtype == torch.float32
    interior = flow[0, :, 8:-8, 8:-8]
    assert (interior[0] - 3.0).abs().max() < 0.5
    assert (interior[1] + 2.0).abs().max() < 0.5


def test_dis_unknown_preset_is_an_error():
    with pytest.raises(ValueError, match="unknown preset 'slow'"):
        OpenCVDISFlow("slow")


def test_dis_is_frozen_and_copyable():
    import copy

    model = OpenCVDISFlow()
    model.train()
    assert not model.training
    assert isinstance(copy.deepcopy(model), FlowEstimator)


# --- resample_flow ------------------------------------------------------------------------------


def test_resample_constant_flow_to_token_grid():
    flow = torch.empty(1, 2, 256, 192)
    flow[:, 0], flow[:, 1] = 8.0, -4.0
    coarse = resample_flow(flow, (16, 12))
    # factor 16 on both axes: (8, -4) / 16 = (0.5, -0.25) token cells
    assert coarse.shape == (1, 2, 16, 12)
    assert torch.allclose(coarse[:, 0], torch.full((1, 16, 12), 0.5))
    assert torch.allclose(coarse[:, 1], torch.full((1, 16, 12), -0.25))


def test_resample_integer_factor_averages_each_block():
    # u = column index of the fine pixel; 4-wide blocks of columns 4j..4j+3 average to 4j + 1.5,
    # divided by 4 -> j + 0.375. v = 2 everywhere with row factor 2 -> 1.
    fine_x = torch.arange(8.0).expand(4, 8)
    flow = torch.stack((fine_x, torch.full((4, 8), 2.0)))[None]
    coarse = resample_flow(flow, (2, 2))
    assert torch.allclose(coarse[0, 0], torch.tensor([[0.375, 1.375], [0.375, 1.375]]))
    assert torch.allclose(coarse[0, 1], torch.ones(2, 2))


def test_resample_non_integer_ratio_scales_each_axis():
    flow = torch.empty(1, 2, 10, 10)
    flow[:, 0], flow[:, 1] = 3.0, 5.0
    coarse = resample_flow(flow, (4, 3))
    # u * w/W = 3 * 3/10 = 0.9; v * h/H = 5 * 4/10 = 2.0
    assert torch.allclose(coarse[0, 0], torch.full((4, 3), 0.9))
    assert torch.allclose(coarse[0, 1], torch.full((4, 3), 2.0))


def test_resample_refuses_to_upsample():
    with pytest.raises(ValueError, match="no larger than"):
        resample_flow(torch.zeros(1, 2, 8, 8), (16, 16))
