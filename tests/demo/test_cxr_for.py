"""``python -m mindkd.demo OUT --cxr-for MIMIC_IV_DIR``: MIMIC-CXR-JPG for a MIMIC-IV folder.

Every test runs on a small synthetic MIMIC-IV (the demo's own, always) and on the open MIMIC-IV
demo 2.2 in the ``shared`` folder beside the repository (skipped when absent). Nothing of the real
demo is copied: the tests read it in place and compare against it.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from demo_export import header, read_text_table
from PIL import Image

from mindkd.demo import DemoConfig, generate
from mindkd.demo.__main__ import main
from mindkd.demo.cohort import Cohort
from mindkd.demo.cxr import EARLY, WARD
from mindkd.demo.cxr_for import CxrForConfig, CxrForError, consistent_studies, generate_cxr_for
from mindkd.io.raw import arrow_to_pandas, read_mimic_table
from mindkd.mimic import cxr as cxr_layout
from mindkd.mimic.schemas import TABLES, MimicSourceError

REAL_DEMO = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "mimic-iv-demo-2.2"
CONFIG = CxrForConfig(seed=0, image_size=(64, 80))
HOUR = np.timedelta64(3600, "s")
CSV_FILES = (
    cxr_layout.METADATA_FILE,
    cxr_layout.CHEXPERT_FILE,
    cxr_layout.NEGBIO_FILE,
    cxr_layout.SPLIT_FILE,
)


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo export (MIMIC-IV plus its own MIMIC-CXR tables, no JPEGs)."""
    root = tmp_path_factory.mktemp("synthetic")
    generate(root, DemoConfig(patients=100, seed=11, write_jpegs=False))
    return root


@pytest.fixture(scope="module")
def synthetic_iv(synthetic_root: Path) -> Path:
    return synthetic_root / "mimic-iv"


@pytest.fixture(scope="module")
def real_iv() -> Path:
    if not (REAL_DEMO / "hosp" / "patients.csv.gz").is_file():
        pytest.skip(f"the open MIMIC-IV demo 2.2 is not at {REAL_DEMO.resolve()}")
    return REAL_DEMO


def _table(iv: Path, name: str, columns: list[str]) -> pd.DataFrame:
    return arrow_to_pandas(read_mimic_table(iv / TABLES[name].relpath, name, columns))


@dataclass
class Case:
    """One ``--cxr-for`` export and the MIMIC-IV folder it was made for."""

    name: str
    iv: Path
    out: Path
    manifest: dict

    @property
    def cxr(self) -> Path:
        return self.out / "mimic-cxr-jpg"

    @cached_property
    def truth(self) -> pd.DataFrame:
        return pd.read_parquet(self.out / "_truth" / "images.parquet")

    @cached_property
    def metadata(self) -> pd.DataFrame:
        """Metadata with the study time (seconds) and the truth's study kind and stay."""
        meta = pd.read_csv(self.cxr / cxr_layout.METADATA_FILE, dtype={"dicom_id": str})
        when = cxr_layout.study_datetime(meta["StudyDate"], meta["StudyTime"])
        meta["time"] = when.dt.floor("s").to_numpy(dtype="datetime64[s]")
        truth = self.truth[["dicom_id", "study_kind", "stay_id", "hours_from_intime"]]
        return meta.merge(truth, on="dicom_id", validate="one_to_one")

    @cached_property
    def stays(self) -> pd.DataFrame:
        return _table(
            self.iv, "icustays", ["subject_id", "hadm_id", "stay_id", "intime", "outtime"]
        )

    @cached_property
    def admissions(self) -> pd.DataFrame:
        columns = ["subject_id", "hadm_id", "admittime", "dischtime", "hospital_expire_flag"]
        return _table(self.iv, "admissions", columns)

    @cached_property
    def subjects(self) -> set[int]:
        return set(_table(self.iv, "patients", ["subject_id"])["subject_id"].astype(int))


@pytest.fixture(scope="module", params=["synthetic", "real"])
def case(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Case:
    iv = request.getfixturevalue(f"{request.param}_iv")
    out = tmp_path_factory.mktemp(f"cxr_for_{request.param}")
    manifest = generate_cxr_for(out, iv, CONFIG)
    return Case(request.param, iv, out, manifest.to_dict())


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "manifest.json"
    }


def _inside(points: pd.DataFrame, spans: pd.DataFrame, start: str, end: str) -> np.ndarray:
    """Per row of ``points`` (subject_id, time): inside some span of the same subject."""
    pairs = points.reset_index(names="row").merge(spans, on="subject_id")
    hit = (pairs[start] <= pairs["time"]) & (pairs["time"] <= pairs[end])
    return np.isin(np.arange(len(points)), pairs.loc[hit, "row"].to_numpy())


# ---------------------------------------------------------------------------------------------
# Layout
# ---------------------------------------------------------------------------------------------


def test_every_subject_exists_in_mimic_iv_patients(case: Case) -> None:
    for file in CSV_FILES:
        subjects = set(pd.read_csv(case.cxr / file, usecols=["subject_id"])["subject_id"])
        assert subjects and subjects <= case.subjects, file
    assert case.manifest["counts"]["subjects_with_studies"] > 0.5 * len(case.subjects)


def test_files_and_columns_are_the_demo_exports(case: Case, synthetic_root: Path) -> None:
    demo = synthetic_root / "mimic-cxr-jpg"
    for file in CSV_FILES:
        assert header(case.cxr / file) == header(demo / file) == list(cxr_layout.CSV_COLUMNS[file])
        with gzip.open(case.cxr / file) as handle:  # one gzip member, readable to the end
            assert (
                handle.read().count(b"\n")
                == case.manifest["counts"][f"rows_{file.split('-')[-1].split('.')[0]}"] + 1
            )
    text = read_text_table(case.cxr / cxr_layout.METADATA_FILE)
    assert text["dicom_id"].str.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{8}){4}").all()
    assert text["study_id"].str.fullmatch(r"5\d{7}").all()
    assert text["StudyDate"].str.fullmatch(r"2[12]\d{2}(0[1-9]|1[0-2])\d{2}").all()
    assert text["StudyTime"].str.fullmatch(r"[1-9]\d{0,5}\.\d{1,3}|0\.\d{1,3}").all()
    assert set(text["ViewPosition"]) <= {"AP", "PA", "LATERAL", "LL", ""}
    assert {"AP", "PA", "LATERAL"} <= set(text["ViewPosition"])
    labels = read_text_table(case.cxr / cxr_layout.CHEXPERT_FILE)
    cells = set(np.unique(labels[list(cxr_layout.FINDINGS)].to_numpy()))
    assert cells == {"1.0", "0.0", "-1.0", ""}
    split = read_text_table(case.cxr / cxr_layout.SPLIT_FILE)
    assert (split["dicom_id"] == text["dicom_id"]).all()


# ---------------------------------------------------------------------------------------------
# Where the studies are
# ---------------------------------------------------------------------------------------------


def test_in_stay_images_lie_in_their_stay(case: Case) -> None:
    meta = case.metadata
    inside = meta[meta["stay_id"].notna()].merge(
        case.stays.rename(columns={"subject_id": "stay_subject"}), on="stay_id"
    )
    assert len(inside) == int(meta["stay_id"].notna().sum()) > 20
    assert (inside["stay_subject"] == inside["subject_id"]).all()
    assert ((inside["intime"] <= inside["time"]) & (inside["time"] <= inside["outtime"])).all()
    hours = (inside["time"] - inside["intime"]) / HOUR
    assert np.allclose(hours, inside["hours_from_intime"], atol=1 / 3600)
    assert set(inside["study_kind"]) == {"early", "later"}
    assert ((inside["study_kind"] == "early") == (inside["hours_from_intime"] <= 48)).all()


def test_ap_studies_in_the_first_48h_of_a_share_of_stays_and_later(case: Case) -> None:
    """Measured from the metadata times and the real icustays, not from the truth."""
    ap = case.metadata.loc[case.metadata["ViewPosition"] == "AP", ["subject_id", "time"]]
    pairs = case.stays.merge(ap, on="subject_id")
    early = pairs[
        (pairs["time"] >= pairs["intime"]) & (pairs["time"] <= pairs["intime"] + 48 * HOUR)
    ]
    later = pairs[
        (pairs["time"] > pairs["intime"] + 48 * HOUR) & (pairs["time"] <= pairs["outtime"])
    ]
    share = early["stay_id"].nunique() / len(case.stays)
    assert 0.2 < share < 0.55
    assert later["stay_id"].nunique() >= 5  # images after the ihm cutoff: the leakage guard's food
    assert case.manifest["counts"]["stays_with_ap_after_48h"] == later["stay_id"].nunique()


def test_ward_and_outpatient_studies_lie_outside_stays_and_admissions(case: Case) -> None:
    meta = case.metadata
    other = meta[meta["stay_id"].isna()].reset_index(drop=True)
    assert set(other["study_kind"]) == {"ward", "outpatient"}
    assert other["study_id"].nunique() >= 20
    assert not _inside(other[["subject_id", "time"]], case.stays, "intime", "outtime").any()
    outpatient = other[other["study_kind"] == "outpatient"].reset_index(drop=True)
    adm = case.admissions
    assert not _inside(outpatient[["subject_id", "time"]], adm, "admittime", "dischtime").any()
    ward = other[other["study_kind"] == "ward"].reset_index(drop=True)
    assert _inside(ward[["subject_id", "time"]], adm, "admittime", "dischtime").all()
    assert other["ViewPosition"].isin(["PA", "LATERAL"]).mean() > 0.6
    assert meta.groupby("subject_id")["study_id"].nunique().max() <= 6


# ---------------------------------------------------------------------------------------------
# Images, defects, manifest
# ---------------------------------------------------------------------------------------------


def test_jpegs_decode_to_the_metadata_size_and_defects_are_counted(case: Case) -> None:
    meta = case.metadata.merge(case.truth[["dicom_id", "file_status"]], on="dicom_id")
    paths = cxr_layout.image_relpaths(meta)
    status = meta["file_status"].to_numpy()
    for relpath, rows, cols, state in zip(
        paths, meta["Rows"], meta["Columns"], status, strict=True
    ):
        path = case.cxr / relpath
        if state == "missing":
            assert not path.exists()
        elif state == "empty":
            assert path.stat().st_size == 0
        elif state == "truncated":
            with pytest.raises(OSError), Image.open(path) as image:
                image.load()
        else:
            with Image.open(path) as image:
                image.load()
                assert image.mode == "L" and image.size == (cols, rows)
    defects = case.manifest["defects"]["mimic_cxr"]
    for kind in ("missing", "truncated", "empty"):
        assert defects[f"images_{kind}"] == int((status == kind).sum()) >= 1
    studies = meta["study_id"].nunique()
    labelled = len(pd.read_csv(case.cxr / cxr_layout.CHEXPERT_FILE, usecols=["study_id"]))
    assert defects["studies_without_labels"] == studies - labelled >= 1


def test_manifest_names_the_seed_and_the_input_folder(case: Case) -> None:
    config, counts = case.manifest["config"], case.manifest["counts"]
    assert config["mode"] == "cxr_for" and config["seed"] == 0
    assert config["mimic_iv_dir_name"] == case.iv.resolve().name
    assert counts["rows_metadata"] == len(case.truth) == counts["cxr_images"]
    assert counts["input_icustays"] == len(case.stays) == counts["icu_stays"]
    if case.name == "real":
        assert config["mimic_iv_dir_name"] == "mimic-iv-demo-2.2"
        assert (counts["input_patients"], counts["input_admissions"]) == (100, 275)


def test_same_input_and_seed_give_byte_identical_files(case: Case, tmp_path: Path) -> None:
    manifest = generate_cxr_for(tmp_path, case.iv, CONFIG).to_dict()
    ours, again = _files(case.out), _files(tmp_path)
    assert sorted(ours) == sorted(again)
    assert sum(name.endswith(".jpg") for name in ours) > 100
    assert [name for name in ours if ours[name] != again[name]] == []
    manifest.pop("seconds")
    assert manifest == {k: v for k, v in case.manifest.items() if k != "seconds"}


# ---------------------------------------------------------------------------------------------
# Signal
# ---------------------------------------------------------------------------------------------


def test_the_image_latent_separates_died_from_survived_stays(case: Case) -> None:
    died = case.stays.merge(case.admissions, on=["subject_id", "hadm_id"])[
        ["stay_id", "hospital_expire_flag"]
    ]
    images = case.truth[case.truth["stay_id"].notna()].merge(died, on="stay_id")
    per_stay = images.groupby("stay_id").agg(
        died=("hospital_expire_flag", "max"), z1=("z1", "mean"), z3=("z3", "mean")
    )
    score = (per_stay["z1"] + per_stay["z3"]) / 2
    is_died = per_stay["died"] == 1
    assert is_died.sum() >= 3
    assert score[is_died].mean() - score[~is_died].mean() > 0.6
    signal = case.manifest["signal"]
    assert signal["auroc_died_death_score_icu_stays"] > 0.75
    assert signal["auroc_died_death_score_stays_with_in_stay_study"] > 0.7
    # The labels follow: support devices are reported more often on the died stays' studies.
    labels = pd.read_csv(case.cxr / cxr_layout.CHEXPERT_FILE)
    studies = images.drop_duplicates("study_id").merge(labels, on="study_id")
    devices = studies["Support Devices"] == 1.0
    assert (
        devices[studies["hospital_expire_flag"] == 1].mean()
        > devices[studies["hospital_expire_flag"] == 0].mean() + 0.2
    )


# ---------------------------------------------------------------------------------------------
# Settings, errors, command line (synthetic input only)
# ---------------------------------------------------------------------------------------------


def test_defects_can_be_turned_off_without_changing_the_rest(
    synthetic_iv: Path, tmp_path: Path
) -> None:
    with_defects = generate_cxr_for(tmp_path / "a", synthetic_iv, CONFIG)
    clean_config = CxrForConfig(seed=0, image_size=(64, 80), with_defects=False)
    clean = generate_cxr_for(tmp_path / "b", synthetic_iv, clean_config)
    assert set(clean.defects["mimic_cxr"].values()) == {0}
    assert min(with_defects.defects["mimic_cxr"].values()) >= 1
    truth = pd.read_parquet(tmp_path / "b/_truth/images.parquet")
    assert (truth["file_status"] == "ok").all()
    assert clean.counts["image_files_written"] == len(truth)
    assert clean.counts["rows_chexpert"] == clean.counts["cxr_studies"]
    meta = cxr_layout.METADATA_FILE
    a, b = tmp_path / "a/mimic-cxr-jpg", tmp_path / "b/mimic-cxr-jpg"
    assert (a / meta).read_bytes() == (b / meta).read_bytes()


def test_another_seed_gives_other_studies(synthetic_iv: Path, tmp_path: Path) -> None:
    generate_cxr_for(tmp_path / "a", synthetic_iv, CxrForConfig(seed=0, write_jpegs=False))
    generate_cxr_for(tmp_path / "b", synthetic_iv, CxrForConfig(seed=1, write_jpegs=False))
    meta = cxr_layout.METADATA_FILE
    a, b = tmp_path / "a/mimic-cxr-jpg", tmp_path / "b/mimic-cxr-jpg"
    assert (a / meta).read_bytes() != (b / meta).read_bytes()
    assert not (a / "files").exists()


def test_studies_that_real_times_would_misplace_are_dropped() -> None:
    hour = 3600
    stays = pd.DataFrame(
        {
            "stay_id": [30_000_001, 30_000_002],
            "patient_row": [0, 0],
            "admission_row": [0, 1],
            "intime": [0, 100 * hour],
            "outtime": [600, 150 * hour],  # a 10-minute stay, then a long one
        }
    )
    none = np.zeros((2, 0))
    cohort = Cohort(pd.DataFrame(), pd.DataFrame(), stays, none, none, none, none)
    studies = pd.DataFrame(
        {
            "patient_row": [0, 0, 0, 0],
            "time": [900, 300, 120 * hour, 10 * hour],
            "kind": [EARLY, EARLY, WARD, WARD],
            "stay_row": [0, 0, -1, -1],
        }
    )
    kept, dropped = consistent_studies(studies, cohort)
    assert kept["time"].tolist() == [300, 10 * hour]
    assert dropped == {
        "studies_dropped_outside_their_stay": 1,
        "studies_dropped_inside_an_icu_stay": 1,
    }


def test_subjects_without_admissions_get_outpatient_studies_only(
    synthetic_iv: Path, tmp_path: Path
) -> None:
    iv = _linked_copy(synthetic_iv, tmp_path / "iv", "hosp/patients.csv.gz")
    patients = read_text_table(synthetic_iv / "hosp/patients.csv.gz")
    extra = pd.DataFrame(
        {
            "subject_id": [str(19_000_000 + k) for k in range(60)],  # no admission, no stay
            "gender": "F",
            "anchor_age": "50",
            "anchor_year": "2150",
            "anchor_year_group": "2014 - 2016",
            "dod": "",
        }
    )
    pd.concat([patients, extra]).to_csv(iv / "hosp/patients.csv.gz", index=False)
    manifest = generate_cxr_for(tmp_path / "out", iv, CxrForConfig(write_jpegs=False))
    truth = pd.read_parquet(tmp_path / "out/_truth/images.parquet")
    new = truth[truth["subject_id"] >= 19_000_000]
    assert 5 <= new["subject_id"].nunique() <= 35  # NO_ADMISSION_STUDY_SHARE = 0.3
    assert set(new["study_kind"]) == {"outpatient"}
    assert manifest.counts["input_patients"] == len(patients) + 60


def _linked_copy(iv: Path, target: Path, leave_out: str) -> Path:
    for name in ("patients", "admissions", "icustays", "diagnoses_icd"):
        relpath = TABLES[name].relpath
        if relpath != leave_out:
            (target / relpath).parent.mkdir(parents=True, exist_ok=True)
            (target / relpath).symlink_to(iv / relpath)
    return target


def test_a_missing_file_or_column_is_named(synthetic_iv: Path, tmp_path: Path) -> None:
    broken = _linked_copy(synthetic_iv, tmp_path / "iv", "icu/icustays.csv.gz")
    with pytest.raises(MimicSourceError, match=r"icustays\.csv\.gz"):
        generate_cxr_for(tmp_path / "out", broken, CONFIG)
    assert not (tmp_path / "out").exists()

    (broken / "icu").mkdir()
    (broken / "icu/icustays.csv.gz").symlink_to(synthetic_iv / "icu/icustays.csv.gz")
    patients = broken / "hosp/patients.csv.gz"
    patients.unlink()
    with gzip.open(patients, "wt") as handle:
        handle.write("subject_id,gender,anchor_age\n10000001,F,60\n")
    with pytest.raises(MimicSourceError, match=r"patients\.csv\.gz.*anchor_year"):
        generate_cxr_for(tmp_path / "out", broken, CONFIG)
    with pytest.raises(CxrForError, match="MIMIC-IV folder not found"):
        generate_cxr_for(tmp_path / "out", tmp_path / "nowhere", CONFIG)


def test_out_must_not_be_inside_the_mimic_iv_folder(synthetic_iv: Path) -> None:
    with pytest.raises(CxrForError, match="must not be inside MIMIC_IV_DIR"):
        generate_cxr_for(synthetic_iv / "hosp" / "cxr", synthetic_iv, CONFIG)
    with pytest.raises(CxrForError, match="must not be inside MIMIC_IV_DIR"):
        generate_cxr_for(synthetic_iv, synthetic_iv, CONFIG)
    assert not (synthetic_iv / "hosp" / "cxr").exists()
    assert not (synthetic_iv / "mimic-cxr-jpg").exists()


def test_a_demo_export_is_never_overwritten(synthetic_root: Path, synthetic_iv: Path) -> None:
    before = (synthetic_root / "_truth" / "manifest.json").read_bytes()
    with pytest.raises(FileExistsError, match="not a --cxr-for export"):
        generate_cxr_for(synthetic_root, synthetic_iv, CONFIG)
    assert (synthetic_root / "_truth" / "manifest.json").read_bytes() == before


def test_cli_cxr_for(
    synthetic_iv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = [str(out), "--cxr-for", str(synthetic_iv), "--seed", "3", "--image-size", "64", "80"]
    assert main([*argv, "--no-images", "--no-defects"]) == 0
    manifest = json.loads((out / "_truth/manifest.json").read_text())
    assert manifest["config"]["seed"] == 3 and manifest["config"]["image_size"] == [64, 80]
    assert manifest["config"]["with_defects"] is False
    assert sorted(p.name for p in out.iterdir()) == ["_truth", "mimic-cxr-jpg"]
    assert not (out / "mimic-cxr-jpg/files").exists()
    assert main([*argv, "--no-images"]) == 0  # a previous --cxr-for export is replaced

    for extra in (["--patients", "5"], ["--events-only"]):
        with pytest.raises(SystemExit) as exc:
            main([*argv, *extra])
        assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main([str(out), "--no-defects"])
    assert exc.value.code == 2
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path / "x"), "--cxr-for", str(tmp_path / "empty")])
    assert exc.value.code == 1
    assert re.search(r"MIMIC-IV folder not found: .*empty", capsys.readouterr().err)
