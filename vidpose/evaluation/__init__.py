"""Benchmark evaluators: PoseTrack mAP (poseval) and Sub-JHMDB PCK (DeciWatch/HANet). Pure numpy."""
