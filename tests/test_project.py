"""Project-level contracts: where raw data is read from, what is registered, what is sent out."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from kedro_harness import PROJECT_ROOT, make_project_run

RAW_LAYER = "raw"


def _raw_locations(catalog) -> dict[str, str]:
    locations = {}
    for name in catalog.keys():
        dataset = catalog.get(name)
        layer = (getattr(dataset, "metadata", None) or {}).get("kedro-viz", {}).get("layer")
        if layer == RAW_LAYER:
            described = dataset._describe()
            locations[name] = str(described.get("filepath") or described.get("path"))
    return locations


def test_two_globals_keys_move_every_raw_input(tmp_path: Path) -> None:
    iv, cxr = tmp_path / "physionet" / "mimiciv", tmp_path / "physionet" / "cxr-jpg"
    catalog = make_project_run(tmp_path, iv, cxr).catalog()
    locations = _raw_locations(catalog)
    expected = {
        "patients",
        "admissions",
        "icustays",
        "diagnoses_icd",
        "chartevents",
        "labevents",
        "cxr_metadata",
        "cxr_chexpert",
        "cxr_negbio",
        "cxr_files",
    }
    assert expected <= set(locations)
    # the demo generator's truth sits beside the export (never in it) and moves with mimic_iv_dir
    allowed = (str(iv), str(cxr), str(iv.parent / "_truth"))
    for name, location in locations.items():
        assert os.path.normpath(location).startswith(allowed), f"{name} reads {location}"
    assert locations["chartevents"] == str(iv / "icu" / "chartevents.csv.gz")
    assert locations["cxr_files"] == str(cxr)


def test_base_globals_point_at_the_demo_data() -> None:
    globals_ = yaml.safe_load((PROJECT_ROOT / "conf/base/globals.yml").read_text())
    assert globals_["mimic_iv_dir"] == "data/01_raw/demo/mimic-iv"
    assert globals_["mimic_cxr_jpg_dir"] == "data/01_raw/demo/mimic-cxr-jpg"
    assert globals_["profile"] == "demo"
    assert globals_["mlflow_tracking_uri"].startswith("sqlite:///")


def test_pipelines_are_registered_by_stage() -> None:
    from kedro.framework.project import pipelines
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(PROJECT_ROOT)
    names = set(pipelines)
    assert {"ehr", "cxr", "pairing", "__default__"} <= names
    default = pipelines["__default__"]
    assert {n.namespace for n in default.nodes if n.namespace} >= {"ihm", "pheno"}


def test_nothing_leaves_the_machine() -> None:
    telemetry = yaml.safe_load((PROJECT_ROOT / ".telemetry").read_text())
    assert telemetry == {"consent": False}
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    for variable in ("KEDRO_DISABLE_TELEMETRY := true", "DO_NOT_TRACK := true"):
        assert variable in makefile
    mlflow_conf = yaml.safe_load((PROJECT_ROOT / "conf/base/mlflow.yml").read_text())
    assert mlflow_conf["ui"]["host"] == "127.0.0.1"
    assert "--host 127.0.0.1" in makefile
