"""Capture: tracked DataFrames, plan inference, recording a run."""
