"""Coordinate refiners (registry REFINERS) applied after a heatmap model."""
