"""Grid conversion and grid_sample-based deformable attention (DAT-style and Deformable-DETR)."""

from __future__ import annotations

import math

import pytest
import torch

from vidpose.models.ops.deform_attn import DeformableAttention, DeformableDETRAttention
from vidpose.models.ops.grid import grid_to_pixel, pixel_centres, pixel_to_grid, sample_at_pixels


def _bilinear(feat: torch.Tensor, x: float, y: float) -> torch.Tensor:
    """Hand bilinear read of ``(C, H, W)`` at pixel-centre coords (x, y); zeros outside."""
    height, width = feat.shape[-2:]
    out = torch.zeros(feat.shape[0], dtype=feat.dtype)
    x0, y0 = math.floor(x), math.floor(y)
    for xi in (x0, x0 + 1):
        for yi in (y0, y0 + 1):
            weight = (1 - abs(x - xi)) * (1 - abs(y - yi))
            if 0 <= xi < width and 0 <= yi < height:
                out = out + weight * feat[:, yi, xi]
    return out


# --- grid.py ------------------------------------------------------------------------------------


def test_corner_pixels_map_to_one_minus_one_over_size():
    size_hw = (4, 6)
    corners = torch.tensor([[0.0, 0.0], [5.0, 3.0]])
    grid = pixel_to_grid(corners, size_hw)
    # g = 2 (x + 0.5) / W - 1: x = 0 -> -(1 - 1/6), x = W-1 -> 1 - 1/6; y likewise with H = 4
    assert torch.allclose(
        grid, torch.tensor([[-(1 - 1 / 6), -(1 - 1 / 4)], [1 - 1 / 6, 1 - 1 / 4]])
    )


def test_grid_round_trip():
    torch.manual_seed(0)
    points = torch.randn(5, 7, 2, dtype=torch.float64) * 10
    assert torch.allclose(grid_to_pixel(pixel_to_grid(points, (9, 13)), (9, 13)), points)


def test_pixel_centres_are_xy_integers():
    centres = pixel_centres((2, 3))
    assert centres.shape == (2, 3, 2)
    assert centres[1, 2].tolist() == [2.0, 1.0]  # row 1, column 2 -> (x=2, y=1)


def test_sample_at_pixels_reads_centres_and_interpolates():
    feat = torch.arange(12.0).reshape(1, 1, 3, 4)  # value = 4 y + x
    xy = torch.tensor([[[[0.0, 0.0], [3.0, 2.0], [1.5, 1.0], [4.0, 1.0]]]])
    out = sample_at_pixels(feat, xy)[0, 0, 0]
    # centres exact; half a pixel right is the mean of two; one past the last column is padding
    assert torch.allclose(out, torch.tensor([0.0, 11.0, 5.5, 0.0]), atol=1e-5)


def test_grid_errors():
    with pytest.raises(ValueError, match="last dimension of 2"):
        pixel_to_grid(torch.zeros(3, 3), (2, 2))
    with pytest.raises(ValueError, match="positive integers"):
        pixel_to_grid(torch.zeros(3, 2), (0, 2))


# --- DeformableAttention (DAT-style) ------------------------------------------------------------


def test_zero_offsets_sample_the_token_centres_exactly():
    torch.manual_seed(0)
    attn = DeformableAttention(dim=8, num_heads=2, num_groups=2, kernel_size=3)
    query, source = torch.randn(2, 8, 4, 5), torch.randn(2, 8, 4, 5)
    _, info = attn(query, source, return_sampling=True)
    assert torch.equal(info["offsets"], torch.zeros(2, 2, 4, 5, 2))
    assert torch.equal(info["positions"], pixel_centres((4, 5)).expand(2, 2, 4, 5, 2))
    assert torch.allclose(info["sampled"], source, atol=1e-6)


def test_uniform_attention_returns_value_projection_of_the_reference_mean():
    # W_k = 0 makes every key 0, so attention is uniform over the H*W samples and the output is
    # proj_out(W_v mean(source) + b_v). A misplaced sample (e.g. align_corners mixed up) would
    # pull zero padding into border samples and change the mean.
    torch.manual_seed(0)
    attn = DeformableAttention(dim=6, num_heads=3, num_groups=3, kernel_size=3)
    torch.nn.init.zeros_(attn.proj_k.weight)
    query, source = torch.randn(1, 6, 3, 4), torch.randn(1, 6, 3, 4)
    out = attn(query, source)
    mean = source.flatten(2).mean(-1)  # (1, 6)
    expected = attn.proj_out(attn.proj_v(mean))
    assert torch.allclose(out, expected[:, :, None, None].expand(1, 6, 3, 4), atol=1e-5)


def test_single_token_grid_outputs_the_value_projection_at_the_reference():
    torch.manual_seed(0)
    attn = DeformableAttention(dim=4, num_heads=1, num_groups=1, kernel_size=3)
    query, source = torch.randn(2, 4, 1, 1), torch.randn(2, 4, 1, 1)
    expected = attn.proj_out(attn.proj_v(source[:, :, 0, 0]))
    assert torch.allclose(attn(query, source)[:, :, 0, 0], expected, atol=1e-6)


def _hand_dat(attn: DeformableAttention, query, source, constraint=None) -> torch.Tensor:
    """Per-group, per-point, per-head loops over the DAT formulation (batch 1)."""
    _, dim, height, width = query.shape
    groups, heads, head_dim = attn.num_groups, attn.num_heads, attn.head_dim
    cg = dim // groups
    q = attn.proj_q(query[0].flatten(1).T)  # (N, C)
    z = attn.proj_z(constraint[0].flatten(1).T) if constraint is not None else None
    sampled = torch.zeros(height * width, dim)
    for g in range(groups):
        chans = slice(g * cg, (g + 1) * cg)
        net_in = q[:, chans].T.reshape(1, cg, height, width)
        if z is not None:
            net_in = torch.cat((net_in, z[:, chans].T.reshape(1, cg, height, width)), 1)
        raw = attn.offset_net(net_in)[0]  # (2, H, W): dx, dy
        for n in range(height * width):
            y, x = divmod(n, width)
            dx = math.tanh(raw[0, y, x].item()) * attn.range_factor
            dy = math.tanh(raw[1, y, x].item()) * attn.range_factor
            sampled[n, chans] = _bilinear(source[0, chans], x + dx, y + dy)
    k, v = attn.proj_k(sampled), attn.proj_v(sampled)
    out = torch.zeros(height * width, dim)
    for h in range(heads):
        hs = slice(h * head_dim, (h + 1) * head_dim)
        for n in range(height * width):
            logits = torch.stack([q[n, hs] @ k[m, hs] for m in range(height * width)]) / math.sqrt(
                head_dim
            )
            out[n, hs] = torch.softmax(logits, 0) @ v[:, hs]
    return attn.proj_out(out).T.reshape(1, dim, height, width)


@pytest.mark.parametrize(
    ("num_heads", "num_groups", "use_constraint"), [(1, 1, False), (2, 2, False), (4, 2, True)]
)
def test_matches_a_hand_loop(num_heads, num_groups, use_constraint):
    torch.manual_seed(0)
    attn = DeformableAttention(
        dim=8,
        num_heads=num_heads,
        num_groups=num_groups,
        kernel_size=3,
        range_factor=1.5,
        use_constraint=use_constraint,
    )
    with torch.no_grad():  # leave the zero init so samples fall between pixels
        attn.offset_net.to_offset.weight.normal_(0, 0.8)
    query, source = torch.randn(1, 8, 3, 4), torch.randn(1, 8, 3, 4)
    constraint = torch.randn(1, 8, 3, 4) if use_constraint else None
    out, info = attn(query, source, constraint, return_sampling=True)
    assert (info["offsets"].abs() > 0.05).any()
    assert info["offsets"].abs().max() <= 1.5
    with torch.no_grad():
        expected = _hand_dat(attn, query, source, constraint)
    assert torch.allclose(out, expected, atol=1e-5)


def test_gradients_reach_the_offset_network_and_all_projections():
    torch.manual_seed(0)
    attn = DeformableAttention(dim=8, num_heads=2, num_groups=2, kernel_size=3, use_constraint=True)
    with torch.no_grad():
        attn.offset_net.to_offset.weight.normal_(0, 0.5)
    query, constraint = torch.randn(2, 8, 4, 4), torch.randn(2, 8, 4, 4)
    (attn(query, constraint=constraint) * torch.randn(2, 8, 4, 4)).sum().backward()
    for name, param in attn.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_zero_initialised_offset_layer_still_gets_a_gradient():
    torch.manual_seed(0)
    attn = DeformableAttention(dim=4, num_heads=2, num_groups=2, kernel_size=3)
    (attn(torch.randn(1, 4, 3, 3)) * torch.randn(1, 4, 3, 3)).sum().backward()
    assert attn.offset_net.to_offset.weight.grad.abs().sum() > 0


def test_deformable_attention_argument_errors():
    with pytest.raises(ValueError, match="num_heads=3 must divide dim=8"):
        DeformableAttention(8, num_heads=3, num_groups=2)
    with pytest.raises(ValueError, match="num_groups=3 must divide dim=8"):
        DeformableAttention(8, num_heads=2, num_groups=3)
    attn = DeformableAttention(8, num_heads=2, num_groups=2)
    with pytest.raises(ValueError, match="without a constraint"):
        attn(torch.randn(1, 8, 2, 2), constraint=torch.randn(1, 8, 2, 2))
    with pytest.raises(ValueError, match="source"):
        attn(torch.randn(1, 8, 2, 2), torch.randn(1, 8, 3, 2))
    with pytest.raises(ValueError, match="use_constraint=True"):
        DeformableAttention(8, num_heads=2, num_groups=2, use_constraint=True)(
            torch.randn(1, 8, 2, 2)
        )


# --- DeformableDETRAttention --------------------------------------------------------------------


def test_detr_init_points_along_head_directions_with_uniform_weights():
    attn = DeformableDETRAttention(dim=8, num_heads=4, num_points=3)
    reference = torch.tensor([[[2.0, 5.0]]])
    _, info = attn(torch.randn(1, 1, 8), torch.randn(1, 8, 6, 6), reference, return_sampling=True)
    # heads at 0, 90, 180, 270 degrees: directions (1,0), (0,1), (-1,0), (0,-1); point p at (p+1) px
    directions = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    expected = (
        reference[0, 0] + directions[:, None, :] * torch.tensor([1.0, 2.0, 3.0])[None, :, None]
    )
    assert torch.allclose(info["positions"][0, 0], expected, atol=1e-6)
    assert torch.allclose(info["weights"], torch.full((1, 1, 4, 3), 1 / 3))


def test_detr_diagonal_head_direction_is_scaled_to_unit_max_component():
    attn = DeformableDETRAttention(dim=8, num_heads=8, num_points=2)
    bias = attn.sampling_offsets.bias.reshape(8, 2, 2)
    # head 1 at 45 degrees: (cos, sin) / max = (1, 1); point 1 doubles it
    assert torch.allclose(bias[1], torch.tensor([[1.0, 1.0], [2.0, 2.0]]), atol=1e-6)


def test_detr_zero_offsets_return_the_value_projection_at_the_reference():
    torch.manual_seed(0)
    attn = DeformableDETRAttention(dim=6, num_heads=2, num_points=3)
    torch.nn.init.zeros_(attn.sampling_offsets.bias)
    value = torch.randn(1, 6, 4, 5)
    reference = torch.tensor([[[0.0, 0.0], [4.0, 3.0], [2.0, 1.0]]])
    out = attn(torch.randn(1, 3, 6), value, reference)
    at_reference = value[0, :, reference[0, :, 1].long(), reference[0, :, 0].long()].T  # (3, 6)
    expected = attn.output_proj(attn.value_proj(at_reference))
    assert torch.allclose(out[0], expected, atol=1e-5)


def test_detr_matches_a_hand_loop():
    torch.manual_seed(0)
    attn = DeformableDETRAttention(dim=6, num_heads=3, num_points=2)
    with torch.no_grad():
        attn.sampling_offsets.weight.normal_(0, 0.5)
        attn.attention_weights.weight.normal_(0, 1.0)
    query, value = torch.randn(1, 4, 6), torch.randn(1, 6, 4, 5)
    reference = torch.tensor([[[0.0, 0.0], [4.0, 3.0], [2.3, 1.7], [1.0, 2.0]]])
    out = attn(query, value, reference)
    with torch.no_grad():
        projected = attn.value_proj(value[0].flatten(1).T).T.reshape(6, 4, 5)
        offsets = attn.sampling_offsets(query[0]).reshape(4, 3, 2, 2)
        weights = attn.attention_weights(query[0]).reshape(4, 3, 2).softmax(-1)
        mixed = torch.zeros(4, 6)
        for n in range(4):
            for h in range(3):
                chans = slice(2 * h, 2 * h + 2)
                for p in range(2):
                    x = (reference[0, n, 0] + offsets[n, h, p, 0]).item()
                    y = (reference[0, n, 1] + offsets[n, h, p, 1]).item()
                    mixed[n, chans] += weights[n, h, p] * _bilinear(projected[chans], x, y)
        expected = attn.output_proj(mixed)
    assert torch.allclose(out[0], expected, atol=1e-5)


def test_detr_gradients_reach_every_layer():
    torch.manual_seed(0)
    attn = DeformableDETRAttention(dim=8, num_heads=2, num_points=2)
    reference = torch.rand(2, 5, 2) * 4
    (
        attn(torch.randn(2, 5, 8), torch.randn(2, 8, 5, 5), reference) * torch.randn(2, 5, 8)
    ).sum().backward()
    for name, param in attn.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_detr_shape_errors():
    attn = DeformableDETRAttention(dim=8, num_heads=2, num_points=2)
    with pytest.raises(ValueError, match=r"reference must be \(1, 3, 2\)"):
        attn(torch.randn(1, 3, 8), torch.randn(1, 8, 4, 4), torch.zeros(1, 3, 3))
    with pytest.raises(ValueError, match=r"value must be \(1, 8, H, W\)"):
        attn(torch.randn(1, 3, 8), torch.randn(1, 4, 4, 4), torch.zeros(1, 3, 2))
