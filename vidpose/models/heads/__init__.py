"""Heads (registry HEADS): temporal fusion heads producing key-frame heatmaps."""
