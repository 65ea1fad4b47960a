"""Modulated deformable convolution (DCNv2) on ``torchvision.ops.deform_conv2d`` (no mmcv).

Offset layout (torchvision's, checked in ``tests/test_models/test_deform_conv.py``): ``offset``
is ``(B, 2 * G * k * k, Ho, Wo)``; for deformable group ``g`` and kernel tap ``t`` (row-major
over the ``k x k`` taps, ``t = row * k + col``) the displacement of that tap is stored at channels
``g * 2 * k * k + 2 * t`` (**dy, y first**) and ``+ 1`` (dx), in input pixels. ``mask`` is
``(B, G * k * k, Ho, Wo)`` with tap ``t`` of group ``g`` at channel ``g * k * k + t``; it is
multiplied as given, so a DCNv2 mask must already be a sigmoid.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torchvision.ops import deform_conv2d

from vidpose.models.deform_sampling import deform_conv2d_sampled, resolve_deform_backend

__all__ = ["ModulatedDeformConv2d", "ModulatedDeformConvWithOffsets"]


def _same_padding(kernel_size: int, dilation: int) -> int:
    return dilation * (kernel_size - 1) // 2


class ModulatedDeformConv2d(nn.Module):
    """DCNv2 layer holding the weight ``(out, in / groups, k, k)``; offsets and mask are inputs.

    ``padding=None`` keeps the spatial size at stride 1 (``dilation * (k - 1) / 2``).
    ``deform_groups`` must divide ``in_channels``; every input channel of group ``g`` is sampled
    with that group's offsets. ``backend``: ``auto`` runs torchvision's kernel on CUDA and the
    equal ``grid_sample`` form (:mod:`vidpose.models.deform_sampling`, several times faster
    backward on CPU) elsewhere when stride and groups are 1; ``torchvision`` / ``grid_sample``
    force one.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | None = None,
        dilation: int = 1,
        groups: int = 1,
        deform_groups: int = 1,
        bias: bool = True,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        resolve_deform_backend(backend, torch.device("cpu"))  # validates the name
        for name, value in (
            ("in_channels", in_channels),
            ("out_channels", out_channels),
            ("kernel_size", kernel_size),
            ("stride", stride),
            ("dilation", dilation),
            ("groups", groups),
            ("deform_groups", deform_groups),
        ):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(
                    f"ModulatedDeformConv2d: {name} must be a positive integer, got {value!r}"
                )
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"ModulatedDeformConv2d: groups={groups} must divide in_channels={in_channels} "
                f"and out_channels={out_channels}"
            )
        if in_channels % deform_groups:
            raise ValueError(
                f"ModulatedDeformConv2d: deform_groups={deform_groups} must divide "
                f"in_channels={in_channels}"
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = _same_padding(kernel_size, dilation) if padding is None else int(padding)
        self.dilation = dilation
        self.groups = groups
        self.deform_groups = deform_groups
        self.backend = backend
        if backend == "grid_sample" and (stride != 1 or groups != 1):
            raise ValueError("ModulatedDeformConv2d: backend=grid_sample needs stride 1 and groups 1")
        self.weight = nn.Parameter(
            torch.empty(out_channels, in_channels // groups, kernel_size, kernel_size)
        )
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    @property
    def offset_channels(self) -> int:
        """Channels of the offset tensor: ``2 * deform_groups * k * k``."""
        return 2 * self.deform_groups * self.kernel_size**2

    @property
    def mask_channels(self) -> int:
        """Channels of the mask tensor: ``deform_groups * k * k``."""
        return self.deform_groups * self.kernel_size**2

    def reset_parameters(self) -> None:
        """Initialise like ``nn.Conv2d`` (Kaiming-uniform weight, fan-in uniform bias)."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * self.kernel_size**2
            bound = 1.0 / math.sqrt(fan_in)
            nn.init.uniform_(self.bias, -bound, bound)

    @torch.no_grad()
    def init_identity(self) -> None:
        """Set ``W[c, c, centre] = 1``, all else (bias too) 0: zero offsets give mask * input."""
        if self.in_channels != self.out_channels:
            raise ValueError(
                f"identity init needs in_channels == out_channels, "
                f"got {self.in_channels} -> {self.out_channels}"
            )
        self.weight.zero_()
        centre = self.kernel_size // 2
        per_group = self.in_channels // self.groups
        for channel in range(self.out_channels):
            self.weight[channel, channel % per_group, centre, centre] = 1.0
        if self.bias is not None:
            self.bias.zero_()

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """Output ``(Ho, Wo)`` for an ``H x W`` input (the ordinary conv formula)."""
        span = self.dilation * (self.kernel_size - 1) + 1
        return (
            (height + 2 * self.padding - span) // self.stride + 1,
            (width + 2 * self.padding - span) // self.stride + 1,
        )

    def forward(self, x: Tensor, offset: Tensor, mask: Tensor | None = None) -> Tensor:
        """x ``(B, Cin, H, W)``, offset ``(B, 2Gk², Ho, Wo)``, mask ``(B, Gk², Ho, Wo)`` -> output.

        The output is ``(B, Cout, Ho, Wo)``; ``mask=None`` is DCNv1 (every tap weighted 1).
        """
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"input must be (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        out_hw = self.output_size(x.shape[-2], x.shape[-1])
        expected_offset = (x.shape[0], self.offset_channels, *out_hw)
        if tuple(offset.shape) != expected_offset:
            raise ValueError(
                f"offset must be {expected_offset} (B, 2*G*k*k, Ho, Wo), got {tuple(offset.shape)}"
            )
        if mask is not None:
            expected_mask = (x.shape[0], self.mask_channels, *out_hw)
            if tuple(mask.shape) != expected_mask:
                raise ValueError(
                    f"mask must be {expected_mask} (B, G*k*k, Ho, Wo), got {tuple(mask.shape)}"
                )
        sampled_form = self.stride == 1 and self.groups == 1
        if sampled_form and resolve_deform_backend(self.backend, x.device) == "grid_sample":
            return deform_conv2d_sampled(x, offset, self.weight, self.bias, self.padding, self.dilation, mask)
        return deform_conv2d(
            x,
            offset,
            self.weight,
            self.bias,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            mask=mask,
        )

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
            f"groups={self.groups}, deform_groups={self.deform_groups}, "
            f"bias={self.bias is not None}"
        )


class ModulatedDeformConvWithOffsets(nn.Module):
    """DCNv2 whose offsets and mask are predicted from a guide feature by two separate convs.

    The offset conv (``offset_in_channels -> 2 G k²``) and the mask conv (``-> G k²``, then a
    sigmoid) are ``k x k`` with the DCN's dilation, stride and padding, so they see the same
    receptive field as the kernel they steer. Both start at weight 0 and bias 0: offsets 0 and
    mask 0.5. With ``identity_init`` the main weight is the identity on the centre tap, so at
    initialisation the layer returns ``0.5 * x`` (the MTPose fusion start, spec section 1.6).
    ``modulated=False`` is the plain deformable convolution of Dai et al. 2017 (DCNv1): no mask
    conv, every tap weighted 1.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        offset_in_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        deform_groups: int = 1,
        bias: bool = True,
        identity_init: bool = False,
        modulated: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(offset_in_channels, int) or offset_in_channels <= 0:
            raise ValueError(
                f"offset_in_channels must be a positive integer, got {offset_in_channels!r}"
            )
        self.conv = ModulatedDeformConv2d(
            in_channels,
            out_channels,
            kernel_size=kernel_size,
            stride=stride,
            dilation=dilation,
            groups=groups,
            deform_groups=deform_groups,
            bias=bias,
        )
        conv_args = dict(
            kernel_size=kernel_size, stride=stride, padding=self.conv.padding, dilation=dilation
        )
        self.offset_conv = nn.Conv2d(offset_in_channels, self.conv.offset_channels, **conv_args)
        self.mask_conv = (
            nn.Conv2d(offset_in_channels, self.conv.mask_channels, **conv_args) if modulated else None
        )
        for layer in (self.offset_conv, self.mask_conv):
            if layer is not None:
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)
        if identity_init:
            self.conv.init_identity()

    def predict_offsets(self, guide: Tensor) -> tuple[Tensor, Tensor | None]:
        """Guide ``(B, Cg, H, W)`` -> offset ``(B, 2Gk², Ho, Wo)``, mask ``(B, Gk², Ho, Wo)`` or None (DCNv1)."""
        mask = None if self.mask_conv is None else torch.sigmoid(self.mask_conv(guide))
        return self.offset_conv(guide), mask

    def forward(self, x: Tensor, guide: Tensor) -> Tensor:
        """``x (B, Cin, H, W)`` deformed as the guide ``(B, Cg, H, W)`` -> ``(B, Cout, Ho, Wo)``."""
        if guide.dim() != 4 or guide.shape[0] != x.shape[0] or guide.shape[-2:] != x.shape[-2:]:
            raise ValueError(
                f"guide must be (B, C, H, W) with the batch and spatial size of x "
                f"{tuple(x.shape)}, got {tuple(guide.shape)}"
            )
        offset, mask = self.predict_offsets(guide)
        return self.conv(x, offset, mask)
