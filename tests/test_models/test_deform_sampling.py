"""deform_conv2d_sampled equals torchvision's deform_conv2d (values and gradients) and picks backends."""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import deform_conv2d

from vidpose.models.deform_sampling import deform_conv2d_sampled, resolve_deform_backend


@pytest.mark.parametrize("groups, dilation, padding", [(6, 1, 1), (2, 3, 3), (1, 2, 0)])
def test_matches_torchvision_with_large_offsets(groups, dilation, padding):
    # offsets of a few pixels push many taps off the map, which both must read as zeros
    g = torch.Generator().manual_seed(groups)
    b, c, h, w = 2, 6, 9, 7
    out_h, out_w = h + 2 * padding - 2 * dilation, w + 2 * padding - 2 * dilation
    x = torch.randn(b, c, h, w, dtype=torch.float64, generator=g, requires_grad=True)
    offset = (3 * torch.randn(b, 18 * groups, out_h, out_w, dtype=torch.float64, generator=g)).requires_grad_()
    mask = torch.rand(b, 9 * groups, out_h, out_w, dtype=torch.float64, generator=g, requires_grad=True)
    weight = torch.randn(4, c, 3, 3, dtype=torch.float64, generator=g, requires_grad=True)
    bias = torch.randn(4, dtype=torch.float64, generator=g, requires_grad=True)
    inputs = (x, offset, mask, weight, bias)
    probe = torch.randn(b, 4, out_h, out_w, dtype=torch.float64, generator=g)
    reference = deform_conv2d(x, offset, weight, bias, padding=padding, dilation=dilation, mask=mask)
    sampled = deform_conv2d_sampled(x, offset, weight, bias, padding, dilation, mask)
    assert sampled.shape == (b, 4, out_h, out_w)
    assert torch.allclose(sampled, reference, atol=1e-12)
    for got, want in zip(torch.autograd.grad((sampled * probe).sum(), inputs),
                         torch.autograd.grad((reference * probe).sum(), inputs)):
        assert torch.allclose(got, want, atol=1e-11)


def test_offset_moves_the_sample_and_no_mask_is_dcnv1():
    # one channel, identity centre tap; offset (dy, dx) = (1, 0) on the centre tap reads one row below
    x = torch.arange(20.0).view(1, 1, 5, 4)
    weight = torch.zeros(1, 1, 3, 3)
    weight[0, 0, 1, 1] = 1.0
    offset = torch.zeros(1, 18, 5, 4)
    offset[0, 8] = 1.0  # tap 4 (centre) dy at channel 2 * 4
    out = deform_conv2d_sampled(x, offset, weight, None, padding=1, dilation=1)
    expected = torch.cat([x[0, 0, 1:], torch.zeros(1, 4)])  # the last row reads outside: 0
    assert torch.equal(out[0, 0], expected)


def test_shape_errors_and_backend_names():
    x = torch.zeros(1, 4, 5, 5)
    weight = torch.zeros(2, 4, 3, 3)
    with pytest.raises(ValueError, match="offset"):
        deform_conv2d_sampled(x, torch.zeros(1, 18 * 3, 5, 5), weight, None, 1, 1)  # 3 groups do not divide 4
    with pytest.raises(ValueError, match="mask"):
        deform_conv2d_sampled(x, torch.zeros(1, 18, 5, 5), weight, None, 1, 1, torch.zeros(1, 8, 5, 5))
    assert resolve_deform_backend("auto", torch.device("cpu")) == "grid_sample"
    assert resolve_deform_backend("auto", torch.device("cuda", 0)) == "torchvision"
    assert resolve_deform_backend("torchvision", torch.device("cpu")) == "torchvision"
    with pytest.raises(ValueError, match="grid_sample"):
        resolve_deform_backend("mmcv", torch.device("cpu"))
