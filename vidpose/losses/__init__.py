"""Loss functions (registry LOSSES)."""
