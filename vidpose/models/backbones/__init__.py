"""Backbones (registry BACKBONES): feature maps with declared channels and stride."""
