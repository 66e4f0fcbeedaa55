"""Sliding-window restoration scores over whole volumes, the predictor and its export."""
