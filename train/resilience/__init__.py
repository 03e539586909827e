"""Runs that survive: checkpoints (best, last, top-k, recovery), signals and preemption, ``--auto-resume``."""
