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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kedro_harness import PROJECT_ROOT
from telemetry_probe import clean_env, read_probe

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


@dataclass(frozen=True)
class VizServer:
    url: str
    probe_dir: Path


@pytest.fixture(scope="module")
def viz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VizServer]:
    """``kedro viz run`` as a user types it: an environment without any telemetry switch (the
    package turns telemetry off), every process under the telemetry probe (``telemetry_probe``)."""
    port = _free_port()
    tmp = tmp_path_factory.mktemp("viz")
    log_path = tmp / "viz.log"
    log = log_path.open("w")
    kedro = Path(sys.executable).with_name("kedro")
    process = subprocess.Popen(
        [str(kedro), "viz", "run", "--host", "127.0.0.1", "--port", str(port), "--no-browser"],
        cwd=PROJECT_ROOT,
        env=clean_env(tmp / "probe", tmp / "home"),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/main", timeout=5):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    output = log_path.read_text()[-3000:]
                    raise RuntimeError(f"kedro viz did not serve /api/main:\n{output}") from None
                time.sleep(1)
        yield VizServer(url=url, probe_dir=tmp / "probe")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
        log.close()


def _get(server: VizServer, path: str) -> bytes:
    with urllib.request.urlopen(f"{server.url}{path}", timeout=30) as response:
        return response.read()


@pytest.fixture(scope="module")
def viz_api(viz_server: VizServer) -> dict:
    return json.loads(_get(viz_server, "/api/main"))


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


def test_viz_sends_nothing_and_its_page_carries_no_tracking_script(viz_server: VizServer) -> None:
    """No Heap script in the page, no PyPI version check (at start-up and behind /api/version),
    no network attempt and no MLflow telemetry thread in the launcher or the server process."""
    page = _get(viz_server, "/").decode()
    assert "</head>" in page and "heap.load" not in page
    version = json.loads(_get(viz_server, "/api/version"))
    assert version["installed"]
    probe = read_probe(viz_server.probe_dir)
    assert len(probe.starts) >= 2, probe.starts  # the launcher and the server it spawned
    assert probe.net == [], f"network attempts: {probe.net}"
    assert probe.telemetry_threads == [], probe.telemetry_threads
