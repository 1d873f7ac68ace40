"""The data stages (ehr, cxr, pairing) run through a real KedroSession on a generated export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest

from kedro_harness import ProjectRun
from mindkd.tasks import TASKS

pytestmark = pytest.mark.slow


def _latest(folder: Path) -> Path:
    """The newest version of a versioned dataset folder (``<name>/<timestamp>/<name>``)."""
    return sorted(folder.iterdir())[-1] / folder.name


def _report(run: ProjectRun, relative: str) -> dict[str, Any]:
    return json.loads(_latest(run.data_root / relative).read_text())


def test_every_injected_event_defect_is_counted(data_run: ProjectRun, manifest: dict) -> None:
    report = _report(data_run, "08_reporting/ehr/data_report.json")
    chart, lab = manifest["defects"]["chartevents"], manifest["defects"]["labevents"]
    dropped = report["dropped"]
    chart_dropped = report["ingest"]["sources"]["chart"]["dropped"]
    assert chart_dropped["missing_subject_id"] == chart["missing_subject_id"]
    assert chart_dropped["missing_stay_id"] == chart["missing_stay_id"]
    assert chart_dropped["outside_stay"] == (
        chart["outside_before_intime"] + chart["outside_after_outtime"]
    )
    assert dropped["duplicate"] == chart["duplicate"] + lab["duplicate"]
    assert dropped["non_numeric"] == chart["text_in_numeric"] + lab["text_in_numeric"]
    impossible = sum(v for k, v in {**chart, **lab}.items() if k.startswith("impossible_"))
    assert dropped["out_of_range"] == impossible
    assert report["complete"] and report["ingest"]["complete"]


def test_real_quirks_the_generator_reproduces_are_read_right(
    data_run: ProjectRun, manifest: dict, demo_export: Path
) -> None:
    """Height/weight minutes before intime, °F under the °C item, deaths discharged at midnight."""
    report = _report(data_run, "08_reporting/ehr/data_report.json")
    natural = manifest["natural"]["chartevents"]
    assert natural["slow_before_intime"] > 20
    assert report["ingest"]["sources"]["chart"]["rows_looked_back"] == natural["slow_before_intime"]
    assert natural["fahrenheit_in_celsius_item"] > 0
    assert report["fahrenheit_in_celsius"] == {"temperature": natural["fahrenheit_in_celsius_item"]}

    cohort = pd.read_parquet(data_run.data_root / "03_primary/ihm/cohort.parquet")
    truth = pd.read_parquet(demo_export / "_truth/stays.parquet").set_index("stay_id")
    truth = truth.loc[cohort["stay_id"]]
    assert cohort["y"].tolist() == truth["died"].astype(int).tolist()  # the default rule: the flag
    midnight = cohort["stay_id"][(truth["died"] & truth["dischtime_at_midnight"]).to_numpy()]
    assert len(midnight) > 0
    rules = _report(data_run, "08_reporting/ihm/cohort_report.json")["counts"]["ihm_label_rules"]
    assert rules["death_date"]["disagreements"] == 0
    assert rules["deathtime"]["disagreements"] == len(midnight)
    assert sorted(rules["deathtime"]["disagreement_stays"]) == sorted(midnight.tolist())[:20]


def test_no_subject_in_two_splits_in_any_table(data_run: ProjectRun) -> None:
    root = data_run.data_root
    splits = pd.read_parquet(root / "03_primary/subject_splits.parquet")
    assert splits["subject_id"].is_unique
    truth = splits.set_index("subject_id")["split"]
    for task in TASKS:
        for table in (
            "03_primary/{t}/cohort.parquet",
            "05_model_input/{t}/pairs.parquet",
            "05_model_input/{t}/cxr_only.parquet",
        ):
            frame = pd.read_parquet(root / table.format(t=task))
            assert (frame["split"].to_numpy() == truth.loc[frame["subject_id"]].to_numpy()).all()
    pairs = pd.read_parquet(root / "05_model_input/ihm/pairs.parquet")
    cxr_only = pd.read_parquet(root / "05_model_input/ihm/cxr_only.parquet")
    assert not set(pairs["dicom_id"].dropna()) & set(cxr_only["dicom_id"])


def test_paired_images_lie_in_the_window_and_before_the_cutoff(data_run: ProjectRun) -> None:
    root = data_run.data_root
    for task, hours in (("ihm", 48), ("pheno", None)):
        cohort = pd.read_parquet(root / f"03_primary/{task}/cohort.parquet").set_index("stay_id")
        pairs = pd.read_parquet(root / f"05_model_input/{task}/pairs.parquet").dropna(
            subset=["dicom_id"]
        )
        assert len(pairs) > 0
        stays = cohort.loc[pairs["stay_id"]]
        end = stays["intime"] + pd.Timedelta(hours=hours) if hours else stays["outtime"]
        taken = pairs["study_datetime"].to_numpy()
        assert (taken >= stays["intime"].to_numpy()).all()
        assert (taken <= end.to_numpy()).all()


def test_normaliser_is_fitted_on_the_train_split_only(data_run: ProjectRun) -> None:
    root = data_run.data_root
    normaliser = json.loads((root / "04_feature/ihm/normaliser.json").read_text())
    cohort = pd.read_parquet(root / "03_primary/ihm/cohort.parquet")
    index = pd.read_parquet(root / "04_feature/ihm/timeseries_raw/index.parquet")
    values = np.load(root / "04_feature/ihm/timeseries_raw/values.npy")
    train_rows = index.set_index("stay_id").loc[
        cohort.loc[cohort.split == "train", "stay_id"], "row"
    ]
    block = values[np.sort(train_rows.to_numpy())]
    channels = block.shape[-1] // 2
    hr = list(normaliser["channels"]).index("heart_rate")
    observed = block[..., hr][block[..., channels + hr] == 1]
    assert normaliser["mean"][hr] == pytest.approx(float(observed.mean()), rel=1e-5)
    assert normaliser["std"][hr] == pytest.approx(float(observed.std()), rel=1e-4)


def test_the_run_is_a_chain_run_plus_one_run_per_task(data_run: ProjectRun) -> None:
    mlflow.set_tracking_uri(data_run.tracking_uri)
    chain = mlflow.search_runs(experiment_names=["mindkd"])
    assert len(chain) == 1, "one kedro run must make exactly one chain run"
    run = chain.iloc[0]
    assert "params.ehr" not in chain.columns, "typed params must be logged flattened"
    assert run["params.cxr.image_size"] == "64"
    assert run["params.split.seed"] == "42"
    assert run["tags.mlflow.runName"] == "chain (ehr+cxr+pairing)"
    assert not any(c.startswith("params.ihm.") for c in chain.columns)
    for task in TASKS:
        runs = mlflow.search_runs(experiment_names=[f"mindkd-{task}"])
        assert len(runs) == 1
        assert runs.iloc[0]["params." + task + ".task.name"] == task
        assert runs.iloc[0]["tags.mindkd.chain_run_id"] == run["run_id"]
        assert runs.iloc[0]["tags.mlflow.runName"] == f"ehr+pairing {task}"
        assert not any("subject" in c or "stay_id" in c for c in runs.columns)
    assert not any("subject" in c or "stay_id" in c for c in chain.columns)
