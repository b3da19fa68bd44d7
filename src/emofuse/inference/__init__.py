"""Checkpoints, the predictor, explanations and speech recognition."""
