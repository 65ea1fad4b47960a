"""vidpose.heatmaps: the public, stable heatmap API (encoding, decoding, geometry).

Importing this package pulls in numpy only; torch is imported lazily by the torch paths.
It never imports torchvision, timm, hydra or vidpose.models.
"""

from vidpose.heatmaps.geometry import CONVENTIONS, Geometry, apply_affine, box_to_center_scale, invert_affine

__all__ = ["CONVENTIONS", "Geometry", "apply_affine", "box_to_center_scale", "invert_affine"]
