"""kedro-viz serves the project: pipelines, both task namespaces, ordered layers, key datasets."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from kedro_harness import PROJECT_ROOT

pytestmark = pytest.mark.slow

LAYER_ORDER = ("raw", "intermediate", "primary", "feature", "model_input")


def _free_port() -> int:
    """A free loopback port below 49151 (kedro-viz refuses the ephemeral range above it)."""
    rng = random.Random(os.getpid())
    for _ in range(100):
        port = rng.randrange(20000, 40000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000-40000")


@pytest.fixture(scope="module")
def viz_api(tmp_path_factory: pytest.TempPathFactory) -> dict:
    port = _free_port()
    log_path = tmp_path_factory.mktemp("viz") / "viz.log"
    log = log_path.open("w")
    kedro = Path(sys.executable).with_name("kedro")
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    process = subprocess.Popen(
        [str(kedro), "viz", "run", "--host", "127.0.0.1", "--port", str(port), "--no-browser"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/main", timeout=5) as r:
                    yield json.load(r)
                    return
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    output = log_path.read_text()[-3000:]
                    raise RuntimeError(f"kedro viz did not serve /api/main:\n{output}") from None
                time.sleep(1)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
        log.close()


def test_every_pipeline_is_served(viz_api: dict) -> None:
    served = {p["id"] for p in viz_api["pipelines"]}
    assert {"__default__", "ehr", "cxr", "pairing", "teachers", "distill"} <= served


def test_both_task_namespaces_are_modular_pipelines(viz_api: dict) -> None:
    modular = {n["id"] for n in viz_api["nodes"] if n["type"] == "modularPipeline"}
    assert {"ihm", "pheno"} <= modular


def test_layers_are_ordered_from_raw_to_reporting(viz_api: dict) -> None:
    layers = viz_api["layers"]
    assert layers, "an empty list means the catalog's layers form a cycle"
    assert [layer for layer in layers if layer in LAYER_ORDER] == list(LAYER_ORDER)
    assert layers[-1] == "reporting"


def test_key_datasets_are_there_and_patient_tables_are_not_previewed(viz_api: dict) -> None:
    data = {n["name"]: n for n in viz_api["nodes"] if n["type"] == "data"}
    for name in ("chartevents", "cxr_image_store", "ihm.cohort", "pheno.pairs", "ehr_data_report"):
        assert name in data, name
    assert data["ihm.cohort"]["layer"] == "primary"
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(PROJECT_ROOT)
    import yaml

    catalog = yaml.safe_load((PROJECT_ROOT / "conf/base/catalog.yml").read_text())
    for name in ("patients", "chartevents", "{task}.cohort", "{task}.pairs", "subject_splits"):
        assert catalog[name]["metadata"]["kedro-viz"]["preview"] is False, name
