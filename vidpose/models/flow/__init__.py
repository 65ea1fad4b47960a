"""Optical-flow estimators (registry FLOWS)."""
