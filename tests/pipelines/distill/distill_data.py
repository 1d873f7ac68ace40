"""Tiny synthetic inputs of the distill stage, built in memory, and small typed parameters.

The ihm label of a stay shows in both modalities (EHR channel 0 shifted by +-1; a bright square on
its image when y = 1). The logit cache holds two EHR and two CXR "members" whose logits are noisy
copies of 3 * (2y - 1); its provenance gives them 1 M parameters each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mindkd.io.array_store import ArrayStore
from mindkd.io.logit_cache import LogitCache
from mindkd.pipelines.distill.params import DistillParams
from mindkd.tasks import TaskParams
from mindkd.training.samples import fingerprint_inputs
from synthetic_stores import signal_timeseries

STEPS, CHANNELS, IMAGE = 8, 34, 16
SPLIT_SIZES = {"train": 48, "val": 24, "test": 24}
MEMBERS = {"ehr": ("e_small", "e_large"), "cxr": ("c_small", "c_large")}
MEMBER_PARAMETERS = 1_000_000


@dataclass
class DistillInputs:
    cohort: pd.DataFrame
    timeseries: ArrayStore
    pairs: pd.DataFrame
    image_store: ArrayStore
    cache: LogitCache
    truth: pd.DataFrame
    cxr_only: pd.DataFrame
    subgroups: pd.DataFrame

    @property
    def fingerprint(self) -> dict[str, Any]:
        """The input digest distill computes now (node ``fingerprint_distill_inputs``)."""
        return fingerprint_inputs(
            self.cohort, self.timeseries, self.pairs, self.cxr_only, self.image_store
        )


def make_inputs(seed: int = 0) -> DistillInputs:
    """96 stays (one subject each), 2 of 3 paired, stores in another row order than the cohort."""
    rng = np.random.default_rng(seed)
    split = np.concatenate([[s] * n for s, n in SPLIT_SIZES.items()])
    n = len(split)
    stay_id = 30_000 + np.arange(n)
    y = (np.arange(n) % 2).astype(np.int64)
    rng.shuffle(y)
    cohort = pd.DataFrame(
        {"subject_id": 10_000 + np.arange(n), "stay_id": stay_id, "split": split, "y": y}
    )
    timeseries = signal_timeseries(rng, stay_id, y, steps=STEPS, channels=CHANNELS, shift=1.0)
    paired = np.arange(n) % 3 != 2
    dicom = np.array([f"img-{s}" for s in stay_id], dtype=object)
    images = rng.integers(0, 90, size=(n, IMAGE, IMAGE)).astype(np.uint8)
    images[y == 1, 4:12, 4:12] = 220
    store_order = rng.permutation(n)
    image_store = ArrayStore(
        arrays={"images": images[store_order]},
        index=pd.DataFrame({"dicom_id": dicom[store_order], "row": np.arange(n)}),
        key="dicom_id",
    )
    pairs = pd.DataFrame(
        {
            "stay_id": stay_id,
            "subject_id": cohort["subject_id"],
            "dicom_id": np.where(paired, dicom, None),
            "split": split,
        }
    )
    cxr_only = pd.DataFrame({"dicom_id": pd.Series(dtype=object), "split": pd.Series(dtype=object)})
    cache = make_cache(cohort, pairs, rng)
    cache.provenance["inputs"] = fingerprint_inputs(
        cohort, timeseries, pairs, cxr_only, image_store
    )
    truth = pd.DataFrame(
        {
            "stay_id": stay_id,
            "p_death": np.where(y == 1, 0.8, 0.2),
            "p_death_ehr_only": np.where(y == 1, 0.7, 0.3),
            "p_death_cxr_only": np.where(y == 1, 0.6, 0.4),
        }
    )
    subgroups = pd.DataFrame(
        {
            "stay_id": stay_id,
            "sex": np.where(np.arange(n) % 2 == 0, "Female", "Male"),
            "age_band": np.where(np.arange(n) % 10 == 0, "18-39", "60-79"),  # 18-39: 2 test stays
            "race": "White",
            "insurance": np.where(np.arange(n) % 3 == 0, "Medicaid", "Medicare"),
        }
    )
    return DistillInputs(cohort, timeseries, pairs, image_store, cache, truth, cxr_only, subgroups)


def make_cache(cohort: pd.DataFrame, pairs: pd.DataFrame, rng: np.random.Generator) -> LogitCache:
    """Member logits for every stay (EHR) and every paired image (CXR), all splits."""
    frames = []
    signal = 3.0 * (2.0 * cohort["y"].to_numpy() - 1.0)
    paired = pairs["dicom_id"].notna().to_numpy()
    for modality, members in MEMBERS.items():
        for member in members:
            rows = np.ones(len(cohort), dtype=bool) if modality == "ehr" else paired
            keys = (cohort["stay_id"] if modality == "ehr" else pairs["dicom_id"])[rows]
            frames.append(
                pd.DataFrame(
                    {
                        "modality": modality,
                        "key": keys.astype(str).to_numpy(),
                        "split": cohort["split"].to_numpy()[rows],
                        "member": member,
                        "logit_0": signal[rows] + rng.normal(scale=1.0, size=int(rows.sum())),
                    }
                )
            )
    provenance = {
        "task": "ihm",
        "kind": "binary",
        "labels": ["y"],
        "members": {
            member: {"modality": modality, "parameters": MEMBER_PARAMETERS}
            for modality, members in MEMBERS.items()
            for member in members
        },
    }
    return LogitCache(table=pd.concat(frames, ignore_index=True), provenance=provenance)


def params_dict(**overrides: Any) -> dict[str, Any]:
    """Small settings of every model (seconds on one thread), as the YAML would hold them."""
    ehr = {"name": "gru", "settings": {"hidden": 8}}
    cxr = {"name": "resnet18", "settings": {"width": 0.125, "stem": "small"}}
    values: dict[str, Any] = {
        "alpha": 0.5,
        "temperature": 2.0,
        "distance": "bce",
        "data": "partial",
        "student": {
            "ehr_encoder": ehr,
            "cxr_encoder": cxr,
            "fusion": "concat",
            "fusion_settings": {"hidden": 8},
        },
        "baselines": {
            "zero_filled": {"ehr_encoder": ehr, "cxr_encoder": cxr},
            "medfuse": {
                "ehr_encoder": {"name": "gru", "settings": {"hidden": 16}},
                "cxr_encoder": cxr,
                "token_dim": 8,
                "hidden": 8,
            },
        },
        "fit": {
            "epochs": 2,
            "batch_size": 16,
            "eval_batch_size": 64,
            "lr": 3e-3,
            "patience": 2,
            "device": "cpu",
            "progress": False,
            "seed": 0,
        },
        "evaluation": {
            "n_bootstrap": 1000,
            "seed": 0,
            "latency": {"samples": 50, "warmup": 1},
            "subgroup_min_size": 5,
        },
        "mckd": {"meta_every": 1, "meta_fraction": 0.2},  # a few steps per epoch here
        "mfh": {"n_bootstrap": 100, "min_samples": 5},
    }
    values.update(overrides)
    return values


def distill_params(**overrides: Any) -> DistillParams:
    return DistillParams.model_validate(params_dict(**overrides))


def task_params() -> TaskParams:
    return TaskParams(name="ihm")
