"""Watching a run: its record (status and metrics), curves, figures, system figures, profiling and trackers."""
