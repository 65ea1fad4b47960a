import math

import pytest
import torch
from torch import nn

from vidpose.engine.optim import LRSchedule, apply_lr, build_optimizer, build_param_groups


class TinyBackbone(nn.Module):
    num_layers = 2

    def __init__(self):
        super().__init__()
        self.pos_embed = nn.Parameter(torch.zeros(1, 4, 8))
        self.blocks = nn.ModuleList([nn.Linear(8, 8) for _ in range(2)])
        self.norm = nn.LayerNorm(8)

    def layer_id(self, name):
        if name.startswith("pos_embed"):
            return 0
        if name.startswith("blocks."):
            return int(name.split(".")[1]) + 1
        return self.num_layers + 1

    def no_weight_decay(self):
        return {"pos_embed"}


class TinyModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = TinyBackbone()
        self.head = nn.Conv2d(8, 3, 1)


def group_of(groups, param):
    return next(g for g in groups if any(p is param for p in g["params"]))


def test_layer_decay_and_no_weight_decay():
    model = TinyModel()
    groups = build_param_groups(model, weight_decay=0.1, layer_decay=0.5)
    # ViTPose rule: scale = rate ** (L + 1 - id) with L = 2
    assert group_of(groups, model.backbone.pos_embed)["lr_scale"] == pytest.approx(0.125)
    assert group_of(groups, model.backbone.pos_embed)["weight_decay"] == 0.0
    assert group_of(groups, model.backbone.blocks[0].weight)["lr_scale"] == pytest.approx(0.25)
    assert group_of(groups, model.backbone.blocks[0].weight)["weight_decay"] == 0.1
    assert group_of(groups, model.backbone.blocks[1].bias)["weight_decay"] == 0.0
    assert group_of(groups, model.backbone.norm.weight)["lr_scale"] == 1.0
    assert group_of(groups, model.head.weight)["lr_scale"] == 1.0
    n_params = sum(len(g["params"]) for g in groups)
    assert n_params == len(list(model.parameters()))


def test_frozen_parameters_get_no_group():
    model = TinyModel()
    model.backbone.requires_grad_(False)
    groups = build_param_groups(model, weight_decay=0.1)
    assert sum(len(g["params"]) for g in groups) == 2  # head weight and bias
    opt = build_optimizer(model, lr=1e-3, layer_decay=0.5)
    assert {g["initial_lr"] for g in opt.param_groups} == {1e-3}
    model.head.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable"):
        build_param_groups(model, 0.1)


def test_cosine_schedule_with_warmup():
    s = LRSchedule("cosine", epochs=2, steps_per_epoch=10, warmup_iters=4, warmup_ratio=0.0)
    assert s.factor(0) == 0.0
    assert s.factor(2) == pytest.approx(0.5)  # half-way through the warm-up of a factor-1 cosine start
    assert s.factor(4) == pytest.approx(1.0)
    # middle of the cosine part (steps 4..20): step 12 -> 0.5
    assert s.factor(12) == pytest.approx(0.5)
    assert s.factor(20) == pytest.approx(0.0, abs=1e-12)


def test_multistep_schedule_counts_epochs():
    s = LRSchedule("multistep", epochs=20, steps_per_epoch=5, milestones=(10, 15), gamma=0.1)
    assert s.factor(49) == 1.0 and s.factor(50) == pytest.approx(0.1) and s.factor(75) == pytest.approx(0.01)
    with pytest.raises(ValueError, match="unknown schedule"):
        LRSchedule("poly", 1, 1)


def test_apply_lr_scales_each_group():
    model = TinyModel()
    opt = build_optimizer(model, lr=2e-3, layer_decay=0.5)
    apply_lr(opt, 0.5)
    for g in opt.param_groups:
        assert math.isclose(g["lr"], 1e-3 * g["lr_scale"])
