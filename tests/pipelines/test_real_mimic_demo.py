"""The whole chain on REAL MIMIC-IV rows: the open MIMIC-IV Clinical Database Demo 2.2 in
``../shared/data`` (100 patients; CI has it), with a synthetic X-ray export written for its subjects.

Every expectation is derived here from the raw CSVs with a few lines of pandas, not through the
project's code; the counts the issue found by hand are pinned too. The chain runs in the
``real_demo`` config environment that ``make real-demo`` uses, at tiny model sizes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from kedro_harness import PROJECT_ROOT, ProjectRun, make_project_run
from mindkd.tasks import TASKS

REAL = PROJECT_ROOT.parent / "shared" / "data" / "mimic-iv-demo-2.2"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (REAL / "icu" / "chartevents.csv.gz").is_file(),
        reason=f"the real MIMIC-IV demo is not at {REAL} (CI has it: ../shared/data)",
    ),
]

# The variables' chart items as docs/variables.md decides them (a copy, not the project's table).
RESP_RATE = (220210, 224690)
MBP = (220052, 220181, 224322, 225312)
HEIGHT_CM, HEIGHT_IN = 226730, 226707
WEIGHT = (224639, 226512, 226531)
CHART_ITEMS = (
    223951, 224308, 220051, 220180, 224643, 225310, 227242, 223835, 220739, 223901, 223900,
    220621, 225664, 226537, 220045, HEIGHT_CM, HEIGHT_IN, *MBP, 220227, 220277, *RESP_RATE,
    220050, 220179, 224167, 225309, 227243, 223761, 223762, 226329, *WEIGHT, 220274, 223830,
)  # fmt: skip
LAB_ITEMS = (50809, 50931, 50817, 50820)
LOOKBACK = pd.Timedelta(hours=24)
H48 = pd.Timedelta(hours=48)


# --------------------------------------------------------------------------- the raw files, by hand


def _csv(name: str, times: tuple[str, ...] = (), **kwargs: Any) -> pd.DataFrame:
    return pd.read_csv(REAL / name, parse_dates=list(times), **kwargs)


@pytest.fixture(scope="module")
def raw() -> dict[str, pd.DataFrame]:
    stays = _csv("icu/icustays.csv.gz", ("intime", "outtime"))
    admissions = _csv("hosp/admissions.csv.gz", ("admittime", "dischtime", "deathtime"))
    chart = _csv(
        "icu/chartevents.csv.gz",
        ("charttime",),
        usecols=["subject_id", "stay_id", "charttime", "itemid", "valuenum"],
    )
    chart = chart[chart["itemid"].isin(CHART_ITEMS)]
    labs = _csv(
        "hosp/labevents.csv.gz", ("charttime",), usecols=["subject_id", "itemid", "charttime"]
    )
    return {
        "stays": stays,
        "patients": _csv("hosp/patients.csv.gz"),
        "admissions": admissions,
        "chart": chart.merge(
            stays[["stay_id", "hadm_id", "intime", "outtime"]], on="stay_id", how="inner"
        ),
        "labs": labs[labs["itemid"].isin(LAB_ITEMS)],
        "diagnoses": _csv("hosp/diagnoses_icd.csv.gz", dtype={"icd_code": str}),
    }


def _stay_cohort(raw: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """MIMIC.md's three rules with pandas: no transfer, one stay per admission, adults."""
    s = raw["stays"]
    s = s[s["first_careunit"] == s["last_careunit"]]
    s = s[s.groupby("hadm_id")["stay_id"].transform("size") == 1]
    p = raw["patients"].set_index("subject_id")
    age = (
        s["subject_id"].map(p["anchor_age"])
        + s["intime"].dt.year
        - s["subject_id"].map(p["anchor_year"])
    )
    return s[age >= 18]


def _ihm_stays(raw: dict[str, pd.DataFrame]) -> pd.DataFrame:
    s = _stay_cohort(raw)
    s = s[s["outtime"] - s["intime"] >= H48]
    c = raw["chart"]
    in_window = c[(c["charttime"] >= c["intime"]) & (c["charttime"] < c["intime"] + H48)]
    labs = raw["labs"].merge(s[["subject_id", "stay_id", "intime"]], on="subject_id")
    labs = labs[(labs["charttime"] >= labs["intime"]) & (labs["charttime"] < labs["intime"] + H48)]
    with_events = set(in_window["stay_id"]) | set(labs["stay_id"])
    return s[s["stay_id"].isin(with_events)]


# --------------------------------------------------------------------------- the chain, once


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> ProjectRun:
    """xray export for the real demo's subjects, then every pipeline in the ``real_demo`` env."""
    import torch

    from mindkd.demo.cxr_for import CxrForConfig, generate_cxr_for
    from tiny_models import tiny_model_params

    tmp = tmp_path_factory.mktemp("real_demo")
    generate_cxr_for(tmp / "cxr", REAL, CxrForConfig(seed=0, image_size=(80, 64)))
    project = make_project_run(tmp, REAL, tmp / "cxr" / "mimic-cxr-jpg", env="real_demo")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        project.run(["ehr", "cxr", "pairing", "teachers", "distill"], tiny_model_params())
    finally:
        torch.set_num_threads(threads)
    return project


def _latest(folder: Path) -> Path:
    return sorted(folder.iterdir())[-1] / folder.name


def _json(run: ProjectRun, relative: str) -> dict[str, Any]:
    return json.loads(_latest(run.data_root / relative).read_text())


def _parquet(run: ProjectRun, relative: str) -> pd.DataFrame:
    return pd.read_parquet(run.data_root / relative)


# --------------------------------------------------------------------------- cohorts and labels


def test_stay_cohort_is_the_three_rules(real_run: ProjectRun, raw: dict[str, pd.DataFrame]) -> None:
    got = _parquet(real_run, "03_primary/ehr/stay_cohort.parquet")
    expected = _stay_cohort(raw)
    assert sorted(got["stay_id"]) == sorted(expected["stay_id"])
    assert len(raw["stays"]) == 140


def test_ihm_cohort_and_labels_from_the_raw_files(
    real_run: ProjectRun, raw: dict[str, pd.DataFrame]
) -> None:
    cohort = _parquet(real_run, "03_primary/ihm/cohort.parquet").set_index("stay_id")
    expected = _ihm_stays(raw)
    assert sorted(cohort.index) == sorted(expected["stay_id"])
    assert len(cohort) == 54
    flag = expected.merge(raw["admissions"], on="hadm_id").set_index("stay_id")
    assert cohort["y"].to_dict() == flag["hospital_expire_flag"].to_dict()
    assert int(cohort["y"].sum()) == 9
    # The deaths a strict deathtime <= dischtime rule loses: dischtime at midnight before it.
    late = flag[(flag["hospital_expire_flag"] == 1) & (flag["deathtime"] > flag["dischtime"])]
    assert sorted(late.index) == [30955999, 32359580, 34531557, 38430513]
    rules = _json(real_run, "08_reporting/ihm/cohort_report.json")["counts"]["ihm_label_rules"]
    assert rules["deathtime"]["disagreement_stays"] == sorted(late.index)
    assert rules["death_date"]["disagreements"] == 0
    assert rules["hospital_expire_flag"]["positive"] == 9


def test_los_cohort_and_classes_from_the_raw_files(
    real_run: ProjectRun, raw: dict[str, pd.DataFrame]
) -> None:
    """The los cohort is the ihm cohort's stays; each class is the mimic3-benchmarks bucket of the
    ICU stay left after 48 h, recomputed here from icustays' own ``los`` (fractional days)."""
    cohort = _parquet(real_run, "03_primary/los/cohort.parquet").set_index("stay_id")
    expected = _ihm_stays(raw)
    assert sorted(cohort.index) == sorted(expected["stay_id"])
    classes = [c for c in cohort.columns if c.startswith("los_")]
    assert len(classes) == 10 and (cohort[classes].sum(axis=1) == 1).all()  # one class each
    remaining_days = expected.set_index("stay_id")["los"] - 2.0
    edges = [1, 2, 3, 4, 5, 6, 7, 8, 14]
    truth = remaining_days.apply(lambda d: sum(d >= e for e in edges))
    got = cohort[classes].to_numpy().argmax(axis=1)
    # icustays.los is rounded to 1e-4 days (~9 s): compare away from the class edges
    distance = remaining_days.loc[cohort.index].apply(lambda d: min(abs(d - e) for e in edges))
    clear = distance > 1e-3
    assert (got[clear.to_numpy()] == truth.loc[cohort.index][clear].to_numpy()).all()
    counts = _json(real_run, "08_reporting/los/cohort_report.json")["counts"]["los_classes"]
    assert sum(counts.values()) == len(cohort) == 54


def test_patient_groups_from_the_raw_files(
    real_run: ProjectRun, raw: dict[str, pd.DataFrame]
) -> None:
    """Sex, age band, race group and insurance of each ihm stay, derived again with pandas; every
    real race value lands in a group and no stay is Unknown for sex or insurance."""
    got = _parquet(real_run, "03_primary/ihm/subgroups.parquet").set_index("stay_id")
    stays = _ihm_stays(raw).merge(raw["admissions"], on=["subject_id", "hadm_id"])
    stays = stays.merge(raw["patients"], on="subject_id").set_index("stay_id")
    assert sorted(got.index) == sorted(stays.index)
    assert got["sex"].to_dict() == stays["gender"].map({"F": "Female", "M": "Male"}).to_dict()
    assert got["insurance"].to_dict() == stays["insurance"].to_dict()
    age = stays["anchor_age"] + stays["intime"].dt.year - stays["anchor_year"]
    bands = pd.cut(
        age, [18, 40, 60, 80, 200], right=False, labels=["18-39", "40-59", "60-79", "80+"]
    )
    assert got["age_band"].to_dict() == bands.astype(str).to_dict()
    first = stays["race"].str.split(r"[ /]", regex=True).str[0]
    expected = first.map(
        {"WHITE": "White", "BLACK": "Black", "HISPANIC": "Hispanic/Latino", "ASIAN": "Asian"}
    )
    expected[stays["race"].isin(["UNKNOWN", "UNABLE TO OBTAIN", "PATIENT DECLINED TO ANSWER"])] = (
        "Unknown"
    )
    assert got["race"].to_dict() == expected.fillna("Other").to_dict()
    assert not got[["sex", "insurance", "age_band"]].isin(["Unknown"]).any().any()


def test_pheno_labels_follow_the_icd_codes(
    real_run: ProjectRun, raw: dict[str, pd.DataFrame]
) -> None:
    cohort = _parquet(real_run, "03_primary/pheno/cohort.parquet")
    assert sorted(cohort["stay_id"]) == sorted(_stay_cohort(raw)["stay_id"])
    d = raw["diagnoses"]
    for column, codes in (
        ("septicemia", ((9, "038"), (10, "A40"), (10, "A41"))),
        ("essential_hypertension", ((9, "4019"), (10, "I10"))),
    ):
        hit = np.zeros(len(d), dtype=bool)
        for version, prefix in codes:
            hit |= (d["icd_version"] == version) & d["icd_code"].str.startswith(prefix)
        carriers = cohort["hadm_id"].isin(d.loc[hit, "hadm_id"])
        assert carriers.sum() > 0
        assert (cohort.loc[carriers, column] == 1).all(), column


def test_splits_are_by_subject_across_modalities(real_run: ProjectRun) -> None:
    splits = _parquet(real_run, "03_primary/subject_splits.parquet").set_index("subject_id")
    for task in TASKS:
        for table in ("03_primary/{t}/cohort.parquet", "05_model_input/{t}/pairs.parquet"):
            frame = _parquet(real_run, table.format(t=task))
            truth = splits.loc[frame["subject_id"], "split"].to_numpy()
            assert (frame["split"].to_numpy() == truth).all()


# --------------------------------------------------------------------------- cleaning


def _in_own_stay(chart: pd.DataFrame) -> pd.DataFrame:
    return chart[(chart["charttime"] >= chart["intime"]) & (chart["charttime"] <= chart["outtime"])]


def test_every_cleaned_variable_lies_in_its_range(real_run: ProjectRun) -> None:
    from mindkd.mimic.variables import VARIABLES, range_profile

    events = pd.read_parquet(real_run.data_root / "03_primary/ehr/events_clean")
    assert len(events) > 100_000
    for variable, bounds in zip(VARIABLES, range_profile("mindkd"), strict=True):
        values = events.loc[events["channel"] == VARIABLES.index(variable), "value"]
        assert len(values) > 0, variable.name
        assert values.min() >= bounds.clip_low - 1e-4, variable.name
        assert values.max() <= bounds.clip_high + 1e-4, variable.name
    by_name = {v.name: i for i, v in enumerate(VARIABLES)}
    channel = events["channel"]
    assert events.loc[channel == by_name["resp_rate"], "value"].min() >= 1  # no zero rate
    assert events.loc[channel == by_name["weight"], "value"].min() >= 20  # no 0 kg
    temperature = events.loc[channel == by_name["temperature"], "value"]
    assert temperature.between(30, 42).all()  # °F under the °C item converted, not kept at 97


def test_drops_and_conversions_are_counted_as_the_raw_rows_say(
    real_run: ProjectRun, raw: dict[str, pd.DataFrame]
) -> None:
    report = _json(real_run, "08_reporting/ehr/data_report.json")
    chart = _in_own_stay(raw["chart"])
    v = chart["valuenum"]
    zero_or_more = {
        "resp_rate": int((chart["itemid"].isin(RESP_RATE) & ((v < 1) | (v > 330))).sum()),
        "mbp": int((chart["itemid"].isin(MBP) & ((v < 0) | (v > 200))).sum()),
    }
    dropped = report["dropped_by_variable"]["out_of_range"]
    assert {k: dropped.get(k, 0) for k in zero_or_more} == zero_or_more
    assert zero_or_more["resp_rate"] == 48  # 47 zeros of 220210 and 1 of 224690 (issue: 658
    # zeros before, 611 of them from 224689 "spontaneous", which is no variable's item now)
    fahrenheit = int(((chart["itemid"] == 223762) & v.between(79, 113)).sum())
    assert report["fahrenheit_in_celsius"] == {"temperature": fahrenheit} == {"temperature": 3}
    spontaneous = raw["chart"]["itemid"].isin((224689, 224422)).sum()
    assert spontaneous == 0  # filtered out of CHART_ITEMS above: they are no variable's rows


def test_height_and_weight_charted_before_intime_are_kept(
    real_run: ProjectRun, raw: dict[str, pd.DataFrame]
) -> None:
    chart = raw["chart"].merge(raw["admissions"][["hadm_id", "admittime"]], on="hadm_id")
    start = np.maximum(chart["intime"] - LOOKBACK, chart["admittime"])
    back = chart[(chart["charttime"] >= start) & (chart["charttime"] < chart["intime"])]
    expected = {
        "height": int(back["itemid"].isin((HEIGHT_CM, HEIGHT_IN)).sum()),
        "weight": int(back["itemid"].isin(WEIGHT).sum()),
    }
    report = _json(real_run, "08_reporting/ehr/data_report.json")
    assert report["ingest"]["by_variable"]["chart"]["looked_back"] == expected
    assert expected["height"] > 100  # 138 of 142 height rows are charted before intime
    # ihm stays with a plausible height in the look-back or the first 48 h (inches -> cm, drop
    # below 100 cm): each has height observed in the tensors; before the look-back 2 had
    ihm = _ihm_stays(raw)
    h = chart[chart["itemid"].isin((HEIGHT_CM, HEIGHT_IN)) & chart["stay_id"].isin(ihm["stay_id"])]
    cm = np.where(h["itemid"] == HEIGHT_IN, h["valuenum"] * 2.54, h["valuenum"])
    start = np.maximum(h["intime"] - LOOKBACK, h["admittime"])
    usable = (h["charttime"] >= start) & (h["charttime"] < h["intime"] + H48) & (cm >= 100)
    expected_stays = set(h.loc[usable.to_numpy(), "stay_id"])
    assert len(expected_stays) == 38  # of 54 ihm stays (2 before the look-back)
    store = real_run.data_root / "04_feature/ihm/timeseries_raw"
    index = pd.read_parquet(store / "index.parquet")
    values = np.load(store / "values.npy", mmap_mode="r")
    from mindkd.mimic.variables import CHANNEL, NUM_VARIABLES

    observed = values[:, :, NUM_VARIABLES + CHANNEL["height"]].max(axis=1) > 0
    assert set(index.loc[observed, "stay_id"]) == expected_stays


# --------------------------------------------------------------------------- the chain's end


def test_the_chain_finishes_and_registers_a_student_per_task(real_run: ProjectRun) -> None:
    import mlflow

    from mindkd.tracking.registry import RegistryError, register_best

    mlflow.set_tracking_uri(real_run.tracking_uri)
    for task in TASKS:
        runs = mlflow.search_runs(experiment_names=[f"mindkd-{task}"])
        assert runs["status"].tolist() == ["FINISHED"]
        # the real_demo env selects epochs by val loss: ranking by val AUROC says why it cannot
        with pytest.raises(RegistryError, match=r"logged a student but no .*best/val/auroc"):
            register_best(task, real_run.tracking_uri)
        version = register_best(task, real_run.tracking_uri, metric="best/val/loss")
        assert version.aliases == ["champion"]
        model = mlflow.pyfunc.load_model(f"models:/mindkd-{task}-student@champion")
        assert model.metadata is not None
        comparison = _latest(real_run.data_root / f"08_reporting/{task}/distill/comparison.csv")
        table = pd.read_csv(comparison)
        assert {"mind", "no_kd", "zero_filled", "medfuse"} <= set(table["model"])


def test_an_xray_export_of_other_patients_stops_before_training(
    tmp_path: Path, real_run: ProjectRun
) -> None:
    from mindkd.demo.config import DemoConfig
    from mindkd.demo.generator import generate
    from mindkd.processing.pairing import PairingError

    generate(tmp_path / "demo", DemoConfig(patients=40, seed=1, image_size=(64, 80)))
    project = make_project_run(tmp_path, REAL, tmp_path / "demo" / "mimic-cxr-jpg", env="real_demo")
    with pytest.raises(PairingError, match=r"no MIMIC-CXR-JPG subject overlaps.*mimic_cxr_jpg_dir"):
        project.run(["ehr", "cxr", "pairing"], {"cxr": {"max_failed_fraction": 0.2}})
    assert not (project.data_root / "06_models").exists()  # nothing was trained
