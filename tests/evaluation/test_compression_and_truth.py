"""Cost measurements and the Bayes ceiling from the demo generator's truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from mindkd.evaluation import (
    OptionalParquetDataset,
    measure_latency,
    model_compression,
    state_dict_bytes,
    truth_predictions,
)
from mindkd.evaluation.truth import CEILING
from mindkd.mimic.phenotypes import PHENOTYPES


def test_state_dict_bytes_counts_the_weights() -> None:
    model = nn.Linear(100, 50)  # 5050 float32 parameters
    size = state_dict_bytes(model.state_dict())
    assert 4 * 5050 <= size <= 4 * 5050 + 4096


def test_latency_uses_fixed_threads_and_restores_them() -> None:
    before = torch.get_num_threads()
    model = nn.Linear(8, 1)
    inputs = [torch.randn(1, 8) for _ in range(50)]
    cost = model_compression(model, model, inputs, teacher_parameters=90, threads=1, warmup=2)
    assert torch.get_num_threads() == before
    assert cost["parameters"] == 9 and cost["teacher_fraction"] == pytest.approx(0.1)
    assert cost["latency_samples"] == 50 and cost["latency_threads"] == 1
    assert 0 < cost["latency_p50_ms"] <= cost["latency_p95_ms"]
    with pytest.raises(ValueError, match="at least one input"):
        measure_latency(model, [])


def test_optional_truth_loads_none_when_absent(tmp_path: Path) -> None:
    (tmp_path / "demo" / "mimic-iv").mkdir(parents=True)
    dataset = OptionalParquetDataset(
        filepath=str(tmp_path / "demo/mimic-iv/../_truth/stays.parquet")
    )
    assert dataset.load() is None and not dataset.exists()
    (tmp_path / "demo" / "_truth").mkdir()
    pd.DataFrame({"stay_id": [1], "p_death": [0.2]}).to_parquet(
        tmp_path / "demo/_truth/stays.parquet"
    )
    loaded = dataset.load()
    assert loaded is not None and loaded["p_death"].tolist() == [0.2]


def test_ihm_ceiling_scores_every_head_from_the_truths() -> None:
    samples = pd.DataFrame({"key": [1, 2, 3], "kind": ["paired", "ehr_only", "paired"]})
    truth = pd.DataFrame(
        {
            "stay_id": [3, 2, 1, 9],
            "p_death": [0.9, 0.5, 0.1, 0.3],
            "p_death_ehr_only": [0.8, 0.4, 0.2, 0.3],
            "p_death_cxr_only": [0.7, 0.5, 0.3, 0.3],
        }
    )
    ceiling = truth_predictions(truth, samples, "ihm", ["y"])
    assert set(ceiling["model"]) == {CEILING}
    by_head = {h: rows.set_index("key")["logit_0"] for h, rows in ceiling.groupby("head")}
    assert set(by_head["routed"].index) == set(by_head["ehr"].index) == {1, 2, 3}
    assert set(by_head["fused"].index) == set(by_head["cxr"].index) == {1, 3}
    probability = 1 / (1 + np.exp(-by_head["ehr"]))
    assert probability.loc[3] == pytest.approx(0.8) and probability.loc[1] == pytest.approx(0.2)
    assert truth_predictions(None, samples, "ihm", ["y"]) is None
    assert truth_predictions(truth.drop(columns="p_death_cxr_only"), samples, "ihm", ["y"]) is None


def test_pheno_ceiling_maps_phenotype_names_to_label_columns() -> None:
    labels = [p.column for p in PHENOTYPES]
    truth = pd.DataFrame({"stay_id": [1, 2]})
    for k, p in enumerate(PHENOTYPES):
        truth[f"p_{p.name}"] = [0.01 * (k + 1), 0.5]
    samples = pd.DataFrame({"key": [2, 1], "kind": ["ehr_only", "paired"]})
    ceiling = truth_predictions(truth, samples, "pheno", labels)
    routed = ceiling[ceiling["head"] == "routed"].set_index("key")
    assert set(ceiling["head"]) == {"routed", "fused"}
    logits = routed.loc[1, [f"logit_{k}" for k in range(len(labels))]].to_numpy(dtype=float)
    np.testing.assert_allclose(1 / (1 + np.exp(-logits)), 0.01 * np.arange(1, 26), rtol=1e-5)


def test_pheno_unimodal_truths_are_used_when_the_generator_writes_them() -> None:
    labels = [p.column for p in PHENOTYPES]
    truth = pd.DataFrame({"stay_id": [1]})
    for p in PHENOTYPES:
        truth[[f"p_{p.name}", f"p_{p.name}_ehr_only"]] = [[0.5, 0.25]]
    samples = pd.DataFrame({"key": [1], "kind": ["paired"]})
    ceiling = truth_predictions(truth, samples, "pheno", labels)
    assert set(ceiling["head"]) == {"routed", "fused", "ehr"}  # no cxr-only truths given
    ehr = ceiling[ceiling["head"] == "ehr"].filter(like="logit_").to_numpy(dtype=float)
    np.testing.assert_allclose(1 / (1 + np.exp(-ehr)), 0.25, rtol=1e-6)
