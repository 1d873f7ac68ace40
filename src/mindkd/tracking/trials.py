"""Tuning trials as MLflow child runs (the ``TrialRecorder`` of ``mindkd.training.tuning``).

``TrialRuns`` opens each trial as a child run of the active run (tag ``mlflow.parentRunId``, so the
MLflow UI nests them), logs its searched values as params, its per-epoch val score as a metric
history (step = epoch) and its final score (``tune/score``) and best epoch, and ends it FINISHED
(complete or pruned: ``mindkd.tune.state`` says which), FAILED (the objective raised) or KILLED
(interrupted). Each is tagged with the pid and host like every run (``python -m mindkd.tracking
stale`` closes one a ``kill -9`` left RUNNING). Nothing identifying a patient is logged.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import mlflow
from mlflow.entities import Metric, Param, RunStatus, RunTag

from mindkd.tracking.runs import TAG_HOST, TAG_PID
from mindkd.training.tuning import Pruned, TrialRecord, Untracked

logger = logging.getLogger(__name__)

TAG_PARENT = "mlflow.parentRunId"
TAG_STATE = "mindkd.tune.state"
TAG_STUDY = "mindkd.tune.study"
TAG_TRIAL = "mindkd.tune.trial"


@dataclass
class TrialRuns:
    """Each trial as an MLflow child run of ``parent_run_id`` (None: trials are not tracked)."""

    parent_run_id: str | None
    study: str
    client: mlflow.MlflowClient = field(default_factory=mlflow.MlflowClient)

    @classmethod
    def under_active_run(cls, study: str) -> TrialRuns:
        """Children of the active MLflow run, or untracked when there is none."""
        active = mlflow.active_run()
        if active is None:
            logger.info("%s: no active MLflow run, trials are not tracked", study)
        return cls(active.info.run_id if active is not None else None, study)

    @contextmanager
    def trial(self, number: int, values: Mapping[str, Any]) -> Iterator[TrialRecord]:
        """A child run for trial ``number``; its end status follows how the block ends."""
        if self.parent_run_id is None:
            with Untracked().trial(number, values) as record:
                yield record
            return
        parent = self.client.get_run(self.parent_run_id)
        run = self.client.create_run(
            parent.info.experiment_id,
            run_name=f"{self.study} #{number}",
            tags={
                TAG_PARENT: self.parent_run_id,
                TAG_STUDY: self.study,
                TAG_TRIAL: str(number),
                TAG_PID: str(os.getpid()),
                TAG_HOST: socket.gethostname(),
            },
        )
        run_id = run.info.run_id
        self.client.log_batch(run_id, params=[Param(k, str(v)) for k, v in values.items()])
        record = _TrialRun(run_id, self.client)
        status = RunStatus.FAILED
        try:
            yield record
            status = RunStatus.FINISHED
        except Pruned:
            status = RunStatus.FINISHED
            raise
        except (KeyboardInterrupt, SystemExit):
            status = RunStatus.KILLED
            raise
        finally:
            self.client.set_terminated(run_id, RunStatus.to_string(status))


@dataclass
class _TrialRun:
    run_id: str | None
    client: mlflow.MlflowClient

    def epoch(self, monitor: str, epoch: int, score: float) -> None:
        if self.run_id is not None and math.isfinite(score):
            now = int(time.time() * 1000)
            self.client.log_batch(self.run_id, metrics=[Metric(monitor, score, now, epoch)])

    def end(self, state: str, score: float | None, extra: Mapping[str, float]) -> None:
        if self.run_id is None:
            return
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, 0) for k, v in extra.items() if math.isfinite(v)]
        if score is not None and math.isfinite(score):
            metrics.append(Metric("tune/score", score, now, 0))
        self.client.log_batch(self.run_id, metrics=metrics, tags=[RunTag(TAG_STATE, state)])
