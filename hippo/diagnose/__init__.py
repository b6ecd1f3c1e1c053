"""Diagnosis: re-running a recorded run (replay); removal and restore build on it."""
