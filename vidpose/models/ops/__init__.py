"""Deformable operators on torchvision.ops and grid_sample."""
