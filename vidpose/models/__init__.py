"""Pose models: backbones, flow estimators, deformable ops, temporal heads, refiners."""
