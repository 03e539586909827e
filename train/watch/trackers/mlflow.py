"""MLflow: params, metrics, figures and the run's files, to a tracking server or a local store.

``log.mlflow.tracking_uri`` (else ``MLFLOW_TRACKING_URI``, else the local store
``<output>/mlflow/``: an SQLite database and an artifact folder, which
``mlflow ui --backend-store-uri sqlite:///output/mlflow/mlflow.db`` shows). The
MLflow run is named after the run folder and tagged ``imagepipe.run``, so a resumed
run continues it. Metrics are buffered and sent once per epoch (or per minute; one
request per 1,000 values), so a remote server costs the training steps next to nothing. Needs the
``mlflow`` package (the Pipfile's ``[trackers]`` category).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from common.errors import UserError
from common.paths import output_dir
from common.run_folder import RunStatus
from train.watch.trackers.base import TRACKERS, RunInfo, Tracker, check_reachable, flat_params

RUN_TAG = "imagepipe.run"
"""The MLflow tag holding the run folder's name."""

BATCH = 1000
"""Most metrics per request (MLflow's limit for one ``log_batch``)."""

SEND_EVERY = 60.0
"""Seconds after which buffered metrics are sent even before the epoch ends."""

def mlflow_status(status: RunStatus) -> str:
    """The MLflow run status of a run's: ``FINISHED`` when it succeeded, ``KILLED`` when a signal stopped it (it can
    continue), ``FAILED`` otherwise."""
    if status.succeeded:
        return "FINISHED"
    return "KILLED" if status in (RunStatus.INTERRUPTED, RunStatus.PREEMPTED) else "FAILED"


def tracking_uri(configured: str | None) -> str:
    """The tracking URI to use: the configured one, ``MLFLOW_TRACKING_URI``, or the local store under the output folder."""
    if configured:
        return configured
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    store = output_dir() / "mlflow"
    store.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{store / 'mlflow.db'}"


@TRACKERS.register("mlflow")
class MlflowTracker(Tracker):
    """Logs to an MLflow run through ``MlflowClient`` (no global MLflow state is touched).

    Args:
        run: The run it tracks.
    """

    requires = ("mlflow",)

    @classmethod
    def preflight(cls, log: Mapping[str, Any]) -> None:
        """The tracking server answers within seconds (MLflow itself retries for minutes), and MLflow takes the
        address (a scheme it knows, a store it accepts)."""
        uri = log["mlflow"]["tracking_uri"] or os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:
            return  # the local store under the output folder
        check_reachable(uri, "log.mlflow.tracking_uri")
        from mlflow.tracking import MlflowClient

        previous = {k: os.environ.get(k) for k in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")}
        os.environ.update({"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"})
        try:
            MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
        except Exception as exc:  # MLflow's own errors for an unknown scheme, a refused store, a server error
            raise UserError(f"log.mlflow.tracking_uri {uri!r}: MLflow cannot use it ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''}); fix it or leave mlflow out of "
                            "log.trackers") from None
        finally:
            for key, value in previous.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def __init__(self, run: RunInfo):
        super().__init__(run)
        from mlflow.tracking import MlflowClient

        settings = run.log["mlflow"]
        self.uri = tracking_uri(settings["tracking_uri"])
        self.client = MlflowClient(tracking_uri=self.uri)
        experiment = self._experiment(settings["experiment"])
        self.run_id = self._find_run(experiment) if run.resumed_step is not None else None
        if self.run_id is None:
            created = self.client.create_run(experiment, run_name=run.folder.name,
                                             tags={RUN_TAG: run.folder.name, "network": run.network.get("name", "")})
            self.run_id = created.info.run_id
            self._log_params(flat_params({**run.config, "network_hash": run.network.get("hash")}))
        self.pending: list[Any] = []
        self.sent = time.monotonic()

    def _experiment(self, name: str) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        location = None
        if self.uri.startswith("sqlite:///") and self.uri.endswith("mlflow.db"):  # the local store: artifacts beside it
            location = (Path(self.uri.removeprefix("sqlite:///")).parent / "artifacts").as_uri()
        return self.client.create_experiment(name, artifact_location=location)

    def _find_run(self, experiment: str) -> str | None:
        found = self.client.search_runs([experiment], filter_string=f"tags.`{RUN_TAG}` = '{self.run.folder.name}'",
                                        max_results=1)
        return found[0].info.run_id if found else None

    def _log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        entries = [Param(key, str(value)[:6000]) for key, value in params.items()]
        for start in range(0, len(entries), 100):  # MLflow takes at most 100 params per request
            self.client.log_batch(self.run_id, params=entries[start:start + 100])

    def log_scalars(self, values: Mapping[str, float], step: int) -> None:
        """Buffer metrics (sent by :meth:`flush`, when 1,000 are waiting, or a minute after the last sending)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.pending += [Metric(key, float(value), now, step) for key, value in values.items()]
        if len(self.pending) >= BATCH or time.monotonic() - self.sent > SEND_EVERY:
            self.flush()

    def log_image(self, tag: str, image: np.ndarray, step: int) -> None:
        """A PNG artifact ``<tag>/step_<step>.png``."""
        self.client.log_image(self.run_id, image, artifact_file=f"{tag}/step_{step:08d}.png")

    def log_summary(self, hparams: Mapping[str, Any], metrics: Mapping[str, float], step: int) -> None:
        """The final metrics (the params were logged when the run started)."""
        self.log_scalars(metrics, step)
        self.flush()

    def log_files(self, paths: Sequence[Path]) -> None:
        """Artifacts under ``run/``."""
        self.flush()
        for path in paths:
            self.client.log_artifact(self.run_id, str(path), artifact_path="run")

    def log_card(self, name: str, card: Mapping[str, Any]) -> None:
        """The card as the artifact ``run/<name>.json``."""
        self.client.log_dict(self.run_id, dict(card), f"run/{name}.json")

    def flush(self) -> None:
        """Send the buffered metrics."""
        while self.pending:
            chunk, self.pending = self.pending[:BATCH], self.pending[BATCH:]
            self.client.log_batch(self.run_id, metrics=chunk)
        self.sent = time.monotonic()

    def close(self, status: RunStatus) -> None:
        """Send what is left and mark the MLflow run finished, killed or failed."""
        self.flush()
        self.client.set_terminated(self.run_id, status=mlflow_status(status))
