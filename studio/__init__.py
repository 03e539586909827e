"""The studio: one web page to launch, queue, watch and compare runs, review data and check predictions.

``pipenv run studio`` serves it (:func:`studio.server.serve`). It is one more reader of
the files the stages write (run folders, evaluations, reviews, models) through their
owners in :mod:`common`, and it starts the stages as processes: it never imports torch,
``train``, ``deploy`` or ``networks``, so it is never a second way to train. The torch-free
packages it uses in-process are ``common``, ``datatools`` (a review's decisions, applied by
the same code as ``prepare-data apply``) and ``predict`` (the Python API). See docs/studio.md.

Rooms:

- :mod:`studio.server`: the command (lock, port, token, uvicorn).
- :mod:`studio.app`: the routes, built by :func:`studio.app.build_app`.
- :mod:`studio.security`: the token, the session cookie, CSRF, Host and Origin checks, slowed guesses.
- :mod:`studio.resolver`: the one way a file is served (data, model and output roots only).
- :mod:`studio.jobs`: the queue (SQLite, WAL) and :mod:`studio.executors` (local processes, Slurm).
- :mod:`studio.launch`: the launch form -> a validated ``train`` command line.
- :mod:`studio.runs`: the runs table, comparison and the live events of a run.
- :mod:`studio.review` and :mod:`studio.predicting`: the review and predict pages.
"""
