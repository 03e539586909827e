"""Experiment trackers: where a run's curves, figures and summary go besides its folder.

One interface (:class:`train.watch.trackers.base.Tracker`), one module per tracker, a lazy
registry (:data:`train.watch.trackers.base.TRACKERS`): ``tensorboard`` (the default),
``wandb`` (Weights & Biases, offline by default) and ``mlflow`` (a local store or a
tracking server). ``log.trackers`` in the training config names the ones a run uses;
the recorder (train/watch/recorder.py) talks to them through :class:`train.watch.trackers.base.Trackers`.
Adding a tracker is one module here with a class registered by
``@TRACKERS.register("<name>")``.
"""
