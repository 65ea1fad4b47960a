"""HANet refiner: parameter counts, sampling-mask isolation, kinematic features, positions, official keys."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from vidpose.engine import builders
from vidpose.models.refiners.hanet import HANet, convert_official_state_dict, kinematic_features, sine_positions
from vidpose.registry import REFINERS

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models on two shared cores: one intra-op thread avoids waiting for a busy second core."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def small(**overrides) -> HANet:
    options = dict(num_joints=3, window=11, sample_interval=5, hidden_dim=16, num_levels=2, num_decoder_layers=2,
                   heads=2)
    return HANet(**{**options, **overrides})


def test_official_jhmdb_config_parameter_count():
    with torch.device("meta"):
        model = REFINERS.build({"name": "hanet"}, num_joints=15)  # defaults = the official Sub-JHMDB config
    total = sum(p.numel() for p in model.parameters())
    assert total == 286_899_952
    # the official code also creates Linear(C*2^4 -> C*2^5) = 4096 -> 8192 and never uses it
    assert total + 4096 * 8192 + 8192 == 320_462_576
    # level 0 (width 256, FFN 1024): attention 3*256*256 + 3*256 + 256*256 + 256 = 263,168,
    # FFN 256*1024 + 1024 + 1024*256 + 256 = 525,568, two LayerNorms 1,024
    assert sum(p.numel() for p in model.encoder[0].parameters()) == 263_168 + 525_568 + 1_024
    assert len(model.projection) == 4 and model.projection[-1].out_features == 4096


def test_every_hanet_experiment_builds_its_refiner_on_the_meta_device():
    for exp in sorted(p.stem for p in (CONFIGS / "exp").glob("hanet_*.yaml")):
        with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
            cfg = compose(config_name="train", overrides=[f"+exp={exp}"])
        assert cfg.task == "refine"
        with torch.device("meta"):
            model = builders.build_refiner(cfg, builders.build_layout(cfg))
        assert (model.window - 1) % model.sample_interval == 0, exp


def test_frames_off_the_grid_reach_the_output_only_through_their_sampled_neighbours():
    # N = 5, W = 11: frames 0, 5, 10 are sampled; 1, 4, 6, 9 are their neighbours (kinematic
    # features read raw neighbours); 2, 3, 7, 8 must never change any output
    torch.manual_seed(0)
    model = small().eval()
    poses = torch.rand(2, 11, 3, 2)
    with torch.no_grad():
        base = model(poses)
        for frame in (2, 3, 7, 8):
            changed = poses.clone()
            changed[:, frame] += 10.0
            out = model(changed)
            assert torch.equal(out["refined"], base["refined"]) and torch.equal(out["encoder"], base["encoder"]), frame
        for frame in (1, 4, 6, 9, 0, 5, 10):
            changed = poses.clone()
            changed[:, frame] += 10.0
            assert not torch.allclose(model(changed)["refined"], base["refined"]), frame


def test_kinematic_features_of_a_toy_sequence():
    # N = 2, L = 5: sampled frames 0, 2, 4; one channel with poses 1, 2, 4, 7, 11
    poses = torch.tensor([1.0, 2.0, 4.0, 7.0, 11.0]).view(1, 5, 1)
    sampled = torch.tensor([True, False, True, False, True])
    f = kinematic_features(poses, sampled)
    # raw previous frame (first replicated) 1, 1, 2, 4, 7, zeroed off the grid
    assert f.prev.flatten().tolist() == [1, 0, 2, 0, 7]
    # raw next frame (last replicated) 2, 4, 7, 11, 11, zeroed off the grid
    assert f.next.flatten().tolist() == [2, 0, 7, 0, 11]
    assert f.masked.flatten().tolist() == [1, 0, 4, 0, 11]
    assert f.flow.flatten().tolist() == pytest.approx([4 / 3, 0, 13 / 3, 0, 29 / 3])
    assert f.velocity_prev.flatten().tolist() == [0, 0, 2, 0, 4]
    assert f.velocity_next.flatten().tolist() == [1, 0, 3, 0, 0]


def test_acceleration_is_the_squared_difference_of_the_embedded_velocities():
    model = HANet(num_joints=1, coord_dim=1, window=5, sample_interval=2, hidden_dim=8, num_levels=1,
                  num_decoder_layers=1, heads=2).eval()
    with torch.no_grad():
        for conv in (model.prev_v_embed, model.next_v_embed):
            conv.weight.fill_(1.0)
            conv.bias.zero_()
    seen = {}

    def capture(module, args, output):
        seen["acc"] = args[0].clone()

    model.acc_embed.register_forward_hook(capture)
    model(torch.tensor([1.0, 2.0, 4.0, 7.0, 11.0]).view(1, 5, 1, 1))
    # identity velocity maps: (v_next - v_prev)^2 = (1-0)^2, 0, (3-2)^2, 0, (0-4)^2
    assert seen["acc"].flatten().tolist() == [1, 0, 1, 0, 16]


def test_sine_positions_match_the_official_formula():
    code = sine_positions(3, 4)
    # positions 2*pi*l/(2 + 1e-6); n = 2 frequencies 10000**(2i/2) = 1, 10000
    p = [2 * math.pi * l / (2 + 1e-6) for l in range(3)]
    expected = [[math.sin(q), math.cos(q), math.sin(q / 10000), math.cos(q / 10000)] for q in p]
    assert torch.allclose(code, torch.tensor(expected), atol=1e-6)


def test_every_parameter_gets_a_gradient_in_both_memory_modes_and_norm_placements():
    for mode in ("plus_one", "masked"):
        for pre_norm in (False, True):
            model = small(off_grid_memory=mode, pre_norm=pre_norm)
            out = model(torch.rand(2, 11, 3, 2))
            assert out["refined"].shape == out["encoder"].shape == (2, 11, 3, 2)
            (out["refined"].sum() + out["encoder"].sum()).backward()
            assert [n for n, p in model.named_parameters() if p.grad is None] == []


def test_off_grid_memory_modes_differ_only_in_the_decoder():
    torch.manual_seed(0)
    plus_one = small().eval()
    masked = small(off_grid_memory="masked").eval()
    masked.load_state_dict(plus_one.state_dict())
    poses = torch.rand(1, 11, 3, 2)
    with torch.no_grad():
        a, b = plus_one(poses), masked(poses)
    assert torch.equal(a["encoder"], b["encoder"])
    assert not torch.allclose(a["refined"], b["refined"])


def test_bad_shapes_and_options_raise():
    with pytest.raises(ValueError, match="window 10"):
        small(window=10)
    with pytest.raises(ValueError, match="off_grid_memory"):
        small(off_grid_memory="ignore")
    with pytest.raises(ValueError, match=r"expected poses \(B, 11, 3, 2\)"):
        small()(torch.rand(1, 9, 3, 2))


def test_official_state_dict_converts_and_drops_the_unused_projection():
    model = small()
    state = {f"module.transformer.{k}": v for k, v in model.state_dict().items()}
    state["module.transformer.projection.1.weight"] = torch.zeros(64, 32)
    state["module.transformer.projection.1.bias"] = torch.zeros(64)
    converted = convert_official_state_dict(state, num_levels=2)
    assert set(converted) == set(model.state_dict())
    model.load_state_dict(converted, strict=True)
    with pytest.raises(KeyError, match="pos_embed"):
        convert_official_state_dict({"pos_embed.0": torch.zeros(1)}, num_levels=2)


def test_official_pre_norm_state_dict_loads_strictly_without_its_unused_encoder_norms():
    # the official pre-norm Transformer creates encoder_norm.{level} LayerNorms it never applies
    model = small(pre_norm=True)
    state = {f"transformer.{k}": v for k, v in model.state_dict().items()}
    state["transformer.projection.1.weight"] = torch.zeros(64, 32)
    state["transformer.projection.1.bias"] = torch.zeros(64)
    for level, width in enumerate((16, 32)):
        state[f"transformer.encoder_norm.{level}.weight"] = torch.ones(width)
        state[f"transformer.encoder_norm.{level}.bias"] = torch.zeros(width)
    converted = convert_official_state_dict(state, num_levels=2)
    assert not any(k.startswith("encoder_norm.") for k in converted)
    model.load_state_dict(converted, strict=True)
    state["transformer.encoder_norm.2.weight"] = torch.ones(64)  # a level the model does not have
    with pytest.raises(RuntimeError, match="encoder_norm.2.weight"):
        model.load_state_dict(convert_official_state_dict(state, num_levels=2), strict=True)
