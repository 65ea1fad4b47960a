"""DCNv2 on torchvision's deform_conv2d: reduction to conv2d, offset/mask layout, init, grads."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vidpose.models.ops.deform_conv import ModulatedDeformConv2d, ModulatedDeformConvWithOffsets

CENTRE_TAP = 4  # row-major index of the centre of a 3x3 kernel


def _zero_offsets(
    layer: ModulatedDeformConv2d, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    out_hw = layer.output_size(*x.shape[-2:])
    offset = torch.zeros(x.shape[0], layer.offset_channels, *out_hw)
    mask = torch.ones(x.shape[0], layer.mask_channels, *out_hw)
    return offset, mask


@pytest.mark.parametrize("dilation", [1, 3])
@pytest.mark.parametrize(("groups", "deform_groups"), [(1, 1), (2, 1), (1, 2), (2, 4)])
def test_zero_offsets_unit_mask_equals_conv2d(dilation, groups, deform_groups):
    torch.manual_seed(0)
    layer = ModulatedDeformConv2d(
        4, 6, 3, dilation=dilation, groups=groups, deform_groups=deform_groups
    )
    x = torch.randn(2, 4, 9, 7)
    offset, mask = _zero_offsets(layer, x)
    expected = F.conv2d(
        x, layer.weight, layer.bias, padding=dilation, dilation=dilation, groups=groups
    )
    out = layer(x, offset, mask)
    assert out.shape == (2, 6, 9, 7)  # padding = dilation keeps the size
    assert torch.allclose(out, expected, atol=1e-5)


def test_stride_and_explicit_padding_follow_the_conv_formula():
    torch.manual_seed(0)
    layer = ModulatedDeformConv2d(3, 5, 3, stride=2, padding=0)
    x = torch.randn(1, 3, 9, 8)
    offset, mask = _zero_offsets(layer, x)
    assert offset.shape[-2:] == (4, 3)  # (9 - 3) // 2 + 1, (8 - 3) // 2 + 1
    assert torch.allclose(
        layer(x, offset, mask), F.conv2d(x, layer.weight, layer.bias, stride=2), atol=1e-5
    )


def _identity_layer(channels: int, deform_groups: int = 1) -> ModulatedDeformConv2d:
    layer = ModulatedDeformConv2d(channels, channels, 3, deform_groups=deform_groups)
    layer.init_identity()
    return layer


def test_centre_tap_dy_one_samples_one_row_below():
    layer = _identity_layer(2)
    x = torch.arange(2 * 5 * 4, dtype=torch.float32).reshape(1, 2, 5, 4)
    offset, mask = _zero_offsets(layer, x)
    offset[:, 2 * CENTRE_TAP] = 1.0  # y comes first in each tap's pair
    out = layer(x, offset, mask)
    assert torch.equal(out[:, :, :-1], x[:, :, 1:])
    assert torch.equal(out[:, :, -1], torch.zeros(1, 2, 4))  # below the last row reads zero padding


def test_centre_tap_dx_one_samples_one_column_right():
    layer = _identity_layer(1)
    x = torch.arange(5 * 4, dtype=torch.float32).reshape(1, 1, 5, 4)
    offset, mask = _zero_offsets(layer, x)
    offset[:, 2 * CENTRE_TAP + 1] = 1.0
    out = layer(x, offset, mask)
    assert torch.equal(out[..., :-1], x[..., 1:])
    assert torch.equal(out[..., -1], torch.zeros(1, 1, 5))


def test_offset_and_mask_channels_are_grouped_by_deform_group():
    # 2 channels, 2 deformable groups: channel c is moved only by group c's offsets/mask.
    layer = _identity_layer(2, deform_groups=2)
    x = torch.randn(1, 2, 6, 5)
    offset, mask = _zero_offsets(layer, x)
    offset[:, 2 * 9 + 2 * CENTRE_TAP] = 1.0  # group 1 (channels 18..35), centre tap dy
    mask[:, 0 * 9 + CENTRE_TAP] = 0.25  # group 0 centre tap
    out = layer(x, offset, mask)
    assert torch.allclose(out[:, 0], 0.25 * x[:, 0])
    assert torch.allclose(out[:, 1, :-1], x[:, 1, 1:])


def test_fractional_offset_interpolates_bilinearly():
    layer = _identity_layer(1)
    x = torch.arange(5 * 4, dtype=torch.float32).reshape(1, 1, 5, 4)  # value = 4 y + x
    offset, mask = _zero_offsets(layer, x)
    offset[:, 2 * CENTRE_TAP] = 0.5
    offset[:, 2 * CENTRE_TAP + 1] = 0.25
    out = layer(x, offset, mask)
    # linear in x and y, so interior samples read 4 (y + 0.5) + (x + 0.25) = value + 2.25
    assert torch.allclose(out[..., :-1, :-1], x[..., :-1, :-1] + 2.25)


def test_dcnv1_without_mask_matches_unit_mask():
    torch.manual_seed(0)
    layer = ModulatedDeformConv2d(3, 3, 3)
    x = torch.randn(1, 3, 6, 6)
    offset = 0.7 * torch.randn(1, layer.offset_channels, 6, 6)
    ones = torch.ones(1, layer.mask_channels, 6, 6)
    assert torch.allclose(layer(x, offset), layer(x, offset, ones), atol=1e-6)


def test_with_offsets_identity_init_returns_half_input():
    torch.manual_seed(0)
    module = ModulatedDeformConvWithOffsets(
        3, 3, offset_in_channels=6, dilation=3, deform_groups=3, identity_init=True
    )
    x, guide = torch.randn(2, 3, 16, 12), torch.randn(2, 6, 16, 12)
    offset, mask = module.predict_offsets(guide)
    assert offset.shape == (2, 2 * 3 * 9, 16, 12) and mask.shape == (2, 3 * 9, 16, 12)
    assert torch.equal(offset, torch.zeros_like(offset))
    assert torch.equal(mask, torch.full_like(mask, 0.5))
    assert torch.allclose(module(x, guide), 0.5 * x, atol=1e-6)


def test_gradients_reach_offsets_masks_and_weights():
    torch.manual_seed(0)
    layer = ModulatedDeformConv2d(4, 4, 3, dilation=2, deform_groups=2)
    x = torch.randn(1, 4, 8, 8, requires_grad=True)
    offset = (0.3 * torch.randn(1, layer.offset_channels, 8, 8)).requires_grad_()
    mask = torch.sigmoid(torch.randn(1, layer.mask_channels, 8, 8)).requires_grad_()
    (layer(x, offset, mask) * torch.randn(1, 4, 8, 8)).sum().backward()
    for name, grad in [
        ("x", x.grad),
        ("offset", offset.grad),
        ("mask", mask.grad),
        ("weight", layer.weight.grad),
        ("bias", layer.bias.grad),
    ]:
        assert grad is not None and grad.abs().sum() > 0, name
        assert torch.isfinite(grad).all(), name


def test_gradients_reach_the_zero_initialised_offset_and_mask_convs():
    torch.manual_seed(0)
    module = ModulatedDeformConvWithOffsets(2, 2, offset_in_channels=3, identity_init=True)
    x, guide = torch.randn(1, 2, 6, 6), torch.randn(1, 3, 6, 6)
    (module(x, guide) * torch.randn(1, 2, 6, 6)).sum().backward()
    assert module.mask_conv.weight.grad.abs().sum() > 0
    assert module.offset_conv.weight.grad.abs().sum() > 0
    assert module.conv.weight.grad.abs().sum() > 0


def test_shape_errors_name_the_expected_layout():
    layer = ModulatedDeformConv2d(2, 2, 3)
    x = torch.randn(1, 2, 5, 5)
    with pytest.raises(ValueError, match=r"offset must be \(1, 18, 5, 5\)"):
        layer(x, torch.zeros(1, 9, 5, 5))
    with pytest.raises(ValueError, match=r"mask must be \(1, 9, 5, 5\)"):
        layer(x, torch.zeros(1, 18, 5, 5), torch.ones(1, 18, 5, 5))
    with pytest.raises(ValueError, match=r"input must be \(B, 2, H, W\)"):
        layer(torch.randn(1, 3, 5, 5), torch.zeros(1, 18, 5, 5))


def test_constructor_errors():
    with pytest.raises(ValueError, match="deform_groups=3 must divide in_channels=4"):
        ModulatedDeformConv2d(4, 4, deform_groups=3)
    with pytest.raises(ValueError, match="in_channels == out_channels"):
        ModulatedDeformConv2d(4, 2).init_identity()
    with pytest.raises(ValueError, match="guide must be"):
        ModulatedDeformConvWithOffsets(2, 2, offset_in_channels=2)(
            torch.randn(1, 2, 5, 5), torch.randn(1, 2, 4, 5)
        )


def test_identity_init_with_channel_groups():
    layer = ModulatedDeformConv2d(4, 4, 3, groups=2)
    layer.init_identity()
    x = torch.randn(1, 4, 5, 5)
    offset, mask = _zero_offsets(layer, x)
    assert torch.allclose(layer(x, offset, mask), x, atol=1e-6)


@pytest.mark.parametrize("modulated", [True, False])
def test_cpu_grid_sample_form_equals_torchvision_in_values_and_gradients(modulated):
    # backend=auto takes the grid_sample form on CPU (much faster backward): it must be the same function
    torch.manual_seed(0)
    layers = {b: ModulatedDeformConv2d(6, 4, kernel_size=3, dilation=2, deform_groups=2, backend=b).double()
              for b in ("torchvision", "auto")}
    layers["auto"].load_state_dict(layers["torchvision"].state_dict())
    x = torch.randn(2, 6, 7, 5, dtype=torch.float64)
    offset = torch.randn(2, layers["auto"].offset_channels, 7, 5, dtype=torch.float64) * 1.5
    mask = torch.rand(2, layers["auto"].mask_channels, 7, 5, dtype=torch.float64) if modulated else None
    results = {}
    for name, layer in layers.items():
        inputs = [t.clone().requires_grad_() for t in (x, offset)]
        out = layer(inputs[0], inputs[1], mask)
        out.square().sum().backward()
        results[name] = (out, inputs[0].grad, inputs[1].grad, layer.weight.grad)
    for a, b in zip(results["auto"], results["torchvision"]):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    with pytest.raises(ValueError, match="backend"):
        ModulatedDeformConv2d(4, 4, backend="cuda")
