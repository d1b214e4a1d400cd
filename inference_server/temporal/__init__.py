"""Whole-shot temporal analysis: cuts, face tracks, zero-phase smoothing of landmark trajectories."""
