"""Fake official checkpoints generated from the key grammar in ../shared/specs/pretrained.md.

Deliberately independent of vidpose's modules (and of timm): a test that generated its fakes
from the code under test would only test the code against itself. Shapes are ``(name, shape)``
tables first, tensors second, so big variants can be compared without allocating.
"""

from __future__ import annotations

import torch

HRNET_W48_WIDTHS = (48, 96, 192, 384)
HRNET_TINY_WIDTHS = (4, 8, 16, 32)
BN_SUFFIXES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


# --------------------------------------------------------------------------------------------
# ViTPose (spec section 2)


def vitpose_backbone_shapes(
    dim: int, depth: int, grid: tuple[int, int] = (16, 12)
) -> dict[str, tuple]:
    """Section 2.1: ``backbone.*`` of the official ViTPose checkpoint (pos_embed with the class slot)."""
    shapes: dict[str, tuple] = {
        "backbone.pos_embed": (1, grid[0] * grid[1] + 1, dim),
        "backbone.patch_embed.proj.weight": (dim, 3, 16, 16),
        "backbone.patch_embed.proj.bias": (dim,),
    }
    for i in range(depth):
        b = f"backbone.blocks.{i}."
        shapes.update(
            {
                b + "norm1.weight": (dim,),
                b + "norm1.bias": (dim,),
                b + "attn.qkv.weight": (3 * dim, dim),
                b + "attn.qkv.bias": (3 * dim,),
                b + "attn.proj.weight": (dim, dim),
                b + "attn.proj.bias": (dim,),
                b + "norm2.weight": (dim,),
                b + "norm2.bias": (dim,),
                b + "mlp.fc1.weight": (4 * dim, dim),
                b + "mlp.fc1.bias": (4 * dim,),
                b + "mlp.fc2.weight": (dim, 4 * dim),
                b + "mlp.fc2.bias": (dim,),
            }
        )
    shapes["backbone.last_norm.weight"] = (dim,)
    shapes["backbone.last_norm.bias"] = (dim,)
    return shapes


def classic_head_shapes(
    in_channels: int, num_joints: int = 17, prefix: str = "keypoint_head."
) -> dict[str, tuple]:
    """Section 2.2: the 14 entries of the classic deconv head."""
    shapes: dict[str, tuple] = {prefix + "deconv_layers.0.weight": (in_channels, 256, 4, 4)}
    for bn in (1, 4):
        if bn == 4:
            shapes[prefix + "deconv_layers.3.weight"] = (256, 256, 4, 4)
        for suffix in BN_SUFFIXES:
            shapes[f"{prefix}deconv_layers.{bn}.{suffix}"] = (
                () if suffix == "num_batches_tracked" else (256,)
            )
    shapes[prefix + "final_layer.weight"] = (num_joints, 256, 1, 1)
    shapes[prefix + "final_layer.bias"] = (num_joints,)
    return shapes


def vitpose_mmpose_rename(official_key: str) -> str:
    """Section 4 table, read right to left: official ViTPose name -> mmpose 1.x name."""
    key = official_key
    if key.startswith("keypoint_head."):
        return "head." + key[len("keypoint_head.") :]
    key = key.replace("backbone.patch_embed.proj.", "backbone.patch_embed.projection.")
    key = key.replace("backbone.last_norm.", "backbone.ln1.")
    if key.startswith("backbone.blocks."):
        key = key.replace("backbone.blocks.", "backbone.layers.")
        key = (
            key.replace(".norm1.", ".ln1.")
            .replace(".norm2.", ".ln2.")
            .replace(".mlp.fc1.", ".ffn.layers.0.0.")
            .replace(".mlp.fc2.", ".ffn.layers.1.")
        )
    return key


# --------------------------------------------------------------------------------------------
# pose HRNet (spec section 5)


def _bn(prefix: str, channels: int) -> dict[str, tuple]:
    return {
        f"{prefix}.{s}": (() if s == "num_batches_tracked" else (channels,)) for s in BN_SUFFIXES
    }


def pose_hrnet_shapes(
    widths: tuple[int, int, int, int] = HRNET_W48_WIDTHS, num_joints: int = 17
) -> dict[str, tuple]:
    """Section 5 key grammar: every entry of an official pose-HRNet checkpoint with its shape."""
    c = widths
    s: dict[str, tuple] = {
        "conv1.weight": (64, 3, 3, 3),
        **_bn("bn1", 64),
        "conv2.weight": (64, 64, 3, 3),
        **_bn("bn2", 64),
    }
    for j in range(4):
        p = f"layer1.{j}"
        s[f"{p}.conv1.weight"] = (64, 64 if j == 0 else 256, 1, 1)
        s.update(_bn(f"{p}.bn1", 64))
        s[f"{p}.conv2.weight"] = (64, 64, 3, 3)
        s.update(_bn(f"{p}.bn2", 64))
        s[f"{p}.conv3.weight"] = (256, 64, 1, 1)
        s.update(_bn(f"{p}.bn3", 256))
        if j == 0:
            s["layer1.0.downsample.0.weight"] = (256, 64, 1, 1)
            s.update(_bn("layer1.0.downsample.1", 256))
    s["transition1.0.0.weight"] = (c[0], 256, 3, 3)
    s.update(_bn("transition1.0.1", c[0]))
    s["transition1.1.0.0.weight"] = (c[1], 256, 3, 3)
    s.update(_bn("transition1.1.0.1", c[1]))
    s["transition2.2.0.0.weight"] = (c[2], c[1], 3, 3)
    s.update(_bn("transition2.2.0.1", c[2]))
    s["transition3.3.0.0.weight"] = (c[3], c[2], 3, 3)
    s.update(_bn("transition3.3.0.1", c[3]))
    for stage, modules, branches in ((2, 1, 2), (3, 4, 3), (4, 3, 4)):
        for m in range(modules):
            p = f"stage{stage}.{m}"
            for b in range(branches):
                for j in range(4):
                    q = f"{p}.branches.{b}.{j}"
                    s[f"{q}.conv1.weight"] = (c[b], c[b], 3, 3)
                    s.update(_bn(f"{q}.bn1", c[b]))
                    s[f"{q}.conv2.weight"] = (c[b], c[b], 3, 3)
                    s.update(_bn(f"{q}.bn2", c[b]))
            outputs = 1 if (stage == 4 and m == modules - 1) else branches
            for i in range(outputs):
                for j in range(branches):
                    f = f"{p}.fuse_layers.{i}.{j}"
                    if j > i:
                        s[f"{f}.0.weight"] = (c[i], c[j], 1, 1)
                        s.update(_bn(f"{f}.1", c[i]))
                    elif j < i:
                        for k in range(i - j):
                            out = c[i] if k == i - j - 1 else c[j]
                            s[f"{f}.{k}.0.weight"] = (out, c[j], 3, 3)
                            s.update(_bn(f"{f}.{k}.1", out))
    s["final_layer.weight"] = (num_joints, c[0], 1, 1)
    s["final_layer.bias"] = (num_joints,)
    return s


# --------------------------------------------------------------------------------------------
# tensors


def random_state(shapes: dict[str, tuple], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors for a shape table (BN variances positive, batch counters int64)."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(1000, dtype=torch.long)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=gen) + 0.5
        else:
            state[key] = torch.randn(shape, generator=gen) * 0.05
    return state


def fake_vitpose_official(
    dim: int = 64,
    depth: int = 2,
    grid: tuple[int, int] = (16, 12),
    num_joints: int = 17,
    cls_token: bool = False,
    associate_heads: bool = False,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """Official ViTPose state dict (section 2) with a clearly non-zero class slot in pos_embed."""
    shapes = vitpose_backbone_shapes(dim, depth, grid) | classic_head_shapes(dim, num_joints)
    if cls_token:
        shapes["backbone.cls_token"] = (1, 1, dim)
    if associate_heads:
        shapes["associate_heads.0.x"] = (5, 3)
    state = random_state(shapes, seed)
    state["backbone.pos_embed"][:, 0] += 1.0
    return state


def fake_pose_hrnet(
    widths: tuple[int, int, int, int] = HRNET_TINY_WIDTHS, num_joints: int = 17, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Official (bare, unprefixed) pose-HRNet state dict from the section 5 grammar."""
    return random_state(pose_hrnet_shapes(widths, num_joints), seed)


def prefixed(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Every key with ``prefix`` in front (``module.`` copies)."""
    return {prefix + k: v for k, v in state.items()}


def hrnet_mmpose(state: dict[str, torch.Tensor], head_prefix: str) -> dict[str, torch.Tensor]:
    """mmpose variant of an official HRNet dict: ``backbone.`` trunk, ``head_prefix`` final layer."""
    return {
        (head_prefix + k if k.startswith("final_layer.") else "backbone." + k): v
        for k, v in state.items()
    }
