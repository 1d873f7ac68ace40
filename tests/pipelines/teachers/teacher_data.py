"""Tiny synthetic, learnable teacher inputs built in memory, and small teacher settings.

The ihm label of a stay is visible in both modalities: EHR channel 0 is shifted by +-1.2 and its
image carries a bright square when y = 1. CheXpert finding 0 follows the same square, so pre-training
has something to learn too. (A helper module, not conftest: test modules import it by name.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mindkd.io.array_store import ArrayStore
from mindkd.mimic.cxr import FINDINGS
from mindkd.models.spec import MemberSpec
from mindkd.pipelines.teachers.params import (
    CacheParams,
    FitParams,
    ReportParams,
)
from mindkd.tasks import TaskParams
from synthetic_stores import signal_timeseries

STEPS, CHANNELS, IMAGE = 8, 34, 16
SPLIT_SIZES = {"train": 48, "val": 20, "test": 20}
MEMBERS = {"ehr": ("small", "large"), "cxr": ("r18", "dense")}


@dataclass
class TeacherInputs:
    cohort: pd.DataFrame
    timeseries: ArrayStore
    pairs: pd.DataFrame
    cxr_only: pd.DataFrame
    image_store: ArrayStore
    image_labels: pd.DataFrame
    subject_splits: pd.DataFrame


def _image(rng: np.random.Generator, positive: bool) -> np.ndarray:
    pixels = rng.integers(0, 90, size=(IMAGE, IMAGE)).astype(np.uint8)
    if positive:
        pixels[4:12, 4:12] = 230
    return pixels


def make_inputs(seed: int = 0) -> TeacherInputs:
    """88 stays (one subject each), 2 of 3 paired; 1 CXR-only image per subject; an unrelated subject."""
    rng = np.random.default_rng(seed)
    split = np.concatenate([[s] * n for s, n in SPLIT_SIZES.items()])
    n = len(split)
    stay_id = 30_000 + np.arange(n)
    subject_id = 10_000 + np.arange(n)
    y = (np.arange(n) % 2).astype(np.int64)
    rng.shuffle(y)
    intime = pd.Timestamp("2150-01-01") + pd.to_timedelta(np.arange(n), unit="D")
    cohort = pd.DataFrame(
        {
            "subject_id": subject_id,
            "hadm_id": 20_000 + np.arange(n),
            "stay_id": stay_id,
            "intime": intime,
            "outtime": intime + pd.Timedelta(hours=60),
            "split": split,
            "y": y,
        }
    )
    timeseries = signal_timeseries(rng, stay_id, y, steps=STEPS, channels=CHANNELS, shift=1.2)

    paired = np.arange(n) % 3 != 2
    images, image_rows = [], []
    for i in range(n):
        for kind in ("pair", "only"):
            dicom = f"{kind}-{stay_id[i]}"
            positive = bool(y[i]) if kind == "pair" else bool(rng.integers(0, 2))
            images.append(_image(rng, positive))
            image_rows.append(
                (dicom, subject_id[i], split[i], positive, kind == "pair" and paired[i])
            )
    images.append(_image(rng, True))  # a subject of no task cohort (train split)
    image_rows.append(("other-1", 99_999, "train", True, False))
    table = pd.DataFrame(
        image_rows, columns=["dicom_id", "subject_id", "split", "positive", "paired"]
    )
    findings = rng.integers(0, 2, size=(len(table), len(FINDINGS))).astype(np.float32)
    findings[:, 0] = table["positive"].to_numpy(dtype=np.float32)
    findings[rng.random(findings.shape) < 0.1] = np.nan  # masked (uncertain) labels
    findings[:, 0] = table["positive"].to_numpy(dtype=np.float32)
    image_labels = pd.concat(
        [table[["dicom_id", "subject_id"]], pd.DataFrame(findings, columns=list(FINDINGS))], axis=1
    )
    image_labels.insert(2, "study_id", 50_000 + np.arange(len(table)))
    store_order = rng.permutation(len(table))
    image_store = ArrayStore(
        arrays={"images": np.stack(images)[store_order]},
        index=pd.DataFrame(
            {"dicom_id": table["dicom_id"].to_numpy()[store_order], "row": np.arange(len(table))}
        ),
        key="dicom_id",
        metadata={"image_size": IMAGE, "fingerprint": "synthetic"},
    )
    pairs = pd.DataFrame(
        {
            "stay_id": stay_id,
            "subject_id": subject_id,
            "dicom_id": np.where(paired, [f"pair-{s}" for s in stay_id], None),
            "split": split,
        }
    )
    used = set(pairs["dicom_id"].dropna())
    only = image_labels.loc[~image_labels["dicom_id"].isin(used)]
    only = only.loc[only["subject_id"].isin(subject_id)]  # this task's subjects only
    cxr_only = only.assign(split=only["subject_id"].map(dict(zip(subject_id, split, strict=True))))
    subject_splits = pd.DataFrame({"subject_id": [*subject_id, 99_999], "split": [*split, "train"]})
    return TeacherInputs(
        cohort,
        timeseries,
        pairs,
        cxr_only.reset_index(drop=True),
        image_store,
        image_labels,
        subject_splits,
    )


def fit_params(epochs: int = 6, **overrides: object) -> FitParams:
    settings = {
        "epochs": epochs,
        "batch_size": 16,
        "eval_batch_size": 64,
        "lr": 3e-3,
        "patience": epochs,
        "device": "cpu",
        "progress": False,
        "seed": 0,
        **overrides,
    }
    return FitParams(**settings)


def member_params() -> dict[str, MemberSpec]:
    return {
        "small": MemberSpec(encoder="lstm", settings={"hidden": 8}),
        "large": MemberSpec(encoder="gru", settings={"hidden": 16}),
        "r18": MemberSpec(encoder="resnet18", settings={"width": 0.125, "stem": "small"}),
        "dense": MemberSpec(
            encoder="densenet_small",
            settings={
                "growth_rate": 4,
                "block_config": [2, 2],
                "num_init_features": 8,
                "stem": "small",
            },
        ),
    }


def task_params() -> TaskParams:
    return TaskParams(name="ihm")


def parameter_values(
    task: str = "ihm", recipe: str = "pretrain_then_finetune"
) -> dict[str, object]:
    """``params:<task>.*`` catalog entries as the teachers pipeline names them, already typed."""
    members = member_params()
    values: dict[str, object] = {
        f"params:{task}.task": task_params(),
        f"params:{task}.teachers.ehr.fit": fit_params(),
        f"params:{task}.teachers.cxr.fit": fit_params(epochs=3),
        "params:cxr_pretrain.recipe": recipe,
        "params:cxr_pretrain.fit": fit_params(epochs=2),
        f"params:{task}.teachers.cache": CacheParams(batch_size=32, device="cpu"),
        f"params:{task}.teachers.report": ReportParams(n_bootstrap=1000, seed=0),
    }
    for modality, slots in MEMBERS.items():
        for slot in slots:
            values[f"params:{task}.teachers.{modality}.members.{slot}"] = members[slot]
            if modality == "cxr":
                values[f"params:cxr_pretrain.members.{slot}"] = members[slot]
    return values
