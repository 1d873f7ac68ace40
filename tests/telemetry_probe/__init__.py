"""Run a MIND-KD entry point in a clean environment under the telemetry probe (``sitecustomize.py``
here) and read back what every one of its processes did."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROBE_PATH = Path(__file__).resolve().parent

# Variables that turn telemetry off by themselves, or that make MLflow or kedro-telemetry believe
# they run in CI or under pytest (MLflow then disables itself): none may reach the entry point, so
# only the package's own mechanism can turn telemetry off.
_TELEMETRY_SWITCHES = (
    "DO_NOT_TRACK",
    "MLFLOW_DISABLE_TELEMETRY",
    "KEDRO_DISABLE_TELEMETRY",
    "MLFLOW_ENABLE_TELEMETRY",
    "_MLFLOW_TESTING_TELEMETRY",
    "GITHUB_REPOSITORY_OWNER",
    "PYTEST_CURRENT_TEST",
    "GITHUB_ACTIONS",
    "GITHUB_ACTION",
    "CI",
    "CIRCLECI",
    "GITLAB_CI",
    "JENKINS_URL",
    "TRAVIS",
    "TF_BUILD",
    "BITBUCKET_BUILD_NUMBER",
    "CODEBUILD_BUILD_ARN",
    "CODEBUILD_BUILD_ID",
    "BUILDKITE",
    "TEAMCITY_VERSION",
    "CLOUD_RUN_EXECUTION",
    "RUNBOT_HOST_URL",
    "RUNBOT_BUILD_NAME",
    "RUNBOT_WORKER_ID",
)
# Thread names of MLflow's telemetry client (mlflow.telemetry.client).
TELEMETRY_THREADS = ("MLflowTelemetryConsumer", "GetTelemetryConfig")


def clean_env(probe_dir: Path, home: Path, **extra: str) -> dict[str, str]:
    """This process's environment without any telemetry switch, with the probe loaded and
    ``HOME`` / ``XDG_CONFIG_HOME`` under ``home`` (where telemetry ids would be written)."""
    env = {k: v for k, v in os.environ.items() if k not in _TELEMETRY_SWITCHES}
    env.pop("MLFLOW_TRACKING_URI", None)
    probe_dir.mkdir(parents=True, exist_ok=True)
    env |= {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(PROBE_PATH), env.get("PYTHONPATH")])),
        "MINDKD_PROBE_DIR": str(probe_dir),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        **extra,
    }
    return env


@dataclass
class Probe:
    """What the processes of one probed command did."""

    starts: list[list[str]] = field(default_factory=list)
    exits: list[dict[str, Any]] = field(default_factory=list)
    net: list[str] = field(default_factory=list)
    threads: list[str] = field(default_factory=list)

    @property
    def telemetry_threads(self) -> list[str]:
        return [t for t in self.threads if t.startswith(TELEMETRY_THREADS)]


def read_probe(probe_dir: Path) -> Probe:
    probe = Probe()
    for path in sorted(probe_dir.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if "start" in record:
                probe.starts.append(record["start"])
            if "exit" in record:
                probe.exits.append(record["exit"])
            probe.net += [record["net"]] if "net" in record else []
            probe.threads += [record["thread"]] if "thread" in record else []
    return probe


def run_probed(
    args: list[str], tmp: Path, cwd: Path, timeout: float = 300, **extra_env: str
) -> tuple[subprocess.CompletedProcess[str], Probe]:
    """Run ``args`` (``python`` means this interpreter) in a clean, probed environment."""
    if args[0] == "python":
        args = [sys.executable, *args[1:]]
    elif args[0] == "kedro":
        args = [str(Path(sys.executable).with_name("kedro")), *args[1:]]
    probe_dir = tmp / "probe"
    done = subprocess.run(
        args,
        cwd=cwd,
        env=clean_env(probe_dir, tmp / "home", **extra_env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return done, read_probe(probe_dir)


def assert_nothing_sent(probe: Probe) -> None:
    """No process tried the network, started MLflow's telemetry, or let kedro-telemetry send; every
    process that imported mlflow has MLflow's own ``is_telemetry_disabled()`` true and no client."""
    assert probe.exits, "no probed process exited normally"
    assert probe.net == [], f"network attempts: {probe.net}"
    assert probe.telemetry_threads == [], f"MLflow telemetry threads: {probe.telemetry_threads}"
    for state in probe.exits:
        if "mlflow_disabled" in state:
            assert state["mlflow_disabled"] is True, state
            assert state["mlflow_client"] is False, state
        if "kedro_consent_from_env" in state:
            assert state["kedro_consent_from_env"] is False, state
            assert state["kedro_hook_consent"] is not True, state
            assert state["kedro_hook_sent"] is False, state
        if state["mindkd_imported"]:
            assert set(state["env"].values()) == {"true"}, state
