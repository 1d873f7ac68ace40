"""Runs left RUNNING by a process that is gone (``kill -9``, a crash, a power cut).

An interrupted ``kedro run`` ends its runs KILLED itself (``mindkd.hooks.TrackingHook``), but a
process killed outright cannot: its runs stay RUNNING forever. Every run is tagged with the pid and
host that ran it, so ``find_stale`` can tell a dead run from a live one on this host; ``close``
marks the dead ones KILLED. A run of another host (or one without the tags, from before them) is
``unknown``: it is closed only when asked (``force``), since its process may still run elsewhere.

    python -m mindkd.tracking stale            # list RUNNING runs: dead / alive / unknown
    python -m mindkd.tracking stale --close    # mark the dead ones KILLED
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Literal

from mlflow import MlflowClient
from mlflow.entities import RunStatus

from mindkd.tracking.runs import TAG_HOST, TAG_PID

State = Literal["dead", "alive", "unknown"]
KILLED = RunStatus.to_string(RunStatus.KILLED)


@dataclass(frozen=True)
class StaleRun:
    """A RUNNING run and whether the process that runs it is still there."""

    run_id: str
    experiment: str
    name: str
    pid: str
    host: str
    state: State


def _state(pid: str, host: str) -> State:
    if not pid.isdigit() or host != socket.gethostname():
        return "unknown"
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return "dead"
    except PermissionError:
        return "alive"
    return "alive"


def find_stale(client: MlflowClient, experiment_names: list[str]) -> list[StaleRun]:
    """The RUNNING runs of the experiments that exist among ``experiment_names``."""
    experiments = {}
    for name in experiment_names:
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            experiments[experiment.experiment_id] = name
    if not experiments:
        return []
    runs = client.search_runs(
        list(experiments), filter_string="attributes.status = 'RUNNING'", max_results=1000
    )
    found = []
    for run in runs:
        pid = run.data.tags.get(TAG_PID, "")
        host = run.data.tags.get(TAG_HOST, "")
        found.append(
            StaleRun(
                run_id=run.info.run_id,
                experiment=experiments[run.info.experiment_id],
                name=run.info.run_name or "",
                pid=pid,
                host=host,
                state=_state(pid, host),
            )
        )
    return found


def close(client: MlflowClient, runs: list[StaleRun], *, force: bool = False) -> list[StaleRun]:
    """Mark the dead runs (and, with ``force``, the unknown ones) KILLED; return those closed."""
    closing = [r for r in runs if r.state == "dead" or (force and r.state == "unknown")]
    for run in closing:
        client.set_terminated(run.run_id, KILLED)
    return closing


def format_stale(runs: list[StaleRun], closed: list[StaleRun] | None = None) -> str:
    """One line per RUNNING run (and what was closed)."""
    if not runs:
        return "No RUNNING runs."
    done = {r.run_id for r in closed or []}
    lines = [
        f"{r.run_id[:8]}  {r.state:<7}  pid {r.pid or '?':>7} on {r.host or '?'}  "
        f"{r.experiment}: {r.name}" + ("  -> KILLED" if r.run_id in done else "")
        for r in runs
    ]
    dead = sum(r.state == "dead" for r in runs)
    if closed is None and dead:
        lines.append(f"{dead} run(s) of dead processes: close them with `stale --close`.")
    return "\n".join(lines)
