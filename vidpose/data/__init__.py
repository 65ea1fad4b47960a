"""Datasets, keypoint layouts, clip sampling and shared-affine transforms."""
