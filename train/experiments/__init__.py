"""Experiments made of training runs: sweeps (sweep, study), cross-validation (crossval), the learning-rate
finder (lr_find) and the runs browser (runs)."""
